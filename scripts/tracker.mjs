#!/usr/bin/env node
// Local WebTorrent tracker (WebSocket only) for `make dev`, the P2P tests and
// the benchmarks: the `tr=` the worker writes into every magnet. Browsers
// announce to it and exchange WebRTC offers/answers through it.
//
// It is the npm package bittorrent-tracker's server, imported from
// `bittorrent-tracker/server` (the package root loads node-datachannel, a
// native module that is not installed here), with HTTP and UDP trackers off.
// It listens on 127.0.0.1 only.
//
// Module use:  const tracker = await startTracker(); ...; tracker.stats(); await tracker.stop()
// CLI use:     node scripts/tracker.mjs [--port N] [--host H]
//              prints one JSON line {"url": ...} on stdout once listening,
//              stops on SIGINT/SIGTERM.
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import Server from 'bittorrent-tracker/server'

const LOOPBACK_HOST = '127.0.0.1'

/** Tracker events (bittorrent-tracker's names) counted as announces. */
const ANNOUNCE_EVENTS = ['start', 'update', 'complete', 'stop', 'pause']

/**
 * Starts the tracker.
 *
 * @param {object} [options]
 * @param {number} [options.port=0]           TCP port; 0 picks a free one
 * @param {string} [options.host='127.0.0.1'] loopback address to listen on
 * @param {number} [options.interval]         announce interval in ms; WebSocket clients are
 *                                            told a fifth of it (bittorrent-tracker's rule).
 *                                            Default: the package's 10 min (so 2 min). A new
 *                                            peer's 'started' announce already reaches the
 *                                            peers in the swarm, so re-announces matter little.
 * @returns {Promise<{
 *   url: string, port: number,
 *   stats: () => { torrents: number, activeTorrents: number, peers: number, seeders: number,
 *                  leechers: number, sockets: number, announces: Record<string, number> & { total: number },
 *                  warnings: number },
 *   stop: () => Promise<void>
 * }>}
 */
export async function startTracker ({ port = 0, host = LOOPBACK_HOST, interval } = {}) {
  if (!/^127\.\d+\.\d+\.\d+$/.test(host)) {
    throw new Error(`tracker: refusing to listen on ${host}; loopback (127.x.x.x) only`)
  }
  const server = new Server({ http: false, udp: false, ws: true, stats: false, interval })

  const announces = Object.fromEntries(ANNOUNCE_EVENTS.map(event => [event, 0]))
  for (const event of ANNOUNCE_EVENTS) server.on(event, () => { announces[event] += 1 })
  let warnings = 0
  // A client sending nonsense is a warning, never a crash.
  server.on('warning', () => { warnings += 1 })

  // clientTracking is off in bittorrent-tracker's WebSocketServer, and an
  // upgraded socket no longer belongs to the HTTP server: keep them here so
  // stop() can close them (otherwise close() waits for every browser to leave).
  const sockets = new Set()
  server.ws.on('connection', socket => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  const rawConnections = new Set()
  server.http.on('connection', connection => {
    rawConnections.add(connection)
    connection.once('close', () => rawConnections.delete(connection))
  })

  // One handler for the server's whole life: a listen error arrives twice
  // (from the HTTP server and again through the WebSocket server), and a later
  // error (a socket failing) must not crash the process.
  let listenFailed = null
  server.on('error', error => {
    if (!server.listening) {
      listenFailed?.(error)
      return
    }
    warnings += 1
    process.stderr.write(`[tracker] ${error.message}\n`)
  })
  await new Promise((resolve, reject) => {
    listenFailed = error => {
      listenFailed = null
      server.close()
      reject(new Error(`tracker: cannot listen on ${host}:${port}: ${error.message}`, { cause: error }))
    }
    server.listen(port, host, () => {
      listenFailed = null
      resolve()
    })
  })

  const actualPort = server.http.address().port
  const url = `ws://${host}:${actualPort}`

  function stats () {
    const peerState = new Map() // peerId -> { seeder, leecher }
    let activeTorrents = 0
    const swarms = Object.values(server.torrents)
    for (const swarm of swarms) {
      const ids = swarm.peers.keys
      if (ids.length > 0) activeTorrents += 1
      for (const id of ids) {
        const peer = swarm.peers.peek(id)
        if (!peer) continue
        const state = peerState.get(id) ?? { seeder: false, leecher: false }
        if (peer.complete) state.seeder = true
        else state.leecher = true
        peerState.set(id, state)
      }
    }
    const states = [...peerState.values()]
    return {
      torrents: swarms.length,
      activeTorrents,
      peers: peerState.size,
      seeders: states.filter(s => s.seeder).length,
      leechers: states.filter(s => s.leecher).length,
      sockets: sockets.size,
      announces: { ...announces, total: ANNOUNCE_EVENTS.reduce((sum, event) => sum + announces[event], 0) },
      warnings
    }
  }

  let stopPromise = null
  const stop = () => {
    stopPromise ??= new Promise(resolve => {
      server.close(() => resolve())
      for (const socket of sockets) socket.terminate()
      for (const connection of rawConnections) connection.destroy()
    })
    return stopPromise
  }

  return { url, port: actualPort, stats, stop }
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

const USAGE = `usage: node scripts/tracker.mjs [--port N] [--host 127.0.0.1]

Runs a WebTorrent (WebSocket) tracker on loopback. Prints one JSON line
{"url": "ws://127.0.0.1:PORT", "port": PORT} once listening; stops on SIGINT/SIGTERM.`

async function main (argv) {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string' },
        host: { type: 'string', default: LOOPBACK_HOST },
        help: { type: 'boolean', short: 'h', default: false }
      },
      strict: true,
      allowPositionals: false
    }))
  } catch (error) {
    process.stderr.write(`${error.message}\n${USAGE}\n`)
    process.exitCode = 2
    return
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  const port = values.port === undefined ? 0 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`--port: not a port number: ${values.port}\n`)
    process.exitCode = 2
    return
  }
  const tracker = await startTracker({ port, host: values.host })
  let stopping = false
  const shutDown = () => {
    if (stopping) process.exit(1) // Second signal: give up waiting.
    stopping = true
    tracker.stop().then(() => process.exit(0), () => process.exit(1))
  }
  process.on('SIGINT', shutDown)
  process.on('SIGTERM', shutDown)
  process.stdout.write(`${JSON.stringify({ url: tracker.url, port: tracker.port })}\n`)
}

function invokedAsScript () {
  if (!process.argv[1]) return false
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (invokedAsScript()) {
  main(process.argv.slice(2)).catch(error => {
    process.stderr.write(`[tracker] ${error.stack ?? error}\n`)
    process.exit(1)
  })
}

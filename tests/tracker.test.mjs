// The local WebTorrent tracker (scripts/tracker.mjs): listens on loopback
// only, speaks the WebSocket tracker protocol (announces, offer/answer relay
// between peers), counts what it sees, and stops with peers still connected.
// The peers here are plain WebSocket clients sending the JSON messages a
// WebTorrent client sends; no WebRTC is needed to relay signalling.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { once } from 'node:events'
import WebSocket from 'ws'

import { startTracker } from '../scripts/tracker.mjs'
import { REPO_ROOT, sleep } from './support/harness.mjs'

const started = []
after(async () => {
  for (const tracker of started) await tracker.stop()
})

/** 20 "binary string" characters, as WebTorrent sends info_hash and peer_id. */
function binaryId (hex) {
  return Buffer.from(hex.padEnd(40, '0').slice(0, 40), 'hex').toString('latin1')
}

/** A WebSocket peer that queues every JSON message it receives. */
async function connectPeer (url) {
  const socket = new WebSocket(url)
  const inbox = []
  const waiters = []
  socket.on('message', data => {
    inbox.push(JSON.parse(data.toString()))
    while (waiters.length) waiters.shift()()
  })
  await once(socket, 'open')
  return {
    socket,
    send: message => socket.send(JSON.stringify(message)),
    /** Resolves with the first queued message that `match`es (bounded). */
    async next (match, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const index = inbox.findIndex(match)
        if (index !== -1) return inbox.splice(index, 1)[0]
        if (Date.now() > deadline) throw new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(inbox)}`)
        await new Promise(resolve => { waiters.push(resolve); setTimeout(resolve, 100) })
      }
    },
    close: () => socket.close()
  }
}

function canConnect (host, port) {
  return new Promise(resolve => {
    const socket = net.connect(port, host)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

test('listens on 127.0.0.1 only, answers WebSocket upgrades, no HTTP tracker', async () => {
  const tracker = await startTracker()
  started.push(tracker)
  assert.match(tracker.url, /^ws:\/\/127\.0\.0\.1:\d+$/)
  assert.equal(tracker.url, `ws://127.0.0.1:${tracker.port}`)
  assert.ok(await canConnect('127.0.0.1', tracker.port), 'reachable on 127.0.0.1')
  assert.equal(await canConnect('127.0.0.2', tracker.port), false, 'not bound to other loopback addresses')

  const plain = await fetch(`http://127.0.0.1:${tracker.port}/announce?info_hash=x`)
  assert.equal(plain.status, 404, 'no HTTP tracker')
  await plain.arrayBuffer()

  const peer = await connectPeer(tracker.url)
  peer.close()
  await assert.rejects(startTracker({ host: '0.0.0.0' }), /loopback/)
  // A port in use is a rejected promise, not an unhandled 'error' event.
  await assert.rejects(startTracker({ port: tracker.port }), /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/)
  await sleep(100) // the second 'error' emission of the failed server comes a tick later
})

test('relays offers and answers between peers and counts announces', async () => {
  const tracker = await startTracker()
  started.push(tracker)
  assert.deepEqual(tracker.stats(), {
    torrents: 0, activeTorrents: 0, peers: 0, seeders: 0, leechers: 0, sockets: 0,
    announces: { start: 0, update: 0, complete: 0, stop: 0, pause: 0, total: 0 },
    warnings: 0
  })
  const infoHash = binaryId('aa11')
  const seeder = await connectPeer(tracker.url)
  const leecher = await connectPeer(tracker.url)
  const seederId = binaryId('5e')
  const leecherId = binaryId('1e')

  seeder.send({ action: 'announce', info_hash: infoHash, peer_id: seederId, event: 'started', left: 0, numwant: 0, offers: [] })
  const seederReply = await seeder.next(m => m.action === 'announce' && m.complete !== undefined)
  assert.equal(seederReply.info_hash, infoHash)
  assert.equal(seederReply.complete, 1)

  // The leecher's 'started' announce carries an offer; the tracker hands it to the seeder.
  const offer = { type: 'offer', sdp: 'v=0 fake' }
  leecher.send({
    action: 'announce', info_hash: infoHash, peer_id: leecherId, event: 'started', left: 1000,
    numwant: 1, offers: [{ offer, offer_id: binaryId('0ff1') }]
  })
  const forwarded = await seeder.next(m => m.offer !== undefined)
  assert.deepEqual(forwarded.offer, offer)
  assert.equal(forwarded.peer_id, leecherId)
  assert.equal(forwarded.offer_id, binaryId('0ff1'))

  // The seeder's answer goes back to the leecher.
  const answer = { type: 'answer', sdp: 'v=0 fake answer' }
  seeder.send({
    action: 'announce', info_hash: infoHash, peer_id: seederId, answer, offer_id: forwarded.offer_id, to_peer_id: leecherId
  })
  const answered = await leecher.next(m => m.answer !== undefined)
  assert.deepEqual(answered.answer, answer)
  assert.equal(answered.peer_id, seederId)

  leecher.send({ action: 'announce', info_hash: infoHash, peer_id: leecherId, event: 'completed', left: 0, numwant: 0, offers: [] })
  await leecher.next(m => m.action === 'announce' && m.complete === 2)

  const stats = tracker.stats()
  assert.equal(stats.torrents, 1)
  assert.equal(stats.activeTorrents, 1)
  assert.equal(stats.peers, 2)
  assert.equal(stats.seeders, 2)
  assert.equal(stats.sockets, 2)
  assert.equal(stats.announces.start, 2)
  assert.equal(stats.announces.complete, 1)
  assert.equal(stats.announces.update, 1, 'the answer counts as an update announce')
  assert.equal(stats.announces.total, 4)

  // Nonsense is a warning, not a crash.
  leecher.socket.send('{"action":"announce","info_hash":"short"}')
  await leecher.next(m => m['failure reason'] !== undefined)
  assert.equal(tracker.stats().warnings, 1)

  // A peer that leaves is dropped from the swarm.
  leecher.close()
  for (const deadline = Date.now() + 5000; tracker.stats().peers !== 1; await sleep(50)) {
    assert.ok(Date.now() < deadline, `peer not dropped: ${JSON.stringify(tracker.stats())}`)
  }
  seeder.close()
})

test('stop() returns promptly with peers still connected, then the port is closed', async () => {
  const tracker = await startTracker()
  const peers = [await connectPeer(tracker.url), await connectPeer(tracker.url)]
  const closed = peers.map(peer => once(peer.socket, 'close'))
  const t0 = Date.now()
  await tracker.stop()
  assert.ok(Date.now() - t0 < 2000, `stop took ${Date.now() - t0} ms`)
  await Promise.all(closed)
  assert.equal(await canConnect('127.0.0.1', tracker.port), false)
  await tracker.stop() // idempotent
})

test('CLI prints its URL as one JSON line and stops on SIGTERM and SIGINT', async () => {
  for (const signal of ['SIGTERM', 'SIGINT']) {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts/tracker.mjs'), '--port', '0'], {
      stdio: ['ignore', 'pipe', 'inherit']
    })
    const exited = once(child, 'exit')
    try {
      let out = ''
      child.stdout.setEncoding('utf8')
      for (const deadline = Date.now() + 10000; !out.includes('\n'); ) {
        const chunk = await Promise.race([once(child.stdout, 'data').then(([c]) => c), sleep(200).then(() => '')])
        out += chunk
        assert.ok(Date.now() < deadline, 'no JSON line within 10 s')
      }
      const ready = JSON.parse(out.split('\n')[0])
      assert.match(ready.url, /^ws:\/\/127\.0\.0\.1:\d+$/)
      const peer = await connectPeer(ready.url)
      child.kill(signal)
      const [code] = await Promise.race([exited, sleep(5000).then(() => ['timeout'])])
      assert.equal(code, 0, `exit after ${signal}`)
      peer.close()
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  }
})

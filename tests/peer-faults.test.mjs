// Client-side faults: a peer that serves corrupt pieces, and a tracker that
// goes down mid-session or answers garbage. In each case the viewer keeps
// playing, and every segment body its player receives is the origin's file:
// what peers send is checked against the torrent before it is used, and what
// peers cannot deliver comes over HTTP.
//
// ffmpeg live origin (segments kept on disk) <- worker under `wrangler dev`,
// one per test, whose magnets name that test's tracker <- headless Chromium
// viewers of the demo player (at most three browsers at once).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { launchBrowser } from './support/browser.mjs'
import { startTracker, startWorker, sleep } from './support/harness.mjs'
import { openViewer, originFiles } from './support/viewers.mjs'

// Playback thresholds of tests/fail-open.test.mjs: at least 10 s played per
// 16 s watched (the same ratio over longer windows), at least 4 segments.
const PLAYED_RATIO = 10 / 16
const MIN_SEGMENTS = 4
const FIRST_FRAME_TIMEOUT_MS = 60_000
const TEST_TIMEOUT_MS = 5 * 60_000

/** Corrupt peer: how long the honest viewer watches. */
const CORRUPT_WATCH_MS = 30_000
/**
 * Corrupt peer: the most piece bytes it may get to send. The honest viewer
 * disconnects it at its first bad piece; what was already requested (a few
 * 64 KiB pieces) may still arrive. Without the ban it sent over 100 MB.
 */
const CORRUPT_BYTES_BOUND = 4 * 1024 * 1024
/** Corrupt peer: segments it must seed before the honest viewer opens. */
const CORRUPT_PEER_READY_SEGMENTS = 3
const CORRUPT_PEER_READY_TIMEOUT_MS = 30_000

/** Tracker down: second viewer joins this long after the first. */
const JOIN_GAP_MS = 4_000
/** Tracker down: longest wait for the two viewers to share bytes. */
const SHARE_TIMEOUT_MS = 45_000
/** Tracker down: bytes from peers that count as sharing: one 64 KiB piece, verified. */
const SHARED_BYTES = 64 * 1024
/** Tracker down: how long both watch after the tracker stopped. */
const AFTER_STOP_MS = 20_000

/** Garbage tracker: how long each viewer watches. */
const GARBAGE_WATCH_MS = 16_000

let origin

before(async () => {
  origin = await startOrigin({ live: true, keepSegments: true })
})

after(async () => {
  await origin?.stop()
})

/**
 * What one test starts, closed when that test ends (pass or fail), browsers
 * first: `browsers` is also the `registry` of openViewer.
 */
function resources (t) {
  const scope = {
    browsers: [],
    services: [],
    async start (starting) {
      const service = await starting()
      scope.services.push(service)
      return service
    },
    /** A worker whose magnets name `trackerUrl`. */
    workerFor (trackerUrl) {
      return scope.start(() => startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: trackerUrl } }))
    }
  }
  t.after(async () => {
    await Promise.all(scope.browsers.map(b => b.close()))
    for (const service of scope.services.reverse()) await service.stop().catch(() => {})
  })
  return scope
}

// ---------------------------------------------------------------------------
// Checks shared by the tests
// ---------------------------------------------------------------------------

/** Segment responses whose body is not the origin's file. */
let liveFiles
const mismatchedSegments = report => (liveFiles ??= originFiles(path.join(origin.dir, 'live'))).mismatched(report)

/** The page's player position and client counters, now. */
function readNow (viewer) {
  return viewer.page.evaluate(() => ({
    at: Date.now(),
    currentTime: window.ltDemo ? window.ltDemo.video.currentTime : null,
    stats: window.liveTorrent && typeof window.liveTorrent.stats === 'function' ? window.liveTorrent.stats() : null
  }))
}

/** Position growth between the first sample at or after `from` and the last sample. */
function playedSince (viewer, from) {
  const samples = viewer.samples.filter(s => typeof s.currentTime === 'number' && s.at >= from)
  if (samples.length < 2) return { played: 0, overMs: 0 }
  const first = samples[0]
  const last = samples[samples.length - 1]
  return { played: last.currentTime - first.currentTime, overMs: last.at - first.at }
}

function describe (label, report, played) {
  const s = report.stats ?? {}
  return `${label}: played ${played.played.toFixed(1)} s in ${(played.overMs / 1000).toFixed(1)} s, ` +
    `stalls ${report.stalls} (${Math.round(report.stallMs ?? 0)} ms), ${report.segments} segments ` +
    `(${report.segmentResponses.filter(r => r.fromServiceWorker).length} of ${report.segmentResponses.length} responses ` +
    `through the service worker), max peers ${report.maxPeers}, P2P ${report.disabled ? `off: ${report.disabled}` : 'on'}, ` +
    `stats ${JSON.stringify(s)}, page errors ${report.pageErrors.length}`
}

/** What every viewer in this file must show: it played, the origin's bytes, no page errors. */
async function assertPlayedOriginBytes (label, report, { played, overMs }, windowMs) {
  assert.ok(overMs >= windowMs - 3_000, `${label}: sampled over ${overMs} ms of ${windowMs}`)
  const minPlayed = (overMs / 1000) * PLAYED_RATIO
  assert.ok(played >= minPlayed, `${label}: played ${played.toFixed(1)} s in ${overMs} ms (needs ${minPlayed.toFixed(1)}); stalls ${report.stalls}`)
  assert.deepEqual(report.bodyErrors, [], `${label}: every segment response body is readable`)
  assert.ok(report.segments >= MIN_SEGMENTS, `${label}: ${report.segments} segments (${report.segmentNames.join(' ')})`)
  assert.deepEqual(await mismatchedSegments(report), [],
    `${label}: every segment body (${report.segmentResponses.length} responses) equals the origin's file`)
  assert.deepEqual(report.pageErrors, [], `${label}: no uncaught page errors`)
  assert.equal(report.disabled, null, `${label}: the page client runs`)
  assert.equal(report.statsError, null, `${label}: liveTorrent.stats() works`)
  assert.ok(report.segmentResponses.some(r => r.fromServiceWorker), `${label}: the page client delivered segments`)
}

// ---------------------------------------------------------------------------
// A peer that serves corrupt pieces
// ---------------------------------------------------------------------------

/**
 * Runs in the corrupt peer's page (worker origin, no service worker): a real
 * WebTorrent 2.8.5 client that joins every segment's swarm as a seed whose
 * store holds the origin's bytes with one byte flipped in every piece, the
 * same length, so the only way to notice is the piece hash. `skipVerify`
 * makes WebTorrent take the store as complete without hashing it, so it
 * announces itself as a seed (left = 0) and uploads what the store holds.
 */
async function runCorruptPeer ({ playlistPath, pollMs, keep }) {
  const { default: WebTorrent } = await import('/_lt/vendor/webtorrent.min.js')
  const { default: MemoryChunkStore } = await import('/_lt/client/memory-chunk-store.js')
  const state = {
    polls: 0, pollErrors: 0, joined: 0, seeding: 0, piecesCorrupted: 0, lengthMismatches: 0,
    uploadedBytes: 0, pieceBytesUploaded: 0, pieceBytesDownloaded: 0, maxWires: 0, errors: []
  }
  const client = new WebTorrent({ dht: false, lsd: false, utp: false, webSeeds: false, tracker: { rtcConfig: { iceServers: [] } } })
  // WebTorrent's client/torrent 'upload' counts every byte on the connection
  // (handshakes, bitfields, metadata too); a wire's 'upload' counts only the
  // payload of the piece messages it sends.
  client.on('upload', bytes => { state.uploadedBytes += bytes })
  client.on('error', err => state.errors.push(`client: ${err?.message ?? err}`))
  /** segment URL -> torrent (null while joining), oldest first. */
  const torrents = new Map()

  // WebTorrent builds the store with `new store(pieceLength, { length, ... })`
  // once the metadata (from the magnet's xs= .torrent) is known.
  function corruptStore (bytes) {
    return function CorruptStore (pieceLength, opts) {
      const store = new MemoryChunkStore(pieceLength, opts)
      if (bytes.length !== store.length) state.lengthMismatches += 1
      for (let i = 0; i <= store.lastChunkIndex; i++) {
        const length = i === store.lastChunkIndex ? store.lastChunkLength : pieceLength
        const piece = new Uint8Array(length)
        piece.set(bytes.subarray(i * pieceLength, i * pieceLength + length))
        piece[length >> 1] ^= 0xff
        store.chunks[i] = piece
        state.piecesCorrupted += 1
      }
      return store
    }
  }

  async function join (url, magnet) {
    const response = await fetch(url, { cache: 'no-store' })
    if (!response.ok) throw new Error(`HTTP ${response.status} for ${url}`)
    const bytes = new Uint8Array(await response.arrayBuffer())
    if (!torrents.has(url)) return // evicted meanwhile
    const torrent = client.add(magnet, { store: corruptStore(bytes), storeCacheSlots: 0, skipVerify: true, destroyStoreOnDestroy: true })
    torrents.set(url, torrent)
    state.joined += 1
    torrent.on('warning', () => {})
    torrent.on('error', err => state.errors.push(`torrent ${url}: ${err?.message ?? err}`))
    torrent.once('done', () => { state.seeding += 1 })
    torrent.on('wire', wire => {
      state.maxWires = Math.max(state.maxWires, torrent.wires.length)
      wire.on('upload', bytes => { state.pieceBytesUploaded += bytes })
      wire.on('download', bytes => { state.pieceBytesDownloaded += bytes })
    })
  }

  async function poll () {
    const response = await fetch(playlistPath, { cache: 'no-store' })
    const lines = (await response.text()).split(/\r?\n/)
    for (let i = 0; i < lines.length - 1; i++) {
      if (!lines[i].startsWith('#EXT-X-LT-MAGNET:')) continue
      const url = new URL(lines[i + 1].trim(), response.url).href
      if (torrents.has(url)) continue
      torrents.set(url, null)
      join(url, lines[i].slice('#EXT-X-LT-MAGNET:'.length)).catch(err => state.errors.push(`join ${url}: ${err?.message ?? err}`))
    }
    while (torrents.size > keep) {
      const [url, torrent] = torrents.entries().next().value
      torrents.delete(url)
      torrent?.destroy()
    }
  }

  ;(async () => {
    for (;;) {
      try {
        await poll()
        state.polls += 1
      } catch {
        state.pollErrors += 1
      }
      await new Promise(resolve => setTimeout(resolve, pollMs))
    }
  })()

  window.corruptPeer = {
    snapshot: () => ({
      ...state,
      errors: state.errors.slice(0, 10),
      torrents: client.torrents.length,
      uploadedByTorrents: client.torrents.reduce((sum, t) => sum + t.uploaded, 0),
      wires: client.torrents.reduce((sum, t) => sum + t.wires.length, 0)
    })
  }
}

async function openCorruptPeer (workerUrl, registry) {
  const browser = await launchBrowser()
  const peer = { pageErrors: [], close: () => browser.close().catch(() => {}) }
  registry.push(peer)
  const context = await browser.newContext()
  // WebRTC on loopback needs this as well as --allow-loopback-in-peer-connection.
  await context.grantPermissions(['camera', 'microphone'], { origin: workerUrl })
  const page = await context.newPage()
  page.on('pageerror', error => peer.pageErrors.push(String(error)))
  // Any page of the worker origin: the modules load from there.
  await page.goto(`${workerUrl}/_lt/health`)
  await page.evaluate(runCorruptPeer, { playlistPath: '/live/index.m3u8', pollMs: 250, keep: 30 })
  peer.snapshot = () => page.evaluate(() => window.corruptPeer.snapshot())
  return peer
}

test('a peer that serves corrupt pieces is caught by verification; the viewer plays the origin\'s bytes', { timeout: TEST_TIMEOUT_MS }, async t => {
  const { browsers, start, workerFor } = resources(t)
  const tracker = await start(() => startTracker())
  const worker = await workerFor(tracker.url)

  // The corrupt peer seeds every listed segment before the honest viewer
  // comes: it is the one peer the viewer can get pieces from.
  const corrupt = await openCorruptPeer(worker.url, browsers)
  const readyBy = Date.now() + CORRUPT_PEER_READY_TIMEOUT_MS
  let ready = await corrupt.snapshot()
  while (ready.seeding < CORRUPT_PEER_READY_SEGMENTS && Date.now() < readyBy) {
    await sleep(250)
    ready = await corrupt.snapshot()
  }
  assert.ok(ready.seeding >= CORRUPT_PEER_READY_SEGMENTS, `the corrupt peer seeds segments: ${JSON.stringify(ready)}`)

  const viewer = await openViewer({ workerUrl: worker.url, index: 'honest', registry: browsers, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS })
  await sleep(CORRUPT_WATCH_MS)
  const bad = await corrupt.snapshot()
  const trackerStats = tracker.stats()
  const report = await viewer.finish()
  await viewer.close()
  await corrupt.close()

  const played = playedSince(viewer, viewer.firstFrameAt)
  console.log(describe('honest viewer (only peer: the corrupt one)', report, played))
  console.log(`corrupt peer: ${JSON.stringify(bad)}; page errors ${corrupt.pageErrors.length}`)
  console.log(`tracker: ${JSON.stringify(trackerStats)}`)

  // The corrupt peer really served its bytes: otherwise this proves nothing.
  assert.equal(bad.lengthMismatches, 0, 'the corrupt peer\'s pieces have the right lengths')
  assert.ok(bad.pieceBytesUploaded > 0, `the corrupt peer sent ${bad.pieceBytesUploaded} B of corrupt pieces`)
  assert.equal(bad.pieceBytesDownloaded, 0, 'the corrupt peer was a seed of every segment it served')
  // (The viewer drops the connection within one piece, often between two of
  // its 200 ms samples, so the corrupt peer's side is what shows it.)
  assert.ok(bad.maxWires >= 1, 'the honest viewer connected to the corrupt peer')
  // The viewer saw the corruption, dropped it, and dropped the peer: before
  // it did, WebTorrent kept asking the same peer for the same pieces and took
  // in ~50 times the stream's bitrate of garbage.
  assert.ok(report.stats.rejectedPieces > 0,
    `the honest viewer rejected pieces that failed verification: ${JSON.stringify(report.stats)}`)
  assert.equal(report.stats.p2pBytes, 0, 'nothing from the corrupt peer counts as received: only verified pieces do')
  assert.ok(bad.pieceBytesUploaded < CORRUPT_BYTES_BOUND,
    `the corrupt peer was cut off: it sent ${bad.pieceBytesUploaded} B of pieces in ${CORRUPT_WATCH_MS} ms`)
  // ... and got the bytes from the origin instead.
  assert.ok(report.stats.httpBytes - report.stats.directHttpBytes > 0, 'the page client completed segments over HTTP')
  await assertPlayedOriginBytes('honest viewer', report, played, CORRUPT_WATCH_MS)
})

// ---------------------------------------------------------------------------
// A viewer in the stream mesh that serves corrupt pieces
// ---------------------------------------------------------------------------

/** Mesh corrupt peer: how long the honest viewer watches. */
const MESH_CORRUPT_WATCH_MS = 30_000
/**
 * Mesh corrupt peer: the most corrupt piece bytes it may get to send. The
 * honest viewer drops the link at its first bad piece; what it had asked
 * for by then (at most 8 pieces of 64 KiB, mesh-segment.js) may still come.
 */
const MESH_CORRUPT_BYTES_BOUND = 2 * 1024 * 1024

/**
 * An init script that makes a viewer a corrupt peer of the mesh exchange: a
 * modified client that flips one byte of every piece chunk it sends on the
 * exchange channel (mesh-link.js: PIECE is type 5, its bytes start after a
 * 29-byte header), and counts what it sent.
 */
const CORRUPT_MESH_UPLOADS = `
  window.__corrupt = { chunks: 0, bytes: 0 }
  const send = RTCDataChannel.prototype.send
  RTCDataChannel.prototype.send = function (data) {
    if (this.label === 'lt-mesh/1' && data instanceof Uint8Array && data[0] === 5 && data.length > 29) {
      const corrupt = data.slice()
      corrupt[29] ^= 0xff
      window.__corrupt.chunks += 1
      window.__corrupt.bytes += corrupt.length - 29
      return send.call(this, corrupt)
    }
    return send.call(this, data)
  }
`

test('a mesh peer that serves corrupt pieces loses its link; the viewer plays the origin\'s bytes', { timeout: TEST_TIMEOUT_MS }, async t => {
  const { browsers, start } = resources(t)
  // The built-in tracker: the viewers meet in the stream swarm the worker registers.
  const worker = await start(() => startWorker({ vars: { UPSTREAM: origin.url } }))
  const corrupt = await openViewer({ workerUrl: worker.url, index: 'corrupt', registry: browsers, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS, initScript: CORRUPT_MESH_UPLOADS })
  const viewer = await openViewer({ workerUrl: worker.url, index: 'honest', registry: browsers, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS })
  await sleep(MESH_CORRUPT_WATCH_MS)
  const sent = await corrupt.page.evaluate(() => window.__corrupt)
  const report = await viewer.finish()
  const corruptReport = await corrupt.finish()
  await viewer.close()
  await corrupt.close()

  const played = playedSince(viewer, viewer.firstFrameAt)
  console.log(describe('honest viewer (its mesh peer corrupts every piece)', report, played))
  console.log(`corrupt viewer sent ${sent.chunks} corrupt chunks, ${sent.bytes} B; its stats ${JSON.stringify(corruptReport.stats)}`)
  const links = viewer.samples.map(s => s.stats?.meshLinks).filter(n => typeof n === 'number')

  // The corrupt viewer really served pieces over a mesh link (the exchange
  // channel exists only on one): otherwise this proves nothing. The honest
  // viewer drops the link at the first bad piece, often within a second of
  // making it, between two of its samples, so its own samples need not show it.
  assert.ok(sent.chunks > 0, 'the corrupt viewer sent piece chunks on the mesh exchange')
  assert.ok(report.stats.rejectedPieces > 0, `the honest viewer rejected pieces that failed verification: ${JSON.stringify(report.stats)}`)
  assert.equal(links.at(-1), 0, `the honest viewer dropped the link and did not take it again: ${links.join(' ')}`)
  assert.ok(sent.bytes < MESH_CORRUPT_BYTES_BOUND, `the corrupt viewer was cut off: it sent ${sent.bytes} B of corrupt pieces in ${MESH_CORRUPT_WATCH_MS} ms`)
  assert.ok(report.stats.httpBytes - report.stats.directHttpBytes > 0, 'the page client completed segments over HTTP')
  await assertPlayedOriginBytes('honest viewer', report, played, MESH_CORRUPT_WATCH_MS)
})

// ---------------------------------------------------------------------------
// A tracker that goes down mid-session
// ---------------------------------------------------------------------------

/** Resolves with the error code of a TCP connection attempt to 127.0.0.1:port, or 'connected'. */
function tryConnect (port) {
  return new Promise(resolve => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    const timer = setTimeout(() => { socket.destroy(); resolve('timeout') }, 5_000)
    socket.once('connect', () => { clearTimeout(timer); socket.destroy(); resolve('connected') })
    socket.once('error', error => { clearTimeout(timer); resolve(error.code) })
  })
}

test('a tracker that goes down mid-session: both viewers play on over HTTP, the origin\'s bytes', { timeout: TEST_TIMEOUT_MS }, async t => {
  const { browsers, start, workerFor } = resources(t)
  const tracker = await start(() => startTracker())
  const worker = await workerFor(tracker.url)
  const opening = [0, 1].map(i => sleep(i * JOIN_GAP_MS).then(() => openViewer({
    workerUrl: worker.url, index: `viewer ${i + 1}`, registry: browsers, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS
  })))
  const opened = await Promise.allSettled(opening)
  assert.deepEqual(opened.filter(o => o.status === 'rejected').map(o => o.reason.message), [], 'both viewers show a first frame')
  const pair = opened.map(o => o.value)

  // They share first: a tracker going down only matters to viewers using it.
  const shareBy = Date.now() + SHARE_TIMEOUT_MS
  let now = await Promise.all(pair.map(readNow))
  const shared = states => states.some(n => n.stats?.p2pBytes >= SHARED_BYTES)
  while (!shared(now) && Date.now() < shareBy) {
    await sleep(1_000)
    now = await Promise.all(pair.map(readNow))
  }
  const trackerStats = tracker.stats()
  assert.ok(shared(now),
    `the viewers shared bytes while the tracker ran: ${JSON.stringify(now.map(n => n.stats))}; tracker ${JSON.stringify(trackerStats)}`)

  await tracker.stop()
  const stoppedAt = Date.now()
  const atStop = await Promise.all(pair.map(readNow))
  assert.equal(await tryConnect(tracker.port), 'ECONNREFUSED', 'a new connection to the tracker\'s port is refused')

  await sleep(AFTER_STOP_MS)
  const reports = []
  for (const viewer of pair) reports.push(await viewer.finish())
  await Promise.all(pair.map(viewer => viewer.close()))

  console.log(`tracker before it stopped: ${JSON.stringify(trackerStats)}`)
  for (const [i, viewer] of pair.entries()) {
    const label = `viewer ${i + 1}`
    const report = reports[i]
    const afterStop = playedSince(viewer, stoppedAt)
    const before = atStop[i].stats
    const end = report.stats
    console.log(describe(`${label} (after the tracker stopped)`, report, afterStop))
    console.log(`${label}: at the stop ${JSON.stringify(before)}; since: +${end.httpBytes - before.httpBytes} B over HTTP, ` +
      `+${end.p2pBytes - before.p2pBytes} B from peers, +${end.segments - before.segments} segments delivered by the page client`)

    await assertPlayedOriginBytes(label, report, afterStop, AFTER_STOP_MS)
    // The page client keeps delivering, completing over HTTP what no peer can give.
    assert.ok(end.httpBytes - end.directHttpBytes > before.httpBytes - before.directHttpBytes, `${label}: the page client's HTTP bytes grew after the tracker stopped`)
    assert.ok(end.segments - before.segments >= MIN_SEGMENTS,
      `${label}: the page client delivered ${end.segments - before.segments} segments after the tracker stopped`)
  }
})

// ---------------------------------------------------------------------------
// A tracker that answers garbage
// ---------------------------------------------------------------------------

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** One unmasked WebSocket text frame (server to client), payload < 126 bytes. */
function textFrame (text) {
  const payload = Buffer.from(text)
  if (payload.length >= 126) throw new Error('frame too long for this helper')
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload])
}

/**
 * A "tracker" that completes the WebSocket handshake and answers whatever it
 * receives with invalid JSON and with JSON of the wrong shape. node:http only.
 */
async function startGarbageTracker () {
  const counts = { upgrades: 0, received: 0, garbageSent: 0 }
  const sockets = new Set()
  const server = http.createServer((req, res) => res.writeHead(426).end())
  server.on('upgrade', (req, socket) => {
    counts.upgrades += 1
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}${WEBSOCKET_GUID}`).digest('base64')
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`)
    socket.on('data', () => {
      counts.received += 1
      socket.write(textFrame('{"action":"announce","interval":'))
      socket.write(textFrame('{"action":"announce","info_hash":42,"offer":"x","peer_id":[]}'))
      counts.garbageSent += 2
    })
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address()
  return {
    url: `ws://127.0.0.1:${port}`,
    counts: () => ({ ...counts, open: sockets.size }),
    stop: () => new Promise(resolve => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    })
  }
}

test('a tracker that answers garbage: viewers play over HTTP, the origin\'s bytes', { timeout: TEST_TIMEOUT_MS }, async t => {
  const { browsers, start, workerFor } = resources(t)
  const garbage = await start(startGarbageTracker)
  const worker = await workerFor(garbage.url)
  const opened = await Promise.allSettled([0, 1].map(i => sleep(i * 2_000).then(() => openViewer({
    workerUrl: worker.url, index: `viewer ${i + 1}`, registry: browsers, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS
  }))))
  assert.deepEqual(opened.filter(o => o.status === 'rejected').map(o => o.reason.message), [], 'both viewers show a first frame')
  const pair = opened.map(o => o.value)
  const until = pair[1].firstFrameAt + GARBAGE_WATCH_MS
  while (Date.now() < until) await sleep(Math.min(2_000, until - Date.now()))
  const counts = garbage.counts()
  const reports = []
  for (const viewer of pair) reports.push(await viewer.finish())
  await Promise.all(pair.map(viewer => viewer.close()))

  console.log(`garbage tracker: ${JSON.stringify(counts)}`)
  // The viewers really talked to it: otherwise this is the dead-tracker test again.
  assert.ok(counts.upgrades >= 2, `both viewers opened a WebSocket to the garbage tracker: ${JSON.stringify(counts)}`)
  assert.ok(counts.garbageSent > 0, 'the garbage tracker answered')
  for (const [i, viewer] of pair.entries()) {
    const label = `viewer ${i + 1}`
    const report = reports[i]
    const played = playedSince(viewer, viewer.firstFrameAt)
    console.log(describe(`${label} (garbage tracker)`, report, played))
    await assertPlayedOriginBytes(label, report, played, GARBAGE_WATCH_MS)
    assert.ok(report.stats.httpBytes - report.stats.directHttpBytes > 0, `${label}: the page client completed segments over HTTP`)
    assert.equal(report.stats.p2pBytes, 0, `${label}: no peer was found through a tracker that answers garbage`)
  }
})

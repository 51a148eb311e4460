// End to end: real viewers of the demo player share a real live feed.
//
// ffmpeg live origin (segments kept on disk) <- worker under `wrangler dev`
// <- three P2P viewers, each its own headless Chromium, joining 4 s apart and
// watching until the last of them has watched 60 s, plus one plain hls.js
// viewer (p2p=0) in the same window. Every segment body each viewer's page
// received (including those its service worker answered) must equal the
// origin's file; the later viewers must get bytes from peers and the earlier
// ones must upload. Once all three are in, they keep their WebRTC
// connections for every new segment (the stream mesh,
// public/_lt/client/stream-mesh.js): few new connections per segment.
//
// The same test runs twice, each time with a fresh worker: with the npm
// bittorrent-tracker server (scripts/tracker.mjs; TRACKERS=its URL), and with
// the worker's built-in tracker (TRACKERS unset: the magnets name
// /_lt/tracker/<stream> on the worker, docs/tracker.md). The origin is shared.
//
// A third test bounds the mesh: four P2P viewers with `meshLinks` 1, built-in
// tracker. A viewer makes offers while it has fewer links than `meshLinks`
// and takes links up to twice that (public/_lt/client/offer-budget.js), so
// each holds at most 2 links at every sample (without the bound each links to
// the other three); each is in the mesh at the end, they share, and every
// segment body is the origin's file.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { fetchText, startTracker, startWorker, sleep } from './support/harness.mjs'
import { magnetsOf } from './support/torrents.mjs'
import { builtinTrackerAnnounces } from './support/tracker-client.mjs'
import { countPeerConnections, openViewer, originFiles, playedOver, recordedSegmentEvents, recordSegmentEvents, SEGMENT_PATH } from './support/viewers.mjs'

const P2P_VIEWERS = 3
const JOIN_GAP_MS = 4_000
/** The last P2P viewer watches this long; the earlier ones longer. */
const WATCH_MS = 60_000
const PLAIN_WATCH_MS = 20_000
/** The plain viewer joins after the P2P viewers, inside the same window. */
const PLAIN_JOIN_MS = P2P_VIEWERS * JOIN_GAP_MS
const MIN_P2P_PLAYED_S = 40
const MIN_PLAIN_PLAYED_S = 10
const MIN_SEGMENTS = 10
const FIRST_FRAME_TIMEOUT_MS = 60_000
/** After the last P2P viewer's first frame, when counting new connections starts. */
const SETTLE_MS = 10_000
/**
 * New WebRTC connections a P2P viewer may make per segment its player gets
 * once everybody is in. A torrent per segment that found its peers through
 * the tracker made 2.5 per segment with three viewers (bench/p2p-share.mjs,
 * N = 2 and 4); reusing the stream's connections makes none unless one breaks.
 */
const MAX_NEW_CONNECTIONS_PER_SEGMENT = 0.3
/**
 * Tracker announces (answers included) per segment a P2P viewer's player
 * gets, once everybody is in. Each segment torrent announcing made three or
 * more (started, completed, stopped); in the mesh a segment makes none, and
 * what is left is the stream swarm's re-announce and the last messages
 * (stopped) of the torrents joined before the mesh had a link.
 */
const MAX_ANNOUNCES_PER_SEGMENT = 0.5

/** The mesh-bound test: viewers, their meshLinks, and the links each may hold (offer-budget.js MESH_LINK_HEADROOM times meshLinks). */
const BOUNDED_VIEWERS = 4
const BOUNDED_MESH_LINKS = 1
const BOUNDED_MAX_LINKS = 2 * BOUNDED_MESH_LINKS
/** The last of them watches this long; playback threshold of tests/fail-open.test.mjs, 10 s per 16 s watched. */
const BOUNDED_WATCH_MS = 45_000
const BOUNDED_MIN_PLAYED_S = BOUNDED_WATCH_MS / 1000 * 10 / 16
const BOUNDED_MIN_SEGMENTS = 8

const BUILTIN_TRACKER_URL = /^ws:\/\/127\.0\.0\.1:\d+\/_lt\/tracker\/[0-9a-f]{16}$/

let origin
/** Every viewer opened, so that after() closes whatever a failed test left. */
const allViewers = []

before(async () => {
  origin = await startOrigin({ live: true, keepSegments: true })
})

after(async () => {
  await Promise.all(allViewers.map(viewer => viewer.close()))
  await origin?.stop()
})

const kib = n => `${n} B (${(n / 1024).toFixed(0)} KiB)`

/** Responses whose body is not the origin's file. */
let liveFiles
const mismatchedSegments = report => (liveFiles ??= originFiles(path.join(origin.dir, 'live'))).mismatched(report)

function describeViewer (report) {
  const s = report.stats ?? { p2pBytes: 0, httpBytes: 0, uploadedBytes: 0, peers: 0 }
  const total = s.p2pBytes + s.httpBytes
  const share = total > 0 ? `${((100 * s.p2pBytes) / total).toFixed(1)}%` : 'n/a'
  const latency = report.latencyMedian === null ? 'n/a' : report.latencyMedian.toFixed(1)
  const kind = report.p2p ? '' : ' (plain hls.js, no live-torrent)'
  return `viewer ${report.index}${kind}: p2p share ${share} (${s.p2pBytes}/(${s.p2pBytes}+${s.httpBytes})), ` +
    `http ${s.httpBytes} B, p2p ${s.p2pBytes} B, uploaded ${s.uploadedBytes} B, peers ${s.peers}, ` +
    `stalls ${report.stalls}, segments ${report.segments}, latency ${latency} s`
}

/**
 * The trackers the test runs with: `start()` gives the worker's variables and
 * `stats()`, what the tracker sees (read while the viewers are still there).
 */
const TRACKERS = [
  {
    name: 'npm bittorrent-tracker',
    async start () {
      const tracker = await startTracker()
      return {
        vars: { TRACKERS: tracker.url },
        expectedTracker: url => url === tracker.url,
        stats: async () => tracker.stats(),
        announces: stats => stats.announces.total,
        stop: () => tracker.stop()
      }
    }
  },
  {
    name: 'built-in tracker',
    async start () {
      // TRACKERS unset; BENCH_ENDPOINTS for the tracker's counters.
      return {
        vars: { BENCH_ENDPOINTS: 'true' },
        expectedTracker: url => BUILTIN_TRACKER_URL.test(url),
        stats: async trackerUrl => JSON.parse((await fetchText(`${trackerUrl.replace(/^ws/, 'http')}/stats`)).text),
        announces: builtinTrackerAnnounces,
        stop: async () => {}
      }
    }
  }
]

for (const kind of TRACKERS) {
  test(`three viewers share the live feed over WebTorrent, byte-exact, and keep playing (${kind.name})`, { timeout: 6 * 60_000 }, async () => {
    const tracker = await kind.start()
    let worker
    const viewers = []
    try {
      worker = await startWorker({ vars: { UPSTREAM: origin.url, ...tracker.vars } })
      await shareLiveFeed({ worker, tracker, viewers })
    } finally {
      await Promise.all(viewers.map(viewer => viewer.close()))
      await worker?.stop()
      await tracker.stop()
    }
  })
}

async function shareLiveFeed ({ worker, tracker, viewers }) {
  const register = {
    push: viewer => {
      viewers.push(viewer)
      allViewers.push(viewer)
    }
  }
  const p2pOpening = Array.from({ length: P2P_VIEWERS }, (_, i) =>
    sleep(i * JOIN_GAP_MS).then(() => openViewer({
      workerUrl: worker.url, index: i + 1, registry: register, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS, initScript: countPeerConnections
    })))
  const plainOpening = sleep(PLAIN_JOIN_MS).then(() => openViewer({
    workerUrl: worker.url, index: P2P_VIEWERS + 1, p2p: false, registry: register, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS
  }))
  // Let every opening settle before judging, so none is left running unobserved.
  const opened = await Promise.allSettled([...p2pOpening, plainOpening])
  const failedToOpen = opened.filter(o => o.status === 'rejected').map(o => o.reason.message)
  assert.deepEqual(failedToOpen, [], 'every viewer shows a first frame')
  const p2pViewers = opened.slice(0, P2P_VIEWERS).map(o => o.value)
  const plainViewer = opened[P2P_VIEWERS].value
  await Promise.all(p2pViewers.map(recordSegmentEvents))

  // Watch until the last P2P viewer has watched WATCH_MS (the plain one: at least PLAIN_WATCH_MS).
  const lastP2p = p2pViewers[P2P_VIEWERS - 1]
  const until = Math.max(lastP2p.firstFrameAt + WATCH_MS, plainViewer.firstFrameAt + PLAIN_WATCH_MS)
  // The magnets name the tracker under test.
  const trackerUrls = [...new Set(magnetsOf((await fetchText(`${worker.url}/live/index.m3u8`)).text).flatMap(m => m.trackers))]
  assert.equal(trackerUrls.length, 1, `the magnets name one tracker: ${trackerUrls.join(' ')}`)
  assert.ok(tracker.expectedTracker(trackerUrls[0]), `the magnets name the tracker under test: tr=${trackerUrls[0]}`)

  // Connections made, announces heard and segments received from when everybody is in.
  await sleep(Math.max(0, lastP2p.firstFrameAt + SETTLE_MS - Date.now()))
  const settledAnnounces = tracker.announces(await tracker.stats(trackerUrls[0]))
  const settled = await Promise.all(p2pViewers.map(async viewer => ({
    connections: (await viewer.page.evaluate(() => window.__peerConnectionCounts?.created ?? null)),
    segments: viewer.segmentResponses.length
  })))
  while (Date.now() < until) await sleep(Math.min(5_000, until - Date.now()))
  const newConnections = await Promise.all(p2pViewers.map(async (viewer, i) => ({
    connections: (await viewer.page.evaluate(() => window.__peerConnectionCounts?.created ?? null)) - settled[i].connections,
    segments: viewer.segmentResponses.length - settled[i].segments
  })))

  // What the tracker sees while everybody is still there.
  const trackerStats = await tracker.stats(trackerUrls[0])
  const newAnnounces = tracker.announces(trackerStats) - settledAnnounces
  const segmentEvents = await Promise.all(p2pViewers.map(recordedSegmentEvents))
  const reports = []
  for (const viewer of [...p2pViewers, plainViewer]) reports.push(await viewer.finish())
  await Promise.all(viewers.map(viewer => viewer.close()))
  const [plain] = reports.splice(P2P_VIEWERS, 1)
  const p2p = reports

  for (const report of [...p2p, plain]) console.log(describeViewer(report))
  console.log(`tracker (before the viewers left): ${JSON.stringify(trackerStats)}`)
  const played = new Map()
  for (const [viewer, report] of [...p2pViewers.map((v, i) => [v, p2p[i]]), [plainViewer, plain]]) {
    const windowMs = viewer.p2p ? WATCH_MS : PLAIN_WATCH_MS
    const growth = playedOver(viewer, windowMs)
    played.set(report.index, growth)
    console.log(`viewer ${report.index}: played ${growth.played.toFixed(1)} s in ${(growth.overMs / 1000).toFixed(1)} s ` +
      `after its first frame (${report.firstFrameMs} ms after navigation); stalls ${report.stalls} (${Math.round(report.stallMs ?? 0)} ms); ` +
      `watched ${(report.watchedMs / 1000).toFixed(1)} s; segment responses to the player ${report.segmentResponses.length} ` +
      `(${report.segmentResponses.filter(r => r.fromServiceWorker).length} from the service worker); ` +
      `segment requests ${report.segmentRequests}, to the network ${report.networkSegmentRequests}` +
      ` (${report.networkSegmentRequestsFromServiceWorker} by the service worker); page errors ${report.pageErrors.length}`)
    for (const error of report.pageErrors) console.log(`  page error: ${error}`)
  }

  // Playback advances for every viewer.
  for (const report of p2p) {
    const { played: seconds, overMs } = played.get(report.index)
    assert.ok(overMs >= WATCH_MS - 2_000, `viewer ${report.index} was sampled over ${overMs} ms`)
    assert.ok(seconds >= MIN_P2P_PLAYED_S,
      `viewer ${report.index} (P2P) played ${seconds.toFixed(1)} s in its first ${WATCH_MS / 1000} s (needs ${MIN_P2P_PLAYED_S}); stalls ${report.stalls}`)
  }
  {
    const { played: seconds, overMs } = played.get(plain.index)
    assert.ok(overMs >= PLAIN_WATCH_MS - 2_000, `plain viewer was sampled over ${overMs} ms`)
    assert.ok(seconds >= MIN_PLAIN_PLAYED_S,
      `plain viewer played ${seconds.toFixed(1)} s in its first ${PLAIN_WATCH_MS / 1000} s (needs ${MIN_PLAIN_PLAYED_S})`)
  }

  // Every segment body each viewer received is the origin's file.
  for (const report of [...p2p, plain]) {
    assert.deepEqual(report.bodyErrors, [], `viewer ${report.index}: every segment response body is readable`)
    assert.ok(report.segments >= MIN_SEGMENTS,
      `viewer ${report.index} received ${report.segments} segments (needs ${MIN_SEGMENTS}): ${report.segmentNames.join(' ')}`)
    assert.deepEqual(await mismatchedSegments(report), [],
      `viewer ${report.index}: every segment received equals the origin's file (${report.segmentResponses.length} responses checked)`)
  }
  // The P2P viewers' players really went through the service worker and the page client.
  for (const report of p2p) {
    assert.equal(report.pageP2p, true, `viewer ${report.index}: ltDemo.p2p`)
    assert.equal(report.statsError, null, `viewer ${report.index}: liveTorrent.stats() works`)
    assert.ok(report.stats, `viewer ${report.index} has liveTorrent.stats() (liveTorrent is ${report.liveTorrentType}, disabled: ${report.disabled})`)
    assert.ok(report.segmentResponses.some(r => r.fromServiceWorker),
      `viewer ${report.index}: some segments were answered by the service worker (controlled: ${report.swControlled})`)
  }

  // The page client's 'segment' event (README, window.liveTorrent) says truly what
  // each viewer's player was handed and how it came.
  await assertSegmentEvents(segmentEvents)

  // Sharing: the later viewers got bytes from peers, the earlier ones uploaded.
  for (const report of p2p.slice(1)) {
    assert.ok(report.stats.p2pBytes > 0,
      `viewer ${report.index} got bytes from peers: ${describeViewer(report)}; max peers ${report.maxPeers}`)
  }
  const uploadedByEarlier = p2p[0].stats.uploadedBytes + p2p[1].stats.uploadedBytes
  assert.ok(uploadedByEarlier > 0, `viewers 1 and 2 uploaded ${kib(uploadedByEarlier)}`)

  // Once everybody is in, new segments travel over the connections they have.
  newConnections.forEach(({ connections, segments }, i) => {
    console.log(`viewer ${i + 1}: ${connections} new WebRTC connections for ${segments} segments after everybody was in`)
    assert.ok(segments >= 10, `viewer ${i + 1} received ${segments} segments after everybody was in`)
    assert.ok(connections <= MAX_NEW_CONNECTIONS_PER_SEGMENT * segments,
      `viewer ${i + 1} made ${connections} new WebRTC connections for ${segments} segments (at most ${MAX_NEW_CONNECTIONS_PER_SEGMENT} per segment)`)
  })

  // ...and the tracker hears next to nothing about them: a segment torrent
  // joined while the viewer's stream mesh has a link makes no announce.
  const segmentsAfter = newConnections.reduce((sum, { segments }) => sum + segments, 0)
  console.log(`tracker: ${newAnnounces} announces (answers included) for ${segmentsAfter} segments received after everybody was in`)
  assert.ok(newAnnounces <= MAX_ANNOUNCES_PER_SEGMENT * segmentsAfter,
    `the tracker heard ${newAnnounces} announces for the ${segmentsAfter} segments the P2P viewers received after everybody was in (at most ${MAX_ANNOUNCES_PER_SEGMENT} per segment)`)

  // The plain viewer: hls.js alone.
  assert.equal(plain.liveTorrentType, 'undefined', 'window.liveTorrent is undefined with p2p=0')
  assert.equal(plain.pageP2p, false, 'ltDemo.p2p is false with p2p=0')
  assert.ok(plain.segmentResponses.every(r => !r.fromServiceWorker), 'no service worker answers the plain viewer')
}

/**
 * Each P2P viewer's 'segment' events, from its first frame to the end: one per
 * live segment handed to the player, whose size is the origin file's, whose
 * bytes from peers and over HTTP agree with its `source`, with a deadline and
 * a timeline; the later viewers' events count bytes from peers.
 */
async function assertSegmentEvents (segmentEvents) {
  const sizes = new Map()
  const sizeOf = name => {
    if (!sizes.has(name)) sizes.set(name, fs.stat(path.join(origin.dir, 'live', name)).then(s => s.size))
    return sizes.get(name)
  }
  for (const [i, events] of segmentEvents.entries()) {
    const label = `viewer ${i + 1}`
    assert.ok(events.length >= MIN_SEGMENTS, `${label} reported ${events.length} segment events (needs ${MIN_SEGMENTS})`)
    for (const e of events) {
      const where = `${label}, segment event ${JSON.stringify(e)}`
      assert.match(new URL(e.url).pathname, SEGMENT_PATH, where)
      assert.equal(e.bytes, await sizeOf(path.basename(new URL(e.url).pathname)), `${where}: bytes is the origin file's size`)
      assert.ok(['p2p', 'http', 'mixed'].includes(e.source), where)
      assert.ok(e.p2pBytes >= 0 && e.p2pBytes <= e.bytes && e.httpBytes >= 0, where)
      if (e.source === 'p2p') assert.ok(e.httpBytes === 0 && e.p2pBytes === e.bytes, `${where}: from peers alone`)
      if (e.source !== 'p2p') assert.ok(e.httpBytes > 0, `${where}: some bytes over HTTP`)
      assert.ok(Number.isInteger(e.deadlineMs) && e.deadlineMs >= 0, `${where}: deadlineMs`)
      assert.ok(Number.isInteger(e.requestedMs) && e.requestedMs >= 0, `${where}: requestedMs`)
      assert.equal(typeof e.fetchedFirst, 'boolean', `${where}: fetchedFirst`)
    }
    if (i > 0) assert.ok(events.some(e => e.p2pBytes > 0), `${label}'s segment events count bytes from peers`)
  }
  // Not asserted: whether anyone fetched as the designated viewer. A viewer
  // that plays 3.5 s or less behind the live edge fetches every segment
  // before the designated one would (docs/performance.md, "Who fetches each
  // segment over HTTP"), and the first viewer's distance depends on the live
  // window when it joins.
  const fetchedFirst = segmentEvents.flat().filter(e => e.fetchedFirst).length
  console.log(`segment events: ${segmentEvents.map(events => events.length).join(', ')}; fetched first over HTTP by the designated viewer: ${fetchedFirst}`)
}

test(`with meshLinks ${BOUNDED_MESH_LINKS}, a viewer holds at most ${BOUNDED_MAX_LINKS} mesh links, and ${BOUNDED_VIEWERS} viewers still share`, { timeout: 5 * 60_000 }, async () => {
  let worker
  const viewers = []
  try {
    worker = await startWorker({ vars: { UPSTREAM: origin.url } })
    const registry = {
      push: viewer => {
        viewers.push(viewer)
        allViewers.push(viewer)
      }
    }
    const opened = await Promise.allSettled(Array.from({ length: BOUNDED_VIEWERS }, (_, i) =>
      sleep(i * JOIN_GAP_MS).then(() => openViewer({
        workerUrl: worker.url,
        index: i + 1,
        registry,
        firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS,
        initScript: `window.liveTorrentConfig = { meshLinks: ${BOUNDED_MESH_LINKS} }`
      }))))
    assert.deepEqual(opened.filter(o => o.status === 'rejected').map(o => o.reason.message), [], 'every viewer shows a first frame')
    const bounded = opened.map(o => o.value)
    await sleep(Math.max(0, bounded.at(-1).firstFrameAt + BOUNDED_WATCH_MS - Date.now()))

    const reports = []
    for (const viewer of bounded) reports.push(await viewer.finish())
    for (const [i, viewer] of bounded.entries()) {
      const report = reports[i]
      const links = viewer.samples.map(s => s.stats?.meshLinks).filter(Number.isInteger)
      const { played, overMs } = playedOver(viewer, BOUNDED_WATCH_MS)
      const s = report.stats
      console.log(`${describeViewer(report)}; mesh links per sample ${links.join(' ')}; played ${played.toFixed(1)} s in ${(overMs / 1000).toFixed(1)} s`)
      assert.ok(links.length > 0, `viewer ${report.index}: stats() reports meshLinks`)
      assert.ok(Math.max(...links) <= BOUNDED_MAX_LINKS,
        `viewer ${report.index} held at most ${BOUNDED_MAX_LINKS} mesh links (meshLinks ${BOUNDED_MESH_LINKS}): ${links.join(' ')}`)
      assert.ok(links.at(-1) >= 1, `viewer ${report.index} is in the stream mesh at the end: ${links.join(' ')}`)
      assert.ok(s.p2pBytes + s.uploadedBytes > 0, `viewer ${report.index} shared: ${describeViewer(report)}`)
      assert.ok(played >= BOUNDED_MIN_PLAYED_S, `viewer ${report.index} played ${played.toFixed(1)} s in its first ${BOUNDED_WATCH_MS / 1000} s (needs ${BOUNDED_MIN_PLAYED_S})`)
      assert.ok(report.segments >= BOUNDED_MIN_SEGMENTS, `viewer ${report.index} received ${report.segments} segments (needs ${BOUNDED_MIN_SEGMENTS})`)
      assert.deepEqual(await mismatchedSegments(report), [], `viewer ${report.index}: every segment received equals the origin's file`)
    }
  } finally {
    await Promise.all(viewers.map(viewer => viewer.close()))
    await worker?.stop()
  }
})

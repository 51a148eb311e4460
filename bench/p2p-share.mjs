// How much of a live stream viewers get from each other, and what it costs
// them, for P2P players side by side on the same feed: live-torrent (the
// demo player) with two trackers, the npm bittorrent-tracker server and the
// worker's own built-in tracker (docs/tracker.md), and p2p-media-loader v2
// (p2p-media-loader-core/-hlsjs, the strongest open peer) with its defaults
// and with its documented live tuning.
// For each viewer count N and each player: a fresh worker in front of the one
// shared live origin (ffmpeg) and, except for the built-in tracker, a fresh
// npm tracker (the same program, scripts/tracker.mjs, for every player that
// uses it; the worker gets TRACKERS=its URL; for the built-in tracker TRACKERS
// is unset and the magnets name the worker's /_lt/tracker/<stream>), N viewers
// of that player joining 2 s apart and one plain hls.js viewer (the demo
// player with p2p=0) in the same phase as its reference, each its own
// headless Chromium. Everybody watches until the last P2P viewer has watched
// SECONDS_PER_RUN seconds. Phases run one after another, so the 2 cores are
// never shared by two players' swarms. Prints one Markdown table row per
// (N, player); the live-torrent rows are labelled by tracker.
//
// Environment: VIEWERS (default 2,4,6), SECONDS_PER_RUN (default 60),
// JOIN_GAP_MS (default 2000), PROBE_PAIRS (default 8; 0: none), PLAYERS (default live-torrent (npm tracker),
// live-torrent-builtin (built-in tracker), p2pml-defaults, p2pml-tuned; also
// live-torrent-2-offers), e.g. `PLAYERS=live-torrent,live-torrent-builtin
// VIEWERS=4 SECONDS_PER_RUN=40` for a quick comparison of the two trackers.
// Run it inside a loopback-only namespace (`make bench` does).
//
// p2p-media-loader loads the playlist and the segments from the worker too
// (cross-origin, the worker sends CORS headers); hls.js ignores the magnet
// lines. Its page is bench/p2p-media-loader/, served by a local server.
//
// Columns:
//   P2P share          sum of p2pBytes / sum of (p2pBytes + httpBytes) over the
//                      P2P viewers at the end. live-torrent counts only pieces
//                      that passed their SHA-1 check; p2p-media-loader counts
//                      every byte received from peers (it verifies nothing)
//   of ceiling         share / (1 - 1/N): with N viewers at least one of them
//                      must fetch each segment over HTTP
//   stalls             metrics.stalls (public/_lt/playback-metrics.js), summed
//                      over the P2P viewers / the plain viewer; a phase whose
//                      plain viewer stalled is labelled saturated: the machine
//                      could not play one video in real time then
//   first frame        metrics.firstFrameMs (ms after navigation), median
//                      over the P2P viewers / plain; in brackets, when the
//                      page created the player (metrics.playerStartMs). The
//                      phase's own viewers join into a growing load, so the
//                      later P2P viewers start on a busier machine than the
//                      plain one did: this column says how joining went, not
//                      what P2P costs a start
//   joining viewer     the start-up cost of P2P itself: once the phase has
//                      been watched, PROBE_PAIRS (default 8) pairs of one
//                      more viewer, P2P (the phase's player) and plain in
//                      turn, each opened alone into the running phase and
//                      closed at its first frame; median first frame of each
//                      kind, under the same load
//   joining, paired    the same joins as pairs: P2P minus plain first frame
//                      of each pair (its two viewers open back to back, so
//                      they meet the load of the same moment), median and
//                      range over the pairs. On a saturated machine the load
//                      drifts by seconds within a phase; the pairing takes
//                      that drift out of the difference, which the medians of
//                      each kind keep
//   worker requests    requests for /live/seg-* that left the browser (made by
//                      the page, the page client or the service worker and not
//                      answered by the service worker; web-seed and fallback
//                      Range requests count one each), per segment received
//                      per viewer, mean over the P2P viewers / plain
//   latency            hls.js latency (seconds behind the live edge), median of
//                      1 s samples over the P2P viewers / plain
//   CPU                CPU time of a viewer's whole browser (all its processes,
//                      from /proc) from its first frame to the end, as a share
//                      of one core, mean over the P2P viewers / plain
//
// After the tables: where a segment's metadata time goes in the page, the
// worker's time to first byte by kind of request as the pages saw it, and
// request times from this process once a second during each phase: the
// worker's /_lt/health (no I/O: the wait before the worker's code runs), the
// playlist through the worker and from the origin directly. Those samples add
// about one playlist request a second to the worker's load.
import fs from 'node:fs/promises'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { startTracker, startWorker, sleep } from '../tests/support/harness.mjs'
import { magnetsOf } from '../tests/support/torrents.mjs'
import { builtinTrackerAnnounces } from '../tests/support/tracker-client.mjs'
import { countPeerConnections, median, openViewer, recordedSegmentEvents, recordSegmentEvents } from '../tests/support/viewers.mjs'
import { opensslSha1MBps } from './machine-speed.mjs'
import { percentile } from './percentile.mjs'
import { startComparisonPages } from './p2p-media-loader/page-server.mjs'

function parseCounts (text) {
  const counts = text.split(',').map(s => s.trim()).filter(Boolean).map(Number)
  if (counts.length === 0 || counts.some(n => !Number.isInteger(n) || n < 1)) {
    throw new Error(`VIEWERS must be a comma-separated list of positive integers, got "${text}"`)
  }
  return counts
}

/**
 * The players compared. `settings` is null for the demo player; otherwise the
 * p2p-media-loader page is opened with them (`core` and `hls` of
 * bench/p2p-media-loader/player.js).
 */
const PLAYERS = {
  'live-torrent': {
    label: 'live-torrent, npm tracker',
    settings: null
  },
  // The same player with the worker's own tracker (TRACKERS unset).
  'live-torrent-builtin': {
    label: 'live-torrent, built-in tracker',
    settings: null,
    builtinTracker: true
  },
  // live-torrent with at most 2 WebRTC offers per segment announce, to see
  // what the per-segment connections cost.
  'live-torrent-2-offers': {
    label: 'live-torrent, npm tracker, maxOffersPerAnnounce 2',
    settings: null,
    pageConfig: { maxOffersPerAnnounce: 2 }
  },
  // p2p-media-loader as it ships. Its hls.js integration raises hls.js's
  // liveSyncDurationCount to the playlist length - 1 by itself (when the page
  // sets none), so it plays further behind the live edge than plain hls.js.
  'p2pml-defaults': {
    label: 'p2p-media-loader 2.3.1, defaults',
    settings: {}
  },
  // Its documented live tuning: a short highDemandTimeWindow (segments within
  // it of the playhead go straight to HTTP; 15 s by default covers the whole
  // live window), so the newer segments are left to peers first.
  'p2pml-tuned': {
    label: 'p2p-media-loader 2.3.1, tuned (highDemandTimeWindow 4 s)',
    settings: { core: { highDemandTimeWindow: 4 } }
  }
}

function parsePlayers (text) {
  const names = text.split(',').map(s => s.trim()).filter(Boolean)
  const unknown = names.filter(name => !PLAYERS[name])
  if (names.length === 0 || unknown.length) {
    throw new Error(`PLAYERS must be a comma-separated list of ${Object.keys(PLAYERS).join(', ')}; got "${text}"`)
  }
  return names
}

const VIEWER_COUNTS = parseCounts(process.env.VIEWERS || '2,4,6')
const DEFAULT_PLAYERS = ['live-torrent', 'live-torrent-builtin', 'p2pml-defaults', 'p2pml-tuned']
const PLAYER_NAMES = parsePlayers(process.env.PLAYERS || DEFAULT_PLAYERS.join(','))
const SECONDS_PER_RUN = Number(process.env.SECONDS_PER_RUN || 60)
const JOIN_GAP_MS = Number(process.env.JOIN_GAP_MS || 2000)
const PROBE_PAIRS = Number(process.env.PROBE_PAIRS ?? 8)
if (!Number.isInteger(PROBE_PAIRS) || PROBE_PAIRS < 0) throw new Error(`PROBE_PAIRS must be a whole number >= 0, got ${process.env.PROBE_PAIRS}`)
if (!(SECONDS_PER_RUN > 0)) throw new Error(`SECONDS_PER_RUN must be > 0, got ${process.env.SECONDS_PER_RUN}`)
const FIRST_FRAME_TIMEOUT_MS = 60_000
/** The plain viewer joins between the first and second P2P viewer. */
const PLAIN_JOIN_MS = JOIN_GAP_MS / 2

const log = line => process.stderr.write(`[p2p-share] ${line}\n`)
const fixed = (value, digits) => (typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : 'n/a')
const signed = value => (typeof value === 'number' && Number.isFinite(value) ? `${value > 0 ? '+' : ''}${value.toFixed(0)}` : 'n/a')
const pct = value => (typeof value === 'number' && Number.isFinite(value) ? `${(100 * value).toFixed(1)}%` : 'n/a')
const mean = values => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null)
/**
 * Segments a viewer's player received. The page sees a response for every
 * segment the demo player gets (the service worker answers it); a
 * p2p-media-loader segment from peers has no response, so its own count of
 * loaded segments is the larger one there.
 */
const segmentsReceived = report => Math.max(report.segments, report.stats?.segments ?? 0)
const cpuShare = report => (report.cpuSeconds === null || !(report.watchedMs > 0) ? null : report.cpuSeconds / (report.watchedMs / 1000))
const perSegment = report => (segmentsReceived(report) > 0 ? report.networkSegmentRequests / segmentsReceived(report) : null)

async function runPhase (origin, comparison, n, playerName) {
  const player = PLAYERS[playerName]
  // BENCH_ENDPOINTS in every phase (the built-in tracker's counters need it), so all run alike.
  const tracker = player.builtinTracker ? null : await startTracker()
  const vars = { UPSTREAM: origin.url, BENCH_ENDPOINTS: 'true' }
  if (tracker) vars.TRACKERS = tracker.url
  const worker = await startWorker({ vars })
  const pageUrl = player.settings && comparison.pageUrl({ playlistUrl: `${worker.url}/live/index.m3u8`, trackerUrl: tracker.url, ...player.settings })
  const opened = []
  try {
    const readTrackerStats = tracker ? async () => tracker.stats() : () => builtinTrackerStats(worker)
    const common = { workerUrl: worker.url, registry: opened, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS, initScript: countPeerConnections }
    const p2pInit = player.pageConfig
      ? { initScript: { content: `window.liveTorrentConfig = ${JSON.stringify(player.pageConfig)};\n(${countPeerConnections})()` } }
      : {}
    const p2pOpening = Array.from({ length: n }, (_, i) => sleep(i * JOIN_GAP_MS)
      .then(() => openViewer({ ...common, ...p2pInit, pageUrl, index: i + 1 }))
      .then(async viewer => { await recordSegmentEvents(viewer); await recordWorkerFetches(viewer); return viewer }))
    const plainOpening = sleep(PLAIN_JOIN_MS).then(() => openViewer({ ...common, index: n + 1, p2p: false }))
      .then(async viewer => { await recordWorkerFetches(viewer); return viewer })
    const settled = await Promise.allSettled([...p2pOpening, plainOpening])
    const failures = settled.filter(s => s.status === 'rejected').map(s => s.reason.message)
    if (failures.length) throw new Error(failures.join('\n'))
    const p2pViewers = settled.slice(0, n).map(s => s.value)
    const plainViewer = settled[n].value

    const until = Math.max(...p2pViewers.map(v => v.firstFrameAt)) + SECONDS_PER_RUN * 1000
    const requestTimes = await sampleRequestTimes({ worker: worker.url, origin: origin.url }, until)

    const trackerStats = await readTrackerStats()
    const p2p = []
    for (const viewer of p2pViewers) {
      const segmentEvents = await recordedSegmentEvents(viewer)
      const workerFetches = await recorded(viewer, '__workerFetches')
      p2p.push({ ...await viewer.finish(), segmentEvents, workerFetches })
    }
    const plainFetches = await recorded(plainViewer, '__workerFetches')
    const plain = { ...await plainViewer.finish(), workerFetches: plainFetches }
    const probes = await probeJoins({ ...common, ...p2pInit, pageUrl, index: n + 2 })
    return { n, player: playerName, p2p, plain, trackerStats, probes, requestTimes }
  } finally {
    await Promise.all(opened.map(viewer => viewer.close()))
    await worker.stop()
    await tracker?.stop()
  }
}

/**
 * Reads the built-in tracker's counters (GET /_lt/tracker/<stream>/stats,
 * BENCH_ENDPOINTS=true) in the shape of scripts/tracker.mjs's stats():
 * `announces.total` counts what the npm tracker's does
 * (builtinTrackerAnnounces). The stream's tracker URL comes from the
 * playlist's magnets, which must name the built-in tracker; it is read when
 * the stats are, so no phase gets an extra playlist request before its viewers.
 */
async function builtinTrackerStats (worker) {
  const response = await fetch(`${worker.url}/live/index.m3u8`, { redirect: 'manual', signal: AbortSignal.timeout(10_000) })
  const trackers = [...new Set(magnetsOf(await response.text()).flatMap(m => m.trackers))]
  if (trackers.length !== 1 || !/^ws:\/\/127\.0\.0\.1:\d+\/_lt\/tracker\/[0-9a-f]{16}$/.test(trackers[0])) {
    throw new Error(`the magnets do not name the worker's built-in tracker: tr=${trackers.join(' ') || '(none)'}`)
  }
  const stats = await fetch(`${trackers[0].replace(/^ws/, 'http')}/stats`, { redirect: 'manual', signal: AbortSignal.timeout(10_000) }).then(r => r.json())
  return { ...stats, announces: { total: builtinTrackerAnnounces(stats) } }
}

/**
 * Time to first frame of one more viewer joining the running phase, P2P (the
 * phase's player: `pageUrl` or the demo) and plain in turn, `PROBE_PAIRS` of
 * each, one at a time, each closed at its first frame. Alternating the order
 * (P2P first, then plain first) spreads any drift of the load over both kinds.
 * `options.registry` is the phase's, so a probe that fails is closed with it.
 * Returns { p2p: [{ firstFrameMs, playerStartMs }], plain: [...],
 * differences: [P2P minus plain first frame ms, one per pair] }.
 */
async function probeJoins (options) {
  const probes = { p2p: [], plain: [], differences: [] }
  for (let pair = 0; pair < PROBE_PAIRS; pair++) {
    const order = pair % 2 === 0 ? [true, false] : [false, true]
    const firstFrames = {}
    for (const p2p of order) {
      const viewer = await openViewer({ ...options, p2p, ...(p2p ? {} : { pageUrl: null }) })
      try {
        const metrics = await viewer.page.evaluate(() => window.ltDemo.metrics)
        const beforeFirstFrame = await viewer.page.evaluate(requestsBeforeFirstFrame).catch(() => null)
        probes[p2p ? 'p2p' : 'plain'].push({ firstFrameMs: metrics.firstFrameMs, playerStartMs: metrics.playerStartMs, beforeFirstFrame })
        firstFrames[p2p ? 'p2p' : 'plain'] = metrics.firstFrameMs
      } finally {
        await viewer.close()
      }
    }
    probes.differences.push(firstFrames.p2p - firstFrames.plain)
  }
  return probes
}

/**
 * Until `until`, once a second, times (to the response headers) three
 * requests from this process: the worker's /_lt/health, which does no I/O,
 * so its time is the wait before the worker's code runs; the live playlist
 * through the worker, as a viewer gets it; and the same playlist from the
 * origin directly. Returns { health, playlist, origin } lists of ms.
 */
async function sampleRequestTimes ({ worker, origin }, until) {
  const times = { health: [], playlist: [], origin: [] }
  const timed = async (list, url) => {
    const started = performance.now()
    try {
      const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10_000) })
      list.push(performance.now() - started)
      await response.arrayBuffer()
    } catch {
      // Not answered in 10 s: the figures say so by their count.
    }
  }
  while (Date.now() < until) {
    const next = sleep(Math.min(1000, Math.max(0, until - Date.now())))
    await Promise.all([
      timed(times.health, `${worker}/_lt/health`),
      timed(times.playlist, `${worker}/live/index.m3u8`),
      timed(times.origin, `${origin}/live/index.m3u8`)
    ])
    await next
  }
  return times
}

/**
 * Runs in a joining page at its first frame: the requests it started before
 * that frame, by kind (the player's playlists and segments, the page's
 * scripts), each kind's count and summed ms queued in the browser (fetch
 * start to request sent: a free connection; HTTP/1.1 allows 6 per host) and
 * at the worker (request sent to first byte).
 */
function requestsBeforeFirstFrame () {
  const firstFrame = window.ltDemo.metrics.firstFrameMs
  const kinds = { media: { count: 0, queuedMs: 0, workerMs: 0 }, script: { count: 0, queuedMs: 0, workerMs: 0 } }
  for (const e of performance.getEntriesByType('resource')) {
    if (e.startTime >= firstFrame || !(e.requestStart > 0)) continue
    const path = new URL(e.name).pathname
    const kind = /\.m3u8?$/.test(path) || path.startsWith('/live/seg-') ? kinds.media : path.endsWith('.js') ? kinds.script : null
    if (!kind) continue
    kind.count++
    kind.queuedMs += e.requestStart - e.startTime
    kind.workerMs += e.responseStart - e.requestStart
  }
  return kinds
}

/**
 * Keeps the resource timing of the page's requests to the worker for
 * .torrent files (the magnets' xs=; the info-hash names the segment),
 * playlists and segments, from now on. Only requests that reached the
 * network count (requestStart set); in a P2P page the service worker answers
 * playlists and segments itself, so only its .torrent fetches say what the
 * worker took. An observer, not performance.getEntries(): the page's resource
 * timing buffer (250 entries) is full after a few minutes of a live stream.
 */
async function recordWorkerFetches (viewer) {
  await viewer.page.evaluate(() => {
    window.__workerFetches = []
    new PerformanceObserver(list => {
      for (const e of list.getEntries()) {
        const path = new URL(e.name).pathname
        const torrent = /^\/_lt\/torrent\/([0-9a-f]{40})\.torrent$/.exec(path)
        const kind = torrent ? 'torrent' : /\.m3u8?$/.test(path) ? 'playlist' : path.startsWith('/live/seg-') ? 'segment' : null
        if (!kind || !(e.requestStart > 0)) continue
        const { startTime, requestStart, responseStart, responseEnd } = e
        window.__workerFetches.push({ kind, infoHash: torrent?.[1] ?? null, startTime, requestStart, responseStart, responseEnd })
      }
    }).observe({ type: 'resource', buffered: true })
  })
}

/** `page.evaluate` of a recorded array, or [] if the page is gone. */
const recorded = (viewer, name) => viewer.page.evaluate(n => window[n] ?? [], name).catch(() => [])

/**
 * Where a segment's metadata time goes, from its listing to its torrent's
 * 'ready' (ms, one entry per segment event that has a .torrent fetch):
 * before the fetch left the page (WebTorrent's own steps on a busy main
 * thread), in the service worker (its fetch event; 0 when it answered none),
 * at the worker (request sent to first byte back), and after the response
 * (parse, info-hash check, store, 'ready').
 */
function metadataSteps (events, fetches) {
  const fetchOf = new Map(fetches.filter(f => f.kind === 'torrent').map(f => [f.infoHash, f]))
  const steps = []
  for (const e of events) {
    const f = fetchOf.get(e.infoHash)
    if (!f || typeof e.listedAt !== 'number' || typeof e.metadataMs !== 'number') continue
    steps.push({
      beforeFetch: f.startTime - e.listedAt,
      serviceWorker: f.requestStart - f.startTime,
      worker: f.responseStart - f.requestStart,
      afterResponse: e.listedAt + e.metadataMs - f.responseEnd
    })
  }
  return steps
}

/** Median and 90th percentile of `values`, with their count. */
function spreadOf (values) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  return { count: sorted.length, median: median(sorted), p90: percentile(sorted, 0.9) }
}

/** Medians over a phase's joining viewers of each kind of requestsBeforeFirstFrame's figures. */
function joiningRequests (probes) {
  const of = (list, kind, field) => median(list.filter(p => p.beforeFirstFrame).map(p => p.beforeFirstFrame[kind][field]))
  const side = list => ({
    scripts: of(list, 'script', 'count'),
    scriptWorkerMs: of(list, 'script', 'workerMs'),
    media: of(list, 'media', 'count'),
    mediaQueuedMs: of(list, 'media', 'queuedMs'),
    mediaWorkerMs: of(list, 'media', 'workerMs')
  })
  return { p2p: side(probes.p2p), plain: side(probes.plain) }
}

/**
 * Where a phase's P2P time and signalling go: WebRTC connections and tracker
 * announces per segment per viewer (any player), and for live-torrent the
 * median milliseconds from a segment's listing in a playlist to its metadata,
 * its first peer (a WebTorrent peer connected, or a mesh peer said it holds
 * a piece), its completion and the player's request.
 */
function costsOf ({ n, player, p2p, plain, trackerStats, requestTimes, probes }) {
  const segments = p2p.reduce((sum, r) => sum + segmentsReceived(r), 0)
  const perViewerSegment = total => (segments > 0 ? total / segments : null)
  const pcs = p2p.map(r => r.peerConnections).filter(Boolean)
  // Segment events with a timeline (a client older than the timeline has none).
  const events = p2p.flatMap(r => r.segmentEvents).filter(e => typeof e.requestedMs === 'number')
  const medianOf = field => median(events.map(e => e[field]))
  const peerAfterRequest = events.filter(e => e.firstPeerMs === null || e.firstPeerMs > e.requestedMs).length
  const steps = p2p.flatMap(r => metadataSteps(r.segmentEvents, r.workerFetches ?? []))
  const stepMedian = field => median(steps.map(s => s[field]))
  // Request sent to first byte back, the worker's part of a fetch.
  const workerMs = (fetches, kind) => fetches.filter(f => f.kind === kind).map(f => f.responseStart - f.requestStart)
  return {
    n,
    player,
    created: perViewerSegment(pcs.reduce((sum, c) => sum + c.created, 0)),
    connected: perViewerSegment(pcs.reduce((sum, c) => sum + c.connected, 0)),
    maxOpen: pcs.length ? Math.max(...pcs.map(c => c.maxOpen)) : null,
    announces: perViewerSegment(trackerStats.announces?.total ?? 0),
    metadataMs: medianOf('metadataMs'),
    firstPeerMs: medianOf('firstPeerMs'),
    completeMs: medianOf('completeMs'),
    requestedMs: medianOf('requestedMs'),
    peerAfterRequest: events.length ? peerAfterRequest / events.length : null,
    metadataSegments: steps.length,
    beforeFetchMs: stepMedian('beforeFetch'),
    serviceWorkerMs: stepMedian('serviceWorker'),
    workerMs: stepMedian('worker'),
    afterResponseMs: stepMedian('afterResponse'),
    workerTorrentMs: spreadOf(p2p.flatMap(r => workerMs(r.workerFetches ?? [], 'torrent'))),
    workerPlaylistMs: spreadOf(workerMs(plain.workerFetches ?? [], 'playlist')),
    workerSegmentMs: spreadOf(workerMs(plain.workerFetches ?? [], 'segment')),
    joining: joiningRequests(probes),
    benchHealthMs: spreadOf(requestTimes.health),
    benchPlaylistMs: spreadOf(requestTimes.playlist),
    benchOriginMs: spreadOf(requestTimes.origin)
  }
}

function rowOf ({ n, player, p2p, plain, probes }) {
  const p2pBytes = p2p.reduce((sum, r) => sum + (r.stats?.p2pBytes ?? 0), 0)
  const httpBytes = p2p.reduce((sum, r) => sum + (r.stats?.httpBytes ?? 0), 0)
  const share = p2pBytes + httpBytes > 0 ? p2pBytes / (p2pBytes + httpBytes) : null
  const ceiling = 1 - 1 / n
  return {
    n,
    player,
    share,
    ofCeiling: share !== null && ceiling > 0 ? share / ceiling : null,
    stallsP2p: p2p.reduce((sum, r) => sum + (r.stalls ?? 0), 0),
    stallsPlain: plain.stalls,
    firstFrameP2p: median(p2p.map(r => r.firstFrameMs)),
    firstFramePlain: plain.firstFrameMs,
    playerStartP2p: median(p2p.map(r => r.playerStartMs)),
    playerStartPlain: plain.playerStartMs,
    probeFirstFrameP2p: median(probes.p2p.map(p => p.firstFrameMs)),
    probeFirstFramePlain: median(probes.plain.map(p => p.firstFrameMs)),
    probeDifference: median(probes.differences),
    probeDifferenceMin: probes.differences.length ? Math.min(...probes.differences) : null,
    probeDifferenceMax: probes.differences.length ? Math.max(...probes.differences) : null,
    requestsP2p: mean(p2p.map(perSegment).filter(v => v !== null)),
    requestsPlain: perSegment(plain),
    latencyP2p: median(p2p.flatMap(r => r.latencies)),
    latencyPlain: plain.latencyMedian,
    cpuP2p: mean(p2p.map(cpuShare).filter(v => v !== null)),
    cpuPlain: cpuShare(plain)
  }
}

// Before anything of the benchmark runs, and again after: the machine's speed for the caption.
const speedBefore = opensslSha1MBps(2)
const origin = await startOrigin({ live: true })
const comparison = await comparisonPages()
// Viewers arrive at a feed that is already running: wait until the live
// window is full, or the first viewer starts at the very edge of a 1-segment
// playlist and stays there, which no real audience does.
for (let waited = 0; waited < 30_000; waited += 500) {
  const playlist = await fs.readFile(path.join(origin.dir, 'live', 'index.m3u8'), 'utf8').catch(() => '')
  if ((playlist.match(/^#EXTINF/gm) || []).length >= 6) break
  await sleep(500)
}

/** The p2p-media-loader page's URL for a phase's worker, tracker and settings. */
async function comparisonPages () {
  const pages = await startComparisonPages()
  return {
    stop: pages.stop,
    // The demo player's hls.js settings, so both players buffer alike.
    pageUrl ({ playlistUrl, trackerUrl, core = {}, hls = { backBufferLength: 30 } }) {
      const query = new URLSearchParams({ src: playlistUrl, tracker: trackerUrl, core: JSON.stringify(core), hls: JSON.stringify(hls), ice: '[]' })
      return `${pages.url}/?${query}`
    }
  }
}

const rows = []
const costs = []
try {
  for (const n of VIEWER_COUNTS) {
    for (const player of PLAYER_NAMES) {
      log(`${PLAYERS[player].label}: ${n} P2P viewers + 1 plain, ${JOIN_GAP_MS} ms apart, ${SECONDS_PER_RUN} s each`)
      try {
        const run = await runPhase(origin, comparison, n, player)
        for (const r of [...run.p2p, run.plain]) {
          const s = r.stats ?? { p2pBytes: 0, httpBytes: 0, uploadedBytes: 0, peers: 0 }
          log(`  viewer ${r.index}${r.pageP2p === false ? ' (plain)' : ''}: p2p ${s.p2pBytes} B, http ${s.httpBytes} B, ` +
            `uploaded ${s.uploadedBytes} B, peers ${s.peers}, stalls ${r.stalls}, first frame ${r.firstFrameMs} ms, ` +
            `segments ${segmentsReceived(r)}, worker requests ${r.networkSegmentRequests}, latency ${fixed(r.latencyMedian, 1)} s, ` +
            `CPU ${fixed(r.cpuSeconds, 1)} s in ${fixed(r.watchedMs / 1000, 0)} s` +
            (r.pageErrors.length ? `, page errors: ${r.pageErrors.join(' | ')}` : ''))
        }
        log(`  tracker: ${JSON.stringify(run.trackerStats)}`)
        log(`  joining viewers, first frame ms (player created): P2P ${run.probes.p2p.map(p => `${p.firstFrameMs} (${p.playerStartMs})`).join(', ') || 'none'}; ` +
          `plain ${run.probes.plain.map(p => `${p.firstFrameMs} (${p.playerStartMs})`).join(', ') || 'none'}; ` +
          `P2P minus plain, by pair: ${run.probes.differences.join(', ') || 'none'}`)
        rows.push(rowOf(run))
        costs.push(costsOf(run))
      } catch (error) {
        log(`  run failed: ${error.message}`)
        rows.push({ n, player, failed: error.message.split('\n')[0] })
      }
    }
  }
} finally {
  await comparison.stop()
  await origin.stop()
}

const speedAfter = opensslSha1MBps(2)
const speed = mbps => (mbps ? `${Math.round(mbps)} MB/s` : 'n/a')
console.log(`P2P share of a live HLS stream (2 s segments, ~860 kbit/s), per player: N P2P viewers joining ${JOIN_GAP_MS / 1000} s apart ` +
  `+ 1 plain hls.js viewer, ${SECONDS_PER_RUN} s each, one headless Chromium per viewer, all on one machine; players one after another. ` +
  `Machine speed, openssl sha1 at 16 KiB blocks, before / after the run: ${speed(speedBefore)} / ${speed(speedAfter)}`)
console.log(`| P2P viewers | player | P2P share | of 1-1/N ceiling | stalls P2P (total) / plain | first frame ms (player created) P2P (median) / plain | first frame ms of a viewer joining the phase, P2P / plain (median of ${PROBE_PAIRS} each) | joining viewer's first frame, P2P minus plain, ms: median of the ${PROBE_PAIRS} pairs (range) | worker requests per segment per viewer P2P / plain | live latency s P2P / plain (median) | CPU of one core P2P / plain |`)
console.log('|---|---|---|---|---|---|---|---|---|---|---|')
for (const r of rows) {
  const label = PLAYERS[r.player].label
  if (r.failed) {
    console.log(`| ${r.n} | ${label} | failed: ${r.failed.replace(/\|/g, '/').slice(0, 300)} | | | | | | | | |`)
    continue
  }
  // A plain page that stalls means the machine could not play one video in
  // real time during the phase: its P2P figures describe a saturated machine.
  const saturated = r.stallsPlain > 0 ? ' (saturated: the plain reference stalled)' : ''
  console.log(`| ${r.n} | ${label}${saturated} | ${pct(r.share)} | ${pct(r.ofCeiling)} | ${r.stallsP2p} / ${r.stallsPlain} | ` +
    `${fixed(r.firstFrameP2p, 0)} (${fixed(r.playerStartP2p, 0)}) / ${fixed(r.firstFramePlain, 0)} (${fixed(r.playerStartPlain, 0)}) | ` +
    `${fixed(r.probeFirstFrameP2p, 0)} / ${fixed(r.probeFirstFramePlain, 0)} | ` +
    `${signed(r.probeDifference)} (${signed(r.probeDifferenceMin)} to ${signed(r.probeDifferenceMax)}) | ${fixed(r.requestsP2p, 2)} / ${fixed(r.requestsPlain, 2)} | ` +
    `${fixed(r.latencyP2p, 1)} / ${fixed(r.latencyPlain, 1)} | ${pct(r.cpuP2p)} / ${pct(r.cpuPlain)} |`)
}

console.log('\nWhere the P2P time and signalling go (per segment received, per P2P viewer; live-torrent\'s timeline is ms after a playlist listed the segment, median)')
console.log('| P2P viewers | player | WebRTC connections created / connected | most open at once (one viewer) | tracker announces (answers included) | metadata ms | first peer ms (connected, or in the mesh: said it holds a piece) | complete ms | player asked ms | first peer only after the player asked |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const c of costs) {
  console.log(`| ${c.n} | ${PLAYERS[c.player].label} | ${fixed(c.created, 2)} / ${fixed(c.connected, 2)} | ${c.maxOpen ?? 'n/a'} | ${fixed(c.announces, 2)} | ` +
    `${fixed(c.metadataMs, 0)} | ${fixed(c.firstPeerMs, 0)} | ${fixed(c.completeMs, 0)} | ${fixed(c.requestedMs, 0)} | ${pct(c.peerAfterRequest)} |`)
}

console.log('\nWhere live-torrent\'s metadata time goes (ms from a playlist listing the segment to its torrent being ready, by step, median over the segments with a .torrent fetch)')
console.log('| P2P viewers | player | segments | before the fetch left the page | service worker and the browser\'s connection queue (fetch start to request sent) | worker (request sent to first byte) | after the response (parse, check, ready) |')
console.log('|---|---|---|---|---|---|---|')
for (const c of costs.filter(c => c.metadataSegments > 0)) {
  console.log(`| ${c.n} | ${PLAYERS[c.player].label} | ${c.metadataSegments} | ${fixed(c.beforeFetchMs, 0)} | ${fixed(c.serviceWorkerMs, 0)} | ${fixed(c.workerMs, 0)} | ${fixed(c.afterResponseMs, 0)} |`)
}

console.log('\nThe worker\'s time to first byte, ms, median / 90th percentile (requests): the P2P pages\' .torrent fetches against the plain page\'s playlists and segments in the same phase')
console.log('| P2P viewers | player | .torrent (P2P pages) | playlist (plain page) | segment (plain page) |')
console.log('|---|---|---|---|---|')
const spread = s => (s.count ? `${fixed(s.median, 0)} / ${fixed(s.p90, 0)} (${s.count})` : 'n/a')
for (const c of costs) {
  console.log(`| ${c.n} | ${PLAYERS[c.player].label} | ${spread(c.workerTorrentMs)} | ${spread(c.workerPlaylistMs)} | ${spread(c.workerSegmentMs)} |`)
}

console.log('\nThe same phases\' request times from the benchmark process, once a second, ms to the response headers, median / 90th percentile (requests): the worker\'s /_lt/health does no I/O, so it is the wait before the worker\'s code runs')
console.log('| P2P viewers | player | worker /_lt/health | worker playlist | origin playlist, directly |')
console.log('|---|---|---|---|---|')
for (const c of costs) {
  console.log(`| ${c.n} | ${PLAYERS[c.player].label} | ${spread(c.benchHealthMs)} | ${spread(c.benchPlaylistMs)} | ${spread(c.benchOriginMs)} |`)
}

console.log('\nA joining viewer\'s requests before its first frame, median over the joining viewers, P2P / plain: scripts requested (from the worker), their summed ms at the worker; the player\'s playlist and segment requests, their summed ms queued in the browser for a connection and at the worker')
console.log('| P2P viewers | player | scripts | scripts at the worker, ms | playlists and segments | queued for a connection, ms | at the worker, ms |')
console.log('|---|---|---|---|---|---|---|')
for (const c of costs.filter(c => c.joining.p2p.media !== null)) {
  const both = field => `${fixed(c.joining.p2p[field], 0)} / ${fixed(c.joining.plain[field], 0)}`
  console.log(`| ${c.n} | ${PLAYERS[c.player].label} | ${both('scripts')} | ${both('scriptWorkerMs')} | ${both('media')} | ${both('mediaQueuedMs')} | ${both('mediaWorkerMs')} |`)
}

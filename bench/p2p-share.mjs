// How much of a live stream viewers get from each other, and what it costs
// them. For each viewer count N: a fresh tracker and worker in front of one
// shared live origin (ffmpeg), N P2P viewers of the demo player joining 2 s
// apart and one plain hls.js viewer (p2p=0) in the same run, each its own
// headless Chromium. Everybody watches until the last P2P viewer has watched
// SECONDS_PER_RUN seconds. Prints one Markdown table row per N.
//
// Environment: VIEWERS (default 2,4,6), SECONDS_PER_RUN (default 60),
// JOIN_GAP_MS (default 2000). Run it inside a loopback-only namespace
// (`make bench` does).
//
// Columns:
//   P2P share          sum of p2pBytes / sum of (p2pBytes + httpBytes) over the
//                      P2P viewers (liveTorrent.stats() at the end)
//   of ceiling         share / (1 - 1/N): with N viewers at least one of them
//                      must fetch each segment over HTTP
//   stalls             ltDemo.metrics.stalls, summed over the P2P viewers / plain
//   first frame        ltDemo.metrics.firstFrameMs (ms after navigation), median
//                      over the P2P viewers / plain
//   worker requests    requests for /live/seg-* that left the browser (made by
//                      the page, the page client or the service worker and not
//                      answered by the service worker; web-seed and fallback
//                      Range requests count one each), per segment received
//                      per viewer, mean over the P2P viewers / plain
//   latency            hls.js latency (seconds behind the live edge), median of
//                      1 s samples over the P2P viewers / plain
import fs from 'node:fs/promises'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { startTracker, startWorker, sleep } from '../tests/support/harness.mjs'
import { median, openViewer } from '../tests/support/viewers.mjs'

function parseCounts (text) {
  const counts = text.split(',').map(s => s.trim()).filter(Boolean).map(Number)
  if (counts.length === 0 || counts.some(n => !Number.isInteger(n) || n < 1)) {
    throw new Error(`VIEWERS must be a comma-separated list of positive integers, got "${text}"`)
  }
  return counts
}

const VIEWER_COUNTS = parseCounts(process.env.VIEWERS || '2,4,6')
const SECONDS_PER_RUN = Number(process.env.SECONDS_PER_RUN || 60)
const JOIN_GAP_MS = Number(process.env.JOIN_GAP_MS || 2000)
if (!(SECONDS_PER_RUN > 0)) throw new Error(`SECONDS_PER_RUN must be > 0, got ${process.env.SECONDS_PER_RUN}`)
const FIRST_FRAME_TIMEOUT_MS = 60_000
/** The plain viewer joins between the first and second P2P viewer. */
const PLAIN_JOIN_MS = JOIN_GAP_MS / 2

const log = line => process.stderr.write(`[p2p-share] ${line}\n`)
const fixed = (value, digits) => (typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : 'n/a')
const pct = value => (typeof value === 'number' && Number.isFinite(value) ? `${(100 * value).toFixed(1)}%` : 'n/a')
const mean = values => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null)
const perSegment = report => (report.segments > 0 ? report.networkSegmentRequests / report.segments : null)

/** Segment requests the worker logged (`wrangler dev` prints one line per request). */
function workerLoggedSegmentRequests (worker) {
  return worker.output().split('\n').filter(line => /\bGET \/live\/seg-\S+ \d{3}/.test(line)).length
}

async function runOnce (origin, n) {
  const tracker = await startTracker()
  const worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: tracker.url } })
  const opened = []
  try {
    const p2pOpening = Array.from({ length: n }, (_, i) => sleep(i * JOIN_GAP_MS).then(() =>
      openViewer({ workerUrl: worker.url, index: i + 1, registry: opened, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS })))
    const plainOpening = sleep(PLAIN_JOIN_MS).then(() =>
      openViewer({ workerUrl: worker.url, index: n + 1, p2p: false, registry: opened, firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS }))
    const settled = await Promise.allSettled([...p2pOpening, plainOpening])
    const failures = settled.filter(s => s.status === 'rejected').map(s => s.reason.message)
    if (failures.length) throw new Error(failures.join('\n'))
    const p2pViewers = settled.slice(0, n).map(s => s.value)
    const plainViewer = settled[n].value

    const until = Math.max(...p2pViewers.map(v => v.firstFrameAt)) + SECONDS_PER_RUN * 1000
    while (Date.now() < until) await sleep(Math.min(5000, until - Date.now()))

    const trackerStats = tracker.stats()
    const p2p = []
    for (const viewer of p2pViewers) p2p.push(await viewer.finish())
    const plain = await plainViewer.finish()
    const loggedByWorker = workerLoggedSegmentRequests(worker)
    return { n, p2p, plain, trackerStats, loggedByWorker }
  } finally {
    await Promise.all(opened.map(viewer => viewer.close()))
    await worker.stop()
    await tracker.stop()
  }
}

function rowOf ({ n, p2p, plain, loggedByWorker }) {
  const p2pBytes = p2p.reduce((sum, r) => sum + (r.stats?.p2pBytes ?? 0), 0)
  const httpBytes = p2p.reduce((sum, r) => sum + (r.stats?.httpBytes ?? 0), 0)
  const share = p2pBytes + httpBytes > 0 ? p2pBytes / (p2pBytes + httpBytes) : null
  const ceiling = 1 - 1 / n
  const p2pLatency = median(p2p.flatMap(r => r.latencies))
  return {
    n,
    share,
    ofCeiling: share !== null && ceiling > 0 ? share / ceiling : null,
    stallsP2p: p2p.reduce((sum, r) => sum + (r.stalls ?? 0), 0),
    stallsPlain: plain.stalls,
    firstFrameP2p: median(p2p.map(r => r.firstFrameMs)),
    firstFramePlain: plain.firstFrameMs,
    requestsP2p: mean(p2p.map(perSegment).filter(v => v !== null)),
    requestsPlain: perSegment(plain),
    latencyP2p: p2pLatency,
    latencyPlain: plain.latencyMedian,
    loggedPerSegmentViewer: loggedByWorker / Math.max(1, [...p2p, plain].reduce((sum, r) => sum + r.segments, 0))
  }
}

const origin = await startOrigin({ live: true })
// Viewers arrive at a feed that is already running: wait until the live
// window is full, or the first viewer starts at the very edge of a 1-segment
// playlist and stays there, which no real audience does.
for (let waited = 0; waited < 30_000; waited += 500) {
  const playlist = await fs.readFile(path.join(origin.dir, 'live', 'index.m3u8'), 'utf8').catch(() => '')
  if ((playlist.match(/^#EXTINF/gm) || []).length >= 6) break
  await sleep(500)
}
const rows = []
try {
  for (const n of VIEWER_COUNTS) {
    log(`${n} P2P viewers + 1 plain, ${JOIN_GAP_MS} ms apart, ${SECONDS_PER_RUN} s each`)
    try {
      const run = await runOnce(origin, n)
      for (const r of [...run.p2p, run.plain]) {
        const s = r.stats ?? { p2pBytes: 0, httpBytes: 0, uploadedBytes: 0, peers: 0 }
        log(`  viewer ${r.index}${r.p2p ? '' : ' (plain)'}: p2p ${s.p2pBytes} B, http ${s.httpBytes} B, ` +
          `uploaded ${s.uploadedBytes} B, peers ${s.peers}, stalls ${r.stalls}, first frame ${r.firstFrameMs} ms, ` +
          `segments ${r.segments}, worker requests ${r.networkSegmentRequests}, latency ${fixed(r.latencyMedian, 1)} s` +
          (r.pageErrors.length ? `, page errors: ${r.pageErrors.join(' | ')}` : ''))
      }
      log(`  tracker: ${JSON.stringify(run.trackerStats)}`)
      rows.push(rowOf(run))
    } catch (error) {
      log(`  run failed: ${error.message}`)
      rows.push({ n, failed: error.message.split('\n')[0] })
    }
  }
} finally {
  await origin.stop()
}

console.log(`P2P share of a live HLS stream (2 s segments, ~860 kbit/s), N P2P viewers of the demo player joining ${JOIN_GAP_MS / 1000} s apart ` +
  `+ 1 plain hls.js viewer, ${SECONDS_PER_RUN} s each, one headless Chromium per viewer, all on one machine`)
console.log('| P2P viewers | P2P share | of 1-1/N ceiling | stalls P2P (total) / plain | first frame ms P2P (median) / plain | worker requests per segment per viewer P2P / plain | live latency s P2P / plain (median) |')
console.log('|---|---|---|---|---|---|---|')
for (const r of rows) {
  if (r.failed) {
    console.log(`| ${r.n} | failed: ${r.failed.replace(/\|/g, '/')} | | | | | |`)
    continue
  }
  console.log(`| ${r.n} | ${pct(r.share)} | ${pct(r.ofCeiling)} | ${r.stallsP2p} / ${r.stallsPlain} | ` +
    `${fixed(r.firstFrameP2p, 0)} / ${fixed(r.firstFramePlain, 0)} | ${fixed(r.requestsP2p, 2)} / ${fixed(r.requestsPlain, 2)} | ` +
    `${fixed(r.latencyP2p, 1)} / ${fixed(r.latencyPlain, 1)} |`)
}
const logged = rows.filter(r => !r.failed).map(r => `N=${r.n}: ${fixed(r.loggedPerSegmentViewer, 2)}`)
if (logged.length) console.log(`\nSegment requests logged by the worker per segment per viewer, all viewers: ${logged.join(', ')}`)

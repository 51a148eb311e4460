// What a joining P2P viewer's page costs before its first frame, against a
// plain hls.js viewer joining the same loaded machine: issue 5's first-frame
// target, profiled rather than guessed.
//
// VIEWERS P2P viewers of the demo player (built-in tracker) and one plain
// viewer watch the local live feed: the load a joining viewer meets. Then
// PAIRS pairs of joining viewers open one at a time, P2P and plain in turn
// (the order alternates), each closed at its first frame. For each:
//   - CPU time of every thread of its browser from launch to the first
//     frame (/proc/<pid>/task/<tid>/stat), by process kind and thread name,
//     read when the page's video fires 'playing' (a binding the page calls
//     from that event, before the page client reacts to it); the browser's
//     own start-up is the same for both kinds;
//   - its page's timeline (resource timing): hls.js loaded, player created,
//     WebTorrent requested (the page client building its P2P half), the
//     first playlist and the first two segments answered, the first frame.
// Prints the means, P2P against plain, as Markdown tables. Environment:
// VIEWERS (default 6), PAIRS (default 4). Run it inside a loopback-only
// namespace:
//   unshare -n sh -c 'ip link set lo up && exec node bench/join-profile.mjs'
import { startOrigin } from '../scripts/origin.mjs'
import { startWorker, sleep } from '../tests/support/harness.mjs'
import { CLOCK_TICKS_PER_SECOND, threadTicks } from '../tests/support/browser.mjs'
import { median, openAudience, openViewer } from '../tests/support/viewers.mjs'

const VIEWERS = Number(process.env.VIEWERS ?? 6)
const PAIRS = Number(process.env.PAIRS ?? 4)
for (const [name, value] of Object.entries({ VIEWERS, PAIRS })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${value}`)
}
const JOIN_GAP_MS = 2000
const SETTLE_MS = 10_000
const log = line => process.stderr.write(`[join-profile] ${line}\n`)
const mean = values => values.length ? values.reduce((a, b) => a + b, 0) / values.length : null
/** CPU ms of a browser's thread ticks, all threads together. */
const totalMs = ticks => [...ticks.values()].reduce((a, b) => a + b, 0) * 1000 / CLOCK_TICKS_PER_SECOND
const fixed = value => (value === null || value === undefined ? '–' : value.toFixed(0))

/** The page's timeline, ms since navigation (null: did not happen before the first frame). */
function readTimeline () {
  const entries = performance.getEntriesByType('resource')
  const firstFrame = window.ltDemo.metrics.firstFrameMs
  const byPath = test => entries.filter(e => test(new URL(e.name).pathname)).sort((a, b) => a.startTime - b.startTime)
  const segments = byPath(p => /\/seg-\d+\.ts$/.test(p))
  const playlists = byPath(p => /\.m3u8$/.test(p))
  const end = entry => (entry ? Math.round(entry.responseEnd) : null)
  const start = entry => (entry ? Math.round(entry.startTime) : null)
  return {
    hlsLoaded: end(byPath(p => p.endsWith('/hls.min.js'))[0]),
    playerCreated: window.ltDemo.metrics.playerStartMs,
    // The page client's P2P half starting (it fetches WebTorrent first).
    webTorrentRequested: start(byPath(p => p.endsWith('/webtorrent.min.js'))[0]),
    firstPlaylist: end(playlists[0]),
    firstSegment: end(segments[0]),
    secondSegment: end(segments[1]),
    segmentsBeforeFirstFrame: segments.filter(s => s.responseEnd <= firstFrame).length,
    firstFrame
  }
}

/**
 * Runs in the page before its scripts: its first 'playing' event, caught on
 * the document in the capture phase (before the page client's own listener,
 * which builds the P2P half), calls the binding that reads the CPU ticks.
 */
const FIRST_FRAME_HOOK = `document.addEventListener('playing', () => window.ltJoinProfileFirstFrame(), { capture: true, once: true })`

const origin = await startOrigin({ live: true })
const worker = await startWorker({ vars: { UPSTREAM: origin.url } })
const opened = []
try {
  log(`${VIEWERS} P2P viewers and a plain one on ${worker.url} (the load)`)
  const common = { workerUrl: worker.url, registry: opened }
  await openAudience({ ...common, p2pCount: VIEWERS, joinGapMs: JOIN_GAP_MS })
  log(`all first frames; settling ${SETTLE_MS / 1000} s`)
  await sleep(SETTLE_MS)

  const joined = { p2p: [], plain: [] }
  for (let pair = 0; pair < PAIRS; pair++) {
    for (const p2p of pair % 2 === 0 ? [true, false] : [false, true]) {
      let ticksAtFirstFrame = null
      const viewer = await openViewer({
        ...common,
        index: 100 + pair * 2 + (p2p ? 0 : 1),
        p2p,
        prepareContext: async context => {
          await context.exposeBinding('ltJoinProfileFirstFrame', ({ page }) => {
            ticksAtFirstFrame ??= threadTicks(page.context().browser())
          })
          await context.addInitScript(FIRST_FRAME_HOOK)
        }
      })
      try {
        if (!ticksAtFirstFrame) throw new Error('the page did not report its first frame')
        const ticks = await ticksAtFirstFrame
        const timeline = await viewer.page.evaluate(readTimeline)
        joined[p2p ? 'p2p' : 'plain'].push({ ticks, timeline })
        log(`joining ${p2p ? 'P2P' : 'plain'}: ${JSON.stringify(timeline)}, CPU ${totalMs(ticks).toFixed(0)} ms`)
      } finally {
        await viewer.close()
      }
    }
  }

  const ms = ticks => ticks * 1000 / CLOCK_TICKS_PER_SECOND
  const keys = [...new Set([...joined.p2p, ...joined.plain].flatMap(j => [...j.ticks.keys()]))]
  const meanOf = (list, key) => mean(list.map(j => ms(j.ticks.get(key) ?? 0)))
  const rows = keys.map(key => ({ key, p2p: meanOf(joined.p2p, key), plain: meanOf(joined.plain, key) }))
    .filter(r => r.p2p >= 10 || r.plain >= 10)
    .sort((a, b) => (b.p2p - b.plain) - (a.p2p - a.plain))
  const whole = list => mean(list.map(j => totalMs(j.ticks)))

  console.log(`\nCPU ms of a joining viewer's browser from launch to its first frame, by process and thread: mean of ${PAIRS} ` +
    `P2P and ${PAIRS} plain viewers joining ${VIEWERS} P2P viewers and a plain one (sorted by what P2P adds)\n`)
  console.log('| process / thread | P2P | plain | P2P adds |')
  console.log('|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.key} | ${fixed(r.p2p)} | ${fixed(r.plain)} | ${fixed(r.p2p - r.plain)} |`)
  const [p2pWhole, plainWhole] = [whole(joined.p2p), whole(joined.plain)]
  console.log(`| **whole browser** | **${fixed(p2pWhole)}** | **${fixed(plainWhole)}** | **${fixed(p2pWhole - plainWhole)}** |`)

  console.log(`\nTimeline of a joining viewer's page, ms after navigation (median of ${PAIRS} each)\n`)
  console.log('| event | P2P | plain |')
  console.log('|---|---|---|')
  const events = Object.keys(joined.p2p[0].timeline)
  for (const event of events) {
    const med = list => median(list.map(j => j.timeline[event]).filter(v => v !== null && v !== undefined))
    console.log(`| ${event} | ${fixed(med(joined.p2p))} | ${fixed(med(joined.plain))} |`)
  }
} finally {
  await Promise.all(opened.map(v => v.close()))
  await worker.stop()
  await origin.stop()
}

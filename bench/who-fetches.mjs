// Who fetches each live segment over HTTP, and why. VIEWERS live-torrent
// viewers of the demo player (built-in tracker, as deployed) share the local
// live feed for SECONDS seconds after the last one's first frame. Each page
// reports every segment it hands its player (the client's 'segment' event:
// bytes from peers and over HTTP, when its playlist listed the segment and
// when the player asked for it); the page's clock origin turns those times
// into one wall clock for all viewers. Prints, per viewer, how far behind the
// live edge it plays, how its segments came and how often its playlist listed
// a segment first; then, over the segments every viewer received, how many
// copies crossed HTTP (the CDN's bytes per segment: 1 is the least possible)
// and, for each segment a viewer fetched over HTTP, whether any other viewer
// had even listed it by the time that viewer's player asked for it.
//
// It answers a question the memory benchmark raised: with two viewers, one
// fetched nearly every segment over HTTP and the other took it from it (README,
// "one-sided sharing"). A viewer whose player asks for a segment before any
// peer's playlist lists it cannot get it from a peer; one that asks after a
// peer listed it could have.
//
// Environment: VIEWERS (default 2), SECONDS (default 120), JOIN_GAP_MS
// (default 4000, as bench/memory.mjs), FIRST_SYNC_S (unset: hls.js's default,
// 3 segments behind the live edge; else viewer 1's hls.js liveSyncDuration in
// seconds, to put it nearer the live edge than the others, as a viewer that
// joins while the live window is still short ends up). Run it inside a
// loopback-only namespace:
//   unshare -n sh -c 'ip link set lo up && exec node bench/who-fetches.mjs'
import { startOrigin } from '../scripts/origin.mjs'
import { startWorker, sleep } from '../tests/support/harness.mjs'
import { median, openViewer, recordedSegmentEvents, recordSegmentEvents } from '../tests/support/viewers.mjs'

const VIEWERS = Number(process.env.VIEWERS ?? 2)
const SECONDS = Number(process.env.SECONDS ?? 120)
const JOIN_GAP_MS = Number(process.env.JOIN_GAP_MS ?? 4000)
if (!Number.isInteger(VIEWERS) || VIEWERS < 2) throw new Error(`VIEWERS must be an integer >= 2, got ${process.env.VIEWERS}`)
const FIRST_SYNC_S = process.env.FIRST_SYNC_S === undefined ? null : Number(process.env.FIRST_SYNC_S)
if (FIRST_SYNC_S !== null && !(FIRST_SYNC_S > 0)) throw new Error(`FIRST_SYNC_S must be > 0, got ${process.env.FIRST_SYNC_S}`)
if (!(SECONDS > 0)) throw new Error(`SECONDS must be > 0, got ${process.env.SECONDS}`)

/** The client's firstFetchDelayMs (public/_lt/client/config.js), the demo's. */
const FIRST_FETCH_DELAY_MS = 500
/**
 * An init script that makes the page's hls.js keep `seconds` behind the live
 * edge (liveSyncDuration) whatever config the demo passes: it wraps the Hls
 * class as hls.min.js defines it.
 */
function liveSyncInit (seconds) {
  return {
    content: `(() => {
      let Hls
      Object.defineProperty(window, 'Hls', {
        configurable: true,
        get: () => Hls,
        set: Original => { Hls = class extends Original { constructor (config) { super({ ...config, liveSyncDuration: ${seconds} }) } } }
      })
    })()`
  }
}

/** When a delivery stopped waiting for peers: the player's request plus its deadline. */
const giveUpWall = event => event.listedWall + event.requestedMs + event.deadlineMs

const fixed = (value, digits) => (value === null || value === undefined ? 'n/a' : value.toFixed(digits))
const pct = (part, whole) => (whole > 0 ? `${(100 * part / whole).toFixed(0)}%` : 'n/a')

const origin = await startOrigin({ live: true })
const worker = await startWorker({ vars: { UPSTREAM: origin.url } })
const viewers = []
try {
  for (let i = 0; i < VIEWERS; i++) {
    if (i > 0) await sleep(JOIN_GAP_MS)
    const initScript = i === 0 && FIRST_SYNC_S !== null ? liveSyncInit(FIRST_SYNC_S) : null
    const viewer = await openViewer({ workerUrl: worker.url, index: i + 1, registry: viewers, initScript })
    await recordSegmentEvents(viewer)
    process.stderr.write(`[who-fetches] viewer ${i + 1} playing\n`)
  }
  await sleep(SECONDS * 1000)
  const reports = []
  for (const viewer of viewers) {
    const events = await recordedSegmentEvents(viewer)
    reports.push({ ...await viewer.finish(), index: viewer.index, events })
  }
  print(reports)
} finally {
  await Promise.all(viewers.map(viewer => viewer.close()))
  await worker.stop()
  await origin.stop()
}

function print (reports) {
  // Segment URL -> { index -> event }, for the segments every viewer received.
  const byUrl = new Map()
  for (const report of reports) {
    for (const event of report.events) {
      if (!byUrl.has(event.url)) byUrl.set(event.url, new Map())
      byUrl.get(event.url).set(report.index, event)
    }
  }
  const shared = [...byUrl.values()].filter(events => events.size === reports.length)
  const firstLister = events => [...events.entries()].reduce((a, b) => (b[1].listedWall < a[1].listedWall ? b : a))[0]

  const sync = FIRST_SYNC_S === null ? '' : `, viewer 1 with hls.js liveSyncDuration ${FIRST_SYNC_S} s`
  console.log(`${reports.length} live-torrent viewers, built-in tracker, ${SECONDS} s after the last first frame, 2 s segments${sync}; ${shared.length} segments received by every viewer\n`)
  console.log('| viewer | behind the live edge s (median) | segments | all from peers | all over HTTP | mixed | its playlist listed it first | listed it later than the first, median ms | waited for peers until, after its listing, median ms |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const report of reports) {
    const mine = shared.map(events => ({ event: events.get(report.index), events }))
    const later = mine.filter(m => firstLister(m.events) !== report.index)
      .map(m => m.event.listedWall - Math.min(...[...m.events.values()].map(e => e.listedWall)))
    const count = source => mine.filter(m => m.event.source === source).length
    console.log(`| ${report.index} | ${fixed(report.latencyMedian, 1)} | ${mine.length} | ${count('p2p')} | ${count('http')} | ${count('mixed')} | ` +
      `${pct(mine.filter(m => firstLister(m.events) === report.index).length, mine.length)} | ${fixed(median(later), 0)} | ` +
      `${fixed(median(mine.map(m => giveUpWall(m.event) - m.event.listedWall)), 0)} |`)
  }

  // Copies over HTTP: a segment's HTTP bytes over all viewers, in segment lengths.
  const copies = shared.map(events => [...events.values()].reduce((sum, e) => sum + e.httpBytes, 0) / [...events.values()][0].bytes)
  const histogram = new Map()
  for (const c of copies) histogram.set(Math.round(c), (histogram.get(Math.round(c)) ?? 0) + 1)
  console.log(`\nCopies of a segment that crossed HTTP (all viewers together): mean ${fixed(copies.reduce((a, b) => a + b, 0) / (copies.length || 1), 2)} (1 is the least possible); ` +
    [...histogram.entries()].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}: ${v} segments`).join(', '))

  // Each segment a viewer took over HTTP was either its own to fetch first
  // (designated: fetchedFirst) or one it stopped waiting for. The designated
  // viewer waits firstFetchDelayMs after its playlist lists a segment, then
  // fetches it and serves its pieces; a viewer that stops waiting sooner than
  // that after the designated viewer's listing must fetch it too.
  const gaveUp = []
  let designated = 0
  for (const events of shared) {
    for (const [index, event] of events) {
      if (event.httpBytes < 0.5 * event.bytes) continue
      if (event.fetchedFirst) {
        designated++
        continue
      }
      const others = [...events.entries()].filter(([i]) => i !== index).map(([, e]) => e)
      const fetcher = others.find(e => e.fetchedFirst)
      gaveUp.push({ fromFirstListing: giveUpWall(event) - Math.min(...others.map(e => e.listedWall)), fromFetcherListing: fetcher ? giveUpWall(event) - fetcher.listedWall : null })
    }
  }
  const under = (list, ms) => list.filter(m => m !== null && m < ms).length
  const fromFetcher = gaveUp.map(g => g.fromFetcherListing)
  console.log(`\nSegments a viewer took mostly over HTTP: ${designated + gaveUp.length}; as the viewer designated to fetch them first: ${designated}; ` +
    `after it stopped waiting for peers: ${gaveUp.length}.`)
  if (gaveUp.length) {
    console.log(`Of these ${gaveUp.length}, another viewer fetched ${fromFetcher.filter(m => m !== null).length} first. ` +
      `The wait ended, after that viewer's listing: median ${fixed(median(fromFetcher), 0)} ms, before the listing ${under(fromFetcher, 0)}, ` +
      `within its ${FIRST_FETCH_DELAY_MS} ms wait ${under(fromFetcher, FIRST_FETCH_DELAY_MS)}; after the first other listing: median ${fixed(median(gaveUp.map(g => g.fromFirstListing)), 0)} ms`)
  }
}

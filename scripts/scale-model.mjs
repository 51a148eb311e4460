#!/usr/bin/env node
// Turns the worker's measured operation counts (`make cost`) into monthly
// Cloudflare cost at 1k, 10k and 100k concurrent viewers of one stream, and
// names the first platform limit each scale meets. docs/scale.md explains
// every input; this only does the arithmetic.
//
//   node scripts/scale-model.mjs                      the figures measured for docs/scale.md
//   node scripts/scale-model.mjs --from cost.json     figures from `make cost COST_ARGS='--json cost.json'`
//   node scripts/scale-model.mjs --segment 6 --window 10 --share 0.5 --isolates 8
//   node scripts/scale-model.mjs --sensitivity        tables over segment duration, window and share
//
// Nothing here is measured at scale: requests per viewer-minute follow from
// the player's behaviour (one playlist poll per segment duration, one
// .torrent per new segment, the HTTP fallback for 1 - share of segments);
// what the worker does per request (CPU, cache hit or miss, KV keys, hash
// fetches) is what `make cost` counted; how viewers spread over locations
// and isolates is an assumption, given as parameters.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

// Cloudflare's published prices and limits, read 2026-12-01 (docs/scale.md,
// "Prices and limits", has the pages). Re-check before relying on them.
export const PRICES = {
  workersPaidMonthly: 5.0,
  requestsIncluded: 10e6,
  perMillionRequests: 0.30,
  cpuMsIncluded: 30e6,
  perMillionCpuMs: 0.02,
  kvReadsIncluded: 10e6,
  perMillionKvReads: 0.50,
  kvWritesIncluded: 1e6,
  perMillionKvWrites: 5.0
}
// Durable Objects (the built-in tracker), read 2026-12-01 from
// developers.cloudflare.com/durable-objects/platform/pricing: requests
// (HTTP, RPC, WebSocket messages received, billed 20:1) and duration while an
// object is active (128 MB each; a hibernated one is not billed).
export const DO_PRICES = {
  requestsIncluded: 1e6,
  perMillionRequests: 0.15,
  wsMessagesPerRequest: 20,
  gbSecondsIncluded: 400_000,
  perMillionGbSeconds: 12.50,
  objectGb: 0.128
}
export const LIMITS = {
  freeRequestsPerDay: 100_000,
  freeKvWritesPerDay: 1_000,
  freeCpuMsPerRequest: 10,
  kvWritesPerKeyPerSecond: 1,
  subrequestsFree: 50,
  subrequestsPaid: 10_000
}
const MINUTES_PER_MONTH = 30 * 24 * 60

/**
 * What `make cost` measured (docs/scale.md, "Measured"): the worker's CPU per
 * request (workerd process time, an upper bound) with the micro-cache off and
 * on, KV keys read and upstream fetches per playlist the worker actually made,
 * and upstream fetches per new segment for hashing.
 */
export const MEASURED = {
  cpuMsPerRequestUncached: 4.1,
  cpuMsPerRequestCached: 2.4,
  // KV keys read per minute by one isolate that makes playlists (its
  // memory keeps a record 60 s). Uncached, requests that see a new segment
  // before its record is written read it again: this grows with the
  // request rate (measured at 25 viewers, so a low figure).
  kvKeysPerIsolateMinuteUncached: 158,
  kvKeysPerIsolateMinuteCached: 32,
  hashFetchesPerNewSegment: 1.0,
  // Playlist-path operations (upstream fetches + KV keys read + KV writes +
  // cache puts, hashing included): per poll without the micro-cache, per
  // playlist made with it.
  opsPerPollUncached: 1.54,
  opsPerPlaylistMadeCached: 6.2
}

/**
 * The built-in tracker, measured (docs/scale.md, "The built-in tracker"):
 * messages a viewer's socket sends to the tracker and receives from it per
 * minute, with 2 s segments, and what one object relays per second at most
 * on this machine (its throughput limit: it is single-threaded).
 */
export const MEASURED_TRACKER = {
  // `make tracker-load` (bench/tracker-load.mjs), 600 simulated viewers of
  // the live feed, 2 s segments, 2-5 offers per announce: frames each viewer
  // sends to the tracker and receives from it.
  messagesInPerViewerMinute: 141,
  messagesOutPerViewerMinute: 246,
  // Frames in + out one object handled per second of workerd CPU, with
  // permessage-deflate (browsers offer it, workerd accepts it): 3,873 frames
  // a second took 28.3 s of CPU a minute, 47% of a core. Without it: 26%.
  objectMessagesPerSecond: 8_200,
  // Keep an object under this share of a core.
  objectHeadroom: 0.5,
  // An average viewing session, an assumption: one WebSocket (one worker
  // request and one object request) per session.
  sessionMinutes: 30
}

/**
 * The same tracker with the viewers in their stream meshes (the page client
 * since 2026-12-05: no segment announces once a viewer has a link; links
 * bounded, meshLinks 8): `make tracker-load` in `--mode mesh` (docs/scale.md,
 * "Viewers in a stream mesh"), without churn (run A′, the highest of 100-600
 * viewers) and with 10% of the audience replaced every minute (run B′, 600
 * viewers). A meshed object has CPU to spare; what sets its viewers is the stream swarm's
 * peer cap (TRACKER_MAX_PEERS_PER_SWARM, 1,000), so the shards follow the
 * documented rule, viewers / 600, which leaves room for arrivals.
 */
export const MEASURED_TRACKER_MESH = {
  ...MEASURED_TRACKER,
  messagesInPerViewerMinute: 0.5,
  messagesOutPerViewerMinute: 0.7,
  viewersPerObject: 600
}
export const MEASURED_TRACKER_MESH_CHURN = {
  ...MEASURED_TRACKER_MESH,
  messagesInPerViewerMinute: 4.1,
  messagesOutPerViewerMinute: 5.8
}

/** Spread of viewers, an assumption: active locations and isolates per location. */
export const DEFAULT_SPREAD = { 1000: 5, 10000: 25, 100000: 100 }

export function model ({ viewers, segmentSeconds = 2, window = 6, share = 0.8, ttlMs = 1000, cached = true, locations, isolates = 4, measured = MEASURED }) {
  const polls = 60 / segmentSeconds // playlist requests per viewer-minute
  const newSegments = 60 / segmentSeconds // per minute, per rendition
  const requestsPerViewerMinute = { playlist: polls, torrent: newSegments, segment: newSegments * (1 - share) }
  const perViewer = requestsPerViewerMinute.playlist + requestsPerViewerMinute.torrent + requestsPerViewerMinute.segment
  const requestsPerMinute = viewers * perViewer
  locations = Math.max(1, Math.min(locations ?? DEFAULT_SPREAD[viewers] ?? Math.ceil(viewers / 1000), viewers))
  // Playlists the worker makes (upstream fetch + annotation) per minute.
  // Uncached: one per poll. Cached: per location one per copy lifetime, times
  // the isolates that miss together when it expires (1 measured with one
  // isolate; at most `isolates`), never more than the polls themselves.
  const copyMs = Math.min(ttlMs, segmentSeconds * 500)
  const playlistsMadeBest = cached ? Math.min(viewers * polls, locations * 60_000 / copyMs) : viewers * polls
  const playlistsMadeWorst = cached ? Math.min(viewers * polls, locations * isolates * 60_000 / copyMs) : viewers * polls
  // Records: read by each isolate that makes playlists, once per new segment
  // (measured with 2 s segments; scales with the segment rate) and again
  // each minute for the window's segments older than the 60 s memory (a
  // DVR window longer than a minute).
  const isolatesMaking = Math.min(locations * isolates, playlistsMadeWorst)
  const measuredKeys = cached ? measured.kvKeysPerIsolateMinuteCached : measured.kvKeysPerIsolateMinuteUncached
  const kvReadKeys = isolatesMaking * (measuredKeys * 2 / segmentSeconds + Math.max(0, window - 60 / segmentSeconds))
  // Each location hashes a new segment about once (KV needs up to 60 s to
  // carry another location's record over); each hashing writes it to KV.
  const hashersPerSegment = cached ? locations * measured.hashFetchesPerNewSegment : Math.min(locations * isolates, viewers)
  const kvWrites = newSegments * hashersPerSegment
  const cpuMs = requestsPerMinute * (cached ? measured.cpuMsPerRequestCached : measured.cpuMsPerRequestUncached)
  const playlistPathOps = made => (cached ? made * measured.opsPerPlaylistMadeCached : made * measured.opsPerPollUncached) / viewers
  const month = x => x * MINUTES_PER_MONTH
  const over = (used, included, perMillion) => Math.max(0, used - included) / 1e6 * perMillion
  const cost = {
    base: PRICES.workersPaidMonthly,
    requests: over(month(requestsPerMinute), PRICES.requestsIncluded, PRICES.perMillionRequests),
    cpu: over(month(cpuMs), PRICES.cpuMsIncluded, PRICES.perMillionCpuMs),
    kvReads: over(month(kvReadKeys), PRICES.kvReadsIncluded, PRICES.perMillionKvReads),
    kvWrites: over(month(kvWrites), PRICES.kvWritesIncluded, PRICES.perMillionKvWrites)
  }
  cost.total = Object.values(cost).reduce((a, b) => a + b, 0)
  // Cloudflare's limits, in the order a deployment meets them. Subrequests
  // and CPU are per invocation: the worker's own budget (SUBREQUEST_BUDGET,
  // 45) and the measured CPU per request, whatever the number of viewers.
  const cpuPerRequest = cached ? measured.cpuMsPerRequestCached : measured.cpuMsPerRequestUncached
  const limits = [
    { name: 'Free plan: 100,000 requests a day', used: requestsPerMinute * 1440, limit: LIMITS.freeRequestsPerDay, plan: 'free' },
    { name: 'Free plan: 1,000 KV writes a day', used: kvWrites * 1440, limit: LIMITS.freeKvWritesPerDay, plan: 'free' },
    { name: 'Free plan: 10 ms CPU per request', used: cpuPerRequest, limit: LIMITS.freeCpuMsPerRequest, plan: 'free' },
    { name: 'KV: 1 write per second per key (locations hashing a new segment at once)', used: hashersPerSegment, limit: LIMITS.kvWritesPerKeyPerSecond, plan: 'paid' },
    { name: 'subrequests per invocation', used: 45, limit: LIMITS.subrequestsPaid, plan: 'paid' },
    { name: 'CPU per invocation (5 min)', used: cpuPerRequest, limit: 300_000, plan: 'paid' }
  ]
  const firstPaid = limits.find(l => l.plan === 'paid' && l.used > l.limit)
  return {
    viewers, segmentSeconds, window, share, ttlMs, cached, locations, isolates,
    requestsPerViewerMinute, perViewer, requestsPerMonth: month(requestsPerMinute),
    playlistsMadePerMinute: [playlistsMadeBest, playlistsMadeWorst],
    upstreamPlaylistFetchesPerViewerMinute: [playlistsMadeBest / viewers, playlistsMadeWorst / viewers],
    originPlaylistRequestsPerSecond: [playlistsMadeBest / 60, playlistsMadeWorst / 60],
    playlistPathOpsPerViewerMinute: [playlistPathOps(playlistsMadeBest), playlistPathOps(playlistsMadeWorst)],
    kvReadKeysPerMonth: month(kvReadKeys), kvWritesPerMonth: month(kvWrites), cpuMsPerMonth: month(cpuMs),
    cost, perViewerHour: cost.total / (viewers * MINUTES_PER_MONTH / 60),
    limits, firstPaidLimit: firstPaid?.name ?? 'none of those listed'
  }
}

/**
 * What the built-in tracker costs for `viewers` of one stream (one
 * rendition): objects needed, object requests (WebSocket messages received
 * count 1/20; connections and the worker's registrations count 1), duration
 * (an object with viewers is never idle long enough to hibernate), money.
 */
export function trackerModel ({ viewers, segmentSeconds = 2, isolatesMaking = 4, tracker = MEASURED_TRACKER }) {
  // Messages scale with segments per minute; measured with 2 s segments.
  const perSegmentRate = 2 / segmentSeconds
  const inPerViewerMinute = tracker.messagesInPerViewerMinute * perSegmentRate
  const outPerViewerMinute = tracker.messagesOutPerViewerMinute * perSegmentRate
  const messagesPerSecond = viewers * (inPerViewerMinute + outPerViewerMinute) / 60
  // Viewers one object can relay for within its share of a core, unless
  // something else sets the number (tracker.viewersPerObject).
  const viewersPerObject = tracker.viewersPerObject ??
    Math.floor(tracker.objectMessagesPerSecond * tracker.objectHeadroom * 60 / (inPerViewerMinute + outPerViewerMinute))
  const shards = Math.max(1, Math.ceil(viewers / viewersPerObject))
  const connectsPerMinute = viewers / tracker.sessionMinutes
  // Per new segment: one registration from each isolate making playlists
  // (to shard 0), and shard 0 passing it on to each other shard.
  const registrationsPerMinute = (60 / segmentSeconds) * (isolatesMaking + shards - 1)
  const month = x => x * MINUTES_PER_MONTH
  const objectRequests = month(viewers * inPerViewerMinute / DO_PRICES.wsMessagesPerRequest + connectsPerMinute + registrationsPerMinute)
  const gbSeconds = shards * DO_PRICES.objectGb * MINUTES_PER_MONTH * 60
  const over = (used, included, perMillion) => Math.max(0, used - included) / 1e6 * perMillion
  const cost = {
    objectRequests: over(objectRequests, DO_PRICES.requestsIncluded, DO_PRICES.perMillionRequests),
    duration: over(gbSeconds, DO_PRICES.gbSecondsIncluded, DO_PRICES.perMillionGbSeconds),
    workerRequests: month(connectsPerMinute) / 1e6 * PRICES.perMillionRequests
  }
  cost.total = cost.objectRequests + cost.duration + cost.workerRequests
  return {
    viewers, inPerViewerMinute, outPerViewerMinute, messagesPerSecond, viewersPerObject, shards,
    objectRequestsPerMonth: objectRequests, gbSecondsPerMonth: gbSeconds, cost,
    perViewerHour: cost.total / (viewers * MINUTES_PER_MONTH / 60)
  }
}

function printTracker (options) {
  const signalling = [
    ['outside a mesh', MEASURED_TRACKER],
    ['in a mesh', MEASURED_TRACKER_MESH],
    ['in a mesh, 10% churn a minute', MEASURED_TRACKER_MESH_CHURN]
  ]
  console.log('| viewers of one stream | signalling | tracker messages per viewer-minute, in / out | messages/s, all viewers | viewers per object (outside a mesh: at ' +
    `${MEASURED_TRACKER.objectHeadroom * 100}% of ${count(MEASURED_TRACKER.objectMessagesPerSecond)} msg/s; in a mesh: viewers / ${MEASURED_TRACKER_MESH.viewersPerObject}) | TRACKER_SHARDS | object requests/month | GB-s/month | $/month: object requests + duration + WebSocket worker requests = total | $ per 1,000 viewer-hours | share of the worker's own cost |`)
  console.log('|---|---|---|---|---|---|---|---|---|---|---|')
  const perMinute = x => (x < 10 ? x.toFixed(1) : x.toFixed(0))
  for (const [label, tracker] of signalling) for (const viewers of [1000, 10000, 100000]) {
    const worker = model({ ...options, viewers, cached: true })
    const t = trackerModel({ viewers, segmentSeconds: options.segmentSeconds, isolatesMaking: worker.locations * worker.isolates, tracker })
    const c = t.cost
    console.log(`| ${count(viewers)} | ${label} | ${perMinute(t.inPerViewerMinute)} / ${perMinute(t.outPerViewerMinute)} | ${count(t.messagesPerSecond)} | ${count(t.viewersPerObject)} | ${t.shards} | ` +
      `${count(t.objectRequestsPerMonth)} | ${count(t.gbSecondsPerMonth)} | ${money(c.objectRequests)} + ${money(c.duration)} + ${money(c.workerRequests)} = **${money(c.total)}** | ` +
      `${money(t.perViewerHour * 1000)} | ${(100 * c.total / worker.cost.total).toFixed(1)}% |`)
  }
}

/** The measured figures from `make cost --json`: per design, the largest run whose viewers kept their pace. */
function fromCostJson (file) {
  const runs = JSON.parse(readFileSync(file, 'utf8'))
  // At least half the player's 30 polls a minute (a shared machine may not keep up).
  const keptPace = r => r.perViewerMinute.workerRequests.playlist >= 0.5 * 60 / 2 && !r.perViewerMinute.restarted
  const pick = cached => runs.filter(r => (r.raw.ttl > 0) === cached && keptPace(r)).sort((a, b) => b.raw.viewers - a.raw.viewers)[0]
  const before = pick(false)
  const after = pick(true)
  const pathOps = r => ['upstreamFetches', 'kvReadKeys', 'kvWrites', 'cachePuts'].reduce((n, k) => n + (r.raw.totals.playlist.ops[k] ?? 0), 0)
  return {
    cpuMsPerRequestUncached: before ? before.perViewerMinute.cpuMsPerRequest : MEASURED.cpuMsPerRequestUncached,
    cpuMsPerRequestCached: after ? after.perViewerMinute.cpuMsPerRequest : MEASURED.cpuMsPerRequestCached,
    kvKeysPerIsolateMinuteUncached: before ? before.raw.totals.all.ops.kvReadKeys / (before.raw.seconds / 60) : MEASURED.kvKeysPerIsolateMinuteUncached,
    kvKeysPerIsolateMinuteCached: after ? after.raw.totals.all.ops.kvReadKeys / (after.raw.seconds / 60) : MEASURED.kvKeysPerIsolateMinuteCached,
    hashFetchesPerNewSegment: after?.perViewerMinute.hashFetchesPerNewSegment ?? MEASURED.hashFetchesPerNewSegment,
    opsPerPollUncached: before ? pathOps(before) / before.raw.totals.playlist.invocations : MEASURED.opsPerPollUncached,
    opsPerPlaylistMadeCached: after ? pathOps(after) / Math.max(1, after.raw.upstreamPlaylist) : MEASURED.opsPerPlaylistMadeCached
  }
}

/** The issue's target: playlist-path operations per viewer-minute at 10,000 viewers, before and after. */
function printTarget (options) {
  console.log('| 10,000 viewers of one playlist | locations | playlist-path operations per viewer-minute, uncached | with the micro-cache (1 isolate racing .. all) | fewer |')
  console.log('|---|---|---|---|---|')
  for (const locations of [1, 25]) {
    const before = model({ ...options, viewers: 10000, cached: false, locations }).playlistPathOpsPerViewerMinute[0]
    const [best, worst] = model({ ...options, viewers: 10000, cached: true, locations }).playlistPathOpsPerViewerMinute
    console.log(`| | ${locations} | ${before.toFixed(1)} | ${best.toFixed(4)} .. ${worst.toFixed(4)} | ${(before / worst).toFixed(0)}x .. ${(before / best).toFixed(0)}x |`)
  }
}

const money = x => (x >= 100 ? `$${x.toFixed(0)}` : `$${x.toFixed(2)}`)
const count = x => (x >= 1e9 ? `${(x / 1e9).toFixed(1)} B` : x >= 1e6 ? `${(x / 1e6).toFixed(1)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(x < 10 ? 2 : 0))

function printScales (options) {
  console.log('| viewers | design | locations | requests/month | upstream playlist fetches per viewer-minute (1 isolate racing .. all) | origin playlist requests/s | KV keys read / writes per month | CPU ms/month | $/month: requests + CPU + KV reads + KV writes + base = total | $ per 1,000 viewer-hours | first paid-plan limit met |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const viewers of [1000, 10000, 100000]) {
    for (const cached of [false, true]) {
      const m = model({ ...options, viewers, cached })
      const [best, worst] = m.upstreamPlaylistFetchesPerViewerMinute
      const [originBest, originWorst] = m.originPlaylistRequestsPerSecond
      const range = (a, b, d) => (a === b ? a.toFixed(d) : `${a.toFixed(d)} .. ${b.toFixed(d)}`)
      const c = m.cost
      console.log(`| ${count(viewers)} | ${cached ? `micro-cache ${m.ttlMs} ms` : 'uncached'} | ${m.locations} | ${count(m.requestsPerMonth)} | ` +
        `${range(best, worst, best === worst ? 1 : 4)} | ${range(originBest, originWorst, 0)} | ${count(m.kvReadKeysPerMonth)} / ${count(m.kvWritesPerMonth)} | ${count(m.cpuMsPerMonth)} | ` +
        `${money(c.requests)} + ${money(c.cpu)} + ${money(c.kvReads)} + ${money(c.kvWrites)} + ${money(c.base)} = **${money(c.total)}** | ${money(m.perViewerHour * 1000)} | ${m.firstPaidLimit} |`)
    }
  }
}

function printSensitivity (options) {
  const base = { ...options, viewers: 10000, cached: true }
  const row = (label, m) => console.log(`| ${label} | ${m.perViewer.toFixed(1)} | ${count(m.requestsPerMonth)} | ${money(m.cost.total)} | ${money(m.perViewerHour * 1000)} |`)
  console.log('| 10k viewers, micro-cache on | worker requests per viewer-minute | requests/month | $/month | $ per 1,000 viewer-hours |')
  console.log('|---|---|---|---|---|')
  for (const segmentSeconds of [2, 4, 6, 10]) row(`segment duration ${segmentSeconds} s`, model({ ...base, segmentSeconds }))
  for (const window of [6, 30, 100, 1000]) row(`window ${window} segments`, model({ ...base, window }))
  for (const share of [0, 0.5, 0.8, 0.95]) row(`P2P share ${share}`, model({ ...base, share }))
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      from: { type: 'string' },
      segment: { type: 'string' },
      window: { type: 'string' },
      share: { type: 'string' },
      ttl: { type: 'string' },
      isolates: { type: 'string' },
      sensitivity: { type: 'boolean' }
    }
  })
  const options = {
    segmentSeconds: Number(values.segment ?? 2),
    window: Number(values.window ?? 6),
    share: Number(values.share ?? 0.8),
    ttlMs: Number(values.ttl ?? 1000),
    isolates: Number(values.isolates ?? 4),
    measured: values.from ? fromCostJson(values.from) : MEASURED
  }
  console.log(`Inputs: segment ${options.segmentSeconds} s, window ${options.window}, P2P share ${options.share}, PLAYLIST_CACHE_MS ${options.ttlMs}, ` +
    `${options.isolates} isolates per location; measured: ${JSON.stringify(options.measured)}`)
  printScales(options)
  console.log('')
  printTarget(options)
  console.log('')
  printTracker(options)
  if (values.sensitivity) {
    console.log('')
    printSensitivity(options)
  }
}

// What viewers cost the worker, in operations counted by the worker itself:
// simulated viewers watch the local ffmpeg live feed through `wrangler dev`
// (local KV and Cache API), each doing what the browser half does:
//   - poll the media playlist every target duration (+-10%), starting at a
//     random moment of the first interval;
//   - for every segment it has not had yet (at join: the newest 3, where a
//     live player starts), fetch its `.torrent` (the magnet's xs=, to join
//     the swarm) and, with probability 1 - SHARE, the segment itself over
//     HTTP through the worker (the part it did not get from peers).
// Peers themselves are not simulated: SHARE stands for the measured P2P
// share (README, "P2P share").
//
// Each configuration runs against a fresh worker (fresh KV, fresh isolate)
// with BENCH_ENDPOINTS=true; the worker's own counts come from
// /_lt/bench/ops (reset after warm-up, read after a grace period, so
// background hashing and KV writes are in), upstream fetches are also
// counted by the origin as a cross-check. CPU: workerd's clock stands still
// while code runs, so the worker cannot time itself; the CPU time of the
// worker's workerd process (from /proc, wrangler's dev proxy excluded) over
// the run, divided by requests, is an upper bound per request (it includes
// local KV and Cache API simulation and HTTP parsing).
//
// Run:  make cost
//       make cost COST_ARGS='--viewers 50,200 --seconds 60 --share 0.5'
// Options (flag or environment): --viewers/VIEWERS (25,100), --seconds/
// SECONDS (40 per run), --share/SHARE (0.8), --ttls/TTLS (0,1000: the
// PLAYLIST_CACHE_MS values; 0 is the uncached design, which also runs with
// SEGMENT_CACHE=false, the others with the segment cache on), --segment-seconds/
// SEGMENT_SECONDS (2), --json FILE (write every run's numbers).
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

import { startOrigin } from '../scripts/origin.mjs'
import { eventually, sleep, startWorker } from '../tests/support/harness.mjs'

const { values: flags } = parseArgs({
  options: {
    viewers: { type: 'string' },
    seconds: { type: 'string' },
    share: { type: 'string' },
    ttls: { type: 'string' },
    'segment-seconds': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  }
})
const USAGE = 'usage: node bench/cost.mjs [--viewers 25,100] [--seconds 40] [--share 0.8] [--ttls 0,1000] [--segment-seconds 2] [--json FILE]'
if (flags.help) {
  console.log(USAGE)
  process.exit(0)
}
function option (flag, env, fallback) {
  return flags[flag] ?? process.env[env] ?? fallback
}
function numbers (text, what, valid) {
  const list = String(text).split(',').map(s => Number(s.trim()))
  if (list.length === 0 || !list.every(valid)) throw new Error(`${what}: bad value "${text}"\n${USAGE}`)
  return list
}
const VIEWERS = numbers(option('viewers', 'VIEWERS', '25,100'), '--viewers', n => Number.isInteger(n) && n > 0 && n <= 1000)
const [SECONDS] = numbers(option('seconds', 'SECONDS', '40'), '--seconds', n => n >= 10 && n <= 3600)
const [SHARE] = numbers(option('share', 'SHARE', '0.8'), '--share', n => n >= 0 && n <= 1)
const TTLS = numbers(option('ttls', 'TTLS', '0,1000'), '--ttls', n => Number.isInteger(n) && n >= 0 && n <= 30000)
const [SEGMENT_SECONDS] = numbers(option('segment-seconds', 'SEGMENT_SECONDS', '2'), '--segment-seconds', n => n >= 1 && n <= 10)
const LIST_SIZE = 6
/** Segments a viewer takes at join: hls.js starts about 3 target durations from the live edge. */
const JOIN_SEGMENTS = 3
const GRACE_MS = 3000
const REQUEST_TIMEOUT_MS = 10_000

const log = line => process.stderr.write(`[cost] ${line}\n`)

// --- CPU of the worker's workerd, from /proc ---------------------------------
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

function processStat (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), pgrp: Number(fields[2]), cpuTicks: Number(fields[11]) + Number(fields[12]) }
}

/** workerd processes of wrangler's process group that are not the dev proxy on `port`. */
function workerRuntimePids (worker) {
  const proxy = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' }).split('\n')
    .filter(line => line.split(/\s+/)[3] === `127.0.0.1:${worker.port}`)
    .map(line => /"workerd",pid=(\d+)/.exec(line)?.[1]).find(Boolean)
  const pids = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = processStat(entry)
      if (stat.name === 'workerd' && stat.pgrp === worker.pid && entry !== proxy) pids.push(entry)
    } catch {
      // The process ended.
    }
  }
  return pids
}

/** CPU ms by pid, of those still running. */
function cpuByPid (pids) {
  const found = new Map()
  for (const pid of pids) {
    try {
      found.set(pid, processStat(pid).cpuTicks * 1000 / CLOCK_TICKS)
    } catch {
      // The process ended.
    }
  }
  return found
}

/** CPU ms spent between two samples by the processes alive at both. */
function cpuBetween (before, after) {
  let sum = 0
  for (const [pid, ms] of after) if (before.has(pid)) sum += ms - before.get(pid)
  return sum
}

// --- one viewer ----------------------------------------------------------------
async function request (url, tally, kind) {
  const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  const bytes = Buffer.from(await response.arrayBuffer())
  tally.requests[kind]++
  tally.bytes[kind] += bytes.length
  if (response.status >= 500) tally.errors.push(`${kind} ${response.status}`)
  return { status: response.status, text: kind === 'playlist' ? bytes.toString('utf8') : '' }
}

/** Segment URIs of a playlist with the magnet (if any) just before each. */
function segmentsOf (text, playlistUrl) {
  const lines = text.split(/\r?\n/)
  const segments = []
  let magnet = null
  for (const line of lines) {
    if (line.startsWith('#EXT-X-LT-MAGNET:')) magnet = line.slice('#EXT-X-LT-MAGNET:'.length)
    else if (line && !line.startsWith('#')) {
      const torrent = magnet && new URLSearchParams(magnet.slice('magnet:?'.length)).get('xs')
      segments.push({ url: new URL(line, playlistUrl).href, torrent })
      magnet = null
    }
  }
  return segments
}

const targetDurationOf = text => Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(text)?.[1] ?? SEGMENT_SECONDS)

async function viewer (playlistUrl, deadline, tally) {
  const had = new Set()
  let joined = false
  let interval = SEGMENT_SECONDS * 1000
  await sleep(Math.random() * interval)
  while (performance.now() < deadline) {
    const next = performance.now() + interval * (0.9 + 0.2 * Math.random())
    try {
      const playlist = await request(playlistUrl, tally, 'playlist')
      if (playlist.status === 200) {
        interval = targetDurationOf(playlist.text) * 1000
        let segments = segmentsOf(playlist.text, playlistUrl)
        if (!joined) {
          segments = segments.slice(-JOIN_SEGMENTS)
          joined = true
        }
        for (const segment of segments.filter(s => !had.has(s.url))) {
          had.add(segment.url)
          tally.segmentsSeen.add(segment.url)
          if (segment.torrent) await request(segment.torrent, tally, 'torrent')
          if (Math.random() >= SHARE) await request(segment.url, tally, 'segment')
        }
      }
    } catch (error) {
      tally.errors.push(String(error.cause?.code ?? error.name ?? error))
    }
    await sleep(Math.max(0, Math.min(next, deadline) - performance.now()))
  }
}

// --- one run --------------------------------------------------------------------
async function run (origin, viewers, ttl) {
  const worker = await startWorker({
    vars: {
      UPSTREAM: origin.url,
      TRACKERS: 'wss://tracker.invalid/announce',
      BENCH_ENDPOINTS: 'true',
      PLAYLIST_CACHE_MS: String(ttl),
      SEGMENT_CACHE: ttl > 0 ? 'true' : 'false'
    }
  })
  try {
    const playlistUrl = `${worker.url}/live/index.m3u8`
    // Warm-up: the live window hashed, as it is once a stream has viewers.
    const warm = await eventually(async () => {
      const response = await fetch(playlistUrl, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
      const text = await response.text()
      const state = response.headers.get('x-live-torrent') ?? ''
      const m = /^annotated (\d+)\/(\d+)/.exec(state)
      return m && m[1] === m[2] && Number(m[2]) >= LIST_SIZE && text
    }, { what: 'a fully annotated live window', timeoutMs: 60_000, intervalMs: 250 })
    const startWindow = new Set(segmentsOf(warm, playlistUrl).map(s => s.url))
    await sleep(GRACE_MS) // warm-up's background KV writes
    const runtime = workerRuntimePids(worker)
    await fetch(`${worker.url}/_lt/bench/ops?reset=1`).then(r => r.arrayBuffer())
    const hitsBefore = origin.hits()
    const cpuBefore = cpuByPid(runtime)
    const tally = { requests: { playlist: 0, torrent: 0, segment: 0 }, bytes: { playlist: 0, torrent: 0, segment: 0 }, errors: [], segmentsSeen: new Set() }
    const started = performance.now()
    const deadline = started + SECONDS * 1000
    await Promise.all(Array.from({ length: viewers }, () => viewer(playlistUrl, deadline, tally)))
    const seconds = (performance.now() - started) / 1000
    await sleep(GRACE_MS)
    const cpu = cpuBetween(cpuBefore, cpuByPid(runtime))
    const totals = await fetch(`${worker.url}/_lt/bench/ops`).then(r => r.json())
    const hits = origin.hits()
    const delta = p => (hits[p] ?? 0) - (hitsBefore[p] ?? 0)
    const upstreamPlaylist = delta('/live/index.m3u8')
    const upstreamAll = Object.keys(hits).reduce((sum, p) => sum + delta(p), 0)
    const newSegments = [...tally.segmentsSeen].filter(u => !startWindow.has(u)).length
    // The counts live in the isolate: if workerd restarted it during the run
    // (wrangler dev does that now and then), they are incomplete.
    const clientRequests = tally.requests.playlist + tally.requests.torrent + tally.requests.segment
    const restarted = totals.all.invocations < clientRequests
    return { viewers, ttl, seconds, tally, totals, upstreamPlaylist, upstreamAll, newSegments, cpu, runtimePids: runtime.length, restarted }
  } finally {
    await worker.stop()
  }
}

// --- report ----------------------------------------------------------------------
const f = (v, d = 2) => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(d)) : 'n/a')

function perViewerMinute (r) {
  const vm = r.viewers * r.seconds / 60
  const route = name => r.totals[name] ?? { invocations: 0, ops: {} }
  const op = (name, field) => route(name).ops[field] ?? 0
  const all = name => op('all', name)
  const hashing = op('playlist', 'upstreamFetches') - r.upstreamPlaylist
  const requests = r.tally.requests.playlist + r.tally.requests.torrent + r.tally.requests.segment
  const bytes = r.tally.bytes.playlist + r.tally.bytes.torrent + r.tally.bytes.segment
  // The playlist path's operations beyond its invocation and one cache
  // lookup per poll (hit or miss, the same call): what the micro-cache
  // exists to remove.
  const playlistOps = op('playlist', 'upstreamFetches') + op('playlist', 'kvReadKeys') + op('playlist', 'kvWrites') +
    op('playlist', 'cachePuts')
  return {
    viewers: r.viewers,
    ttl: r.ttl,
    viewerMinutes: vm,
    workerRequests: { playlist: route('playlist').invocations / vm, torrent: route('torrent').invocations / vm, segment: route('segment').invocations / vm, all: route('all').invocations / vm },
    clientRequests: requests / vm,
    upstreamFetches: { all: all('upstreamFetches') / vm, playlist: r.upstreamPlaylist / vm, hashing: hashing / vm, segmentPassthrough: op('segment', 'upstreamFetches') / vm, originCounted: r.upstreamAll / vm },
    kv: { readOps: all('kvReads') / vm, readKeys: all('kvReadKeys') / vm, writes: all('kvWrites') / vm, memoryHits: all('memoryHits') / vm },
    cache: { hits: all('cacheHits') / vm, misses: all('cacheMisses') / vm, puts: all('cachePuts') / vm, errors: all('cacheErrors') / vm, coalesced: all('coalesced') / vm },
    playlistPathOps: playlistOps / vm,
    playlistPathOpsPerPoll: playlistOps / Math.max(1, route('playlist').invocations),
    bytesServed: { all: bytes / vm, playlist: r.tally.bytes.playlist / vm, torrent: r.tally.bytes.torrent / vm, segment: r.tally.bytes.segment / vm },
    cpuMsPerRequest: r.cpu / Math.max(1, route('all').invocations),
    hashFetchesPerNewSegment: r.newSegments ? hashing / r.newSegments : NaN,
    newSegments: r.newSegments,
    errors: r.tally.errors.length,
    restarted: r.restarted
  }
}

const origin = await startOrigin({ live: true, segmentSeconds: SEGMENT_SECONDS, listSize: LIST_SIZE })
const results = []
try {
  for (const viewers of VIEWERS) {
    for (const ttl of TTLS) {
      log(`${viewers} viewers, PLAYLIST_CACHE_MS=${ttl}, ${SECONDS} s, P2P share ${SHARE}`)
      let r = await run(origin, viewers, ttl)
      if (r.restarted) {
        log('the worker\'s isolate restarted during the run (its counts are incomplete): running it again')
        r = await run(origin, viewers, ttl)
      }
      results.push({ raw: { ...r, tally: { ...r.tally, segmentsSeen: r.tally.segmentsSeen.size } }, perViewerMinute: perViewerMinute(r) })
    }
  }
} finally {
  await origin.stop()
}

console.log(`Cost per viewer-minute, counted by the worker under wrangler dev (local KV + Cache API): live ffmpeg feed, ` +
  `${SEGMENT_SECONDS} s segments, ${LIST_SIZE}-segment window, P2P share ${SHARE} (segments over HTTP with probability ${f(1 - SHARE)}), ${SECONDS} s per run`)
console.log('| viewers | PLAYLIST_CACHE_MS | worker requests: playlist / torrent / segment / all | upstream fetches: playlist / hashing / segment passthrough (origin counted) | KV read ops / keys / writes (memory hits) | cache hits / misses / puts (coalesced) | playlist-path ops beyond invocation + cache lookup | bytes served | workerd CPU ms per request (upper bound) | hash fetches per new segment |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const { perViewerMinute: p } of results) {
  const w = p.workerRequests
  const u = p.upstreamFetches
  console.log(`| ${p.viewers} | ${p.ttl}${p.ttl === 0 ? ' (uncached)' : ''} | ${f(w.playlist)} / ${f(w.torrent)} / ${f(w.segment)} / ${f(w.all)} | ` +
    `${f(u.playlist, 3)} / ${f(u.hashing, 3)} / ${f(u.segmentPassthrough)} (${f(u.originCounted)}) | ` +
    `${f(p.kv.readOps, 3)} / ${f(p.kv.readKeys, 3)} / ${f(p.kv.writes, 3)} (${f(p.kv.memoryHits)}) | ` +
    `${f(p.cache.hits)} / ${f(p.cache.misses, 3)} / ${f(p.cache.puts, 3)} (${f(p.cache.coalesced, 3)}) | ${f(p.playlistPathOps, 3)} | ` +
    `${f(p.bytesServed.all / 1e6)} MB | ${f(p.cpuMsPerRequest)} | ${f(p.hashFetchesPerNewSegment)} (${p.newSegments} new) |`)
}
console.log('')
for (const viewers of VIEWERS) {
  const before = results.find(r => r.perViewerMinute.viewers === viewers && r.perViewerMinute.ttl === 0)?.perViewerMinute
  for (const { perViewerMinute: after } of results.filter(r => r.perViewerMinute.viewers === viewers && r.perViewerMinute.ttl > 0)) {
    if (!before) continue
    console.log(`- ${viewers} viewers: playlist-path operations per viewer-minute ${f(before.playlistPathOps, 3)} -> ${f(after.playlistPathOps, 3)} ` +
      `(${f(before.playlistPathOps / after.playlistPathOps, 1)}x fewer with PLAYLIST_CACHE_MS=${after.ttl}); per poll ` +
      `${f(before.playlistPathOpsPerPoll, 3)} -> ${f(after.playlistPathOpsPerPoll, 4)} (${f(before.playlistPathOpsPerPoll / after.playlistPathOpsPerPoll, 1)}x); ` +
      `upstream playlist fetches ${f(before.upstreamFetches.playlist)} -> ${f(after.upstreamFetches.playlist, 3)}; ` +
      `CPU per request ${f(before.cpuMsPerRequest)} -> ${f(after.cpuMsPerRequest)} ms`)
  }
}
const errors = results.reduce((n, r) => n + r.perViewerMinute.errors, 0)
const incomplete = results.filter(r => r.perViewerMinute.restarted).length
if (incomplete) console.log(`- ${incomplete} run(s) lost counts to an isolate restart twice in a row: their numbers are too low`)
const disagree = results.filter(r => Math.abs(r.raw.totals.all.ops.upstreamFetches - r.raw.upstreamAll) > 0)
console.log(`- worker's upstream count vs the origin's: ${disagree.length === 0 ? 'equal in every run' : `differs in ${disagree.length} run(s): ` + disagree.map(r => `${r.raw.totals.all.ops.upstreamFetches} vs ${r.raw.upstreamAll}`).join(', ')}`)
console.log(`- errors (5xx, timeouts, network): ${errors}`)
if (flags.json) writeFileSync(flags.json, JSON.stringify(results, null, 2))
process.exitCode = errors > 0 ? 1 : 0

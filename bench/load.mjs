// Load test: many viewers polling the live playlist through the worker under
// `wrangler dev` while ffmpeg publishes new live segments, all on 127.0.0.1.
// Only playlists are requested, so every upstream fetch of a segment is one the
// worker made to hash it: with no dedupe, a segment that is missing from KV is
// hashed once per concurrent request that sees it missing (the thundering herd).
//
// Modes, run one after the other, DURATION split evenly between them:
//   player  each viewer reloads the playlist every SEGMENT_SECONDS (+-10%),
//           start times spread over the first interval: what players do;
//   tight   each viewer reloads in a closed loop with a random 0..PAUSE_MS
//           pause between requests: as much load as the machine can take;
//   burst   viewers wait for a new segment in the origin's playlist file, then
//           all CONCURRENCY of them request the playlist at the same instant
//           (the thundering herd); the next burst waits for a segment that
//           appears after every answer of this one arrived.
//
// Run:  make load                  (inside a loopback-only network namespace)
//       make load LOAD_ARGS='--concurrency 100 --modes burst --direct'
//       node bench/load.mjs --help
// Flags or environment (flag wins): --concurrency/CONCURRENCY (200),
// --duration/DURATION (60, seconds, all modes together), --segment-seconds/
// SEGMENT_SECONDS (2), --modes/MODES (player,tight,burst), --pause-ms/PAUSE_MS
// (100), --timeout-ms/TIMEOUT_MS (10000 per request, hls.js's own playlist
// timeout; no answer by then counts as "no answer"), --max-fetches/
// MAX_FETCHES_PER_SEGMENT (2: more upstream fetches of any new segment is a
// failure too), --direct/DIRECT=1 (see below).
//
// Through `wrangler dev`'s port, every request also crosses wrangler's dev
// proxy (a second workerd, the "ProxyWorker"), which is not part of the
// deployed worker. It loses some requests under bursts (they are never
// answered, even for /_lt/health, while the same bursts sent straight to the
// worker are all answered). --direct finds the worker's own workerd socket
// (with `ss`) and sends the load there instead: the same worker, runtime and
// local KV, without wrangler's proxy.
//
// Columns: latency is request sent to body read, of the answered requests;
// "fully annotated" is the share of 200 answers with `x-live-torrent:
// annotated N/N`; a new segment is one listed in a playlist a viewer got during
// the mode and not listed at the start (after the warm-up hashed the first
// window); its upstream fetches are the origin's hit count for its path at the
// end (after a grace period for background hashing), whichever mode caused
// them; upstream playlist fetches/s are the origin's hits on the playlist.
// Exit status 1 if any answer was 5xx or any request failed (no answer within
// the timeout, network error), or a new segment was fetched more often than
// --max-fetches when that is set; the table is printed first.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'

import { startOrigin } from '../scripts/origin.mjs'
import { sleep, startWorker } from '../tests/support/harness.mjs'
import { percentile } from './percentile.mjs'

const USAGE = 'usage: node bench/load.mjs [--concurrency N] [--duration S] [--segment-seconds S] ' +
  '[--modes player,tight,burst] [--pause-ms MS] [--timeout-ms MS] [--max-fetches N] [--direct]'
const MODES = ['player', 'tight', 'burst']
const LIST_SIZE = 6
const WARMUP_TIMEOUT_MS = 60_000
/** After the last request: lets the worker's background hashing (waitUntil) finish. */
const GRACE_MS = 3_000
/** How often the burst mode reads the origin's playlist file (not an HTTP hit). */
const WATCH_INTERVAL_MS = 20

const { values: flags } = parseArgs({
  options: {
    concurrency: { type: 'string' },
    duration: { type: 'string' },
    'segment-seconds': { type: 'string' },
    modes: { type: 'string' },
    'pause-ms': { type: 'string' },
    'timeout-ms': { type: 'string' },
    'max-fetches': { type: 'string' },
    direct: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (flags.help) {
  console.log(USAGE)
  process.exit(0)
}
function numberOption (flag, env, fallback, valid) {
  const text = flags[flag] ?? process.env[env] ?? fallback
  if (text === undefined || text === '') return undefined
  const value = Number(text)
  if (!valid(value)) throw new Error(`--${flag} / ${env}: bad value "${text}"\n${USAGE}`)
  return value
}
const positiveInt = n => Number.isInteger(n) && n > 0
const CONCURRENCY = numberOption('concurrency', 'CONCURRENCY', '200', positiveInt)
const DURATION_S = numberOption('duration', 'DURATION', '60', n => n > 0 && n <= 3600)
const SEGMENT_SECONDS = numberOption('segment-seconds', 'SEGMENT_SECONDS', '2', n => n >= 0.5 && n <= 30)
const PAUSE_MS = numberOption('pause-ms', 'PAUSE_MS', '100', n => n >= 0)
const TIMEOUT_MS = numberOption('timeout-ms', 'TIMEOUT_MS', '10000', positiveInt)
// One isolate hashes each new segment once; 2 leaves room for a request that
// claimed a segment and was cancelled before it finished.
const MAX_FETCHES = numberOption('max-fetches', 'MAX_FETCHES_PER_SEGMENT', 2, positiveInt)
const DIRECT = flags.direct ?? ['1', 'true', 'yes'].includes(process.env.DIRECT ?? '')
const modes = (flags.modes ?? process.env.MODES ?? MODES.join(',')).split(',').map(s => s.trim()).filter(Boolean)
if (modes.length === 0 || modes.some(m => !MODES.includes(m))) throw new Error(`--modes: one or more of ${MODES.join(',')}\n${USAGE}`)
const MODE_MS = (DURATION_S * 1000) / modes.length

const log = line => process.stderr.write(`[load] ${line}\n`)

// --- HTTP client ------------------------------------------------------------
// undici's own request() with a pool as large as the viewer count, when
// undici is installed (wrangler brings it); otherwise Node's fetch, whose
// default pool has no connection limit either. Keep-alive either way.
let client
try {
  const { Agent, request } = await import('undici')
  const dispatcher = new Agent({ connections: CONCURRENCY + 8, keepAliveTimeout: 30_000, pipelining: 1 })
  client = {
    name: `undici.request, keep-alive, pool of ${CONCURRENCY + 8} connections`,
    async get (url) {
      const { statusCode, headers, body } = await request(url, {
        dispatcher, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS, signal: AbortSignal.timeout(TIMEOUT_MS)
      })
      return { status: statusCode, state: headers['x-live-torrent'] ?? null, text: await body.text() }
    },
    close: () => dispatcher.close()
  }
} catch {
  client = {
    name: 'fetch, keep-alive, unbounded pool',
    async get (url) {
      const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) })
      return { status: response.status, state: response.headers.get('x-live-torrent'), text: await response.text() }
    },
    close: async () => {}
  }
}

// --- measurement ------------------------------------------------------------
/** Paths of the media segments a playlist lists, resolved against its URL. */
function segmentPaths (text, playlistUrl) {
  return text.split('\n').map(l => l.trim()).filter(l => l && !l.startsWith('#')).map(uri => new URL(uri, playlistUrl).pathname)
}

const fullyAnnotated = state => {
  const m = /^annotated (\d+)\/(\d+)\b/.exec(state ?? '')
  return m !== null && m[1] === m[2] && m[2] !== '0'
}

function newModeStats (mode) {
  return { mode, latencies: [], ok: 0, c4xx: 0, c5xx: 0, other: 0, timeouts: 0, net: 0, errors: new Map(), full: 0, bursts: 0, ms: 0, playlistHits: 0 }
}

/** path -> { mode, at }, for segments not in the window at the start. */
const newSegments = new Map()
let startWindow = new Set()

async function playlistRequest (url, stats) {
  const started = performance.now()
  try {
    const { status, state, text } = await client.get(url)
    stats.latencies.push(performance.now() - started)
    if (status >= 500) {
      stats.c5xx++
      const why = `${status} ${text.replace(/\s+/g, ' ').trim().slice(0, 160)}`
      stats.errors.set(why, (stats.errors.get(why) ?? 0) + 1)
    }
    else if (status >= 400) stats.c4xx++
    else if (status >= 200 && status < 300) stats.ok++
    else stats.other++
    if (status === 200) {
      if (fullyAnnotated(state)) stats.full++
      for (const p of segmentPaths(text, url)) {
        if (!startWindow.has(p) && !newSegments.has(p)) newSegments.set(p, { mode: stats.mode, at: performance.now() })
      }
    }
  } catch (error) {
    const code = [error.cause?.code, error.code, error.name].find(c => typeof c === 'string') ?? String(error)
    if (code === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      stats.timeouts++
    } else {
      stats.net++
      stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1)
    }
  }
}

async function runPlayer (url, stats, deadline) {
  const interval = SEGMENT_SECONDS * 1000
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    await sleep(Math.random() * interval)
    while (performance.now() < deadline) {
      const next = performance.now() + interval * (0.9 + 0.2 * Math.random())
      await playlistRequest(url, stats)
      await sleep(Math.max(0, Math.min(next, deadline) - performance.now()))
    }
  }))
}

async function runTight (url, stats, deadline) {
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < deadline) {
      await playlistRequest(url, stats)
      await sleep(Math.random() * PAUSE_MS)
    }
  }))
}

async function lastListed (file) {
  const text = await fs.readFile(file, 'utf8').catch(() => '')
  return text.split('\n').map(l => l.trim()).filter(l => l && !l.startsWith('#')).pop() ?? null
}

async function runBurst (url, stats, deadline, playlistFile) {
  let last = await lastListed(playlistFile)
  while (performance.now() < deadline) {
    const now = await lastListed(playlistFile)
    if (now === null || now === last) {
      await sleep(WATCH_INTERVAL_MS)
      continue
    }
    stats.bursts++
    await Promise.all(Array.from({ length: CONCURRENCY }, () => playlistRequest(url, stats)))
    // A segment that appeared while the burst was answered is not "just
    // appeared" any more (late requests of the burst may have hashed it):
    // wait for the next one.
    last = await lastListed(playlistFile)
  }
}

/** The parent pid of `pid`, from /proc. */
function parentPid (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]
}

/**
 * URL of the worker's own workerd, behind wrangler's dev proxy: a loopback
 * port of a workerd that is a sibling (same wrangler parent) of the one that
 * owns `worker.port`, and answers /_lt/health like the worker does.
 */
async function directUrl (worker) {
  const listening = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' }).split('\n')
    .map(line => ({ address: line.split(/\s+/)[3] ?? '', pid: /"workerd",pid=(\d+)/.exec(line)?.[1] }))
    .filter(l => l.pid && l.address.startsWith('127.0.0.1:'))
  const proxy = listening.find(l => l.address === `127.0.0.1:${worker.port}`)
  if (!proxy) throw new Error(`--direct: no workerd listens on ${worker.url}`)
  const parent = parentPid(proxy.pid)
  for (const { address, pid } of listening) {
    if (pid === proxy.pid || parentPid(pid) !== parent) continue
    try {
      const response = await fetch(`http://${address}/_lt/health`, { redirect: 'manual', signal: AbortSignal.timeout(2000) })
      if (response.status === 200 && /"ok":\s*true/.test(await response.text())) return `http://${address}`
    } catch {
      // Not the worker's HTTP socket.
    }
  }
  throw new Error('--direct: found no workerd socket behind wrangler\'s proxy that answers /_lt/health')
}

// --- run ----------------------------------------------------------------------
const origin = await startOrigin({ live: true, segmentSeconds: SEGMENT_SECONDS, listSize: LIST_SIZE })
let worker
let target
const results = []
let otherUpstream = 0
const cpuBefore = process.cpuUsage()
const runStarted = performance.now()
try {
  worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: 'wss://tracker.invalid/announce' } })
  target = DIRECT ? await directUrl(worker) : worker.url
  const url = `${target}/live/index.m3u8`
  if (new URL(url).hostname !== '127.0.0.1') throw new Error(`not loopback: ${url}`)
  const playlistFile = path.join(origin.dir, 'live', 'index.m3u8')

  // Warm-up: a full live window, every segment of it hashed.
  const warmupDeadline = Date.now() + WARMUP_TIMEOUT_MS
  for (;;) {
    const { status, state, text } = await client.get(url)
    const listed = status === 200 ? segmentPaths(text, url) : []
    if (listed.length >= LIST_SIZE && fullyAnnotated(state)) {
      startWindow = new Set(listed)
      break
    }
    if (Date.now() > warmupDeadline) throw new Error(`warm-up: no full, fully annotated window after ${WARMUP_TIMEOUT_MS} ms (last: ${status} ${state})`)
    await sleep(250)
  }
  const hitsAtStart = origin.hits()
  log(`warm-up done: ${startWindow.size} segments hashed; ${CONCURRENCY} viewers, ${modes.join(' -> ')}, ` +
    `${(MODE_MS / 1000).toFixed(0)} s each, against ${url}${DIRECT ? ' (direct)' : ''}; client: ${client.name}`)

  for (const mode of modes) {
    const stats = newModeStats(mode)
    const playlistHitsBefore = origin.hits()['/live/index.m3u8'] ?? 0
    const started = performance.now()
    const deadline = started + MODE_MS
    if (mode === 'player') await runPlayer(url, stats, deadline)
    else if (mode === 'tight') await runTight(url, stats, deadline)
    else await runBurst(url, stats, deadline, playlistFile)
    stats.ms = performance.now() - started
    stats.playlistHits = (origin.hits()['/live/index.m3u8'] ?? 0) - playlistHitsBefore
    log(`${mode}: ${stats.latencies.length + stats.timeouts + stats.net} requests in ${(stats.ms / 1000).toFixed(1)} s`)
    results.push(stats)
  }
  await sleep(GRACE_MS)

  const hits = origin.hits()
  for (const [p, n] of Object.entries(hits)) {
    if (p === '/live/index.m3u8' || newSegments.has(p)) continue
    otherUpstream += n - (hitsAtStart[p] ?? 0)
  }
  for (const [p, seg] of newSegments) seg.fetches = hits[p] ?? 0
  if (results.some(r => r.c5xx > 0 || r.timeouts > 0 || r.net > 0)) {
    // Something to look at: what wrangler/workerd said about it.
    const said = worker.output().split('\n').filter(l => /error|exception|reload|restart|changed|warn|✘|\b5\d\d\b/i.test(l))
    log(`wrangler output mentioning errors (${said.length} lines, last 20):\n${said.slice(-20).join('\n')}`)
  }
} finally {
  await client.close().catch(() => {})
  await worker?.stop()
  await origin.stop()
}
const cpu = process.cpuUsage(cpuBefore)
const cpuShare = (cpu.user + cpu.system) / 1000 / (performance.now() - runStarted)

// --- report -------------------------------------------------------------------
const f = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a')
const modeNote = {
  player: `each viewer every ${SEGMENT_SECONDS} s`,
  tight: `closed loop, 0-${PAUSE_MS} ms pause`,
  burst: 'all viewers at once per new segment'
}
const via = DIRECT ? 'straight to the worker\'s workerd under wrangler dev (--direct, bypassing wrangler\'s dev proxy)' : 'through wrangler dev\'s port (its dev proxy included)'
console.log(`Load ${via}: ${CONCURRENCY} viewers polling /live/index.m3u8 of a live ffmpeg feed ` +
  `(${SEGMENT_SECONDS} s segments, ${LIST_SIZE}-segment window), loopback only, ${client.name}, ${TIMEOUT_MS / 1000} s timeout`)
console.log('| mode | s | requests | req/s | p50 ms | p99 ms | max ms | 2xx / 4xx / 5xx / no answer / net err | fully annotated | new segments | upstream fetches per new segment, mean / max | upstream playlist fetches/s : viewer req/s |')
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|')
let failed = false
let worstFetches = 0
for (const s of results) {
  const sorted = s.latencies.sort((a, b) => a - b)
  const requests = sorted.length + s.timeouts + s.net
  const secs = s.ms / 1000
  const segs = [...newSegments.values()].filter(seg => seg.mode === s.mode)
  const fetches = segs.map(seg => seg.fetches)
  const mean = fetches.length ? fetches.reduce((a, b) => a + b, 0) / fetches.length : NaN
  const max = fetches.length ? Math.max(...fetches) : NaN
  if (fetches.length) worstFetches = Math.max(worstFetches, max)
  const ok200 = s.ok
  if (s.c5xx > 0 || s.timeouts > 0 || s.net > 0) failed = true
  const note = s.mode === 'burst' ? `${modeNote.burst} (${s.bursts} bursts)` : modeNote[s.mode]
  console.log(`| ${s.mode}: ${note} | ${f(secs)} | ${requests} | ${f(requests / secs)} | ${f(percentile(sorted, 0.5))} | ` +
    `${f(percentile(sorted, 0.99))} | ${f(sorted[sorted.length - 1])} | ${s.ok} / ${s.c4xx} / ${s.c5xx} / ${s.timeouts} / ${s.net}${s.other ? ` (+${s.other} other)` : ''} | ` +
    `${ok200 ? f((100 * s.full) / ok200) : 'n/a'}% | ${segs.length} | ${f(mean)} / ${fetches.length ? max : 'n/a'} | ` +
    `${f(s.playlistHits / secs)} : ${f(requests / secs)} |`)
}
console.log('')
for (const s of results) {
  const fetches = [...newSegments.values()].filter(seg => seg.mode === s.mode).sort((a, b) => a.at - b.at).map(seg => seg.fetches)
  console.log(`- ${s.mode}: upstream fetches of each new segment, in order of appearance: ${fetches.join(' ') || '(none)'}`)
  if (s.errors.size) console.log(`  ${s.mode}: errors: ${[...s.errors].map(([why, n]) => `${why} (x${n})`).join('; ')}`)
}
console.log(`- other upstream requests during the run (not the playlist, not a new segment): ${otherUpstream}`)
console.log(`- load generator CPU: ${f(100 * cpuShare, 0)}% of one core over the whole run (2-core machine shared with wrangler and ffmpeg)`)
const over = MAX_FETCHES !== undefined && worstFetches > MAX_FETCHES
console.log(`- herd bound: at most ${worstFetches} upstream fetches of one new segment` +
  (MAX_FETCHES === undefined ? ' (no bound enforced; set --max-fetches / MAX_FETCHES_PER_SEGMENT to check one)' : `; bound ${MAX_FETCHES}: ${over ? 'EXCEEDED' : 'ok'}`))
const errors5xx = results.reduce((a, s) => a + s.c5xx, 0)
const errorsNet = results.reduce((a, s) => a + s.net, 0)
const timeouts = results.reduce((a, s) => a + s.timeouts, 0)
if (timeouts > 0 && !DIRECT) {
  console.log('- requests with no answer: wrangler\'s dev proxy loses requests in bursts (even /_lt/health); compare with --direct, which bypasses it')
}
console.log(`- result: ${errors5xx} 5xx, ${timeouts} without an answer within ${TIMEOUT_MS / 1000} s, ${errorsNet} network errors` +
  `${failed || over ? ' -> FAIL' : ' -> ok'}`)
process.exitCode = failed || over ? 1 : 0

// Load on the WebTorrent tracker: hundreds (or thousands) of simulated
// viewers, each one WebSocket, signalling on the live feed's swarms the way
// the page client does, against the worker's built-in tracker
// (docs/tracker.md) or, for comparison, the npm bittorrent-tracker server
// (scripts/tracker.mjs, its own process) that the tests used before.
//
// One run per (viewer count, mode, tracker, deflate): a fresh worker under
// `wrangler dev` (BENCH_ENDPOINTS=true; TRACKERS unset for the built-in
// tracker) in front of one shared ffmpeg live origin (2 s segments, a
// 6-segment window). The viewers' WebSockets go to the magnets' `tr=` URL
// (the built-in tracker: ws://127.0.0.1:<port>/_lt/tracker/<stream>). One
// poller for the whole audience reads the playlist through the worker once
// per target duration (the viewers' own polls are what bench/load.mjs and
// bench/cost.mjs measure; here only the tracker is under load).
//
// --mode segments (the default; the page client before 2026-12-05): every
// viewer announces every segment's swarm:
//   - a segment that appears in the playlist: every viewer, at a random moment
//     within one target duration (players poll out of phase), announces
//     `started` with 2-5 offers (--offers; numwant = offers, as the client's
//     offer budget did), each offer an SDP-sized (~1.5 KB) string;
//   - `completed` (left 0) 300-1500 ms after `started` (--complete-ms);
//   - `stopped` when the segment has left the playlist's window, again at a
//     random moment within one target duration.
// The whole audience is there at once and starts with the next new segment.
// The first window's worth of segments (--ramp-segments, default the window
// length) is a ramp: counts and latencies are kept for the --seconds after it,
// when every viewer is in about one window of swarms.
//
// --mode mesh (public/_lt/client/stream-mesh.js, segment-swarms.js,
// offer-budget.js, with bittorrent-tracker 11's WebSocket client as webtorrent
// 2.8.5 uses it). Modelling choices:
//   - the stream swarm: info-hash SHA-1("live-torrent stream swarm <stream>"),
//     <stream> the built-in tracker URL's stream id (for another tracker the
//     playlist URL without query), as streamSwarmHash / src/tracker.rs
//     stream_swarm_hash. The worker registers it with the segments.
//   - arrival: the audience arrives spread uniformly over --ramp-segments
//     target durations (sockets are opened before, to measure them apart). An
//     arriving viewer announces the stream swarm `started` with the client's
//     offers for it (offer-budget.js streamOffers: what it misses of
//     --mesh-links links, at most 5, as bittorrent-tracker makes at most 5),
//     then joins every segment
//     of the window it finds (the client joins all that its first playlist
//     lists) while it has no link, so it announces them.
//   - a link: a stream-swarm offer that is answered; both ends have the link
//     when the answer reaches the offerer (the real WebRTC set-up, ~0.3-1 s,
//     is not modelled: a joiner gets its first link within milliseconds here,
//     so it announces fewer segments than a real one). A second link between
//     the same two viewers is not kept (stream-mesh.js onWire). The real client
//     answers every offer: the mesh runs in docs/scale.md use --answer-share 1.
//   - segments: a segment listed while the viewer has at least one link is
//     not announced at all (offer-budget.js announcesSegment). One listed while
//     it has none is announced as in segments mode, but with the client's
//     budget of offers (offersPerAnnounce: links + 1, at most 5), i.e. 1 (--offers is for
//     segments mode only); such a segment goes on announcing after a link
//     appears (`completed`, `stopped`, as the client's torrent keeps its
//     trackers). A viewer that loses every link announces new segments again.
//   - `stopped` for a segment when it leaves the playlist (as in segments
//     mode), but no sooner than 5 s after its `started` (MIN_MEMBERSHIP_MS).
//     The client keeps a segment's torrent until 24 newer ones exist
//     (data-max-torrents), so its `stopped` comes later; the frames are the
//     same, one `stopped` per announced segment.
//   - re-announce: bittorrent-tracker (re)starts its interval timer at every
//     reply naming an interval (the built-in tracker says 120 s,
//     ANNOUNCE_INTERVAL_SECONDS in src/tracker.rs) and then announces with no
//     event and the offers above. An audience that has been watching for a while has
//     these timers out of phase, so a viewer of the initial audience sets its
//     first one at a random point of the interval after its first reply; a
//     churn arrival waits the full interval.
//   - a lost link (its peer left): the stream swarm announces again (no event,
//     the offers above) at most once per 10 s (REDISCOVER_MS, stream-mesh.js
//     rediscover), which also restarts the interval timer.
//   - --churn F: every second F/60 of the audience (fractions carried over)
//     leaves, each replaced at once by a new viewer on a new socket that
//     arrives as above. A leaving viewer does what WebTorrent's destroy does:
//     `stopped` for the stream swarm and every segment it announced, then its
//     socket closes once the replies are in (a closed tab might send nothing:
//     the tracker drops a closed socket's memberships itself). Its peers lose
//     their link to it. Churn applies to segments mode too (a new viewer
//     announces the window it finds), where no link is kept.
//   - links are bounded as the client bounds them (webtorrent 2.8.5's
//     maxConns only holds back TCP/uTP peers): a viewer makes offers while it
//     has fewer than --mesh-links links (streamOffers), and an answered offer
//     makes no link when either end already has twice that (takesLink); the
//     other end then rediscovers. A lost link rediscovers only while the
//     viewer has fewer than it wants. --mesh-links 0 lifts the bound, as the
//     client was before it (5 offers at every stream announce, every link
//     taken).
//   - a refused `started` (a full swarm) leaves the viewer outside that
//     swarm; for the stream swarm it then has no link and announces its
//     segments. Not modelled: bittorrent-tracker's default 30 s re-announce,
//     which such a viewer keeps (only a reply sets the tracker's 120 s).
//   - not modelled: the tracker-socket watchdog
//     (stream-mesh.js checkTrackerSockets: only on a lost socket), links that
//     fail after an answer (every answer makes a link here), and both ends of
//     a pair keeping different connections (both close and rediscover).
//   The ramp of a mesh run is --ramp-segments plus one window: by the time
//   measuring starts, the segments late arrivals announced have left the
//   playlist, so the window measures the steady state: interval re-announces,
//   their offers and answers, and churn's arrivals, departures and
//   rediscoveries.
//
// In both modes an offer a viewer receives is answered with probability
// --answer-share (the answer relayed through the tracker, after 0-20 ms).
//
// Measured:
//   messages/s     client side: frames the viewers sent (into the tracker) and
//                  received (out of it), during the measured window; over the
//                  whole run they are checked against the built-in tracker's
//                  own counters (GET /_lt/tracker/<stream>/stats, messages_in/
//                  messages_out): they must agree
//   per viewer-minute  the same counts per viewer per minute (the audience's
//                  size is constant: churn replaces each viewer that leaves);
//                  by kind, the stream swarm's frames are counted apart
//                  ("stream started", "stream offer", ...)
//   relay latency  offer sent -> offer received by the peer the tracker chose,
//                  and answer sent -> answer received by the offerer: each SDP
//                  carries its send time (performance.now(), one process)
//   announce reply announce sent -> its reply (per socket and info-hash, in
//                  order; `stopped` included, as bittorrent-tracker replies)
//   errors         failure replies, sockets closed or failed before the end,
//                  and protocol surprises (an offer for a swarm the viewer is
//                  not in or from itself, an answer for an offer it never
//                  made, one offer sent twice to the same peer, a reply
//                  without an announce): all must be zero (exit status 1);
//                  a churned viewer's own close is not one, nor an answer the
//                  tracker refuses because its offerer's `stopped` reached it
//                  first (a race of the protocol: counted and shown apart)
//   scrape check   at the end one viewer scrapes the window's info-hashes
//                  (and the stream swarm's, in mesh mode);
//                  complete/incomplete must equal what the viewers announced
//   memory, CPU    RSS of the tracker's process (/proc VmRSS): the worker's
//                  workerd (wrangler's dev proxy, another workerd, shown apart),
//                  or the npm tracker's node; before the sockets open, once
//                  they are open, peak and end of the run; CPU seconds over
//                  the measured window, and the load generator's own (this
//                  process: the viewers, the poller and the origin's HTTP
//                  server; ffmpeg is not counted), and the whole machine's
//                  (/proc/stat): on 2 cores the generator competes with workerd
//   event loop     this process's event-loop delay p99: when it is large, the
//                  latencies include the generator's own queueing
//
// permessage-deflate: browsers offer it and workerd accepts it, so by default
// the viewers offer it too (--deflate on); the npm tracker declines it.
// Compression costs the tracker memory per socket and CPU per frame on both
// ends; --deflate on,off runs the built-in tracker both ways.
//
// Run:  make tracker-load                    (inside a loopback-only namespace)
//       make tracker-load TRACKER_LOAD_ARGS='--viewers 100,300,600 --json out.json'
//       make tracker-load TRACKER_LOAD_ARGS='--mode mesh --answer-share 1 --viewers 100,300,600'
//       node bench/tracker-load.mjs --help
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'

import { readConfig } from '../public/_lt/client/config.js'
import { offersPerAnnounce, streamOffers, takesLink } from '../public/_lt/client/offer-budget.js'
import { REDISCOVER_MS, streamOf, streamSwarmHash } from '../public/_lt/client/stream-mesh.js'
import { startOrigin } from '../scripts/origin.mjs'
import { REPO_ROOT, sleep, startWorker } from '../tests/support/harness.mjs'
import { magnetsOf } from '../tests/support/torrents.mjs'
import { percentile } from './percentile.mjs'

const USAGE = `usage: node bench/tracker-load.mjs [--viewers 300[,600...]] [--seconds 60] [--tracker builtin[,npm]]
       [--mode segments[,mesh]] [--mesh-links 8] [--churn 0] [--offers 2-5] [--answer-share 0.5] [--complete-ms 300-1500]
       [--ramp-segments 6] [--max-peers-per-swarm N] [--deflate on[,off]] [--direct] [--json FILE] [--log]

  --viewers N[,N...]  simulated viewers (WebSockets) per run, 1..${5000}; one run each (default 300)
  --seconds S         measured seconds per run after the ramp, 5..600 (default 60)
  --tracker T[,T...]  builtin (the worker's, TRACKERS unset) and/or npm (bittorrent-tracker,
                      scripts/tracker.mjs in its own process); one run each per viewer count
  --mode M[,M...]     segments: every viewer announces every segment (the client before
                      2026-12-05; default); mesh: the stream mesh client (header comment); one run each
  --mesh-links N      mesh mode: the client's meshLinks (default its default, 8): offers
                      while a viewer has fewer links, links taken up to twice as many;
                      0: unbounded, as the client was before the bound
  --churn F           share of the audience that leaves per minute, replaced by as many new
                      viewers, 0..1 (default 0)
  --offers A-B        segments mode: offers per started announce, uniform in A..B (default 2-5)
  --answer-share P    share of received offers a viewer answers (default 0.5)
  --complete-ms A-B   completed this long after started (default 300-1500)
  --ramp-segments K   segments before measuring starts (default 6, the window); mesh mode: the
                      audience arrives spread over this many target durations
  --max-peers-per-swarm N  the worker's TRACKER_MAX_PEERS_PER_SWARM (default unset: 1000); mesh
                      mode puts every viewer in one swarm, so more viewers need it raised
  --direct            the poller and the sockets go straight to the worker's workerd,
                      bypassing wrangler's dev proxy (not part of a deployment)
  --deflate on,off    whether the sockets offer permessage-deflate, as browsers do (default
                      on; workerd accepts it, the npm tracker declines it, so it runs once);
                      one run each
  --json FILE         write every run's numbers
  --log               echo wrangler's output`

const MAX_VIEWERS = 5000
const LIST_SIZE = 6
const WARMUP_TIMEOUT_MS = 60_000
const CONNECT_BATCH = 50
const CONNECT_TIMEOUT_MS = 20_000
/** After the last action: in-flight messages arrive before the counts are read. */
const GRACE_MS = 3_000
const SAMPLE_EVERY_MS = 1_000
/** WebTorrent's tracker client gives up on an unanswered offer after 50 s. */
const OFFER_TIMEOUT_MS = 50_000
const ANSWER_DELAY_MS = 20
/** Before the bound on links: bittorrent-tracker's at most 5 offers, for WebTorrent's numwant 50. */
const UNBOUNDED_STREAM_OFFERS = 5
/**
 * A segment's `stopped` comes at least this long after its `started`: answers
 * to its offers (0-20 ms, plus the relay) reach the tracker first. The client
 * keeps a segment's torrent for 24 segments, so this only matters for a viewer
 * that joins a segment about to leave the playlist.
 */
const MIN_MEMBERSHIP_MS = 5_000
/** src/tracker.rs relay_answer's refusals (answer_outside_swarm): failures that answer no announce. */
const REFUSED_ANSWER_OFFERER_GONE = 'to_peer_id is not in this swarm'
const REFUSED_ANSWER_OUTSIDE_SWARM = 'answer for a swarm this connection has not joined'
/** A departing viewer closes its socket once its `stopped` replies are in, or after this long. */
const LEAVE_CLOSE_TIMEOUT_MS = 5_000
/** `left` of a leecher: about one 2 s segment of the origin's feed. */
const SEGMENT_BYTES = 215_000
/**
 * ws runs at most this many (de)compressions at once for the whole process
 * (its default, 10, queues hundreds of sockets' frames behind each other: at
 * 300 viewers that alone made the relay p95 ~640 ms instead of ~14 ms).
 */
const ZLIB_CONCURRENCY = 1024
const SDP_PAD_BYTES = 1_050 // base64: ~1.4 KB, plus the header lines ~1.5 KB
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

// --- options ------------------------------------------------------------------
const { values: flags } = parseArgs({
  options: {
    viewers: { type: 'string' },
    seconds: { type: 'string' },
    tracker: { type: 'string' },
    offers: { type: 'string' },
    'answer-share': { type: 'string' },
    'complete-ms': { type: 'string' },
    'ramp-segments': { type: 'string' },
    mode: { type: 'string' },
    churn: { type: 'string' },
    'mesh-links': { type: 'string' },
    'max-peers-per-swarm': { type: 'string' },
    direct: { type: 'boolean' },
    deflate: { type: 'string' },
    json: { type: 'string' },
    log: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (flags.help) {
  console.log(USAGE)
  process.exit(0)
}
function fail (message) {
  process.stderr.write(`${message}\n${USAGE}\n`)
  process.exit(2)
}
function range (text, what, min, max) {
  const m = /^(\d+)(?:-(\d+))?$/.exec(String(text).trim())
  const lo = m && Number(m[1])
  const hi = m && Number(m[2] ?? m[1])
  if (!m || lo < min || hi > max || lo > hi) fail(`${what}: expected A-B with ${min} <= A <= B <= ${max}, got "${text}"`)
  return [lo, hi]
}
const VIEWER_COUNTS = String(flags.viewers ?? '300').split(',').map(s => Number(s.trim()))
if (!VIEWER_COUNTS.every(n => Number.isInteger(n) && n >= 1 && n <= MAX_VIEWERS)) fail(`--viewers: integers 1..${MAX_VIEWERS}`)
const SECONDS = Number(flags.seconds ?? 60)
if (!(SECONDS >= 5 && SECONDS <= 600)) fail('--seconds: 5..600')
const TRACKERS = String(flags.tracker ?? 'builtin').split(',').map(s => s.trim())
if (!TRACKERS.every(t => t === 'builtin' || t === 'npm')) fail('--tracker: builtin and/or npm')
const [OFFERS_MIN, OFFERS_MAX] = range(flags.offers ?? '2-5', '--offers', 0, 10)
const ANSWER_SHARE = Number(flags['answer-share'] ?? 0.5)
if (!(ANSWER_SHARE >= 0 && ANSWER_SHARE <= 1)) fail('--answer-share: 0..1')
const [COMPLETE_MIN_MS, COMPLETE_MAX_MS] = range(flags['complete-ms'] ?? '300-1500', '--complete-ms', 0, 60_000)
const RAMP_SEGMENTS = Number(flags['ramp-segments'] ?? LIST_SIZE)
if (!(Number.isInteger(RAMP_SEGMENTS) && RAMP_SEGMENTS >= 0 && RAMP_SEGMENTS <= 30)) fail('--ramp-segments: 0..30')
const MODES = String(flags.mode ?? 'segments').split(',').map(s => s.trim())
if (MODES.length === 0 || !MODES.every(m => m === 'segments' || m === 'mesh')) fail('--mode: segments and/or mesh')
const CHURN = Number(flags.churn ?? 0)
if (!(CHURN >= 0 && CHURN <= 1)) fail('--churn: 0..1')
/** The client's meshLinks (its default unless given); 0: links unbounded, as before the bound. */
const MESH_LINKS = Number(flags['mesh-links'] ?? readConfig(null, {}).meshLinks)
if (!(Number.isInteger(MESH_LINKS) && MESH_LINKS >= 0 && MESH_LINKS <= 1000)) fail('--mesh-links: 0..1000')
const MAX_PEERS_PER_SWARM = flags['max-peers-per-swarm'] === undefined ? null : Number(flags['max-peers-per-swarm'])
if (MAX_PEERS_PER_SWARM !== null && !(Number.isInteger(MAX_PEERS_PER_SWARM) && MAX_PEERS_PER_SWARM >= 2 && MAX_PEERS_PER_SWARM <= 100_000)) fail('--max-peers-per-swarm: 2..100000')
const DIRECT = flags.direct ?? false
const DEFLATES = String(flags.deflate ?? 'on').split(',').map(s => s.trim())
if (DEFLATES.length === 0 || !DEFLATES.every(d => d === 'on' || d === 'off')) fail('--deflate: on and/or off')

const log = line => process.stderr.write(`[tracker-load] ${line}\n`)
const uniform = (lo, hi) => lo + Math.random() * (hi - lo)
const randomInt = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1))
/** 20 random bytes as a "binary string", as WebTorrent sends ids. */
const binaryId = (prefix = '') => prefix + randomBytes(20 - prefix.length).toString('latin1')
const hexToBinary = hex => Buffer.from(hex, 'hex').toString('latin1')

function summary (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return { n: sorted.length, p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? null }
}

// --- processes, from /proc ------------------------------------------------------
function processStat (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ppid: Number(fields[1]), pgrp: Number(fields[2]), cpuTicks: Number(fields[11]) + Number(fields[12]) }
}
function rssBytes (pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : null
}
/** { cpuSeconds, rss } of each pid still running. */
function sampleProcesses (pids) {
  const out = {}
  for (const pid of pids) {
    try {
      out[pid] = { cpuSeconds: processStat(pid).cpuTicks / CLOCK_TICKS, rss: rssBytes(pid) }
    } catch {
      // The process ended.
    }
  }
  return out
}
/** Busy and total jiffies of the whole machine (/proc/stat). */
function machineTicks () {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const idle = cpu[3] + (cpu[4] ?? 0)
  const total = cpu.reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}
/** Pids of the loopback sockets listening, by address (`ss`). */
function listeners () {
  try {
    return execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' }).split('\n')
      .map(line => ({ address: line.split(/\s+/)[3] ?? '', pid: /"workerd",pid=(\d+)/.exec(line)?.[1] }))
      .filter(l => l.pid && l.address.startsWith('127.0.0.1:'))
  } catch {
    return []
  }
}
/**
 * The workerd processes of a `wrangler dev` (its process group): the dev
 * proxy, which owns the port wrangler was asked for, and the worker's runtime.
 */
function workerdProcesses (worker) {
  const proxy = listeners().find(l => l.address === `127.0.0.1:${worker.port}`)?.pid
  const runtime = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = processStat(entry)
      if (stat.name === 'workerd' && stat.pgrp === worker.pid && entry !== proxy) runtime.push(entry)
    } catch {
      // The process ended.
    }
  }
  return { proxy: proxy ? [proxy] : [], runtime }
}
/** The worker's own workerd socket behind wrangler's dev proxy (as bench/load.mjs --direct). */
async function directUrl (worker) {
  const all = listeners()
  const proxy = all.find(l => l.address === `127.0.0.1:${worker.port}`)
  if (!proxy) throw new Error(`--direct: no workerd listens on ${worker.url}`)
  const parent = processStat(proxy.pid).ppid
  for (const { address, pid } of all) {
    if (pid === proxy.pid || processStat(pid).ppid !== parent) continue
    try {
      const response = await fetch(`http://${address}/_lt/health`, { redirect: 'manual', signal: AbortSignal.timeout(2000) })
      if (response.status === 200 && /"ok":\s*true/.test(await response.text())) return `http://${address}`
    } catch {
      // Not the worker's HTTP socket.
    }
  }
  throw new Error('--direct: found no workerd socket behind wrangler\'s proxy that answers /_lt/health')
}

/**
 * The worker's isolate seen through wrangler's inspector (DevTools protocol;
 * the Durable Object runs in the same isolate under wrangler dev): V8 heap
 * used, and the WebAssembly memory the Rust tracker's state lives in (not part
 * of the V8 heap; Workers count both against the isolate's 128 MB). null
 * where the inspector cannot be reached.
 */
async function inspectIsolate (worker) {
  try {
    const args = readFileSync(`/proc/${worker.pid}/cmdline`, 'utf8').split('\0')
    const port = args[args.indexOf('--inspector-port') + 1]
    const targets = await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(5000) }).then(r => r.json())
    const url = targets[0]?.webSocketDebuggerUrl
    if (!url || !/^ws:\/\/127\.0\.0\.1:/.test(url)) return null
    const socket = new WebSocket(url, { perMessageDeflate: false })
    await once(socket, 'open')
    let nextId = 0
    let contextId = null
    const waiting = new Map()
    socket.on('message', data => {
      const message = JSON.parse(data.toString())
      if (message.method === 'Runtime.executionContextCreated') contextId = message.params.context.id
      if (message.id && waiting.has(message.id)) {
        waiting.get(message.id)(message)
        waiting.delete(message.id)
      }
    })
    const call = (method, params = {}) => new Promise((resolve, reject) => {
      const id = ++nextId
      const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`inspector: ${method} timed out`)) }, 10_000)
      waiting.set(id, message => { clearTimeout(timer); message.error ? reject(new Error(message.error.message)) : resolve(message.result) })
      socket.send(JSON.stringify({ id, method, params }))
    })
    await call('Runtime.enable')
    for (let i = 0; i < 20 && contextId === null; i++) await sleep(100)
    return {
      /** V8 heap used, MB (cheap). */
      heapMb: async () => (await call('Runtime.getHeapUsage')).usedSize / 2 ** 20,
      /** Heap and WebAssembly memory, MB (queryObjects walks the heap: not for every second). */
      full: async () => {
        const heap = await call('Runtime.getHeapUsage')
        const proto = await call('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype', contextId })
        const found = await call('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId })
        const sizes = await call('Runtime.callFunctionOn', {
          objectId: found.objects.objectId, returnByValue: true,
          functionDeclaration: 'function () { return this.map(m => m.buffer.byteLength) }'
        })
        return { heapMb: heap.usedSize / 2 ** 20, wasmMb: sizes.result.value.reduce((a, b) => a + b, 0) / 2 ** 20 }
      },
      close: () => socket.close()
    }
  } catch (error) {
    log(`  inspector not available: ${error.message}`)
    return null
  }
}

/** scripts/tracker.mjs in a process of its own, so its CPU and memory can be read. */
async function startNpmTracker () {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts', 'tracker.mjs'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let text = ''
  child.stdout.setEncoding('utf8')
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('npm tracker: no URL within 10 s')), 10_000)
    child.stdout.on('data', chunk => {
      text += chunk
      const line = text.split('\n').find(l => l.startsWith('{'))
      if (line) {
        clearTimeout(timer)
        resolve(JSON.parse(line).url)
      }
    })
    child.once('exit', code => reject(new Error(`npm tracker exited (${code})`)))
  })
  return {
    url,
    pid: String(child.pid),
    stop: async () => {
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      await Promise.race([once(child, 'exit'), sleep(5000).then(() => child.kill('SIGKILL'))])
    }
  }
}

// --- the simulated audience --------------------------------------------------------
/** A fake SDP of about 1.5 KB that carries its send time and sender. */
function fakeSdp (type, sentAt, from) {
  return `v=0\r\no=- ${randomInt(1e9, 9e9)} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n` +
    `a=x-lt-bench:${type}:${sentAt.toFixed(3)}:${from}\r\n` +
    `a=x-pad:${randomBytes(SDP_PAD_BYTES).toString('base64')}\r\n`
}
const SDP_MARK = /a=x-lt-bench:(offer|answer):([\d.]+):(\d+)/

function newCounts () {
  return { sent: 0, received: 0, sentBytes: 0, receivedBytes: 0, sentByKind: {}, receivedByKind: {} }
}
function countsDelta (a, b) {
  const kinds = (x, y) => Object.fromEntries([...new Set([...Object.keys(x), ...Object.keys(y)])].map(k => [k, (y[k] ?? 0) - (x[k] ?? 0)]))
  return {
    sent: b.sent - a.sent, received: b.received - a.received, sentBytes: b.sentBytes - a.sentBytes, receivedBytes: b.receivedBytes - a.receivedBytes,
    sentByKind: kinds(a.sentByKind, b.sentByKind), receivedByKind: kinds(a.receivedByKind, b.receivedByKind)
  }
}
const copyCounts = c => ({ ...c, sentByKind: { ...c.sentByKind }, receivedByKind: { ...c.receivedByKind } })

/**
 * The audience of one run: `n` WebSockets to `trackerUrl`, their swarm
 * memberships, what they sent and what came back. `mode` is how a viewer
 * signals (the header comment): `segments` announces every segment; `mesh`
 * joins the stream swarm `streamHash` and announces a segment only while it
 * has no mesh link. `window()`: the info-hashes the playlist lists now.
 */
function createAudience ({ n, trackerUrl, deflate, mode, streamHash, window }) {
  const counts = newCounts()
  const latency = { offer: [], answer: [], reply: [], connect: [] }
  /** Per second of the measured window: the slowest relay or reply in it (ms), to see when the tail happens. */
  const slowestBySecond = []
  let measureStartedAt = 0
  const noteSlow = (now, ms) => {
    const second = Math.floor((now - measureStartedAt) / 1000)
    if (second >= 0) slowestBySecond[second] = Math.max(slowestBySecond[second] ?? 0, Math.round(ms))
  }
  const problems = { failures: [], closes: [], socketErrors: [], surprises: [] }
  /**
   * Answers refused because their offerer had left the swarm by the time they
   * reached the tracker (its `stopped` came first): a race of the protocol,
   * which WebTorrent shows as a warning, counted apart from the failures.
   */
  const races = { answerAfterStopped: 0 }
  const problem = (list, what) => {
    list.push(what)
    if (list.length <= 5) log(`  problem: ${JSON.stringify(what).slice(0, 400)}`)
  }
  let measuring = false
  let closing = false
  let announceSeq = 0
  /** Viewers that arrived (churn) and departed, and links lost by departures, over the whole run. */
  const churned = { arrived: 0, departed: 0, linksLost: 0 }
  /** announce seq -> Set of recipient viewer indices: an offer delivered twice to one peer is a surprise. */
  const offerRecipients = new Map()
  const timers = new Set()
  const later = (ms, fn) => {
    const timer = setTimeout(() => { timers.delete(timer); fn() }, ms)
    timers.add(timer)
    return timer
  }
  const cancel = timer => {
    clearTimeout(timer)
    timers.delete(timer)
  }

  /** Every viewer of the run (departed ones too), by index; `viewers` holds those watching now. */
  const everyone = []
  const viewers = []
  function newViewer () {
    const viewer = {
      index: everyone.length,
      peerId: binaryId('-LT0001-'),
      socket: null,
      /** info-hash (binary) -> { completed } */
      swarms: new Map(),
      /** info-hashes left recently: an offer for one of them may still be in flight. */
      left: new Set(),
      /** info-hash -> [{ at, event }] announces waiting for their reply, in order. */
      pending: new Map(),
      /** offer id -> { infoHash, at } */
      offers: new Map(),
      /** info-hash -> indices of the offerers this viewer answered there (onFailure tells a race from an error). */
      answered: new Map(),
      /** mesh: indices of the viewers this one keeps a WebRTC link with. */
      links: new Set(),
      /** mesh: the stream swarm's next interval re-announce, and a pending rediscovery. */
      reannounceTimer: null,
      rediscoverTimer: null,
      lastRediscover: -Infinity,
      /** mesh: a viewer of the initial audience has its interval timer at a random phase (the header). */
      initial: true,
      arrived: false,
      departed: false,
      /** Its socket is being closed because it left (churn): that close is no problem. */
      leaving: false
    }
    everyone.push(viewer)
    viewers.push(viewer)
    return viewer
  }
  for (let i = 0; i < n; i++) newViewer()

  function send (viewer, message, kind) {
    if (viewer.socket.readyState !== WebSocket.OPEN) {
      problem(problems.surprises, { viewer: viewer.index, what: `send ${kind} on a socket in state ${viewer.socket.readyState}` })
      return false
    }
    const text = JSON.stringify(message)
    viewer.socket.send(text)
    counts.sent++
    counts.sentBytes += Buffer.byteLength(text)
    counts.sentByKind[kind] = (counts.sentByKind[kind] ?? 0) + 1
    return true
  }

  const isStream = infoHash => infoHash === streamHash
  /** Frame kinds as counted: the stream swarm's announces apart from the segments'. */
  const kindOf = (infoHash, event) => (isStream(infoHash) ? `stream ${event}` : event)

  /**
   * An announce as bittorrent-tracker's WebSocket client sends it. `event`
   * 'update' is its interval or update() announce, which has no event field.
   * The stream swarm never has metadata: WebTorrent's `left` is then NaN,
   * which JSON makes null (a leecher to the tracker).
   */
  function announce (viewer, infoHash, event, extra = {}) {
    const stream = isStream(infoHash)
    const message = {
      action: 'announce', info_hash: infoHash, peer_id: viewer.peerId, event: event === 'update' ? undefined : event,
      numwant: extra.numwant ?? OFFERS_MAX, uploaded: 0, downloaded: event === 'started' || stream ? 0 : SEGMENT_BYTES,
      left: stream ? null : event === 'completed' ? 0 : SEGMENT_BYTES, ...extra
    }
    const at = performance.now()
    if (!send(viewer, message, kindOf(infoHash, event))) return
    if (!viewer.pending.has(infoHash)) viewer.pending.set(infoHash, [])
    viewer.pending.get(infoHash).push({ at, event })
  }

  /** `k` offers for `infoHash`, each remembered until its answer (or the swarm is left). */
  function makeOffers (viewer, infoHash, k) {
    const seq = ++announceSeq
    const at = performance.now()
    return Array.from({ length: k }, () => {
      const offerId = binaryId()
      viewer.offers.set(offerId, { infoHash, at })
      return { offer: { type: 'offer', sdp: fakeSdp('offer', at, viewer.index) + `a=x-lt-seq:${seq}\r\n` }, offer_id: offerId }
    })
  }

  /** Whether a segment listed now is announced: always in segments mode; in mesh mode only without a link (offer-budget.js). */
  const announcesSegment = viewer => mode === 'segments' || viewer.links.size === 0
  /** Offers of a segment's started: --offers in segments mode; the client's budget (offersPerAnnounce: links + 1, at most 5) in mesh mode. */
  const segmentOfferCount = viewer => (mode === 'segments' ? randomInt(OFFERS_MIN, OFFERS_MAX) : offersPerAnnounce(viewer.links.size))
  /** Offers of a stream-swarm announce (stream-mesh.js getAnnounceOpts), and whether a viewer takes one more link (onWire). */
  const streamOfferCount = viewer => (MESH_LINKS ? streamOffers({ links: viewer.links.size, wanted: MESH_LINKS }) : UNBOUNDED_STREAM_OFFERS)
  const takesMoreLinks = viewer => !MESH_LINKS || takesLink({ links: viewer.links.size, wanted: MESH_LINKS })

  /** A segment the playlist lists: `started` with offers, `completed` a moment later. */
  function segmentListed (viewer, infoHash) {
    if (closing || !viewer.arrived || viewer.departed || viewer.swarms.has(infoHash) || !announcesSegment(viewer)) return
    const k = segmentOfferCount(viewer)
    const offers = makeOffers(viewer, infoHash, k)
    viewer.swarms.set(infoHash, { completed: false, joinedAt: performance.now() })
    viewer.left.delete(infoHash)
    announce(viewer, infoHash, 'started', { numwant: k, offers })
    later(uniform(COMPLETE_MIN_MS, COMPLETE_MAX_MS), () => {
      const swarm = viewer.swarms.get(infoHash)
      if (closing || !swarm) return
      swarm.completed = true
      announce(viewer, infoHash, 'completed', { numwant: k })
    })
  }

  /** A swarm left: a segment gone from the playlist, or every swarm of a viewer that departs. */
  function leaveSwarm (viewer, infoHash) {
    if (closing || !viewer.swarms.has(infoHash)) return
    viewer.swarms.delete(infoHash)
    viewer.left.add(infoHash)
    for (const [id, offer] of viewer.offers) if (offer.infoHash === infoHash) viewer.offers.delete(id)
    announce(viewer, infoHash, 'stopped', { numwant: 0 })
  }
  /** A segment gone from the playlist: `stopped`, no sooner than MIN_MEMBERSHIP_MS after `started`. */
  function segmentUnlisted (viewer, infoHash) {
    const swarm = viewer.swarms.get(infoHash)
    const wait = swarm ? swarm.joinedAt + MIN_MEMBERSHIP_MS - performance.now() : 0
    if (wait > 0) later(wait, () => leaveSwarm(viewer, infoHash))
    else leaveSwarm(viewer, infoHash)
  }

  /**
   * The stream swarm's announce: `started` when the viewer arrives, 'update'
   * at the tracker's interval and to rediscover, with the offers the client
   * makes for it (streamOfferCount).
   */
  function announceStream (viewer, event) {
    if (closing || viewer.departed) return
    if (event === 'started') viewer.swarms.set(streamHash, { completed: false })
    const count = streamOfferCount(viewer)
    announce(viewer, streamHash, event, { numwant: count, offers: makeOffers(viewer, streamHash, count) })
  }

  /** bittorrent-tracker restarts its interval timer at every reply that names an interval. */
  function scheduleReannounce (viewer, intervalSeconds) {
    if (closing || viewer.departed) return
    const first = viewer.reannounceTimer === null
    cancel(viewer.reannounceTimer)
    const delay = first && viewer.initial ? Math.random() * intervalSeconds * 1000 : intervalSeconds * 1000
    viewer.reannounceTimer = later(delay, () => announceStream(viewer, 'update'))
  }

  /** A lost link: announce the stream swarm again, at most once per REDISCOVER_MS (stream-mesh.js rediscover). */
  function rediscover (viewer) {
    if (closing || viewer.departed || viewer.rediscoverTimer) return
    const wait = Math.max(0, viewer.lastRediscover + REDISCOVER_MS - performance.now())
    viewer.rediscoverTimer = later(wait, () => {
      viewer.rediscoverTimer = null
      viewer.lastRediscover = performance.now()
      announceStream(viewer, 'update')
    })
  }

  /**
   * An answered stream-swarm offer: both ends keep the link (a second one to
   * the same peer is dropped, as onWire does), unless one of them already
   * has all the links it takes; the other then looks elsewhere.
   */
  function link (a, b) {
    if (!b || a === b || a.departed || b.departed || a.links.has(b.index)) return
    if (!takesMoreLinks(a) || !takesMoreLinks(b)) {
      for (const end of [a, b]) if (streamOfferCount(end) > 0) rediscover(end)
      return
    }
    a.links.add(b.index)
    b.links.add(a.index)
  }

  /** A viewer arrives: the stream swarm (mesh), and the segments `listed` now, announced while it has no link. */
  function arrive (viewer, listed) {
    if (closing || viewer.departed) return
    viewer.arrived = true
    if (mode === 'mesh') announceStream(viewer, 'started')
    for (const h of listed) segmentListed(viewer, h)
  }

  /**
   * A viewer leaves, as WebTorrent's destroy does: `stopped` for every swarm
   * it announced in, then its socket closes once the replies are in (so the
   * tracker sends it nothing more and both sides count the same frames).
   * Its peers lose their links to it and rediscover.
   */
  async function depart (viewer) {
    for (const h of [...viewer.swarms.keys()]) leaveSwarm(viewer, h)
    viewer.departed = true
    cancel(viewer.reannounceTimer)
    cancel(viewer.rediscoverTimer)
    for (const index of viewer.links) {
      const peer = everyone[index]
      peer.links.delete(viewer.index)
      churned.linksLost++
      if (streamOfferCount(peer) > 0) rediscover(peer)
    }
    viewer.links.clear()
    viewers.splice(viewers.indexOf(viewer), 1)
    churned.departed++
    const deadline = performance.now() + LEAVE_CLOSE_TIMEOUT_MS
    while (viewer.pending.size > 0 && performance.now() < deadline) await sleep(50)
    viewer.leaving = true
    viewer.socket.close(1000, 'viewer left')
  }

  /** Churn: `perMinute` of the audience leaves each minute, and as many new viewers arrive. */
  function startChurn (perMinute) {
    if (!(perMinute > 0)) return
    let due = 0
    const tick = () => {
      if (closing) return
      due += perMinute * n / 60
      for (; due >= 1 && viewers.length > 1; due--) {
        depart(viewers[randomInt(0, viewers.length - 1)]).catch(error => problem(problems.surprises, { what: `departure: ${error.message}` }))
        const joiner = newViewer()
        joiner.initial = false
        churned.arrived++
        connect(joiner).then(() => arrive(joiner, window()))
          .catch(error => problem(problems.socketErrors, { viewer: joiner.index, error: `connect: ${error.message}` }))
      }
      later(1000, tick)
    }
    later(1000, tick)
  }

  function onMessage (viewer, data) {
    const now = performance.now()
    const text = data.toString()
    counts.received++
    counts.receivedBytes += Buffer.byteLength(text)
    let message
    try {
      message = JSON.parse(text)
    } catch {
      counts.receivedByKind.unparsable = (counts.receivedByKind.unparsable ?? 0) + 1
      problem(problems.surprises, { viewer: viewer.index, what: 'not JSON', text: text.slice(0, 200) })
      return
    }
    const kind = message['failure reason'] !== undefined ? 'failure'
      : message.action === 'scrape' ? 'scrape'
        : message.action !== 'announce' ? 'other'
          : message.offer ? 'offer' : message.answer ? 'answer' : 'reply'
    const counted = kind === 'failure' || kind === 'scrape' || kind === 'other' ? kind : kindOf(message.info_hash, kind)
    counts.receivedByKind[counted] = (counts.receivedByKind[counted] ?? 0) + 1
    if (kind === 'failure') return onFailure(viewer, message)
    if (kind === 'scrape') {
      viewer.onScrape?.(message)
      return
    }
    if (kind === 'other') {
      problem(problems.surprises, { viewer: viewer.index, what: 'unknown action', text: text.slice(0, 200) })
      return
    }
    if (kind === 'offer') return onOffer(viewer, message, now)
    if (kind === 'answer') return onAnswer(viewer, message, now)
    onReply(viewer, message, now, text)
  }

  /** The offerers a viewer answered, per info-hash: to tell a refused answer's race from a failure. */
  function rememberAnswer (viewer, infoHash, offererIndex) {
    if (!viewer.answered.has(infoHash)) viewer.answered.set(infoHash, new Set())
    viewer.answered.get(infoHash).add(offererIndex)
  }

  /**
   * A failure. One refusing an answer (src/tracker.rs answer_outside_swarm)
   * replies to no announce; one for an announce is its reply too.
   */
  function onFailure (viewer, message) {
    const reason = message['failure reason']
    const infoHash = message.info_hash
    if (reason === REFUSED_ANSWER_OFFERER_GONE) {
      const offererLeft = [...(viewer.answered.get(infoHash) ?? [])].some(i => !everyone[i].swarms.has(infoHash))
      if (offererLeft) {
        races.answerAfterStopped++
        return
      }
    }
    let sentFor = null
    if (reason !== REFUSED_ANSWER_OFFERER_GONE && reason !== REFUSED_ANSWER_OUTSIDE_SWARM) {
      const queue = infoHash !== undefined && viewer.pending.get(infoHash)
      sentFor = queue && queue.length ? queue.shift().event : null
      if (queue && queue.length === 0) viewer.pending.delete(infoHash)
    }
    // A refused `started` (a full swarm) leaves the viewer outside the swarm.
    if (sentFor === 'started' && viewer.swarms.delete(infoHash)) viewer.left.add(infoHash)
    problem(problems.failures, { viewer: viewer.index, reason, action: message.action, forEvent: sentFor })
  }

  function onOffer (viewer, message, now) {
    const infoHash = message.info_hash
    if (message.peer_id === viewer.peerId) problem(problems.surprises, { viewer: viewer.index, what: 'offer from itself' })
    const mark = SDP_MARK.exec(message.offer?.sdp ?? '')
    const seq = /a=x-lt-seq:(\d+)/.exec(message.offer?.sdp ?? '')?.[1]
    if (!mark || typeof message.offer_id !== 'string' || typeof message.peer_id !== 'string') {
      problem(problems.surprises, { viewer: viewer.index, what: 'offer without its fields', text: JSON.stringify(message).slice(0, 200) })
      return
    }
    if (!viewer.swarms.has(infoHash)) {
      // In flight while this viewer sent `stopped` is fine; any other is not.
      if (!viewer.left.has(infoHash)) problem(problems.surprises, { viewer: viewer.index, what: 'offer for a swarm the viewer never joined' })
      return
    }
    if (measuring) {
      latency.offer.push(now - Number(mark[2]))
      noteSlow(now, now - Number(mark[2]))
    }
    if (seq) {
      if (!offerRecipients.has(seq)) offerRecipients.set(seq, new Set())
      const recipients = offerRecipients.get(seq)
      if (recipients.has(viewer.index)) problem(problems.surprises, { viewer: viewer.index, what: `two offers of one announce (from viewer ${mark[3]})` })
      recipients.add(viewer.index)
    }
    if (Math.random() < ANSWER_SHARE) {
      later(Math.random() * ANSWER_DELAY_MS, () => {
        if (closing || !viewer.swarms.has(infoHash)) return
        rememberAnswer(viewer, infoHash, Number(mark[3]))
        send(viewer, {
          action: 'announce', info_hash: infoHash, peer_id: viewer.peerId, to_peer_id: message.peer_id,
          answer: { type: 'answer', sdp: fakeSdp('answer', performance.now(), viewer.index) }, offer_id: message.offer_id
        }, kindOf(infoHash, 'answer'))
      })
    }
  }

  function onAnswer (viewer, message, now) {
    const infoHash = message.info_hash
    const mark = SDP_MARK.exec(message.answer?.sdp ?? '')
    const offer = viewer.offers.get(message.offer_id)
    if (!offer) {
      // Its swarm left meanwhile (offers are dropped with it) is fine.
      if (!viewer.left.has(infoHash)) problem(problems.surprises, { viewer: viewer.index, what: 'answer for an offer this viewer never made' })
      return
    }
    if (offer.infoHash !== infoHash) problem(problems.surprises, { viewer: viewer.index, what: 'answer with another info_hash than its offer' })
    if (message.peer_id === viewer.peerId) problem(problems.surprises, { viewer: viewer.index, what: 'answer from itself' })
    viewer.offers.delete(message.offer_id)
    if (measuring && mark) {
      latency.answer.push(now - Number(mark[2]))
      noteSlow(now, now - Number(mark[2]))
    }
    if (isStream(infoHash) && mark) link(viewer, everyone[Number(mark[3])])
  }

  function onReply (viewer, message, now, text) {
    const infoHash = message.info_hash
    const queue = viewer.pending.get(infoHash)
    if (!queue || queue.length === 0) {
      problem(problems.surprises, { viewer: viewer.index, what: 'announce reply without an announce', text: text.slice(0, 200) })
      return
    }
    const { at, event } = queue.shift()
    if (queue.length === 0) viewer.pending.delete(infoHash)
    if (measuring) {
      latency.reply.push(now - at)
      noteSlow(now, now - at)
    }
    if (typeof message.complete !== 'number' || typeof message.incomplete !== 'number' || typeof message.interval !== 'number') {
      problem(problems.surprises, { viewer: viewer.index, what: 'reply without complete/incomplete/interval', text: text.slice(0, 200) })
      return
    }
    if (isStream(infoHash) && event !== 'stopped') scheduleReannounce(viewer, message.interval)
  }

  async function connect (viewer) {
    const started = performance.now()
    // Browsers offer permessage-deflate; --deflate off does not.
    const socket = new WebSocket(trackerUrl, { handshakeTimeout: CONNECT_TIMEOUT_MS, perMessageDeflate: deflate && { concurrencyLimit: ZLIB_CONCURRENCY } })
    viewer.socket = socket
    socket.on('message', (data, isBinary) => {
      if (isBinary) problem(problems.surprises, { viewer: viewer.index, what: 'binary frame from the tracker' })
      onMessage(viewer, data)
    })
    socket.on('error', error => problem(problems.socketErrors, { viewer: viewer.index, error: String(error.message ?? error) }))
    socket.on('close', (code, reason) => {
      if (!closing && !viewer.leaving) problem(problems.closes, { viewer: viewer.index, code, reason: reason.toString() })
    })
    await once(socket, 'open')
    latency.connect.push(performance.now() - started)
  }

  /** Swarms by info-hash: who the viewers think is in them and has completed. */
  function model (infoHashes) {
    const out = {}
    for (const h of infoHashes) {
      let complete = 0
      let incomplete = 0
      for (const v of viewers) {
        const s = v.swarms.get(h)
        if (s) s.completed ? complete++ : incomplete++
      }
      out[h] = { complete, incomplete }
    }
    return out
  }

  /** Mesh links now: mean per viewer, and viewers without any. */
  function meshState () {
    const linkCounts = viewers.map(v => v.links.size)
    return { meanLinks: linkCounts.reduce((a, b) => a + b, 0) / Math.max(1, linkCounts.length), withoutLink: linkCounts.filter(c => c === 0).length }
  }

  return {
    viewers,
    counts,
    latency,
    problems,
    races,
    churned,
    connect,
    arrive,
    segmentListed,
    segmentUnlisted,
    startChurn,
    later,
    model,
    meshState,
    send,
    slowestBySecond,
    startMeasuring: () => {
      measuring = true
      measureStartedAt = performance.now()
    },
    stopMeasuring: () => { measuring = false },
    /** No new actions from here on; pending timers are dropped. */
    quiesce: () => {
      closing = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
    },
    unansweredAnnounces: () => {
      const byEvent = {}
      for (const v of everyone) for (const queue of v.pending.values()) for (const { event } of queue) byEvent[event] = (byEvent[event] ?? 0) + 1
      return byEvent
    }
  }
}

// --- one run -----------------------------------------------------------------------
async function fetchJson (url) {
  const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  if (response.status !== 200) throw new Error(`GET ${url}: ${response.status} ${text.slice(0, 200)}`)
  return JSON.parse(text)
}

/**
 * The stream swarm's info-hash (binary, as WebTorrent sends it) for a viewer
 * of `playlistUrl` whose magnets name `trackerUrl`, as the client finds it.
 */
async function streamSwarmHashOf (trackerUrl, playlistUrl) {
  const { key } = streamOf(`magnet:?tr=${encodeURIComponent(trackerUrl)}`, playlistUrl)
  return Buffer.from(await streamSwarmHash(key), 'hex').toString('latin1')
}

async function runOnce (origin, trackerKind, viewerCount, deflate, mode) {
  log(`${trackerKind} tracker, ${mode} mode, ${viewerCount} viewers, churn ${CHURN}/min, permessage-deflate ${deflate ? 'offered' : 'not offered'}: starting`)
  const npm = trackerKind === 'npm' ? await startNpmTracker() : null
  const vars = { UPSTREAM: origin.url, BENCH_ENDPOINTS: 'true' }
  if (npm) vars.TRACKERS = npm.url
  if (MAX_PEERS_PER_SWARM !== null) vars.TRACKER_MAX_PEERS_PER_SWARM = String(MAX_PEERS_PER_SWARM)
  let worker
  let audience
  let isolate = null
  const run = { tracker: trackerKind, mode, churn: CHURN, viewers: viewerCount, deflateOffered: deflate, direct: DIRECT, loadavgAtStart: os.loadavg() }
  try {
    worker = await startWorker({ vars, log: flags.log ?? false })
    const base = DIRECT ? await directUrl(worker) : worker.url
    const playlistUrl = `${base}/live/index.m3u8`

    // Warm-up: a full window, every segment of it annotated.
    let magnets = []
    let targetSeconds = 2
    const warmupDeadline = Date.now() + WARMUP_TIMEOUT_MS
    for (;;) {
      const response = await fetch(playlistUrl, { redirect: 'manual', signal: AbortSignal.timeout(10_000) }).catch(() => null)
      const text = response ? await response.text() : ''
      magnets = magnetsOf(text)
      targetSeconds = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(text)?.[1] ?? 2)
      if (magnets.length >= LIST_SIZE) break
      if (Date.now() > warmupDeadline) throw new Error(`warm-up: no fully annotated ${LIST_SIZE}-segment window within ${WARMUP_TIMEOUT_MS} ms`)
      await sleep(250)
    }
    const trackerUrls = [...new Set(magnets.flatMap(m => m.trackers))]
    if (trackerUrls.length !== 1) throw new Error(`the magnets name ${trackerUrls.length} trackers (${trackerUrls.join(' ')}); expected one`)
    const trackerUrl = trackerUrls[0]
    if (!/^wss?:\/\/127\.0\.0\.1:\d+\//.test(trackerUrl + '/')) throw new Error(`tracker URL not on loopback: ${trackerUrl}`)
    if (trackerKind === 'builtin' && !/\/_lt\/tracker\/[0-9a-f]{16}$/.test(trackerUrl)) {
      throw new Error(`the worker's magnets do not name its built-in tracker: tr=${trackerUrl} (is TRACKERS set in wrangler.toml?)`)
    }
    run.trackerUrl = trackerUrl
    const statsUrl = trackerKind === 'builtin' ? `${trackerUrl.replace(/^ws/, 'http')}/stats` : null
    const workerd = workerdProcesses(worker)
    const serverPids = npm ? [npm.pid] : workerd.runtime
    const proxyPids = DIRECT || npm ? [] : workerd.proxy
    run.processes = { server: serverPids, proxy: workerd.proxy }
    log(`  tracker ${trackerUrl}; server process ${serverPids.join(',')} (${npm ? 'node, npm tracker' : 'workerd'}); ` +
      `wrangler's proxy ${workerd.proxy.join(',') || 'not found'}${DIRECT ? ' (bypassed)' : ''}`)

    const statsAtStart = statsUrl ? await fetchJson(statsUrl) : null
    const rssOf = sample => Object.values(sample).reduce((a, s) => a + (s.rss ?? 0), 0)
    const cpuOf = (a, b) => Object.entries(b).reduce((sum, [pid, s]) => sum + (a[pid] ? s.cpuSeconds - a[pid].cpuSeconds : 0), 0)
    const memBefore = sampleProcesses(serverPids)
    isolate = npm ? null : await inspectIsolate(worker)
    const isolateOf = async () => isolate?.full().catch(error => { log(`  inspector: ${error.message}`); return null }) ?? null
    const isolateBefore = await isolateOf()

    // Sockets, CONNECT_BATCH at a time.
    /** The info-hashes the playlist lists now (the poller's view). */
    const known = new Set()
    const streamHash = mode === 'mesh' ? await streamSwarmHashOf(trackerUrl, playlistUrl) : null
    audience = createAudience({ n: viewerCount, trackerUrl, deflate, mode, streamHash, window: () => [...known] })
    const connectStarted = performance.now()
    for (let i = 0; i < viewerCount; i += CONNECT_BATCH) {
      await Promise.all(audience.viewers.slice(i, i + CONNECT_BATCH).map(v => audience.connect(v)))
    }
    run.connectSeconds = (performance.now() - connectStarted) / 1000
    run.connectMs = summary(audience.latency.connect)
    run.extensions = audience.viewers[0].socket.extensions || 'none'
    await sleep(1000)
    const memConnected = sampleProcesses(serverPids)
    const isolateConnected = await isolateOf()
    const statsConnected = statsUrl ? await fetchJson(statsUrl) : null
    log(`  ${viewerCount} sockets open in ${run.connectSeconds.toFixed(1)} s (p50 ${run.connectMs.p50?.toFixed(1)} ms); ` +
      `extensions: ${run.extensions}${statsConnected ? `; tracker sees ${statsConnected.sockets} sockets` : ''}`)

    // The poller: once per target duration for the whole audience.
    let segmentsSeen = 0
    let pollErrors = 0
    let polling = true
    let onSegment = () => {}
    const spreadMs = targetSeconds * 1000
    /**
     * Segments mode: every viewer is there at once and starts with the next
     * new segment (the current window is history). Mesh mode: viewers arrive
     * spread over the ramp's RAMP_SEGMENTS target durations, each joining
     * the stream swarm and announcing the window it finds (it has no link yet).
     */
    const startAudience = listed => {
      for (const v of audience.viewers) {
        if (mode === 'segments') audience.arrive(v, [])
        else audience.later(Math.random() * RAMP_SEGMENTS * spreadMs, () => audience.arrive(v, [...known]))
      }
      audience.startChurn(CHURN)
    }
    // Mesh mode: the segments a late arrival announced leave the window before measuring starts.
    const rampSegments = mode === 'mesh' ? RAMP_SEGMENTS + LIST_SIZE : RAMP_SEGMENTS
    const poller = (async () => {
      let first = true
      while (polling) {
        const next = performance.now() + targetSeconds * 1000
        try {
          const response = await fetch(playlistUrl, { redirect: 'manual', signal: AbortSignal.timeout(10_000) })
          const listed = magnetsOf(await response.text()).map(m => hexToBinary(m.infoHash))
          if (listed.length === 0) throw new Error(`no magnets (status ${response.status})`)
          const listedSet = new Set(listed)
          if (first) {
            for (const h of listed) known.add(h)
            startAudience(listed)
          }
          first = false
          for (const h of listed) {
            if (known.has(h)) continue
            known.add(h)
            segmentsSeen++
            for (const v of [...audience.viewers]) audience.later(Math.random() * spreadMs, () => audience.segmentListed(v, h))
            onSegment(segmentsSeen)
          }
          for (const h of [...known]) {
            if (listedSet.has(h)) continue
            known.delete(h)
            for (const v of [...audience.viewers]) audience.later(Math.random() * spreadMs, () => audience.segmentUnlisted(v, h))
          }
        } catch (error) {
          pollErrors++
          log(`  poll failed: ${error.message}`)
        }
        await sleep(Math.max(0, next - performance.now()))
      }
    })()

    // Ramp: until rampSegments new segments have been joined.
    const rampDeadline = Date.now() + (rampSegments + 4) * targetSeconds * 1000 + 30_000
    await new Promise(resolve => {
      if (rampSegments === 0) return resolve()
      onSegment = seen => { if (seen >= rampSegments) resolve() }
      const check = setInterval(() => { if (Date.now() > rampDeadline) { clearInterval(check); resolve() } }, 1000)
    })
    onSegment = () => {}
    if (segmentsSeen < rampSegments) throw new Error(`ramp: only ${segmentsSeen} new segments in the playlist`)
    log(`  ramp done (${segmentsSeen} segments); measuring ${SECONDS} s`)

    // Measured window.
    const loop = monitorEventLoopDelay({ resolution: 10 })
    loop.enable()
    const countsAtMeasure = copyCounts(audience.counts)
    const cpuAtMeasure = sampleProcesses([...serverPids, ...proxyPids])
    const generatorAtMeasure = process.cpuUsage()
    const machineAtMeasure = machineTicks()
    const segmentsAtMeasure = segmentsSeen
    const churnAtMeasure = { ...audience.churned }
    const meshAtMeasure = audience.meshState()
    const measureStarted = performance.now()
    audience.startMeasuring()
    const statsAtMeasure = statsUrl ? await fetchJson(statsUrl) : null
    let peakRss = rssOf(memConnected)
    let peakHeapMb = isolateConnected?.heapMb ?? 0
    /** Tracker process RSS in MB, each SAMPLE_EVERY_MS of the measured window: does it level off? */
    const rssSeries = []
    const peakSocketsSeen = { sockets: statsConnected?.sockets ?? null, peers: null, swarms: null }
    const measureEnd = measureStarted + SECONDS * 1000
    while (performance.now() < measureEnd) {
      await sleep(Math.min(SAMPLE_EVERY_MS, measureEnd - performance.now()))
      const rss = rssOf(sampleProcesses(serverPids))
      rssSeries.push(Math.round(rss / 2 ** 20))
      peakRss = Math.max(peakRss, rss)
      const heap = await isolate?.heapMb().catch(() => null)
      if (typeof heap === 'number') peakHeapMb = Math.max(peakHeapMb, heap)
    }
    audience.stopMeasuring()
    const measuredSeconds = (performance.now() - measureStarted) / 1000
    const statsAtMeasureEnd = statsUrl ? await fetchJson(statsUrl) : null
    const countsMeasured = countsDelta(countsAtMeasure, audience.counts)
    const cpuAtEnd = sampleProcesses([...serverPids, ...proxyPids])
    const generatorCpu = process.cpuUsage(generatorAtMeasure)
    const machineAtEnd = machineTicks()
    loop.disable()
    const segmentsMeasured = segmentsSeen - segmentsAtMeasure
    const churnMeasured = Object.fromEntries(Object.entries(audience.churned).map(([k, v]) => [k, v - churnAtMeasure[k]]))
    const meshAtMeasureEnd = audience.meshState()

    // Quiet: no new actions, in-flight messages arrive, then the counters.
    polling = false
    await poller
    audience.quiesce()
    await sleep(GRACE_MS)
    const memEnd = sampleProcesses(serverPids)
    const isolateEnd = await isolateOf()
    const statsEnd = statsUrl ? await fetchJson(statsUrl) : null

    // Scrape check: one viewer asks for the swarms of the window (and the stream swarm).
    const window = streamHash ? [...known, streamHash] : [...known]
    const expected = audience.model(window)
    const scraper = audience.viewers[0]
    const scrape = await new Promise(resolve => {
      const timer = setTimeout(() => resolve(null), 5000)
      scraper.onScrape = message => { clearTimeout(timer); resolve(message) }
      audience.send(scraper, { action: 'scrape', info_hash: window }, 'scrape')
    })
    const scrapeMismatches = []
    if (!scrape) scrapeMismatches.push('no scrape reply within 5 s')
    else {
      for (const h of window) {
        const got = scrape.files?.[h]
        const want = expected[h]
        if (!got || got.complete !== want.complete || got.incomplete !== want.incomplete) {
          scrapeMismatches.push(`${Buffer.from(h, 'latin1').toString('hex').slice(0, 8)}: tracker ${JSON.stringify(got ?? null)}, viewers announced ${JSON.stringify(want)}`)
        }
      }
    }
    for (const m of scrapeMismatches.slice(0, 6)) log(`  scrape mismatch: ${m}`)

    // Close every socket; the tracker must see them go.
    const closed = audience.viewers.map(v => (v.socket.readyState === WebSocket.CLOSED ? null : once(v.socket, 'close')))
    for (const v of audience.viewers) v.socket.close(1000, 'bench done')
    await Promise.race([Promise.all(closed.filter(Boolean)), sleep(10_000)])
    let statsClosed = null
    if (statsUrl) {
      for (let i = 0; i < 20; i++) {
        statsClosed = await fetchJson(statsUrl)
        if (statsClosed.sockets === 0) break
        await sleep(500)
      }
    }
    await sleep(1000)
    const memClosed = sampleProcesses(serverPids)
    const isolateClosed = await isolateOf()

    // --- numbers ---
    const { counts, latency, problems } = audience
    const totalsClient = { sent: counts.sent, received: counts.received }
    const totalsTracker = statsEnd && statsAtStart
      ? { in: statsEnd.messages_in - statsAtStart.messages_in, out: statsEnd.messages_out - statsAtStart.messages_out }
      : null
    // The scrape and its reply came after statsEnd.
    const scrapeMessages = { sent: 1, received: scrape ? 1 : 0 }
    Object.assign(run, {
      targetSeconds,
      measuredSeconds,
      segmentsMeasured,
      churnMeasured,
      mesh: mode === 'mesh' ? { atMeasure: meshAtMeasure, atMeasureEnd: meshAtMeasureEnd } : null,
      pollErrors,
      counts: countsMeasured,
      inPerSecond: countsMeasured.sent / measuredSeconds,
      // The tracker's own counts over (nearly) the same window: read with one
      // request at each end, so a few messages in flight may differ.
      trackerInPerSecond: statsAtMeasure && statsAtMeasureEnd ? (statsAtMeasureEnd.messages_in - statsAtMeasure.messages_in) / measuredSeconds : null,
      trackerOutPerSecond: statsAtMeasure && statsAtMeasureEnd ? (statsAtMeasureEnd.messages_out - statsAtMeasure.messages_out) / measuredSeconds : null,
      outPerSecond: countsMeasured.received / measuredSeconds,
      inPerViewerMinute: countsMeasured.sent / viewerCount / (measuredSeconds / 60),
      outPerViewerMinute: countsMeasured.received / viewerCount / (measuredSeconds / 60),
      bytesInPerSecond: countsMeasured.sentBytes / measuredSeconds,
      bytesOutPerSecond: countsMeasured.receivedBytes / measuredSeconds,
      totals: {
        client: { sent: totalsClient.sent - scrapeMessages.sent, received: totalsClient.received - scrapeMessages.received },
        tracker: totalsTracker
      },
      offerRelayMs: summary(latency.offer),
      answerRelayMs: summary(latency.answer),
      replyMs: summary(latency.reply),
      slowestMsBySecond: audience.slowestBySecond,
      rssMbSeries: rssSeries,
      unansweredAnnounces: audience.unansweredAnnounces(),
      races: { ...audience.races },
      problems: {
        failures: problems.failures.length,
        closes: problems.closes.length,
        socketErrors: problems.socketErrors.length,
        surprises: problems.surprises.length,
        scrapeMismatches: scrapeMismatches.length,
        samples: {
          failures: problems.failures.slice(0, 10),
          closes: problems.closes.slice(0, 10),
          socketErrors: problems.socketErrors.slice(0, 10),
          surprises: problems.surprises.slice(0, 10),
          scrape: scrapeMismatches.slice(0, 10)
        }
      },
      memory: {
        before: rssOf(memBefore),
        connected: rssOf(memConnected),
        peak: peakRss,
        end: rssOf(memEnd),
        afterClose: rssOf(memClosed)
      },
      // MB; null for the npm tracker or without the inspector.
      isolate: isolate && {
        heap: { before: isolateBefore?.heapMb, connected: isolateConnected?.heapMb, peak: peakHeapMb, end: isolateEnd?.heapMb, afterClose: isolateClosed?.heapMb },
        wasm: { before: isolateBefore?.wasmMb, connected: isolateConnected?.wasmMb, end: isolateEnd?.wasmMb, afterClose: isolateClosed?.wasmMb }
      },
      serverCpuSeconds: cpuOf(pick(cpuAtMeasure, serverPids), pick(cpuAtEnd, serverPids)),
      proxyCpuSeconds: proxyPids.length ? cpuOf(pick(cpuAtMeasure, proxyPids), pick(cpuAtEnd, proxyPids)) : null,
      generatorCpuSeconds: (generatorCpu.user + generatorCpu.system) / 1e6,
      machineBusy: (machineAtEnd.busy - machineAtMeasure.busy) / (machineAtEnd.total - machineAtMeasure.total),
      eventLoopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
      loadavgAtEnd: os.loadavg(),
      trackerStats: { atStart: statsAtStart, connected: statsConnected, atMeasure: statsAtMeasure, atMeasureEnd: statsAtMeasureEnd, end: statsEnd, afterClose: statsClosed }
    })
    if (statsEnd) log(`  tracker stats at the end: ${JSON.stringify(statsEnd)}`)
    if (statsClosed) log(`  tracker stats after closing: ${JSON.stringify(statsClosed)}`)
    const unanswered = Object.entries(run.unansweredAnnounces)
    if (unanswered.length) log(`  announces without a reply: ${unanswered.map(([e, n]) => `${e} ${n}`).join(', ')}`)
    return run
  } finally {
    isolate?.close()
    audience?.quiesce()
    for (const v of audience?.viewers ?? []) v.socket?.terminate()
    await worker?.stop()
    await npm?.stop()
  }
}
function pick (sample, pids) {
  return Object.fromEntries(Object.entries(sample).filter(([pid]) => pids.includes(pid)))
}

// --- main ------------------------------------------------------------------------
const origin = await startOrigin({ live: true, listSize: LIST_SIZE })
const runs = []
try {
  for (const viewers of VIEWER_COUNTS) {
    for (const mode of MODES) {
      for (const tracker of TRACKERS) {
        // The npm tracker declines permessage-deflate: one run is all there is.
        for (const deflate of tracker === 'npm' ? DEFLATES.slice(0, 1) : DEFLATES) {
          try {
            runs.push(await runOnce(origin, tracker, viewers, deflate === 'on', mode))
          } catch (error) {
            log(`  run failed: ${error.stack ?? error}`)
            runs.push({ tracker, mode, viewers, deflateOffered: deflate === 'on', failed: String(error.message ?? error).split('\n')[0] })
          }
        }
      }
    }
  }
} finally {
  await origin.stop()
}

const f = (v, d = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : 'n/a')
const mb = bytes => f(bytes / 2 ** 20, 1)
const pcts = s => `${f(s.p50)} / ${f(s.p95)} / ${f(s.p99)}`
const label = r => (r.tracker === 'builtin' ? 'built-in (Durable Object)' : 'npm bittorrent-tracker') + `, ${r.mode}` +
  (r.failed ? '' : r.extensions === 'none' ? ', uncompressed' : `, ${r.extensions.split(';')[0]}`)
const problemsOf = r => r.problems.failures + r.problems.closes + r.problems.socketErrors + r.problems.surprises + r.problems.scrapeMismatches

console.log(`WebTorrent tracker under load: simulated viewers (one WebSocket each, ws ${JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules/ws/package.json'), 'utf8')).version}) on a live feed ` +
  `(${LIST_SIZE}-segment window). ` +
  (MODES.includes('segments') ? `Segments mode: per new segment each viewer announces started with ${OFFERS_MIN}-${OFFERS_MAX} offers (~1.5 KB SDP each), completed after ${COMPLETE_MIN_MS}-${COMPLETE_MAX_MS} ms, stopped when the segment leaves the window. ` : '') +
  (MODES.includes('mesh') ? `Mesh mode: each viewer announces the stream swarm (started with offers for the links it misses of ${MESH_LINKS || 'unbounded'}, at most 5; links taken up to ${MESH_LINKS ? 2 * MESH_LINKS : 'any number'}) when it arrives, again at the tracker's interval and at most every ${REDISCOVER_MS / 1000} s after losing a link, and its segments only while it has no link. ` : '') +
  `Viewers answer ${Math.round(ANSWER_SHARE * 100)}% of the offers they get; churn ${CHURN * 100}% of the audience a minute. ` +
  `${SECONDS} s measured per run after a ${RAMP_SEGMENTS}-segment ramp (mesh mode: plus ${LIST_SIZE} segments); ${DIRECT ? 'straight to the worker\'s workerd (--direct)' : 'through wrangler dev\'s port (its dev proxy relays the sockets)'}; ` +
  `${os.cpus().length} cores shared by the tracker, the load generator and ffmpeg`)
console.log('')
console.log('| tracker | viewers | messages/s in (tracker counted) | messages/s out (tracker counted) | per viewer-minute in / out | offer relay ms p50 / p95 / p99 | answer relay ms p50 / p95 / p99 | announce reply ms p50 / p95 / p99 | failures / closes / socket errors / surprises / scrape mismatches |')
console.log('|---|---|---|---|---|---|---|---|---|')
for (const r of runs) {
  if (r.failed) {
    console.log(`| ${label(r)} | ${r.viewers} | failed: ${r.failed.replace(/\|/g, '/').slice(0, 300)} | | | | | | |`)
    continue
  }
  const trackerIn = r.trackerInPerSecond === null ? '' : ` (${f(r.trackerInPerSecond, 0)})`
  const trackerOut = r.trackerOutPerSecond === null ? '' : ` (${f(r.trackerOutPerSecond, 0)})`
  const p = r.problems
  console.log(`| ${label(r)} | ${r.viewers} | ${f(r.inPerSecond, 0)}${trackerIn} | ${f(r.outPerSecond, 0)}${trackerOut} | ${f(r.inPerViewerMinute, 1)} / ${f(r.outPerViewerMinute, 1)} | ` +
    `${pcts(r.offerRelayMs)} | ${pcts(r.answerRelayMs)} | ${pcts(r.replyMs)} | ${p.failures} / ${p.closes} / ${p.socketErrors} / ${p.surprises} / ${p.scrapeMismatches} |`)
}
console.log('')
console.log('| tracker | viewers | tracker process RSS MB: before / sockets open / peak / end / after close | isolate V8 heap MB: before / open / peak / end; wasm memory MB: before / end | tracker CPU s in the window (share of one core) | dev proxy CPU (share) | load generator CPU (share) | machine busy (2 cores) | event-loop delay p99 / max ms | sockets open in s (connect p50 / p99 ms) |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const r of runs) {
  if (r.failed) continue
  const m = r.memory
  const share = s => `${f(100 * s / r.measuredSeconds, 0)}%`
  console.log(`| ${label(r)} | ${r.viewers} | ${mb(m.before)} / ${mb(m.connected)} / ${mb(m.peak)} / ${mb(m.end)} / ${mb(m.afterClose)} | ` +
    `${r.isolate ? `${f(r.isolate.heap.before)} / ${f(r.isolate.heap.connected)} / ${f(r.isolate.heap.peak)} / ${f(r.isolate.heap.end)}; ${f(r.isolate.wasm.before)} / ${f(r.isolate.wasm.end)}` : 'n/a'} | ` +
    `${f(r.serverCpuSeconds, 1)} (${share(r.serverCpuSeconds)}) | ${r.proxyCpuSeconds === null ? 'n/a' : `${f(r.proxyCpuSeconds, 1)} (${share(r.proxyCpuSeconds)})`} | ` +
    `${f(r.generatorCpuSeconds, 1)} (${share(r.generatorCpuSeconds)}) | ${f(100 * r.machineBusy, 0)}% | ${f(r.eventLoopDelayMs.p99, 0)} / ${f(r.eventLoopDelayMs.max, 0)} | ` +
    `${f(r.connectSeconds, 1)} (${f(r.connectMs.p50, 0)} / ${f(r.connectMs.p99, 0)}) |`)
}
console.log('')
for (const r of runs) {
  if (r.failed) continue
  const c = r.totals
  const agree = c.tracker ? (c.tracker.in === c.client.sent && c.tracker.out === c.client.received ? 'agree' : 'DISAGREE') : 'n/a (no stats endpoint)'
  console.log(`- ${label(r)}, ${r.viewers} viewers: ${r.segmentsMeasured} segments in ${f(r.measuredSeconds, 0)} s; sent by kind ${JSON.stringify(r.counts.sentByKind)}, ` +
    `received ${JSON.stringify(r.counts.receivedByKind)}; ${f(r.bytesInPerSecond / 1024, 0)} KiB/s in, ${f(r.bytesOutPerSecond / 1024, 0)} KiB/s out; ` +
    `WebSocket extensions ${r.extensions}; whole run, client sent/received ${c.client.sent}/${c.client.received}, tracker counted in/out ${c.tracker ? `${c.tracker.in}/${c.tracker.out}` : 'n/a'}: ${agree}` +
    `; tracker RSS over the window ${r.rssMbSeries[0] ?? 'n/a'} -> ${r.rssMbSeries.at(-1) ?? 'n/a'} MB` +
    `${r.churnMeasured.departed ? `; churn in the window: ${r.churnMeasured.departed} left (${r.churnMeasured.linksLost} links lost), ${r.churnMeasured.arrived} arrived` : ''}` +
    `${r.mesh ? `; mesh links per viewer ${f(r.mesh.atMeasure.meanLinks)} -> ${f(r.mesh.atMeasureEnd.meanLinks)}, viewers without a link ${r.mesh.atMeasure.withoutLink} -> ${r.mesh.atMeasureEnd.withoutLink}` : ''}` +
    `${r.races.answerAfterStopped ? `; answers refused because their offerer had sent stopped first (a race, not an error): ${r.races.answerAfterStopped}` : ''}` +
    `${Object.keys(r.unansweredAnnounces).length ? `; announces without reply ${JSON.stringify(r.unansweredAnnounces)}` : ''}; load average ${r.loadavgAtStart.map(x => x.toFixed(2)).join(' ')} at start`)
  for (const [what, list] of Object.entries(r.problems.samples)) for (const s of list.slice(0, 3)) console.log(`  ${what}: ${JSON.stringify(s).slice(0, 300)}`)
}
if (flags.json) writeFileSync(flags.json, JSON.stringify({ options: { VIEWER_COUNTS, SECONDS, TRACKERS, OFFERS_MIN, OFFERS_MAX, ANSWER_SHARE, COMPLETE_MIN_MS, COMPLETE_MAX_MS, RAMP_SEGMENTS, DIRECT, DEFLATES, MODES, CHURN, MAX_PEERS_PER_SWARM }, runs }, null, 2))
const bad = runs.filter(r => r.failed || problemsOf(r) > 0 || (r.totals.tracker && (r.totals.tracker.in !== r.totals.client.sent || r.totals.tracker.out !== r.totals.client.received)))
console.log(`- result: ${bad.length ? `${bad.length} run(s) with failures, closes, surprises or disagreeing counts -> FAIL` : 'ok'}`)
process.exitCode = bad.length ? 1 : 0

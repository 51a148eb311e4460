// Load on the WebTorrent tracker: hundreds of simulated viewers, each one
// WebSocket, signalling on the live feed's segment swarms the way the page
// client does, against the worker's built-in tracker (docs/tracker.md) or,
// for comparison, the npm bittorrent-tracker server (scripts/tracker.mjs, its
// own process) that the tests used before.
//
// One run per (tracker, viewer count): a fresh worker under `wrangler dev`
// (BENCH_ENDPOINTS=true; TRACKERS unset for the built-in tracker) in front of
// one shared ffmpeg live origin (2 s segments, a 6-segment window). The
// viewers' WebSockets go to the magnets' `tr=` URL (the built-in tracker:
// ws://127.0.0.1:<port>/_lt/tracker/<stream>). What each viewer does, per
// live segment, like public/_lt/client/ with WebTorrent's tracker client:
//   - one poller for the whole audience reads the playlist through the worker
//     once per target duration (the viewers' own polls are what bench/load.mjs
//     and bench/cost.mjs measure; here only the tracker is under load);
//   - a segment that appears in the playlist: every viewer, at a random moment
//     within one target duration (players poll out of phase), announces
//     `started` with 2-5 offers (--offers; numwant = offers, as the client's
//     offer budget does), each offer an SDP-sized (~1.5 KB) string;
//   - an offer it receives is answered with probability --answer-share
//     (the answer relayed through the tracker, after 0-20 ms);
//   - `completed` (left 0) 300-1500 ms after `started` (--complete-ms);
//   - `stopped` when the segment has left the playlist's window, again at a
//     random moment within one target duration.
// The first window's worth of segments (--ramp-segments, default the window
// length) is a ramp: counts and latencies are kept for the --seconds after it,
// when every viewer is in about one window of swarms.
//
// Measured:
//   messages/s     client side: frames the viewers sent (into the tracker) and
//                  received (out of it), during the measured window; over the
//                  whole run they are checked against the built-in tracker's
//                  own counters (GET /_lt/tracker/<stream>/stats, messages_in/
//                  messages_out): they must agree
//   per viewer-minute  the same counts per viewer per minute
//   relay latency  offer sent -> offer received by the peer the tracker chose,
//                  and answer sent -> answer received by the offerer: each SDP
//                  carries its send time (performance.now(), one process)
//   announce reply announce sent -> its reply (per socket and info-hash, in
//                  order; `stopped` included, as bittorrent-tracker replies)
//   errors         failure replies, sockets closed or failed before the end,
//                  and protocol surprises (an offer for a swarm the viewer is
//                  not in or from itself, an answer for an offer it never
//                  made, one offer sent twice to the same peer, a reply
//                  without an announce): all must be zero (exit status 1)
//   scrape check   at the end one viewer scrapes the window's info-hashes;
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

import { startOrigin } from '../scripts/origin.mjs'
import { REPO_ROOT, sleep, startWorker } from '../tests/support/harness.mjs'
import { magnetsOf } from '../tests/support/torrents.mjs'
import { percentile } from './percentile.mjs'

const USAGE = `usage: node bench/tracker-load.mjs [--viewers 300[,600...]] [--seconds 60] [--tracker builtin[,npm]]
       [--offers 2-5] [--answer-share 0.5] [--complete-ms 300-1500] [--ramp-segments 6]
       [--deflate on[,off]] [--direct] [--json FILE] [--log]

  --viewers N[,N...]  simulated viewers (WebSockets) per run, 1..${1000}; one run each (default 300)
  --seconds S         measured seconds per run after the ramp, 5..600 (default 60)
  --tracker T[,T...]  builtin (the worker's, TRACKERS unset) and/or npm (bittorrent-tracker,
                      scripts/tracker.mjs in its own process); one run each per viewer count
  --offers A-B        offers per started announce, uniform in A..B (default 2-5)
  --answer-share P    share of received offers a viewer answers (default 0.5)
  --complete-ms A-B   completed this long after started (default 300-1500)
  --ramp-segments K   segments before measuring starts (default 6, the window)
  --direct            the poller and the sockets go straight to the worker's workerd,
                      bypassing wrangler's dev proxy (not part of a deployment)
  --deflate on,off    whether the sockets offer permessage-deflate, as browsers do (default
                      on; workerd accepts it, the npm tracker declines it, so it runs once);
                      one run each
  --json FILE         write every run's numbers
  --log               echo wrangler's output`

const MAX_VIEWERS = 1000
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
 * memberships, what they sent and what came back.
 */
function createAudience (n, trackerUrl, deflate) {
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
  const problem = (list, what) => {
    list.push(what)
    if (list.length <= 5) log(`  problem: ${JSON.stringify(what).slice(0, 400)}`)
  }
  let measuring = false
  let closing = false
  let announceSeq = 0
  /** announce seq -> Set of recipient viewer indices: an offer delivered twice to one peer is a surprise. */
  const offerRecipients = new Map()
  const timers = new Set()
  const later = (ms, fn) => {
    const timer = setTimeout(() => { timers.delete(timer); fn() }, ms)
    timers.add(timer)
  }

  const viewers = Array.from({ length: n }, (_, index) => ({
    index,
    peerId: binaryId('-LT0001-'),
    socket: null,
    /** info-hash (binary) -> { completed } */
    swarms: new Map(),
    /** info-hashes left recently: an offer for one of them may still be in flight. */
    left: new Set(),
    /** info-hash -> [{ at, event }] announces waiting for their reply, in order. */
    pending: new Map(),
    /** offer id -> { infoHash, at } */
    offers: new Map()
  }))

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

  function announce (viewer, infoHash, event, extra = {}) {
    const message = {
      action: 'announce', info_hash: infoHash, peer_id: viewer.peerId, event,
      numwant: extra.numwant ?? OFFERS_MAX, uploaded: 0, downloaded: event === 'started' ? 0 : SEGMENT_BYTES,
      left: event === 'completed' ? 0 : SEGMENT_BYTES, ...extra
    }
    const at = performance.now()
    if (!send(viewer, message, event)) return
    if (!viewer.pending.has(infoHash)) viewer.pending.set(infoHash, [])
    viewer.pending.get(infoHash).push({ at, event })
  }

  function join (viewer, infoHash) {
    if (closing || viewer.swarms.has(infoHash)) return
    const k = randomInt(OFFERS_MIN, OFFERS_MAX)
    const seq = ++announceSeq
    const at = performance.now()
    const offers = Array.from({ length: k }, () => {
      const offerId = binaryId()
      viewer.offers.set(offerId, { infoHash, at })
      return { offer: { type: 'offer', sdp: fakeSdp('offer', at, viewer.index) + `a=x-lt-seq:${seq}\r\n` }, offer_id: offerId }
    })
    viewer.swarms.set(infoHash, { completed: false })
    viewer.left.delete(infoHash)
    announce(viewer, infoHash, 'started', { numwant: k, offers })
    later(uniform(COMPLETE_MIN_MS, COMPLETE_MAX_MS), () => {
      const swarm = viewer.swarms.get(infoHash)
      if (closing || !swarm) return
      swarm.completed = true
      announce(viewer, infoHash, 'completed', { numwant: k })
    })
  }

  function leave (viewer, infoHash) {
    if (closing || !viewer.swarms.has(infoHash)) return
    viewer.swarms.delete(infoHash)
    viewer.left.add(infoHash)
    for (const [id, offer] of viewer.offers) if (offer.infoHash === infoHash) viewer.offers.delete(id)
    announce(viewer, infoHash, 'stopped', { numwant: 0 })
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
    counts.receivedByKind[kind] = (counts.receivedByKind[kind] ?? 0) + 1
    if (kind === 'failure') {
      // A failure for an announce is its reply too.
      const queue = message.info_hash !== undefined && viewer.pending.get(message.info_hash)
      const sentFor = queue && queue.length ? queue.shift().event : null
      problem(problems.failures, { viewer: viewer.index, reason: message['failure reason'], action: message.action, forEvent: sentFor })
      return
    }
    if (kind === 'scrape') {
      viewer.onScrape?.(message)
      return
    }
    if (kind === 'other') {
      problem(problems.surprises, { viewer: viewer.index, what: 'unknown action', text: text.slice(0, 200) })
      return
    }
    const infoHash = message.info_hash
    if (kind === 'offer') {
      if (message.peer_id === viewer.peerId) problem(problems.surprises, { viewer: viewer.index, what: 'offer from itself' })
      const mark = SDP_MARK.exec(message.offer?.sdp ?? '')
      const seq = /a=x-lt-seq:(\d+)/.exec(message.offer?.sdp ?? '')?.[1]
      if (!mark || typeof message.offer_id !== 'string' || typeof message.peer_id !== 'string') {
        problem(problems.surprises, { viewer: viewer.index, what: 'offer without its fields', text: text.slice(0, 200) })
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
          send(viewer, {
            action: 'announce', info_hash: infoHash, peer_id: viewer.peerId, to_peer_id: message.peer_id,
            answer: { type: 'answer', sdp: fakeSdp('answer', performance.now(), viewer.index) }, offer_id: message.offer_id
          }, 'answer')
        })
      }
      return
    }
    if (kind === 'answer') {
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
      return
    }
    // The reply to an announce.
    const queue = viewer.pending.get(infoHash)
    if (!queue || queue.length === 0) {
      problem(problems.surprises, { viewer: viewer.index, what: 'announce reply without an announce', text: text.slice(0, 200) })
      return
    }
    const { at } = queue.shift()
    if (queue.length === 0) viewer.pending.delete(infoHash)
    if (measuring) {
      latency.reply.push(now - at)
      noteSlow(now, now - at)
    }
    if (typeof message.complete !== 'number' || typeof message.incomplete !== 'number' || typeof message.interval !== 'number') {
      problem(problems.surprises, { viewer: viewer.index, what: 'reply without complete/incomplete/interval', text: text.slice(0, 200) })
    }
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
      if (!closing) problem(problems.closes, { viewer: viewer.index, code, reason: reason.toString() })
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

  return {
    viewers,
    counts,
    latency,
    problems,
    connect,
    join,
    leave,
    later,
    model,
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
      for (const v of viewers) for (const queue of v.pending.values()) for (const { event } of queue) byEvent[event] = (byEvent[event] ?? 0) + 1
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

async function runOnce (origin, trackerKind, viewerCount, deflate) {
  log(`${trackerKind} tracker, ${viewerCount} viewers, permessage-deflate ${deflate ? 'offered' : 'not offered'}: starting`)
  const npm = trackerKind === 'npm' ? await startNpmTracker() : null
  const vars = { UPSTREAM: origin.url, BENCH_ENDPOINTS: 'true' }
  if (npm) vars.TRACKERS = npm.url
  let worker
  let audience
  let isolate = null
  const run = { tracker: trackerKind, viewers: viewerCount, deflateOffered: deflate, direct: DIRECT, loadavgAtStart: os.loadavg() }
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
    audience = createAudience(viewerCount, trackerUrl, deflate)
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
    const known = new Set()
    let segmentsSeen = 0
    let pollErrors = 0
    let polling = true
    let onSegment = () => {}
    const spreadMs = targetSeconds * 1000
    const poller = (async () => {
      let first = true
      while (polling) {
        const next = performance.now() + targetSeconds * 1000
        try {
          const response = await fetch(playlistUrl, { redirect: 'manual', signal: AbortSignal.timeout(10_000) })
          const listed = magnetsOf(await response.text()).map(m => hexToBinary(m.infoHash))
          if (listed.length === 0) throw new Error(`no magnets (status ${response.status})`)
          const listedSet = new Set(listed)
          // Viewers arrive for the next new segment: the current window is history.
          if (first) for (const h of listed) known.add(h)
          first = false
          for (const h of listed) {
            if (known.has(h)) continue
            known.add(h)
            segmentsSeen++
            for (const v of audience.viewers) audience.later(Math.random() * spreadMs, () => audience.join(v, h))
            onSegment(segmentsSeen)
          }
          for (const h of [...known]) {
            if (listedSet.has(h)) continue
            known.delete(h)
            for (const v of audience.viewers) audience.later(Math.random() * spreadMs, () => audience.leave(v, h))
          }
        } catch (error) {
          pollErrors++
          log(`  poll failed: ${error.message}`)
        }
        await sleep(Math.max(0, next - performance.now()))
      }
    })()

    // Ramp: until RAMP_SEGMENTS new segments have been joined.
    const rampDeadline = Date.now() + (RAMP_SEGMENTS + 4) * targetSeconds * 1000 + 30_000
    await new Promise(resolve => {
      if (RAMP_SEGMENTS === 0) return resolve()
      onSegment = seen => { if (seen >= RAMP_SEGMENTS) resolve() }
      const check = setInterval(() => { if (Date.now() > rampDeadline) { clearInterval(check); resolve() } }, 1000)
    })
    onSegment = () => {}
    if (segmentsSeen < RAMP_SEGMENTS) throw new Error(`ramp: only ${segmentsSeen} new segments in the playlist`)
    log(`  ramp done (${segmentsSeen} segments); measuring ${SECONDS} s`)

    // Measured window.
    const loop = monitorEventLoopDelay({ resolution: 10 })
    loop.enable()
    const countsAtMeasure = copyCounts(audience.counts)
    const cpuAtMeasure = sampleProcesses([...serverPids, ...proxyPids])
    const generatorAtMeasure = process.cpuUsage()
    const machineAtMeasure = machineTicks()
    const segmentsAtMeasure = segmentsSeen
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

    // Quiet: no new actions, in-flight messages arrive, then the counters.
    polling = false
    await poller
    audience.quiesce()
    await sleep(GRACE_MS)
    const memEnd = sampleProcesses(serverPids)
    const isolateEnd = await isolateOf()
    const statsEnd = statsUrl ? await fetchJson(statsUrl) : null

    // Scrape check: one viewer asks for the swarms of the window.
    const window = [...known]
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
    for (const tracker of TRACKERS) {
      // The npm tracker declines permessage-deflate: one run is all there is.
      for (const deflate of tracker === 'npm' ? DEFLATES.slice(0, 1) : DEFLATES) {
        try {
          runs.push(await runOnce(origin, tracker, viewers, deflate === 'on'))
        } catch (error) {
          log(`  run failed: ${error.stack ?? error}`)
          runs.push({ tracker, viewers, deflateOffered: deflate === 'on', failed: String(error.message ?? error).split('\n')[0] })
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
const label = r => (r.tracker === 'builtin' ? 'built-in (Durable Object)' : 'npm bittorrent-tracker') +
  (r.failed ? '' : r.extensions === 'none' ? ', uncompressed' : `, ${r.extensions.split(';')[0]}`)
const problemsOf = r => r.problems.failures + r.problems.closes + r.problems.socketErrors + r.problems.surprises + r.problems.scrapeMismatches

console.log(`WebTorrent tracker under load: simulated viewers (one WebSocket each, ws ${JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules/ws/package.json'), 'utf8')).version}) on a live feed ` +
  `(${LIST_SIZE}-segment window); per new segment each viewer announces started with ${OFFERS_MIN}-${OFFERS_MAX} offers (~1.5 KB SDP each), ` +
  `answers ${Math.round(ANSWER_SHARE * 100)}% of the offers it gets, completed after ${COMPLETE_MIN_MS}-${COMPLETE_MAX_MS} ms, stopped when the segment leaves the window. ` +
  `${SECONDS} s measured per run after a ${RAMP_SEGMENTS}-segment ramp; ${DIRECT ? 'straight to the worker\'s workerd (--direct)' : 'through wrangler dev\'s port (its dev proxy relays the sockets)'}; ` +
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
    `${Object.keys(r.unansweredAnnounces).length ? `; announces without reply ${JSON.stringify(r.unansweredAnnounces)}` : ''}; load average ${r.loadavgAtStart.map(x => x.toFixed(2)).join(' ')} at start`)
  for (const [what, list] of Object.entries(r.problems.samples)) for (const s of list.slice(0, 3)) console.log(`  ${what}: ${JSON.stringify(s).slice(0, 300)}`)
}
if (flags.json) writeFileSync(flags.json, JSON.stringify({ options: { VIEWER_COUNTS, SECONDS, TRACKERS, OFFERS_MIN, OFFERS_MAX, ANSWER_SHARE, COMPLETE_MIN_MS, COMPLETE_MAX_MS, RAMP_SEGMENTS, DIRECT, DEFLATES }, runs }, null, 2))
const bad = runs.filter(r => r.failed || problemsOf(r) > 0 || (r.totals.tracker && (r.totals.tracker.in !== r.totals.client.sent || r.totals.tracker.out !== r.totals.client.received)))
console.log(`- result: ${bad.length ? `${bad.length} run(s) with failures, closes, surprises or disagreeing counts -> FAIL` : 'ok'}`)
process.exitCode = bad.length ? 1 : 0

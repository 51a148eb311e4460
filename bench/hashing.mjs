// Hashing throughput: the worker's piece hashing as it runs in workerd
// (Web Crypto and the sha1 crate in wasm), against the same Rust natively and
// against the machine's practical limit (sha1sum, openssl).
//
//   make bench   (or: node bench/hashing.mjs, after make worker assets)
//
// Inside workerd the clock stands still while code computes, so the worker
// cannot time itself: each engine is timed from outside on
// /_lt/bench/hash?bytes=2097152&engine=..., minus the same request with
// engine=none (generating the bytes, no hashing). Requests alternate between
// engines so a noisy machine hits them alike; medians of ROUNDS each.
import { execFileSync, spawnSync } from 'node:child_process'

import { REPO_ROOT, startWorker } from '../tests/support/harness.mjs'
import { opensslSha1MBps } from './machine-speed.mjs'

const SEGMENT_BYTES = 2 * 1024 * 1024
const ROUNDS = Number(process.env.ROUNDS ?? 40)
const ENGINES = ['none', 'wasm', 'webcrypto']
const FREE_PLAN_CPU_MS = 10

const median = values => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

async function timeWorker () {
  const worker = await startWorker({ vars: { UPSTREAM: 'http://127.0.0.1:9', TRACKERS: '', BENCH_ENDPOINTS: 'true' } })
  try {
    const times = Object.fromEntries(ENGINES.map(e => [e, []]))
    const hashes = {}
    for (let round = -3; round < ROUNDS; round++) { // three warm-up rounds
      for (const engine of ENGINES) {
        const started = performance.now()
        const response = await fetch(`${worker.url}/_lt/bench/hash?bytes=${SEGMENT_BYTES}&engine=${engine}`)
        const body = await response.json()
        const ms = performance.now() - started
        if (response.status !== 200) throw new Error(`${engine}: ${response.status} ${JSON.stringify(body)}`)
        hashes[engine] = body.infoHash
        if (round >= 0) times[engine].push(ms)
      }
    }
    if (hashes.wasm !== hashes.webcrypto) throw new Error(`engines disagree: ${JSON.stringify(hashes)}`)
    const base = median(times.none)
    return Object.fromEntries(['wasm', 'webcrypto'].map(engine => {
      const ms = Math.max(0.001, median(times[engine]) - base)
      return [engine, { ms, mbPerSecond: SEGMENT_BYTES / 1e6 / (ms / 1000) }]
    }))
  } finally {
    await worker.stop()
  }
}

function timeNative () {
  const out = execFileSync('cargo', ['run', '--quiet', '--release', '--example', 'hash_throughput'], { cwd: REPO_ROOT, encoding: 'utf8' })
  const result = JSON.parse(out.trim().split('\n').pop())
  return { ms: result.msPerSegment, mbPerSecond: result.mbPerSecond }
}

/** sha1sum over 512 MiB from /dev/zero: the practical single-core limit. */
function timeSha1sum () {
  const bytes = 512 * 1024 * 1024
  const started = performance.now()
  const run = spawnSync('sh', ['-c', `head -c ${bytes} /dev/zero | sha1sum`], { encoding: 'utf8' })
  if (run.status !== 0) return null
  const seconds = (performance.now() - started) / 1000
  return { mbPerSecond: bytes / 1e6 / seconds, ms: SEGMENT_BYTES / (bytes / seconds) * 1000 }
}

/** `openssl speed sha1` at 16 KiB blocks, if openssl is there. */
function timeOpenssl () {
  const mbPerSecond = opensslSha1MBps(2)
  return mbPerSecond && { mbPerSecond, ms: SEGMENT_BYTES / 1e6 / mbPerSecond * 1000 }
}

const worker = await timeWorker()
const rows = [
  ['worker, Web Crypto (crypto.subtle.digest per 64 KiB piece), workerd', worker.webcrypto],
  ['worker, sha1 crate in wasm, workerd', worker.wasm],
  ['same Rust (sha1 crate), native', timeNative()],
  ['sha1sum (coreutils), 512 MiB', timeSha1sum()],
  ['openssl speed sha1, 16 KiB blocks', timeOpenssl()]
]
// The machine's practical limit: the faster of sha1sum and openssl.
const limit = Math.max(rows[3][1]?.mbPerSecond ?? 0, rows[4][1]?.mbPerSecond ?? 0) || null
console.log(`Hashing a ${SEGMENT_BYTES / 1024 / 1024} MiB segment into 64 KiB pieces (median of ${ROUNDS} per worker engine)`)
console.log('| engine | MB/s | ms per 2 MiB segment | of the machine\'s limit (faster of sha1sum, openssl) | of the free plan\'s 10 ms CPU |')
console.log('|---|---|---|---|---|')
for (const [name, r] of rows) {
  if (!r) { console.log(`| ${name} | n/a | | | |`); continue }
  const ofLimit = limit ? `${(100 * r.mbPerSecond / limit).toFixed(0)}%` : ''
  console.log(`| ${name} | ${r.mbPerSecond.toFixed(0)} | ${r.ms.toFixed(2)} | ${ofLimit} | ${(100 * r.ms / FREE_PLAN_CPU_MS).toFixed(0)}% |`)
}

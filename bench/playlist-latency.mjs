// Playlist latency through the worker under `wrangler dev`:
//   passthrough  the same playlist bytes served under a name the worker does
//                not treat as a playlist (streamed through untouched);
//   warm         the annotated playlist, every segment hash already in KV;
//   cold         a new live window of 6 unhashed 2 s segments each time.
// Everything runs on 127.0.0.1 against the project's own origin.
import fs from 'node:fs/promises'
import path from 'node:path'
import crypto from 'node:crypto'

import { startOrigin } from '../scripts/origin.mjs'
import { startWorker } from '../tests/support/harness.mjs'
import { percentile } from './percentile.mjs'

const ROUNDS = Number(process.env.ROUNDS || 200)
const COLD_ROUNDS = Number(process.env.COLD_ROUNDS || 20)
// 2 s of 2.5 Mbit/s video: a typical 720p live segment.
const SEGMENT_BYTES = Number(process.env.SEGMENT_BYTES || 625_000)
const WINDOW = 6

function summary (samples) {
  const sorted = [...samples].sort((a, b) => a - b)
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), n: sorted.length }
}

async function timed (url) {
  const started = performance.now()
  const response = await fetch(url)
  await response.arrayBuffer()
  const ms = performance.now() - started
  if (response.status !== 200) throw new Error(`${url}: ${response.status}`)
  return { ms, status: response.headers.get('x-live-torrent') }
}

function playlistText (firstSequence) {
  let text = `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:${firstSequence}\n`
  for (let i = firstSequence; i < firstSequence + WINDOW; i++) text += `#EXTINF:2.000000,\nseg-${i}.ts\n`
  return text
}

async function writeWindow (dir, firstSequence) {
  await fs.mkdir(dir, { recursive: true })
  for (let i = firstSequence; i < firstSequence + WINDOW; i++) {
    await fs.writeFile(path.join(dir, `seg-${i}.ts`), crypto.randomBytes(SEGMENT_BYTES))
  }
  const text = playlistText(firstSequence)
  await fs.writeFile(path.join(dir, 'index.m3u8'), text)
  await fs.writeFile(path.join(dir, 'index.txt'), text)
}

const origin = await startOrigin({ live: false })
const worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: 'wss://tracker.invalid/announce' } })
try {
  // Warm: hash once, then measure.
  await writeWindow(path.join(origin.dir, 'warm'), 0)
  for (let i = 0; i < 3; i++) await timed(`${worker.url}/warm/index.m3u8`)
  const warmCheck = await timed(`${worker.url}/warm/index.m3u8`)
  if (warmCheck.status !== `annotated ${WINDOW}/${WINDOW}`) throw new Error(`not warm: ${warmCheck.status}`)

  const passthrough = []
  const warm = []
  for (let i = 0; i < ROUNDS; i++) {
    // Interleaved, so both see the same machine noise.
    passthrough.push((await timed(`${worker.url}/warm/index.txt`)).ms)
    warm.push((await timed(`${worker.url}/warm/index.m3u8`)).ms)
  }

  const cold = []
  const coldStatus = new Set()
  for (let round = 0; round < COLD_ROUNDS; round++) {
    const dir = `cold-${round}`
    await writeWindow(path.join(origin.dir, dir), 1000 * round)
    const result = await timed(`${worker.url}/${dir}/index.m3u8`)
    cold.push(result.ms)
    coldStatus.add(result.status)
  }

  const p = summary(passthrough)
  const w = summary(warm)
  const c = summary(cold)
  const row = (name, s, note) =>
    `| ${name} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} | ${s.n} | ${note} |`
  console.log(`Playlist latency through wrangler dev, ${WINDOW} segments of ${SEGMENT_BYTES} bytes (ms)`)
  console.log('| case | p50 | p99 | n | note |')
  console.log('|---|---|---|---|---|')
  console.log(row('passthrough', p, 'same bytes, not annotated'))
  console.log(row('annotated, warm', w, `all hashes in KV; ratio p50 ${(w.p50 / p.p50).toFixed(2)}x passthrough`))
  console.log(row('annotated, cold', c, `new window of ${WINDOW} unhashed segments; answered as ${[...coldStatus].join(', ')}`))
} finally {
  await worker.stop()
  await origin.stop()
}

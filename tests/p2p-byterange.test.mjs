// Byte-range segments (EXT-X-BYTERANGE, one file) are shared too: the
// service worker matches the player's Range request to the segment's magnet,
// peers deliver the range's pieces, the HTTP fallback asks for the range's
// bytes at their offset in the file, and the player gets a 206 with exactly
// the bytes it asked for.
//
// ffmpeg single-file VOD at the origin <- worker (wrangler dev) <- two
// viewers of the demo player, the second starting behind the first.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import { createHash } from 'node:crypto'

import { startOrigin } from '../scripts/origin.mjs'
import { startTracker, startWorker, sleep } from './support/harness.mjs'
import { makeHls } from './support/media.mjs'
import { openViewer, playedOver } from './support/viewers.mjs'

const VOD_SECONDS = 40
const SECOND_VIEWER_DELAY_MS = 8_000
const WATCH_MS = 20_000
const MIN_PLAYED_S = 12
const FILE_PATH = /\/single-file\/index\.ts$/

let origin, tracker, worker, file
const viewers = []

before(async () => {
  origin = await startOrigin({ live: false })
  await makeHls(path.join(origin.dir, 'single-file'), 'single-file', { seconds: VOD_SECONDS })
  file = await fs.readFile(path.join(origin.dir, 'single-file', 'index.ts'))
  tracker = await startTracker()
  worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: tracker.url } })
  // Hash every range before the viewers come (a VOD playlist fills in over a few requests).
  for (let i = 0; i < 20; i++) {
    const r = await fetch(`${worker.url}/single-file/index.m3u8`)
    await r.arrayBuffer()
    const [, done, total] = /^annotated (\d+)\/(\d+)$/.exec(r.headers.get('x-live-torrent') ?? '') ?? []
    if (done && done === total) break
    await sleep(500)
  }
})

after(async () => {
  await Promise.all(viewers.map(v => v.close()))
  await worker?.stop()
  await tracker?.stop()
  await origin?.stop()
})

const sha256 = bytes => createHash('sha256').update(bytes).digest('hex')

/** Every recorded 206 body must be the file's bytes for the range its request named. */
function assertExactRanges (label, report) {
  const partial = report.segmentResponses.filter(r => r.status === 206)
  assert.ok(partial.length >= 4, `${label}: ${partial.length} range responses`)
  for (const r of partial) {
    const [, first, last] = /^bytes=(\d+)-(\d+)$/.exec(r.range) ?? assert.fail(`${label}: range ${r.range}`)
    assert.equal(r.sha256, sha256(file.subarray(Number(first), Number(last) + 1)), `${label}: ${r.range}`)
  }
  return partial
}

test('two viewers share the ranges of one file, and each player gets exactly the bytes it asked for', { timeout: 4 * 60_000 }, async () => {
  const options = {
    workerUrl: worker.url,
    src: '/single-file/index.m3u8',
    registry: viewers,
    segmentPath: FILE_PATH,
    segmentRequestPath: FILE_PATH,
    partialResponses: true
  }
  const first = await openViewer({ ...options, index: 1 })
  await sleep(SECOND_VIEWER_DELAY_MS)
  const second = await openViewer({ ...options, index: 2 })
  await sleep(WATCH_MS)
  const reports = [await first.finish(), await second.finish()]
  for (const [i, report] of reports.entries()) {
    const viewer = [first, second][i]
    const { played } = playedOver(viewer, WATCH_MS)
    const fromSw = report.segmentResponses.filter(r => r.status === 206 && r.fromServiceWorker).length
    console.log(`viewer ${i + 1}: played ${played.toFixed(1)} s, stalls ${report.stalls}, ` +
      `${fromSw} ranges answered by the service worker, stats ${JSON.stringify(report.stats)}`)
    assert.ok(played >= MIN_PLAYED_S, `viewer ${i + 1} played ${played} s`)
    assert.deepEqual(report.pageErrors, [])
    assertExactRanges(`viewer ${i + 1}`, report)
    assert.ok(fromSw >= 4, `viewer ${i + 1}: the service worker answered the player's range requests`)
  }
  assert.ok(reports[1].stats.p2pBytes > 0, `the second viewer got verified pieces from the first: ${JSON.stringify(reports[1].stats)}`)
  assert.ok(reports[0].stats.uploadedBytes > 0, 'the first viewer uploaded')
})

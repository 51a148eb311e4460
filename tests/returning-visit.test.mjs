// A returning visit: the page loads already controlled by the service worker
// of its first visit. The demo then imports the page client before it creates
// the player (on a first visit it creates the player first), so the service
// worker finds the page listening from the first segment request on. The
// viewer still plays the origin's bytes, with P2P on.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { freePort, startWorker, sleep } from './support/harness.mjs'
import { openViewer, originFiles } from './support/viewers.mjs'

const FIRST_VISIT_MS = 6_000
const RETURN_VISIT_MS = 12_000
const MIN_PLAYED_S = 6

let origin, worker
const viewers = []

before(async () => {
  origin = await startOrigin({ live: true, keepSegments: true })
  // No peers: what is checked is the page's start, not sharing.
  const deadTracker = `ws://127.0.0.1:${await freePort()}`
  worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: deadTracker } })
})

after(async () => {
  await Promise.all(viewers.map(v => v.close()))
  await worker?.stop()
  await origin?.stop()
})

test('a page that its service worker controls at load plays with P2P on, the origin\'s bytes', { timeout: 3 * 60_000 }, async () => {
  const viewer = await openViewer({ workerUrl: worker.url, index: 'returning', registry: viewers })
  const { page } = viewer
  await page.waitForFunction(() => Boolean(navigator.serviceWorker.controller), null, { timeout: 30_000 })
  await sleep(FIRST_VISIT_MS)

  const responsesOfFirstVisit = viewer.segmentResponses.length
  await page.reload({ waitUntil: 'domcontentloaded' })
  const controlledAtLoad = await page.evaluate(() => Boolean(navigator.serviceWorker.controller))
  await page.waitForFunction(() => window.ltDemo && window.ltDemo.metrics.firstFrameMs !== null, null, { timeout: 60_000, polling: 100 })
  await sleep(RETURN_VISIT_MS)
  const state = await page.evaluate(async () => ({
    ready: await window.liveTorrent.ready,
    disabled: window.liveTorrent.disabled,
    stats: window.liveTorrent.stats(),
    played: window.ltDemo.video.played.length ? window.ltDemo.video.played.end(window.ltDemo.video.played.length - 1) - window.ltDemo.video.played.start(0) : 0,
    stalls: window.ltDemo.metrics.stalls
  }))
  const report = await viewer.finish()
  await viewer.close()

  const returning = viewer.segmentResponses.slice(responsesOfFirstVisit)
  console.log(`returning visit: controlled at load ${controlledAtLoad}, played ${state.played.toFixed(1)} s, stalls ${state.stalls}, ` +
    `${returning.length} segment responses (${returning.filter(r => r.fromServiceWorker).length} from the service worker), stats ${JSON.stringify(state.stats)}`)
  assert.equal(controlledAtLoad, true, 'the reloaded page is controlled by the service worker from the start')
  assert.equal(state.ready, true, `P2P is on (${state.disabled})`)
  assert.ok(state.played >= MIN_PLAYED_S, `played ${state.played} s in ${RETURN_VISIT_MS} ms`)
  assert.ok(returning.length >= 3, `${returning.length} segments after the reload`)
  assert.ok(returning.some(r => r.fromServiceWorker), 'the service worker answered segment requests after the reload')
  assert.ok(state.stats.httpBytes > 0, 'the page client counted the segments it got over HTTP')
  const files = originFiles(path.join(origin.dir, 'live'))
  for (const response of viewer.segmentResponses) {
    assert.equal(response.sha256, await files.sha256(response.name), `${response.name} is the origin's`)
  }
  assert.deepEqual(report.pageErrors, [], 'no uncaught page errors')
})

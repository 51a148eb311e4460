// Fail-open: whatever breaks on our side, the viewer still plays, with the
// origin's bytes, over plain HTTP.
// And a returning visit (the page controlled at load) still starts cleanly.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { freePort, startWorker, sleep } from './support/harness.mjs'
import { openViewer, originFiles, playedOver } from './support/viewers.mjs'

const WATCH_MS = 16_000
const MIN_PLAYED_S = 10

let origin, worker
const viewers = []

before(async () => {
  origin = await startOrigin({ live: true, keepSegments: true })
  // A tracker URL where nothing listens: announces fail, no peer ever comes.
  const deadTracker = `ws://127.0.0.1:${await freePort()}`
  worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: deadTracker } })
})

after(async () => {
  await Promise.all(viewers.map(v => v.close()))
  await worker?.stop()
  await origin?.stop()
})

/** Bytes of the segments the player received: in all, and of the largest one. */
function segmentBytes (report) {
  const sizes = report.segmentResponses.map(r => r.bytes)
  return { total: sizes.reduce((a, b) => a + b, 0), largest: Math.max(...sizes), count: sizes.length }
}

let liveFiles
const originSha256 = name => (liveFiles ??= originFiles(path.join(origin.dir, 'live'))).sha256(name)

/** Watches one viewer for WATCH_MS and checks that it played the origin's bytes. */
async function watch (label, initScript) {
  const viewer = await openViewer({ workerUrl: worker.url, index: label, initScript, registry: viewers })
  await sleep(WATCH_MS)
  const report = await viewer.finish()
  await viewer.close()
  const { played } = playedOver(viewer, WATCH_MS)
  console.log(`${label}: played ${played.toFixed(1)} s, stalls ${report.stalls}, ` +
    `${report.segments} segments (${report.segmentResponses.filter(r => r.fromServiceWorker).length} through the service worker), ` +
    `P2P ${report.disabled ? `off: ${report.disabled}` : 'on'}, stats ${JSON.stringify(report.stats)}`)
  assert.ok(played >= MIN_PLAYED_S, `${label}: played ${played} s in ${WATCH_MS} ms`)
  assert.ok(report.segments >= 4, `${label}: ${report.segments} segments`)
  for (const response of report.segmentResponses) {
    assert.equal(response.sha256, await originSha256(response.name), `${label}: ${response.name} is the origin's`)
  }
  assert.deepEqual(report.pageErrors, [], `${label}: no uncaught page errors`)
  return report
}

test('no tracker: no peers ever, the segments come over HTTP through the service worker', async () => {
  const report = await watch('dead tracker')
  assert.equal(report.disabled, null, 'the client runs; only its tracker is gone')
  assert.ok(report.stats.httpBytes - report.stats.directHttpBytes > 0, 'the page client completed segments over HTTP')
  // Every segment came over HTTP, and the statistics say so: those the
  // client fetched, and those the player fetched before the service worker
  // could offer them (the first, on a first visit). The client may have
  // fetched one or two the player has not asked for yet, and the last one
  // the player got may not be counted yet.
  const { total, largest, count } = segmentBytes(report)
  assert.ok(report.stats.directHttpBytes > 0, 'the segment fetched before the service worker could offer it counts as HTTP')
  assert.ok(report.stats.httpBytes >= total - largest && report.stats.httpBytes <= total + 2 * largest,
    `HTTP bytes counted ${report.stats.httpBytes} B, segment bytes the player received ${total} B in ${count} segments`)
  assert.ok(report.segmentResponses.some(r => r.fromServiceWorker), 'the page client delivered the segments')
})

test('a failed service worker registration leaves plain HTTP playback', async () => {
  const report = await watch('failed registration', () => {
    window.liveTorrentConfig = { serviceWorkerUrl: '/_lt/no-such-service-worker.js' }
  })
  assert.ok(report.disabled, 'P2P reports itself off')
  assert.ok(report.segmentResponses.every(r => !r.fromServiceWorker))
})

test('a browser without service workers plays over HTTP', async () => {
  const report = await watch('no service workers', () => {
    delete Navigator.prototype.serviceWorker
  })
  assert.match(report.disabled, /service worker/)
})

test('a browser without WebRTC plays over HTTP', async () => {
  const report = await watch('no WebRTC', () => {
    delete window.RTCPeerConnection
  })
  assert.match(report.disabled, /WebRTC/)
})

test('an error thrown inside the page client sends each segment to the network', async () => {
  // An invalid media selector makes every deadline computation throw.
  const report = await watch('client error', () => {
    window.liveTorrentConfig = { media: '[[[' }
  })
  assert.equal(report.disabled, null, 'the client started')
  assert.equal(report.stats.p2pBytes, 0, 'nothing from peers')
  assert.equal(report.stats.httpBytes, report.stats.directHttpBytes, 'the client fetched nothing itself')
  // Yet its statistics count what the player got without it: the segments
  // fetched before the service worker took control, and each one the
  // service worker then sent to the network. Only the last response may not
  // be counted yet (the service worker reports it after the body is there).
  const { total, largest, count } = segmentBytes(report)
  assert.ok(report.stats.directHttpBytes >= total - largest && report.stats.directHttpBytes <= total,
    `segment bytes the player fetched without the client: counted ${report.stats.directHttpBytes} B, received ${total} B in ${count} segments`)
})

// A returning visit: the page loads already controlled by the service worker
// of its first visit. The demo then imports the page client before it creates
// the player (on a first visit it creates the player first), so the service
// worker finds the page listening from the first segment request on.
const FIRST_VISIT_MS = 6_000
const RETURN_VISIT_MS = 12_000
const MIN_RETURN_PLAYED_S = 6

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
  assert.ok(state.played >= MIN_RETURN_PLAYED_S, `played ${state.played} s in ${RETURN_VISIT_MS} ms`)
  assert.ok(returning.length >= 3, `${returning.length} segments after the reload`)
  assert.ok(returning.some(r => r.fromServiceWorker), 'the service worker answered segment requests after the reload')
  assert.ok(state.stats.httpBytes > 0, 'the page client counted the segments it got over HTTP')
  for (const response of viewer.segmentResponses) {
    assert.equal(response.sha256, await originSha256(response.name), `${response.name} is the origin's`)
  }
  assert.deepEqual(report.pageErrors, [], 'no uncaught page errors')
})

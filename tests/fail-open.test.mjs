// Fail-open: whatever breaks on our side, the viewer still plays, with the
// origin's bytes, over plain HTTP.
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
  assert.ok(report.stats.httpBytes > 0, 'the page client completed segments over HTTP')
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
  assert.equal(report.stats.p2pBytes + report.stats.httpBytes, 0, 'the client delivered nothing itself')
})

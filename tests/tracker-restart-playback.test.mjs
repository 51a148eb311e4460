// The built-in tracker's object restarts (as a deploy or a crash would do it)
// while two viewers of the demo player share the live feed: playback goes on,
// the viewers' stream swarms reconnect by themselves within seconds (not
// bittorrent-tracker's 10 s to 5 minutes), the swarms refill
// and segments flow between the viewers again (over the WebRTC connection
// they kept: the tracker is only where viewers meet).
//
// ffmpeg live origin <- worker under `wrangler dev` with TRACKERS unset (its
// own tracker) and BENCH_ENDPOINTS=true (the object's /stats and /restart) <-
// two headless Chromium viewers. The restart is `ctx.abort()` inside the
// object: its memory and sockets go, its storage (the issued info-hashes)
// stays.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { startWorker, fetchText, eventually, sleep } from './support/harness.mjs'
import { magnetsOf } from './support/torrents.mjs'
import { openViewer, originFiles } from './support/viewers.mjs'

const JOIN_GAP_MS = 4_000
/** Both viewers share for this long before the restart... */
const BEFORE_RESTART_MS = 25_000
/** ...and are watched this long after it. */
const AFTER_RESTART_MS = 40_000
/** Bounded wait for the viewers' sockets to come back. */
const RECONNECT_TIMEOUT_MS = 30_000
/** Playback may fall behind the wall clock by this much over the window (sampling). */
const PLAYBACK_SLACK_S = 4

let origin, worker
const viewers = []

before(async () => {
  origin = await startOrigin({ live: true, keepSegments: true })
  worker = await startWorker({ vars: { UPSTREAM: origin.url, BENCH_ENDPOINTS: 'true' } })
})

after(async () => {
  await Promise.all(viewers.map(viewer => viewer.close()))
  await worker?.stop()
  await origin?.stop()
})

async function trackerStats (stream) {
  const { status, text } = await fetchText(`${worker.url}/_lt/tracker/${stream}/stats`)
  assert.equal(status, 200, text)
  return JSON.parse(text)
}

/** The sample of `viewer` closest after `at`. */
function sampleAt (viewer, at) {
  return viewer.samples.find(s => s.at >= at && typeof s.currentTime === 'number') ?? viewer.samples.at(-1)
}

test('viewers keep playing through a restart of the tracker object, then share again', { timeout: 5 * 60_000 }, async () => {
  const playlist = await eventually(async () => {
    const { text } = await fetchText(`${worker.url}/live/index.m3u8`)
    return magnetsOf(text).length > 0 ? text : null
  }, { timeoutMs: 60_000, what: 'a playlist with magnets' })
  const [tracker] = magnetsOf(playlist)[0].trackers
  assert.match(tracker, /^ws:\/\/127\.0\.0\.1:\d+\/_lt\/tracker\/[0-9a-f]{16}$/, 'magnets name the built-in tracker')
  const stream = tracker.split('/').pop()

  const opened = await Promise.all([0, 1].map(i => sleep(i * JOIN_GAP_MS).then(() =>
    openViewer({ workerUrl: worker.url, index: i + 1, registry: viewers }))))
  await sleep(BEFORE_RESTART_MS)

  const beforeRestart = await trackerStats(stream)
  assert.equal(beforeRestart.sockets, 2, `both viewers are connected: ${JSON.stringify(beforeRestart)}`)
  assert.ok(beforeRestart.offers_relayed > 0 && beforeRestart.answers_relayed > 0, JSON.stringify(beforeRestart))

  const restartAt = Date.now()
  const restart = await fetchText(`${worker.url}/_lt/tracker/${stream}/restart`)
  assert.equal(restart.status, 200, restart.text)
  const emptied = await trackerStats(stream)
  assert.equal(emptied.sockets, 0, `the restarted object starts empty: ${JSON.stringify(emptied)}`)
  assert.ok(emptied.issued > 0, `the issued info-hashes survived in storage: ${JSON.stringify(emptied)}`)

  // Back in the swarms: each viewer's stream swarm reopens its lost tracker
  // socket within seconds and announces again (public/_lt/client/
  // stream-mesh.js); segment torrents in the mesh make no announce at all.
  // Offers and answers need not flow: the viewers kept their WebRTC
  // connection.
  const refilled = await eventually(async () => {
    const stats = await trackerStats(stream)
    return stats.sockets === 2 && stats.swarms > 0 && stats.peers >= 2 ? stats : null
  }, { timeoutMs: RECONNECT_TIMEOUT_MS, intervalMs: 500, what: 'both viewers back in the swarms' })
  const reconnectMs = Date.now() - restartAt
  console.log(`back in the swarms ${reconnectMs} ms after the restart: ${JSON.stringify(refilled)}`)

  const until = restartAt + AFTER_RESTART_MS
  while (Date.now() < until) await sleep(Math.min(2_000, until - Date.now()))
  const afterRestart = await trackerStats(stream)
  // The object's counters started at the restart: signalling per viewer-minute.
  const viewerMinutes = (2 * (Date.now() - restartAt)) / 60_000
  console.log(`tracker messages per viewer-minute since the restart: in ${(afterRestart.messages_in / viewerMinutes).toFixed(1)}, ` +
    `out ${(afterRestart.messages_out / viewerMinutes).toFixed(1)} (${JSON.stringify(afterRestart)})`)

  const atRestart = opened.map(viewer => sampleAt(viewer, restartAt))
  const reports = []
  for (const viewer of opened) reports.push(await viewer.finish())
  const liveFiles = originFiles(path.join(origin.dir, 'live'))

  for (const [i, report] of reports.entries()) {
    const viewer = opened[i]
    const start = atRestart[i]
    const end = viewer.samples.at(-1)
    const played = end.currentTime - start.currentTime
    const windowS = (end.at - start.at) / 1000
    const stallsAfter = (end.metrics?.stalls ?? 0) - (start.metrics?.stalls ?? 0)
    const p2pAfter = end.stats.p2pBytes - start.stats.p2pBytes
    const uploadedAfter = end.stats.uploadedBytes - start.stats.uploadedBytes
    console.log(`viewer ${report.index}: after the restart played ${played.toFixed(1)} s in ${windowS.toFixed(1)} s, ` +
      `stalls ${stallsAfter}, from peers ${p2pAfter} B, uploaded ${uploadedAfter} B; whole run: ${JSON.stringify(report.stats)}`)
    assert.equal(stallsAfter, 0, `viewer ${report.index} did not stall after the restart`)
    assert.ok(played >= windowS - PLAYBACK_SLACK_S, `viewer ${report.index} kept playing: ${played.toFixed(1)} s in ${windowS.toFixed(1)} s`)
    assert.deepEqual(await liveFiles.mismatched(report), [], `viewer ${report.index}: every segment equals the origin's file`)
  }
  const sharedAfter = opened.reduce((sum, viewer, i) => sum + viewer.samples.at(-1).stats.p2pBytes - atRestart[i].stats.p2pBytes, 0)
  assert.ok(sharedAfter > 0, `segments went between the viewers after the restart (${sharedAfter} B)`)
  assert.ok(afterRestart.sockets === 2 && afterRestart.peers > 0, `swarms stay filled: ${JSON.stringify(afterRestart)}`)
})

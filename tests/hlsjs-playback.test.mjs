// hls.js plays the annotated playlist exactly as it plays the upstream one:
// the magnet lines are invisible to the player, in every shape ffmpeg makes
// (MPEG-TS, fMP4 with an init segment, one file with byte ranges), and a
// master playlist's variants and audio rendition are annotated through the
// worker while the player switches quality.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { startWorker, sleep } from './support/harness.mjs'
import { launchBrowser } from './support/browser.mjs'
import { magnetsOf } from './support/torrents.mjs'
import { makeHls } from './support/media.mjs'

const SHAPES = ['ts', 'fmp4', 'single-file']
let origin, worker, browser

before(async () => {
  origin = await startOrigin({ live: false })
  for (const kind of SHAPES) await makeHls(path.join(origin.dir, kind), kind)
  await makeHls(path.join(origin.dir, 'variants'), 'variants', { seconds: 16 })
  await fs.writeFile(path.join(origin.dir, 'blank.html'), '<!doctype html><title>player</title><body></body>')
  worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: '' } })
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await worker?.stop()
  await origin?.stop()
})

/** Loads `src` with hls.js in a page on the origin's host (another origin
 * than the worker's, so CORS is exercised) and plays it for a moment. */
async function playWithHlsJs (src) {
  const page = await browser.newPage()
  try {
    await page.goto(`${origin.url}/blank.html`)
    await page.addScriptTag({ url: `${worker.url}/_lt/vendor/hls.min.js` })
    return await page.evaluate(async (src) => {
      const video = document.createElement('video')
      video.muted = true
      document.body.appendChild(video)
      const hls = new window.Hls({ enableWorker: false })
      const errors = []
      // Non-fatal events such as bufferSeekOverHole come and go with timing;
      // only fatal errors say the player could not handle the playlist.
      hls.on(window.Hls.Events.ERROR, (_, data) => { if (data.fatal) errors.push(`${data.type}/${data.details}`) })
      const fragments = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no LEVEL_LOADED within 15 s')), 15000)
        hls.on(window.Hls.Events.LEVEL_LOADED, (_, data) => {
          clearTimeout(timer)
          resolve(data.details.fragments.map(f => ({
            sn: f.sn, start: f.start, duration: f.duration, file: f.url.split('/').pop()
          })))
        })
        hls.loadSource(src)
        hls.attachMedia(video)
      })
      video.play().catch(() => {})
      const started = performance.now()
      while (video.currentTime < 1.5 && performance.now() - started < 20000) {
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      const result = { fragments, currentTime: video.currentTime, errors }
      hls.destroy()
      return result
    }, src)
  } finally {
    await page.close()
  }
}

for (const kind of SHAPES) {
  test(`${kind}: hls.js sees the same fragments and plays, with and without the magnet lines`, async () => {
    const annotated = await (await fetch(`${worker.url}/${kind}/index.m3u8`)).text()
    assert.ok(magnetsOf(annotated).length >= 3, 'the playlist the player gets is annotated')

    const direct = await playWithHlsJs(`${origin.url}/${kind}/index.m3u8`)
    const viaWorker = await playWithHlsJs(`${worker.url}/${kind}/index.m3u8`)
    console.log(`${kind}: direct: ${direct.fragments.length} fragments, played ${direct.currentTime.toFixed(2)} s; ` +
      `through the worker: ${viaWorker.fragments.length} fragments, played ${viaWorker.currentTime.toFixed(2)} s`)

    assert.ok(direct.fragments.length >= 4)
    assert.deepEqual(viaWorker.fragments, direct.fragments)
    assert.deepEqual(direct.errors, [])
    assert.deepEqual(viaWorker.errors, [])
    assert.ok(direct.currentTime >= 1.5, `the upstream feed plays (${direct.currentTime})`)
    assert.ok(viaWorker.currentTime >= 1.5, `the annotated feed plays (${viaWorker.currentTime})`)
  })
}

test('a master with two variants and an audio rendition: all annotated, and hls.js switches quality and plays on', async () => {
  const page = await browser.newPage()
  let result
  try {
    await page.goto(`${origin.url}/blank.html`)
    await page.addScriptTag({ url: `${worker.url}/_lt/vendor/hls.min.js` })
    result = await page.evaluate(async (src) => {
      const video = document.createElement('video')
      video.muted = true
      document.body.appendChild(video)
      const hls = new window.Hls({ enableWorker: false, startLevel: 0, capLevelToPlayerSize: false })
      const errors = []
      const loaded = []
      hls.on(window.Hls.Events.ERROR, (_, data) => { if (data.fatal) errors.push(`${data.type}/${data.details}`) })
      hls.on(window.Hls.Events.FRAG_LOADED, (_, data) => loaded.push({ type: data.frag.type, level: data.frag.level, url: data.frag.url }))
      const waitFor = async (condition, ms) => {
        const started = performance.now()
        while (!condition() && performance.now() - started < ms) await new Promise(resolve => setTimeout(resolve, 100))
        return condition()
      }
      // Manual level choice (no ABR), so the switch below is ours.
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => { hls.currentLevel = 0 })
      hls.loadSource(src)
      hls.attachMedia(video)
      video.play().catch(() => {})
      const played = await waitFor(() => video.currentTime >= 1.5, 20000)
      const before = video.currentTime
      const levelsBefore = new Set(loaded.filter(f => f.type === 'main').map(f => f.level))
      const target = 1
      hls.currentLevel = target
      const switched = await waitFor(() => loaded.some(f => f.type === 'main' && f.level === target) && video.currentTime >= before + 2, 25000)
      const summary = {
        levels: hls.levels.map(l => l.url[0]),
        audioTracks: hls.audioTracks.map(t => t.url),
        played,
        switched,
        target,
        levelsBefore: [...levelsBefore],
        mainFragmentsAfter: loaded.filter(f => f.type === 'main' && f.level === target).length,
        audioFragments: loaded.filter(f => f.type === 'audio').length,
        before,
        after: video.currentTime,
        errors
      }
      hls.destroy()
      return summary
    }, `${worker.url}/variants/master.m3u8`)
  } finally {
    await page.close()
  }
  console.log(`variants: ${JSON.stringify(result)}`)
  assert.deepEqual(result.errors, [])
  assert.ok(result.played, 'it started')
  assert.deepEqual(result.levelsBefore, [0], 'it played level 0 first')
  assert.ok(result.switched, `it switched to level ${result.target} and played on (${result.before} -> ${result.after})`)
  assert.ok(result.audioFragments >= 1, 'the audio rendition played')
  // Every media playlist the player used came through the worker...
  const mediaPlaylists = [...result.levels, ...result.audioTracks]
  assert.equal(mediaPlaylists.length, 3)
  for (const url of mediaPlaylists) assert.ok(url.startsWith(`${worker.url}/variants/`), url)
  // ...and is annotated there, once its background hashing is done.
  for (const url of mediaPlaylists) {
    let state
    for (let i = 0; i < 40; i++) {
      const response = await fetch(url)
      const text = await response.text()
      state = response.headers.get('x-live-torrent')
      const m = /^annotated (\d+)\/(\d+)$/.exec(state ?? '')
      if (m && m[1] === m[2] && magnetsOf(text).length === Number(m[2])) break
      await sleep(500)
    }
    assert.match(state, /^annotated (\d+)\/\1$/, url)
  }
})

// hls.js plays the annotated playlist exactly as it plays the upstream one:
// the magnet lines are invisible to the player.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { startWorker } from './support/harness.mjs'
import { launchBrowser } from './support/browser.mjs'
import { magnetsOf } from './support/torrents.mjs'

let origin, worker, browser

/** A short real VOD feed (H.264 + AAC in MPEG-TS), made once by ffmpeg. */
async function makeVod (dir) {
  await fs.mkdir(dir, { recursive: true })
  const args = [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25:duration=8',
    '-f', 'lavfi', '-i', 'sine=frequency=440:duration=8',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-keyint_min', '50', '-sc_threshold', '0',
    '-c:a', 'aac', '-b:a', '64k',
    '-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod',
    '-hls_segment_filename', path.join(dir, 'seg-%03d.ts'), path.join(dir, 'index.m3u8')
  ]
  await new Promise((resolve, reject) => {
    const ffmpeg = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    ffmpeg.stderr.on('data', d => { err += d })
    ffmpeg.on('exit', code => (code === 0 ? resolve() : reject(new Error(`ffmpeg failed: ${err}`))))
  })
}

before(async () => {
  origin = await startOrigin({ live: false })
  await makeVod(path.join(origin.dir, 'vod'))
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

test('hls.js sees the same fragments and plays, with and without the magnet lines', async () => {
  const annotated = await (await fetch(`${worker.url}/vod/index.m3u8`)).text()
  assert.ok(magnetsOf(annotated).length >= 3, 'the playlist the player gets is annotated')

  const direct = await playWithHlsJs(`${origin.url}/vod/index.m3u8`)
  const viaWorker = await playWithHlsJs(`${worker.url}/vod/index.m3u8`)
  console.log(`direct: ${direct.fragments.length} fragments, played ${direct.currentTime.toFixed(2)} s; ` +
    `through the worker: ${viaWorker.fragments.length} fragments, played ${viaWorker.currentTime.toFixed(2)} s`)

  assert.ok(direct.fragments.length >= 4)
  assert.deepEqual(viaWorker.fragments, direct.fragments)
  assert.deepEqual(direct.errors, [])
  assert.deepEqual(viaWorker.errors, [])
  assert.ok(direct.currentTime >= 1.5, `the upstream feed plays (${direct.currentTime})`)
  assert.ok(viaWorker.currentTime >= 1.5, `the annotated feed plays (${viaWorker.currentTime})`)
})

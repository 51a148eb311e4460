// Playlists as CDNs really serve them, through the worker under `wrangler
// dev`: every fixture comes back byte for byte plus magnet lines; ffmpeg-made
// fMP4 and byte-range feeds get info-hashes that create-torrent reproduces
// from exactly the segment's bytes; tokenised URLs of different viewers
// share one swarm.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { fetchAll, REPO_ROOT, startWorker, sleep } from './support/harness.mjs'
import { makeHls } from './support/media.mjs'
import { magnetsOf, referenceInfoHash, stripMagnets, uriLines } from './support/torrents.mjs'

const TRACKERS = 'ws://127.0.0.1:9/announce'
const PIECE_LENGTH = 65536
const FIXTURES = path.join(REPO_ROOT, 'tests', 'fixtures', 'playlists')
/** Fixture segments the origin cannot hold (other hosts) stay un-annotated. */
const FIXTURE_SEGMENT_BYTES = 20_000
/** byterange.m3u8 reads up to byte 3,401,219 of main.ts. */
const FIXTURE_SINGLE_FILE_BYTES = 3_500_000

let origin, worker

const get = fetchAll

/** Requests a media playlist until its annotation stops growing. */
async function settledPlaylist (url) {
  let last = null
  for (let i = 0; i < 40; i++) {
    const r = await get(url)
    if (last && r.headers.get('x-live-torrent') === last.headers.get('x-live-torrent') && i > 1) return r
    last = r
    await sleep(400)
  }
  return last
}

/** Creates a file at the origin for every segment URI of a fixture that resolves there. */
async function provideSegments (playlistPath, text) {
  const base = new URL(`http://origin.invalid/${playlistPath}`)
  for (const uri of uriLines(text.replace(/^\uFEFF/, ''))) {
    let url
    try { url = new URL(uri, base) } catch { continue }
    if (url.host !== 'origin.invalid' || uri.endsWith('.m3u8')) continue
    const file = path.join(origin.dir, decodeURIComponent(url.pathname))
    const size = url.pathname.endsWith('main.ts') ? FIXTURE_SINGLE_FILE_BYTES : FIXTURE_SEGMENT_BYTES
    await fs.mkdir(path.dirname(file), { recursive: true })
    await fs.writeFile(file, crypto.randomBytes(size))
  }
}

before(async () => {
  origin = await startOrigin({ live: false })
  // UPSTREAM's host in the fixtures is cdn.example; here it is the origin's.
  for (const name of await fs.readdir(FIXTURES)) {
    const text = (await fs.readFile(path.join(FIXTURES, name), 'utf8')).replaceAll('https://cdn.example', origin.url)
    await fs.mkdir(path.join(origin.dir, 'live'), { recursive: true })
    await fs.writeFile(path.join(origin.dir, 'live', name), text)
    await provideSegments(`live/${name}`, text)
  }
  for (const kind of ['fmp4', 'single-file']) await makeHls(path.join(origin.dir, kind), kind, { seconds: 6 })
  worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS, VOLATILE_QUERY_PARAMS: 'token,expires' } })
})

after(async () => {
  await worker?.stop()
  await origin?.stop()
})

describe('fixture playlists through the worker', () => {
  test('each comes back as upstream sent it, plus magnet lines before fetchable segments only', async () => {
    for (const name of await fs.readdir(FIXTURES)) {
      const upstream = await fs.readFile(path.join(origin.dir, 'live', name))
      const r = await settledPlaylist(`${worker.url}/live/${name}`)
      assert.equal(r.status, 200, name)
      const state = r.headers.get('x-live-torrent')
      if (state === 'master') {
        assert.equal(uriLines(r.text).length, uriLines(upstream.toString()).length, name)
        assert.ok(!r.text.includes(origin.url), `${name}: every variant routed through the worker`)
        continue
      }
      assert.ok(Buffer.from(stripMagnets(r.text)).equals(upstream), `${name}: byte for byte (${state})`)
      const [, annotated, total] = /^annotated (\d+)\/(\d+)$/.exec(state) ?? assert.fail(`${name}: ${state}`)
      assert.equal(magnetsOf(r.text).length, Number(annotated), name)
      console.log(`${name}: ${state}`)
      assert.ok(Number(annotated) >= 1 && Number(total) >= Number(annotated), name)
    }
  })
})

describe('ffmpeg-made feeds', () => {
  test('fMP4: media segments get magnets hashed over their bytes; the init segment does not', async () => {
    const r = await settledPlaylist(`${worker.url}/fmp4/index.m3u8`)
    const magnets = magnetsOf(r.text)
    const segments = uriLines(r.text)
    assert.ok(segments.length >= 3)
    assert.deepEqual(magnets.map(m => m.uri), segments)
    assert.ok(r.text.includes('#EXT-X-MAP:URI="init.mp4"') && !magnets.some(m => m.name.startsWith('init')))
    for (const m of magnets) {
      const bytes = await fs.readFile(path.join(origin.dir, 'fmp4', m.uri))
      assert.equal(m.infoHash, await referenceInfoHash(bytes, m.uri, PIECE_LENGTH), m.uri)
    }
  })

  test('byte ranges: identity and info-hash cover exactly each range of the one file', async () => {
    const r = await settledPlaylist(`${worker.url}/single-file/index.m3u8`)
    const file = await fs.readFile(path.join(origin.dir, 'single-file', 'index.ts'))
    const ranges = [...r.text.matchAll(/#EXT-X-BYTERANGE:(\d+)@(\d+)/g)].map(m => ({ length: Number(m[1]), offset: Number(m[2]) }))
    const magnets = magnetsOf(r.text)
    assert.ok(ranges.length >= 3)
    assert.equal(magnets.length, ranges.length)
    for (const [i, m] of magnets.entries()) {
      const { offset, length } = ranges[i]
      const name = `index.ts.${offset}-${offset + length - 1}`
      assert.equal(m.name, name)
      assert.equal(m.infoHash, await referenceInfoHash(file.subarray(offset, offset + length), name, PIECE_LENGTH), name)
      assert.equal(m.webSeed, `${worker.url}/single-file/index.ts`, 'the web seed is the whole file; the client asks for the range')
      assert.ok(m.torrentUrl.endsWith(`&range=${offset}-${offset + length - 1}`), m.torrentUrl)
      // What the HTTP fallback does: a Range request through the worker for exactly those bytes.
      const bytes = await get(m.webSeed, { headers: { range: `bytes=${offset}-${offset + length - 1}` } })
      assert.equal(bytes.status, 206)
      assert.ok(bytes.bytes.equals(file.subarray(offset, offset + length)))
    }
  })
})

describe('tokenised URLs', () => {
  test('viewers whose URLs differ only in volatile parameters share the swarm, and the second costs no upstream fetch', async () => {
    const viewerA = await fs.readFile(path.join(origin.dir, 'live', 'tokenised.m3u8'), 'utf8')
    const viewerB = viewerA.replaceAll('viewer-A', 'viewer-B').replaceAll('expires=1795', 'expires=1796')
    await fs.writeFile(path.join(origin.dir, 'live', 'tokenised-b.m3u8'), viewerB)
    const a = magnetsOf((await settledPlaylist(`${worker.url}/live/tokenised.m3u8`)).text)
    assert.equal(a.length, 3)
    origin.resetHits()
    const b = await get(`${worker.url}/live/tokenised-b.m3u8`)
    assert.equal(b.headers.get('x-live-torrent'), 'annotated 3/3', 'known at once')
    const bm = magnetsOf(b.text)
    assert.deepEqual(bm.map(m => m.infoHash), a.map(m => m.infoHash))
    for (const m of bm) assert.match(m.webSeed, /viewer-B/, 'each viewer fetches with its own token')
    await sleep(1000)
    assert.deepEqual(Object.keys(origin.hits()), ['/live/tokenised-b.m3u8'], 'no segment was fetched again')
  })
})

// Fail-open at the edge: whatever goes wrong upstream or on our side, the
// viewer gets exactly what the CDN alone would have given, or a clear error
// that says whose fault it was, never a hang.
//
// Three workers under `wrangler dev` in front of the project's origin (no
// live encoder here): one ordinary with a short upstream timeout, one whose
// configuration has no KV namespace at all, one whose upstream is a port
// where nothing listens.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { eventually, fetchAll, freePort, REPO_ROOT, startWorker, sleep } from './support/harness.mjs'
import { magnetsOf, referenceInfoHash, stripMagnets, uriLines } from './support/torrents.mjs'

const TRACKERS = 'ws://127.0.0.1:9/announce'
const PIECE_LENGTH = 65536
const UPSTREAM_TIMEOUT_MS = 1500
/** Anything slower than this counts as a hang. */
const ANSWER_BOUND_MS = UPSTREAM_TIMEOUT_MS + 3000

let origin, worker, workerWithoutKv, workerUnreachable

const get = fetchAll


async function writeOrigin (relative, content) {
  const file = path.join(origin.dir, relative)
  await fs.mkdir(path.dirname(file), { recursive: true })
  await fs.writeFile(file, content)
}

function vod (names) {
  return '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n' +
    names.map(n => `#EXTINF:2.0,\n${n}\n`).join('') + '#EXT-X-ENDLIST\n'
}

/** wrangler.toml without its KV namespace (and without the build step, already done). */
async function configWithoutKv () {
  const original = await fs.readFile(path.join(REPO_ROOT, 'wrangler.toml'), 'utf8')
  const withoutKv = original
    .replace(/\[\[kv_namespaces\]\][^[]*/, '')
    .replace(/\[build\][^[]*/, '')
    .replace('main = "build/index.js"', 'main = "index.js"')
    .replace('directory = "./public"', 'directory = "../public"')
  assert.ok(!withoutKv.includes('SEGMENTS') || !withoutKv.includes('kv_namespaces'), 'the KV binding is gone')
  const file = path.join(REPO_ROOT, 'build', 'wrangler-without-kv.toml')
  await fs.writeFile(file, withoutKv)
  return file
}

before(async () => {
  origin = await startOrigin({ live: false })
  // SEGMENT_CACHE off: a segment that changes under its URL would otherwise
  // be served from the location's copy until upstream's max-age (1 h here)
  // expires it, as a CDN would; these tests need the change to reach the
  // worker at once (tests/playlist-cache.test.mjs covers the cache).
  const vars = { UPSTREAM: origin.url, TRACKERS, UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS), SEGMENT_CACHE: 'false' }
  worker = await startWorker({ vars })
  workerWithoutKv = await startWorker({ vars, config: await configWithoutKv() })
  workerUnreachable = await startWorker({ vars: { ...vars, UPSTREAM: `http://127.0.0.1:${await freePort()}` } })
})

after(async () => {
  await Promise.all([worker?.stop(), workerWithoutKv?.stop(), workerUnreachable?.stop()])
  await origin?.stop()
})

describe('upstream failures', () => {
  test('an upstream 4xx or 5xx is passed through with its status and body', async () => {
    for (const [code, name] of [[404, 'x.m3u8'], [403, 'seg.ts'], [500, 'index.m3u8'], [503, 'seg-1.ts']]) {
      const direct = await get(`${origin.url}/faults/status/${code}/${name}`)
      const through = await get(`${worker.url}/faults/status/${code}/${name}`)
      assert.equal(through.status, code, name)
      assert.equal(through.text, direct.text, name)
      assert.equal(through.headers.get('x-live-torrent'), null, 'not touched')
    }
  })

  test('an unreachable upstream answers 502 with a short, clear body', async () => {
    for (const p of ['/live/index.m3u8', '/live/seg-1.ts']) {
      const started = Date.now()
      const r = await get(`${workerUnreachable.url}${p}`)
      assert.equal(r.status, 502, p)
      assert.match(r.text, /^upstream failed: fetching \/live\/[^\n]+\n$/, p)
      assert.ok(r.text.length < 300, 'short')
      assert.ok(Date.now() - started < ANSWER_BOUND_MS, 'no hang')
    }
  })

  test('an upstream that does not answer in UPSTREAM_TIMEOUT_MS gets 504, never a hang', async () => {
    for (const name of ['index.m3u8', 'seg-9.ts']) {
      const started = Date.now()
      const r = await get(`${worker.url}/faults/slow/20000/${name}`)
      const elapsed = Date.now() - started
      assert.equal(r.status, 504, name)
      assert.match(r.text, /^upstream timed out: no answer for \/faults\/slow\/20000\/[^ ]+ within 1500 ms\n$/)
      assert.ok(elapsed >= UPSTREAM_TIMEOUT_MS - 100 && elapsed < ANSWER_BOUND_MS, `answered after ${elapsed} ms`)
    }
    // Within the limit it is simply slow.
    assert.equal((await get(`${worker.url}/faults/slow/300/index.m3u8`)).status, 200)
  })

  test('LL-HLS blocking reloads are forwarded with their query and may take longer than the timeout', async () => {
    const target = `/faults/slow/${UPSTREAM_TIMEOUT_MS + 1000}/ll.m3u8?_HLS_msn=269&_HLS_part=2`
    const r = await get(`${worker.url}${target}`)
    assert.equal(r.status, 200)
    assert.ok(origin.requests().some(q => q.target === target), 'the query reached upstream unchanged')
  })
})

describe('playlists we cannot annotate come back unchanged, saying why', () => {
  test('a truncated playlist', async () => {
    const full = vod(['a.ts', 'b.ts', 'c.ts'])
    const cases = {
      'cut-in-uri.m3u8': full.slice(0, full.indexOf('c.ts') + 2),
      'cut-after-tag.m3u8': full.slice(0, full.indexOf('c.ts'))
    }
    for (const [name, text] of Object.entries(cases)) {
      await writeOrigin(`trunc/${name}`, text)
      const r = await get(`${worker.url}/trunc/${name}`)
      assert.equal(r.status, 200)
      assert.equal(r.text, text, `${name}: unchanged`)
      assert.match(r.headers.get('x-live-torrent'), /^not-annotated; reason="truncated playlist: [^"]+"$/, name)
    }
  })

  test('a playlist over the 4 MiB limit', async () => {
    const names = Array.from({ length: 200_000 }, (_, i) => `segment-with-a-long-name-${i}.ts`)
    const text = vod(names)
    assert.ok(Buffer.byteLength(text) > 4 * 1024 * 1024)
    await writeOrigin('big/index.m3u8', text)
    const r = await get(`${worker.url}/big/index.m3u8`)
    assert.equal(r.status, 200)
    assert.ok(r.bytes.equals(Buffer.from(text)), 'unchanged')
    assert.equal(r.headers.get('x-live-torrent'), 'not-annotated; reason="larger than 4194304 bytes"')
  })
})

describe('failures on our side', () => {
  test('a segment that cannot be hashed stays un-annotated; the others are annotated', async () => {
    await writeOrigin('partly/a.ts', crypto.randomBytes(70_000))
    await writeOrigin('partly/c.ts', crypto.randomBytes(50_000))
    await writeOrigin('partly/index.m3u8', vod(['a.ts', 'missing.ts', 'c.ts']))
    const first = await get(`${worker.url}/partly/index.m3u8`)
    assert.equal(first.headers.get('x-live-torrent'), 'annotated 2/3')
    assert.deepEqual(magnetsOf(first.text).map(m => m.uri), ['a.ts', 'c.ts'])
    assert.equal(stripMagnets(first.text), vod(['a.ts', 'missing.ts', 'c.ts']))
  })

  test('without KV the playlist is still served, annotated from what the isolate hashed, and says why', async () => {
    await writeOrigin('nokv/s0.ts', crypto.randomBytes(40_000))
    await writeOrigin('nokv/s1.ts', crypto.randomBytes(40_000))
    const text = vod(['s0.ts', 's1.ts', 'gone.ts'])
    await writeOrigin('nokv/index.m3u8', text)
    const r = await get(`${workerWithoutKv.url}/nokv/index.m3u8`)
    assert.equal(r.status, 200)
    assert.equal(stripMagnets(r.text), text, 'upstream bytes, plus magnet lines at most')
    assert.match(r.headers.get('x-live-torrent'), /^annotated 2\/3; kv="binding SEGMENTS missing[^"]*"$/)
    const segment = await get(`${workerWithoutKv.url}/nokv/s0.ts`)
    assert.equal(segment.status, 200)
    assert.ok(segment.bytes.equals(await fs.readFile(path.join(origin.dir, 'nokv/s0.ts'))), 'segments pass through')
  })
})

describe('a segment that changes under the same URL', () => {
  test('is hashed again when it next passes through, and its old hash is never served again', async () => {
    const file = path.join(origin.dir, 'change/s0.ts')
    const v1 = crypto.randomBytes(100_000)
    await writeOrigin('change/s0.ts', v1)
    await writeOrigin('change/index.m3u8', vod(['s0.ts']))
    const magnet = async () => magnetsOf((await get(`${worker.url}/change/index.m3u8`)).text)[0]
    const first = await magnet()
    assert.equal(first.infoHash, await referenceInfoHash(v1, 's0.ts', PIECE_LENGTH))

    // New bytes and a new length: a whole-segment fetch notices.
    const v2 = crypto.randomBytes(120_000)
    await fs.writeFile(file, v2)
    const whole = await get(`${worker.url}/change/s0.ts`)
    assert.ok(whole.bytes.equals(v2))
    assert.equal(whole.headers.get('x-live-torrent'), 'stale-record; rehashing')
    const h2 = await referenceInfoHash(v2, 's0.ts', PIECE_LENGTH)
    await eventually(async () => (await magnet())?.infoHash === h2, { what: 'the playlist to carry the new hash' })
    assert.equal((await get(first.torrentUrl)).status, 404, 'the old .torrent is gone')

    // Same length, new bytes (new ETag): a Range request, as the HTTP
    // fallback makes, notices too.
    const v3 = crypto.randomBytes(120_000)
    await sleep(20)
    await fs.writeFile(file, v3)
    const range = await get(`${worker.url}/change/s0.ts`, { headers: { range: 'bytes=0-99' } })
    assert.equal(range.status, 206)
    assert.ok(range.bytes.equals(v3.subarray(0, 100)))
    assert.equal(range.headers.get('x-live-torrent'), 'stale-record; rehashing')
    const h3 = await referenceInfoHash(v3, 's0.ts', PIECE_LENGTH)
    await eventually(async () => (await magnet())?.infoHash === h3, { what: 'the playlist to carry the third hash' })

    // Unchanged bytes are not hashed again.
    origin.resetHits()
    const again = await get(`${worker.url}/change/s0.ts`)
    assert.equal(again.headers.get('x-live-torrent'), null)
    await sleep(1000)
    assert.equal(origin.hits()['/change/s0.ts'], 1, 'one fetch: the viewer\'s own')
    assert.deepEqual(uriLines((await get(`${worker.url}/change/index.m3u8`)).text), ['s0.ts'])
  })
})

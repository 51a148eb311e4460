// Integration tests: the built worker under `wrangler dev` (local KV) in
// front of the project's own HLS origin, everything on 127.0.0.1.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import crypto from 'node:crypto'

import { startOrigin } from '../scripts/origin.mjs'
import { eventually, fetchAll, startWorker, sleep } from './support/harness.mjs'
import { magnetsOf, parseTorrentFile, referenceInfoHash, stripMagnets, uriLines } from './support/torrents.mjs'

const TRACKERS = ['ws://127.0.0.1:9/announce', 'ws://127.0.0.1:10/announce']
const PIECE_LENGTH = 65536
const HASH_WAIT_MS = 3000

let origin
let worker

const get = fetchAll

/** Origin hits of segment paths that start with `prefix` (or match a RegExp). */
function segmentHits (prefix) {
  const matches = p => (prefix instanceof RegExp ? prefix.test(p) : p.startsWith(prefix))
  return Object.entries(origin.hits())
    .filter(([p]) => matches(p) && !p.endsWith('.m3u8'))
    .reduce((all, [p, n]) => ({ ...all, [p]: n }), {})
}

/** Total segment fetches under `prefix`, once background hashing has stopped. */
async function settledSegmentHits (prefix) {
  const total = () => Object.values(segmentHits(prefix)).reduce((sum, n) => sum + n, 0)
  return eventually(async () => {
    const before = total()
    await sleep(1500)
    return before === total() && { total: before, byPath: segmentHits(prefix) }
  }, { what: `fetches under ${prefix} to settle`, timeoutMs: 30000 })
}

async function writeFixture (relative, content) {
  const file = path.join(origin.dir, relative)
  await fs.mkdir(path.dirname(file), { recursive: true })
  await fs.writeFile(file, content)
}

function randomBytes (n) {
  return crypto.randomBytes(n)
}

before(async () => {
  origin = await startOrigin({ live: true })
  // HASH_WAIT_MS above its default: on a busy machine the inline hashes of
  // the tests below may take longer than 1 s, and they check what a playlist
  // carries, not how long it waits.
  worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: TRACKERS.join(','), HASH_WAIT_MS: String(HASH_WAIT_MS) } })
})

after(async () => {
  await worker?.stop()
  await origin?.stop()
})

describe('media playlists', () => {
  test('every live segment gets a magnet whose info-hash create-torrent reproduces from the origin bytes', async () => {
    // The first request hashes at most HASH_INLINE segments itself and the
    // rest after answering; a later request sees the whole window annotated.
    const playlist = await eventually(async () => {
      const p = await get(`${worker.url}/live/index.m3u8`)
      const n = uriLines(p.text).length
      return p.headers.get('x-live-torrent') === `annotated ${n}/${n}` && p
    }, { what: 'a fully annotated live playlist' })
    assert.equal(playlist.status, 200)
    const segments = uriLines(playlist.text)
    const magnets = magnetsOf(playlist.text)
    assert.ok(segments.length >= 1, 'the live playlist lists segments')
    assert.equal(playlist.headers.get('x-live-torrent'), `annotated ${segments.length}/${segments.length}`)
    assert.deepEqual(magnets.map(m => m.uri), segments, 'one magnet line directly before each segment URI')
    // Live segments age out of the origin: fetch them all at once, right away.
    const upstream = await Promise.all(magnets.map(m => get(`${origin.url}/live/${m.uri}`)))
    for (const [i, m] of magnets.entries()) {
      const upstreamBytes = upstream[i].bytes
      assert.equal(upstream[i].status, 200)
      assert.equal(m.infoHash, await referenceInfoHash(upstreamBytes, m.name, PIECE_LENGTH), m.uri)
      assert.equal(m.name, m.uri)
      assert.deepEqual(m.trackers, TRACKERS)
      assert.equal(m.webSeed, `${worker.url}/live/${m.uri}`)
      assert.ok(m.torrentUrl.startsWith(`${worker.url}/_lt/torrent/${m.infoHash}.torrent?`), m.torrentUrl)
    }
  })

  test('the annotated playlist minus the magnet lines is the upstream playlist byte for byte', async () => {
    const text = '\ufeff#EXTM3U\r\n#EXT-X-VERSION:6\r\n#EXT-X-TARGETDURATION:2\r\n# a comment\r\n' +
      '#EXT-X-CUSTOM-VENDOR-TAG:x=1\r\n\r\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T10:00:00.123+00:00\r\n' +
      '#EXTINF:2.002002,title\r\na.ts?token=abc\r\n#EXT-X-DISCONTINUITY\r\n#EXTINF:1.9,\r\nsub/b.ts\r\n' +
      '#EXT-X-PART:DURATION=0.5,URI="c.part0.ts"\r\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="c.part1.ts"'
    await writeFixture('exact/index.m3u8', text)
    await writeFixture('exact/a.ts', randomBytes(3000))
    await writeFixture('exact/sub/b.ts', randomBytes(5000))
    const playlist = await get(`${worker.url}/exact/index.m3u8`)
    assert.equal(playlist.headers.get('x-live-torrent'), 'annotated 2/2')
    assert.equal(stripMagnets(playlist.text), text)
    // Upstream's validators describe upstream's body, not ours.
    assert.equal(playlist.headers.get('etag'), null)
    assert.equal(playlist.headers.get('last-modified'), null)
    assert.deepEqual(magnetsOf(playlist.text).map(m => m.uri), ['a.ts?token=abc', 'sub/b.ts'])
    assert.match(playlist.text, /\r\n#EXT-X-LT-MAGNET:magnet:\?[^\r\n]+\r\na\.ts/, 'inserted lines use the CRLF of the playlist')
  })

  // Both hash engines (HASH_ENGINE), each in a worker of its own: Web Crypto,
  // the default, and the sha1 crate in wasm.
  for (const engine of ['webcrypto', 'wasm']) {
    test(`info-hashes match create-torrent at the piece-boundary sizes (${engine})`, async () => {
      const sizes = [1, PIECE_LENGTH, PIECE_LENGTH + 1, 2_000_000]
      const engineWorker = engine === 'webcrypto'
        ? worker
        : await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: TRACKERS.join(','), HASH_ENGINE: engine } })
      try {
        const url = `${engineWorker.url}/synthetic/sized.m3u8?sizes=${sizes.join(',')}&engine=${engine}`
        await eventually(async () => magnetsOf((await get(url)).text).length === sizes.length,
          { what: `every size hashed by ${engine}`, timeoutMs: 30000, intervalMs: 500 })
        const magnets = magnetsOf((await get(url)).text)
        for (const [i, m] of magnets.entries()) {
          const bytes = (await get(`${origin.url}/synthetic/${m.uri}`)).bytes
          assert.equal(bytes.length, sizes[i])
          assert.equal(m.infoHash, await referenceInfoHash(bytes, m.name, PIECE_LENGTH), `${engine}: size ${sizes[i]}`)
        }
      } finally {
        if (engineWorker !== worker) await engineWorker.stop()
      }
    })
  }

  test('a body that is not a playlist comes back unchanged, saying why', async () => {
    const bodies = {
      'html.m3u8': '<html><body>502 Bad Gateway</body></html>\n',
      'binary.m3u8': Buffer.from([0xff, 0xfe, 0x00, 0x23, 0x45, 0x58, 0x54]),
      'empty.m3u8': ''
    }
    for (const [name, body] of Object.entries(bodies)) {
      await writeFixture(`broken/${name}`, body)
      const playlist = await get(`${worker.url}/broken/${name}`)
      assert.equal(playlist.status, 200, name)
      assert.ok(playlist.bytes.equals(Buffer.from(body)), name)
      assert.match(playlist.headers.get('x-live-torrent'), /^not-annotated; reason="[^"]+"$/, name)
    }
  })
})

describe('.torrent endpoint', () => {
  test('serves the bencoded torrent whose info hashes to the magnet, with trackers and web seed', async () => {
    await writeFixture('tor/index.m3u8', '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nx.ts\n#EXT-X-ENDLIST\n')
    await writeFixture('tor/x.ts', randomBytes(150_000))
    const [m] = magnetsOf((await get(`${worker.url}/tor/index.m3u8`)).text)
    const file = await get(m.torrentUrl)
    assert.equal(file.status, 200)
    assert.equal(file.headers.get('content-type'), 'application/x-bittorrent')
    const torrent = await parseTorrentFile(file.bytes)
    assert.equal(torrent.infoHash, m.infoHash)
    assert.equal(crypto.createHash('sha1').update(torrent.infoBuffer).digest('hex'), m.infoHash)
    assert.deepEqual(Object.keys(torrent.info).sort(), ['length', 'name', 'piece length', 'pieces'])
    assert.deepEqual(torrent.announce, TRACKERS)
    assert.deepEqual(torrent.urlList, [m.webSeed])
    assert.equal(torrent.length, 150_000)
    assert.equal(torrent.pieceLength, PIECE_LENGTH)
  })

  test('unknown and malformed torrent requests get 404 and 400, and never reach upstream', async () => {
    const before = Object.keys(origin.hits()).length
    const unknown = await get(`${worker.url}/_lt/torrent/${'0'.repeat(40)}.torrent?path=%2Ftor%2Fnothing.ts`)
    assert.equal(unknown.status, 404)
    const malformed = await get(`${worker.url}/_lt/torrent/nothex.torrent?path=%2Fa.ts`)
    assert.equal(malformed.status, 400)
    assert.equal(Object.keys(origin.hits()).length, before)
  })
})

describe('passthrough', () => {
  test('segments pass through with upstream status, caching headers and CORS', async () => {
    await writeFixture('pass/a.ts', randomBytes(70_000))
    const direct = await get(`${origin.url}/pass/a.ts`)
    const via = await get(`${worker.url}/pass/a.ts`)
    assert.equal(via.status, 200)
    assert.ok(via.bytes.equals(direct.bytes))
    assert.equal(via.headers.get('cache-control'), direct.headers.get('cache-control'))
    assert.equal(via.headers.get('etag'), direct.headers.get('etag'))
    assert.equal(via.headers.get('access-control-allow-origin'), '*')
    assert.match(via.headers.get('access-control-expose-headers'), /Content-Length/)
    assert.match(via.headers.get('access-control-expose-headers'), /Content-Range/)
    assert.equal((await get(`${worker.url}/pass/missing.ts`)).status, 404)
  })

  test('Range requests are answered with 206 and the exact bytes', async () => {
    await writeFixture('range/a.ts', randomBytes(10_000))
    const whole = (await get(`${origin.url}/range/a.ts`)).bytes
    const part = await get(`${worker.url}/range/a.ts`, { headers: { Range: 'bytes=100-1099' } })
    assert.equal(part.status, 206)
    assert.equal(part.headers.get('content-range'), 'bytes 100-1099/10000')
    assert.ok(part.bytes.equals(whole.subarray(100, 1100)))
  })

  test('CORS preflight allows Range and Cache-Control for WebTorrent web seeds', async () => {
    const response = await fetch(`${worker.url}/live/index.m3u8`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://player.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'range, cache-control' }
    })
    assert.equal(response.status, 204)
    assert.equal(response.headers.get('access-control-allow-origin'), '*')
    assert.match(response.headers.get('access-control-allow-headers'), /Range/)
    assert.match(response.headers.get('access-control-allow-headers'), /Cache-Control/)
    assert.match(response.headers.get('access-control-allow-methods'), /GET/)
  })

  test('only GET, HEAD and OPTIONS are accepted', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const response = await fetch(`${worker.url}/pass/a.ts`, { method })
      assert.equal(response.status, 405, method)
      assert.equal(response.headers.get('allow'), 'GET, HEAD, OPTIONS')
    }
    const head = await fetch(`${worker.url}/pass/a.ts`, { method: 'HEAD' })
    assert.equal(head.status, 200)
  })

  test('paths under /_lt/ are never forwarded upstream', async () => {
    origin.resetHits()
    for (const p of ['/_lt/nothing-here', '/_lt/torrent/']) {
      const response = await get(`${worker.url}${p}`)
      assert.ok([400, 404].includes(response.status), `${p}: ${response.status}`)
    }
    // Measurement endpoints exist only with BENCH_ENDPOINTS=true.
    assert.equal((await get(`${worker.url}/_lt/bench/hash?bytes=10&engine=wasm`)).status, 404)
    // The demo player is a static file: served, never fetched upstream.
    assert.equal((await get(`${worker.url}/_lt/`)).status, 200)
    assert.deepEqual(Object.keys(origin.hits()).filter(p => p.startsWith('/_lt')), [])
  })
})

describe('master playlists', () => {
  test('variants are routed through the worker and get annotated there', async () => {
    const master = '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n' + `${origin.url}/live/index.m3u8\n` +
      '#EXT-X-STREAM-INF:BANDWIDTH=400000\nlive/index.m3u8\n'
    await writeFixture('master.m3u8', master)
    const response = await get(`${worker.url}/master.m3u8`)
    assert.equal(response.headers.get('x-live-torrent'), 'master')
    assert.deepEqual(uriLines(response.text), [`${worker.url}/live/index.m3u8`, 'live/index.m3u8'])
    assert.equal(response.text, master.replace(`${origin.url}/`, `${worker.url}/`))
    const variant = await get(uriLines(response.text)[0])
    assert.match(variant.headers.get('x-live-torrent'), /^annotated [1-9]/)
  })
})

describe('caching and cost', () => {
  test('a segment already hashed is never fetched from upstream again for hashing', async () => {
    const url = `${worker.url}/synthetic/vod-5.m3u8`
    const first = await get(url)
    // HASH_INLINE defaults to 3; the other two are hashed after the response.
    assert.equal(first.headers.get('x-live-torrent'), 'annotated 3/5')
    const settled = await settledSegmentHits(/^\/synthetic\/seg-\d\.bin$/)
    assert.equal(settled.total, 5)
    assert.ok(Object.values(settled.byPath).every(n => n === 1), JSON.stringify(settled.byPath))
    const second = await get(url)
    assert.equal(second.headers.get('x-live-torrent'), 'annotated 5/5')
    const third = await get(url)
    assert.equal(third.text, second.text)
    assert.deepEqual(segmentHits(/^\/synthetic\/seg-\d\.bin$/), settled.byPath, 'no segment was fetched again')
    // The third request follows the second within PLAYLIST_CACHE_MS (1 s):
    // it is answered from the micro-cache, not from upstream.
    assert.equal(origin.hits()['/synthetic/vod-5.m3u8'], 2)
  })

  test('a 500-segment VOD playlist stays inside the subrequest budget and fills in over later requests', async () => {
    // Segments seg-1000 .. seg-1499, used by no other test.
    let text = '#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:2\n'
    for (let i = 1000; i < 1500; i++) text += `#EXTINF:2.000,\n../synthetic/seg-${i}.bin\n`
    await writeFixture('budget/index.m3u8', text + '#EXT-X-ENDLIST\n')
    const url = `${worker.url}/budget/index.m3u8`
    const first = await get(url)
    assert.equal(first.status, 200)
    // VOD: the first HASH_INLINE (3) segments are annotated in this response.
    assert.equal(first.headers.get('x-live-torrent'), 'annotated 3/500')
    assert.deepEqual(magnetsOf(first.text).map(m => m.uri), [0, 1, 2].map(i => `../synthetic/seg-${1000 + i}.bin`))
    // The rest of the budget (45 subrequests - 1 playlist - 3 inline) continues after the response.
    const settled = await settledSegmentHits(/^\/synthetic\/seg-1\d{3}\.bin$/)
    assert.equal(settled.total, 44, 'one invocation fetched at most 44 segments')
    assert.ok(Object.values(settled.byPath).every(n => n === 1))
    const second = await get(url)
    const annotated = magnetsOf(second.text).map(m => m.uri)
    assert.deepEqual(annotated.slice(0, 44), Array.from({ length: 44 }, (_, i) => `../synthetic/seg-${1000 + i}.bin`))
    assert.equal(annotated.length, 47, '44 from KV plus 3 more hashed inline')
  })

  test('a segment that passes through the worker is hashed on the way, without another upstream fetch', async () => {
    const bytes = randomBytes(200_000)
    await writeFixture('tee/index.m3u8', '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nt.ts\n#EXT-X-ENDLIST\n')
    await writeFixture('tee/t.ts', bytes)
    origin.resetHits()
    const passed = await get(`${worker.url}/tee/t.ts`)
    assert.ok(passed.bytes.equals(bytes))
    const expected = await referenceInfoHash(bytes, 't.ts', PIECE_LENGTH)
    await eventually(async () =>
      (await get(`${worker.url}/_lt/torrent/${expected}.torrent?path=%2Ftee%2Ft.ts`)).status === 200,
    { what: 'the tee to store the record' })
    const playlist = await get(`${worker.url}/tee/index.m3u8`)
    assert.equal(magnetsOf(playlist.text)[0].infoHash, expected)
    assert.equal(origin.hits()['/tee/t.ts'], 1, 'only the viewer\'s own fetch reached upstream')
  })
})

describe('a slow upstream', () => {
  test('a segment slow to arrive holds its playlist up HASH_WAIT_MS at most, and its magnet comes with a later playlist', async () => {
    // The origin holds this segment 8 s before answering: longer than the
    // hash wait, shorter than UPSTREAM_TIMEOUT_MS (10 s), so it does get hashed.
    const name = `held-${process.pid}-${Date.now()}.ts`
    const slow = `/faults/slow/${HASH_WAIT_MS + 5000}/${name}`
    await writeFixture('held/fast.ts', randomBytes(30_000))
    await writeFixture('held/index.m3u8', '#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:2\n' +
      `#EXTINF:2,\nfast.ts\n#EXTINF:2,\n${slow}\n#EXT-X-ENDLIST\n`)
    const url = `${worker.url}/held/index.m3u8`
    const first = await get(url)
    assert.equal(first.status, 200)
    assert.equal(first.headers.get('x-live-torrent'), 'annotated 1/2', 'answered without waiting for the held segment')
    assert.deepEqual(magnetsOf(first.text).map(m => m.uri), ['fast.ts'])
    // Its hashing went on after the response.
    const held = await eventually(async () => magnetsOf((await get(url)).text).find(m => m.uri === slow),
      { what: "the held segment's magnet in a later playlist", timeoutMs: 30_000 })
    assert.equal(held.infoHash, await referenceInfoHash(Buffer.from('fault-test-bytes\n'), name, PIECE_LENGTH))
    assert.equal(origin.hits()[slow], 1, 'the held segment was fetched once, by the first playlist request')
  })
})

describe('configuration', () => {
  test('invalid configuration answers 500 naming the variable, and nothing is fetched', async () => {
    const cases = [
      [{ UPSTREAM: 'ftp://127.0.0.1/x', TRACKERS: '' }, /UPSTREAM/],
      [{ UPSTREAM: origin.url, TRACKERS: 'gopher://127.0.0.1' }, /TRACKERS/],
      [{ UPSTREAM: origin.url, TRACKERS: '', PIECE_LENGTH: '1000' }, /PIECE_LENGTH/]
    ]
    for (const [vars, expected] of cases) {
      const broken = await startWorker({ vars })
      try {
        origin.resetHits()
        const response = await get(`${broken.url}/live/index.m3u8`)
        assert.equal(response.status, 500)
        assert.match(response.text, expected)
        assert.equal(origin.hits()['/live/index.m3u8'], undefined)
      } finally {
        await broken.stop()
      }
    }
  })
})

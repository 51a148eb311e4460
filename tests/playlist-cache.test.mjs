// The playlist micro-cache and the operation counts, in counts: two workers
// under `wrangler dev` (local KV and Cache API) in front of the project's
// origin, no live encoder (fixture playlists the tests rewrite).
//   cached:   PLAYLIST_CACHE_MS=3000, BENCH_ENDPOINTS=true (x-lt-ops header,
//             /_lt/bench/ops totals);
//   uncached: PLAYLIST_CACHE_MS=0, SEGMENT_CACHE=false, no bench endpoints:
//             the design before.
// The origin sends `Cache-Control: max-age=10` on playlists and every fixture
// has a 10 s target duration, so the copy lives the full 3000 ms.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { eventually, fetchAll, sleep, startWorker } from './support/harness.mjs'
import { uriLines } from './support/torrents.mjs'

const TTL_MS = 3000
const VIEWERS = 25
/** Once its copy expires, a fetch and annotation of a warm playlist. */
const REFETCH_SLACK_MS = 1500

let origin, cached, uncached

const get = fetchAll

/** The x-lt-ops header as numbers by name. */
function opsOf (response) {
  const header = response.headers.get('x-lt-ops')
  assert.ok(header, 'the response carries x-lt-ops')
  return Object.fromEntries(header.split(' ').map(pair => {
    const [name, value] = pair.split('=')
    return [name, Number(value)]
  }))
}

async function totals (reset = false) {
  const { status, text } = await get(`${cached.url}/_lt/bench/ops${reset ? '?reset=1' : ''}`)
  assert.equal(status, 200)
  return JSON.parse(text)
}

const playlistHits = p => origin.hits()[p] ?? 0
const hitsUnder = dir => Object.entries(origin.hits()).filter(([p]) => p.startsWith(dir)).reduce((n, [, h]) => n + h, 0)

/** A live playlist of segments `first..first+count-1` under `dir`, writing any segment file missing. */
async function writeLive (dir, first, count) {
  const names = []
  for (let i = first; i < first + count; i++) {
    const name = `seg-${i}.ts`
    const file = path.join(origin.dir, dir, name)
    await fs.mkdir(path.dirname(file), { recursive: true })
    await fs.access(file).catch(() => fs.writeFile(file, crypto.randomBytes(20_000 + 3_000 * i)))
    names.push(name)
  }
  const text = `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:${first}\n` +
    names.map(n => `#EXTINF:10.0,\n${n}\n`).join('')
  // Replaced by rename, as a packager does, so no request reads half a file.
  const target = path.join(origin.dir, dir, 'live.m3u8')
  await fs.writeFile(`${target}.tmp`, text)
  await fs.rename(`${target}.tmp`, target)
}

/** Waits until background hashing and KV writes have stopped moving the origin's counters. */
async function settled (dir) {
  return eventually(async () => {
    const before = hitsUnder(dir)
    await sleep(800)
    return before === hitsUnder(dir)
  }, { what: `origin hits under ${dir} to settle`, timeoutMs: 20_000 })
}

const fullyAnnotated = r => /^annotated (\d+)\/\1$/.test(r.headers.get('x-live-torrent') ?? '')

before(async () => {
  origin = await startOrigin({ live: false, playlistCacheControl: 'max-age=10' })
  const vars = { UPSTREAM: origin.url, TRACKERS: 'ws://127.0.0.1:9/announce' }
  cached = await startWorker({ vars: { ...vars, PLAYLIST_CACHE_MS: String(TTL_MS), BENCH_ENDPOINTS: 'true' } })
  uncached = await startWorker({ vars: { ...vars, PLAYLIST_CACHE_MS: '0', SEGMENT_CACHE: 'false' } })
})

after(async () => {
  await cached?.stop()
  await uncached?.stop()
  await origin?.stop()
})

describe('operation counts', () => {
  test('the worker counts exactly the upstream fetches the origin sees, and one KV write per new segment', async () => {
    await writeLive('/count', 0, 6)
    await totals(true)
    const first = await get(`${cached.url}/count/live.m3u8`)
    assert.equal(first.status, 200)
    const ops = opsOf(first)
    assert.equal(ops['cache-miss'], 1, 'nothing was cached yet')
    assert.equal(ops['kv-read'], 1, 'one bulk read for the whole window')
    assert.equal(ops['kv-read-keys'], 6)
    assert.ok(ops.upstream >= 1, 'at least the playlist itself')
    await settled('/count/')
    const after = await totals()
    assert.equal(after.playlist.invocations, 1)
    assert.equal(after.playlist.ops.upstreamFetches, hitsUnder('/count/'), 'the meter agrees with the origin')
    assert.equal(after.playlist.ops.upstreamFetches, 1 + 6, 'the playlist and each segment once')
    assert.equal(after.playlist.ops.kvWrites, 6)
  })

  test('the counts are not exposed without BENCH_ENDPOINTS', async () => {
    await writeLive('/hidden', 0, 1)
    const response = await get(`${uncached.url}/hidden/live.m3u8`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('x-lt-ops'), null)
    assert.equal((await get(`${uncached.url}/_lt/bench/ops`)).status, 404)
  })
})

describe('playlist micro-cache', () => {
  test('a partly annotated copy is replaced well within the TTL', async () => {
    await writeLive('/partial', 0, 6)
    const first = await get(`${cached.url}/partial/live.m3u8`)
    assert.ok(!fullyAnnotated(first), `the first answer hashes only a few segments inline (${first.headers.get('x-live-torrent')})`)
    const started = Date.now()
    await eventually(async () => fullyAnnotated(await get(`${cached.url}/partial/live.m3u8`)),
      { what: 'a fully annotated copy', intervalMs: 50, timeoutMs: TTL_MS })
    assert.ok(Date.now() - started < TTL_MS, 'the partial copy did not live a whole TTL')
  })

  test(`${VIEWERS} viewers polling at once cost one upstream fetch; the uncached worker makes ${VIEWERS}`, async () => {
    await writeLive('/herd', 0, 6)
    for (const worker of [cached, uncached]) {
      await eventually(async () => fullyAnnotated(await get(`${worker.url}/herd/live.m3u8`)), { what: 'warm records' })
    }
    await settled('/herd/')
    await sleep(TTL_MS + 100) // the copy has expired
    const before = playlistHits('/herd/live.m3u8')
    const answers = await Promise.all(Array.from({ length: VIEWERS }, () => get(`${cached.url}/herd/live.m3u8`)))
    assert.equal(playlistHits('/herd/live.m3u8') - before, 1, 'one upstream playlist fetch for all of them')
    const ops = answers.map(opsOf)
    assert.equal(ops.filter(o => o.upstream === 1 && o['cache-miss'] === 1).length, 1, 'one request made it')
    assert.equal(ops.filter(o => o.upstream === 0 && o['cache-hit'] + o.coalesced === 1).length, VIEWERS - 1,
      'every other request was a cache hit or shared the one being made')
    for (const answer of answers) {
      assert.equal(answer.status, 200)
      assert.equal(answer.text, answers[0].text, 'every viewer gets the same playlist')
      assert.ok(fullyAnnotated(answer))
      assert.equal(answer.headers.get('cache-control'), 'max-age=10', "upstream's Cache-Control, not the stored copy's")
      assert.equal(answer.headers.get('content-type'), 'application/vnd.apple.mpegurl')
    }

    const uncachedBefore = playlistHits('/herd/live.m3u8')
    const plain = await Promise.all(Array.from({ length: VIEWERS }, () => get(`${uncached.url}/herd/live.m3u8`)))
    assert.equal(playlistHits('/herd/live.m3u8') - uncachedBefore, VIEWERS, 'the uncached design fetches once per viewer')
    const sameHost = text => text.replaceAll(uncached.url, cached.url)
      .replaceAll(encodeURIComponent(uncached.url), encodeURIComponent(cached.url))
    assert.equal(sameHost(plain[0].text), answers[0].text, 'the cached copy is what the uncached worker makes')
  })

  test('after the TTL the next request fetches again, and a new segment reaches viewers within the TTL', async () => {
    await writeLive('/fresh', 0, 6)
    let made
    await eventually(async () => {
      const r = await get(`${cached.url}/fresh/live.m3u8`)
      if (fullyAnnotated(r) && opsOf(r).upstream >= 1) made = Date.now()
      return made
    }, { what: 'a fully annotated copy made by one request', intervalMs: TTL_MS / 4 + 50 })
    await writeLive('/fresh', 1, 6) // seg-6.ts is new, seg-0.ts left
    const polls = []
    let seen
    while (seen === undefined && Date.now() - made < TTL_MS + REFETCH_SLACK_MS + 2000) {
      const r = await get(`${cached.url}/fresh/live.m3u8`)
      polls.push({ at: Date.now(), ops: opsOf(r), listed: uriLines(r.text) })
      if (uriLines(r.text).includes('seg-6.ts')) seen = Date.now()
      else await sleep(100)
    }
    assert.ok(seen !== undefined, 'the new segment appeared')
    assert.ok(seen - made <= TTL_MS + REFETCH_SLACK_MS, `listed ${seen - made} ms after the copy was made (TTL ${TTL_MS} ms)`)
    const stale = polls.filter(p => !p.listed.includes('seg-6.ts'))
    assert.ok(stale.length >= 1, 'the copy was served while fresh')
    assert.ok(stale.every(p => p.at - made < TTL_MS + REFETCH_SLACK_MS && p.ops.upstream === 0), 'only fresh copies were served')
    const fetching = polls.filter(p => p.ops.upstream >= 1)
    assert.equal(fetching.length, 1, 'one request fetched the new playlist')
    // `made` is when the copy's response arrived, a little after it was stored.
    assert.ok(fetching[0].at - made >= TTL_MS - 500, 'and not before the copy expired')
  })

  test('LL-HLS requests and playlists upstream forbids caching go upstream every time', async () => {
    await writeLive('/ll', 0, 2)
    const before = playlistHits('/ll/live.m3u8')
    for (let i = 0; i < 4; i++) {
      const r = await get(`${cached.url}/ll/live.m3u8?_HLS_msn=1&_HLS_part=0`)
      assert.equal(r.status, 200)
      assert.equal(opsOf(r)['cache-hit'] + opsOf(r)['cache-miss'], 0, 'the cache is not consulted')
    }
    assert.equal(playlistHits('/ll/live.m3u8') - before, 4)

    const noStore = '/faults/status/200/no-store.m3u8' // the origin sends Cache-Control: no-store
    const noStoreBefore = playlistHits(noStore)
    for (let i = 0; i < 4; i++) {
      const r = await get(`${cached.url}${noStore}`)
      assert.equal(r.status, 200)
      assert.equal(r.headers.get('cache-control'), 'no-store')
    }
    assert.equal(playlistHits(noStore) - noStoreBefore, 4, 'no-store is never served from the cache')
  })

  test('upstream errors are not cached', async () => {
    const missing = '/nothing/here.m3u8'
    const missingBefore = playlistHits(missing)
    for (let i = 0; i < 3; i++) assert.equal((await get(`${cached.url}${missing}`)).status, 404)
    assert.equal(playlistHits(missing) - missingBefore, 3, 'a 404 goes upstream each time')
  })
})

describe('segment cache (SEGMENT_CACHE)', () => {
  test('the hashing fetch fills the location cache: whole and Range fallback requests never go upstream again', async () => {
    await writeLive('/seg', 0, 2)
    await eventually(async () => fullyAnnotated(await get(`${cached.url}/seg/live.m3u8`)), { what: 'hashed segments' })
    await settled('/seg/')
    const bytes = await fs.readFile(path.join(origin.dir, 'seg', 'seg-1.ts'))
    const before = origin.hits()['/seg/seg-1.ts']
    assert.equal(before, 1, 'fetched once, to hash it')
    for (let i = 0; i < 3; i++) {
      const whole = await get(`${cached.url}/seg/seg-1.ts`)
      assert.equal(whole.status, 200)
      assert.ok(whole.bytes.equals(bytes), 'the origin\'s bytes')
      assert.equal(opsOf(whole)['cache-hit'], 1)
      assert.equal(whole.headers.get('access-control-allow-origin'), '*')
    }
    const range = await get(`${cached.url}/seg/seg-1.ts`, { headers: { range: 'bytes=100-1099' } })
    assert.equal(range.status, 206)
    assert.ok(range.bytes.equals(bytes.subarray(100, 1100)), 'the range, cut from the cached copy')
    assert.equal(origin.hits()['/seg/seg-1.ts'], before, 'nothing went upstream')
  })

  test('without it, or when upstream forbids it, every fallback request goes upstream', async () => {
    await writeLive('/seg-off', 0, 1)
    await eventually(async () => fullyAnnotated(await get(`${uncached.url}/seg-off/live.m3u8`)), { what: 'hashed segment' })
    await settled('/seg-off/')
    const before = origin.hits()['/seg-off/seg-0.ts']
    for (let i = 0; i < 3; i++) assert.equal((await get(`${uncached.url}/seg-off/seg-0.ts`)).status, 200)
    assert.equal(origin.hits()['/seg-off/seg-0.ts'] - before, 3)

    const noStore = '/faults/status/200/no-store.ts' // Cache-Control: no-store
    const noStoreBefore = origin.hits()[noStore] ?? 0
    for (let i = 0; i < 3; i++) assert.equal((await get(`${cached.url}${noStore}`)).status, 200)
    assert.equal(origin.hits()[noStore] - noStoreBefore, 3)
  })
})

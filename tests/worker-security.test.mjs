// No open proxy, no leaked credentials: the worker only ever fetches
// UPSTREAM (and, for hashing, the allowed segment origins), whatever a
// request or a playlist says.
//
// Three servers on loopback: the origin (UPSTREAM is its /base directory),
// an allowed second segment origin, and a decoy that stands for every other
// host: any request reaching the decoy fails the test.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { fetchAll, startWorker, sleep } from './support/harness.mjs'
import { magnetsOf, referenceInfoHash } from './support/torrents.mjs'

const TRACKERS = 'ws://127.0.0.1:9/announce'
const PIECE_LENGTH = 65536
const RAW_REQUEST_TIMEOUT_MS = 10_000

let origin, allowed, decoy, worker, forwardingWorker, upstream

const get = fetchAll

async function write (server, relative, content) {
  const file = path.join(server.dir, relative)
  await fs.mkdir(path.dirname(file), { recursive: true })
  await fs.writeFile(file, content)
}

/** Sends `head` as is (request line and headers) and returns the status code. */
function rawRequest (port, head) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer to ${head.split('\r\n')[0]}`)) }, RAW_REQUEST_TIMEOUT_MS)
    socket.setEncoding('latin1')
    socket.on('data', chunk => { received += chunk })
    socket.on('error', error => { clearTimeout(timer); reject(error) })
    socket.on('close', () => {
      clearTimeout(timer)
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(received)
      resolve(status ? Number(status[1]) : null)
    })
    socket.write(`${head}\r\nConnection: close\r\n\r\n`)
  })
}

const decoyHits = () => Object.values(decoy.hits()).reduce((a, b) => a + b, 0)

/** Waits until the hit counters stop moving (background hashing is done). */
async function settle () {
  const total = () => JSON.stringify([origin.hits(), allowed.hits(), decoy.hits()])
  for (let i = 0; i < 40; i++) {
    const before = total()
    await sleep(750)
    if (before === total()) return
  }
}

before(async () => {
  origin = await startOrigin({ live: false })
  allowed = await startOrigin({ live: false })
  decoy = await startOrigin({ live: false })
  upstream = `${origin.url}/base`
  const vars = { UPSTREAM: upstream, TRACKERS, ALLOWED_SEGMENT_ORIGINS: allowed.url }
  worker = await startWorker({ vars })
  forwardingWorker = await startWorker({ vars: { ...vars, FORWARD_REQUEST_HEADERS: 'authorization,cookie' } })
  await write(origin, 'secret.ts', 'outside UPSTREAM\n')
  await write(origin, 'base/seg.ts', crypto.randomBytes(30_000))
})

after(async () => {
  await Promise.all([worker?.stop(), forwardingWorker?.stop()])
  await Promise.all([origin?.stop(), allowed?.stop(), decoy?.stop()])
})

describe('no open proxy', () => {
  test('request targets that name another host or climb out of UPSTREAM never leave it', async () => {
    const d = `127.0.0.1:${decoy.port}`
    const targets = [
      // Absolute-form request target. wrangler dev's own proxy answers it with a
      // bare 500 before the worker sees it; what matters is that nothing leaves.
      `http://${d}/steal.ts`,
      `//${d}/steal.ts`,
      `///${d}/steal.ts`,
      `/@${d}/steal.ts`,
      `/x@${d}/steal.ts`,
      `/%2e%2e/secret.ts`,
      `/%2E%2E/%2e%2e/secret.ts`,
      `/..%2fsecret.ts`,
      `/%2f%2f${d}/steal.ts`,
      `/\\\\${d}/steal.ts`,
      `/..\\secret.ts`,
      `/./../secret.ts`
    ]
    const answers = []
    for (const target of targets) {
      const status = await rawRequest(worker.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${worker.port}`)
      answers.push(`${status} ${target}`)
    }
    console.log(`answers:\n  ${answers.join('\n  ')}`)
    // A Host header naming the decoy changes nothing either.
    await rawRequest(worker.port, `GET /seg.ts HTTP/1.1\r\nHost: ${d}`)
    await settle()
    assert.equal(decoyHits(), 0, `the decoy was reached: ${JSON.stringify(decoy.hits())}`)
    // As a server that decodes %2F before resolving `..` would read each target.
    const asDecoded = target => path.posix.normalize(decodeURIComponent(target.split('?')[0]).replaceAll('\\', '/'))
    const outside = origin.requests().filter(r => !asDecoded(r.target).startsWith('/base/'))
    assert.deepEqual(outside.map(r => r.target), [], 'nothing outside UPSTREAM\'s path was requested')
    assert.equal(origin.hits()['/secret.ts'], undefined)
  })

  test('segments on other hosts are neither fetched nor annotated unless their origin is allowed', async () => {
    const onAllowed = crypto.randomBytes(90_000)
    await write(allowed, 'm/b.ts', onAllowed)
    await write(origin, 'base/mixed/a.ts', crypto.randomBytes(40_000))
    const text = '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n' +
      `#EXTINF:2,\na.ts\n#EXTINF:2,\n${allowed.url}/m/b.ts\n#EXTINF:2,\n${decoy.url}/steal/c.ts\n` +
      `#EXTINF:2,\n${origin.url}/secret.ts\n#EXTINF:2,\nhttp://user:pw@127.0.0.1:${allowed.port}/m/b.ts\n#EXT-X-ENDLIST\n`
    await write(origin, 'base/mixed/index.m3u8', text)
    await get(`${worker.url}/mixed/index.m3u8`)
    await settle()
    const r = await get(`${worker.url}/mixed/index.m3u8`)
    const magnets = magnetsOf(r.text)
    assert.deepEqual(magnets.map(m => m.uri), ['a.ts', `${allowed.url}/m/b.ts`])
    assert.equal(r.headers.get('x-live-torrent'), 'annotated 2/5')
    const b = magnets[1]
    assert.equal(b.infoHash, await referenceInfoHash(onAllowed, 'b.ts', PIECE_LENGTH))
    assert.equal(b.webSeed, `${allowed.url}/m/b.ts`, 'viewers fetch it where it lives')
    assert.equal((await get(b.torrentUrl)).status, 200)
    const forged = b.torrentUrl.replace(encodeURIComponent(allowed.url), encodeURIComponent(decoy.url))
    assert.notEqual(forged, b.torrentUrl)
    assert.equal((await get(forged)).status, 400)
    assert.equal(decoyHits(), 0)
    assert.equal(origin.hits()['/secret.ts'], undefined)
    assert.ok(allowed.hits()['/m/b.ts'] >= 1, 'the allowed origin was fetched for hashing')
  })

  test('redirects are handed back, not followed; inside UPSTREAM they point at the worker', async () => {
    const away = await get(`${worker.url}/faults/redirect/r.ts?to=${encodeURIComponent(`${decoy.url}/steal.ts`)}`)
    assert.equal(away.status, 302)
    assert.equal(away.headers.get('location'), `${decoy.url}/steal.ts`)
    const inside = await get(`${worker.url}/faults/redirect/r.m3u8?to=${encodeURIComponent(`${upstream}/mixed/index.m3u8`)}`)
    assert.equal(inside.status, 302)
    assert.equal(inside.headers.get('location'), `${worker.url}/mixed/index.m3u8`)
    // A playlist whose segment redirects elsewhere: not followed for hashing either.
    const redirecting = `faults/redirect/seg.ts?to=${encodeURIComponent(`${decoy.url}/steal.ts`)}`
    await write(origin, 'base/redir/index.m3u8', `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n../${redirecting}\n#EXT-X-ENDLIST\n`)
    const r = await get(`${worker.url}/redir/index.m3u8`)
    assert.equal(r.headers.get('x-live-torrent'), 'annotated 0/1')
    await settle()
    assert.equal(decoyHits(), 0)
  })
})

describe('requests and responses', () => {
  const viewerHeaders = {
    cookie: 'session=viewer-secret',
    authorization: 'Bearer viewer-token',
    'proxy-authorization': 'Basic cHJveHk=',
    'x-custom': 'nope',
    range: 'bytes=0-9',
    'user-agent': 'live-torrent-test'
  }
  const lastRequestFor = target => origin.requests().filter(r => r.target === target).at(-1)

  test('credentials and hop-by-hop headers are not forwarded upstream by default', async () => {
    const r = await get(`${worker.url}/seg.ts?h=1`, { headers: viewerHeaders })
    assert.equal(r.status, 206)
    const seen = lastRequestFor('/base/seg.ts?h=1').headers
    for (const name of ['cookie', 'authorization', 'proxy-authorization', 'x-custom']) assert.equal(seen[name], undefined, name)
    assert.equal(seen.range, 'bytes=0-9')
    assert.equal(seen['user-agent'], 'live-torrent-test')
  })

  test('FORWARD_REQUEST_HEADERS forwards the named ones, and only those', async () => {
    await get(`${forwardingWorker.url}/seg.ts?h=2`, { headers: viewerHeaders })
    const seen = lastRequestFor('/base/seg.ts?h=2').headers
    assert.equal(seen.cookie, 'session=viewer-secret')
    assert.equal(seen.authorization, 'Bearer viewer-token')
    assert.equal(seen['proxy-authorization'], undefined)
    assert.equal(seen['x-custom'], undefined)
    const cookie = await get(`${forwardingWorker.url}/faults/cookie/x.ts`)
    assert.match(cookie.headers.get('set-cookie') ?? '', /origin-session=secret/, 'with cookies forwarded, they come back')
  })

  test('responses never carry Set-Cookie, from us or passed on', async () => {
    for (const p of ['/faults/cookie/x.ts', '/faults/cookie/x.m3u8', '/_lt/nope', '/_lt/health', '/seg.ts']) {
      const r = await get(`${worker.url}${p}`)
      assert.equal(r.headers.get('set-cookie'), null, p)
    }
    assert.equal((await get(`${worker.url}/seg.ts`, { method: 'POST' })).headers.get('set-cookie'), null)
  })

  test('methods other than GET, HEAD and OPTIONS get 405 and never reach upstream', async () => {
    origin.resetHits()
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await get(`${worker.url}/seg.ts`, { method, body: method === 'DELETE' ? undefined : 'x' })
      assert.equal(r.status, 405, method)
      assert.equal(r.headers.get('allow'), 'GET, HEAD, OPTIONS')
    }
    assert.equal(await rawRequest(worker.port, `TRACE /seg.ts HTTP/1.1\r\nHost: 127.0.0.1:${worker.port}`), 405)
    assert.deepEqual(origin.hits(), {})
  })
})

// The built-in WebTorrent tracker (docs/tracker.md), driven from outside:
// the built worker under `wrangler dev` with TRACKERS unset, in front of the
// project's origin (live ffmpeg feed and synthetic VOD playlists), all on
// 127.0.0.1. Tracker URLs and info-hashes come from the magnets of playlists
// fetched through the worker, exactly as a viewer gets them; nothing is
// registered any other way.
//
// Here: the unmodified npm `bittorrent-tracker` client against it (announce,
// offer/answer relay, completed, scrape, stopped), the tracker URL and stream
// id, the `left`/`event` rules, issued info-hashes being announceable as soon
// as a playlist carries them, the internal registration being unreachable,
// and swarms surviving the object's hibernation. Abuse and limits: tracker-abuse.test.mjs;
// restarts: tracker-restart.test.mjs.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'

import { startOrigin } from '../scripts/origin.mjs'
import { fetchText, startWorker, sleep } from './support/harness.mjs'
import { magnetsOf, uriLines } from './support/torrents.mjs'
import { streamOf, streamSwarmHash } from '../public/_lt/client/stream-mesh.js'
import {
  binaryId, closeAll, connectRaw, isAnswer, isFailure, isOffer, issuedSwarms, loadTrackerClient,
  randomBinaryId, randomHex, replyFor, socketUrlVariant, startClient, trackerStats, upgradeStatus,
  webtorrentStylePeerId
} from './support/tracker-client.mjs'

/** docs/tracker.md: the announce interval and scrape min_request_interval. */
const INTERVAL_SECONDS = 120
/** How long a test waits to be sure that something is NOT delivered. */
const QUIET_MS = 1_500
/** wrangler dev evicts an idle Durable Object after ~15-20 s (ENGINEERING.md). */
const HIBERNATION_IDLE_MS = 25_000

let origin
let worker
let lib
const open = [] // raw peers and clients, closed after each test group

before(async () => {
  origin = await startOrigin({ live: true })
  worker = await startWorker({
    vars: { UPSTREAM: origin.url, BENCH_ENDPOINTS: 'true', VOLATILE_QUERY_PARAMS: 'token' }
  })
  lib = await loadTrackerClient()
})

after(async () => {
  await closeAll(open)
  await worker?.stop()
  await origin?.stop()
})

/** A stream of its own for one test: a synthetic VOD playlist with a query no other test uses. */
async function freshStream (name, segments = 3) {
  return issuedSwarms(worker, `/synthetic/vod-${segments}.m3u8?case=${name}`)
}

async function raw (url, label) {
  const peer = await connectRaw(url, { label })
  open.push(peer)
  return peer
}

function client (options) {
  const c = startClient(lib, options)
  open.push(c)
  return c
}

/** A browser-shaped offer (opaque to the tracker). */
function sdpOffer (type = 'offer') {
  return { type, sdp: `v=0\r\no=- ${crypto.randomInt(1e9)} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n` }
}

/** Clients A and B (each its own socket) started in swarm `hash`, both seen as leechers. */
async function twoLeechers (trackerUrl, hash) {
  const a = client({ announce: socketUrlVariant(trackerUrl, 0), infoHash: hash, label: 'A' })
  const b = client({ announce: socketUrlVariant(trackerUrl, 1), infoHash: hash, label: 'B' })
  a.client.start()
  await a.waitFor('update')
  b.client.start()
  await b.waitFor('update', u => u.incomplete === 2)
  return { a, b }
}

describe('tracker URL and stream id', () => {
  test('every magnet of a media playlist names ws://<worker>/_lt/tracker/<first 16 hex of SHA-1 of the playlist URL>', async () => {
    const path = '/synthetic/vod-3.m3u8?case=url'
    const s = await issuedSwarms(worker, path)
    const identity = `${origin.url}${path}`
    const expected = crypto.createHash('sha1').update(identity).digest('hex').slice(0, 16)
    assert.equal(s.trackerUrl, `ws://127.0.0.1:${worker.port}/_lt/tracker/${expected}`)
    for (const m of s.magnets) assert.deepEqual(m.trackers, [s.trackerUrl], m.uri)
  })

  test('each playlist is its own stream; VOLATILE_QUERY_PARAMS do not make a new one', async () => {
    const a = await issuedSwarms(worker, '/synthetic/vod-3.m3u8?case=renditions&token=1')
    const b = await issuedSwarms(worker, '/synthetic/vod-3.m3u8?case=renditions&token=2')
    const other = await issuedSwarms(worker, '/synthetic/sized.m3u8?sizes=1500,2500&case=renditions')
    assert.equal(a.stream, b.stream, 'only the volatile token differs')
    const identity = `${origin.url}/synthetic/vod-3.m3u8?case=renditions`
    assert.equal(a.stream, crypto.createHash('sha1').update(identity).digest('hex').slice(0, 16))
    assert.notEqual(other.stream, a.stream)
  })
})

describe('the npm bittorrent-tracker client against the built-in tracker', () => {
  // Node has no WebRTC: the client runs on tests/support/webrtc-stand-in.mjs,
  // which makes SDP-shaped offers and answers and never connects. The tracker
  // relays offers and answers opaquely; real WebRTC through the tracker is the
  // browser end-to-end test's job. Two Clients with different peer ids need
  // two sockets: socketUrlVariant gives each its own spelling of the URL.
  after(() => closeAll(open))

  test('announce `started`: an update with complete/incomplete and interval 120', async () => {
    const s = await freshStream('client-started')
    const [hash] = s.infoHashes
    const a = client({ announce: s.trackerUrl, infoHash: hash, label: 'A' })
    a.client.start()
    const update = await a.waitFor('update')
    assert.equal(update.infoHash, hash)
    assert.equal(update.interval, INTERVAL_SECONDS)
    assert.equal(update.complete, 0)
    assert.equal(update.incomplete, 1, 'the announcing peer is a leecher (no left=0)')
    const reply = a.received.find(replyFor(binaryId(hash)))
    assert.deepEqual(reply, { action: 'announce', interval: INTERVAL_SECONDS, info_hash: binaryId(hash), complete: 0, incomplete: 1 })
    assert.deepEqual(a.events.warning.map(String), [])
  })

  test("A's offer reaches B with A's peer_id and offer_id; B's answer reaches A", async () => {
    const s = await freshStream('client-relay')
    const [hash] = s.infoHashes
    const b = client({ announce: socketUrlVariant(s.trackerUrl, 0), infoHash: hash, label: 'B' })
    b.client.start()
    await b.waitFor('update')
    const a = client({ announce: socketUrlVariant(s.trackerUrl, 1), infoHash: hash, label: 'A' })
    a.client.start()
    await a.waitFor('update', u => u.incomplete === 2)

    // B's client takes the relayed offer as a peer whose id is A's.
    const peerAtB = await b.waitFor('peer')
    assert.equal(peerAtB.id, a.peerId)
    const announced = a.sent.find(m => m.event === 'started')
    assert.ok(announced.offers.length >= 1, 'the client sent offers')
    const relayed = b.received.filter(isOffer)
    assert.equal(relayed.length, 1, 'one other peer in the swarm: one offer relayed to it')
    const sentOffer = announced.offers.find(o => o.offer_id === relayed[0].offer_id)
    assert.ok(sentOffer, "the relayed offer_id is one of A's")
    assert.deepEqual(relayed[0], {
      action: 'announce', offer: sentOffer.offer, offer_id: sentOffer.offer_id, peer_id: binaryId(a.peerId), info_hash: binaryId(hash)
    })
    assert.equal(a.received.filter(isOffer).length, 0, 'A never gets its own offer')

    // B's client answered; A's client matched the answer to its offer.
    const peerAtA = await a.waitFor('peer')
    assert.equal(peerAtA.id, b.peerId)
    const sentAnswer = b.sent.find(m => 'answer' in m)
    assert.equal(sentAnswer.to_peer_id, binaryId(a.peerId))
    const answers = a.received.filter(isAnswer)
    assert.equal(answers.length, 1)
    assert.deepEqual(answers[0], {
      action: 'announce', answer: sentAnswer.answer, offer_id: sentOffer.offer_id, peer_id: binaryId(b.peerId), info_hash: binaryId(hash)
    })
    // The SDP came through byte for byte: A's stand-in connection for that
    // offer now holds B's answer as its remote description.
    const offerer = lib.wrtc.connections.find(pc => pc.localDescription?.sdp === sentOffer.offer.sdp)
    assert.equal(offerer.remoteDescription.sdp, sentAnswer.answer.sdp)
    assert.deepEqual([...a.events.warning, ...b.events.warning].map(String), [])
  })

  test('`completed` moves a peer from incomplete to complete, seen in scrape (downloaded too)', async () => {
    const s = await freshStream('client-completed')
    const [hash] = s.infoHashes
    const { a, b } = await twoLeechers(s.trackerUrl, hash)

    b.client.scrape()
    const before = await b.waitFor('scrape')
    assert.deepEqual([before.infoHash, before.complete, before.incomplete, before.downloaded], [hash, 0, 2, 0])

    a.client.complete({ left: 0 })
    const update = await a.waitFor('update', u => u.complete === 1)
    assert.equal(update.incomplete, 1)
    b.events.scrape.length = 0
    b.client.scrape()
    const afterScrape = await b.waitFor('scrape')
    assert.deepEqual([afterScrape.complete, afterScrape.incomplete, afterScrape.downloaded], [1, 1, 1])
  })

  test('scrape: several info-hashes, and none (every swarm of the stream)', async () => {
    const s = await freshStream('client-scrape')
    const [h0, h1] = s.infoHashes
    // One WebTorrent with two torrents: one peer id, one shared socket.
    const peerId = randomHex()
    const a0 = client({ announce: s.trackerUrl, infoHash: h0, peerId, label: 'A/h0' })
    const a1 = client({ announce: s.trackerUrl, infoHash: h1, peerId, label: 'A/h1' })
    const b1 = client({ announce: socketUrlVariant(s.trackerUrl, 1), infoHash: h1, label: 'B/h1' })
    a0.client.start()
    await a0.waitFor('update')
    a1.client.start()
    await a1.waitFor('update')
    b1.client.start()
    await b1.waitFor('update', u => u.incomplete === 2)
    b1.client.complete({ left: 0 })
    await b1.waitFor('update', u => u.complete === 1)

    b1.client.scrape({ infoHash: [h0, h1] })
    const r0 = await b1.waitFor('scrape', e => e.infoHash === h0)
    const r1 = await b1.waitFor('scrape', e => e.infoHash === h1)
    assert.deepEqual([r0.complete, r0.incomplete, r0.downloaded], [0, 1, 0])
    assert.deepEqual([r1.complete, r1.incomplete, r1.downloaded], [1, 1, 1])

    // The client always names its info-hash; "no info_hash" needs a raw message.
    const rawPeer = await raw(s.trackerUrl, 'scraper')
    const all = await rawPeer.scrape(undefined)
    const expectedFiles = {
      [binaryId(h0)]: { complete: 0, incomplete: 1, downloaded: 0 },
      [binaryId(h1)]: { complete: 1, incomplete: 1, downloaded: 1 }
    }
    assert.deepEqual(all, { action: 'scrape', files: expectedFiles, flags: { min_request_interval: INTERVAL_SECONDS } })
    const listed = await rawPeer.scrape([binaryId(h0), binaryId(h1)])
    assert.deepEqual(listed, all)
    const single = await rawPeer.scrape(binaryId(h1))
    assert.deepEqual(single.files, { [binaryId(h1)]: expectedFiles[binaryId(h1)] })
  })

  test('`stopped` removes the peer: counts drop and offers no longer reach it', async () => {
    const s = await freshStream('client-stopped')
    const [hash] = s.infoHashes
    const { a, b } = await twoLeechers(s.trackerUrl, hash)
    await a.waitFor('peer') // B's offer reached A while A was in the swarm

    a.client.stop()
    const watcher = await raw(s.trackerUrl, 'watcher')
    let files
    for (let i = 0; i < 20; i++) { // the stop has no reply to wait for: poll, bounded
      files = (await watcher.scrape(binaryId(hash))).files
      if (files[binaryId(hash)]?.incomplete === 1) break
      await sleep(100)
    }
    assert.deepEqual(files[binaryId(hash)], { complete: 0, incomplete: 1, downloaded: 0 })

    const offersToABefore = a.received.filter(isOffer).length
    const c = await raw(s.trackerUrl, 'C')
    const cId = randomBinaryId()
    const reply = await c.announce({
      info_hash: binaryId(hash), peer_id: cId, event: 'started', numwant: 5,
      offers: [0, 1, 2, 3, 4].map(() => ({ offer: sdpOffer(), offer_id: randomBinaryId() }))
    })
    assert.equal(reply.incomplete, 2, 'B and C')
    await sleep(QUIET_MS)
    assert.equal(a.received.filter(isOffer).length, offersToABefore, 'no offer reaches the stopped peer')
    assert.equal(b.received.filter(m => isOffer(m) && m.peer_id === cId).length, 1, "C's offer reaches B, the one peer left")
  })
})

describe('announce fields', () => {
  after(() => closeAll(open))

  test('a leecher becomes a seeder with `left` 0 or `completed` and stays one; update, paused and no event keep the peer', async () => {
    // docs/tracker.md: as bittorrent-tracker's server counts them. Each
    // scenario: one peer alone in a swarm of its own, so one wrong step does
    // not spill into the next. [announce fields, expected [complete,
    // incomplete] after it, why]; the last number of each scenario is the
    // `downloaded` a scrape must then show (leechers that became seeders).
    const scenarios = [
      [[
        [{ event: 'started', left: 5000 }, [0, 1], 'left 5000: a leecher'],
        [{ event: 'update', left: 0 }, [1, 0], 'left 0: a seeder'],
        [{ event: 'paused', left: 0 }, [1, 0], 'paused: still here'],
        [{ left: 0 }, [1, 0], 'no event: still here']
      ], 1],
      [[
        [{ event: 'started', left: 0 }, [1, 0], 'a seeder from the start'],
        [{ event: 'update', left: 5000 }, [1, 0], 'a seeder stays one, whatever left says later']
      ], 0],
      [[
        [{ event: 'started', left: 0 }, [1, 0], 'a seeder from the start'],
        [{ event: 'update' }, [1, 0], 'left absent: still a seeder']
      ], 0],
      [[
        [{ event: 'started' }, [0, 1], 'left absent: a leecher'],
        [{ event: 'completed' }, [1, 0], '`completed`, even with left absent: a seeder']
      ], 1],
      [[
        [{ event: 'started', left: 0 }, [1, 0], 'a seeder from the start'],
        [{ event: 'completed', left: 0 }, [1, 0], '`completed` from a seeder changes nothing']
      ], 0]
    ]
    const s = await freshStream('left-and-events', scenarios.length)
    // Every step is taken; the wrong answers are listed together.
    const wrong = []
    for (const [n, [steps, expectedDownloaded]] of scenarios.entries()) {
      const h = binaryId(s.infoHashes[n])
      const peer = await raw(s.trackerUrl, `scenario ${n + 1}`)
      const id = randomBinaryId()
      for (const [fields, expected, why] of steps) {
        const reply = await peer.announce({ info_hash: h, peer_id: id, ...fields })
        const got = [reply.complete, reply.incomplete]
        if (got.join() !== expected.join()) wrong.push(`scenario ${n + 1}, ${JSON.stringify(fields)}: ${why}; expected ${expected}, got ${got}`)
      }
      const { downloaded } = (await peer.scrape(h)).files[h]
      if (downloaded !== expectedDownloaded) wrong.push(`scenario ${n + 1}: downloaded ${downloaded}, expected ${expectedDownloaded}`)
    }
    assert.deepEqual(wrong, [])
  })
})

describe('issued info-hashes', () => {
  after(() => closeAll(open))

  test('every info-hash is announceable as soon as a playlist carrying it has been answered (VOD filling in)', async () => {
    // The first request hashes a few segments itself, the rest after answering:
    // the magnets appear over several requests.
    const path = '/synthetic/vod-30.m3u8?case=fill-in'
    const checked = new Set()
    const deadline = Date.now() + 30_000
    let responses = 0
    for (;;) {
      const p = await fetchText(`${worker.url}${path}`)
      responses += 1
      const fresh = magnetsOf(p.text).map(m => m.infoHash).filter(h => !checked.has(h))
      if (fresh.length) {
        const [trackerUrl] = magnetsOf(p.text)[0].trackers
        const peer = await raw(trackerUrl, `fill-in ${responses}`)
        const peerId = randomBinaryId()
        for (const hash of fresh) {
          const reply = await peer.announce({ info_hash: binaryId(hash), peer_id: peerId, event: 'started', numwant: 0, offers: [] })
          assert.ok(!isFailure(reply), `${hash} (first in response ${responses}): ${JSON.stringify(reply)}`)
          checked.add(hash)
        }
        await peer.close()
      }
      if (checked.size === uriLines(p.text).length) break
      assert.ok(Date.now() < deadline, `only ${checked.size} of ${uriLines(p.text).length} segments annotated after 30 s`)
      await sleep(200)
    }
    assert.equal(checked.size, 30)
  })

  test('a new live segment is announceable in the same moment its first playlist is answered', async () => {
    const seen = new Set(magnetsOf((await fetchText(`${worker.url}/live/index.m3u8`)).text).map(m => m.infoHash))
    const fresh = []
    const deadline = Date.now() + 30_000
    while (fresh.length < 2) {
      assert.ok(Date.now() < deadline, `saw ${fresh.length} new live segments in 30 s`)
      await sleep(250)
      const p = await fetchText(`${worker.url}/live/index.m3u8`)
      for (const m of magnetsOf(p.text)) {
        if (seen.has(m.infoHash)) continue
        seen.add(m.infoHash)
        // Right away: no second playlist request in between.
        const peer = await raw(m.trackers[0], `live ${m.uri}`)
        const reply = await peer.announce({ info_hash: binaryId(m.infoHash), peer_id: randomBinaryId(), event: 'started', numwant: 0, offers: [] })
        assert.ok(!isFailure(reply), `${m.uri}: ${JSON.stringify(reply)}`)
        fresh.push(m.uri)
        await peer.close()
      }
    }
  })
})

test('the stream swarm (where viewers keep their connections) is announceable once a playlist is answered; another stream\'s is not', async () => {
  const playlist = await fetchText(`${worker.url}/live/index.m3u8`)
  const [magnet] = magnetsOf(playlist.text)
  const stream = streamOf(magnet.magnet)
  assert.ok(stream && /^[0-9a-f]{16}$/.test(stream.key), `the client reads the stream from tr=${magnet.trackers[0]}`)
  const peer = await raw(magnet.trackers[0], 'stream swarm')
  const peerId = randomBinaryId()
  const announce = async hash => peer.announce({ info_hash: binaryId(hash), peer_id: peerId, event: 'started', numwant: 0, offers: [] })
  const own = await announce(await streamSwarmHash(stream.key))
  assert.ok(!isFailure(own), `the stream's own swarm: ${JSON.stringify(own)}`)
  const other = await announce(await streamSwarmHash(stream.key.replace(/^./, c => (c === '0' ? '1' : '0'))))
  assert.match(other['failure reason'] ?? '', /^unknown info_hash/, `another stream's swarm: ${JSON.stringify(other)}`)
  await peer.close()
})

describe('registration is not reachable from outside', () => {
  after(() => closeAll(open))

  test('POST /register and a GET without Upgrade register nothing; malformed stream ids are refused', async () => {
    const s = await freshStream('register')
    const base = `${worker.url}/_lt/tracker/${s.stream}`
    const stranger = randomHex()
    const bodies = [
      JSON.stringify({ info_hashes: [stranger] }),
      JSON.stringify({ infoHashes: [stranger] }),
      JSON.stringify([stranger]),
      stranger,
      binaryId(stranger)
    ]
    for (const target of [`${base}/register`, base]) {
      for (const body of bodies) {
        const response = await fetchText(target, { method: 'POST', body, headers: { 'content-type': 'application/json' } })
        assert.equal(response.status, 405, `POST ${target.slice(worker.url.length)}: ${response.status} ${response.text.slice(0, 100)}`)
      }
    }
    const plain = await fetchText(base)
    assert.equal(plain.status, 426, `GET without Upgrade: ${plain.status} ${plain.text.slice(0, 100)}`)
    const plainRegister = await fetchText(`${base}/register`)
    assert.ok(plainRegister.status >= 400 && plainRegister.status < 500, `GET /register: ${plainRegister.status}`)
    const upgradeRegister = await upgradeStatus(`${s.trackerUrl}/register`)
    assert.ok(upgradeRegister >= 400 && upgradeRegister < 500, `WebSocket upgrade to /register: ${upgradeRegister}`)

    // Nothing got in: the stranger is still unknown, and the issued count is the playlist's.
    const peer = await raw(s.trackerUrl, 'checker')
    const reply = await peer.announce({ info_hash: binaryId(stranger), peer_id: randomBinaryId(), event: 'started', numwant: 0, offers: [] })
    assert.match(reply['failure reason'] ?? '', /^unknown info_hash/, JSON.stringify(reply))
    // The playlist's segments and the stream's own swarm (docs/tracker.md).
    assert.equal((await trackerStats(worker, s.stream)).issued, s.infoHashes.length + 1)

    for (const bad of ['xyz', s.stream.slice(1), `${s.stream}0`, s.stream.toUpperCase().replace(/^[0-9]/, 'A'), `${'g'.repeat(16)}`]) {
      const wsStatus = await upgradeStatus(`ws://127.0.0.1:${worker.port}/_lt/tracker/${bad}`)
      assert.ok([400, 404].includes(wsStatus), `upgrade to /_lt/tracker/${bad}: ${wsStatus}`)
      const httpStatus = (await fetchText(`${worker.url}/_lt/tracker/${bad}`)).status
      assert.ok([400, 404].includes(httpStatus), `GET /_lt/tracker/${bad}: ${httpStatus}`)
    }
  })
})

describe('hibernation', () => {
  after(() => closeAll(open))

  test('after the object has been idle long enough to be evicted, the swarms are rebuilt from the sockets', async (t) => {
    const MAX_SWARMS_PER_SOCKET = 32
    const s = await freshStream('hibernation', MAX_SWARMS_PER_SOCKET + 1)
    const hashes = s.infoHashes.map(binaryId)
    const h = hashes[0]
    const announce = (peer, hash, peerId, extra = {}) =>
      peer.announce({ info_hash: hash, peer_id: peerId, event: 'started', numwant: 0, offers: [], ...extra })
    const [aId, bId, cId, dId] = [0, 1, 2, 3].map(() => webtorrentStylePeerId())
    const a = await raw(s.trackerUrl, 'A')
    const b = await raw(s.trackerUrl, 'B')
    assert.equal((await announce(b, h, bId)).incomplete, 1)
    assert.equal((await announce(a, h, aId)).incomplete, 2)
    // C is in as many swarms as a socket may be: its attachment is the largest one.
    const c = await raw(s.trackerUrl, 'C (32 swarms)')
    for (const hash of hashes.slice(1)) assert.equal((await announce(c, hash, cId)).incomplete, 1)
    const before = await trackerStats(worker, s.stream)

    await sleep(HIBERNATION_IDLE_MS) // nothing at all reaches this stream's object meanwhile

    const offer = { offer: sdpOffer(), offer_id: randomBinaryId() }
    const reply = await a.announce({ info_hash: h, peer_id: aId, numwant: 1, offers: [offer] })
    assert.deepEqual([reply.complete, reply.incomplete], [0, 2], 'the swarm was rebuilt with both peers')
    const relayed = await b.next(isOffer, { what: "A's offer after the idle time" })
    assert.deepEqual(relayed, { action: 'announce', offer: offer.offer, offer_id: offer.offer_id, peer_id: aId, info_hash: h })
    const answer = sdpOffer('answer')
    b.send({ action: 'announce', info_hash: h, peer_id: bId, to_peer_id: aId, offer_id: offer.offer_id, answer })
    assert.deepEqual(await a.next(isAnswer, { what: "B's answer after the idle time" }),
      { action: 'announce', answer, offer_id: offer.offer_id, peer_id: bId, info_hash: h })

    const after = await trackerStats(worker, s.stream)
    t.diagnostic(`messages_in before the idle time ${before.messages_in}, after ${after.messages_in} ` +
      `(${after.messages_in < before.messages_in ? 'the object was rebuilt' : 'the object stayed in memory'})`)
    assert.deepEqual([after.sockets, after.swarms], [3, MAX_SWARMS_PER_SOCKET + 1], JSON.stringify(after))

    // C's memberships came back in order: a 33rd swarm drops its oldest (hashes[1]) ...
    assert.equal((await announce(c, h, cId)).incomplete, 3)
    const files = (await c.scrape([hashes[1], hashes[2]])).files
    assert.equal(files[hashes[1]]?.incomplete ?? 0, 0, 'the oldest membership was dropped')
    assert.equal(files[hashes[2]].incomplete, 1)
    // ... and C still gets offers in its newest swarm from before the idle time.
    const d = await raw(s.trackerUrl, 'D')
    const dOffer = { offer: sdpOffer(), offer_id: randomBinaryId() }
    assert.equal((await announce(d, hashes[MAX_SWARMS_PER_SOCKET], dId, { numwant: 1, offers: [dOffer] })).incomplete, 2)
    assert.deepEqual(await c.next(isOffer, { what: "D's offer to C" }),
      { action: 'announce', offer: dOffer.offer, offer_id: dOffer.offer_id, peer_id: dId, info_hash: hashes[MAX_SWARMS_PER_SOCKET] })
  })
})

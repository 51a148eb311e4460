// The built-in tracker's limits and abuse handling, one test per row of the
// "Limits and abuse" table of docs/tracker.md, plus "an offer or answer is
// only ever relayed inside its swarm". Raw WebSocket clients send exactly the
// frames under test. Tracker URLs and info-hashes come from playlists fetched
// through the worker (TRACKERS unset), as a viewer gets them.
import { test, before, after, describe } from 'node:test'
import assert from 'node:assert/strict'

import { startOrigin } from '../scripts/origin.mjs'
import { startWorker, sleep } from './support/harness.mjs'
import {
  binaryId, closeAll, connectRaw, isAnswer, isFailure, isOffer, isScrape, issuedSwarms,
  randomBinaryId, randomHex, trackerStats
} from './support/tracker-client.mjs'

/** docs/tracker.md constants. */
const MAX_FRAME_BYTES = 64 * 1024
const MAX_OFFERS_RELAYED = 10
const MAX_SWARMS_PER_SOCKET = 32
const MAX_SCRAPE_HASHES = 64
const MAX_SCRAPE_ALL = 100
const BURST_FACTOR = 3
/** Limits set through the worker's vars for the second group. */
const SMALL_SWARM = 3
const SMALL_RATE = 5
const SHARDS = 2
/** How long a test waits to be sure that something is NOT delivered / closed. */
const QUIET_MS = 1_500

let origin
const open = []

before(async () => {
  origin = await startOrigin({ live: false })
})

after(async () => {
  await closeAll(open)
  await origin?.stop()
})

async function raw (url, label) {
  const peer = await connectRaw(url, { label })
  open.push(peer)
  return peer
}

function offerFor (n) {
  return Array.from({ length: n }, (_, i) => ({
    offer: { type: 'offer', sdp: `v=0\r\no=- ${i} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n` },
    offer_id: randomBinaryId()
  }))
}

const started = (hash, peerId, extra = {}) => ({ info_hash: hash, peer_id: peerId, event: 'started', numwant: 0, offers: [], ...extra })
const announceMessage = (...args) => ({ action: 'announce', ...started(...args) })

/** The failure, then the close: both must come. */
async function failureThenClose (peer, what) {
  const failure = await peer.next(isFailure, { what: `a failure for ${what}` })
  const { code } = await peer.waitClose()
  return { failure, code }
}

describe('default limits', () => {
  let worker
  const streams = {}

  before(async () => {
    worker = await startWorker({ vars: { UPSTREAM: origin.url, BENCH_ENDPOINTS: 'true' } })
  })
  after(async () => {
    await closeAll(open)
    await worker?.stop()
  })

  async function freshStream (name, segments = 3) {
    streams[name] ??= await issuedSwarms(worker, `/synthetic/vod-${segments}.m3u8?case=${name}`)
    return streams[name]
  }

  test('a frame over 64 KiB: failure `message too large`, close 1009; 64 KiB exactly is read', async () => {
    const s = await freshStream('frame-size')
    // ASCII only, so characters and bytes are the same count: a scrape of
    // every swarm with an extra field padding it to the size wanted.
    const frame = bytes => {
      const head = JSON.stringify({ action: 'scrape', pad: '' })
      return head.replace('"pad":""', `"pad":"${'x'.repeat(bytes - head.length)}"`)
    }
    const fits = await raw(s.trackerUrl, 'exactly 64 KiB')
    const exact = frame(MAX_FRAME_BYTES)
    assert.equal(Buffer.byteLength(exact), MAX_FRAME_BYTES)
    fits.sendText(exact)
    const reply = await fits.next()
    assert.ok(isScrape(reply), `a 64 KiB frame is an ordinary message: ${JSON.stringify(reply).slice(0, 300)}`)

    const big = await raw(s.trackerUrl, 'over 64 KiB')
    const over = frame(MAX_FRAME_BYTES + 1)
    assert.equal(Buffer.byteLength(over), MAX_FRAME_BYTES + 1)
    big.sendText(over)
    const { failure, code } = await failureThenClose(big, 'a 64 KiB + 1 frame')
    assert.match(failure['failure reason'], /^message too large/)
    assert.equal(code, 1009)
    assert.ok(fits.isOpen, 'other sockets are untouched')

    // Bytes, not characters: 33,000 two-byte characters are 66,000 bytes.
    const wide = await raw(s.trackerUrl, 'over 64 KiB in UTF-8')
    const wideFrame = JSON.stringify({ action: 'scrape', pad: '\u00e9'.repeat(33_000) })
    assert.ok(wideFrame.length < MAX_FRAME_BYTES && Buffer.byteLength(wideFrame) > MAX_FRAME_BYTES)
    wide.sendText(wideFrame)
    const wideOutcome = await failureThenClose(wide, 'a 66,000-byte frame of 33,000 characters')
    assert.match(wideOutcome.failure['failure reason'], /^message too large/)
    assert.equal(wideOutcome.code, 1009)
  })

  test('a binary frame: failure `binary frames are not part of the protocol`, close 1003', async () => {
    const s = await freshStream('binary')
    const peer = await raw(s.trackerUrl, 'binary')
    peer.sendBinary(Buffer.from(JSON.stringify({ action: 'scrape' })))
    const { failure, code } = await failureThenClose(peer, 'a binary frame')
    assert.match(failure['failure reason'], /^binary frames are not part of the protocol/)
    assert.equal(code, 1003)
  })

  test('malformed messages: a failure naming the problem, close 1002; the tracker keeps serving', async () => {
    const s = await freshStream('malformed')
    const h = binaryId(s.infoHashes[0])
    const p = randomBinaryId()
    const bystander = await raw(s.trackerUrl, 'bystander')
    assert.equal((await bystander.announce(started(h, randomBinaryId()))).incomplete, 1)

    const cases = [
      { name: 'not JSON', text: '{"action":"announce",', names: /json/i },
      { name: 'JSON but an array', text: '[{"action":"scrape"}]', names: /object/i },
      { name: 'JSON but a string', text: '"announce"', names: /object/i },
      { name: 'JSON but a number', text: '42', names: /object/i },
      { name: 'JSON null', text: 'null', names: /object/i },
      { name: 'unknown action', message: { action: 'gossip', info_hash: h, peer_id: p }, names: /action/, echoes: true },
      { name: 'no action', message: { info_hash: h, peer_id: p }, names: /action/ },
      { name: 'info_hash of 19 characters', message: announceMessage(h.slice(1), p), names: /info_hash/ },
      { name: 'info_hash of 21 characters', message: announceMessage(`${h}\u0000`, p), names: /info_hash/ },
      { name: 'info_hash as 40 hex digits', message: announceMessage(s.infoHashes[0], p), names: /info_hash/ },
      { name: 'info_hash with a character above U+00FF', message: announceMessage(`\u0100${h.slice(1)}`, p), names: /info_hash/ },
      { name: 'info_hash a number', message: announceMessage(12345, p), names: /info_hash/ },
      { name: 'peer_id of 19 characters', message: announceMessage(h, p.slice(1)), names: /peer_id/, echoes: true },
      { name: 'peer_id with a character above U+00FF', message: announceMessage(h, `\u20ac${p.slice(1)}`), names: /peer_id/, echoes: true },
      { name: 'no peer_id in an announce', message: { action: 'announce', info_hash: h, event: 'started' }, names: /peer_id/, echoes: true },
      { name: 'offers not a list', message: announceMessage(h, p, { offers: { offer: {}, offer_id: p } }), names: /offers/, echoes: true },
      { name: 'scrape info_hash of 10 characters', message: { action: 'scrape', info_hash: h.slice(10) }, names: /info_hash/ },
      { name: 'answer without to_peer_id', message: { action: 'announce', info_hash: h, peer_id: p, offer_id: randomBinaryId(), answer: { type: 'answer', sdp: 'v=0' } }, names: /to_peer_id/, echoes: true },
      { name: 'answer without offer_id', message: { action: 'announce', info_hash: h, peer_id: p, to_peer_id: randomBinaryId(), answer: { type: 'answer', sdp: 'v=0' } }, names: /offer_id/, echoes: true }
    ]
    // Every case is tried; the wrong answers are listed together.
    const wrong = []
    for (const c of cases) {
      const peer = await raw(s.trackerUrl, c.name)
      peer.sendText(c.text ?? JSON.stringify(c.message))
      let outcome
      try {
        outcome = await failureThenClose(peer, c.name)
      } catch (error) {
        wrong.push(`${c.name}: ${error.message}`)
        continue
      }
      const { failure, code } = outcome
      const problems = []
      if (!c.names.test(failure['failure reason'])) problems.push(`reason does not match ${c.names}`)
      if (code !== 1002) problems.push(`close code ${code}, not 1002`)
      // "with action and info_hash when the message had them"
      if (c.echoes && failure.action !== c.message.action) problems.push(`action ${JSON.stringify(failure.action)}, sent ${JSON.stringify(c.message.action)}`)
      if (c.echoes && failure.info_hash !== h) problems.push('info_hash not echoed')
      if (problems.length) wrong.push(`${c.name}: ${problems.join(', ')}; got ${JSON.stringify(failure)}`)
    }
    assert.deepEqual(wrong, [])

    // Still serving: the socket that was there all along, and a new one.
    assert.ok(bystander.isOpen)
    const scraped = await bystander.scrape(h)
    assert.deepEqual(scraped.files[h], { complete: 0, incomplete: 1, downloaded: 0 })
    const newcomer = await raw(s.trackerUrl, 'newcomer')
    assert.equal((await newcomer.announce(started(h, randomBinaryId()))).incomplete, 2)
  })

  test('an announce for an info-hash not issued for this stream: failure `unknown info_hash`, socket stays open', async () => {
    const s = await freshStream('unknown')
    const peer = await raw(s.trackerUrl, 'stranger')
    const stranger = binaryId(randomHex())
    const p = randomBinaryId()
    const failure = await peer.announce(started(stranger, p))
    assert.match(failure['failure reason'] ?? '', /^unknown info_hash/, JSON.stringify(failure))
    assert.equal(failure.action, 'announce')
    assert.equal(failure.info_hash, stranger)
    await sleep(300)
    assert.ok(peer.isOpen, 'not closed')
    const ok = await peer.announce(started(binaryId(s.infoHashes[0]), p))
    assert.equal(ok.incomplete, 1, JSON.stringify(ok))
  })

  test("another stream's info-hash is refused on this stream's URL (and accepted on its own)", async () => {
    const mine = await freshStream('cross-stream-a')
    const theirs = await issuedSwarms(worker, '/synthetic/sized.m3u8?sizes=3001,3002&case=cross-stream-b')
    assert.notEqual(mine.stream, theirs.stream)
    assert.equal(mine.infoHashes.filter(x => theirs.infoHashes.includes(x)).length, 0, 'disjoint segments')
    const foreign = binaryId(theirs.infoHashes[0])
    const here = await raw(mine.trackerUrl, 'wrong stream')
    const refused = await here.announce(started(foreign, randomBinaryId()))
    assert.match(refused['failure reason'] ?? '', /^unknown info_hash/, JSON.stringify(refused))
    const there = await raw(theirs.trackerUrl, 'right stream')
    const accepted = await there.announce(started(foreign, randomBinaryId()))
    assert.equal(accepted.incomplete, 1, JSON.stringify(accepted))
  })

  test('more than 10 offers in one announce: 10 relayed, each to a different peer, never the sender; numwant caps too', async () => {
    const s = await freshStream('offers-cap')
    const h = binaryId(s.infoHashes[0])
    const receivers = []
    for (let i = 0; i < 12; i++) {
      const peer = await raw(s.trackerUrl, `receiver ${i}`)
      peer.peerId = randomBinaryId()
      assert.ok(!isFailure(await peer.announce(started(h, peer.peerId))))
      receivers.push(peer)
    }
    const sender = await raw(s.trackerUrl, 'sender')
    const senderId = randomBinaryId()
    const before = (await trackerStats(worker, s.stream)).offers_relayed

    const offers = offerFor(15)
    const reply = await sender.announce(started(h, senderId, { numwant: 15, offers }))
    assert.deepEqual([reply.complete, reply.incomplete], [0, 13])
    const got = await Promise.all(receivers.map(r => r.collect(isOffer, QUIET_MS)))
    const relayed = got.flat()
    assert.equal(relayed.length, MAX_OFFERS_RELAYED, `offers relayed: ${relayed.length}`)
    assert.ok(got.every(list => list.length <= 1), 'no peer gets two offers of one announce')
    assert.equal(new Set(relayed.map(m => m.offer_id)).size, relayed.length, 'each offer once')
    for (const m of relayed) {
      const sent = offers.find(o => o.offer_id === m.offer_id)
      assert.ok(sent, 'a relayed offer_id is one of the sender\'s')
      assert.deepEqual(m, { action: 'announce', offer: sent.offer, offer_id: sent.offer_id, peer_id: senderId, info_hash: h })
    }
    assert.equal((await sender.collect(isOffer, 0)).length, 0, 'never to the sender')
    assert.equal((await trackerStats(worker, s.stream)).offers_relayed - before, MAX_OFFERS_RELAYED)

    // numwant 3 with 15 offers: 3.
    const again = await sender.announce({ info_hash: h, peer_id: senderId, numwant: 3, offers: offerFor(15) })
    assert.ok(!isFailure(again), JSON.stringify(again))
    const second = (await Promise.all(receivers.map(r => r.collect(isOffer, QUIET_MS)))).flat()
    assert.equal(second.length, 3)

    // numwant 0: none.
    const none = await sender.announce({ info_hash: h, peer_id: senderId, numwant: 0, offers: offerFor(5) })
    assert.ok(!isFailure(none), JSON.stringify(none))
    assert.equal((await Promise.all(receivers.map(r => r.collect(isOffer, QUIET_MS)))).flat().length, 0)
  })

  test('a socket announcing another peer_id than its first: failure `peer_id`, socket stays open', async () => {
    const s = await freshStream('peer-id-change')
    const [h0, h1] = s.infoHashes.map(binaryId)
    const peer = await raw(s.trackerUrl, 'changer')
    const first = randomBinaryId()
    assert.equal((await peer.announce(started(h0, first))).incomplete, 1)
    for (const h of [h0, h1]) {
      const failure = await peer.announce(started(h, randomBinaryId()))
      assert.match(failure['failure reason'] ?? '', /^peer_id/, JSON.stringify(failure))
      assert.equal(failure.action, 'announce')
      assert.equal(failure.info_hash, h)
    }
    await sleep(300)
    assert.ok(peer.isOpen, 'not closed')
    const files = (await peer.scrape([h0, h1])).files
    assert.equal(files[h0].incomplete, 1, 'the other peer id was not added to swarm 0')
    assert.equal(files[h1]?.incomplete ?? 0, 0, 'nor to swarm 1')
    assert.ok(!isFailure(await peer.announce(started(h1, first))), 'its own peer id still works')
  })

  test('a socket in more than 32 swarms: its oldest membership is dropped, as if it had sent `stopped`', async () => {
    const s = await freshStream('swarms-per-socket', MAX_SWARMS_PER_SOCKET + 1)
    const hashes = s.infoHashes.map(binaryId)
    const busy = await raw(s.trackerUrl, 'busy')
    const busyId = randomBinaryId()
    for (const h of hashes) {
      const reply = await busy.announce(started(h, busyId))
      assert.ok(!isFailure(reply), JSON.stringify(reply))
    }
    assert.ok(busy.isOpen)
    const files = (await busy.scrape([hashes[0], hashes[1], hashes[MAX_SWARMS_PER_SOCKET]])).files
    assert.equal(files[hashes[0]]?.incomplete ?? 0, 0, 'the oldest membership is gone')
    assert.equal(files[hashes[1]].incomplete, 1)
    assert.equal(files[hashes[MAX_SWARMS_PER_SOCKET]].incomplete, 1)
    // Gone for relaying too: an offer in the oldest swarm does not reach it.
    const other = await raw(s.trackerUrl, 'other')
    const reply = await other.announce(started(hashes[0], randomBinaryId(), { numwant: 5, offers: offerFor(5) }))
    assert.equal(reply.incomplete, 1, 'only the newcomer in the oldest swarm')
    assert.equal((await busy.collect(isOffer, QUIET_MS)).length, 0)
  })

  test('scrape answers at most 64 listed info-hashes, and at most 100 swarms when none is named', async () => {
    const swarms = MAX_SCRAPE_ALL + 1
    const s = await freshStream('scrape-limits', swarms)
    const hashes = s.infoHashes.map(binaryId)
    // 101 swarms of one peer each, from 4 sockets (each stays under 32 swarms).
    const perSocket = Math.ceil(swarms / 4)
    for (let from = 0; from < swarms; from += perSocket) {
      const peer = await raw(s.trackerUrl, `member of swarms ${from}..`)
      const id = randomBinaryId()
      for (const h of hashes.slice(from, from + perSocket)) assert.equal((await peer.announce(started(h, id))).incomplete, 1)
    }
    const scraper = await raw(s.trackerUrl, 'scraper')
    const all = await scraper.scrape(undefined)
    assert.ok(isScrape(all), JSON.stringify(all).slice(0, 300))
    assert.equal(Object.keys(all.files).length, MAX_SCRAPE_ALL)
    assert.ok(Object.keys(all.files).every(h => hashes.includes(h)))

    const listed = await scraper.scrape(hashes.slice(0, MAX_SCRAPE_HASHES))
    assert.ok(isScrape(listed), JSON.stringify(listed).slice(0, 300))
    assert.deepEqual(Object.keys(listed.files).sort(), hashes.slice(0, MAX_SCRAPE_HASHES).sort())
    assert.ok(Object.values(listed.files).every(f => f.incomplete === 1))

    const tooMany = await raw(s.trackerUrl, 'scraper of 65')
    const reply = await tooMany.scrape(hashes.slice(0, MAX_SCRAPE_HASHES + 1))
    assert.ok(isFailure(reply) || Object.keys(reply.files).length <= MAX_SCRAPE_HASHES,
      `65 listed: ${Object.keys(reply.files ?? {}).length} answered`)
  })

  test('offers and answers stay inside their swarm', async () => {
    const s = await freshStream('cross-swarm')
    const [h1, h2] = s.infoHashes.map(binaryId)
    const x = await raw(s.trackerUrl, 'X (swarm 1)')
    const y = await raw(s.trackerUrl, 'Y (swarm 2)')
    const xId = randomBinaryId()
    const yId = randomBinaryId()
    assert.equal((await y.announce(started(h2, yId))).incomplete, 1)
    // X's offers in swarm 1, where nobody else is: Y (swarm 2) gets none.
    assert.equal((await x.announce(started(h1, xId, { numwant: 5, offers: offerFor(5) }))).incomplete, 1)
    // An answer for swarm 1 to Y, who is not in swarm 1: not delivered, X gets a failure.
    x.send({ action: 'announce', info_hash: h1, peer_id: xId, to_peer_id: yId, offer_id: randomBinaryId(), answer: { type: 'answer', sdp: 'v=0\r\n' } })
    const failure = await x.next(isFailure, { what: 'a failure for an answer to a peer outside the swarm' })
    assert.equal(failure.info_hash, h1, JSON.stringify(failure))
    // The other way round: Y (not in swarm 1) answers X in swarm 1.
    y.send({ action: 'announce', info_hash: h1, peer_id: yId, to_peer_id: xId, offer_id: randomBinaryId(), answer: { type: 'answer', sdp: 'v=0\r\n' } })
    const yFailure = await y.next(isFailure, { what: 'a failure for an answer from outside the swarm' })
    assert.equal(yFailure.info_hash, h1, JSON.stringify(yFailure))
    // Nor to the wrong swarm's peer through its own swarm's id: X answers Y for swarm 2, X not in it.
    x.send({ action: 'announce', info_hash: h2, peer_id: xId, to_peer_id: yId, offer_id: randomBinaryId(), answer: { type: 'answer', sdp: 'v=0\r\n' } })
    await x.next(isFailure, { what: 'a failure for an answer into a swarm the sender is not in' })

    const [atX, atY] = await Promise.all([x.collect(m => isOffer(m) || isAnswer(m), QUIET_MS), y.collect(m => isOffer(m) || isAnswer(m), QUIET_MS)])
    assert.deepEqual(atY, [], 'Y received nothing')
    assert.deepEqual(atX, [], 'X received nothing')
    assert.ok(x.isOpen && y.isOpen, 'a refused relay does not close the socket')

    // Control: inside one swarm the same answer is delivered.
    const w = await raw(s.trackerUrl, 'W (swarm 1)')
    const wId = randomBinaryId()
    await w.announce(started(h1, wId))
    const offerId = randomBinaryId()
    w.send({ action: 'announce', info_hash: h1, peer_id: wId, to_peer_id: xId, offer_id: offerId, answer: { type: 'answer', sdp: 'v=0\r\n' } })
    assert.deepEqual(await x.next(isAnswer), { action: 'announce', answer: { type: 'answer', sdp: 'v=0\r\n' }, offer_id: offerId, peer_id: wId, info_hash: h1 })
    assert.deepEqual(await w.collect(() => true, QUIET_MS), [], 'a relayed answer has no reply')
  })
})

describe(`TRACKER_MAX_PEERS_PER_SWARM=${SMALL_SWARM}, TRACKER_MESSAGES_PER_SECOND=${SMALL_RATE}, TRACKER_SHARDS=${SHARDS}`, () => {
  let worker

  before(async () => {
    worker = await startWorker({
      vars: {
        UPSTREAM: origin.url,
        BENCH_ENDPOINTS: 'true',
        TRACKER_MAX_PEERS_PER_SWARM: String(SMALL_SWARM),
        TRACKER_MESSAGES_PER_SECOND: String(SMALL_RATE),
        // Sockets of one address share a shard, so the tests above are unaffected.
        TRACKER_SHARDS: String(SHARDS)
      }
    })
  })
  after(async () => {
    await closeAll(open)
    await worker?.stop()
  })

  test('a full swarm: failure `swarm full`, the peer is not added, the socket stays open', async () => {
    const s = await issuedSwarms(worker, '/synthetic/vod-2.m3u8?case=swarm-full')
    const h = binaryId(s.infoHashes[0])
    const members = []
    for (let i = 1; i <= SMALL_SWARM; i++) {
      const peer = await raw(s.trackerUrl, `member ${i}`)
      peer.peerId = randomBinaryId()
      assert.equal((await peer.announce(started(h, peer.peerId))).incomplete, i)
      members.push(peer)
    }
    const late = await raw(s.trackerUrl, 'one too many')
    const lateId = randomBinaryId()
    const failure = await late.announce(started(h, lateId, { numwant: 5, offers: offerFor(5) }))
    assert.match(failure['failure reason'] ?? '', /^swarm full/, JSON.stringify(failure))
    assert.equal(failure.info_hash, h)
    const files = (await late.scrape(h)).files
    assert.equal(files[h].complete + files[h].incomplete, SMALL_SWARM, JSON.stringify(files))
    const offers = (await Promise.all(members.map(m => m.collect(isOffer, QUIET_MS)))).flat()
    assert.deepEqual(offers, [], 'a refused peer\'s offers are not relayed')
    assert.ok(late.isOpen)

    // Room again once a member stops.
    assert.ok(!isFailure(await members[0].announce({ info_hash: h, peer_id: members[0].peerId, event: 'stopped' })))
    assert.equal((await late.announce(started(h, lateId))).incomplete, SMALL_SWARM)
  })

  test('a flood of 100 messages: failure `rate limit`, close 1008; a burst of 3x passes; 1 msg/s is never closed', async () => {
    const s = await issuedSwarms(worker, '/synthetic/vod-2.m3u8?case=rate')
    const h = binaryId(s.infoHashes[0])
    const scrape = JSON.stringify({ action: 'scrape', info_hash: h })

    const polite = await raw(s.trackerUrl, 'polite (1 msg/s)')
    const politeReplies = []
    const politeRun = (async () => {
      for (let i = 0; i < 8 && polite.isOpen; i++) {
        politeReplies.push(await polite.scrape(h))
        await sleep(1_000)
      }
    })()

    const burst = await raw(s.trackerUrl, `burst of ${BURST_FACTOR * SMALL_RATE}`)
    for (let i = 0; i < BURST_FACTOR * SMALL_RATE; i++) burst.sendText(scrape)
    for (let i = 0; i < BURST_FACTOR * SMALL_RATE; i++) {
      const m = await burst.next()
      assert.ok(isScrape(m), `burst message ${i + 1}: ${JSON.stringify(m)}`)
    }

    // Twice the rate, sustained: the burst allowance runs out within seconds.
    const eager = await raw(s.trackerUrl, `eager (${2 * SMALL_RATE} msg/s)`)
    const eagerRun = (async () => {
      const deadline = Date.now() + 10_000
      while (eager.isOpen && Date.now() < deadline) {
        eager.sendText(scrape)
        await sleep(1_000 / (2 * SMALL_RATE))
      }
    })()

    const flood = await raw(s.trackerUrl, 'flood')
    for (let i = 0; i < 100; i++) flood.sendText(scrape)
    const failure = await flood.next(isFailure, { what: 'a rate limit failure' })
    assert.match(failure['failure reason'], /^rate limit/)
    const { code } = await flood.waitClose()
    assert.equal(code, 1008)
    const answered = flood.received.filter(isScrape).length
    assert.ok(answered < 100, `${answered} of 100 answered`)

    await eagerRun
    assert.ok(!eager.isOpen, `${2 * SMALL_RATE} msg/s for 10 s is not closed`)
    assert.match(eager.received.find(isFailure)?.['failure reason'] ?? '', /^rate limit/)
    assert.equal(eager.closeInfo.code, 1008)
    const eagerAnswered = eager.received.filter(isScrape).length
    assert.ok(eagerAnswered >= BURST_FACTOR * SMALL_RATE, `the burst allowance passed first (${eagerAnswered} answered)`)

    await politeRun
    assert.equal(politeReplies.length, 8)
    assert.ok(politeReplies.every(isScrape), JSON.stringify(politeReplies.filter(m => !isScrape(m))))
    assert.ok(polite.isOpen, 'the polite socket is open')
    assert.ok(burst.isOpen, 'the burst socket is open')
    assert.equal(burst.received.filter(isFailure).length, 0)
  })

  test(`TRACKER_SHARDS=${SHARDS}: every shard gets the issued set; one address keeps its shard; addresses spread`, async () => {
    const addresses = Array.from({ length: 16 }, (_, i) => `198.51.100.${i + 1}`) // TEST-NET-2
    // One swarm per address (this worker's swarms hold 3), one more for the reconnect.
    const s = await issuedSwarms(worker, `/synthetic/vod-${addresses.length + 1}.m3u8?case=shards`)
    for (let shard = 0; shard < SHARDS; shard++) {
      // The playlist's segments and the stream's own swarm.
      assert.equal((await trackerStats(worker, s.stream, shard)).issued, s.infoHashes.length + 1, `shard ${shard}`)
    }
    const hashes = s.infoHashes.map(binaryId)
    const socketsPerShard = async () =>
      Promise.all(Array.from({ length: SHARDS }, (_, shard) => trackerStats(worker, s.stream, shard).then(st => st.sockets)))
    const connectFrom = async (address, hash) => {
      const before = await socketsPerShard()
      const peer = await connectRaw(s.trackerUrl, { label: `viewer at ${address}`, headers: { 'CF-Connecting-IP': address } })
      open.push(peer)
      peer.peerId = randomBinaryId()
      const reply = await peer.announce(started(hash, peer.peerId, { numwant: 1, offers: offerFor(1) }))
      assert.ok(!isFailure(reply), JSON.stringify(reply))
      const now = await socketsPerShard()
      peer.shard = now.findIndex((n, i) => n > before[i])
      return peer
    }
    // Which shard each address gets is the worker's choice.
    const shards = []
    for (const [i, address] of addresses.entries()) shards.push((await connectFrom(address, hashes[i])).shard)
    assert.ok(shards.every(n => n >= 0), `every socket was found on a shard: ${shards}`)
    assert.ok(new Set(shards).size > 1, `16 addresses all on one shard: ${shards}`)

    // Reconnecting from the same address: the same object, so the same swarm.
    const first = await connectFrom('203.0.113.7', hashes[addresses.length])
    const again = await connectFrom('203.0.113.7', hashes[addresses.length])
    assert.equal(again.shard, first.shard)
    assert.ok(await first.next(isOffer, { what: 'the offer of the same address\'s second socket' }))
  })
})

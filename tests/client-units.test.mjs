// Pure parts of the browser client, run in Node.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { rangesFor } from '../public/_lt/client/http-fallback.js'
import { designatedFetcher } from '../public/_lt/client/segment-delivery.js'
import { affordableWaitMs, bufferAheadMs } from '../public/_lt/client/playback-clock.js'
import crypto from 'node:crypto'

import { announcesSegment, offersPerAnnounce, segmentOffers, streamOffers, takesLink } from '../public/_lt/client/offer-budget.js'
import { streamOf, streamSwarmHash } from '../public/_lt/client/stream-mesh.js'
import { CHUNK_BYTES, MessageType, decodeMessage, encodeMessage } from '../public/_lt/client/mesh-link.js'
import { parseSegmentTorrent } from '../public/_lt/client/mesh-segment.js'
import createTorrent from 'create-torrent'
import parseTorrent from 'parse-torrent'

const PIECE = 100
const LENGTH = 950
const pieceRange = i => ({ start: i * PIECE, end: Math.min((i + 1) * PIECE, LENGTH) })

test('missing pieces become one range per run', () => {
  assert.deepEqual(rangesFor([0, 1, 2], pieceRange), [{ start: 0, end: 300 }])
  assert.deepEqual(rangesFor([2, 3, 7, 9], pieceRange), [{ start: 200, end: 400 }, { start: 700, end: 800 }, { start: 900, end: 950 }])
})

test('more runs than allowed are merged across the smallest gaps', () => {
  // Runs at 0, 2, 3-4, 8: gaps of 1, 0 (adjacent, already merged), 3 pieces.
  assert.deepEqual(rangesFor([0, 2, 4, 8], pieceRange, 2), [{ start: 0, end: 500 }, { start: 800, end: 900 }])
  assert.deepEqual(rangesFor([0, 2, 4, 6, 8], pieceRange, 1), [{ start: 0, end: 900 }])
})

test('the last, short piece ends at the segment length', () => {
  assert.deepEqual(rangesFor([9], pieceRange), [{ start: 900, end: 950 }])
})

test('exactly one of a set of peers is designated to fetch each segment first, and it rotates', () => {
  const peers = ['a1', 'b2', 'c3', 'd4']
  const counts = Object.fromEntries(peers.map(p => [p, 0]))
  for (let i = 0; i < 400; i++) {
    const infoHash = i.toString(16).padStart(40, '0')
    const chosen = peers.filter(me => designatedFetcher(me, peers.filter(p => p !== me), infoHash))
    assert.equal(chosen.length, 1, `segment ${i}`)
    counts[chosen[0]] += 1
  }
  for (const p of peers) assert.ok(counts[p] > 50, `${p} fetched ${counts[p]} of 400`)
})

test('an announce offers one connection per known peer plus one, within the tracker client\'s five', () => {
  assert.equal(offersPerAnnounce(0), 1)
  assert.equal(offersPerAnnounce(1), 2)
  assert.equal(offersPerAnnounce(3), 4)
  assert.equal(offersPerAnnounce(4), 5)
  assert.equal(offersPerAnnounce(40), 5)
})

test('a segment announce offers no connection once the stream mesh has a link, else as offersPerAnnounce', () => {
  assert.equal(segmentOffers({ meshLinks: 1, connectedPeers: 3 }), 0)
  assert.equal(segmentOffers({ meshLinks: 0, connectedPeers: 3 }), offersPerAnnounce(3))
  assert.equal(segmentOffers({ meshLinks: 0, connectedPeers: 0, max: 1 }), 1)
})

test('a segment is a torrent that announces only while the stream mesh has no link', () => {
  assert.equal(announcesSegment({ meshLinks: 0 }), true)
  assert.equal(announcesSegment({ meshLinks: 1 }), false)
  assert.equal(announcesSegment({ meshLinks: 5 }), false)
})

test('the stream swarm offers for the links it misses, at most five, none once it has those it wants', () => {
  assert.equal(streamOffers({ links: 0, wanted: 8 }), 5)
  assert.equal(streamOffers({ links: 5, wanted: 8 }), 3)
  assert.equal(streamOffers({ links: 7, wanted: 8 }), 1)
  assert.equal(streamOffers({ links: 8, wanted: 8 }), 0)
  assert.equal(streamOffers({ links: 12, wanted: 8 }), 0)
  assert.equal(streamOffers({ links: 0, wanted: 1 }), 1)
})

test('a stream mesh takes links up to twice those it wants, no more', () => {
  assert.equal(takesLink({ links: 0, wanted: 1 }), true)
  assert.equal(takesLink({ links: 1, wanted: 1 }), true)
  assert.equal(takesLink({ links: 2, wanted: 1 }), false)
  assert.equal(takesLink({ links: 15, wanted: 8 }), true)
  assert.equal(takesLink({ links: 16, wanted: 8 }), false)
})

test('the stream of a magnet: the built-in tracker\'s stream id, else the playlist URL without its query, else none', () => {
  const builtin = 'magnet:?xt=urn:btih:' + 'a'.repeat(40) + '&tr=' + encodeURIComponent('wss://edge.example/_lt/tracker/0123456789abcdef')
  assert.deepEqual(streamOf(builtin), { key: '0123456789abcdef', trackers: ['wss://edge.example/_lt/tracker/0123456789abcdef'] })
  const external = 'magnet:?xt=urn:btih:' + 'a'.repeat(40) + '&tr=wss%3A%2F%2Ftracker.example&tr=wss%3A%2F%2Fother.example'
  assert.equal(streamOf(external), null, 'an external tracker and no playlist: no stream')
  assert.deepEqual(streamOf(external, 'https://edge.example/live/index.m3u8?token=1'),
    { key: 'https://edge.example/live/index.m3u8', trackers: ['wss://tracker.example', 'wss://other.example'] })
  assert.equal(streamOf('magnet:?xt=urn:btih:' + 'a'.repeat(40), 'https://edge.example/live/index.m3u8'), null, 'no tracker: no mesh')
})

test('the stream swarm hash is the SHA-1 of "live-torrent stream swarm <stream>" (src/tracker.rs stream_swarm_hash)', async () => {
  const expected = crypto.createHash('sha1').update('live-torrent stream swarm 0123456789abcdef').digest('hex')
  assert.equal(await streamSwarmHash('0123456789abcdef'), expected)
  assert.notEqual(await streamSwarmHash('0123456789abcdee'), expected)
})

/** A media element's state as bufferAheadMs reads it: ranges are [start, end] pairs in seconds. */
function mediaState ({ buffered = [], played = [], currentTime = 0, paused = false, playbackRate = 1 }) {
  const timeRanges = ranges => ({ length: ranges.length, start: i => ranges[i][0], end: i => ranges[i][1] })
  return { buffered: timeRanges(buffered), played: timeRanges(played), currentTime, paused, playbackRate }
}

test('start-up lasts until the video has played: buffered segments before the first frame give no deadline', () => {
  assert.equal(bufferAheadMs(null), null)
  assert.equal(bufferAheadMs(mediaState({})), null)
  // hls.js has buffered two segments and is about to start: still start-up.
  assert.equal(bufferAheadMs(mediaState({ buffered: [[30, 34]], currentTime: 30 })), null)
})

test('once playing, the deadline is the buffer ahead of the playhead in wall-clock time', () => {
  const playing = { buffered: [[30, 34]], played: [[30, 31]], currentTime: 31 }
  assert.equal(bufferAheadMs(mediaState(playing)), 3000)
  assert.equal(bufferAheadMs(mediaState({ ...playing, playbackRate: 2 })), 1500)
  // Only the range holding the playhead counts; outside every range, nothing is ahead.
  assert.equal(bufferAheadMs(mediaState({ ...playing, buffered: [[20, 25], [30, 34]] })), 3000)
  assert.equal(bufferAheadMs(mediaState({ ...playing, currentTime: 40 })), 0)
  assert.equal(bufferAheadMs(mediaState({ ...playing, paused: true })), Infinity)
})

test('a wait is what the buffer affords less an HTTP fetch and the margin, within its cap, never negative', () => {
  const costs = { httpMs: 500, safetyMarginMs: 1000, maxMs: 5000 }
  assert.equal(affordableWaitMs(4000, costs), 2500)
  assert.equal(affordableWaitMs(1200, costs), 0)
  assert.equal(affordableWaitMs(60000, costs), 5000)
  assert.equal(affordableWaitMs(Infinity, costs), 5000)
})

test('mesh messages decode to what was encoded, and a malformed one is refused', () => {
  const infoHash = crypto.randomBytes(20).toString('hex')
  const chunk = crypto.randomBytes(CHUNK_BYTES)
  const messages = [
    { type: MessageType.HAVE, infoHash, pieces: [0, 1, 31, 65535] },
    { type: MessageType.REQUEST, infoHash, index: 7 },
    { type: MessageType.CANCEL, infoHash, index: 70000 },
    { type: MessageType.REJECT, infoHash, index: 0 },
    { type: MessageType.PIECE, infoHash, index: 3, offset: 16384, bytes: chunk }
  ]
  for (const message of messages) {
    const decoded = decodeMessage(encodeMessage(message).buffer)
    assert.equal(decoded.type, message.type)
    assert.equal(decoded.infoHash, infoHash)
    if (message.pieces) assert.deepEqual(decoded.pieces, message.pieces)
    else assert.equal(decoded.index, message.index)
    if (message.bytes) {
      assert.equal(decoded.offset, message.offset)
      assert.deepEqual(Buffer.from(decoded.bytes), chunk)
    }
  }
  const request = encodeMessage({ type: MessageType.REQUEST, infoHash, index: 1 })
  assert.throws(() => decodeMessage(request.subarray(0, 20)), /bytes/, 'too short for an info-hash')
  assert.throws(() => decodeMessage(Uint8Array.of(9, ...request.subarray(1))), /unknown/, 'an unknown type')
  assert.throws(() => decodeMessage(Uint8Array.of(...request, 0)), /bytes/, 'a request with a trailing byte')
  assert.throws(() => decodeMessage(encodeMessage({ type: MessageType.HAVE, infoHash, pieces: [1] }).subarray(0, 22)), /odd/)
  const oversized = encodeMessage({ type: MessageType.PIECE, infoHash, index: 0, offset: 0, bytes: crypto.randomBytes(CHUNK_BYTES + 1) })
  assert.throws(() => decodeMessage(oversized), /PIECE/, 'a chunk larger than a chunk')
  assert.throws(() => decodeMessage(encodeMessage({ type: MessageType.PIECE, infoHash, index: 0, offset: 0, bytes: new Uint8Array(0) })), /PIECE/, 'an empty chunk')
})

test('a segment\'s .torrent gives its length, piece length and piece hashes, only if it hashes to the info-hash', async () => {
  const content = crypto.randomBytes(150_000)
  const torrentFile = await new Promise((resolve, reject) =>
    createTorrent(content, { name: 'seg-1.ts', pieceLength: 16384, announceList: [] }, (err, file) => (err ? reject(err) : resolve(file))))
  const expected = await parseTorrent(torrentFile)
  const parsed = await parseSegmentTorrent(new Uint8Array(torrentFile), expected.infoHash)
  assert.equal(parsed.length, 150_000)
  assert.equal(parsed.pieceLength, 16384)
  assert.deepEqual(parsed.pieceHashes, expected.pieces)
  assert.equal(parsed.pieceHashes[1], crypto.createHash('sha1').update(content.subarray(16384, 32768)).digest('hex'))
  await assert.rejects(parseSegmentTorrent(new Uint8Array(torrentFile), 'f'.repeat(40)), /does not match/)
  await assert.rejects(parseSegmentTorrent(new TextEncoder().encode('d4:infoi1ee'), expected.infoHash), /info dictionary/)
  await assert.rejects(parseSegmentTorrent(new TextEncoder().encode('not bencode'), expected.infoHash))
})

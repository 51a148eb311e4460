// The built-in tracker across a restart of the worker (docs/tracker.md,
// "Hibernation and restarts" and "Only issued info-hashes"): the sockets of
// the old process close; the issued set is in the object's storage, so after
// the restart the same info-hashes are accepted without any playlist being
// fetched again, and reconnected peers relay offers. And a restart that
// raises TRACKER_SHARDS: the new shard must know the stream's info-hashes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import { startOrigin } from '../scripts/origin.mjs'
import { freePort, startWorker } from './support/harness.mjs'
import {
  binaryId, closeAll, connectRaw, isFailure, isOffer, issuedSwarms, randomBinaryId, randomHex, trackerStats
} from './support/tracker-client.mjs'

let origin
let worker
let persistDir
const open = []

before(async () => {
  origin = await startOrigin({ live: false })
  persistDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lt-tracker-restart-'))
})

after(async () => {
  await closeAll(open)
  await worker?.stop()
  await origin?.stop()
  if (persistDir) await fsp.rm(persistDir, { recursive: true, force: true })
})

async function raw (url, label) {
  const peer = await connectRaw(url, { label })
  open.push(peer)
  return peer
}

const offer = () => ({ offer: { type: 'offer', sdp: `v=0\r\no=- ${Date.now()} 2 IN IP4 127.0.0.1\r\n` }, offer_id: randomBinaryId() })
const started = (hash, peerId, extra = {}) => ({ info_hash: hash, peer_id: peerId, event: 'started', numwant: 0, offers: [], ...extra })

/** B in the swarm first, then A announces with one offer: B must get it. */
async function relayBetween (a, b, hash) {
  const aId = randomBinaryId()
  const bId = randomBinaryId()
  const bReply = await b.announce(started(hash, bId))
  assert.ok(!isFailure(bReply), `B's announce: ${JSON.stringify(bReply)}`)
  const o = offer()
  const aReply = await a.announce(started(hash, aId, { numwant: 1, offers: [o] }))
  assert.ok(!isFailure(aReply), `A's announce: ${JSON.stringify(aReply)}`)
  assert.equal(aReply.incomplete, 2)
  const relayed = await b.next(isOffer, { what: "A's offer" })
  assert.deepEqual(relayed, { action: 'announce', offer: o.offer, offer_id: o.offer_id, peer_id: aId, info_hash: hash })
}

test('after a restart on the same storage: old sockets were closed, issued info-hashes are still accepted, offers relay', async () => {
  const port = await freePort()
  const vars = { UPSTREAM: origin.url, BENCH_ENDPOINTS: 'true' }
  worker = await startWorker({ port, persistDir, vars })
  const s = await issuedSwarms(worker, '/synthetic/vod-3.m3u8?case=restart')
  const hashes = s.infoHashes.map(binaryId)

  const oldA = await raw(s.trackerUrl, 'A before')
  const oldB = await raw(s.trackerUrl, 'B before')
  await relayBetween(oldA, oldB, hashes[0])
  const finisher = await raw(s.trackerUrl, 'finisher before')
  const finisherId = randomBinaryId()
  await finisher.announce(started(hashes[2], finisherId))
  await finisher.announce({ info_hash: hashes[2], peer_id: finisherId, event: 'completed', left: 0 })
  assert.equal((await finisher.scrape(hashes[2])).files[hashes[2]].downloaded, 1)

  await worker.stop()
  const closes = await Promise.all([oldA, oldB, finisher].map(peer => peer.waitClose({ timeoutMs: 15_000 })))
  assert.ok(closes.every(c => c.code > 0), `close codes ${closes.map(c => c.code)}`)

  worker = await startWorker({ port, persistDir, vars })
  // No playlist request: the object's stored set is all it has.
  const checker = await raw(s.trackerUrl, 'checker')
  const checkerId = randomBinaryId()
  for (const h of hashes.slice(1)) {
    const reply = await checker.announce(started(h, checkerId))
    assert.ok(!isFailure(reply), `issued before the restart, refused after: ${JSON.stringify(reply)}`)
  }
  const a = await raw(s.trackerUrl, 'A after')
  const b = await raw(s.trackerUrl, 'B after')
  await relayBetween(a, b, hashes[0]) // hashes[0] accepted here, the others above
  // The check is still on: a hash never issued is refused after the restart too.
  const stranger = await raw(s.trackerUrl, 'stranger')
  const refused = await stranger.announce(started(binaryId(randomHex()), randomBinaryId()))
  assert.match(refused['failure reason'] ?? '', /^unknown info_hash/, JSON.stringify(refused))
  // The playlist's segments and the stream's own swarm, from storage.
  assert.equal((await trackerStats(worker, s.stream)).issued, hashes.length + 1)
  // "downloaded counts completed events since the object last started".
  assert.deepEqual((await checker.scrape(hashes[2])).files[hashes[2]], { complete: 0, incomplete: 1, downloaded: 0 })
})

test('raising TRACKER_SHARDS on the same storage: the new shard knows the stream\'s info-hashes once its playlist is served again', async () => {
  // A deployment scales its tracker out: same objects, same storage, one more shard per stream.
  await worker?.stop()
  const port = await freePort()
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lt-tracker-shards-'))
  try {
    const vars = { UPSTREAM: origin.url, BENCH_ENDPOINTS: 'true' }
    worker = await startWorker({ port, persistDir: dir, vars })
    const playlist = '/synthetic/vod-3.m3u8?case=more-shards'
    const s = await issuedSwarms(worker, playlist)
    await worker.stop()

    worker = await startWorker({ port, persistDir: dir, vars: { ...vars, TRACKER_SHARDS: '2' } })
    const again = await issuedSwarms(worker, playlist) // a viewer polls the playlist: the worker registers it
    assert.equal(again.stream, s.stream)
    const issued = await Promise.all([0, 1].map(shard => trackerStats(worker, s.stream, shard).then(st => st.issued)))
    // A viewer whose address lands on shard 1 (TEST-NET-2 addresses, tried in turn).
    let onShard1 = null
    for (let i = 1; i <= 32 && !onShard1; i++) {
      const before = (await trackerStats(worker, s.stream, 1)).sockets
      const peer = await connectRaw(s.trackerUrl, { label: `viewer ${i}`, headers: { 'CF-Connecting-IP': `198.51.100.${i}` } })
      open.push(peer)
      if ((await trackerStats(worker, s.stream, 1)).sockets > before) onShard1 = peer
    }
    assert.ok(onShard1, 'some address lands on shard 1')
    const reply = await onShard1.announce(started(binaryId(s.infoHashes[0]), randomBinaryId()))
    assert.ok(!isFailure(reply), `issued info-hash refused on shard 1 (issued per shard: ${issued}): ${JSON.stringify(reply)}`)
    // The playlist's segments and the stream's own swarm, on each shard.
    assert.deepEqual(issued, [s.infoHashes.length + 1, s.infoHashes.length + 1], 'issued per shard')
  } finally {
    await closeAll(open)
    await worker?.stop()
    worker = null
    await fsp.rm(dir, { recursive: true, force: true })
  }
})

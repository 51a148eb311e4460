// When a segment comes from peers and when over HTTP.
//
// - Someone must fetch each new live segment over HTTP first, or everybody
//   waits for peers until their deadlines and falls back together. When a
//   playlist lists a new segment, the viewers agree on one of them without
//   talking: each ranks itself and the peers it is connected to by a hash of
//   (peer id, info-hash), and the lowest fetches the segment at once and
//   seeds it. In a swarm where everyone sees everyone, exactly one viewer
//   per segment does, and the job rotates evenly. It waits firstFetchDelayMs
//   first and skips the fetch if a peer already has part of the segment: a
//   viewer nearer the live edge, whose player could not wait, got it.
// - The others wait for peers only as long as their player can afford: the
//   deadline is the media buffer ahead of the playhead, less the measured
//   time of an HTTP fetch and a safety margin. Then they complete the
//   segment over HTTP, keeping what peers delivered.
// - Before the video has played at all (start-up: every wait delays the
//   first frame, however much is buffered), a viewer waits for peers only
//   briefly, and only if a connected peer already holds the whole segment.
import { completeOverHttp } from './http-fallback.js'
import { affordableWaitMs, HTTP_FETCH_ESTIMATE_MS } from './playback-clock.js'

const CONTENT_TYPES = { ts: 'video/mp2t', m4s: 'video/iso.segment', mp4: 'video/mp4', m4a: 'audio/mp4', aac: 'audio/aac', mp3: 'audio/mpeg', vtt: 'text/vtt' }
const MAX_WAIT_MS = 30000

function contentTypeOf (url) {
  const extension = new URL(url).pathname.split('.').pop().toLowerCase()
  return CONTENT_TYPES[extension] || 'application/octet-stream'
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** FNV-1a with a final avalanche (murmur3's fmix32): a cheap, well-spread
 * 32-bit hash for ranking peers, even for ids that differ in few characters. */
function rank (peerId, infoHash) {
  let h = 0x811c9dc5
  for (const c of infoHash + peerId) {
    h ^= c.charCodeAt(0)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Whether `me` is the one among `me` and `peers` that fetches `infoHash` first. */
export function designatedFetcher (me, peers, infoHash) {
  const mine = rank(me, infoHash)
  return peers.every(p => p === me || mine < rank(p, infoHash) || (mine === rank(p, infoHash) && me < p))
}

export class SegmentDelivery {
  constructor ({ swarms, clock, stats, config }) {
    this.swarms = swarms
    this.clock = clock
    this.stats = stats
    this.config = config
    // Moving average of how long an HTTP completion takes.
    this.httpMs = HTTP_FETCH_ESTIMATE_MS
  }

  /** Segments just joined. `atLiveEdge`: listed by a playlist refresh, not the first load. */
  onJoined (segments, { atLiveEdge }) {
    if (!atLiveEdge) return
    const peers = this.swarms.peerIds()
    for (const segment of segments) {
      if (!designatedFetcher(this.swarms.peerId, peers, segment.infoHash)) continue
      // A viewer nearer the live edge than us may have to fetch it anyway
      // (its player needs it now): give it a moment, and fetch only if no
      // peer turned out to have any of the segment.
      setTimeout(() => {
        // The segment may have moved into the stream's mesh meanwhile (segment-swarms.js moveIntoMesh).
        const current = this.swarms.get(segment.key) || segment
        // A fetch already under way is the player's (its deadline passed): not ours to count as first.
        if (!current.isComplete && !current.httpFetch && !current.peersHaveAny() && !current.destroyed) {
          current.fetchedFirst = true
          this.startHttp(current)
        }
      }, this.config.firstFetchDelayMs)
    }
  }

  startHttp (segment) {
    if (!segment.httpFetch) {
      const started = performance.now()
      segment.httpAbort = new AbortController()
      segment.httpFetch = completeOverHttp(segment, segment.httpAbort.signal).then(result => {
        this.httpMs = 0.8 * this.httpMs + 0.2 * (performance.now() - started)
        return result
      })
      segment.httpFetch.catch(() => {})
    }
    return segment.httpFetch
  }

  /** How long `segment` may wait for peers before the player would stall. */
  deadlineMs (segment) {
    const ahead = this.clock.bufferAheadMs()
    if (ahead === null) {
      return segment.hasMetadata && segment.seedsConnected() > 0 ? this.config.startupPeerWaitMs : 0
    }
    return affordableWaitMs(ahead, { httpMs: this.httpMs, safetyMarginMs: this.config.safetyMarginMs, maxMs: MAX_WAIT_MS })
  }

  /**
   * Delivers `segment` to the player: from peers if they finish within
   * `deadlineMs`, else completed over HTTP. Resolves `{ bytes, contentType,
   * source }` or null when it could not. One delivery per segment: a repeated
   * request gets the same answer.
   */
  deliver (segment, deadlineMs) {
    if (!segment.delivery) {
      segment.delivery = this.run(segment, deadlineMs).finally(() => { segment.delivered = true })
    }
    return segment.delivery
  }

  async run (segment, deadlineMs) {
    const started = performance.now()
    const fromPeers = segment.complete.then(() => ({ kind: 'p2p' }))
    const overHttp = () => this.startHttp(segment).then(result => ({ kind: 'http', result }), () => ({ kind: 'failed' }))
    const waiting = [fromPeers, sleep(deadlineMs).then(() => ({ kind: 'deadline' }))]
    if (segment.httpFetch) waiting.push(overHttp())
    let outcome = segment.isComplete ? { kind: 'p2p' } : await Promise.race(waiting)
    if (outcome.kind === 'deadline') outcome = await Promise.race([fromPeers, overHttp()])
    if (outcome.kind === 'failed') {
      // HTTP failed; peers may still make it within what is left.
      outcome = await Promise.race([fromPeers, sleep(this.config.safetyMarginMs).then(() => ({ kind: 'failed' }))])
      if (outcome.kind === 'failed') return null
    }

    let bytes
    let httpBytes = 0
    if (outcome.kind === 'p2p') {
      segment.httpAbort?.abort()
      bytes = await segment.bytes()
      // An HTTP fetch that finished too counted as traffic.
      httpBytes = await segment.httpFetch?.then(r => r.httpBytes, () => 0) ?? 0
    } else {
      bytes = outcome.result.bytes
      httpBytes = outcome.result.httpBytes
    }
    const p2pBytes = segment.p2pBytes
    // For the label only (the byte counts stay exact): a few hundred bytes of
    // a piece that arrived while HTTP was already under way do not make a
    // segment "mixed".
    const source = httpBytes === 0 ? 'p2p' : p2pBytes < 0.01 * bytes.length ? 'http' : 'mixed'
    this.stats.segmentDelivered({
      url: segment.url,
      infoHash: segment.infoHash,
      bytes: bytes.length,
      p2pBytes,
      httpBytes,
      ms: Math.round(performance.now() - started),
      source,
      // Where the segment's time went, from its listing in a playlist: when
      // its metadata came, its first peer connected, it was complete (null:
      // never), and when the player asked for it.
      ...segment.timelineMs(),
      requestedMs: Math.round(started - segment.timeline.listed),
      // How long this delivery could wait for peers, from the player's request.
      deadlineMs: Math.round(deadlineMs),
      // This viewer was the one designated to fetch the segment first, and did.
      fetchedFirst: segment.fetchedFirst,
      // The listing itself, as performance.now(): to line the timeline up
      // with the page's other timings (resource timing, say).
      listedAt: Math.round(segment.timeline.listed),
      peers: segment.peerCount
    })
    return { bytes, contentType: contentTypeOf(segment.url), source }
  }
}

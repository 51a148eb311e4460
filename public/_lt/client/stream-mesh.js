// One WebRTC connection per pair of a stream's viewers, for every segment.
//
// A segment torrent that finds its peers through the tracker sets up a new
// peer connection to each of them (ICE, DTLS, SCTP) every segment duration;
// bench/client-profile.mjs put those set-ups at about half of what P2P
// added to a viewer's browser. Instead, the viewers of a stream meet once, in
// the stream's own swarm (a torrent that never has metadata: its info-hash
// is the SHA-1 of "live-torrent stream swarm <stream>", which the worker
// registers with the built-in tracker, src/tracker.rs stream_swarm_hash),
// and keep those connections. For each segment both ends of a connection
// hold, the end with the lower peer id opens a data channel named after the
// segment's info-hash on it, and both hand that channel to the segment's
// torrent as a peer: WebTorrent then runs the segment's wire over it as over
// any WebRTC peer, with the same piece checks. The magnet per segment stays
// the contract. A segment torrent joined while the mesh has a link makes no
// tracker announce at all; one joined while it has none announces, with
// offers, and meets the other viewers outside a mesh in the segment's swarm
// (offer-budget.js). A viewer keeps a bounded number of links: its stream
// swarm makes offers while it has fewer than it wants, and takes links up to
// twice as many (offer-budget.js streamOffers, takesLink); without a bound
// every announce's offers added links until a viewer of a large audience was
// linked to everyone, each link a data channel and a wire per segment.
import { DataChannelConnection } from './data-channel-connection.js'
import { sha1Hex } from './http-fallback.js'
import MemoryChunkStore from './memory-chunk-store.js'
import { streamOffers, takesLink } from './offer-budget.js'

const CHANNEL_PREFIX = 'lt-segment:'
/** How long a channel for a segment we have not joined (yet) is kept. */
const PENDING_CHANNEL_MS = 10000
/** What such a channel may send before we join (a wire's handshake and bitfield are under 200 bytes). */
const MAX_EARLY_BYTES = 64 * 1024
/**
 * A lost link makes the stream swarm announce again (with offers) this long
 * after the last such announce at the soonest, instead of at the tracker's
 * interval (120 s).
 */
export const REDISCOVER_MS = 10000
/**
 * The stream swarm is the only torrent of a viewer in the mesh that talks to
 * the tracker, so a lost tracker socket (a restart of the tracker, a deploy)
 * would leave the viewer unknown to it until bittorrent-tracker's own
 * reconnect, 10 s plus a random wait of up to 5 minutes: viewers joining
 * meanwhile would not find it. The mesh checks the socket this often...
 */
const TRACKER_CHECK_MS = 5000
/**
 * ...and reopens a lost one after a random wait of up to this long, doubled
 * for each attempt until the tracker has kept a socket for
 * TRACKER_STABLE_MS (up to TRACKER_REJOIN_MAX_MS), so an audience comes back
 * within seconds but spread out, and a tracker that keeps closing sockets is
 * not hammered.
 */
const TRACKER_REJOIN_SPREAD_MS = 10000
const TRACKER_REJOIN_MAX_MS = 5 * 60000
const TRACKER_STABLE_MS = 60000
const BUILTIN_TRACKER_STREAM = /\/_lt\/tracker\/([0-9a-f]{16})$/

/**
 * The stream a segment magnet belongs to: the built-in tracker's stream id
 * when it names one (the worker registers the stream swarm there), else the
 * playlist's URL without its query (an external tracker takes any info-hash).
 * Returns { key, trackers } or null (no tracker: no mesh).
 */
export function streamOf (magnet, playlistUrl = null) {
  const trackers = new URLSearchParams(magnet.slice(magnet.indexOf('?') + 1)).getAll('tr')
  if (trackers.length === 0) return null
  const builtin = trackers.map(t => BUILTIN_TRACKER_STREAM.exec(t)).find(Boolean)
  if (builtin) return { key: builtin[1], trackers }
  if (!playlistUrl) return null
  const url = new URL(playlistUrl)
  return { key: `${url.origin}${url.pathname}`, trackers }
}

export function streamSwarmHash (streamKey) {
  return sha1Hex(new TextEncoder().encode(`live-torrent stream swarm ${streamKey}`))
}

/** The WebRTC connection under a WebTorrent peer (simple-peer keeps it as `_pc`). */
function peerConnectionOf (peer) {
  return peer?.conn?._pc ?? null
}

export class StreamMesh {
  /**
   * `client`: the WebTorrent client; `stream`: streamOf(...);
   * `segmentFor(infoHash)`: the SegmentTorrent joined for it, or null;
   * `segments()`: every SegmentTorrent held; `refuse(peerId)`: true for a
   * banned peer; `wantedLinks`: the links it makes offers for (the
   * `meshLinks` setting).
   */
  constructor ({ client, stream, segmentFor, segments, refuse, wantedLinks }) {
    this.client = client
    this.stream = stream
    this.wantedLinks = wantedLinks
    this.segmentFor = segmentFor
    this.segments = segments
    this.refuse = refuse
    this.torrent = null
    this.destroyed = false
    /** Remote peer id -> RTCPeerConnection of a live link. */
    this.links = new Map()
    /** Info-hash -> channels opened to us for a segment not joined yet. */
    this.pending = new Map()
    this.rediscoverTimer = null
    this.lastRediscover = 0
    this.trackerCheckTimer = null
    this.rejoinTimer = null
    /** Rejoins since the tracker last kept its sockets up for TRACKER_STABLE_MS. */
    this.rejoinAttempts = 0
    /** Since when (performance.now()) every tracker socket is up; null while one is lost. */
    this.trackerUpSince = null
    this.ready = streamSwarmHash(stream.key).then(hash => this.start(hash))
    this.ready.catch(err => console.warn('live-torrent: no stream mesh', err))
  }

  start (infoHash) {
    if (this.destroyed) return
    const magnet = `magnet:?xt=urn:btih:${infoHash}&${this.stream.trackers.map(t => `tr=${encodeURIComponent(t)}`).join('&')}`
    this.torrent = this.client.add(magnet, {
      store: MemoryChunkStore,
      storeCacheSlots: 0,
      destroyStoreOnDestroy: true,
      getAnnounceOpts: () => ({ numwant: streamOffers({ links: this.links.size, wanted: this.wantedLinks }) })
    })
    this.torrent.on('error', err => console.warn('live-torrent: stream swarm error', err))
    this.torrent.on('wire', wire => {
      if (wire.peerId) this.onWire(wire)
      else wire.once('handshake', () => this.onWire(wire))
    })
    this.trackerCheckTimer = setInterval(() => this.checkTrackerSockets(), TRACKER_CHECK_MS)
  }

  /**
   * The stream swarm's WebSocket tracker connections (bittorrent-tracker's
   * WebSocketTracker). One marked `reconnecting` has lost its socket and is
   * not announced on until a new socket is up; while it is also `destroyed`
   * it waits for bittorrent-tracker's reconnect timer (a new socket still
   * opening is not destroyed). An internal of the pinned webtorrent build:
   * should it change, nothing matches and the library's own reconnect stays.
   */
  trackerSockets () {
    return (this.torrent?.discovery?.tracker?._trackers ?? []).filter(t => typeof t._openSocket === 'function')
  }

  /** The tracker sockets lost and waiting for bittorrent-tracker's reconnect timer. */
  lostTrackerSockets () {
    return this.trackerSockets().filter(t => t.reconnecting && t.destroyed)
  }

  /** Reopens lost tracker sockets soon (see TRACKER_CHECK_MS); once one is up, it announces again. */
  checkTrackerSockets () {
    if (this.destroyed || this.rejoinTimer) return
    const sockets = this.trackerSockets()
    for (const tracker of sockets) {
      // bittorrent-tracker gives a tracker that joins a pooled socket still
      // opening no 'connect' listener: once that socket is up, the tracker
      // stays marked reconnecting and never announces. Finish its connect.
      if (tracker.reconnecting && !tracker.destroyed && tracker.socket?.connected) this.guard(() => tracker._onSocketConnect())
    }
    if (sockets.every(t => !t.reconnecting)) {
      this.trackerUpSince ??= performance.now()
      if (performance.now() - this.trackerUpSince >= TRACKER_STABLE_MS) this.rejoinAttempts = 0
      return
    }
    this.trackerUpSince = null
    if (this.lostTrackerSockets().length === 0) return // a new socket is opening
    const spread = Math.min(TRACKER_REJOIN_SPREAD_MS * 2 ** this.rejoinAttempts, TRACKER_REJOIN_MAX_MS)
    this.rejoinTimer = setTimeout(() => {
      this.rejoinTimer = null
      if (this.destroyed) return
      const lost = this.lostTrackerSockets()
      if (lost.length) this.rejoinAttempts += 1
      for (const tracker of lost) {
        // Once connected it announces: it is still marked reconnecting.
        this.guard(() => {
          clearTimeout(tracker.reconnectTimer)
          tracker._openSocket()
        })
      }
    }, Math.random() * spread)
  }

  /** Runs `step` (a call into the library's internals) so that whatever it throws stays here. */
  guard (step) {
    try {
      step()
    } catch (err) {
      console.warn('live-torrent: tracker reconnect failed', err)
    }
  }

  onWire (wire) {
    const remote = wire.peerId
    if (this.destroyed || !remote || this.refuse(remote)) return wire.destroy()
    const peer = [...this.torrent._peers.values()].find(p => p.wire === wire)
    const pc = peerConnectionOf(peer)
    if (!pc) return // not a WebRTC peer
    // A second connection to a viewer we have one to (a re-announce's offer
    // reached it): the older one stays. Should both ends each keep a
    // different one, both close and the lost link brings a new announce.
    if (this.links.has(remote)) return wire.destroy()
    // A mesh with all the links it takes refuses more; the other end looks elsewhere.
    if (!takesLink({ links: this.links.size, wanted: this.wantedLinks })) return wire.destroy()
    this.links.set(remote, pc)
    // simple-peer took its own channel at connection time; later channels are ours.
    pc.ondatachannel = event => this.onChannel(remote, event.channel)
    wire.once('close', () => {
      if (this.links.get(remote) !== pc) return
      this.links.delete(remote)
      if (streamOffers({ links: this.links.size, wanted: this.wantedLinks }) > 0) this.rediscover()
    })
    for (const segment of this.segments()) this.openChannel(remote, pc, segment)
  }

  /** Announces the stream swarm again soon, to meet the viewers we lost. */
  rediscover () {
    if (this.destroyed || this.rediscoverTimer) return
    const wait = Math.max(0, this.lastRediscover + REDISCOVER_MS - performance.now())
    this.rediscoverTimer = setTimeout(() => {
      this.rediscoverTimer = null
      this.lastRediscover = performance.now()
      if (!this.destroyed) this.torrent?.discovery?.tracker?.update()
    }, wait)
  }

  get linkCount () {
    return this.links.size
  }

  /** A segment was joined: open its channels, and take those opened to us. */
  segmentJoined (segment) {
    if (this.destroyed) return
    for (const [remote, pc] of this.links) this.openChannel(remote, pc, segment)
    const waiting = this.pending.get(segment.infoHash)
    if (!waiting) return
    this.pending.delete(segment.infoHash)
    for (const { remote, channel, timer, early } of waiting) {
      clearTimeout(timer)
      this.addToSegment(segment, remote, channel, early)
    }
  }

  /** The lower peer id of a pair opens the pair's channel for a segment. */
  openChannel (remote, pc, segment) {
    if (!(this.client.peerId < remote) || segment.torrent.destroyed) return
    if (segment.torrent.wires.some(w => w.peerId === remote)) return
    let channel
    try {
      channel = pc.createDataChannel(CHANNEL_PREFIX + segment.infoHash)
    } catch (err) {
      return // the connection is closing
    }
    this.addToSegment(segment, remote, channel)
  }

  onChannel (remote, channel) {
    if (this.destroyed || !channel.label.startsWith(CHANNEL_PREFIX)) return channel.close()
    const infoHash = channel.label.slice(CHANNEL_PREFIX.length)
    const segment = this.segmentFor(infoHash)
    if (segment) return this.addToSegment(segment, remote, channel)
    // The other end listed the segment first; our playlist will list it soon.
    // Its wire's handshake may arrive before then, and a data channel drops
    // what arrives while nobody listens: keep it for the connection.
    const early = []
    let earlyBytes = 0
    channel.binaryType = 'arraybuffer'
    channel.onmessage = event => {
      earlyBytes += event.data.byteLength ?? 0
      if (earlyBytes > MAX_EARLY_BYTES) return channel.close()
      early.push(event.data)
    }
    const waiting = this.pending.get(infoHash) || []
    const timer = setTimeout(() => {
      const left = (this.pending.get(infoHash) || []).filter(entry => entry.channel !== channel)
      if (left.length) this.pending.set(infoHash, left)
      else this.pending.delete(infoHash)
      channel.close()
    }, PENDING_CHANNEL_MS)
    waiting.push({ remote, channel, timer, early })
    this.pending.set(infoHash, waiting)
  }

  /** `early`: messages that came before the segment was joined. */
  addToSegment (segment, remote, channel, early = []) {
    const conn = new DataChannelConnection(channel, `mesh:${remote}`, early)
    const add = () => {
      try {
        if (segment.torrent.destroyed || !segment.torrent.addPeer(conn)) conn.destroy()
      } catch (err) {
        conn.destroy()
      }
    }
    if (segment.torrent.infoHash) add()
    else segment.torrent.once('infoHash', add)
  }

  /** Closes the link to `peerId` (a peer that sent corrupt data). */
  drop (peerId) {
    this.links.delete(peerId)
    for (const wire of this.torrent?.wires ?? []) if (wire.peerId === peerId) wire.destroy()
  }

  destroy () {
    this.destroyed = true
    clearTimeout(this.rediscoverTimer)
    clearInterval(this.trackerCheckTimer)
    clearTimeout(this.rejoinTimer)
    // A tracker waiting to reconnect keeps its timer through destroy() and
    // would announce the destroyed swarm later.
    for (const tracker of this.trackerSockets()) clearTimeout(tracker.reconnectTimer)
    for (const waiting of this.pending.values()) {
      for (const { channel, timer } of waiting) {
        clearTimeout(timer)
        channel.close()
      }
    }
    this.pending.clear()
    this.links.clear()
    this.torrent?.destroy()
  }
}

// One WebRTC connection per pair of a stream's viewers, for every segment.
//
// A segment torrent that finds its peers through the tracker sets up a new
// peer connection to each of them (ICE, DTLS, SCTP) every segment duration;
// bench/client-profile.mjs put those set-ups at about half of what P2P
// added to a viewer's browser. Instead, the viewers of a stream meet once, in
// the stream's own swarm (a torrent that never has metadata: its info-hash
// is the SHA-1 of "live-torrent stream swarm <stream>", which the worker
// registers with the built-in tracker, src/tracker.rs stream_swarm_hash),
// and keep those connections. On each, the end with the lower peer id opens
// one data channel for the segment exchange (mesh-link.js): which pieces of
// which segments each end has, requests, and pieces checked against each
// segment's .torrent (mesh-segment.js). No WebTorrent torrent is made for a
// segment joined while the mesh has a link, and none announces. A segment
// joined while it has none is a WebTorrent torrent that announces, with
// offers, and meets the other viewers outside a mesh in the segment's swarm
// (offer-budget.js); the mesh serves its pieces too. The magnet per segment
// stays the contract. A viewer keeps a bounded number of links: its stream
// swarm makes offers while it has fewer than it wants, and takes links up to
// twice as many (offer-budget.js streamOffers, takesLink); without a bound
// every announce's offers added links until a viewer of a large audience was
// linked to everyone.
import { sha1Hex } from './http-fallback.js'
import MemoryChunkStore from './memory-chunk-store.js'
import { CHANNEL_LABEL, MeshLink } from './mesh-link.js'
import { streamOffers, takesLink } from './offer-budget.js'

/** A link whose exchange channel is not open this long after it was made is closed (and looked for again). */
const CHANNEL_OPEN_MS = 10000
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
   * `segmentFor(infoHash)`: the segment (MeshSegment or SegmentTorrent)
   * joined for it, or null; `segments()`: every segment of this stream held;
   * `refuse(peerId)`: true for a banned peer; `wantedLinks`: the links it
   * makes offers for (the `meshLinks` setting); `onLinkOpen()`: a link's
   * exchange channel opened; `onUploaded(bytes)`: piece bytes sent.
   */
  constructor ({ client, stream, segmentFor, segments, refuse, wantedLinks, onLinkOpen = () => {}, onUploaded = () => {} }) {
    this.client = client
    this.stream = stream
    this.wantedLinks = wantedLinks
    this.segmentFor = segmentFor
    this.segments = segments
    this.refuse = refuse
    this.onLinkOpen = onLinkOpen
    this.onUploaded = onUploaded
    this.torrent = null
    this.destroyed = false
    /** Remote peer id -> { pc, wire, link (MeshLink, once its channel is there), timer }. */
    this.links = new Map()
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
    const entry = { pc, wire, link: null, timer: null }
    this.links.set(remote, entry)
    // simple-peer took its own channel at connection time; a later one is the exchange's.
    pc.ondatachannel = event => this.onChannel(remote, event.channel)
    entry.timer = setTimeout(() => { if (!entry.link?.open) wire.destroy() }, CHANNEL_OPEN_MS)
    wire.once('close', () => {
      clearTimeout(entry.timer)
      entry.link?.close()
      if (this.links.get(remote) !== entry) return
      this.links.delete(remote)
      if (streamOffers({ links: this.links.size, wanted: this.wantedLinks }) > 0) this.rediscover()
    })
    if (this.client.peerId < remote) {
      let channel
      try {
        channel = pc.createDataChannel(CHANNEL_LABEL)
      } catch (err) {
        return wire.destroy() // the connection is closing
      }
      this.attach(remote, channel)
    }
  }

  /** A data channel the other end of a link opened: the exchange's, or nothing we take. */
  onChannel (remote, channel) {
    const entry = this.links.get(remote)
    if (this.destroyed || !entry || entry.link || channel.label !== CHANNEL_LABEL) return channel.close()
    this.attach(remote, channel)
  }

  attach (remote, channel) {
    const entry = this.links.get(remote)
    entry.link = new MeshLink(remote, channel, {
      onOpen: link => this.linkOpened(link),
      onHave: (link, infoHash) => this.segmentFor(infoHash)?.noticePeers?.(),
      onRequest: (link, infoHash, index) => this.serve(link, infoHash, index),
      onReject: (link, infoHash, index) => this.segmentFor(infoHash)?.requestFailed?.(index, link),
      onPiece: (link, infoHash, index, offset, bytes) => this.segmentFor(infoHash)?.onChunk?.(link, index, offset, bytes),
      onClose: link => this.linkClosed(remote, entry, link),
      onUploaded: bytes => this.onUploaded(bytes)
    })
  }

  /** Tells the new link's peer what we hold. */
  linkOpened (link) {
    clearTimeout(this.links.get(link.remoteId)?.timer)
    for (const segment of this.segments()) {
      const held = segment.hasMetadata ? segment.heldPieces() : []
      if (held.length) link.sendHave(segment.infoHash, held)
    }
    this.onLinkOpen()
    for (const segment of this.segments()) segment.noticePeers?.()
  }

  linkClosed (remote, entry, link) {
    for (const segment of this.segments()) segment.linkClosed?.(link)
    // A link without its exchange channel is of no use: close the connection.
    if (this.links.get(remote) === entry) entry.wire.destroy()
  }

  /** A peer asked for a piece: send it if we hold it, else say so. */
  serve (link, infoHash, index) {
    const segment = this.segmentFor(infoHash)
    if (!segment?.hasMetadata || !segment.hasPiece(index)) return link.reject(infoHash, index)
    segment.readPiece(index).then(piece => link.upload(infoHash, index, piece), () => link.reject(infoHash, index))
  }

  /** Links whose exchange channel is open. */
  openLinks () {
    const open = []
    for (const { link } of this.links.values()) if (link?.open) open.push(link)
    return open
  }

  /**
   * A request to a peer settled, so a link may have room for another: every
   * segment asks again, oldest first (the player's order). A segment whose
   * peers have all their pieces hears of nothing new that would make it ask.
   */
  scheduleSegments () {
    for (const segment of this.segments()) segment.schedule?.()
  }

  /** We hold new pieces of a segment: tell every link. */
  announceHave (infoHash, pieces) {
    for (const link of this.openLinks()) link.sendHave(infoHash, pieces)
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

  /** Closes the link to `peerId` (a peer that sent corrupt data). */
  drop (peerId) {
    const entry = this.links.get(peerId)
    this.links.delete(peerId)
    entry?.link?.close()
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
    const entries = [...this.links.values()]
    this.links.clear()
    for (const { link, timer } of entries) {
      clearTimeout(timer)
      link?.close()
    }
    this.torrent?.destroy()
  }
}

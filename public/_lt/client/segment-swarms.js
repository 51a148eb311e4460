// The segments a viewer holds: each joined as soon as a playlist lists it
// and kept (seeding) until it falls out of a bounded window. A segment
// joined while the stream's mesh (stream-mesh.js) has a link is exchanged
// over the mesh's links (mesh-segment.js); one joined while it has none is a
// WebTorrent torrent that announces to the magnet's trackers, to meet
// whoever else is in the segment's swarm (offer-budget.js
// announcesSegment). When the mesh's first link opens, the torrents that
// hold nothing yet move into the mesh.
import WebTorrent from '../vendor/webtorrent.min.js'
import MemoryChunkStore from './memory-chunk-store.js'
import { MeshSegment } from './mesh-segment.js'
import { announcesSegment, segmentOffers } from './offer-budget.js'
import { Segment, pieceHashesOf } from './segment.js'
import { StreamMesh, streamOf } from './stream-mesh.js'

/** A segment's torrent: what we have of it, and how to read and complete it. */
export class SegmentTorrent extends Segment {
  /**
   * `onBadPiece(index, wires)` is called when a piece from peers fails its
   * SHA-1 check, with the connections that sent blocks of it; `onHave(pieces)`
   * when pieces were verified or seeded.
   */
  constructor ({ key, url, magnet, range = null, torrent, onBadPiece = () => {}, onHave = () => {} }) {
    super({ key, url, magnet, range })
    this.torrent = torrent
    torrent.once('wire', () => { this.timeline.firstPeer = performance.now() })
    /** Piece index -> the connections that sent blocks of it since it was last checked. */
    this.senders = new Map()
    /** True while our own (HTTP) bytes are being loaded: those pieces are not from peers. */
    this.loading = false
    torrent.on('wire', wire => wire.on('piece', index => {
      if (!this.senders.has(index)) this.senders.set(index, new Set())
      this.senders.get(index).add(wire)
    }))
    torrent.on('verified', index => {
      if (!this.loading && this.senders.has(index)) this.p2pBytes += this.pieceRange(index).end - this.pieceRange(index).start
      this.senders.delete(index)
      onHave([index])
    })
    this.onHave = onHave
    // WebTorrent drops a piece from peers that fails its SHA-1 check and says
    // so only in a warning ("Piece N failed verification").
    torrent.on('warning', err => {
      const failed = /^Piece (\d+) failed verification/.exec(err?.message || '')
      if (!failed) return
      const index = Number(failed[1])
      onBadPiece(index, [...(this.senders.get(index) || [])])
      this.senders.delete(index)
    })
    this.metadata = new Promise((resolve, reject) => {
      if (torrent.ready) resolve()
      torrent.once('ready', resolve)
      torrent.once('error', reject)
    })
    this.metadata.then(() => { this.timeline.metadata = performance.now() }, () => {})
    this.complete = new Promise(resolve => {
      if (torrent.done) resolve()
      torrent.once('done', resolve)
    })
    this.complete.then(() => { this.timeline.complete = performance.now() })
  }

  get hasMetadata () {
    return Boolean(this.torrent.ready && this.torrent.store)
  }

  get isComplete () {
    return Boolean(this.torrent.done)
  }

  get destroyed () {
    return Boolean(this.torrent.destroyed)
  }

  /** Peers connected for this segment. */
  get peerCount () {
    return this.torrent.wires.length
  }

  get length () { return this.torrent.length }
  get pieceLength () { return this.torrent.pieceLength }
  get pieceCount () { return this.torrent.pieces.length }

  /** Expected SHA-1 of each piece, as hex. */
  pieceHashes () {
    if (Array.isArray(this.torrent._hashes)) return this.torrent._hashes
    return pieceHashesOf(this.torrent.info.pieces)
  }

  hasPiece (index) {
    return this.torrent.bitfield.get(index)
  }

  /** How many of this segment's pieces `wire`'s peer has. */
  piecesOf (wire) {
    let count = 0
    for (let i = 0; wire.peerPieces && i < this.pieceCount; i++) if (wire.peerPieces.get(i)) count++
    return count
  }

  /** Peers that have every piece: those we can expect the segment from. */
  seedsConnected () {
    return this.torrent.wires.filter(w => this.pieceCount > 0 && this.piecesOf(w) === this.pieceCount).length
  }

  /** Whether any connected peer has at least one piece. */
  peersHaveAny () {
    return this.torrent.wires.some(w => this.piecesOf(w) > 0)
  }

  readPiece (index) {
    return new Promise((resolve, reject) =>
      this.torrent.store.get(index, (err, buf) => (err ? reject(err) : resolve(buf))))
  }

  /**
   * Seeds `bytes` (the whole, verified segment): stores every piece, marks
   * them as ours and tells connected peers, so they can fetch from us.
   */
  async seed (bytes) {
    const missing = this.missingPieces()
    if (missing.length === 0) return
    // load() takes a list of chunk sources; one source yielding the segment.
    this.loading = true
    try {
      await new Promise((resolve, reject) => this.torrent.load([[bytes]], err => (err ? reject(err) : resolve())))
    } finally {
      this.loading = false
    }
    for (const wire of this.torrent.wires) {
      for (const index of missing) wire.have(index)
    }
    this.onHave(missing)
  }

  /** Closes the connections to `peerId`. */
  dropPeer (peerId) {
    for (const wire of this.torrent.wires) if (wire.peerId === peerId) wire.destroy()
  }

  destroy () {
    this.torrent.destroy({ destroyStore: true })
  }
}

export class SegmentSwarms {
  constructor ({ iceServers, maxTorrents, maxOffersPerAnnounce, meshLinks, stats }) {
    const tracker = iceServers ? { rtcConfig: { iceServers } } : {}
    this.client = new WebTorrent({ dht: false, lsd: false, utp: false, webSeeds: false, tracker })
    this.client.on('error', err => console.warn('live-torrent: WebTorrent error', err))
    this.client.on('upload', bytes => stats.uploaded(bytes))
    this.maxTorrents = maxTorrents
    this.maxOffersPerAnnounce = maxOffersPerAnnounce
    this.meshLinks = meshLinks
    this.stats = stats
    /** segment key (URL, plus #bytes=first-last for a range) -> SegmentTorrent, in the order listed. */
    this.segments = new Map()
    /**
     * Ids of peers that sent a piece failing its check. WebTorrent would ask
     * them again and again; we close their connections, in every segment.
     */
    this.bannedPeers = new Set()
    /** Peer id -> failed pieces it shared a part of with other senders. */
    this.strikes = new Map()
    /** Stream key (stream-mesh.js streamOf) -> StreamMesh. */
    this.meshes = new Map()
    /** Info-hash -> the segment held for it. */
    this.byInfoHash = new Map()
  }

  /** The mesh of the stream `magnet` belongs to (made on first use), or null. */
  meshFor (magnet, playlistUrl) {
    const stream = streamOf(magnet, playlistUrl)
    if (!stream) return null
    if (!this.meshes.has(stream.key)) {
      this.meshes.set(stream.key, new StreamMesh({
        client: this.client,
        stream,
        segmentFor: infoHash => this.byInfoHash.get(infoHash) || null,
        segments: () => [...this.segments.values()].filter(s => s.mesh === this.meshes.get(stream.key)),
        refuse: peerId => this.bannedPeers.has(peerId),
        wantedLinks: this.meshLinks,
        onLinkOpen: () => this.moveIntoMesh(this.meshes.get(stream.key)),
        onUploaded: bytes => this.stats.uploaded(bytes)
      }))
    }
    return this.meshes.get(stream.key)
  }

  /**
   * A piece failed its check. Its only sender is dropped at once; when
   * several peers sent blocks of it, each is dropped at its second such piece,
   * so an honest peer is not punished for another's garbage.
   */
  pieceFailed (senders) {
    this.stats.pieceRejected()
    for (const wire of senders) {
      const strikes = (this.strikes.get(wire.peerId) || 0) + 1
      this.strikes.set(wire.peerId, strikes)
      if (senders.length === 1 || strikes >= 2) this.ban(wire.peerId)
    }
  }

  /** Closes every connection to `peerId`, now and in future segments. */
  ban (peerId) {
    if (!peerId || this.bannedPeers.has(peerId)) return
    this.bannedPeers.add(peerId)
    console.warn('live-torrent: dropping a peer that sent corrupt data', peerId)
    for (const segment of this.segments.values()) segment.dropPeer?.(peerId)
    for (const mesh of this.meshes.values()) mesh.drop(peerId)
  }

  get (key) {
    return this.segments.get(key) || null
  }

  /**
   * Joins every listed segment not joined yet and returns the new ones: over
   * the stream's mesh if it has a link, else as a WebTorrent torrent in the
   * segment's swarm (metadata from the magnet's xs= .torrent, checked
   * against its info-hash, either way). `playlistUrl`: the playlist that
   * listed them.
   */
  join (listed, { playlistUrl = null } = {}) {
    const joined = []
    for (const { key: listedKey, url, magnet, range = null } of listed) {
      const key = listedKey || url
      if (this.segments.has(key)) continue
      const mesh = this.meshFor(magnet, playlistUrl)
      let segment
      try {
        segment = mesh && !announcesSegment({ meshLinks: mesh.linkCount })
          ? this.meshSegment(key, url, magnet, range, mesh)
          : this.segmentTorrent(key, url, magnet, range, mesh)
      } catch (err) {
        console.warn('live-torrent: cannot join', url, err)
        continue
      }
      this.segments.set(key, segment)
      this.byInfoHash.set(segment.infoHash, segment)
      joined.push(segment)
    }
    this.evict()
    return joined
  }

  meshSegment (key, url, magnet, range, mesh, listed = performance.now()) {
    const segment = new MeshSegment({ key, url, magnet, range, mesh, onBadPiece: (index, senders) => this.pieceFailed(senders) })
    segment.timeline.listed = listed
    return segment
  }

  segmentTorrent (key, url, magnet, range, mesh) {
    const torrent = this.client.add(magnet, {
      store: MemoryChunkStore,
      storeCacheSlots: 0,
      destroyStoreOnDestroy: true,
      getAnnounceOpts: () => ({
        numwant: segmentOffers({ meshLinks: mesh?.linkCount ?? 0, connectedPeers: this.peerCount(), max: this.maxOffersPerAnnounce })
      })
    })
    torrent.on('error', err => console.warn('live-torrent: torrent error', url, err))
    torrent.on('wire', wire => {
      const refuse = () => { if (this.bannedPeers.has(wire.peerId)) wire.destroy() }
      if (wire.peerId) refuse()
      else wire.once('handshake', refuse)
    })
    const segment = new SegmentTorrent({
      key,
      url,
      magnet,
      range,
      torrent,
      onBadPiece: (index, senders) => this.pieceFailed(senders),
      onHave: pieces => mesh?.announceHave(segment.infoHash, pieces)
    })
    segment.mesh = mesh
    return segment
  }

  /**
   * A link of `mesh` opened: its segment torrents that hold nothing and are
   * not being delivered become mesh segments, so they can come from the
   * viewers the link reaches (whose own copies, joined over the mesh, are
   * in no segment swarm).
   */
  moveIntoMesh (mesh) {
    for (const [key, segment] of this.segments) {
      if (!(segment instanceof SegmentTorrent) || segment.mesh !== mesh) continue
      if (segment.delivery || segment.httpFetch || segment.destroyed) continue
      if (segment.hasMetadata && segment.heldPieces().length > 0) continue
      const moved = this.meshSegment(key, segment.url, segment.magnet, segment.range, mesh, segment.timeline.listed)
      segment.destroy()
      this.segments.set(key, moved)
      this.byInfoHash.set(moved.infoHash, moved)
    }
  }

  /** Drops the oldest segments beyond the window, unless being delivered. */
  evict () {
    for (const [key, segment] of this.segments) {
      if (this.segments.size <= this.maxTorrents) break
      if (segment.delivery && !segment.delivered) continue
      this.segments.delete(key)
      if (this.byInfoHash.get(segment.infoHash) === segment) this.byInfoHash.delete(segment.infoHash)
      segment.destroy()
    }
  }

  get peerId () {
    return this.client.peerId
  }

  /** Ids of the distinct peers connected: over segment torrents and in the stream meshes. */
  peerIds () {
    const ids = new Set()
    for (const segment of this.segments.values()) {
      for (const wire of segment.torrent?.wires ?? []) if (wire.peerId) ids.add(wire.peerId)
    }
    for (const mesh of this.meshes.values()) for (const id of mesh.links.keys()) ids.add(id)
    return [...ids]
  }

  peerCount () {
    return this.peerIds().length
  }

  /** Links in the stream meshes now. */
  meshLinkCount () {
    let links = 0
    for (const mesh of this.meshes.values()) links += mesh.linkCount
    return links
  }

  destroy () {
    for (const mesh of this.meshes.values()) mesh.destroy()
    this.meshes.clear()
    for (const segment of this.segments.values()) if (segment instanceof MeshSegment) segment.destroy()
    this.client.destroy()
    this.segments.clear()
    this.byInfoHash.clear()
  }
}

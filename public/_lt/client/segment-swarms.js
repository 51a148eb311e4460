// One WebTorrent torrent per media segment, joined as soon as a playlist
// lists the segment and kept (seeding) until it falls out of a bounded window.
import WebTorrent from '../vendor/webtorrent.min.js'
import MemoryChunkStore from './memory-chunk-store.js'

function infoHashOf (magnet) {
  const xt = new URLSearchParams(magnet.slice(magnet.indexOf('?') + 1)).get('xt') || ''
  const hash = xt.replace(/^urn:btih:/i, '').toLowerCase()
  if (!/^[0-9a-f]{40}$/.test(hash)) throw new Error(`magnet without a hex info-hash: ${magnet.slice(0, 80)}`)
  return hash
}

function toHex (bytes) {
  return Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('')
}

/** A segment's torrent: what we have of it, and how to read and complete it. */
export class SegmentTorrent {
  constructor (url, magnet, torrent) {
    this.url = url
    this.magnet = magnet
    this.infoHash = infoHashOf(magnet)
    this.torrent = torrent
    this.listedAt = performance.now()
    this.p2pBytes = 0
    /** A delivery to the player in progress or done (set by SegmentDelivery). */
    this.delivery = null
    /** An HTTP fetch in progress (set by SegmentDelivery). */
    this.httpFetch = null
    torrent.on('download', bytes => { this.p2pBytes += bytes })
    this.metadata = new Promise((resolve, reject) => {
      if (torrent.ready) resolve()
      torrent.once('ready', resolve)
      torrent.once('error', reject)
    })
    this.metadata.catch(() => {})
    this.complete = new Promise(resolve => {
      if (torrent.done) resolve()
      torrent.once('done', resolve)
    })
  }

  get hasMetadata () {
    return Boolean(this.torrent.ready && this.torrent.store)
  }

  get isComplete () {
    return Boolean(this.torrent.done)
  }

  get length () { return this.torrent.length }
  get pieceLength () { return this.torrent.pieceLength }
  get pieceCount () { return this.torrent.pieces.length }

  pieceRange (index) {
    const start = index * this.pieceLength
    return { start, end: Math.min(start + this.pieceLength, this.length) }
  }

  /** Expected SHA-1 of each piece, as hex. */
  pieceHashes () {
    if (Array.isArray(this.torrent._hashes)) return this.torrent._hashes
    const all = this.torrent.info.pieces
    const hashes = []
    for (let i = 0; i < all.length; i += 20) hashes.push(toHex(all.subarray(i, i + 20)))
    return hashes
  }

  hasPiece (index) {
    return this.torrent.bitfield.get(index)
  }

  missingPieces () {
    const missing = []
    for (let i = 0; i < this.pieceCount; i++) if (!this.hasPiece(i)) missing.push(i)
    return missing
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

  /** The whole segment from the store (every piece must be present). */
  async bytes () {
    const out = new Uint8Array(this.length)
    for (let i = 0; i < this.pieceCount; i++) out.set(await this.readPiece(i), this.pieceRange(i).start)
    return out
  }

  /**
   * Seeds `bytes` (the whole, verified segment): stores every piece, marks
   * them as ours and tells connected peers, so they can fetch from us.
   */
  async seed (bytes) {
    const missing = this.missingPieces()
    if (missing.length === 0) return
    // load() takes a list of chunk sources; one source yielding the segment.
    await new Promise((resolve, reject) => this.torrent.load([[bytes]], err => (err ? reject(err) : resolve())))
    for (const wire of this.torrent.wires) {
      for (const index of missing) wire.have(index)
    }
  }
}

export class SegmentSwarms {
  constructor ({ iceServers, maxTorrents, stats }) {
    const tracker = iceServers ? { rtcConfig: { iceServers } } : {}
    this.client = new WebTorrent({ dht: false, lsd: false, utp: false, webSeeds: false, tracker })
    this.client.on('error', err => console.warn('live-torrent: WebTorrent error', err))
    this.client.on('upload', bytes => stats.uploaded(bytes))
    this.maxTorrents = maxTorrents
    /** segment URL -> SegmentTorrent, in the order segments were listed. */
    this.segments = new Map()
  }

  get (url) {
    return this.segments.get(url) || null
  }

  /**
   * Joins the swarm of every listed segment not joined yet (metadata comes
   * from the magnet's xs= .torrent, checked against its info-hash) and
   * returns the new ones.
   */
  join (listed) {
    const joined = []
    for (const { url, magnet } of listed) {
      if (this.segments.has(url)) continue
      let torrent
      try {
        torrent = this.client.add(magnet, { store: MemoryChunkStore, storeCacheSlots: 0, destroyStoreOnDestroy: true })
      } catch (err) {
        console.warn('live-torrent: cannot join', url, err)
        continue
      }
      torrent.on('error', err => console.warn('live-torrent: torrent error', url, err))
      torrent.on('warning', () => {})
      const segment = new SegmentTorrent(url, magnet, torrent)
      this.segments.set(url, segment)
      joined.push(segment)
    }
    this.evict()
    return joined
  }

  /** Drops the oldest segments beyond the window, unless being delivered. */
  evict () {
    for (const [url, segment] of this.segments) {
      if (this.segments.size <= this.maxTorrents) break
      if (segment.delivery && !segment.delivered) continue
      this.segments.delete(url)
      segment.torrent.destroy({ destroyStore: true })
    }
  }

  get peerId () {
    return this.client.peerId
  }

  /** Ids of the distinct peers connected over all segment torrents. */
  peerIds () {
    const ids = new Set()
    for (const segment of this.segments.values()) {
      for (const wire of segment.torrent.wires) if (wire.peerId) ids.add(wire.peerId)
    }
    return [...ids]
  }

  peerCount () {
    return this.peerIds().length
  }

  destroy () {
    this.client.destroy()
    this.segments.clear()
  }
}

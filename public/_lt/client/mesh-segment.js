// A segment exchanged over a stream's mesh links (mesh-link.js), without a
// WebTorrent torrent: its metadata is the magnet's xs= .torrent, checked
// against the info-hash; its pieces come whole from one peer each and are
// checked against the .torrent's piece hashes before they are kept, shared
// or played. A WebTorrent torrent per segment, kept for the window of 24
// segments, was the whole of a viewer's memory growth between minute 1 and
// minute 10 (docs/performance.md part 4); this holds the pieces and little
// else. It has SegmentTorrent's interface (segment-swarms.js), so delivery
// and the HTTP fallback treat both alike.
import bencode from '../vendor/bencode.js'
import { sha1Hex } from './http-fallback.js'
import { Segment, pieceHashesOf } from './segment.js'

/** A piece request that brings no byte for this long goes to another peer. */
const REQUEST_IDLE_MS = 4000
/** Pieces asked of one peer at once, over all segments. */
const MAX_REQUESTS_PER_LINK = 8
const METADATA_TIMEOUT_MS = 10000

/** The xs= (.torrent URL) of a magnet, or null. */
export function torrentUrlOf (magnet) {
  return new URLSearchParams(magnet.slice(magnet.indexOf('?') + 1)).get('xs')
}

/**
 * The metadata of a segment from its .torrent bytes: { length, pieceLength,
 * pieceHashes (hex) }. Throws unless the info dictionary hashes to
 * `infoHash` and its pieces cover its length.
 */
export async function parseSegmentTorrent (bytes, infoHash) {
  const torrent = bencode.decode(bytes)
  const info = torrent?.info
  if (!info || typeof info !== 'object') throw new Error('a .torrent without an info dictionary')
  if ((await sha1Hex(bencode.encode(info))) !== infoHash) throw new Error('the .torrent does not match the info-hash')
  const length = info.length
  const pieceLength = info['piece length']
  const pieces = info.pieces
  if (!Number.isSafeInteger(length) || length <= 0 || !Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
    throw new Error('a .torrent without a length and a piece length')
  }
  if (!(pieces instanceof Uint8Array) || pieces.length !== 20 * Math.ceil(length / pieceLength)) {
    throw new Error('a .torrent whose pieces do not cover its length')
  }
  return { length, pieceLength, pieceHashes: pieceHashesOf(pieces) }
}

export class MeshSegment extends Segment {
  /**
   * `mesh`: the StreamMesh whose links it is exchanged over; `onBadPiece(index,
   * senders)`: a piece from a peer failed its check (senders: [{ peerId }]).
   */
  constructor ({ key, url, magnet, range = null, mesh, onBadPiece = () => {} }) {
    super({ key, url, magnet, range })
    this.mesh = mesh
    this.onBadPiece = onBadPiece
    this.destroyed = false
    this.info = null
    /** Piece index -> its verified bytes. */
    this.pieces = []
    this.held = 0
    /** Piece index -> { link, buffer, received, timer }: asked of a peer and awaited. */
    this.inflight = new Map()
    /** Pieces that arrived whole and are being checked. */
    this.verifying = new Set()
    /** Piece index -> ids of peers a request for it failed with (asked again only if nobody else has it). */
    this.failedFrom = new Map()
    this.abort = new AbortController()
    this.metadata = this.fetchMetadata()
    this.metadata.then(() => {
      this.timeline.metadata = performance.now()
      this.schedule()
    }, err => {
      if (!this.destroyed) console.warn('live-torrent: no metadata for', url, err.message)
    })
    this.complete = new Promise(resolve => { this.resolveComplete = resolve })
    this.complete.then(() => { this.timeline.complete = performance.now() })
    this.noticePeers()
  }

  async fetchMetadata () {
    const torrentUrl = torrentUrlOf(this.magnet)
    if (!torrentUrl) throw new Error('a magnet without xs=')
    const timer = setTimeout(() => this.abort.abort(), METADATA_TIMEOUT_MS)
    try {
      const response = await fetch(torrentUrl, { signal: this.abort.signal })
      if (!response.ok) throw new Error(`HTTP ${response.status} for the .torrent`)
      this.info = await parseSegmentTorrent(new Uint8Array(await response.arrayBuffer()), this.infoHash)
    } finally {
      clearTimeout(timer)
    }
  }

  get hasMetadata () { return this.info !== null && !this.destroyed }
  get isComplete () { return this.info !== null && this.held === this.pieceCount }
  get length () { return this.info.length }
  get pieceLength () { return this.info.pieceLength }
  get pieceCount () { return this.info.pieceHashes.length }

  pieceHashes () { return this.info.pieceHashes }

  hasPiece (index) { return Boolean(this.pieces[index]) }

  /** The mesh links whose peers have told us of pieces of this segment. */
  linksWithPieces () {
    return this.mesh.openLinks().filter(link => link.piecesOf(this.infoHash).size > 0)
  }

  /** Peers that have every piece (indexes a peer names beyond the last piece do not count). */
  seedsConnected () {
    if (!this.hasMetadata) return 0
    const whole = link => {
      let count = 0
      for (const index of link.piecesOf(this.infoHash)) if (index < this.pieceCount) count++
      return count === this.pieceCount
    }
    return this.mesh.openLinks().filter(whole).length
  }

  peersHaveAny () {
    return this.linksWithPieces().length > 0
  }

  get peerCount () {
    return this.mesh.openLinks().length
  }

  /** A peer told us of pieces of this segment (or we joined it). */
  noticePeers () {
    if (this.timeline.firstPeer === null && this.peersHaveAny()) this.timeline.firstPeer = performance.now()
    this.schedule()
  }

  async readPiece (index) {
    const piece = this.pieces[index]
    if (!piece) throw new Error(`piece ${index} is not held`)
    return piece
  }

  /** Keeps `bytes` (the whole, verified segment) and tells the mesh. */
  async seed (bytes) {
    const added = []
    for (const index of this.missingPieces()) {
      const { start, end } = this.pieceRange(index)
      this.keep(index, bytes.subarray(start, end))
      added.push(index)
    }
    if (added.length) this.mesh.announceHave(this.infoHash, added)
  }

  keep (index, piece) {
    if (this.pieces[index] || this.destroyed) return false
    this.pieces[index] = piece
    this.held += 1
    const request = this.inflight.get(index)
    if (request) this.dropRequest(index, { cancel: true })
    if (this.isComplete) {
      for (const pending of [...this.inflight.keys()]) this.dropRequest(pending, { cancel: true })
      this.resolveComplete()
      this.mesh.scheduleSegments()
    }
    return true
  }

  /** Asks peers for the missing pieces, each of the peer least busy among those that have it. */
  schedule () {
    if (!this.hasMetadata || this.isComplete) return
    const links = this.mesh.openLinks()
    if (links.length === 0) return
    const wanted = this.missingPieces().filter(index => !this.inflight.has(index) && !this.verifying.has(index))
    // Rarest first, at random among equals: viewers fetching from the same
    // seed spread over its pieces and can trade them among themselves.
    const rarity = index => links.filter(link => link.piecesOf(this.infoHash).has(index)).length
    const order = wanted.map(index => ({ index, rarity: rarity(index), tie: Math.random() }))
      .filter(entry => entry.rarity > 0)
      .sort((a, b) => a.rarity - b.rarity || a.tie - b.tie)
    for (const { index } of order) {
      const holders = links.filter(link => link.piecesOf(this.infoHash).has(index) && link.requested.size < MAX_REQUESTS_PER_LINK)
      const failed = this.failedFrom.get(index)
      const fresh = holders.filter(link => !failed?.has(link.remoteId))
      const candidates = fresh.length ? fresh : holders
      if (candidates.length === 0) continue
      const link = candidates.reduce((best, l) => (l.requested.size < best.requested.size ? l : best))
      if (!link.request(this.infoHash, index)) continue
      const { start, end } = this.pieceRange(index)
      const request = { link, buffer: new Uint8Array(end - start), received: 0, timer: null }
      this.inflight.set(index, request)
      this.armTimer(index, request)
    }
  }

  armTimer (index, request) {
    clearTimeout(request.timer)
    request.timer = setTimeout(() => this.requestFailed(index, request.link), REQUEST_IDLE_MS)
  }

  /** Forgets the request for `index` (telling its peer, with `cancel`). */
  dropRequest (index, { cancel }) {
    const request = this.inflight.get(index)
    if (!request) return null
    clearTimeout(request.timer)
    this.inflight.delete(index)
    if (cancel) request.link.cancel(this.infoHash, index)
    else request.link.settled(this.infoHash, index)
    return request
  }

  /** The request for `index` went nowhere (idle, rejected, link lost): ask someone else. */
  requestFailed (index, link) {
    const request = this.inflight.get(index)
    if (!request || request.link !== link) return
    this.dropRequest(index, { cancel: true })
    if (!this.failedFrom.has(index)) this.failedFrom.set(index, new Set())
    this.failedFrom.get(index).add(link.remoteId)
    this.mesh.scheduleSegments()
  }

  /** Every request to `link` fails (its link closed). */
  linkClosed (link) {
    for (const [index, request] of [...this.inflight]) if (request.link === link) this.requestFailed(index, link)
  }

  /** A chunk of a piece from `link`. */
  onChunk (link, index, offset, bytes) {
    const request = this.inflight.get(index)
    if (!request || request.link !== link) return // cancelled, or never asked of this peer
    if (offset !== request.received || offset + bytes.length > request.buffer.length) {
      // Out of order or past the piece's end on an ordered channel: the
      // peer is not following the protocol. As for a piece that fails its check.
      this.dropRequest(index, { cancel: true })
      this.onBadPiece(index, [{ peerId: link.remoteId }])
      return this.mesh.scheduleSegments()
    }
    request.buffer.set(bytes, offset)
    request.received += bytes.length
    if (request.received < request.buffer.length) return this.armTimer(index, request)
    this.dropRequest(index, { cancel: false })
    this.verifying.add(index)
    this.verify(index, request.buffer, link)
      .catch(err => console.warn('live-torrent: piece check failed', err))
      .finally(() => {
        this.verifying.delete(index)
        this.mesh.scheduleSegments()
      })
  }

  async verify (index, piece, link) {
    const good = (await sha1Hex(piece)) === this.info.pieceHashes[index]
    if (this.destroyed) return
    if (!good) return this.onBadPiece(index, [{ peerId: link.remoteId }])
    if (this.keep(index, piece)) {
      this.p2pBytes += piece.length
      this.mesh.announceHave(this.infoHash, [index])
    }
  }

  destroy () {
    if (this.destroyed) return
    this.destroyed = true
    this.abort.abort()
    for (const index of [...this.inflight.keys()]) this.dropRequest(index, { cancel: true })
    this.pieces = []
  }
}

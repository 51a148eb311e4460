// What every segment the client holds has, however its pieces travel: where
// its bytes lie, its timeline, its counters, and which of its pieces it
// holds. A subclass (segment-swarms.js SegmentTorrent, mesh-segment.js
// MeshSegment) gives length, pieceLength, pieceCount, hasPiece(index) and
// readPiece(index).

export function toHex (bytes) {
  let hex = ''
  for (const b of bytes) hex += b.toString(16).padStart(2, '0')
  return hex
}

/** A .torrent's `pieces` (20-byte SHA-1s, one after another) as hex, one per piece. */
export function pieceHashesOf (pieces) {
  const hashes = []
  for (let at = 0; at < pieces.length; at += 20) hashes.push(toHex(pieces.subarray(at, at + 20)))
  return hashes
}

/** The hex info-hash of a magnet's xt=, or throws. */
export function infoHashOf (magnet) {
  const xt = new URLSearchParams(magnet.slice(magnet.indexOf('?') + 1)).get('xt') || ''
  const hash = xt.replace(/^urn:btih:/i, '').toLowerCase()
  if (!/^[0-9a-f]{40}$/.test(hash)) throw new Error(`magnet without a hex info-hash: ${magnet.slice(0, 80)}`)
  return hash
}

export class Segment {
  /** `key`: the URL, plus #bytes=first-last for a range; `range`: { first, last } of a byte-range segment. */
  constructor ({ key, url, magnet, range = null }) {
    this.key = key
    this.url = url
    this.range = range
    /**
     * Where the segment's bytes lie in the resource at `url`: [offset,
     * rangeEnd) for an EXT-X-BYTERANGE segment, else the whole resource.
     */
    this.offset = range ? range.first : 0
    this.rangeEnd = range ? range.last + 1 : undefined
    this.magnet = magnet
    this.infoHash = infoHashOf(magnet)
    /**
     * When (performance.now()) this segment was listed by a playlist, its
     * metadata arrived, its first peer connected (or said it holds a piece)
     * and it was complete; null until it happened. Reported with the segment
     * event, to see where a segment's time goes.
     */
    this.timeline = { listed: performance.now(), metadata: null, firstPeer: null, complete: null }
    /** Bytes of pieces that came from peers and passed their SHA-1 check. */
    this.p2pBytes = 0
    /** A delivery to the player in progress or done (set by SegmentDelivery). */
    this.delivery = null
    /** An HTTP fetch in progress (set by SegmentDelivery). */
    this.httpFetch = null
    /** Whether this viewer, designated to fetch the segment first, fetched it over HTTP (set by SegmentDelivery). */
    this.fetchedFirst = false
  }

  /** The timeline as milliseconds since the segment was listed (null: not yet). */
  timelineMs () {
    const since = at => (at === null ? null : Math.round(at - this.timeline.listed))
    return { metadataMs: since(this.timeline.metadata), firstPeerMs: since(this.timeline.firstPeer), completeMs: since(this.timeline.complete) }
  }

  pieceRange (index) {
    const start = index * this.pieceLength
    return { start, end: Math.min(start + this.pieceLength, this.length) }
  }

  /** Indexes of the pieces held. */
  heldPieces () {
    const held = []
    for (let i = 0; i < this.pieceCount; i++) if (this.hasPiece(i)) held.push(i)
    return held
  }

  missingPieces () {
    const missing = []
    for (let i = 0; i < this.pieceCount; i++) if (!this.hasPiece(i)) missing.push(i)
    return missing
  }

  /** The whole segment (every piece must be held). */
  async bytes () {
    const out = new Uint8Array(this.length)
    for (let i = 0; i < this.pieceCount; i++) out.set(await this.readPiece(i), this.pieceRange(i).start)
    return out
  }
}

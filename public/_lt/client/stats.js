// Counters and events of the page client: what `window.liveTorrent.stats()`
// returns and the `segment` event fired for every segment handed to the player.

export class ClientStats extends EventTarget {
  constructor () {
    super()
    this.p2pBytes = 0
    this.httpBytes = 0
    this.uploadedBytes = 0
    this.segments = 0
    // Pieces received from peers that failed their SHA-1 check and were
    // dropped (WebTorrent asks for them again, from peers or over HTTP).
    this.rejectedPieces = 0
  }

  /** @param {{url, infoHash, bytes, p2pBytes, httpBytes, ms, source}} detail */
  segmentDelivered (detail) {
    this.segments += 1
    this.p2pBytes += detail.p2pBytes
    this.httpBytes += detail.httpBytes
    this.dispatchEvent(new CustomEvent('segment', { detail }))
  }

  uploaded (bytes) {
    this.uploadedBytes += bytes
  }

  pieceRejected () {
    this.rejectedPieces += 1
  }

  /** `peers`: distinct peers connected now; `torrents`: segment torrents held now (the window). */
  snapshot (peers, torrents) {
    return {
      p2pBytes: this.p2pBytes,
      httpBytes: this.httpBytes,
      uploadedBytes: this.uploadedBytes,
      peers,
      torrents,
      segments: this.segments,
      rejectedPieces: this.rejectedPieces
    }
  }
}

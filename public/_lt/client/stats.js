// Counters and events of the page client: what `window.liveTorrent.stats()`
// returns and the `segment` event fired for every segment handed to the player.

export class ClientStats extends EventTarget {
  constructor () {
    super()
    this.p2pBytes = 0
    // Every segment byte the player got over HTTP that we know of: what the
    // client fetched, and (directHttpBytes, counted in it too) what the
    // player fetched without the client: before the service worker took
    // control, or when the client did not deliver a segment. The share,
    // p2pBytes / (p2pBytes + httpBytes), counts a segment we never saw as HTTP.
    this.httpBytes = 0
    this.directHttpBytes = 0
    this.uploadedBytes = 0
    this.segments = 0
    // Pieces received from peers that failed their SHA-1 check and were
    // dropped (asked again of other peers, or over HTTP).
    this.rejectedPieces = 0
  }

  /** @param {{url, infoHash, bytes, p2pBytes, httpBytes, ms, source}} detail */
  segmentDelivered (detail) {
    this.segments += 1
    this.p2pBytes += detail.p2pBytes
    this.httpBytes += detail.httpBytes
    this.dispatchEvent(new CustomEvent('segment', { detail }))
  }

  /** Segment bytes the player fetched over HTTP without the client. */
  directHttp (bytes) {
    this.directHttpBytes += bytes
    this.httpBytes += bytes
  }

  uploaded (bytes) {
    this.uploadedBytes += bytes
  }

  pieceRejected () {
    this.rejectedPieces += 1
  }

  /**
   * `peers`: distinct peers connected now; `meshLinks`: links in the stream
   * meshes now; `torrents`: segments held now (the window: torrents and
   * mesh segments).
   */
  snapshot ({ peers, meshLinks, torrents }) {
    return {
      p2pBytes: this.p2pBytes,
      httpBytes: this.httpBytes,
      directHttpBytes: this.directHttpBytes,
      uploadedBytes: this.uploadedBytes,
      peers,
      meshLinks,
      torrents,
      segments: this.segments,
      rejectedPieces: this.rejectedPieces
    }
  }
}

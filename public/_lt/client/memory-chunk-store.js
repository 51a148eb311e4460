// An in-memory chunk store (the abstract-chunk-store interface WebTorrent
// uses) for segment torrents: segments are small and short-lived, so they
// never touch disk, and removing a torrent frees its memory at once.
// WebTorrent's own MemoryChunkStore is not exported by its browser bundle.

export default class MemoryChunkStore {
  constructor (chunkLength, opts = {}) {
    this.chunkLength = Number(chunkLength)
    if (!this.chunkLength) throw new Error('a chunk length is required')
    this.length = Number(opts.length) || Infinity
    this.lastChunkIndex = Math.ceil(this.length / this.chunkLength) - 1
    this.lastChunkLength = this.length - this.lastChunkIndex * this.chunkLength
    this.chunks = []
    this.closed = false
  }

  put (index, buf, cb = () => {}) {
    if (this.closed) return queueMicrotask(() => cb(new Error('store is closed')))
    const expected = index === this.lastChunkIndex ? this.lastChunkLength : this.chunkLength
    if (buf.length !== expected) {
      return queueMicrotask(() => cb(new Error(`chunk ${index} must be ${expected} bytes, got ${buf.length}`)))
    }
    this.chunks[index] = buf
    queueMicrotask(() => cb(null))
  }

  get (index, opts, cb = () => {}) {
    if (typeof opts === 'function') return this.get(index, null, opts)
    if (this.closed) return queueMicrotask(() => cb(new Error('store is closed')))
    const buf = this.chunks[index]
    if (!buf) {
      const err = new Error('chunk not found')
      err.notFound = true
      return queueMicrotask(() => cb(err))
    }
    const offset = opts?.offset || 0
    const length = opts?.length || buf.length - offset
    queueMicrotask(() => cb(null, offset === 0 && length === buf.length ? buf : buf.subarray(offset, offset + length)))
  }

  close (cb = () => {}) {
    this.closed = true
    this.chunks = null
    queueMicrotask(() => cb(null))
  }

  destroy (cb) {
    this.close(cb)
  }
}

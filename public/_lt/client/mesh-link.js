// The segment exchange between two viewers of a stream's mesh: one data
// channel per link (not per segment), carrying binary messages.
//
//   HAVE     1 | info-hash (20) | piece indexes (u16 each)
//   REQUEST  2 | info-hash (20) | piece index (u32)
//   CANCEL   3 | info-hash (20) | piece index (u32)
//   REJECT   4 | info-hash (20) | piece index (u32)   (we do not have it)
//   PIECE    5 | info-hash (20) | piece index (u32) | offset (u32) | bytes
//
// A piece is requested whole from one peer and sent in CHUNK_BYTES chunks,
// in order (the channel is reliable and ordered). The receiver checks the
// piece against the segment's .torrent before anything uses it
// (mesh-segment.js). A message this end cannot parse closes the link: a
// peer that sends garbage loses its link, the viewer falls back to HTTP.

import { toHex } from './segment.js'

export const CHANNEL_LABEL = 'lt-mesh/1'
export const CHUNK_BYTES = 16 * 1024
const HAVE = 1
const REQUEST = 2
const CANCEL = 3
const REJECT = 4
const PIECE = 5
const HEADER_BYTES = 1 + 20 + 4
const PIECE_HEADER_BYTES = HEADER_BYTES + 4
/** Sending pauses while this much is queued in the channel, until it drains to a quarter. */
const BUFFERED_HIGH = 1024 * 1024
/** Segments whose pieces a peer has told us about, kept per link (a window of the stream). */
const MAX_REMOTE_SEGMENTS = 64
/** Pieces queued for a peer at once; a request beyond is rejected (an honest peer asks for at most 8). */
const MAX_QUEUED_UPLOADS = 64

export function hexToBytes (hex) {
  const bytes = new Uint8Array(hex.length / 2)
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return bytes
}

/** Encodes a message; `pieces` for HAVE, `index` (and `offset`, `bytes` for PIECE) otherwise. */
export function encodeMessage ({ type, infoHash, pieces = [], index = 0, offset = 0, bytes = null }) {
  const size = type === HAVE ? 21 + 2 * pieces.length : type === PIECE ? PIECE_HEADER_BYTES + bytes.length : HEADER_BYTES
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  out[0] = type
  out.set(hexToBytes(infoHash), 1)
  if (type === HAVE) {
    pieces.forEach((piece, i) => view.setUint16(21 + 2 * i, piece))
  } else {
    view.setUint32(21, index)
    if (type === PIECE) {
      view.setUint32(25, offset)
      out.set(bytes, PIECE_HEADER_BYTES)
    }
  }
  return out
}

/** Decodes a message, or throws on one that is not well formed. */
export function decodeMessage (data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const type = bytes[0]
  if (bytes.length < 21) throw new Error(`mesh message of ${bytes.length} bytes`)
  const infoHash = toHex(bytes.subarray(1, 21))
  if (type === HAVE) {
    if ((bytes.length - 21) % 2 !== 0) throw new Error('HAVE of an odd length')
    const pieces = []
    for (let at = 21; at < bytes.length; at += 2) pieces.push(view.getUint16(at))
    return { type, infoHash, pieces }
  }
  if (type === REQUEST || type === CANCEL || type === REJECT) {
    if (bytes.length !== HEADER_BYTES) throw new Error(`message ${type} of ${bytes.length} bytes`)
    return { type, infoHash, index: view.getUint32(21) }
  }
  if (type === PIECE) {
    if (bytes.length <= PIECE_HEADER_BYTES || bytes.length > PIECE_HEADER_BYTES + CHUNK_BYTES) throw new Error(`PIECE of ${bytes.length} bytes`)
    return { type, infoHash, index: view.getUint32(21), offset: view.getUint32(25), bytes: bytes.subarray(PIECE_HEADER_BYTES) }
  }
  throw new Error(`unknown mesh message type ${type}`)
}

export const MessageType = { HAVE, REQUEST, CANCEL, REJECT, PIECE }

/**
 * One end of a link's exchange channel. `handlers`: onHave(link, infoHash,
 * pieces), onRequest(link, infoHash, index), onCancel(link, infoHash,
 * index), onReject(link, infoHash, index), onPiece(link, infoHash, index,
 * offset, bytes), onOpen(link), onClose(link), onUploaded(bytes).
 */
export class MeshLink {
  constructor (remoteId, channel, handlers) {
    this.remoteId = remoteId
    this.channel = channel
    this.handlers = handlers
    this.closed = false
    /** Info-hash -> the piece indexes the peer has told us it holds. */
    this.remoteHaves = new Map()
    /** Pieces we requested from the peer and wait for: "infoHash:index". */
    this.requested = new Set()
    /** Pieces the peer asked for, in order: { infoHash, index, bytes, offset }. */
    this.uploads = []
    this.pumping = false
    channel.binaryType = 'arraybuffer'
    channel.bufferedAmountLowThreshold = BUFFERED_HIGH / 4
    channel.onmessage = event => this.onMessage(event.data)
    channel.onbufferedamountlow = () => this.pump()
    channel.onclose = () => this.close()
    channel.onerror = () => this.close()
    if (channel.readyState === 'open') queueMicrotask(() => this.handlers.onOpen(this))
    else channel.onopen = () => this.handlers.onOpen(this)
  }

  get open () {
    return !this.closed && this.channel.readyState === 'open'
  }

  onMessage (data) {
    if (this.closed) return
    let message
    try {
      if (typeof data === 'string') throw new Error('text on the mesh channel')
      message = decodeMessage(data)
    } catch (err) {
      console.warn('live-torrent: closing a mesh link that sent garbage', this.remoteId, err.message)
      return this.close()
    }
    const { type, infoHash, index } = message
    if (type === HAVE) {
      this.remember(infoHash, message.pieces)
      this.handlers.onHave(this, infoHash, message.pieces)
    } else if (type === REQUEST) {
      this.handlers.onRequest(this, infoHash, index)
    } else if (type === CANCEL) {
      this.uploads = this.uploads.filter(u => u.infoHash !== infoHash || u.index !== index)
    } else if (type === REJECT) {
      this.remoteHaves.get(infoHash)?.delete(index)
      this.handlers.onReject(this, infoHash, index)
    } else if (type === PIECE) {
      this.handlers.onPiece(this, infoHash, index, message.offset, message.bytes)
    }
  }

  remember (infoHash, pieces) {
    let have = this.remoteHaves.get(infoHash)
    if (!have) {
      have = new Set()
      this.remoteHaves.set(infoHash, have)
      if (this.remoteHaves.size > MAX_REMOTE_SEGMENTS) this.remoteHaves.delete(this.remoteHaves.keys().next().value)
    }
    for (const piece of pieces) have.add(piece)
  }

  /** The pieces of `infoHash` the peer holds (an empty set if none known). */
  piecesOf (infoHash) {
    return this.remoteHaves.get(infoHash) ?? new Set()
  }

  send (message) {
    if (!this.open) return false
    try {
      this.channel.send(encodeMessage(message))
      return true
    } catch (err) {
      this.close()
      return false
    }
  }

  sendHave (infoHash, pieces) {
    // A HAVE names at most 65,535 bytes' worth of indexes: split long lists.
    for (let at = 0; at < pieces.length; at += 16000) this.send({ type: HAVE, infoHash, pieces: pieces.slice(at, at + 16000) })
  }

  request (infoHash, index) {
    this.requested.add(`${infoHash}:${index}`)
    return this.send({ type: REQUEST, infoHash, index })
  }

  cancel (infoHash, index) {
    if (this.requested.delete(`${infoHash}:${index}`)) this.send({ type: CANCEL, infoHash, index })
  }

  /** The piece arrived whole (or we gave up on it). */
  settled (infoHash, index) {
    this.requested.delete(`${infoHash}:${index}`)
  }

  reject (infoHash, index) {
    this.send({ type: REJECT, infoHash, index })
  }

  /** Queues a piece the peer asked for; it goes out in chunks as the channel drains. */
  upload (infoHash, index, bytes) {
    if (this.uploads.length >= MAX_QUEUED_UPLOADS) return this.reject(infoHash, index)
    this.uploads.push({ infoHash, index, bytes, offset: 0 })
    this.pump()
  }

  pump () {
    if (this.pumping) return
    this.pumping = true
    try {
      while (this.open && this.uploads.length > 0 && this.channel.bufferedAmount < BUFFERED_HIGH) {
        const upload = this.uploads[0]
        const chunk = upload.bytes.subarray(upload.offset, upload.offset + CHUNK_BYTES)
        if (!this.send({ type: PIECE, infoHash: upload.infoHash, index: upload.index, offset: upload.offset, bytes: chunk })) break
        this.handlers.onUploaded(chunk.length)
        upload.offset += chunk.length
        if (upload.offset >= upload.bytes.length) this.uploads.shift()
      }
    } finally {
      this.pumping = false
    }
  }

  close () {
    if (this.closed) return
    this.closed = true
    this.uploads = []
    this.channel.onmessage = null
    this.channel.onbufferedamountlow = null
    try { this.channel.close() } catch (err) {}
    this.handlers.onClose(this)
  }
}

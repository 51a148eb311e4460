// One RTCDataChannel as the duplex stream WebTorrent takes for a WebRTC peer
// (what simple-peer gives it: `id`, `connected`, a 'connect' event, bytes in
// and out, destroy()), so a segment's torrent can run its wire over a channel
// of a connection that already exists (stream-mesh.js).
import streamx from '../vendor/streamx.js'

const { Duplex } = streamx

/**
 * Past this many bytes queued in the channel a write waits for it to drain
 * (simple-peer's threshold), so a fast sender does not pile up memory.
 */
const MAX_BUFFERED_BYTES = 64 * 1024

export class DataChannelConnection extends Duplex {
  /**
   * `id` names the connection among a torrent's peers; `early`: messages the
   * channel received before it was wrapped, read first.
   */
  constructor (channel, id, early = []) {
    super()
    this.id = id
    this.channel = channel
    this.connected = channel.readyState === 'open'
    this.waitingWrite = null
    channel.binaryType = 'arraybuffer'
    channel.bufferedAmountLowThreshold = MAX_BUFFERED_BYTES
    channel.onopen = () => {
      this.connected = true
      this.emit('connect')
    }
    channel.onmessage = event => {
      if (event.data instanceof ArrayBuffer) this.push(new Uint8Array(event.data))
    }
    channel.onbufferedamountlow = () => this.releaseWrite(null)
    channel.onclose = () => {
      this.releaseWrite(new Error('data channel closed'))
      this.destroy()
    }
    channel.onerror = event => this.destroy(event.error || new Error('data channel error'))
    for (const data of early) if (data instanceof ArrayBuffer) this.push(new Uint8Array(data))
  }

  releaseWrite (err) {
    const callback = this.waitingWrite
    this.waitingWrite = null
    callback?.(err)
  }

  _write (data, callback) {
    if (this.channel.readyState !== 'open') return callback(new Error('data channel not open'))
    try {
      this.channel.send(data)
    } catch (err) {
      return callback(err)
    }
    if (this.channel.bufferedAmount > MAX_BUFFERED_BYTES) this.waitingWrite = callback
    else callback(null)
  }

  _destroy (callback) {
    this.connected = false
    this.channel.onmessage = null
    this.channel.onopen = null
    this.releaseWrite(new Error('connection destroyed'))
    try {
      this.channel.close()
    } catch {}
    callback(null)
  }
}

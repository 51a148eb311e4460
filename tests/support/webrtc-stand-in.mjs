// A stand-in for WebRTC in Node, just enough for the npm `bittorrent-tracker`
// client (through @thaunknown/simple-peer) to make offers and answers and
// send them to a tracker. Node has no WebRTC, and the native module the
// package would use (node-datachannel, via webrtc-polyfill) is not installed.
//
// A tracker relays offers and answers opaquely, so what matters here is that
// they are shaped like a browser's (an object with `type` and an SDP text) and
// that each one is unique, so a test can tell whose offer arrived where. No
// connection is ever made: ICE gathering "completes" at once with no
// candidate and the data channel never opens. Real WebRTC between two
// browsers through the tracker is the browser end-to-end test's job.
//
// simple-peer 10's lite build ignores the client's `wrtc` option and imports
// `webrtc-polyfill` directly, so tests/support/tracker-client.mjs
// (loadTrackerClient) redirects that import to this module.
import crypto from 'node:crypto'

/** Every stand-in connection made so far, oldest first (tests inspect them). */
export const connections = []

function token (bytes) {
  return crypto.randomBytes(bytes).toString('hex')
}

/** An SDP text shaped like a browser's data-channel-only offer or answer. */
function standInSdp (type) {
  const fingerprint = crypto.randomBytes(32).toString('hex').toUpperCase().match(/../g).join(':')
  return [
    'v=0',
    `o=- ${BigInt('0x' + token(7))} 2 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    'a=msid-semantic: WMS',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    'c=IN IP4 0.0.0.0',
    `a=ice-ufrag:${token(2)}`,
    `a=ice-pwd:${token(12)}`,
    `a=fingerprint:sha-256 ${fingerprint}`,
    `a=setup:${type === 'offer' ? 'actpass' : 'active'}`,
    'a=mid:0',
    'a=sctp-port:5000',
    'a=max-message-size:262144',
    ''
  ].join('\r\n')
}

class StandInDataChannel {
  constructor (label) {
    this.label = label
    this.readyState = 'connecting'
    this.binaryType = 'blob'
    this.bufferedAmount = 0
    this.bufferedAmountLowThreshold = 0
    this.onmessage = this.onopen = this.onclose = this.onerror = this.onbufferedamountlow = null
  }

  send () {
    throw new Error('stand-in data channel: never open')
  }

  close () {
    this.readyState = 'closed'
  }
}

export class RTCSessionDescription {
  constructor ({ type, sdp } = {}) {
    this.type = type
    this.sdp = sdp
  }
}

export class RTCIceCandidate {
  constructor ({ candidate = '', sdpMid = null, sdpMLineIndex = null } = {}) {
    this.candidate = candidate
    this.sdpMid = sdpMid
    this.sdpMLineIndex = sdpMLineIndex
    this.address = null
  }
}

export class RTCPeerConnection {
  constructor (config) {
    this.config = config
    this.localDescription = null
    this.remoteDescription = null
    this.signalingState = 'stable'
    this.iceGatheringState = 'new'
    this.iceConnectionState = 'new'
    this.connectionState = 'new'
    this.closed = false
    this.oniceconnectionstatechange = this.onicegatheringstatechange = null
    this.onconnectionstatechange = this.onsignalingstatechange = null
    this.onicecandidate = this.ondatachannel = this.ontrack = null
    connections.push(this)
  }

  createDataChannel (label) {
    return new StandInDataChannel(label)
  }

  async createOffer () {
    return { type: 'offer', sdp: standInSdp('offer') }
  }

  async createAnswer () {
    if (this.remoteDescription?.type !== 'offer') throw new Error('stand-in: createAnswer without a remote offer')
    return { type: 'answer', sdp: standInSdp('answer') }
  }

  async setLocalDescription (description) {
    this.localDescription = new RTCSessionDescription(description)
    this.signalingState = description.type === 'offer' ? 'have-local-offer' : 'stable'
    // Gathering "completes" with no candidate: the end-of-candidates event
    // is what lets simple-peer (trickle off) emit its offer or answer.
    setTimeout(() => {
      if (this.closed) return
      this.iceGatheringState = 'complete'
      this.onicecandidate?.({ candidate: null })
    }, 0)
  }

  async setRemoteDescription (description) {
    if (typeof description?.sdp !== 'string' || !description.sdp.startsWith('v=0')) {
      throw new Error('stand-in: remote description has no SDP')
    }
    this.remoteDescription = new RTCSessionDescription(description)
    this.signalingState = description.type === 'offer' ? 'have-remote-offer' : 'stable'
  }

  async addIceCandidate () {}

  async getStats () {
    return new Map()
  }

  close () {
    this.closed = true
    this.signalingState = 'closed'
  }
}

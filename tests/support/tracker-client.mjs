/**
 * Helpers for the built-in tracker's tests (docs/tracker.md): raw WebSocket
 * peers speaking the JSON protocol, the npm `bittorrent-tracker` client with a
 * WebRTC stand-in, and what the worker says about a stream (tracker URL,
 * issued info-hashes, counters). Loopback only; every wait is bounded.
 *
 *   binaryId(hex) / hexOf(binary) / randomHex()   20-byte ids as the protocol carries them
 *   connectRaw(url)              a RawPeer: send JSON, await the next matching message or the close
 *   upgradeStatus(url)           HTTP status of a WebSocket upgrade (101 when accepted)
 *   issuedSwarms(worker, path)   tracker URL, stream id and info-hashes from an annotated playlist
 *   trackerStats(worker, stream) the object's counters (BENCH_ENDPOINTS=true)
 *   loadTrackerClient()          bittorrent-tracker's Client, importable without native WebRTC
 *   startClient(...)             one Client on one tracker URL, recording what it sees
 */
import { register } from 'node:module'
import crypto from 'node:crypto'
import WebSocket from 'ws'

import { eventually, fetchText, sleep } from './harness.mjs'
import { magnetsOf, uriLines } from './torrents.mjs'

const DEFAULT_WAIT_MS = 5_000

// ---------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------

/** 20 "binary string" characters (one per byte, U+0000..U+00FF) from 40 hex digits. */
export function binaryId (hex) {
  if (!/^[0-9a-f]{40}$/i.test(hex)) throw new Error(`binaryId: want 40 hex digits, got ${JSON.stringify(hex)}`)
  return Buffer.from(hex, 'hex').toString('latin1')
}

/** The 40 hex digits of a 20-character binary string. */
export function hexOf (binary) {
  return Buffer.from(binary, 'latin1').toString('hex')
}

export function randomHex (bytes = 20) {
  return crypto.randomBytes(bytes).toString('hex')
}

export function randomBinaryId () {
  return binaryId(randomHex())
}

/** A peer id in WebTorrent's style (`-WW0208-` and 12 random characters' worth), as binary. */
export function webtorrentStylePeerId () {
  return binaryId(Buffer.from('-WW0208-').toString('hex') + randomHex(12))
}

// ---------------------------------------------------------------------------
// Raw peers
// ---------------------------------------------------------------------------

/** Matches the tracker's reply to an announce or a failure for `infoHash` (not a relayed offer/answer). */
export const replyFor = infoHash => m =>
  m.info_hash === infoHash && ('failure reason' in m || 'interval' in m)

export const isFailure = m => typeof m['failure reason'] === 'string'
export const isOffer = m => m.action === 'announce' && 'offer' in m
export const isAnswer = m => m.action === 'announce' && 'answer' in m
export const isScrape = m => m.action === 'scrape' && 'files' in m

/**
 * One WebSocket to the tracker. Every text frame received is parsed and
 * queued (a frame that is not JSON is queued as `{ unparsed: text }`; a
 * binary one as `{ binary: Buffer }`); `next` takes the first queued message
 * that matches. The close is recorded the moment it happens (`closeInfo`).
 */
export class RawPeer {
  constructor (socket, label) {
    this.socket = socket
    this.label = label
    this.inbox = []
    this.received = [] // everything, never spliced (for "nothing arrived" checks)
    this.closeInfo = null
    this._wake = []
    this.closed = new Promise(resolve => {
      socket.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() }
        this._notify()
        resolve(this.closeInfo)
      })
    })
    socket.on('error', error => { this.error = error })
    socket.on('message', (data, isBinary) => {
      let message
      if (isBinary) message = { binary: Buffer.from(data) }
      else {
        const text = data.toString()
        try {
          message = JSON.parse(text)
        } catch {
          message = { unparsed: text }
        }
      }
      this.inbox.push(message)
      this.received.push(message)
      this._notify()
    })
  }

  _notify () {
    for (const wake of this._wake.splice(0)) wake()
  }

  get isOpen () {
    return this.socket.readyState === WebSocket.OPEN
  }

  /** Sends one JSON message as a text frame. */
  send (message) {
    this.socket.send(JSON.stringify(message))
  }

  sendText (text) {
    this.socket.send(text, { binary: false })
  }

  sendBinary (bytes) {
    this.socket.send(bytes, { binary: true })
  }

  /** The first queued message matching `match` (removed from the queue), waiting at most `timeoutMs`. */
  async next (match = () => true, { timeoutMs = DEFAULT_WAIT_MS, what = 'a message' } = {}) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const index = this.inbox.findIndex(match)
      if (index !== -1) return this.inbox.splice(index, 1)[0]
      const left = deadline - Date.now()
      if (left <= 0 || this.closeInfo) {
        const state = this.closeInfo ? `closed with ${this.closeInfo.code} ${JSON.stringify(this.closeInfo.reason)}` : 'open'
        throw new Error(`${this.label}: no ${what} within ${timeoutMs} ms (socket ${state}); queued: ${JSON.stringify(this.inbox).slice(0, 2000)}`)
      }
      await new Promise(resolve => {
        const timer = setTimeout(resolve, Math.min(left, 250))
        this._wake.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** Every message matching `match` that arrives (or was queued) within `ms`, removed from the queue. */
  async collect (match, ms) {
    await sleep(ms)
    const found = this.inbox.filter(match)
    this.inbox = this.inbox.filter(m => !match(m))
    return found
  }

  /** Sends an announce and returns the tracker's reply for its info_hash (answer or failure). */
  async announce (fields, options) {
    this.send({ action: 'announce', ...fields })
    return this.next(replyFor(fields.info_hash), { what: 'an announce reply', ...options })
  }

  /** Sends a scrape (`infoHash` a binary id, a list, or undefined for all swarms) and returns the reply. */
  async scrape (infoHash, options) {
    this.send(infoHash === undefined ? { action: 'scrape' } : { action: 'scrape', info_hash: infoHash })
    return this.next(m => isScrape(m) || isFailure(m), { what: 'a scrape reply', ...options })
  }

  /** The close code and reason, waiting at most `timeoutMs`. */
  async waitClose ({ timeoutMs = DEFAULT_WAIT_MS } = {}) {
    const timeout = sleep(timeoutMs).then(() => null)
    const info = await Promise.race([this.closed, timeout])
    if (!info) throw new Error(`${this.label}: not closed within ${timeoutMs} ms; received: ${JSON.stringify(this.received).slice(0, 2000)}`)
    return info
  }

  /** Closes (if open) and waits, bounded, for the close to complete. */
  async close () {
    if (this.socket.readyState === WebSocket.CONNECTING || this.socket.readyState === WebSocket.OPEN) {
      this.socket.close(1000)
    }
    await Promise.race([this.closed, sleep(2_000)])
    if (!this.closeInfo) this.socket.terminate()
  }
}

/**
 * Opens a raw WebSocket peer to `url` (`headers`: extra request headers);
 * rejects (with the HTTP status if there was one) when the upgrade fails.
 */
export function connectRaw (url, { timeoutMs = DEFAULT_WAIT_MS, label = 'peer', maxPayload, headers } = {}) {
  assertLoopbackWs(url)
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { handshakeTimeout: timeoutMs, maxPayload, headers })
    const peer = new RawPeer(socket, label)
    socket.once('open', () => resolve(peer))
    socket.once('unexpected-response', (_request, response) => {
      const error = new Error(`${label}: upgrade to ${url} answered ${response.statusCode}`)
      error.status = response.statusCode
      response.resume()
      socket.terminate()
      reject(error)
    })
    socket.once('error', reject)
  })
}

/**
 * The HTTP status a WebSocket upgrade request to `url` gets: 101 if it was
 * accepted (the socket is closed again at once), otherwise the refusal's status.
 */
export async function upgradeStatus (url, options) {
  try {
    const peer = await connectRaw(url, options)
    await peer.close()
    return 101
  } catch (error) {
    if (error.status) return error.status
    throw error
  }
}

function assertLoopbackWs (url) {
  const { protocol, hostname } = new URL(url)
  if (protocol !== 'ws:' || !/^127\.\d+\.\d+\.\d+$/.test(hostname)) {
    throw new Error(`tracker-client: refusing ${url}; ws://127.x.x.x only`)
  }
}

/** Closes every peer given (raw peers or startClient results), ignoring errors. */
export async function closeAll (peers) {
  await Promise.all(peers.splice(0).map(peer => peer.close().catch(() => {})))
}

// ---------------------------------------------------------------------------
// What the worker says about a stream
// ---------------------------------------------------------------------------

const TRACKER_URL = /^ws:\/\/127\.0\.0\.1:(\d+)\/_lt\/tracker\/([0-9a-f]{16})$/

/**
 * Fetches the media playlist at `path` through the worker until every segment
 * carries a magnet, and returns what the magnets say: the one tracker URL
 * (`tr=`), its stream id, and the info-hashes (hex, in playlist order).
 */
export async function issuedSwarms (worker, path, { timeoutMs = 30_000 } = {}) {
  const playlist = await eventually(async () => {
    const p = await fetchText(`${worker.url}${path}`)
    const n = uriLines(p.text).length
    return p.status === 200 && n > 0 && p.headers.get('x-live-torrent') === `annotated ${n}/${n}` && p
  }, { what: `every segment of ${path} annotated`, timeoutMs, intervalMs: 300 })
  const magnets = magnetsOf(playlist.text)
  const trackers = [...new Set(magnets.flatMap(m => m.trackers))]
  if (trackers.length !== 1) throw new Error(`${path}: expected one tracker in the magnets, got ${JSON.stringify(trackers)}`)
  const match = TRACKER_URL.exec(trackers[0])
  if (!match) throw new Error(`${path}: tracker URL ${trackers[0]} is not ws://127.0.0.1:<port>/_lt/tracker/<16 hex>`)
  return {
    playlist: playlist.text,
    magnets,
    trackerUrl: trackers[0],
    stream: match[2],
    infoHashes: magnets.map(m => m.infoHash.toLowerCase())
  }
}

/** The tracker object's counters for `stream` (shard 0 unless `shard` is given), or throws. */
export async function trackerStats (worker, stream, shard) {
  const query = shard === undefined ? '' : `?shard=${shard}`
  const response = await fetchText(`${worker.url}/_lt/tracker/${stream}/stats${query}`)
  if (response.status !== 200) throw new Error(`stats for ${stream}: ${response.status} ${response.text.slice(0, 200)}`)
  return JSON.parse(response.text)
}

/**
 * The announces in the tracker object's counters, counted as the npm
 * tracker (scripts/tracker.mjs) counts them: every message with action
 * "announce", answers included (bittorrent-tracker counts an answer as an
 * `update` announce), i.e. the messages in that are not scrapes.
 */
export function builtinTrackerAnnounces (stats) {
  return stats.messages_in - (stats.scrapes ?? 0)
}

// ---------------------------------------------------------------------------
// The npm bittorrent-tracker client
// ---------------------------------------------------------------------------

let loaded = null

/**
 * Imports `bittorrent-tracker/client` with `webrtc-polyfill` (whose native
 * part is not installed) redirected to tests/support/webrtc-stand-in.mjs.
 * Returns `{ Client, wrtc }`, `wrtc` being the stand-in module.
 */
export function loadTrackerClient () {
  loaded ??= (async () => {
    const standIn = new URL('./webrtc-stand-in.mjs', import.meta.url).href
    const hooks = 'export async function resolve (specifier, context, next) {\n' +
      `  if (specifier === 'webrtc-polyfill') return { url: ${JSON.stringify(standIn)}, shortCircuit: true }\n` +
      '  return next(specifier, context)\n}\n'
    register(`data:text/javascript,${encodeURIComponent(hooks)}`)
    const { default: Client } = await import('bittorrent-tracker/client')
    const wrtc = await import(standIn)
    return { Client, wrtc }
  })()
  return loaded
}

/**
 * The client shares one WebSocket between every Client of the process that
 * names the same tracker URL string (as one WebTorrent in a browser does for
 * all its torrents). Two Clients with different peer ids must not share one;
 * these spellings of one URL are different strings that put the same request
 * on the wire (an empty query or fragment is not sent).
 */
export function socketUrlVariant (url, index) {
  const variants = [url, `${url}?`, `${url}#`, `${url}?#`]
  if (index >= variants.length) throw new Error(`socketUrlVariant: at most ${variants.length} variants`)
  return variants[index]
}

/**
 * One bittorrent-tracker Client for `infoHash` on `announce`, recording its
 * events and every message its socket sends and receives.
 */
export function startClient ({ Client, wrtc }, { announce, infoHash, peerId = randomHex(), label = 'client' }) {
  const client = new Client({
    infoHash,
    peerId,
    announce: [announce],
    port: 6881,
    wrtc,
    rtcConfig: { iceServers: [] }
  })
  const events = { update: [], scrape: [], peer: [], warning: [], error: [] }
  for (const name of Object.keys(events)) client.on(name, event => events[name].push(event))
  const [tracker] = client._trackers
  if (!tracker) throw new Error(`${label}: the client made no WebSocket tracker for ${announce}`)
  const socket = tracker.socket
  const sent = []
  const received = []
  socket.on('data', data => {
    try {
      received.push(JSON.parse(Buffer.from(data).toString()))
    } catch {
      received.push({ unparsed: Buffer.from(data).toString() })
    }
  })
  const send = socket.send.bind(socket)
  socket.send = message => {
    sent.push(JSON.parse(message))
    return send(message)
  }
  return {
    client,
    peerId,
    infoHash,
    events,
    sent,
    received,
    tracker,
    label,
    /** The first recorded `name` event that matches, waiting at most `timeoutMs`. */
    async waitFor (name, match = () => true, { timeoutMs = DEFAULT_WAIT_MS } = {}) {
      return eventually(() => events[name].find(match), {
        what: `${label}: a matching '${name}' event (warnings: ${events.warning.map(w => w.message).join('; ')})`,
        timeoutMs,
        intervalMs: 50
      })
    },
    async close () {
      if (client.destroyed) return
      await Promise.race([new Promise(resolve => client.destroy(() => resolve())), sleep(3_000)])
    }
  }
}

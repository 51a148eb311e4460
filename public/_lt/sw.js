// live-torrent service worker.
//
// Sees the player's playlist and segment requests. Playlists pass through
// untouched; their magnet lines are read and handed to the page client, which
// joins each segment's swarm before the player asks. A segment request is
// offered to the page client, which answers with the bytes (from peers, or
// over HTTP before the player would stall); if it does not answer, or answers
// "fallback", the request goes to the network as if this worker did not exist.
//
// The only state here is a map from segment key to magnet, rebuilt from every
// playlist (each few seconds for live). If the browser stops this worker and
// the map is lost, segment requests go to the network until the next playlist.
//
// A segment's key is its URL, plus `#bytes=<first>-<last>` for a byte-range
// segment (EXT-X-BYTERANGE; the range comes from the magnet's .torrent URL).
// The player asks for those with a Range header naming exactly that range,
// and gets a 206 from here.

const MAGNET_TAG = '#EXT-X-LT-MAGNET:'
// The page client acknowledges a segment request at once; without an ack in
// this time it is not there (no script tag, crashed) and we use the network.
const ACK_TIMEOUT_MS = 500
// Upper bound on waiting for the page after its ack, on top of its deadline.
const DELIVERY_GRACE_MS = 3000
const MAX_KNOWN_SEGMENTS = 2000

/** segment key -> magnet URI, newest last. */
const magnets = new Map()
/**
 * Keys offered to the page right now. The page's own HTTP fallback for a
 * byte-range segment may ask for exactly that range: it goes to the network.
 */
const offered = new Set()

/** `url`, or `url#bytes=<first>-<last>` for a byte range. */
function keyOf (url, range) {
  return range ? `${url}#bytes=${range.first}-${range.last}` : url
}

/** The byte range a magnet's segment covers (`range=` of its xs= URL), or null. */
function magnetRange (magnet) {
  try {
    const xs = new URLSearchParams(magnet.slice(magnet.indexOf('?') + 1)).get('xs')
    const match = xs && /^(\d+)-(\d+)$/.exec(new URL(xs).searchParams.get('range') || '')
    return match ? { first: Number(match[1]), last: Number(match[2]) } : null
  } catch (err) {
    return null
  }
}

/** A request's single closed byte range; null without Range, undefined for any other Range. */
function requestRange (request) {
  const header = request.headers.get('range')
  if (!header) return null
  const match = /^bytes=(\d+)-(\d+)$/.exec(header.trim())
  return match ? { first: Number(match[1]), last: Number(match[2]) } : undefined
}

self.addEventListener('install', () => self.skipWaiting())
self.addEventListener('activate', event => event.waitUntil(self.clients.claim()))

self.addEventListener('fetch', event => {
  const request = event.request
  if (request.method !== 'GET') return
  if (isPlaylist(request.url)) {
    event.respondWith(fetchPlaylist(event))
    return
  }
  const range = requestRange(request)
  if (range === undefined) return
  const key = keyOf(request.url, range)
  if (!magnets.has(key) || offered.has(key)) return
  event.respondWith(fetchSegment(event, key, range))
})

function isPlaylist (url) {
  const path = new URL(url).pathname
  return path.endsWith('.m3u8') || path.endsWith('.m3u')
}

async function fetchPlaylist (event) {
  const response = await fetch(event.request)
  if (response.ok) event.waitUntil(readMagnets(response.clone(), event.clientId))
  return response
}

/** Reads the magnet lines of a playlist and tells the page client about them. */
async function readMagnets (response, clientId) {
  try {
    const text = await response.text()
    const base = response.url
    const lines = text.split(/\r?\n/)
    const segments = []
    for (let i = 0; i < lines.length - 1; i++) {
      if (!lines[i].startsWith(MAGNET_TAG)) continue
      const uri = lines[i + 1].trim()
      if (!uri || uri.startsWith('#')) continue
      const url = new URL(uri, base).href
      const magnet = lines[i].slice(MAGNET_TAG.length)
      const range = magnetRange(magnet)
      const key = keyOf(url, range)
      magnets.delete(key)
      magnets.set(key, magnet)
      segments.push({ key, url, magnet, range })
    }
    while (magnets.size > MAX_KNOWN_SEGMENTS) magnets.delete(magnets.keys().next().value)
    if (segments.length === 0) return
    const message = { type: 'lt:playlist', playlistUrl: base, segments }
    for (const client of await pageClients(clientId)) client.postMessage(message)
  } catch (err) {
    // A playlist we cannot read only means no P2P for it.
  }
}

async function pageClients (clientId) {
  const client = clientId && await self.clients.get(clientId)
  if (client) return [client]
  return self.clients.matchAll({ type: 'window' })
}

async function fetchSegment (event, key, range) {
  const request = event.request
  offered.add(key)
  try {
    const [client] = await pageClients(event.clientId)
    const segment = { key, url: request.url, magnet: magnets.get(key), range }
    const answer = client && await askPage(client, segment)
    const expected = range ? range.last - range.first + 1 : null
    if (answer && answer.type === 'bytes' && (expected === null || answer.buffer.byteLength === expected)) {
      const headers = {
        'Content-Type': answer.contentType || 'application/octet-stream',
        'Content-Length': String(answer.buffer.byteLength),
        'X-Live-Torrent-Source': answer.source
      }
      if (range) headers['Content-Range'] = `bytes ${range.first}-${range.last}/*`
      return new Response(answer.buffer, { status: range ? 206 : 200, headers })
    }
  } catch (err) {
    // Fall through to the network.
  } finally {
    offered.delete(key)
  }
  const response = await fetch(request)
  reportDirectHttp(event, request.url, response)
  return response
}

/**
 * Tells the page client how many bytes a segment brought from the network
 * without it, so that its statistics count them as HTTP: the body's length
 * (Content-Length, else a copy of the body is measured).
 */
function reportDirectHttp (event, url, response) {
  if (!response.ok) return
  const declared = Number(response.headers.get('content-length'))
  const measured = Number.isSafeInteger(declared) && declared > 0 && !response.headers.get('content-encoding')
    ? Promise.resolve(declared)
    : response.clone().arrayBuffer().then(body => body.byteLength)
  event.waitUntil(measured.then(async bytes => {
    for (const client of await pageClients(event.clientId)) client.postMessage({ type: 'lt:direct-http', url, bytes })
  }).catch(() => {}))
}

/**
 * Offers a segment request to the page client. Resolves with its answer, or
 * null when it does not acknowledge in time or does not deliver by its own
 * deadline plus a grace period.
 */
function askPage (client, segment) {
  return new Promise(resolve => {
    const channel = new MessageChannel()
    let timer = setTimeout(() => finish(null), ACK_TIMEOUT_MS)
    function finish (answer) {
      clearTimeout(timer)
      channel.port1.close()
      resolve(answer)
    }
    channel.port1.onmessage = ({ data }) => {
      if (data && data.type === 'ack') {
        // A later ack (the page waited for its client first) sets a new deadline.
        clearTimeout(timer)
        timer = setTimeout(() => finish(null), Math.max(0, data.deadlineMs) + DELIVERY_GRACE_MS)
      } else {
        finish(data)
      }
    }
    client.postMessage({ type: 'lt:segment', ...segment }, [channel.port2])
  })
}

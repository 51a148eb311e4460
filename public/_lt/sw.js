// live-torrent service worker.
//
// Sees the player's playlist and segment requests. Playlists pass through
// untouched; their magnet lines are read and handed to the page client, which
// joins each segment's swarm before the player asks. A segment request is
// offered to the page client, which answers with the bytes (from peers, or
// over HTTP before the player would stall); if it does not answer, or answers
// "fallback", the request goes to the network as if this worker did not exist.
//
// The only state here is a map from segment URL to magnet, rebuilt from every
// playlist (each few seconds for live). If the browser stops this worker and
// the map is lost, segment requests go to the network until the next playlist.

const MAGNET_TAG = '#EXT-X-LT-MAGNET:'
// The page client acknowledges a segment request at once; without an ack in
// this time it is not there (no script tag, crashed) and we use the network.
const ACK_TIMEOUT_MS = 500
// Upper bound on waiting for the page after its ack, on top of its deadline.
const DELIVERY_GRACE_MS = 3000
const MAX_KNOWN_SEGMENTS = 2000

/** segment URL -> magnet URI, newest last. */
const magnets = new Map()

self.addEventListener('install', () => self.skipWaiting())
self.addEventListener('activate', event => event.waitUntil(self.clients.claim()))

self.addEventListener('fetch', event => {
  const request = event.request
  if (request.method !== 'GET') return
  if (isPlaylist(request.url)) {
    event.respondWith(fetchPlaylist(event))
    return
  }
  if (request.headers.has('range') || !magnets.has(request.url)) return
  event.respondWith(fetchSegment(event))
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
      magnets.delete(url)
      magnets.set(url, magnet)
      segments.push({ url, magnet })
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

async function fetchSegment (event) {
  const request = event.request
  try {
    const [client] = await pageClients(event.clientId)
    const answer = client && await askPage(client, request.url, magnets.get(request.url))
    if (answer && answer.type === 'bytes') {
      return new Response(answer.buffer, {
        status: 200,
        headers: {
          'Content-Type': answer.contentType || 'application/octet-stream',
          'Content-Length': String(answer.buffer.byteLength),
          'X-Live-Torrent-Source': answer.source
        }
      })
    }
  } catch (err) {
    // Fall through to the network.
  }
  return fetch(request)
}

/**
 * Offers a segment request to the page client. Resolves with its answer, or
 * null when it does not acknowledge in time or does not deliver by its own
 * deadline plus a grace period.
 */
function askPage (client, url, magnet) {
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
        clearTimeout(timer)
        timer = setTimeout(() => finish(null), Math.max(0, data.deadlineMs) + DELIVERY_GRACE_MS)
      } else {
        finish(data)
      }
    }
    client.postMessage({ type: 'lt:segment', url, magnet }, [channel.port2])
  })
}

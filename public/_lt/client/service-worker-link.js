// The page side of the service worker: registers it and answers its
// messages (playlists seen, segments requested).

// No player waits for this (the demo does not wait at all): this only
// decides when P2P gives up. A service worker that takes control late, on a
// busy machine, still brings P2P in for the rest of the session.
const CONTROL_TIMEOUT_MS = 30000

const PLAYLIST_PATH = /\.m3u8?$/i
/** How long after taking control a playlist request made before it may still finish. */
const EARLY_PLAYLIST_WATCH_MS = 30000

/**
 * Registers the service worker and waits until it controls this page. When
 * the page was not controlled when it loaded (a first visit), the playlists
 * it requested before the service worker took control are fetched again,
 * through it: the service worker reads the magnets of the playlists it sees,
 * and a player loads a VOD playlist only once.
 */
export async function registerServiceWorker (url, scope) {
  if (!navigator.serviceWorker) throw new Error('this browser has no service workers')
  const controlledAtLoad = Boolean(navigator.serviceWorker.controller)
  await navigator.serviceWorker.register(url, { scope })
  if (!navigator.serviceWorker.controller) {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the service worker did not take control in time')), CONTROL_TIMEOUT_MS)
      navigator.serviceWorker.addEventListener('controllerchange', () => { clearTimeout(timer); resolve() }, { once: true })
    })
  }
  if (!controlledAtLoad) replayEarlyPlaylists(performance.now())
}

/**
 * Fetches again every playlist the page requested before `controlledAt`
 * (resource timing), each once: those that finished already, and, for a
 * while, those still on their way.
 */
function replayEarlyPlaylists (controlledAt) {
  const replayed = new Set()
  const replay = entry => {
    let path
    try {
      path = new URL(entry.name).pathname
    } catch {
      return
    }
    if (entry.startTime >= controlledAt || !PLAYLIST_PATH.test(path) || replayed.has(entry.name)) return
    replayed.add(entry.name)
    fetch(entry.name, { credentials: 'same-origin' }).then(response => response.arrayBuffer()).catch(() => {})
  }
  performance.getEntriesByType('resource').forEach(replay)
  if (typeof PerformanceObserver === 'undefined') return
  const observer = new PerformanceObserver(list => list.getEntries().forEach(replay))
  observer.observe({ type: 'resource' })
  setTimeout(() => observer.disconnect(), EARLY_PLAYLIST_WATCH_MS)
}

/**
 * Routes service worker messages: `onPlaylist({ playlistUrl, segments })`,
 * `onSegment({ key, url, magnet, range }, reply)`, where `reply(message, transfer)`
 * answers on the request's own channel, and `onDirectHttp({ url, bytes })`
 * for a segment the service worker fetched from the network itself.
 */
export function listenToServiceWorker ({ onPlaylist, onSegment, onDirectHttp }) {
  navigator.serviceWorker.addEventListener('message', event => {
    const data = event.data || {}
    if (data.type === 'lt:playlist') {
      onPlaylist(data)
    } else if (data.type === 'lt:direct-http' && Number.isSafeInteger(data.bytes) && data.bytes >= 0) {
      onDirectHttp(data)
    } else if (data.type === 'lt:segment' && event.ports[0]) {
      const port = event.ports[0]
      onSegment(data, (message, transfer = []) => port.postMessage(message, transfer))
    }
  })
  navigator.serviceWorker.startMessages()
}

/**
 * Segment bytes the player fetched from the network before the service
 * worker could offer them to us, per resource timing: calls `count(bytes)`
 * once for each such response to one of `urls` not counted before (`counted`
 * keeps them). Those are the requests made before the service worker took
 * control (no worker involved), and those it let pass because it had not
 * read a playlist listing them yet (they came from the network: a transfer
 * size; made by the player, not by fetch(), which is how this client fetches
 * its own ranges; a player that loads with fetch() is not counted there).
 * A cross-origin response without Timing-Allow-Origin reports no size.
 * Such fetches happen while the page starts, so this looks only within
 * EARLY_PLAYLIST_WATCH_MS of the page's load: later playlists cost nothing.
 */
export function countEarlySegmentFetches (segments, counted, count) {
  if (typeof performance === 'undefined' || !performance.getEntriesByType || performance.now() > EARLY_PLAYLIST_WATCH_MS) return
  const urls = new Set(segments.map(s => s.url))
  for (const entry of performance.getEntriesByType('resource')) {
    if (!(entry.encodedBodySize > 0) || !urls.has(entry.name)) continue
    const passedServiceWorker = entry.workerStart > 0 && entry.transferSize > 0 && entry.initiatorType !== 'fetch'
    if (entry.workerStart > 0 && !passedServiceWorker) continue
    const id = `${entry.name} ${entry.startTime}`
    if (counted.has(id)) continue
    counted.add(id)
    count(entry.encodedBodySize)
  }
}

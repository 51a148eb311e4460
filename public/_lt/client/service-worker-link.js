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
 * Routes service worker messages: `onPlaylist({ playlistUrl, segments })`
 * and `onSegment({ key, url, magnet, range }, reply)`, where `reply(message, transfer)`
 * answers on the request's own channel.
 */
export function listenToServiceWorker ({ onPlaylist, onSegment }) {
  navigator.serviceWorker.addEventListener('message', event => {
    const data = event.data || {}
    if (data.type === 'lt:playlist') {
      onPlaylist(data)
    } else if (data.type === 'lt:segment' && event.ports[0]) {
      const port = event.ports[0]
      onSegment(data, (message, transfer = []) => port.postMessage(message, transfer))
    }
  })
  navigator.serviceWorker.startMessages()
}

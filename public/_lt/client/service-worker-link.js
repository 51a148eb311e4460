// The page side of the service worker: registers it and answers its
// messages (playlists seen, segments requested).

// No player waits for this (the demo does not wait at all): this only
// decides when P2P gives up. A service worker that takes control late, on a
// busy machine, still brings P2P in for the rest of the session.
const CONTROL_TIMEOUT_MS = 30000

const PLAYLIST_PATH = /\.m3u8?$/i

/**
 * Registers the service worker and waits until it controls this page. When
 * it takes control only now (a first visit), the playlists the page loaded
 * before are fetched again, through it: it reads the magnets of playlists it
 * sees, and a player loads a VOD playlist only once.
 */
export async function registerServiceWorker (url, scope) {
  if (!navigator.serviceWorker) throw new Error('this browser has no service workers')
  await navigator.serviceWorker.register(url, { scope })
  if (navigator.serviceWorker.controller) return
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the service worker did not take control in time')), CONTROL_TIMEOUT_MS)
    navigator.serviceWorker.addEventListener('controllerchange', () => { clearTimeout(timer); resolve() }, { once: true })
  })
  for (const playlistUrl of playlistsLoadedSoFar()) {
    fetch(playlistUrl, { credentials: 'same-origin' }).then(response => response.arrayBuffer()).catch(() => {})
  }
}

/** Playlist URLs this page has loaded (resource timing), each once. */
function playlistsLoadedSoFar () {
  const urls = new Set()
  for (const entry of performance.getEntriesByType('resource')) {
    try {
      if (PLAYLIST_PATH.test(new URL(entry.name).pathname)) urls.add(entry.name)
    } catch {}
  }
  return urls
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

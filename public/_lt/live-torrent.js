// live-torrent page client: add
//   <script type="module" src="/_lt/live-torrent.js"></script>
// to a page that plays HLS with a player that loads through fetch/XHR
// (hls.js). Segments then come from other viewers over WebRTC when they can,
// over HTTP when they must, and every segment held is seeded.
//
// window.liveTorrent:
//   ready            Promise<boolean>: true once P2P is on, false if it is off
//                    (the player then simply uses HTTP)
//   disabled         why P2P is off, or null
//   stats()          { p2pBytes, httpBytes, directHttpBytes, uploadedBytes, peers, meshLinks, torrents, segments, rejectedPieces }
//                    (httpBytes includes directHttpBytes: segments the player
//                    fetched without the client, e.g. before the service
//                    worker took control)
//   on('segment', fn) / off('segment', fn)
//                    fn({ url, infoHash, bytes, p2pBytes, httpBytes, ms, source,
//                         metadataMs, firstPeerMs, completeMs, requestedMs, listedAt,
//                         deadlineMs, fetchedFirst, peers })
//                    for every segment handed to the player; the *Ms fields are
//                    ms since a playlist listed the segment (null: never),
//                    listedAt is that listing as performance.now(),
//                    deadlineMs how long the delivery could wait for peers
//                    after the player asked, and fetchedFirst whether this
//                    viewer was the one designated to fetch it over HTTP first
import { findScriptElement, readConfig } from './client/config.js'
import { ClientStats } from './client/stats.js'
import { affordableWaitMs, HTTP_FETCH_ESTIMATE_MS, PlaybackClock, whenPlaybackStarts } from './client/playback-clock.js'
import { countEarlySegmentFetches, listenToServiceWorker, registerServiceWorker } from './client/service-worker-link.js'

// The P2P half is built, and the service worker registered, once the video
// has started: loading WebTorrent and building the client take the main
// thread for a few hundred ms, which the player otherwise spends waiting
// between its first segments. Registering the service worker (together
// with the demo page preloading these modules, measured as one change) cost
// a joining browser 140 ms of CPU before its first frame
// (bench/join-profile.mjs), all of it added to the start on a busy machine.
// Until the first frame every segment goes to the network, as without P2P
// (and counts as HTTP).
//
// The limit is only for a page whose video never plays, or whose `media`
// selector matches no element that does: a player whose autoplay is refused
// fires 'playing' when the viewer starts it. On a busy machine the first
// frame can take more than 10 s; with a 5 s limit the client was built
// before it, its CPU added to the start (bench/join-profile.mjs).
const START_DEFER_MAX_MS = 30000
// Once the video plays, a segment request waits for the client being built,
// as long as the buffer affords it (less the margin and an HTTP fetch's
// time) and at most this long, so the segments after the first frame can
// come from peers too.
const CLIENT_WAIT_MAX_MS = 5000

const config = readConfig(findScriptElement(import.meta.url))
const stats = new ClientStats()
const listeners = new Map()
let swarms = null

const liveTorrent = {
  config,
  disabled: null,
  ready: null,
  stats: () => stats.snapshot({
    peers: swarms ? swarms.peerCount() : 0,
    meshLinks: swarms ? swarms.meshLinkCount() : 0,
    torrents: swarms ? swarms.segments.size : 0
  }),
  on (type, fn) {
    const wrapped = event => fn(event.detail)
    listeners.set(fn, wrapped)
    stats.addEventListener(type, wrapped)
    return liveTorrent
  },
  off (type, fn) {
    stats.removeEventListener(type, listeners.get(fn))
    listeners.delete(fn)
    return liveTorrent
  }
}
window.liveTorrent = liveTorrent

/** Loads the P2P modules (only when P2P can run, so a page without it pays nothing) and builds the client. */
async function loadClient (clock) {
  const [{ SegmentSwarms }, { SegmentDelivery }] = await Promise.all([
    import('./client/segment-swarms.js'),
    import('./client/segment-delivery.js')
  ])
  swarms = new SegmentSwarms({ iceServers: config.iceServers, maxTorrents: config.maxTorrents, maxOffersPerAnnounce: config.maxOffersPerAnnounce, meshLinks: config.meshLinks, stats })
  const delivery = new SegmentDelivery({ swarms, clock, stats, config })
  return { swarms, delivery }
}

async function start () {
  if (!config.enabled) throw new Error('disabled by configuration')
  if (!navigator.serviceWorker) throw new Error('this browser has no service workers')
  if (typeof RTCPeerConnection === 'undefined') throw new Error('this browser has no WebRTC')
  // The service worker registers (and takes control) and the client is
  // built once playback starts. The listener is there from the start, for a
  // page that a service worker controls already: until the client is built,
  // segment requests go straight to the network, and the latest playlist per
  // URL waits for the client.
  let built = null
  const playlistsSeen = new Set()
  const playlistsWaiting = new Map()
  const earlyFetchesCounted = new Set()
  const clock = new PlaybackClock(config.media)
  const playbackStarted = whenPlaybackStarts(config.media, START_DEFER_MAX_MS)
  const client = playbackStarted.then(() => loadClient(clock)).then(loaded => {
    built = loaded
    for (const message of playlistsWaiting.values()) joinPlaylist(message)
    playlistsWaiting.clear()
  })
  client.catch(() => {})

  /**
   * Before the client is built: acknowledges a segment request and resolves
   * true once the client is there, if that is within what the player's
   * buffer affords; false (nothing acknowledged, or too late) sends the
   * request to the network. Before the first frame nothing waits.
   */
  async function waitForClient (reply) {
    const ahead = clock.bufferAheadMs()
    if (ahead === null) return false
    const affordableMs = affordableWaitMs(ahead, { httpMs: HTTP_FETCH_ESTIMATE_MS, safetyMarginMs: config.safetyMarginMs, maxMs: CLIENT_WAIT_MAX_MS })
    if (!(affordableMs > 0)) return false
    reply({ type: 'ack', deadlineMs: affordableMs })
    let timer
    const late = new Promise(resolve => { timer = setTimeout(resolve, affordableMs, false) })
    const inTime = await Promise.race([client.then(() => true, () => false), late])
    clearTimeout(timer)
    return inTime
  }

  function joinPlaylist ({ playlistUrl, segments }) {
    try {
      const joined = built.swarms.join(segments, { playlistUrl })
      built.delivery.onJoined(joined, { atLiveEdge: playlistsSeen.has(playlistUrl) })
      playlistsSeen.add(playlistUrl)
    } catch (err) {
      console.warn('live-torrent: playlist not used', err)
    }
  }

  listenToServiceWorker({
    onPlaylist (message) {
      countEarlySegmentFetches(message.segments, earlyFetchesCounted, bytes => stats.directHttp(bytes))
      if (built) return joinPlaylist(message)
      playlistsWaiting.set(message.playlistUrl, message)
    },
    async onSegment ({ key = null, url, magnet, range = null }, reply) {
      try {
        // Inside the try: whatever throws here (a media selector that is
        // not valid CSS, say) sends the segment to the network too.
        if (!built && !(await waitForClient(reply))) return reply({ type: 'fallback', reason: 'starting' })
        const { swarms, delivery } = built
        const segment = swarms.get(key || url) || (magnet && swarms.join([{ key, url, magnet, range }])[0])
        if (!segment) return reply({ type: 'fallback', reason: 'unknown segment' })
        const deadlineMs = delivery.deadlineMs(segment)
        reply({ type: 'ack', deadlineMs })
        const answer = await delivery.deliver(segment, deadlineMs)
        if (!answer) return reply({ type: 'fallback', reason: 'not delivered' })
        // A copy per reply: the store keeps views of the bytes, and the
        // buffer is transferred to the service worker.
        const buffer = answer.bytes.slice().buffer
        reply({ type: 'bytes', buffer, contentType: answer.contentType, source: answer.source }, [buffer])
      } catch (err) {
        console.warn('live-torrent: segment falls back to HTTP', url, err)
        reply({ type: 'fallback', reason: String(err) })
      }
    },
    onDirectHttp ({ bytes }) {
      stats.directHttp(bytes)
    }
  })
  await Promise.all([client, playbackStarted.then(() => registerServiceWorker(config.serviceWorkerUrl, config.serviceWorkerScope))])
  return true
}

liveTorrent.ready = start().catch(err => {
  swarms?.destroy()
  swarms = null
  liveTorrent.disabled = err.message || String(err)
  console.info(`live-torrent: P2P is off (${liveTorrent.disabled}); playback uses HTTP`)
  return false
})

// Demo player: hls.js plus live statistics. Query parameters:
//   src   playlist path or URL (default /live/index.m3u8)
//   p2p   0 to play with plain hls.js, without live-torrent (default 1)
//   ice   JSON array of RTCIceServer for WebRTC (default: WebTorrent's)
//
// window.ltDemo = { video, hls, p2p, metrics: { playerStartMs, firstFrameMs, stalls, stallMs }, latency() }
import { watchPlayback } from './playback-metrics.js'

const params = new URLSearchParams(location.search)
const src = params.get('src') || '/live/index.m3u8'
const p2p = params.get('p2p') !== '0'
const video = document.getElementById('player')
const STRIP_LENGTH = 30
/** Media kept behind the playhead; older media is removed from the buffer. */
const BACK_BUFFER_SECONDS = 30

const metrics = watchPlayback(video)

document.getElementById('source').textContent = src
document.getElementById('mode').textContent = p2p ? '(live-torrent on)' : '(plain hls.js, live-torrent off)'

async function startLiveTorrent () {
  if (params.has('ice')) window.liveTorrentConfig = { ...window.liveTorrentConfig, iceServers: JSON.parse(params.get('ice')) }
  try {
    // A small module: it listens to the service worker at once and builds
    // the P2P half once the video plays. Until the service worker controls
    // the page, the player's requests simply go to the network.
    await import('/_lt/live-torrent.js')
    window.liveTorrent.on('segment', addToStrip)
  } catch (err) {
    console.warn('live-torrent did not start; playing over HTTP', err)
  }
}

function play () {
  metrics.playerStartMs = Math.round(performance.now())
  // hls.js keeps every played second in the media buffer by default
  // (backBufferLength: Infinity), and an object per buffered fragment: a
  // live session's memory would grow for as long as it plays.
  const hls = new window.Hls({ backBufferLength: BACK_BUFFER_SECONDS })
  hls.loadSource(src)
  hls.attachMedia(video)
  hls.on(window.Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}))
  window.ltDemo = {
    video,
    hls,
    p2p,
    metrics,
    latency: () => (Number.isFinite(hls.latency) ? hls.latency : null)
  }
}

function addToStrip ({ source, url, p2pBytes, httpBytes }) {
  const strip = document.getElementById('strip')
  const item = document.createElement('li')
  item.className = source
  item.title = `${url.split('/').pop()}: ${formatBytes(p2pBytes)} from peers, ${formatBytes(httpBytes)} over HTTP`
  strip.append(item)
  while (strip.children.length > STRIP_LENGTH) strip.firstElementChild.remove()
}

function formatBytes (n) {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(2)} MiB`
}

function render () {
  const set = (id, text) => { document.getElementById(id).textContent = text }
  set('stalls', String(metrics.stalls))
  const latency = window.ltDemo?.latency()
  set('latency', latency === null || latency === undefined ? '–' : `${latency.toFixed(1)} s`)
  if (!window.liveTorrent) return
  const s = window.liveTorrent.stats()
  const total = s.p2pBytes + s.httpBytes
  set('share', total ? `${((100 * s.p2pBytes) / total).toFixed(1)} %` : '–')
  set('p2p', formatBytes(s.p2pBytes))
  set('http', formatBytes(s.httpBytes))
  set('uploaded', formatBytes(s.uploadedBytes))
  set('peers', String(s.peers))
}

// On a first visit no service worker controls the page until the page
// client registers one, so the player starts at once and the client loads
// alongside. A page that a service worker already controls listens to it
// before the player's first request: a segment request nobody answers waits
// for the service worker's ack timeout.
const controlledAtLoad = Boolean(navigator.serviceWorker?.controller)
if (p2p && controlledAtLoad) await startLiveTorrent()
play()
if (p2p && !controlledAtLoad) startLiveTorrent()
setInterval(render, 500)

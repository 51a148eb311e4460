// The benchmark's p2p-media-loader v2 player: hls.js with
// p2p-media-loader-hlsjs, measured exactly like the demo player (same
// playback metrics module, same window.ltDemo shape, a stats() with the
// fields of liveTorrent.stats()). Query parameters:
//   src      absolute playlist URL (the worker)
//   tracker  WebTorrent tracker URL
//   core     JSON: p2p-media-loader core settings on top of its defaults
//   hls      JSON: hls.js settings on top of its defaults
//   ice      JSON array of RTCIceServer (default [])
import { HlsJsP2PEngine } from '/vendor/p2p-media-loader-hlsjs.es.js'
import { watchPlayback } from '/playback-metrics.js'

const params = new URLSearchParams(location.search)
const json = (name, fallback) => (params.has(name) ? JSON.parse(params.get(name)) : fallback)
const video = document.getElementById('player')
const metrics = watchPlayback(video)

// p2p-media-loader reports bytes as they arrive (onChunkDownloaded); it does
// not verify peers' bytes unless given validateP2PSegment, so its P2P bytes
// are received bytes, not verified ones.
const counts = { p2pBytes: 0, httpBytes: 0, uploadedBytes: 0, segments: 0 }
const peers = new Set()

metrics.playerStartMs = Math.round(performance.now())
const HlsWithP2P = HlsJsP2PEngine.injectMixin(window.Hls)
const hls = new HlsWithP2P({
  ...json('hls', {}),
  p2p: {
    core: {
      ...json('core', {}),
      announceTrackers: [params.get('tracker')],
      rtcConfig: { iceServers: json('ice', []) }
    },
    onHlsJsCreated (instance) {
      const engine = instance.p2pEngine
      engine.addEventListener('onChunkDownloaded', (bytes, source) => {
        if (source === 'p2p') counts.p2pBytes += bytes
        else counts.httpBytes += bytes
      })
      engine.addEventListener('onChunkUploaded', bytes => { counts.uploadedBytes += bytes })
      engine.addEventListener('onSegmentLoaded', () => { counts.segments += 1 })
      engine.addEventListener('onPeerConnect', ({ peerId }) => peers.add(peerId))
      engine.addEventListener('onPeerClose', ({ peerId }) => peers.delete(peerId))
    }
  }
})
hls.loadSource(params.get('src'))
hls.attachMedia(video)
hls.on(window.Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}))

window.ltDemo = {
  video,
  hls,
  p2p: 'p2p-media-loader',
  metrics,
  latency: () => (Number.isFinite(hls.latency) ? hls.latency : null),
  stats: () => ({ ...counts, peers: peers.size, rejectedPieces: null })
}

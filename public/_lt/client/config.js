// Page client configuration: data-* attributes of the script tag, then
// window.liveTorrentConfig, then defaults.
//
//   <script type="module" src="/_lt/live-torrent.js"
//           data-ice-servers='[{"urls":"stun:stun.example.com"}]'
//           data-max-torrents="24" data-media="video#player"></script>

const DEFAULTS = {
  enabled: true,
  // null keeps WebTorrent's own STUN servers; [] uses none (same-host or LAN only).
  iceServers: null,
  // Segments kept (joined, downloading or seeding) at once.
  maxTorrents: 24,
  // WebRTC offers a segment's announce may carry (WebTorrent's tracker
  // client allows 5): each is a peer connection set up for that segment.
  maxOffersPerAnnounce: 5,
  // Links wanted in a stream's mesh (stream-mesh.js): the stream swarm makes
  // offers while it has fewer, and takes links up to twice as many. Each
  // link is a WebRTC connection with one data channel for the segments.
  meshLinks: 8,
  // CSS selector of the media element whose buffer sets the deadlines.
  media: 'video',
  serviceWorkerUrl: '/_lt/sw.js',
  serviceWorkerScope: '/',
  // Time kept in hand when falling back to HTTP, on top of the measured
  // HTTP fetch time of a segment.
  safetyMarginMs: 1000,
  // How long the viewer designated to fetch a new segment first waits to see
  // whether a peer nearer the live edge already has it.
  firstFetchDelayMs: 500,
  // Before the player has a buffer, how long to give peers that already
  // hold a segment before fetching it over HTTP.
  startupPeerWaitMs: 300
}

function parseAttribute (name, value) {
  if (value === undefined) return undefined
  if (name === 'iceServers') return JSON.parse(value)
  if (name === 'enabled') return value !== 'false' && value !== 'off' && value !== '0'
  if (typeof DEFAULTS[name] === 'number') return Number(value)
  return value
}

/** The script element that loaded `moduleUrl`, if it can be found. */
export function findScriptElement (moduleUrl) {
  for (const script of document.querySelectorAll('script[src]')) {
    if (new URL(script.src, location.href).href === moduleUrl) return script
  }
  return null
}

export function readConfig (scriptElement, globalConfig = window.liveTorrentConfig || {}) {
  const config = { ...DEFAULTS }
  for (const name of Object.keys(DEFAULTS)) {
    if (globalConfig[name] !== undefined) config[name] = globalConfig[name]
    const fromTag = parseAttribute(name, scriptElement?.dataset?.[name])
    if (fromTag !== undefined) config[name] = fromTag
  }
  return config
}

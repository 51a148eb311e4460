// Independent BitTorrent references for the tests: the npm packages that
// WebTorrent itself uses, never the worker's own Rust code.
import createTorrent from 'create-torrent'
import parseTorrent from 'parse-torrent'

export const MAGNET_TAG = '#EXT-X-LT-MAGNET:'

/** The info-hash create-torrent gives `bytes` under `name` and `pieceLength`. */
export async function referenceInfoHash (bytes, name, pieceLength) {
  const torrent = await new Promise((resolve, reject) =>
    createTorrent(Buffer.from(bytes), { name, pieceLength }, (err, t) => (err ? reject(err) : resolve(t))))
  return (await parseTorrent(torrent)).infoHash
}

export async function parseTorrentFile (bytes) {
  return parseTorrent(Buffer.from(bytes))
}

/**
 * Every magnet line of an annotated playlist, with the URI line that follows
 * it and the magnet's parameters.
 */
export function magnetsOf (playlistText) {
  const lines = playlistText.split(/\r?\n/)
  const found = []
  lines.forEach((line, i) => {
    if (!line.startsWith(MAGNET_TAG)) return
    const magnet = line.slice(MAGNET_TAG.length)
    const params = new URLSearchParams(magnet.slice('magnet:?'.length))
    found.push({
      magnet,
      uri: lines[i + 1],
      infoHash: params.get('xt').replace('urn:btih:', ''),
      xt: params.get('xt'),
      name: params.get('dn'),
      trackers: params.getAll('tr'),
      torrentUrl: params.get('xs'),
      webSeed: params.get('ws')
    })
  })
  return found
}

/** URI lines (segments or variants) of a playlist. */
export function uriLines (playlistText) {
  return playlistText.split(/\r?\n/).map(l => l.trim()).filter(l => l && !l.startsWith('#'))
}

export function stripMagnets (playlistText) {
  return playlistText.replace(/^#EXT-X-LT-MAGNET:[^\r\n]*\r?\n/gm, '')
}

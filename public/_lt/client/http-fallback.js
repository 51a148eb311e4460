// Completing a segment over HTTP: only the pieces peers have not delivered,
// in one or a few Range requests, verified against the torrent's piece hashes
// before anything is handed to the player or seeded.
import { toHex } from './segment.js'

const MAX_RANGES = 3

/**
 * Byte ranges ([start, end), end exclusive) that cover the pieces in
 * `missing` (sorted indices), merged until there are at most `maxRanges`.
 */
export function rangesFor (missing, pieceRange, maxRanges = MAX_RANGES) {
  const runs = []
  for (const index of missing) {
    const { start, end } = pieceRange(index)
    const last = runs[runs.length - 1]
    if (last && last.end === start) last.end = end
    else runs.push({ start, end })
  }
  while (runs.length > maxRanges) {
    // Merge across the smallest gap: the fewest bytes fetched twice.
    let best = 0
    for (let i = 1; i < runs.length - 1; i++) {
      if (runs[i + 1].start - runs[i].end < runs[best + 1].start - runs[best].end) best = i
    }
    runs.splice(best, 2, { start: runs[best].start, end: runs[best + 1].end })
  }
  return runs
}

/** GET `url` bytes [start, end) (end undefined: to the end of the file). */
export async function fetchRange (url, start, end, signal) {
  const range = end === undefined ? `bytes=${start}-` : `bytes=${start}-${end - 1}`
  const response = await fetch(url, { headers: { Range: range }, signal, cache: 'no-store' })
  const body = new Uint8Array(await response.arrayBuffer())
  if (response.status === 206) return body
  if (response.status === 200) return body.subarray(start, end)
  throw new Error(`HTTP ${response.status} for ${url} ${range}`)
}

export async function sha1Hex (bytes) {
  return toHex(new Uint8Array(await crypto.subtle.digest('SHA-1', bytes)))
}

/**
 * Fetches what `segment` lacks, checks it, seeds the completed segment and
 * returns `{ bytes, httpBytes, seeded }`. Bytes that peers delivered are kept.
 * If the HTTP bytes do not match the torrent (the file changed upstream), the
 * whole file is fetched and returned as the origin serves it, unseeded.
 */
export async function completeOverHttp (segment, signal) {
  if (!segment.hasMetadata) {
    // The .torrent is still on its way: fetch the whole file now, and seed it
    // as soon as the metadata arrives and the bytes check out against it.
    const bytes = await fetchRange(segment.url, segment.offset, segment.rangeEnd, signal)
    seedOnceVerified(segment, bytes).catch(err => console.warn('live-torrent: not seeding', segment.url, err))
    return { bytes, httpBytes: bytes.length, seeded: false }
  }
  const missing = segment.missingPieces()
  if (missing.length === 0) return { bytes: await segment.bytes(), httpBytes: 0, seeded: true }

  const ranges = rangesFor(missing, i => segment.pieceRange(i))
  // Piece offsets are within the segment; a byte-range segment starts at segment.offset.
  const parts = await Promise.all(ranges.map(r => fetchRange(segment.url, segment.offset + r.start, segment.offset + r.end, signal)))
  let httpBytes = parts.reduce((sum, p) => sum + p.length, 0)
  const bytes = new Uint8Array(segment.length)
  const fromHttp = new Set()
  ranges.forEach((r, i) => {
    bytes.set(parts[i].subarray(0, r.end - r.start), r.start)
    for (let p = Math.floor(r.start / segment.pieceLength); p * segment.pieceLength < r.end; p++) fromHttp.add(p)
  })
  const hashes = segment.pieceHashes()
  let intact = parts.every((p, i) => p.length === ranges[i].end - ranges[i].start)
  for (let index = 0; intact && index < segment.pieceCount; index++) {
    const { start, end } = segment.pieceRange(index)
    if (fromHttp.has(index)) {
      intact = (await sha1Hex(bytes.subarray(start, end))) === hashes[index]
    } else {
      bytes.set(await segment.readPiece(index), start)
    }
  }
  if (!intact) {
    const whole = await fetchRange(segment.url, segment.offset, segment.rangeEnd, signal)
    httpBytes += whole.length
    return { bytes: whole, httpBytes, seeded: false }
  }
  await segment.seed(bytes)
  return { bytes, httpBytes, seeded: true }
}

const METADATA_WAIT_MS = 10000

/** Seeds `bytes` (the whole segment) once the metadata is known, if every piece matches. */
async function seedOnceVerified (segment, bytes) {
  await Promise.race([
    segment.metadata,
    new Promise((resolve, reject) => setTimeout(() => reject(new Error('no metadata')), METADATA_WAIT_MS))
  ])
  if (segment.isComplete || bytes.length !== segment.length) return
  const hashes = segment.pieceHashes()
  for (let index = 0; index < segment.pieceCount; index++) {
    const { start, end } = segment.pieceRange(index)
    if ((await sha1Hex(bytes.subarray(start, end))) !== hashes[index]) return
  }
  await segment.seed(bytes)
}

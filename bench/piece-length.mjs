// What the piece length costs: for each candidate, WebTorrent in headless
// Chromium downloads one segment from its web seed (the worker, `ws=`/
// `url-list`) with no peer at all, which is the worst case a viewer can hit.
// It prints HTTP requests per segment, time to complete, .torrent size, and
// how much of a segment a peer must hold before it can share any of it.
import fs from 'node:fs/promises'
import path from 'node:path'
import crypto from 'node:crypto'

import { startOrigin } from '../scripts/origin.mjs'
import { startWorker } from '../tests/support/harness.mjs'
import { launchBrowser } from '../tests/support/browser.mjs'
import { magnetsOf } from '../tests/support/torrents.mjs'

const PIECE_LENGTHS = [16, 32, 64, 128, 256].map(k => k * 1024)
// 2 s segments at 1 and 4 Mbit/s.
const SEGMENT_SIZES = [250_000, 1_000_000]
const ROUNDS = Number(process.env.ROUNDS || 3)

const origin = await startOrigin({ live: false })
await fs.writeFile(path.join(origin.dir, 'blank.html'), '<!doctype html><title>bench</title>')
const browser = await launchBrowser()
const rows = []
try {
  for (const pieceLength of PIECE_LENGTHS) {
    const worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: '', PIECE_LENGTH: String(pieceLength) } })
    try {
      for (const size of SEGMENT_SIZES) {
        const times = []
        let requests = 0
        let torrentBytes = 0
        for (let round = 0; round < ROUNDS; round++) {
          const dir = `pl-${pieceLength}-${size}-${round}`
          await fs.mkdir(path.join(origin.dir, dir))
          await fs.writeFile(path.join(origin.dir, dir, 's.ts'), crypto.randomBytes(size))
          await fs.writeFile(path.join(origin.dir, dir, 'index.m3u8'),
            '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns.ts\n#EXT-X-ENDLIST\n')
          const [magnet] = magnetsOf(await (await fetch(`${worker.url}/${dir}/index.m3u8`)).text())
          torrentBytes = (await (await fetch(magnet.torrentUrl)).arrayBuffer()).byteLength
          origin.resetHits()
          const page = await browser.newPage()
          await page.goto(`${origin.url}/blank.html`)
          const ms = await page.evaluate(async ({ vendor, torrentUrl }) => {
            const { default: WebTorrent } = await import(vendor)
            const client = new WebTorrent({ tracker: false, dht: false, lsd: false })
            const torrentFile = new Uint8Array(await (await fetch(torrentUrl)).arrayBuffer())
            const started = performance.now()
            await new Promise((resolve, reject) => {
              const timer = setTimeout(() => reject(new Error('not done in 30 s')), 30000)
              client.add(torrentFile, torrent => torrent.on('done', () => { clearTimeout(timer); resolve() }))
            })
            const elapsed = performance.now() - started
            client.destroy()
            return elapsed
          }, { vendor: `${worker.url}/_lt/vendor/webtorrent.min.js`, torrentUrl: magnet.torrentUrl })
          await page.close()
          times.push(ms)
          requests = origin.hits()[`/${dir}/s.ts`] || 0
        }
        times.sort((a, b) => a - b)
        rows.push({
          pieceLength, size, pieces: Math.ceil(size / pieceLength), requests, torrentBytes,
          medianMs: times[Math.floor(times.length / 2)]
        })
      }
    } finally {
      await worker.stop()
    }
  }
} finally {
  await browser.close()
  await origin.stop()
}

console.log(`Piece length vs web-seed cost, WebTorrent ${'(browser)'} with no peers, median of ${ROUNDS}`)
console.log('| piece length | segment bytes | pieces | HTTP requests | web-seed download (ms) | .torrent bytes | bytes held before first share |')
console.log('|---|---|---|---|---|---|---|')
for (const r of rows) {
  console.log(`| ${r.pieceLength / 1024} KiB | ${r.size} | ${r.pieces} | ${r.requests} | ${r.medianMs.toFixed(0)} | ${r.torrentBytes} | ${Math.min(r.pieceLength, r.size)} |`)
}

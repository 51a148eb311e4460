// Does a viewer's page keep its memory flat over a long live session?
// Two P2P viewers of the demo player share the local live feed (so torrents,
// peer connections and the HTTP fallback all run) for MINUTES minutes. Each
// minute, for each viewer, the page's JS heap is measured after a forced
// garbage collection (Chrome DevTools Protocol: HeapProfiler.collectGarbage,
// then Runtime.getHeapUsage). Prints the heap per minute and the ratio of the
// last minute to the first; flat is about 1.
//
// Environment: MINUTES (default 10). Run it inside a loopback-only namespace
// (`make bench` does): node bench/memory.mjs
import { startOrigin } from '../scripts/origin.mjs'
import { startTracker, startWorker, sleep } from '../tests/support/harness.mjs'
import { openViewer } from '../tests/support/viewers.mjs'

const MINUTES = Number(process.env.MINUTES ?? 10)
if (!Number.isInteger(MINUTES) || MINUTES < 2) throw new Error(`MINUTES must be an integer >= 2, got ${process.env.MINUTES}`)
const JOIN_GAP_MS = 4000

const origin = await startOrigin({ live: true })
const tracker = await startTracker()
const worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: tracker.url } })
const viewers = []
try {
  for (let i = 1; i <= 2; i++) {
    viewers.push(await openViewer({ workerUrl: worker.url, index: i, sampleEveryMs: 5000 }))
    if (i === 1) await sleep(JOIN_GAP_MS)
  }
  const sessions = await Promise.all(viewers.map(v => v.context.newCDPSession(v.page)))
  const heapMb = async session => {
    await session.send('HeapProfiler.collectGarbage')
    const { usedSize } = await session.send('Runtime.getHeapUsage')
    return usedSize / 1e6
  }
  const rows = []
  const started = Date.now()
  for (let minute = 1; minute <= MINUTES; minute++) {
    await sleep(started + minute * 60_000 - Date.now())
    const heaps = await Promise.all(sessions.map(heapMb))
    const stats = await Promise.all(viewers.map(v => v.page.evaluate(() => window.liveTorrent.stats())))
    rows.push({ minute, heaps, stats })
    process.stderr.write(`[memory] minute ${minute}: ${heaps.map(h => `${h.toFixed(1)} MB`).join(', ')}\n`)
  }
  console.log(`JS heap of two P2P viewer pages after a forced GC, live feed (2 s segments), ${MINUTES} minutes`)
  console.log('| minute | viewer 1 MB | viewer 2 MB | segments delivered (1 / 2) | P2P share of viewer 2 |')
  console.log('|---|---|---|---|---|')
  for (const { minute, heaps, stats } of rows) {
    const s = stats[1]
    const share = s.p2pBytes + s.httpBytes > 0 ? `${(100 * s.p2pBytes / (s.p2pBytes + s.httpBytes)).toFixed(0)}%` : 'n/a'
    console.log(`| ${minute} | ${heaps[0].toFixed(1)} | ${heaps[1].toFixed(1)} | ${stats[0].segments} / ${s.segments} | ${share} |`)
  }
  const first = rows[0].heaps
  const last = rows.at(-1).heaps
  console.log(`\nminute ${MINUTES} / minute 1: viewer 1 ${(last[0] / first[0]).toFixed(2)}x, viewer 2 ${(last[1] / first[1]).toFixed(2)}x`)
} finally {
  await Promise.all(viewers.map(v => v.close()))
  await worker.stop()
  await tracker.stop()
  await origin.stop()
}

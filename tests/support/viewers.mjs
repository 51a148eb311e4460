// Viewers of the demo player (public/_lt/index.html) for the P2P tests and
// benchmarks: one headless Chromium instance per viewer, so that viewers are
// separate WebRTC endpoints with separate service workers and caches.
//
//   const viewer = await openViewer({ workerUrl, index: 1 })   // resolves at first frame
//   ... let it play ...
//   const report = await viewer.finish()                       // stops sampling, gathers all
//   await viewer.close()
//
// What a viewer records while it plays:
//   - every 200 response to a `/live/seg-N.ts` URL that the page sees,
//     including those the service worker answered (`fromServiceWorker()`),
//     with the sha256 of its body;
//   - every request to a `/live/seg-` URL anywhere in its browser context
//     (page, page client, service worker) and whether the service worker
//     answered it; the rest went to the network, i.e. to the worker;
//   - a sample each `sampleEveryMs` of the player's position, stalls, live
//     latency and, with P2P on, `liveTorrent.stats()`.
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

import { browserCpuSeconds, launchBrowser } from './browser.mjs'
import { sleep } from './harness.mjs'

/** Path of a live segment whose 200 responses are recorded and compared. */
export const SEGMENT_PATH = /\/live\/seg-\d+\.ts$/
/** Any request for a live segment (whole file or a range, any query). */
const SEGMENT_REQUEST_PATH = /\/live\/seg-/

function pathOf (url) {
  try {
    return new URL(url).pathname
  } catch {
    return ''
  }
}

/** The demo player's URL for `src`; `ice` is passed as given (a JSON string). */
export function demoUrl (workerUrl, { src = '/live/index.m3u8', p2p = true, ice = '[]' } = {}) {
  const params = new URLSearchParams({ src })
  if (!p2p) params.set('p2p', '0')
  if (ice !== null && ice !== undefined) params.set('ice', ice)
  return `${workerUrl}/_lt/?${params}`
}

function median (values) {
  const sorted = values.filter(v => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
export { median }

/**
 * An init script (openViewer's `initScript`) that counts the page's WebRTC
 * peer connections: created, ever connected, open now and open at most. Any
 * P2P player in the page (WebTorrent's simple-peer, p2p-media-loader) makes
 * its connections with `new RTCPeerConnection`, so one count fits all.
 */
export function countPeerConnections () {
  const Native = window.RTCPeerConnection
  if (!Native) return
  const counts = { created: 0, connected: 0, open: 0, maxOpen: 0 }
  window.__peerConnectionCounts = counts
  window.RTCPeerConnection = class CountedPeerConnection extends Native {
    constructor (...args) {
      super(...args)
      counts.created += 1
      counts.open += 1
      counts.maxOpen = Math.max(counts.maxOpen, counts.open)
      let connected = false
      let closed = false
      this.markClosed = () => {
        if (closed) return
        closed = true
        counts.open -= 1
      }
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'connected' && !connected) {
          connected = true
          counts.connected += 1
        }
        if (this.connectionState === 'closed' || this.connectionState === 'failed') this.markClosed()
      })
    }

    close () {
      this.markClosed()
      return super.close()
    }
  }
}

/** Reads what the page exposes, in the page. Never throws for a missing part. */
function readPageState () {
  const demo = window.ltDemo
  const lt = window.liveTorrent
  // The demo player's statistics come from live-torrent; another player
  // (the benchmark's p2p-media-loader page) offers the same fields itself.
  const statsOf = lt && typeof lt.stats === 'function' ? lt : demo && typeof demo.stats === 'function' ? demo : null
  let stats = null
  let statsError = null
  if (statsOf) {
    try {
      stats = statsOf.stats()
    } catch (err) {
      statsError = String(err)
    }
  }
  let latency = null
  try {
    latency = demo ? demo.latency() : null
  } catch {}
  return {
    hasDemo: !!demo,
    liveTorrentType: typeof lt,
    p2p: demo ? demo.p2p : null,
    currentTime: demo ? demo.video.currentTime : null,
    paused: demo ? demo.video.paused : null,
    readyState: demo ? demo.video.readyState : null,
    metrics: demo ? { ...demo.metrics } : null,
    latency,
    stats,
    statsError,
    peerConnections: window.__peerConnectionCounts ? { ...window.__peerConnectionCounts } : null,
    swControlled: !!(navigator.serviceWorker && navigator.serviceWorker.controller),
    disabled: lt ? lt.disabled ?? null : null
  }
}

/**
 * Opens one viewer and resolves once the player shows its first frame.
 *
 * @param {object}   options
 * @param {string}   options.workerUrl   the worker (page origin)
 * @param {string}   [options.pageUrl]   another player page to open instead of the demo
 *                                       player (its own origin); it must set window.ltDemo
 * @param {number}   options.index       viewer number, for messages
 * @param {boolean}  [options.p2p=true]
 * @param {string}   [options.src]       playlist path or URL
 * @param {string}   [options.ice='[]']  `ice=` parameter (JSON), null for none
 * @param {Array}    [options.registry]  the viewer is pushed here as soon as its
 *                                       browser runs, so a caller can close it
 *                                       even when opening fails
 * @param {number}   [options.firstFrameTimeoutMs=60000]
 * @param {number}   [options.sampleEveryMs=1000]
 * @param {Function} [options.initScript] runs in the page before its own scripts
 *                                        (playwright addInitScript), e.g. to break something
 * @param {RegExp}   [options.segmentPath=SEGMENT_PATH]  responses recorded in segmentResponses
 * @param {RegExp}   [options.segmentRequestPath]        requests recorded in segmentRequests
 * @param {boolean}  [options.partialResponses=false]    record 206 responses too (byte-range
 *                                                        segments), with their request's range
 * @param {Function} [options.prepareContext] async (context) before the page opens,
 *                                        e.g. to expose a binding to it
 */
export async function openViewer ({
  workerUrl,
  pageUrl = null,
  index,
  p2p = true,
  src = '/live/index.m3u8',
  ice = '[]',
  registry,
  firstFrameTimeoutMs = 60_000,
  sampleEveryMs = 1000,
  initScript = null,
  segmentPath = SEGMENT_PATH,
  segmentRequestPath = SEGMENT_REQUEST_PATH,
  partialResponses = false,
  prepareContext = null
}) {
  const url = pageUrl ?? demoUrl(workerUrl, { src, p2p, ice })
  const browser = await launchBrowser()
  let sampling = true
  const viewer = {
    index,
    p2p,
    url,
    browser,
    context: null,
    page: null,
    openedAt: Date.now(),
    firstFrameAt: null,
    /** { name, url, fromServiceWorker, bytes, sha256 } per 200 segment response. */
    segmentResponses: [],
    /** Segment responses whose body could not be read: { url, error }. */
    bodyErrors: [],
    /** Every segment request in the context: { url, method, range, byServiceWorker, answeredByServiceWorker }. */
    segmentRequests: [],
    samples: [],
    pageErrors: [],
    consoleErrors: [],
    close: async () => {
      // A viewer closed without finish() (a probe, a test that failed) stops
      // sampling too: its loop would otherwise keep the process alive.
      sampling = false
      await browser.close().catch(() => {})
    }
  }
  registry?.push(viewer)

  const pendingBodies = new Set()
  const requestRecords = new Map()

  const context = await browser.newContext()
  viewer.context = context
  // WebRTC on loopback needs this as well as --allow-loopback-in-peer-connection.
  await context.grantPermissions(['camera', 'microphone'], { origin: new URL(url).origin })
  if (initScript) await context.addInitScript(initScript)
  if (prepareContext) await prepareContext(context)

  context.on('request', request => {
    if (!segmentRequestPath.test(pathOf(request.url()))) return
    const record = {
      url: request.url(),
      method: request.method(),
      range: request.headers().range ?? null,
      byServiceWorker: request.serviceWorker() !== null,
      answeredByServiceWorker: false,
      status: null
    }
    requestRecords.set(request, record)
    viewer.segmentRequests.push(record)
  })
  context.on('response', response => {
    const record = requestRecords.get(response.request())
    if (!record) return
    record.status = response.status()
    record.answeredByServiceWorker = response.fromServiceWorker()
  })

  const page = await context.newPage()
  viewer.page = page
  page.on('pageerror', error => viewer.pageErrors.push(String(error)))
  page.on('console', message => {
    if (message.type() === 'error') viewer.consoleErrors.push(message.text())
  })
  // Responses that arrive after finish() are not part of the report: their
  // bodies may still be unread when the browser closes.
  let recording = true
  page.on('response', response => {
    if (!recording) return
    const status = response.status()
    if (!(status === 200 || (partialResponses && status === 206)) || !segmentPath.test(pathOf(response.url()))) return
    const entry = {
      name: pathOf(response.url()).split('/').pop(),
      url: response.url(),
      status,
      range: response.request().headers().range ?? null,
      fromServiceWorker: response.fromServiceWorker(),
      bytes: null,
      sha256: null
    }
    const reading = response.body().then(
      body => {
        entry.bytes = body.length
        entry.sha256 = createHash('sha256').update(body).digest('hex')
        viewer.segmentResponses.push(entry)
      },
      error => viewer.bodyErrors.push({ url: entry.url, fromServiceWorker: entry.fromServiceWorker, error: String(error) })
    ).finally(() => pendingBodies.delete(reading))
    pendingBodies.add(reading)
  })

  await page.goto(url, { waitUntil: 'domcontentloaded' })
  try {
    await page.waitForFunction(() => window.ltDemo && window.ltDemo.metrics.firstFrameMs !== null, null, {
      timeout: firstFrameTimeoutMs,
      polling: 100
    })
  } catch (error) {
    const state = await page.evaluate(readPageState).catch(e => `unreadable: ${e}`)
    throw new Error(`viewer ${index} (${p2p ? 'P2P' : 'plain'}): no first frame within ${firstFrameTimeoutMs} ms ` +
      `(${url}); page state ${JSON.stringify(state)}; page errors ${JSON.stringify(viewer.pageErrors)}`, { cause: error })
  }
  viewer.firstFrameAt = Date.now()
  viewer.cpuAtFirstFrame = await browserCpuSeconds(browser)

  const sample = async () => {
    const state = await page.evaluate(readPageState).catch(() => null)
    if (state) viewer.samples.push({ at: Date.now(), ...state })
  }
  await sample()
  const sampler = (async () => {
    while (sampling) {
      await sleep(sampleEveryMs)
      if (sampling) await sample()
    }
  })()

  /** Time watched since the first frame, in ms. */
  viewer.watchedMs = () => Date.now() - viewer.firstFrameAt

  /** Stops sampling, takes a last sample and waits for every body being read. */
  viewer.finish = async () => {
    sampling = false
    recording = false
    await sampler
    await sample()
    const cpu = await browserCpuSeconds(browser)
    viewer.cpuSinceFirstFrame = cpu === null || viewer.cpuAtFirstFrame === null ? null : cpu - viewer.cpuAtFirstFrame
    for (let rounds = 0; pendingBodies.size > 0 && rounds < 100; rounds++) {
      await Promise.race([Promise.allSettled([...pendingBodies]), sleep(300)])
    }
    return summarize(viewer)
  }
  return viewer
}

/**
 * The audience a profiling benchmark measures against: `p2pCount` P2P
 * viewers opening `joinGapMs` apart and one plain viewer half a gap after
 * the first. Resolves at every viewer's first frame, P2P viewers first and
 * the plain one last; rejects with every failure if any viewer fails.
 *
 * @param {object} options  `openViewer` options common to all viewers, plus:
 * @param {number} options.p2pCount
 * @param {number} [options.joinGapMs=2000]
 * @param {object} [options.p2pOptions]  `openViewer` options for the P2P viewers only
 */
export async function openAudience ({ p2pCount, joinGapMs = 2000, p2pOptions = {}, ...common }) {
  const settled = await Promise.allSettled([
    ...Array.from({ length: p2pCount }, (_, i) =>
      sleep(i * joinGapMs).then(() => openViewer({ ...common, ...p2pOptions, index: i + 1 }))),
    sleep(joinGapMs / 2).then(() => openViewer({ ...common, index: p2pCount + 1, p2p: false }))
  ])
  const failed = settled.filter(s => s.status === 'rejected')
  if (failed.length) throw new Error(failed.map(s => s.reason.message).join('\n'))
  return settled.map(s => s.value)
}

/**
 * Keeps the page client's 'segment' events (window.liveTorrent.on, one per
 * segment handed to the player) from now on; read them with
 * `recordedSegmentEvents`. Call it once the viewer has its first frame.
 */
export async function recordSegmentEvents (viewer) {
  await viewer.page.evaluate(() => {
    window.__segmentEvents = []
    window.liveTorrent?.on?.('segment', event => window.__segmentEvents.push(event))
  })
}

/**
 * The events `recordSegmentEvents` kept ([] if the page is gone), each with
 * `listedWall`: its `listedAt` on the wall clock (ms since the epoch), to
 * line up the events of different pages.
 */
export async function recordedSegmentEvents (viewer) {
  return viewer.page.evaluate(() => (window.__segmentEvents ?? [])
    .map(event => ({ ...event, listedWall: performance.timeOrigin + event.listedAt }))).catch(() => [])
}

/**
 * Position growth over the first `windowMs` after the first frame: from the
 * first sample to the first sample at or after `firstFrameAt + windowMs`
 * (or the last sample, if the viewer did not watch that long).
 */
export function playedOver (viewer, windowMs) {
  const samples = viewer.samples.filter(s => typeof s.currentTime === 'number')
  if (samples.length === 0) return { played: 0, overMs: 0 }
  const first = samples[0]
  const end = samples.find(s => s.at >= viewer.firstFrameAt + windowMs) ?? samples[samples.length - 1]
  return { played: end.currentTime - first.currentTime, overMs: end.at - first.at }
}

/** Everything a test or benchmark reads about a viewer once it finished. */
function summarize (viewer) {
  const last = viewer.samples[viewer.samples.length - 1] ?? {}
  const names = new Set(viewer.segmentResponses.map(r => r.name))
  const networkRequests = viewer.segmentRequests.filter(r => !r.answeredByServiceWorker)
  const latencies = viewer.samples.map(s => s.latency).filter(v => typeof v === 'number')
  return {
    index: viewer.index,
    p2p: viewer.p2p,
    watchedMs: Date.now() - viewer.firstFrameAt,
    /** CPU seconds the viewer's whole browser used from its first frame to finish(). */
    cpuSeconds: viewer.cpuSinceFirstFrame ?? null,
    firstFrameMs: last.metrics?.firstFrameMs ?? null,
    playerStartMs: last.metrics?.playerStartMs ?? null,
    stalls: last.metrics?.stalls ?? null,
    stallMs: last.metrics?.stallMs ?? null,
    latencies,
    latencyMedian: median(latencies),
    latencyLast: last.latency ?? null,
    stats: last.stats ?? null,
    statsError: last.statsError ?? null,
    liveTorrentType: last.liveTorrentType ?? null,
    swControlled: last.swControlled ?? null,
    disabled: last.disabled ?? null,
    pageP2p: last.p2p ?? null,
    maxPeers: Math.max(0, ...viewer.samples.map(s => s.stats?.peers ?? 0)),
    peerConnections: last.peerConnections ?? null,
    segmentNames: [...names].sort(),
    segments: names.size,
    segmentResponses: viewer.segmentResponses,
    bodyErrors: viewer.bodyErrors,
    /** Segment requests that went to the network (were not answered by the service worker). */
    networkSegmentRequests: networkRequests.length,
    networkSegmentRequestsFromServiceWorker: networkRequests.filter(r => r.byServiceWorker).length,
    segmentRequests: viewer.segmentRequests.length,
    pageErrors: viewer.pageErrors,
    consoleErrors: viewer.consoleErrors
  }
}

/**
 * Checks viewers' segment bodies against the origin's files in `dir`:
 * `mismatched(report)` lists the responses whose body is not the file of the
 * same name ({ name, fromServiceWorker, bytes, why }); hashes are cached.
 */
export function originFiles (dir) {
  const hashes = new Map()
  const sha256 = name => {
    if (!hashes.has(name)) {
      hashes.set(name, fs.readFile(path.join(dir, name)).then(
        bytes => createHash('sha256').update(bytes).digest('hex'),
        () => null
      ))
    }
    return hashes.get(name)
  }
  const mismatched = async report => {
    const bad = []
    for (const response of report.segmentResponses) {
      const expected = await sha256(response.name)
      if (expected !== response.sha256) {
        bad.push({ name: response.name, fromServiceWorker: response.fromServiceWorker, bytes: response.bytes,
          why: expected === null ? 'no such file at the origin' : 'sha256 differs' })
      }
    }
    return bad
  }
  return { sha256, mismatched }
}

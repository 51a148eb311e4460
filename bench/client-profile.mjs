// Where a P2P viewer's CPU goes, against a plain hls.js viewer of the same
// page and feed: issue 5 asks for profiles, not guesses.
//
// VIEWERS P2P viewers of the demo player (built-in tracker) and one plain
// viewer (p2p=0) watch the local live feed. After every first frame and
// WARMUP_SECONDS, for PROFILE_SECONDS:
//   - every thread of every viewer's browser is read from /proc
//     (/proc/<pid>/task/<tid>/stat and comm) before and after, and its CPU
//     time summed by process kind (browser, renderer, gpu, network service,
//     other utility) and thread name (CrRendererMain, WebRTC_Network,
//     ServiceWorker thread, Media, ...), as a share of one core: mean over
//     the P2P viewers against the plain viewer;
//   - the JS of P2P viewer 1's page and of its service worker is sampled
//     by the DevTools protocol's profiler, and its self time summed by
//     script and by function (name, script, line).
// Prints Markdown tables. Environment: VIEWERS (default 4), WARMUP_SECONDS
// (default 20), PROFILE_SECONDS (default 30), TOP (default 20: functions
// shown), PAGE_CONFIG (JSON: window.liveTorrentConfig of the P2P viewers, e.g.
// '{"maxOffersPerAnnounce":1}'). Run it inside a loopback-only namespace:
//   unshare -n sh -c 'ip link set lo up && exec node bench/client-profile.mjs'
import fs from 'node:fs/promises'
import { SourceMap } from 'node:module'

import { startOrigin } from '../scripts/origin.mjs'
import { startWorker, sleep } from '../tests/support/harness.mjs'
import { CLOCK_TICKS_PER_SECOND, threadTicks } from '../tests/support/browser.mjs'
import { countPeerConnections, openAudience } from '../tests/support/viewers.mjs'

const VIEWERS = Number(process.env.VIEWERS ?? 4)
const WARMUP_SECONDS = Number(process.env.WARMUP_SECONDS ?? 20)
const PROFILE_SECONDS = Number(process.env.PROFILE_SECONDS ?? 30)
const TOP = Number(process.env.TOP ?? 20)
for (const [name, value] of Object.entries({ VIEWERS, WARMUP_SECONDS, PROFILE_SECONDS, TOP })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${value}`)
}
const PAGE_CONFIG = process.env.PAGE_CONFIG ? JSON.parse(process.env.PAGE_CONFIG) : null
const JOIN_GAP_MS = 2000
const log = line => process.stderr.write(`[client-profile] ${line}\n`)
const pct = value => `${(100 * value).toFixed(1)}%`

function delta (before, after) {
  const out = new Map()
  for (const [key, value] of after) out.set(key, value - (before.get(key) ?? 0))
  return out
}

/**
 * The vendored WebTorrent bundle is minified; its source map (shipped in
 * node_modules) names the original module of each position.
 */
const BUNDLE_MAPS = new Map([
  ['/_lt/vendor/webtorrent.min.js', new SourceMap(JSON.parse(await fs.readFile(new URL('../node_modules/webtorrent/dist/webtorrent.min.js.map', import.meta.url), 'utf8')))]
])

function originalOf (script, line, column) {
  const entry = BUNDLE_MAPS.get(script)?.findEntry(line, column)
  if (!entry?.originalSource) return null
  return `${entry.originalSource.replace(/^.*node_modules\//, '').replace(/^webpack:\/\/[^/]*\//, '')}:${entry.originalLine + 1}`
}

/** Self time of a CPU profile (Profiler.stop's `profile`) by script and by function. */
function selfTimes (profile) {
  const byId = new Map(profile.nodes.map(node => [node.id, node]))
  const counts = new Map()
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1)
  const totalMs = (profile.endTime - profile.startTime) / 1000
  const msPerSample = totalMs / Math.max(1, profile.samples.length)
  const byScript = new Map()
  const byFunction = new Map()
  for (const [id, count] of counts) {
    const { callFrame } = byId.get(id)
    const script = callFrame.url ? callFrame.url.replace(/^.*\/\/[^/]+/, '').replace(/\?.*$/, '') : callFrame.functionName
    const original = originalOf(script, callFrame.lineNumber, callFrame.columnNumber)
    const fn = `${callFrame.functionName || '(anonymous)'} ${original ?? `${script}:${callFrame.lineNumber + 1}:${callFrame.columnNumber + 1}`}`
    // Bundled modules by their package (the part of the path before the file).
    const module = original ? `${script} (${original.replace(/\/[^/]*$/, '')})` : script
    byScript.set(module, (byScript.get(module) ?? 0) + count * msPerSample)
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + count * msPerSample)
  }
  return { totalMs, byScript, byFunction }
}

/**
 * Runs the DevTools profiler in a target for `ms`: the page through its own
 * CDP session, the service worker by attaching to it from the browser session.
 */
async function profileTarget (send, ms) {
  await send('Profiler.enable')
  await send('Profiler.setSamplingInterval', { interval: 500 })
  await send('Profiler.start')
  await sleep(ms)
  const { profile } = await send('Profiler.stop')
  return selfTimes(profile)
}

async function serviceWorkerSender (browser) {
  const session = await browser.newBrowserCDPSession()
  const { targetInfos } = await session.send('Target.getTargets')
  const target = targetInfos.find(t => t.type === 'service_worker')
  if (!target) throw new Error('no service worker target')
  const { sessionId } = await session.send('Target.attachToTarget', { targetId: target.targetId, flatten: false })
  let nextId = 1
  const pending = new Map()
  session.on('Target.receivedMessageFromTarget', ({ sessionId: from, message }) => {
    if (from !== sessionId) return
    const reply = JSON.parse(message)
    const waiter = pending.get(reply.id)
    if (!waiter) return
    pending.delete(reply.id)
    if (reply.error) waiter.reject(new Error(`${reply.error.message}`))
    else waiter.resolve(reply.result)
  })
  return (method, params = {}) => new Promise((resolve, reject) => {
    const id = nextId++
    pending.set(id, { resolve, reject })
    session.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject)
  })
}

function printTop (title, map, totalMs, count) {
  console.log(`\n${title} (${(totalMs / 1000).toFixed(1)} s sampled)\n`)
  console.log('| self ms | share of the time | where |')
  console.log('|---|---|---|')
  for (const [key, ms] of [...map].sort((a, b) => b[1] - a[1]).slice(0, count)) {
    console.log(`| ${ms.toFixed(0)} | ${pct(ms / totalMs)} | \`${key}\` |`)
  }
}

const origin = await startOrigin({ live: true })
const worker = await startWorker({ vars: { UPSTREAM: origin.url } })
const opened = []
try {
  log(`${VIEWERS} P2P viewers and a plain one on ${worker.url}`)
  const common = { workerUrl: worker.url, registry: opened, initScript: countPeerConnections }
  const p2pInit = PAGE_CONFIG
    ? { initScript: { content: `window.liveTorrentConfig = ${JSON.stringify(PAGE_CONFIG)};\n(${countPeerConnections})()` } }
    : {}
  const viewers = await openAudience({ ...common, p2pCount: VIEWERS, joinGapMs: JOIN_GAP_MS, p2pOptions: p2pInit })
  const p2pViewers = viewers.slice(0, VIEWERS)
  const plain = viewers[VIEWERS]
  log(`all first frames; warming up ${WARMUP_SECONDS} s`)
  await sleep(WARMUP_SECONDS * 1000)

  const before = await Promise.all(viewers.map(v => threadTicks(v.browser)))
  const started = Date.now()
  const pageSession = await p2pViewers[0].context.newCDPSession(p2pViewers[0].page)
  const [pageProfile, workerProfile] = await Promise.all([
    profileTarget((m, p) => pageSession.send(m, p), PROFILE_SECONDS * 1000),
    serviceWorkerSender(p2pViewers[0].browser).then(send => profileTarget(send, PROFILE_SECONDS * 1000))
  ])
  const after = await Promise.all(viewers.map(v => threadTicks(v.browser)))
  const seconds = (Date.now() - started) / 1000
  const used = viewers.map((v, i) => delta(before[i], after[i]))
  const reports = await Promise.all(viewers.map(v => v.finish()))

  const share = (ticks, key) => (ticks.get(key) ?? 0) / CLOCK_TICKS_PER_SECOND / seconds
  const keys = [...new Set(used.flatMap(m => [...m.keys()]))]
  const rows = keys.map(key => {
    const p2p = used.slice(0, VIEWERS).reduce((sum, m) => sum + share(m, key), 0) / VIEWERS
    return { key, p2p, plain: share(used[VIEWERS], key) }
  }).filter(r => r.p2p >= 0.001 || r.plain >= 0.001).sort((a, b) => (b.p2p - b.plain) - (a.p2p - a.plain))
  const total = m => [...m.keys()].reduce((sum, key) => sum + share(m, key), 0)

  console.log(`\nCPU by process and thread, ${VIEWERS} P2P viewers (mean) and a plain viewer, ${seconds.toFixed(0)} s ` +
    `after ${WARMUP_SECONDS} s of warm-up (share of one core; sorted by what P2P adds)\n`)
  console.log('| process / thread | P2P viewer | plain viewer | P2P adds |')
  console.log('|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.key} | ${pct(r.p2p)} | ${pct(r.plain)} | ${pct(r.p2p - r.plain)} |`)
  const p2pTotal = used.slice(0, VIEWERS).reduce((sum, m) => sum + total(m), 0) / VIEWERS
  console.log(`| **whole browser** | **${pct(p2pTotal)}** | **${pct(total(used[VIEWERS]))}** | **${pct(p2pTotal - total(used[VIEWERS]))}** |`)

  printTop('JS self time by script, P2P viewer 1, page', pageProfile.byScript, pageProfile.totalMs, TOP)
  printTop('JS self time by function, P2P viewer 1, page', pageProfile.byFunction, pageProfile.totalMs, TOP)
  printTop('JS self time by script, P2P viewer 1, service worker', workerProfile.byScript, workerProfile.totalMs, TOP)
  printTop('JS self time by function, P2P viewer 1, service worker', workerProfile.byFunction, workerProfile.totalMs, TOP)

  const connections = reports.slice(0, VIEWERS).map(r => r.peerConnections)
  const perSegment = field => (connections.reduce((sum, c) => sum + (c?.[field] ?? 0), 0) /
    Math.max(1, reports.slice(0, VIEWERS).reduce((sum, r) => sum + r.segments, 0))).toFixed(2)
  console.log(`\nWebRTC connections per segment per P2P viewer (whole session): created ${perSegment('created')}, ` +
    `connected ${perSegment('connected')}; most open at once in one page: ${Math.max(...connections.map(c => c?.maxOpen ?? 0))}`)
  const p2pReports = reports.slice(0, VIEWERS)
  const sum = field => p2pReports.reduce((total, r) => total + (r.stats?.[field] ?? 0), 0)
  console.log(`\nP2P viewers over the whole session: ${p2pReports.map(r => r.segments).join('/')} segments, P2P share ` +
    `${pct(sum('p2pBytes') / Math.max(1, sum('p2pBytes') + sum('httpBytes')))} (ceiling ${pct(1 - 1 / VIEWERS)}), stalls ` +
    `${p2pReports.map(r => r.stalls).join('/')} (plain ${reports[VIEWERS].stalls})`)
} finally {
  await Promise.all(opened.map(v => v.close()))
  await worker.stop()
  await origin.stop()
}

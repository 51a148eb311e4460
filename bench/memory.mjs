// Does a viewer's page keep its memory flat over a long live session?
// Two P2P viewers of the demo player share the local live feed (so torrents,
// peer connections and the HTTP fallback all run) for MINUTES minutes, beside a
// plain hls.js viewer of the same page (p2p=0) as the reference: what the
// player alone keeps. Each minute, for each viewer, the page's JS heap is
// measured after a forced garbage collection (Chrome DevTools Protocol:
// HeapProfiler.collectGarbage, then Runtime.getHeapUsage). Prints the heap per
// minute, with P2P viewer 2's share and each viewer's distance behind the
// live edge, and the ratio of the last minute to the first; flat is about 1. To
// say what grows, it takes heap snapshots of P2P viewer 2 and of the plain
// viewer after minute 1, every SNAPSHOT_EVERY minutes and after the last
// minute; prints, for each snapshot, the bytes of code nodes and of all other
// V8 objects and the machine code objects against functions (does the code
// level off?); then, from the first snapshot to the last, the object kinds
// (V8 node type and constructor name) that grew most in the P2P viewer, with
// the same kinds' growth in the plain one, then the code nodes (compiled code,
// bytecode, function metadata) that grew most, by name. It also says whose
// machine code it is: for each snapshot, the machine code by the script its
// functions came from, and the functions whose machine code grew most.
//
// Environment: MINUTES (default 10), SNAPSHOT_EVERY (minutes, default 10).
// Run it inside a loopback-only namespace (`make bench` does):
// node bench/memory.mjs
import { startOrigin } from '../scripts/origin.mjs'
import { startTracker, startWorker, sleep } from '../tests/support/harness.mjs'
import { openViewer } from '../tests/support/viewers.mjs'

const MINUTES = Number(process.env.MINUTES ?? 10)
if (!Number.isInteger(MINUTES) || MINUTES < 2) throw new Error(`MINUTES must be an integer >= 2, got ${process.env.MINUTES}`)
const SNAPSHOT_EVERY = Number(process.env.SNAPSHOT_EVERY ?? 10)
if (!Number.isInteger(SNAPSHOT_EVERY) || SNAPSHOT_EVERY < 1) throw new Error(`SNAPSHOT_EVERY must be an integer >= 1, got ${process.env.SNAPSHOT_EVERY}`)
const JOIN_GAP_MS = 4000
const GROWERS_SHOWN = 15

/**
 * A heap snapshot of the page (after a forced GC), summed by V8 node type and
 * name, `kinds`: Map of "type name" -> { count, bytes } (self sizes); and its
 * code nodes by name, `code`, the same way.
 */
async function heapByKind (session) {
  await session.send('HeapProfiler.collectGarbage')
  const chunks = []
  const onChunk = ({ chunk }) => chunks.push(chunk)
  session.on('HeapProfiler.addHeapSnapshotChunk', onChunk)
  await session.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false })
  session.off('HeapProfiler.addHeapSnapshotChunk', onChunk)
  const snapshot = JSON.parse(chunks.join(''))
  const fields = snapshot.snapshot.meta.node_fields
  const types = snapshot.snapshot.meta.node_types[fields.indexOf('type')]
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map(f => fields.indexOf(f))
  const kinds = new Map()
  const code = new Map()
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = types[snapshot.nodes[i + typeAt]]
    if (type === 'code') {
      // Compiled code, bytecode and function metadata, by the name V8 gives
      // it (mostly the function's): what keeps compiling.
      tally(code, snapshot.strings[snapshot.nodes[i + nameAt]].slice(0, 70), snapshot.nodes[i + sizeAt])
    }
    // Strings and code are named by their content or source: sum them by type.
    const name = ['object', 'closure', 'array', 'native', 'regexp', 'object shape'].includes(type)
      ? snapshot.strings[snapshot.nodes[i + nameAt]]
      : ''
    tally(kinds, `${type} ${name}`.trim(), snapshot.nodes[i + sizeAt])
  }
  const count = name => code.get(name)?.count ?? 0
  const { byScript, byFunction } = machineCodeOwners(snapshot)
  const bytesOf = test => [...kinds].filter(([key]) => test(key)).reduce((sum, [, k]) => sum + k.bytes, 0)
  return {
    kinds,
    code,
    /** Bytes of code nodes (compiled code, bytecode, function metadata), and of the other V8 objects. */
    codeBytes: bytesOf(key => key === 'code'),
    objectBytes: bytesOf(key => key !== 'code' && !key.startsWith('native')),
    /**
     * Machine code objects alive (Sparkplug baseline and optimized: a
     * function can hold one of each), against the functions with bytecode or
     * metadata alive.
     */
    machineCode: count('system / Code'),
    functions: count('system / SharedFunctionInfo'),
    byScript,
    byFunction
  }
}

/**
 * Who owns the machine code: each machine code object (`system / Code` node)
 * is followed up its retainers, breadth first and at most
 * OWNER_SEARCH_DEPTH steps, to the first function that holds it: a closure
 * (its current code), a SharedFunctionInfo (baseline code) or a
 * FeedbackVector (optimized code cached for a function whose closures may be
 * gone). The function's SharedFunctionInfo names the script it came from, and
 * a closure of it its name. Each machine code object counts once, with the
 * bytes of itself and of the code nodes it holds (instructions, relocation
 * and position tables, deoptimization data). Returns `byScript`: Map script
 * path -> { count, bytes }, and `byFunction`: Map "script path function
 * name" -> the same; code no function holds is under NO_OWNER.
 */
const OWNER_SEARCH_DEPTH = 4
const NO_OWNER = '(held by no function: V8 tables, handlers, regular expressions)'
function machineCodeOwners (snapshot) {
  const fields = snapshot.snapshot.meta.node_fields
  const edgeFields = snapshot.snapshot.meta.edge_fields
  const types = snapshot.snapshot.meta.node_types[fields.indexOf('type')]
  const edgeTypes = snapshot.snapshot.meta.edge_types[edgeFields.indexOf('type')]
  const [typeAt, nameAt, sizeAt, edgeCountAt] = ['type', 'name', 'self_size', 'edge_count'].map(f => fields.indexOf(f))
  const [edgeTypeAt, edgeNameAt, edgeToAt] = ['type', 'name_or_index', 'to_node'].map(f => edgeFields.indexOf(f))
  const { nodes, edges, strings } = snapshot
  const nodeCount = nodes.length / fields.length
  // Offset of each node's first edge: edges are stored node after node.
  const firstEdge = new Uint32Array(nodeCount + 1)
  for (let n = 0; n < nodeCount; n++) firstEdge[n + 1] = firstEdge[n] + nodes[n * fields.length + edgeCountAt] * edgeFields.length
  const typeOf = n => types[nodes[n * fields.length + typeAt]]
  const nameOf = n => strings[nodes[n * fields.length + nameAt]]
  const edgeName = e => (edgeTypes[edges[e + edgeTypeAt]] === 'element' || edgeTypes[edges[e + edgeTypeAt]] === 'hidden'
    ? String(edges[e + edgeNameAt])
    : strings[edges[e + edgeNameAt]])
  /** The node an internal edge of `n` named like `pattern` points at, or -1. */
  const child = (n, pattern) => {
    for (let e = firstEdge[n]; e < firstEdge[n + 1]; e += edgeFields.length) {
      if (edgeTypes[edges[e + edgeTypeAt]] !== 'internal') continue
      if (pattern.test(edgeName(e))) return edges[e + edgeToAt] / fields.length
    }
    return -1
  }
  const isMachineCode = n => typeOf(n) === 'code' && nameOf(n) === 'system / Code'
  const isSharedInfo = n => nameOf(n) === 'system / SharedFunctionInfo'
  const isFeedbackVector = n => nameOf(n) === 'system / FeedbackVector'
  // Retainers of code nodes, the only nodes the upward search climbs
  // through (machine code, its wrappers, feedback vectors, function infos);
  // it stops at the first closure it meets.
  const retainers = new Map()
  const closureName = new Map() // SharedFunctionInfo node -> a closure's name
  for (let n = 0; n < nodeCount; n++) {
    const closure = typeOf(n) === 'closure'
    for (let e = firstEdge[n]; e < firstEdge[n + 1]; e += edgeFields.length) {
      const to = edges[e + edgeToAt] / fields.length
      if (closure && edgeTypes[edges[e + edgeTypeAt]] === 'internal' && edgeName(e) === 'shared' && !closureName.has(to)) closureName.set(to, nameOf(n) || '(anonymous)')
      if (typeOf(to) !== 'code') continue
      let list = retainers.get(to)
      if (!list) retainers.set(to, (list = []))
      list.push(n)
    }
  }
  /** The SharedFunctionInfo of the function that holds machine code `code`, or -1. */
  const ownerOf = code => {
    let frontier = [code]
    const visited = new Set(frontier)
    for (let depth = 0; depth < OWNER_SEARCH_DEPTH && frontier.length; depth++) {
      const next = []
      for (const node of frontier) {
        for (const holder of retainers.get(node) ?? []) {
          if (visited.has(holder)) continue
          visited.add(holder)
          if (typeOf(holder) === 'closure') return child(holder, /^shared$/)
          if (isSharedInfo(holder)) return holder
          if (isFeedbackVector(holder)) return child(holder, /shared_function_info/)
          // Other code (inlining, deoptimization data) points at the
          // functions it inlined, not at its owner: do not climb through it.
          if (!isMachineCode(holder)) next.push(holder)
        }
      }
      frontier = next
    }
    return -1
  }
  const bytesOf = codeNode => {
    let bytes = nodes[codeNode * fields.length + sizeAt]
    for (let e = firstEdge[codeNode]; e < firstEdge[codeNode + 1]; e += edgeFields.length) {
      const to = edges[e + edgeToAt] / fields.length
      if (edgeTypes[edges[e + edgeTypeAt]] === 'internal' && typeOf(to) === 'code' && nameOf(to) !== 'system / Map' && !isMachineCode(to)) bytes += nodes[to * fields.length + sizeAt]
    }
    return bytes
  }
  const byScript = new Map()
  const byFunction = new Map()
  for (let n = 0; n < nodeCount; n++) {
    if (!isMachineCode(n)) continue
    const shared = ownerOf(n)
    const bytes = bytesOf(n)
    if (shared < 0) {
      tally(byScript, NO_OWNER, bytes)
      tally(byFunction, NO_OWNER, bytes)
      continue
    }
    const script = child(shared, /^script/)
    // A script node is named "system / Script / <its URL>".
    const url = script < 0 ? '' : nameOf(script).replace(/^system \/ Script \/ ?/, '')
    let path = url
    try { path = new URL(url).pathname } catch {}
    path = path || '(no URL: V8 and Blink built-ins, evaluated code)'
    tally(byScript, path, bytes)
    tally(byFunction, `${path} ${closureName.get(shared) || '(no live closure)'}`, bytes)
  }
  return { byScript, byFunction }
}

/** Adds one object of `bytes` to `map`'s entry for `key`: { count, bytes }. */
function tally (map, key, bytes) {
  const entry = map.get(key) || { count: 0, bytes: 0 }
  entry.count += 1
  entry.bytes += bytes
  map.set(key, entry)
}

/** Growth of each kind from `before` to `after`: Map key -> { count, bytes, countNow }. */
function growth (before, after) {
  const grown = new Map()
  for (const [key, now] of after) {
    const then = before.get(key) || { count: 0, bytes: 0 }
    grown.set(key, { count: now.count - then.count, bytes: now.bytes - then.bytes, countNow: now.count })
  }
  return grown
}

const origin = await startOrigin({ live: true })
const tracker = await startTracker()
const worker = await startWorker({ vars: { UPSTREAM: origin.url, TRACKERS: tracker.url } })
const viewers = []
try {
  for (let i = 1; i <= 2; i++) {
    viewers.push(await openViewer({ workerUrl: worker.url, index: i, sampleEveryMs: 5000 }))
    await sleep(JOIN_GAP_MS)
  }
  viewers.push(await openViewer({ workerUrl: worker.url, index: 3, p2p: false, sampleEveryMs: 5000 }))
  const sessions = await Promise.all(viewers.map(v => v.context.newCDPSession(v.page)))
  const heapMb = async session => {
    await session.send('HeapProfiler.collectGarbage')
    const { usedSize } = await session.send('Runtime.getHeapUsage')
    return usedSize / 1e6
  }
  const rows = []
  const snapshots = []
  const started = Date.now()
  for (let minute = 1; minute <= MINUTES; minute++) {
    await sleep(started + minute * 60_000 - Date.now())
    const heaps = await Promise.all(sessions.map(heapMb))
    const stats = await Promise.all(viewers.slice(0, 2).map(v => v.page.evaluate(() => window.liveTorrent.stats())))
    // Seconds behind the live edge (hls.js): which viewer is nearer the edge
    // decides which of the two fetches each segment first.
    const latencies = await Promise.all(viewers.map(v => v.page.evaluate(() => window.ltDemo?.latency() ?? null)))
    rows.push({ minute, heaps, stats, latencies })
    process.stderr.write(`[memory] minute ${minute}: ${heaps.map(h => `${h.toFixed(2)} MB`).join(', ')}\n`)
    if (minute === 1 || minute % SNAPSHOT_EVERY === 0 || minute === MINUTES) {
      snapshots.push({ minute, p2p: await heapByKind(sessions[1]), plain: await heapByKind(sessions[2]) })
    }
  }
  console.log(`JS heap of two P2P viewer pages and one plain hls.js page (the reference) after a forced GC, live feed (2 s segments), ${MINUTES} minutes`)
  console.log('| minute | P2P viewer 1 MB | P2P viewer 2 MB | plain viewer MB | segments delivered (1 / 2) | torrents held (1 / 2) | peers (1 / 2) | P2P share of viewer 2 | live latency s (1 / 2 / plain) |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const { minute, heaps, stats, latencies } of rows) {
    const s = stats[1]
    const share = s.p2pBytes + s.httpBytes > 0 ? `${(100 * s.p2pBytes / (s.p2pBytes + s.httpBytes)).toFixed(0)}%` : 'n/a'
    const latency = latencies.map(l => (typeof l === 'number' ? l.toFixed(1) : 'n/a')).join(' / ')
    console.log(`| ${minute} | ${heaps[0].toFixed(2)} | ${heaps[1].toFixed(2)} | ${heaps[2].toFixed(2)} | ${stats[0].segments} / ${s.segments} | ${stats[0].torrents} / ${s.torrents} | ${stats[0].peers} / ${s.peers} | ${share} | ${latency} |`)
  }
  const first = rows[0].heaps
  const last = rows.at(-1).heaps
  const ratio = i => (last[i] / first[i]).toFixed(2)
  const perMinuteKb = i => ((last[i] - first[i]) * 1000 / (MINUTES - 1)).toFixed(0)
  console.log(`\nminute ${MINUTES} / minute 1: P2P viewer 1 ${ratio(0)}x (${perMinuteKb(0)} KB a minute), ` +
    `P2P viewer 2 ${ratio(1)}x (${perMinuteKb(1)} KB a minute), plain ${ratio(2)}x (${perMinuteKb(2)} KB a minute)`)
  const [then, now] = [snapshots[0], snapshots.at(-1)]
  const kb = bytes => `${bytes >= 0 ? '+' : ''}${(bytes / 1000).toFixed(0)} KB`
  console.log('\nHeap snapshots of P2P viewer 2 and the plain viewer: code nodes (machine code, bytecode, function metadata) against ' +
    'all other V8 objects (KB, self sizes), and machine code objects (Sparkplug baseline and optimized) against functions alive')
  console.log('| minute | P2P code KB | P2P other objects KB | P2P machine code / functions | plain code KB | plain other objects KB | plain machine code / functions |')
  console.log('|---|---|---|---|---|---|---|')
  for (const { minute, p2p, plain } of snapshots) {
    const cells = k => `${(k.codeBytes / 1000).toFixed(0)} | ${(k.objectBytes / 1000).toFixed(0)} | ${k.machineCode} / ${k.functions}`
    console.log(`| ${minute} | ${cells(p2p)} | ${cells(plain)} |`)
  }
  console.log(`\nminute ${now.minute} against minute 1: code nodes P2P ${kb(now.p2p.codeBytes - then.p2p.codeBytes)}, ` +
    `plain ${kb(now.plain.codeBytes - then.plain.codeBytes)}; all other V8 objects P2P ${kb(now.p2p.objectBytes - then.p2p.objectBytes)}, ` +
    `plain ${kb(now.plain.objectBytes - then.plain.objectBytes)}`)
  const scriptCell = (k, script) => {
    const entry = k.byScript.get(script) ?? { count: 0, bytes: 0 }
    return `${entry.count} / ${(entry.bytes / 1000).toFixed(0)}`
  }
  for (const page of ['p2p', 'plain']) {
    const scripts = [...now[page].byScript].sort((a, b) => b[1].bytes - a[1].bytes).map(([script]) => script)
    console.log(`\nMachine code of the ${page === 'p2p' ? 'P2P viewer 2' : 'plain viewer'} by the script its functions came from: ` +
      'machine code objects / KB (with their instructions, tables and deoptimization data)')
    console.log(`| script | ${snapshots.map(sn => `minute ${sn.minute}`).join(' | ')} |`)
    console.log(`|---|${snapshots.map(() => '---|').join('')}`)
    for (const script of scripts) console.log(`| ${script.replace(/\|/g, '/').slice(0, 80)} | ${snapshots.map(sn => scriptCell(sn[page], script)).join(' | ')} |`)
  }
  const p2pFunctions = growth(then.p2p.byFunction, now.p2p.byFunction)
  console.log(`\nThe functions of P2P viewer 2 whose machine code grew most from minute 1 to minute ${now.minute} (top ${GROWERS_SHOWN}; script and function name)`)
  console.log('| function | bytes | machine code objects | objects now |')
  console.log('|---|---|---|---|')
  for (const [key, g] of [...p2pFunctions].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, GROWERS_SHOWN)) {
    console.log(`| ${key.replace(/\|/g, '/').slice(0, 90)} | ${g.bytes} | ${g.count} | ${g.countNow} |`)
  }
  const p2pGrowth = growth(then.p2p.kinds, now.p2p.kinds)
  const plainGrowth = growth(then.plain.kinds, now.plain.kinds)
  console.log(`\nWhat grew from minute 1 to minute ${MINUTES} in P2P viewer 2's heap snapshot, beside the plain viewer's (self sizes; top ${GROWERS_SHOWN}; ` +
    '"native" kinds are Blink (C++) objects)')
  console.log('| V8 node type and name | P2P bytes | P2P objects | P2P objects now | plain bytes | plain objects |')
  console.log('|---|---|---|---|---|---|')
  const top = [...p2pGrowth].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, GROWERS_SHOWN)
  for (const [key, g] of top) {
    const plain = plainGrowth.get(key) ?? { bytes: 0, count: 0 }
    console.log(`| ${key.replace(/\|/g, '/').slice(0, 80)} | ${g.bytes} | ${g.count} | ${g.countNow} | ${plain.bytes} | ${plain.count} |`)
  }
  const p2pCode = growth(then.p2p.code, now.p2p.code)
  const plainCode = growth(then.plain.code, now.plain.code)
  console.log(`\nThe code nodes that grew most in the same snapshots, by name (top ${GROWERS_SHOWN})`)
  console.log('| code node name | P2P bytes | P2P objects | P2P objects now | plain bytes | plain objects |')
  console.log('|---|---|---|---|---|---|')
  for (const [key, g] of [...p2pCode].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, GROWERS_SHOWN)) {
    const plain = plainCode.get(key) ?? { bytes: 0, count: 0 }
    console.log(`| ${key.replace(/\|/g, '/') || '(no name)'} | ${g.bytes} | ${g.count} | ${g.countNow} | ${plain.bytes} | ${plain.count} |`)
  }
} finally {
  await Promise.all(viewers.map(v => v.close()))
  await worker.stop()
  await tracker.stop()
  await origin.stop()
}

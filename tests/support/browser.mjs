// Headless Debian Chromium for browser tests, set up as ../shared/ENGINEERING.md
// describes: no background traffic, WebRTC allowed on loopback.
import fs from 'node:fs/promises'

import { chromium } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

let launched = 0
const browserTags = new WeakMap()

/**
 * Launches a browser. Its main process carries a switch of its own
 * (`--lt-browser=<tag>`, ignored by Chromium) so that its processes can be
 * found in /proc (browserCpuSeconds).
 */
export async function launchBrowser () {
  const tag = `${process.pid}-${++launched}`
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      '--allow-loopback-in-peer-connection',
      `--lt-browser=${tag}`
    ]
  })
  browserTags.set(browser, tag)
  return browser
}

export const CLOCK_TICKS_PER_SECOND = 100 // Linux USER_HZ (`getconf CLK_TCK`)

/** The fields of a /proc stat line after the command (in parentheses, may hold spaces). */
export function statFields (stat) {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/**
 * The processes of a launched browser, read from /proc: its main process and
 * every process under it (renderers, GPU, network service), as
 * [{ pid, stat }] (`stat`: statFields of /proc/<pid>/stat). Linux only; null
 * where /proc cannot be read or the browser is not found.
 */
export async function browserProcesses (browser) {
  const tag = browserTags.get(browser)
  if (!tag) return null
  let entries
  try {
    entries = await fs.readdir('/proc')
  } catch {
    return null
  }
  const processes = new Map()
  let root = null
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue
    const stat = await fs.readFile(`/proc/${name}/stat`, 'utf8').catch(() => null)
    if (!stat) continue
    if (root === null) {
      const cmdline = await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')
      if (cmdline.split('\0').includes(`--lt-browser=${tag}`)) root = Number(name)
    }
    processes.set(Number(name), statFields(stat))
  }
  if (root === null) return null
  const inTree = pid => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = Number(processes.get(p)?.[1] ?? 0), hops++) if (p === root) return true
    return false
  }
  return [...processes].filter(([pid]) => inTree(pid)).map(([pid, stat]) => ({ pid, stat }))
}

/**
 * CPU seconds (user + system) used so far by a launched browser, all its
 * processes (browserProcesses). Processes that already exited are not
 * counted. null where /proc cannot be read.
 */
export async function browserCpuSeconds (browser) {
  const processes = await browserProcesses(browser)
  if (!processes) return null
  const ticks = processes.reduce((sum, { stat }) => sum + Number(stat[11]) + Number(stat[12]), 0)
  return ticks / CLOCK_TICKS_PER_SECOND
}

/** What a Chromium process is, from its command line. */
function processKind (argv) {
  const type = argv.find(a => a.startsWith('--type='))?.slice(7)
  if (!type) return 'browser'
  if (type === 'utility') {
    const sub = argv.find(a => a.startsWith('--utility-sub-type='))?.slice(19) ?? ''
    return sub.startsWith('network.') ? 'network service' : `utility ${sub.split('.')[0]}`
  }
  return type === 'gpu-process' ? 'gpu' : type
}

/**
 * CPU ticks of every thread of `browser`: Map of "process kind / thread
 * name" -> ticks. Thread names with a number at the end
 * (ThreadPoolForegroundWorker, ...) are counted together.
 */
export async function threadTicks (browser) {
  const processes = await browserProcesses(browser)
  if (!processes) throw new Error('the browser\'s processes cannot be read from /proc')
  // Every file is read at once, so that the figures are of one moment.
  const threads = await Promise.all(processes.map(async ({ pid }) => {
    // Chromium rewrites its child processes' titles: their arguments are then one space-separated string.
    const kind = processKind((await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split(/[\0 ]/))
    const tids = await fs.readdir(`/proc/${pid}/task`).catch(() => [])
    return Promise.all(tids.map(async tid => {
      const [stat, comm] = await Promise.all([
        fs.readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null),
        fs.readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8').catch(() => '?')
      ])
      return { kind, stat, comm: comm.trim() }
    }))
  }))
  const ticks = new Map()
  for (const { kind, stat, comm } of threads.flat()) {
    if (!stat) continue
    const fields = statFields(stat)
    const key = `${kind} / ${comm.replace(/\d+$/, 'N')}`
    ticks.set(key, (ticks.get(key) ?? 0) + Number(fields[11]) + Number(fields[12]))
  }
  return ticks
}

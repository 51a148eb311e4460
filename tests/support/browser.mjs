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

// The machine's speed, for the caption of a table measured on it: `openssl
// speed sha1` at 16 KiB blocks (SHA-NI where the CPU has it). A shared or
// throttled machine can run at half its usual speed for hours; browser
// figures measured then are comparable within their run, not with a run on a
// faster day, and this number says which kind of day it was.
import { spawnSync } from 'node:child_process'

/** openssl's SHA-1 throughput in MB/s over `seconds`, or null without openssl. */
export function opensslSha1MBps (seconds = 2) {
  const run = spawnSync('openssl', ['speed', '-seconds', String(seconds), '-bytes', '16384', 'sha1'], { encoding: 'utf8' })
  if (run.status !== 0) return null
  const line = run.stdout.split('\n').find(l => /^sha1\s/.test(l))
  const kbPerSecond = line && Number(line.trim().split(/\s+/).pop().replace(/k$/, ''))
  return kbPerSecond ? kbPerSecond * 1000 / 1e6 : null
}

// `make dev`: the local demo. Starts the project's live HLS origin (unless
// UPSTREAM points elsewhere) and the worker under `wrangler dev` in front of
// it, all on 127.0.0.1, and stops everything on Ctrl-C. The worker is its own
// WebTorrent tracker (docs/tracker.md), so nothing else runs.
//
// Environment: PORT (worker, default 8787), ORIGIN_PORT (default 8788),
// UPSTREAM (an existing feed instead of the local origin), TRACKERS (tracker
// URLs for the magnets instead of the built-in tracker; may be empty),
// NPM_TRACKER=1 (run the npm bittorrent-tracker server on TRACKER_PORT,
// default 8000, and use it instead, as before the built-in tracker).
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { startOrigin } from './origin.mjs'
import { startTracker } from './tracker.mjs'
import { freePort } from '../tests/support/harness.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const port = Number(process.env.PORT || 8787)
const stateDir = path.join(root, '.dev')

let origin = null
let tracker = null
let upstream = process.env.UPSTREAM
let trackers = process.env.TRACKERS
try {
  if (!upstream) {
    origin = await startOrigin({ port: Number(process.env.ORIGIN_PORT || 8788), dir: path.join(stateDir, 'origin') })
    upstream = origin.url
    console.log(`[dev] local live origin: ${origin.url}/live/index.m3u8 (ffmpeg, 2 s segments, 6-segment window)`)
  }
  if (trackers === undefined && process.env.NPM_TRACKER === '1') {
    tracker = await startTracker({ port: Number(process.env.TRACKER_PORT || 8000) })
    trackers = tracker.url
    console.log(`[dev] npm WebTorrent tracker: ${tracker.url}`)
  }
} catch (error) {
  console.error(`[dev] ${error.message}`)
  await tracker?.stop()
  await origin?.stop()
  process.exit(1)
}

const args = [
  'dev', '--ip', '127.0.0.1', '--port', String(port),
  '--inspector-port', String(await freePort()),
  '--show-interactive-dev-session=false',
  '--persist-to', path.join(stateDir, 'wrangler-state'),
  '--var', `UPSTREAM:${upstream}`,
  ...(trackers === undefined ? [] : ['--var', `TRACKERS:${trackers}`])
]

const wrangler = spawn(path.join(root, 'node_modules/.bin/wrangler'), args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }
})
console.log(`[dev] worker: http://127.0.0.1:${port}/ in front of ${upstream}`)
console.log(`[dev] trackers: ${trackers === undefined ? `built in, ws://127.0.0.1:${port}/_lt/tracker/<stream>` : trackers || 'none'}`)
console.log(`[dev] annotated playlist: http://127.0.0.1:${port}/live/index.m3u8`)
console.log(`[dev] demo player: http://127.0.0.1:${port}/_lt/?src=/live/index.m3u8`)

let stopping = false
async function stop (code) {
  if (stopping) return
  stopping = true
  wrangler.kill('SIGTERM')
  await tracker?.stop()
  await origin?.stop()
  process.exit(code)
}
process.on('SIGINT', () => stop(0))
process.on('SIGTERM', () => stop(0))
wrangler.on('exit', code => stop(code ?? 0))

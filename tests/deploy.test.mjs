// The deploy path, offline: `wrangler deploy --dry-run` validates
// wrangler.toml, bundles the worker and the assets, and lists the bindings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

import { REPO_ROOT } from './support/harness.mjs'

test('wrangler deploy --dry-run accepts the configuration and the bundle fits the free plan', async () => {
  const outdir = await fs.mkdtemp(path.join(os.tmpdir(), 'lt-deploy-'))
  try {
    const { stdout, stderr } = await promisify(execFile)(
      path.join(REPO_ROOT, 'node_modules/.bin/wrangler'), ['deploy', '--dry-run', '--outdir', outdir],
      { cwd: REPO_ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: 'false' }, timeout: 300_000 })
    const output = stdout + stderr
    assert.match(output, /env\.SEGMENTS .*KV Namespace/)
    assert.match(output, /env\.UPSTREAM /)
    // TRACKERS is unset: magnets name the worker's own tracker, this object.
    assert.match(output, /env\.TRACKER \(StreamTracker\) .*Durable Object/)
    assert.doesNotMatch(output, /env\.TRACKERS /)
    const [, gzipKiB] = output.match(/Total Upload: [\d.]+ KiB \/ gzip: ([\d.]+) KiB/)
    console.log(`upload size, gzip: ${gzipKiB} KiB`)
    assert.ok(Number(gzipKiB) < 3 * 1024, 'under the 3 MB gzip limit of the free plan')
  } finally {
    await fs.rm(outdir, { recursive: true, force: true })
  }
})

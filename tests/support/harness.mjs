/**
 * Shared helpers for the integration tests (node:test).
 *
 *   freePort()                  a free TCP port on 127.0.0.1
 *   startWorker({...})          runs `wrangler dev` for this repo, resolves when it answers
 *   startTracker({...})         the local WebTorrent tracker (re-exported from scripts/tracker.mjs)
 *   fetchText(url, init)        { status, headers, text }
 *   fetchBytes(url, init)       { status, headers, bytes }
 *   fetchAll(url, init)         { status, headers, bytes, text }
 *   eventually(check, options)  polls check() until it returns something truthy, bounded
 *   sleep(ms)
 *
 * Everything here talks to loopback only: the fetch helpers refuse any other
 * host and do not follow redirects unless asked to.
 */
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitHooks } from '../../scripts/exit-hooks.mjs';

export { startTracker } from '../../scripts/tracker.mjs';

const LOOPBACK_HOST = '127.0.0.1';

/** Root of the repository (this file is tests/support/harness.mjs). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const WRANGLER_BIN = path.join(REPO_ROOT, 'node_modules', '.bin', 'wrangler');

/** Path polled to decide that `wrangler dev` is serving. */
const HEALTH_PATH = '/_lt/health';
const HEALTH_POLL_INTERVAL_MS = 250;
/** Per-attempt bound: wrangler may hold a request until the worker is loaded. */
const HEALTH_REQUEST_TIMEOUT_MS = 5_000;
const STOP_GRACE_MS = 10_000;
/** Lines of wrangler output kept for output() and error messages. */
const OUTPUT_LINES_KEPT = 5_000;
const OUTPUT_LINES_IN_ERRORS = 60;

/** Marker wrangler prints (prefixed to every line) while it runs the build command. */
const CUSTOM_BUILD_PREFIX = '[custom build]';

const ANSI_ESCAPE = /\u001b\[[0-9;?]*[ -/]*[@-~]/g;

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Ports freePort() has handed out in this process; never handed out twice. */
const portsHandedOut = new Set();
const FREE_PORT_ATTEMPTS = 50;

function portTheOsOffers() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, LOOPBACK_HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Asks the OS for a currently free TCP port on 127.0.0.1 that this process
 * has not been given before. The OS may offer a port it just offered (it is
 * free again once the probe closes), so two calls in a row could otherwise
 * return the same port: wrangler's HTTP and inspector ports once did. Another
 * process could still take the port before it is used; startWorker retries
 * on that.
 */
export async function freePort() {
  for (let attempt = 0; attempt < FREE_PORT_ATTEMPTS; attempt++) {
    const port = await portTheOsOffers();
    if (!portsHandedOut.has(port)) {
      portsHandedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: the OS offered only ports already handed out, ${FREE_PORT_ATTEMPTS} times`);
}

// ---------------------------------------------------------------------------
// Loopback-only fetch helpers
// ---------------------------------------------------------------------------

function isLoopbackHostname(hostname) {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function assertLoopbackUrl(url) {
  const parsed = new URL(url);
  if (!isLoopbackHostname(parsed.hostname)) {
    throw new Error(`test harness: refusing to fetch non-loopback URL ${parsed.href}`);
  }
}

/**
 * fetch() restricted to loopback. Redirects are returned, not followed
 * (`redirect: 'manual'`), unless `init.redirect` says otherwise, so a
 * Location header can never take a test off this machine unnoticed.
 */
async function loopbackFetch(url, init = {}) {
  assertLoopbackUrl(url);
  return fetch(url, { redirect: 'manual', ...init });
}

/** @returns {Promise<{status: number, headers: Headers, text: string}>} */
export async function fetchText(url, init) {
  const response = await loopbackFetch(url, init);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** @returns {Promise<{status: number, headers: Headers, bytes: Buffer}>} */
export async function fetchBytes(url, init) {
  const response = await loopbackFetch(url, init);
  return {
    status: response.status,
    headers: response.headers,
    bytes: Buffer.from(await response.arrayBuffer()),
  };
}

/** @returns {Promise<{status: number, headers: Headers, bytes: Buffer, text: string}>} */
export async function fetchAll (url, init) {
  const { status, headers, bytes } = await fetchBytes(url, init)
  return { status, headers, bytes, text: bytes.toString('utf8') }
}

/**
 * Polls `check` until it returns a truthy value, which is returned; throws
 * after `timeoutMs`.
 */
export async function eventually (check, { timeoutMs = 20_000, intervalMs = 250, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(intervalMs)
  }
}

// ---------------------------------------------------------------------------
// wrangler dev
// ---------------------------------------------------------------------------

/** Workers still running; killed (whole process group) if the test process exits. */
const runningWorkers = new Set();

/** Sends `signal` to a process group; false if the group no longer exists. */
function signalProcessGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

function killAllWorkersNow() {
  for (const worker of runningWorkers) signalProcessGroup(worker.pid, 'SIGKILL');
  runningWorkers.clear();
}

const hooks = exitHooks(killAllWorkersNow);
const installExitHooks = hooks.install;
const removeExitHooks = hooks.remove;

/** Collects a child's output as lines (ANSI colours stripped), keeping the last N. */
function createOutputLog({ maxLines, onLine }) {
  const lines = [];
  const partials = new Map();
  const addLine = (line) => {
    lines.push(line);
    if (lines.length > maxLines) lines.shift();
    onLine(line);
  };
  return {
    attach(stream, name) {
      stream.setEncoding('utf8');
      partials.set(name, '');
      stream.on('data', (chunk) => {
        const parts = (partials.get(name) + chunk.replace(ANSI_ESCAPE, '')).split(/\r?\n|\r/);
        partials.set(name, parts.pop());
        for (const line of parts) addLine(line);
      });
      stream.on('end', () => {
        const rest = partials.get(name);
        if (rest) addLine(rest);
        partials.set(name, '');
      });
    },
    text(lastLines = maxLines) {
      const pending = [...partials.values()].filter((partial) => partial !== '');
      return [...lines, ...pending].slice(-lastLines).join('\n');
    },
  };
}

/**
 * Starts `wrangler dev` for this repository on 127.0.0.1 and waits until it
 * answers HTTP on `/_lt/health` (any status counts as "up").
 *
 * wrangler may first run the project's build command (wrangler.toml [build]);
 * while it does (lines prefixed "[custom build]"), only `buildTimeoutMs`
 * applies; `readyTimeoutMs` counts from spawn, restarted when the build ends.
 *
 * If wrangler or workerd cannot bind a port this function chose (another
 * process took it after freePort()), it starts again on new ports, up to
 * START_ATTEMPTS_ON_PORT_COLLISION times in all.
 *
 * @param {object} [options]
 * @param {Record<string, string>} [options.vars]  each becomes `--var NAME:VALUE`
 * @param {string}  [options.persistDir]  `--persist-to` dir; default: fresh temp dir,
 *                                        removed again by stop()
 * @param {number}  [options.port]        HTTP port; default: a free one
 * @param {boolean} [options.log=false]   echo wrangler's output to stderr
 * @param {number}  [options.readyTimeoutMs=120000]  budget after the build
 * @param {number}  [options.buildTimeoutMs=900000]  budget for the build itself
 * @param {string}  [options.cwd=REPO_ROOT] project directory wrangler runs in
 * @param {string}  [options.config]      a wrangler configuration file other than wrangler.toml
 * @returns {Promise<{url: string, port: number, pid: number, stop: () => Promise<void>, output: () => string}>}
 *   `pid` is wrangler's, which leads the process group of everything it started (workerd).
 */
export async function startWorker(options = {}) {
  for (let attempt = 1; ; attempt++) {
    const httpPort = options.port ?? (await freePort());
    const inspectorPort = await freePort();
    try {
      return await startWorkerOn(httpPort, inspectorPort, options);
    } catch (error) {
      // Another process took a port we chose between freePort() and wrangler's
      // bind: choose again. A port the caller fixed is the caller's problem.
      const taken = error.portInUse;
      const ours = taken === inspectorPort || (taken === httpPort && options.port === undefined);
      if (!ours || attempt >= START_ATTEMPTS_ON_PORT_COLLISION) throw error;
    }
  }
}

const START_ATTEMPTS_ON_PORT_COLLISION = 3;
const PORT_IN_USE = /Address already in use[^\n]*?127\.0\.0\.1:(\d+)/;

async function startWorkerOn(httpPort, inspectorPort, {
  vars = {},
  persistDir,
  log = false,
  readyTimeoutMs = 120_000,
  buildTimeoutMs = 15 * 60_000,
  cwd = REPO_ROOT,
  config,
}) {
  const ownsPersistDir = persistDir === undefined;
  const persistTo = ownsPersistDir
    ? await fsp.mkdtemp(path.join(os.tmpdir(), 'lt-wrangler-state-'))
    : persistDir;

  const args = [
    'dev',
    '--ip', LOOPBACK_HOST,
    '--port', String(httpPort),
    '--inspector-port', String(inspectorPort),
    '--show-interactive-dev-session=false',
    '--persist-to', persistTo,
  ];
  if (config !== undefined) args.push('--config', config);
  for (const [name, value] of Object.entries(vars)) args.push('--var', `${name}:${value}`);

  // Deadline bookkeeping: paused while the custom build runs.
  let buildRunning = false;
  let readyDeadline = Date.now() + readyTimeoutMs;
  let buildDeadline = Infinity;
  const output = createOutputLog({
    maxLines: OUTPUT_LINES_KEPT,
    onLine(line) {
      if (log) process.stderr.write(`[wrangler] ${line}\n`);
      if (line.includes(`${CUSTOM_BUILD_PREFIX} Running:`)) {
        buildRunning = true;
        buildDeadline = Date.now() + buildTimeoutMs;
      } else if (buildRunning && !line.includes(CUSTOM_BUILD_PREFIX)) {
        buildRunning = false;
        readyDeadline = Date.now() + readyTimeoutMs;
      }
    },
  });

  // detached: own process group, so stop() can kill wrangler, workerd and any
  // build processes together with one kill(-pgid).
  const wrangler = spawn(WRANGLER_BIN, args, {
    cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      CLOUDFLARE_CF_FETCH_ENABLED: 'false',
      WRANGLER_SEND_METRICS: 'false',
      CI: 'true',
    },
  });
  output.attach(wrangler.stdout, 'stdout');
  output.attach(wrangler.stderr, 'stderr');

  let exitDescription = null;
  const exited = new Promise((resolve) => {
    wrangler.once('exit', (code, signal) => {
      exitDescription ??= signal ? `signal ${signal}` : `exit code ${code}`;
      runningWorkers.delete(wrangler);
      resolve();
    });
    wrangler.once('error', (error) => {
      exitDescription = `spawn error: ${error.message}`;
      runningWorkers.delete(wrangler);
      resolve();
    });
  });
  if (wrangler.pid !== undefined) {
    runningWorkers.add(wrangler);
    installExitHooks();
  }

  let stopPromise = null;
  const stop = () => {
    stopPromise ??= (async () => {
      if (wrangler.pid !== undefined && exitDescription === null) {
        signalProcessGroup(wrangler.pid, 'SIGTERM');
        const exitedInTime = await Promise.race([exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
        if (!exitedInTime) {
          signalProcessGroup(wrangler.pid, 'SIGKILL');
          await exited;
        }
      }
      await exited;
      // wrangler is gone; make sure nothing it started (workerd, build) lingers.
      if (wrangler.pid !== undefined) signalProcessGroup(wrangler.pid, 'SIGKILL');
      if (runningWorkers.size === 0) removeExitHooks();
      if (ownsPersistDir) await fsp.rm(persistTo, { recursive: true, force: true }).catch(() => {});
    })();
    return stopPromise;
  };

  const url = `http://${LOOPBACK_HOST}:${httpPort}`;
  const failure = async (reason) => {
    await stop();
    const error = new Error(
      `wrangler dev: ${reason}\ncommand: ${WRANGLER_BIN} ${args.join(' ')}\n` +
        `last ${OUTPUT_LINES_IN_ERRORS} lines of output:\n${output.text(OUTPUT_LINES_IN_ERRORS)}`,
    );
    const inUse = PORT_IN_USE.exec(output.text());
    if (inUse) error.portInUse = Number(inUse[1]);
    return error;
  };

  for (;;) {
    if (exitDescription !== null) throw await failure(`exited before it was ready (${exitDescription})`);
    try {
      const response = await fetch(`${url}${HEALTH_PATH}`, {
        redirect: 'manual',
        signal: AbortSignal.timeout(HEALTH_REQUEST_TIMEOUT_MS),
      });
      await response.arrayBuffer().catch(() => {});
      break; // Any HTTP response means it is serving.
    } catch {
      // Not listening yet.
    }
    const now = Date.now();
    if (buildRunning && now > buildDeadline) {
      throw await failure(`build command still running after ${buildTimeoutMs} ms`);
    }
    if (!buildRunning && now > readyDeadline) {
      throw await failure(`no HTTP response on ${url}${HEALTH_PATH} within ${readyTimeoutMs} ms`);
    }
    await sleep(HEALTH_POLL_INTERVAL_MS);
  }

  return { url, port: httpPort, pid: wrangler.pid, stop, output: () => output.text() };
}

#!/usr/bin/env node
/**
 * Local HLS origin: the "CDN" the live-torrent worker sits in front of during
 * `make dev` and in the integration tests.
 *
 * It is two things in one process:
 *   - a static HTTP file server (GET/HEAD, single byte ranges, ETags, per-path
 *     hit counters) confined to one directory, bound to 127.0.0.1 only;
 *   - optionally a real live HLS feed: ffmpeg encodes a lavfi test pattern and
 *     tone in real time into `<dir>/live/` (sliding-window playlist, old
 *     segments deleted unless `keepSegments`), plus a static master playlist
 *     next to it.
 * It also serves synthetic, deterministic VOD playlists and segments under
 * `/synthetic/` so tests can check bytes without a live encoder, and
 * misbehaviour on demand under `/faults/` (see faultResponse).
 *
 * Module use:  const origin = await startOrigin({ live: false }); ...; await origin.stop();
 * CLI use:     node scripts/origin.mjs [--port N] [--dir DIR] [--no-live] [--verbose]
 *              prints one JSON line {"url": ..., "live": ...} on stdout once ready.
 *
 * Only Node built-ins are used. Nothing here talks to anything but loopback.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { exitHooks } from './exit-hooks.mjs';

/** Interface every socket binds to: this machine has no other network. */
const LOOPBACK_HOST = '127.0.0.1';

/** How long `startOrigin` waits for the live playlist to list a segment. */
const DEFAULT_LIVE_READY_TIMEOUT_MS = 30_000;

/** How long `stop()` lets ffmpeg shut down after SIGTERM before SIGKILL. */
const FFMPEG_STOP_GRACE_MS = 5_000;

/** Frame rate of the generated test pattern (keyframe interval is derived from it). */
const LIVE_FRAME_RATE = 25;

/** Largest body `/synthetic/sized/<bytes>.bin` will generate. */
const MAX_SIZED_BYTES = 8 * 1024 * 1024;

/** Largest segment count `/synthetic/vod-<N>.m3u8` will list. */
const MAX_SYNTHETIC_SEGMENTS = 100_000;

/** `/faults/...`, also under one directory (`/base/faults/...`) for a worker whose UPSTREAM has a path. */
const FAULTS_PATH = /^(?:\/[^/]+)?\/faults\//;

/** Longest delay `/faults/slow/<ms>/...` will hold a request. */
const MAX_FAULT_DELAY_MS = 120_000;

/** Requests remembered for `requests()` (method, raw target, headers). */
const REQUEST_LOG_SIZE = 500;

/** Path prefix of the control endpoints (never counted as hits). */
const CONTROL_PREFIX = '/_origin/';

const CONTENT_TYPES = new Map([
  ['.m3u8', 'application/vnd.apple.mpegurl'],
  ['.ts', 'video/mp2t'],
  ['.m4s', 'video/iso.segment'],
  ['.mp4', 'video/mp4'],
  ['.aac', 'audio/aac'],
  ['.key', 'application/octet-stream'],
  ['.html', 'text/html; charset=utf-8'],
]);
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

const PLAYLIST_CACHE_CONTROL = 'max-age=1';
const MEDIA_CACHE_CONTROL = 'public, max-age=3600';

// ---------------------------------------------------------------------------
// Deterministic synthetic bytes
// ---------------------------------------------------------------------------

/** 32-bit integer finaliser (the "lowbias32" hash): a good, cheap bit mixer. */
function mix32(value) {
  let x = value >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Deterministic pseudo-random bytes: the same (seed, length) always gives the
 * same bytes, different seeds give unrelated bytes.
 *
 * The generator is counter based (byte p is a hash of seed and p / 4), so any
 * slice can be produced directly; `offset` returns bytes [offset, offset+length)
 * of the seed's stream, which is what Range responses use. With the default
 * offset of 0 this is exactly the body the origin serves.
 *
 * Seeds used by the origin: `/synthetic/seg-<i>.bin` uses seed i,
 * `/synthetic/sized/<bytes>.bin` uses seed <bytes>.
 *
 * @param {number} seed    integer in [0, 2^32)
 * @param {number} length  number of bytes, >= 0
 * @param {number} [offset=0] position in the seed's byte stream to start at
 * @returns {Buffer}
 */
export function syntheticBytes(seed, length, offset = 0) {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`syntheticBytes: seed must be an integer in [0, 2^32), got ${seed}`);
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`syntheticBytes: length must be a non-negative integer, got ${length}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`syntheticBytes: offset must be a non-negative integer, got ${offset}`);
  }
  const seedKey = mix32(seed ^ 0x5bd1e995);
  const bytes = Buffer.allocUnsafe(length);
  let wordIndex = -1;
  let word = 0;
  for (let i = 0; i < length; i++) {
    const position = offset + i;
    const index = Math.floor(position / 4);
    if (index !== wordIndex) {
      wordIndex = index;
      word = mix32(mix32((index + seedKey) >>> 0) ^ seedKey);
    }
    bytes[i] = (word >>> ((position % 4) * 8)) & 0xff;
  }
  return bytes;
}

/** Length in bytes of `/synthetic/seg-<index>.bin`. */
export function syntheticSegmentLength(index) {
  return 4096 + (index % 7) * 1000;
}

/** Text of a VOD media playlist listing `segmentUris`, 2 s per segment. */
function vodPlaylist(segmentUris) {
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:3',
    '#EXT-X-PLAYLIST-TYPE:VOD',
    '#EXT-X-TARGETDURATION:2',
    '#EXT-X-MEDIA-SEQUENCE:0',
  ];
  for (const uri of segmentUris) lines.push('#EXTINF:2.000,', uri);
  lines.push('#EXT-X-ENDLIST', '');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// Cleanup of child processes and temp dirs when this process goes away
// ---------------------------------------------------------------------------

/** ffmpeg processes still running, killed if this process exits or is signalled. */
const runningEncoders = new Set();
/** Temp dirs created by startOrigin that have not been removed yet. */
const ownedTempDirs = new Set();

function killEverythingNow() {
  for (const encoder of runningEncoders) {
    try {
      encoder.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const dir of ownedTempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // Best effort on the way out.
    }
  }
}

const hooks = exitHooks(killEverythingNow);
const installExitHooks = hooks.install;
const removeExitHooks = hooks.remove;

/** Drops the hooks again once there is nothing left to clean up. */
function removeExitHooksIfIdle() {
  if (runningEncoders.size === 0 && ownedTempDirs.size === 0) removeExitHooks();
}

// ---------------------------------------------------------------------------
// Live feed (ffmpeg)
// ---------------------------------------------------------------------------

/** Absolute path of an executable found on PATH, or null. */
function findOnPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return null;
}

/** Keeps the last `maxLines` lines written to a stream, for error messages. */
function createLineTail(maxLines) {
  const lines = [];
  let partial = '';
  return {
    push(chunk) {
      const parts = (partial + chunk).split(/\r?\n|\r/);
      partial = parts.pop();
      for (const line of parts) {
        lines.push(line);
        if (lines.length > maxLines) lines.shift();
      }
    },
    text() {
      return [...lines, partial].filter((line) => line !== '').join('\n');
    },
  };
}

/** Master playlist with a single variant pointing at the live media playlist. */
function liveMasterPlaylist() {
  return [
    '#EXTM3U',
    '#EXT-X-VERSION:3',
    // 800k video + 64k audio + MPEG-TS overhead. Baseline@3.0 H.264 + AAC-LC.
    '#EXT-X-STREAM-INF:BANDWIDTH=1000000,AVERAGE-BANDWIDTH=900000,RESOLUTION=640x360,' +
      `FRAME-RATE=${LIVE_FRAME_RATE}.000,CODECS="avc1.42c01e,mp4a.40.2"`,
    'index.m3u8',
    '',
  ].join('\n');
}

/** Number of media segment URIs listed in a media playlist text. */
function countPlaylistSegments(playlistText) {
  return playlistText
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '' && !line.startsWith('#')).length;
}

/**
 * Starts ffmpeg writing a live HLS feed into `<rootDir>/live/` (emptied first,
 * so a stale playlist from an earlier run can never look "ready").
 * Resolves once the playlist lists at least one segment.
 */
async function startLiveFeed({ rootDir, segmentSeconds, listSize, keepSegments, readyTimeoutMs }) {
  const liveDir = path.join(rootDir, 'live');
  await fsp.rm(liveDir, { recursive: true, force: true });
  await fsp.mkdir(liveDir, { recursive: true });
  await fsp.writeFile(path.join(liveDir, 'master.m3u8'), liveMasterPlaylist());

  const playlistPath = path.join(liveDir, 'index.m3u8');
  const framesPerSegment = Math.max(1, Math.round(segmentSeconds * LIVE_FRAME_RATE));
  const ffmpegArgs = [
    '-hide_banner', '-nostdin', '-nostats', '-loglevel', 'warning',
    // Inputs, read at real-time pace (-re) so the feed is actually live.
    '-re', '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=${LIVE_FRAME_RATE}`,
    '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
    '-map', '0:v:0', '-map', '1:a:0',
    // Video: cheap H.264, one keyframe at the start of every segment.
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency',
    '-profile:v', 'baseline', '-level:v', '3.0', '-pix_fmt', 'yuv420p',
    '-b:v', '800k',
    '-g', String(framesPerSegment), '-keyint_min', String(framesPerSegment), '-sc_threshold', '0',
    // One encoder thread: the test machines have two cores and run wrangler too.
    '-threads', '1', '-filter_threads', '1',
    // Audio.
    '-c:a', 'aac', '-b:a', '64k',
    // Sliding-window live HLS; temp_file => playlist/segments appear atomically.
    // delete_segments removes segments that left the window, unless the caller
    // wants every segment kept on disk (to compare what viewers received).
    '-f', 'hls',
    '-hls_time', String(segmentSeconds),
    '-hls_list_size', String(listSize),
    '-hls_flags', keepSegments ? 'temp_file' : 'delete_segments+temp_file',
    '-hls_segment_filename', path.join(liveDir, 'seg-%05d.ts'),
    playlistPath,
  ];

  // setpriv --pdeathsig makes the kernel kill ffmpeg if this process dies
  // without running any handler (SIGKILL, crash); it then execs ffmpeg, so the
  // child pid *is* ffmpeg. Without setpriv, the exit/signal hooks still apply.
  const ffmpegPath = findOnPath('ffmpeg') ?? '/usr/bin/ffmpeg';
  const setprivPath = findOnPath('setpriv');
  const [command, args] = setprivPath
    ? [setprivPath, ['--pdeathsig', 'SIGKILL', '--', ffmpegPath, ...ffmpegArgs]]
    : [ffmpegPath, ffmpegArgs];

  const stderrTail = createLineTail(40);
  // Own process group, so a terminal Ctrl-C reaches only us and we stop ffmpeg.
  const encoder = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  encoder.stderr.setEncoding('utf8');
  encoder.stderr.on('data', (chunk) => stderrTail.push(chunk));
  runningEncoders.add(encoder);
  installExitHooks();

  let exitDescription = null;
  const exited = new Promise((resolve) => {
    const onGone = (code, signal) => {
      exitDescription ??= signal ? `signal ${signal}` : `exit code ${code}`;
      runningEncoders.delete(encoder);
      removeExitHooksIfIdle();
      resolve();
    };
    encoder.once('exit', onGone);
    encoder.once('error', (error) => {
      exitDescription = `spawn error: ${error.message}`;
      onGone(null, null);
    });
  });
  if (encoder.pid !== undefined) {
    try {
      os.setPriority(encoder.pid, 10); // Be nice to wrangler and the tests.
    } catch {
      // Not fatal.
    }
  }

  let stopping = false;
  const stop = async () => {
    stopping = true;
    if (encoder.exitCode !== null || encoder.signalCode !== null || !runningEncoders.has(encoder)) {
      await exited;
      return;
    }
    encoder.kill('SIGTERM');
    const timer = setTimeout(() => encoder.kill('SIGKILL'), FFMPEG_STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };

  const describeFailure = (what) =>
    `${what}\nffmpeg command: ${command} ${args.join(' ')}\n` +
    `ffmpeg stderr (tail):\n${stderrTail.text() || '(empty)'}`;

  // Wait (bounded) for the first complete segment to be listed.
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exitDescription !== null) {
      throw new Error(describeFailure(`live feed: ffmpeg ended before the first segment (${exitDescription})`));
    }
    const playlist = await fsp.readFile(playlistPath, 'utf8').catch(() => '');
    if (countPlaylistSegments(playlist) >= 1) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        describeFailure(`live feed: ${playlistPath} listed no segment within ${readyTimeoutMs} ms`),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  // Once running, a dying encoder is worth a loud message: the feed goes stale.
  exited.then(() => {
    if (!stopping) {
      process.stderr.write(`[origin] ${describeFailure(`ffmpeg exited unexpectedly (${exitDescription})`)}\n`);
    }
  });

  return { stop };
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

function contentTypeFor(filePath) {
  return CONTENT_TYPES.get(path.extname(filePath).toLowerCase()) ?? DEFAULT_CONTENT_TYPE;
}

function cacheControlFor(filePath) {
  return path.extname(filePath).toLowerCase() === '.m3u8' ? PLAYLIST_CACHE_CONTROL : MEDIA_CACHE_CONTROL;
}

/**
 * Splits a request target into its path and query. `pathname` is
 * dot-segment-normalised (WHATWG URL rules) and percent-decoded; it is null
 * when the encoding is malformed (then `rawPathname` is still available).
 */
function parseRequestTarget(requestUrl) {
  let url;
  try {
    // Prefixing keeps "//host/x" a path instead of a protocol-relative URL.
    url = requestUrl.startsWith('/')
      ? new URL(`http://origin.invalid${requestUrl}`)
      : new URL(requestUrl);
  } catch {
    return { rawPathname: requestUrl, pathname: null, searchParams: new URLSearchParams() };
  }
  let pathname = null;
  try {
    pathname = decodeURIComponent(url.pathname);
  } catch {
    // Malformed percent-encoding.
  }
  return { rawPathname: url.pathname, pathname, searchParams: url.searchParams };
}

/**
 * Maps a decoded URL path to a file under `rootDir`, or null if it would
 * leave `rootDir` (e.g. "/..%2f..%2fetc/passwd" decodes to "/../../etc/passwd").
 */
function resolveInside(rootDir, urlPath) {
  if (urlPath.includes('\0')) return null;
  const absolute = path.resolve(rootDir, `.${urlPath}`);
  if (absolute !== rootDir && !absolute.startsWith(rootDir + path.sep)) return null;
  return absolute;
}

/**
 * Interprets a `Range` header against a representation of `size` bytes.
 * Only a single `bytes=` range is honoured (a-b, a-, -n).
 * @returns {{start: number, end: number} | 'unsatisfiable' | null}
 *   inclusive byte positions; null means "ignore the header, send it all".
 */
function parseByteRange(header, size) {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  if (match[1] === '') {
    const suffixLength = Number(match[2]);
    if (suffixLength === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffixLength), end: size - 1 };
  }
  const start = Number(match[1]);
  const lastRequested = match[2] === '' ? Infinity : Number(match[2]);
  if (lastRequested < start) return null; // Syntactically invalid: RFC 9110 says ignore it.
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(lastRequested, size - 1) };
}

/** True if an If-None-Match header value matches `etag` (weak comparison). */
function ifNoneMatchHits(headerValue, etag) {
  if (headerValue.trim() === '*') return true;
  const opaque = (tag) => tag.trim().replace(/^W\//, '');
  return headerValue.split(',').some((candidate) => opaque(candidate) === opaque(etag));
}

/**
 * Sends one representation with conditional and range handling.
 *
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {object} entity
 * @param {number} entity.size
 * @param {string} entity.etag           strong ETag, quoted
 * @param {Date}   entity.lastModified
 * @param {string} entity.contentType
 * @param {string} entity.cacheControl
 * @param {(start: number, end: number) => import('node:stream').Readable | Buffer} entity.body
 *        produces bytes [start, end] (inclusive); called at most once
 * @param {() => void} [entity.discard]  releases resources if `body` is never called
 */
function sendEntity(req, res, entity) {
  const headers = {
    'Content-Type': entity.contentType,
    'Cache-Control': entity.cacheControl,
    ETag: entity.etag,
    'Last-Modified': entity.lastModified.toUTCString(),
    'Accept-Ranges': 'bytes',
  };
  const discard = () => entity.discard?.();

  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch && ifNoneMatchHits(ifNoneMatch, entity.etag)) {
    discard();
    res.writeHead(304, headers).end();
    return;
  }

  // Range applies to GET only, and If-Range must match for it to apply.
  let range = null;
  const ifRange = req.headers['if-range'];
  const ifRangeMatches =
    !ifRange || ifRange === entity.etag || ifRange === headers['Last-Modified'];
  if (req.method === 'GET' && req.headers.range && ifRangeMatches) {
    range = parseByteRange(req.headers.range, entity.size);
  }
  if (range === 'unsatisfiable') {
    discard();
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${entity.size}`, 'Content-Length': 0 }).end();
    return;
  }

  const { start, end } = range ?? { start: 0, end: entity.size - 1 };
  const length = entity.size === 0 ? 0 : end - start + 1;
  headers['Content-Length'] = length;
  if (range) headers['Content-Range'] = `bytes ${start}-${end}/${entity.size}`;
  res.writeHead(range ? 206 : 200, headers);

  if (req.method === 'HEAD' || length === 0) {
    discard();
    res.end();
    return;
  }
  const body = entity.body(start, end);
  if (Buffer.isBuffer(body)) {
    res.end(body);
  } else {
    // pipeline destroys the file stream if the client goes away mid-body.
    pipeline(body, res, () => {});
  }
}

function sendText(res, status, text, extraHeaders = {}) {
  const body = Buffer.from(text);
  res
    .writeHead(status, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': body.length,
      'Cache-Control': 'no-store',
      ...extraHeaders,
    })
    .end(res.req.method === 'HEAD' ? undefined : body);
}

/** A generated (in-memory) representation for `sendEntity`. */
function generatedEntity({ bytes, contentType, cacheControl, lastModified }) {
  return {
    size: bytes.length,
    etag: `"g-${createHash('sha1').update(bytes).digest('hex').slice(0, 20)}"`,
    lastModified,
    contentType,
    cacheControl,
    body: (start, end) => bytes.subarray(start, end + 1),
  };
}

/**
 * A synthetic byte body: seeded pseudo-random bytes produced on demand, so a
 * Range request generates only the requested slice.
 */
function syntheticEntity({ seed, size, lastModified }) {
  return {
    size,
    etag: `"s-${seed.toString(16)}-${size.toString(16)}"`,
    lastModified,
    contentType: DEFAULT_CONTENT_TYPE,
    cacheControl: MEDIA_CACHE_CONTROL,
    body: (start, end) => syntheticBytes(seed, end - start + 1, start),
  };
}

/** Parses a decimal path component as a bounded integer, or null. */
function parseBoundedInteger(text, min, max) {
  if (!/^\d{1,10}$/.test(text)) return null;
  const value = Number(text);
  return value >= min && value <= max ? value : null;
}

/**
 * Builds the entity for a `/synthetic/...` path, or returns an HTTP status
 * number (404/400) when the path is not a valid synthetic resource.
 */
function syntheticResource(relativePath, searchParams, lastModified) {
  const playlist = (text) =>
    generatedEntity({
      bytes: Buffer.from(text),
      contentType: CONTENT_TYPES.get('.m3u8'),
      cacheControl: PLAYLIST_CACHE_CONTROL,
      lastModified,
    });

  let match = /^vod-(\d+)\.m3u8$/.exec(relativePath);
  if (match) {
    const segmentCount = parseBoundedInteger(match[1], 0, MAX_SYNTHETIC_SEGMENTS);
    if (segmentCount === null) return 404;
    return playlist(vodPlaylist(Array.from({ length: segmentCount }, (_, i) => `seg-${i}.bin`)));
  }

  match = /^seg-(\d+)\.bin$/.exec(relativePath);
  if (match) {
    const index = parseBoundedInteger(match[1], 0, 0xffffffff);
    if (index === null) return 404;
    return syntheticEntity({ seed: index, size: syntheticSegmentLength(index), lastModified });
  }

  if (relativePath === 'sized.m3u8') {
    const sizesParam = searchParams.get('sizes');
    if (!sizesParam) return 400;
    const sizes = sizesParam.split(',').map((text) => parseBoundedInteger(text.trim(), 1, MAX_SIZED_BYTES));
    if (sizes.includes(null)) return 400;
    return playlist(vodPlaylist(sizes.map((size) => `sized/${size}.bin`)));
  }

  match = /^sized\/(\d+)\.bin$/.exec(relativePath);
  if (match) {
    const size = parseBoundedInteger(match[1], 1, MAX_SIZED_BYTES);
    if (size === null) return 404;
    return syntheticEntity({ seed: size, size, lastModified });
  }

  return 404;
}

/**
 * Misbehaviour on demand, for the worker's fault and security tests
 * (also under one directory, e.g. `/base/faults/...`):
 *   /faults/status/<code>/<name>      answers <code> with a short text body
 *   /faults/slow/<ms>/<name>          holds the request <ms> ms, then 200 (a
 *                                     tiny playlist for *.m3u8, bytes otherwise)
 *   /faults/redirect/<name>?to=<url>  302 to <url> (any host: the test's decoy)
 *   /faults/cookie/<name>             200 with a Set-Cookie header
 */
async function faultResponse(req, res, rest, searchParams) {
  const [kind, ...parts] = rest.split('/');
  const name = parts.join('/');
  const body = name.endsWith('.m3u8')
    ? '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg.ts\n#EXT-X-ENDLIST\n'
    : 'fault-test-bytes\n';
  const type = name.endsWith('.m3u8') ? CONTENT_TYPES.get('.m3u8') : 'application/octet-stream';
  if (kind === 'status') {
    const code = parseBoundedInteger(parts[0] ?? '', 200, 599);
    if (code === null) return sendText(res, 400, 'bad status\n');
    return sendText(res, code, `origin says ${code}\n`);
  }
  if (kind === 'slow') {
    const ms = parseBoundedInteger(parts[0] ?? '', 0, MAX_FAULT_DELAY_MS);
    if (ms === null) return sendText(res, 400, 'bad delay\n');
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      res.once('close', () => { clearTimeout(timer); resolve(); });
    });
    if (res.destroyed) return;
    return sendText(res, 200, body, { 'Content-Type': type });
  }
  if (kind === 'redirect') {
    const to = searchParams.get('to');
    if (!to) return sendText(res, 400, 'missing to=\n');
    return sendText(res, 302, 'moved\n', { Location: to });
  }
  if (kind === 'cookie') {
    return sendText(res, 200, body, { 'Content-Type': type, 'Set-Cookie': 'origin-session=secret; Path=/' });
  }
  return sendText(res, 404, 'no such fault\n');
}

/**
 * Opens a regular file under the served directory as an entity, or returns
 * null if there is no such file. The file is opened before it is measured, so
 * ffmpeg deleting or replacing it mid-request cannot produce a torn response.
 */
async function fileEntity(absolutePath) {
  let handle;
  try {
    handle = await fsp.open(absolutePath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const stats = await handle.stat({ bigint: true });
    if (!stats.isFile()) {
      await handle.close();
      return null;
    }
    const size = Number(stats.size);
    return {
      size,
      // Strong validator: size + nanosecond mtime + inode (ffmpeg replaces by rename).
      etag: `"${stats.size.toString(16)}-${stats.mtimeNs.toString(16)}-${stats.ino.toString(16)}"`,
      lastModified: new Date(Number(stats.mtimeMs)),
      contentType: contentTypeFor(absolutePath),
      cacheControl: cacheControlFor(absolutePath),
      body: (start, end) => handle.createReadStream({ start, end, autoClose: true }),
      discard: () => handle.close().catch(() => {}),
    };
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
}

// ---------------------------------------------------------------------------
// startOrigin
// ---------------------------------------------------------------------------

/**
 * Starts the origin.
 *
 * @param {object}  [options]
 * @param {number}  [options.port=0]           TCP port on 127.0.0.1; 0 picks a free one
 * @param {string}  [options.dir]              directory to serve; default: fresh temp dir
 *                                             (removed again by stop())
 * @param {boolean} [options.live=true]        run ffmpeg producing `<dir>/live/index.m3u8`
 *                                             (`<dir>/live/` is emptied first)
 * @param {number}  [options.segmentSeconds=2] target segment length / keyframe interval
 * @param {number}  [options.listSize=6]       segments kept in the live playlist
 * @param {boolean} [options.keepSegments=false] keep every live segment file on disk
 *                                             after it leaves the playlist (no
 *                                             ffmpeg `delete_segments`)
 * @param {boolean} [options.log=false]        log every request to stderr
 * @param {number}  [options.readyTimeoutMs=30000] bound on waiting for the first live segment
 * @param {string}  [options.playlistCacheControl='max-age=1'] `Cache-Control` of the
 *                                             playlist files it serves (a CDN's choice)
 * @returns {Promise<{
 *   url: string, port: number, dir: string,
 *   hits: () => Record<string, number>, resetHits: () => void,
 *   requests: () => Array<{method: string, target: string, headers: object}>,
 *   stop: () => Promise<void>
 * }>}
 */
export async function startOrigin({
  port = 0,
  dir,
  live = true,
  segmentSeconds = 2,
  listSize = 6,
  keepSegments = false,
  log = false,
  readyTimeoutMs = DEFAULT_LIVE_READY_TIMEOUT_MS,
  playlistCacheControl = PLAYLIST_CACHE_CONTROL,
} = {}) {
  if (!(segmentSeconds > 0)) throw new RangeError(`segmentSeconds must be > 0, got ${segmentSeconds}`);
  if (!Number.isInteger(listSize) || listSize < 1) throw new RangeError(`listSize must be an integer >= 1, got ${listSize}`);

  const ownsDir = dir === undefined;
  const rootDir = ownsDir
    ? await fsp.mkdtemp(path.join(os.tmpdir(), 'lt-origin-'))
    : path.resolve(dir);
  if (ownsDir) {
    ownedTempDirs.add(rootDir);
    installExitHooks();
  } else {
    await fsp.mkdir(rootDir, { recursive: true });
  }

  /** Request counts keyed by decoded path without query string. */
  const hitCounts = new Map();
  /** The last REQUEST_LOG_SIZE requests: { method, target, headers }. */
  const requestLog = [];
  const requests = () => requestLog.slice();
  const hits = () => Object.fromEntries(hitCounts);
  const resetHits = () => hitCounts.clear();
  /** Last-Modified of everything generated: stable for this origin's lifetime. */
  const startedAt = new Date(Math.floor(Date.now() / 1000) * 1000);

  async function handleRequest(req, res) {
    const { rawPathname, pathname, searchParams } = parseRequestTarget(req.url ?? '/');
    const hitKey = pathname ?? rawPathname;

    if (hitKey.startsWith(CONTROL_PREFIX)) {
      handleControlRequest(req, res, hitKey);
      return;
    }
    hitCounts.set(hitKey, (hitCounts.get(hitKey) ?? 0) + 1);
    requestLog.push({ method: req.method, target: req.url ?? '', headers: { ...req.headers } });
    if (requestLog.length > REQUEST_LOG_SIZE) requestLog.shift();

    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return;
    }
    if (pathname === null) {
      sendText(res, 400, 'malformed path\n');
      return;
    }

    const fault = FAULTS_PATH.exec(pathname);
    if (fault) {
      await faultResponse(req, res, pathname.slice(fault[0].length), searchParams);
      return;
    }

    if (pathname.startsWith('/synthetic/')) {
      const entity = syntheticResource(pathname.slice('/synthetic/'.length), searchParams, startedAt);
      if (typeof entity === 'number') sendText(res, entity, entity === 404 ? 'not found\n' : 'bad request\n');
      else sendEntity(req, res, entity);
      return;
    }

    const absolutePath = resolveInside(rootDir, pathname);
    const entity = absolutePath && (await fileEntity(absolutePath));
    if (!entity) {
      sendText(res, 404, 'not found\n');
      return;
    }
    if (entity.cacheControl === PLAYLIST_CACHE_CONTROL) entity.cacheControl = playlistCacheControl;
    sendEntity(req, res, entity);
  }

  /** `/_origin/hits`: GET/HEAD read the counters as JSON, DELETE resets them. */
  function handleControlRequest(req, res, controlPath) {
    if (controlPath !== `${CONTROL_PREFIX}hits`) {
      sendText(res, 404, 'not found\n');
    } else if (req.method === 'GET' || req.method === 'HEAD') {
      const body = Buffer.from(JSON.stringify(hits()));
      res
        .writeHead(200, {
          'Content-Type': 'application/json',
          'Content-Length': body.length,
          'Cache-Control': 'no-store',
        })
        .end(req.method === 'HEAD' ? undefined : body);
    } else if (req.method === 'DELETE') {
      resetHits();
      res.writeHead(204, { 'Cache-Control': 'no-store' }).end();
    } else {
      sendText(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD, DELETE' });
    }
  }

  const server = createServer((req, res) => {
    const startedMs = performance.now();
    if (log) {
      res.once('close', () => {
        const elapsed = (performance.now() - startedMs).toFixed(1);
        const sent = res.getHeader('Content-Length') ?? '-';
        process.stderr.write(`[origin] ${req.method} ${req.url} ${res.statusCode} ${sent}B ${elapsed}ms\n`);
      });
    }
    // Every response is CORS-readable, for browser tests that load media directly.
    res.setHeader('Access-Control-Allow-Origin', '*');
    handleRequest(req, res).catch((error) => {
      process.stderr.write(`[origin] ${req.method} ${req.url} failed: ${error.stack ?? error}\n`);
      if (!res.headersSent) sendText(res, 500, 'internal error\n');
      else res.destroy(error);
    });
  });

  server.listen(port, LOOPBACK_HOST);
  try {
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([error]) => Promise.reject(error)),
    ]);
  } catch (error) {
    if (ownsDir) await removeOwnedDir(rootDir);
    throw new Error(`origin: cannot listen on ${LOOPBACK_HOST}:${port}: ${error.message}`, { cause: error });
  }
  const actualPort = server.address().port;
  const url = `http://${LOOPBACK_HOST}:${actualPort}`;

  let liveFeed = null;
  let stopPromise = null;
  const stop = () => {
    stopPromise ??= (async () => {
      await liveFeed?.stop();
      const closed = new Promise((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      if (ownsDir) await removeOwnedDir(rootDir);
    })();
    return stopPromise;
  };

  if (live) {
    try {
      liveFeed = await startLiveFeed({ rootDir, segmentSeconds, listSize, keepSegments, readyTimeoutMs });
    } catch (error) {
      await stop();
      throw error;
    }
  }

  return { url, port: actualPort, dir: rootDir, hits, resetHits, requests, stop };
}

async function removeOwnedDir(dir) {
  await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
  ownedTempDirs.delete(dir);
  removeExitHooksIfIdle();
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

const USAGE = `usage: node scripts/origin.mjs [--port N] [--dir DIR] [--no-live] [--verbose]

  --port N    port on 127.0.0.1 (default: a free one)
  --dir DIR   directory to serve; the live feed goes to DIR/live/ (default: temp dir)
  --no-live   do not run ffmpeg; serve files and /synthetic/ only
  --verbose   log every request to stderr

Prints one JSON line {"url": ..., "live": ...} to stdout once ready.
Stops on SIGINT/SIGTERM.`;

async function main(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string' },
        dir: { type: 'string' },
        'no-live': { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`--port: not a port number: ${values.port}\n`);
    process.exitCode = 2;
    return;
  }

  const live = !values['no-live'];
  const origin = await startOrigin({ port, dir: values.dir, live, log: values.verbose });

  let shuttingDown = false;
  const shutDown = (signal) => {
    if (shuttingDown) {
      process.exit(1); // Second signal: give up waiting.
    }
    shuttingDown = true;
    if (values.verbose) process.stderr.write(`[origin] ${signal}: stopping\n`);
    origin.stop().then(
      () => process.exit(0),
      (error) => {
        process.stderr.write(`[origin] stop failed: ${error.stack ?? error}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutDown);
  process.on('SIGTERM', shutDown);

  const ready = { url: origin.url, live: live ? `${origin.url}/live/index.m3u8` : null };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

function invokedAsScript() {
  if (!process.argv[1]) return false;
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedAsScript()) {
  main(process.argv.slice(2)).catch((error) => {
    process.stderr.write(`[origin] ${error.stack ?? error}\n`);
    process.exit(1);
  });
}

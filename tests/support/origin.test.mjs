/**
 * Tests of the local HLS origin (scripts/origin.mjs) itself, so the
 * integration tests built on it can trust what it serves.
 *
 * Run: node --test tests/support/
 */
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { startOrigin, syntheticBytes, syntheticSegmentLength } from '../../scripts/origin.mjs';
import { fetchBytes, fetchText, sleep } from './harness.mjs';

const MPEG_TS_SYNC_BYTE = 0x47;
const MPEG_TS_PACKET_SIZE = 188;

/**
 * Sends one request exactly as written (no client-side URL normalisation,
 * so "/../x" really goes out as "/../x") and returns the raw response bytes
 * split into status, header block and body.
 */
function rawHttpRequest(port, method, requestTarget) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks = [];
    socket.setTimeout(5_000, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const response = Buffer.concat(chunks);
      const headerEnd = response.indexOf('\r\n\r\n');
      assert.notEqual(headerEnd, -1, 'response has a complete header block');
      const head = response.subarray(0, headerEnd).toString('latin1');
      resolve({
        status: Number(head.split(' ')[1]),
        head,
        body: response.subarray(headerEnd + 4),
      });
    });
    socket.write(`${method} ${requestTarget} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  });
}

/** URIs of the media segments listed in a media playlist. */
function segmentUris(playlistText) {
  return playlistText.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
}

function mediaSequence(playlistText) {
  const match = /^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m.exec(playlistText);
  return match ? Number(match[1]) : 0;
}

describe('origin: static files and synthetic media (live: false)', () => {
  /** Parent of the served dir; holds a file the origin must never serve. */
  let sandboxDir;
  let origin;
  /** 1000 known bytes served as /media/clip.ts. */
  const clipBytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7 + 3) % 256));
  const secretText = 'outside-the-served-dir';

  before(async () => {
    sandboxDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lt-origin-test-'));
    await fsp.writeFile(path.join(sandboxDir, 'secret.txt'), secretText);
    const servedDir = path.join(sandboxDir, 'served');
    await fsp.mkdir(path.join(servedDir, 'media'), { recursive: true });
    await fsp.writeFile(path.join(servedDir, 'media', 'clip.ts'), clipBytes);
    await fsp.writeFile(path.join(servedDir, 'media', 'list.m3u8'), '#EXTM3U\n');
    origin = await startOrigin({ live: false, dir: servedDir });
  });

  after(async () => {
    await origin?.stop();
    if (sandboxDir) await fsp.rm(sandboxDir, { recursive: true, force: true });
  });

  it('serves a whole file with type, caching and validator headers', async () => {
    const response = await fetchBytes(`${origin.url}/media/clip.ts`);
    assert.equal(response.status, 200);
    assert.deepEqual(response.bytes, clipBytes);
    assert.equal(response.headers.get('content-length'), '1000');
    assert.equal(response.headers.get('content-type'), 'video/mp2t');
    assert.equal(response.headers.get('cache-control'), 'public, max-age=3600');
    assert.equal(response.headers.get('accept-ranges'), 'bytes');
    assert.match(response.headers.get('etag'), /^"[^"]+"$/, 'strong ETag');
    assert.ok(!Number.isNaN(Date.parse(response.headers.get('last-modified'))), 'Last-Modified is a date');

    const playlist = await fetchText(`${origin.url}/media/list.m3u8`);
    assert.equal(playlist.status, 200);
    assert.equal(playlist.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.equal(playlist.headers.get('cache-control'), 'max-age=1');
  });

  it('answers single byte ranges with 206 and the right slice', async () => {
    const cases = [
      { range: 'bytes=10-19', start: 10, end: 19 },
      { range: 'bytes=990-', start: 990, end: 999 },
      { range: 'bytes=-5', start: 995, end: 999 },
      { range: 'bytes=995-5000', start: 995, end: 999 }, // end clamped to the file
      { range: 'bytes=0-0', start: 0, end: 0 },
    ];
    for (const { range, start, end } of cases) {
      const response = await fetchBytes(`${origin.url}/media/clip.ts`, { headers: { Range: range } });
      assert.equal(response.status, 206, range);
      assert.equal(response.headers.get('content-range'), `bytes ${start}-${end}/1000`, range);
      assert.equal(response.headers.get('content-length'), String(end - start + 1), range);
      assert.deepEqual(response.bytes, clipBytes.subarray(start, end + 1), range);
    }
  });

  it('answers 416 for unsatisfiable ranges', async () => {
    for (const range of ['bytes=1000-', 'bytes=5000-6000', 'bytes=-0']) {
      const response = await fetchBytes(`${origin.url}/media/clip.ts`, { headers: { Range: range } });
      assert.equal(response.status, 416, range);
      assert.equal(response.headers.get('content-range'), 'bytes */1000', range);
    }
  });

  it('answers HEAD with Content-Length and no body', async () => {
    const response = await rawHttpRequest(origin.port, 'HEAD', '/media/clip.ts');
    assert.equal(response.status, 200);
    assert.match(response.head, /^content-length: 1000$/im);
    assert.equal(response.body.length, 0, 'no body bytes after the headers');
  });

  it('answers 304 when If-None-Match carries the current ETag', async () => {
    const first = await fetchBytes(`${origin.url}/media/clip.ts`);
    const revalidated = await fetchBytes(`${origin.url}/media/clip.ts`, {
      headers: { 'If-None-Match': first.headers.get('etag') },
    });
    assert.equal(revalidated.status, 304);
    assert.equal(revalidated.bytes.length, 0);
  });

  it('counts hits per path, ignoring query strings, and exposes them over HTTP', async () => {
    origin.resetHits();
    assert.deepEqual(origin.hits(), {});

    await fetchBytes(`${origin.url}/media/clip.ts`);
    await fetchBytes(`${origin.url}/media/clip.ts?cache-buster=1`);
    await fetchBytes(`${origin.url}/media/clip.ts`, { method: 'HEAD' });
    await fetchBytes(`${origin.url}/media/clip.ts`, { headers: { Range: 'bytes=5000-' } }); // 416 counts too
    await fetchBytes(`${origin.url}/media/missing.ts`); // so does 404
    await fetchText(`${origin.url}/synthetic/vod-2.m3u8?x=y`);

    const expected = { '/media/clip.ts': 4, '/media/missing.ts': 1, '/synthetic/vod-2.m3u8': 1 };
    assert.deepEqual(origin.hits(), expected);

    const overHttp = await fetchText(`${origin.url}/_origin/hits`);
    assert.equal(overHttp.status, 200);
    assert.deepEqual(JSON.parse(overHttp.text), expected, '/_origin/hits is not counted itself');
    assert.deepEqual(origin.hits(), expected);

    origin.resetHits();
    assert.deepEqual(origin.hits(), {});
    assert.deepEqual(JSON.parse((await fetchText(`${origin.url}/_origin/hits`)).text), {});
  });

  it('refuses paths that escape the served directory', async () => {
    const escapes = [
      '/../secret.txt',
      '/..%2fsecret.txt',
      '/%2e%2e/secret.txt',
      '/media/..%2f..%2fsecret.txt',
      '/media/%2e%2e%2f%2e%2e%2fsecret.txt',
      `/..%2f${path.basename(sandboxDir)}%2fsecret.txt`,
    ];
    for (const target of escapes) {
      const response = await rawHttpRequest(origin.port, 'GET', target);
      assert.equal(response.status, 404, target);
      assert.ok(!response.body.toString().includes(secretText), `${target} leaked the file`);
    }
    // Dot segments that stay inside are fine.
    const inside = await rawHttpRequest(origin.port, 'GET', '/media/..%2fmedia%2fclip.ts');
    assert.equal(inside.status, 200);
    assert.deepEqual(inside.body, clipBytes);
  });

  it('serves a synthetic VOD playlist whose segments are deterministic bytes', async () => {
    const segmentCount = 9;
    const playlistUrl = `${origin.url}/synthetic/vod-${segmentCount}.m3u8`;
    const playlist = await fetchText(playlistUrl);
    assert.equal(playlist.status, 200);
    assert.equal(playlist.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.match(playlist.text, /^#EXTM3U\n/);
    assert.match(playlist.text, /^#EXT-X-PLAYLIST-TYPE:VOD$/m);
    assert.match(playlist.text, /^#EXT-X-TARGETDURATION:2$/m);
    assert.match(playlist.text, /#EXT-X-ENDLIST\n?$/);
    assert.equal(playlist.text.match(/^#EXTINF:2\.000,$/gm)?.length, segmentCount);

    const uris = segmentUris(playlist.text);
    assert.deepEqual(uris, Array.from({ length: segmentCount }, (_, i) => `seg-${i}.bin`));

    const bodies = [];
    for (const [index, uri] of uris.entries()) {
      const expectedLength = 4096 + (index % 7) * 1000;
      assert.equal(syntheticSegmentLength(index), expectedLength);
      const segment = await fetchBytes(new URL(uri, playlistUrl).href);
      assert.equal(segment.status, 200, uri);
      assert.equal(segment.bytes.length, expectedLength, uri);
      assert.deepEqual(segment.bytes, syntheticBytes(index, expectedLength), uri);
      bodies.push(segment.bytes);
    }
    // Same bytes every time, different bytes per segment.
    assert.deepEqual((await fetchBytes(`${origin.url}/synthetic/seg-3.bin`)).bytes, bodies[3]);
    assert.notDeepEqual(bodies[0], bodies[7].subarray(0, bodies[0].length), 'seg-0 and seg-7 differ');

    const ranged = await fetchBytes(`${origin.url}/synthetic/seg-5.bin`, { headers: { Range: 'bytes=1000-2999' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), `bytes 1000-2999/${syntheticSegmentLength(5)}`);
    assert.deepEqual(ranged.bytes, bodies[5].subarray(1000, 3000));
  });

  it('serves sized synthetic segments and a playlist of them', async () => {
    const sizes = [1, 65536, 65537, 2000000];
    const playlistUrl = `${origin.url}/synthetic/sized.m3u8?sizes=${sizes.join(',')}`;
    const playlist = await fetchText(playlistUrl);
    assert.equal(playlist.status, 200);
    assert.match(playlist.text, /^#EXT-X-PLAYLIST-TYPE:VOD$/m);
    assert.deepEqual(segmentUris(playlist.text), sizes.map((size) => `sized/${size}.bin`));

    for (const size of sizes) {
      const segment = await fetchBytes(new URL(`sized/${size}.bin`, playlistUrl).href);
      assert.equal(segment.status, 200);
      assert.equal(segment.bytes.length, size);
      assert.ok(segment.bytes.equals(syntheticBytes(size, size)), `sized/${size}.bin bytes`);
    }

    const largest = await fetchBytes(`${origin.url}/synthetic/sized/${8 * 1024 * 1024}.bin`, { method: 'HEAD' });
    assert.equal(largest.status, 200);
    assert.equal(largest.headers.get('content-length'), String(8 * 1024 * 1024));
    for (const bad of ['0', String(8 * 1024 * 1024 + 1), 'abc']) {
      assert.equal((await fetchBytes(`${origin.url}/synthetic/sized/${bad}.bin`)).status, 404, bad);
    }
  });

  it('answers methods other than GET and HEAD with 405', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const response = await fetchText(`${origin.url}/media/clip.ts`, { method, body: method === 'DELETE' ? undefined : 'x' });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get('allow'), 'GET, HEAD', method);
    }
    assert.equal((await fetchText(`${origin.url}/_origin/hits`, { method: 'POST', body: 'x' })).status, 405);
  });

  it('syntheticBytes is deterministic and slices consistently', () => {
    const whole = syntheticBytes(42, 1001);
    assert.deepEqual(syntheticBytes(42, 1001), whole);
    // Any slice (offset, length) equals the same bytes of the whole stream.
    assert.deepEqual(syntheticBytes(42, 6, 995), whole.subarray(995));
    assert.deepEqual(syntheticBytes(42, 13, 3), whole.subarray(3, 16));
    assert.notDeepEqual(syntheticBytes(43, 1001), whole);
  });
});

describe('origin: live HLS feed from ffmpeg (live: true)', () => {
  const segmentSeconds = 2;
  const listSize = 3;
  let origin;

  before(async () => {
    origin = await startOrigin({ live: true, segmentSeconds, listSize });
  }, { timeout: 45_000 });

  after(async () => {
    await origin?.stop();
  });

  it('produces a real, advancing MPEG-TS live playlist', { timeout: 60_000 }, async () => {
    const playlistUrl = `${origin.url}/live/index.m3u8`;

    const master = await fetchText(`${origin.url}/live/master.m3u8`);
    assert.equal(master.status, 200);
    assert.match(master.text, /^#EXT-X-STREAM-INF:.*\nindex\.m3u8$/m);

    // Wait (bounded) for at least two segments.
    let playlist;
    for (const deadline = Date.now() + 20_000; ; await sleep(250)) {
      playlist = await fetchText(playlistUrl);
      assert.equal(playlist.status, 200);
      if (segmentUris(playlist.text).length >= 2) break;
      assert.ok(Date.now() < deadline, `fewer than 2 segments after 20 s:\n${playlist.text}`);
    }
    assert.equal(playlist.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.equal(playlist.headers.get('cache-control'), 'max-age=1');
    assert.doesNotMatch(playlist.text, /#EXT-X-ENDLIST/, 'a live playlist has no end');
    // Keyframe every segmentSeconds => every segment is cut at that length.
    for (const duration of playlist.text.matchAll(/^#EXTINF:([\d.]+),/gm)) {
      assert.ok(Math.abs(Number(duration[1]) - segmentSeconds) < 0.1, `segment duration ${duration[1]}`);
    }

    for (const uri of segmentUris(playlist.text)) {
      assert.match(uri, /^seg-\d{5}\.ts$/);
      const segment = await fetchBytes(new URL(uri, playlistUrl).href);
      assert.equal(segment.status, 200, uri);
      assert.equal(segment.headers.get('content-type'), 'video/mp2t', uri);
      assert.ok(segment.bytes.length >= MPEG_TS_PACKET_SIZE * 10, `${uri} has data`);
      assert.equal(segment.bytes.length % MPEG_TS_PACKET_SIZE, 0, `${uri} is whole TS packets`);
      assert.equal(segment.bytes[0], MPEG_TS_SYNC_BYTE, `${uri} starts with the TS sync byte`);
      assert.equal(segment.bytes[MPEG_TS_PACKET_SIZE], MPEG_TS_SYNC_BYTE, `${uri} second packet`);
    }

    // The window slides: the media sequence number goes up over time.
    const firstSequence = mediaSequence(playlist.text);
    const firstUris = segmentUris(playlist.text);
    const bound = (listSize + 2) * segmentSeconds * 1000 + 5_000;
    for (const deadline = Date.now() + bound; ; await sleep(500)) {
      playlist = await fetchText(playlistUrl);
      if (mediaSequence(playlist.text) > firstSequence) break;
      assert.ok(Date.now() < deadline, `media sequence stuck at ${firstSequence}:\n${playlist.text}`);
    }
    assert.notDeepEqual(segmentUris(playlist.text), firstUris);
    assert.ok(segmentUris(playlist.text).length <= listSize, 'playlist keeps at most listSize segments');
  });
});

describe('origin: live feed with keepSegments (live: true)', () => {
  const segmentSeconds = 1;
  const listSize = 2;
  let origin;

  before(async () => {
    origin = await startOrigin({ live: true, segmentSeconds, listSize, keepSegments: true });
  }, { timeout: 45_000 });

  after(async () => {
    await origin?.stop();
  });

  it('keeps segments on disk (and served) after they leave the window', { timeout: 60_000 }, async () => {
    const playlistUrl = `${origin.url}/live/index.m3u8`;
    let playlist;
    for (const deadline = Date.now() + 30_000; ; await sleep(250)) {
      playlist = await fetchText(playlistUrl);
      if (mediaSequence(playlist.text) >= 2) break;
      assert.ok(Date.now() < deadline, `window did not slide past seg-00001:\n${playlist.text}`);
    }
    assert.ok(!segmentUris(playlist.text).includes('seg-00000.ts'), 'seg-00000.ts left the playlist');
    assert.ok(segmentUris(playlist.text).length <= listSize, 'the playlist still keeps at most listSize');
    const files = (await fsp.readdir(path.join(origin.dir, 'live'))).filter((name) => /^seg-\d{5}\.ts$/.test(name));
    assert.ok(files.includes('seg-00000.ts') && files.includes('seg-00001.ts'), `old segments kept: ${files}`);
    const first = await fetchBytes(`${origin.url}/live/seg-00000.ts`);
    assert.equal(first.status, 200);
    assert.deepEqual(first.bytes, await fsp.readFile(path.join(origin.dir, 'live', 'seg-00000.ts')));
  });
});

// Short real HLS feeds made by ffmpeg for the tests, in the shapes CDNs
// serve: MPEG-TS segments, fMP4/CMAF with an init segment, one file with
// byte ranges, and a master playlist with two video variants sharing an
// audio rendition.
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'

const VIDEO = seconds => ['-f', 'lavfi', '-i', `testsrc2=size=320x180:rate=25:duration=${seconds}`]
const AUDIO = seconds => ['-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`]
/** A keyframe every 2 s at 25 fps, so every segment is 2 s. */
const H264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-keyint_min', '50', '-sc_threshold', '0']
const AAC = ['-c:a', 'aac', '-b:a', '64k']
const HLS_VOD = ['-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod']

function ffmpeg (args) {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', d => { err += d })
    child.on('error', reject)
    child.on('exit', code => (code === 0 ? resolve() : reject(new Error(`ffmpeg failed (${code}): ${err}`))))
  })
}

/**
 * Writes a VOD feed of `seconds` into `dir` and returns the playlist's file
 * name relative to `dir`:
 *   'ts'           index.m3u8 + seg-NNN.ts (H.264 + AAC)
 *   'fmp4'         index.m3u8 + init.mp4 + seg-NNN.m4s (EXT-X-MAP)
 *   'single-file'  index.m3u8 + index.ts, segments as EXT-X-BYTERANGE
 *   'variants'     master.m3u8 -> 0/ (320x180) and 1/ (160x90) video
 *                  variants and 2/ an audio rendition (EXT-X-MEDIA)
 */
export async function makeHls (dir, kind, { seconds = 8 } = {}) {
  await fs.mkdir(dir, { recursive: true })
  const out = name => path.join(dir, name)
  switch (kind) {
    case 'ts':
      await ffmpeg([...VIDEO(seconds), ...AUDIO(seconds), ...H264, ...AAC, ...HLS_VOD,
        '-hls_segment_filename', out('seg-%03d.ts'), out('index.m3u8')])
      return 'index.m3u8'
    case 'fmp4':
      await ffmpeg([...VIDEO(seconds), ...AUDIO(seconds), ...H264, ...AAC, ...HLS_VOD,
        '-hls_segment_type', 'fmp4', '-hls_fmp4_init_filename', 'init.mp4',
        '-hls_segment_filename', out('seg-%03d.m4s'), out('index.m3u8')])
      return 'index.m3u8'
    case 'single-file':
      await ffmpeg([...VIDEO(seconds), ...AUDIO(seconds), ...H264, ...AAC, ...HLS_VOD,
        '-hls_flags', 'single_file', out('index.m3u8')])
      return 'index.m3u8'
    case 'variants':
      await ffmpeg([...VIDEO(seconds), ...AUDIO(seconds),
        '-map', '0:v', '-map', '0:v', '-map', '1:a', ...H264,
        '-filter:v:0', 'scale=320:180', '-b:v:0', '400k', '-filter:v:1', 'scale=160:90', '-b:v:1', '150k',
        ...AAC, ...HLS_VOD, '-master_pl_name', 'master.m3u8',
        '-var_stream_map', 'v:0,agroup:aud v:1,agroup:aud a:0,agroup:aud,language:en,default:yes',
        '-hls_segment_filename', out('%v/seg-%03d.ts'), out('%v/index.m3u8')])
      return 'master.m3u8'
    default:
      throw new RangeError(`unknown HLS kind ${kind}`)
  }
}

// How long until the player needs the next segment it asks for: the media
// element's buffer ahead of the playhead, in wall-clock milliseconds. The
// player appends each segment at the end of its buffer, so that is when it
// runs dry without it.
//
// Until the video has played at all, there is no such time: every
// millisecond spent waiting then delays the first frame, however much the
// player has buffered already (hls.js buffers a segment or two before it
// starts). That is start-up, and the caller treats it as such.

export class PlaybackClock {
  constructor (selector) {
    this.selector = selector
  }

  media () {
    const candidates = [...document.querySelectorAll(this.selector)]
    return candidates.find(m => m.readyState > 0 && !m.paused) || candidates.find(m => m.readyState > 0) || null
  }

  /** Milliseconds of media buffered ahead of the playhead; null at start-up. */
  bufferAheadMs () {
    return bufferAheadMs(this.media())
  }
}

/**
 * `media`'s buffer ahead of its playhead in wall-clock ms: null before it has
 * played (no media, nothing buffered, or nothing played yet: start-up), 0 when
 * the playhead is outside every buffered range, Infinity while paused.
 */
export function bufferAheadMs (media) {
  if (!media || media.buffered.length === 0 || media.played.length === 0) return null
  const t = media.currentTime
  let end = null
  for (let i = 0; i < media.buffered.length; i++) {
    if (media.buffered.start(i) <= t + 0.1 && media.buffered.end(i) >= t) end = media.buffered.end(i)
  }
  if (end === null) return 0
  const rate = media.paused ? 0 : (media.playbackRate || 1)
  if (rate === 0) return Infinity
  return ((end - t) / rate) * 1000
}

/** What an HTTP fetch of a segment is taken to cost before one has been timed. */
export const HTTP_FETCH_ESTIMATE_MS = 500

/**
 * How long a segment may wait (for peers, or for the client) before the
 * player would stall: `aheadMs` of buffer less an HTTP fetch's `httpMs` and
 * `safetyMarginMs`, at most `maxMs`, never below 0.
 */
export function affordableWaitMs (aheadMs, { httpMs, safetyMarginMs, maxMs }) {
  return Math.min(maxMs, Math.max(0, aheadMs - safetyMarginMs - httpMs))
}

/**
 * Resolves once a media element matching `selector` has started playing (at
 * once if one has already), or after `timeoutMs` whatever happens: a page
 * whose video never starts (autoplay refused, no video yet) still gets P2P.
 * An invalid selector resolves at once.
 */
export function whenPlaybackStarts (selector, timeoutMs) {
  return new Promise(resolve => {
    let matching
    try {
      matching = [...document.querySelectorAll(selector)]
    } catch {
      return resolve()
    }
    if (matching.some(m => m.played.length > 0)) return resolve()
    const onPlaying = event => {
      if (event.target instanceof Element && event.target.matches(selector)) done()
    }
    const timer = setTimeout(done, timeoutMs)
    function done () {
      clearTimeout(timer)
      document.removeEventListener('playing', onPlaying, true)
      resolve()
    }
    document.addEventListener('playing', onPlaying, true)
  })
}

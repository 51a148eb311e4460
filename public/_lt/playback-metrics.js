// What a viewer would notice about playback, counted the same way for every
// player that is compared (the demo player and the benchmark's other players):
//   playerStartMs ms after navigation when the page created the player (set
//                 by the page: what it waited for before playing)
//   firstFrameMs  ms after navigation until the video first plays
//   stalls        times playback stopped for lack of data after the first frame
//   stallMs       total time spent stalled
export function watchPlayback (video) {
  const metrics = { playerStartMs: null, firstFrameMs: null, stalls: 0, stallMs: 0 }
  let stalledAt = null
  video.addEventListener('playing', () => {
    if (metrics.firstFrameMs === null) metrics.firstFrameMs = Math.round(performance.now())
    if (stalledAt !== null) {
      metrics.stallMs += performance.now() - stalledAt
      stalledAt = null
    }
  })
  video.addEventListener('waiting', () => {
    if (metrics.firstFrameMs !== null && stalledAt === null && !video.seeking) {
      metrics.stalls += 1
      stalledAt = performance.now()
    }
  })
  return metrics
}

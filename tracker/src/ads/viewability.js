// The MRC viewable-impression rule: at least 50% of the ad's pixels in view for at least one
// continuous second; 30% for large ads (242,500 px or more); two continuous seconds for video.
export var LARGE_AD_PIXELS = 242500

export function viewabilityRule(width, height, isVideo) {
  return {
    ratio: width * height >= LARGE_AD_PIXELS ? 0.3 : 0.5,
    ms: isVideo ? 2000 : 1000,
  }
}

// Feed it the visible ratio whenever it changes (0 while the page is hidden); it calls
// onViewable once, when the ratio has stayed at or above the rule's for the rule's time.
// ``timers`` is the window (tests pass their own clock with the same two methods).
export function watchViewability(rule, onViewable, timers) {
  timers = timers || window
  var timer = null
  var done = false
  return function update(ratio) {
    if (done) return
    if (ratio >= rule.ratio) {
      if (timer === null)
        timer = timers.setTimeout(function () {
          done = true
          onViewable()
        }, rule.ms)
    } else if (timer !== null) {
      timers.clearTimeout(timer)
      timer = null
    }
  }
}

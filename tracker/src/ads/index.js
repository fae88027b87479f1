// The ads module of the tracker, loaded on sites with ads enabled: reports the impression of
// every ad element Naboria rendered, its viewable impression (MRC rule) and its clicks.
//
// An ad element carries data-naboria-impression (the id the ad server gave this rendering),
// data-naboria-campaign, data-naboria-ad, and optionally data-naboria-placement and
// data-naboria-creative ("video" for video ads). Elements added later are picked up too.
import { viewabilityRule, watchViewability } from './viewability.js'

var SELECTOR = '[data-naboria-impression]'
var THRESHOLDS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]
var RETRY_MS = [1000, 5000, 15000]
var watchers = new WeakMap()

function report(element, type, attempt) {
  var data = element.dataset
  window.naboria
    .adEvent({
      type: type,
      impression: data.naboriaImpression,
      campaign: +data.naboriaCampaign,
      ad: +data.naboriaAd,
      placement: +(data.naboriaPlacement || 0),
      creative: data.naboriaCreative || 'banner',
      url: location.href,
    })
    .catch(function () {
      // The same impression id is resent, so a retried event is stored once.
      attempt = attempt || 0
      if (attempt < RETRY_MS.length)
        setTimeout(report, RETRY_MS[attempt], element, type, attempt + 1)
    })
}

var observer = new IntersectionObserver(
  function (entries) {
    entries.forEach(function (entry) {
      var watcher = watchers.get(entry.target)
      watcher.ratio = entry.intersectionRatio
      watcher.update(document.hidden ? 0 : watcher.ratio)
    })
  },
  { threshold: THRESHOLDS }
)

function track(element) {
  if (watchers.has(element)) return
  var box = element.getBoundingClientRect()
  var rule = viewabilityRule(box.width, box.height, element.dataset.naboriaCreative === 'video')
  watchers.set(element, {
    ratio: 0,
    update: watchViewability(rule, function () {
      report(element, 'viewable')
    }),
  })
  report(element, 'impression')
  observer.observe(element)
  element.addEventListener('click', function () {
    report(element, 'click')
  })
}

function scan() {
  document.querySelectorAll(SELECTOR).forEach(track)
}

// A hidden page shows nothing: pause every timer, resume with the last known ratios.
document.addEventListener('visibilitychange', function () {
  document.querySelectorAll(SELECTOR).forEach(function (element) {
    var watcher = watchers.get(element)
    if (watcher) watcher.update(document.hidden ? 0 : watcher.ratio)
  })
})
new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true })
scan()

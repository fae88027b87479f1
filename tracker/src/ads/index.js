// The ads module of the tracker, loaded on sites with ads enabled. It fills every placement
// slot of the page (<div data-naboria-slot="<placement key>">) with the ads the SSE stream
// sends (rotation and campaign changes included), and reports the impression of every ad
// element, its viewable impression (MRC rule) and its clicks.
//
// An ad element carries data-naboria-impression-token (the signed token the ad server
// delivered the ad with: its events count only with it) and optionally data-naboria-creative
// ("video" for video ads). Elements added later are picked up too.
// Ads rendered from the stream link through Naboria's click redirect, which records the click
// (data-naboria-click="server"), so the module does not report those clicks again.
import { render } from './render.js'
import { viewabilityRule, watchViewability } from './viewability.js'

var SELECTOR = '[data-naboria-impression-token]'
var THRESHOLDS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]
var RETRY_MS = [1000, 5000, 15000]
var watchers = new WeakMap()

function report(element, type, attempt) {
  var data = element.dataset
  window.naboria
    .adEvent({ type: type, impression_token: data.naboriaImpressionToken, url: location.href })
    .catch(function () {
      // The same token is resent, so a retried event is stored once.
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
  if (!element.dataset.naboriaClick)
    element.addEventListener('click', function () {
      report(element, 'click')
    })
}

// One stream per slot; EventSource reconnects by itself and sends Last-Event-ID, so the
// server keeps the ad on screen until its rotation is due.
function stream(slot) {
  var config = window.naboriaConfig
  var viewer = window.naboria.viewer()
  var query =
    '?placement=' +
    slot.dataset.naboriaSlot +
    '&path=' +
    encodeURIComponent(location.pathname) +
    (viewer.bid ? '&bid=' + viewer.bid + '&token=' + viewer.token : '') +
    (viewer.consent.ads ? '&ads=1' : '')
  var source = new EventSource(config.host + '/ads/stream' + query)
  source.addEventListener('ad', function (event) {
    slot.replaceChildren(render(JSON.parse(event.data)))
  })
  source.addEventListener('none', function () {
    slot.replaceChildren()
  })
}

function scan() {
  document.querySelectorAll(SELECTOR).forEach(track)
  document.querySelectorAll('[data-naboria-slot]:not([data-streaming])').forEach(function (slot) {
    slot.dataset.streaming = 1
    stream(slot)
  })
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

// What starting and stopping a tag means for each template. start(tag, first) returns the
// elements it added to the page (removed by stop); `first` is false when a tag runs again in
// the same page after a withdrawal and a new grant.
import { gtag } from '../cmp/consent-mode.js'
import { runScript } from './dom.js'

function script(src) {
  return [runScript({ src: src })]
}

// GA4 and Google Ads: gtag.js. Stopping sets Google's documented opt-out flag
// (window['ga-disable-<id>']) and sends Consent Mode 'denied' for the tag's signals. With
// `consentMode`, advanced Consent Mode runs them before consent (tags/index.js).
var google = {
  consentMode: true,
  start: function (tag, first) {
    window['ga-disable-' + tag.trackingId] = false
    gtag('js', new Date())
    gtag('config', tag.trackingId)
    return first ? script('https://www.googletagmanager.com/gtag/js?id=' + tag.trackingId) : []
  },
  stop: function (tag) {
    window['ga-disable-' + tag.trackingId] = true
    var denied = {}
    tag.signals.forEach(function (signal) {
      denied[signal] = 'denied'
    })
    gtag('consent', 'update', denied)
  },
}

function fbq() {
  var queue =
    window.fbq ||
    (window.fbq = window._fbq =
      function () {
        queue.callMethod ? queue.callMethod.apply(queue, arguments) : queue.queue.push(arguments)
      })
  if (!queue.queue) {
    queue.push = queue
    queue.loaded = true
    queue.version = '2.0'
    queue.queue = []
  }
  queue.apply(null, arguments)
}

export var TEMPLATES = {
  ga4: google,
  google_ads: google,
  // Meta Pixel: its consent API grants and revokes.
  meta_pixel: {
    start: function (tag, first) {
      fbq('consent', 'grant')
      if (!first) return []
      fbq('init', tag.trackingId)
      fbq('track', 'PageView')
      return script('https://connect.facebook.net/en_US/fbevents.js')
    },
    stop: function () {
      fbq('consent', 'revoke')
    },
  },
  linkedin: {
    start: function (tag) {
      var ids = (window._linkedin_data_partner_ids = window._linkedin_data_partner_ids || [])
      if (ids.indexOf(tag.trackingId) < 0) ids.push(tag.trackingId)
      return script('https://snap.licdn.com/li.lms-analytics/insight.min.js')
    },
  },
  // A custom script: its URL, then its code (which may use what the URL loaded).
  script: {
    start: function (tag) {
      var added = []
      function code() {
        if (tag.code && tag.on) added.push(runScript({}, tag.code))
      }
      if (tag.url) added.push(runScript({ src: tag.url }, null, code))
      else code()
      return added
    },
  },
  // In its container, on the pages that have it (or at the end of every page without one).
  iframe: {
    start: function (tag) {
      var parent = tag.container ? document.getElementById(tag.container) : document.body
      if (!parent) return []
      var frame = document.createElement('iframe')
      frame.src = tag.url
      frame.title = tag.title
      if (tag.width) frame.width = tag.width
      if (tag.height) frame.height = tag.height
      frame.setAttribute('loading', 'lazy')
      parent.appendChild(frame)
      return [frame]
    },
  },
  // A no-script pixel: the image request is the hit.
  pixel: {
    start: function (tag) {
      var image = document.createElement('img')
      image.src = tag.url
      image.alt = ''
      image.width = image.height = 1
      image.style.cssText = 'position:absolute;left:-9999px'
      document.body.appendChild(image)
      return [image]
    },
  },
}

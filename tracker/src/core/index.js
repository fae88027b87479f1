// naboria-tracker.js: the core of the tracker. Loaded by the per-site loader (/t/<site>.js),
// which sets window.naboriaConfig, or bundled by an app, which calls naboria.init({site, host}).
//
// Public API (window.naboria): init(options), track(name, props), consent.get(),
// consent.set({analytics, ads}) for sites with a CMP of their own, consent.open() for the
// banner. Calls made before the script loaded (naboria.q) are replayed.
import { CONSENT_EVENT, OPEN_EVENT, fromGranted, none } from './consent.js'
import { createIdentity } from './identity.js'
import { watchLinks } from './links.js'
import { watchPages } from './pages.js'
import { createTransport } from './transport.js'

var queued = (window.naboria && window.naboria.q) || []
var started = false
var config, consent, identity, transport

function privacySignal() {
  return navigator.globalPrivacyControl || navigator.doNotTrack === '1' || window.doNotTrack === '1'
}

// forAds: an ad request, which carries the browser id with ads consent alone too (page events
// only with analytics consent).
function envelopeNow(forAds) {
  var envelope = { site: config.site, consent: consent }
  var id = (consent.analytics || (forAds === true && consent.ads)) && identity.peek()
  if (id) {
    envelope.bid = id.bid
    envelope.token = id.token
  }
  if (config.app) envelope.app = config.app
  return envelope
}

// config.ready: a visitor who came from another domain of the site, whose decision is being
// adopted (linker): the events wait for it.
function envelope(forAds) {
  return Promise.resolve(config.ready).then(function () {
    return identified(forAds)
  })
}

function identified(forAds) {
  if (!consent.analytics && !(forAds && consent.ads)) return envelopeNow()
  return identity.get().then(
    function () {
      return envelopeNow(forAds)
    },
    function () {
      return { site: config.site, consent: none() }
    }
  )
}

function send(event) {
  if (started) transport.push(event)
}

function applyConsent(next, answer) {
  var withdrew = consent.analytics && !next.analytics
  // The browser id serves analytics and ads: it goes once neither is granted.
  var unidentified = (consent.analytics || consent.ads) && !next.analytics && !next.ads
  consent = next
  if (answer && answer.bid) identity.adopt(answer)
  if (unidentified) identity.forget()
  // A withdrawal stops at once what was queued under the consent it takes back.
  if (withdrew && transport) transport.drop()
}

function start(options) {
  if (config) return
  config = options
  var features = config.features || {}
  consent = fromGranted(config.granted || [])
  identity = createIdentity(config.site, config.host)
  addEventListener(CONSENT_EVENT, function (event) {
    applyConsent(fromGranted(event.detail.granted), event.detail.answer)
    if (transport) transport.store()
  })
  // Ad events are still counted (billing needs them); page tracking stops here.
  if (features.analytics === false || (features.dnt && privacySignal())) return
  started = true
  transport = createTransport({
    host: config.host,
    queueKey: 'naboria:' + config.site + ':queue',
    envelope: envelope,
    persist: function () {
      return consent.analytics
    },
  })
  addEventListener('pagehide', function () {
    transport.beacon(envelopeNow())
  })
  document.addEventListener('visibilitychange', function () {
    if (document.hidden) transport.beacon(envelopeNow())
  })
  watchPages(
    function (url) {
      send({ type: 'pageview', url: url, referrer: document.referrer })
    },
    function (url, visibleMs, scrollDepth) {
      if (features.engagement !== false)
        send({ type: 'engagement', url: url, visible_ms: visibleMs, scroll_depth: scrollDepth })
    }
  )
  watchLinks(features, function (type, target) {
    send({ type: type, url: location.href, target: target })
  })
}

var api = {
  init: function (options) {
    if (options.site && !options.features) {
      // A bundling app: the site's settings come from the server, as the loader would embed them.
      fetch(options.host + '/t/' + options.site + '.json')
        .then(function (response) {
          return response.json()
        })
        .then(function (served) {
          // As the loader would: the config for the other modules, then the modules themselves
          // (the first script is this one).
          window.naboriaConfig = Object.assign(served, options)
          served.scripts.slice(1).forEach(function (src) {
            var script = document.createElement('script')
            script.src = src
            script.async = false
            document.head.appendChild(script)
          })
          start(served)
        })
    } else start(options)
  },
  track: function (name, props) {
    send({ type: 'event', name: name, url: location.href, props: props || {} })
  },
  // For the ads module: who is looking (browser id and token only with consent).
  viewer: function () {
    return envelopeNow(true)
  },
  // For the ads module: an ad event, answered once stored (the promise rejects otherwise).
  adEvent: function (payload) {
    if (!config) return Promise.reject(Error('not started'))
    return envelope(true).then(function (envelope) {
      payload.site = envelope.site
      payload.consent = envelope.consent
      payload.bid = envelope.bid
      payload.token = envelope.token
      return fetch(config.host + '/ad-event', {
        method: 'POST',
        body: JSON.stringify(payload),
        headers: { 'Content-Type': 'text/plain' },
        keepalive: true,
      }).then(function (response) {
        if (!response.ok) throw Error(response.status)
      })
    })
  },
  consent: {
    get: function () {
      return consent || none()
    },
    set: function (next) {
      applyConsent({ analytics: !!next.analytics, ads: !!next.ads })
    },
    open: function () {
      dispatchEvent(new CustomEvent(OPEN_EVENT))
    },
  },
}

window.naboria = api
if (window.naboriaConfig) start(window.naboriaConfig)
queued.forEach(function (call) {
  var path = call[0].split('.')
  var target = path.length > 1 ? api[path[0]][path[1]] : api[path[0]]
  target.apply(null, [].slice.call(call, 1))
})

// The tag manager's browser side, loaded by the per-site loader on sites with tags (and on
// pages with blocking markup, markup.js). Each tag of the site's config (tags.selectors) and
// each blocked element of the page runs only once every purpose it names is granted — the
// banner's required purposes count as granted — and is stopped when one is withdrawn: what it
// added to the page is removed, the template's stop runs (Google opt-out flag and Consent Mode
// 'denied', Meta's consent revoke), its first-party cookies are deleted and, if the site asked
// for it, the page reloads (code that already ran cannot be un-run). It follows the decision
// the banner stored and announces (core/consent.js). In advanced Consent Mode the Google
// templates are the exception (docs/tracker.md): they run at once, under the denied defaults
// the loader declared, and Consent Mode alone governs them.
import { SIGNALS } from '../cmp/consent-mode.js'
import { CONSENT_EVENT } from '../core/consent.js'
import { deleteCookies } from './dom.js'
import { blockedMarkup } from './markup.js'
import { TEMPLATES } from './templates.js'

var config = window.naboriaConfig
var banner = config.banner
var required = banner.purposes
  .filter(function (purpose) {
    return purpose.required
  })
  .map(function (purpose) {
    return purpose.key
  })
var granted = []
var items = []

function grant(keys) {
  granted = required.concat(keys)
}

function allowed(purposes) {
  return (
    purposes.length > 0 &&
    purposes.every(function (key) {
      return granted.indexOf(key) >= 0
    })
  )
}

function purposeName(key) {
  var texts = banner.texts
  var languages = (navigator.languages || []).map(function (tag) {
    return tag.slice(0, 2)
  })
  var language = languages.filter(function (code) {
    return texts[code]
  })[0]
  var text = (texts[language] || texts[banner.language] || {}).purposes
  return (text && text[key] && text[key].name) || key
}

// The Consent Mode signals a Google tag denies when withdrawn: those of its purposes, or all.
function signals(tag) {
  var found = []
  banner.purposes.forEach(function (purpose) {
    if (tag.purposes.indexOf(purpose.key) >= 0) found = found.concat(purpose.signals)
  })
  return found.length ? found : SIGNALS
}

function tagItem(tag) {
  var template = TEMPLATES[tag.type]
  var ran = false
  tag.signals = signals(tag)
  return {
    purposes: tag.purposes,
    cookies: tag.cookies,
    governed: template.consentMode && banner.consentMode === 'advanced',
    start: function (after) {
      tag.on = true
      this.added = template.start(tag, !ran)
      ran = true
      after()
    },
    stop: function () {
      tag.on = false
      ;(this.added || []).forEach(function (element) {
        element.remove()
      })
      if (template.stop) template.stop(tag)
      deleteCookies(tag.cookies)
      return tag.reload
    },
  }
}

// Starts what is newly allowed, in order (a script waits for the one before), and stops what
// no longer is; reloads the page if a stopped item asks for it.
function apply() {
  var reload = false
  var starting = []
  items.forEach(function (item) {
    var ok = allowed(item.purposes)
    if (item.governed) {
      // Runs from the first page view; a withdrawal leaves it to the banner's Consent Mode
      // update (cookieless pings again) and deletes what it stored under the grant.
      if (!item.on) starting.push(item)
      else if (item.granted && !ok) deleteCookies(item.cookies)
      item.granted = ok
      item.on = true
      return
    }
    if (ok && !item.on) starting.push(item)
    else if (!ok && item.on) reload = item.stop() || reload
    item.on = ok
  })
  if (reload) location.reload()
  else startInOrder(starting, 0)
}

// An item withdrawn while the one before it was loading is skipped.
function startInOrder(list, index) {
  var item = list[index]
  var next = function () {
    startInOrder(list, index + 1)
  }
  if (item) item.on ? item.start(next) : next()
}

function start() {
  items = config.tags
    .filter(function (tag) {
      return TEMPLATES[tag.type]
    })
    .map(tagItem)
    .concat(blockedMarkup(purposeName))
  // What the stored decision grants here and now, as the loader read it (cmp/choices.js:
  // expiry, re-prompt, subdomains, GPC).
  grant(config.granted || [])
  addEventListener(CONSENT_EVENT, function (event) {
    grant(event.detail.granted)
    // After the banner's own Consent Mode update, which follows the event: a Google tag
    // configured now must find the new consent state before its config in the dataLayer.
    setTimeout(apply)
  })
  apply()
}

document.readyState === 'loading' ? addEventListener('DOMContentLoaded', start) : start()

// Where, for how long and how a visitor's decision applies (docs/tracker.md, "Expiry, scope,
// GPC and regions"). Used by the loader (before any other tag) and by the banner.
//  - Expiry: a decision counts for banner.expiryMonths calendar months, and only if it answered
//    a version at or after banner.reprompt (the latest material change).
//  - Scope: it is a cookie on the registrable domain (computed by the server from the site's
//    allowed hosts) that the page's host belongs to, so every subdomain shares it.
//  - GPC: where the site honours it, purposes that personalise ads are denied whatever the
//    decision (Consent Mode ad signals, TCF purposes 2-4 and 7, Naboria's own ads).
//  - Regions: outside the EEA, UK and CH the server says which rule applies (GET /region).
import { CONSENT_EVENT, decisionKey } from '../core/consent.js'
import { read, write } from '../core/storage.js'
import { consentModeState, gtag } from './consent-mode.js'

var AD_SIGNALS = /^ad_/
var AD_TCF_PURPOSES = [2, 3, 4, 7]

function cookieName(config) {
  return 'naboria_' + config.site
}

// The site's registrable domain the page is on, if any (else the cookie stays on this host).
function cookieDomain(config) {
  var host = location.hostname
  return config.banner.domains.filter(function (domain) {
    return host === domain || host.slice(-domain.length - 1) === '.' + domain
  })[0]
}

export function gpc(config) {
  return !!((config.features || {}).dnt && navigator.globalPrivacyControl)
}

// The purposes of `granted` that may be granted here (GPC denies those that personalise ads).
export function allowed(config, granted) {
  var banned = gpc(config)
  return granted.filter(function (key) {
    return !(
      banned &&
      config.banner.purposes.some(function (purpose) {
        return (
          purpose.key === key &&
          (purpose.signals.some(function (signal) {
            return AD_SIGNALS.test(signal)
          }) ||
            purpose.tcf.some(function (id) {
              return AD_TCF_PURPOSES.indexOf(id) >= 0
            }))
        )
      })
    )
  })
}

// The stored decision if it still counts, else null (the banner asks again).
// The decision stored in this browser, whether it still counts or not (its TC string's
// Created date outlives it).
export function storedDecision(config) {
  var match = document.cookie.match('(?:^|; )' + cookieName(config) + '=([^;]*)')
  try {
    // Decisions stored by earlier releases (localStorage, this host only) still count.
    return match ? JSON.parse(decodeURIComponent(match[1])) : read(localStorage, decisionKey(config.site))
  } catch (e) {}
}

export function readDecision(config) {
  var banner = config.banner
  var decision = storedDecision(config)
  if (!decision) return null
  var expires = new Date(decision.at)
  expires.setMonth(expires.getMonth() + banner.expiryMonths)
  return decision.version >= banner.reprompt && expires > Date.now() ? decision : null
}

export function writeDecision(config, decision) {
  var domain = cookieDomain(config)
  document.cookie =
    cookieName(config) +
    '=' +
    encodeURIComponent(JSON.stringify(decision)) +
    ';path=/;SameSite=Lax;max-age=' +
    // 31 days a month: the cookie outlives the decision, readDecision() is the judge.
    config.banner.expiryMonths * 2678400 +
    (domain ? ';domain=' + domain : '') +
    (location.protocol === 'https:' ? ';Secure' : '')
  write(localStorage, decisionKey(config.site), null)
}

// Consent Mode defaults, before any Google tag: denied, or (outside the EEA, UK and CH when
// the banner does not ask first there) granted but for what GPC denies, with the opt-in
// regions denied by Consent Mode's `region` parameter.
export function consentDefaults(config) {
  var banner = config.banner
  var denied = consentModeState(banner.purposes, [])
  // Advanced mode: Google tags run at once (cookieless pings) and wait a little for the
  // stored decision or the region's rule; basic mode holds them until consent.
  if (banner.consentMode === 'advanced') denied.wait_for_update = 500
  if (banner.optInRegions) {
    gtag('consent', 'default', Object.assign({ region: banner.optInRegions }, denied))
    denied = Object.assign(
      {},
      denied,
      consentModeState(
        banner.purposes,
        allowed(
          config,
          banner.purposes.map(function (purpose) {
            return purpose.key
          })
        )
      )
    )
  }
  gtag('consent', 'default', denied)
}

// The location rule for this visitor: 'opt_in', 'opt_out' or 'no_banner'. Asked of the server
// only when the banner's rule outside the regulated regions is not opt-in; any failure means
// opt-in, the safe side.
export function regionRule(config) {
  if (config.banner.elsewhere === 'opt_in') return Promise.resolve('opt_in')
  return fetch(config.host + '/region?site=' + config.site)
    .then(function (response) {
      return response.json()
    })
    .then(
      function (answer) {
        return answer.rule || 'opt_in'
      },
      function () {
        return 'opt_in'
      }
    )
}

// A withdrawal applies here and now, before the server answers: the tracker stops (and drops
// what it queued), Google tags get the denied update.
export function withdrawAtOnce(config, previous, granted) {
  var kept = previous.filter(function (key) {
    return granted.indexOf(key) >= 0
  })
  if (kept.length === previous.length) return
  dispatchEvent(new CustomEvent(CONSENT_EVENT, { detail: { granted: kept } }))
  if (config.banner.consentMode) gtag('consent', 'update', consentModeState(config.banner.purposes, kept))
}

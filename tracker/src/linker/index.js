// Cross-domain visitors (docs/cross-domain.md). Loaded by the per-site loader, before the
// tracker, on sites with a banner whose allowed hosts span several domains (config.linkDomains:
// subdomains of one domain share the decision cookie and need none of this).
//  - Leaving: with analytics consent, a link to another of the site's domains carries
//    _nb=<bid>.<link token> for the one navigation it starts (the link token, from /init, is
//    accepted for 30 minutes and proves the id is the server's for this site).
//  - Landing: the parameter is stripped from the address before anything reads it, with or
//    without consent. A decision here that grants analytics continues with the carried id
//    (the tracker renews it with the link token); without a decision here, the decision
//    recorded for that id is asked of the server (GET /decision, which checks the link token)
//    and adopted if it still counts, else the banner asks. A decision here that does not grant
//    analytics ignores it: no identifier crosses domains without consent.
import { initQuery, identityKey } from '../core/identity.js'
import { read, write } from '../core/storage.js'
import { readDecision, writeDecision } from '../cmp/choices.js'

var PARAM = '_nb'
var config = window.naboriaConfig
var key = identityKey(config.site)
var carried

function domainOf(host) {
  return config.linkDomains.filter(function (domain) {
    return host === domain || host.slice(-domain.length - 1) === '.' + domain
  })[0]
}

var search = location.search.replace(RegExp('([?&])' + PARAM + '=([^&]*)&?'), function (all, separator, value) {
  carried = value.split('.')
  return separator
})
if (carried) {
  history.replaceState(history.state, '', location.pathname + search.replace(/[?&]$/, '') + location.hash)
  // <bid>.<window>.<mac> (hex and digits: nothing to decode)
  var handoff = { bid: carried[0], link: carried.slice(1).join('.') }
  if (config.granted.indexOf('analytics') >= 0) write(localStorage, key, { bid: handoff.bid, link: handoff.link, at: 0 })
  else if (!readDecision(config) && !config.banner.tcf)
    // The tracker and the banner wait for the answer (the first pageview counts as the
    // visitor the decision says). A TCF banner asks again: the record keeps the TC string, not
    // the choices the banner shows.
    config.ready = fetch(config.host + '/decision' + initQuery(config.site, handoff))
      .then(function (response) {
        return response.json()
      })
      .then(function (answer) {
        var decision = answer.decision
        if (!decision) return
        decision.recorded = true
        decision.bid = answer.bid
        decision.token = answer.token
        writeDecision(config, decision)
        if (answer.bid) write(localStorage, key, { bid: answer.bid, token: answer.token, link: answer.link, at: Date.now() })
      })
      .catch(function () {})
}

function decorate(event) {
  var link = event.target.closest && event.target.closest('a[href]')
  var id = read(localStorage, key)
  if (!link || !id || !id.link || !window.naboria.consent.get().analytics) return
  var there = domainOf(link.hostname)
  if (!there || there === domainOf(location.hostname) || !/^https?:$/.test(link.protocol)) return
  var original = link.getAttribute('href')
  var hash = link.hash
  var base = link.href.slice(0, link.href.length - hash.length)
  link.href = base + (link.search ? '&' : '?') + PARAM + '=' + id.bid + '.' + id.link + hash
  // Only this navigation carries it: a link copied or shared afterwards holds nothing.
  setTimeout(function () {
    link.setAttribute('href', original)
  })
}
document.addEventListener('click', decorate, true)
document.addEventListener('auxclick', decorate, true)

// The per-site loader served at /t/<site>.js. Django puts the site's config in place of
// NABORIA_CONFIG, so no second request is needed. Before any other tag can run it declares
// Consent Mode defaults and the __tcfapi stub (when the site's banner uses them), then loads
// the long-cacheable bundles in order: tracker core, ads module, consent banner, tags module,
// recommendations module.
import { consentModeState, gtag } from './cmp/consent-mode.js'
import { installStub } from './cmp/tcf.js'
import { allowed, consentDefaults, readDecision } from './cmp/choices.js'
import { identityKey } from './core/identity.js'
import { read, write } from './core/storage.js'

var config = NABORIA_CONFIG
var banner = config.banner
window.naboriaConfig = config
if (banner) {
  if (banner.tcf) installStub(window)
  var decision = readDecision(config)
  // What the stored decision grants here and now (the tracker core starts from it).
  var granted = (config.granted = decision ? allowed(config, decision.granted) : [])
  var key = identityKey(config.site)
  // Analytics or ads granted on another subdomain: this host takes the browser id the decision
  // was recorded with and its token (the tracker renews it with /init). A decision granting neither keeps
  // none; without a decision, only a banner that may grant by region (opt-out) keeps one.
  if (decision ? granted.indexOf('analytics') < 0 && granted.indexOf('ads') < 0 : banner.elsewhere === 'opt_in') write(localStorage, key, null)
  else if (decision && decision.bid && !read(localStorage, key)) write(localStorage, key, { bid: decision.bid, token: decision.token, at: 0 })
  if (banner.consentMode) {
    consentDefaults(config)
    if (decision) gtag('consent', 'update', consentModeState(banner.purposes, granted))
  }
}
function load(src) {
  var script = document.createElement('script')
  script.src = src
  script.async = false
  document.head.appendChild(script)
}
config.scripts.forEach(load)
// A site without tags gets the tags module only on a page that holds blocking markup.
function markup() {
  if (document.querySelector('[data-naboria-purpose]')) load(config.tagsScript)
}
if (config.tagsScript) document.readyState === 'loading' ? addEventListener('DOMContentLoaded', markup) : markup()
// Recommendations only in browsers of the ES-modules era (fetch, promises, CustomEvent).
if (config.recsScript && 'noModule' in document.createElement('script')) load(config.recsScript)

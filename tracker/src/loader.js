// The per-site loader served at /t/<site>.js. Django puts the site's config in place of
// NABORIA_CONFIG, so no second request is needed. Before any other tag can run it declares
// Consent Mode defaults and the __tcfapi stub (when the site's banner uses them), then loads
// the long-cacheable bundles in order: tracker core, ads module, consent banner, tags module.
import { consentModeState, gtag } from './cmp/consent-mode.js'
import { installStub } from './cmp/tcf.js'
import { storedDecision } from './cmp/decision.js'

var config = NABORIA_CONFIG
var banner = config.banner
window.naboriaConfig = config
if (banner) {
  if (banner.tcf) installStub(window)
  if (banner.consentMode) {
    var decision = storedDecision(config.site, banner.version)
    var denied = consentModeState(banner.purposes, [])
    denied.wait_for_update = 500
    gtag('consent', 'default', denied)
    if (decision) gtag('consent', 'update', consentModeState(banner.purposes, decision.granted))
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

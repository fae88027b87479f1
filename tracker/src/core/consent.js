// What the visitor allowed, as the tracker obeys it. With Naboria's banner the decision is the
// one the banner stored (and announces with the "naboria:consent" event); a site with its own
// CMP passes it in with naboria.consent.set(). Until then nothing is granted.
import { read } from './storage.js'

export const CONSENT_EVENT = 'naboria:consent'
export const OPEN_EVENT = 'naboria:consent-open'

export function decisionKey(site) {
  return 'naboria:' + site + ':consent'
}

// The stored decision counts only for the banner version it answered: a new version asks again.
export function storedConsent(site, banner) {
  var decision = banner && read(localStorage, decisionKey(site))
  return decision && decision.version === banner.version ? fromGranted(decision.granted) : none()
}

export function fromGranted(granted) {
  return { analytics: granted.indexOf('analytics') >= 0, ads: granted.indexOf('ads') >= 0 }
}

export function none() {
  return { analytics: false, ads: false }
}

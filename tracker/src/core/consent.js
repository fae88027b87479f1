// What the visitor allowed, as the tracker obeys it. With Naboria's banner the decision is the
// one the banner stored, as the loader read it (config.granted: still valid, GPC applied) and
// the banner announces ("naboria:consent" event); a site with its own CMP passes it in with
// naboria.consent.set(). Until then nothing is granted.
export const CONSENT_EVENT = 'naboria:consent'
export const OPEN_EVENT = 'naboria:consent-open'

export function decisionKey(site) {
  return 'naboria:' + site + ':consent'
}

export function fromGranted(granted) {
  return { analytics: granted.indexOf('analytics') >= 0, ads: granted.indexOf('ads') >= 0 }
}

export function none() {
  return { analytics: false, ads: false }
}

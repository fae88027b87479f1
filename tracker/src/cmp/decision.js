// The visitor's decision as the banner stores it in localStorage (keeping the decision itself
// is strictly necessary; nothing else is stored before it):
// {version, granted: [keys], denied: [keys], tc, at, recorded: bool}.
// The tracker core reads the same key (src/core/consent.js).
import { read, write } from '../core/storage.js'
import { decisionKey } from '../core/consent.js'

export function storedDecision(site, version) {
  var decision = read(localStorage, decisionKey(site))
  return decision && decision.version === version ? decision : null
}

export function storeDecision(site, decision) {
  write(localStorage, decisionKey(site), decision)
}

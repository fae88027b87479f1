// The browser id and its HMAC token, only ever held with analytics consent. The token is
// accepted for its 5-minute window and the next, so it is renewed after 4 minutes.
import { read, write } from './storage.js'

var RENEW_AFTER_MS = 240000

export function identityKey(site) {
  return 'naboria:' + site + ':id'
}

export function createIdentity(site, host) {
  var key = identityKey(site)
  var current = read(localStorage, key)
  var pending = null

  function adopt(answer) {
    current = { bid: answer.bid, token: answer.token, at: Date.now() }
    write(localStorage, key, current)
    return current
  }

  return {
    adopt: adopt,
    peek: function () {
      return current
    },
    forget: function () {
      current = null
      write(localStorage, key, null)
    },
    // Resolves to {bid, token}, asking /init when there is none or it is about to expire.
    get: function () {
      if (current && Date.now() - current.at < RENEW_AFTER_MS) return Promise.resolve(current)
      if (!pending) {
        var query = '?site=' + site + (current ? '&bid=' + encodeURIComponent(current.bid) : '')
        pending = fetch(host + '/init' + query)
          .then(function (response) {
            if (!response.ok) throw Error(response.status)
            return response.json()
          })
          .then(adopt)
          .finally(function () {
            pending = null
          })
      }
      return pending
    },
  }
}

// The browser id and its HMAC token, only ever held with analytics consent. The token is
// accepted with events for its 5-minute window and the next, so it is renewed after 4 minutes:
// /init keeps the id only for the token it was issued with (of any age up to the renewal
// horizon, docs/tracking-protocol.md); asked without it, /init issues a new id.
import { read, write } from './storage.js'

var RENEW_AFTER_MS = 240000

export function identityKey(site) {
  return 'naboria:' + site + ':id'
}

// The /init query renewing `id` (a {bid, token} or a {bid, link}), or asking for a new one.
export function initQuery(site, id) {
  var query = '?site=' + site
  if (id)
    ['bid', 'token', 'link'].forEach(function (name) {
      if (id[name]) query += '&' + name + '=' + encodeURIComponent(id[name])
    })
  return query
}

export function createIdentity(site, host) {
  var key = identityKey(site)
  var current = read(localStorage, key)
  var pending = null

  function adopt(answer) {
    current = { bid: answer.bid, token: answer.token, link: answer.link, at: Date.now() }
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
        pending = fetch(host + '/init' + initQuery(site, current))
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

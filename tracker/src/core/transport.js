// Batches page events and delivers them: fetch with keepalive while the page lives, so a 503
// or a network error can be retried; sendBeacon when the page is being hidden, because the
// browser delivers a beacon even after the page is gone. Undelivered events are kept in
// sessionStorage (only with analytics consent) and sent again by the next page of the visit.
import { read, write } from './storage.js'

var MAX_BATCH = 20
var FLUSH_DELAY_MS = 1000
var RETRY_MS = 5000

export function createTransport(options) {
  // options: {host, site, queueKey, envelope(): Promise<object>, persist(): bool}
  var queue = []
  var timer = 0
  var sending = false
  var restored = options.persist() && read(sessionStorage, options.queueKey)
  if (restored) queue = restored

  function keep() {
    write(sessionStorage, options.queueKey, options.persist() && queue.length ? queue : null)
  }

  function schedule(delay) {
    if (!timer) timer = setTimeout(flush, delay)
  }

  function flush() {
    timer = 0
    if (sending || !queue.length) return
    var batch = queue.slice(0, MAX_BATCH)
    sending = true
    options
      .envelope()
      .then(function (envelope) {
        // Dropped while the envelope was made (consent withdrawn): the batch is not sent.
        if (queue[0] !== batch[0]) return (batch = [])
        envelope.events = batch
        envelope.sent_at = Date.now()
        return fetch(options.host + '/collect', {
          method: 'POST',
          body: JSON.stringify(envelope),
          headers: { 'Content-Type': 'text/plain' },
          keepalive: true,
        })
      })
      .then(function (response) {
        // 503: the server could not take them now. Other statuses are final (a 4xx names
        // events that would be refused again).
        if (response.status === 503) throw Error()
        queue = queue.slice(batch.length)
      })
      .catch(function () {
        schedule(RETRY_MS)
      })
      .finally(function () {
        sending = false
        keep()
        if (queue.length) schedule(FLUSH_DELAY_MS)
      })
  }

  return {
    push: function (event) {
      var now = (event.ts = Date.now()).toString(16).padStart(12, '0')
      // A UUIDv7 (RFC 9562): the time first, so the server looks it up among recent ids only.
      event.id = crypto.randomUUID
        ? now.slice(0, 8) + '-' + now.slice(8) + '-7' + crypto.randomUUID().slice(15)
        : undefined
      queue.push(event)
      keep()
      queue.length >= MAX_BATCH ? flush() : schedule(FLUSH_DELAY_MS)
    },
    // The page is going away: hand everything to the browser now.
    beacon: function (envelope) {
      if (!queue.length || !navigator.sendBeacon) return
      envelope.events = queue.slice(0, 100)
      envelope.sent_at = Date.now()
      if (navigator.sendBeacon(options.host + '/collect', JSON.stringify(envelope))) queue = []
      keep()
    },
    // Consent changed: keep the undelivered events in sessionStorage only if it allows.
    store: keep,
    // Consent withdrawn: the undelivered events go (they were taken under it).
    drop: function () {
      queue = []
      keep()
    },
    flush: flush,
  }
}

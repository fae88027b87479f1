// The recommendations module (docs/recommendations.md). The loader loads it after the tracker
// core on sites with recommendations on, in modern browsers only. It waits briefly for the
// core's browser id and token (held only with analytics consent), reports the visit, asks
// /recs/items for the site's popular pages the visitor has not seen and dispatches the answer
// on document: document.addEventListener('naboria:recs', e => show(e.detail.items)).
// Again when the visitor decides in the banner (personal items once analytics is granted).
export var RECS_EVENT = 'naboria:recs'
var CONSENT_EVENT = 'naboria:consent'

// Resolves to the core's {bid, token} once it holds them with analytics consent, or null:
// without that consent, or when none came within polls * pollMs.
export function viewer(win, polls, pollMs) {
  return new Promise(function (resolve) {
    function look() {
      var naboria = win.naboria
      var analytics = naboria && naboria.consent.get().analytics
      var seen = analytics && naboria.viewer()
      if (seen && seen.token) resolve(seen)
      else if ((naboria && !analytics) || --polls < 0) resolve(null)
      else win.setTimeout(look, pollMs)
    }
    look()
  })
}

export function startRecs(win, polls, pollMs) {
  var config = win.naboriaConfig
  var doc = win.document
  function run() {
    return viewer(win, polls, pollMs)
      .then(function (seen) {
        var url = win.location.href
        var query = '?site=' + config.site + '&url=' + encodeURIComponent(url)
        if (seen) {
          query += '&bid=' + seen.bid + '&token=' + seen.token + '&consent=analytics'
          var visit = { site: config.site, type: 'visit', url: url, title: doc.title, bid: seen.bid, token: seen.token, consent: seen.consent }
          win
            .fetch(config.host + '/recs/signal', { method: 'POST', body: JSON.stringify(visit), headers: { 'Content-Type': 'text/plain' }, keepalive: true })
            .catch(function () {})
        }
        return win.fetch(config.host + '/recs/items' + query)
      })
      .then(function (response) {
        if (!response.ok) throw Error(response.status)
        return response.json()
      })
      .then(function (answer) {
        doc.dispatchEvent(new win.CustomEvent(RECS_EVENT, { detail: answer }))
      })
      .catch(function () {}) // no recommendations this time: the page shows none
  }
  win.addEventListener(CONSENT_EVENT, run)
  return run()
}

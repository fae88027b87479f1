// Reads of the reports REST API and the saved segments API (session authentication) for the
// dashboard.
export function reportUrl(site, name, params) {
  return '/api/v1/sites/' + site + '/reports/' + name + '?' + params.toString()
}

// A request to the API; its error message (`error`, or `detail`) becomes the rejection's.
function call(url, options) {
  return fetch(url, Object.assign({ credentials: 'same-origin' }, options, {
    headers: Object.assign({ Accept: 'application/json' }, options && options.headers),
  })).then(function (response) {
    if (response.status === 204) return null
    return response.json().then(function (body) {
      if (!response.ok) throw Error(body.error || body.detail || response.status)
      return body
    })
  })
}

export function report(site, name, params) {
  return call(reportUrl(site, name, params))
}

// The same report's rows as a CSV download (the API's format=csv).
export function csvUrl(site, name, params) {
  var query = new URLSearchParams(params)
  query.set('format', 'csv')
  if (query.has('page_size')) query.set('page_size', '1000')
  return reportUrl(site, name, query)
}

// Saved segments of the site; writes carry the page's CSRF token (session authentication).
export function segments(site) {
  return call('/api/v1/sites/' + site + '/segments')
}

export function saveSegment(site, csrf, name, filters) {
  return call('/api/v1/sites/' + site + '/segments', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf },
    body: JSON.stringify({ name: name, filters: filters }),
  })
}

export function deleteSegment(site, csrf, id) {
  return call('/api/v1/sites/' + site + '/segments/' + id, { method: 'DELETE', headers: { 'X-CSRFToken': csrf } })
}

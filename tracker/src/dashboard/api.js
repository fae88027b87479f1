// Reads of the reports REST API (session authentication) for the dashboard.
export function reportUrl(site, name, params) {
  return '/api/v1/sites/' + site + '/reports/' + name + '?' + params.toString()
}

export function report(site, name, params) {
  return fetch(reportUrl(site, name, params), {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  }).then(function (response) {
    return response.json().then(function (body) {
      if (!response.ok) throw Error(body.error || body.detail || response.status)
      return body
    })
  })
}

// The same report's rows as a CSV download (the API's format=csv).
export function csvUrl(site, name, params) {
  var query = new URLSearchParams(params)
  query.set('format', 'csv')
  if (query.has('page_size')) query.set('page_size', '1000')
  return reportUrl(site, name, query)
}

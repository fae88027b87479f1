// Reads of the reports REST API (session authentication) for the dashboard.
export function report(site, name, params) {
  var query = new URLSearchParams(params).toString()
  return fetch('/api/v1/sites/' + site + '/reports/' + name + '?' + query, {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  }).then(function (response) {
    return response.json().then(function (body) {
      if (!response.ok) throw Error(body.error || body.detail || response.status)
      return body
    })
  })
}

// The dashboard's state (period, comparison, filters, tab, funnel steps, property) and its
// URL, so a view can be shared. Every day is a day in the SITE's timezone, never the browser's
// or UTC: "Today" on a US site is its date, whatever the time in Paris.

// Filters the reports API takes (analytics.reports.query), in the order chips show them.
export var FILTERS = [
  'path', 'hostname', 'source', 'medium', 'utm_source', 'utm_medium', 'utm_campaign',
  'country', 'device', 'browser', 'os', 'goal', 'property',
]

// The one place that turns a filter into query parameters and back: today one value per
// filter (`source=Google`); a richer syntax (negation, contains, several values) changes these
// two functions only.
export function filterParams(filter) {
  return [[filter.name, filter.value]]
}

export function filterFromParam(name, value) {
  return { name: name, value: value }
}

export function filterLabel(filter) {
  return filter.name + ': ' + (filter.value === '' ? '(none)' : filter.value)
}

// YYYY-MM-DD of `moment` in `timezone`.
export function dayIn(timezone, moment) {
  var parts = {}
  new Intl.DateTimeFormat('en-CA', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(moment)
    .forEach(function (part) { parts[part.type] = part.value })
  return parts.year + '-' + parts.month + '-' + parts.day
}

// Calendar arithmetic on YYYY-MM-DD (in UTC, where every day has 24 hours).
export function addDays(day, count) {
  var date = new Date(day + 'T00:00:00Z')
  date.setUTCDate(date.getUTCDate() + count)
  return date.toISOString().slice(0, 10)
}

export function daysBetween(first, last) {
  return Math.round((Date.parse(last + 'T00:00:00Z') - Date.parse(first + 'T00:00:00Z')) / 864e5)
}

// The last `days` days up to today, site time.
export function lastDays(timezone, days, now) {
  var today = dayIn(timezone, now || new Date())
  return { from: addDays(today, 1 - days), to: today }
}

// The same number of days just before the state's period (the API's compare=previous).
export function previousRange(state) {
  var days = daysBetween(state.from, state.to) + 1
  return { from: addDays(state.from, -days), to: addDays(state.from, -1) }
}

var DAY = /^\d{4}-\d{2}-\d{2}$/

export function readState(search, timezone, now) {
  var query = new URLSearchParams(search)
  var range = lastDays(timezone, 30, now)
  var state = {
    from: DAY.test(query.get('from')) ? query.get('from') : range.from,
    to: DAY.test(query.get('to')) ? query.get('to') : range.to,
    // previous (default), off, or a custom range YYYY-MM-DD..YYYY-MM-DD
    compare: query.get('compare') || 'previous',
    tab: query.get('tab') || 'overview',
    steps: query.get('steps') || '/,/products,/cart,/checkout,/thanks',
    propertyEvent: query.get('prop_event') || '',
    propertyKey: query.get('prop_key') || '',
    filters: [],
  }
  FILTERS.forEach(function (name) {
    query.getAll(name).forEach(function (value) { state.filters.push(filterFromParam(name, value)) })
  })
  return state
}

// Parameters of a report under the state's period and filters, plus the report's own.
export function reportParams(state, extra) {
  var params = new URLSearchParams({ from: state.from, to: state.to })
  state.filters.forEach(function (filter) {
    filterParams(filter).forEach(function (pair) { params.append(pair[0], pair[1]) })
  })
  Object.keys(extra || {}).forEach(function (name) { params.set(name, extra[name]) })
  return params
}

// The comparison parameter the API takes, or null for none.
export function compareParam(state) {
  return state.compare === 'off' ? null : state.compare
}

export function stateQuery(state) {
  var params = reportParams(state, { tab: state.tab, compare: state.compare })
  if (state.tab === 'funnel') params.set('steps', state.steps)
  if (state.propertyEvent) params.set('prop_event', state.propertyEvent)
  if (state.propertyKey) params.set('prop_key', state.propertyKey)
  return params
}

// The dashboard's state (period, comparison, filters, tab, funnel steps, property) and its
// URL, so a view can be shared. Every day is a day in the SITE's timezone, never the browser's
// or UTC: "Today" on a US site is its date, whatever the time in Paris.

// Filters the reports API takes (analytics.reports.query), in the order the filter bar
// offers them.
export var FILTERS = [
  'path', 'hostname', 'entry_page', 'exit_page', 'source', 'medium', 'utm_source', 'utm_medium',
  'utm_campaign', 'utm_term', 'utm_content', 'country', 'region', 'city', 'device', 'browser', 'os', 'goal',
  'property',
]

// The filters of the reports that do not read visits (docs/analytics.md, Filters): any other
// is a 400, so the dashboard leaves it out of their requests and says so. (The realtime panel
// is pushed by a stream that takes no parameters: never filtered.)
var APPLIED = {
  ads: ['path', 'country', 'region', 'city', 'device'],
  consent: ['country', 'browser'],
  'ad-revenue': [],
  // App release reports test their filters on the update events themselves.
  'app-adoption': ['country', 'os', 'device'],
  'app-versions': ['country', 'os', 'device'],
  'app-active-devices': ['country', 'os', 'device'],
  'app-failures': ['country', 'os', 'device'],
  'app-performance': ['country', 'os', 'device'],
}

// The one place that turns a filter into query parameters and back, in the API's syntax:
// `country=FR|DE` (any of), `!` first for none of them, `~` for contains, `*` a wildcard,
// `property=key:value`. A filter is {name, key, negated, contains, values}; each value is kept
// as the API reads it (special characters escaped by a backslash), so a wildcard from a shared
// address stays one; `literal` escapes a value clicked or typed in the page.
export function filterParams(filter) {
  var text = (filter.negated ? '!' : '') + (filter.contains ? '~' : '') + filter.values.join('|')
  return [[filter.name, filter.name === 'property' ? filter.key + ':' + text : text]]
}

export function filterFromParam(name, text) {
  var key = ''
  if (name === 'property') {
    var colon = text.indexOf(':')
    key = text.slice(0, colon < 0 ? text.length : colon)
    text = colon < 0 ? '' : text.slice(colon + 1)
  }
  var negated = text.charAt(0) === '!'
  if (negated) text = text.slice(1)
  var contains = text.charAt(0) === '~'
  if (contains) text = text.slice(1)
  return { name: name, key: key, negated: negated, contains: contains, values: splitValues(text) }
}

// `text` split at its unescaped `|`, escapes kept; a value that would read as `!` or `~` once
// first gets that character escaped, so values can be removed in any order.
function splitValues(text) {
  var values = ['']
  for (var index = 0; index < text.length; index++) {
    var char = text.charAt(index)
    if (char === '\\') {
      values[values.length - 1] += text.slice(index, index + 2)
      index++
    } else if (char === '|') values.push('')
    else values[values.length - 1] += char
  }
  return values.map(function (value) { return /^[!~]/.test(value) ? '\\' + value : value })
}

// A value as it is (clicked in a table, typed in the filter bar), escaped for the syntax.
export function literal(value) {
  return String(value).replace(/[\\|*!~]/g, '\\$&')
}

// A value as people read it: escapes undone (a wildcard shows as its `*`).
export function shownValue(value) {
  return value === '' ? '(none)' : value.replace(/\\(.)/g, '$1')
}

export function filterLabel(filter) {
  return filterName(filter) + ' ' + OPERATORS[operatorOf(filter)] + ' ' + filter.values.map(shownValue).join(' or ')
}

export function filterName(filter) {
  return filter.name === 'property' ? 'property ' + filter.key : filter.name.replace(/_/g, ' ')
}

// The four ways a filter compares, as the filter bar offers them.
export var OPERATORS = { is: 'is', not: 'is not', contains: 'contains', not_contains: 'does not contain' }

export function operatorOf(filter) {
  if (filter.contains) return filter.negated ? 'not_contains' : 'contains'
  return filter.negated ? 'not' : 'is'
}

export function withOperator(filter, operator) {
  return Object.assign({}, filter, {
    negated: operator === 'not' || operator === 'not_contains',
    contains: operator === 'contains' || operator === 'not_contains',
  })
}

// The filters `report` applies (all of them for the reports that read visits), and the others.
export function appliedFilters(filters, report) {
  var names = APPLIED[report]
  return filters.filter(function (filter) { return !names || names.indexOf(filter.name) >= 0 })
}

export function ignoredFilters(filters, report) {
  var applied = appliedFilters(filters, report)
  return filters.filter(function (filter) { return applied.indexOf(filter) < 0 })
}

// The state's filters as a saved segment stores them ({name: value}), and back.
export function segmentFilters(filters) {
  var saved = {}
  filters.forEach(function (filter) {
    filterParams(filter).forEach(function (pair) { saved[pair[0]] = pair[1] })
  })
  return saved
}

export function filtersFromSegment(saved) {
  return FILTERS.filter(function (name) { return name in saved }).map(function (name) {
    return filterFromParam(name, saved[name])
  })
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

// Parameters of a report under the state's period and filters (those `report` applies, when
// named), plus the report's own.
export function reportParams(state, extra, report) {
  var params = new URLSearchParams({ from: state.from, to: state.to })
  appliedFilters(state.filters, report).forEach(function (filter) {
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

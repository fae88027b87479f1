// The dashboard's state: days in the site's timezone and the filter syntax of the URL.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  addDays, dayIn, filterFromParam, filterLabel, filterParams, filtersFromSegment, ignoredFilters, lastDays, literal,
  previousRange, readState, reportParams, segmentFilters, stateQuery, withOperator,
} from '../src/dashboard/state.js'

// 2026-12-07 20:00 UTC: Dec 7 in UTC and Los Angeles, already Dec 8 in Kiritimati (UTC+14).
var EVENING = new Date(Date.UTC(2026, 11, 7, 20))

test('today is the site’s date, not UTC’s nor the browser’s', function () {
  assert.equal(dayIn('Pacific/Kiritimati', EVENING), '2026-12-08')
  assert.equal(dayIn('America/Los_Angeles', EVENING), '2026-12-07')
  assert.deepEqual(lastDays('Pacific/Kiritimati', 1, EVENING), { from: '2026-12-08', to: '2026-12-08' })
  assert.deepEqual(lastDays('Pacific/Kiritimati', 7, EVENING), { from: '2026-12-02', to: '2026-12-08' })
})

test('day arithmetic ignores daylight saving and month ends', function () {
  assert.equal(addDays('2026-03-29', -1), '2026-03-28')
  assert.equal(addDays('2026-03-01', -1), '2026-02-28')
  assert.equal(addDays('2026-12-31', 1), '2027-01-01')
})

test('the previous period has as many days, just before', function () {
  assert.deepEqual(previousRange({ from: '2026-03-01', to: '2026-03-31' }), { from: '2026-01-29', to: '2026-02-28' })
})

test('the default period is the last 30 days of the site', function () {
  var state = readState('', 'Pacific/Kiritimati', EVENING)
  assert.equal(state.from, '2026-11-09')
  assert.equal(state.to, '2026-12-08')
  assert.equal(state.compare, 'previous')
})

test('filters go to and from the URL in the API’s syntax', function () {
  var state = readState('?from=2026-11-01&to=2026-11-30&source=Google&property=plan%3Apro&tab=goals', 'UTC', EVENING)
  assert.deepEqual(state.filters, [
    { name: 'source', key: '', negated: false, contains: false, values: ['Google'] },
    { name: 'property', key: 'plan', negated: false, contains: false, values: ['pro'] },
  ])
  assert.equal(
    reportParams(state, { page_size: 8 }).toString(),
    'from=2026-11-01&to=2026-11-30&source=Google&property=plan%3Apro&page_size=8'
  )
  assert.deepEqual(readState('?' + stateQuery(state), 'UTC', EVENING).filters, state.filters)
})

// Each form of the syntax (docs/analytics.md, Filters) read and written back unchanged.
test('negation, contains, several values, wildcards and escapes survive the round trip', function () {
  var cases = [
    ['country', '!FR', { negated: true, contains: false, values: ['FR'] }],
    ['country', 'FR|DE', { negated: false, contains: false, values: ['FR', 'DE'] }],
    ['country', '!FR|DE', { negated: true, contains: false, values: ['FR', 'DE'] }],
    ['path', '~blog|news', { negated: false, contains: true, values: ['blog', 'news'] }],
    ['path', '!~blog', { negated: true, contains: true, values: ['blog'] }],
    ['path', '/blog/*', { negated: false, contains: false, values: ['/blog/*'] }],
    ['path', 'a\\|b|\\*', { negated: false, contains: false, values: ['a\\|b', '\\*'] }],
    ['source', '', { negated: false, contains: false, values: [''] }],
    ['property', 'plan:!pro|team', { key: 'plan', negated: true, contains: false, values: ['pro', 'team'] }],
    ['property', 'plan:', { key: 'plan', negated: false, contains: false, values: [''] }],
  ]
  cases.forEach(function (one) {
    var filter = filterFromParam(one[0], one[1])
    assert.deepEqual(filter, Object.assign({ name: one[0], key: '' }, one[2]), one[1])
    assert.deepEqual(filterParams(filter), [[one[0], one[1]]], one[1])
  })
})

test('a value that would read as ! or ~ once first is escaped, so values can be removed', function () {
  var filter = filterFromParam('utm_term', 'a|!b|~c')
  assert.deepEqual(filter.values, ['a', '\\!b', '\\~c'])
  var rest = Object.assign({}, filter, { values: filter.values.slice(1) })
  assert.deepEqual(filterParams(rest), [['utm_term', '\\!b|\\~c']])
})

test('a clicked or typed value is taken as it is', function () {
  assert.equal(literal('50%|*off!'), '50%\\|\\*off\\!')
  assert.equal(literal('~x\\y'), '\\~x\\\\y')
  var filter = filterFromParam('path', literal('/a|b'))
  assert.deepEqual(filter.values, ['/a\\|b'])
  assert.equal(filterLabel(filter), 'path is /a|b')
})

test('the filter bar’s comparisons set negation and contains', function () {
  var filter = filterFromParam('country', 'FR|DE')
  assert.deepEqual(filterParams(withOperator(filter, 'not')), [['country', '!FR|DE']])
  assert.deepEqual(filterParams(withOperator(filter, 'contains')), [['country', '~FR|DE']])
  assert.deepEqual(filterParams(withOperator(filter, 'not_contains')), [['country', '!~FR|DE']])
  assert.deepEqual(filterParams(withOperator(filterFromParam('country', '!FR'), 'is')), [['country', 'FR']])
  assert.equal(filterLabel(withOperator(filter, 'not')), 'country is not FR or DE')
  assert.equal(filterLabel(filterFromParam('property', 'plan:~pr')), 'property plan contains pr')
  assert.equal(filterLabel(filterFromParam('utm_term', '')), 'utm term is (none)')
})

test('ads, consent and ad revenue are sent only the filters they apply', function () {
  var state = readState('?from=2026-11-01&to=2026-11-30&source=Google&country=!FR&path=~blog&browser=Chrome', 'UTC', EVENING)
  assert.equal(reportParams(state, { by: 'campaign' }, 'ads').toString(), 'from=2026-11-01&to=2026-11-30&path=%7Eblog&country=%21FR&by=campaign')
  assert.equal(reportParams(state, {}, 'consent').toString(), 'from=2026-11-01&to=2026-11-30&country=%21FR&browser=Chrome')
  assert.equal(reportParams(state, {}, 'ad-revenue').toString(), 'from=2026-11-01&to=2026-11-30')
  assert.equal(reportParams(state, {}, 'overview').toString().split('&').length, 6)
  assert.deepEqual(ignoredFilters(state.filters, 'ads').map(function (filter) { return filter.name }), ['source', 'browser'])
  assert.deepEqual(ignoredFilters(state.filters, 'goals'), [])
})

test('a saved segment stores the filters as parameters and gives them back', function () {
  var filters = [filterFromParam('path', '/blog/*'), filterFromParam('country', '!FR|DE'), filterFromParam('property', 'plan:pro')]
  var saved = segmentFilters(filters)
  assert.deepEqual(saved, { path: '/blog/*', country: '!FR|DE', property: 'plan:pro' })
  assert.deepEqual(filtersFromSegment(saved), filters)
})

test('a malformed date in the URL falls back to the default period', function () {
  var state = readState('?from=yesterday', 'UTC', EVENING)
  assert.equal(state.from, '2026-11-08')
})

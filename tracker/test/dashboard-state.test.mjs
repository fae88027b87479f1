// The dashboard's state: days in the site's timezone and the filter syntax of the URL.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { addDays, dayIn, lastDays, previousRange, readState, reportParams, stateQuery } from '../src/dashboard/state.js'

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

test('filters go to and from the URL with one value each', function () {
  var state = readState('?from=2026-11-01&to=2026-11-30&source=Google&property=plan%3Apro&tab=goals', 'UTC', EVENING)
  assert.deepEqual(state.filters, [
    { name: 'source', value: 'Google' },
    { name: 'property', value: 'plan:pro' },
  ])
  assert.equal(
    reportParams(state, { page_size: 8 }).toString(),
    'from=2026-11-01&to=2026-11-30&source=Google&property=plan%3Apro&page_size=8'
  )
  assert.equal(readState('?' + stateQuery(state), 'UTC', EVENING).filters.length, 2)
})

test('a malformed date in the URL falls back to the default period', function () {
  var state = readState('?from=yesterday', 'UTC', EVENING)
  assert.equal(state.from, '2026-11-08')
})

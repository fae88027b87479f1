// When the SDK sends again: the protocol's statuses, jittered backoff, Retry-After, event ids.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { backoffMs, outcomeOf, retryAfterMs, uuidv7 } from '../src/index.js'

test('2xx is done, 503 / 5xx / 429 / 408 are retried, any other 4xx is dropped', () => {
  assert.equal(outcomeOf(202), 'done')
  for (const status of [503, 500, 502, 504, 429, 408]) assert.equal(outcomeOf(status), 'retry')
  for (const status of [400, 403, 404, 405, 409, 413, 415]) assert.equal(outcomeOf(status), 'drop')
})

test('backoff doubles up to its ceiling, jittered over the whole range', () => {
  const options = { baseMs: 1000, maxMs: 8000 }
  assert.equal(backoffMs(1, options, () => 1), 1000)
  assert.equal(backoffMs(3, options, () => 1), 4000)
  assert.equal(backoffMs(10, options, () => 1), 8000)
  assert.equal(backoffMs(3, options, () => 0.5), 2000)
  assert.equal(backoffMs(3, options, () => 0), 0)
})

test('Retry-After in seconds or as an HTTP date', () => {
  assert.equal(retryAfterMs('5'), 5000)
  assert.equal(retryAfterMs(null), 0)
  assert.equal(retryAfterMs('soon'), 0)
  const now = Date.parse('2026-01-01T00:00:00Z')
  assert.equal(retryAfterMs('Thu, 01 Jan 2026 00:00:30 GMT', now), 30000)
})

test('event ids are UUIDv7 carrying the time they were made', () => {
  const ms = Date.parse('2026-05-04T03:02:01.123Z')
  const id = uuidv7(ms)
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  assert.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), ms)
  assert.notEqual(uuidv7(ms), id)
})

// The MRC viewability rule of the ads module, with the timers under the test's control.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LARGE_AD_PIXELS, viewabilityRule, watchViewability } from '../src/ads/viewability.js'

function fakeTimers() {
  var pending = new Map()
  var next = 1
  var now = 0
  return {
    setTimeout: function (callback, ms) {
      pending.set(next, { callback: callback, at: now + ms })
      return next++
    },
    clearTimeout: function (id) {
      pending.delete(id)
    },
    advance: function (ms) {
      now += ms
      for (var [id, timer] of [...pending]) {
        if (timer.at <= now) {
          pending.delete(id)
          timer.callback()
        }
      }
    },
  }
}

test('display ads need half their pixels for one second, large ones 30%, video two seconds', () => {
  assert.deepEqual(viewabilityRule(300, 250, false), { ratio: 0.5, ms: 1000 })
  assert.deepEqual(viewabilityRule(970, 250, false), { ratio: 0.3, ms: 1000 })
  assert.equal(970 * 250 >= LARGE_AD_PIXELS, true)
  assert.deepEqual(viewabilityRule(720, 405, true), { ratio: 0.3, ms: 2000 })
  assert.deepEqual(viewabilityRule(400, 300, true), { ratio: 0.5, ms: 2000 })
})

test('viewable after one continuous second at or above the ratio, reported once', () => {
  var timers = fakeTimers()
  var reports = 0
  var update = watchViewability({ ratio: 0.5, ms: 1000 }, () => reports++, timers)
  update(0.5)
  timers.advance(999)
  assert.equal(reports, 0)
  update(0.8) // still in view: the same second goes on
  timers.advance(1)
  assert.equal(reports, 1)
  update(0.2)
  update(1)
  timers.advance(5000)
  assert.equal(reports, 1)
})

test('dropping below the ratio restarts the second', () => {
  var timers = fakeTimers()
  var reports = 0
  var update = watchViewability({ ratio: 0.5, ms: 1000 }, () => reports++, timers)
  update(0.6)
  timers.advance(900)
  update(0.49) // scrolled away (or the page was hidden) before the second was up
  timers.advance(500)
  update(0.6)
  timers.advance(900)
  assert.equal(reports, 0)
  timers.advance(100)
  assert.equal(reports, 1)
})

test('never viewable below the ratio, however long', () => {
  var timers = fakeTimers()
  var reports = 0
  var update = watchViewability({ ratio: 0.3, ms: 2000 }, () => reports++, timers)
  update(0.29)
  timers.advance(60000)
  assert.equal(reports, 0)
})

// Expiry and GPC rules of cmp/choices.js, and the GPC hook of the TCF signals, without a
// browser (document.cookie and navigator are stood in for; the browser tests use the real ones).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { allowed, readDecision } from '../src/cmp/choices.js'
import { tcChoices } from '../src/cmp/tcf.js'

var PURPOSES = [
  { key: 'necessary', signals: [], tcf: [] },
  { key: 'analytics', signals: ['analytics_storage'], tcf: [1, 8, 9, 10] },
  { key: 'ads', signals: ['ad_storage', 'ad_user_data', 'ad_personalization'], tcf: [1, 2, 3, 4, 7] },
  { key: 'profiling', signals: [], tcf: [3] },
]
var config = (dnt, months = 12, reprompt = 1) => ({
  site: 's1',
  features: { dnt },
  banner: { purposes: PURPOSES, expiryMonths: months, reprompt, version: 3, domains: [] },
})
var ALL = ['necessary', 'analytics', 'ads', 'profiling']

test('GPC, where the site honours it, denies every purpose that personalises ads', () => {
  globalThis.navigator = { globalPrivacyControl: true }
  assert.deepEqual(allowed(config(true), ALL), ['necessary', 'analytics'])
  assert.deepEqual(allowed(config(false), ALL), ALL) // the site does not honour it
  globalThis.navigator = {}
  assert.deepEqual(allowed(config(true), ALL), ALL) // no signal
})

function stored(decision) {
  globalThis.document = { cookie: 'other=1; naboria_s1=' + encodeURIComponent(JSON.stringify(decision)) }
}

test('a decision counts for its calendar months and from the latest material version', () => {
  var at = new Date()
  at.setMonth(at.getMonth() - 12)
  at.setDate(at.getDate() + 1) // twelve months tomorrow
  stored({ version: 2, granted: ['analytics'], at: +at })
  assert.equal(readDecision(config(false)).version, 2)
  assert.equal(readDecision(config(false, 12, 3)), null) // version 3 was material
  at.setDate(at.getDate() - 2) // twelve months yesterday
  stored({ version: 2, granted: ['analytics'], at: +at })
  assert.equal(readDecision(config(false)), null)
  assert.equal(readDecision(config(false, 13)).version, 2)
  globalThis.document = { cookie: 'naboria_s1=%7Bbroken' }
  assert.equal(readDecision(config(false)), null)
})

test('the TCF GPC hook drops consent for purposes 2-4 and 7 and every special feature', () => {
  var vendors = [
    { id: 1, purposes: [1, 8], legIntPurposes: [], specialFeatures: [] },
    { id: 2, purposes: [1, 2, 3, 4], legIntPurposes: [], specialFeatures: [] },
    { id: 3, purposes: [1], legIntPurposes: [], specialFeatures: [1] },
  ]
  var choices = { purposes: [1, 2, 3, 4, 7, 8], specialFeatures: [1], vendors: [1, 2, 3], objections: [], vendorObjections: [] }
  var plain = tcChoices({ vendors }, choices, [7])
  assert.deepEqual([plain.purposeConsents, plain.vendorConsents, plain.specialFeatureOptins], [[1, 2, 3, 4, 7, 8], [1, 2, 3], [1]])
  var gpc = tcChoices({ vendors }, choices, [7], true)
  assert.deepEqual([gpc.purposeConsents, gpc.specialFeatureOptins], [[1, 8], []])
})

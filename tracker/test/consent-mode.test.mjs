// Google Consent Mode v2 signals from the banner's purposes.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { consentModeState } from '../src/cmp/consent-mode.js'

var PURPOSES = [
  { key: 'necessary', signals: [] },
  { key: 'analytics', signals: ['analytics_storage'] },
  { key: 'ads', signals: ['ad_storage', 'ad_user_data', 'ad_personalization'] },
]

test('nothing granted: all four signals denied', () => {
  assert.deepEqual(consentModeState(PURPOSES, ['necessary']), {
    ad_storage: 'denied',
    analytics_storage: 'denied',
    ad_user_data: 'denied',
    ad_personalization: 'denied',
  })
})

test('each granted purpose grants exactly its signals', () => {
  assert.deepEqual(consentModeState(PURPOSES, ['necessary', 'analytics']), {
    ad_storage: 'denied',
    analytics_storage: 'granted',
    ad_user_data: 'denied',
    ad_personalization: 'denied',
  })
  assert.deepEqual(consentModeState(PURPOSES, ['ads']), {
    ad_storage: 'granted',
    analytics_storage: 'denied',
    ad_user_data: 'granted',
    ad_personalization: 'granted',
  })
})

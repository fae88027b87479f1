// The recommendations module without a browser: the page's window is stood in for (fetch,
// timers, the core's API), the browser test (tests/browser/test_recommendations.py) uses a
// real one.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RECS_EVENT, startRecs, viewer } from '../src/recs/recs.js'

function page({ consent, held, items = [] }) {
  var requests = []
  var win = new EventTarget()
  win.document = new EventTarget()
  win.document.title = 'Winter boots'
  win.location = { href: 'https://shop.example/boots?size=42' }
  win.naboriaConfig = { site: 's1', host: 'https://naboria.example' }
  win.CustomEvent = CustomEvent
  win.setTimeout = (callback) => setTimeout(callback, 0)
  win.naboria = {
    consent: { get: () => consent },
    viewer: () => (held() ? { site: 's1', consent, ...held() } : { site: 's1', consent }),
  }
  win.fetch = (url, options) => {
    requests.push({ url, options })
    return Promise.resolve({ ok: true, json: () => Promise.resolve({ items, personal: !!held() }) })
  }
  var dispatched = []
  win.document.addEventListener(RECS_EVENT, (event) => dispatched.push(event.detail))
  return { win, requests, dispatched }
}

var ID = { bid: 'b1', token: 't1' }

test('with analytics consent it reports the visit and asks for personal items', async () => {
  var item = { path: '/socks', url: 'https://shop.example/socks', title: 'Socks' }
  var { win, requests, dispatched } = page({ consent: { analytics: true, ads: false }, held: () => ID, items: [item] })
  await startRecs(win, 3, 0)
  assert.equal(requests.length, 2)
  var [signal, items] = requests
  assert.equal(signal.url, 'https://naboria.example/recs/signal')
  assert.deepEqual(JSON.parse(signal.options.body), {
    site: 's1',
    type: 'visit',
    url: 'https://shop.example/boots?size=42',
    title: 'Winter boots',
    bid: 'b1',
    token: 't1',
    consent: { analytics: true, ads: false },
  })
  assert.equal(
    items.url,
    'https://naboria.example/recs/items?site=s1&url=https%3A%2F%2Fshop.example%2Fboots%3Fsize%3D42' +
      '&bid=b1&token=t1&consent=analytics'
  )
  assert.deepEqual(dispatched, [{ items: [item], personal: true }])
})

test('without analytics consent it reports nothing and asks for popular items only', async () => {
  var { win, requests, dispatched } = page({ consent: { analytics: false, ads: true }, held: () => ID })
  await startRecs(win, 3, 0)
  assert.deepEqual(
    requests.map((request) => request.url),
    ['https://naboria.example/recs/items?site=s1&url=https%3A%2F%2Fshop.example%2Fboots%3Fsize%3D42']
  )
  assert.equal(dispatched.length, 1)
})

test('it polls the core for the token, and gives up after the polls', async () => {
  var held = null
  var { win } = page({ consent: { analytics: true }, held: () => held })
  var waiting = viewer(win, 5, 0)
  setTimeout(() => (held = ID), 0)
  assert.deepEqual(await waiting, { site: 's1', consent: { analytics: true }, ...ID })
  held = null
  assert.equal(await viewer(win, 2, 0), null)
})

test('a consent decision asks again; a failed answer dispatches nothing', async () => {
  var granted = { analytics: false }
  var { win, requests, dispatched } = page({ consent: granted, held: () => ID })
  await startRecs(win, 1, 0)
  win.fetch = (url) => {
    requests.push({ url })
    return Promise.resolve({ ok: false, status: 503 })
  }
  granted.analytics = true
  win.dispatchEvent(new Event('naboria:consent'))
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(requests.length, 3) // items; then signal and items again
  assert.equal(dispatched.length, 1)
})

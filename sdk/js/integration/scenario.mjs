// The JS SDK against a running Naboria (driven by tests/integration/test_sdks.py, which starts
// the server behind a fault proxy and then checks what ClickHouse and PostgreSQL stored).
//
// An app on a site with Naboria's banner: it starts online (the config is fetched and kept),
// tracks a screen before any consent decision (nothing may be sent), goes offline, gets the
// visitor's consent, tracks and quits; its queue stays in a file-backed AsyncStorage. It starts
// again online, behind 503s, dropped and refused connections: the decision is recorded, the
// events are sent, a placement's listing is fetched and its ads rotate locally (each display
// an impression), and one is clicked. Writes what it made to $NABORIA_REPORT.
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { createNaboria } from '../src/index.js'

const env = process.env
const UA = 'ShopApp/3.2 (iPhone; iOS 17.5)'

/** An AsyncStorage-compatible store in a JSON file: what a device keeps across restarts. */
function fileStorage(path) {
  const all = async () => JSON.parse(await readFile(path, 'utf8').catch(() => '{}'))
  let chain = Promise.resolve()
  const update = (change) =>
    (chain = chain.then(async () => {
      const values = await all()
      change(values)
      await writeFile(path, JSON.stringify(values))
    }))
  return {
    getItem: async (key) => (await all())[key] ?? null,
    setItem: (key, value) => update((values) => (values[key] = String(value))),
    removeItem: (key) => update((values) => delete values[key]),
  }
}

let online = true
const deviceFetch = (url, init) =>
  online ? fetch(url, init) : Promise.reject(new TypeError('fetch failed: the device is offline'))

function app() {
  return createNaboria({
    host: env.NABORIA_HOST,
    site: env.NABORIA_SITE,
    app: 'com.example.shop',
    storage: fileStorage(env.NABORIA_STORAGE),
    fetch: deviceFetch,
    userAgent: UA,
    flushIntervalMs: 50,
    retry: { baseMs: 200, maxMs: 1500 },
    logger: { warn: (...args) => console.error(...args) },
  })
}

async function until(what, condition, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await sleep(100)
  }
}

const ids = []

// ---- first launch ----
const first = app()
await first.start()
assert.ok(first.needsConsent, 'a site with a banner asks for a decision first: ' + JSON.stringify(first.config))
ids.push(await first.pageview('home'))
assert.equal(await first.flush(), false, 'held until the decision')
online = false
await first.setConsent({ analytics: true, ads: true })
ids.push(await first.pageview('cart'))
ids.push(await first.track('AddToCart', { sku: 'X1', qty: 2 }, { screen: 'cart' }))
assert.equal(await first.shutdown({ timeoutMs: 1000 }), false, 'offline: kept for the next launch')

// ---- second launch, online ----
online = true
const second = app()
await second.start()
assert.ok(!second.needsConsent, "the stored decision answers this banner's version")
for (let n = 0; n < 5; n++) ids.push(await second.pageview(`products/${n}`))
const shown = []
const placement = second.placement(env.NABORIA_PLACEMENT, {
  onAd: (ad) => ad && shown.push({ impression: ad.impression, display: placement.current.display }),
})
await until('three displays', () => shown.length >= 3)
const clickUrl = await placement.click()
const click = { impression: placement.current.ad.impression, display: placement.current.display }
placement.stop()
assert.ok(clickUrl.includes('/ads/click?t='), clickUrl)
await until('everything sent', () => second.flush())
await second.shutdown()

await writeFile(
  env.NABORIA_REPORT,
  JSON.stringify({ page_ids: ids, impressions: shown, click, bid: second.identity.bid })
)

// The client's sending rules, against a scripted fetch (the real server is exercised by
// tests/integration/test_sdks.py): nothing before a required decision, the decision recorded
// first, retries with the same ids, refusals dropped, the queue kept across launches only with
// analytics consent, batches too large split.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createNaboria, memoryStorage } from '../src/index.js'

const HOST = 'https://naboria.example'
const BANNER = { version: 2, purposes: [{ key: 'necessary', required: true }, { key: 'analytics' }, { key: 'ads' }] }

/** A fetch answering from `script(path, body)`: a status, [status, body, headers], or an Error. */
function scripted(script, config = { banner: null }) {
  const calls = []
  const fetch = async (url, init = {}) => {
    const path = url.slice(HOST.length).split('?')[0]
    const body = init.body ? JSON.parse(init.body) : undefined
    calls.push({ path, body, url })
    const answer = path.startsWith('/t/')
      ? [200, { site: 's1', host: HOST, features: { analytics: true, ads: true }, ...config }]
      : script(path, body, calls)
    if (answer instanceof Error) throw answer
    const [status, json = {}, headers = {}] = Array.isArray(answer) ? answer : [answer]
    return new Response(status === 304 ? null : JSON.stringify(json), { status, headers })
  }
  return { fetch, calls, sent: (path) => calls.filter((call) => call.path === path) }
}

const logs = []
const options = (extra) => ({
  host: HOST,
  site: 's1',
  app: 'com.example.shop',
  flushIntervalMs: 0,
  retry: { baseMs: 1, maxMs: 5 },
  logger: { warn: (...args) => logs.push(args.join(' ')) },
  ...extra,
})

async function settle(client, rounds = 50) {
  for (let i = 0; i < rounds && !(await client.flush()); i++) await new Promise((r) => setTimeout(r, 10))
}

test('on a site with a banner nothing is sent before the decision, which is recorded first', async () => {
  const server = scripted(
    (path) => (path === '/consent' ? [201, { recorded: true, bid: 'b1', token: 't1' }] : 202),
    { banner: BANNER }
  )
  const client = createNaboria(options({ fetch: server.fetch }))
  await client.start()
  assert.ok(client.needsConsent)
  const id = await client.pageview('home')
  await client.flush()
  assert.deepEqual(server.sent('/collect'), [])
  await client.setConsent({ analytics: true, ads: false })
  await settle(client)
  const [decision] = server.sent('/consent')
  assert.deepEqual(decision.body, { site: 's1', version: 2, granted: ['necessary', 'analytics'], denied: ['ads'] })
  const [batch] = server.sent('/collect')
  assert.ok(server.calls.indexOf(decision) < server.calls.indexOf(batch))
  assert.deepEqual([batch.body.bid, batch.body.token], ['b1', 't1'])
  assert.deepEqual(batch.body.consent, { analytics: true, ads: false })
  assert.equal(batch.body.events[0].id, id)
  assert.equal(batch.body.events[0].url, 'app://com.example.shop/home')
  assert.equal(batch.body.app, 'com.example.shop')
})

test('a 503 or a lost connection is retried with the same ids; a 4xx is dropped and logged', async () => {
  let attempt = 0
  const server = scripted((path, body) => {
    attempt += 1
    if (attempt === 1) return [503, { error: 'buffer full' }, { 'Retry-After': '0' }]
    if (attempt === 2) return new TypeError('fetch failed')
    if (body.events[0].url.includes('bad')) return [400, { error: 'no valid event in the batch' }]
    return 202
  })
  const client = createNaboria(options({ fetch: server.fetch }))
  const ids = [await client.pageview('a'), await client.track('Signup', { plan: 'pro' })]
  await settle(client)
  const sent = server.sent('/collect').map((call) => call.body.events.map((event) => event.id))
  assert.deepEqual(sent, [ids, ids, ids])
  await client.pageview('bad')
  await client.pageview('good')
  await settle(client)
  assert.ok(logs.some((line) => line.includes('refused (400): no valid event in the batch')))
  assert.equal(client.pages.items.length, 0)
})

test('the queue outlives the app only with analytics consent', async () => {
  const offline = scripted(() => new TypeError('offline'))
  for (const analytics of [true, false]) {
    const storage = memoryStorage()
    const first = createNaboria(options({ fetch: offline.fetch, storage }))
    await first.setConsent({ analytics, ads: false })
    const id = await first.pageview('cart')
    await first.shutdown({ timeoutMs: 100 })
    const online = scripted((path) => (path === '/init' ? [200, { bid: 'b2', token: 't2' }] : 202))
    const second = createNaboria(options({ fetch: online.fetch, storage }))
    await second.start()
    await settle(second)
    const delivered = online.sent('/collect').flatMap((call) => call.body.events.map((event) => event.id))
    assert.deepEqual(delivered, analytics ? [id] : [])
  }
})

test('a batch over the size limit is sent in halves', async () => {
  const server = scripted((path, body) => (body.events.length > 2 ? [413, { error: 'body larger' }] : 202))
  const client = createNaboria(options({ fetch: server.fetch, batchSize: 8, flushIntervalMs: 1000 }))
  const ids = []
  for (let n = 0; n < 5; n++) ids.push(await client.pageview(`p/${n}`))
  await settle(client)
  const stored = server
    .sent('/collect')
    .filter((call) => call.body.events.length <= 2)
    .flatMap((call) => call.body.events.map((event) => event.id))
  assert.deepEqual(stored, ids)
})

test('a withdrawal is recorded against the browser id, which is then forgotten', async () => {
  const server = scripted(
    (path) => (path === '/consent' ? [201, { recorded: true, bid: 'b9', token: 't9' }] : 202),
    { banner: BANNER }
  )
  const client = createNaboria(options({ fetch: server.fetch }))
  await client.setConsent({ analytics: true, ads: true })
  await settle(client)
  await client.setConsent({ analytics: false, ads: false })
  await settle(client)
  const [, withdrawal] = server.sent('/consent')
  assert.equal(withdrawal.body.bid, 'b9')
  assert.equal(withdrawal.body.token, 't9') // a grant naming the id would need it
  assert.deepEqual(withdrawal.body.denied, ['analytics', 'ads'])
  assert.equal(client.identity, null)
  await client.pageview('home')
  await settle(client)
  const [batch] = server.sent('/collect')
  assert.equal(batch.body.bid, undefined)
})

test('a grant naming the id, sent after its token aged, renews the token first', async () => {
  const server = scripted(
    (path) =>
      path === '/consent' ? [201, { recorded: true, bid: 'b7', token: 'fresh' }] : path === '/init' ? [200, { bid: 'b7', token: 'renewed' }] : 202,
    { banner: BANNER }
  )
  const storage = memoryStorage()
  const client = createNaboria(options({ fetch: server.fetch, storage }))
  await client.setConsent({ analytics: true, ads: false })
  await settle(client)
  client.identity = { ...client.identity, token: 'aged', at: Date.now() - 300000 } // 5 minutes
  await client.setConsent({ analytics: true, ads: true })
  await settle(client)
  const [, grant] = server.sent('/consent')
  assert.match(server.sent('/init')[0].url, /bid=b7&token=aged$/)
  assert.deepEqual([grant.body.bid, grant.body.token], ['b7', 'renewed'])
})

test('a token refused by /collect is renewed once from /init with the token it had', async () => {
  let inits = 0
  const server = scripted((path, body) => {
    if (path === '/init') return [200, { bid: 'b5', token: `t${++inits}` }]
    if (body.token === 't1') return [403, { error: 'bid with a missing, wrong or expired token (call /init)' }]
    return 202
  })
  const client = createNaboria(options({ fetch: server.fetch }))
  await client.setConsent({ analytics: true, ads: false })
  const id = await client.pageview('home')
  await settle(client)
  const batches = server.sent('/collect').map((call) => [call.body.token, call.body.events[0].id])
  assert.deepEqual(batches, [['t1', id], ['t2', id]])
  // /init keeps an id only for the token it issued for it: the renewal shows it.
  assert.match(server.sent('/init')[1].url, /bid=b5&token=t1$/)
})

test('a 403 for another reason is not retried', async () => {
  const server = scripted((path) =>
    path === '/init' ? [200, { bid: 'b6', token: 't' }] : [403, { error: 'analytics is disabled for this site' }]
  )
  const client = createNaboria(options({ fetch: server.fetch }))
  await client.setConsent({ analytics: true, ads: false })
  await client.pageview('home')
  await settle(client)
  assert.equal(server.sent('/collect').length, 1)
  assert.equal(client.pages.items.length, 0)
})

test('a server that never answers does not hold the app: the request times out and is retried', async () => {
  let hung = 0
  const server = scripted(() => 202)
  const fetch = (url, init) => {
    if (hung++ === 0)
      return new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(new Error('aborted'))))
    return server.fetch(url, init)
  }
  const client = createNaboria(options({ fetch, timeoutMs: 50 }))
  await client.start() // the config request timed out: retried later
  assert.equal(client.config, null)
  const id = await client.pageview('home')
  await new Promise((resolve) => setTimeout(resolve, 2500)) // the config's second attempt (2 s)
  assert.ok(client.config)
  await settle(client)
  assert.deepEqual(server.sent('/collect')[0].body.events.map((event) => event.id), [id])
  await client.shutdown({ timeoutMs: 100 })
})

test('flushing again and again does not hurry a retry the server asked to wait for', async () => {
  const server = scripted(() => [503, { error: 'buffer full' }, { 'Retry-After': '1' }])
  const client = createNaboria(options({ fetch: server.fetch }))
  await client.pageview('home')
  for (let i = 0; i < 20; i++) {
    await client.flush()
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  assert.equal(server.sent('/collect').length, 1)
  assert.equal(await client.shutdown({ timeoutMs: 200 }), false) // one last, forced attempt
  assert.equal(server.sent('/collect').length, 2)
})

test('update events go in the batch with their payload and the app; a wrong type is refused at once', async () => {
  const server = scripted(() => 202)
  const client = createNaboria(options({ fetch: server.fetch }))
  const id = await client.update('update_downloading', { current_version: '1.0.0', target_version: '1.1.0', progress: 40 })
  await settle(client)
  const [batch] = server.sent('/collect')
  assert.equal(batch.body.app, 'com.example.shop')
  const [event] = batch.body.events
  assert.equal(event.id, id)
  assert.equal(event.type, 'update_downloading')
  assert.deepEqual([event.current_version, event.target_version, event.progress], ['1.0.0', '1.1.0', 40])
  assert.throws(() => client.update('update_exploded', {}), /type is one of update_started/)
  const appless = createNaboria(options({ fetch: server.fetch, app: undefined }))
  assert.throws(() => appless.update('update_started', {}), /need the `app` option/)
})

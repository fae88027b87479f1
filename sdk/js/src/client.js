// The Naboria client for apps and servers without a DOM (React Native, Node). It speaks the
// tracking protocol (docs/tracking-protocol.md): the site's config from /t/<site>.json, the
// consent decision to /consent, a browser id and its token from /init (only with analytics
// consent), page events in batches to /collect and ad events one by one to /ad-event, each
// queue kept in the storage and retried until the server stored it or refused it for good.
import { Placement } from './ads.js'
import { Channel } from './channel.js'
import { uuidv7 } from './ids.js'
import { outcomeOf, retryAfterMs } from './retry.js'
import { memoryStorage, readJSON, writeJSON } from './storage.js'

// A token is accepted with events in its own 5-minute window and the next: renew it after 4
// minutes. /init keeps the browser id only for a token it issued for it (of any age up to the
// renewal horizon); asked without one it issues a new id.
const RENEW_TOKEN_AFTER_MS = 240000
const NO_CONSENT = Object.freeze({ analytics: false, ads: false })

/**
 * @typedef {object} Options
 * @property {string} host  the Naboria server, e.g. "https://naboria.example"
 * @property {string} site  the site's public id
 * @property {string} [app]  the app's identifier (bundle id): stored as app_id; screen URLs are app://<app>/<screen>
 * @property {import('./storage.js').AsyncStorageLike} [storage]  default: memory only
 * @property {typeof fetch} [fetch]  default: the global fetch
 * @property {string} [userAgent]  e.g. "ShopApp/3.2 (iPhone; iOS 17.5)": device and OS are read from it
 * @property {boolean} [requireConsent]  send nothing before a consent decision; default: when the site uses Naboria's banner
 * @property {number} [batchSize]  page events per request (1-100, default 20)
 * @property {number} [flushIntervalMs]  how long an event waits for others (default 2000)
 * @property {number} [maxQueue]  events kept while offline (default 1000; the oldest go first)
 * @property {{baseMs?: number, maxMs?: number}} [retry]  backoff (default 1 s doubling to 60 s, jittered)
 * @property {number} [timeoutMs]  a request without an answer after this long is retried (default 10000)
 * @property {{warn: (...args: any[]) => void}} [logger]  default: console
 * @property {() => number} [random]  for tests
 */

/** The update lifecycle's event types (events/schemas.py UPDATE_EVENT_TYPES). */
export const UPDATE_EVENTS = Object.freeze([
  'update_started',
  'update_downloading',
  'update_downloaded',
  'update_installing',
  'update_installed',
  'update_failed',
  'update_cancelled',
  'rollback_started',
  'rollback_completed',
])

export class Naboria {
  /** @param {Options} options */
  constructor(options) {
    if (!options || !options.host || !options.site) throw new TypeError('host and site are required')
    this.host = options.host.replace(/\/+$/, '')
    this.site = options.site
    this.app = options.app || null
    this.storage = options.storage || memoryStorage()
    this.fetch = options.fetch || globalThis.fetch.bind(globalThis)
    this.userAgent = options.userAgent || null
    this.logger = options.logger || console
    this.timeoutMs = options.timeoutMs || 10000
    this.requireConsentOption = options.requireConsent
    /** @type {any} */
    this.config = null
    this.consentState = NO_CONSENT
    this.decided = false
    /** @type {{bid: string, token: string, at: number} | null} */
    this.identity = null
    /** @type {Promise<any> | null} */
    this.identityPending = null
    /** @type {Set<Placement>} */
    this.placements = new Set()
    this.configAttempts = 0
    const prefix = `naboria:${this.site}:`
    this.keys = {
      config: prefix + 'config',
      consent: prefix + 'consent',
      identity: prefix + 'id',
    }
    const common = {
      storage: this.storage,
      retry: options.retry || {},
      logger: this.logger,
      random: options.random || Math.random,
    }
    // Decisions first: on a site with Naboria's banner the server counts an event's consent
    // only as far as the recorded decision of its browser id granted it.
    this.consentChannel = new Channel({
      ...common,
      name: 'consent',
      key: prefix + 'consent-queue',
      batchSize: 1,
      maxItems: 20,
      delayMs: 0,
      send: ([decision]) => this.sendDecision(decision),
      ready: () => this.config !== null,
      persist: () => true,
      // What waited for the decision to be recorded goes now.
      sent: () => this.kick(),
    })
    this.pages = new Channel({
      ...common,
      name: 'page events',
      key: prefix + 'queue',
      batchSize: Math.min(100, Math.max(1, options.batchSize || 20)),
      maxItems: options.maxQueue || 1000,
      delayMs: options.flushIntervalMs ?? 2000,
      send: (batch) => this.sendPages(batch),
      ready: () => this.mayTrack() && this.consentSettled(),
      // Kept on the device only with analytics consent, as the web tracker does.
      persist: () => this.consentState.analytics,
    })
    // Ad events carry no identifier of their own (the impression token names the delivery):
    // kept across restarts whatever the consent, since impressions and clicks are billed.
    this.ads = new Channel({
      ...common,
      name: 'ad events',
      key: prefix + 'ad-queue',
      batchSize: 1,
      maxItems: options.maxQueue || 1000,
      delayMs: 0,
      send: ([event]) => this.sendAdEvent(event),
      ready: () => this.mayContact() && this.consentSettled(),
      persist: () => true,
    })
    this.channels = [this.consentChannel, this.pages, this.ads]
  }

  // ---- start-up and configuration -------------------------------------------------------

  /** Restore what the storage holds, then load the site's config (cached for offline starts). */
  async start() {
    if (this.started) return this.started
    this.started = (async () => {
      const [config, decision, identity] = await Promise.all([
        readJSON(this.storage, this.keys.config),
        readJSON(this.storage, this.keys.consent),
        readJSON(this.storage, this.keys.identity),
        ...this.channels.map((channel) => channel.load()),
      ])
      this.storedDecision = decision
      if (identity && identity.bid) this.identity = identity
      if (config) this.applyConfig(config)
      await this.loadConfig()
    })()
    return this.started
  }

  async loadConfig() {
    let served = null
    try {
      const response = await this.request('GET', `/t/${encodeURIComponent(this.site)}.json`)
      if (response.status === 404) {
        this.logger.warn(`naboria: unknown site ${this.site}: nothing will be sent`)
        return
      }
      if (response.ok) served = await response.json()
    } catch {
      // offline: the cached config (if any) serves meanwhile
    }
    if (!served) {
      this.configAttempts += 1
      const wait = Math.min(60000, 1000 * 2 ** this.configAttempts)
      this.configTimer = setTimeout(() => this.loadConfig(), wait)
      return
    }
    this.configAttempts = 0
    await writeJSON(this.storage, this.keys.config, served)
    this.applyConfig(served)
  }

  applyConfig(config) {
    this.config = config
    const banner = config.banner
    const decision = this.storedDecision
    // A stored decision counts for the banner version it answered: a new version asks again.
    if (decision && (!banner || decision.version === banner.version)) {
      this.consentState = { analytics: !!decision.analytics, ads: !!decision.ads }
      this.decided = true
    } else {
      this.consentState = NO_CONSENT
      this.decided = false
    }
    if (!this.consentState.analytics) this.forgetIdentity()
    this.kick()
  }

  /** Whether the site asks for a decision before anything is sent. */
  get requiresConsent() {
    if (this.requireConsentOption !== undefined) return this.requireConsentOption
    return !!(this.config && this.config.banner)
  }

  /** Whether the app must ask the visitor (the site requires consent and none is recorded for
   * its banner's current version). */
  get needsConsent() {
    return this.requiresConsent && !this.decided
  }

  /** Whether anything but the config may be sent. */
  mayContact() {
    return this.config !== null && !this.needsConsent
  }

  mayTrack() {
    return this.mayContact() && this.config.features.analytics !== false
  }

  /** Whether the decision the app gave (if any) is recorded: events wait for it. */
  consentSettled() {
    return this.consentChannel.items.length === 0
  }

  kick() {
    for (const channel of this.channels) if (channel.items.length) channel.schedule(0)
    for (const placement of this.placements) placement.configured()
  }

  // ---- consent -----------------------------------------------------------------------------

  /** What the visitor granted. */
  get consent() {
    return { ...this.consentState }
  }

  /**
   * Record the visitor's decision. On a site with Naboria's banner it is sent to /consent (the
   * proof of consent; retried until recorded) with every purpose of the banner: required ones
   * granted, `analytics` and `ads` as given, others from `purposes`. A site with a CMP of its
   * own only passes it on with its events.
   * @param {{analytics?: boolean, ads?: boolean, purposes?: Record<string, boolean>, lang?: string, tc?: string}} decision
   */
  async setConsent(decision) {
    await this.start()
    const next = { analytics: !!decision.analytics, ads: !!decision.ads }
    const withdrew = this.consentState.analytics && !next.analytics
    const banner = this.config && this.config.banner
    const record = { analytics: next.analytics, ads: next.ads, version: banner ? banner.version : null }
    if (banner) {
      const granted = []
      const denied = []
      for (const purpose of banner.purposes) {
        const key = purpose.key
        const given =
          purpose.required ||
          (key === 'analytics' ? next.analytics : key === 'ads' ? next.ads : !!(decision.purposes || {})[key])
        ;(given ? granted : denied).push(key)
      }
      const body = { site: this.site, version: banner.version, granted, denied }
      // The id the visitor has: kept when granting again, and a withdrawal recorded against it.
      if (this.identity) (body.bid = this.identity.bid), (body.token = this.identity.token)
      if (decision.lang) body.lang = decision.lang
      if (decision.tc) body.tc = decision.tc
      this.consentChannel.push(body)
    }
    this.consentState = next
    this.decided = true
    this.storedDecision = record
    await writeJSON(this.storage, this.keys.consent, record)
    if (withdrew) await this.forgetIdentity()
    // The page queue is kept on the device only with analytics consent.
    await this.pages.save()
    this.kick()
  }

  async sendDecision(body) {
    // A grant naming the id needs a fresh token (a withdrawal is recorded without): one held
    // longer than 4 minutes (a decision sent later, from the offline queue) is renewed first.
    const id = this.identity
    if (body.bid && id && id.bid === body.bid && Date.now() - id.at >= RENEW_TOKEN_AFTER_MS) {
      const renewed = await this.renewIdentity()
      if (renewed) (body.bid = renewed.bid), (body.token = renewed.token)
    }
    const response = await this.request('POST', '/consent', body)
    const outcome = this.judge(response, 'consent decision')
    if (outcome.outcome === 'done') {
      const answer = await response.json()
      if (answer.bid && answer.token && this.consentState.analytics) await this.adopt(answer)
    }
    return outcome
  }

  // ---- identity ----------------------------------------------------------------------------

  async adopt(answer) {
    this.identity = { bid: answer.bid, token: answer.token, link: answer.link, at: Date.now() }
    await writeJSON(this.storage, this.keys.identity, this.identity)
    return this.identity
  }

  async forgetIdentity() {
    this.identity = null
    await writeJSON(this.storage, this.keys.identity, null)
  }

  /** The browser id and a fresh token, from /init, or null without analytics consent. */
  async currentIdentity() {
    if (!this.consentState.analytics) return null
    const id = this.identity
    if (id && Date.now() - id.at < RENEW_TOKEN_AFTER_MS) return id
    return this.renewIdentity()
  }

  /** A fresh token from /init: for the id held, with its token, or for a new id. */
  renewIdentity() {
    const id = this.identity
    if (!this.identityPending) {
      const query = new URLSearchParams({ site: this.site })
      if (id) query.set('bid', id.bid), query.set('token', id.token)
      this.identityPending = this.request('GET', `/init?${query}`)
        .then(async (response) => {
          if (response.ok) return this.adopt(await response.json())
          if (outcomeOf(response.status) === 'retry') throw new Error(`/init answered ${response.status}`)
          // Refused for good (an unknown site...): the events go without an id.
          this.logger.warn(`naboria: /init refused (${response.status}); sending without an id`)
          return null
        })
        .finally(() => {
          this.identityPending = null
        })
    }
    return this.identityPending
  }

  /** What every request about the visitor carries: consent, and the id only with consent. */
  async who() {
    const envelope = { site: this.site, consent: this.consent }
    const id = await this.currentIdentity()
    if (id) {
      envelope.bid = id.bid
      envelope.token = id.token
    }
    if (this.app) envelope.app = this.app
    return envelope
  }

  // ---- page events -------------------------------------------------------------------------

  /** The URL of an app screen: app://<app>/<screen>. */
  screenUrl(screen) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(screen)) return screen
    return `app://${this.app || this.site}/${String(screen).replace(/^\/+/, '')}`
  }

  /** Queue an event; resolves to its id once it is queued (and kept, when allowed). */
  async enqueue(event) {
    await this.start()
    if (this.config && this.config.features.analytics === false) return null
    const ts = Date.now()
    const full = { ...event, ts, id: uuidv7(ts) }
    await this.pages.push(full)
    return full.id
  }

  /** A pageview: `screen` is a screen name ("cart") or an absolute URL. */
  pageview(screen, { referrer } = {}) {
    const event = { type: 'pageview', url: this.screenUrl(screen) }
    if (referrer) event.referrer = referrer
    return this.enqueue(event)
  }

  /** A custom event with up to 30 properties (strings, numbers, booleans). */
  track(name, props = {}, { screen = '' } = {}) {
    return this.enqueue({ type: 'event', name, url: this.screenUrl(screen), props })
  }

  /** Time the visitor spent on a screen, and how far it scrolled (percent). */
  engagement(screen, { visibleMs, scrollDepth = 0 }) {
    return this.enqueue({
      type: 'engagement',
      url: this.screenUrl(screen),
      visible_ms: Math.round(visibleMs),
      scroll_depth: Math.round(scrollDepth),
    })
  }

  /**
   * A step of an over-the-air update of the app (docs/app-releases.md): `type` is one of
   * UPDATE_EVENTS, `fields` its payload (`current_version` and `target_version` always; e.g.
   * `progress`, `download_speed_mbps`, `install_duration_ms`, `error_code` and `failure_stage`,
   * `device_model`, `battery_level`). The server checks the fields and refuses, with the
   * reason in the log, an event with a wrong or unknown one. Needs the `app` option.
   */
  update(type, fields) {
    if (!UPDATE_EVENTS.includes(type)) {
      throw new TypeError(`update: type is one of ${UPDATE_EVENTS.join(', ')}, not ${type}`)
    }
    if (!this.app) throw new TypeError('update: update events need the `app` option')
    return this.enqueue({ ...fields, type })
  }

  renewedFor(events) {
    return this.renewedBatch === events[0].id
  }

  async sendPages(events) {
    const envelope = await this.who()
    envelope.events = events
    envelope.sent_at = Date.now()
    const response = await this.request('POST', '/collect', envelope)
    if (response.status === 403 && envelope.token && !this.renewedFor(events)) {
      const answer = await response.clone().json().catch(() => ({}))
      if (/token/.test(answer.error || '')) {
        // Refused for its token (expired while offline, or the site's secret rotated): the
        // next attempt renews it with /init (the same browser id, unless the token is past
        // the renewal horizon or its secret's grace); once per batch.
        this.identity = this.identity && { ...this.identity, at: 0 }
        this.renewedBatch = events[0].id
        return { outcome: 'retry', waitMs: 0 }
      }
    }
    if (response.status === 413) return { outcome: 'split' }
    const outcome = this.judge(response, `${events.length} page events`)
    if (outcome.outcome === 'done') {
      const answer = await response.json().catch(() => ({}))
      for (const refused of answer.rejected || [])
        this.logger.warn(`naboria: event ${events[refused.index]?.id} refused: ${refused.error}`)
    }
    return outcome
  }

  // ---- ads ---------------------------------------------------------------------------------

  /**
   * A placement of the app: its listing is fetched now, its ads rotate locally every
   * `rotation_seconds` of the listing, each display reported as an impression.
   * @param {string} key  the placement's key
   * @param {{onAd?: (ad: any) => void}} [handlers]
   */
  placement(key, handlers = {}) {
    const placement = new Placement(this, key, handlers)
    this.placements.add(placement)
    this.start().then(() => placement.configured())
    return placement
  }

  /** Queue an ad event of a delivered ad (its impression token). */
  async adEvent(type, ad, { display = 1, screen = '' } = {}) {
    await this.start()
    const event = { type, impression_token: ad.impression_token, display, ts: Date.now() }
    if (screen) event.url = this.screenUrl(screen)
    await this.ads.push(event)
  }

  async sendAdEvent(event) {
    const body = { ...(await this.who()), ...event }
    delete body.site // the token names it
    const response = await this.request('POST', '/ad-event', body)
    // 409: a click whose impression is still on its way: stored once the impression is.
    if (response.status === 409) return { outcome: 'retry' }
    return this.judge(response, `ad event ${event.type}`)
  }

  // ---- HTTP --------------------------------------------------------------------------------

  /** One request, given up after `timeoutMs` (a network that never answers is a network
   * error: retried like one). */
  async request(method, path, body, headers = {}) {
    const all = { ...headers }
    if (this.userAgent) all['User-Agent'] = this.userAgent
    if (body !== undefined) all['Content-Type'] = 'application/json'
    const controller = typeof AbortController === 'function' ? new AbortController() : null
    const timer = controller && setTimeout(() => controller.abort(), this.timeoutMs)
    try {
      return await this.fetch(this.host + path, {
        method,
        headers: all,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller ? controller.signal : undefined,
      })
    } finally {
      clearTimeout(timer)
    }
  }

  /** The protocol's answer as an attempt: logged when dropped. */
  judge(response, what) {
    const outcome = outcomeOf(response.status)
    if (outcome === 'retry') return { outcome, waitMs: retryAfterMs(response.headers.get('retry-after')) }
    if (outcome === 'drop') {
      response
        .json()
        .catch(() => ({}))
        .then((answer) =>
          this.logger.warn(`naboria: ${what} refused (${response.status}): ${answer.error || ''}; dropped`)
        )
    }
    return { outcome }
  }

  // ---- flushing and shutdown -------------------------------------------------------------

  /** Send what is queued now (a batch waiting for its retry keeps waiting, unless `force`);
   * true when everything was sent. */
  async flush({ force = false } = {}) {
    await this.start()
    const results = []
    for (const channel of this.channels) results.push(await channel.flush(force))
    return results.every(Boolean)
  }

  /** Stop the timers (placements, retries) after one last attempt to send, for at most
   * `timeoutMs`; what is left stays in the storage for the next start. */
  async shutdown({ timeoutMs = 5000 } = {}) {
    for (const placement of this.placements) placement.stop()
    if (this.configTimer) clearTimeout(this.configTimer)
    let timer
    const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))
    const sent = await Promise.race([this.flush({ force: true }), timeout])
    clearTimeout(timer)
    for (const channel of this.channels) {
      channel.stop()
      await channel.save()
    }
    return sent
  }
}

/** @param {Options} options */
export function createNaboria(options) {
  return new Naboria(options)
}

// The mobile ad flow of the stack card: an app fetches its placement's listing at launch
// (GET /ads/listing), rotates the ads locally on a timer (the listing's rotation_seconds) and
// reports each display as an impression, and clicks, through the confirmed POST /ad-event
// with the impression token the ad server signed for the item. Showing a cached item again is
// its n-th display (`display: n`), an impression of its own; the server allows at most one per
// rotation since the listing, which a rotation through the items keeps to.
import { backoffMs } from './retry.js'

// Asked again after a full rotation once this old (with If-None-Match: unchanged ads answer
// 304 and keep rotating; the ETag changes every 12 h, before the signatures expire).
const LISTING_MAX_AGE_MS = 10 * 60 * 1000

export class Placement {
  /**
   * @param {import('./client.js').Naboria} client
   * @param {string} key
   * @param {{onAd?: (ad: any) => void}} handlers
   */
  constructor(client, key, handlers) {
    this.client = client
    this.key = key
    this.onAd = handlers.onAd || (() => {})
    /** @type {any[]} */
    this.items = []
    /** @type {number[]} how many times each item was shown */
    this.displays = []
    this.index = -1
    this.rotationMs = 30000
    this.etag = null
    this.fetchedAt = 0
    this.attempts = 0
    this.timer = null
    this.stopped = false
  }

  /** The ad on screen, with its display number, or null. */
  get current() {
    if (this.index < 0 || !this.items.length) return null
    return { ad: this.items[this.index], display: this.displays[this.index] }
  }

  /** The client knows the site's config (or its consent changed): start when allowed. */
  configured() {
    if (this.stopped || this.fetchedAt || this.fetching) return
    if (!this.client.mayContact() || !this.client.consentSettled()) return
    this.load()
  }

  async load() {
    this.fetching = true
    try {
      const who = await this.client.who().catch(() => ({ consent: this.client.consent }))
      let query = `/ads/listing?placement=${encodeURIComponent(this.key)}`
      // Personalised (and capped by the browser id) only with ads consent.
      if (who.bid && who.consent.ads) query += `&bid=${encodeURIComponent(who.bid)}&token=${who.token}&ads=1`
      const headers = this.etag ? { 'If-None-Match': this.etag } : {}
      const response = await this.client.request('GET', query, undefined, headers)
      if (response.status === 304) {
        this.fetchedAt = Date.now()
      } else if (response.ok) {
        const listing = await response.json()
        this.etag = response.headers.get('etag')
        this.fetchedAt = Date.now()
        this.rotationMs = Math.max(1, listing.rotation_seconds) * 1000
        this.items = listing.ads
        this.displays = this.items.map(() => 0)
        this.index = -1
      } else if (response.status < 500 && response.status !== 429) {
        this.client.logger.warn(`naboria: listing of ${this.key} refused (${response.status})`)
        this.fetchedAt = Date.now()
      } else throw new Error(`listing answered ${response.status}`)
      this.attempts = 0
    } catch {
      this.attempts += 1
      this.fetching = false
      if (!this.stopped) this.timer = setTimeout(() => this.load(), backoffMs(this.attempts, { maxMs: 60000 }))
      return
    }
    this.fetching = false
    // The first item of a new listing, or the next one of a listing found unchanged (304).
    this.rotate()
  }

  /** Show the next item and report its display. */
  rotate() {
    this.timer = null
    if (this.stopped) return
    if (!this.items.length) {
      this.onAd(null)
      this.arm()
      return
    }
    const next = (this.index + 1) % this.items.length
    if (next === 0 && this.index >= 0 && Date.now() - this.fetchedAt >= LISTING_MAX_AGE_MS) {
      this.load()
      return
    }
    this.index = next
    this.displays[next] += 1
    const shown = this.current
    this.client.adEvent('impression', shown.ad, { display: shown.display })
    this.onAd(shown.ad)
    this.arm()
  }

  arm() {
    if (this.stopped) return
    const wait = this.items.length ? this.rotationMs : LISTING_MAX_AGE_MS
    this.timer = setTimeout(() => (this.items.length ? this.rotate() : this.load()), wait)
    // Node: a rotating placement alone does not keep the process alive.
    if (this.timer && typeof this.timer.unref === 'function') this.timer.unref()
  }

  /** Another event of the ad on screen: `viewable` when the app saw it in view. */
  report(type) {
    const shown = this.current
    if (!shown) return Promise.resolve()
    return this.client.adEvent(type, shown.ad, { display: shown.display })
  }

  /**
   * The visitor tapped the ad on screen: its click is reported (confirmed, retried), and the
   * address to open is returned: the item's click link (`&d=<display>`), which takes the
   * visitor to the advertiser; its own record of the click is the same event, stored once.
   */
  async click() {
    const shown = this.current
    if (!shown) return null
    await this.client.adEvent('click', shown.ad, { display: shown.display })
    return shown.ad.click_url + (shown.display > 1 ? `&d=${shown.display}` : '')
  }

  stop() {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }
}

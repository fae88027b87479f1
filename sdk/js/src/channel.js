// A queue of things to send (page events, ad events, consent decisions), kept in the storage
// while `persist()` allows it, and the loop that sends it in order: a batch leaves the queue
// only once the server stored it or refused it for good; otherwise it is sent again, the same
// ids in it, after a backoff.
import { backoffMs } from './retry.js'
import { readJSON, writeJSON } from './storage.js'

/**
 * @typedef {object} Attempt
 * @property {'done' | 'retry' | 'drop' | 'split'} outcome  split: too large, send half
 * @property {number} [waitMs]  at least this long before the retry (Retry-After)
 */

export class Channel {
  /**
   * @param {object} options
   * @param {string} options.name  for log lines
   * @param {import('./storage.js').AsyncStorageLike} options.storage
   * @param {string} options.key  where the queue is kept
   * @param {number} options.batchSize  items per request
   * @param {number} options.maxItems  oldest items dropped beyond this
   * @param {number} options.delayMs  how long new items wait for others to join their batch
   * @param {(batch: any[]) => Promise<Attempt>} options.send
   * @param {() => boolean} options.ready  false: hold everything (no consent decision yet...)
   * @param {() => boolean} options.persist  false: the queue lives in memory only
   * @param {{baseMs?: number, maxMs?: number}} options.retry
   * @param {{warn: (...args: any[]) => void}} options.logger
   * @param {() => number} options.random
   * @param {() => void} [options.sent]  called after a batch left the queue
   */
  constructor(options) {
    this.options = options
    /** @type {any[]} */
    this.items = []
    this.batchSize = options.batchSize
    this.attempts = 0
    this.timer = null
    this.timerDue = 0
    /** @type {Promise<void> | null} */
    this.running = null
    this.stopped = false
    this.saving = Promise.resolve()
  }

  async load() {
    const kept = await readJSON(this.options.storage, this.options.key)
    if (Array.isArray(kept)) this.items = kept.concat(this.items)
  }

  /** Add items, keep the queue, and send them once `delayMs` passed or a batch is full. */
  push(...items) {
    this.items.push(...items)
    const over = this.items.length - this.options.maxItems
    if (over > 0) {
      this.items.splice(0, over)
      this.options.logger.warn(`naboria: ${this.options.name} queue full, ${over} oldest dropped`)
    }
    this.save()
    this.schedule(this.items.length >= this.batchSize ? 0 : this.options.delayMs)
    return this.saving
  }

  /** Writes are chained so an older queue never overwrites a newer one. */
  save() {
    const value = this.options.persist() && this.items.length ? this.items.slice() : null
    this.saving = this.saving
      .then(() => writeJSON(this.options.storage, this.options.key, value))
      .catch((error) => this.options.logger.warn('naboria: could not keep the queue', error))
    return this.saving
  }

  schedule(delayMs) {
    if (this.stopped) return
    const due = Date.now() + delayMs
    if (this.timer && this.timerDue <= due) return
    if (this.timer) clearTimeout(this.timer)
    this.timerDue = due
    this.timer = setTimeout(() => {
      this.timer = null
      this.run()
    }, delayMs)
  }

  /** Send until the queue is empty, it is not ready, or a batch must wait for a retry. */
  run() {
    if (!this.running) {
      this.running = this.loop().finally(() => {
        this.running = null
      })
    }
    return this.running
  }

  async loop() {
    while (this.items.length && this.options.ready()) {
      const batch = this.items.slice(0, this.batchSize)
      let attempt
      try {
        attempt = await this.options.send(batch)
      } catch (error) {
        // The network failed (offline, connection dropped): the server may have stored the
        // batch or not; sending the same ids again is harmless either way.
        attempt = { outcome: 'retry' }
        this.lastError = error
      }
      if (attempt.outcome === 'split' && batch.length > 1) {
        this.batchSize = Math.max(1, Math.floor(batch.length / 2))
        continue
      }
      if (attempt.outcome === 'retry') {
        this.attempts += 1
        const wait = Math.max(
          backoffMs(this.attempts, this.options.retry, this.options.random),
          attempt.waitMs || 0
        )
        this.schedule(wait)
        return
      }
      this.attempts = 0
      this.batchSize = this.options.batchSize
      // Items pushed meanwhile are behind the batch: remove exactly what was sent.
      this.items.splice(0, batch.length)
      await this.save()
      if (this.options.sent) this.options.sent()
    }
  }

  /** Send now; resolves when the loop stops, true when the queue is empty. A batch waiting
   * for its retry (backoff, Retry-After) keeps waiting unless `force` (the last attempt at
   * shutdown), so an app that flushes often does not hammer a server that asked for time. */
  async flush(force = false) {
    if (!force && this.attempts > 0 && this.timer) return false
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = null
    }
    await this.run()
    return this.items.length === 0
  }

  stop() {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }
}

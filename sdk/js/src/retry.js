// When to send again: the protocol's answers sorted into done / retry / drop, exponential
// backoff with full jitter, and the server's Retry-After.

/**
 * What to do with a batch the server answered with `status` (docs/tracking-protocol.md):
 * 2xx stored; 408, 429 and 5xx (503: buffer full or not acknowledged in time) retried with the
 * same body, which the server stores once (events carry their ids); any other 4xx would be
 * refused again, so it is dropped (and logged).
 * @param {number} status
 * @returns {'done' | 'retry' | 'drop'}
 */
export function outcomeOf(status) {
  if (status >= 200 && status < 300) return 'done'
  if (status === 408 || status === 429 || status >= 500) return 'retry'
  return 'drop'
}

/**
 * The wait before attempt `attempt` (1 = the first retry): a random time up to
 * min(maxMs, baseMs * 2^(attempt-1)) ("full jitter"), so many devices coming back online at
 * once do not retry in step.
 */
export function backoffMs(attempt, { baseMs = 1000, maxMs = 60000 } = {}, random = Math.random) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(random() * ceiling)
}

/** Retry-After in milliseconds (seconds or an HTTP date), or 0 when absent or unreadable. */
export function retryAfterMs(header, now = Date.now()) {
  if (!header) return 0
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(header)
  return Number.isNaN(date) ? 0 : Math.max(0, date - now)
}

// @naboria/sdk: Naboria's JavaScript SDK for apps and servers without a DOM (docs/sdks.md).
export { createNaboria, Naboria, UPDATE_EVENTS } from './client.js'
export { Placement } from './ads.js'
export { memoryStorage } from './storage.js'
export { backoffMs, outcomeOf, retryAfterMs } from './retry.js'
export { uuidv7 } from './ids.js'

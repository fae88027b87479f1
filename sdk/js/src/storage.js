// Storage the SDK keeps its queues, identity, consent decision and cached site config in: any
// object with AsyncStorage's interface (getItem / setItem / removeItem returning promises of
// strings), e.g. @react-native-async-storage/async-storage, or a file-backed one on a server.

/**
 * @typedef {object} AsyncStorageLike
 * @property {(key: string) => Promise<string | null>} getItem
 * @property {(key: string, value: string) => Promise<void>} setItem
 * @property {(key: string) => Promise<void>} removeItem
 */

/** The default: kept in memory only, so nothing outlives the process. @returns {AsyncStorageLike} */
export function memoryStorage() {
  /** @type {Map<string, string>} */
  const values = new Map()
  return {
    getItem: async (key) => (values.has(key) ? /** @type {string} */ (values.get(key)) : null),
    setItem: async (key, value) => {
      values.set(key, String(value))
    },
    removeItem: async (key) => {
      values.delete(key)
    },
  }
}

/** The JSON value under `key`, or null when absent or unreadable (a corrupt entry is dropped). */
export async function readJSON(storage, key) {
  try {
    const text = await storage.getItem(key)
    return text == null ? null : JSON.parse(text)
  } catch {
    return null
  }
}

/** Store `value` as JSON under `key`; null removes it. */
export async function writeJSON(storage, key, value) {
  if (value == null) await storage.removeItem(key)
  else await storage.setItem(key, JSON.stringify(value))
}

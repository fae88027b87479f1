// Browser storage behind one guard: private modes and sandboxed iframes throw on access, and
// the tracker must keep working (without persistence) when they do.
export function read(store, key) {
  try {
    return JSON.parse(store.getItem(key))
  } catch (e) {
    return null
  }
}

export function write(store, key, value) {
  try {
    value == null ? store.removeItem(key) : store.setItem(key, JSON.stringify(value))
  } catch (e) {}
}

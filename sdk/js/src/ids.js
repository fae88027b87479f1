// Event ids: UUIDv7 (RFC 9562), made on the device when the event is, and sent again with
// every retry, so the server stores a retried event once and looks it up among recent ids only.

function randomBytes(count) {
  const bytes = new Uint8Array(count)
  const crypto = globalThis.crypto
  if (crypto && crypto.getRandomValues) crypto.getRandomValues(bytes)
  // React Native without a getRandomValues polyfill: ids need to be unique, not secret.
  else for (let i = 0; i < count; i++) bytes[i] = Math.floor(Math.random() * 256)
  return bytes
}

/** A UUIDv7 whose first 48 bits are `ms`. */
export function uuidv7(ms = Date.now()) {
  const bytes = randomBytes(16)
  let time = ms
  for (let i = 5; i >= 0; i--) {
    bytes[i] = time % 256
    time = Math.floor(time / 256)
  }
  bytes[6] = 0x70 | (bytes[6] & 0x0f)
  bytes[8] = 0x80 | (bytes[8] & 0x3f)
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

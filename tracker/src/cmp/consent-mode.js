// Google Consent Mode v2: the four signals from the purposes a visitor granted. Each banner
// purpose lists the signals it stands for; a signal is granted when any granted purpose has it.
export var SIGNALS = ['ad_storage', 'analytics_storage', 'ad_user_data', 'ad_personalization']

export function consentModeState(purposes, granted) {
  var state = {}
  SIGNALS.forEach(function (signal) {
    state[signal] = purposes.some(function (purpose) {
      return granted.indexOf(purpose.key) >= 0 && purpose.signals.indexOf(signal) >= 0
    })
      ? 'granted'
      : 'denied'
  })
  return state
}

// gtag as Google's snippet defines it, without overriding a page's own.
export function gtag() {
  window.dataLayer = window.dataLayer || []
  window.gtag =
    window.gtag ||
    function () {
      window.dataLayer.push(arguments)
    }
  window.gtag.apply(null, arguments)
}

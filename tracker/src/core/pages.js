// Pageviews, including single-page-app navigations (history API and back/forward), and the
// engagement of each page: time it was visible and how far down it was scrolled, reported when
// the page is hidden or left.
export function watchPages(onPageview, onEngagement) {
  var url = ''
  var visibleSince = 0
  var visibleMs = 0
  var maxScroll = 0

  function scrollDepth() {
    var root = document.documentElement
    var seen = (window.scrollY || root.scrollTop) + window.innerHeight
    var height = Math.max(root.scrollHeight, document.body ? document.body.scrollHeight : 0)
    return height ? Math.min(100, Math.round((seen / height) * 100)) : 100
  }

  function pause() {
    if (visibleSince) visibleMs += Date.now() - visibleSince
    visibleSince = 0
  }

  function reportEngagement() {
    pause()
    if (url && visibleMs) onEngagement(url, visibleMs, maxScroll)
    visibleMs = 0
  }

  function view() {
    var next = location.href
    if (next.split('#')[0] === url.split('#')[0]) return
    reportEngagement()
    url = next
    maxScroll = scrollDepth()
    if (!document.hidden) visibleSince = Date.now()
    onPageview(url)
  }

  ;['pushState', 'replaceState'].forEach(function (name) {
    var original = history[name]
    history[name] = function () {
      var result = original.apply(this, arguments)
      view()
      return result
    }
  })
  addEventListener('popstate', view)
  addEventListener(
    'scroll',
    function () {
      maxScroll = Math.max(maxScroll, scrollDepth())
    },
    { passive: true }
  )
  document.addEventListener('visibilitychange', function () {
    if (document.hidden) reportEngagement()
    else visibleSince = Date.now()
  })
  view()
}

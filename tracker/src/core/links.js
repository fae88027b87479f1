// Outbound links and file downloads, reported when the visitor follows them.
var DOWNLOAD = /\.(pdf|zip|gz|tgz|rar|7z|dmg|exe|msi|apk|csv|xlsx?|docx?|pptx?|odt|ods|epub|mp3|mp4|mov|avi|mkv|wav|txt)$/i

export function watchLinks(features, onLink) {
  function follow(event) {
    var link = event.target.closest && event.target.closest('a[href]')
    if (!link || (event.type === 'auxclick' && event.button !== 1)) return
    var target = new URL(link.href, location.href)
    if (!/^https?:$/.test(target.protocol)) return
    if (features.downloads && (DOWNLOAD.test(target.pathname) || link.hasAttribute('download')))
      onLink('download', target.href)
    else if (features.outbound && target.host !== location.host) onLink('outbound', target.href)
  }
  document.addEventListener('click', follow, true)
  document.addEventListener('auxclick', follow, true)
}

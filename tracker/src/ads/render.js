// An ad from the stream as page elements: a link through Naboria's click redirect holding the
// creative. HTML creatives (sanitised when published) are shown in a frame without scripts,
// which the link covers so a click anywhere is one click on the ad.
function element(tag, properties) {
  var node = document.createElement(tag)
  Object.assign(node, properties)
  return node
}

export function render(ad) {
  var link = element('a', { href: ad.click_url, target: '_blank', rel: 'noopener sponsored' })
  Object.assign(link.dataset, {
    naboriaImpression: ad.impression,
    naboriaImpressionToken: ad.impression_token,
    naboriaCreative: ad.kind,
    naboriaClick: 'server',
  })
  link.style.cssText = 'display:inline-block;position:relative;text-decoration:none;color:inherit'
  if (ad.kind === 'image') {
    link.append(element('img', { src: ad.image_url, width: ad.width, height: ad.height, alt: ad.title }))
  } else if (ad.kind === 'html') {
    var frame = element('iframe', { srcdoc: ad.html, width: ad.width, height: ad.height, title: 'ad' })
    frame.setAttribute('sandbox', '')
    frame.style.cssText = 'border:0;pointer-events:none;display:block'
    link.append(frame)
  } else {
    link.append(
      element('img', { src: ad.image_url, alt: '' }),
      element('strong', { textContent: ad.title }),
      element('p', { textContent: ad.text }),
      element('span', { textContent: ad.call_to_action })
    )
  }
  return link
}

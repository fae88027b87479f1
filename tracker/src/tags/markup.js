// Blocking markup, for what a page holds itself (Klaro-style):
//   <script type="text/plain" data-naboria-purpose="ads" src="…"> or with inline code
//   <iframe data-naboria-purpose="ads analytics" data-src="…" title="…">
// A script runs (a copy with its type restored, or `data-type`) once all its purposes are
// granted; in page order, each after the one before has loaded. An iframe is replaced by a
// placeholder naming the purposes, with a button that loads it for this page view; it loads
// by itself once they are granted. On withdrawal both are removed again (an iframe goes back
// to its placeholder); a script with `data-naboria-reload` makes the page reload.
import { runScript } from './dom.js'

var SELECTOR = 'script[type="text/plain"][data-naboria-purpose],iframe[data-naboria-purpose]'
var SKIPPED = ['type', 'data-type', 'data-naboria-purpose']

function blockedScript(element) {
  var attributes = {}
  ;[].forEach.call(element.attributes, function (attribute) {
    if (SKIPPED.indexOf(attribute.name) < 0) attributes[attribute.name] = attribute.value
  })
  if (element.getAttribute('data-type')) attributes.type = element.getAttribute('data-type')
  return {
    start: function (after) {
      this.added = runScript(attributes, element.text, after)
    },
    stop: function () {
      if (this.added) this.added.remove()
      return element.hasAttribute('data-naboria-reload')
    },
  }
}

function blockedFrame(frame, names) {
  var text = document.createElement('p')
  var button = document.createElement('button')
  var placeholder = document.createElement('div')
  var item = {
    start: function (after) {
      if (!frame.isConnected) {
        frame.src = frame.getAttribute('data-src')
        placeholder.replaceWith(frame)
      }
      if (after) after()
    },
    stop: function () {
      frame.replaceWith(placeholder)
      frame.removeAttribute('src')
    },
  }
  text.textContent = (frame.getAttribute('data-naboria-text') || 'Held back until you allow:') + ' ' + names
  button.type = 'button'
  button.textContent =
    (frame.getAttribute('data-naboria-button') || 'Load') + ' ' + (frame.title || 'this content') + ' (' + names + ')'
  button.onclick = function () {
    item.start()
    frame.focus()
  }
  placeholder.className = 'naboria-blocked'
  placeholder.style.cssText =
    'box-sizing:border-box;border:1px dashed;padding:1em;max-width:100%;width:' +
    (frame.width || 300) +
    'px;min-height:' +
    (frame.height || 150) +
    'px'
  placeholder.append(text, button)
  frame.replaceWith(placeholder)
  return item
}

// The page's blocked elements, found once; `name` gives a purpose's name for the placeholder.
export function blockedMarkup(name) {
  return [].map.call(document.querySelectorAll(SELECTOR), function (element) {
    var purposes = element.getAttribute('data-naboria-purpose').split(/[\s,]+/).filter(Boolean)
    var item =
      element.tagName === 'IFRAME' ? blockedFrame(element, purposes.map(name).join(', ')) : blockedScript(element)
    item.purposes = purposes
    return item
  })
}

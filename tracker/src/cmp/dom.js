// h(tag, attributes, children): the banner's one DOM helper (index.js, tcf-ui.js). Attributes
// are set as such except onclick (a handler), text (textContent) and checked (the property);
// children are nodes or strings, and false or null ones are left out.
export function h(tag, attributes, children) {
  var element = document.createElement(tag)
  for (var name in attributes) {
    var value = attributes[name]
    if (name === 'onclick') element.onclick = value
    else if (name === 'text') element.textContent = value
    else if (name === 'checked') element.checked = value
    else element.setAttribute(name, value)
  }
  ;(children || []).forEach(function (child) {
    if (child) element.append(child)
  })
  return element
}

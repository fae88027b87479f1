// Small DOM helpers of the tags module: script elements, first-party cookie deletion.

// A script that runs when inserted: from `src` (async, in insertion order with its siblings)
// or inline code. `after` is called once it has run or failed.
export function runScript(attributes, code, after) {
  var script = document.createElement('script')
  for (var name in attributes) script.setAttribute(name, attributes[name])
  script.async = false
  if (attributes.src) script.onload = script.onerror = after
  else script.text = code
  document.head.appendChild(script)
  if (!attributes.src && after) after()
  return script
}

// Deletes the page's cookies named in `patterns` ("name" or "prefix*"), on the page's host and
// on each parent domain (analytics cookies are usually set on the registrable domain).
export function deleteCookies(patterns) {
  if (!patterns.length) return
  var hosts = location.hostname.split('.')
  document.cookie.split(/; */).forEach(function (pair) {
    var name = pair.split('=')[0]
    var matched = patterns.some(function (pattern) {
      return pattern.slice(-1) === '*' ? name.indexOf(pattern.slice(0, -1)) === 0 : name === pattern
    })
    for (var i = 0; matched && i <= hosts.length; i++)
      document.cookie =
        name + '=; Max-Age=0; path=/' + (i < hosts.length ? '; domain=' + hosts.slice(i).join('.') : '')
  })
}

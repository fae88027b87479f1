// Tiny DOM helpers: the dashboard builds its few elements by hand (no framework).
export function h(tag, attributes, children) {
  var element = document.createElement(tag)
  Object.keys(attributes || {}).forEach(function (name) {
    if (name === 'text') element.textContent = attributes[name]
    else if (name.slice(0, 2) === 'on') element.addEventListener(name.slice(2), attributes[name])
    else element.setAttribute(name, attributes[name])
  })
  ;(children || []).forEach(function (child) {
    if (child != null) element.append(child)
  })
  return element
}

export function number(value) {
  return value == null ? '–' : Number(value).toLocaleString()
}

export function table(columns, rows, onRow) {
  return h('table', { class: 'nd-table' }, [
    h('thead', {}, [h('tr', {}, columns.map(function (column) { return h('th', { text: column.label }) }))]),
    h(
      'tbody',
      {},
      rows.length
        ? rows.map(function (row) {
            var cells = columns.map(function (column) {
              return h('td', { text: column.format ? column.format(row[column.key]) : row[column.key] === '' ? '(none)' : row[column.key] })
            })
            var line = h('tr', onRow ? { tabindex: '0', class: 'nd-clickable', title: 'Filter by this' } : {}, cells)
            if (onRow) {
              line.addEventListener('click', function () { onRow(row) })
              line.addEventListener('keydown', function (event) { if (event.key === 'Enter') onRow(row) })
            }
            return line
          })
        : [h('tr', {}, [h('td', { colspan: columns.length, text: 'No data for this period.' })])]
    ),
  ])
}

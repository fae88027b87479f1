// Tiny DOM helpers: the dashboard builds its few elements by hand (no framework).
export function h(tag, attributes, children) {
  var element = document.createElement(tag)
  Object.keys(attributes || {}).forEach(function (name) {
    if (attributes[name] == null) return
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
  return value == null ? '–' : Number(value).toLocaleString('en-US')
}

export function percent(value) {
  return value == null ? '–' : Number(value).toLocaleString('en-US') + '%'
}

export function seconds(value) {
  if (value == null) return '–'
  var total = Math.round(value)
  return total < 60 ? total + ' s' : Math.floor(total / 60) + ' min ' + (total % 60) + ' s'
}

// A table of report rows; `columns` are {key, label, format}. Each cell keeps the API's value
// in data-value (the browser tests compare it, and the text, with the API's answer). A click
// (or Enter) on a row calls onRow with it.
export function table(columns, rows, onRow) {
  var grid = h('table', { class: 'nd-table' }, [
    h('thead', {}, [h('tr', {}, columns.map(function (column) { return h('th', { scope: 'col', 'data-key': column.key, text: column.label }) }))]),
    h(
      'tbody',
      {},
      rows.length
        ? rows.map(function (row) {
            var cells = columns.map(function (column) {
              var value = row[column.key]
              var text = column.format ? column.format(value) : value === '' ? '(none)' : String(value)
              return h('td', { 'data-key': column.key, 'data-value': JSON.stringify(value), text: text })
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
  // Wide tables scroll sideways on a phone; the scrolling box is focusable for keyboards.
  return h('div', columns.length > 4 ? { class: 'nd-scroll', tabindex: '0', role: 'group', 'aria-label': 'Scrollable table' } : { class: 'nd-scroll' }, [grid])
}

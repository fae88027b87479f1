// The analytics dashboard of one site (templates/analytics/dashboard.html): overview cards
// with the change against the previous period, the main graph, top lists whose rows add a
// filter when clicked, ads and consent tabs, a funnel builder, and the realtime panel pushed
// over SSE every 5 seconds. The state (period, filters, tab) lives in the URL.
import uPlot from 'uplot'
import { report } from './api.js'
import { h, number, table } from './dom.js'

var root = document.getElementById('dashboard')
var site = root.dataset.site
var state = readState()
var chart = null

var FILTERABLE = { pages: 'path', sources: 'source', countries: 'country', devices: 'device', browsers: 'browser' }
var LISTS = [
  ['pages', 'Top pages'],
  ['sources', 'Sources'],
  ['countries', 'Countries'],
  ['devices', 'Devices'],
  ['browsers', 'Browsers'],
]

function isoDay(date) {
  return date.toISOString().slice(0, 10)
}

function readState() {
  var query = new URLSearchParams(location.search)
  var today = new Date()
  var state = { from: query.get('from'), to: query.get('to'), tab: query.get('tab') || 'overview', filters: {} }
  if (!state.to) state.to = isoDay(today)
  if (!state.from) state.from = isoDay(new Date(today.getTime() - 29 * 864e5))
  ;['path', 'source', 'country', 'device', 'browser'].forEach(function (name) {
    if (query.get(name)) state.filters[name] = query.get(name)
  })
  return state
}

function params(extra) {
  return Object.assign({ from: state.from, to: state.to }, state.filters, extra || {})
}

function save() {
  var query = new URLSearchParams(Object.assign({ tab: state.tab }, params()))
  history.replaceState(null, '', '?' + query)
}

function refresh() {
  save()
  document.getElementById('nd-from').value = state.from
  document.getElementById('nd-to').value = state.to
  renderFilters()
  document.querySelectorAll('[role=tab]').forEach(function (tab) {
    tab.setAttribute('aria-selected', String(tab.dataset.tab === state.tab))
  })
  var panel = document.getElementById('nd-tab')
  panel.replaceChildren(h('p', { class: 'nd-loading', text: 'Loading…' }))
  ;({ overview: overview, ads: ads, consent: consent, funnel: funnel })[state.tab](panel).catch(function (error) {
    panel.replaceChildren(h('p', { class: 'nd-error', role: 'alert', text: String(error.message || error) }))
  })
}

function renderFilters() {
  var chips = Object.keys(state.filters).map(function (name) {
    return h('button', {
      type: 'button',
      class: 'nd-chip',
      text: name + ': ' + (state.filters[name] || '(none)') + ' ×',
      'aria-label': 'Remove filter ' + name,
      onclick: function () {
        delete state.filters[name]
        refresh()
      },
    })
  })
  document.getElementById('nd-filters').replaceChildren.apply(document.getElementById('nd-filters'), chips)
}

function card(label, value, change) {
  return h('div', { class: 'nd-card' }, [
    h('span', { class: 'nd-card-label', text: label }),
    h('strong', { class: 'nd-card-value', 'data-metric': label, text: value }),
    change == null ? null : h('span', { class: change >= 0 ? 'nd-up' : 'nd-down', text: (change >= 0 ? '▲ ' : '▼ ') + Math.abs(change) + '%' }),
  ])
}

function overview(panel) {
  var days = (new Date(state.to) - new Date(state.from)) / 864e5 + 1
  var interval = days <= 2 ? 'hour' : days > 120 ? 'week' : 'day'
  // One request for the whole tab: the server answers it with one scan of the visits.
  return report(site, 'dashboard', params({ compare: 'previous', interval: interval, page_size: 8 })).then(function (answer) {
    var period = answer.overview.period
    var change = answer.overview.change || {}
    var cards = h('div', { class: 'nd-cards' }, [
      card('Visitors', number(period.visitors), change.visitors),
      card('Visits', number(period.visits), change.visits),
      card('Pageviews', number(period.pageviews), change.pageviews),
      card('Views per visit', period.views_per_visit, change.views_per_visit),
      card('Bounce rate', period.bounce_rate + '%', change.bounce_rate),
      card('Visit duration', Math.round(period.visit_duration_seconds) + ' s', change.visit_duration_seconds),
    ])
    var graph = h('div', { class: 'nd-graph', id: 'nd-graph' })
    var lists = h(
      'div',
      { class: 'nd-lists' },
      LISTS.map(function (list) {
        return h('section', { class: 'nd-list' }, [
          h('h2', { text: list[1] }),
          table(
            [
              { key: 'value', label: list[1] },
              { key: 'visitors', label: 'Visitors', format: number },
              { key: 'pageviews', label: 'Pageviews', format: number },
            ],
            answer.breakdowns[list[0]].results,
            function (row) {
              state.filters[FILTERABLE[list[0]]] = row.value
              refresh()
            }
          ),
        ])
      })
    )
    panel.replaceChildren(cards, graph, lists)
    drawGraph(graph, answer.timeseries.points, interval)
  })
}

function drawGraph(container, points, interval) {
  if (chart) chart.destroy()
  var xs = points.map(function (point) {
    return Date.parse(interval === 'hour' ? point.date.replace(' ', 'T') : point.date + 'T00:00') / 1000
  })
  chart = new uPlot(
    {
      width: Math.max(container.clientWidth, 300),
      height: 260,
      series: [
        {},
        { label: 'Visitors', stroke: '#2f5bd3', width: 2, fill: 'rgba(47,91,211,.08)' },
        { label: 'Pageviews', stroke: '#1f7a4d', width: 2 },
      ],
      axes: [{}, { size: 60 }],
    },
    [xs, points.map(function (point) { return point.visitors }), points.map(function (point) { return point.pageviews })],
    container
  )
}

function ads(panel) {
  var performance = ['campaign', 'ad', 'day'].map(function (by) { return report(site, 'ads', params({ by: by })) })
  return Promise.all(performance.concat(report(site, 'ad-revenue', params()))).then(function (answers) {
    var columns = function (key, label) {
      return [
        { key: key, label: label },
        { key: 'impressions', label: 'Impressions', format: number },
        { key: 'viewable_rate', label: 'Viewable %' },
        { key: 'clicks', label: 'Clicks', format: number },
        { key: 'ctr', label: 'CTR %' },
        { key: 'video_starts', label: 'Video starts', format: number },
        { key: 'video_first_quartiles', label: '1st quartile', format: number },
        { key: 'video_midpoints', label: 'Midpoints', format: number },
        { key: 'video_third_quartiles', label: '3rd quartile', format: number },
        { key: 'video_completes', label: 'Completes', format: number },
        { key: 'video_completion_rate', label: 'Completion %' },
      ]
    }
    var money = function (key) { return { key: key, label: key === 'revenue' ? 'Revenue' : 'eCPM' } }
    panel.replaceChildren(
      h('h2', { text: 'Revenue' }),
      table(
        [
          { key: 'name', label: 'Campaign' },
          { key: 'pricing', label: 'Pricing' },
          { key: 'currency', label: 'Currency' },
          { key: 'impressions', label: 'Impressions', format: number },
          { key: 'clicks', label: 'Clicks', format: number },
          { key: 'conversions', label: 'Conversions', format: number },
          money('revenue'),
          money('ecpm'),
        ],
        answers[3].results
      ),
      h('h2', { text: 'Campaigns' }),
      table(columns('campaign', 'Campaign'), answers[0].results),
      h('h2', { text: 'Ads' }),
      table(columns('ad', 'Ad'), answers[1].results),
      h('h2', { text: 'Per day' }),
      table(columns('day', 'Day'), answers[2].results)
    )
  })
}

function consent(panel) {
  return report(site, 'consent', params()).then(function (answer) {
    panel.replaceChildren(
      h('h2', { text: 'Consent rate per purpose' }),
      table(
        [
          { key: 'purpose', label: 'Purpose' },
          { key: 'decisions', label: 'Decisions', format: number },
          { key: 'granted', label: 'Granted', format: number },
          { key: 'rate', label: 'Rate %' },
        ],
        answer.results
      )
    )
  })
}

function funnel(panel) {
  var input = h('input', { id: 'nd-steps', type: 'text', size: '60', value: state.steps || '/,/products,/cart,/checkout,/thanks', 'aria-label': 'Funnel steps' })
  var output = h('div', { id: 'nd-funnel' })
  function run() {
    state.steps = input.value
    report(site, 'funnel', params({ steps: input.value }))
      .then(function (answer) {
        output.replaceChildren(
          table(
            [
              { key: 'step', label: 'Step' },
              { key: 'visits', label: 'Visits', format: number },
              { key: 'conversion_from_start', label: 'From start %' },
              { key: 'drop_off', label: 'Dropped', format: number },
            ],
            answer.steps
          )
        )
      })
      .catch(function (error) {
        output.replaceChildren(h('p', { class: 'nd-error', role: 'alert', text: error.message }))
      })
  }
  panel.replaceChildren(
    h('h2', { text: 'Funnel' }),
    h('p', { text: 'Steps in order within a visit: page paths, or event:<name> for custom events.' }),
    h('form', { onsubmit: function (event) { event.preventDefault(); run() } }, [input, h('button', { type: 'submit', text: 'Show' })]),
    output
  )
  run()
  return Promise.resolve()
}

function realtime() {
  var source = new EventSource('/dashboard/' + site + '/realtime')
  source.addEventListener('realtime', function (event) {
    var data = JSON.parse(event.data)
    document.getElementById('nd-live-count').textContent = number(data.visitors)
    document.getElementById('nd-live-pages').replaceChildren.apply(
      document.getElementById('nd-live-pages'),
      data.pages.map(function (page) { return h('li', { text: page.page + ' · ' + page.visitors }) })
    )
  })
}

document.querySelectorAll('[data-days]').forEach(function (button) {
  button.addEventListener('click', function () {
    var today = new Date()
    state.to = isoDay(today)
    state.from = isoDay(new Date(today.getTime() - (button.dataset.days - 1) * 864e5))
    refresh()
  })
})
;['nd-from', 'nd-to'].forEach(function (id) {
  document.getElementById(id).addEventListener('change', function (event) {
    state[id === 'nd-from' ? 'from' : 'to'] = event.target.value
    refresh()
  })
})
document.querySelectorAll('[role=tab]').forEach(function (tab) {
  tab.addEventListener('click', function () {
    state.tab = tab.dataset.tab
    refresh()
  })
})
document.getElementById('nd-site').addEventListener('change', function (event) {
  location.href = '/dashboard/' + event.target.value + '/' + location.search
})
addEventListener('resize', function () {
  var graph = document.getElementById('nd-graph')
  if (chart && graph) chart.setSize({ width: graph.clientWidth, height: 260 })
})
refresh()
realtime()

// The analytics dashboard of one site (templates/analytics/dashboard.html): every report of
// the REST API in tabs. Overview: cards with the change against any comparison period, the
// graph and the top lists (pages, entry and exit pages, sources, mediums, UTM tags,
// countries, regions, cities, devices, browsers, operating systems); goals, properties,
// outbound links, downloads, time on page and scroll depth; retention cohorts; funnels; ads;
// consent; app releases (over-the-air updates: adoption, versions, active devices, failures,
// performance); and the realtime panel pushed over SSE every 5 seconds. A click on a row filters everything by
// it; the filter bar turns a filter into "is not", "contains", several values, or adds one;
// saved segments of the site apply, save and delete sets of filters. Each table exports its
// report as CSV; the open tab reloads itself every minute. The state lives in the URL
// (state.js); days are the site's.
import uPlot from 'uplot'
import { csvUrl, deleteSegment, report, saveSegment, segments } from './api.js'
import { h, number, percent, seconds, table } from './dom.js'
import {
  FILTERS, OPERATORS, compareParam, daysBetween, filterFromParam, filterLabel, filterName, filtersFromSegment,
  ignoredFilters, lastDays, literal, operatorOf, previousRange, readState, reportParams, segmentFilters,
  shownValue, stateQuery, withOperator,
} from './state.js'

var root = document.getElementById('dashboard')
var site = root.dataset.site
var csrf = root.dataset.csrf
var timezone = root.dataset.timezone
var REFRESH_MS = Number(root.dataset.refreshSeconds || 60) * 1000
var state = readState(location.search, timezone)
var chart = null
var generation = 0 // answers of an older render are dropped

var METRICS = [
  { key: 'visitors', label: 'Visitors', format: number },
  { key: 'visits', label: 'Visits', format: number },
  { key: 'pageviews', label: 'Pageviews', format: number },
  { key: 'views_per_visit', label: 'Views per visit', format: number },
  // A rise in bounce rate is bad news: shown red, while a rise in visitors is green.
  { key: 'bounce_rate', label: 'Bounce rate', format: percent, lowerIsBetter: true },
  { key: 'visit_duration_seconds', label: 'Visit duration', format: seconds },
]

var TRAFFIC = [
  { key: 'visitors', label: 'Visitors', format: number },
  { key: 'visits', label: 'Visits', format: number },
  { key: 'pageviews', label: 'Pageviews', format: number },
]
var VISITS = [
  { key: 'visits', label: 'Visits', format: number },
  { key: 'visitors', label: 'Visitors', format: number },
]
var LINKS = [
  { key: 'target', label: 'Link' },
  { key: 'visitors', label: 'Visitors', format: number },
  { key: 'clicks', label: 'Clicks', format: number },
]

// A breakdown list: its dimension, title and the filter a click on a row adds; `places`, the
// fields that say where a region or city lies (its row's country, region), add theirs too, so a
// click on Paris (Texas) leaves out Paris (France).
function breakdown(dimension, title, filter, places) {
  var where = (places || []).map(function (name) { return { key: name, label: name === 'country' ? 'Country' : 'Region' } })
  return {
    id: dimension,
    title: title,
    report: 'breakdown',
    extra: { dimension: dimension, page_size: 8 },
    columns: [{ key: 'value', label: title }].concat(where, TRAFFIC),
    filter: filter,
    places: places || [],
  }
}
// The overview's top lists, in page order; those the dashboard report answers in its single
// request are `inDashboard`, the others are their own requests.
var LISTS = [
  Object.assign(breakdown('pages', 'Top pages', 'path'), { inDashboard: true }),
  { id: 'entry-pages', title: 'Entry pages', report: 'entry-pages', extra: { page_size: 8 }, columns: [{ key: 'page', label: 'Entry page' }].concat(VISITS), filter: 'entry_page' },
  { id: 'exit-pages', title: 'Exit pages', report: 'exit-pages', extra: { page_size: 8 }, columns: [{ key: 'page', label: 'Exit page' }].concat(VISITS), filter: 'exit_page' },
  Object.assign(breakdown('sources', 'Sources', 'source'), { inDashboard: true }),
  breakdown('mediums', 'Mediums', 'medium'),
  breakdown('utm_sources', 'UTM sources', 'utm_source'),
  breakdown('utm_mediums', 'UTM mediums', 'utm_medium'),
  breakdown('utm_campaigns', 'UTM campaigns', 'utm_campaign'),
  breakdown('utm_terms', 'UTM terms', 'utm_term'),
  breakdown('utm_contents', 'UTM contents', 'utm_content'),
  // A click on a country filters by it, so Regions lists that country's regions; a region's
  // click, Cities its cities.
  Object.assign(breakdown('countries', 'Countries', 'country'), { inDashboard: true }),
  breakdown('regions', 'Regions', 'region', ['country']),
  breakdown('cities', 'Cities', 'city', ['country', 'region']),
  Object.assign(breakdown('devices', 'Devices', 'device'), { inDashboard: true }),
  Object.assign(breakdown('browsers', 'Browsers', 'browser'), { inDashboard: true }),
  breakdown('operating_systems', 'Operating systems', 'os'),
]

// Sets a filter (in place of the one of the same name).
function putFilter(filter) {
  var index = state.filters.findIndex(function (other) { return other.name === filter.name })
  if (index < 0) state.filters.push(filter)
  else state.filters[index] = filter
}

// Sets a filter and shows everything under it.
function setFilter(filter) {
  putFilter(filter)
  render()
}

// A click on a row filters by its value (a property: by its key's value), a place by where it
// lies as well.
function filterByRow(spec, row) {
  var value = literal(row[spec.columns[0].key])
  ;(spec.places || []).forEach(function (name) { putFilter(filterFromParam(name, literal(row[name]))) })
  setFilter(filterFromParam(spec.filter, spec.filter === 'property' ? state.propertyKey + ':' + value : value))
}

// A titled table of one report's rows with its CSV export. data-report and data-query name
// the API answer it shows (the browser tests ask the API the same). A report that cannot
// apply some of the filters says which (they are left out of its request).
function panel(spec, rows, params) {
  var ignored = ignoredFilters(state.filters, spec.report)
  return h('section', { class: 'nd-list', 'data-panel': spec.id, 'data-report': spec.report, 'data-query': params.toString() }, [
    h('div', { class: 'nd-list-head' }, [
      h('h2', { text: spec.title }),
      h('a', { class: 'nd-csv', href: csvUrl(site, spec.report, params), download: '', 'aria-label': 'Download ' + spec.title + ' as CSV', text: 'CSV' }),
    ]),
    ignored.length
      ? h('p', { class: 'nd-note', 'data-ignored': ignored.map(function (filter) { return filter.name }).join(' '), text: 'Not applied to this report: ' + ignored.map(filterLabel).join('; ') + '.' })
      : null,
    table(spec.columns, rows, spec.filter ? function (row) { filterByRow(spec, row) } : null),
  ])
}

// The panel of one report; a report that refuses the parameters (a 400: a filter it cannot
// apply, funnel steps it cannot read) shows its message in place of the table, the other
// panels of the tab still show.
function loadPanel(spec) {
  var params = reportParams(state, spec.extra, spec.report)
  return report(site, spec.report, params).then(
    function (answer) { return panel(spec, spec.rowsOf ? spec.rowsOf(answer) : answer[spec.rows || 'results'], params) },
    function (error) {
      return h('section', { class: 'nd-list', 'data-panel': spec.id }, [
        h('h2', { text: spec.title }),
        h('p', { class: 'nd-error', role: 'alert', text: String(error.message || error) }),
      ])
    }
  )
}

function change(metric, value) {
  if (value == null) return null
  var better = metric.lowerIsBetter ? value < 0 : value > 0
  var kind = value === 0 ? 'nd-flat' : better ? 'nd-good' : 'nd-bad'
  var arrow = value > 0 ? '▲ ' : value < 0 ? '▼ ' : ''
  return h('span', { class: 'nd-change ' + kind, 'data-change': String(value) }, [
    arrow + Math.abs(value) + '%',
    h('span', { class: 'nd-hidden', text: value === 0 ? ' (unchanged)' : better ? ' (better)' : ' (worse)' }),
  ])
}

function cards(overview, params) {
  return h(
    'section',
    { class: 'nd-cards', 'aria-label': 'Totals', 'data-report': 'overview', 'data-query': params.toString() },
    METRICS.map(function (metric) {
      var before = overview.compare ? overview.compare[metric.key] : null
      return h('div', { class: 'nd-card' }, [
        h('span', { class: 'nd-card-label', text: metric.label }),
        h('strong', { class: 'nd-card-value', 'data-metric': metric.key, 'data-value': JSON.stringify(overview.period[metric.key]), text: metric.format(overview.period[metric.key]) }),
        change(metric, overview.change ? overview.change[metric.key] : null),
        before == null ? null : h('span', { class: 'nd-card-before', text: 'was ' + metric.format(before) }),
      ])
    })
  )
}

function overviewParams(extra) {
  var compare = compareParam(state)
  return reportParams(state, Object.assign(compare ? { compare: compare } : {}, extra))
}

// The comparison period as {from, to}, or null.
function comparisonRange() {
  var compare = compareParam(state)
  if (!compare) return null
  if (compare !== 'previous') return { from: compare.split('..')[0], to: compare.split('..')[1] }
  return previousRange(state)
}

function overviewTab() {
  var days = daysBetween(state.from, state.to) + 1
  var interval = days <= 2 ? 'hour' : days > 120 ? 'week' : 'day'
  // One request for the cards, the graph and five lists: the server scans the visits once.
  var main = report(site, 'dashboard', overviewParams({ interval: interval, page_size: 8 }))
  // The comparison period's visitors, drawn under the period's, bucket by bucket.
  var range = comparisonRange()
  var before = range
    ? report(site, 'timeseries', reportParams(Object.assign({}, state, range), { interval: interval }))
    : Promise.resolve(null)
  var others = LISTS.filter(function (spec) { return !spec.inDashboard }).map(loadPanel)
  return Promise.all([main, before].concat(others)).then(function (answers) {
    var answer = answers[0]
    var separate = answers.slice(2)
    var points = answer.timeseries.points
    var graph = h('div', {
      class: 'nd-graph',
      id: 'nd-graph',
      role: 'img',
      'aria-label': 'Visitors and pageviews per ' + interval + (range ? ', and visitors of the comparison period' : ''),
      'data-report': 'timeseries',
      'data-query': reportParams(state, { interval: interval }).toString(),
      'data-points': JSON.stringify(points),
    })
    var lists = LISTS.map(function (spec) {
      if (!spec.inDashboard) return separate.shift()
      return panel(spec, answer.breakdowns[spec.id].results, reportParams(state, spec.extra))
    })
    return {
      nodes: [cards(answer.overview, overviewParams()), graph, h('div', { class: 'nd-lists' }, lists)],
      after: function () { drawGraph(graph, points, answers[1] && answers[1].points, interval) },
    }
  })
}

function drawGraph(container, points, before, interval) {
  if (chart) chart.destroy()
  var xs = points.map(function (point) {
    // The bucket's label is site time; shown as such (parsed as the browser's local time).
    return Date.parse(interval === 'hour' ? point.date.replace(' ', 'T') : point.date + 'T00:00') / 1000
  })
  var series = [
    {},
    { label: 'Visitors', stroke: '#2f5bd3', width: 2, fill: 'rgba(47,91,211,.08)' },
    { label: 'Pageviews', stroke: '#1f7a4d', width: 2 },
  ]
  var data = [xs, points.map(function (point) { return point.visitors }), points.map(function (point) { return point.pageviews })]
  if (before) {
    series.push({ label: 'Visitors (comparison)', stroke: '#6e7781', width: 1.5, dash: [6, 4] })
    data.push(points.map(function (point, index) { return before[index] ? before[index].visitors : null }))
  }
  chart = new uPlot({ width: Math.max(container.clientWidth - 16, 260), height: 260, series: series, axes: [{}, { size: 60 }] }, data, container)
}

var GOALS = {
  id: 'goals',
  title: 'Goals',
  report: 'goals',
  extra: { page_size: 20 },
  columns: [
    { key: 'goal', label: 'Goal' },
    { key: 'visitors', label: 'Visitors', format: number },
    { key: 'events', label: 'Events', format: number },
    { key: 'conversion_rate', label: 'Conversion', format: percent },
  ],
  filter: 'goal',
}
var ENGAGEMENT = [
  { id: 'outbound-links', title: 'Outbound links', report: 'outbound-links', extra: { page_size: 10 }, columns: LINKS },
  { id: 'downloads', title: 'File downloads', report: 'downloads', extra: { page_size: 10 }, columns: LINKS },
  {
    id: 'engagement',
    title: 'Time on page and scroll depth',
    report: 'engagement',
    extra: { page_size: 15 },
    columns: [
      { key: 'page', label: 'Page' },
      { key: 'pageviews', label: 'Pageviews', format: number },
      { key: 'time_on_page_seconds', label: 'Time on page', format: seconds },
      { key: 'scroll_depth', label: 'Scroll depth', format: percent },
    ],
    filter: 'path',
  },
]

function propertiesPanel(goals) {
  var events = h(
    'select',
    { id: 'nd-prop-event' },
    goals.map(function (goal) {
      return h('option', Object.assign({ value: goal.goal, text: goal.goal }, goal.goal === state.propertyEvent ? { selected: '' } : {}))
    })
  )
  var key = h('input', { id: 'nd-prop-key', type: 'text', value: state.propertyKey, placeholder: 'e.g. plan' })
  var output = h('div', { class: 'nd-properties' })
  function show() {
    state.propertyEvent = events.value
    state.propertyKey = key.value.trim()
    save()
    if (!state.propertyEvent || !state.propertyKey) {
      output.replaceChildren(h('p', { text: 'Choose a custom event and one of its properties.' }))
      return Promise.resolve()
    }
    var spec = {
      id: 'properties',
      title: state.propertyEvent + ' · ' + state.propertyKey,
      report: 'properties',
      extra: { event: state.propertyEvent, key: state.propertyKey, page_size: 20 },
      columns: [
        { key: 'value', label: 'Value' },
        { key: 'visitors', label: 'Visitors', format: number },
        { key: 'events', label: 'Events', format: number },
      ],
      filter: 'property',
    }
    return loadPanel(spec).then(function (node) { output.replaceChildren(node) })
  }
  var form = h('form', { class: 'nd-form', onsubmit: function (event) { event.preventDefault(); show() } }, [
    h('label', { for: 'nd-prop-event', text: 'Event' }),
    events,
    h('label', { for: 'nd-prop-key', text: 'Property' }),
    key,
    h('button', { type: 'submit', text: 'Show values' }),
  ])
  return show().then(function () {
    return h('section', { class: 'nd-list nd-wide' }, [h('h2', { text: 'Custom properties' }), form, output])
  })
}

function goalsTab() {
  var params = reportParams(state, GOALS.extra)
  return Promise.all(
    [report(site, 'goals', params)].concat(ENGAGEMENT.map(loadPanel))
  ).then(function (answers) {
    var goals = answers[0].results
    if (!state.propertyEvent && goals.length) state.propertyEvent = goals[0].goal
    return propertiesPanel(goals).then(function (properties) {
      var links = answers.slice(1, 3)
      var engagement = answers[3]
      engagement.classList.add('nd-wide')
      return { nodes: [h('div', { class: 'nd-lists' }, [panel(GOALS, goals, params)].concat(links, [properties, engagement]))] }
    })
  })
}

function retentionTab() {
  var weeks = 8
  var params = reportParams(state, { weeks: weeks })
  return report(site, 'retention', params).then(function (answer) {
    var columns = [
      { key: 'week', label: 'First visit (week of)' },
      { key: 'visitors', label: 'Visitors', format: number },
    ]
    for (var week = 0; week < weeks; week++) columns.push({ key: 'r' + week, label: 'Week ' + week, format: percent })
    var rows = answer.cohorts.map(function (cohort) {
      var row = { week: cohort.week, visitors: cohort.visitors }
      cohort.retention.forEach(function (rate, index) { row['r' + index] = rate })
      return row
    })
    var spec = { id: 'retention', title: 'Retention: share of each week’s new visitors who came back', report: 'retention', columns: columns }
    return { nodes: [panel(spec, rows, params)] }
  })
}

function funnelTab() {
  var input = h('input', { id: 'nd-steps', type: 'text', value: state.steps })
  var output = h('div', { id: 'nd-funnel' })
  var spec = {
    id: 'funnel',
    title: 'Funnel',
    report: 'funnel',
    rows: 'steps',
    columns: [
      { key: 'step', label: 'Step' },
      { key: 'visits', label: 'Visits', format: number },
      { key: 'conversion_from_start', label: 'From start', format: percent },
      { key: 'drop_off', label: 'Dropped', format: number },
    ],
  }
  function run() {
    state.steps = input.value
    save()
    spec.extra = { steps: state.steps }
    return loadPanel(spec).then(function (node) { output.replaceChildren(node) })
  }
  var form = h('form', { class: 'nd-form', onsubmit: function (event) { event.preventDefault(); run() } }, [
    h('label', { for: 'nd-steps', text: 'Steps' }),
    input,
    h('button', { type: 'submit', text: 'Show' }),
  ])
  return run().then(function () {
    return {
      nodes: [
        h('section', { class: 'nd-list nd-wide' }, [
          h('p', { text: 'Steps in order within a visit, comma-separated: page paths (/pricing; * matches any characters: /blog/*) or event:<name> for custom events. The steps are kept in the address of this page.' }),
          form,
          output,
        ]),
      ],
    }
  })
}

var AD_COLUMNS = [
  { key: 'impressions', label: 'Impressions', format: number },
  { key: 'viewable_rate', label: 'Viewable', format: percent },
  { key: 'clicks', label: 'Clicks', format: number },
  { key: 'ctr', label: 'CTR', format: percent },
  { key: 'video_starts', label: 'Video starts', format: number },
  { key: 'video_first_quartiles', label: '1st quartile', format: number },
  { key: 'video_midpoints', label: 'Midpoints', format: number },
  { key: 'video_third_quartiles', label: '3rd quartile', format: number },
  { key: 'video_completes', label: 'Completes', format: number },
  { key: 'video_completion_rate', label: 'Completion', format: percent },
]

function adsTab() {
  var specs = [
    {
      id: 'ad-revenue',
      title: 'Revenue',
      report: 'ad-revenue',
      columns: [
        { key: 'name', label: 'Campaign' },
        { key: 'pricing', label: 'Pricing' },
        { key: 'currency', label: 'Currency' },
        { key: 'impressions', label: 'Impressions', format: number },
        { key: 'clicks', label: 'Clicks', format: number },
        { key: 'conversions', label: 'Conversions', format: number },
        { key: 'revenue', label: 'Revenue' },
        { key: 'ecpm', label: 'eCPM' },
      ],
    },
  ].concat(
    [['campaign', 'Campaigns'], ['ad', 'Ads'], ['placement', 'Placements'], ['day', 'Per day']].map(function (by) {
      return { id: 'ads-' + by[0], title: by[1], report: 'ads', extra: { by: by[0] }, columns: [{ key: by[0], label: by[1] }].concat(AD_COLUMNS) }
    })
  )
  return Promise.all(specs.map(loadPanel)).then(function (nodes) {
    return { nodes: [h('div', { class: 'nd-stack' }, nodes)] }
  })
}

function consentTab() {
  return loadPanel({
    id: 'consent',
    title: 'Consent rate per purpose',
    report: 'consent',
    columns: [
      { key: 'purpose', label: 'Purpose' },
      { key: 'decisions', label: 'Decisions', format: number },
      { key: 'granted', label: 'Granted', format: number },
      { key: 'rate', label: 'Rate', format: percent },
    ],
  }).then(function (node) { return { nodes: [node] } })
}

var ADOPTION = [
  { key: 'installs', label: 'Installs', format: number },
  { key: 'failures', label: 'Failures', format: number },
  { key: 'success_rate', label: 'Success rate', format: percent },
]
var FAILURES = [
  { key: 'failures', label: 'Failures', format: number },
  { key: 'devices', label: 'Devices', format: number },
]
var PERFORMANCE = [
  ['download_speed_mbps', 'Download speed (Mbps)'],
  ['download_duration_ms', 'Download duration (ms)'],
  ['install_duration_ms', 'Install duration (ms)'],
]
var RELEASE_TOTALS = [
  { key: 'installs', label: 'Installs', format: number },
  { key: 'failures', label: 'Failures', format: number },
  { key: 'success_rate', label: 'Success rate', format: percent },
  { key: 'devices_updated', label: 'Devices updated', format: number },
  { key: 'updates_started', label: 'Updates started', format: number },
  { key: 'cancellations', label: 'Cancellations', format: number },
  { key: 'rollbacks', label: 'Rollbacks', format: number },
]

// The app release reports of one app (an app id typed in the tab's form; none: every app).
var releaseApp = ''
function releasesTab() {
  var app = releaseApp
  function withApp(extra) { return Object.assign(app ? { app: app } : {}, extra) }
  var adoption = { id: 'app-adoption', title: 'Installs and failures per hour (hours with updates)', report: 'app-adoption', extra: withApp({ interval: 'hour' }),
    columns: [{ key: 'date', label: 'Hour' }].concat(ADOPTION),
    rowsOf: function (answer) { return answer.points.filter(function (point) { return point.installs || point.failures }) } }
  var specs = [
    adoption,
    { id: 'app-versions', title: 'Versions on active devices', report: 'app-versions', extra: withApp(),
      columns: [{ key: 'version', label: 'Version' }, { key: 'devices', label: 'Devices', format: number }, { key: 'percentage', label: 'Share', format: percent }] },
    { id: 'app-active-devices', title: 'Active devices per day', report: 'app-active-devices', extra: withApp(), rows: 'points',
      columns: [{ key: 'date', label: 'Day' }, { key: 'devices', label: 'Devices', format: number }] },
  ].concat(
    [['error_code', 'Error code'], ['failure_stage', 'Failure stage'], ['target_version', 'Target version'], ['device_model', 'Device model']].map(function (by) {
      var columns = [{ key: 'value', label: by[1] }].concat(FAILURES)
      if (by[0] === 'target_version') columns.push({ key: 'failure_rate', label: 'Failure rate', format: percent })
      return { id: 'app-failures-' + by[0], title: 'Failures by ' + by[1].toLowerCase(), report: 'app-failures', extra: withApp({ page_size: 10 }), rows: by[0], columns: columns }
    }),
    { id: 'app-performance', title: 'Performance', report: 'app-performance', extra: withApp(),
      columns: [{ key: 'measure', label: 'Measure' }, { key: 'samples', label: 'Samples', format: number },
        { key: 'p50', label: 'p50', format: number }, { key: 'p90', label: 'p90', format: number }, { key: 'p99', label: 'p99', format: number }],
      rowsOf: function (answer) {
        return PERFORMANCE.map(function (measure) { return Object.assign({ measure: measure[1] }, answer[measure[0]]) })
      } }
  )
  var params = reportParams(state, adoption.extra, 'app-adoption')
  var totals = report(site, 'app-adoption', params).then(function (answer) {
    return h('section', { class: 'nd-cards', 'aria-label': 'Update totals', 'data-report': 'app-adoption', 'data-query': params.toString() },
      RELEASE_TOTALS.map(function (metric) {
        return h('div', { class: 'nd-card' }, [
          h('span', { class: 'nd-card-label', text: metric.label }),
          h('strong', { class: 'nd-card-value', 'data-metric': metric.key, 'data-value': JSON.stringify(answer[metric.key]), text: metric.format(answer[metric.key]) }),
        ])
      }))
  }, function (error) { return h('p', { class: 'nd-error', role: 'alert', text: String(error.message || error) }) })
  var form = h('form', { class: 'nd-form', 'aria-label': 'App', onsubmit: function (event) {
    event.preventDefault()
    releaseApp = event.target.elements.app.value.trim()
    render()
  } }, [
    h('label', { for: 'nd-app', text: 'App id' }),
    h('input', { id: 'nd-app', name: 'app', type: 'text', value: app, placeholder: 'every app of the site', pattern: '[A-Za-z0-9._:\\-]{1,64}' }),
    h('button', { type: 'submit', text: 'Show' }),
  ])
  return Promise.all([totals].concat(specs.map(loadPanel))).then(function (nodes) {
    return { nodes: [form, h('div', { class: 'nd-stack' }, nodes)] }
  })
}

var TABS = { overview: overviewTab, goals: goalsTab, retention: retentionTab, funnel: funnelTab, ads: adsTab, consent: consentTab, releases: releasesTab }

function save() {
  history.replaceState(null, '', '?' + stateQuery(state))
}

// Shows the state: controls, chips, and the open tab. `quiet` (the periodic refresh) keeps
// what is on screen until the new answers are in.
function render(quiet) {
  if (!TABS[state.tab]) state.tab = 'overview'
  save()
  renderControls()
  var panelNode = document.getElementById('nd-tab')
  panelNode.setAttribute('aria-labelledby', 'nd-tab-' + state.tab)
  var mine = ++generation
  if (!quiet) panelNode.replaceChildren(h('p', { class: 'nd-loading', text: 'Loading…' }))
  return TABS[state.tab]()
    .then(function (shown) {
      if (mine !== generation) return
      panelNode.replaceChildren.apply(panelNode, shown.nodes)
      if (shown.after) shown.after()
      panelNode.dataset.loaded = String(mine)
    })
    .catch(function (error) {
      if (mine === generation) panelNode.replaceChildren(h('p', { class: 'nd-error', role: 'alert', text: String(error.message || error) }))
    })
}

function renderControls() {
  document.getElementById('nd-from').value = state.from
  document.getElementById('nd-to').value = state.to
  var compare = document.getElementById('nd-compare')
  var custom = state.compare !== 'previous' && state.compare !== 'off'
  compare.value = custom ? 'custom' : state.compare
  var range = custom ? state.compare.split('..') : ['', '']
  document.getElementById('nd-compare-from').value = range[0]
  document.getElementById('nd-compare-to').value = range[1]
  document.getElementById('nd-compare-range').hidden = !custom
  document.querySelectorAll('[data-days]').forEach(function (button) {
    var preset = lastDays(timezone, Number(button.dataset.days))
    button.setAttribute('aria-pressed', String(preset.from === state.from && preset.to === state.to))
  })
  document.querySelectorAll('[role=tab]').forEach(function (tab) {
    var selected = tab.dataset.tab === state.tab
    tab.setAttribute('aria-selected', String(selected))
    tab.tabIndex = selected ? 0 : -1
  })
  var holder = document.getElementById('nd-filters')
  holder.replaceChildren.apply(holder, state.filters.map(filterControl))
}

function operatorSelect(id, label, chosen, onchange) {
  return h('select', { id: id, 'aria-label': label, onchange: onchange }, Object.keys(OPERATORS).map(function (operator) {
    return h('option', Object.assign({ value: operator, text: OPERATORS[operator] }, operator === chosen ? { selected: '' } : {}))
  }))
}

// One filter in the filter bar: its comparison (is, is not, contains, does not contain), its
// values (any of them; each removable), a field to add another, and its removal.
function filterControl(filter, index) {
  var name = filterName(filter)
  function update(changes) {
    state.filters[index] = Object.assign({}, filter, changes)
    render()
  }
  var values = filter.values.map(function (value) {
    var shown = shownValue(value)
    return h('span', { class: 'nd-value' }, [
      shown,
      filter.values.length > 1
        ? h('button', {
            type: 'button',
            class: 'nd-value-remove',
            'aria-label': 'Remove ' + shown + ' from the ' + name + ' filter',
            text: '×',
            onclick: function () { update({ values: filter.values.filter(function (other) { return other !== value }) }) },
          })
        : null,
    ])
  })
  var more = h('input', { type: 'text', id: 'nd-more-' + index, 'aria-label': 'Another value of ' + name + ' (or)', placeholder: 'or…' })
  return h('div', { class: 'nd-filter', role: 'group', 'aria-label': 'Filter ' + filterLabel(filter), 'data-filter': filter.name }, [
    h('span', { class: 'nd-filter-name', text: name }),
    operatorSelect('nd-operator-' + index, 'Comparison of the ' + name + ' filter', operatorOf(filter), function (event) {
      state.filters[index] = withOperator(filter, event.target.value)
      render()
    }),
    h('span', { class: 'nd-values' }, values),
    h('form', {
      class: 'nd-more',
      onsubmit: function (event) {
        event.preventDefault()
        if (more.value) update({ values: filter.values.concat([literal(more.value)]) })
      },
    }, [more, h('button', { type: 'submit', text: 'Add', 'aria-label': 'Add the value to the ' + name + ' filter' })]),
    h('button', {
      type: 'button',
      class: 'nd-chip',
      text: '×',
      'aria-label': 'Remove filter ' + filterLabel(filter),
      onclick: function () {
        state.filters = state.filters.filter(function (other) { return other !== filter })
        render()
      },
    }),
  ])
}

// The "add a filter" form: a dimension, a comparison and a value typed in (a property's as
// key:value).
function filterForm() {
  var names = document.getElementById('nd-filter-name')
  names.replaceChildren.apply(names, FILTERS.map(function (name) { return h('option', { value: name, text: name.replace(/_/g, ' ') }) }))
  var operators = operatorSelect('nd-filter-operator', 'Comparison', 'is')
  document.getElementById('nd-filter-operator').replaceWith(operators)
  // A refused value stays refused until edited (an invalid field blocks the form's submit).
  document.getElementById('nd-filter-value').addEventListener('input', function (event) { event.target.setCustomValidity('') })
  document.getElementById('nd-add-filter').addEventListener('submit', function (event) {
    event.preventDefault()
    var input = document.getElementById('nd-filter-value')
    var text = input.value
    var prefix = ''
    var colon = text.indexOf(':')
    var problem = ''
    if (names.value === 'property') {
      if (colon < 1) problem = 'A property filter is key:value.'
      prefix = text.slice(0, colon + 1)
      text = text.slice(colon + 1)
    }
    // An empty value is a filter ("is (none)"), but contains needs a text to look for.
    if (!text && /contains$/.test(operators.value)) problem = problem || 'Type the text to look for.'
    input.setCustomValidity(problem)
    if (problem) {
      input.reportValidity()
      return
    }
    input.value = ''
    setFilter(withOperator(filterFromParam(names.value, prefix + literal(text)), operators.value))
  })
}

// Saved segments: choosing one applies its filters; the current filters are saved under a
// name; the chosen one can be deleted. The API decides who sees which (the site's readers).
function segmentControls() {
  var select = document.getElementById('nd-segment')
  var status = document.getElementById('nd-segment-status')
  var saved = []
  function say(text) { status.textContent = text }
  function load(chosen) {
    return segments(site).then(function (answer) {
      saved = answer
      select.replaceChildren.apply(select, [h('option', { value: '', text: 'Choose a saved segment…' })].concat(saved.map(function (segment) {
        return h('option', Object.assign({ value: String(segment.id), text: segment.name }, String(segment.id) === String(chosen) ? { selected: '' } : {}))
      })))
    }, function (error) { say(String(error.message || error)) })
  }
  select.addEventListener('change', function () {
    var segment = saved.find(function (one) { return String(one.id) === select.value })
    if (!segment) return
    state.filters = filtersFromSegment(segment.filters)
    say('Segment “' + segment.name + '” applied.')
    render()
  })
  document.getElementById('nd-segment-delete').addEventListener('click', function () {
    var segment = saved.find(function (one) { return String(one.id) === select.value })
    if (!segment) return say('Choose the segment to delete.')
    deleteSegment(site, csrf, segment.id).then(function () {
      return load('').then(function () { say('Segment “' + segment.name + '” deleted.') })
    }, function (error) { say(String(error.message || error)) })
  })
  document.getElementById('nd-segment-save').addEventListener('submit', function (event) {
    event.preventDefault()
    var name = document.getElementById('nd-segment-name')
    if (!state.filters.length) return say('Add filters to save them as a segment.')
    saveSegment(site, csrf, name.value.trim(), segmentFilters(state.filters)).then(function (segment) {
      name.value = ''
      return load(segment.id).then(function () { say('Segment “' + segment.name + '” saved.') })
    }, function (error) { say(String(error.message || error)) })
  })
  load('')
}

function realtime() {
  var source = new EventSource('/dashboard/' + site + '/realtime')
  source.addEventListener('realtime', function (event) {
    var data = JSON.parse(event.data)
    document.getElementById('nd-live-count').textContent = number(data.visitors)
    var list = document.getElementById('nd-live-pages')
    list.replaceChildren.apply(
      list,
      data.pages.map(function (page) { return h('li', { text: page.page + ' · ' + page.visitors }) })
    )
  })
}

document.querySelectorAll('[data-days]').forEach(function (button) {
  button.addEventListener('click', function () {
    Object.assign(state, lastDays(timezone, Number(button.dataset.days)))
    render()
  })
})
;['nd-from', 'nd-to'].forEach(function (id) {
  document.getElementById(id).addEventListener('change', function (event) {
    if (!event.target.value) return
    state[id === 'nd-from' ? 'from' : 'to'] = event.target.value
    render()
  })
})
function compareChanged() {
  var choice = document.getElementById('nd-compare').value
  var first = document.getElementById('nd-compare-from').value
  var last = document.getElementById('nd-compare-to').value
  if (choice !== 'custom') state.compare = choice
  else if (first && last) state.compare = first + '..' + last
  else {
    // A custom range starts as the period just before, to be edited.
    var range = previousRange(state)
    state.compare = range.from + '..' + range.to
  }
  render()
}
;['nd-compare', 'nd-compare-from', 'nd-compare-to'].forEach(function (id) {
  document.getElementById(id).addEventListener('change', compareChanged)
})
var tabs = Array.prototype.slice.call(document.querySelectorAll('[role=tab]'))
tabs.forEach(function (tab, index) {
  tab.addEventListener('click', function () {
    state.tab = tab.dataset.tab
    render()
  })
  // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
  tab.addEventListener('keydown', function (event) {
    var step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0
    if (!step) return
    var next = tabs[(index + step + tabs.length) % tabs.length]
    next.focus()
    next.click()
  })
})
document.getElementById('nd-site').addEventListener('change', function (event) {
  location.href = '/dashboard/' + event.target.value + '/' + location.search
})
addEventListener('resize', function () {
  var graph = document.getElementById('nd-graph')
  if (chart && graph) chart.setSize({ width: Math.max(graph.clientWidth - 16, 260), height: 260 })
})
// Cards, graph and tables reload while the page is open (the realtime panel is pushed); not
// while hidden, nor under someone typing funnel steps, a property or a filter's next value.
setInterval(function () {
  var typing = document.activeElement && document.activeElement.closest('#nd-tab form, #nd-filters form')
  if (!document.hidden && !typing) render(true)
}, REFRESH_MS)
filterForm()
segmentControls()
render()
realtime()

// The IAB TCF parts of the banner (TCF policy v4, Appendix B): on the first layer the number
// of vendors, the purposes and special features they ask for, the legitimate-interest notice
// and a link to the second layer; on the second layer each purpose (consent, and objection
// where a vendor claims legitimate interest), each special feature (opt-in), the special
// purposes and features (no choice) and every vendor with its declarations, retention, device
// storage, privacy policy and its own consent / objection switches.
//
// Texts: the IAB's standard names and descriptions from the vendor list (config.names), or the
// publisher's own when useNonStandardTexts; the labels (texts.tcf) come from the admin.
// read() returns the choices in the shape tcf.js's tcChoices() takes.
import { h } from './dom.js'
import { GPC_DENIED, tcfOffer } from './tcf.js'

function names(config, kind, ids) {
  return ids.map(function (id) {
    return config.names[kind][id][0]
  })
}

function line(label, value) {
  return value && h('div', { text: label + ': ' + value })
}

function link(label, href) {
  return href && h('a', { href: href, target: '_blank', rel: 'noopener', text: label })
}

// "Partners (12)", "12 partners": the label's {n} is the number of vendors.
function count(text, n) {
  return text.replace('{n}', n)
}

export function tcfNotice(config, labels, sitePurposes, openSecondLayer) {
  var offer = tcfOffer(config, sitePurposes)
  var n = offer.vendors.length
  return h('div', { class: 'nb-tcf' }, [
    h('p', { text: count(labels.notice, n) }),
    h('div', { text: labels.purposes + ': ' + names(config, 'purposes', offer.shownPurposes).join('; ') }),
    offer.specialFeatures.length ? h('div', { text: labels.specialFeatures + ': ' + names(config, 'specialFeatures', offer.specialFeatures).join('; ') }) : null,
    h('button', { type: 'button', class: 'nb-a', text: count(labels.partners, n), onclick: openSecondLayer }),
  ])
}

function box(kind, id, checked, label, locked) {
  var input = h('input', { type: 'checkbox', 'data-tcf': kind, value: id, id: 'nb-' + kind + id, checked: checked && !locked })
  input.disabled = !!locked
  return h('label', { for: 'nb-' + kind + id, class: 'nb-box' }, [input, h('span', { text: ' ' + label })])
}

function has(list, id) {
  return (list || []).indexOf(id) >= 0
}

// One purpose or special feature with its standard (or the publisher's) text and switches.
function item(config, kind, id, switches) {
  var text = config.names[kind][id]
  return h('div', { class: 'nb-purpose' }, [h('b', { text: text[0] }), h('div', { text: text[1] })].concat(switches))
}

function vendorDetails(config, labels, vendor, offer, previous) {
  // Some vendors keep cookies for seconds only: "0 days" would hide it.
  var days = function (seconds) {
    return seconds < 86400 ? seconds + ' ' + labels.seconds : Math.round(seconds / 86400) + ' ' + labels.days
  }
  var storage = [
    vendor.usesCookies && labels.cookies + ' ' + (vendor.cookieMaxAgeSeconds > 0 ? days(vendor.cookieMaxAgeSeconds) : labels.session) + (vendor.cookieRefresh ? ' (' + labels.refresh + ')' : ''),
    vendor.usesNonCookieAccess && labels.other,
  ].filter(Boolean)
  return h('details', { class: 'nb-vendor' }, [
    h('summary', { text: vendor.name }),
    has(offer.consentVendors, vendor.id) && box('v', vendor.id, has(previous.vendors, vendor.id), labels.consent),
    has(offer.legIntVendors, vendor.id) && box('ov', vendor.id, has(previous.vendorObjections, vendor.id), labels.object),
    line(labels.consentPurposes, names(config, 'purposes', vendor.purposes).join('; ')),
    line(labels.legInt, names(config, 'purposes', vendor.legIntPurposes).join('; ')),
    line(labels.specialPurposes, names(config, 'specialPurposes', vendor.specialPurposes).join('; ')),
    line(labels.features, names(config, 'features', vendor.features).join('; ')),
    line(labels.specialFeatures, names(config, 'specialFeatures', vendor.specialFeatures).join('; ')),
    line(labels.data, names(config, 'dataCategories', vendor.data).join('; ')),
    line(labels.retention, vendor.retention != null && vendor.retention + ' ' + labels.days),
    line(labels.storage, storage.join('; ')),
    link(labels.disclosure, vendor.storageUrl),
    ' ',
    link(labels.privacy, vendor.privacy),
    ' ',
    link(labels.legIntClaim, vendor.legIntClaim),
  ])
}

// gpc: Global Privacy Control honoured: the consents it forbids (tcf.js) cannot be given.
export function tcfForm(config, labels, sitePurposes, previous, vendorsOpen, gpc) {
  var offer = tcfOffer(config, sitePurposes)
  previous = previous || {}
  var specials = names(config, 'specialPurposes', offer.specialPurposes).concat(names(config, 'features', offer.features))
  var form = h('div', { class: 'nb-tcf' }, [
    h('h3', { text: labels.purposes }),
    h('p', { text: count(labels.notice, offer.vendors.length) }),
  ].concat(
    offer.shownPurposes.map(function (id) {
      return item(config, 'purposes', id, [
        has(offer.purposes, id) && box('p', id, has(previous.purposes, id), labels.consent, gpc && has(GPC_DENIED, id)),
        has(offer.legIntPurposes, id) && box('o', id, has(previous.objections, id), labels.object + ' (' + labels.legInt + ')'),
      ])
    }),
    offer.specialFeatures.length ? [h('h3', { text: labels.specialFeatures })] : [],
    offer.specialFeatures.map(function (id) {
      return item(config, 'specialFeatures', id, [box('f', id, has(previous.specialFeatures, id), labels.consent, gpc)])
    }),
    specials.length ? [line(labels.specialPurposes + ', ' + labels.features, specials.join('; '))] : [],
    [
      h('details', vendorsOpen ? { class: 'nb-vendors', open: '' } : { class: 'nb-vendors' }, [
        h('summary', { text: labels.vendors + ' (' + offer.vendors.length + ')' }),
      ].concat(offer.vendors.map(function (vendor) {
        return vendorDetails(config, labels, vendor, offer, previous)
      }))),
    ]
  ))
  form.read = function () {
    var picked = function (kind) {
      return [].slice.call(form.querySelectorAll('input[data-tcf="' + kind + '"]:checked')).map(function (input) {
        return +input.value
      })
    }
    return { purposes: picked('p'), specialFeatures: picked('f'), vendors: picked('v'), objections: picked('o'), vendorObjections: picked('ov') }
  }
  return form
}

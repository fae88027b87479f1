// The consent banner (CMP), loaded by the per-site loader only on sites whose banner is on.
//
// First layer: the site's text with "Accept all" and "Reject all" side by side (same style)
// and "Choose" for the purposes one by one. The decision is stored in the browser (the only
// thing stored before it), recorded on the server (POST /consent, the proof of consent),
// announced to the tracker ("naboria:consent" event), to Google tags (Consent Mode v2 update)
// and to IAB TCF vendors (__tcfapi, TC string). A floating link, or naboria.consent.open(),
// reopens it to change or withdraw the decision.
import { CONSENT_EVENT, OPEN_EVENT } from '../core/consent.js'
import { identityKey, initQuery } from '../core/identity.js'
import { read, write } from '../core/storage.js'
import { consentModeState, gtag } from './consent-mode.js'
import { allowed, gpc, readDecision, regionRule, storedDecision, withdrawAtOnce, writeDecision } from './choices.js'
import { h } from './dom.js'
import { CSS } from './style.js'
import { allChoices, createTcfApi, createdOf, encodeTCString, processStubQueue, tcChoices, tcData, tcfOffer } from './tcf.js'
import { tcfForm, tcfNotice } from './tcf-ui.js'

var config = window.naboriaConfig
var banner = config.banner
var site = config.site
var language = pickLanguage()
var texts = banner.texts[language]
var decision = readDecision(config)
// What is granted now: the decision's (as GPC allows), or all in opt-out regions until the
// visitor decides.
var effective = decision ? allowed(config, decision.granted) : []
var dialog = null
var backdrop = null
var link = null
var returnFocus = null
var tcf = banner.tcf && createTcf()
// A TCF decision stored before the banner kept the choices behind its string (TCF 2.2 as the
// policy requires) cannot be shown again nor trusted: ask again.
if (tcf && decision && !decision.tcf) decision = null

// The visitor's preferred language among the banner's, else the site's default.
function pickLanguage() {
  var wanted = (navigator.languages || [navigator.language || '']).map(function (tag) {
    return tag.slice(0, 2).toLowerCase()
  })
  return (
    wanted.filter(function (code) {
      return banner.texts[code]
    })[0] || (banner.texts[banner.language] ? banner.language : Object.keys(banner.texts)[0])
  )
}

function keys(filter) {
  return banner.purposes.filter(filter).map(function (purpose) {
    return purpose.key
  })
}

// --- IAB TCF v2.2 ---------------------------------------------------------------------------

function createTcf() {
  var api = createTcfApi({
    cmpId: banner.tcf.cmpId,
    cmpVersion: banner.tcf.cmpVersion,
    gvlVersion: banner.tcf.vendorListVersion,
    tcfPolicyVersion: banner.tcf.tcfPolicyVersion,
    publisherCC: banner.tcf.publisherCC,
    getTCData: function () {
      return decision && decision.tc ? tcData(decision.tc, tcfSignals(decision.tcf), banner.tcf) : null
    },
    displayStatus: function () {
      return dialog ? 'visible' : 'hidden'
    },
  })
  window.__tcfapi = api
  processStubQueue(api, window)
  return api
}

// The TCF purposes the site's own purposes stand for: offered even if no vendor asks for them.
function sitePurposesTcf() {
  return banner.purposes.reduce(function (all, purpose) {
    return all.concat(purpose.tcf)
  }, [])
}

// As chosen, and as GPC allows where the site honours it.
function tcfSignals(choices) {
  return tcChoices(banner.tcf, choices, sitePurposesTcf(), gpc(config))
}

function tcString(choices) {
  var now = new Date()
  // Created stays that of the first TC string this browser got, whatever changed since (an
  // expired decision or one given to an earlier version included).
  var previous = storedDecision(config)
  return encodeTCString(
    Object.assign(
      {
        created: (previous && previous.tc && createdOf(previous.tc)) || now,
        lastUpdated: now,
        cmpId: banner.tcf.cmpId,
        cmpVersion: banner.tcf.cmpVersion,
        consentScreen: 1,
        consentLanguage: language.toUpperCase(),
        vendorListVersion: banner.tcf.vendorListVersion,
        tcfPolicyVersion: banner.tcf.tcfPolicyVersion,
        isServiceSpecific: true,
        useNonStandardTexts: !!banner.tcf.useNonStandardTexts,
        purposeOneTreatment: false,
        publisherCC: banner.tcf.publisherCC,
      },
      tcfSignals(choices)
    )
  )
}

// --- the decision ---------------------------------------------------------------------------

function announce(answer) {
  effective = decision.granted
  dispatchEvent(new CustomEvent(CONSENT_EVENT, { detail: { granted: decision.granted, answer: answer } }))
  if (banner.consentMode) gtag('consent', 'update', consentModeState(banner.purposes, decision.granted))
  if (tcf) tcf.notify('useractioncomplete')
}

// The browser id with a token the server still accepts (renewed by /init after 4 minutes, as
// the tracker does): a grant naming an id must prove it is this browser's.
function currentId() {
  var id = read(localStorage, identityKey(site))
  if (!id || Date.now() - id.at < 240000) return Promise.resolve(id)
  return fetch(config.host + '/init' + initQuery(site, id))
    .then(function (response) {
      return response.json()
    })
    .then(
      function (answer) {
        // A new id if the server did not renew this one (the /consent answer hands it on).
        return answer.token ? { bid: answer.bid, token: answer.token } : id
      },
      function () {
        return id
      }
    )
}

function record() {
  return currentId().then(send)
}

function send(id) {
  var body = {
    site: site,
    version: decision.version,
    granted: decision.granted,
    denied: decision.denied,
    tc: decision.tc || '',
    lang: language,
  }
  // The browser id the visitor has, if any, with its token: granting again keeps it, and a
  // withdrawal is recorded against it (the tracker forgets it right after).
  if (id) (body.bid = id.bid), (body.token = id.token)
  return fetch(config.host + '/consent', {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'Content-Type': 'text/plain' },
    keepalive: true,
  })
    .then(function (response) {
      if (!response.ok) throw Error(response.status)
      return response.json()
    })
    .then(function (answer) {
      decision.recorded = true
      // Kept for the other subdomains (the loader hands it to their tracker, which renews it
      // with this token: /init keeps an id only for a token issued for it).
      decision.bid = answer.bid
      decision.token = answer.token
      writeDecision(config, decision)
      return answer
    })
}

// tcfChoices: what the TCF part of the second layer read, or all / nothing for the buttons.
function decide(granted, tcfChoices) {
  granted = allowed(config, granted)
  granted = granted.concat(keys(function (purpose) {
    return purpose.required && granted.indexOf(purpose.key) < 0
  }))
  decision = {
    version: banner.version,
    granted: granted,
    denied: keys(function (purpose) {
      return granted.indexOf(purpose.key) < 0
    }),
    at: Date.now(),
    recorded: false,
  }
  if (tcf) {
    // Without TCF choices (a decision made for the visitor), nothing is consented nor claimed.
    decision.tcf = tcfChoices || allChoices(tcfOffer(banner.tcf, sitePurposesTcf()), false)
    decision.tc = tcString(decision.tcf)
  }
  writeDecision(config, decision)
  close()
  // The tracker learns a grant once the server has it (its answer carries the browser id when
  // analytics was granted); if the server cannot be reached it learns it at once and the
  // record is sent again on the next page. A withdrawal applies at once, once the record
  // (against the browser id it withdraws) is on its way.
  var recorded = record()
  withdrawAtOnce(config, effective, granted)
  recorded.then(announce, function () {
    announce()
  })
}

// --- the dialog -----------------------------------------------------------------------------

function button(label, kind, onclick) {
  return h('button', { type: 'button', class: kind, text: label, onclick: onclick })
}

function everything() {
  decide(keys(function () {
    return true
  }), tcf && allChoices(tcfOffer(banner.tcf, sitePurposesTcf()), true))
}

function nothing() {
  decide([], tcf && allChoices(tcfOffer(banner.tcf, sitePurposesTcf()), false))
}

// With TCF the site's purposes that stand for TCF purposes are granted by consenting to all of
// those on the second layer; the others keep their own switch.
function ownSwitch(purpose) {
  return !tcf || !purpose.tcf.length
}

function purposesForm() {
  var granted = decision ? decision.granted : []
  return h(
    'div',
    { class: 'nb-purposes' },
    banner.purposes.filter(ownSwitch).map(function (purpose) {
      var text = texts.purposes[purpose.key] || { name: purpose.key }
      var id = 'nb-p-' + purpose.key
      var box = h('input', { type: 'checkbox', id: id, value: purpose.key })
      box.checked = purpose.required || granted.indexOf(purpose.key) >= 0
      box.disabled = purpose.required || !allowed(config, [purpose.key]).length
      return h('div', { class: 'nb-purpose' }, [
        box,
        h('label', { for: id, text: ' ' + text.name }),
        text.description && h('div', { text: text.description }),
      ])
    })
  )
}

// detailed: the second layer; partners: with the list of vendors unfolded.
function open(detailed, partners) {
  if (dialog) close()
  returnFocus = document.activeElement
  var form = detailed && purposesForm()
  var tcfPart =
    tcf &&
    (detailed
      ? tcfForm(banner.tcf, texts.tcf, sitePurposesTcf(), decision && decision.tcf, partners, gpc(config))
      : tcfNotice(banner.tcf, texts.tcf, sitePurposesTcf(), function () {
          open(true, true)
        }))
  var choices = [button(texts.accept, 'nb-choice', everything), button(texts.reject, 'nb-choice', nothing)]
  choices.push(
    detailed
      ? button(texts.save, 'nb-more', function () {
          var choices = tcf && tcfPart.read()
          decide(
            [].slice
              .call(form.querySelectorAll('input:checked'))
              .map(function (box) {
                return box.value
              })
              .concat(
                keys(function (purpose) {
                  return (
                    !ownSwitch(purpose) &&
                    purpose.tcf.every(function (id) {
                      return choices.purposes.indexOf(id) >= 0
                    })
                  )
                })
              ),
            choices
          )
        })
      : button(texts.customize, 'nb-more', function () {
          open(true)
        })
  )
  dialog = h(
    'div',
    {
      class: 'nb-banner nb-' + banner.position,
      role: 'dialog',
      'aria-modal': 'true',
      'aria-labelledby': 'nb-title',
      'aria-describedby': 'nb-body',
      style:
        '--nb-bg:' + banner.colors.background + ';--nb-fg:' + banner.colors.text + ';--nb-accent:' + banner.colors.accent,
    },
    [
      h('h2', { id: 'nb-title', text: texts.title }),
      h('p', { id: 'nb-body', text: texts.body }),
      form,
      tcfPart,
      h('div', { class: 'nb-actions' }, choices),
    ]
  )
  dialog.addEventListener('keydown', trapFocus)
  if (banner.position === 'center') document.body.appendChild((backdrop = h('div', { class: 'nb-backdrop' })))
  document.body.appendChild(dialog)
  if (link) link.hidden = true
  focusable()[0].focus()
  if (tcf) tcf.notify('cmpuishown')
}

function focusable() {
  return [].slice.call(dialog.querySelectorAll('button,input:not([disabled]),summary,a[href]'))
}

// Keyboard users stay in the dialog until they decide; Escape closes it only when a decision
// already exists (closing is not a decision).
function trapFocus(event) {
  if (event.key === 'Escape' && decision) return close()
  if (event.key !== 'Tab') return
  var items = focusable()
  var first = items[0]
  var last = items[items.length - 1]
  if (event.shiftKey && document.activeElement === first) {
    last.focus()
    event.preventDefault()
  } else if (!event.shiftKey && document.activeElement === last) {
    first.focus()
    event.preventDefault()
  }
}

function close() {
  if (!dialog) return
  dialog.remove()
  if (backdrop) backdrop.remove()
  dialog = backdrop = null
  showLink()
  if (returnFocus && returnFocus.focus) returnFocus.focus()
}

function showLink() {
  if (!link) {
    link = button(texts.settings, 'nb-link', function () {
      open(true)
    })
    document.body.appendChild(link)
  }
  link.hidden = false
}

function start() {
  document.head.appendChild(h('style', { text: CSS }))
  addEventListener(OPEN_EVENT, function () {
    open(true)
  })
  // A visitor from another domain of the site: the linker adopts the decision recorded for the
  // id they carried, if any, first.
  config.ready ? config.ready.then(adopt) : begin()
}

// The server gave this browser a new id since the decision was recorded (the token it held
// could no longer renew the old one: past the renewal horizon, or its site secret rotated
// out): the decision is recorded again for the new id, as an unrecorded one would be, so that
// the server believes the consent its events claim.
function movedId() {
  var id = read(localStorage, identityKey(site))
  return id && decision.bid && id.bid !== decision.bid
}

function adopt() {
  decision = readDecision(config)
  if (decision) effective = allowed(config, decision.granted)
  // The id it was recorded with and its fresh token, for the tracker.
  begin(decision && decision.bid && read(localStorage, identityKey(site)))
}

function begin(carried) {
  if (!decision)
    return regionRule(config).then(function (rule) {
      // Asked first here: an id kept for an opt-out region (the visitor travelled) goes.
      if (rule === 'opt_in') return write(localStorage, identityKey(site), null), open(false)
      // Opt-out: granted (as GPC allows) until the visitor refuses; the banner is a notice.
      effective = allowed(config, keys(function () {
        return true
      }))
      dispatchEvent(new CustomEvent(CONSENT_EVENT, { detail: { granted: effective } }))
      if (banner.consentMode) gtag('consent', 'update', consentModeState(banner.purposes, effective))
      rule === 'opt_out' ? open(false) : showLink()
    })
  showLink()
  // Moves a decision of an earlier release (localStorage, one host) to the shared cookie.
  writeDecision(config, decision)
  // GPC came after the decision: it is narrowed (and recorded) now.
  if (effective.length < decision.granted.length) decide(effective, decision.tcf)
  else if (!decision.recorded || movedId()) record().then(announce, function () {})
  // For a tracker that started without the loader (naboria.init in an app), or before a
  // carried decision was adopted.
  else dispatchEvent(new CustomEvent(CONSENT_EVENT, { detail: { granted: effective, answer: carried } }))
}

document.body ? start() : addEventListener('DOMContentLoaded', start)

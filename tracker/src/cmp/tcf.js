/*
 * IAB TCF v2.2 support for the Naboria consent banner (CMP).
 *
 * Used by the banner (index.js, tcf-ui.js) and its loader:
 *  - effectiveVendor() / tcfOffer() apply the publisher's restrictions to the vendors'
 *    declarations and list what the second layer offers (consents, objections, opt-ins),
 *  - allChoices() is "Accept all" / "Reject all"; tcChoices() turns choices into TCF signals,
 *  - createdOf() reads back the Created date of the previous TC string (kept on changes),
 *  - encodeTCString() writes them as a TC string (core + Disclosed Vendors segments),
 *  - tcData() / createTcfApi() expose them to ad tags through window.__tcfapi,
 *  - installStub() / processStubQueue() let pages call __tcfapi before the banner loads.
 *
 * Follows "IAB Tech Lab - Consent string and vendor list formats v2" and
 * "IAB Tech Lab - CMP API v2" as of TCF 2.2 (policy version 4, taken from the GVL);
 * test/tcf.test.mjs checks the output against the reference library @iabtcf/core.
 * No runtime dependencies and written for size: it counts against the banner's 8 KB.
 */

const sortedIds = (ids) => [...new Set(ids)].sort((a, b) => a - b);
const without = (ids, drop) => ids.filter((id) => !drop.includes(id));
const idsOf = (vendors) => sortedIds(vendors.map((vendor) => vendor.id));
// TCF 2.2 forbids legitimate interest for purposes 1, 3, 4, 5 and 6.
const LI_PURPOSES = [2, 7, 8, 9, 10, 11];

// A vendor as the publisher's restrictions ({purpose, type, vendors}) leave it: type 0 (not
// allowed) removes the purpose; 1 (require consent) and 2 (require legitimate interest) keep
// it under that basis only, if the vendor declared it so or as flexible, else remove it.
// The banner shows and signals these effective declarations, never the raw GVL ones.
export function effectiveVendor(vendor, restrictions = []) {
  let purposes = vendor.purposes;
  let legInt = vendor.legIntPurposes;
  restrictions.forEach(({ purpose, type, vendors }) => {
    if (!vendors.includes(vendor.id)) return;
    const declared = purposes.includes(purpose) || legInt.includes(purpose);
    const flexible = declared && (vendor.flexiblePurposes || []).includes(purpose);
    const basis = type == 1 ? purposes : legInt;
    const keep = type && (basis.includes(purpose) || flexible);
    purposes = without(purposes, [purpose]).concat(keep && type == 1 ? [purpose] : []);
    legInt = without(legInt, [purpose]).concat(keep && type == 2 ? [purpose] : []);
  });
  return { ...vendor, purposes: sortedIds(purposes), legIntPurposes: sortedIds(legInt).filter((id) => LI_PURPOSES.includes(id)) };
}

export const effectiveVendors = (config) => config.vendors.map((vendor) => effectiveVendor(vendor, config.restrictions));

// What the second layer offers: purposes to consent to (the vendors' and those the site's own
// purposes stand for), purposes to object to (legitimate interest) and special features.
export function tcfOffer(config, sitePurposes = []) {
  const vendors = effectiveVendors(config);
  const all = (field) => sortedIds(vendors.flatMap((vendor) => vendor[field] || []));
  const purposes = sortedIds(all('purposes').concat(sitePurposes));
  return {
    vendors,
    purposes,
    shownPurposes: sortedIds(purposes.concat(all('legIntPurposes'))),
    legIntPurposes: all('legIntPurposes'),
    specialFeatures: all('specialFeatures'),
    specialPurposes: all('specialPurposes'),
    features: all('features'),
    consentVendors: idsOf(vendors.filter((vendor) => vendor.purposes.length || vendor.specialFeatures.length)),
    legIntVendors: idsOf(vendors.filter((vendor) => vendor.legIntPurposes.length)),
  };
}

// The user's choices, as {purposes, specialFeatures, vendors, objections, vendorObjections}:
// "Accept all" is everything offered and no objection, "Reject all" the opposite.
export function allChoices(offer, accept) {
  return accept
    ? { purposes: offer.purposes, specialFeatures: offer.specialFeatures, vendors: offer.consentVendors, objections: [], vendorObjections: [] }
    : { purposes: [], specialFeatures: [], vendors: [], objections: offer.legIntPurposes, vendorObjections: offer.legIntVendors };
}

// The TCF signals of those choices. Legitimate interest is signalled only where a vendor
// discloses it (and the banner shows it with a right to object) and the user did not object;
// vendors relying on special purposes only, to which no objection applies, get the vendor LI
// bit as the IAB's CMP guidance asks.
// gpc: Global Privacy Control, honoured by the site: no consent for the purposes that
// personalise ads (2-4, 7) nor for special features, whatever was chosen (cmp/choices.js).
export const GPC_DENIED = [2, 3, 4, 7];
export function tcChoices(config, choices, sitePurposes, gpc) {
  if (gpc) choices = { ...choices, purposes: without(choices.purposes || [], GPC_DENIED), specialFeatures: [] };
  const offer = tcfOffer(config, sitePurposes);
  const chosen = (offered, picked = []) => offered.filter((id) => picked.includes(id));
  return {
    purposeConsents: chosen(offer.purposes, choices.purposes),
    purposeLegitimateInterests: without(offer.legIntPurposes, choices.objections),
    vendorConsents: chosen(offer.consentVendors, choices.vendors),
    vendorLegitimateInterests: sortedIds(without(offer.legIntVendors, choices.vendorObjections).concat(
      idsOf(offer.vendors.filter((vendor) => !vendor.purposes.length && !vendor.legIntPurposes.length && (vendor.specialPurposes || []).length)))),
    specialFeatureOptins: chosen(offer.specialFeatures, choices.specialFeatures),
    disclosedVendors: idsOf(offer.vendors),
    publisherRestrictions: config.restrictions || [],
  };
}

// The Created field of a TC string (deciseconds since 1970, bits 6-41): kept when the user
// changes their choices, as the spec asks.
export function createdOf(tcString) {
  // Version 2 ('C') and seven characters of the alphabet, else not one of ours.
  if (!/^C[\w-]{6}/.test(tcString)) return null;
  const bits = [...tcString.slice(0, 7)].map((char) => B64.indexOf(char).toString(2).padStart(6, '0')).join('');
  return new Date(parseInt(bits.slice(6, 42), 2) * 100);
}

// Throws rather than let a value that does not fit shift every later field.
function int(value, bits) {
  if (!(value >= 0 && value < 2 ** bits)) throw RangeError('TCF value ' + value);
  return value.toString(2).padStart(bits, '0');
}

const bit = (flag) => +!!flag;
const letters = (code) => int(code.toUpperCase().charCodeAt(0) - 65, 6) + int(code.toUpperCase().charCodeAt(1) - 65, 6);

function bitField(ids = [], length) {
  let bits = '';
  for (let id = 1; id <= length; id++) bits += bit(ids.includes(id));
  return bits;
}

// NumEntries and the entries of consecutive ids (single id or range), as vendor ranges and
// publisher restrictions both write them.
function rangeEntries(ids) {
  let ranges = '';
  let entries = 0;
  for (let i = 0; i < ids.length; i++, entries++) {
    const first = ids[i];
    while (ids[i + 1] === ids[i] + 1) i++;
    ranges += first < ids[i] ? '1' + int(first, 16) + int(ids[i], 16) : '0' + int(first, 16);
  }
  return int(entries, 12) + ranges;
}

// MaxVendorId, then the shorter of the bitfield and range encodings (both are valid).
function vendorSection(ids) {
  ids = sortedIds(ids);
  const maxId = Math.max(0, ...ids);
  const field = '0' + bitField(ids, maxId);
  const range = '1' + rangeEntries(ids);
  return int(maxId, 16) + (range.length < field.length ? range : field);
}

// NumPubRestrictions, then per restriction: PurposeId, RestrictionType and its vendors.
const restrictionsSection = (restrictions = []) =>
  int(restrictions.length, 12) +
  restrictions.map(({ purpose, type, vendors }) => int(purpose, 6) + int(type, 2) + rangeEntries(sortedIds(vendors))).join('');

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

// Zero-padded to whole 24-bit groups as @iabtcf/core does, hence never any '='.
const base64url = (bits) =>
  btoa(bits.padEnd(Math.ceil(bits.length / 24) * 24, '0').replace(/.{8}/g, (byte) => String.fromCharCode(parseInt(byte, 2))))
    .replace(/\+/g, '-')
    .replace(/\//g, '_');

// Day precision, as IAB recommends, so that the timestamps cannot single out a user.
const midnightDeciseconds = (date) => int(Math.floor(date / 864e5) * 864e3, 36);

export function encodeTCString(fields) {
  const core =
    int(2, 6) +
    midnightDeciseconds(fields.created) +
    midnightDeciseconds(fields.lastUpdated) +
    int(fields.cmpId, 12) +
    int(fields.cmpVersion, 12) +
    int(fields.consentScreen || 0, 6) +
    letters(fields.consentLanguage) +
    int(fields.vendorListVersion, 12) +
    int(fields.tcfPolicyVersion, 6) +
    // Global scope was retired in 2021, so service-specific unless told otherwise.
    bit(fields.isServiceSpecific !== false) +
    bit(fields.useNonStandardTexts) +
    bitField(fields.specialFeatureOptins, 12) +
    bitField(fields.purposeConsents, 24) +
    bitField(fields.purposeLegitimateInterests, 24) +
    bit(fields.purposeOneTreatment) +
    letters(fields.publisherCC) +
    vendorSection(fields.vendorConsents) +
    vendorSection(fields.vendorLegitimateInterests) +
    restrictionsSection(fields.publisherRestrictions);
  return base64url(core) + '.' + base64url(int(1, 3) + vendorSection(fields.disclosedVendors));
}

// The spec reads a missing id as false, so only the true ones are listed.
const flags = (ids = []) => Object.fromEntries(ids.map((id) => [id, true]));

export function tcData(tcString, choices, base) {
  return {
    tcString,
    tcfPolicyVersion: base.tcfPolicyVersion,
    cmpId: base.cmpId,
    cmpVersion: base.cmpVersion,
    gdprApplies: true,
    cmpStatus: 'loaded',
    isServiceSpecific: true,
    useNonStandardTexts: !!base.useNonStandardTexts,
    publisherCC: base.publisherCC,
    purposeOneTreatment: !!base.purposeOneTreatment,
    purpose: { consents: flags(choices.purposeConsents), legitimateInterests: flags(choices.purposeLegitimateInterests) },
    vendor: { consents: flags(choices.vendorConsents), legitimateInterests: flags(choices.vendorLegitimateInterests) },
    specialFeatureOptins: flags(choices.specialFeatureOptins),
    publisher: {
      consents: {},
      legitimateInterests: {},
      customPurpose: { consents: {}, legitimateInterests: {} },
      // {purpose id: {vendor id: restriction type}} as the CMP API spec shapes it.
      restrictions: (choices.publisherRestrictions || []).reduce((all, { purpose, type, vendors }) => {
        all[purpose] = { ...all[purpose], ...Object.fromEntries(vendors.map((id) => [id, type])) };
        return all;
      }, {}),
    },
  };
}

// publisherCC only fills the placeholder tcData sent before any decision ('AA' = unknown).
export function createTcfApi({ cmpId, cmpVersion, gvlVersion, tcfPolicyVersion, getTCData, displayStatus, publisherCC = 'AA' }) {
  const listeners = new Map();
  let lastListenerId = 0;
  let lastEventStatus;

  const send = (listener, eventStatus, listenerId) => {
    const decided = getTCData();
    try {
      listener({
        // Listeners must hear at once, decision or not, if only to learn their listenerId.
        ...(decided || tcData('', {}, { cmpId, cmpVersion, tcfPolicyVersion, publisherCC })),
        eventStatus: decided ? eventStatus : 'cmpuishown',
        cmpStatus: 'loaded',
        listenerId,
      }, true);
    } catch (error) {
      // Third-party code: report its error without keeping the other listeners from hearing.
      setTimeout(() => { throw error; });
    }
  };

  const __tcfapi = (command, version, callback, parameter) => {
    if (typeof callback != 'function') return;
    // Spec: 0, null or undefined mean the latest version, 2. Version 1 is no longer served.
    if (version && version != 2) return callback(null, false);
    if (command == 'ping') {
      callback({
        gdprApplies: true,
        cmpLoaded: true,
        cmpStatus: 'loaded',
        displayStatus: displayStatus(),
        apiVersion: '2.2',
        cmpVersion,
        cmpId,
        gvlVersion,
        tcfPolicyVersion,
      }, true);
    } else if (command == 'addEventListener') {
      listeners.set(++lastListenerId, callback);
      send(callback, lastEventStatus || 'tcloaded', lastListenerId);
    } else if (command == 'removeEventListener') {
      callback(listeners.delete(parameter));
    } else {
      // Includes getTCData, deprecated by CMP API 2.1 in favour of addEventListener.
      callback(null, false);
    }
  };

  __tcfapi.notify = (eventStatus) => {
    lastEventStatus = eventStatus;
    listeners.forEach((listener, listenerId) => send(listener, eventStatus, listenerId));
  };
  return __tcfapi;
}

// Installs `api` as window.__tcfapi (if the banner has not done so yet) and replays, in
// order, the calls the stub queued. The queue is also reachable from the window because
// the stub function that carries it is gone once window.__tcfapi points to the real API.
export function processStubQueue(api, win = globalThis) {
  const stub = win.__tcfapi;
  const queue = [stub != api && stub && stub.a, win.__tcfapiQueue].find(Array.isArray) || [];
  win.__tcfapi = api;
  // Emptied first so that a second call cannot answer the same calls twice.
  queue.splice(0).forEach((args) => api(...args));
}

export function installStub(win) {
  if (typeof win.__tcfapi == 'function') return;
  const doc = win.document;
  const stub = (...args) => {
    // The stub must answer ping itself; everything else waits for the banner.
    if (args[0] != 'ping') stub.a.push(args);
    else if (typeof args[2] == 'function') args[2]({ gdprApplies: true, cmpLoaded: false, cmpStatus: 'stub', apiVersion: '2.2' }, true);
  };
  win.__tcfapiQueue = stub.a = [];
  win.__tcfapi = stub;

  // Scripts in frames find the CMP's window by looking for a child frame of this name.
  const addLocator = () => {
    if (win.frames.__tcfapiLocator) return;
    const iframe = doc.createElement('iframe');
    iframe.name = '__tcfapiLocator';
    iframe.style.display = 'none';
    (doc.body || doc.documentElement).appendChild(iframe);
  };
  if (doc.body) addLocator();
  else doc.addEventListener('DOMContentLoaded', addLocator);

  // Frames call through postMessage; answer in their format (JSON text or object).
  win.addEventListener('message', (event) => {
    const asText = typeof event.data == 'string';
    let request;
    try {
      request = (asText ? JSON.parse(event.data) : event.data).__tcfapiCall;
    } catch {
      return;
    }
    if (!request || !event.source) return;
    // Looked up at each call: once processStubQueue ran, this is the real API.
    win.__tcfapi(request.command, request.version, (returnValue, success) => {
      const reply = { __tcfapiReturn: { returnValue, success, callId: request.callId } };
      event.source.postMessage(asText ? JSON.stringify(reply) : reply, '*');
    }, request.parameter);
  });
}

/*
 * IAB TCF v2.2 support for the Naboria consent banner (CMP).
 *
 * Used by the banner and its loader:
 *  - tcChoices() turns the user's decision into TCF signals for the site's vendors,
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
const includesAll = (wanted, given) => wanted.every((id) => given.includes(id));

// gpc: Global Privacy Control, honoured by the site: no consent for the purposes that
// personalise ads (2-4, 7) nor for special features, whatever was granted (cmp/choices.js).
export function tcChoices({ vendors }, grantedPurposes = [], grantedSpecialFeatures = [], gpc) {
  if (gpc) (grantedPurposes = grantedPurposes.filter((id) => ![2, 3, 4, 7].includes(id))), (grantedSpecialFeatures = []);
  const vendorIds = (keep) => sortedIds(vendors.filter(keep).map((vendor) => vendor.id));
  return {
    purposeConsents: sortedIds(grantedPurposes),
    // TCF 2.2 forbids legitimate interest for purposes 1, 3, 4, 5 and 6.
    purposeLegitimateInterests: [2, 7, 8, 9, 10, 11].filter((purpose) =>
      vendors.some((vendor) => vendor.legIntPurposes.includes(purpose))),
    // The banner asks per purpose, not per vendor: a vendor may only process when
    // every consent purpose and special feature it declares was accepted.
    vendorConsents: vendorIds((vendor) =>
      (vendor.purposes.length || vendor.specialFeatures.length) &&
      includesAll(vendor.purposes, grantedPurposes) &&
      includesAll(vendor.specialFeatures, grantedSpecialFeatures)),
    // Listing a vendor in the banner is its LI transparency. Vendors relying only on
    // special purposes get the bit too (TCF policy, June 2021) when the config has them.
    vendorLegitimateInterests: vendorIds((vendor) =>
      vendor.legIntPurposes.length || (!vendor.purposes.length && (vendor.specialPurposes || []).length)),
    specialFeatureOptins: sortedIds(grantedSpecialFeatures),
    disclosedVendors: vendorIds(() => 1),
  };
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

// MaxVendorId, then the shorter of the bitfield and range encodings (both are valid).
function vendorSection(ids) {
  ids = sortedIds(ids);
  let ranges = '';
  let entries = 0;
  for (let i = 0; i < ids.length; i++, entries++) {
    const first = ids[i];
    while (ids[i + 1] === ids[i] + 1) i++;
    ranges += first < ids[i] ? '1' + int(first, 16) + int(ids[i], 16) : '0' + int(first, 16);
  }
  const maxId = Math.max(0, ...ids);
  const field = '0' + bitField(ids, maxId);
  const range = '1' + int(entries, 12) + ranges;
  return int(maxId, 16) + (range.length < field.length ? range : field);
}

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
    int(0, 12); // NumPubRestrictions
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
      restrictions: {},
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

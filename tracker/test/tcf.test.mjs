/*
 * Tests of src/cmp/tcf.js, the banner's IAB TCF v2.2 module.
 *
 * The TC strings are checked by decoding them with the reference library
 * @iabtcf/core (and, where both must agree bit for bit, by comparing with its own
 * encoder), using real vendors of the GVL in /work/shared/data/tcf-vendor-list.json:
 * every kind of choice the banner offers (accept all, reject all, per purpose, per vendor,
 * objections to legitimate interest, special features) and publisher restrictions.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GVL, PurposeRestriction, TCModel, TCString, Segment } from '@iabtcf/core';

import {
  allChoices,
  createdOf,
  effectiveVendor,
  tcChoices,
  tcfOffer,
  encodeTCString,
  tcData,
  createTcfApi,
  processStubQueue,
  installStub,
} from '../src/cmp/tcf.js';

const vendorList = JSON.parse(readFileSync('/work/shared/data/tcf-vendor-list.json', 'utf8'));

// Chosen for their declarations (GVL v7):
//    2 Captify      consent 1,2,3,4,7,9,10 + special feature 2
//   31 Ogury        consent 1, LI 2,7,9,10 (flexible)
//   77 Comscore     consent 1,7,8,9,10
//  126 DoubleVerify LI only 2,7,10 (flexible)
//  345 Kantar       consent 1,7,8,9,10 + special features 1,2
//  431 HUMAN        LI 10 (not flexible) + special feature 2, no consent purpose
//  755 Google       consent 1,3,4, LI 2,7,9,10 (flexible)
//  950 Stream Eye   special purposes only
const SAMPLE_VENDOR_IDS = [2, 31, 77, 126, 345, 431, 755, 950];
const CONSENT_VENDORS = [2, 31, 77, 345, 431, 755];
const LI_VENDORS = [31, 126, 431, 755];

// What the Django side builds from the GVL (consent.vendor_list.vendors_for_banner).
function tcfConfig(vendorIds = SAMPLE_VENDOR_IDS, restrictions = []) {
  return {
    cmpId: 300,
    cmpVersion: 3,
    vendorListVersion: vendorList.vendorListVersion,
    tcfPolicyVersion: vendorList.tcfPolicyVersion,
    publisherCC: 'FR',
    language: 'en',
    restrictions,
    vendors: vendorIds.map((id) => {
      const { name, purposes, legIntPurposes, flexiblePurposes, specialFeatures, specialPurposes, features } = vendorList.vendors[id];
      return { id, name, purposes, legIntPurposes, flexiblePurposes, specialFeatures, specialPurposes, features };
    }),
  };
}

// A second-layer decision: whatever is not named is neither chosen nor objected to.
const choose = (config, picked = {}, sitePurposes = []) =>
  tcChoices(config, { purposes: [], specialFeatures: [], vendors: [], objections: [], vendorObjections: [], ...picked }, sitePurposes);

const CREATED = new Date(Date.UTC(2024, 4, 17, 15, 42, 7, 123));
const UPDATED = new Date(Date.UTC(2024, 5, 2, 23, 59, 59));

function encode(config, choices, overrides = {}) {
  return encodeTCString({
    created: CREATED,
    lastUpdated: UPDATED,
    cmpId: config.cmpId,
    cmpVersion: config.cmpVersion,
    consentScreen: 1,
    consentLanguage: config.language.toUpperCase(),
    vendorListVersion: config.vendorListVersion,
    tcfPolicyVersion: config.tcfPolicyVersion,
    isServiceSpecific: true,
    useNonStandardTexts: false,
    purposeOneTreatment: false,
    publisherCC: config.publisherCC,
    ...choices,
    ...overrides,
  });
}

function ids(vector) {
  const result = [];
  vector.forEach((isSet, id) => isSet && result.push(id));
  return result;
}

// The restrictions a decoded string carries, as [purpose, type, [vendors]].
function restrictionsOf(decoded) {
  return decoded.publisherRestrictions
    .getRestrictions()
    .map((restriction) => [restriction.purposeId, restriction.restrictionType, decoded.publisherRestrictions.getVendors(restriction).sort((a, b) => a - b)])
    .sort((a, b) => a[0] - b[0]);
}

// The raw bits of one segment, to see which vendor encoding was chosen.
function segmentBits(segment) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  return [...segment].map((char) => alphabet.indexOf(char).toString(2).padStart(6, '0')).join('');
}
const VENDOR_CONSENTS_OFFSET = 213; // sum of the fixed-size core fields before them

// Decodes with @iabtcf/core and checks every field against what the banner chose.
function assertDecodesTo(tcString, config, choices) {
  const decoded = TCString.decode(tcString);
  assert.equal(decoded.version, 2);
  assert.equal(decoded.cmpId, config.cmpId);
  assert.equal(decoded.cmpVersion, config.cmpVersion);
  assert.equal(decoded.consentScreen, 1);
  assert.equal(decoded.vendorListVersion, vendorList.vendorListVersion);
  assert.equal(decoded.policyVersion, 4);
  assert.equal(decoded.isServiceSpecific, true);
  assert.equal(decoded.useNonStandardStacks, false); // the 2.2 UseNonStandardTexts bit
  assert.equal(decoded.purposeOneTreatment, false);
  assert.equal(decoded.consentLanguage, 'EN');
  assert.equal(decoded.publisherCountryCode, 'FR');
  assert.deepEqual(ids(decoded.purposeConsents), choices.purposeConsents);
  assert.deepEqual(ids(decoded.purposeLegitimateInterests), choices.purposeLegitimateInterests);
  assert.deepEqual(ids(decoded.vendorConsents), choices.vendorConsents);
  assert.deepEqual(ids(decoded.vendorLegitimateInterests), choices.vendorLegitimateInterests);
  assert.deepEqual(ids(decoded.specialFeatureOptins), choices.specialFeatureOptins);
  assert.deepEqual(ids(decoded.vendorsDisclosed), choices.disclosedVendors);
  assert.deepEqual(
    restrictionsOf(decoded),
    choices.publisherRestrictions.map(({ purpose, type, vendors }) => [purpose, type, vendors]),
  );
  // Day precision: midnight UTC of the given dates.
  assert.equal(decoded.created.getTime(), Date.UTC(2024, 4, 17));
  assert.equal(decoded.lastUpdated.getTime(), Date.UTC(2024, 5, 2));
  return decoded;
}

describe('what the second layer offers', () => {
  test('the purposes of the vendors and of the site, LI purposes, special features and vendors', () => {
    const offer = tcfOffer(tcfConfig(), [8, 1]);
    assert.deepEqual(offer.purposes, [1, 2, 3, 4, 7, 8, 9, 10]);
    assert.deepEqual(offer.legIntPurposes, [2, 7, 9, 10]);
    assert.deepEqual(offer.shownPurposes, [1, 2, 3, 4, 7, 8, 9, 10]);
    assert.deepEqual(offer.specialFeatures, [1, 2]);
    assert.deepEqual(offer.specialPurposes, [1, 2]);
    assert.deepEqual(offer.features, [1, 2, 3]);
    assert.deepEqual(offer.consentVendors, CONSENT_VENDORS);
    assert.deepEqual(offer.legIntVendors, LI_VENDORS);
  });

  test('a purpose claimed only under legitimate interest is shown (to object to) but not offered for consent', () => {
    const offer = tcfOffer(tcfConfig([126]));
    assert.deepEqual(offer.purposes, []);
    assert.deepEqual(offer.shownPurposes, [2, 7, 10]);
  });

  test('never offers legitimate interest for purposes 1, 3, 4, 5 and 6', () => {
    const config = tcfConfig([]);
    config.vendors = [{ id: 9, purposes: [], legIntPurposes: [1, 3, 4, 5, 6, 8], specialFeatures: [], specialPurposes: [], features: [] }];
    assert.deepEqual(tcfOffer(config).legIntPurposes, [8]);
    assert.deepEqual(choose(config).purposeLegitimateInterests, [8]);
  });
});

describe('publisher restrictions change what vendors may do', () => {
  const google = () => tcfConfig([755]).vendors[0];
  const restriction = (purpose, type, vendors = [755]) => [{ purpose, type, vendors }];

  test('not allowed removes the purpose under either basis', () => {
    assert.deepEqual(effectiveVendor(google(), restriction(3, 0)).purposes, [1, 4]);
    assert.deepEqual(effectiveVendor(google(), restriction(7, 0)).legIntPurposes, [2, 9, 10]);
  });

  test('require consent moves a flexible LI purpose to consent', () => {
    const vendor = effectiveVendor(google(), restriction(7, 1));
    assert.deepEqual([vendor.purposes, vendor.legIntPurposes], [[1, 3, 4, 7], [2, 9, 10]]);
  });

  test('require consent removes a purpose the vendor may only process under LI', () => {
    const human = tcfConfig([431]).vendors[0];
    assert.deepEqual(effectiveVendor(human, [{ purpose: 10, type: 1, vendors: [431] }]).legIntPurposes, []);
    assert.deepEqual(effectiveVendor(human, [{ purpose: 10, type: 1, vendors: [431] }]).purposes, []);
  });

  test('require LI moves a flexible consent purpose to LI, never purposes 1, 3-6', () => {
    const ogury = tcfConfig([31]).vendors[0];
    const comscore = tcfConfig([77]).vendors[0];
    // Comscore is not flexible: purpose 8 goes away rather than change basis.
    const strict = effectiveVendor(comscore, [{ purpose: 8, type: 2, vendors: [77] }]);
    assert.deepEqual([strict.purposes, strict.legIntPurposes], [[1, 7, 9, 10], []]);
    const moved = effectiveVendor({ ...ogury, purposes: [1, 8], flexiblePurposes: [8] }, [{ purpose: 8, type: 2, vendors: [31] }]);
    assert.deepEqual([moved.purposes, moved.legIntPurposes], [[1], [2, 7, 8, 9, 10]]);
    assert.deepEqual(effectiveVendor({ ...ogury, flexiblePurposes: [1] }, [{ purpose: 1, type: 2, vendors: [31] }]).legIntPurposes, [2, 7, 9, 10]);
  });

  test('only the vendors listed are restricted', () => {
    assert.deepEqual(effectiveVendor(google(), restriction(3, 0, [2])).purposes, [1, 3, 4]);
  });
});

describe('the TC string of each decision, decoded with @iabtcf/core', () => {
  test('accept all: every vendor consents for its declared purposes, LI where declared', () => {
    const config = tcfConfig();
    const offer = tcfOffer(config);
    const choices = tcChoices(config, allChoices(offer, true));
    assert.deepEqual(choices.purposeConsents, [1, 2, 3, 4, 7, 8, 9, 10]);
    assert.deepEqual(choices.vendorConsents, CONSENT_VENDORS);
    assert.deepEqual(choices.purposeLegitimateInterests, [2, 7, 9, 10]);
    // 950 relies on special purposes only, which nobody can object to.
    assert.deepEqual(choices.vendorLegitimateInterests, [...LI_VENDORS, 950]);
    assert.deepEqual(choices.specialFeatureOptins, [1, 2]);
    const decoded = assertDecodesTo(encode(config, choices), config, choices);
    for (const id of CONSENT_VENDORS) {
      for (const purpose of vendorList.vendors[id].purposes) {
        assert.ok(decoded.vendorConsents.has(id) && decoded.purposeConsents.has(purpose), `vendor ${id} purpose ${purpose}`);
      }
    }
  });

  test('reject all: no consent, and every legitimate interest objected to', () => {
    const config = tcfConfig();
    const choices = tcChoices(config, allChoices(tcfOffer(config), false));
    const decoded = assertDecodesTo(encode(config, choices), config, choices);
    assert.deepEqual(ids(decoded.purposeConsents), []);
    assert.deepEqual(ids(decoded.purposeLegitimateInterests), []);
    assert.deepEqual(ids(decoded.vendorConsents), []);
    assert.deepEqual(ids(decoded.vendorLegitimateInterests), [950]);
    assert.deepEqual(ids(decoded.specialFeatureOptins), []);
    assert.deepEqual(ids(decoded.vendorsDisclosed), SAMPLE_VENDOR_IDS);
  });

  test('per purpose: only the purposes ticked, no vendor consent unless ticked too', () => {
    const config = tcfConfig();
    const choices = choose(config, { purposes: [1, 8, 9, 10] });
    const decoded = assertDecodesTo(encode(config, choices), config, choices);
    assert.deepEqual(ids(decoded.purposeConsents), [1, 8, 9, 10]);
    assert.deepEqual(ids(decoded.vendorConsents), []);
    assert.deepEqual(ids(decoded.purposeLegitimateInterests), [2, 7, 9, 10]);
    assert.deepEqual(ids(decoded.vendorLegitimateInterests), [...LI_VENDORS, 950]);
  });

  test('per vendor: consent to some vendors, objection to one vendor\'s legitimate interest', () => {
    const config = tcfConfig();
    const choices = choose(config, { purposes: [1, 3, 4], vendors: [755, 77, 126], vendorObjections: [31] });
    const decoded = assertDecodesTo(encode(config, choices), config, choices);
    // 126 declares no consent purpose: its consent bit cannot be set.
    assert.deepEqual(ids(decoded.vendorConsents), [77, 755]);
    assert.deepEqual(ids(decoded.vendorLegitimateInterests), [126, 431, 755, 950]);
  });

  test('objections to legitimate interest per purpose', () => {
    const config = tcfConfig();
    const choices = choose(config, { objections: [7, 10], vendorObjections: [126] });
    const decoded = assertDecodesTo(encode(config, choices), config, choices);
    assert.deepEqual(ids(decoded.purposeLegitimateInterests), [2, 9]);
    assert.deepEqual(ids(decoded.vendorLegitimateInterests), [31, 431, 755, 950]);
  });

  test('special features: each one opted in separately, none by default', () => {
    const config = tcfConfig();
    assert.deepEqual(ids(TCString.decode(encode(config, choose(config))).specialFeatureOptins), []);
    const choices = choose(config, { specialFeatures: [2], vendors: [431] });
    const decoded = assertDecodesTo(encode(config, choices), config, choices);
    assert.deepEqual(ids(decoded.specialFeatureOptins), [2]);
    assert.deepEqual(ids(decoded.vendorConsents), [431]);
    // A feature no vendor declares is not offered, hence never signalled.
    assert.deepEqual(choose(tcfConfig([77]), { specialFeatures: [1, 2] }).specialFeatureOptins, []);
  });

  test('publisher restrictions: encoded, and applied to what is signalled', () => {
    const restrictions = [
      { purpose: 2, type: 1, vendors: [31, 126, 755] },
      { purpose: 3, type: 0, vendors: [2, 755] },
      { purpose: 9, type: 2, vendors: [2, 31] },
    ];
    const config = tcfConfig(SAMPLE_VENDOR_IDS, restrictions);
    const offer = tcfOffer(config);
    // Purpose 2 moved to consent for 31, 126 and 755 (flexible); nobody else claims LI for it.
    assert.deepEqual(offer.legIntPurposes, [7, 9, 10]);
    assert.deepEqual(offer.consentVendors, [2, 31, 77, 126, 345, 431, 755]);
    const choices = tcChoices(config, allChoices(offer, true));
    const decoded = assertDecodesTo(encode(config, choices), config, choices);
    assert.deepEqual(restrictionsOf(decoded), [[2, 1, [31, 126, 755]], [3, 0, [2, 755]], [9, 2, [2, 31]]]);
    assert.deepEqual(ids(decoded.purposeLegitimateInterests), [7, 9, 10]);
    // Reject all still carries the publisher's restrictions.
    const rejected = tcChoices(config, allChoices(offer, false));
    assert.deepEqual(restrictionsOf(TCString.decode(encode(config, rejected))), restrictionsOf(decoded));
  });

  test('consecutive vendors of a restriction are written as a range', () => {
    const config = tcfConfig([], [{ purpose: 7, type: 0, vendors: [3, 4, 5, 6, 90] }]);
    const decoded = TCString.decode(encode(config, choose(config)));
    assert.deepEqual(restrictionsOf(decoded), [[7, 0, [3, 4, 5, 6, 90]]]);
  });

  test('the whole GVL, accept all', () => {
    const config = tcfConfig(Object.keys(vendorList.vendors).map(Number));
    const choices = tcChoices(config, allChoices(tcfOffer(config), true));
    assert.equal(choices.disclosedVendors.length, Object.keys(vendorList.vendors).length);
    assertDecodesTo(encode(config, choices), config, choices);
  });

  test('useNonStandardTexts is written when the publisher replaced the standard texts', () => {
    const config = tcfConfig();
    assert.equal(TCString.decode(encode(config, choose(config), { useNonStandardTexts: true })).useNonStandardStacks, true);
  });

  test('is bit for bit what the @iabtcf/core encoder writes for the same model', () => {
    // Restrictions that change something: the reference encoder leaves out the others.
    const restrictions = [{ purpose: 3, type: 0, vendors: [2, 755] }, { purpose: 7, type: 1, vendors: [31, 755] }];
    const config = tcfConfig(SAMPLE_VENDOR_IDS, restrictions);
    const choices = choose(config, { purposes: [1, 7, 8, 9, 10], vendors: [31, 77], objections: [2] });
    const gvl = new GVL(vendorList);
    gvl.narrowVendorsTo(SAMPLE_VENDOR_IDS);
    const model = new TCModel(gvl);
    model.cmpId = config.cmpId;
    model.cmpVersion = config.cmpVersion;
    model.consentScreen = 1;
    model.isServiceSpecific = true;
    model.publisherCountryCode = 'FR';
    model.created = new Date(Date.UTC(2024, 4, 17));
    model.lastUpdated = new Date(Date.UTC(2024, 5, 2));
    model.purposeConsents.set(choices.purposeConsents);
    model.purposeLegitimateInterests.set(choices.purposeLegitimateInterests);
    model.vendorConsents.set(choices.vendorConsents);
    model.vendorLegitimateInterests.set(choices.vendorLegitimateInterests);
    for (const { purpose, type, vendors } of restrictions) {
      for (const vendor of vendors) model.publisherRestrictions.add(vendor, new PurposeRestriction(purpose, type));
    }
    const reference = TCString.encode(model, { segments: [Segment.CORE, Segment.VENDORS_DISCLOSED] });
    assert.equal(encode(config, choices), reference);
  });

  test('range encoding for sparse ids, bitfield for dense ones', () => {
    const config = tcfConfig([]);
    const sparse = { ...choose(config), vendorConsents: [2, 755, 1000], vendorLegitimateInterests: [5, 6, 7, 8, 9, 900, 901] };
    const dense = { ...choose(config), vendorConsents: [1, 3, 4, 6, 8, 9, 10, 12, 15, 16, 20, 21, 23, 24, 25, 28, 30, 33, 34, 35, 37, 39, 40, 45, 50, 52, 55, 60] };
    const sparseString = encode(config, sparse);
    const denseString = encode(config, dense);
    const encodingBit = (tcString) => segmentBits(tcString.split('.')[0])[VENDOR_CONSENTS_OFFSET + 16];
    assert.equal(encodingBit(sparseString), '1', 'range');
    assert.equal(encodingBit(denseString), '0', 'bitfield');
    const decodedSparse = TCString.decode(sparseString);
    assert.deepEqual(ids(decodedSparse.vendorConsents), [2, 755, 1000]);
    assert.deepEqual(ids(decodedSparse.vendorLegitimateInterests), [5, 6, 7, 8, 9, 900, 901]);
    assert.deepEqual(ids(TCString.decode(denseString).vendorConsents), dense.vendorConsents);
    assert.ok(sparseString.length < 80, `range keeps the string short: ${sparseString.length}`);
  });

  test('empty vendor sections and an empty disclosed list', () => {
    const config = tcfConfig([]);
    const choices = choose(config, { purposes: [1] }, [1]);
    const decoded = assertDecodesTo(encode(config, choices), config, choices);
    assert.equal(decoded.vendorConsents.maxId, 0);
  });

  test('refuses values that do not fit their field instead of shifting the others', () => {
    const config = tcfConfig();
    const choices = choose(config);
    assert.throws(() => encode(config, choices, { cmpId: 4096 }), RangeError);
    assert.throws(() => encode(config, choices, { publisherCC: 'F' }), RangeError);
    assert.throws(() => encode(config, choices, { created: undefined }), RangeError);
  });

  test('createdOf reads Created back, so that a new decision keeps it', () => {
    const config = tcfConfig();
    const first = encode(config, choose(config));
    assert.equal(createdOf(first).getTime(), Date.UTC(2024, 4, 17));
    const later = encode(config, choose(config, { purposes: [1] }), { created: createdOf(first), lastUpdated: new Date(Date.UTC(2025, 0, 3)) });
    const decoded = TCString.decode(later);
    assert.equal(decoded.created.getTime(), Date.UTC(2024, 4, 17));
    assert.equal(decoded.lastUpdated.getTime(), Date.UTC(2025, 0, 3));
    assert.equal(createdOf('not a tc string'), null);
    assert.equal(createdOf(''), null);
  });

  test('the CLI helper prints the decoded fields as JSON', () => {
    const config = tcfConfig();
    const choices = choose(config, { purposes: [1, 7, 8, 9, 10], specialFeatures: [2], vendors: [431] });
    const cli = fileURLToPath(new URL('../scripts/decode-tc-string.mjs', import.meta.url));
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const printed = JSON.parse(execFileSync(process.execPath, [cli, encode(config, choices)], { env, encoding: 'utf8' }));
    assert.deepEqual(
      { ...printed, created: undefined, lastUpdated: undefined, consentScreen: undefined, purposeOneTreatment: undefined },
      {
        version: 2,
        cmpId: 300,
        cmpVersion: 3,
        vendorListVersion: 7,
        policyVersion: 4,
        isServiceSpecific: true,
        consentLanguage: 'EN',
        publisherCountryCode: 'FR',
        purposeConsents: choices.purposeConsents,
        purposeLegitimateInterests: choices.purposeLegitimateInterests,
        vendorConsents: choices.vendorConsents,
        vendorLegitimateInterests: choices.vendorLegitimateInterests,
        specialFeatureOptins: choices.specialFeatureOptins,
        vendorsDisclosed: choices.disclosedVendors,
        useNonStandardTexts: false,
        publisherRestrictions: [],
        created: undefined,
        lastUpdated: undefined,
        consentScreen: undefined,
        purposeOneTreatment: undefined,
      },
    );
    assert.equal(printed.created, '2024-05-17T00:00:00.000Z');
    const usage = spawnSync(process.execPath, [cli], { env, encoding: 'utf8' });
    assert.equal(usage.status, 2);
  });
});

const BASE = { cmpId: 300, cmpVersion: 3, tcfPolicyVersion: 4, publisherCC: 'FR' };

function decidedTcData(grantedPurposes = [1, 7, 8, 9, 10]) {
  const config = tcfConfig(SAMPLE_VENDOR_IDS, [{ purpose: 3, type: 0, vendors: [2, 755] }, { purpose: 9, type: 2, vendors: [31] }]);
  const choices = choose(config, { purposes: grantedPurposes, vendors: [31, 77] });
  return tcData(encode(config, choices), choices, BASE);
}

// A __tcfapi whose decision and display status the test drives.
function api({ decision = null, display = 'hidden' } = {}) {
  const state = { decision, display };
  const tcfapi = createTcfApi({
    cmpId: 300,
    cmpVersion: 3,
    gvlVersion: 7,
    tcfPolicyVersion: 4,
    getTCData: () => state.decision,
    displayStatus: () => state.display,
  });
  return { tcfapi, state };
}

// Collects every callback invocation as an array of its arguments.
function recorder() {
  const calls = [];
  const callback = (...args) => calls.push(args);
  return { calls, callback };
}

describe('tcData', () => {
  test('has the TCData shape of the CMP API spec, signals matching the string', () => {
    const data = decidedTcData();
    assert.deepEqual(Object.keys(data).sort(), [
      'cmpId', 'cmpStatus', 'cmpVersion', 'gdprApplies', 'isServiceSpecific', 'publisher', 'publisherCC',
      'purpose', 'purposeOneTreatment', 'specialFeatureOptins', 'tcString', 'tcfPolicyVersion',
      'useNonStandardTexts', 'vendor',
    ]);
    assert.equal(data.tcfPolicyVersion, 4);
    assert.equal(data.gdprApplies, true);
    assert.equal(data.isServiceSpecific, true);
    assert.equal(data.useNonStandardTexts, false);
    assert.equal(data.purposeOneTreatment, false);
    assert.equal(data.publisherCC, 'FR');
    assert.deepEqual(data.purpose.consents, { 1: true, 7: true, 8: true, 9: true, 10: true });
    assert.deepEqual(data.purpose.legitimateInterests, { 2: true, 7: true, 9: true, 10: true });
    assert.deepEqual(data.vendor.consents, { 31: true, 77: true });
    assert.deepEqual(data.vendor.legitimateInterests, { 31: true, 126: true, 431: true, 755: true, 950: true });
    assert.deepEqual(data.specialFeatureOptins, {});
    assert.deepEqual(data.publisher, {
      consents: {},
      legitimateInterests: {},
      customPurpose: { consents: {}, legitimateInterests: {} },
      restrictions: { 3: { 2: 0, 755: 0 }, 9: { 31: 2 } },
    });
    const decoded = TCString.decode(data.tcString);
    for (const id of SAMPLE_VENDOR_IDS) {
      assert.equal(!!data.vendor.consents[id], decoded.vendorConsents.has(id), `vendor ${id}`);
    }
  });
});

describe('__tcfapi', () => {
  test('ping', () => {
    const { tcfapi, state } = api();
    const { calls, callback } = recorder();
    tcfapi('ping', 2, callback);
    state.display = 'visible';
    tcfapi('ping', undefined, callback); // no version means the latest, 2
    assert.deepEqual(calls[0][0], {
      gdprApplies: true,
      cmpLoaded: true,
      cmpStatus: 'loaded',
      displayStatus: 'hidden',
      apiVersion: '2.2',
      cmpVersion: 3,
      cmpId: 300,
      gvlVersion: 7,
      tcfPolicyVersion: 4,
    });
    assert.equal(calls[1][0].displayStatus, 'visible');
  });

  test('unsupported versions and commands get (null, false)', () => {
    const { tcfapi } = api({ decision: decidedTcData() });
    const { calls, callback } = recorder();
    tcfapi('ping', 1, callback);
    tcfapi('addEventListener', 3, callback);
    tcfapi('getTCData', 2, callback); // deprecated since CMP API 2.1
    tcfapi('getVendorList', 2, callback);
    assert.deepEqual(calls, [[null, false], [null, false], [null, false], [null, false]]);
    assert.doesNotThrow(() => tcfapi('ping', 2)); // no callback: nothing to answer
  });

  test('addEventListener answers at once with listenerId and tcloaded when a decision exists', () => {
    const data = decidedTcData();
    const { tcfapi } = api({ decision: data });
    const first = recorder();
    const second = recorder();
    tcfapi('addEventListener', 2, first.callback);
    tcfapi('addEventListener', 2, second.callback);
    const [[tc, success]] = first.calls;
    assert.equal(success, true);
    assert.equal(tc.eventStatus, 'tcloaded');
    assert.equal(tc.cmpStatus, 'loaded');
    assert.equal(typeof tc.listenerId, 'number');
    assert.notEqual(second.calls[0][0].listenerId, tc.listenerId);
    assert.equal(tc.tcString, data.tcString);
    assert.deepEqual(tc.vendor, data.vendor);
    assert.equal(data.listenerId, undefined, 'the object from getTCData is not modified');
  });

  test('before any decision, listeners get a complete cmpuishown TCData with an empty string', () => {
    const { tcfapi } = api();
    const { calls, callback } = recorder();
    tcfapi('addEventListener', 2, callback);
    const [[tc, success]] = calls;
    assert.equal(success, true);
    assert.equal(tc.eventStatus, 'cmpuishown');
    assert.equal(tc.tcString, '');
    assert.equal(tc.listenerId, 1);
    assert.equal(tc.gdprApplies, true);
    assert.equal(tc.cmpId, 300);
    assert.deepEqual(tc.purpose, { consents: {}, legitimateInterests: {} });
    assert.deepEqual(tc.vendor, { consents: {}, legitimateInterests: {} });
    assert.deepEqual(tc.specialFeatureOptins, {});
    assert.ok(tc.publisher.customPurpose && tc.publisher.restrictions);
  });

  test('notify reaches every listener until it is removed', () => {
    const { tcfapi, state } = api();
    const first = recorder();
    const second = recorder();
    tcfapi('addEventListener', 2, first.callback);
    tcfapi('addEventListener', 2, second.callback);
    tcfapi.notify('cmpuishown');
    state.decision = decidedTcData();
    tcfapi.notify('useractioncomplete');
    assert.deepEqual(first.calls.map(([tc]) => tc.eventStatus), ['cmpuishown', 'cmpuishown', 'useractioncomplete']);
    assert.equal(first.calls[2][0].tcString, state.decision.tcString);
    assert.equal(first.calls[2][0].listenerId, first.calls[0][0].listenerId);
    assert.equal(second.calls[2][0].listenerId, second.calls[0][0].listenerId);

    const removal = recorder();
    tcfapi('removeEventListener', 2, removal.callback, first.calls[0][0].listenerId);
    tcfapi('removeEventListener', 2, removal.callback, 999);
    assert.deepEqual(removal.calls, [[true], [false]]);
    tcfapi.notify('useractioncomplete');
    assert.equal(first.calls.length, 3);
    assert.equal(second.calls.length, 4);
  });

  test('a listener can remove itself from its first call, as in the spec example', () => {
    const { tcfapi } = api({ decision: decidedTcData() });
    const statuses = [];
    tcfapi('addEventListener', 2, (tc, success) => {
      statuses.push(tc.eventStatus);
      if (success && tc.eventStatus === 'tcloaded') tcfapi('removeEventListener', 2, (removed) => statuses.push(removed), tc.listenerId);
    });
    tcfapi.notify('useractioncomplete');
    assert.deepEqual(statuses, ['tcloaded', true]);
  });

  test('a listener added after the decision of this page view sees that event status', () => {
    const { tcfapi, state } = api();
    state.decision = decidedTcData();
    tcfapi.notify('useractioncomplete');
    const { calls, callback } = recorder();
    tcfapi('addEventListener', 2, callback);
    assert.equal(calls[0][0].eventStatus, 'useractioncomplete');
  });

  test('a throwing listener does not keep the others from being notified', () => {
    const { tcfapi } = api({ decision: decidedTcData() });
    const rethrown = [];
    const realSetTimeout = globalThis.setTimeout;
    globalThis.setTimeout = (fn) => rethrown.push(fn);
    try {
      let failing = true;
      tcfapi('addEventListener', 2, () => { if (failing) throw new Error('vendor bug'); });
      const { calls, callback } = recorder();
      tcfapi('addEventListener', 2, callback);
      tcfapi.notify('useractioncomplete');
      failing = false;
      assert.equal(calls.length, 2);
      assert.equal(rethrown.length, 2, 'the error is reported asynchronously');
      assert.throws(rethrown[0], /vendor bug/);
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
  });
});

// Just enough of window/document for the stub: frames by name, listeners, an iframe.
function fakeWindow({ bodyReady = true } = {}) {
  const listeners = { window: {}, document: {} };
  const on = (target) => (type, handler) => (listeners[target][type] ||= []).push(handler);
  const frames = {};
  const appendChild = (element) => { frames[element.name] = element; };
  const document = {
    body: bodyReady ? { appendChild } : null,
    documentElement: { appendChild },
    createElement: (tagName) => ({ tagName, style: {} }),
    addEventListener: on('document'),
  };
  const win = { document, frames, addEventListener: on('window') };
  const fire = (target, type, event) => (listeners[target][type] || []).forEach((handler) => handler(event));
  return { win, frames, document, fire, listeners };
}

// A frame posting __tcfapiCall messages and collecting the replies.
function frameSource() {
  const replies = [];
  return { replies, postMessage: (message, targetOrigin) => replies.push({ message, targetOrigin }) };
}

describe('stub', () => {
  test('answers ping at once and queues the rest until processStubQueue', () => {
    const { win } = fakeWindow();
    installStub(win);
    const ping = recorder();
    win.__tcfapi('ping', 2, ping.callback);
    assert.deepEqual(ping.calls, [[{ gdprApplies: true, cmpLoaded: false, cmpStatus: 'stub', apiVersion: '2.2' }, true]]);

    const early = recorder();
    win.__tcfapi('addEventListener', 2, early.callback);
    assert.equal(early.calls.length, 0);
    assert.equal(win.__tcfapi.a.length, 1);

    const { tcfapi, state } = api({ decision: decidedTcData() });
    processStubQueue(tcfapi, win);
    assert.equal(win.__tcfapi, tcfapi);
    assert.equal(early.calls.length, 1);
    assert.equal(early.calls[0][0].eventStatus, 'tcloaded');
    assert.equal(early.calls[0][0].listenerId, 1);

    state.decision = decidedTcData([1]);
    tcfapi.notify('useractioncomplete');
    assert.equal(early.calls[1][0].eventStatus, 'useractioncomplete');
  });

  test('replays the queue in order', () => {
    const { win } = fakeWindow();
    installStub(win);
    const order = [];
    win.__tcfapi('addEventListener', 2, (tc) => order.push(['first', tc.listenerId]));
    win.__tcfapi('removeEventListener', 2, (success) => order.push(['removed', success]), 1);
    win.__tcfapi('addEventListener', 2, (tc) => order.push(['second', tc.listenerId]));
    processStubQueue(api().tcfapi, win);
    assert.deepEqual(order, [['first', 1], ['removed', true], ['second', 2]]);
  });

  test('also works when the banner replaced window.__tcfapi before calling it, and only once', () => {
    const { win } = fakeWindow();
    installStub(win);
    const early = recorder();
    win.__tcfapi('addEventListener', 2, early.callback);
    const { tcfapi } = api({ decision: decidedTcData() });
    win.__tcfapi = tcfapi; // what src/cmp/index.js does
    processStubQueue(tcfapi, win);
    processStubQueue(tcfapi, win);
    assert.equal(early.calls.length, 1);
    assert.equal(early.calls[0][0].listenerId, 1);
  });

  test('a foreign queue that is not an array is ignored', () => {
    const win = { __tcfapi: Object.assign(() => {}, { a: 'not ours' }) };
    const { tcfapi } = api();
    assert.doesNotThrow(() => processStubQueue(tcfapi, win));
    assert.equal(win.__tcfapi, tcfapi);
  });

  test('adds the __tcfapiLocator frame, after DOMContentLoaded when there is no body yet', () => {
    const ready = fakeWindow();
    installStub(ready.win);
    assert.equal(ready.frames.__tcfapiLocator.tagName, 'iframe');
    assert.equal(ready.frames.__tcfapiLocator.style.display, 'none');

    const early = fakeWindow({ bodyReady: false });
    installStub(early.win);
    assert.equal(early.frames.__tcfapiLocator, undefined);
    early.document.body = { appendChild: (element) => { early.frames[element.name] = element; } };
    early.fire('document', 'DOMContentLoaded');
    assert.equal(early.frames.__tcfapiLocator.name, '__tcfapiLocator');
  });

  test('leaves an existing __tcfapi and locator alone', () => {
    const { win, listeners } = fakeWindow();
    const existing = () => {};
    win.__tcfapi = existing;
    installStub(win);
    assert.equal(win.__tcfapi, existing);
    assert.equal(listeners.window.message, undefined);

    const other = fakeWindow();
    other.frames.__tcfapiLocator = { name: '__tcfapiLocator', mine: false };
    installStub(other.win);
    assert.equal(other.frames.__tcfapiLocator.mine, false);
  });

  test('answers postMessage calls from frames, queued then through the real API', () => {
    const { win, fire } = fakeWindow();
    installStub(win);
    const frame = frameSource();
    // Objects and JSON text are both in use; the answer comes back in the same form.
    fire('window', 'message', { source: frame, data: { __tcfapiCall: { command: 'ping', version: 2, callId: 'p1' } } });
    fire('window', 'message', {
      source: frame,
      data: JSON.stringify({ __tcfapiCall: { command: 'addEventListener', version: 2, callId: 7 } }),
    });
    fire('window', 'message', { source: frame, data: 'not json' });
    fire('window', 'message', { source: frame, data: null });
    fire('window', 'message', { source: frame, data: { unrelated: true } });
    assert.equal(frame.replies.length, 1);
    assert.deepEqual(frame.replies[0], {
      message: { __tcfapiReturn: { returnValue: { gdprApplies: true, cmpLoaded: false, cmpStatus: 'stub', apiVersion: '2.2' }, success: true, callId: 'p1' } },
      targetOrigin: '*',
    });

    const { tcfapi } = api({ decision: decidedTcData() });
    processStubQueue(tcfapi, win);
    assert.equal(frame.replies.length, 2);
    const reply = JSON.parse(frame.replies[1].message).__tcfapiReturn;
    assert.equal(reply.callId, 7);
    assert.equal(reply.success, true);
    assert.equal(reply.returnValue.eventStatus, 'tcloaded');
    assert.equal(typeof reply.returnValue.tcString, 'string');

    tcfapi.notify('useractioncomplete'); // later events reach the frame under the same callId
    assert.equal(JSON.parse(frame.replies[2].message).__tcfapiReturn.returnValue.eventStatus, 'useractioncomplete');

    fire('window', 'message', {
      source: frame,
      data: { __tcfapiCall: { command: 'removeEventListener', version: 2, callId: 8, parameter: reply.returnValue.listenerId } },
    });
    assert.deepEqual(frame.replies[3].message, { __tcfapiReturn: { returnValue: true, success: undefined, callId: 8 } });
  });
});

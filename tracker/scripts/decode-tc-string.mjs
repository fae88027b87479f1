#!/usr/bin/env node
/*
 * Decodes a TCF v2 TC string with the reference library @iabtcf/core and prints it
 * as one JSON object, so that checks written in other languages (the Python browser
 * tests) can verify the string a real browser produced with the banner.
 *
 *   node tracker/scripts/decode-tc-string.mjs <tc string>
 *
 * Exit status: 0 decoded, 1 not a decodable TC string, 2 no argument.
 */
import { TCString } from '@iabtcf/core';

const tcString = process.argv[2];

if (!tcString) {
  console.error('usage: node decode-tc-string.mjs <tc string>');
  process.exitCode = 2;
} else {
  try {
    console.log(JSON.stringify(describe(TCString.decode(tcString))));
  } catch (error) {
    console.error(`not a valid TC string: ${error.message}`);
    process.exitCode = 1;
  }
}

function describe(model) {
  return {
    version: model.version,
    cmpId: model.cmpId,
    cmpVersion: model.cmpVersion,
    vendorListVersion: model.vendorListVersion,
    policyVersion: model.policyVersion,
    isServiceSpecific: model.isServiceSpecific,
    consentLanguage: model.consentLanguage,
    publisherCountryCode: model.publisherCountryCode,
    purposeConsents: ids(model.purposeConsents),
    purposeLegitimateInterests: ids(model.purposeLegitimateInterests),
    vendorConsents: ids(model.vendorConsents),
    vendorLegitimateInterests: ids(model.vendorLegitimateInterests),
    specialFeatureOptins: ids(model.specialFeatureOptins),
    vendorsDisclosed: ids(model.vendorsDisclosed),
    useNonStandardTexts: model.useNonStandardStacks, // the 2.2 name of that bit
    // [purpose, restriction type, [vendor ids]], by purpose then type.
    publisherRestrictions: model.publisherRestrictions
      .getRestrictions()
      .map((restriction) => [
        restriction.purposeId,
        restriction.restrictionType,
        model.publisherRestrictions.getVendors(restriction).sort((a, b) => a - b),
      ])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]),
    // Not asked for by the browser tests, but cheap and handy when a check fails.
    created: model.created.toISOString(),
    lastUpdated: model.lastUpdated.toISOString(),
    consentScreen: model.consentScreen,
    purposeOneTreatment: model.purposeOneTreatment,
  };
}

function ids(vector) {
  const result = [];
  vector.forEach((isSet, id) => isSet && result.push(id));
  return result;
}

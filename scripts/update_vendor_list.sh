#!/bin/sh
# Refresh the shipped IAB Global Vendor List (consent/data/tcf-vendor-list.json) from the IAB.
# TC strings made afterwards carry the new vendorListVersion; review the diff before committing.
set -eu
cd "$(dirname "$0")/.."
curl --fail --silent --show-error --location \
    https://vendor-list.consensu.org/v3/vendor-list.json -o consent/data/tcf-vendor-list.json.new
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('vendor list version', d['vendorListVersion'], '-', len(d['vendors']), 'vendors')" consent/data/tcf-vendor-list.json.new
mv consent/data/tcf-vendor-list.json.new consent/data/tcf-vendor-list.json

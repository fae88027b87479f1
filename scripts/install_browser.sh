#!/usr/bin/env bash
# Installs Debian's Chromium once, for the Playwright browser tests (Playwright's own browser
# download cannot work here). Browser tests use /usr/bin/chromium.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "install_browser: /usr/bin/chromium is missing and installing it needs root; browser tests will be skipped" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
echo "install_browser: installing Chromium from Debian (once)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version

#!/usr/bin/env bash
# The browser tests drive Debian's chromium (never a browser downloaded by Playwright).
# Installs it when missing and we may (root with apt-get); otherwise the browser tests skip with a reason.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser tests..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium is not installed and cannot be installed here (needs root and apt-get); browser tests will skip" >&2
fi

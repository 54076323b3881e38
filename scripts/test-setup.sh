#!/usr/bin/env bash
# What `make test` needs besides the virtualenv: its services, newman (pinned in postman/package-lock.json)
# for the Postman collection, and Debian's chromium for the browser test (Playwright never downloads one).
# Installs only what is missing, as root on Debian (apt-get, npm ci); a second run installs nothing.
#   CHROMIUM=/path          the browser the test drives (default /usr/bin/chromium; tests/ops/test_browser.py)
#   TEST_SETUP_DRY_RUN=1    print the installs it would run instead of running them
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
NEWMAN=postman/node_modules/.bin/newman
apt_updated=""

run() {
  if [ -n "${TEST_SETUP_DRY_RUN:-}" ]; then
    echo "test set-up would run: $*"
  else
    "$@"
  fi
}

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "make test needs $* and installs it only as root on Debian; install it yourself (apt-get install -y $*)" >&2
    exit 1
  fi
  echo "test set-up: installing $* (apt-get)"
  # The package lists are fetched once, and only when something is missing.
  if [ -z "$apt_updated" ]; then
    run apt-get update -qq
    apt_updated=1
  fi
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# The installed newman is the locked one (a lock bump reinstalls; node_modules is never wiped needlessly).
newman_is_current() {
  [ -x "$NEWMAN" ] && python3 - <<'PY'
import json, sys
locked = json.load(open("postman/package-lock.json"))["packages"]["node_modules/newman"]["version"]
try:
    installed = json.load(open("postman/node_modules/newman/package.json"))["version"]
except OSError:
    sys.exit(1)
sys.exit(0 if installed == locked else 1)
PY
}

if [ -n "${TEST_SETUP_DRY_RUN:-}" ]; then
  echo "test set-up would run: scripts/services.sh (PostgreSQL and Redis, when down)"
else
  scripts/services.sh
fi

if ! newman_is_current; then
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  echo "test set-up: npm ci --prefix postman (newman from postman/package-lock.json)"
  run npm ci --prefix postman --no-audit --no-fund
fi

if [ ! -x "$CHROMIUM" ]; then
  apt_install chromium
fi

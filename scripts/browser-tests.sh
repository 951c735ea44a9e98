#!/usr/bin/env bash
# Browser tests of the dashboard (tests/browser/): headless Chromium driven by
# playwright-core against a real `orch serve` on 127.0.0.1 running the example
# agents. Screenshots of the board and the task page land in
# target/browser-screenshots/.
#
#   scripts/browser-tests.sh            (CHROMIUM=/usr/bin/chromium by default)
#
# Needs node, npm and a Chromium binary (Debian: apt-get install chromium).
# playwright-core comes from the npm registry at the version pinned in
# tests/browser/package-lock.json, into tests/browser/node_modules; it never
# downloads a browser of its own.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
chromium="${CHROMIUM:-/usr/bin/chromium}"

for tool in node npm cargo; do
  command -v "$tool" >/dev/null || { echo "browser-tests: $tool not found on PATH" >&2; exit 1; }
done
[ -x "$chromium" ] || { echo "browser-tests: no Chromium at $chromium (Debian: apt-get install -y chromium)" >&2; exit 1; }

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
fi

cargo build -p orch-cli >&2
export ORCH_BIN="$root/target/debug/orch"
export ORCH_CHROMIUM="$chromium"
export ORCH_SCREENSHOTS="$root/target/browser-screenshots"
mkdir -p "$ORCH_SCREENSHOTS"
# Everything these tests talk to is on 127.0.0.1. A proxy from the environment
# (set where the registries are reached through one) must not see that
# traffic: Chromium and some Node builds send loopback requests to it, and it
# answers 403. So the test run gets no proxy variables, and NO_PROXY on top.
proxy_vars=()
for v in http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY \
  NODE_USE_ENV_PROXY GLOBAL_AGENT_HTTP_PROXY GLOBAL_AGENT_HTTPS_PROXY; do
  [ -n "${!v:-}" ] && proxy_vars+=("$v")
done
[ ${#proxy_vars[@]} -eq 0 ] || echo "browser-tests: ignoring ${proxy_vars[*]} for the loopback tests" >&2
[ -z "${NODE_OPTIONS:-}" ] || echo "browser-tests: note: NODE_OPTIONS=${NODE_OPTIONS}" >&2
env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
  -u NODE_USE_ENV_PROXY -u GLOBAL_AGENT_HTTP_PROXY -u GLOBAL_AGENT_HTTPS_PROXY \
  NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost,::1${no_proxy:+,$no_proxy}" \
  node --test --test-concurrency=1 tests/browser/dashboard.test.mjs
echo "browser-tests: screenshots in $ORCH_SCREENSHOTS" >&2

#!/usr/bin/env bash
# Browser tests of the dashboard (tests/browser/): headless Chromium driven by
# playwright-core against a real `orch serve` on 127.0.0.1 running the example
# agents. Screenshots of the inbox, the board and the task page, at desktop
# and phone widths, land in target/browser-screenshots/; axe-core checks
# each view's accessibility.
#
#   scripts/browser-tests.sh            (CHROMIUM=/usr/bin/chromium by default)
#
# Needs node, npm and a Chromium binary (Debian: apt-get install chromium).
# playwright-core and axe-core come from the npm registry at the versions
# pinned in tests/browser/package-lock.json, into tests/browser/node_modules;
# nothing downloads a browser of its own. The orch binary is built into
# $CARGO_TARGET_DIR when that is set (else target/).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
chromium="${CHROMIUM:-/usr/bin/chromium}"

for tool in node npm cargo; do
  command -v "$tool" >/dev/null || { echo "browser-tests: $tool not found on PATH" >&2; exit 1; }
done
[ -x "$chromium" ] || { echo "browser-tests: no Chromium at $chromium (Debian: apt-get install -y chromium)" >&2; exit 1; }

if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/axe-core ]; then
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
fi

cargo build -p orch-cli >&2
export ORCH_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/orch"
export ORCH_CHROMIUM="$chromium"
export ORCH_SCREENSHOTS="$root/target/browser-screenshots"
mkdir -p "$ORCH_SCREENSHOTS"
# Everything these tests talk to is on 127.0.0.1. They run with an
# environment of named variables only (env -i): a proxy setting, a NODE_OPTIONS
# preload or any other variable of the calling environment that reroutes
# Node's or Chromium's loopback traffic cannot reach them. (A CI run once had
# every first API call answered "403 resolve_deny" by an egress proxy although
# the proxy variables we knew of were removed; an allowlist does not depend on
# knowing them all.) The cause turned out to be the test's own reading of
# orch serve's "listening on http://ADDR" line from a stderr chunk that ended
# inside the address: host "127" (0.0.0.127) is not loopback, so the sandbox's
# proxy answered. The test now reads whole lines only (`listeningAddress`).
# It also checks that orch answered each call (`server: orch/…`) and
# otherwise prints the URL, the peer and the header.
dropped=$(env | cut -d= -f1 | grep -i -E 'proxy|^NODE_|^npm_config_|^GLOBAL_AGENT' | sort -u | tr '\n' ' ' || true)
[ -z "$dropped" ] || echo "browser-tests: not passed to the tests: $dropped" >&2
env -i \
  PATH="$PATH" HOME="${HOME:-/root}" TMPDIR="${TMPDIR:-/tmp}" LANG=C.UTF-8 \
  ORCH_BIN="$ORCH_BIN" ORCH_CHROMIUM="$ORCH_CHROMIUM" ORCH_SCREENSHOTS="$ORCH_SCREENSHOTS" \
  ${ORCH_KEEP:+ORCH_KEEP="$ORCH_KEEP"} \
  NO_PROXY=127.0.0.1,localhost,::1 no_proxy=127.0.0.1,localhost,::1 \
  node --test --test-concurrency=1 tests/browser/dashboard.test.mjs
echo "browser-tests: screenshots in $ORCH_SCREENSHOTS" >&2

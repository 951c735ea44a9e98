#!/usr/bin/env bash
# The peer benchmark of issue 11: orch's queue cycle on PostgreSQL beside
# graphile-worker (npm; a well-known PostgreSQL job queue) running no-op jobs
# on the same server, with 1, 4 and 16 workers each, every row in a fresh
# schema. Not part of .ci/run: the figures go into the issue's closing note.
#
#   scripts/bench-graphile.sh [JOBS] [URL]
#
# JOBS (default 10000) jobs per row; URL (default $ORCH_TEST_PG_URL, else
# the local test server). ORCH_BENCH=0 skips orch's side. graphile-worker and
# the `pg` driver are installed, at the pinned versions below, with the
# machine's npm into target/graphile-bench (GRAPHILE_WORKER_VERSION picks
# another; 0.17.3 is the newest whose engines accept Node 20, 0.18 wants 22.18).
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS="${1:-10000}"
URL="${2:-${ORCH_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}}"
GW_VERSION="${GRAPHILE_WORKER_VERSION:-0.17.3}"
PG_VERSION="8.23.1"
DIR="${CARGO_TARGET_DIR:-target}/graphile-bench"
DIR="$(mkdir -p "$DIR" && cd "$DIR" && pwd)"

installed() {
  node -e 'process.stdout.write(require(process.argv[1]).version)' \
    "$DIR/node_modules/graphile-worker/package.json" 2>/dev/null || true
}
if [ "$(installed)" != "$GW_VERSION" ]; then
  echo "installing graphile-worker@$GW_VERSION and pg@$PG_VERSION into $DIR" >&2
  [ -f "$DIR/package.json" ] || echo '{"private": true}' >"$DIR/package.json"
  (cd "$DIR" && npm install --no-audit --no-fund --silent \
    "graphile-worker@$GW_VERSION" "pg@$PG_VERSION")
fi

ORCH_OUT="$DIR/orch.txt"
GW_OUT="$DIR/graphile.txt"
: >"$ORCH_OUT"
if [ "${ORCH_BENCH:-1}" != 0 ]; then
  echo "orch: cargo bench -p orch-store --bench queue -- $JOBS --url …" >&2
  cargo bench -q -p orch-store --bench queue -- "$JOBS" --url "$URL" | tee "$ORCH_OUT" >&2
fi
echo "graphile-worker $GW_VERSION: $JOBS no-op jobs per row" >&2
NODE_PATH="$DIR/node_modules" node scripts/bench-graphile.cjs "$URL" "$JOBS" 1 4 16 | tee "$GW_OUT" >&2

echo
echo "jobs/s on the same PostgreSQL, $JOBS jobs per row, fresh schema per row"
echo "  orch: enqueue → claim → complete by each worker"
echo "  graphile cycle: producers add while workers run; drain: jobs queued first, then run"
printf '%-8s %10s %16s %16s\n' workers orch "graphile cycle" "graphile drain"
awk '
  FNR == NR { if ($1 == "postgres" && $2 == 0) orch[$3] = $4; next }
  $1 == "graphile" {
    o = ($2 in orch) ? orch[$2] : "-"
    printf "%-8s %10s %16s %16s\n", $2, o, $3, $4
  }
' "$ORCH_OUT" "$GW_OUT"

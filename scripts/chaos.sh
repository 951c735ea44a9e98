#!/usr/bin/env bash
# Chaos run of the crash test outside CI: N seeded iterations of a pipeline
# driven through every gate while orch serve is killed with SIGKILL at random
# moments (crates/cli/tests/crash.rs). Every iteration checks that nothing
# was lost, duplicated, stuck or orphaned (the task, the merge, the deploy,
# the tracker outbox's writes, the agents' processes); the first violation
# fails the run with its seed and iteration.
#
#   scripts/chaos.sh [N] [SEED]     N defaults to 1000, SEED to a random one
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
seed="${2:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
case "$n" in '' | *[!0-9]*) echo "usage: scripts/chaos.sh [N] [SEED]" >&2; exit 2 ;; esac
echo "chaos: $n iterations, seed $seed"
start=$(date +%s)
mkdir -p target
set +e
ORCH_CRASH_ITERATIONS="$n" ORCH_CRASH_SEED="$seed" \
  cargo test -q -p orch-cli --test crash -- --nocapture 2>&1 \
  | tee target/chaos.log | grep --line-buffered -E "^crash test:|panicked|FAILED|test result"
status="${PIPESTATUS[0]}"
set -e
echo "chaos: ${n} iterations in $(( $(date +%s) - start )) s, exit ${status} (full log: target/chaos.log)"
exit "$status"

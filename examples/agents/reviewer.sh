#!/usr/bin/env bash
# Example reviewer agent for orch: deterministic, no AI. Started in the task's git
# worktree, it reads work/$ORCH_WORK_ITEM.md and ends its output with a verdict in
# the format orch_agent::adapters::parse_verdict reads (one fenced `orch-verdict`
# JSON block): changes requested when the file is missing or has no `Tests: added`
# line, approve otherwise. It exits 0 either way: the verdict carries the decision.
# It changes nothing in the worktree.
#
# Reads: ORCH_WORK_ITEM (required); ORCH_TASK_ID, ORCH_BRANCH, ORCH_STAGE,
# ORCH_RUN_ID, ORCH_DOCS_DIR, ORCH_PROMPT_FILE (optional);
# ORCH_EXAMPLE_DELAY (seconds to sleep before finishing, default 0);
# ORCH_EXAMPLE_FAIL (agent kinds, comma/space separated, that fail with exit 1).
set -euo pipefail

KIND=reviewer

# Traps, die, example_delay and the failure switch (shared by the examples).
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# A JSON string literal of $1.
json_string() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\t'/\\t}
	s=${s//$'\r'/\\r}
	s=${s//$'\n'/\\n}
	printf '"%s"' "$s"
}

: "${ORCH_WORK_ITEM:?ORCH_WORK_ITEM is not set}"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "the working directory $(pwd) is not a git worktree"

file="work/$ORCH_WORK_ITEM.md"
echo "$KIND: reviewing the work item $ORCH_WORK_ITEM (task ${ORCH_TASK_ID:-?}, run ${ORCH_RUN_ID:-?})"
echo "$KIND: reading $file"
example_delay
example_fail

if [[ ! -f $file ]]; then
	decision=changes_requested
	comment="$file is missing"
elif ! grep -qxF 'Tests: added' -- "$file"; then
	decision=changes_requested
	# shellcheck disable=SC2016 # literal backticks: Markdown code in the comment
	comment='Please add tests (a `Tests: added` line)'
else
	decision=approve
	comment=
fi

if [[ $decision == approve ]]; then
	echo "$KIND: $file exists and records its tests: approving"
	comments='[]'
else
	echo "$KIND: requesting changes: $comment"
	comments="[$(json_string "$comment")]"
fi
echo
# shellcheck disable=SC2016 # literal backticks: the verdict fence
printf '```orch-verdict\n{"verdict": "%s", "comments": %s}\n```\n' "$decision" "$comments"

#!/usr/bin/env bash
# Example developer agent for orch: deterministic, no AI. Started in the task's git
# worktree, it "implements" the work item by writing work/$ORCH_WORK_ITEM.md and
# committing it. In a later round (the file already exists, so the reviewer asked
# for changes) it adds the line `Tests: added`, once.
#
# Reads: ORCH_WORK_ITEM (required); ORCH_TASK_ID, ORCH_BRANCH, ORCH_STAGE,
# ORCH_RUN_ID, ORCH_DOCS_DIR, ORCH_PROMPT_FILE (optional);
# ORCH_EXAMPLE_DELAY (seconds to sleep before finishing, default 0);
# ORCH_EXAMPLE_FAIL (agent kinds, comma/space separated, that fail with exit 1).
set -euo pipefail

KIND=developer

# Traps, die, example_delay and the failure switch (shared by the examples).
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

: "${ORCH_WORK_ITEM:?ORCH_WORK_ITEM is not set}"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "the working directory $(pwd) is not a git worktree"

echo "$KIND: implementing the work item $ORCH_WORK_ITEM (task ${ORCH_TASK_ID:-?}, run ${ORCH_RUN_ID:-?})"
if [[ -n ${ORCH_DOCS_DIR:-} && -r $ORCH_DOCS_DIR/02-trz.md ]]; then
	echo "$KIND: reading the specification $ORCH_DOCS_DIR/02-trz.md"
fi
example_delay
example_fail

title=$(task_title)
file="work/$ORCH_WORK_ITEM.md"
mkdir -p -- "$(dirname -- "$file")"

if [[ -e $file ]]; then
	echo "$KIND: $file exists: addressing the review"
	if grep -qxF 'Tests: added' -- "$file"; then
		echo "$KIND: $file already says 'Tests: added'"
	else
		# Keep the file newline-terminated before appending.
		if [[ -n $(tail -c 1 -- "$file") ]]; then
			echo >>"$file"
		fi
		echo 'Tests: added' >>"$file"
		echo "$KIND: added 'Tests: added' to $file"
	fi
	message="feat($ORCH_WORK_ITEM): address review comments"
else
	printf '# %s: %s\n\nImplemented by the example developer.\n' "$ORCH_WORK_ITEM" "$title" >"$file"
	echo "$KIND: wrote $file"
	message="feat($ORCH_WORK_ITEM): implement $title"
fi

commit_paths "$message" "$file"
echo "$KIND: done"

#!/usr/bin/env bash
# Example analyst agent for orch: deterministic, no AI. It behaves like a coding
# agent run by the `command` adapter: started in the task's git worktree with the
# rendered prompt in $ORCH_PROMPT_FILE, it writes the four analysis artefacts
# under $ORCH_DOCS_DIR and commits them on the task branch.
#
# Reads: ORCH_WORK_ITEM, ORCH_DOCS_DIR (required); ORCH_TASK_ID, ORCH_BRANCH,
# ORCH_STAGE, ORCH_RUN_ID, ORCH_PROMPT_FILE (optional);
# ORCH_EXAMPLE_DELAY (seconds to sleep before finishing, default 0);
# ORCH_EXAMPLE_FAIL (agent kinds, comma/space separated, that fail with exit 1).
set -euo pipefail

KIND=analyst

# Traps, die, example_delay and the failure switch (shared by the examples).
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

: "${ORCH_WORK_ITEM:?ORCH_WORK_ITEM is not set}"
: "${ORCH_DOCS_DIR:?ORCH_DOCS_DIR is not set}"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "the working directory $(pwd) is not a git worktree"

echo "$KIND: reading the work item $ORCH_WORK_ITEM (task ${ORCH_TASK_ID:-?}, run ${ORCH_RUN_ID:-?})"
example_delay
example_fail

heading=$(prompt_heading)
title=$(task_title)
yaml_title=${title//\'/\'\'}
yaml_id=${ORCH_WORK_ITEM//\'/\'\'}

# The person's rejection comment, if the prompt carries one: the first fenced
# block after the "previous analysis was REJECTED" heading.
rejection=
if [[ -n ${ORCH_PROMPT_FILE:-} && -r $ORCH_PROMPT_FILE ]]; then
	rejection=$(awk '
		!seen && /previous analysis was REJECTED/ { seen = 1; next }
		seen && fence == "" && match($0, /^[[:space:]]*(```+|~~~+)/) {
			fence = substr($0, RSTART, RLENGTH); gsub(/[[:space:]]/, "", fence); next
		}
		fence != "" {
			line = $0; gsub(/[[:space:]]/, "", line)
			if (line == fence) exit
			print
		}
	' "$ORCH_PROMPT_FILE")
fi

mkdir -p -- "$ORCH_DOCS_DIR"

{
	echo "# Analysis of $ORCH_WORK_ITEM: $title"
	echo
	if [[ -n $rejection ]]; then
		echo "## Changes after review"
		echo
		echo "The previous analysis was rejected with this comment:"
		echo
		printf '%s\n' "$rejection" | sed 's/^/> /'
		echo
		echo "1. The comment was read and this analysis was rewritten to address it."
		echo
	fi
	echo "## Problem"
	echo
	if [[ -n $heading ]]; then
		echo "The prompt's title:"
		echo
		echo "> $heading"
		echo
	else
		echo "No prompt heading was given; the work item id is the only reference."
	fi
	echo "The work item $ORCH_WORK_ITEM needs a documented change on branch \`${ORCH_BRANCH:-?}\`."
	echo
	echo "## Current behaviour"
	echo
	echo "The file \`work/$ORCH_WORK_ITEM.md\` does not describe this work item yet."
	echo
	echo "## Assumptions"
	echo
	echo "- The example developer records the implementation in \`work/$ORCH_WORK_ITEM.md\`."
	echo "- The example reviewer requires a \`Tests: added\` line in that file."
	echo
	echo "## Open questions"
	echo
	echo "None."
	if [[ -n ${ORCH_PROMPT_FILE:-} && -r $ORCH_PROMPT_FILE ]]; then
		echo
		echo "## Prompt excerpt"
		echo
		echo "The last 20 lines of the prompt this analysis was written from:"
		echo
		echo "~~~~~~~~text"
		tail -n 20 -- "$ORCH_PROMPT_FILE"
		echo "~~~~~~~~"
	fi
} >"$ORCH_DOCS_DIR/01-analysis.md"
echo "$KIND: wrote $ORCH_DOCS_DIR/01-analysis.md"

cat >"$ORCH_DOCS_DIR/02-trz.md" <<SPEC
# Specification of $ORCH_WORK_ITEM: $title

## Requirements

- **REQ-1**: The file \`work/$ORCH_WORK_ITEM.md\` exists on the branch and starts
  with the title line of the work item.
  - Acceptance: the first line of the file is \`# $ORCH_WORK_ITEM: $title\`.
- **REQ-2**: The file records that the change is tested.
  - Acceptance: the file contains the line \`Tests: added\`.

## Out of scope

- Any change outside \`work/\` and \`$ORCH_DOCS_DIR/\`.

## Files expected to change

- \`work/$ORCH_WORK_ITEM.md\`
SPEC
echo "$KIND: wrote $ORCH_DOCS_DIR/02-trz.md"

cat >"$ORCH_DOCS_DIR/03-adr.md" <<ADR
# ADR: $ORCH_WORK_ITEM — $title

## Context

The work item asks for a change that must be traceable in the repository.

## Decision

Record the implementation in a single Markdown file, \`work/$ORCH_WORK_ITEM.md\`.

## Alternatives considered

- Changing source code directly: rejected, the example pipeline has no build.
- No record at all: rejected, the reviewer could not check anything.

## Consequences

The reviewer checks one file; a missing \`Tests: added\` line is a defect.
ADR
echo "$KIND: wrote $ORCH_DOCS_DIR/03-adr.md"

cat >"$ORCH_DOCS_DIR/04-test-plan.yaml" <<PLAN
work_item: '$yaml_id'
title: '$yaml_title'
cases:
  - id: TC-1
    requirement: REQ-1
    level: manual
    title: the work file exists with its title
    given: the task branch after development
    when: 'the reviewer reads work/$yaml_id.md'
    then: the file exists and its first line is the title
  - id: TC-2
    requirement: REQ-2
    level: manual
    title: the change is tested
    given: the task branch after development
    when: 'the reviewer reads work/$yaml_id.md'
    then: 'the file contains the line "Tests: added"'
PLAN
echo "$KIND: wrote $ORCH_DOCS_DIR/04-test-plan.yaml"

commit_paths "docs($ORCH_WORK_ITEM): analysis" "$ORCH_DOCS_DIR"
echo "$KIND: done — 2 requirements, 2 test cases, no open questions"

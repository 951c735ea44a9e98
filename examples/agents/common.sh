# Helpers shared by the example agents (analyst.sh, developer.sh, reviewer.sh),
# sourced by each after it sets KIND: signal traps that end a pending sleep,
# die, and the ORCH_EXAMPLE_DELAY / ORCH_EXAMPLE_FAIL switches.
# shellcheck shell=bash
sleep_pid=
on_signal() {
	local code=$1
	trap - INT TERM HUP
	if [[ -n $sleep_pid ]]; then
		kill -TERM "$sleep_pid" 2>/dev/null || true
		wait "$sleep_pid" 2>/dev/null || true
	fi
	echo "$KIND: stopped by a signal" 2>/dev/null || true
	exit "$code"
}
trap 'on_signal 129' HUP
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

die() {
	echo "$KIND: error: $*" >&2
	echo "$KIND: error: $*" 2>/dev/null || true
	exit 1
}

# Sleeps $ORCH_EXAMPLE_DELAY seconds in a way a signal ends at once.
example_delay() {
	local d=${ORCH_EXAMPLE_DELAY:-0}
	[[ -z $d ]] && d=0
	[[ $d =~ ^[0-9]+([.][0-9]+)?$ ]] || die "ORCH_EXAMPLE_DELAY must be a number of seconds, got '$d'"
	[[ $d =~ ^0+([.]0+)?$ ]] && return 0
	echo "$KIND: working for ${d}s (ORCH_EXAMPLE_DELAY)"
	sleep "$d" &
	sleep_pid=$!
	wait "$sleep_pid"
	sleep_pid=
}

# Exits 1 when $ORCH_EXAMPLE_FAIL names this kind of agent.
example_fail() {
	local k kinds=()
	IFS=', ' read -r -a kinds <<<"${ORCH_EXAMPLE_FAIL:-}"
	for k in "${kinds[@]}"; do
		if [[ $k == "$KIND" ]]; then
			die "failing on purpose (ORCH_EXAMPLE_FAIL=$ORCH_EXAMPLE_FAIL)"
		fi
	done
}

# Commits the given paths with a fixed identity; no commit when nothing changed.
commit_paths() {
	local message=$1
	shift
	# Sandboxed ([sandbox] mode = "namespaces") the repository's history is
	# read-only: orch commits what the agent leaves when it hands over.
	if ! git add -A -- "$@" 2>/dev/null; then
		echo "$KIND: the repository is read-only here (sandboxed); orch commits the change"
		return 0
	fi
	if git diff --cached --quiet -- "$@"; then
		echo "$KIND: nothing changed, no commit"
		return 0
	fi
	git -c user.name=orch-example -c user.email=orch-example@localhost \
		-c commit.gpgsign=false commit --quiet -m "$message" -- "$@"
	echo "$KIND: committed $(git rev-parse --short HEAD) on ${ORCH_BRANCH:-$(git rev-parse --abbrev-ref HEAD)}: $message"
}

# The prompt's first Markdown heading without '# ', or nothing.
prompt_heading() {
	local f=${ORCH_PROMPT_FILE:-}
	[[ -n $f && -r $f ]] || return 0
	sed -n 's/^#[[:space:]]\{1,\}//p' "$f" | head -n 1 | tr -d '\r'
}

# The task title: the heading without its "<Verb> <work item>: " prefix.
task_title() {
	local h
	h=$(prompt_heading)
	[[ -n $h ]] || { echo "$ORCH_WORK_ITEM"; return 0; }
	local prefix
	for prefix in "Analyse $ORCH_WORK_ITEM: " "Implement $ORCH_WORK_ITEM: " "Review $ORCH_WORK_ITEM: "; do
		if [[ $h == "$prefix"* ]]; then
			echo "${h#"$prefix"}"
			return 0
		fi
	done
	echo "$h"
}

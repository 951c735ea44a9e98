#!/usr/bin/env bash
# Installs the real agent CLIs (Claude Code and Codex CLI) at pinned versions
# into a project-local npm prefix, for the end-to-end tests in
# crates/agent/tests/real_cli.rs. Nothing global changes.
#
#   scripts/install-agent-clis.sh [DIR]     (default: target/agent-clis)
#
# Idempotent: when DIR already holds the pinned versions with working binaries,
# nothing is downloaded. Needs only node and npm (e.g. the distro's), works as
# root. npm's output goes to stderr; stdout gets exactly two lines, in a form
# a shell can source:
#
#   ORCH_TEST_CLAUDE_BIN=/abs/path/to/claude.exe
#   ORCH_TEST_CODEX_BIN=/abs/path/to/codex.js
set -euo pipefail

CLAUDE_PKG=@anthropic-ai/claude-code
CLAUDE_VERSION=2.1.331
CODEX_PKG=@openai/codex
CODEX_VERSION=0.169.0

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/target/agent-clis}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "install-agent-clis: $tool not found on PATH" >&2; exit 1; }
done

modules="$dir/node_modules"
claude_pkg_dir="$modules/$CLAUDE_PKG"
claude_bin="$claude_pkg_dir/bin/claude.exe"
codex_bin="$modules/$CODEX_PKG/bin/codex.js"

# The version in an installed package's package.json (empty if absent).
installed_version() {
  local manifest="$modules/$1/package.json"
  [ -f "$manifest" ] || return 0
  node -e 'process.stdout.write(String(require(process.argv[1]).version || ""))' "$manifest"
}

# claude-code ships a shell placeholder as bin/claude.exe; its postinstall
# (install.cjs) puts the native binary from the platform package in its place.
is_elf() {
  [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]
}

# codex.js picks a native binary from an optional platform package; ask it
# for its version, which fails when that package is missing.
codex_works() {
  [ -f "$codex_bin" ] && [ "$(node "$codex_bin" --version 2>/dev/null)" = "codex-cli $CODEX_VERSION" ]
}

ready() {
  [ "$(installed_version "$CLAUDE_PKG")" = "$CLAUDE_VERSION" ] &&
    [ "$(installed_version "$CODEX_PKG")" = "$CODEX_VERSION" ] &&
    is_elf "$claude_bin" && codex_works
}

if ready; then
  echo "install-agent-clis: $CLAUDE_PKG@$CLAUDE_VERSION and $CODEX_PKG@$CODEX_VERSION already in $dir" >&2
else
  echo "install-agent-clis: installing $CLAUDE_PKG@$CLAUDE_VERSION and $CODEX_PKG@$CODEX_VERSION into $dir" >&2
  # A manifest of our own makes the prefix a project, so npm installs there and
  # not in an enclosing one.
  cat >"$dir/package.json" <<EOF
{
  "name": "orch-agent-clis",
  "private": true,
  "description": "The agent CLIs for orch's end-to-end tests (scripts/install-agent-clis.sh)",
  "dependencies": {
    "$CLAUDE_PKG": "$CLAUDE_VERSION",
    "$CODEX_PKG": "$CODEX_VERSION"
  }
}
EOF
  # Optional dependencies carry the native binaries. claude-code declares
  # node >= 22 although it runs no node once installed; a distro's older node
  # is fine, so a strict engine check must not stop the install.
  (cd "$dir" && npm install --no-package-lock --no-audit --no-fund --include=optional \
    --engine-strict=false >&2)

  # npm may skip install scripts (ignore-scripts, allowScripts policies): then
  # claude.exe is still the placeholder. Run claude-code's postinstall by hand.
  if ! is_elf "$claude_bin"; then
    echo "install-agent-clis: $CLAUDE_PKG's postinstall did not run; running install.cjs" >&2
    (cd "$claude_pkg_dir" && node install.cjs >&2)
  fi
  if ! ready; then
    echo "install-agent-clis: the install in $dir is incomplete:" >&2
    echo "  $CLAUDE_PKG $(installed_version "$CLAUDE_PKG") (want $CLAUDE_VERSION), native binary: $(is_elf "$claude_bin" && echo yes || echo no)" >&2
    echo "  $CODEX_PKG $(installed_version "$CODEX_PKG") (want $CODEX_VERSION), runs: $(codex_works && echo yes || echo no)" >&2
    exit 1
  fi
fi

printf 'ORCH_TEST_CLAUDE_BIN=%q\n' "$claude_bin"
printf 'ORCH_TEST_CODEX_BIN=%q\n' "$codex_bin"

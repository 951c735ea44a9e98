#!/usr/bin/env bash
# Try orch on the embedded defaults (SQLite under .orch/, builtin tracker, local
# forge) in a fresh folder: build, init, migrate, add two tasks (the second
# waiting for the first), and show the board. Usage: scripts/demo.sh [DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/target/demo}"

echo "==> building orch"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p orch-cli
orch="$root/target/release/orch"

rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
echo "==> orch init in $dir"
"$orch" init
"$orch" db migrate
echo "==> adding tasks"
"$orch" task add --repo demo --title "Add a greeting to the README" --id DEMO-1
"$orch" task add --repo demo --title "Translate the greeting" --id DEMO-2 --depends-on 1
echo "==> orch task list"
"$orch" task list
echo "==> orch status"
"$orch" status
echo
echo "Done. Try: cd $dir && $orch task show DEMO-2   (or --json for scripts)"

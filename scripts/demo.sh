#!/usr/bin/env bash
# A tour of berth: create a sandbox, run commands in it, pause and resume it,
# stop and start it, remove it. Run through `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
berth=bin/berth
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say berth create --name demo-$$
id=$($berth create --name "demo-$$")
trap '$berth rm -f "$id" >/dev/null 2>&1 || true' EXIT
echo "$id"

say berth exec "$id" -- sh -c 'id; pwd; uname -sr'
$berth exec "$id" -- sh -c 'id; pwd; uname -sr'

say berth exec "$id" -- sh -c 'for i in 1 2 3; do echo "tick $i"; sleep 0.3; done'
$berth exec "$id" -- sh -c 'for i in 1 2 3; do echo "tick $i"; sleep 0.3; done'

say berth exec --timeout 1s "$id" -- sleep 10
set +e; $berth exec --timeout 1s "$id" -- sleep 10; echo "exit code $?"; set -e

say berth exec --session main "$id" -- 'cd /tmp && export GREETING=hi'
$berth exec --session main "$id" -- 'cd /tmp && export GREETING=hi'
say berth exec --session main "$id" -- 'echo "$GREETING from $(pwd)"'
$berth exec --session main "$id" -- 'echo "$GREETING from $(pwd)"'

say berth cp README.md "$id":/workspace/README.md
$berth cp README.md "$id":/workspace/README.md
say berth exec "$id" -- sh -c 'ls -l /workspace && head -3 /workspace/README.md'
$berth exec "$id" -- sh -c 'ls -l /workspace && head -3 /workspace/README.md'

say berth pause "$id"; $berth pause "$id"
say berth ls; $berth ls -a
say berth resume "$id"; $berth resume "$id"
say berth exec "$id" -- echo "back after pause"
$berth exec "$id" -- echo "back after pause"

say berth stop "$id"; $berth stop "$id"
say berth inspect "$id"; $berth inspect "$id"
say berth resume "$id"; $berth resume "$id"
say berth exec "$id" -- echo "back after stop"
$berth exec "$id" -- echo "back after stop"

say berth logs --tail 3 "$id"; $berth logs --tail 3 "$id"
say berth rm "$id"; $berth rm "$id"
trap - EXIT
say berth ls -a; $berth ls -a

#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client against the echo room of the
# release binary and compares the result with tests/autobahn/expected.json.
#
#   scripts/autobahn.sh [full|quick]     (quick skips 9.*, 12.*, 13.*)
#
# Needs ../shared/tools/autobahn (beside this repository) and a built
# target/release/switchboard. The report goes to target/test-reports/autobahn/.
set -euo pipefail

cd "$(dirname "$0")/.."
MODE=${1:-full}
TOOLS="../shared/tools/autobahn"
REPORT="target/test-reports/autobahn"
BIN="target/release/switchboard"

[ -x "$BIN" ] || { echo "autobahn: build the release binary first (cargo build --release -p switchboard)"; exit 2; }
[ -x "$TOOLS/run.sh" ] || { echo "autobahn: $TOOLS not found (shared/ must sit beside this repository)"; exit 2; }
"$TOOLS/setup.sh"

rm -rf "$REPORT"
mkdir -p "$REPORT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
trap stop_server EXIT
start_server "$REPORT/server.out" || exit 2

args=(-o "$REPORT" -a switchboard -t 2400)
[ "$MODE" = quick ] && args+=(-q)
status=0
"$TOOLS/run.sh" "${args[@]}" "ws://$ADDR/rooms/echo/autobahn" || status=$?
if [ "$status" -eq 2 ]; then
  echo "autobahn: the run did not complete"
  exit 2
fi
python3 tests/autobahn/check.py "$REPORT" ${MODE:+--mode "$MODE"}

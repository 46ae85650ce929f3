#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client against the echo room of the
# release binary and compares the result with tests/autobahn/expected.json.
#
#   scripts/autobahn.sh [full|quick]     (quick skips 9.*, 12.*, 13.*)
#
# Needs a built target/release/switchboard; scripts/autobahn-setup.sh builds
# the suite's venv (target/autobahn-venv) first when it is missing or stale,
# and tests/autobahn/run.py runs the client. The report goes to
# target/test-reports/autobahn/ (index.html per case, index.json, wstest.log,
# server.out / server.out.log).
# Exit status: 0 as expected, 1 a regression against expected.json,
# 2 could not run or the run is incomplete.
set -euo pipefail

cd "$(dirname "$0")/.."
MODE=${1:-full}
REPORT="target/test-reports/autobahn"
BIN="target/release/switchboard"
VENV=${AUTOBAHN_VENV:-target/autobahn-venv}
# Hard limit for the fuzzing client; a full run against our server takes ~4-10 min.
LIMIT_SECONDS=1800

case "$MODE" in
  full|quick) ;;
  *) echo "autobahn: unknown mode '$MODE' (full|quick)"; exit 2 ;;
esac
[ -x "$BIN" ] || { echo "autobahn: build the release binary first (cargo build --release -p switchboard)"; exit 2; }
AUTOBAHN_VENV="$VENV" scripts/autobahn-setup.sh || { echo "autobahn: scripts/autobahn-setup.sh failed"; exit 2; }

rm -rf "$REPORT"
mkdir -p "$REPORT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
RUN_PID=""
# If this script is stopped, run.py is stopped by its PID; on SIGTERM it
# stops the fuzzing client it started, by that one's PID, before it exits.
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
    echo "autobahn: stopping the fuzzing run (pid $RUN_PID)"
    kill -TERM "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" 2>/dev/null || true
  fi
  stop_server
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_server "$REPORT/server.out" || exit 2
echo "autobahn: server pid $SERVER_PID on $ADDR, $MODE run"

args=(--venv "$VENV" --out "$REPORT" --agent switchboard --limit "$LIMIT_SECONDS")
[ "$MODE" = quick ] && args+=(--quick)
status=0
python3 tests/autobahn/run.py "${args[@]}" "ws://$ADDR/rooms/echo/autobahn" &
RUN_PID=$!
wait "$RUN_PID" || status=$?
RUN_PID=""
server_died=0
if ! server_alive; then
  echo "autobahn: FAILED: the server exited during the run; last lines of its stderr:"
  tail -n 30 "$REPORT/server.out.log"
  server_died=1
fi
stop_server
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
  echo "autobahn: the run did not complete, run.py exit status $status (report: $REPORT/)"
  exit 2
fi
check=0
python3 tests/autobahn/check.py "$REPORT" --mode "$MODE" || check=$?
[ "$server_died" -eq 0 ] || exit 1
exit "$check"

#!/usr/bin/env bash
# User-space instructions per churned connection (connect, one echo, the
# closing handshake) of one or more server binaries, measured in the same
# session: each server runs under callgrind while switchboard-loadgen's
# churn scenario (10 loops) runs for a short and a long time; the
# difference of the two runs' instruction totals divided by the difference
# of their completed connections cancels what does not depend on the load
# (start-up, shutdown).
#
#   scripts/callgrind-churn.sh NAME=BINARY [NAME=BINARY ...]
#
# Environment: SHORT (default 2 s), LONG (default 8 s), CONCURRENCY
# (default 10), LOADGEN (default target/release/switchboard-loadgen), KEEP
# (a directory to copy the long run's callgrind dump to, for
# callgrind_annotate). Loopback only. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
SHORT=${SHORT:-2}
LONG=${LONG:-8}
CONCURRENCY=${CONCURRENCY:-10}
LOADGEN=${LOADGEN:-target/release/switchboard-loadgen}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# run NAME BINARY SECONDS: prints "INSTRUCTIONS CONNECTIONS".
run() {
  local name=$1 binary=$2 seconds=$3 pid addr completed total
  start_callgrind "$binary" "$WORK"
  pid=$SERVER_PID addr=$ADDR
  "$LOADGEN" churn --url "ws://$addr/rooms/echo/cg" --concurrency "$CONCURRENCY" --seconds "$seconds" > "$WORK/load" 2>&1 || cat "$WORK/load" >&2
  kill -INT "$pid"
  wait "$pid" || true
  completed=$(awk '$1 == "completed" { gsub(",", "", $2); print $2 }' "$WORK/load")
  [ -n "$completed" ] || { echo "the load generator failed against $binary" >&2; cat "$WORK/load" >&2; exit 1; }
  total=$(awk '/^totals:/ { print $2 }' "$WORK"/cg.*)
  if [ -n "${KEEP:-}" ] && [ "$seconds" = "$LONG" ]; then cp "$WORK"/cg.* "$KEEP/callgrind.churn.$name"; fi
  rm -f "$WORK"/cg.*
  echo "$total $completed"
}

for named in "$@"; do
  name=${named%%=*}
  binary=${named#*=}
  read -r short_ir short_conns < <(run "$name" "$binary" "$SHORT")
  read -r long_ir long_conns < <(run "$name" "$binary" "$LONG")
  awk -v n="$name" -v a="$short_ir" -v b="$long_ir" -v m="$short_conns" -v k="$long_conns" \
    'BEGIN { printf "%-12s %8.0f instructions per churned connection (runs: %d conns / %d Ir, %d conns / %d Ir)\n", n, (b - a) / (k - m), m, a, k, b }'
done

#!/usr/bin/env bash
# User-space instructions per WebSocket handshake of one or more server
# binaries: each server runs under callgrind; once it listens its counters
# are zeroed, switchboard-loadgen's idle scenario opens N connections (64
# at a time, spread over 100 echo rooms, as the matrix's idle row does) and
# holds them, and the counters are dumped while they are held. The total ÷
# N is what accepting, upgrading and joining a room costs per connection
# (the server's start-up and the connections' end are outside the window).
#
#   scripts/callgrind-handshake.sh NAME=BINARY [NAME=BINARY ...]
#
# Environment: CONNECTIONS (default 2000), LOADGEN (default
# target/release/switchboard-loadgen), KEEP (a directory to copy the
# callgrind dumps to, for callgrind_annotate). Loopback only. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
CONNECTIONS=${CONNECTIONS:-2000}
LOADGEN=${LOADGEN:-target/release/switchboard-loadgen}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# run NAME BINARY: prints "INSTRUCTIONS".
run() {
  local name=$1 binary=$2 pid addr load total
  start_callgrind "$binary" "$WORK"
  pid=$SERVER_PID addr=$ADDR
  callgrind_control -z "$pid" > /dev/null 2>&1
  # Held long enough for the dump below; the run ends when the wait does.
  "$LOADGEN" idle --url "ws://$addr/rooms/echo/cg" --connections "$CONNECTIONS" --rooms 100 --concurrency 64 --hibernate-wait 20 > "$WORK/load" 2> "$WORK/load.err" &
  load=$!
  for _ in $(seq 1 1200); do
    grep -q "holding them" "$WORK/load.err" && break
    kill -0 "$load" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "holding them" "$WORK/load.err" || { echo "the load generator failed against $binary:" >&2; cat "$WORK/load.err" >&2; kill "$pid" "$load" 2>/dev/null; exit 1; }
  callgrind_control -d "$pid" > /dev/null 2>&1
  kill "$load" 2>/dev/null || true
  wait "$load" 2>/dev/null || true
  kill -INT "$pid"
  wait "$pid" || true
  # The dump taken while the connections were held is the one with a part
  # number (cg.PID.1); the final one at exit has none.
  total=$(awk '/^totals:/ { print $2 }' "$WORK"/cg.*.1)
  [ -n "${KEEP:-}" ] && cp "$WORK"/cg.*.1 "$KEEP/callgrind.handshake.$name"
  rm -f "$WORK"/cg.*
  echo "$total"
}

for named in "$@"; do
  name=${named%%=*}
  binary=${named#*=}
  total=$(run "$name" "$binary")
  awk -v n="$name" -v t="$total" -v c="$CONNECTIONS" \
    'BEGIN { printf "%-12s %8.0f instructions per handshake (%d connections, %d Ir)\n", n, t / c, c, t }'
done

#!/usr/bin/env bash
# User-space instructions per echoed (or, with BROADCAST=1, delivered)
# message of one or more server binaries,
# measured in the same session: each server runs under callgrind while
# switchboard-loadgen drives echo (100 connections, 16 in flight, 20 B) for a
# short and a long time; the difference of the two runs' instruction totals
# divided by the difference of their messages cancels what does not depend
# on the load (start-up, handshakes, shutdown).
#
#   scripts/callgrind-echo.sh NAME=BINARY [NAME=BINARY ...]
#
# Environment: SHORT (default 3 s), LONG (default 9 s), LOADGEN (default
# target/release/switchboard-loadgen), DEFLATE=1 (the clients make a
# browser's permessage-deflate offer; the server's policy is its default,
# shared, and the messages are JSON of about SIZE bytes, one record of
# some 130 at least), SIZE (message bytes, default 20): with DEFLATE=1,
# replies below the 1,024-byte threshold go back plain, above it compressed.
# IN_FLIGHT (default 16): messages each connection keeps in flight; 1
# gives a read per message, as the matrix's echo 20 B ×1 row.
# BINARY=1: binary messages (as the matrix's 16 KiB echo sends) instead of
# text.
# BROADCAST=1: instead of echo, the matrix's broadcast to 1,000 rows
# (1,000 subscribers of one room, IN_FLIGHT messages of 32 B in flight:
# 16 by default, 1 for the ×1 row); the figure is then per delivered
# message.
# KEEP: a directory to copy the long run's callgrind dump to, for
# callgrind_annotate. Loopback only. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
SHORT=${SHORT:-3}
LONG=${LONG:-9}
LOADGEN=${LOADGEN:-target/release/switchboard-loadgen}
SIZE=${SIZE:-20}
IN_FLIGHT=${IN_FLIGHT:-16}
EXTRA=()
[ "${DEFLATE:-0}" = 1 ] && EXTRA+=(--deflate --json)
[ "${BINARY:-0}" = 1 ] && EXTRA+=(--binary)
WHAT=echoed TAG=echo
[ "${BROADCAST:-0}" = 1 ] && WHAT=delivered TAG=broadcast
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# run BINARY SECONDS [KEEP_AS]: prints "INSTRUCTIONS MESSAGES".
run() {
  local binary=$1 seconds=$2 keep_as=${3:-} pid addr rate duration total
  start_callgrind "$binary" "$WORK"
  pid=$SERVER_PID addr=$ADDR
  # The verdict needs --server-pid; only the counts matter here.
  if [ "${BROADCAST:-0}" = 1 ]; then
    "$LOADGEN" broadcast --url "ws://$addr/rooms/broadcast/cg" --subscribers 1000 --in-flight "$IN_FLIGHT" --size 32 --seconds "$seconds" > "$WORK/load" 2>&1 || cat "$WORK/load" >&2
  else
    "$LOADGEN" echo --url "ws://$addr/rooms/echo/cg" --connections 100 --in-flight "$IN_FLIGHT" --size "$SIZE" "${EXTRA[@]}" --seconds "$seconds" > "$WORK/load" 2>&1 || cat "$WORK/load" >&2
  fi
  kill -INT "$pid"
  wait "$pid" || true
  rate=$(awk '$1 == "messages/s" { print $2 }' "$WORK/load")
  [ -n "$rate" ] || { echo "the load generator failed against $binary" >&2; exit 1; }
  duration=$(awk '$1 == "duration" { print $2 }' "$WORK/load")
  total=$(awk '/^totals:/ { print $2 }' "$WORK"/cg.*)
  if [ -n "${KEEP:-}" ] && [ -n "$keep_as" ]; then cp "$WORK"/cg.* "$KEEP/callgrind.$TAG.$keep_as"; fi
  rm -f "$WORK"/cg.*
  echo "$total $(awk -v r="$rate" -v d="$duration" 'BEGIN { printf "%.0f", r * d }')"
}

for named in "$@"; do
  name=${named%%=*}
  binary=${named#*=}
  read -r short_ir short_msgs < <(run "$binary" "$SHORT")
  read -r long_ir long_msgs < <(run "$binary" "$LONG" "$name")
  awk -v n="$name" -v w="$WHAT" -v a="$short_ir" -v b="$long_ir" -v m="$short_msgs" -v k="$long_msgs" \
    'BEGIN { printf "%-12s %8.1f instructions per %s message (runs: %d msgs / %d Ir, %d msgs / %d Ir)\n", n, (b - a) / (k - m), w, m, a, k, b }'
done

#!/usr/bin/env bash
# Server memory per idle connection once connections park, in the steady
# state where the memory that parking frees is used again.
#
# A first wave of connections opens and parks; then a second wave opens
# on the same server and parks too. The second wave's RSS growth per
# connection, read after it parked, is what one more idle connection costs
# a server whose memory is recycled (the first wave's figure also carries
# the allocator's first growth, which it keeps). The same two waves run
# with parking off, for comparison. Each wave is one `switchboard-loadgen
# idle` run; the heartbeat is set long enough not to fall in the window.
#
# usage: scripts/idle-parked.sh [BIN] [CONNECTIONS_PER_WAVE]
#   BIN defaults to target/release/switchboard (build it first); the load
#   generator is target/release/switchboard-loadgen. Both waves need
#   2 x CONNECTIONS_PER_WAVE (default 9000) descriptors in the server:
#   run under `ulimit -n 20000` or more.
# Environment: PARK_AFTER (default 5s), HOLD (seconds each wave is held
# before the reading, default 18), CLIENT (extra `switchboard-loadgen
# idle` options for both waves, e.g. CLIENT="--deflate --echo-once 200"
# for browsers' permessage-deflate offer and one message each).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

BIN=${1:-target/release/switchboard}
PER_WAVE=${2:-9000}
LOADGEN=target/release/switchboard-loadgen
PARK_AFTER=${PARK_AFTER:-5s}
# Long enough for a wave to open and park (between one and two intervals).
HOLD=${HOLD:-18}
read -ra CLIENT_ARGS <<< "${CLIENT:-}"

[ -x "$BIN" ] || { echo "no server binary at $BIN (cargo build --release)" >&2; exit 2; }
[ -x "$LOADGEN" ] || { echo "no load generator at $LOADGEN (cargo build --release)" >&2; exit 2; }
if [ "$(ulimit -n)" -lt $((2 * PER_WAVE + 100)) ]; then
    echo "ulimit -n is $(ulimit -n); two waves of $PER_WAVE need $((2 * PER_WAVE + 100))" >&2
    exit 2
fi

# Anonymous resident memory (heap and stacks), as the load generator reads
# it: VmRSS would also count code pages first touched during a wave.
rss_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }

metric() { curl -s "http://$ADDR/metrics" | awk -v name="$1" '$1 == name {print $2}'; }

# Waits (at most 120 s) until the server has $1 connections open.
until_open() {
    for _ in $(seq 600); do
        [ "$(metric switchboard_connections_open)" = "$1" ] && return 0
        sleep 0.2
    done
    echo "the server never had $1 connections open" >&2
    return 1
}

one_run() {
    local park_after=$1 log_dir
    log_dir=$(mktemp -d)
    SWITCHBOARD_BIN=$BIN start_server "$log_dir/server.out" --memory --park-after "$park_after" --ping-interval 300s
    local server=$SERVER_PID
    local base after_a after_b parked
    base=$(rss_kib "$server")
    # Each wave holds its connections past the last reading.
    timeout $((3 * HOLD + 200)) "$LOADGEN" idle --url "ws://$ADDR/rooms/echo/wave-a" --server-pid "$server" \
        --connections "$PER_WAVE" --rooms 100 --hibernate-wait $((2 * HOLD + 60)) "${CLIENT_ARGS[@]}" > "$log_dir/a.log" 2>&1 &
    local wave_a=$!
    until_open "$PER_WAVE"
    sleep "$HOLD"
    after_a=$(rss_kib "$server")
    timeout $((HOLD + 200)) "$LOADGEN" idle --url "ws://$ADDR/rooms/echo/wave-b" --server-pid "$server" \
        --connections "$PER_WAVE" --rooms 100 --hibernate-wait $((HOLD + 30)) "${CLIENT_ARGS[@]}" > "$log_dir/b.log" 2>&1 &
    local wave_b=$!
    until_open $((2 * PER_WAVE))
    sleep "$HOLD"
    after_b=$(rss_kib "$server")
    parked=$(metric switchboard_connections_parked)
    kill "$wave_a" "$wave_b" 2>/dev/null || true
    wait "$wave_a" "$wave_b" 2>/dev/null || true
    stop_server
    printf '%-12s first wave %5d B/conn   second wave %5d B/conn   (parked at the end: %s of %d)\n' \
        "$park_after" $(((after_a - base) * 1024 / PER_WAVE)) $(((after_b - after_a) * 1024 / PER_WAVE)) "${parked:-?}" $((2 * PER_WAVE))
    rm -rf "$log_dir"
}

echo "park_after   RSS growth per idle connection, read $HOLD s after each wave opened ($PER_WAVE connections per wave)"
one_run "$PARK_AFTER"
one_run 0s

#!/usr/bin/env bash
# Keeps the benchmark tools working: a one-second run of each load scenario
# (for idle, 200 connections over 4 rooms; for chat, 2 rooms of 10 users;
# for call, 2 rooms of 4 peers; for clicks, 10 dashboards of one account
# and probe clicks, on a second server with a data directory)
# against the release binary on loopback; any scenario's non-zero exit
# status fails the script (set -e).
# The figures it prints are not benchmarks (too short, machine shared with
# the rest of the test suite).
set -euo pipefail

cd "$(dirname "$0")/.."
LOADGEN=target/release/switchboard-loadgen
[ -x "$LOADGEN" ] || cargo build --release --locked -p switchboard-loadgen
OUT=$(mktemp)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
DATA=$(mktemp -d)
trap 'stop_server; rm -f "$OUT" "$OUT.log"; rm -rf "$DATA"' EXIT
start_server "$OUT"
"$LOADGEN" echo --url "ws://$ADDR/rooms/echo/smoke" --connections 10 --seconds 1 --server-pid "$SERVER_PID"
"$LOADGEN" broadcast --url "ws://$ADDR/rooms/broadcast/smoke" --subscribers 50 --seconds 1 --server-pid "$SERVER_PID"
"$LOADGEN" idle --url "ws://$ADDR/rooms/echo/smoke-idle" --connections 200 --rooms 4 --server-pid "$SERVER_PID"
"$LOADGEN" churn --url "ws://$ADDR/rooms/echo/smoke-churn" --concurrency 10 --seconds 1 --server-pid "$SERVER_PID"
"$LOADGEN" chat --url "ws://$ADDR/rooms/chat/smoke" --rooms 2 --users 10 --seconds 1 --server-pid "$SERVER_PID"
"$LOADGEN" call --url "ws://$ADDR/rooms/call/smoke" --rooms 2 --peers 4 --seconds 1 --server-pid "$SERVER_PID"
# Clicks need an account, a link and a dashboard token: a data directory.
stop_server
KEY=$(target/release/switchboard accounts add smoke --data-dir "$DATA")
start_server "$OUT" --data-dir "$DATA"
curl -sf -X POST "http://$ADDR/api/links" -H "Authorization: Bearer $KEY" -d '{"url":"https://example.com/","slug":"smoke"}' > /dev/null
target/release/switchboard token --account smoke --data-dir "$DATA" > "$DATA/token"
"$LOADGEN" clicks --url "ws://$ADDR/rooms/clicks" --link smoke/smoke --token-file "$DATA/token" --dashboards 10 --probe-rate 20 --seconds 1 --server-pid "$SERVER_PID"

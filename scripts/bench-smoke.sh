#!/usr/bin/env bash
# Keeps the benchmark tools working: a one-second run of each load scenario
# against the release binary on loopback. The figures it prints are not
# benchmarks (too short, machine shared with the rest of the test suite).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=target/release/switchboard
LOADGEN=target/release/switchboard-loadgen
[ -x "$LOADGEN" ] || cargo build --release --locked -p switchboard-loadgen
OUT=$(mktemp)
"$BIN" serve --listen 127.0.0.1:0 --memory > "$OUT" 2>/dev/null &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; rm -f "$OUT"' EXIT
ADDR=""
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's#^switchboard listening on http://##p' "$OUT" | head -n1)
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "bench-smoke: server did not start"; exit 1; }
"$LOADGEN" echo --url "ws://$ADDR/rooms/echo/smoke" --connections 10 --seconds 1 --server-pid "$SERVER_PID"
"$LOADGEN" broadcast --url "ws://$ADDR/rooms/broadcast/smoke" --subscribers 50 --seconds 1 --server-pid "$SERVER_PID"

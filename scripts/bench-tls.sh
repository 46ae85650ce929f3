#!/usr/bin/env bash
# TLS against plain in one run (docs/benchmarks.md, "TLS against plain"):
# one release server with both listeners and a P-256 certificate from the
# tls_test_certs example; the load generator against the plain and the TLS
# listener in turn, ROUNDS times: echo (100 connections, 20 B, 16 in
# flight), broadcast to 1,000 subscribers, churn (a full handshake per
# connection: handshakes/s). Then idle memory per connection: a fresh
# server per scheme, 10,000 idle connections over 100 rooms, rooms
# hibernated. Prints the load generator's reports; server CPU per unit is
# the figure to compare. Loopback only.
#
#   scripts/bench-tls.sh [ROUNDS] [SECONDS]
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
SECS=${2:-5}
BIN=target/release/switchboard
LOADGEN=target/release/switchboard-loadgen
CERTS=target/release/examples/tls_test_certs
if [ ! -x "$BIN" ] || [ ! -x "$LOADGEN" ] || [ ! -x "$CERTS" ]; then
  cargo build --release --locked -p switchboard -p switchboard-loadgen --bins --example tls_test_certs
fi
ulimit -n 20000

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$CERTS" "$WORK" >/dev/null

# Starts a server with both listeners (extra flags in "$@"); sets
# SERVER_PID, PLAIN and TLS (ports).
start_server() {
  "$BIN" serve --memory --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 \
    --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" "$@" >"$WORK/out" 2>"$WORK/err" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    [ "$(grep -c listening "$WORK/out" 2>/dev/null || true)" -ge 2 ] && break
    sleep 0.1
  done
  PLAIN=$(sed -n 's#^switchboard listening on http://127.0.0.1:##p' "$WORK/out")
  TLS=$(sed -n 's#^switchboard listening on https://127.0.0.1:##p' "$WORK/out")
  [ -n "$PLAIN" ] && [ -n "$TLS" ] || { echo "bench-tls: the server did not start" >&2; cat "$WORK/err" >&2; exit 1; }
}

stop_server() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# The URL of a path on the plain ("ws") or the TLS ("wss") listener, and
# the flag the load generator needs for it.
url() { if [ "$1" = ws ]; then echo "ws://127.0.0.1:$PLAIN$2"; else echo "wss://localhost:$TLS$2"; fi; }
trust() { if [ "$1" = wss ]; then echo "--tls-ca $WORK/ca.pem"; fi; }

start_server
for round in $(seq "$ROUNDS"); do
  for scheme in ws wss; do
    echo "=== round $round: $scheme echo"
    # shellcheck disable=SC2046
    "$LOADGEN" echo --url "$(url $scheme /rooms/echo/b)" $(trust $scheme) --connections 100 --in-flight 16 --size 20 --seconds "$SECS" --server-pid "$SERVER_PID"
    echo "=== round $round: $scheme broadcast"
    # shellcheck disable=SC2046
    "$LOADGEN" broadcast --url "$(url $scheme /rooms/broadcast/b$round)" $(trust $scheme) --subscribers 1000 --seconds "$SECS" --server-pid "$SERVER_PID"
    echo "=== round $round: $scheme churn"
    # shellcheck disable=SC2046
    "$LOADGEN" churn --url "$(url $scheme /rooms/echo/churn)" $(trust $scheme) --seconds "$SECS" --server-pid "$SERVER_PID"
  done
done
stop_server

for scheme in ws wss; do
  start_server --hibernate-after 5s
  echo "=== $scheme idle"
  # shellcheck disable=SC2046
  "$LOADGEN" idle --url "$(url $scheme /rooms/echo/idle)" $(trust $scheme) --server-pid "$SERVER_PID" --connections 10000 --rooms 100 --hibernate-wait 8
  stop_server
done

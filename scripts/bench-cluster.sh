#!/usr/bin/env bash
# Cluster mode's broadcast against one node (docs/benchmarks.md, "Cluster
# mode"), in one run: switchboard-loadgen's broadcast scenario (S
# subscribers, one publisher, W broadcasts in flight) against
#   1. a single node (--memory),
#   2. a node of a two-node cluster whose room is owned by the OTHER node
#      (one idle member on the owner claims the room first), so every
#      event and every broadcast crosses NATS: the cross-node path,
# each with nats-server -js on a free loopback port of its own. Reports
# the loadgen's lines for both. Loopback only.
#
#   scripts/bench-cluster.sh [SECONDS] [SUBSCRIBERS]
#
# Needs nats-server (the test command's deps part installs it).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
SECONDS_RUN=${1:-10}
SUBSCRIBERS=${2:-200}
BIN=target/release/switchboard
LOADGEN=target/release/switchboard-loadgen
[ -x "$BIN" ] || cargo build --release --locked -p switchboard
[ -x "$LOADGEN" ] || cargo build --release --locked -p switchboard-loadgen
command -v nats-server >/dev/null || { echo "bench-cluster: nats-server is missing" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_node NAME FLAGS...: starts a node (lib.sh's start_server, storage
# in memory), sets NODE_PID and NODE_ADDR.
start_node() {
  local name=$1
  shift
  start_server "$WORK/$name.out" --memory "$@" || { echo "bench-cluster: node $name did not start" >&2; exit 1; }
  NODE_PID=$SERVER_PID
  NODE_ADDR=$ADDR
  PIDS+=("$NODE_PID")
}

echo "== single node: broadcast, $SUBSCRIBERS subscribers, ${SECONDS_RUN}s"
start_node single
"$LOADGEN" broadcast --url "ws://$NODE_ADDR/rooms/broadcast/bench" --subscribers "$SUBSCRIBERS" --seconds "$SECONDS_RUN" --server-pid "$NODE_PID"
kill "$NODE_PID"

NATS_PORT=$(free_port)
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" > "$WORK/nats.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break
  sleep 0.1
done
CLUSTER=(--cluster "nats://127.0.0.1:$NATS_PORT")
start_node owner "${CLUSTER[@]}" --node owner
OWNER_ADDR=$NODE_ADDR
OWNER_PID=$NODE_PID
start_node edge "${CLUSTER[@]}" --node edge
EDGE_ADDR=$NODE_ADDR
EDGE_PID=$NODE_PID
# One idle member through the owner claims the room `bench-0` for it (the
# idle scenario names its rooms PREFIX-i).
"$LOADGEN" idle --url "ws://$OWNER_ADDR/rooms/broadcast/bench" --connections 1 --rooms 1 --hibernate-wait $((SECONDS_RUN + 20)) > "$WORK/holder.out" 2>&1 &
PIDS+=("$!")
sleep 2
echo "== cluster, across nodes: the room owned by node 'owner' (pid $OWNER_PID), every client on node 'edge' (pid $EDGE_PID)"
"$LOADGEN" broadcast --url "ws://$EDGE_ADDR/rooms/broadcast/bench-0" --subscribers "$SUBSCRIBERS" --seconds "$SECONDS_RUN" --server-pid "$EDGE_PID"
echo "owner's CPU over the run is in its /metrics (process_cpu_seconds_total):"
curl -s "http://$OWNER_ADDR/metrics" | grep -E '^(process_cpu_seconds_total|switchboard_cluster_(effects|events)_forwarded_total) '

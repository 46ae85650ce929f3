#!/usr/bin/env bash
# Runs every load scenario against switchboard and the peer servers in one
# go: server pinned to core 0, load generator to core 1, servers taking turns
# within each round, RUNS rounds. Prints one line per run (TSV) and a median
# (min-max) table for docs/benchmarks.md.
#
#   scripts/bench-matrix.sh [RUNS] [SECONDS]      (defaults 3 and 5)
#
# Loopback only; every run is bounded by SECONDS. Builds the release
# binaries and bench/peers (tokio-tungstenite, fastwebsockets) first.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
OUT=target/bench-matrix
mkdir -p "$OUT"
cargo build --release --locked -p switchboard -p switchboard-loadgen
(cd bench/peers && cargo build --release)
LOADGEN=target/release/switchboard-loadgen

declare -A SERVER=(
  [switchboard]="target/release/switchboard serve --listen 127.0.0.1:0 --memory"
  [tokio-tungstenite]="bench/peers/target/release/peer-tungstenite 127.0.0.1:0"
  [fastwebsockets]="bench/peers/target/release/peer-fastwebsockets 127.0.0.1:0"
)
# scenario name | loadgen arguments | path | servers that support it
SCENARIOS=(
  "echo-20B-w16|echo --connections 100 --in-flight 16 --size 20|/rooms/echo/bench|switchboard tokio-tungstenite fastwebsockets"
  "echo-20B-w1|echo --connections 100 --in-flight 1 --size 20|/rooms/echo/bench|switchboard tokio-tungstenite fastwebsockets"
  "echo-16KiB-w16|echo --connections 100 --in-flight 16 --size 16384 --binary|/rooms/echo/bench|switchboard tokio-tungstenite fastwebsockets"
  "broadcast-1000-w16|broadcast --subscribers 1000 --in-flight 16 --size 32|/rooms/broadcast/bench|switchboard tokio-tungstenite"
  "broadcast-1000-w1|broadcast --subscribers 1000 --in-flight 1 --size 32|/rooms/broadcast/bench|switchboard tokio-tungstenite"
)

RESULTS="$OUT/results.tsv"
printf 'run\tscenario\tserver\tmsgs_per_s\tp99_us\tloadgen_cpu\tserver_cpu\tverdict\n' > "$RESULTS"
for run in $(seq 1 "$RUNS"); do
  for entry in "${SCENARIOS[@]}"; do
    IFS='|' read -r name args path servers <<< "$entry"
    for server in $servers; do
      log="$OUT/$name.$server.$run.log"
      # shellcheck disable=SC2086
      taskset -c 0 ${SERVER[$server]} > "$OUT/server.out" 2>/dev/null &
      pid=$!
      addr=""
      for _ in $(seq 1 100); do
        addr=$(grep -o 'http://[0-9.:]*' "$OUT/server.out" | head -n1 | sed 's#http://##' || true)
        [ -n "$addr" ] && break
        sleep 0.1
      done
      # shellcheck disable=SC2086
      timeout $((SECS + 60)) taskset -c 1 "$LOADGEN" $args --url "ws://$addr$path" --seconds "$SECS" --server-pid "$pid" > "$log" 2>/dev/null || echo "run failed: $log"
      kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
      rate=$(awk '/^messages\/s/ {print $2}' "$log")
      p99=$(awk '/^latency us/ {print $6}' "$log")
      lcpu=$(awk '/^loadgen CPU/ {print $3}' "$log")
      scpu=$(awk '/^server CPU/ {print $3}' "$log")
      verdict=$(awk '/^verdict/ {$1=""; print substr($0,2)}' "$log")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$name" "$server" "${rate:-}" "${p99:-}" "${lcpu:-}" "${scpu:-}" "${verdict:-}" | tee -a "$RESULTS"
    done
  done
done
python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
table = {}
for r in rows:
    if r['msgs_per_s']:
        table.setdefault((r['scenario'], r['server']), []).append(r)
print('\n| scenario | server | messages/s median (min-max) | p99 latency us median | loadgen CPU % | server CPU % |')
print('| --- | --- | --- | --- | --- | --- |')
for (scenario, server), rs in table.items():
    rates = sorted(float(r['msgs_per_s']) for r in rs)
    p99 = [float(r['p99_us']) for r in rs if r['p99_us']]
    med = lambda xs: statistics.median(xs) if xs else float('nan')
    print(f"| {scenario} | {server} | {med(rates):,.0f} ({rates[0]:,.0f}-{rates[-1]:,.0f}) | {med(p99):,.0f} | {med([float(r['loadgen_cpu']) for r in rs]):.0f} | {med([float(r['server_cpu']) for r in rs]):.0f} |")
PY

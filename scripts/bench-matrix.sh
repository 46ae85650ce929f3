#!/usr/bin/env bash
# Runs every load scenario (echo, broadcast, idle, churn) against
# switchboard and the peer servers in one go: server pinned to core 0, load
# generator to core 1, servers taking turns within each round, RUNS rounds.
# Prints one line per run (TSV) and a median (min-max) table for
# docs/benchmarks.md.
#
#   scripts/bench-matrix.sh [RUNS] [SECONDS]      (defaults 3 and 5)
#   SCENARIOS="echo-20B-w16 broadcast-1000-w16" SERVERS="switchboard node-ws" \
#     scripts/bench-matrix.sh 1 2                 (a subset; names as below)
#   BUILD=0 scripts/bench-matrix.sh ...           (reuse the binaries built)
#   EXTRA_SERVERS="uws=/path/to/server" scripts/bench-matrix.sh ...
#                                                 (more servers, built elsewhere)
#
# Loopback only; every run is bounded by SECONDS plus the scenario's connect
# allowance. Builds the release binaries and bench/peers (tokio-tungstenite,
# fastwebsockets) first. The Node peer (bench/peers/node/peer-ws.js) runs
# when `node` and the `ws` package (`npm ci` at the repository root) are
# there, and is skipped with a note otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-5}
OUT=target/bench-matrix
LOADGEN=target/release/switchboard-loadgen

declare -A SERVER=(
  [switchboard]="target/release/switchboard serve --listen 127.0.0.1:0 --memory --drain-grace 0s --drain-timeout 0s"
  [tokio-tungstenite]="bench/peers/target/release/peer-tungstenite 127.0.0.1:0"
  [fastwebsockets]="bench/peers/target/release/peer-fastwebsockets 127.0.0.1:0"
  [node-ws]="node bench/peers/node/peer-ws.js 127.0.0.1:0"
)
ALL_SERVERS="switchboard tokio-tungstenite fastwebsockets node-ws"
# A peer this repository cannot ship (uWebSockets, say: built from its own
# sources, outside this tree) joins every scenario through EXTRA_SERVERS,
# "name=command" pairs separated by ";". The command gets 127.0.0.1:0 as its
# last argument and must print http://HOST:PORT on stdout once listening;
# like the peers above, a path containing "broadcast" joins one room that
# relays each message to the other members, and any other path echoes.
IFS=';' read -ra EXTRA <<< "${EXTRA_SERVERS:-}"
for pair in "${EXTRA[@]}"; do
  name=${pair%%=*}
  command=${pair#*=}
  [[ $pair == *=* && $name =~ ^[A-Za-z0-9_-]+$ && -n $command ]] || { echo "EXTRA_SERVERS: expected name=command, got '$pair'" >&2; exit 2; }
  [ -z "${SERVER[$name]:-}" ] || { echo "EXTRA_SERVERS: $name is already a server here" >&2; exit 2; }
  SERVER[$name]="$command 127.0.0.1:0"
  ALL_SERVERS+=" $name"
done
# name | loadgen arguments | path | servers | seconds allowed for connecting.
# The rate column is messages/s (echo, broadcast: delivered), handshakes/s
# (idle: 10,000 connections opened 64 at a time and held; its run has no
# SECONDS, and bytes_per_conn is the server's RSS growth per connection) or
# completed connections/s (churn: connect, one echo, close, in 50 loops).
# Connecting 10,000 subscribers (64 handshakes at a time) takes a few seconds
# on switchboard, whose broadcast room spaces its member-count announcements
# by its size; 600 s is the load generator's own connect limit. wall_s in
# the TSV is the whole run.
MATRIX=(
  "echo-20B-w16|echo --connections 100 --in-flight 16 --size 20|/rooms/echo/bench|$ALL_SERVERS|60"
  "echo-20B-w1|echo --connections 100 --in-flight 1 --size 20|/rooms/echo/bench|$ALL_SERVERS|60"
  "echo-16KiB-w16|echo --connections 100 --in-flight 16 --size 16384 --binary|/rooms/echo/bench|$ALL_SERVERS|60"
  "broadcast-1000-w16|broadcast --subscribers 1000 --in-flight 16 --size 32|/rooms/broadcast/bench|$ALL_SERVERS|60"
  "broadcast-1000-w1|broadcast --subscribers 1000 --in-flight 1 --size 32|/rooms/broadcast/bench|$ALL_SERVERS|60"
  "broadcast-10000-w16|broadcast --subscribers 10000 --in-flight 16 --size 32|/rooms/broadcast/bench|$ALL_SERVERS|600"
  "idle-10000|idle --connections 10000 --rooms 100 --concurrency 64|/rooms/echo/idle|$ALL_SERVERS|120"
  "churn-c50|churn --concurrency 50 --size 20|/rooms/echo/churn|$ALL_SERVERS|30"
)

# Optional filters from the environment; unknown names are an error.
WANT_SCENARIOS=${SCENARIOS:-}
WANT_SERVERS=${SERVERS:-}
known_scenarios=""
for entry in "${MATRIX[@]}"; do known_scenarios+=" ${entry%%|*}"; done
for name in $WANT_SCENARIOS; do
  [[ " $known_scenarios " == *" $name "* ]] || { echo "unknown scenario '$name'; known:$known_scenarios" >&2; exit 2; }
done
for name in $WANT_SERVERS; do
  [[ " $ALL_SERVERS " == *" $name "* ]] || { echo "unknown server '$name'; known: $ALL_SERVERS" >&2; exit 2; }
done
wanted() { # wanted LIST NAME: true when LIST is empty or names NAME
  [ -z "$1" ] || [[ " $1 " == *" $2 "* ]]
}

# Servers that cannot run here are dropped with a note.
SKIP=""
if ! command -v node > /dev/null; then
  SKIP+=" node-ws"
  echo "skip node-ws: node is not installed"
elif ! (cd bench/peers/node && node -e 'require.resolve("ws")' 2> /dev/null); then
  SKIP+=" node-ws"
  echo "skip node-ws: the ws package is not installed (run npm ci at the repository root)"
fi

# The 10,000-subscriber scenario needs that many descriptors in the load
# generator and in the server (both inherit this limit).
ulimit -n 20000 2> /dev/null || true
FDS=$(ulimit -n)

mkdir -p "$OUT"
if [ "${BUILD:-1}" != 0 ]; then
  # Apart, as `cargo build --release` builds the server: built together,
  # cargo unifies the two packages' features and the server's symbols get
  # other names than its hot-function list has (docs/benchmarks.md,
  # "Code layout").
  cargo build --release --locked -p switchboard
  cargo build --release --locked -p switchboard-loadgen
  (cd bench/peers && cargo build --release --locked)
fi
for binary in "$LOADGEN" target/release/switchboard bench/peers/target/release/peer-tungstenite bench/peers/target/release/peer-fastwebsockets; do
  [ -x "$binary" ] || { echo "missing $binary: run without BUILD=0" >&2; exit 2; }
done

RESULTS="$OUT/results.tsv"
printf 'run\tscenario\tserver\trate\tp99_us\tloadgen_cpu\tserver_cpu\tverdict\twall_s\tbytes_per_conn\tserver_us\tserver_user_us\tjoin_s\n' > "$RESULTS"
for run in $(seq 1 "$RUNS"); do
  for entry in "${MATRIX[@]}"; do
    IFS='|' read -r name args path servers connect_secs <<< "$entry"
    wanted "$WANT_SCENARIOS" "$name" || continue
    conns=$(grep -o -- '--\(connections\|subscribers\) [0-9]*' <<< "$args" | awk '{print $2}' || true)
    if [ "$FDS" != unlimited ] && [ "$FDS" -lt $((conns + 100)) ]; then
      echo "skip $name: needs $((conns + 100)) file descriptors, ulimit -n is $FDS"
      continue
    fi
    for server in $servers; do
      wanted "$WANT_SERVERS" "$server" || continue
      [[ " $SKIP " == *" $server "* ]] && continue
      log="$OUT/$name.$server.$run.log"
      started=$SECONDS
      : > "$OUT/server.out"
      # shellcheck disable=SC2086
      taskset -c 0 ${SERVER[$server]} > "$OUT/server.out" 2> "$OUT/server.err" &
      pid=$!
      addr=""
      for _ in $(seq 1 100); do
        addr=$(grep -o 'http://[0-9.:]*' "$OUT/server.out" | head -n1 | sed 's#http://##' || true)
        [ -n "$addr" ] && break
        sleep 0.1
      done
      failed=""
      if [ -z "$addr" ]; then
        failed="server did not start"
        : > "$log"
      else
        seconds="--seconds $SECS"
        [[ $args == idle* ]] && seconds=""
        # shellcheck disable=SC2086
        timeout $((SECS + connect_secs)) taskset -c 1 "$LOADGEN" $args --url "ws://$addr$path" $seconds --server-pid "$pid" > "$log" 2> "$log.err" ||
          failed="run failed (see $log.err)"
      fi
      kill "$pid" 2> /dev/null || true
      wait "$pid" 2> /dev/null || true
      rate=$(awk '/^(messages|handshakes|conns)\/s/ {gsub(",", "", $2); print $2}' "$log")
      per_conn=$(grep -o '(-\?[0-9,]* B per connection)' "$log" | head -n1 | tr -d '(,' | awk '{print $1}' || true)
      p99=$(awk '/^latency us/ {print $6}' "$log")
      lcpu=$(awk '/^loadgen CPU/ {print $3}' "$log")
      scpu=$(awk '/^server CPU/ {print $3}' "$log")
      sus=$(awk '/^server cost/ {print $3}' "$log")
      # The user-space part of it (the rest is the kernel's), where the
      # load generator reports it.
      suser=$(awk '/^  of which/ {print $3}' "$log")
      verdict=$(awk '/^verdict/ {$1=""; print substr($0,2)}' "$log")
      # Broadcast: how long the subscribers and the publisher took to join.
      join=$(sed -n 's/.*publisher open in \([0-9.]*\) s$/\1/p' "$log.err" 2> /dev/null || true)
      [ -n "$failed" ] && { rate=""; verdict="$failed"; }
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$name" "$server" "${rate:-}" "${p99:-}" "${lcpu:-}" "${scpu:-}" "${verdict:-}" "$((SECONDS - started))" "${per_conn:-}" "${sus:-}" "${suser:-}" "${join:-}" | tee -a "$RESULTS"
    done
  done
done
python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
table = {}
for r in rows:
    if r['rate']:
        table.setdefault((r['scenario'], r['server']), []).append(r)
def med(rs, key):
    xs = [float(r[key]) for r in rs if r[key]]
    return statistics.median(xs) if xs else float('nan')
def cell(rs, key, fmt='{:,.0f}'):
    x = med(rs, key)
    return '' if x != x else fmt.format(x)
print('\n| scenario | server | rate median (min-max) | p99 latency us median | server RSS B/conn median | loadgen CPU % | server CPU % | server CPU us per unit | of it user space | joining s median |')
print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (scenario, server), rs in table.items():
    rates = sorted(float(r['rate']) for r in rs)
    print(f"| {scenario} | {server} | {statistics.median(rates):,.0f} ({rates[0]:,.0f}-{rates[-1]:,.0f}) | {cell(rs, 'p99_us')} | {cell(rs, 'bytes_per_conn')} | {cell(rs, 'loadgen_cpu')} | {cell(rs, 'server_cpu')} | {cell(rs, 'server_us', '{:.2f}')} | {cell(rs, 'server_user_us', '{:.2f}')} | {cell(rs, 'join_s', '{:.3f}')} |")
print('\nrate: messages/s (echo, broadcast delivered), handshakes/s (idle), connections/s (churn); the server\'s CPU time per message, handshake or connection stays comparable when the load generator set the pace; joining: broadcast, from the first subscriber\'s connect until the publisher is open')
failed = [r for r in rows if not r['rate']]
for r in failed:
    print(f"failed: run {r['run']} {r['scenario']} {r['server']}: {r['verdict']}")
PY

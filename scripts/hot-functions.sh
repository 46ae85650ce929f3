#!/usr/bin/env bash
# Writes crates/switchboard/hot-functions.txt, the functions the release
# binary's linker lays out first and side by side (crates/switchboard/build.rs;
# docs/benchmarks.md, "Code layout"): the server runs under callgrind, with
# its symbols' names left mangled as the linker knows them, through the
# matrix's load shapes on loopback (echo of 20 B at 16 and 1 in flight and
# of 16 KiB, broadcast to 1,000 at 16 and 1 in flight, churn, 1,000 idle
# connections); the functions of the binary that ran 99.9 % of its own
# instructions are listed, hottest first.
#
#   scripts/hot-functions.sh      (then rebuild: cargo build --release)
#
# Rerun it when the list has gone stale: the names carry a hash of the
# toolchain's version and of the crate that instantiates them (most hot
# functions are generic and instantiated in the binary's crate), so after
# a toolchain update, or a change to the binary crate's dependencies or
# build, few of them match; `nm` on the binary shows which do. Profile
# a server built on its own (`cargo build --release`): built together with
# other packages, cargo unifies their features and names change. Needs valgrind and
# the release binaries; every load is bounded (SECONDS_EACH each, default
# 3) and targets only 127.0.0.1. Takes about half a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
BINARY=${BINARY:-target/release/switchboard}
LOADGEN=${LOADGEN:-target/release/switchboard-loadgen}
SECONDS_EACH=${SECONDS_EACH:-3}
OUT=${OUT:-crates/switchboard/hot-functions.txt}
for tool in valgrind callgrind_control; do
  command -v "$tool" > /dev/null || { echo "$tool not found (apt install valgrind)" >&2; exit 1; }
done
for bin in "$BINARY" "$LOADGEN"; do
  [ -x "$bin" ] || { echo "$bin not found: cargo build --release -p switchboard; cargo build --release -p switchboard-loadgen" >&2; exit 1; }
done
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2> /dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# Names left mangled: the linker knows them so.
start_callgrind "$BINARY" "$WORK" --demangle=no
# Start-up is not what the connections run.
callgrind_control -z "$SERVER_PID" > /dev/null 2>&1

echo "profiling $BINARY (about $((SECONDS_EACH * 6 + 60)) s):" >&2
load_shapes "$LOADGEN" "$ADDR" "$SECONDS_EACH" 1000 "$WORK/load"
callgrind_control -d "$SERVER_PID" > /dev/null 2>&1
kill -INT "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=""
DUMP=$(ls "$WORK"/cg.*.1)

# Each function's own instructions (not its callees'), for the functions of
# the binary: callgrind names files, objects and functions once as "(id)
# name" and by "(id)" after; a "calls=" line is followed by the call's
# inclusive cost, which is the callee's, not the caller's. valgrind marks a
# recursive activation with a "'N" suffix, which the symbol does not have.
awk -v binary="$BINARY" '
  function name(text, kind,   id) {
    if (match(text, /^\([0-9]+\)/)) {
      id = substr(text, 2, RLENGTH - 2)
      if (length(text) > RLENGTH) names[kind, id] = substr(text, RLENGTH + 2)
      return names[kind, id]
    }
    return text
  }
  /^ob=/ { object = name(substr($0, 4), "ob"); next }
  /^cob=/ { name(substr($0, 5), "ob"); next }
  /^fn=/ { fn = name(substr($0, 4), "fn"); owner[fn] = object; next }
  /^cfn=/ { name(substr($0, 5), "fn"); next }
  /^calls=/ { callee_cost = 1; next }
  /^[0-9+*-]/ {
    if (callee_cost) { callee_cost = 0; next }
    own[fn] += $2
  }
  END {
    for (f in own) {
      if (substr(owner[f], length(owner[f]) - length(binary) + 1) != binary) continue
      symbol = f
      sub(/\x27[0-9]+$/, "", symbol)
      print own[f], symbol
    }
  }
' "$DUMP" | sort -k1,1nr > "$WORK/costs"

{
  echo "# The release binary's hot functions, hottest first, for the linker"
  echo "# (crates/switchboard/build.rs). Made by scripts/hot-functions.sh;"
  echo "# the names are rustc $(rustc -V | cut -d' ' -f2)'s."
  awk '{ total += $1; cost[NR] = $1; symbol[NR] = $2 }
       END { for (i = 1; i <= NR && sum < total * 0.999; i++) { sum += cost[i]; if (!seen[symbol[i]]++) print symbol[i] } }' "$WORK/costs"
} > "$OUT"
echo "wrote $OUT: $(grep -vc '^#' "$OUT") functions" >&2

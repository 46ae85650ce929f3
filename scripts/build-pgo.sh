#!/usr/bin/env bash
# Builds the server with profile-guided optimisation, for a production
# binary: an instrumented build runs the matrix's load shapes for about a
# minute on loopback, and the release build then uses that profile to lay
# out and inline the code the connections run (docs/benchmarks.md,
# "Profile-guided optimisation"). The result is target/pgo/release/switchboard;
# `cargo build --release` is unchanged and stays the default.
#
#   scripts/build-pgo.sh
#
# Needs rustup's llvm-tools component for llvm-profdata (added here when
# missing). Two release builds, a few minutes each; the load runs are
# bounded (SECONDS_EACH each, default 5) and target only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

SECS=${SECONDS_EACH:-5}
DATA=target/pgo-data
LOADGEN=target/release/switchboard-loadgen

host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  echo "== adding rustup's llvm-tools component (for llvm-profdata)"
  rustup component add llvm-tools
fi
[ -x "$profdata" ] || { echo "no llvm-profdata at $profdata" >&2; exit 2; }

echo "== the load generator (an ordinary release build)"
cargo build --release --locked -p switchboard-loadgen

echo "== the instrumented server (target/pgo-generate)"
rm -rf "$DATA"
mkdir -p "$DATA"
# The profile lays the code out; the hot-function list is not used here.
export SWITCHBOARD_SYMBOL_ORDER=0
RUSTFLAGS="-Cprofile-generate=$PWD/$DATA/build" CARGO_TARGET_DIR=target/pgo-generate \
  cargo build --release --locked -p switchboard

echo "== the profile: the matrix's load shapes, $SECS s each"
ulimit -n 20000 2> /dev/null || true
idle=10000
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 10100 ] || idle=$(( $(ulimit -n) - 100 ))
# Only the server's own profile counts: the build scripts above wrote theirs elsewhere.
export LLVM_PROFILE_FILE="$PWD/$DATA/server-%p.profraw"
SWITCHBOARD_BIN=target/pgo-generate/release/switchboard start_server "$DATA/server.out"
unset LLVM_PROFILE_FILE
trap stop_server EXIT
load_shapes "$LOADGEN" "$ADDR" "$SECS" "$idle" "$DATA/load.out"
stop_server
trap - EXIT
compgen -G "$DATA/server-*.profraw" > /dev/null || { echo "the instrumented server wrote no profile" >&2; exit 1; }
"$profdata" merge -o "$DATA/server.profdata" "$DATA"/server-*.profraw

echo "== the optimised server (target/pgo)"
RUSTFLAGS="-Cprofile-use=$PWD/$DATA/server.profdata" CARGO_TARGET_DIR=target/pgo \
  cargo build --release --locked -p switchboard
echo "built target/pgo/release/switchboard"

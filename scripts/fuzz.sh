#!/usr/bin/env bash
# Fuzz smoke runs: each target of fuzz/ for a fixed time on the stable
# toolchain (libFuzzer through cargo-fuzz, no sanitizer: `-Zsanitizer` needs
# nightly; the harnesses assert their own invariants instead).
#
#   scripts/fuzz.sh [TARGET...]        FUZZ_SECONDS per target (default 60)
#
# The committed seeds in fuzz/corpus/<target>/ are read, never written; new
# inputs go to target/fuzz-corpus/<target>/. A crash fails the run and leaves
# the input in fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(frame_decoder handshake_request inflate)

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

cd fuzz
status=0
for target in "${TARGETS[@]}"; do
  work="../target/fuzz-corpus/$target"
  mkdir -p "$work"
  echo "fuzz: $target for ${SECONDS_PER_TARGET}s"
  if cargo fuzz run --sanitizer none -O "$target" "$work" "corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 2> "$work.log"; then
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$work.log" | sed "s/^/fuzz: $target /"
  else
    status=1
    echo "fuzz: $target FAILED; last lines of its log:"
    tail -n 30 "$work.log"
  fi
done
exit $status

#!/usr/bin/env bash
# Fuzz smoke runs: each target of fuzz/ for a fixed time on the stable
# toolchain, with libFuzzer through cargo-fuzz.
#
#   scripts/fuzz.sh [TARGET...]        FUZZ_SECONDS per target (default 60)
#
# Budget: FUZZ_SECONDS x 3 targets of fuzzing (3 min by default), plus the
# instrumented build (~1-2 min fresh) and, once per machine, installing
# cargo-fuzz (~1.5 min).
#
# `--sanitizer none`: AddressSanitizer needs nightly (-Zsanitizer), and the
# code under test has no `unsafe`. The build keeps cargo-fuzz's default of
# release + debug assertions + overflow checks (no -O), so an arithmetic
# overflow is a crash too; the harnesses assert their own invariants.
#
# The committed seeds in fuzz/corpus/<target>/ are read, never written; new
# inputs go to target/fuzz-corpus/<target>/ (kept between local runs). A crash
# fails the run and leaves the input in fuzz/artifacts/<target>/; replay it
# with `cd fuzz && cargo fuzz run --sanitizer none TARGET artifacts/TARGET/crash-...`.
set -euo pipefail

cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
ALL_TARGETS=(frame_decoder handshake_request inflate)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

case "$SECONDS_PER_TARGET" in
  ''|*[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a whole number of seconds, got '$SECONDS_PER_TARGET'"; exit 2 ;;
esac
for target in "${TARGETS[@]}"; do
  [ -f "fuzz/fuzz_targets/$target.rs" ] || { echo "fuzz: no target '$target' (have: ${ALL_TARGETS[*]})"; exit 2; }
done

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

cd fuzz
mkdir -p ../target/fuzz-corpus
echo "fuzz: building the targets (instrumented, debug assertions on)"
if ! cargo fuzz build --sanitizer none > ../target/fuzz-corpus/build.log 2>&1; then
  echo "fuzz: FAILED to build the fuzz targets; last lines of ../target/fuzz-corpus/build.log:"
  tail -n 40 ../target/fuzz-corpus/build.log
  exit 1
fi

status=0
for target in "${TARGETS[@]}"; do
  work="../target/fuzz-corpus/$target"
  log="../target/fuzz-corpus/$target.log"
  mkdir -p "$work"
  echo "fuzz: $target for ${SECONDS_PER_TARGET}s"
  if cargo fuzz run --sanitizer none "$target" "$work" "corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 2> "$log"; then
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$log" | sed "s/^/fuzz: $target /" || true
  else
    status=1
    echo "fuzz: $target FAILED; last lines of its log ($log):"
    tail -n 40 "$log"
    # The input itself, so a CI log alone is enough to reproduce the crash.
    grep -oE "artifacts/$target/[a-z-]+-[0-9a-f]+" "$log" | sort -u | while read -r artifact; do
      echo "fuzz: $target input fuzz/$artifact (base64): $(base64 -w0 "$artifact")"
    done
  fi
done
exit $status

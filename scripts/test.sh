#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's: installs
# what the tests need, then runs every part and reports each one.
#
#   scripts/test.sh
#
# Parts (each can be skipped or shortened for local iteration):
#   deps      apt packages if missing, `npm ci`, the Autobahn venv
#   build     release binary target/release/switchboard
#   rust      unit + integration tests (cargo nextest, or cargo test)
#   node      node:test files in tests/node/ against the release binary
#   bench     a one-second run of each load scenario, so the tools keep working
#   fuzz      each fuzz target for FUZZ_SECONDS (default 60 s; 3 targets)
#   autobahn  Autobahn|Testsuite fuzzing client against the echo room, all
#             cases 1.*-13.*, gated by tests/autobahn/expected.json
#
# Environment: SKIP_FUZZ=1, FUZZ_SECONDS=N, AUTOBAHN=full|quick|skip.
# Budget on 2 cores (fresh machine): deps ~2 min, build + tests ~6 min,
# fuzz ~5 min (3 x 60 s plus the fuzz build), Autobahn full ~10 min.
set -uo pipefail

# Everything runs inside main so bash parses the whole file before running
# it: editing this script during a run cannot break that run.
main() {

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED="$ROOT/../shared"
REPORTS="$ROOT/target/test-reports"
mkdir -p "$REPORTS"
FAILED=()
START=$(date +%s)

section() { printf '\n=== %s (t+%ss) ===\n' "$1" "$(( $(date +%s) - START ))"; }
fail() { echo "FAILED: $1"; FAILED+=("$1"); }

section "dependencies"
need_apt=()
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
command -v cc >/dev/null || need_apt+=(build-essential)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" || fail "apt install ${need_apt[*]}"
fi
npm ci --no-audit --no-fund --loglevel=error || fail "npm ci"

section "build (release binaries)"
if ! cargo build --release --locked -p switchboard -p switchboard-loadgen; then
  fail "cargo build"
  printf '\ntest suite: %s part(s) failed: %s\n' "${#FAILED[@]}" "${FAILED[*]}"
  exit 1
fi

section "rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast || fail "rust tests"
else
  cargo test --workspace --locked --no-fail-fast || fail "rust tests"
fi

section "node tests (independent client: ws)"
node --test --test-concurrency=1 tests/node/ || fail "node tests"

section "benchmark smoke run (seconds; not a measurement)"
scripts/bench-smoke.sh || fail "benchmark smoke run"

section "fuzz smoke runs"
if [ "${SKIP_FUZZ:-0}" = 1 ]; then
  echo "skipped (SKIP_FUZZ=1)"
else
  scripts/fuzz.sh || fail "fuzz"
fi

section "autobahn"
case "${AUTOBAHN:-full}" in
  skip) echo "skipped (AUTOBAHN=skip)" ;;
  *) scripts/autobahn.sh "${AUTOBAHN:-full}" || fail "autobahn" ;;
esac

section "summary"
if [ ${#FAILED[@]} -eq 0 ]; then
  echo "test suite: every part passed in $(( $(date +%s) - START )) s"
  exit 0
fi
echo "test suite: ${#FAILED[@]} part(s) failed: ${FAILED[*]}"
exit 1
}

main "$@"

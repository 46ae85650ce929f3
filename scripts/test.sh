#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's: installs
# what the tests need, then runs every part and reports each one.
#
#   scripts/test.sh
#   scripts/test.sh --part deps|lint|rust|node|e2e   one of the parts written here, alone
#
# Parts, in order (docs/testing.md has the details and the time budgets):
#   deps      apt packages only if missing (chromium, coturn, nginx, nats-server too), `npm ci`
#             (pins ws 8.23.0 and playwright-core 1.65.1), Python's
#             prometheus_client 0.26.0 in target/prometheus-venv if missing
#   build     release binaries target/release/switchboard{,-loadgen} and the
#             geo_fixture and tls_test_certs examples (the browser tests' geo
#             database, the Node and browser tests' TLS certificates)
#   lint      `cargo fmt --all --check` (rustfmt.toml) and `cargo clippy
#             --workspace --all-targets --locked -- -D warnings`
#   rust      unit + integration tests (cargo nextest + doc tests, or cargo test)
#   node      node:test files tests/node/*.test.js against the release binary
#   e2e       tests/e2e/*.test.js: the app pages in headless Chromium against
#             the release binary; screenshots in target/test-reports/e2e/
#   bench     a one-second run of each load scenario, so the tools keep working
#   fuzz      each fuzz target for FUZZ_SECONDS (default 60 s x 3 targets = 3 min
#             of fuzzing, plus the instrumented build)
#   autobahn  Autobahn|Testsuite fuzzing client against the echo room, all
#             cases 1.*-13.* (compression included), gated by
#             tests/autobahn/expected.json; report in target/test-reports/autobahn/
#
# Environment: AUTOBAHN=full|quick|skip (default full), SKIP_FUZZ=1,
# FUZZ_SECONDS=N. Needs a Rust toolchain (rustup, stable >= 1.85, with the
# rustfmt and clippy components); nothing outside this repository.
#
# A failing part does not stop the later ones (except that nothing runs the
# binary when it did not build); the exit status is non-zero if any part
# failed. Every part runs under a hard time limit (`timeout`), so a hung test
# cannot hold CI until its own 90-minute limit.
set -uo pipefail

# Everything runs inside main so bash parses the whole file before running
# it: editing this script during a run cannot break that run.
main() {
  cd "$(dirname "$0")/.." || exit 2
  SELF=scripts/test.sh
  exec </dev/null # nothing may wait for input (CI has no stdin)
  START=$(date +%s)
  CURRENT=""
  trap 'interrupted INT' INT
  trap 'interrupted TERM' TERM
  PARTS=()
  FAILED=()
  mkdir -p target/test-reports
  disk_check

  part deps 900 "$SELF" --part deps

  if part build 2400 cargo build --release --locked -p switchboard -p switchboard-loadgen --bins --example geo_fixture --example tls_test_certs; then
    BUILT=1
  else
    BUILT=0
  fi

  part lint 1200 "$SELF" --part lint
  part rust 1800 "$SELF" --part rust

  if [ "$BUILT" = 1 ]; then
    part node 600 "$SELF" --part node
    part e2e 900 "$SELF" --part e2e
    part bench 300 scripts/bench-smoke.sh
  else
    skip node "the release binary did not build"
    skip e2e "the release binary did not build"
    skip bench "the release binary did not build"
  fi

  if [ "${SKIP_FUZZ:-0}" = 1 ]; then
    skip fuzz "SKIP_FUZZ=1"
  elif ! [[ "${FUZZ_SECONDS:-60}" =~ ^[0-9]+$ ]]; then
    record fuzz "FAILED (FUZZ_SECONDS='${FUZZ_SECONDS}' is not a number of seconds)"
    FAILED+=(fuzz)
  else
    # FUZZ_SECONDS x 3 targets, plus 20 min for installing cargo-fuzz and the build.
    part fuzz $(( ${FUZZ_SECONDS:-60} * 3 + 1200 )) scripts/fuzz.sh
  fi

  case "${AUTOBAHN:-full}" in
    skip) skip autobahn "AUTOBAHN=skip" ;;
    full|quick)
      if [ "$BUILT" = 1 ]; then
        # run.py's own limit is 1800 s; autobahn-setup.sh takes ~1 min on a fresh machine.
        part autobahn 2400 scripts/autobahn.sh "${AUTOBAHN:-full}"
      else
        skip autobahn "the release binary did not build"
      fi
      ;;
    *) record autobahn "FAILED (AUTOBAHN='${AUTOBAHN}'; use full, quick or skip)"; FAILED+=(autobahn) ;;
  esac

  summary
}

# part NAME SECONDS COMMAND...: runs one part under a time limit, with a
# header, and records its outcome. The parts written in this file run as
# `scripts/test.sh --part NAME` so that `timeout` bounds them too. `timeout` runs in
# its own process group (so that on expiry it can stop the part's whole
# process tree); an interrupt of this script is passed on to it by PID.
part() {
  local name=$1 limit=$2 began status
  shift 2
  began=$(date +%s)
  printf '\n=== %s (t+%ss, limit %ss) ===\n' "$name" "$(( began - START ))" "$limit"
  timeout -k 30 "$limit" "$@" &
  CURRENT=$!
  wait "$CURRENT"
  status=$?
  CURRENT=""
  if [ "$status" -eq 0 ]; then
    record "$name" passed "$began"
    return 0
  fi
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "FAILED: $name hit its time limit of ${limit}s"
    record "$name" "FAILED (time limit ${limit}s)" "$began"
  else
    echo "FAILED: $name (exit status $status)"
    record "$name" "FAILED (exit $status)" "$began"
  fi
  FAILED+=("$name")
  return 1
}

# shellcheck disable=SC2317 # called from the traps set in main
interrupted() {
  echo "test suite: interrupted by SIG$1"
  if [ -n "${CURRENT:-}" ]; then
    kill -s TERM "$CURRENT" 2>/dev/null
    wait "$CURRENT" 2>/dev/null
  fi
  exit 130
}

skip() {
  printf '\n=== %s: skipped (%s) ===\n' "$1" "$2"
  record "$1" "skipped ($2)" "$(date +%s)"
}

# The debug and release builds together take several GiB; incremental
# compilation data would double the debug half for a build that runs once, so
# CI (CI=true) turns it off. A nearly full disk is named before the builds
# fail on it with "No space left on device".
disk_check() {
  if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0
  fi
  local free_kib
  free_kib=$(df -Pk target | awk 'NR == 2 { print $4 }')
  echo "disk: $(( free_kib / 1024 / 1024 )) GiB free where target/ lives"
  if [ "$free_kib" -lt $(( 12 * 1024 * 1024 )) ]; then
    echo "warning: the builds need about 10 GiB; free some disk space if a build fails with 'No space left on device'"
  fi
}

record() { PARTS+=("$(printf '%-9s %5ss  %s' "$1" "$(( $(date +%s) - ${3:-$(date +%s)} ))" "$2")"); }

summary() {
  printf '\n=== summary (t+%ss) ===\n' "$(( $(date +%s) - START ))"
  printf '%s\n' "${PARTS[@]}"
  if [ ${#FAILED[@]} -eq 0 ]; then
    echo "test suite: every part passed in $(( $(date +%s) - START )) s"
    exit 0
  fi
  echo "test suite: ${#FAILED[@]} part(s) failed: ${FAILED[*]}"
  exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

deps() {
  have cargo || { echo "cargo not found: install Rust with rustup (stable >= 1.85; Debian's rustc is too old)"; exit 1; }
  local apt=()
  have node || apt+=(nodejs)
  have npm || apt+=(npm)
  have python3 || apt+=(python3)
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt+=(python3-venv) # Autobahn's venv
  python3 -W ignore -c 'import lib2to3.main' 2>/dev/null || apt+=(python3-lib2to3) # converts the Autobahn suite
  have c++ || apt+=(build-essential) # libFuzzer, wsaccel, C parts of crates
  have curl || apt+=(curl ca-certificates)
  # Browser tests: Debian's Chromium, driven by playwright-core (which never
  # downloads a browser of its own).
  [ -x /usr/bin/chromium ] || apt+=(chromium)
  # The call's relay test: Debian's coturn, which that test starts and stops
  # itself on loopback (the package's own service is not needed).
  [ -x /usr/bin/turnserver ] || apt+=(coturn)
  # The gateway test (auth_nginx_gateway): Debian's nginx, run by the test
  # itself in the foreground on loopback (the package's service is not needed).
  [ -x /usr/sbin/nginx ] || apt+=(nginx)
  # The cluster tests: Debian's nats-server (2.9), which each test starts
  # itself with JetStream on loopback (the package's service is not needed).
  [ -x /usr/sbin/nats-server ] || apt+=(nats-server)
  # The clicks benchmark (scripts/bench-clicks.sh): wrk against the
  # redirects, beside nginx's static redirect; taskset pins each to its
  # cores, pgrep finds nginx's workers for their CPU time.
  have wrk || apt+=(wrk)
  have taskset || apt+=(util-linux)
  have pgrep || apt+=(procps)
  if [ ${#apt[@]} -gt 0 ]; then
    echo "installing with apt: ${apt[*]}"
    [ "$(id -u)" = 0 ] || { echo "need root (or sudo) to install: ${apt[*]}"; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt[@]}"
  else
    echo "apt: nothing missing"
  fi
  echo "node $(node --version), npm $(npm --version), $(python3 --version), $(cargo --version)"
  npm ci --no-audit --no-fund --loglevel=error
  metrics_parser
}

# The independent Prometheus/OpenMetrics text parser the metrics tests
# check /metrics with (crates/switchboard/tests/operations.rs): Python's
# prometheus_client in a venv of its own under target/, only if missing.
metrics_parser() {
  local venv=target/prometheus-venv
  if "$venv/bin/python3" -c 'import prometheus_client' 2>/dev/null; then
    echo "prometheus_client: present in $venv"
    return 0
  fi
  echo "installing prometheus_client 0.26.0 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check prometheus_client==0.26.0
}

lint() {
  local status=0
  cargo fmt --version >/dev/null 2>&1 || { echo "rustfmt missing: rustup component add rustfmt"; exit 1; }
  cargo clippy --version >/dev/null 2>&1 || { echo "clippy missing: rustup component add clippy"; exit 1; }
  echo "cargo fmt --all --check (settings in rustfmt.toml):"
  if cargo fmt --all --check; then echo "formatting: ok"; else status=1; fi
  echo "cargo clippy --workspace --all-targets --locked -- -D warnings:"
  cargo clippy --workspace --all-targets --locked -- -D warnings || status=1
  exit "$status"
}

rust_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    local status=0
    cargo nextest run --workspace --locked --no-fail-fast || status=$?
    echo "doc tests (nextest does not run them):"
    cargo test --workspace --locked --doc || status=1
    exit "$status"
  fi
  echo "cargo-nextest not installed; using cargo test"
  cargo test --workspace --locked --no-fail-fast
}

node_tests() {
  shopt -s nullglob
  local files=(tests/node/*.test.js)
  if [ ${#files[@]} -eq 0 ]; then
    echo "no tests/node/*.test.js files"
    exit 0
  fi
  # --test-concurrency (one file at a time: each starts its own server) needs
  # Node >= 20.10; Debian 12's own nodejs (18) lacks the flag.
  if node --help | grep -q -- --test-concurrency; then
    node --test --test-concurrency=1 "${files[@]}"
  else
    node --test "${files[@]}"
  fi
}

e2e_tests() {
  shopt -s nullglob
  local files=(tests/e2e/*.test.js)
  [ ${#files[@]} -gt 0 ] || { echo "no tests/e2e/*.test.js files"; exit 1; }
  # One file at a time: each launches its own Chromium (~0.7 GB).
  # helpers.js points TMPDIR at a per-file scratch directory, so Chromium's
  # profiles never pile up in /tmp.
  # Real browsers and real media on a busy 2-core machine: a file that
  # fails runs once more, and the retry is reported loudly; a file that
  # fails twice fails the part.
  # WebRTC gathers candidates on every interface: the pages, Chromium, the
  # server and coturn all run in a network namespace of their own that has
  # only a loopback interface, so no test traffic can use the machine's
  # other addresses.
  local isolate=(unshare --net sh -c 'ip link set lo up && exec "$@"' sh)
  "${isolate[@]}" true || { echo "e2e: cannot make a loopback-only network namespace (needs root and unshare)"; exit 1; }
  local file status=0 retried=()
  for file in "${files[@]}"; do
    "${isolate[@]}" node --test --test-concurrency=1 "$file" && continue
    echo "e2e: $file failed; running it once more"
    if "${isolate[@]}" node --test --test-concurrency=1 "$file"; then
      retried+=("$file")
    else
      status=1
    fi
  done
  [ ${#retried[@]} -eq 0 ] || echo "e2e: RETRIED, passed on a second run (a flaky step; see the first run above): ${retried[*]}"
  return "$status"
}

if [ "${1:-}" = --part ]; then
  cd "$(dirname "$0")/.." || exit 2
  set -euo pipefail
  case "${2:-}" in
    deps) deps ;;
    lint) lint ;;
    rust) rust_tests ;;
    node) node_tests ;;
    e2e) e2e_tests ;;
    *) echo "unknown part '${2:-}'"; exit 2 ;;
  esac
  exit 0
fi
main "$@"

# shellcheck shell=bash
# Shared by the scripts that run the release binary; source it, do not run it.

# start_server OUT_FILE [STORAGE...]: starts `switchboard serve` on a free
# loopback port with in-memory storage (or the STORAGE options given, e.g.
# `--data-dir DIR`, with any other serve options) and no drain on SIGTERM,
# its stdout in OUT_FILE (stderr in OUT_FILE.log). SWITCHBOARD_BIN names
# another binary than target/release/switchboard.
# Sets SERVER_PID and ADDR (host:port) from the first `http://HOST:PORT` (or
# bare `127.0.0.1:PORT`) the server prints; fails if the server exits or no
# address appears within 10 s.
start_server() {
  local out=$1
  shift
  local storage=("$@")
  [ ${#storage[@]} -gt 0 ] || storage=(--memory)
  # No drain: SIGTERM stops it at once (docs/operations.md).
  "${SWITCHBOARD_BIN:-target/release/switchboard}" serve --listen 127.0.0.1:0 "${storage[@]}" --drain-grace 0s --drain-timeout 0s > "$out" 2> "$out.log" &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR=$(grep -m1 -oE '(https?|wss?)://[^/[:space:]]+|127\.0\.0\.1:[0-9]+' "$out" | head -n1 | sed -E 's#^[a-z]+://##' || true)
    [ -n "$ADDR" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not print its address; its stderr:" >&2
  cat "$out.log" >&2
  stop_server
  return 1
}

# server_alive: true while the server started by start_server is running.
server_alive() {
  [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null
}

# stop_server: stops the server started by start_server, by its PID: SIGTERM,
# then SIGKILL if it is still running after 10 s.
stop_server() {
  [ -n "${SERVER_PID:-}" ] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do
    server_alive || break
    sleep 0.1
  done
  if server_alive; then
    echo "the server ignored SIGTERM for 10 s; sending SIGKILL" >&2
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# start_callgrind BINARY DIR [VALGRIND_OPTION...]: starts `BINARY serve` on
# a free loopback port with in-memory storage under callgrind (with any
# further valgrind options given), its dumps as DIR/cg.PID[.N], its
# stdout in DIR/out and stderr in DIR/err. Sets SERVER_PID and ADDR; exits
# the script if no address appears within 60 s (valgrind starts slowly).
# Stop it with SIGINT: at once, with or without a drain (binaries from
# before the drain existed have no flags for it).
start_callgrind() {
  local binary=$1 dir=$2
  shift 2
  # Emptied here, not by the redirection below: that happens in the
  # background job, possibly after the wait has read a previous run's.
  : > "$dir/out"
  valgrind --tool=callgrind "$@" --callgrind-out-file="$dir/cg.%p" "$binary" serve --listen 127.0.0.1:0 --memory > "$dir/out" 2> "$dir/err" &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 600); do
    ADDR=$(sed -n 's#^switchboard listening on http://##p' "$dir/out")
    [ -n "$ADDR" ] && return 0
    sleep 0.1
  done
  echo "the server did not start:" >&2
  cat "$dir/err" >&2
  kill "$SERVER_PID" 2>/dev/null
  exit 1
}

# load_shapes LOADGEN ADDR SECONDS IDLE OUT: the matrix's load shapes, one
# after the other, against the server at ADDR (echo of 20 B at 16 and 1 in
# flight and of 16 KiB, broadcast to 1,000 at 16 and 1 in flight, SECONDS
# each, churn for SECONDS, then IDLE idle connections), for a profile of
# what connections run (build-pgo.sh, hot-functions.sh). Each run's output
# goes to OUT; exits the script with it if a run fails.
load_shapes() {
  local loadgen=$1 addr=$2 secs=$3 idle=$4 out=$5
  run_shape() {
    local path=$1
    shift
    echo "   $*" >&2
    "$loadgen" "$@" --url "ws://$addr$path" > "$out" 2>&1 || { cat "$out" >&2; exit 1; }
  }
  run_shape /rooms/echo/shape echo --connections 100 --in-flight 16 --size 20 --seconds "$secs"
  run_shape /rooms/echo/shape echo --connections 100 --in-flight 1 --size 20 --seconds "$secs"
  run_shape /rooms/echo/shape echo --connections 100 --in-flight 16 --size 16384 --binary --seconds "$secs"
  run_shape /rooms/broadcast/shape broadcast --subscribers 1000 --in-flight 16 --size 32 --seconds "$secs"
  run_shape /rooms/broadcast/shape1 broadcast --subscribers 1000 --in-flight 1 --size 32 --seconds "$secs"
  run_shape /rooms/echo/churn churn --concurrency 50 --size 20 --seconds "$secs"
  run_shape /rooms/echo/idle idle --connections "$idle" --rooms 100 --concurrency 64
}

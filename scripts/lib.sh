# Shared by the scripts that run the release binary; source it, do not run it.

# start_server OUT_FILE: starts `switchboard serve` on a free loopback port
# with in-memory storage, its stdout in OUT_FILE (stderr in OUT_FILE.log).
# Sets SERVER_PID and ADDR (host:port); fails if no address appears in 10 s.
start_server() {
  local out=$1
  target/release/switchboard serve --listen 127.0.0.1:0 --memory > "$out" 2> "$out.log" &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR=$(sed -n 's#^switchboard listening on http://##p' "$out" | head -n1)
    [ -n "$ADDR" ] && return 0
    sleep 0.1
  done
  echo "the server did not start; its log:" >&2
  cat "$out.log" >&2
  return 1
}

# stop_server: stops the server started by start_server, by its PID.
stop_server() {
  if [ -n "${SERVER_PID:-}" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}

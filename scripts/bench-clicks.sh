#!/usr/bin/env bash
# The redirect benchmark (docs/benchmarks.md, "Clicks"): wrk with
# keep-alive against /l/{slug} of the release binary while DASHBOARDS
# dashboards of the link's account are connected, and, in the same run,
# against Debian's nginx answering a static `return 302` (the ceiling for
# a redirect on this machine). Reports redirects/s and p99 of both, checks
# that every redirect answered was recorded as a click, and, measured
# during the switchboard run by switchboard-loadgen's clicks scenario (the
# dashboards, plus probe clicks at PROBE_RATE on a connection of their
# own), the click-to-dashboard latency: from a probe's redirect request to
# its click on every dashboard. Loopback only.
#
#   scripts/bench-clicks.sh [SECONDS] [CONNECTIONS] [DASHBOARDS]
#   PROBE_RATE=50 (probe clicks per second)
#   DEFLATE=1 (default: the dashboards make a browser's permessage-deflate
#   offer, as every browser does, so the server compresses what it sends
#   them; DEFLATE=0 for dashboards without compression)
#
# Needs wrk and nginx (the test command's deps part installs them).
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CONNECTIONS=${2:-50}
DASHBOARDS=${3:-100}
PROBE_RATE=${PROBE_RATE:-50}
DEFLATE=${DEFLATE:-1}
case "$DEFLATE" in
  1) OFFER=(--deflate); OFFER_NAME="a browser's permessage-deflate offer" ;;
  0) OFFER=(); OFFER_NAME="no compression offered" ;;
  *) echo "bench-clicks: DEFLATE must be 1 or 0" >&2; exit 2 ;;
esac
[ "$SECONDS_RUN" -ge 2 ] || { echo "bench-clicks: SECONDS must be at least 2" >&2; exit 2; }
BIN=target/release/switchboard
LOADGEN=target/release/switchboard-loadgen
[ -x "$BIN" ] || cargo build --release --locked -p switchboard
[ -x "$LOADGEN" ] || cargo build --release --locked -p switchboard-loadgen
for tool in wrk nginx; do command -v "$tool" >/dev/null || { echo "bench-clicks: $tool is missing" >&2; exit 1; }; done

WORK=$(mktemp -d)
SERVER_PID=""
NGINX_PID=""
DASH_PID=""
cleanup() {
  [ -n "$DASH_PID" ] && kill "$DASH_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nginx: one static redirect, workers as many as cores, no logs.
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { add_header Cache-Control "private, max-age=0" always; return 302 https://example.com/; }
  }
}
NGINX
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!

# switchboard: an account, a link, dashboards with a token for the account.
DATA="$WORK/data"
KEY=$("$BIN" accounts add bench --data-dir "$DATA")
RUST_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" > "$WORK/server.out" 2> "$WORK/server.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's#^switchboard listening on http://##p' "$WORK/server.out" | head -n1)
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "the server did not start:"; cat "$WORK/server.log"; exit 1; }
curl -sf -X POST "http://$ADDR/api/links" -H "Authorization: Bearer $KEY" -d '{"url":"https://example.com/","slug":"bench"}' > /dev/null
TOKEN=$(curl -sf -X POST "http://$ADDR/api/token" -H "Authorization: Bearer $KEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

run_wrk() { wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --latency "$1" > "$2"; }
run_wrk "http://127.0.0.1:$NGINX_PORT/l/bench" "$WORK/nginx.wrk"

# The dashboards join first; once they have, wrk starts, and the probes'
# window (half a second after the joins, one second shorter than wrk's
# run) lies within wrk's.
echo "$TOKEN" > "$WORK/token"
"$LOADGEN" clicks --url "ws://$ADDR/rooms/clicks" --link bench/bench --token-file "$WORK/token" \
  --dashboards "$DASHBOARDS" --probe-rate "$PROBE_RATE" --seconds $((SECONDS_RUN - 1)) --server-pid "$SERVER_PID" "${OFFER[@]}" \
  > "$WORK/dash.out" 2> "$WORK/dash.err" &
DASH_PID=$!
for _ in $(seq 1 600); do
  grep -q 'dashboards joined in' "$WORK/dash.err" && break
  kill -0 "$DASH_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q 'dashboards joined in' "$WORK/dash.err" || { echo "the dashboards did not connect:"; cat "$WORK/dash.err"; exit 1; }
run_wrk "http://$ADDR/l/bench" "$WORK/switchboard.wrk"
# The last group of clicks reaches the room after the last answers.
sleep 1
DASH_STATUS=0
wait "$DASH_PID" || DASH_STATUS=$?
DASH_PID=""

requests() { sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$1"; }
rate() { sed -n 's/^Requests\/sec: *//p' "$1"; }
p99() { sed -n 's/^ *99% *//p' "$1"; }
errors() { grep -E 'Non-2xx|Socket errors' "$1" || true; }
CLICKS=$(curl -sf "http://$ADDR/api/links/bench" -H "Authorization: Bearer $KEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clicks"])')

echo "redirect benchmark: wrk -t2 -c$CONNECTIONS -d${SECONDS_RUN}s, keep-alive, $DASHBOARDS dashboards connected to switchboard ($OFFER_NAME)"
printf '%-12s %12s %10s %12s\n' server "redirects/s" p99 requests
printf '%-12s %12s %10s %12s\n' nginx "$(rate "$WORK/nginx.wrk")" "$(p99 "$WORK/nginx.wrk")" "$(requests "$WORK/nginx.wrk")"
printf '%-12s %12s %10s %12s\n' switchboard "$(rate "$WORK/switchboard.wrk")" "$(p99 "$WORK/switchboard.wrk")" "$(requests "$WORK/switchboard.wrk")"
errors "$WORK/nginx.wrk"
errors "$WORK/switchboard.wrk"
PROBES=$(sed -n 's/^probes *\([0-9,]*\).*/\1/p' "$WORK/dash.out" | tr -d ,)
echo "clicks recorded: $CLICKS of $(requests "$WORK/switchboard.wrk") redirects answered to wrk + ${PROBES:-0} probes"
python3 - "$(rate "$WORK/switchboard.wrk")" "$(rate "$WORK/nginx.wrk")" <<'PY'
import sys
sb, ng = float(sys.argv[1]), float(sys.argv[2])
print(f"switchboard / nginx: {sb / ng:.2f}")
PY
echo
echo "click-to-dashboard latency, during the switchboard run (switchboard-loadgen clicks):"
cat "$WORK/dash.out"
[ "$DASH_STATUS" -eq 0 ] || { echo "the clicks scenario failed:"; tail -n 5 "$WORK/dash.err"; exit 1; }

#!/usr/bin/env bash
# The redirect benchmark (docs/benchmarks.md, "Clicks"): wrk with
# keep-alive against /l/{slug} of the release binary while DASHBOARDS
# dashboards of the link's account are connected, and, in the same run,
# against Debian's nginx answering a static `return 302` (the ceiling for
# a redirect on this machine). Reports redirects/s and p99 of both, each
# server's CPU per redirect, checks that every redirect answered was
# recorded as a click, and, measured during the switchboard run by
# switchboard-loadgen's clicks scenario (the dashboards, plus probe clicks
# at PROBE_RATE on a connection of their own), the click-to-dashboard
# latency: from a probe's redirect request to its click on every
# dashboard. Loopback only.
#
#   scripts/bench-clicks.sh [SECONDS] [CONNECTIONS] [DASHBOARDS]
#   PROBE_RATE=50 (probe clicks per second)
#   DEFLATE=1 (default: the dashboards make a browser's permessage-deflate
#   offer, as every browser does, so the server compresses what it sends
#   them; DEFLATE=0 for dashboards without compression)
#   PIN=1 (default on 2 or more cores) or PIN=0
#
# Both servers get the same CPU budget. With PIN=1 each server in its turn
# runs on core 0 alone (nginx with one worker; switchboard's runtime starts
# one worker thread per core it may use, so one) and wrk and the dashboards
# run on the other cores: the ratio compares what each server does with
# one core. With PIN=0 nothing is pinned (nginx has a worker per core):
# then wrk and the dashboards compete with the server for the same cores,
# and on a small machine switchboard's rate is what is left after wrk and
# the dashboards take their share, while nginx in its turn shares the
# cores with wrk alone. Either way the script prints when the clients'
# side rather than the server was the limit (the server's core not busy
# while wrk's was).
#
# Needs wrk and nginx (the test command's deps part installs them),
# taskset (util-linux) and pgrep (procps).
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CONNECTIONS=${2:-50}
DASHBOARDS=${3:-100}
PROBE_RATE=${PROBE_RATE:-50}
CORES=$(nproc)
PIN=${PIN:-$([ "$CORES" -ge 2 ] && echo 1 || echo 0)}
DEFLATE=${DEFLATE:-1}
case "$DEFLATE" in
  1) OFFER=(--deflate); OFFER_NAME="a browser's permessage-deflate offer" ;;
  0) OFFER=(); OFFER_NAME="no compression offered" ;;
  *) echo "bench-clicks: DEFLATE must be 1 or 0" >&2; exit 2 ;;
esac
case "$PIN" in
  1)
    [ "$CORES" -ge 2 ] || { echo "bench-clicks: PIN=1 needs at least 2 cores" >&2; exit 2; }
    CLIENT_CPUS=1-$((CORES - 1))
    ON_SERVER=(taskset -c 0)
    ON_CLIENTS=(taskset -c "$CLIENT_CPUS")
    WRK_THREADS=$((CORES - 1 < 2 ? CORES - 1 : 2))
    NGINX_WORKERS=1
    BUDGET="pinned: each server on core 0 alone, wrk and the dashboards on cores $CLIENT_CPUS"
    ;;
  0)
    ON_SERVER=()
    ON_CLIENTS=()
    WRK_THREADS=2
    NGINX_WORKERS=auto
    BUDGET="unpinned: servers, wrk and the dashboards share all $CORES cores"
    ;;
  *) echo "bench-clicks: PIN must be 1 or 0" >&2; exit 2 ;;
esac
command -v taskset >/dev/null || [ "$PIN" = 0 ] || { echo "bench-clicks: taskset is missing (util-linux)" >&2; exit 1; }
[ "$SECONDS_RUN" -ge 2 ] || { echo "bench-clicks: SECONDS must be at least 2" >&2; exit 2; }
BIN=${BIN:-target/release/switchboard}
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

# CPU time (user + system, clock ticks) of a process and its children's
# threads so far: a server's share of a run is the difference.
TICKS=$(getconf CLK_TCK)
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    # Fields 14 and 15 after the command name, which may hold spaces.
    total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}
with_children() { echo "$1" $(pgrep -P "$1" || true); }

# nginx: one static redirect, a worker per core it may use, no logs.
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes $NGINX_WORKERS;
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
"${ON_SERVER[@]}" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!

# switchboard: an account, a link, dashboards with a token for the account.
DATA="$WORK/data"
KEY=$("$BIN" accounts add bench --data-dir "$DATA")
RUST_LOG=warn "${ON_SERVER[@]}" "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" > "$WORK/server.out" 2> "$WORK/server.log" &
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

# wrk's own CPU (bash's `time`) and the server's over the run: the
# server's per redirect, and whether wrk rather than the server was busy.
run_wrk() {
  local url=$1 out=$2 before after
  shift 2
  before=$(cpu_ticks $(with_children "$@"))
  grep '^cpu[0-9]' /proc/stat > "$out.cores-before"
  TIMEFORMAT='%U %S'
  { time "${ON_CLIENTS[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --latency "$url" > "$out"; } 2> "$out.time"
  after=$(cpu_ticks $(with_children "$@"))
  grep '^cpu[0-9]' /proc/stat > "$out.cores-after"
  echo "$((after - before))" > "$out.server-ticks"
}
for _ in $(seq 1 50); do pgrep -P "$NGINX_PID" > /dev/null && break; sleep 0.1; done
run_wrk "http://127.0.0.1:$NGINX_PORT/l/bench" "$WORK/nginx.wrk" "$NGINX_PID"

# The dashboards join first; once they have, wrk starts, and the probes'
# window (half a second after the joins, one second shorter than wrk's
# run) lies within wrk's.
echo "$TOKEN" > "$WORK/token"
"${ON_CLIENTS[@]}" "$LOADGEN" clicks --url "ws://$ADDR/rooms/clicks" --link bench/bench --token-file "$WORK/token" \
  --dashboards "$DASHBOARDS" --probe-rate "$PROBE_RATE" --seconds $((SECONDS_RUN - 1)) --server-pid "$SERVER_PID" "${OFFER[@]}" \
  > "$WORK/dash.out" 2> "$WORK/dash.err" &
DASH_PID=$!
for _ in $(seq 1 600); do
  grep -q 'dashboards joined in' "$WORK/dash.err" && break
  kill -0 "$DASH_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q 'dashboards joined in' "$WORK/dash.err" || { echo "the dashboards did not connect:"; cat "$WORK/dash.err"; exit 1; }
run_wrk "http://$ADDR/l/bench" "$WORK/switchboard.wrk" "$SERVER_PID"
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

echo "redirect benchmark: wrk -t$WRK_THREADS -c$CONNECTIONS -d${SECONDS_RUN}s, keep-alive, $DASHBOARDS dashboards connected to switchboard ($OFFER_NAME)"
echo "CPU budget: $BUDGET"
# redirects/s, p99, requests, the server's CPU (share of one core), its
# CPU per redirect (µs), wrk's CPU (share of one core); and whether the
# clients, not the server, set the pace: the clients' cores busy (90 %,
# whoever used them) while the server had time to spare (under 90 % of
# its core). Pinned, the clients' cores are all but core 0; unpinned,
# there is no telling, as every side shares every core.
report() {
  local name=$1 file=$2
  python3 - "$name" "$(rate "$file")" "$(p99 "$file")" "$(requests "$file")" "$(cat "$file.server-ticks")" "$TICKS" "$SECONDS_RUN" \
    $(cat "$file.time") "$PIN" "$file" <<'PY'
import sys
name, rate, p99, requests, ticks, hz, secs, wrk_user, wrk_sys, pin, file = sys.argv[1:]
def busy(path):
    out = {}
    for line in open(path):
        f = line.split()
        v = [int(x) for x in f[1:]]
        out[int(f[0][3:])] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return out
before, after = busy(file + ".cores-before"), busy(file + ".cores-after")
server = int(ticks) / int(hz)
wrk = float(wrk_user) + float(wrk_sys)
secs = float(secs)
per = server / int(requests) * 1e6
print(f"{name:<12} {float(rate):>12,.0f} {p99:>10} {int(requests):>12,} {server / secs:>10.0%} {per:>11.2f} {wrk / secs:>8.0%}")
if pin == "1":
    clients = [c for c in after if c != 0]
    client_busy = sum(after[c] - before[c] for c in clients) / int(hz) / secs / len(clients)
    print(f"{'':<12} the clients' cores were {client_busy:.0%} busy")
    if client_busy >= 0.9 and server / secs < 0.9:
        print(f"  client-bound: {name} used {server / secs:.0%} of its core while the clients' cores were {client_busy:.0%} busy: "
              f"wrk (and the dashboards) set this rate, not {name}")
PY
}
printf '%-12s %12s %10s %12s %10s %11s %8s\n' server "redirects/s" p99 requests "CPU" "µs/redirect" "wrk CPU"
report nginx "$WORK/nginx.wrk"
report switchboard "$WORK/switchboard.wrk"
errors "$WORK/nginx.wrk"
errors "$WORK/switchboard.wrk"
PROBES=$(sed -n 's/^probes *\([0-9,]*\).*/\1/p' "$WORK/dash.out" | tr -d ,)
echo "clicks recorded: $CLICKS of $(requests "$WORK/switchboard.wrk") redirects answered to wrk + ${PROBES:-0} probes"
# The rates' ratio, and the ratio of what each server's core could give
# alone (the inverse of its CPU per redirect): the two agree when both
# servers used their whole budget; when the clients set the pace, only the
# second compares the servers.
python3 - "$(rate "$WORK/switchboard.wrk")" "$(rate "$WORK/nginx.wrk")" "$(cat "$WORK/switchboard.wrk.server-ticks")" "$(requests "$WORK/switchboard.wrk")" \
  "$(cat "$WORK/nginx.wrk.server-ticks")" "$(requests "$WORK/nginx.wrk")" <<'PY'
import sys
sb, ng = float(sys.argv[1]), float(sys.argv[2])
sb_cost, ng_cost = int(sys.argv[3]) / int(sys.argv[4]), int(sys.argv[5]) / int(sys.argv[6])
print(f"switchboard / nginx: {sb / ng:.2f} (rates), {ng_cost / sb_cost:.2f} (redirects per CPU second)")
PY
echo
echo "click-to-dashboard latency, during the switchboard run (switchboard-loadgen clicks):"
cat "$WORK/dash.out"
[ "$DASH_STATUS" -eq 0 ] || { echo "the clicks scenario failed:"; tail -n 5 "$WORK/dash.err"; exit 1; }

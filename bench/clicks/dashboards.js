// Holds N dashboards of one account's clicks room open and measures, for
// every click each of them receives, the time from the click's recording
// (its `time`, set by the server when it answered the redirect) to its
// arrival here, in milliseconds. Used by scripts/bench-clicks.sh.
//
//   node bench/clicks/dashboards.js URL TOKEN N
//
// Prints `ready` once all N received their snapshot; on SIGTERM or stdin
// closing, prints one JSON line: dashboards, clicks received, latency
// percentiles (ms), and the dashboards that were cut off.
'use strict';
const WebSocket = require('ws');

const [url, token, count] = process.argv.slice(2);
const n = Number(count);
const latencies = [];
let received = 0;
let ready = 0;
let closed = 0;

for (let i = 0; i < n; i++) {
  const ws = new WebSocket(url, [`json`], { headers: { Authorization: `Bearer ${token}` } });
  ws.on('message', (data) => {
    const now = Date.now();
    const message = JSON.parse(data);
    if (message.type === 'snapshot') {
      ready += 1;
      if (ready === n) console.log('ready');
    } else if (message.type === 'click') {
      received += 1;
      latencies.push(now - message.time);
    }
  });
  ws.on('close', () => { closed += 1; });
  ws.on('error', (e) => console.error(`dashboard ${i}: ${e.message}`));
}

function report() {
  latencies.sort((a, b) => a - b);
  const at = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null);
  console.log(JSON.stringify({ dashboards: n, ready, closed, received, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1) }));
  process.exit(0);
}
process.on('SIGTERM', report);
process.stdin.on('end', report);
process.stdin.resume();

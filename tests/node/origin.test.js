// The Origin allow-list and the per-IP handshake limit through Node's `ws`,
// which sets Origin the way a browser would: pages from other sites are
// refused with 403 before the 101, the listed ones and the server's own
// origin get in, and a burst beyond the handshake rate gets 429 with
// Retry-After.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startServer } = require('./server.js');

let server;
before(async () => {
  server = await startServer({
    args: ['--allowed-origin', 'https://app.example', '--allowed-origin-kind', 'chat=https://chat.example',
      '--handshake-rate-per-ip', '1', '--handshake-burst-per-ip', '12'],
  });
});
after(async () => { await server?.stop(); });

// Resolves with 'open' or the refusal's { status, retryAfter }.
function attempt(path, origin) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${server.addr}${path}`, origin ? { origin } : {});
    ws.once('open', () => { ws.terminate(); resolve('open'); });
    ws.once('unexpected-response', (req, res) => {
      resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'] });
      req.destroy();
    });
    ws.once('error', (e) => reject(e));
  });
}

test('origins on the lists and the own origin get in; others get 403', async () => {
  assert.equal(await attempt('/rooms/broadcast/o', 'https://app.example'), 'open');
  assert.equal(await attempt('/rooms/broadcast/o', `http://${server.addr}`), 'open');
  assert.equal(await attempt('/rooms/broadcast/o'), 'open', 'no Origin: not a browser');
  assert.deepEqual(await attempt('/rooms/broadcast/o', 'https://evil.example'), { status: 403, retryAfter: undefined });
  assert.deepEqual(await attempt('/rooms/broadcast/o', 'http://localhost:3000'), { status: 403, retryAfter: undefined });
  assert.deepEqual(await attempt('/rooms/chat/o?name=n', 'https://app.example'), { status: 403, retryAfter: undefined });
  assert.equal(await attempt('/rooms/chat/o?name=n', 'https://chat.example'), 'open');
});

test('a burst beyond the handshake rate gets 429 with Retry-After', async () => {
  let refused;
  for (let i = 0; i < 20 && !refused; i++) {
    const outcome = await attempt('/rooms/echo/burst');
    if (outcome !== 'open') refused = outcome;
  }
  assert.deepEqual(refused, { status: 429, retryAfter: '1' });
});

// The browser client's token callback (web/switchboard.js, docs/client.md)
// against the real server binary in token mode (docs/auth.md), with `ws` as
// its WebSocket: the callback is asked for a token before each connection;
// when the server closes the connection with 4001 at the token's expiry, the
// client asks again and reconnects with the fresh token; the token rides in
// the query or in the protocol list, where the server selects the room's own
// protocol and never the token.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { BINARY, missingBinary, startServer, stopAll } = require('./server.js');
const { loadClient, next } = require('./client.js');

const MISSING = missingBinary();

let connect;
let dir;
let secretFile;
before(async () => {
  if (MISSING) return;
  ({ connect } = await loadClient());
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-client-token-'));
  secretFile = path.join(dir, 'secret');
  fs.writeFileSync(secretFile, 'node-test-secret-0123456789abcdefghijklmnop\n');
});

after(async () => {
  await stopAll();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// A token for `account` from `switchboard token`, as a page's backend would
// hand one out.
function mint(account, ttl) {
  return execFileSync(BINARY, ['token', '--account', account, '--ttl', ttl, '--jwt-secret-file', secretFile], { encoding: 'utf8' }).trim();
}

test('a token callback: refused without it, reconnects with a fresh token after the 4001 at expiry', { timeout: 30_000 }, async (t) => {
  if (MISSING) return t.skip(MISSING);
  const server = await startServer({ args: ['--auth-kind', 'echo=token', '--jwt-secret-file', secretFile] });

  // Without a token the server refuses the handshake.
  const refused = await new Promise((resolve) => {
    const ws = new WebSocket(`ws://${server.addr}/rooms/echo/tok`);
    ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); req.destroy(); });
    ws.on('open', () => resolve('opened'));
    ws.on('error', () => {});
  });
  assert.equal(refused, 401);

  const asked = [];
  const room = connect({
    url: `http://${server.addr}/rooms/echo/tok`,
    WebSocket,
    // The first token lives about two seconds; later ones an hour.
    token: async () => {
      asked.push(Date.now());
      return mint('acme', asked.length === 1 ? '2s' : '1h');
    },
  });
  assert.equal(room.url, `ws://${server.addr}/rooms/echo/tok`, 'the URL itself carries no token');
  const first = await next(room, 'open');
  assert.deepEqual(first, { protocol: 'json', reconnected: false });
  const echoed = next(room, 'message');
  room.sendJson({ n: 1 });
  assert.deepEqual((await echoed).json, { n: 1 });

  const expired = await next(room, 'close');
  assert.equal(expired.code, 4001);
  assert.equal(expired.reason, 'token expired');
  assert.equal(expired.willReconnect, true);
  const again = await next(room, 'open');
  assert.equal(again.reconnected, true);
  assert.equal(asked.length, 2, 'a fresh token was asked for');
  const echoedAgain = next(room, 'message');
  room.sendJson({ n: 2 });
  assert.deepEqual((await echoedAgain).json, { n: 2 });
  room.close();
});

test('tokenIn protocol: the token travels in the protocol list and json is selected', { timeout: 30_000 }, async (t) => {
  if (MISSING) return t.skip(MISSING);
  const server = await startServer({ args: ['--auth-kind', 'echo=token', '--jwt-secret-file', secretFile] });
  const room = connect({ url: `http://${server.addr}/rooms/echo/proto`, WebSocket, tokenIn: 'protocol', token: () => mint('acme', '1h') });
  const opened = await next(room, 'open');
  assert.equal(opened.protocol, 'json');
  const echoed = next(room, 'message');
  room.send('via the protocol list');
  assert.equal((await echoed).data, 'via the protocol list');
  room.close();

  // No room protocol offered: the bare marker is what the server selects.
  const bare = connect({ url: `http://${server.addr}/rooms/echo/proto`, WebSocket, protocols: [], tokenIn: 'protocol', token: mint('acme', '1h') });
  assert.equal((await next(bare, 'open')).protocol, 'switchboard.token');
  bare.close();
});

test('a failing token callback is an error and a retry, not a crash', { timeout: 30_000 }, async (t) => {
  if (MISSING) return t.skip(MISSING);
  const server = await startServer({ args: ['--auth-kind', 'echo=token', '--jwt-secret-file', secretFile] });
  let calls = 0;
  const room = connect({
    url: `http://${server.addr}/rooms/echo/flaky`,
    WebSocket,
    reconnect: { min: 50, max: 100 },
    token: () => {
      calls += 1;
      if (calls === 1) throw new Error('token service down');
      return mint('acme', '1h');
    },
  });
  const failed = await next(room, 'error');
  assert.match(failed.error.message, /token service down/);
  const opened = await next(room, 'open');
  assert.equal(opened.protocol, 'json');
  assert.equal(calls, 2);
  room.close();
});

// The browser client (web/switchboard.js) against the real server binary's
// echo room, with the `ws` package as its WebSocket: open, status events, a
// JSON round trip, reconnecting across a server restart on the same port
// with a message queued while the server was down, and moving on to the
// next of several servers when the first one goes away.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { missingBinary, startServer, stopAll } = require('./server.js');
const { loadClient, next } = require('./client.js');

const MISSING = missingBinary();

let connect;
before(async () => {
  if (MISSING) return;
  ({ connect } = await loadClient());
});

after(stopAll);

test('open, status events and a sendJson round trip through the echo room', { timeout: 30_000 }, async (t) => {
  if (MISSING) return t.skip(MISSING);
  const server = await startServer();
  const room = connect({ url: `http://${server.addr}/rooms/echo/client-live`, WebSocket });
  assert.equal(room.url, `ws://${server.addr}/rooms/echo/client-live`);
  const statuses = [];
  room.on('status', ({ status }) => statuses.push(status));

  const opened = await next(room, 'open');
  assert.deepEqual(opened, { protocol: 'json', reconnected: false });
  assert.equal(room.status, 'open');
  assert.equal(room.protocol, 'json');

  const value = { type: 'hello', text: 'ab€', n: [1, 2.5, null], nested: { ok: true } };
  const echoed = next(room, 'message');
  assert.equal(room.sendJson(value), true);
  const got = await echoed;
  assert.equal(got.data, JSON.stringify(value));
  assert.deepEqual(got.json, value);

  const plain = next(room, 'message');
  room.send('not json');
  assert.deepEqual(await plain, { data: 'not json', json: undefined });

  const binary = next(room, 'message');
  room.send(new Uint8Array([0, 1, 254, 255]));
  const back = await binary;
  assert.ok(back.data instanceof ArrayBuffer, 'binary messages arrive as ArrayBuffer');
  assert.deepEqual([...new Uint8Array(back.data)], [0, 1, 254, 255]);
  assert.equal(back.json, undefined);

  const closed = next(room, 'close');
  room.close(4000, 'bye');
  assert.equal(room.status, 'closed');
  const detail = await closed;
  assert.equal(detail.code, 4000);
  assert.equal(detail.willReconnect, false);
  assert.equal(detail.delay, null);
  assert.deepEqual(statuses, ['open', 'closed']);
  await server.stop();
});

test('reconnects after the server restarts on the same port and flushes the queue', { timeout: 60_000 }, async (t) => {
  if (MISSING) return t.skip(MISSING);
  const first = await startServer();
  const port = first.addr.slice(first.addr.lastIndexOf(':') + 1);
  // Short delays keep the test quick; the behaviour is the default one.
  const room = connect({ url: `ws://${first.addr}/rooms/echo/restart`, WebSocket, reconnect: { min: 50, max: 400 } });
  const statuses = [];
  room.on('status', ({ status }) => statuses.push(status));
  const closes = [];
  room.on('close', (detail) => closes.push(detail));

  await next(room, 'open');
  const before = next(room, 'message');
  room.sendJson({ seq: 0 });
  assert.deepEqual((await before).json, { seq: 0 });

  // The server's shutdown closes the room with 1001 (going away).
  const wentAway = next(room, 'close');
  await first.stop();
  const away = await wentAway;
  assert.equal(away.code, 1001);
  assert.equal(away.willReconnect, true);
  assert.equal(typeof away.delay, 'number');
  assert.ok(away.delay >= 25 && away.delay <= 50, `first delay ${away.delay} within [min * (1 - jitter), min]`);
  assert.equal(room.status, 'reconnecting');

  // Sent while the server is down: queued, then sent by the next socket.
  assert.equal(room.sendJson({ seq: 1, queued: true }), true);
  assert.equal(room.sendJson({ seq: 2, queued: true }), true);
  assert.equal(room.queued, 2);

  // Attempts while nothing listens are refused (1006) and back off.
  await next(room, 'close', (d) => d.code === 1006);
  assert.equal(room.status, 'reconnecting');

  const reopened = next(room, 'open');
  const flushed = [];
  const bothFlushed = new Promise((resolve) => {
    room.on('message', ({ json }) => {
      flushed.push(json);
      if (flushed.length === 2) resolve();
    });
  });
  const second = await startServer({ listen: `127.0.0.1:${port}` });
  assert.equal(second.addr, first.addr);
  assert.deepEqual(await reopened, { protocol: 'json', reconnected: true });
  await bothFlushed;
  assert.deepEqual(flushed, [{ seq: 1, queued: true }, { seq: 2, queued: true }]);
  assert.equal(room.queued, 0);

  assert.deepEqual(statuses, ['open', 'reconnecting', 'open']);
  assert.ok(closes.length >= 2);
  assert.ok(closes.every((d) => d.willReconnect && d.delay !== null));
  assert.ok(closes.slice(1).every((d) => d.code === 1006 && !d.wasClean));

  const closed = next(room, 'close');
  room.close();
  assert.equal((await closed).willReconnect, false);
  assert.equal(room.status, 'closed');
  await second.stop();
});

test('with several servers, a room whose server went away reconnects to the next one', { timeout: 60_000 }, async (t) => {
  if (MISSING) return t.skip(MISSING);
  const [first, second] = [await startServer(), await startServer()];
  const room = connect({ kind: 'echo', id: 'servers', servers: [`http://${first.addr}`, `http://${second.addr}`], location: 'http://page.invalid/', WebSocket, reconnect: { min: 50, max: 400 } });
  assert.deepEqual(room.urls, [`ws://${first.addr}/rooms/echo/servers`, `ws://${second.addr}/rooms/echo/servers`]);
  await next(room, 'open');
  assert.equal(room.url, room.urls[0]);
  const echoed = next(room, 'message');
  room.sendJson({ on: 'first' });
  assert.deepEqual((await echoed).json, { on: 'first' });

  // The first server stops for good; the room lands on the second.
  const away = next(room, 'close');
  const reopened = next(room, 'open');
  await first.stop();
  assert.equal((await away).code, 1001);
  assert.deepEqual(await reopened, { protocol: 'json', reconnected: true });
  assert.equal(room.url, room.urls[1]);
  const again = next(room, 'message');
  room.sendJson({ on: 'second' });
  assert.deepEqual((await again).json, { on: 'second' });

  room.close();
  await second.stop();
});

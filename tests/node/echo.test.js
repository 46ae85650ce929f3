// The echo room through Node's `ws`, an independent implementation, with
// permessage-deflate on and off.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startServer } = require('./server.js');

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

// Resolves with the open socket; `ws.agreed` is the server's raw
// Sec-WebSocket-Extensions answer (ws.extensions lists only names).
function open(path, options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${server.addr}${path}`, ['json'], options);
    ws.once('upgrade', (res) => { ws.agreed = res.headers['sec-websocket-extensions'] || ''; });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws) {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
}

for (const perMessageDeflate of [false, true]) {
  test(`echo with perMessageDeflate=${perMessageDeflate}`, async () => {
    const ws = await open('/rooms/echo/node', { perMessageDeflate });
    assert.equal(ws.protocol, 'json');
    assert.equal(ws.extensions.includes('permessage-deflate'), perMessageDeflate);
    for (const size of [0, 10, 200, 70_000, 1 << 20]) {
      const text = 'ab€'.repeat(size / 3 | 0);
      ws.send(text);
      const got = await nextMessage(ws);
      assert.equal(got.isBinary, false);
      assert.equal(got.data.toString('utf8'), text);
      const bin = Buffer.alloc(size, 7);
      ws.send(bin);
      const back = await nextMessage(ws);
      assert.equal(back.isBinary, true);
      assert.ok(back.data.equals(bin));
    }
    const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.close(4000, 'bye');
    assert.deepEqual(await closed, { code: 4000, reason: '' });
  });
}

test('ws compression with no context takeover on both sides', async () => {
  const ws = await open('/rooms/echo/nctx', {
    perMessageDeflate: { serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 0 },
  });
  assert.equal(ws.agreed, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
  for (let i = 0; i < 20; i++) {
    ws.send(`repeat ${i} `.repeat(50));
    assert.equal((await nextMessage(ws)).data.toString(), `repeat ${i} `.repeat(50));
  }
  ws.close();
});

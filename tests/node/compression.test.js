// permessage-deflate policies through Node's `ws`, an independent
// implementation that checks every compressed frame it inflates: what each
// policy answers to ws's offer (Chromium's) and Firefox's, echoes in both
// directions with context kept or not, and a broadcast to members with and
// without compression, and a dedicated compressor freed while idle.
'use strict';
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startServer, stopAll } = require('./server.js');

after(stopAll);

// Resolves with the open socket; `ws.agreed` is the server's raw
// Sec-WebSocket-Extensions answer.
function open(server, path, perMessageDeflate) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${server.addr}${path}`, { perMessageDeflate });
    ws.once('upgrade', (res) => { ws.agreed = res.headers['sec-websocket-extensions'] || ''; });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

// Collects every message; next() resolves with the next one.
function inbox(ws) {
  const queued = [];
  const waiting = [];
  ws.on('message', (data, isBinary) => {
    const message = { text: isBinary ? null : data.toString('utf8'), data };
    if (waiting.length) waiting.shift()(message); else queued.push(message);
  });
  return { next: () => (queued.length ? Promise.resolve(queued.shift()) : new Promise((resolve) => waiting.push(resolve))) };
}

function json(len, seed) {
  const items = [];
  let size = 2;
  for (let i = 0; size < len; i++) {
    const item = JSON.stringify({ id: i, seed, name: `user${i % 13}`, online: i % 2 === 0 });
    items.push(item);
    size += item.length + 1;
  }
  return `[${items.join(',')}]`;
}

// ws's default offer is Chromium's; clientMaxWindowBits: false makes Firefox's.
const CHROMIUM = { threshold: 0 };
const FIREFOX = { threshold: 0, clientMaxWindowBits: false };

const ANSWERS = {
  off: '',
  shared: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
  dedicated: 'permessage-deflate; client_no_context_takeover',
};

for (const policy of ['off', 'shared', 'dedicated']) {
  test(`--compression ${policy}: the answer to Chromium's and Firefox's offers, and echoes both ways`, async () => {
    const server = await startServer({ args: ['--compression', policy, '--compression-threshold', '64'] });
    for (const [browser, offer] of [['chromium', CHROMIUM], ['firefox', FIREFOX]]) {
      const ws = await open(server, `/rooms/echo/${policy}-${browser}`, offer);
      assert.equal(ws.agreed, ANSWERS[policy], `${browser}'s offer`);
      const messages = inbox(ws);
      // The same text again and again: with context kept, later copies
      // refer back to earlier ones, which ws must resolve.
      for (const [i, len] of [0, 10, 63, 64, 500, 4000, 4000, 4000, 70_000, 1 << 20].entries()) {
        const text = json(len, i % 3);
        ws.send(text);
        assert.equal((await messages.next()).text, text, `${browser}, message ${i} of ${text.length} bytes`);
      }
      const binary = Buffer.from(json(10_000, 9));
      ws.send(binary);
      assert.ok((await messages.next()).data.equals(binary));
      ws.close();
    }
    await server.stop();
  });
}

test('a broadcast reaches ws members with and without compression', async () => {
  const server = await startServer();
  const path = '/rooms/broadcast/node-mix';
  const members = [];
  for (const perMessageDeflate of [true, false, CHROMIUM, FIREFOX, false]) {
    const ws = await open(server, path, perMessageDeflate);
    assert.equal(ws.agreed, perMessageDeflate ? ANSWERS.shared : '');
    members.push({ ws, messages: inbox(ws) });
  }
  const sender = await open(server, path, true);
  const relayed = async ({ messages }) => {
    for (;;) {
      const m = await messages.next();
      if (!m.text.startsWith('{"type":')) return m.text;
    }
  };
  for (const len of [100, 2000, 200_000]) {
    const text = json(len, len);
    sender.send(text);
    for (const member of members) assert.equal(await relayed(member), text, `${len} bytes`);
  }
  for (const { ws } of members) ws.close();
  sender.close();
  await server.stop();
});

// The `switchboard_deflate_compressors` gauge of /metrics.
async function compressorsHeld(server) {
  const body = await (await fetch(`http://${server.addr}/metrics`)).text();
  const line = body.split('\n').find((l) => l.startsWith('switchboard_deflate_compressors '));
  assert.ok(line, 'the gauge is in /metrics');
  return Number(line.split(' ')[1]);
}

test('--compression dedicated: after the idle room frees the compressor, ws still inflates what follows', async () => {
  const server = await startServer({ args: ['--compression', 'dedicated', '--hibernate-after', '1s'] });
  const ws = await open(server, '/rooms/echo/node-release', CHROMIUM);
  assert.equal(ws.agreed, ANSWERS.dedicated);
  const messages = inbox(ws);
  for (let i = 0; i < 2; i++) {
    const text = json(3000, i);
    ws.send(text);
    assert.equal((await messages.next()).text, text);
  }
  assert.equal(await compressorsHeld(server), 1);
  // The room hibernates 1 s after its last event and frees the compressor.
  let held = 1;
  for (let tries = 0; tries < 50 && held !== 0; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    held = await compressorsHeld(server);
  }
  assert.equal(held, 0, 'the idle compressor was freed');
  // ws kept its window; the fresh compressor refers to none of it, and the
  // next message refers back to the one before.
  for (let i = 0; i < 3; i++) {
    const text = json(3000, i);
    ws.send(text);
    assert.equal((await messages.next()).text, text, `message ${i} after the release`);
  }
  assert.equal(await compressorsHeld(server), 1);
  ws.close();
  await server.stop();
});

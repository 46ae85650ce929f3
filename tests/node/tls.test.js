// wss:// and HTTPS through Node's `ws` and `https`, trusting a CA made for
// the test (the tls_test_certs example, rcgen): the echo room with and
// without compression, TLS 1.2 and 1.3, ALPN http/1.1, the browser client
// script over HTTPS, and a client that does not trust the CA refused.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const WebSocket = require('ws');
const { startServer, testCertificates } = require('./server.js');

let server;
let ca;
let dir;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-tls-'));
  const files = testCertificates(dir);
  ca = fs.readFileSync(files.ca);
  server = await startServer({ args: ['--listen-tls', '127.0.0.1:0', '--tls-cert', files.cert, '--tls-key', files.key] });
});
after(async () => {
  await server?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const port = () => server.tlsAddr.split(':').pop();

function open(pathname, options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://localhost:${port()}${pathname}`, options);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws) {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
}

for (const perMessageDeflate of [false, true]) {
  test(`wss:// echo with perMessageDeflate=${perMessageDeflate}`, async () => {
    const ws = await open('/rooms/echo/node-tls', { ca, perMessageDeflate });
    assert.equal(ws.extensions.includes('permessage-deflate'), perMessageDeflate);
    assert.equal(ws._socket.getProtocol(), 'TLSv1.3');
    for (const size of [0, 10, 70_000, 1 << 20]) {
      const text = 'x€'.repeat(size / 2 | 0);
      ws.send(text);
      const got = await nextMessage(ws);
      assert.equal(got.data.toString('utf8'), text);
    }
    const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000);
    assert.equal(await closed, 1000);
  });
}

test('TLS 1.2 is accepted too', async () => {
  const ws = await open('/rooms/echo/node-tls12', { ca, maxVersion: 'TLSv1.2' });
  assert.equal(ws._socket.getProtocol(), 'TLSv1.2');
  ws.send('over TLS 1.2');
  assert.equal((await nextMessage(ws)).data.toString(), 'over TLS 1.2');
  ws.close();
});

test('ALPN agrees on http/1.1; a client offering only h2 is refused', async () => {
  const agreed = await new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: port(), servername: 'localhost', ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      resolve(socket.alpnProtocol);
      socket.end();
    });
    socket.once('error', reject);
  });
  assert.equal(agreed, 'http/1.1');
  await assert.rejects(new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: port(), servername: 'localhost', ca, ALPNProtocols: ['h2'] }, () => {
      socket.end();
      resolve();
    });
    socket.once('error', reject);
  }), /no application protocol|NO_APPLICATION_PROTOCOL/i);
});

test('the browser client script is served over HTTPS', async () => {
  const { status, body } = await new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: port(), servername: 'localhost', path: '/client.js', ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).once('error', reject);
  });
  assert.equal(status, 200);
  assert.match(body, /WebSocket/);
});

test('a client that does not trust the CA is refused, and the plain listener still serves', async () => {
  await assert.rejects(open('/rooms/echo/untrusted', {}), /self[- ]signed|unable to verify|SELF_SIGNED/i);
  const ws = await new Promise((resolve, reject) => {
    const plain = new WebSocket(`ws://${server.addr}/rooms/echo/plain`);
    plain.once('open', () => resolve(plain));
    plain.once('error', reject);
  });
  ws.send('plain');
  assert.equal((await nextMessage(ws)).data.toString(), 'plain');
  ws.close();
});

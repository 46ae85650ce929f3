// The apps over HTTPS in headless Chromium: the echo page loaded from the
// TLS listener opens its WebSocket as wss:// and gets its messages back.
// The browser trusts the test server's key through
// --ignore-certificate-errors-spki-list (its SPKI hash), not by ignoring
// certificate errors in general; the certificate comes from the
// tls_test_certs example (rcgen), made for this run.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const nodeServer = require('../node/server.js');
const {
  REPORTS, checkPrerequisites, launchBrowser, newUser, scratchDir, screenshot, uniqueRoom, waitFor,
} = require('./helpers');

let scratch;
let server;
let browser;

/** base64 SHA-256 of the server certificate's public key (the chain's first). */
function spkiHash(chainFile) {
  const leaf = fs.readFileSync(chainFile, 'utf8').split(/(?<=-----END CERTIFICATE-----)/)[0];
  const spki = new crypto.X509Certificate(leaf).publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(spki).digest('base64');
}

before(async () => {
  checkPrerequisites();
  scratch = scratchDir('tls');
  const files = nodeServer.testCertificates(path.join(scratch.dir, 'certs'));
  server = await nodeServer.startServer({
    args: ['--listen-tls', '127.0.0.1:0', '--tls-cert', files.cert, '--tls-key', files.key],
    logFile: path.join(REPORTS, 'tls-server.log'),
  });
  browser = await launchBrowser({ extraArgs: [`--ignore-certificate-errors-spki-list=${spkiHash(files.cert)}`] });
  console.log(`chromium ${browser.version()}, server pid ${server.pid} on ${server.addr} and ${server.tlsAddr}`);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  scratch?.cleanup();
});

test('the echo page over https: its WebSocket is wss:// and echoes', { timeout: 60_000 }, async () => {
  const page = await newUser(browser);
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const port = server.tlsAddr.split(':').pop();
  const response = await page.goto(`https://localhost:${port}/apps/echo/?room=${uniqueRoom('tls')}`);
  assert.equal(response.status(), 200);
  const security = await response.securityDetails();
  assert.equal(security?.protocol, 'TLS 1.3');
  await waitFor(page, 'status open', () => document.querySelector('#status').dataset.status === 'open', null,
    () => document.querySelector('#status').textContent);
  assert.equal(sockets.length, 1);
  assert.match(sockets[0], new RegExp(`^wss://localhost:${port}/rooms/echo/`));

  await page.fill('#text', 'over TLS');
  await page.press('#text', 'Enter');
  await waitFor(page, 'the echo of the message',
    () => [...document.querySelectorAll('#log li[data-dir="received"] .text')].some((e) => e.textContent === 'over TLS'),
    null, () => [...document.querySelectorAll('#log li')].map((e) => e.textContent));
  const script = await page.evaluate(async () => (await fetch('/client.js')).status);
  assert.equal(script, 200);
  await screenshot(page, 'tls-echo');
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a page from another certificate is refused: the browser trusts only the pinned key', { timeout: 60_000 }, async () => {
  const other = await nodeServer.startServer({
    args: ['--listen-tls', '127.0.0.1:0', ...(() => {
      const files = nodeServer.testCertificates(path.join(scratch.dir, 'other'));
      return ['--tls-cert', files.cert, '--tls-key', files.key];
    })()],
    logFile: path.join(REPORTS, 'tls-other-server.log'),
  });
  try {
    const page = await newUser(browser);
    await assert.rejects(page.goto(`https://localhost:${other.tlsAddr.split(':').pop()}/`), /ERR_CERT/);
    await page.close();
  } finally {
    await other.stop();
  }
});

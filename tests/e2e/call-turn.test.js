// The call page through a real TURN server: Debian's coturn, started here
// on loopback with `use-auth-secret` and the secret from a file, and
// switchboard servers handing out TURN credentials, with the same secret or
// another. Both pages use relays only (`?relay`, i.e. iceTransportPolicy
// "relay"): with the right secret the two users decode each other's video
// over a relay pair; with the wrong one coturn refuses the credentials,
// nothing connects, and the page says so. Credentials with a short TTL get
// a relay at first and a 401 once expired. coturn's log is kept in
// target/test-reports/e2e/call-turn-coturn.log.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const {
  CHROMIUM, REPORTS, WAIT_MS, checkPrerequisites, newUser, scratchDir, screenshot, waitFor,
} = require('./helpers.js');
const { startServer } = require('../node/server.js');

const TURNSERVER = process.env.TURNSERVER_PATH || '/usr/bin/turnserver';
// The page names a connection that is not up after 20 s; allow for that
// and a loaded machine.
const FAIL_WAIT_MS = 60_000;

let scratch;
let coturn;
let good;
let bad;
let brief;
let browser;
let turnPort;

/** A free port on 127.0.0.1 (TCP; coturn listens on UDP and TCP there). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Starts coturn on 127.0.0.1:`port` (relays on 127.0.0.1 too) with the
 * TURN REST secret in its config file, never on its command line. Resolves
 * once it listens, with { pid, stop() }; stop() sends SIGTERM to that PID.
 */
async function startCoturn(dir, port, secret) {
  const config = path.join(dir, 'turnserver.conf');
  fs.writeFileSync(config, [
    'listening-ip=127.0.0.1',
    'relay-ip=127.0.0.1',
    `listening-port=${port}`,
    'min-port=49152',
    'max-port=65535',
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    'realm=switchboard.test',
    'fingerprint',
    'no-tls',
    'no-dtls',
    'no-cli',
    // Both peers' relays are on 127.0.0.1, so the relays talk to loopback.
    'allow-loopback-peers',
    'no-multicast-peers',
    // Sessions, allocations and refusals in the log.
    'verbose',
    'log-file=stdout',
    'simple-log',
    `pidfile=${path.join(dir, 'turnserver.pid')}`,
    `userdb=${path.join(dir, 'turndb')}`,
    '',
  ].join('\n'), { mode: 0o600 });
  fs.mkdirSync(REPORTS, { recursive: true });
  const log = fs.openSync(COTURN_LOG, 'w');
  const child = spawn(TURNSERVER, ['-c', config], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const server = {
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      process.kill(child.pid, 'SIGTERM');
      let timer;
      const outcome = await Promise.race([exited, new Promise((resolve) => { timer = setTimeout(resolve, WAIT_MS, 'timeout'); })]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        process.kill(child.pid, 'SIGKILL');
        await exited;
      }
      return exited;
    },
  };
  // Listening once a TCP connect to its port succeeds.
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`coturn exited (code ${child.exitCode}); see ${COTURN_LOG}`);
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (up) return server;
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`coturn did not listen on 127.0.0.1:${port} within ${WAIT_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const COTURN_LOG = path.join(REPORTS, 'call-turn-coturn.log');

/** Waits until coturn's log has a line matching `pattern` (it logs as it goes). */
async function waitForLog(pattern) {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (fs.readFileSync(COTURN_LOG, 'utf8').split('\n').some((line) => pattern.test(line))) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`coturn's log (${COTURN_LOG}) has no line matching ${pattern}`);
}

function startSwitchboard(label, secretFile, ttl = '10m') {
  return startServer({
    args: ['--call-turn', `turn:127.0.0.1:${turnPort}?transport=udp`, '--call-turn-secret-file', secretFile, '--call-turn-ttl', ttl],
    logFile: path.join(REPORTS, `call-turn-${label}-server.log`),
  });
}

before(async () => {
  checkPrerequisites();
  if (!fs.existsSync(TURNSERVER)) {
    throw new Error(`the TURN test needs ${TURNSERVER} (apt-get install coturn; scripts/test.sh --part deps installs it), or set TURNSERVER_PATH`);
  }
  scratch = scratchDir('call-turn');
  const secret = crypto.randomBytes(24).toString('hex');
  const goodSecret = path.join(scratch.dir, 'turn-secret');
  const badSecret = path.join(scratch.dir, 'wrong-turn-secret');
  fs.writeFileSync(goodSecret, `${secret}\n`, { mode: 0o600 });
  fs.writeFileSync(badSecret, `${crypto.randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
  turnPort = await freePort();
  coturn = await startCoturn(scratch.dir, turnPort, secret);
  good = await startSwitchboard('good', goodSecret);
  bad = await startSwitchboard('bad', badSecret);
  brief = await startSwitchboard('brief', goodSecret, '3s');
  const { chromium } = require('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: ['--disable-gpu', '--disable-quic', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection'],
  });
  console.log(`chromium ${browser.version()}, coturn pid ${coturn.pid} on 127.0.0.1:${turnPort}, servers ${good.addr} (right secret), ${bad.addr} (wrong secret)`);
});

after(async () => {
  await browser?.close();
  await good?.stop();
  await bad?.stop();
  await brief?.stop();
  await coturn?.stop();
  scratch?.cleanup();
});

const seen = () => ({
  me: window.call?.state.me,
  ice: window.call?.state.ice,
  notices: [...document.querySelectorAll('#notices li')].map((li) => `${li.dataset.kind}: ${li.textContent}`),
  tiles: [...document.querySelectorAll('.tile.remote')].map((t) => `${t.dataset.peer}: ${t.dataset.state}`),
});

/** Two users in a new call of `server`, relays only; their pages and ids. */
async function twoUsers(server, room) {
  const url = `${server.url}/apps/call/?room=${room}&relay`;
  const pages = [];
  for (const who of ['A', 'B']) {
    const page = await newUser(browser);
    await page.goto(url);
    page.id = await waitFor(page, `${who}: joined`, () => window.call?.state.me, null, seen);
    pages.push(page);
  }
  return pages;
}

test('call through coturn: relays only, with the credentials switchboard issued', { timeout: 120_000 }, async () => {
  const [a, b] = await twoUsers(good, crypto.randomUUID());
  const ice = await a.evaluate(() => window.call.state.ice);
  assert.equal(ice.length, 1);
  assert.deepEqual(ice[0].urls, [`turn:127.0.0.1:${turnPort}?transport=udp`]);
  assert.match(ice[0].username, new RegExp(`^\\d+:${a.id}$`));
  for (const [who, page, other] of [['A', a, b.id], ['B', b, a.id]]) {
    await waitFor(page, `${who}: the other's video playing`, (id) => {
      const tile = document.querySelector(`.tile.remote[data-peer="${id}"]`);
      const video = tile?.querySelector('video');
      return tile?.dataset.state === 'connected' && video.videoWidth > 0 && !video.paused;
    }, other, seen);
    // The selected pair's stats may still say in-progress while media
    // already flows (its check's answer is counted a moment later).
    let pair = await page.evaluate((id) => window.call.selectedPair(id), other);
    const settled = Date.now() + WAIT_MS;
    while (pair?.state !== 'succeeded' && Date.now() < settled) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      pair = await page.evaluate((id) => window.call.selectedPair(id), other);
    }
    assert.deepEqual(pair, { local: 'relay', remote: 'relay', state: 'succeeded' }, `${who}: the selected pair is a relay pair`);
    const first = await page.evaluate((id) => window.call.framesDecoded(id), other);
    const deadline = Date.now() + WAIT_MS;
    let later = first;
    while (later <= first && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      later = await page.evaluate((id) => window.call.framesDecoded(id), other);
    }
    assert.ok(later > first, `${who}: frames decoded through the relay grow: ${first} -> ${later}`);
  }
  for (const [who, page, other] of [['A', a, b.id], ['B', b, a.id]]) {
    const errors = await page.evaluate((id) => [...window.call.remotes.get(id).candidateErrors], other);
    assert.deepEqual(errors, [], `${who}: the TURN server accepted the credentials at once`);
  }
  // coturn's own word: an allocation for A's username.
  await waitForLog(new RegExp(`user <\\d+:${a.id}>: incoming packet ALLOCATE processed, success`));
  await screenshot(a, 'call-turn-relayed-A');
  await screenshot(b, 'call-turn-relayed-B');
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.close();
  await b.close();
});

test('call through coturn with credentials from the wrong secret: no connection, and the page says so', { timeout: 120_000 }, async () => {
  const [a, b] = await twoUsers(bad, crypto.randomUUID());
  const deadline = Date.now() + FAIL_WAIT_MS;
  let notice = null;
  while (Date.now() < deadline && !notice) {
    notice = await a.evaluate((id) => document.querySelector(`#notices [data-kind="connect-${id}"]`)?.textContent ?? null, b.id);
    if (!notice) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.ok(notice, `A names the connection to B that did not come up: ${JSON.stringify(await a.evaluate(seen))}`);
  assert.match(notice, /Could not connect/);
  assert.match(notice, /TURN server said: .*401/, 'coturn refused the credentials (401 Unauthorized)');
  assert.match(notice, /TURN relays only/);
  const tile = await a.evaluate((id) => document.querySelector(`.tile.remote[data-peer="${id}"]`).dataset.state, b.id);
  assert.notEqual(tile, 'connected');
  assert.equal(await a.evaluate((id) => window.call.framesDecoded(id), b.id), 0, 'no video came through');
  await waitForLog(new RegExp(`user <\\d+:${a.id}>: incoming packet message processed, error 401`));
  await screenshot(a, 'call-turn-refused-A');
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.close();
  await b.close();
});

// In the page: gathers candidates with `ice` and relays only; the candidate
// types found and the errors the TURN server answered.
async function gather(ice) {
  const pc = new RTCPeerConnection({ iceServers: ice.iceServers, iceTransportPolicy: 'relay' });
  const found = { candidates: [], errors: [] };
  pc.onicecandidate = ({ candidate }) => { if (candidate) found.candidates.push(candidate.type); };
  pc.onicecandidateerror = (event) => found.errors.push(event.errorCode);
  pc.createDataChannel('probe');
  await pc.setLocalDescription();
  await new Promise((resolve) => {
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    setTimeout(resolve, 15_000);
  });
  pc.close();
  return found;
}

test('TURN credentials from switchboard work until their expiry and not after', { timeout: 120_000 }, async () => {
  const page = await newUser(browser);
  await page.goto(`${brief.url}/`);
  const ice = await page.evaluate(async () => (await fetch('/api/call/ice')).json());
  assert.ok(ice.expires * 1000 > Date.now(), `expires ${ice.expires}`);
  const fresh = await page.evaluate(gather, ice);
  assert.ok(fresh.candidates.includes('relay'), `a relay while fresh: ${JSON.stringify(fresh)}`);
  // --call-turn-ttl 3s: a second past the expiry in the username, coturn refuses them.
  const wait = ice.expires * 1000 + 1500 - Date.now();
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
  const stale = await page.evaluate(gather, ice);
  assert.deepEqual(stale.candidates, [], `no relay once expired: ${JSON.stringify(stale)}`);
  assert.ok(stale.errors.includes(401), `coturn answered 401: ${JSON.stringify(stale)}`);
  assert.deepEqual(page.errors, []);
  await page.close();
});

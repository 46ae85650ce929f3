// The clicks dashboard in headless Chromium against the real server binary
// (docs/clicks.md, docs/e2e.md): account A signs in with an API key, the
// test clicks A's short link as visitors from several countries (through
// loopback as a trusted proxy, located by the test geo database) and the
// map, the counters and the feed update live; account B's dashboard sees
// none of it, and a token for A cannot open B's room; the server restarts,
// the badge shows the outage, the page reconnects by itself and the
// snapshot shows the same totals; a burst of visitors at once arrives as
// `clicks` groups and every click is counted. Screenshots:
// target/test-reports/e2e/clicks-*.png.
//
//   node --test --test-concurrency=1 tests/e2e/clicks.test.js
//
// The steps build on each other and run in order; once one fails, the
// later ones are skipped instead of failing for the same reason.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const {
  BINARY, checkPrerequisites, geoFixture, launchBrowser, newUser, scratchDir, screenshot, startServer, waitFor,
} = require('./helpers');

// Visitors by the address a trusted proxy reports for them, and where the
// test geo database puts them. Loopback itself (no header) is Wellington.
const VISITORS = [
  { forwardedFor: '203.0.113.7', country: 'DE', city: 'Berlin' },
  { forwardedFor: '198.51.100.9', country: 'JP', city: 'Tokyo' },
  { forwardedFor: '2001:db8::5', country: 'FR', city: 'Paris' },
  { forwardedFor: '203.0.113.8', country: 'DE', city: 'Berlin' },
  { forwardedFor: null, country: 'NZ', city: 'Wellington' },
];

let scratch;
let dataDir;
let geoDb;
let server;
let browser;
const keys = {};
const flags = () => ['--trusted-proxy', '127.0.0.1'];
const run = { failed: false };

function cli(...args) {
  const out = spawnSync(BINARY, [...args, '--data-dir', dataDir], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`switchboard ${args.join(' ')}: ${out.stderr}`);
  return out.stdout.trim();
}

before(async () => {
  checkPrerequisites();
  scratch = scratchDir('clicks');
  dataDir = path.join(scratch.dir, 'data');
  fs.mkdirSync(dataDir);
  geoDb = geoFixture(scratch.dir);
  keys.a = cli('accounts', 'add', 'alpha');
  keys.b = cli('accounts', 'add', 'bravo');
  server = await startServer({ label: 'clicks', dataDir, geoDb, extra: flags() });
  browser = await launchBrowser();
  console.log(`chromium ${browser.version()}, server pid ${server.pid} on ${server.addr}`);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  scratch?.cleanup();
});

function step(name, fn) {
  test(name, { timeout: 90_000 }, async (t) => {
    if (run.failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn();
    } catch (error) {
      run.failed = true;
      throw error;
    }
  });
}

/** One HTTP request; resolves to { status, headers, body }. */
function request(method, urlPath, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${server.url}${urlPath}`, { method, headers, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { data += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A dashboard token for an API key's account (POST /api/token). */
async function dashboardToken(key) {
  const reply = await request('POST', '/api/token', { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(reply.status, 200, reply.body);
  return JSON.parse(reply.body).token;
}

const seen = () => ({
  status: window.clicksState?.status,
  total: window.clicksState?.total,
  countries: window.clicksState?.countries,
  feed: [...document.querySelectorAll('#feed li')].map((li) => li.textContent).slice(0, 5),
  error: document.querySelector('#login-error')?.textContent,
});

const dashboard = {};

step('account A signs in with an API key and its dashboard connects', async () => {
  const created = await request('POST', '/api/links', {
    headers: { Authorization: `Bearer ${keys.a}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ url: 'https://example.com/launch', slug: 'launch', geo: { DE: 'https://example.de/launch' } }),
  });
  assert.equal(created.status, 201, created.body);

  const page = await newUser(browser);
  dashboard.a = page;
  await page.goto(`${server.url}/apps/clicks/`);
  await page.fill('#api-key', keys.a);
  await page.press('#api-key', 'Enter');
  await waitFor(page, 'A connected with a snapshot', () => window.clicksState.status === 'open' && window.clicksState.snapshots >= 1, null, seen);
  assert.equal(await page.textContent('#account'), 'alpha');
  assert.equal(await page.textContent('#status'), 'connected');
  assert.equal(await page.isVisible('#login'), false, 'the sign-in form is gone');
  assert.equal(await page.isVisible('#map'), true);
  assert.equal(await page.locator('#links tr[data-slug="launch"]').count(), 1, 'the link is in the table');
  assert.equal(await page.locator('#map path[data-country]').count() > 150, true, 'the world map is drawn');
  assert.ok(await page.evaluate(() => sessionStorage.getItem('switchboard.clicks.token')), 'the token is kept for the tab');
  await screenshot(page, 'clicks-1-signed-in');
});

step('account B\'s dashboard opens with a token for B; a token for A cannot open B\'s room', async () => {
  const tokenB = await dashboardToken(keys.b);
  const page = await newUser(browser);
  dashboard.b = page;
  await page.goto(`${server.url}/apps/clicks/?token=${encodeURIComponent(tokenB)}`);
  await waitFor(page, 'B connected with a snapshot', () => window.clicksState.status === 'open' && window.clicksState.snapshots >= 1, null, seen);
  assert.equal(await page.textContent('#account'), 'bravo');
  assert.equal(new URL(page.url()).search, '', 'the token is taken out of the address bar');

  const tokenA = await dashboardToken(keys.a);
  const refused = await page.evaluate(({ url, token }) => new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/rooms/clicks/bravo?token=${encodeURIComponent(token)}`, ['json']);
    ws.onopen = () => resolve('open');
    ws.onclose = (e) => resolve(`closed ${e.code}`);
  }), { url: server.url, token: tokenA });
  assert.equal(refused, 'closed 1006', 'the upgrade is refused before the 101');
  const status = await request('GET', '/rooms/clicks/bravo', {
    headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', Authorization: `Bearer ${tokenA}` },
  }).catch((e) => ({ status: e.message }));
  assert.equal(status.status, 403, 'a valid token for another account is 403');
});

step('visitors from several countries click A\'s link: map, counters and feed update live', async () => {
  const page = dashboard.a;
  for (const visitor of VISITORS) {
    const headers = visitor.forwardedFor ? { 'X-Forwarded-For': visitor.forwardedFor, Referer: 'https://news.example.net/post/1' } : {};
    const reply = await request('GET', '/l/launch', { headers });
    assert.equal(reply.status, 302);
    assert.equal(reply.headers['cache-control'], 'private, max-age=0');
    assert.equal(reply.headers.location, visitor.country === 'DE' ? 'https://example.de/launch' : 'https://example.com/launch');
  }
  await waitFor(page, 'five clicks counted', () => window.clicksState.total === 5 && document.querySelector('#total').textContent === '5', null, seen);
  const shaded = await page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll('#map path.hit')].map((p) => [p.dataset.country, Number(p.dataset.count)])));
  assert.deepEqual(shaded, { DE: 2, JP: 1, FR: 1, NZ: 1 });
  assert.equal(await page.textContent('#country-count'), '4');
  assert.equal(await page.getAttribute('#links tr[data-slug="launch"] td.num', 'data-clicks'), '5');
  const feed = await page.$$eval('#feed li', (lis) => lis.map((li) => li.textContent));
  assert.equal(feed.length, 5);
  assert.match(feed[0], /\/launch · Wellington, New Zealand/, 'the newest click is on top');
  assert.match(feed[4], /\/launch · Berlin, Germany · via news\.example\.net/);
  assert.equal(await page.evaluate(() => window.clicksState.pulses), 5, 'a pulse per located click');
  assert.equal(await page.evaluate(() => window.clicksState.snapshots), 1, 'live, without a reload');
  await screenshot(page, 'clicks-2-live');
});

step('account B\'s dashboard saw none of it', async () => {
  const page = dashboard.b;
  // A click of B's own, so the absence of A's clicks is not just lateness.
  const created = await request('POST', '/api/links', {
    headers: { Authorization: `Bearer ${keys.b}` },
    body: JSON.stringify({ url: 'https://bravo.example/', slug: 'bravo-home' }),
  });
  assert.equal(created.status, 201);
  await waitFor(page, 'B sees its new link', () => document.querySelector('#links tr[data-slug="bravo-home"]') !== null, null, seen);
  await request('GET', '/l/bravo-home', { headers: { 'X-Forwarded-For': '198.51.100.3' } });
  await waitFor(page, 'B counts its own click', () => window.clicksState.total === 1, null, seen);
  assert.deepEqual(await page.evaluate(() => window.clicksState.countries), { JP: 1 });
  assert.deepEqual(await page.$$eval('#feed li', (lis) => lis.map((li) => li.dataset.slug)), ['bravo-home']);
  assert.equal(await page.locator('#links tr[data-slug="launch"]').count(), 0);
  await screenshot(page, 'clicks-3-other-account');
});

step('links are created, copied and deleted from the table', async () => {
  const page = dashboard.a;
  await page.fill('#new-url', 'https://example.com/second');
  await page.fill('#new-slug', 'second');
  await page.click('#create');
  await waitFor(page, 'the new link in the table', () => document.querySelector('#links tr[data-slug="second"]') !== null, null, seen);
  await page.fill('#new-url', 'https://example.com/taken');
  await page.fill('#new-slug', 'bravo-home');
  await page.click('#create');
  await waitFor(page, 'the conflict shown', () => document.querySelector('#links-error').textContent.includes('taken'), null,
    () => document.querySelector('#links-error').textContent);
  await page.click('#links tr[data-slug="second"] button:has-text("Delete")');
  await waitFor(page, 'the link gone', () => document.querySelector('#links tr[data-slug="second"]') === null, null, seen);
  assert.equal((await request('GET', '/l/second')).status, 404);
});

step('the server restarts: the badge shows the outage, the page reconnects and the snapshot has the same totals', async () => {
  const page = dashboard.a;
  // The badge is in the header: bring it into the screenshots.
  await page.evaluate(() => window.scrollTo(0, 0));
  const { addr } = server;
  await server.stop();
  await waitFor(page, 'A shows the connection lost', () => window.clicksState.status !== 'open', null, seen);
  const badge = await page.textContent('#status');
  assert.match(badge, /reconnecting|disconnected/);
  await screenshot(page, 'clicks-4-server-down');
  server = await startServer({ label: 'clicks', listen: addr, dataDir, geoDb, extra: flags() });
  await waitFor(page, 'A reconnected with a second snapshot', () => window.clicksState.status === 'open' && window.clicksState.snapshots >= 2, null, seen);
  assert.equal(await page.evaluate(() => window.clicksState.total), 5);
  assert.deepEqual(await page.evaluate(() => window.clicksState.countries), { DE: 2, JP: 1, FR: 1, NZ: 1 });
  assert.equal(await page.$$eval('#feed li', (lis) => lis.length), 5, 'the recent clicks come back from storage');
  assert.equal(await page.getAttribute('#links tr[data-slug="launch"] td.num', 'data-clicks'), '5');
  await request('GET', '/l/launch', { headers: { 'X-Forwarded-For': '198.51.100.77' } });
  await waitFor(page, 'a click after the restart counted live', () => window.clicksState.total === 6, null, seen);
  await screenshot(page, 'clicks-5-after-restart');
  assert.deepEqual(dashboard.a.errors, []);
  assert.deepEqual(dashboard.b.errors, []);
});

step('a burst of visitors at once arrives as groups: counters, map and feed count every click', async () => {
  const page = dashboard.a;
  const before = await page.evaluate(() => ({
    total: window.clicksState.total, countries: { ...window.clicksState.countries }, feed: document.querySelectorAll('#feed li').length,
  }));
  const link = await page.getAttribute('#links tr[data-slug="launch"] td.num', 'data-clicks');
  // The server hands the room whatever clicks waited while the previous
  // group was delivered; thirty visitors at once make groups of more than
  // one, sent as `clicks` messages. Bounded: a few bursts at most.
  const BURST = 30;
  let sent = 0;
  for (let round = 0; round < 3; round++) {
    const replies = await Promise.all(Array.from({ length: BURST }, (_, i) => request('GET', '/l/launch', {
      headers: { 'X-Forwarded-For': '203.0.113.7', Referer: `https://b${sent + i}.burst.example/` },
    })));
    assert.deepEqual(replies.map((r) => r.status), Array(BURST).fill(302));
    sent += BURST;
    const total = before.total + sent;
    await waitFor(page, `${total} clicks counted`, (t) => window.clicksState.total === t, total, seen);
    if (await page.evaluate(() => window.clicksState.groups) > 0) break;
  }
  assert.ok(await page.evaluate(() => window.clicksState.groups) > 0, `${sent} visitors made no group of more than one click`);
  const total = before.total + sent;
  assert.equal(await page.textContent('#total'), String(total));
  assert.deepEqual(await page.evaluate(() => window.clicksState.countries), { ...before.countries, DE: before.countries.DE + sent });
  assert.equal(await page.getAttribute('#links tr[data-slug="launch"] td.num', 'data-clicks'), String(Number(link) + sent));
  assert.equal(await page.$eval('#map path.hit[data-country="DE"]', (p) => Number(p.dataset.count)), before.countries.DE + sent);
  const feed = await page.$$eval('#feed li', (lis) => lis.map((li) => li.textContent));
  assert.equal(feed.length, Math.min(100, before.feed + sent), 'the feed keeps its last hundred');
  const burst = new Set(feed.map((line) => line.match(/via b(\d+)\.burst\.example/)?.[1]).filter(Boolean).map(Number));
  assert.equal(burst.size, Math.min(sent, 100 - before.feed), 'every burst click in the feed once');
  assert.ok([...burst].every((n) => n < sent));
  await screenshot(page, 'clicks-6-burst');
  assert.deepEqual(dashboard.a.errors, []);
});

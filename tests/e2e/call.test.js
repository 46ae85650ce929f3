// The call page (/apps/call/) in headless Chromium with its fake camera and
// microphone, against the real binary: a new call gets a UUID link; two
// users join and each sees the other's video actually playing (frames
// decoded, growing, with dimensions); mute and camera off show on the other
// page, and the camera comes back; a third joins and sees both; a fourth is
// told the call is full; one leaves and its tile goes; the server restarts
// and the others reconnect and negotiate again; a user who refuses the
// camera is told so and still sees the others. Screenshots of every step in
// target/test-reports/e2e/call-*.png.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const {
  CHROMIUM, REPORTS, WAIT_MS, checkPrerequisites, newUser, scratchDir, screenshot, waitFor,
} = require('./helpers.js');
const { startServer } = require('../node/server.js');

// Three peers per call, so the fourth finds it full.
const MAX_PEERS = 3;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let scratch;
let server;
let browser;
let serverCount = 0;
const call = { failed: false };

function start(listen = '127.0.0.1:0') {
  serverCount += 1;
  const args = ['--ping-interval', '1s', '--pong-timeout', '2s', '--call-max-peers', String(MAX_PEERS)];
  return startServer({ listen, args, logFile: path.join(REPORTS, `call-server-${serverCount}.log`) });
}

before(async () => {
  checkPrerequisites();
  scratch = scratchDir('call');
  server = await start();
  const { chromium } = require('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      '--disable-gpu', '--disable-quic',
      // A synthetic camera (a moving frame counter) and microphone, granted
      // without a prompt; with the permission granted, ICE offers plain
      // addresses instead of mDNS names.
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      // Without it Chromium gathers no 127.0.0.1 candidates.
      '--allow-loopback-in-peer-connection',
    ],
  });
  console.log(`chromium ${browser.version()}, server pid ${server.pid} on ${server.addr}`);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  scratch?.cleanup();
});

// A step of the call scenario: skipped once an earlier step failed.
function step(name, fn) {
  test(`call: ${name}`, { timeout: 120_000 }, async (t) => {
    if (call.failed) {
      t.skip('an earlier call step failed');
      return;
    }
    try {
      await fn(t);
    } catch (error) {
      call.failed = true;
      for (const who of ['a', 'b', 'c', 'd', 'e']) {
        const page = call[who];
        if (page && !page.isClosed()) await screenshot(page, `call-failed-${who.toUpperCase()}`).catch(() => {});
      }
      throw error;
    }
  });
}

// What a page shows, for failure messages.
const seen = () => ({
  url: location.href,
  status: document.querySelector('#status')?.textContent,
  me: window.call?.state.me,
  notices: [...document.querySelectorAll('#notices li')].map((li) => `${li.dataset.kind}: ${li.textContent}`),
  tiles: [...document.querySelectorAll('.tile.remote')].map((t) => ({
    peer: t.dataset.peer, state: t.dataset.state, muted: t.dataset.muted, cameraOff: t.dataset.cameraOff,
    name: t.querySelector('.name').textContent, width: t.querySelector('video').videoWidth,
    paused: t.querySelector('video').paused, ready: t.querySelector('video').readyState, needsClick: t.dataset.needsClick ?? null,
  })),
});

const myId = (page) => page.evaluate(() => window.call.state.me);

async function waitForId(page, who) {
  return waitFor(page, `${who}: joined, with a peer id`, () => window.call?.state.me, null, seen);
}

// Polls `fn(arg)` in the page (it may be async) until it returns a truthy
// value; fails after WAIT_MS with what `seen` shows.
async function until(page, what, fn, arg) {
  const deadline = Date.now() + WAIT_MS;
  let last;
  while (Date.now() < deadline) {
    last = await page.evaluate(fn, arg);
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`waited ${WAIT_MS} ms for ${what}; last ${JSON.stringify(last)}; page shows ${JSON.stringify(await page.evaluate(seen))}`);
}

// The remote video of `peer` on `page` is playing: connected, dimensions,
// not paused, and decoded frames growing between two looks.
async function seesVideoOf(page, who, peer) {
  await waitFor(page, `${who}: a connected tile with video from ${peer}`, (id) => {
    const tile = document.querySelector(`.tile.remote[data-peer="${id}"]`);
    const video = tile?.querySelector('video');
    return tile?.dataset.state === 'connected' && video.readyState >= 2 && video.videoWidth > 0 && !video.paused && !tile.dataset.needsClick;
  }, peer, seen);
  const first = await page.evaluate((id) => window.call.framesDecoded(id), peer);
  const later = await until(page, `${who}: more frames decoded from ${peer} than ${first}`,
    async ({ id, first: f }) => { const n = await window.call.framesDecoded(id); return n > f ? n : 0; }, { id: peer, first });
  assert.ok(later > first && first >= 0, `${who}: frames ${first} -> ${later}`);
  return page.evaluate((id) => {
    const video = document.querySelector(`.tile.remote[data-peer="${id}"] video`);
    return { width: video.videoWidth, height: video.videoHeight };
  }, peer);
}

async function open(url) {
  const page = await newUser(browser);
  await page.goto(url);
  return page;
}

step('the lobby starts a new call with a UUID link that can be copied', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 }, permissions: ['camera', 'microphone', 'clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error));
  call.a = page;
  await page.goto(`${server.url}/apps/call/`);
  assert.equal(await page.isVisible('#lobby'), true);
  assert.equal(await page.isVisible('#in-call'), false);
  await screenshot(page, 'call-01-lobby');
  await page.click('#new-call');
  await page.waitForURL(/\/apps\/call\/\?room=/);
  const room = new URL(page.url()).searchParams.get('room');
  assert.match(room, UUID, 'a random UUID (version 4)');
  call.room = room;
  call.url = page.url();
  call.idA = await waitForId(page, 'A');
  assert.equal(await page.textContent('#room'), room);
  assert.equal(await page.inputValue('#link'), call.url);
  await page.click('#copy-link');
  await waitFor(page, 'A: the link copied', () => document.querySelector('#copied').textContent === 'Link copied.', null, seen);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), call.url);
  // The local preview plays the fake camera.
  await waitFor(page, 'A: the local preview', () => document.querySelector('#local-video').videoWidth > 0, null, seen);
  await page.fill('#name', 'Alice');
  await page.press('#name', 'Enter');
  await page.locator('#name').blur();
});

step('two users see and hear each other: the remote videos decode frames', async () => {
  call.b = await open(call.url);
  call.idB = await waitForId(call.b, 'B');
  assert.notEqual(call.idA, call.idB);
  const onA = await seesVideoOf(call.a, 'A', call.idB);
  const onB = await seesVideoOf(call.b, 'B', call.idA);
  assert.ok(onA.width > 0 && onA.height > 0 && onB.width > 0 && onB.height > 0, `${JSON.stringify(onA)} ${JSON.stringify(onB)}`);
  await waitFor(call.b, 'B: A\'s name on A\'s tile', (id) => document.querySelector(`.tile[data-peer="${id}"] .name`)?.textContent === 'Alice',
    call.idA, seen);
  // Audio flows too.
  const audio = await until(call.b, 'B: audio bytes from A', async (id) => {
    let bytes = 0;
    (await window.call.remotes.get(id).pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') bytes += s.bytesReceived; });
    return bytes;
  }, call.idA);
  assert.ok(audio > 0);
  await screenshot(call.a, 'call-02-two-A');
  await screenshot(call.b, 'call-02-two-B');
});

step('A mutes and turns the camera off: B\'s page shows both, and A\'s camera comes back', async () => {
  await call.a.click('#mute');
  await call.a.click('#camera');
  await waitFor(call.b, 'B: A muted with the camera off', (id) => {
    const tile = document.querySelector(`.tile[data-peer="${id}"]`);
    return tile?.dataset.muted === 'true' && tile.dataset.cameraOff === 'true';
  }, call.idA, seen);
  const shown = await call.b.evaluate((id) => {
    const tile = document.querySelector(`.tile[data-peer="${id}"]`);
    const visible = (e) => getComputedStyle(e).display !== 'none' && getComputedStyle(e).visibility !== 'hidden';
    return { mic: visible(tile.querySelector('.mic-off')), cam: visible(tile.querySelector('.cam-off')), video: visible(tile.querySelector('video')),
      placeholder: tile.querySelector('.placeholder').textContent };
  }, call.idA);
  assert.deepEqual(shown, { mic: true, cam: true, video: false, placeholder: 'A' });
  assert.equal(await call.a.getAttribute('#mute', 'aria-pressed'), 'true');
  assert.equal(await call.a.evaluate(() => window.call.state.cameraOff), true);
  assert.equal(await call.a.evaluate(() => document.querySelector('#local-video').srcObject?.getVideoTracks().length ?? 0), 0, 'the camera is released');
  await screenshot(call.a, 'call-03-muted-A');
  await screenshot(call.b, 'call-03-muted-B');

  await call.a.click('#camera');
  await call.a.click('#mute');
  await waitFor(call.b, 'B: A unmuted with the camera on', (id) => {
    const tile = document.querySelector(`.tile[data-peer="${id}"]`);
    return tile?.dataset.muted === 'false' && tile.dataset.cameraOff === 'false';
  }, call.idA, seen);
  await seesVideoOf(call.b, 'B (camera back)', call.idA);
});

step('a third user joins and sees both; both see the third', async () => {
  call.c = await open(call.url);
  call.idC = await waitForId(call.c, 'C');
  await seesVideoOf(call.c, 'C', call.idA);
  await seesVideoOf(call.c, 'C', call.idB);
  await seesVideoOf(call.a, 'A', call.idC);
  await seesVideoOf(call.b, 'B', call.idC);
  assert.equal(await call.c.locator('.tile.remote').count(), 2);
  await screenshot(call.c, 'call-04-three-C');
  await screenshot(call.a, 'call-04-three-A');
});

step('a fourth user is told the call is full; nobody else sees it', async () => {
  call.d = await open(call.url);
  await waitFor(call.d, 'D: the call-full notice', () => document.querySelector('#notices [data-kind="full"]')?.textContent.includes('full'),
    null, seen);
  const notice = await call.d.textContent('#notices [data-kind="full"]');
  assert.match(notice, new RegExp(`this call is full \\(${MAX_PEERS} people\\)`, 'i'));
  await waitFor(call.d, 'D: disconnected', () => document.querySelector('#status').dataset.status === 'closed', null, seen);
  assert.equal(await call.d.locator('.tile.remote').count(), 0);
  await screenshot(call.d, 'call-05-full-D');
  for (const [who, page] of [['A', call.a], ['B', call.b], ['C', call.c]]) {
    assert.equal(await page.locator('.tile.remote').count(), 2, `${who} sees only the two others`);
  }
  assert.deepEqual(call.d.errors, []);
  await call.d.close();
});

step('B leaves: its tile disappears on the others\' pages', async () => {
  await call.b.click('#leave');
  await waitFor(call.b, 'B: the left view', () => !document.querySelector('#left').hidden, null, seen);
  for (const [who, page] of [['A', call.a], ['C', call.c]]) {
    await waitFor(page, `${who}: B's tile gone`, (id) => !document.querySelector(`.tile[data-peer="${id}"]`), call.idB, seen);
    assert.equal(await page.locator('.tile.remote').count(), 1);
  }
  await screenshot(call.b, 'call-06-left-B');
  await screenshot(call.a, 'call-06-left-A');
  assert.deepEqual(call.b.errors, []);
  await call.b.close();
});

step('the server restarts: the others reconnect, get new ids and see each other again', async () => {
  const addr = server.addr;
  await server.stop();
  await waitFor(call.a, 'A: the reconnecting notice', () => !!document.querySelector('#notices [data-kind="reconnecting"]'), null, seen);
  await screenshot(call.a, 'call-07-reconnecting-A');
  server = await start(addr);
  const newA = await waitFor(call.a, 'A: a new peer id', (old) => window.call.state.me && window.call.state.me !== old ? window.call.state.me : null,
    call.idA, seen);
  const newC = await waitFor(call.c, 'C: a new peer id', (old) => window.call.state.me && window.call.state.me !== old ? window.call.state.me : null,
    call.idC, seen);
  await seesVideoOf(call.a, 'A', newC);
  await seesVideoOf(call.c, 'C', newA);
  assert.equal(await call.a.locator('#notices [data-kind="reconnecting"]').count(), 0);
  assert.equal(await call.a.locator('.tile.remote').count(), 1);
  await waitFor(call.c, 'C: A\'s name after the reconnect', (id) => document.querySelector(`.tile[data-peer="${id}"] .name`)?.textContent === 'Alice',
    newA, seen);
  await screenshot(call.a, 'call-07-reconnected-A');
  await screenshot(call.c, 'call-07-reconnected-C');
  assert.deepEqual(call.a.errors, []);
  assert.deepEqual(call.c.errors, []);
  await call.c.close();
});

step('a user who refuses the camera is told so and still sees the others', async () => {
  // The permission as the browser records it stays granted (so ICE offers
  // plain addresses, never mDNS names); the page is refused all the same,
  // as a browser refuses a user who answers "Block".
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 }, permissions: ['camera', 'microphone'] });
  await context.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  const page = await context.newPage();
  call.e = page;
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error));
  await page.goto(call.url);
  await waitFor(page, 'E: the camera-refused notice', () => document.querySelector('#notices [data-kind="media"]')?.textContent.includes('refused'),
    null, seen);
  const idE = await waitForId(page, 'E');
  const idA = await myId(call.a);
  await seesVideoOf(page, 'E', idA);
  await waitFor(call.a, 'A: E shown muted with the camera off', (id) => {
    const tile = document.querySelector(`.tile[data-peer="${id}"]`);
    return tile?.dataset.muted === 'true' && tile.dataset.cameraOff === 'true';
  }, idE, seen);
  await screenshot(page, 'call-08-refused-E');
  assert.deepEqual(page.errors, []);
  await context.close();
  assert.deepEqual(call.a.errors, []);
});

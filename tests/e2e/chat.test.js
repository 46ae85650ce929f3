// The built-in apps' pages in headless Chromium against the real server
// binary (docs/e2e.md): the landing page, the echo and broadcast pages, the
// chat page with two users from the first join through a server restart, and
// the chat on a server without a geo database.
//
//   node --test --test-concurrency=1 tests/e2e/
//
// The steps of the chat scenario build on each other and run in order; once
// one fails, the later ones are skipped instead of failing for the same
// reason. Screenshots of every step: target/test-reports/e2e/*.png.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const {
  checkPrerequisites, geoFixture, launchBrowser, newUser, scratchDir, screenshot, startServer, uniqueRoom, waitFor,
} = require('./helpers');

// Loopback is 127.0.0.0/8, which the test geo database puts in New Zealand.
const COUNTRY = 'NZ';
const FLAG = '\u{1F1F3}\u{1F1FF}'; // regional indicators N and Z
const PROFANE = 'fuck you';

let scratch;
let dataDir;
let geoDb;
let server;
let browser;
const pages = [];

before(async () => {
  checkPrerequisites();
  scratch = scratchDir('apps');
  dataDir = path.join(scratch.dir, 'data');
  fs.mkdirSync(dataDir);
  geoDb = geoFixture(scratch.dir);
  server = await startServer({ label: 'apps', dataDir, geoDb });
  browser = await launchBrowser();
  console.log(`chromium ${browser.version()}, server pid ${server.pid} on ${server.addr}`);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  scratch?.cleanup();
});

async function open(url) {
  const page = await newUser(browser);
  pages.push(page);
  await page.goto(url);
  return page;
}

// Text of every element matching `selector`, for failure messages.
const texts = (selector) => [...document.querySelectorAll(selector)].map((e) => e.textContent);

// --- landing page ---

test('landing page links to every app, and the chat link opens a working chat', { timeout: 60_000 }, async () => {
  const page = await open(`${server.url}/`);
  const links = await page.$$eval('a[href^="/apps/"]', (as) => as.map((a) => a.getAttribute('href')));
  assert.deepEqual(links.sort(), ['/apps/broadcast/', '/apps/call/', '/apps/chat/', '/apps/clicks/', '/apps/echo/']);
  await screenshot(page, 'landing');
  await page.click('#app-chat');
  await waitFor(page, 'the chat page, connected to the lobby',
    () => document.querySelector('#status')?.dataset.status === 'open' && document.querySelector('#room').textContent === 'lobby',
    null, () => document.body.innerText.slice(0, 200));
  assert.deepEqual(page.errors, []);
  await page.close();
});

// --- echo ---

test('echo page: text and binary come back unchanged, shown as text', { timeout: 60_000 }, async () => {
  const page = await open(`${server.url}/apps/echo/?room=${uniqueRoom('echo')}`);
  await waitFor(page, 'status open', () => document.querySelector('#status').dataset.status === 'open', null,
    () => document.querySelector('#status').textContent);
  assert.equal(await page.textContent('#protocol'), 'json');

  const text = 'ping <b>bold?</b> ✓';
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
  await waitFor(page, 'the echo of the text message',
    (t) => [...document.querySelectorAll('#log li[data-dir="received"] .text')].some((e) => e.textContent === t),
    text, () => texts('#log li'));
  assert.equal(await page.locator('#log b').count(), 0, 'markup from the network is shown as text');

  await page.check('#binary');
  await page.fill('#text', 'bytes');
  await page.click('#send');
  await waitFor(page, 'the echo of the binary message',
    () => [...document.querySelectorAll('#log li[data-dir="received"] .text')].some((e) => e.textContent === 'binary, 5 bytes: bytes'),
    null, () => texts('#log li'));
  await screenshot(page, 'echo');
  assert.deepEqual(page.errors, []);
  await page.close();
});

// --- broadcast ---

test('broadcast page: online count, messages relayed to the others only', { timeout: 60_000 }, async () => {
  const url = `${server.url}/apps/broadcast/?room=${uniqueRoom('bc')}`;
  const a = await open(url);
  await waitFor(a, 'A online 1', () => document.querySelector('#online').textContent === '1', null,
    () => document.querySelector('#online').textContent);
  const b = await open(url);
  for (const [name, page] of [['A', a], ['B', b]]) {
    await waitFor(page, `${name} sees online 2`, () => document.querySelector('#online').textContent === '2', null,
      () => document.querySelector('#online').textContent);
  }
  assert.equal(await b.textContent('#visits'), '2');

  await a.fill('#text', 'hello everyone');
  await a.press('#text', 'Enter');
  await waitFor(b, 'B receives A\'s message',
    () => [...document.querySelectorAll('#log li[data-dir="received"] .text')].some((e) => e.textContent === 'hello everyone'),
    null, () => texts('#log li'));
  await b.fill('#text', 'hello A');
  await b.click('#send');
  await waitFor(a, 'A receives B\'s reply',
    () => [...document.querySelectorAll('#log li[data-dir="received"] .text')].some((e) => e.textContent === 'hello A'),
    null, () => texts('#log li'));
  // B's reply arrived after A's own message would have, so the absence means something.
  assert.deepEqual(await a.evaluate(texts, '#log li[data-dir="received"] .text'), ['hello A'], 'A is not sent its own message');
  await screenshot(a, 'broadcast-A');
  await screenshot(b, 'broadcast-B');

  await b.close();
  await waitFor(a, 'A sees online 1 after B left', () => document.querySelector('#online').textContent === '1', null,
    () => document.querySelector('#online').textContent);
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.close();
});

// --- chat ---

const chat = { room: uniqueRoom('chat'), failed: false };

// A step of the chat scenario: skipped once an earlier step failed.
function step(name, fn) {
  test(`chat: ${name}`, { timeout: 90_000 }, async (t) => {
    if (chat.failed) {
      t.skip('an earlier chat step failed');
      return;
    }
    try {
      await fn(t);
    } catch (error) {
      chat.failed = true;
      for (const [who, page] of [['A', chat.a], ['B', chat.b]]) {
        if (page && !page.isClosed()) await screenshot(page, `chat-failed-${who}`).catch(() => {});
      }
      throw error;
    }
  });
}

// In-page helpers, passed to waitFor / evaluate.
const status = () => document.querySelector('#status').dataset.status;
const seen = () => ({
  status: document.querySelector('#status').dataset.status,
  count: document.querySelector('#count').textContent,
  users: [...document.querySelectorAll('#users li')].map((li) => `${li.dataset.id}:${li.textContent}`),
  messages: [...document.querySelectorAll('#messages li')].map((li) => `${li.className}[${li.dataset.state ?? ''}]: ${li.textContent}`),
});
const hasMessage = ({ side, text, state }) => [...document.querySelectorAll(`#messages li.msg.${side}`)]
  .some((li) => li.querySelector('.text')?.textContent === text && (!state || li.dataset.state === state));

step('two users join and see each other with flags and the count', async () => {
  const url = `${server.url}/apps/chat/?room=${chat.room}`;
  chat.a = await open(url);
  chat.b = await open(url);
  for (const [who, page] of [['A', chat.a], ['B', chat.b]]) {
    await waitFor(page, `${who}: status open`, () => document.querySelector('#status').dataset.status === 'open', null, seen);
    await waitFor(page, `${who}: count 2 and two users`,
      () => document.querySelector('#count').textContent === '2' && document.querySelectorAll('#users li').length === 2, null, seen);
    assert.equal(await page.textContent('#room'), chat.room);
    const users = await page.$$eval('#users li', (lis) => lis.map((li) => ({
      id: li.dataset.id, country: li.dataset.country, flag: li.querySelector('.flag').textContent, me: li.classList.contains('me'),
    })));
    assert.equal(users.length, 2);
    for (const user of users) assert.deepEqual([user.country, user.flag], [COUNTRY, FLAG], `${who} sees ${JSON.stringify(user)}`);
    assert.equal(users.filter((u) => u.me).length, 1, `${who} marks itself once`);
  }
  chat.nameA = await chat.a.textContent('#users li.me .name');
  chat.nameB = await chat.b.textContent('#users li.me .name');
  chat.idA = await chat.a.getAttribute('#me', 'data-id');
  assert.notEqual(chat.nameA, chat.nameB, 'names are unique in a room');
  assert.ok((await chat.a.textContent('#me')).includes(chat.nameA), '#me shows A\'s name');
  assert.ok((await chat.a.textContent('#me')).includes(FLAG), '#me shows A\'s flag');
  // Each saw the other join.
  await waitFor(chat.a, 'A: admin line for B joining',
    (name) => [...document.querySelectorAll('#messages li.admin[data-event="joined"]')].some((li) => li.textContent.includes(name)),
    chat.nameB, seen);
  await screenshot(chat.a, 'chat-01-joined-A');
  await screenshot(chat.b, 'chat-01-joined-B');
});

step('a message shows on the right for its sender (acked) and on the left for the other', async () => {
  const text = 'hello from A';
  await chat.a.fill('#text', text);
  await chat.a.press('#text', 'Enter');
  await waitFor(chat.b, 'B: A\'s message on the left', hasMessage, { side: 'other', text }, seen);
  await waitFor(chat.a, 'A: own message acked on the right', hasMessage, { side: 'own', text, state: 'sent' }, seen);
  const fromB = await chat.b.$$eval('#messages li.msg.other', (lis, t) => lis
    .filter((li) => li.querySelector('.text').textContent === t)
    .map((li) => ({ from: li.dataset.from, name: li.querySelector('.name').textContent, flag: li.querySelector('.flag').textContent })), text);
  assert.deepEqual(fromB, [{ from: chat.idA, name: chat.nameA, flag: FLAG }]);
  assert.equal(await chat.a.evaluate(hasMessage, { side: 'other', text }), false, 'the sender is not echoed its message');

  // B answers by clicking Send; markup in a message stays text.
  const reply = 'hi A, <img src=x onerror="window.pwned=1"> here';
  await chat.b.fill('#text', reply);
  await chat.b.click('#send');
  await waitFor(chat.a, 'A: B\'s reply on the left', hasMessage, { side: 'other', text: reply }, seen);
  await waitFor(chat.b, 'B: own reply acked', hasMessage, { side: 'own', text: reply, state: 'sent' }, seen);
  assert.equal(await chat.a.locator('#messages img').count(), 0);
  assert.equal(await chat.a.evaluate(() => window.pwned), undefined);
  await screenshot(chat.a, 'chat-02-message-A');
  await screenshot(chat.b, 'chat-02-message-B');
});

step('a profane message is refused: an error for its sender only', async () => {
  await chat.a.fill('#text', PROFANE);
  await chat.a.click('#send');
  await waitFor(chat.a, 'A: a profanity error',
    () => document.querySelector('#messages li.msg.own[data-state="failed"] .error[data-code="profanity"]') !== null, null, seen);
  await waitFor(chat.a, 'A: the refused message marked failed', hasMessage, { side: 'own', text: PROFANE, state: 'failed' }, seen);

  // A later clean message reaches B, so B has had every chance to show the refused one.
  const clean = 'sorry, clean now';
  await chat.a.fill('#text', clean);
  await chat.a.press('#text', 'Enter');
  await waitFor(chat.b, 'B: the clean message', hasMessage, { side: 'other', text: clean }, seen);
  await waitFor(chat.a, 'A: the clean message acked', hasMessage, { side: 'own', text: clean, state: 'sent' }, seen);
  const onB = await chat.b.evaluate(seen);
  assert.ok(!onB.messages.some((m) => m.includes(PROFANE)), `B never shows the refused message: ${JSON.stringify(onB.messages)}`);
  assert.equal(await chat.b.locator('#messages .error').count(), 0, 'B sees no error');
  await screenshot(chat.a, 'chat-03-profanity-A');
  await screenshot(chat.b, 'chat-03-profanity-B');
});

step('when B closes its page, A\'s list shrinks to 1 and says B left', async () => {
  const idB = await chat.b.getAttribute('#me', 'data-id');
  assert.deepEqual(chat.b.errors, []);
  await chat.b.close();
  await waitFor(chat.a, 'A: count 1, one user',
    () => document.querySelector('#count').textContent === '1' && document.querySelectorAll('#users li').length === 1, null, seen);
  await waitFor(chat.a, 'A: admin line for B leaving',
    (name) => [...document.querySelectorAll('#messages li.admin[data-event="left"]')].some((li) => li.textContent.includes(name)),
    chat.nameB, seen);
  assert.equal(await chat.a.locator(`#users li[data-id="${idB}"]`).count(), 0);
  await screenshot(chat.a, 'chat-04-left-A');
});

step('the server restarts: A shows reconnecting, reconnects by itself and shows the history again', async () => {
  const addr = server.addr;
  await server.stop();
  await waitFor(chat.a, 'A: status reconnecting', () => document.querySelector('#status').dataset.status === 'reconnecting', null, seen);
  assert.match(await chat.a.textContent('#status'), /reconnecting/);
  // Typed while the server is down: held by the client until it reconnects.
  const offline = 'typed while the server was down';
  await chat.a.fill('#text', offline);
  await chat.a.press('#text', 'Enter');
  await waitFor(chat.a, 'A: the offline message waiting', hasMessage, { side: 'own', text: offline, state: 'queued' }, seen);
  await screenshot(chat.a, 'chat-05-reconnecting-A');

  // Same port, same data directory: the history is in storage.
  server = await startServer({ label: 'apps', listen: addr, dataDir, geoDb });
  await waitFor(chat.a, 'A: status open again', () => document.querySelector('#status').dataset.status === 'open', null, seen);
  const history = (texts) => {
    const lis = [...document.querySelectorAll('#messages li.msg[data-source="history"]')];
    return texts.every(([side, text]) => lis.some((li) => li.classList.contains(side) && li.querySelector('.text').textContent === text));
  };
  const expected = [['own', 'hello from A'], ['other', 'hi A, <img src=x onerror="window.pwned=1"> here'], ['own', 'sorry, clean now']];
  await waitFor(chat.a, 'A: the history, own messages on the right and B\'s on the left', history, expected, seen);
  await waitFor(chat.a, 'A: count 1 after the restart',
    () => document.querySelector('#count').textContent === '1' && document.querySelectorAll('#users li').length === 1, null, seen);
  const kept = await chat.a.$$eval('#messages li.msg[data-source="history"] .text', (es) => es.map((e) => e.textContent));
  assert.deepEqual(kept, expected.map(([, text]) => text), 'the history holds exactly the accepted messages, in order');
  assert.equal(await chat.a.evaluate(status), 'open');
  await waitFor(chat.a, 'A: the offline message sent once the server was back', hasMessage,
    { side: 'own', text: offline, state: 'sent' }, seen);
  const shown = await chat.a.evaluate(seen);
  assert.ok(!shown.messages.some((m) => m.includes(PROFANE)), `the refused message does not come back: ${JSON.stringify(shown.messages)}`);

  // The room works after the restart.
  await chat.a.fill('#text', 'back again');
  await chat.a.press('#text', 'Enter');
  await waitFor(chat.a, 'A: a message after the restart acked', hasMessage, { side: 'own', text: 'back again', state: 'sent' }, seen);
  await screenshot(chat.a, 'chat-06-reconnected-A');
  assert.deepEqual(chat.a.errors, []);
});

// --- chat without a geo database ---

test('chat without a geo database: every user gets the neutral symbol', { timeout: 60_000 }, async () => {
  const plain = await startServer({ label: 'nogeo' });
  try {
    const page = await open(`${plain.url}/apps/chat/?room=${uniqueRoom('nogeo')}`);
    await waitFor(page, 'one user listed', () => document.querySelectorAll('#users li').length === 1, null, seen);
    const user = await page.$eval('#users li', (li) => ({ country: li.dataset.country, flag: li.querySelector('.flag').textContent, title: li.querySelector('.flag').title }));
    assert.deepEqual(user, { country: '', flag: '\u{1F310}', title: 'country unknown' });
    await screenshot(page, 'chat-nogeo');
    assert.deepEqual(page.errors, []);
    await page.close();
  } finally {
    await plain.stop();
  }
});

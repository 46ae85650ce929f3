// Shared pieces of the browser tests (docs/e2e.md): a scratch directory per
// run, the real server binary (started through tests/node/server.js, as the
// Node tests start it) with the browser tests' settings, the test geo
// database, one headless Chromium per test file, and waits that fail with a
// description of what never happened.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const server = require('../node/server.js');

// WAIT_MS, the shared helper's limit on the server's start and stop, also
// bounds every wait for something to happen in a page.
const { BINARY, ROOT, WAIT_MS } = server;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const REPORTS = path.join(ROOT, 'target', 'test-reports', 'e2e');

/** Fails early, with the fix, when the binary or the browser is missing. */
function checkPrerequisites() {
  const missing = [];
  const binary = server.missingBinary();
  if (binary) missing.push(binary);
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
  if (missing.length > 0) throw new Error(`browser tests need: ${missing.join('; ')}`);
}

/**
 * A fresh directory for this test file's run. TMPDIR points into it, so
 * Chromium's profile and temporary files land there too (a killed run would
 * otherwise leave /tmp/playwright_chromiumdev_profile-* behind); cleanup()
 * removes it and restores TMPDIR.
 */
function scratchDir(label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `switchboard-e2e-${label}-`));
  const previous = process.env.TMPDIR;
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  process.env.TMPDIR = tmp;
  return {
    dir,
    cleanup() {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The test geo database (127.0.0.0/8 is NZ): $SWITCHBOARD_GEO_DB if set, else
 * written into `dir` by the geo_fixture example.
 */
function geoFixture(dir) {
  if (process.env.SWITCHBOARD_GEO_DB) return process.env.SWITCHBOARD_GEO_DB;
  const out = path.join(dir, 'geo-test.mmdb');
  const built = path.join(ROOT, 'target', 'release', 'examples', 'geo_fixture');
  const run = fs.existsSync(built)
    ? spawnSync(built, [out], { cwd: ROOT, encoding: 'utf8' })
    : spawnSync('cargo', ['run', '--release', '--quiet', '-p', 'switchboard', '--example', 'geo_fixture', '--', out],
      { cwd: ROOT, encoding: 'utf8' });
  if (run.status !== 0 || !fs.existsSync(out)) {
    throw new Error(`cannot write the test geo database: ${run.error ?? ''}${run.stderr ?? ''}${run.stdout ?? ''}`);
  }
  return out;
}

let serverCount = 0;

/**
 * Starts the server on `listen` (port 0 picks one) with its storage in
 * `dataDir` (in memory without one), quick heartbeats (a ping after 1 s of
 * silence, dropped 2 s later) and `geoDb` if given; its stderr goes to
 * target/test-reports/e2e/<label>-server-N.log; `extra` are further `serve`
 * flags. The result is the shared helper's: { pid, addr, url, logFile,
 * running(), stop() }.
 */
function startServer({ label, listen = '127.0.0.1:0', dataDir, geoDb, extra = [] }) {
  serverCount += 1;
  const args = ['--ping-interval', '1s', '--pong-timeout', '2s', ...(geoDb ? ['--geo-db', geoDb] : []), ...extra];
  return server.startServer({ listen, dataDir, args, logFile: path.join(REPORTS, `${label}-server-${serverCount}.log`) });
}

/**
 * One headless Chromium for a test file (launch options: docs/e2e.md);
 * `extraArgs` are added to the command line (e.g. a certificate to trust).
 */
async function launchBrowser({ extraArgs = [] } = {}) {
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    // Playwright adds --headless, --no-sandbox, a fresh profile and its own
    // --disable-features list; passing --disable-features here would replace
    // that list, so don't.
    args: ['--disable-gpu', '--disable-quic', ...extraArgs],
  });
}

/**
 * A new user: a fresh browser context (its own cookies and storage) with one
 * page. Uncaught exceptions in the page are collected in `page.errors`.
 */
async function newUser(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error));
  return page;
}

/** Saves a screenshot as target/test-reports/e2e/<name>.png. */
async function screenshot(page, name) {
  fs.mkdirSync(REPORTS, { recursive: true });
  await page.screenshot({ path: path.join(REPORTS, `${name}.png`) });
}

/**
 * Waits until `fn(arg)`, evaluated in the page, returns a truthy value, and
 * returns that value. On timeout the error says what was awaited and shows
 * what `describe`, evaluated in the page, saw last.
 */
async function waitFor(page, what, fn, arg, describe) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 'raf' });
    return await handle.jsonValue();
  } catch (error) {
    let seen = '';
    try {
      seen = describe ? JSON.stringify(await page.evaluate(describe, arg)) : '';
    } catch {
      // The page may be gone; the original error says enough.
    }
    throw new Error(`waited ${WAIT_MS} ms for ${what}${seen ? `; page shows ${seen}` : ''}\n${error.message}`);
  }
}

/** A room name no earlier run used. */
function uniqueRoom(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}`;
}

module.exports = {
  BINARY,
  CHROMIUM,
  REPORTS,
  WAIT_MS,
  checkPrerequisites,
  geoFixture,
  launchBrowser,
  newUser,
  scratchDir,
  screenshot,
  startServer,
  uniqueRoom,
  waitFor,
};

// Starts the real switchboard binary for the JavaScript tests (tests/node and
// tests/e2e) and stops it by its own PID. The one place those tests spawn
// the server: the binary is $SWITCHBOARD_BIN, else target/release/switchboard.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const BINARY = process.env.SWITCHBOARD_BIN || path.join(ROOT, 'target', 'release', 'switchboard');

// How long the server may take to print its address, and to exit after
// SIGTERM. Generous on purpose: a contended 2-core CI machine is several
// times slower than a laptop, and these are waits, not measurements.
const WAIT_MS = 20_000;

// Every server started here and not yet stopped, for stopAll().
const running = new Set();

/** Why the tests cannot start the server (the binary is missing), or null. */
function missingBinary() {
  return fs.existsSync(BINARY) ? null : `${BINARY} not built (cargo build --release -p switchboard)`;
}

/**
 * Starts `switchboard serve` on `listen` (port 0 picks a free one) with its
 * storage in `dataDir`, or in memory without one, plus `args`. Its stderr
 * goes to the file `logFile`, or to this process's stderr without one.
 * Resolves once the server prints `switchboard listening on http://ADDR`,
 * with { pid, addr, url, logFile, running(), stop() }; stop() sends SIGTERM
 * to that PID and resolves with { code, signal } once it exits (after
 * WAIT_MS it sends SIGKILL and rejects: a server must shut down on SIGTERM).
 */
async function startServer({ listen = '127.0.0.1:0', dataDir, args = [], logFile } = {}) {
  // SIGTERM stops these servers at once, without a drain (docs/operations.md),
  // unless a test sets its own drain.
  const noDrain = args.includes('--drain-grace') ? [] : ['--drain-grace', '0s', '--drain-timeout', '0s'];
  const argv = ['serve', '--listen', listen, ...(dataDir ? ['--data-dir', dataDir] : ['--memory']), ...noDrain, ...args];
  let stderr = 'inherit';
  if (logFile) {
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    stderr = fs.openSync(logFile, 'w');
  }
  const child = spawn(BINARY, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', stderr] });
  if (logFile) fs.closeSync(stderr);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  const seeLog = logFile ? `; see ${logFile}` : '';

  const server = {
    pid: child.pid,
    logFile,
    running: isRunning,
    async stop() {
      running.delete(server);
      if (!isRunning()) return exited;
      process.kill(child.pid, 'SIGTERM');
      let timer;
      const timeout = new Promise((resolve) => { timer = setTimeout(resolve, WAIT_MS, 'timeout'); });
      const outcome = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        process.kill(child.pid, 'SIGKILL');
        await exited;
        throw new Error(`server ${child.pid} ignored SIGTERM for ${WAIT_MS} ms and was killed`);
      }
      return exited;
    },
  };
  running.add(server);

  try {
    server.addr = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not print its address within ${WAIT_MS} ms${seeLog}`)), WAIT_MS);
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`server exited (code ${code}, signal ${signal}) before listening${seeLog}`));
      });
      let seen = '';
      child.stdout.on('data', (chunk) => {
        seen += chunk;
        const m = /switchboard listening on http:\/\/(\S+)/.exec(seen);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
    });
  } catch (error) {
    await server.stop().catch(() => {});
    throw error;
  }
  server.url = `http://${server.addr}`;
  return server;
}

/** Stops every server started here that is still running (for `after` hooks). */
async function stopAll() {
  await Promise.all([...running].map((server) => server.stop()));
}

module.exports = { BINARY, ROOT, WAIT_MS, missingBinary, startServer, stopAll };

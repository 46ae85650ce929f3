// Starts the real switchboard binary on a free loopback port and stops it by
// PID when the test file ends.
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');

const BINARY = process.env.SWITCHBOARD_BIN || path.join(__dirname, '..', '..', 'target', 'release', 'switchboard');

async function startServer() {
  const child = spawn(BINARY, ['serve', '--listen', '127.0.0.1:0', '--memory'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not print its address within 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
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
  return {
    addr,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', resolve);
      child.kill('SIGTERM');
    }),
  };
}

module.exports = { startServer };

// The browser client (web/switchboard.js) for the Node tests: loaded as an
// ES module, and a wait for its next event.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

// The package has no "type", so importing the .js file directly makes Node
// guess its module type and print a warning; import its text as an ES module.
async function loadClient() {
  const file = path.join(__dirname, '..', '..', 'web', 'switchboard.js');
  const source = `${fs.readFileSync(file, 'utf8')}\n//# sourceURL=${file}\n`;
  return import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`);
}

// Resolves with the detail of the next `type` event that satisfies `match`.
function next(room, type, match = () => true) {
  return new Promise((resolve) => {
    const off = room.on(type, (detail) => {
      if (!match(detail)) return;
      off();
      resolve(detail);
    });
  });
}

module.exports = { loadClient, next };

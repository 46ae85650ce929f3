'use strict';
// Node `ws` peer for scripts/bench-matrix.sh: `/rooms/broadcast/<room>` joins
// that room, and every message is relayed to every other member of it; any
// other path echoes. Written the way the `ws` documentation shows: one
// WebSocketServer, `send(data, { binary })` per recipient with the received
// Buffer (ws frames it without copying the payload), no compression (the
// load generator offers none), rooms as Sets of sockets.
//
//   node bench/peers/node/peer-ws.js [HOST:PORT]     (default 127.0.0.1:0)
//
// The first stdout line is `peer-ws listening on http://HOST:PORT`. The
// optional native add-ons `bufferutil` and `utf-8-validate` are used by ws
// when they are installed; without them ws masks and validates in
// JavaScript / with `buffer.isUtf8`.

const { WebSocket, WebSocketServer } = require('ws');

const BROADCAST = '/rooms/broadcast/';

function parseListen(arg) {
  const at = arg.lastIndexOf(':');
  if (at < 0) throw new Error(`expected HOST:PORT, got ${arg}`);
  return { host: arg.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(arg.slice(at + 1)) };
}

const { host, port } = parseListen(process.argv[2] || '127.0.0.1:0');
// clientTracking off: the rooms below are the only registry needed.
const wss = new WebSocketServer({ host, port, perMessageDeflate: false, clientTracking: false });
/** @type {Map<string, Set<import('ws').WebSocket>>} */
const rooms = new Map();

wss.on('connection', (ws, req) => {
  ws.on('error', () => {});
  const path = (req.url || '/').split('?')[0];
  if (!path.startsWith(BROADCAST)) {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    return;
  }
  const name = path.slice(BROADCAST.length);
  let room = rooms.get(name);
  if (!room) {
    room = new Set();
    rooms.set(name, room);
  }
  room.add(ws);
  ws.on('message', (data, isBinary) => {
    for (const member of room) {
      if (member !== ws && member.readyState === WebSocket.OPEN) member.send(data, { binary: isBinary });
    }
  });
  ws.on('close', () => {
    room.delete(ws);
    if (room.size === 0 && rooms.get(name) === room) rooms.delete(name);
  });
});

wss.on('listening', () => {
  const addr = wss.address();
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  console.log(`peer-ws listening on http://${shown}:${addr.port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));

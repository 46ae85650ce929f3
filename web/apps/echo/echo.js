// The echo page: sends what you type to an `echo` room and shows what comes
// back. The room comes from `?room=NAME` (default `demo`). Text from the
// network is inserted with textContent only.

import { connect } from '/client.js';

const ROOM_ID = /^[A-Za-z0-9._-]{1,128}$/;
const STATUS_TEXT = { connecting: 'connecting…', open: 'connected', reconnecting: 'reconnecting…', closed: 'disconnected' };

const $ = (id) => document.getElementById(id);
const view = {
  room: $('room'),
  url: $('url'),
  protocol: $('protocol'),
  status: $('status'),
  log: $('log'),
  composer: $('composer'),
  text: $('text'),
  binary: $('binary'),
  send: $('send'),
};

const roomName = (new URLSearchParams(location.search).get('room') ?? '').trim() || 'demo';
const state = { room: roomName, status: 'connecting', sent: 0, received: 0 };
let room = null;

view.room.textContent = roomName;
view.url.textContent = `/rooms/echo/${roomName}`;
document.title = `#${roomName} · Echo · switchboard`;

function start() {
  room = connect({ kind: 'echo', id: roomName });
  room.on('status', ({ status }) => setStatus(status));
  room.on('open', ({ protocol }) => {
    view.protocol.textContent = protocol || 'none';
  });
  room.on('message', ({ data }) => {
    state.received += 1;
    const li = entry('received', describe(data));
    li.dataset.seq = String(state.received);
    append(li);
  });
  room.on('close', ({ code, willReconnect, delay }) => {
    if (willReconnect) {
      view.status.title = `next attempt at ${new Date(Date.now() + delay).toLocaleTimeString()}`;
    } else if (code !== 1000) {
      append(entry('error', `disconnected (code ${code})`));
    }
  });
}

view.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = view.text.value;
  if (text === '' || !room) return;
  const binary = view.binary.checked;
  const payload = binary ? new TextEncoder().encode(text) : text;
  state.sent += 1;
  const li = entry('sent', describe(payload));
  li.dataset.seq = String(state.sent);
  append(li);
  view.text.value = '';
  view.text.focus();
  if (!room.send(payload)) append(entry('error', 'not sent: the connection is closed or too many messages are waiting'));
});

// "text", or "binary, N bytes: text" for binary frames (decoded as UTF-8
// where they are UTF-8, else shown as hex).
function describe(data) {
  if (typeof data === 'string') return data;
  const bytes = data instanceof ArrayBuffer
    ? new Uint8Array(data)
    : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(0);
  let shown;
  try {
    shown = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    shown = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  }
  return `binary, ${bytes.length} bytes: ${shown}`;
}

function entry(kind, text) {
  const li = document.createElement('li');
  li.className = kind === 'error' ? 'error' : `bubble ${kind === 'sent' ? 'own' : 'other'}`;
  li.dataset.dir = kind;
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = kind === 'sent' ? 'sent' : kind === 'received' ? 'echoed back' : '';
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;
  if (kind !== 'error') li.append(meta);
  li.append(body);
  return li;
}

function append(li) {
  view.log.append(li);
  view.log.scrollTop = view.log.scrollHeight;
}

function setStatus(status, text) {
  state.status = status;
  view.status.dataset.status = status;
  document.body.dataset.status = status;
  view.status.textContent = text ?? STATUS_TEXT[status] ?? status;
  if (status !== 'reconnecting') view.status.title = '';
  view.send.disabled = status === 'closed';
}

addEventListener('pagehide', () => room?.close(1000, 'page closed'));
addEventListener('pageshow', (event) => {
  if (event.persisted) location.reload();
});

if (ROOM_ID.test(roomName)) {
  start();
} else {
  setStatus('closed', 'not connected');
  append(entry('error', `"${roomName}" is not a room name: use 1 to 128 letters, digits, "-", "_" or "."`));
}

window.echo = { get room() { return room; }, state };

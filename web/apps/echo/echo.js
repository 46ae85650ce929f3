// The echo page: sends what you type to an `echo` room and shows what comes
// back. The room comes from `?room=NAME` (default `demo`). Text from the
// network is inserted with textContent only.

import { connect } from '/client.js';
import {
  ROOM_ID, appendToLog, badRoomText, bubble, byId as $, closeWhenLeaving, el, roomFromQuery, showNextAttempt, showRoomName, showStatus,
} from '/apps/common.js';

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

const roomName = roomFromQuery('demo');
const state = { room: roomName, status: 'connecting', sent: 0, received: 0 };
let room = null;

showRoomName(view.room, roomName, 'Echo');
view.url.textContent = `/rooms/echo/${roomName}`;

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
      showNextAttempt(view.status, delay);
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

// A sent or echoed message as a bubble, or an error line.
function entry(kind, text) {
  let li;
  if (kind === 'error') {
    li = el('li', 'error');
    li.append(el('p', 'text', text));
  } else {
    li = bubble(kind === 'sent' ? 'own' : 'other', kind === 'sent' ? 'sent' : 'echoed back', text);
  }
  li.dataset.dir = kind;
  return li;
}

function append(li) {
  appendToLog(view.log, li, true);
}

function setStatus(status, text) {
  state.status = status;
  showStatus(view.status, status, { text, controls: [view.send] });
}

closeWhenLeaving(() => room?.close(1000, 'page closed'));

if (ROOM_ID.test(roomName)) {
  start();
} else {
  setStatus('closed', 'not connected');
  append(entry('error', badRoomText(roomName)));
}

window.echo = { get room() { return room; }, state };

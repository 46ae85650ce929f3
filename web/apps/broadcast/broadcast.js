// The broadcast page: a `broadcast` room (`?room=NAME`, default `lobby`).
//
// The server sends the newcomer {"type":"welcome","id","online","visits"},
// everyone {"type":"count","online"} after joins and leaves, and relays
// every other message as it was sent to everyone but its sender. This page
// sends {"type":"say","text":...} and shows what others send: the text of a
// `say`, anything else as it arrived. Text from the network is inserted with
// textContent only.

import { connect } from '/client.js';
import {
  ROOM_ID, appendToLog, badRoomText, bubble, byId as $, closeWhenLeaving, el, roomFromQuery, showNextAttempt, showRoomName, showStatus,
} from '/apps/common.js';

const view = {
  room: $('room'),
  status: $('status'),
  online: $('online'),
  visits: $('visits'),
  me: $('me'),
  log: $('log'),
  composer: $('composer'),
  text: $('text'),
  send: $('send'),
};

const roomName = roomFromQuery('lobby');
const state = { room: roomName, status: 'connecting', id: null, online: null, visits: null };
let room = null;

showRoomName(view.room, roomName, 'Broadcast');

function start() {
  room = connect({ kind: 'broadcast', id: roomName });
  room.on('status', ({ status }) => setStatus(status));
  room.on('message', ({ json, data }) => {
    const type = json && typeof json === 'object' ? json.type : undefined;
    if (type === 'welcome') {
      state.id = String(json.id);
      state.visits = Number(json.visits);
      view.me.textContent = state.id;
      view.visits.textContent = String(state.visits);
      setOnline(json.online);
      append(info(`you joined as ${state.id}`));
    } else if (type === 'count') {
      setOnline(json.online);
    } else {
      append(relayed(json, data));
    }
  });
  room.on('close', ({ code, willReconnect, delay }) => {
    view.online.textContent = '–';
    if (willReconnect) {
      showNextAttempt(view.status, delay);
    } else if (code !== 1000) {
      append(errorLine(`disconnected (code ${code})`));
    }
  });
}

view.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = view.text.value;
  if (text.trim() === '' || !room) return;
  const li = bubble('own', 'you', text);
  li.dataset.dir = 'sent';
  append(li);
  view.text.value = '';
  view.text.focus();
  if (!room.sendJson({ type: 'say', text })) {
    append(errorLine('not sent: the connection is closed or too many messages are waiting'));
  }
});

function setOnline(online) {
  state.online = Number(online);
  view.online.textContent = Number.isFinite(state.online) ? String(state.online) : '–';
}

// Another member's message: a `say` shows its text; anything else (another
// client may send whatever it likes) is shown as it arrived.
function relayed(json, data) {
  let text;
  if (json && typeof json === 'object' && json.type === 'say' && typeof json.text === 'string') {
    text = json.text;
  } else if (typeof data === 'string') {
    text = data;
  } else {
    text = `binary message, ${data?.byteLength ?? data?.size ?? '?'} bytes`;
  }
  const li = bubble('other', 'someone else', text);
  li.dataset.dir = 'received';
  return li;
}

function info(text) {
  return el('li', 'info', text);
}

function errorLine(text) {
  return el('li', 'error', text);
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
  append(errorLine(badRoomText(roomName)));
}

window.broadcast = { get room() { return room; }, state };

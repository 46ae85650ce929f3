// The chat page: one room of the `chat` kind (wire format: docs/chat.md)
// through the browser client (/client.js).
//
// The room comes from `?room=NAME` (default `lobby`). The page keeps no state
// of its own beyond what the server sends: on every (re)connection the server
// sends `welcome`, `history` and `state` again, and the page redraws from
// them. Its own messages show at once, marked pending until the server's
// `ack` (or failed on an `error` with the same ref, or when the connection
// drops before the ack). Every text from the network is inserted with
// textContent.

import { connect } from '/client.js';
import {
  ROOM_ID, appendToLog, badRoomText, byId as $, closeWhenLeaving, el, roomFromQuery, showNextAttempt, showRoomName, showStatus,
} from '/apps/common.js';

// Shown for a user whose country the server does not know.
const UNKNOWN_FLAG = '\u{1F310}'; // globe with meridians
// Message ids acked to this tab, per room, so that after a reload or a
// reconnect the history still shows this reader's messages on the right.
const OWN_KEY = (room) => `switchboard.chat.own.${room}`;
const OWN_KEEP = 200;

const view = {
  room: $('room'),
  status: $('status'),
  users: $('users'),
  count: $('count'),
  me: $('me'),
  messages: $('messages'),
  composer: $('composer'),
  text: $('text'),
  send: $('send'),
  roomInput: $('room-input'),
};

const roomName = roomFromQuery('lobby');

/** What the page knows, for people and tests poking at it from the console. */
const state = {
  room: roomName,
  status: 'connecting',
  me: null, // { id, name, country } from the last welcome
  users: [],
  count: 0,
  limits: null,
  ownIds: loadOwnIds(roomName),
};

let nextRef = 1;
let room = null;
let leaving = false;

showRoomName(view.room, roomName, 'Chat');
view.roomInput.value = roomName;

// --- connection ---

function start() {
  room = connect({ kind: 'chat', id: roomName });
  room.on('status', ({ status }) => setStatus(status));
  room.on('open', () => {
    // Messages typed while disconnected were just handed to the new socket.
    for (const li of ownUnconfirmed()) {
      if (li.dataset.state === 'queued') setOwnState(li, 'pending');
    }
  });
  room.on('message', ({ json, data }) => {
    if (json && typeof json === 'object' && typeof json.type === 'string') {
      handle(json);
    } else {
      console.warn('chat: ignoring a message that is not a typed JSON object', data);
    }
  });
  room.on('close', ({ code, reason, willReconnect, delay }) => {
    // A message handed to the socket that just closed got no answer; the
    // server may or may not have it, and the client does not resend it.
    for (const li of ownUnconfirmed()) {
      if (li.dataset.state === 'pending') markFailed(li, 'dropped', 'the connection dropped before the server confirmed it');
    }
    view.users.dataset.stale = '';
    if (willReconnect) {
      showNextAttempt(view.status, delay);
    } else if (!leaving) {
      const why = reason ? `: ${reason}` : '';
      showError('closed', `disconnected by the server (code ${code}${why})`);
    }
  });
  room.on('error', ({ error, data }) => {
    // Socket errors accompany every failed attempt and are followed by a
    // close; only messages the client dropped need the reader's attention.
    if (data === undefined) console.debug('chat: socket error', error);
  });
}

// --- server messages ---

function handle(msg) {
  switch (msg.type) {
    case 'welcome': return onWelcome(msg);
    case 'history': return onHistory(msg);
    case 'state': return onState(msg);
    case 'admin': return onAdmin(msg);
    case 'message': return appendLine(messageItem(msg, 'live'));
    case 'ack': return onAck(msg);
    case 'error': return onError(msg);
    default:
      console.warn('chat: unknown message type', msg.type);
  }
}

function onWelcome(msg) {
  state.me = { id: String(msg.id), name: String(msg.name), country: msg.country ?? null };
  state.limits = msg.limits ?? null;
  view.me.textContent = '';
  view.me.append(flagSpan(state.me.country), ' ', state.me.name);
  view.me.dataset.id = state.me.id;
  view.me.dataset.country = state.me.country ?? '';
  if (state.limits && Number.isInteger(state.limits.maxLength)) {
    view.text.maxLength = state.limits.maxLength;
  }
}

// The history replaces what the log showed: after a reconnect it is the
// authoritative record. Own messages still on their way, or lost with the
// last connection, stay below it so the reader can see what to send again;
// those the server refused (its error was shown) do not come back.
function onHistory(msg) {
  const keep = ownUnconfirmed().filter((li) => li.dataset.failure !== 'refused');
  view.messages.textContent = '';
  const entries = Array.isArray(msg.messages) ? msg.messages : [];
  for (const entry of entries) {
    if (entry && typeof entry === 'object') view.messages.append(messageItem(entry, 'history'));
  }
  if (entries.length > 0) {
    const divider = el('li', 'divider', `the last ${entries.length} ${entries.length === 1 ? 'message' : 'messages'} of this room`);
    divider.dataset.count = String(entries.length);
    view.messages.append(divider);
  }
  view.messages.append(...keep);
  view.messages.scrollTop = view.messages.scrollHeight;
}

function onState(msg) {
  const users = Array.isArray(msg.users) ? msg.users : [];
  state.users = users;
  state.count = Number.isInteger(msg.count) ? msg.count : users.length;
  view.count.textContent = String(state.count);
  const items = users.map((user) => {
    const li = document.createElement('li');
    li.dataset.id = String(user.id);
    li.dataset.country = user.country ?? '';
    li.append(flagSpan(user.country), el('span', 'name', String(user.name)));
    if (state.me && user.id === state.me.id) {
      li.classList.add('me');
      li.append(el('span', 'you', '(you)'));
    }
    return li;
  });
  view.users.replaceChildren(...items);
  delete view.users.dataset.stale;
}

function onAdmin(msg) {
  const li = el('li', 'admin', String(msg.text ?? ''));
  li.dataset.event = String(msg.event ?? '');
  if (msg.user) {
    li.dataset.user = String(msg.user.id);
    li.prepend(flagSpan(msg.user.country), ' ');
  }
  if (Number.isFinite(msg.time)) li.title = new Date(msg.time).toLocaleString();
  appendLine(li);
}

function onAck(msg) {
  const li = ownByRef(msg.ref);
  if (!li) return;
  li.dataset.id = String(msg.id);
  setOwnState(li, 'sent');
  const time = li.querySelector('time');
  if (time && Number.isFinite(msg.time)) setTime(time, msg.time);
  rememberOwnId(String(msg.id));
}

// An error about one of this page's messages is shown on that message;
// any other error gets a line of its own.
function onError(msg) {
  const code = String(msg.code ?? 'error');
  const text = String(msg.message ?? code);
  const own = ownByRef(msg.ref);
  if (own) {
    const note = markFailed(own, 'refused', text);
    note.classList.add('error');
    note.dataset.code = code;
    note.setAttribute('role', 'alert');
  } else {
    const li = showError(code, text);
    if (typeof msg.ref === 'string') li.dataset.ref = msg.ref;
  }
}

// --- sending ---

view.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = view.text.value;
  if (text.trim() === '' || !room) return;
  const ref = `r${nextRef++}`;
  const queued = room.status !== 'open';
  const li = ownItem(text, ref, queued ? 'queued' : 'pending');
  appendLine(li, true);
  view.text.value = '';
  view.text.focus();
  if (!room.sendJson({ type: 'message', text, ref })) {
    markFailed(li, 'local', room.status === 'closed' ? 'not connected' : 'too many messages waiting for the connection');
  }
});

// --- rendering ---

function messageItem(msg, source) {
  const from = msg.from && typeof msg.from === 'object' ? msg.from : {};
  const id = String(msg.id ?? '');
  const mine = state.ownIds.has(id);
  const li = document.createElement('li');
  li.className = `msg bubble ${mine ? 'own' : 'other'}`;
  li.dataset.id = id;
  li.dataset.from = String(from.id ?? '');
  li.dataset.source = source;
  const meta = el('div', 'meta');
  if (mine) {
    li.dataset.state = 'sent';
    meta.append(el('span', 'name', 'you'), timeEl(msg.time), el('span', 'state', '✓'));
  } else {
    meta.append(flagSpan(from.country), el('span', 'name', String(from.name ?? 'someone')), timeEl(msg.time));
  }
  li.append(meta, el('p', 'text', String(msg.text ?? '')));
  return li;
}

function ownItem(text, ref, ownState) {
  const li = document.createElement('li');
  li.className = 'msg bubble own';
  li.dataset.ref = ref;
  li.dataset.source = 'self';
  const meta = el('div', 'meta');
  meta.append(el('span', 'name', 'you'), timeEl(Date.now()), el('span', 'state'));
  li.append(meta, el('p', 'text', text));
  setOwnState(li, ownState);
  return li;
}

const STATE_TEXT = { queued: 'waiting for the connection…', pending: 'sending…', sent: '✓', failed: 'not sent' };

function setOwnState(li, ownState) {
  li.dataset.state = ownState;
  const label = li.querySelector('.state');
  if (label) {
    label.textContent = STATE_TEXT[ownState] ?? ownState;
    label.title = ownState === 'sent' ? 'delivered to the room' : '';
  }
}

// failure: 'refused' (the server's error), 'dropped' (the connection closed
// before an answer) or 'local' (the client could not send). Returns the note.
function markFailed(li, failure, why) {
  setOwnState(li, 'failed');
  li.dataset.failure = failure;
  let note = li.querySelector('.why');
  if (!note) {
    note = el('p', 'why');
    li.append(note);
  }
  note.textContent = why;
  return note;
}

function showError(code, text) {
  const li = el('li', 'error', text);
  li.dataset.code = code;
  li.setAttribute('role', 'alert');
  appendLine(li, true);
  return li;
}

function ownUnconfirmed() {
  return [...view.messages.querySelectorAll('li.msg.own[data-ref]')].filter((li) => li.dataset.state !== 'sent');
}

function ownByRef(ref) {
  if (typeof ref !== 'string') return null;
  return [...view.messages.querySelectorAll('li.msg.own[data-ref]')].find((li) => li.dataset.ref === ref) ?? null;
}

function setStatus(status, text) {
  state.status = status;
  showStatus(view.status, status, { text, controls: [view.text, view.send] });
}

// Follows the conversation unless the reader scrolled back, or when `force`
// (the reader's own message or an error they must see).
function appendLine(li, force = false) {
  appendToLog(view.messages, li, force);
}

function timeEl(ms) {
  const time = document.createElement('time');
  if (Number.isFinite(ms)) setTime(time, ms);
  return time;
}

function setTime(time, ms) {
  const date = new Date(ms);
  time.dateTime = date.toISOString();
  time.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  time.title = date.toLocaleString();
}

/** The flag emoji of an ISO 3166-1 alpha-2 code: its two regional-indicator symbols. */
function flagOf(country) {
  if (typeof country !== 'string' || !/^[A-Za-z]{2}$/.test(country)) return UNKNOWN_FLAG;
  const A = 'A'.codePointAt(0);
  return String.fromCodePoint(...[...country.toUpperCase()].map((c) => 0x1f1e6 + c.codePointAt(0) - A));
}

function flagSpan(country) {
  const known = typeof country === 'string' && country !== '';
  const span = el('span', 'flag', flagOf(country));
  span.setAttribute('role', 'img');
  span.setAttribute('aria-label', known ? `country ${country}` : 'country unknown');
  span.title = known ? country : 'country unknown';
  return span;
}

// --- own message ids, kept per tab ---

function loadOwnIds(name) {
  try {
    const ids = JSON.parse(sessionStorage.getItem(OWN_KEY(name)) ?? '[]');
    return new Set(Array.isArray(ids) ? ids.filter((id) => typeof id === 'string') : []);
  } catch {
    return new Set();
  }
}

function rememberOwnId(id) {
  state.ownIds.add(id);
  try {
    sessionStorage.setItem(OWN_KEY(roomName), JSON.stringify([...state.ownIds].slice(-OWN_KEEP)));
  } catch {
    // Storage may be full or disabled; the page works without it.
  }
}

// --- start ---

closeWhenLeaving(() => {
  leaving = true;
  room?.close(1000, 'page closed');
});

if (ROOM_ID.test(roomName)) {
  start();
} else {
  setStatus('closed', 'not connected');
  view.composer.querySelectorAll('input, button').forEach((e) => { e.disabled = true; });
  showError('bad_room', badRoomText(roomName));
}

window.chat = {
  get room() { return room; },
  get status() { return room ? room.status : state.status; },
  state,
};

// What every app page shares: the room name from the address, the connection
// status badge in the header, small DOM builders, the message log, and
// closing the room when the page goes away.
//
// It holds no state and knows no room kind's messages; each page keeps its
// own protocol and rendering. Text from the network must reach the page
// through `textContent` only, which is all these helpers use.

/** The server's room id rule (switchboard-server's routes.rs): 1-128 of A-Z a-z 0-9 - _ . */
export const ROOM_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Words on the status badge for each status of the browser client. */
const STATUS_TEXT = { connecting: 'connecting…', open: 'connected', reconnecting: 'reconnecting…', closed: 'disconnected' };

export const byId = (id) => document.getElementById(id);

/** The room named by `?room=NAME` in the page's address, or `fallback`. */
export function roomFromQuery(fallback) {
  return (new URLSearchParams(location.search).get('room') ?? '').trim() || fallback;
}

/** Why `name` cannot be used, for a page whose `?room=` fails ROOM_ID. */
export function badRoomText(name) {
  return `"${name}" is not a room name: use 1 to 128 letters, digits, "-", "_" or "."`;
}

/** Shows the room's name in the header element `target` and the tab title. */
export function showRoomName(target, name, app) {
  target.textContent = name;
  document.title = `#${name} · ${app} · switchboard`;
}

/**
 * Shows `status` on the header's badge and on `<body data-status>` (which
 * the stylesheet and the browser tests read), in words unless `text` says
 * otherwise. The `controls` (inputs, buttons) are disabled while closed.
 */
export function showStatus(badge, status, { text, controls = [] } = {}) {
  badge.dataset.status = status;
  document.body.dataset.status = status;
  badge.textContent = text ?? STATUS_TEXT[status] ?? status;
  if (status !== 'reconnecting') badge.title = '';
  for (const control of controls) control.disabled = status === 'closed';
}

/** Tells, on hover over the badge, when the client tries again. */
export function showNextAttempt(badge, delayMs) {
  badge.title = `next attempt at ${new Date(Date.now() + delayMs).toLocaleTimeString()}`;
}

/** A `tag` element with an optional class and text (set as text, never markup). */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A message bubble: `side` is `own` (right) or `other` (left), `who` its caption. */
export function bubble(side, who, text) {
  const li = el('li', `bubble ${side}`);
  li.append(el('div', 'meta', who), el('p', 'text', text));
  return li;
}

/**
 * Appends `item` to the message log `log` and scrolls to it when `follow`
 * is true, or when the reader was already at the end (within 40 px) and so
 * is following the conversation rather than reading back.
 */
export function appendToLog(log, item, follow = false) {
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(item);
  if (follow || atEnd) log.scrollTop = log.scrollHeight;
}

/**
 * Calls `leave` when the page is hidden for good or for the back/forward
 * cache (the place to close the room with 1000), and reloads a page restored
 * from that cache, whose room is closed by then.
 */
export function closeWhenLeaving(leave) {
  addEventListener('pagehide', leave);
  addEventListener('pageshow', (event) => {
    if (event.persisted) location.reload();
  });
}

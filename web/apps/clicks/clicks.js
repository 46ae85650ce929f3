// The clicks dashboard: one account's room of the `clicks` kind (wire
// format: docs/clicks.md) through the browser client (/client.js), and the
// links API for the links table.
//
// Signing in: the reader pastes an API key; the page exchanges it at
// POST /api/token for a short-lived dashboard token, whose subject is the
// account, and connects to `clicks/{account}` with it. A page opened with
// `?token=...` uses that token (and drops it from the address bar); it can
// watch but not manage links, which takes the API key. Token and key are
// kept in sessionStorage: this tab only, gone when it closes. When the
// token has expired, the page fetches a new one with the key (or asks to
// sign in again).
//
// The server sends a snapshot on every (re)connection and a message per
// group of clicks recorded together (`click` for one, `clicks` for more);
// the page redraws from the snapshot and counts the clicks on top.
// The map is web/apps/clicks/world.json (scripts/build-map-asset.mjs):
// country outlines already projected, and the projection's two numbers to
// place a click's coordinates. Every text from the network is inserted with
// textContent.

import { connect } from '/client.js';
import { byId as $, closeWhenLeaving, el, showStatus } from '/apps/common.js';

const TOKEN_KEY = 'switchboard.clicks.token';
const API_KEY_KEY = 'switchboard.clicks.apiKey';
// Feed lines kept on the page: the server keeps 1,000; a reader looks at
// the last few dozen.
const FEED_LIMIT = 100;
// Minutes in the totals' sparkline.
const SPARK_MINUTES = 60;
const MINUTE = 60_000;
// A token this close to its expiry is renewed before connecting again.
const RENEW_MARGIN_MS = 10_000;
// How long a click's pulse stays on the map (the CSS animation's length).
const PULSE_MS = 1600;
// Most pulses one message starts: a group of thousands would otherwise put
// thousands of animated circles on the map at once.
const PULSES_PER_MESSAGE = 50;

const view = {
  status: $('status'), account: $('account'), accountLabel: $('account-label'), signOut: $('sign-out'),
  login: $('login'), loginForm: $('login-form'), apiKey: $('api-key'), loginError: $('login-error'),
  dashboard: $('dashboard'), total: $('total'), countryCount: $('country-count'), linkCount: $('link-count'),
  series: $('series'), map: $('map'), topCountries: $('top-countries'), feed: $('feed'),
  createForm: $('create-form'), newUrl: $('new-url'), newSlug: $('new-slug'), create: $('create'),
  linksError: $('links-error'), links: $('links'),
};

/** What the page knows, for people and tests looking from the console. */
const state = {
  status: 'closed',
  account: null,
  total: 0,
  countries: {},
  series: new Map(), // minute start (ms) → clicks
  links: [],
  recent: [],
  snapshots: 0,
  pulses: 0,
  groups: 0, // `clicks` messages taken in
};
window.clicksState = state;

let room = null;
let world = null;
const countryPaths = new Map(); // alpha-2 → [path]

// --- signing in ---

function tokenSubject(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), '=')));
  } catch {
    return null;
  }
}

async function exchange(apiKey) {
  const response = await fetch('/api/token', { method: 'POST', headers: { Authorization: `Bearer ${apiKey}` } });
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* a plain-text refusal */ }
  if (!response.ok) throw new Error(body?.error ?? (text.trim() || `the server answered ${response.status}`));
  const token = body?.token;
  if (typeof token !== 'string') throw new Error('the server sent no token');
  return token;
}

function signIn(token) {
  const claims = tokenSubject(token);
  if (!claims || typeof claims.sub !== 'string') {
    view.loginError.textContent = 'that token names no account';
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.account = claims.sub;
  view.account.textContent = claims.sub;
  view.accountLabel.hidden = false;
  view.signOut.hidden = false;
  view.login.hidden = true;
  view.dashboard.hidden = false;
  document.body.dataset.signedIn = 'true';
  document.title = `${claims.sub} · Clicks · switchboard`;
  const canManage = sessionStorage.getItem(API_KEY_KEY) !== null;
  for (const control of [view.newUrl, view.newSlug, view.create]) control.disabled = !canManage;
  if (!canManage) view.linksError.textContent = 'sign in with an API key to create or delete links';
  start(token, claims);
}

/** Closes the current room, if any, without reacting to its close. */
function dropRoom(reason) {
  const old = room;
  room = null;
  old?.close(1000, reason);
}

function signOut(message = '') {
  dropRoom('signed out');
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(API_KEY_KEY);
  document.body.dataset.signedIn = 'false';
  view.login.hidden = false;
  view.dashboard.hidden = true;
  view.accountLabel.hidden = true;
  view.signOut.hidden = true;
  view.loginError.textContent = message;
  setStatus('closed');
}

view.loginForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const key = view.apiKey.value.trim();
  view.loginError.textContent = '';
  try {
    const token = await exchange(key);
    sessionStorage.setItem(API_KEY_KEY, key);
    view.apiKey.value = '';
    signIn(token);
  } catch (e) {
    view.loginError.textContent = e.message;
  }
});
view.signOut.addEventListener('click', () => signOut());

// --- the connection ---

function setStatus(status) {
  state.status = status;
  showStatus(view.status, status);
}

function start(token, claims) {
  dropRoom('new token');
  const mine = connect({ kind: 'clicks', id: claims.sub, token });
  room = mine;
  mine.on('status', ({ status }) => {
    if (room === mine) setStatus(status);
  });
  mine.on('message', ({ json, data }) => {
    if (room !== mine) return;
    if (json && typeof json === 'object' && typeof json.type === 'string') handle(json);
    else console.warn('clicks: ignoring a message that is not a typed JSON object', data);
  });
  mine.on('close', ({ willReconnect }) => {
    if (room !== mine) return;
    const expiring = typeof claims.exp === 'number' && claims.exp * 1000 - Date.now() < RENEW_MARGIN_MS;
    if (willReconnect && !expiring) return;
    renew();
  });
}

/** A fresh token from the API key, or back to the sign-in form. */
async function renew() {
  const key = sessionStorage.getItem(API_KEY_KEY);
  dropRoom('renewing');
  if (key === null) {
    signOut('the dashboard token expired or was refused: sign in again');
    return;
  }
  try {
    signIn(await exchange(key));
  } catch (e) {
    signOut(e.message);
  }
}

function handle(message) {
  switch (message.type) {
    case 'snapshot': return onSnapshot(message);
    case 'click': return onClick(message);
    case 'clicks':
      state.groups += 1;
      return onClicks(message);
    case 'links': return onLinks(message.links);
    case 'error': return console.warn('clicks: the server says', message.error);
    default: return console.warn('clicks: unknown message type', message.type);
  }
}

function onSnapshot(snapshot) {
  state.snapshots += 1;
  state.total = snapshot.total;
  state.countries = { ...snapshot.countries };
  state.series = new Map(snapshot.series);
  state.recent = snapshot.recent.slice(-FEED_LIMIT);
  view.feed.replaceChildren(...state.recent.map(feedItem).reverse());
  onLinks(snapshot.links);
  drawTotals();
}

function onClick(click) {
  onClicks({ clicks: [click], total: click.total });
}

// A group of clicks recorded together (a `click` is a group of one): counted
// one by one, drawn once. A group holds up to 4,096 clicks, so the feed
// takes only its newest lines and the map only its newest pulses.
function onClicks(group) {
  const { clicks } = group;
  state.total = group.total;
  for (const click of clicks) {
    const country = click.country ?? '??';
    state.countries[country] = (state.countries[country] ?? 0) + 1;
    const minute = click.time - (click.time % MINUTE);
    state.series.set(minute, (state.series.get(minute) ?? 0) + 1);
    const link = state.links.find((l) => l.slug === click.slug);
    if (link) link.clicks += 1;
  }
  const newest = clicks.slice(-FEED_LIMIT);
  state.recent.push(...newest);
  if (state.recent.length > FEED_LIMIT) state.recent.splice(0, state.recent.length - FEED_LIMIT);
  view.feed.prepend(...newest.map(feedItem).reverse());
  while (view.feed.children.length > FEED_LIMIT) view.feed.lastElementChild.remove();
  const located = clicks.filter((c) => typeof c.lat === 'number' && typeof c.lon === 'number');
  for (const click of located.slice(-PULSES_PER_MESSAGE)) pulse(click.lat, click.lon);
  drawTotals();
  drawLinks();
}

function onLinks(links) {
  state.links = links.map((l) => ({ ...l }));
  drawLinks();
  view.linkCount.textContent = String(state.links.length);
}

// --- drawing ---

function drawTotals() {
  view.total.textContent = state.total.toLocaleString();
  const known = Object.entries(state.countries).filter(([code]) => code !== '??');
  view.countryCount.textContent = String(known.length);
  shadeMap();
  const top = known.sort((a, b) => b[1] - a[1]).slice(0, 8);
  view.topCountries.replaceChildren(...top.map(([code, n]) => el('li', null, `${countryName(code)} ${n.toLocaleString()}`)));
  drawSparkline();
}

function drawSparkline() {
  const now = Date.now();
  const last = now - (now % MINUTE);
  const bars = [];
  for (let i = SPARK_MINUTES - 1; i >= 0; i--) bars.push(state.series.get(last - i * MINUTE) ?? 0);
  const max = Math.max(1, ...bars);
  const width = 120 / SPARK_MINUTES;
  view.series.replaceChildren(...bars.map((n, i) => {
    const rect = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    const h = (n / max) * 30;
    rect.setAttribute('x', String(i * width));
    rect.setAttribute('y', String(30 - h));
    rect.setAttribute('width', String(width * 0.8));
    rect.setAttribute('height', String(h));
    return rect;
  }));
}

function feedItem(click) {
  const li = el('li');
  li.dataset.slug = click.slug;
  const where = [click.city, click.country ? countryName(click.country) : null].filter(Boolean).join(', ') || 'somewhere';
  li.append(
    el('span', 'when', new Date(click.time).toLocaleTimeString()),
    el('strong', null, `/${click.slug}`),
    el('span', 'where', ` · ${where}`),
  );
  if (click.referrer) li.append(el('span', 'where', ` · via ${click.referrer}`));
  return li;
}

function drawLinks() {
  view.links.replaceChildren(...state.links.map((link) => {
    const tr = el('tr');
    tr.dataset.slug = link.slug;
    const short = `${location.origin}/l/${link.slug}`;
    const a = el('a', null, short);
    a.href = short;
    a.target = '_blank';
    a.rel = 'noopener';
    const target = el('td', null, link.url);
    const clicks = el('td', 'num', link.clicks.toLocaleString());
    clicks.dataset.clicks = String(link.clicks);
    const actions = el('td', 'actions');
    const copy = el('button', 'secondary', 'Copy');
    copy.type = 'button';
    copy.addEventListener('click', () => copyText(short, copy));
    const remove = el('button', 'secondary', 'Delete');
    remove.type = 'button';
    remove.disabled = sessionStorage.getItem(API_KEY_KEY) === null;
    remove.addEventListener('click', () => deleteLink(link.slug));
    actions.append(copy, remove);
    const first = el('td');
    first.append(a);
    tr.append(first, target, clicks, actions);
    return tr;
  }));
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Copy failed';
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
}

// --- the map ---

async function loadMap() {
  const response = await fetch('/apps/clicks/world.json');
  world = await response.json();
  // Antarctica and the far north take room and get no clicks worth showing.
  view.map.setAttribute('viewBox', `0 10 ${world.width} ${world.height * 0.81}`);
  for (const country of world.countries) {
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('d', country.d);
    path.setAttribute('class', 'country');
    path.dataset.country = country.id;
    path.dataset.count = '0';
    const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
    title.textContent = country.name;
    path.append(title);
    view.map.append(path);
    if (country.id) countryPaths.set(country.id, [...(countryPaths.get(country.id) ?? []), path]);
  }
  shadeMap();
}

function countryName(code) {
  return world?.countries.find((c) => c.id === code)?.name ?? code;
}

function shadeMap() {
  const counts = Object.entries(state.countries).filter(([code]) => countryPaths.has(code));
  const max = Math.max(1, ...counts.map(([, n]) => n));
  for (const [code, paths] of countryPaths) {
    const n = state.countries[code] ?? 0;
    for (const path of paths) {
      path.dataset.count = String(n);
      path.classList.toggle('hit', n > 0);
      // Log scale: one busy country does not wash out the rest.
      path.style.fillOpacity = n > 0 ? String(0.3 + (0.7 * Math.log1p(n)) / Math.log1p(max)) : '';
    }
  }
}

function pulse(lat, lon) {
  if (!world) return;
  const { scale, translate: [tx, ty] } = world.projection;
  const circle = document.createElementNS('http://www.w3.org/2000/svg', 'circle');
  circle.setAttribute('cx', String(tx + ((lon * Math.PI) / 180) * scale));
  circle.setAttribute('cy', String(ty - ((lat * Math.PI) / 180) * scale));
  circle.setAttribute('r', '4');
  circle.setAttribute('class', 'pulse');
  view.map.append(circle);
  state.pulses += 1;
  setTimeout(() => circle.remove(), PULSE_MS);
}

// --- links ---

async function linksApi(method, path, body) {
  const key = sessionStorage.getItem(API_KEY_KEY);
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    throw new Error(error.error ?? `the server answered ${response.status}`);
  }
  return response.status === 204 ? null : response.json();
}

view.createForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  view.linksError.textContent = '';
  const body = { url: view.newUrl.value.trim() };
  const slug = view.newSlug.value.trim();
  if (slug) body.slug = slug;
  try {
    await linksApi('POST', '/api/links', body);
    view.newUrl.value = '';
    view.newSlug.value = '';
  } catch (e) {
    view.linksError.textContent = e.message;
  }
});

async function deleteLink(slug) {
  view.linksError.textContent = '';
  try {
    await linksApi('DELETE', `/api/links/${encodeURIComponent(slug)}`);
  } catch (e) {
    view.linksError.textContent = e.message;
  }
}

// --- start ---

closeWhenLeaving(() => dropRoom('page closed'));
await loadMap().catch((e) => console.warn('clicks: no map', e));
const fromAddress = new URLSearchParams(location.search).get('token');
if (fromAddress) {
  // Out of the address bar, the history and anything copied from them.
  history.replaceState(null, '', location.pathname);
  sessionStorage.removeItem(API_KEY_KEY);
  signIn(fromAddress);
} else if (sessionStorage.getItem(TOKEN_KEY)) {
  signIn(sessionStorage.getItem(TOKEN_KEY));
}

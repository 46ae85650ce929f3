// switchboard browser client: one room connection that survives restarts.
//
// What it is: a small wrapper around one WebSocket at a time for a single
// room (`/rooms/{kind}/{id}`). It resolves the room's ws:/wss: URL from the
// page, reports its state through events, reconnects with capped exponential
// backoff and jitter after closes that may succeed on a retry (to the next
// server in turn when it was given several, as the nodes of a cluster), and
// holds a bounded queue of messages sent while no socket is open.
//
// What it is not: a protocol. It does not know what a room's messages mean,
// does not acknowledge or replay messages, and does not re-send anything the
// server may have missed while the connection was down. A message that was
// handed to an open socket which then closed is gone; a message queued while
// no socket was open is sent, in order, by the next socket that opens.
//
// The caller's contract: call close() when done. After close() no timer is
// pending and no socket remains open, so a page or a test can end.
//
// Plain ES module, no dependencies, no build step. Documentation with the
// reasons behind each default: docs/client.md.

/** Reconnect policy used when the `reconnect` option is omitted. */
export const DEFAULT_RECONNECT = Object.freeze({
  // Half a second: a server restart takes about that long, and a first retry
  // sooner than that mostly finds the port still closed.
  min: 500,
  // Thirty seconds: long enough that a crowd of pages waiting for a server
  // that is down costs it little, short enough that a user still waits.
  max: 30000,
  // Doubling reaches the cap in six steps from the minimum.
  factor: 2,
  // Each delay is cut by up to half, at random, so pages that lost the same
  // server at the same moment do not all come back at the same moment.
  jitter: 0.5,
  // Close codes (beyond the built-in ones) after which to reconnect.
  retryCodes: Object.freeze([]),
});

// Messages queued while no socket is open. A hundred covers a burst of user
// input during a restart; beyond that the caller learns of it (send returns
// false) instead of the page holding an unbounded backlog.
const DEFAULT_QUEUE_LIMIT = 100;

// The subprotocol the switchboard rooms speak by default.
const DEFAULT_PROTOCOLS = Object.freeze(['json']);

// Close codes after which a new connection may well succeed: the server went
// away or restarted (1001, 1012), the connection dropped without a close frame
// (1005, 1006), the server failed or was overloaded (1011, 1013, 1014).
// Every other code (1000, 1002, 1003, 1007, 1008, 1009, 1010, 3000-4999, ...)
// says the same request would be refused again, and ends the room for good
// unless `reconnect.retryCodes` lists it.
const RETRY_CODES = Object.freeze([1001, 1005, 1006, 1011, 1012, 1013, 1014]);

// The server closes a connection whose token expired with this code
// (docs/auth.md). With a token callback the room fetches a fresh token and
// reconnects; with a fixed token the same token would be refused again.
const TOKEN_EXPIRED = 4001;

// A token offered as a subprotocol (docs/auth.md): the server reads it and
// never selects it; it selects the room's own protocol or this bare marker.
const TOKEN_PROTOCOL = 'switchboard.token';

// WebSocket.readyState values (the fakes used in tests need not define them).
const OPEN = 1;

// A close frame's reason is at most 123 bytes of UTF-8 (RFC 6455 5.5).
const MAX_REASON_BYTES = 123;

/**
 * Delay in milliseconds before reconnect attempt number `attempt` (0 for the
 * first retry after a close).
 *
 * base = min(max, min * factor ** attempt)
 * delay = base * (1 - jitter * random()), so delay is in [base * (1 - jitter), base].
 *
 * Pure: the same arguments give the same result. `random` must return a
 * number in [0, 1); values outside are clamped so the bounds always hold.
 */
export function backoffDelay(attempt, policy = DEFAULT_RECONNECT, random = Math.random) {
  const { min, max, factor, jitter } = { ...DEFAULT_RECONNECT, ...policy };
  const base = Math.min(max, min * factor ** Math.max(0, attempt));
  const r = Math.min(1, Math.max(0, Number(random()) || 0));
  return base * (1 - jitter * r);
}

/**
 * A room connection. Construction starts connecting at once; listen for
 * events right after. See docs/client.md for the events and the policy.
 */
export class RoomSocket extends EventTarget {
  #urls; // every URL the room may connect to, tried in turn
  #current = 0; // the index in #urls of the current or next socket's URL
  #protocols;
  #tokenSource; // () => token or a promise of one; null for no token or a fixed one in the URL
  #tokenIn; // 'query' | 'protocol'
  #tokenRequest = 0; // which token request the next socket waits for
  #binaryType;
  #policy; // null when reconnecting is off
  #queueLimit;
  #WebSocket;
  #setTimeout;
  #clearTimeout;
  #random;

  #status = 'connecting';
  #protocol = '';
  #socket = null; // the one socket this room owns, or null between sockets
  #timer = null; // the pending reconnect, or null
  #attempt = 0; // reconnect attempts since the last successful open
  #everOpened = false;
  #closed = false; // close() was called or a close ended the room for good
  #queue = [];

  constructor(options = {}) {
    super();
    this.#tokenIn = normalizeTokenIn(options.tokenIn);
    const { token } = options;
    if (typeof token === 'function' || (this.#tokenIn === 'protocol' && token !== undefined && token !== null)) {
      // Asked for before each connection (or sent in the protocol list), so
      // the URL itself carries none.
      this.#tokenSource = typeof token === 'function' ? token : () => String(token);
      this.#urls = resolveUrls({ ...options, token: undefined });
    } else {
      this.#tokenSource = null;
      this.#urls = resolveUrls(options);
    }
    this.#protocols = normalizeProtocols(options.protocols);
    this.#binaryType = options.binaryType ?? 'arraybuffer';
    this.#policy = normalizePolicy(options.reconnect);
    this.#queueLimit = normalizeQueueLimit(options.queueLimit);
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== 'function') {
      throw new TypeError('switchboard: no WebSocket implementation; pass one as the WebSocket option');
    }
    this.#setTimeout = options.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
    this.#clearTimeout = options.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
    this.#random = options.random ?? Math.random;
    // A constructor failure here (a URL or subprotocol the WebSocket refuses)
    // is the caller's mistake and is thrown, not retried. With a token
    // callback the socket comes once the token does.
    this.#connect();
  }

  /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get status() { return this.#status; }

  /** The subprotocol the server chose on the last open ('' until the first open). */
  get protocol() { return this.#protocol; }

  /**
   * The resolved ws: or wss: URL of the current socket (or of the next one
   * while reconnecting), with the token if a fixed one rides in the query.
   */
  get url() { return this.#urls[this.#current]; }

  /** Every URL the room connects to in turn (one unless several were given). */
  get urls() { return [...this.#urls]; }

  /** How many messages wait in the queue for the next open socket. */
  get queued() { return this.#queue.length; }

  /** Subscribes `fn(detail)` to events of `type`; returns the unsubscribe function. */
  on(type, fn) {
    const listener = (event) => fn(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /**
   * Sends now when a socket is open, else queues for the next open socket.
   * Returns true if sent or queued, false if dropped (queue full, or the room
   * is closed); a drop also emits 'error'.
   */
  send(data) {
    checkData(data);
    if (this.#closed) {
      return this.#drop(data, 'closed', 'switchboard: send after the room closed');
    }
    const socket = this.#socket;
    if (socket && socket.readyState === OPEN) {
      socket.send(data);
      return true;
    }
    if (this.#queue.length >= this.#queueLimit) {
      return this.#drop(data, 'queue-full', `switchboard: send queue full (${this.#queueLimit} messages), message dropped`);
    }
    this.#queue.push(copyData(data));
    return true;
  }

  /** JSON.stringify(value), then send. */
  sendJson(value) {
    const text = JSON.stringify(value);
    if (typeof text !== 'string') throw new TypeError('switchboard: sendJson value has no JSON form');
    return this.send(text);
  }

  /**
   * Ends the room on purpose: status 'closed', no reconnect, queued messages
   * discarded, the pending retry cancelled, the socket closed with `code`
   * (1000 or 3000-4999) and `reason` (at most 123 bytes of UTF-8).
   */
  close(code = 1000, reason = '') {
    if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new RangeError(`switchboard: close code must be 1000 or 3000-4999, not ${code}`);
    }
    reason = String(reason);
    if (new TextEncoder().encode(reason).length > MAX_REASON_BYTES) {
      throw new RangeError(`switchboard: close reason longer than ${MAX_REASON_BYTES} bytes`);
    }
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#cancelTimer();
    // The socket keeps its handlers until its own close event, which is then
    // reported with willReconnect false.
    if (this.#socket) this.#socket.close(code, reason);
    this.#setStatus('closed');
  }

  // --- inputs from the socket and the timer ---

  #handleOpen(socket) {
    if (socket !== this.#socket || this.#closed) return;
    const reconnected = this.#everOpened;
    this.#everOpened = true;
    this.#attempt = 0;
    this.#protocol = socket.protocol ?? '';
    // Queued messages go out before any listener can send, so order holds.
    const queue = this.#queue;
    this.#queue = [];
    for (const data of queue) {
      try {
        socket.send(data);
      } catch (error) {
        this.#emit('error', { error, data });
      }
    }
    this.#setStatus('open');
    if (socket !== this.#socket) return; // a status listener closed the room
    this.#emit('open', { protocol: this.#protocol, reconnected });
  }

  #handleMessage(socket, event) {
    if (socket !== this.#socket) return;
    const data = event.data;
    let json;
    if (typeof data === 'string') {
      try { json = JSON.parse(data); } catch { json = undefined; }
    }
    this.#emit('message', { data, json });
  }

  #handleError(socket, event) {
    // Errors of a socket the caller closed on purpose (such as closing it
    // while it connects) are expected and not reported.
    if (socket !== this.#socket || this.#closed) return;
    const error = event && event.error instanceof Error
      ? event.error
      : new Error((event && event.message) || 'switchboard: WebSocket error');
    this.#emit('error', { error, event });
  }

  #handleClose(socket, event) {
    if (socket !== this.#socket) return;
    this.#socket = null;
    const code = event?.code ?? 1005;
    const reason = event?.reason ?? '';
    const wasClean = Boolean(event?.wasClean);
    this.#finishSocket(code, reason, wasClean);
  }

  // A socket ended (or could not be created): report it and either schedule
  // the next attempt or end the room.
  #finishSocket(code, reason, wasClean) {
    let delay = null;
    if (!this.#closed && this.#shouldRetry(code)) {
      delay = backoffDelay(this.#attempt, this.#policy, this.#random);
      this.#attempt += 1;
      // The server that went away (or refused) may be gone for good, as a
      // node of a cluster can be: the next attempt tries the next one.
      this.#current = (this.#current + 1) % this.#urls.length;
      this.#timer = this.#setTimeout(() => this.#handleTimer(), delay);
      this.#setStatus('reconnecting');
    } else if (!this.#closed) {
      this.#closed = true;
      this.#queue = [];
      this.#setStatus('closed');
    }
    // A status listener may have called close() and cancelled the retry.
    const willReconnect = this.#timer !== null;
    this.#emit('close', { code, reason, wasClean, willReconnect, delay: willReconnect ? delay : null });
  }

  #handleTimer() {
    this.#timer = null;
    if (this.#closed) return;
    try {
      this.#connect();
    } catch (error) {
      // Counted as a failed attempt, like a refused connection.
      this.#emit('error', { error });
      if (!this.#closed && !this.#timer && !this.#socket) this.#finishSocket(1006, '', false);
    }
  }

  // --- helpers ---

  // Opens the next socket: at once, or once the token callback answers. A
  // callback that throws, rejects or gives no token counts as a failed
  // attempt (reported as 'error', retried with backoff).
  #connect() {
    if (!this.#tokenSource) {
      this.#socket = this.#createSocket(this.url, this.#protocols);
      return;
    }
    const request = ++this.#tokenRequest;
    new Promise((resolve) => resolve(this.#tokenSource()))
      .then((token) => {
        if (this.#closed || request !== this.#tokenRequest) return;
        if (typeof token !== 'string' || token === '') {
          throw new TypeError('switchboard: the token callback must give a non-empty string');
        }
        this.#socket = this.#createSocket(...this.#withToken(token));
      })
      .catch((error) => {
        if (this.#closed || request !== this.#tokenRequest) return;
        this.#emit('error', { error });
        if (!this.#timer && !this.#socket) this.#finishSocket(1006, '', false);
      });
  }

  // The URL and protocol list that carry `token`.
  #withToken(token) {
    if (this.#tokenIn === 'protocol') {
      const protocols = this.#protocols.length === 0 ? [TOKEN_PROTOCOL] : [...this.#protocols];
      return [this.url, [...protocols, `${TOKEN_PROTOCOL}.${token}`]];
    }
    return [withQueryToken(new URL(this.url), token), this.#protocols];
  }

  #createSocket(url, protocols) {
    const socket = new this.#WebSocket(url, protocols);
    try { socket.binaryType = this.#binaryType; } catch { /* implementation without it */ }
    socket.onopen = () => this.#handleOpen(socket);
    socket.onmessage = (event) => this.#handleMessage(socket, event);
    socket.onerror = (event) => this.#handleError(socket, event);
    socket.onclose = (event) => this.#handleClose(socket, event);
    return socket;
  }

  #shouldRetry(code) {
    if (!this.#policy) return false;
    if (code === TOKEN_EXPIRED && this.#tokenSource) return true;
    return RETRY_CODES.includes(code) || this.#policy.retryCodes.includes(code);
  }

  #cancelTimer() {
    if (this.#timer !== null) {
      this.#clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  #setStatus(status) {
    const previous = this.#status;
    if (previous === status) return;
    this.#status = status;
    this.#emit('status', { status, previous });
  }

  #drop(data, reasonCode, message) {
    const error = new Error(message);
    error.code = reasonCode;
    this.#emit('error', { error, data });
    return false;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * Creates a RoomSocket: `connect({ kind, id })`, `connect({ kind, id, servers: [...] })`,
 * `connect({ url })` (one URL or several), or `connect('wss://...')`.
 */
export function connect(options) {
  if (typeof options === 'string' || options instanceof URL) options = { url: options };
  return new RoomSocket(options);
}

/**
 * The ws:/wss: URLs for the options, in the order they are tried: `url` (one
 * or an array of several), or the room `kind`/`id` on the page's server or,
 * with `servers` (an array of http:, https:, ws: or wss: base URLs), on each
 * of those. Throws TypeError when it cannot tell.
 */
export function resolveUrls(options = {}) {
  const { url, servers } = options;
  if (servers !== undefined && servers !== null) {
    if (url !== undefined && url !== null) throw new TypeError('switchboard: give either url, or kind and id with servers, not both');
    if (!Array.isArray(servers) || servers.length === 0) throw new TypeError('switchboard: servers must be a non-empty array of base URLs');
    const room = resolveUrl({ ...options, servers: undefined, location: 'http://servers.invalid/' });
    const path = new URL(room);
    return servers.map((base) => {
      const server = new URL(resolveUrl({ url: String(base), location: options.location }));
      server.pathname = `${server.pathname.replace(/\/+$/, '')}${path.pathname}`;
      server.search = path.search;
      return server.href;
    });
  }
  if (Array.isArray(url)) {
    if (url.length === 0) throw new TypeError('switchboard: url must not be an empty array');
    return url.map((one) => resolveUrl({ ...options, url: one }));
  }
  return [resolveUrl(options)];
}

/**
 * The ws:/wss: URL for the options (exported for tests and for pages that
 * want the URL without connecting). Throws TypeError when it cannot tell.
 */
export function resolveUrl(options = {}) {
  const { kind, id, token } = options;
  let target = options.url;
  if (target === undefined || target === null) {
    if (typeof kind !== 'string' || kind === '' || typeof id !== 'string' || id === '') {
      throw new TypeError('switchboard: give either url, or kind and id as non-empty strings');
    }
    target = `/rooms/${encodeURIComponent(kind)}/${encodeURIComponent(id)}`;
  } else if (kind !== undefined || id !== undefined) {
    throw new TypeError('switchboard: give either url, or kind and id, not both');
  }
  target = String(target);

  let url;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
    url = new URL(target);
  } else {
    const base = pageHref(options.location);
    if (!base) {
      throw new TypeError(`switchboard: cannot resolve ${JSON.stringify(target)} without a page location; pass a full ws: or wss: URL, or the location option`);
    }
    url = new URL(target, base);
  }
  // An http(s) URL maps to its WebSocket twin, so a relative URL or kind/id
  // follows the page: https: pages get wss:, http: pages ws:.
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new TypeError(`switchboard: ${url.protocol} URLs cannot carry a WebSocket; use ws:, wss:, http: or https:`);
  }
  url.hash = ''; // WebSocket URLs have no fragment
  if (token !== undefined && token !== null) {
    if (typeof token === 'function') throw new TypeError('switchboard: resolveUrl takes a token string, not a callback');
    return withQueryToken(url, token);
  }
  return url.href;
}

// Browsers cannot set headers on a WebSocket, so a token rides in the query
// (or the protocol list). encodeURIComponent escapes every reserved
// character ('+', '&', '=', '#', space, ...), which both plain and form
// decoding read back.
function withQueryToken(url, token) {
  const pair = `token=${encodeURIComponent(String(token))}`;
  url.search = url.search ? `${url.search}&${pair}` : `?${pair}`;
  return url.href;
}

function normalizeTokenIn(tokenIn) {
  if (tokenIn === undefined || tokenIn === null) return 'query';
  if (tokenIn === 'query' || tokenIn === 'protocol') return tokenIn;
  throw new TypeError("switchboard: tokenIn must be 'query' or 'protocol'");
}

function pageHref(location) {
  const loc = location === undefined ? globalThis.location : location;
  if (loc === undefined || loc === null) return null;
  if (typeof loc === 'string') return loc;
  if (loc instanceof URL) return loc.href;
  return typeof loc.href === 'string' ? loc.href : null;
}

function normalizeProtocols(protocols) {
  if (protocols === undefined || protocols === null) return [...DEFAULT_PROTOCOLS];
  if (typeof protocols === 'string') return protocols === '' ? [] : [protocols];
  if (Array.isArray(protocols)) return [...protocols];
  throw new TypeError('switchboard: protocols must be a string or an array of strings');
}

function normalizePolicy(reconnect) {
  if (reconnect === false) return null;
  if (reconnect === undefined || reconnect === null || reconnect === true) reconnect = {};
  if (typeof reconnect !== 'object') throw new TypeError('switchboard: reconnect must be an object or false');
  const policy = { ...DEFAULT_RECONNECT, ...reconnect };
  const { min, max, factor, jitter } = policy;
  if (!(min > 0) || !(max >= min) || !Number.isFinite(max)) {
    throw new RangeError('switchboard: reconnect needs 0 < min <= max, both finite');
  }
  if (!(factor >= 1) || !Number.isFinite(factor)) throw new RangeError('switchboard: reconnect.factor must be >= 1');
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError('switchboard: reconnect.jitter must be in [0, 1]');
  if (!Array.isArray(policy.retryCodes) || !policy.retryCodes.every(Number.isInteger)) {
    throw new TypeError('switchboard: reconnect.retryCodes must be an array of close codes');
  }
  policy.retryCodes = [...policy.retryCodes];
  return policy;
}

function normalizeQueueLimit(limit) {
  if (limit === undefined || limit === null) return DEFAULT_QUEUE_LIMIT;
  if (limit === Infinity || (Number.isInteger(limit) && limit >= 0)) return limit;
  throw new RangeError('switchboard: queueLimit must be a whole number >= 0 or Infinity');
}

function checkData(data) {
  if (typeof data === 'string' || data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return;
  if (typeof Blob !== 'undefined' && data instanceof Blob) return;
  throw new TypeError('switchboard: send takes a string, ArrayBuffer, typed array, DataView or Blob (use sendJson for values)');
}

// A queued binary message is copied, as WebSocket.send copies it, so the
// caller may reuse its buffer as soon as send returns.
function copyData(data) {
  if (data instanceof ArrayBuffer) return data.slice(0);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return data;
}

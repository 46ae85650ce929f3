// The browser client (web/switchboard.js) against a scripted fake WebSocket
// and a fake clock: every status transition, the reconnect policy, the send
// queue and URL resolution, with no network and no real timers.
'use strict';
const { test, describe, before } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

// The package has no "type", so importing the .js file directly makes Node
// guess its module type and print a warning; import its text as an ES module.
async function loadClient() {
  const file = path.join(__dirname, '..', '..', 'web', 'switchboard.js');
  const source = `${fs.readFileSync(file, 'utf8')}\n//# sourceURL=${file}\n`;
  return import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`);
}

let connect, RoomSocket, backoffDelay, resolveUrl, resolveUrls, DEFAULT_RECONNECT;
before(async () => {
  ({ connect, RoomSocket, backoffDelay, resolveUrl, resolveUrls, DEFAULT_RECONNECT } = await loadClient());
});

// A WebSocket class whose instances the test drives from the server's side.
function fakeWebSocket() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.protocol = '';
      this.binaryType = 'blob';
      this.sent = [];
      this.closeCalls = [];
      this.onopen = this.onmessage = this.onerror = this.onclose = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error('InvalidStateError: send while not open');
      this.sent.push(data);
    }
    close(code, reason) {
      this.closeCalls.push({ code, reason });
      if (this.readyState < 2) this.readyState = 2;
    }
    // Server side.
    accept(protocol = 'json') {
      this.readyState = 1;
      this.protocol = protocol;
      this.onopen({ type: 'open' });
    }
    receive(data) { this.onmessage({ type: 'message', data }); }
    end(code, reason = '', wasClean = true) {
      this.readyState = 3;
      this.onclose({ type: 'close', code, reason, wasClean });
    }
    // A connection that breaks, or is refused before it opens.
    fail(error) {
      this.readyState = 3;
      this.onerror({ type: 'error', error });
      this.onclose({ type: 'close', code: 1006, reason: '', wasClean: false });
    }
  }
  return { FakeWebSocket, sockets };
}

// setTimeout/clearTimeout that only run when the test says so.
function fakeClock() {
  const timers = new Map();
  let nextId = 1;
  return {
    setTimeout: (fn, ms) => { const id = nextId++; timers.set(id, { fn, ms }); return id; },
    clearTimeout: (id) => { timers.delete(id); },
    get pending() { return [...timers.values()].map((t) => t.ms); },
    // Runs the one pending timer and returns its delay.
    fire() {
      assert.equal(timers.size, 1, 'exactly one timer pending');
      const [[id, { fn, ms }]] = timers;
      timers.delete(id);
      fn();
      return ms;
    },
  };
}

const PAGE = 'http://example.test:8080/apps/chat/';

// A room on fakes, with every event it emits recorded in order.
function setup(options = {}) {
  const { FakeWebSocket, sockets } = fakeWebSocket();
  const clock = fakeClock();
  const room = connect({
    kind: 'echo',
    id: 't',
    location: PAGE,
    WebSocket: FakeWebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    ...options,
  });
  const events = [];
  for (const type of ['status', 'open', 'message', 'close', 'error']) {
    room.addEventListener(type, (e) => events.push([type, e.detail]));
  }
  const last = () => sockets[sockets.length - 1];
  const of = (type) => events.filter(([t]) => t === type).map(([, d]) => d);
  return { room, sockets, clock, events, last, of };
}

// A small seeded generator, so the "many random values" are the same each run.
function xorshift(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

describe('backoffDelay', () => {
  // The defaults documented in docs/client.md.
  const DEFAULTS = { min: 500, max: 30000, factor: 2, jitter: 0.5 };
  const policies = [
    DEFAULTS,
    { min: 100, max: 5000, factor: 3, jitter: 0.25 },
    { min: 1, max: 1, factor: 2, jitter: 0.5 },
    { min: 250, max: 60000, factor: 1.5, jitter: 0 },
    { min: 500, max: 30000, factor: 2, jitter: 1 },
    { min: 10, max: 1e9, factor: 10, jitter: 0.9 },
  ];

  test('the exported defaults are the documented ones', () => {
    assert.deepEqual({ ...DEFAULT_RECONNECT, retryCodes: [...DEFAULT_RECONNECT.retryCodes] }, { ...DEFAULTS, retryCodes: [] });
    assert.ok(Object.isFrozen(DEFAULT_RECONNECT));
  });

  test('base = min(max, min * factor ** attempt) when random() is 0', () => {
    const bases = [];
    for (let attempt = 0; attempt < 10; attempt++) bases.push(backoffDelay(attempt, DEFAULT_RECONNECT, () => 0));
    assert.deepEqual(bases, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    assert.equal(backoffDelay(2, { min: 100, max: 5000, factor: 3, jitter: 0.25 }, () => 0), 900);
    assert.equal(backoffDelay(3, { min: 100, max: 5000, factor: 3, jitter: 0.25 }, () => 0), 2700);
    assert.equal(backoffDelay(4, { min: 100, max: 5000, factor: 3, jitter: 0.25 }, () => 0), 5000);
  });

  test('stays in [base * (1 - jitter), base] for random values from 0 to just below 1', () => {
    const next = xorshift(12345);
    const randoms = [0, Number.MIN_VALUE, 1e-12, 0.25, 0.5, 0.75, 0.999999, 1 - Number.EPSILON];
    for (let i = 0; i < 500; i++) randoms.push(next());
    for (const p of policies) {
      for (let attempt = 0; attempt <= 60; attempt++) {
        const base = Math.min(p.max, p.min * p.factor ** attempt);
        for (const r of randoms) {
          const d = backoffDelay(attempt, p, () => r);
          assert.ok(Number.isFinite(d), `finite for attempt ${attempt}`);
          assert.ok(d <= base, `${d} <= ${base} (attempt ${attempt}, random ${r})`);
          assert.ok(d >= base * (1 - p.jitter), `${d} >= ${base * (1 - p.jitter)} (attempt ${attempt}, random ${r})`);
          assert.ok(d <= p.max && d > 0);
        }
      }
    }
  });

  test('the exact formula base * (1 - jitter * random())', () => {
    assert.equal(backoffDelay(0, DEFAULT_RECONNECT, () => 0.5), 375);
    assert.equal(backoffDelay(1, { min: 500, max: 30000, factor: 2, jitter: 1 }, () => 0.25), 750);
    assert.equal(backoffDelay(1000, DEFAULT_RECONNECT, () => 0.999), 30000 * (1 - 0.5 * 0.999));
  });

  test('random values outside [0, 1) are clamped, so the bounds still hold', () => {
    assert.equal(backoffDelay(0, DEFAULT_RECONNECT, () => -3), 500);
    assert.equal(backoffDelay(0, DEFAULT_RECONNECT, () => 7), 250);
    assert.equal(backoffDelay(0, DEFAULT_RECONNECT, () => NaN), 500);
  });

  test('defaults: policy and Math.random', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3);
      assert.ok(d >= 2000 && d <= 4000, `${d}`);
    }
    assert.equal(backoffDelay(1, { jitter: 0 }), 1000);
  });
});

describe('status transitions', () => {
  test('connecting -> open, with the negotiated subprotocol', () => {
    const { room, events, last } = setup();
    assert.equal(room.status, 'connecting');
    assert.equal(room.protocol, '');
    assert.deepEqual(last().protocols, ['json']);
    assert.equal(last().binaryType, 'arraybuffer');
    last().accept('json');
    assert.equal(room.status, 'open');
    assert.equal(room.protocol, 'json');
    assert.deepEqual(events, [
      ['status', { status: 'open', previous: 'connecting' }],
      ['open', { protocol: 'json', reconnected: false }],
    ]);
    room.close();
  });

  test('open -> reconnecting after 1006 -> open again, attempt counter reset', () => {
    const { room, sockets, clock, events, last } = setup({ random: () => 0 });
    last().accept();
    events.length = 0;
    last().fail(new Error('connection reset'));
    assert.equal(room.status, 'reconnecting');
    assert.deepEqual(events.map(([t]) => t), ['error', 'status', 'close']);
    assert.equal(events[0][1].error.message, 'connection reset');
    assert.deepEqual(events[1][1], { status: 'reconnecting', previous: 'open' });
    assert.deepEqual(events[2][1], { code: 1006, reason: '', wasClean: false, willReconnect: true, delay: 500 });
    assert.deepEqual(clock.pending, [500]);

    clock.fire();
    assert.equal(sockets.length, 2);
    assert.equal(sockets[1].url, sockets[0].url);
    assert.deepEqual(sockets[1].protocols, ['json']);
    assert.equal(room.status, 'reconnecting', 'stays reconnecting while the new socket connects');
    events.length = 0;
    last().accept();
    assert.deepEqual(events, [
      ['status', { status: 'open', previous: 'reconnecting' }],
      ['open', { protocol: 'json', reconnected: true }],
    ]);

    // A failed attempt grows the delay; a success starts over at min.
    last().end(1001, 'going away');
    assert.deepEqual(clock.pending, [500]);
    clock.fire();
    last().fail();
    assert.deepEqual(clock.pending, [1000]);
    clock.fire();
    last().accept();
    last().end(1012, 'restart');
    assert.deepEqual(clock.pending, [500]);
    room.close();
    assert.deepEqual(clock.pending, []);
  });

  test('reconnects after 1001 and surfaces the code and reason', () => {
    const { room, of, last, clock, sockets } = setup();
    last().accept();
    last().end(1001, 'server shutting down', true);
    assert.equal(room.status, 'reconnecting');
    assert.deepEqual(of('close'), [{ code: 1001, reason: 'server shutting down', wasClean: true, willReconnect: true, delay: 375 }]);
    clock.fire();
    assert.equal(sockets.length, 2);
    last().accept();
    assert.equal(room.status, 'open');
    room.close();
  });

  for (const code of [1001, 1005, 1006, 1011, 1012, 1013, 1014]) {
    test(`reconnects after close code ${code}`, () => {
      const { room, of, last, clock } = setup();
      last().accept();
      last().end(code, `reason ${code}`, code !== 1006);
      assert.equal(room.status, 'reconnecting');
      const [closed] = of('close');
      assert.equal(closed.code, code);
      assert.equal(closed.reason, `reason ${code}`);
      assert.equal(closed.willReconnect, true);
      assert.equal(closed.delay, 375);
      assert.deepEqual(clock.pending, [375]);
      room.close();
      assert.deepEqual(clock.pending, []);
    });
  }

  for (const code of [1000, 1002, 1003, 1007, 1008, 1009, 1010, 4000, 4001, 4999, 3000, 1004, 1015]) {
    test(`closes for good after close code ${code}`, () => {
      const { room, events, last, clock, sockets } = setup();
      last().accept();
      room.send('queued later');
      events.length = 0;
      last().end(code, code === 1008 ? 'room full' : 'no');
      assert.equal(room.status, 'closed');
      assert.deepEqual(events, [
        ['status', { status: 'closed', previous: 'open' }],
        ['close', { code, reason: code === 1008 ? 'room full' : 'no', wasClean: true, willReconnect: false, delay: null }],
      ]);
      assert.deepEqual(clock.pending, []);
      assert.equal(sockets.length, 1);
      assert.equal(room.send('x'), false);
      room.close(); // a no-op now
      assert.equal(room.status, 'closed');
    });
  }

  test('reconnect.retryCodes adds codes such as an application 4xxx', () => {
    const { room, last, clock, of } = setup({ reconnect: { retryCodes: [4001] } });
    last().accept();
    last().end(4001, 'try later');
    assert.equal(room.status, 'reconnecting');
    assert.equal(of('close')[0].willReconnect, true);
    clock.fire();
    last().accept();
    last().end(4002, 'go away');
    assert.equal(room.status, 'closed');
    assert.deepEqual(clock.pending, []);
  });

  test('reconnect: false closes after any close', () => {
    const { room, last, clock, of } = setup({ reconnect: false });
    last().accept();
    last().end(1001, 'restart');
    assert.equal(room.status, 'closed');
    assert.deepEqual(of('close'), [{ code: 1001, reason: 'restart', wasClean: true, willReconnect: false, delay: null }]);
    assert.deepEqual(clock.pending, []);
  });

  test('a connection that never opens goes through backoff up to the cap', () => {
    const { room, last, clock, events, sockets } = setup({ random: () => 0 });
    last().fail(new Error('ECONNREFUSED'));
    assert.deepEqual(events.map(([t]) => t), ['error', 'status', 'close']);
    assert.deepEqual(events[1][1], { status: 'reconnecting', previous: 'connecting' });
    const delays = [];
    for (let i = 0; i < 9; i++) {
      delays.push(clock.fire());
      assert.equal(room.status, 'reconnecting');
      last().fail();
    }
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(sockets.length, 10);
    // The first open after failures is not a reconnect: nothing was open before.
    clock.fire();
    last().accept();
    assert.deepEqual(events[events.length - 1], ['open', { protocol: 'json', reconnected: false }]);
    room.close();
  });

  test('a WebSocket constructor that throws on a retry counts as a failed attempt', () => {
    const { FakeWebSocket, sockets } = fakeWebSocket();
    let refuse = false;
    class Flaky extends FakeWebSocket {
      constructor(...args) {
        if (refuse) throw new Error('blocked');
        super(...args);
      }
    }
    const clock = fakeClock();
    const room = connect({ url: 'ws://127.0.0.1:1/rooms/echo/x', WebSocket: Flaky, random: () => 0, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
    const seen = [];
    room.on('error', (d) => seen.push(d.error.message));
    room.on('close', (d) => seen.push(`close ${d.code} ${d.delay}`));
    sockets[0].accept();
    sockets[0].end(1006, '', false);
    refuse = true;
    clock.fire();
    assert.deepEqual(seen, ['close 1006 500', 'blocked', 'close 1006 1000']);
    assert.equal(room.status, 'reconnecting');
    refuse = false;
    clock.fire();
    sockets[1].accept();
    assert.equal(room.status, 'open');
    room.close();
  });

  test('a WebSocket constructor that throws at first makes connect throw', () => {
    class Refuses { constructor() { throw new SyntaxError('bad subprotocol'); } }
    assert.throws(() => connect({ url: 'ws://127.0.0.1:1/', WebSocket: Refuses }), SyntaxError);
  });

  test('events of a replaced socket are ignored', () => {
    const { room, sockets, clock, events } = setup();
    sockets[0].accept();
    sockets[0].end(1006, '', false);
    clock.fire();
    events.length = 0;
    sockets[0].receive('stale');
    sockets[0].onclose({ code: 1000, reason: '', wasClean: true });
    assert.deepEqual(events, []);
    assert.equal(room.status, 'reconnecting');
    room.close();
  });
});

describe('close()', () => {
  test('while open: closed at once, the socket closed with the code and reason, no reconnect', () => {
    const { room, sockets, clock, events, last } = setup();
    last().accept();
    events.length = 0;
    room.close(4000, 'bye');
    assert.equal(room.status, 'closed');
    assert.deepEqual(last().closeCalls, [{ code: 4000, reason: 'bye' }]);
    assert.deepEqual(events, [['status', { status: 'closed', previous: 'open' }]]);
    // The socket's own close is still reported, and starts nothing.
    last().end(4000, '', true);
    assert.deepEqual(events[1], ['close', { code: 4000, reason: '', wasClean: true, willReconnect: false, delay: null }]);
    assert.deepEqual(clock.pending, []);
    assert.equal(sockets.length, 1);
  });

  test('while reconnecting: the pending retry is cancelled and the queue discarded', () => {
    const { room, sockets, clock, last, of } = setup();
    last().accept();
    last().end(1006, '', false);
    assert.equal(room.send('never sent'), true);
    assert.equal(room.queued, 1);
    room.close();
    assert.equal(room.status, 'closed');
    assert.equal(room.queued, 0);
    assert.deepEqual(clock.pending, []);
    assert.equal(sockets.length, 1);
    assert.deepEqual(of('status').map((d) => d.status), ['open', 'reconnecting', 'closed']);
  });

  test('while connecting: the attempt is abandoned without an error event', () => {
    const { room, clock, last, of } = setup();
    room.close();
    assert.deepEqual(last().closeCalls, [{ code: 1000, reason: '' }]);
    last().fail(new Error('closed before the connection was established'));
    assert.deepEqual(of('error'), []);
    assert.deepEqual(of('close'), [{ code: 1006, reason: '', wasClean: false, willReconnect: false, delay: null }]);
    assert.deepEqual(clock.pending, []);
    assert.equal(room.status, 'closed');
  });

  test('from a status listener as the connection drops: no retry is left pending', () => {
    const { room, clock, last, of, sockets } = setup();
    last().accept();
    room.on('status', ({ status }) => { if (status === 'reconnecting') room.close(); });
    last().end(1006, '', false);
    assert.equal(room.status, 'closed');
    assert.deepEqual(clock.pending, []);
    assert.equal(of('close')[0].willReconnect, false);
    assert.equal(of('close')[0].delay, null);
    assert.equal(sockets.length, 1);
  });

  test('from a close listener: no retry is left pending', () => {
    const { room, clock, last } = setup();
    last().accept();
    room.on('close', () => room.close());
    last().end(1001, 'restart');
    assert.equal(room.status, 'closed');
    assert.deepEqual(clock.pending, []);
  });

  test('refuses codes and reasons a close frame cannot carry', () => {
    const { room } = setup();
    assert.throws(() => room.close(1001), RangeError);
    assert.throws(() => room.close(2999), RangeError);
    assert.throws(() => room.close(5000), RangeError);
    assert.throws(() => room.close(1000, 'é'.repeat(62)), RangeError);
    assert.equal(room.status, 'connecting');
    room.close(1000, 'x'.repeat(123));
    assert.equal(room.status, 'closed');
  });

  test('send after close returns false and reports why', () => {
    const { room, of } = setup();
    room.close();
    assert.equal(room.send('late'), false);
    const [{ error, data }] = of('error');
    assert.equal(error.code, 'closed');
    assert.equal(data, 'late');
  });
});

describe('send queue', () => {
  test('flushed in order when the socket opens, before open listeners send', () => {
    const { room, last } = setup();
    const buffer = new Uint8Array([1, 2, 3]);
    assert.equal(room.send('one'), true);
    assert.equal(room.sendJson({ n: 2 }), true);
    assert.equal(room.send(buffer), true);
    assert.equal(room.send(new Uint16Array([0x0404]).buffer), true);
    buffer[0] = 9; // the queued copy is unaffected, as with WebSocket.send
    assert.equal(room.queued, 4);
    room.on('status', () => room.send('from status'));
    room.on('open', () => room.send('from open'));
    last().accept();
    const sent = last().sent;
    assert.equal(sent.length, 6);
    assert.equal(sent[0], 'one');
    assert.equal(sent[1], '{"n":2}');
    assert.deepEqual([...sent[2]], [1, 2, 3]);
    assert.deepEqual([...new Uint8Array(sent[3])], [4, 4]);
    assert.deepEqual(sent.slice(4), ['from status', 'from open']);
    assert.equal(room.queued, 0);
    room.close();
  });

  test('bounded by queueLimit: further sends return false and emit error', () => {
    const { room, of, last } = setup({ queueLimit: 3 });
    for (const m of ['a', 'b', 'c']) assert.equal(room.send(m), true);
    assert.equal(room.send('d'), false);
    assert.equal(room.queued, 3);
    const [{ error, data }] = of('error');
    assert.equal(error.code, 'queue-full');
    assert.equal(data, 'd');
    last().accept();
    assert.deepEqual(last().sent, ['a', 'b', 'c']);
    assert.equal(room.send('e'), true, 'an open socket sends without queueing');
    assert.deepEqual(last().sent, ['a', 'b', 'c', 'e']);
    room.close();
  });

  test('default limit is 100; queueLimit 0 queues nothing', () => {
    const a = setup();
    for (let i = 0; i < 100; i++) assert.equal(a.room.send(`m${i}`), true);
    assert.equal(a.room.send('m100'), false);
    a.room.close();
    const b = setup({ queueLimit: 0 });
    assert.equal(b.room.send('x'), false);
    b.room.close();
  });

  test('messages sent while reconnecting go out on the next socket', () => {
    const { room, clock, last, sockets } = setup();
    last().accept();
    room.send('first');
    last().end(1012, 'restart');
    room.send('while down 1');
    room.sendJson(['while down', 2]);
    clock.fire();
    room.send('while connecting');
    last().accept();
    assert.deepEqual(sockets[0].sent, ['first']);
    assert.deepEqual(sockets[1].sent, ['while down 1', '["while down",2]', 'while connecting']);
    room.close();
  });

  test('while the socket is closing, sends are queued rather than lost', () => {
    const { room, clock, last, sockets } = setup();
    last().accept();
    last().readyState = 2; // the server's close frame is on its way
    assert.equal(room.send('in between'), true);
    assert.equal(room.queued, 1);
    last().end(1001, 'restart');
    clock.fire();
    last().accept();
    assert.deepEqual(sockets[1].sent, ['in between']);
    room.close();
  });

  test('a policy close discards the queue', () => {
    const { room, last } = setup();
    last().accept();
    last().readyState = 2;
    room.send('lost');
    last().end(1008, 'room full');
    assert.equal(room.queued, 0);
    assert.equal(room.status, 'closed');
  });

  test('send refuses values a WebSocket cannot carry; sendJson refuses values without JSON', () => {
    const { room } = setup();
    assert.throws(() => room.send({ a: 1 }), TypeError);
    assert.throws(() => room.send(42), TypeError);
    assert.throws(() => room.sendJson(undefined), TypeError);
    assert.throws(() => room.sendJson(() => 1), TypeError);
    assert.equal(room.send(new Blob(['blob'])), true);
    assert.equal(room.send(new DataView(new ArrayBuffer(2))), true);
    room.close();
  });
});

describe('messages and listeners', () => {
  test('message detail: data, and json when the text parses', () => {
    const { room, last, of } = setup();
    last().accept();
    last().receive('{"type":"hello","n":1}');
    last().receive('not json');
    last().receive('null');
    const bin = new Uint8Array([1, 2]).buffer;
    last().receive(bin);
    assert.deepEqual(of('message'), [
      { data: '{"type":"hello","n":1}', json: { type: 'hello', n: 1 } },
      { data: 'not json', json: undefined },
      { data: 'null', json: null },
      { data: bin, json: undefined },
    ]);
    room.close();
  });

  test('on() passes the detail and returns an unsubscribe function', () => {
    const { room, last } = setup();
    const got = [];
    const off = room.on('message', (d) => got.push(d.data));
    last().accept();
    last().receive('a');
    off();
    last().receive('b');
    assert.deepEqual(got, ['a']);
    assert.ok(room instanceof RoomSocket && room instanceof EventTarget);
    room.close();
  });

  test('protocols option: string, array, none', () => {
    assert.deepEqual(setup({ protocols: 'v2' }).last().protocols, ['v2']);
    assert.deepEqual(setup({ protocols: ['a', 'b'] }).last().protocols, ['a', 'b']);
    assert.deepEqual(setup({ protocols: [] }).last().protocols, []);
    const r = setup({ protocols: [] });
    r.last().accept('');
    assert.equal(r.room.protocol, '');
  });
});

describe('URL resolution', () => {
  const http = { href: 'http://example.test:8080/apps/chat/index.html?x=1#top', protocol: 'http:' };
  const https = { href: 'https://example.test/apps/chat/', protocol: 'https:' };

  test('kind and id on an http page give ws:', () => {
    assert.equal(resolveUrl({ kind: 'chat', id: 'lobby', location: http }), 'ws://example.test:8080/rooms/chat/lobby');
  });

  test('kind and id on an https page give wss:', () => {
    assert.equal(resolveUrl({ kind: 'chat', id: 'lobby', location: https }), 'wss://example.test/rooms/chat/lobby');
  });

  test('kind and id are escaped as path segments', () => {
    assert.equal(resolveUrl({ kind: 'chat', id: 'a b/c?d#e', location: https }), 'wss://example.test/rooms/chat/a%20b%2Fc%3Fd%23e');
  });

  test('relative URLs resolve against the page', () => {
    assert.equal(resolveUrl({ url: '/rooms/chat/lobby', location: https }), 'wss://example.test/rooms/chat/lobby');
    assert.equal(resolveUrl({ url: '/rooms/chat/lobby', location: http }), 'ws://example.test:8080/rooms/chat/lobby');
    assert.equal(resolveUrl({ url: 'rooms/x/y', location: https }), 'wss://example.test/apps/chat/rooms/x/y');
    assert.equal(resolveUrl({ url: '//other.test/rooms/a/b', location: https }), 'wss://other.test/rooms/a/b');
  });

  test('location may be a string, a URL or an object with href', () => {
    for (const location of ['https://h.test/p', new URL('https://h.test/p'), { href: 'https://h.test/p' }]) {
      assert.equal(resolveUrl({ kind: 'k', id: 'i', location }), 'wss://h.test/rooms/k/i');
    }
  });

  test('full URLs: http -> ws, https -> wss, ws and wss kept', () => {
    assert.equal(resolveUrl({ url: 'http://127.0.0.1:9/rooms/e/1' }), 'ws://127.0.0.1:9/rooms/e/1');
    assert.equal(resolveUrl({ url: 'https://h.test/rooms/e/1' }), 'wss://h.test/rooms/e/1');
    assert.equal(resolveUrl({ url: 'ws://h.test/rooms/e/1', location: https }), 'ws://h.test/rooms/e/1');
    assert.equal(resolveUrl({ url: 'wss://h.test/rooms/e/1', location: http }), 'wss://h.test/rooms/e/1');
    assert.equal(resolveUrl({ url: new URL('wss://h.test/rooms/e/2') }), 'wss://h.test/rooms/e/2');
  });

  test('the token is appended as an escaped query parameter', () => {
    const token = 'a b+c&d=e/é#?%';
    const url = resolveUrl({ kind: 'chat', id: 'lobby', token, location: https });
    assert.equal(url, 'wss://example.test/rooms/chat/lobby?token=a%20b%2Bc%26d%3De%2F%C3%A9%23%3F%25');
    assert.equal(new URL(url).searchParams.get('token'), token);
    assert.equal(decodeURIComponent(new URL(url).search.slice('?token='.length)), token);
    const more = resolveUrl({ url: 'wss://h.test/rooms/a/b?v=2', token: 't' });
    assert.equal(more, 'wss://h.test/rooms/a/b?v=2&token=t');
  });

  test('the fragment is dropped', () => {
    assert.equal(resolveUrl({ url: 'ws://h.test/rooms/a/b#x' }), 'ws://h.test/rooms/a/b');
  });

  test('what cannot be resolved is refused with TypeError', () => {
    assert.throws(() => resolveUrl({ kind: 'chat', id: 'lobby' }), TypeError, 'no page location');
    assert.throws(() => resolveUrl({ url: '/rooms/a/b' }), TypeError, 'no page location');
    assert.throws(() => resolveUrl({ kind: 'chat' }), TypeError, 'no id');
    assert.throws(() => resolveUrl({ kind: '', id: 'x', location: https }), TypeError, 'empty kind');
    assert.throws(() => resolveUrl({ url: 'ftp://h.test/' }), TypeError, 'scheme');
    assert.throws(() => resolveUrl({ url: '/rooms/a/b', location: 'file:///tmp/x.html' }), TypeError, 'file page');
    assert.throws(() => resolveUrl({ url: 'ws://h/', kind: 'a', id: 'b' }), TypeError, 'both');
  });

  test('the room and its socket use the resolved URL; connect takes a string', () => {
    const { FakeWebSocket, sockets } = fakeWebSocket();
    const room = connect({ kind: 'chat', id: 'lobby', token: 'x y', location: https, WebSocket: FakeWebSocket });
    assert.equal(room.url, 'wss://example.test/rooms/chat/lobby?token=x%20y');
    assert.equal(sockets[0].url, room.url);
    room.close();
    // The default WebSocket is globalThis.WebSocket.
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
    globalThis.WebSocket = FakeWebSocket;
    try {
      const other = connect('ws://127.0.0.1:1/rooms/echo/s');
      assert.equal(other.url, 'ws://127.0.0.1:1/rooms/echo/s');
      assert.equal(sockets[1].url, other.url);
      other.close();
    } finally {
      if (saved) Object.defineProperty(globalThis, 'WebSocket', saved);
      else delete globalThis.WebSocket;
    }
  });
});

describe('several servers', () => {
  const https = { href: 'https://example.test/apps/chat/', protocol: 'https:' };

  test('servers with kind and id: one room URL per server, each base kept', () => {
    const urls = resolveUrls({ kind: 'chat', id: 'a b', servers: ['https://n1.test', 'ws://n2.test:8080/', 'wss://n3.test/sb/', new URL('http://n4.test/x')], location: https });
    assert.deepEqual(urls, [
      'wss://n1.test/rooms/chat/a%20b',
      'ws://n2.test:8080/rooms/chat/a%20b',
      'wss://n3.test/sb/rooms/chat/a%20b',
      'ws://n4.test/x/rooms/chat/a%20b',
    ]);
    // Relative bases follow the page; a fixed token rides on every URL.
    assert.deepEqual(resolveUrls({ kind: 'k', id: 'i', token: 't+1', servers: ['/', '//other.test'], location: https }), [
      'wss://example.test/rooms/k/i?token=t%2B1',
      'wss://other.test/rooms/k/i?token=t%2B1',
    ]);
  });

  test('url arrays resolve each URL; one URL is a list of one', () => {
    assert.deepEqual(resolveUrls({ url: ['/rooms/e/1', 'http://h.test/rooms/e/1'], location: https }), ['wss://example.test/rooms/e/1', 'ws://h.test/rooms/e/1']);
    assert.deepEqual(resolveUrls({ kind: 'e', id: '1', location: https }), ['wss://example.test/rooms/e/1']);
  });

  test('mistakes are refused with TypeError', () => {
    assert.throws(() => resolveUrls({ url: [], location: https }), TypeError, 'empty url array');
    assert.throws(() => resolveUrls({ kind: 'a', id: 'b', servers: [], location: https }), TypeError, 'empty servers');
    assert.throws(() => resolveUrls({ kind: 'a', id: 'b', servers: 'wss://n1.test', location: https }), TypeError, 'servers not an array');
    assert.throws(() => resolveUrls({ url: 'ws://h.test/rooms/a/b', servers: ['wss://n1.test'] }), TypeError, 'url and servers');
    assert.throws(() => resolveUrls({ servers: ['wss://n1.test'] }), TypeError, 'servers without kind and id');
    assert.throws(() => resolveUrls({ kind: 'a', id: 'b', servers: ['ftp://n1.test'] }), TypeError, 'a base with another scheme');
  });

  test('each reconnect goes to the next server in turn; an open socket stays', () => {
    const servers = ['wss://n1.test', 'wss://n2.test', 'wss://n3.test'];
    const { room, sockets, clock, last } = setup({ servers, random: () => 0 });
    const host = (socket) => new URL(socket.url).host;
    assert.deepEqual(room.urls, ['wss://n1.test/rooms/echo/t', 'wss://n2.test/rooms/echo/t', 'wss://n3.test/rooms/echo/t']);
    assert.equal(room.url, room.urls[0]);
    last().accept();
    // n1 goes away: the retry goes to n2, which is down too, then n3.
    last().end(1001, 'going away');
    assert.equal(room.url, room.urls[1], 'url names the next socket while reconnecting');
    clock.fire();
    last().fail();
    clock.fire();
    assert.equal(host(last()), 'n3.test');
    last().accept();
    assert.equal(room.url, room.urls[2]);
    // A message round trip on n3; it keeps the socket.
    room.send('x');
    assert.deepEqual(last().sent, ['x']);
    // n3 dies: around again to n1.
    last().fail();
    clock.fire();
    assert.deepEqual(sockets.map(host), ['n1.test', 'n2.test', 'n3.test', 'n1.test']);
    room.close();
  });

  test('a token callback is asked again for each server', async () => {
    let asked = 0;
    const { room, clock, last, sockets } = setup({ url: ['ws://a.test/rooms/e/1', 'ws://b.test/rooms/e/1'], kind: undefined, id: undefined, token: () => `t${++asked}`, random: () => 0 });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(last().url, 'ws://a.test/rooms/e/1?token=t1');
    last().fail();
    clock.fire();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(sockets[1].url, 'ws://b.test/rooms/e/1?token=t2');
    room.close();
  });
});

describe('options', () => {
  test('invalid reconnect policies and queue limits are refused', () => {
    const { FakeWebSocket } = fakeWebSocket();
    const base = { url: 'ws://h.test/', WebSocket: FakeWebSocket };
    assert.throws(() => connect({ ...base, reconnect: { min: 0 } }), RangeError);
    assert.throws(() => connect({ ...base, reconnect: { min: 10, max: 5 } }), RangeError);
    assert.throws(() => connect({ ...base, reconnect: { factor: 0.5 } }), RangeError);
    assert.throws(() => connect({ ...base, reconnect: { jitter: 1.5 } }), RangeError);
    assert.throws(() => connect({ ...base, reconnect: { retryCodes: ['4000'] } }), TypeError);
    assert.throws(() => connect({ ...base, queueLimit: -1 }), RangeError);
    assert.throws(() => connect({ ...base, queueLimit: 1.5 }), RangeError);
  });

  test('without any WebSocket the constructor says so', () => {
    assert.throws(() => connect({ url: 'ws://h.test/', WebSocket: 42 }), TypeError);
  });
});

// Types of the switchboard browser client, web/switchboard.js (served as
// /client.js and /client.d.ts). Behaviour and defaults: docs/client.md.

/** Where the room is in its life. */
export type RoomStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** How to wait between attempts. All times are milliseconds. */
export interface ReconnectPolicy {
  /** First delay before jitter. Default 500. */
  min?: number;
  /** Cap on the delay. Default 30000. */
  max?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Fraction in [0, 1] by which each delay may be cut at random. Default 0.5. */
  jitter?: number;
  /**
   * Close codes to reconnect after, beyond the built-in 1001, 1005, 1006,
   * 1011, 1012, 1013 and 1014 (for example an application's 4xxx "try later").
   * Default [].
   */
  retryCodes?: readonly number[];
}

/** The fields backoffDelay reads. */
export interface BackoffPolicy {
  min: number;
  max: number;
  factor: number;
  jitter: number;
}

/** A WebSocket constructor: the browser's, or one with the same shape (the `ws` package). */
export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}

/** The part of a WebSocket the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  // The client sets these; it reads event.data, event.error, and
  // event.code/reason/wasClean from the events it is given.
  onopen: ((event: any) => any) | null;
  onmessage: ((event: any) => any) | null;
  onerror: ((event: any) => any) | null;
  onclose: ((event: any) => any) | null;
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
}

/** Something with an href: `window.location`, a URL, or a string. */
export type PageLocation = string | URL | { readonly href: string };

export interface ConnectOptions {
  /** Room kind; with `id`, the room is `/rooms/{kind}/{id}` on the page's host. */
  kind?: string;
  /** Room id; with `kind`. */
  id?: string;
  /**
   * The room URL instead of kind/id: a path resolved against the page
   * (`/rooms/chat/lobby`), or a full ws:, wss:, http: or https: URL
   * (http: becomes ws:, https: becomes wss:); or several, tried in turn:
   * each reconnect goes to the next one.
   */
  url?: string | URL | Array<string | URL>;
  /**
   * With kind/id: the servers (base URLs such as 'wss://node-1.example') to
   * find the room on, tried in turn as `url` arrays are, for a cluster
   * without a load balancer in front (docs/client.md).
   */
  servers?: Array<string | URL>;
  /** Subprotocols to offer. Default ['json']; '' or [] offers none. */
  protocols?: string | string[];
  /**
   * A token, or a function called before every connection that gives one
   * (or a promise of one), so reconnects use a fresh token (docs/auth.md).
   */
  token?: string | (() => string | Promise<string>);
  /** Where the token travels: `?token=` (default) or the protocol list. */
  tokenIn?: 'query' | 'protocol';
  /** Reconnect policy, or false to never reconnect. */
  reconnect?: ReconnectPolicy | false;
  /** Messages held while no socket is open. Default 100; 0 queues nothing. */
  queueLimit?: number;
  /** WebSocket constructor. Default globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Page location for relative URLs and ws:/wss:. Default globalThis.location. */
  location?: PageLocation;
  /** Type of binary messages. Default 'arraybuffer'. */
  binaryType?: 'arraybuffer' | 'blob' | string;
  /** Timer for reconnect delays. Default globalThis.setTimeout. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  /** Cancels a timer from `setTimeout`. Default globalThis.clearTimeout. */
  clearTimeout?: (id: any) => void;
  /** Source of jitter, returning [0, 1). Default Math.random. */
  random?: () => number;
}

export interface StatusDetail {
  status: RoomStatus;
  previous: RoomStatus;
}

export interface OpenDetail {
  /** The negotiated subprotocol ('' if none). */
  protocol: string;
  /** True when an earlier socket of this room had been open. */
  reconnected: boolean;
}

export interface MessageDetail {
  /** string for text; ArrayBuffer (or Blob, per binaryType) for binary. */
  data: string | ArrayBuffer | Blob | unknown;
  /** The parsed value when data is a string holding JSON, else undefined. */
  json: unknown;
}

export interface CloseDetail {
  code: number;
  reason: string;
  wasClean: boolean;
  /** True when another socket will be opened after `delay` ms. */
  willReconnect: boolean;
  /** Milliseconds until the next attempt, or null. */
  delay: number | null;
}

export interface ErrorDetail {
  /** For drops, error.code is 'queue-full' or 'closed'. */
  error: Error & { code?: string };
  /** The message that was dropped or failed to send, if any. */
  data?: string | ArrayBuffer | ArrayBufferView | Blob;
  /** The socket's own error event, if any. */
  event?: unknown;
}

export interface RoomEventMap {
  status: StatusDetail;
  open: OpenDetail;
  message: MessageDetail;
  close: CloseDetail;
  error: ErrorDetail;
}

export declare const DEFAULT_RECONNECT: Readonly<Required<ReconnectPolicy>>;

/**
 * Delay before reconnect attempt `attempt` (0-based):
 * base = min(max, min * factor ** attempt); delay = base * (1 - jitter * random()).
 */
export declare function backoffDelay(
  attempt: number,
  policy?: Partial<BackoffPolicy>,
  random?: () => number,
): number;

/** The resolved ws:/wss: URL for options with one URL, without connecting. */
export declare function resolveUrl(options: ConnectOptions): string;

/** Every ws:/wss: URL for the options, in the order they are tried. */
export declare function resolveUrls(options: ConnectOptions): string[];

export declare class RoomSocket extends EventTarget {
  constructor(options: ConnectOptions);
  /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
  readonly status: RoomStatus;
  /** The subprotocol chosen on the last open ('' until the first open). */
  readonly protocol: string;
  /** The resolved ws:/wss: URL of the current (or next) socket. */
  readonly url: string;
  /** Every URL tried in turn. */
  readonly urls: string[];
  /** Messages waiting for the next open socket. */
  readonly queued: number;

  /** fn(detail) for each event of `type`; returns the unsubscribe function. */
  on<K extends keyof RoomEventMap>(type: K, fn: (detail: RoomEventMap[K]) => void): () => void;

  addEventListener<K extends keyof RoomEventMap>(
    type: K,
    listener: (event: CustomEvent<RoomEventMap[K]>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof RoomEventMap>(
    type: K,
    listener: (event: CustomEvent<RoomEventMap[K]>) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;

  /** Sends or queues; false (and an 'error' event) when dropped. */
  send(data: string | ArrayBuffer | ArrayBufferView | Blob): boolean;
  /** JSON.stringify(value), then send. */
  sendJson(value: unknown): boolean;
  /** Ends the room: no reconnect, queue discarded. Code 1000 or 3000-4999. */
  close(code?: number, reason?: string): void;
}

/** Opens a room: connect({ kind, id }), connect({ kind, id, servers }), connect({ url }), or connect('wss://...'). */
export declare function connect(options: ConnectOptions | string | URL): RoomSocket;

// Sluice browser client: a dependency-free ES module that speaks the JSON WebSocket protocol
// of docs/PROTOCOL.md (version 1). The broker serves it at /v1/client.js.
//
//   import { Sluice } from '/v1/client.js';
//   const client = await Sluice.connect();                  // ws(s)://<this host>/v1/ws
//   await client.produce('orders', [{ key: 'user-1', value: 'hello' }]);
//   for await (const r of client.subscribe({ topic: 'orders', from: 'earliest' })) {
//     console.log(r.partition, r.offset, r.key, r.value);
//   }
//
// What it does: the hello handshake, correlation ids (one promise per request, answers in any
// order), typed errors (`SluiceError` with the protocol's `.code`), subscriptions as async
// iterables under credit-based flow control (credit is granted back as the application takes
// records), filter and map plugins run by the broker on a subscription's or fetch's records,
// consumer-group membership (heartbeats, assignment pushes, revoke-then-report,
// offset commits, leave on close), and reconnection with backoff that resumes every
// subscription from the offset after the last record it delivered.
//
// It runs in browsers and in Node (pass `{ WebSocket }` from the `ws` package to `connect`).
// Limits: offsets are JavaScript numbers (exact below 2^53); header names that repeat in a
// record keep only their last value (JSON objects cannot hold repeats); a connection holds at
// most the broker's --max-subscriptions (default 64) subscriptions, and a group member uses
// one per partition it owns.

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;
/** Sent in `hello` as the client name. */
export const CLIENT_NAME = 'sluice-js/0.1.0';

/** Error codes the broker may send (docs/PROTOCOL.md §6); anything else reads as `internal`. */
const SERVER_CODES = new Set([
  'bad_request', 'unsupported_version', 'handshake_required', 'not_found', 'method_not_allowed',
  'unknown_topic', 'unknown_partition', 'topic_exists', 'invalid_topic_name', 'invalid_config',
  'internal_topic', 'record_too_large', 'request_too_large', 'invalid_records',
  'offset_out_of_range', 'too_many_connections', 'too_many_requests', 'unknown_subscription',
  'key_required', 'unknown_group', 'unknown_member', 'fenced_member_epoch', 'group_not_empty',
  'unknown_plugin', 'invalid_plugin', 'plugin_failed', 'shutting_down', 'storage_error',
  'internal',
]);

/** Operations the broker handles in order and does not count against max_in_flight. */
const ORDERED_OPS = new Set(['hello', 'subscribe', 'credit', 'unsubscribe']);

/** Requests waiting for a connection or an in-flight slot, at most. */
const MAX_QUEUED_REQUESTS = 10000;

/**
 * An error from the broker (its stable `code` and `message`) or from this client:
 * `disconnected` (the connection dropped before the answer: the request may or may not have
 * taken effect), `timeout` (no answer in time), `closed` (the client was closed).
 */
export class SluiceError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'SluiceError';
    /** Stable machine-readable code: match on this, never on the message. */
    this.code = code;
    /** Extra fields of the error body, e.g. `log_start_offset` for `offset_out_of_range`. */
    this.details = details;
  }
}

function serverError(body) {
  const { code, message, ...details } = body || {};
  const known = SERVER_CODES.has(code) ? code : 'internal';
  if (known !== code) details.server_code = code;
  return new SluiceError(known, message || String(code), details);
}

// ---------------------------------------------------------------------------------------------
// Encoding of keys, values and headers (docs/PROTOCOL.md §2.2)

function bytesToBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function base64ToBytes(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A key, value or header value to send: strings as they are, bytes as base64. */
function encodePayload(p) {
  if (p === undefined || p === null) return p ?? undefined;
  if (p instanceof Uint8Array) return { base64: bytesToBase64(p) };
  if (p instanceof ArrayBuffer) return { base64: bytesToBase64(new Uint8Array(p)) };
  if (ArrayBuffer.isView(p)) {
    return { base64: bytesToBase64(new Uint8Array(p.buffer, p.byteOffset, p.byteLength)) };
  }
  return p; // strings; other JSON values are stored as their JSON text by the broker
}

/** A received payload: a string (UTF-8 bytes), a Uint8Array (other bytes) or null. */
function decodePayload(p) {
  if (p === undefined || p === null) return null;
  if (typeof p === 'string') return p;
  if (typeof p === 'object' && typeof p.base64 === 'string') return base64ToBytes(p.base64);
  return p;
}

function encodeHeaders(headers) {
  if (!headers) return undefined;
  const entries = headers instanceof Map ? [...headers] : Object.entries(headers);
  if (entries.length === 0) return undefined;
  const out = {};
  for (const [k, v] of entries) out[k] = v === null ? null : encodePayload(v);
  return out;
}

function encodeRecord(r) {
  if (typeof r === 'string' || r instanceof Uint8Array || r instanceof ArrayBuffer) {
    return { value: encodePayload(r) };
  }
  const out = {};
  if (r.key !== undefined) out.key = encodePayload(r.key);
  if (r.value !== undefined) out.value = encodePayload(r.value);
  const headers = encodeHeaders(r.headers);
  if (headers) out.headers = headers;
  if (r.partition !== undefined && r.partition !== null) out.partition = r.partition;
  if (r.timestamp !== undefined && r.timestamp !== null) {
    out.timestamp = r.timestamp instanceof Date ? r.timestamp.getTime() : r.timestamp;
  }
  return out;
}

function decodeRecord(topic, partition, r) {
  const headers = {};
  for (const [k, v] of Object.entries(r.headers || {})) headers[k] = decodePayload(v);
  return {
    topic,
    partition,
    offset: r.offset,
    timestamp: r.timestamp,
    key: decodePayload(r.key),
    value: decodePayload(r.value),
    headers,
  };
}

/** `from` as the protocol wants it: "earliest", "latest", {offset}, {timestamp}. */
function wireFrom(from) {
  if (from === undefined || from === null) return 'latest';
  if (from === 'earliest' || from === 'latest') return from;
  if (typeof from === 'number') return { offset: from };
  if (from instanceof Date) return { timestamp: from.getTime() };
  if (typeof from === 'object' && (typeof from.offset === 'number' || typeof from.timestamp === 'number')) {
    return typeof from.offset === 'number' ? { offset: from.offset } : { timestamp: from.timestamp };
  }
  throw new SluiceError('bad_request', `from must be 'earliest', 'latest', {offset} or {timestamp}, not ${JSON.stringify(from)}`);
}

/** Most parameters this client sends to a filter or map plugin. */
const MAX_FILTER_PARAMS = 64;

/**
 * A plugin attachment (`what`: 'filter' or 'map') as the protocol wants it (`{plugin, params}`
 * with string values, §10.2), from a plugin name or `{plugin, params}`; `undefined` for none.
 * Parameter values are sent as text (numbers and booleans as their JSON text).
 */
function wirePlugin(what, given) {
  if (given === undefined || given === null) return undefined;
  const spec = typeof given === 'string' ? { plugin: given } : given;
  if (typeof spec !== 'object' || typeof spec.plugin !== 'string' || !spec.plugin) {
    throw new SluiceError('bad_request', `${what} must be a plugin name or {plugin, params}, not ${JSON.stringify(given)}`);
  }
  const entries = spec.params instanceof Map ? [...spec.params] : Object.entries(spec.params || {});
  if (entries.length > MAX_FILTER_PARAMS) {
    throw new SluiceError('bad_request', `a ${what} takes at most ${MAX_FILTER_PARAMS} parameters, not ${entries.length}`);
  }
  const params = {};
  for (const [k, v] of entries) {
    if (typeof v === 'object' && v !== null) {
      throw new SluiceError('bad_request', `${what} parameter ${JSON.stringify(k)} must be text, a number or a boolean`);
    }
    params[k] = String(v);
  }
  return { plugin: spec.plugin, params };
}

/** A filter attachment for the protocol (see `wirePlugin`). */
function wireFilter(filter) {
  return wirePlugin('filter', filter);
}

/** A map attachment for the protocol (see `wirePlugin`). */
function wireMap(map) {
  return wirePlugin('map', map);
}

/** The WebSocket URL for `url`: default from the page's location; http(s) bases accepted. */
function wsUrl(url) {
  const loc = globalThis.location;
  if (!url) {
    if (!loc || !/^https?:$/.test(loc.protocol)) {
      throw new SluiceError('bad_request', 'no URL given and no page location to derive ws(s)://host/v1/ws from');
    }
    return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/v1/ws`;
  }
  const u = new URL(url, loc && /^https?:$/.test(loc.protocol) ? loc.href : undefined);
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/ws';
  }
  return u.toString();
}

const tpKey = (topic, partition) => `${topic}\u0000${partition}`;

/** [{topic, partition}] → [{topic, partitions: [...]}], sorted. */
function toLists(tps) {
  const byTopic = new Map();
  for (const { topic, partition } of tps) {
    if (!byTopic.has(topic)) byTopic.set(topic, []);
    byTopic.get(topic).push(partition);
  }
  return [...byTopic.keys()].sort().map((topic) => ({
    topic,
    partitions: byTopic.get(topic).sort((a, b) => a - b),
  }));
}

function fromLists(lists) {
  const out = [];
  for (const { topic, partitions } of lists || []) {
    for (const partition of partitions) out.push({ topic, partition });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Small event emitter

class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Calls `fn` on every `event`; returns a function that stops it. */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this._listeners.get(event)?.delete(fn);
  }

  _emit(event, ...args) {
    for (const fn of this._listeners.get(event) || []) {
      try {
        fn(...args);
      } catch (e) {
        queueMicrotask(() => { throw e; });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A queue of received records that an async iterator drains

class RecordQueue {
  constructor() {
    this._items = [];
    this._head = 0;
    this._records = 0; // entries that are records (the others are position markers)
    this._waiters = [];
    this._error = null;
    this._ended = false;
  }

  /** Entries waiting (records and position markers). */
  get length() {
    return this._items.length - this._head;
  }

  /** Records waiting. */
  get records() {
    return this._records;
  }

  put(entries) {
    for (const e of entries) {
      this._items.push(e);
      if (e.record) this._records++;
    }
    this._wake();
  }

  /** Removes queued entries for which `pred` is true (revoked partitions). */
  drop(pred) {
    this._items = this._items.slice(this._head).filter((e) => !pred(e));
    this._head = 0;
    this._records = this._items.reduce((n, e) => n + (e.record ? 1 : 0), 0);
  }

  fail(error) {
    if (this._ended) return;
    this._error = error;
    this._wake();
  }

  end() {
    this._ended = true;
    this._wake();
  }

  _take() {
    if (this._head >= this._items.length) return undefined;
    const e = this._items[this._head];
    this._items[this._head++] = undefined;
    if (e.record) this._records--;
    if (this._head > 1024 && this._head * 2 > this._items.length) {
      this._items = this._items.slice(this._head);
      this._head = 0;
    }
    return e;
  }

  /** The next record entry; position markers on the way are applied and skipped. */
  _takeRecord() {
    for (;;) {
      const e = this._take();
      if (!e || e.record) return e;
      e.sub._taken(e);
    }
  }

  next() {
    const e = this._takeRecord();
    if (e) {
      e.sub._taken(e);
      return Promise.resolve({ value: e.record, done: false });
    }
    if (this._error) {
      const err = this._error;
      this._error = null;
      this._ended = true;
      return Promise.reject(err);
    }
    if (this._ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
  }

  _wake() {
    while (this._waiters.length) {
      const e = this._takeRecord();
      const w = this._waiters.shift();
      if (e) {
        e.sub._taken(e);
        w.resolve({ value: e.record, done: false });
      } else if (this._error) {
        const err = this._error;
        this._error = null;
        this._ended = true;
        w.reject(err);
      } else if (this._ended) {
        w.resolve({ value: undefined, done: true });
      } else {
        this._waiters.unshift(w);
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The client

/**
 * A connection to a broker. Create it with `Sluice.connect(url?, options?)`.
 *
 * Events (`client.on(name, fn)`): `status` ('open' | 'reconnecting' | 'closed'), `error`
 * (errors not tied to a request, e.g. a subscription or group member that failed).
 */
export class Client extends Emitter {
  constructor(url, options = {}) {
    super();
    this.url = wsUrl(url);
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    if (!this._WebSocket) {
      throw new SluiceError('bad_request', 'no WebSocket implementation: pass { WebSocket } (e.g. from the `ws` package)');
    }
    this._name = options.clientName || CLIENT_NAME;
    this._requestTimeoutMs = options.requestTimeoutMs ?? 30000;
    this._connectTimeoutMs = options.connectTimeoutMs ?? 10000;
    this._reconnect = options.reconnect ?? true;
    this._minBackoffMs = options.minBackoffMs ?? 100;
    this._maxBackoffMs = options.maxBackoffMs ?? 5000;
    this._nextId = 1;
    this._pending = new Map();
    this._queue = [];
    this._inFlight = 0;
    this._maxInFlight = 256;
    this._maxFrameBytes = 16 << 20;
    this._ws = null;
    this._ready = false;
    this._closed = false;
    this._subscriptions = new Set();
    this._bySid = new Map();
    this._members = new Map();
    this._earlyAssignments = new Map();
    /** The broker's hello answer: `{version, server, max_frame_bytes, max_in_flight}`. */
    this.server = null;
    /** 'connecting' | 'open' | 'reconnecting' | 'closed'. */
    this.state = 'connecting';
  }

  /** Opens the first connection; rejects if it cannot be made. */
  async _start() {
    await this._connectOnce();
    this._setState('open');
  }

  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    this._emit('status', s);
  }

  /** One connection attempt: open the socket, say hello. */
  _connectOnce() {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this._WebSocket(this.url);
      } catch (e) {
        reject(new SluiceError('disconnected', `cannot connect to ${this.url}: ${e.message}`));
        return;
      }
      this._ws = ws;
      let greeted = false;
      let failed = false;
      let helloId = null;
      const fail = (why) => {
        if (greeted || failed) return;
        failed = true;
        clearTimeout(timer);
        if (helloId !== null) this._pending.delete(helloId);
        if (this._ws === ws) this._ws = null;
        try { ws.close(); } catch { /* already closed */ }
        reject(why);
      };
      const timer = setTimeout(
        () => fail(new SluiceError('timeout', `no connection to ${this.url} within ${this._connectTimeoutMs} ms`)),
        this._connectTimeoutMs,
      );
      ws.onmessage = (ev) => this._onMessage(ev);
      ws.onerror = () => {};
      ws.onclose = (ev) => {
        if (!greeted) {
          fail(new SluiceError('disconnected', `cannot connect to ${this.url} (close code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`));
        } else if (this._ws === ws) {
          this._onClose(ev);
        }
      };
      ws.onopen = () => {
        helloId = this._nextId++;
        this._pending.set(helloId, {
          counted: false,
          resolve: (hello) => {
            if (failed) return;
            greeted = true;
            clearTimeout(timer);
            this.server = hello;
            this._maxInFlight = hello.max_in_flight || this._maxInFlight;
            this._maxFrameBytes = hello.max_frame_bytes || this._maxFrameBytes;
            this._ready = true;
            resolve();
          },
          reject: (e) => fail(e),
        });
        ws.send(JSON.stringify({ id: helloId, op: 'hello', version: PROTOCOL_VERSION, client: this._name }));
      };
    });
  }

  _onClose(ev) {
    this._ready = false;
    this._ws = null;
    const lost = new SluiceError('disconnected', `connection to ${this.url} lost (close code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''}); the request may or may not have taken effect`);
    const pending = [...this._pending.values()];
    this._pending.clear();
    this._inFlight = 0;
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(lost);
    }
    this._bySid.clear();
    for (const s of this._subscriptions) s._detach();
    if (this._closed) {
      this._setState('closed');
      return;
    }
    if (!this._reconnect || ev.code === 1002) {
      // 1002: unsupported version or a protocol violation; retrying would not help.
      this._closed = true;
      this._failQueued(lost);
      for (const s of [...this._subscriptions]) s._fail(lost);
      this._setState('closed');
      this._emit('error', lost);
      return;
    }
    this._setState('reconnecting');
    this._reconnectLoop();
  }

  async _reconnectLoop() {
    for (let attempt = 0; !this._closed; attempt++) {
      const base = Math.min(this._maxBackoffMs, this._minBackoffMs * 2 ** Math.min(attempt, 16));
      await new Promise((r) => setTimeout(r, base * (0.5 + Math.random() / 2)));
      if (this._closed) return;
      try {
        await this._connectOnce();
      } catch {
        continue;
      }
      this._setState('open');
      this._pump();
      // Resume from where each subscription stopped. Group members first check that the
      // broker still has them, then resume their partitions (or rejoin).
      for (const s of [...this._subscriptions]) if (!s._member) s._resume();
      for (const m of new Set(this._members.values())) m._reconnected();
      return;
    }
  }

  _failQueued(error) {
    const q = this._queue;
    this._queue = [];
    for (const e of q) {
      clearTimeout(e.timer);
      e.reject(error);
    }
  }

  /**
   * Sends one request and resolves with the `ok` body (rejects with a SluiceError). While the
   * client reconnects the request waits to be sent; the timeout covers the wait too.
   * `sync(ok)` runs synchronously when the answer arrives, before any later frame is read.
   */
  request(op, fields = {}, { timeoutMs, sync } = {}) {
    if (this._closed) return Promise.reject(new SluiceError('closed', 'the client is closed'));
    return new Promise((resolve, reject) => {
      if (this._queue.length >= MAX_QUEUED_REQUESTS) {
        reject(new SluiceError('too_many_requests', `more than ${MAX_QUEUED_REQUESTS} requests are waiting to be sent`));
        return;
      }
      const timeout = timeoutMs ?? this._requestTimeoutMs + (fields.max_wait_ms || 0);
      const e = { op, fields, resolve, reject, sync, counted: !ORDERED_OPS.has(op), id: null };
      e.timer = setTimeout(() => this._expire(e, timeout), timeout);
      this._queue.push(e);
      this._pump();
    });
  }

  _expire(e, timeout) {
    const error = new SluiceError('timeout', `no answer to ${e.op} within ${timeout} ms`);
    if (e.id === null) {
      this._queue = this._queue.filter((q) => q !== e);
    } else if (this._pending.get(e.id) === e) {
      // Sent: it stays counted in flight until the broker answers (it still will).
      const { reject } = e;
      e.resolve = () => {};
      e.reject = () => {};
      e.sync = undefined;
      reject(error);
      return;
    } else {
      return;
    }
    e.reject(error);
  }

  _pump() {
    if (!this._ready) return;
    const waiting = [];
    for (const e of this._queue) {
      if (e.counted && this._inFlight >= this._maxInFlight) waiting.push(e);
      else this._dispatch(e);
    }
    this._queue = waiting;
  }

  _dispatch(e) {
    const id = this._nextId++;
    const text = JSON.stringify({ id, op: e.op, ...e.fields });
    if (text.length > this._maxFrameBytes) {
      clearTimeout(e.timer);
      e.reject(new SluiceError('request_too_large', `the ${e.op} frame is ${text.length} bytes; the broker accepts ${this._maxFrameBytes}`));
      return;
    }
    e.id = id;
    this._pending.set(id, e);
    if (e.counted) this._inFlight++;
    try {
      this._ws.send(text);
    } catch (err) {
      this._pending.delete(id);
      if (e.counted) this._inFlight--;
      clearTimeout(e.timer);
      e.reject(new SluiceError('disconnected', `cannot send: ${err.message}`));
    }
  }

  _onMessage(ev) {
    if (typeof ev.data !== 'string') return; // this client sends JSON only
    let f;
    try {
      f = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (f.id !== undefined && f.id !== null) {
      const p = this._pending.get(f.id);
      if (!p) return;
      this._pending.delete(f.id);
      clearTimeout(p.timer);
      if (p.counted) this._inFlight--;
      if (f.ok !== undefined) {
        try {
          p.sync?.(f.ok);
        } finally {
          p.resolve(f.ok);
        }
      } else {
        p.reject(serverError(f.error));
      }
      if (p.counted) this._pump();
      return;
    }
    if (f.records) {
      this._bySid.get(f.records.subscription)?._push(f.records);
    } else if (f.subscription !== undefined && f.error) {
      this._bySid.get(f.subscription)?._serverFailed(f.subscription, serverError(f.error));
    } else if (f.ok && f.ok.type === 'group_assignment') {
      const m = this._members.get(f.ok.member_id);
      if (m) m._assignment(f.ok);
      else {
        // A push can overtake the join answer: keep it for the member about to register.
        this._earlyAssignments.set(f.ok.member_id, f.ok);
        if (this._earlyAssignments.size > 16) {
          this._earlyAssignments.delete(this._earlyAssignments.keys().next().value);
        }
      }
    } else if (f.error) {
      this._emit('error', serverError(f.error));
    }
  }

  /** Closes the connection after group members have committed and left. */
  async close() {
    if (this._closed) return;
    await Promise.allSettled([...this._members.values()].map((m) => m.close()));
    for (const s of [...this._subscriptions]) s._end();
    this._closed = true;
    this._failQueued(new SluiceError('closed', 'the client is closed'));
    if (this._ws) {
      try { this._ws.close(1000, 'client closed'); } catch { /* already closed */ }
    }
    this._setState('closed');
  }

  // ---- records

  /**
   * Produces records (routed by key, or to their `partition`). A record is a string (the
   * value), bytes, or `{key, value, headers, partition, timestamp}`; keys and values are
   * strings, Uint8Arrays, or other JSON values (stored as their JSON text). Resolves with one
   * `{partition, offset}` per record (none with `acks: 0`).
   */
  async produce(topic, records, { acks } = {}) {
    const list = Array.isArray(records) ? records : [records];
    const fields = { topic, records: list.map(encodeRecord) };
    if (acks !== undefined) fields.acks = String(acks);
    const ok = await this.request('produce', fields);
    return ok.offsets;
  }

  /**
   * Reads records of one partition from `offset` (long-polls up to `maxWaitMs`). With
   * `filter` (a plugin name or `{plugin, params}`) only the records the plugin keeps come back,
   * and `nextOffset` is past the dropped ones. With `map` (a map plugin, the same forms) the
   * records come back as the plugin rewrote them (after the filter), offsets unchanged.
   */
  async fetch(topic, partition, offset, { maxBytes, maxWaitMs, filter, map } = {}) {
    const fields = { topic, partition, offset };
    if (maxBytes !== undefined) fields.max_bytes = maxBytes;
    if (maxWaitMs !== undefined) fields.max_wait_ms = maxWaitMs;
    const f = wireFilter(filter);
    if (f) fields.filter = f;
    const m = wireMap(map);
    if (m) fields.map = m;
    const ok = await this.request('fetch', fields);
    return {
      records: (ok.records || []).map((r) => decodeRecord(topic, partition, r)),
      nextOffset: ok.next_offset,
      highWatermark: ok.high_watermark,
      logStartOffset: ok.log_start_offset,
    };
  }

  /**
   * Subscribes to records as they arrive: returns a Subscription, an async iterable of
   * records `{topic, partition, offset, timestamp, key, value, headers}`, once the broker has
   * accepted it (so `unknown_topic` and friends reject here). Options: `topic`, `partitions`
   * (default all), `from` ('earliest' | 'latest' (default) | {offset} | {timestamp}),
   * `creditBytes` (the flow-control window, default 256 KiB), `filter` (an uploaded filter
   * plugin: its name or `{plugin, params}`; the broker pushes only the records it keeps),
   * `map` (an uploaded map plugin, the same forms; the broker pushes the records as it
   * rewrote them, after the filter, with their offsets and timestamps).
   */
  async subscribe(options) {
    const s = new Subscription(this, options);
    await s._start();
    return s;
  }

  /**
   * Joins a consumer group and consumes the partitions the broker assigns to this member.
   * Returns a GroupMember (an async iterable of records) once joined. Options: `group`,
   * `topics` (or `topicPattern`), `onAssign(partitions)`, `onRevoke(partitions, {lost})`
   * (awaited before the member reports the partitions released), `from` (where partitions
   * without a committed offset start: 'latest' (default) or 'earliest'), `autoCommit`
   * (default true: commits consumed offsets every `autoCommitIntervalMs`, on revoke and on
   * close), `creditBytes` per partition (default 128 KiB), `sessionTimeoutMs`, `assignor`,
   * `instanceId` (static membership), `filter` (as for `subscribe`: only kept records are
   * delivered; commits still move past the dropped ones), `map` (as for `subscribe`).
   */
  async joinGroup(options) {
    const m = new GroupMember(this, options);
    await m._start();
    return m;
  }

  // ---- admin

  /** Topics: `[{name, partitions, internal}]`. */
  async listTopics() {
    return (await this.request('list_topics')).topics;
  }

  /** Creates a topic; resolves with its description. */
  async createTopic(name, { partitions, replicationFactor, configs } = {}) {
    const fields = { name };
    if (partitions !== undefined) fields.partitions = partitions;
    if (replicationFactor !== undefined) fields.replication_factor = replicationFactor;
    if (configs) fields.configs = configs;
    return strip(await this.request('create_topic', fields));
  }

  /** A topic's partitions (offsets, sizes) and settings. */
  async describeTopic(topic) {
    return strip(await this.request('describe_topic', { topic }));
  }

  /** Changes settings (`{configs, partitions}`); resolves with the new description. */
  async alterTopic(topic, changes) {
    return strip(await this.request('alter_topic', { topic, changes }));
  }

  /** Deletes a topic and its data. */
  async deleteTopic(topic) {
    await this.request('delete_topic', { topic });
  }

  /** Earliest and latest offset per partition (and the offset for `timestamp`, if given). */
  async offsets(topic, { timestamp } = {}) {
    const fields = { topic };
    if (timestamp !== undefined) fields.timestamp = timestamp instanceof Date ? timestamp.getTime() : timestamp;
    return (await this.request('list_offsets', fields)).partitions;
  }

  /** Groups: `[{group, state, members}]`. */
  async listGroups() {
    return (await this.request('list_groups')).groups;
  }

  /** A group: state, members, assignment, committed offsets and lag per partition. */
  async describeGroup(group) {
    return strip(await this.request('describe_group', { group }));
  }

  /** A group's committed offsets. */
  async groupOffsets(group, topics) {
    const fields = { group };
    if (topics) fields.topics = topics;
    return (await this.request('fetch_offsets', fields)).offsets;
  }

  /** Commits offsets `[{topic, partition, offset}]` for a group without active members. */
  async commitOffsets(group, offsets, { memberId, memberEpoch } = {}) {
    const fields = { group, offsets };
    if (memberId !== undefined) fields.member_id = memberId;
    if (memberEpoch !== undefined) fields.member_epoch = memberEpoch;
    await this.request('commit_offsets', fields);
  }

  /** Moves a group's offsets ('earliest' | 'latest' | {offset} | {timestamp}). */
  async resetOffsets(group, to, topics) {
    const fields = { group, to: wireFrom(to) };
    if (topics) fields.topics = topics;
    return (await this.request('reset_offsets', fields)).offsets;
  }

  /** Deletes a group's committed offsets (it must have no active members). */
  async deleteGroup(group) {
    await this.request('delete_group', { group });
  }

  /**
   * Uploads a WebAssembly plugin (a filter or partitioner) under `name`, replacing one of that
   * name for new attachments: `module` is its bytes (Uint8Array, ArrayBuffer or a Blob such as
   * a File from an <input type=file>). Resolves with its description
   * `{name, kind, abi_version, size_bytes, sha256, uploaded_ms, calls, records, errors}`.
   */
  async uploadPlugin(name, module) {
    let bytes = module;
    if (typeof Blob !== 'undefined' && module instanceof Blob) bytes = new Uint8Array(await module.arrayBuffer());
    else if (module instanceof ArrayBuffer) bytes = new Uint8Array(module);
    else if (ArrayBuffer.isView(module)) bytes = new Uint8Array(module.buffer, module.byteOffset, module.byteLength);
    if (!(bytes instanceof Uint8Array)) throw new SluiceError('bad_request', 'uploadPlugin needs the module as bytes (Uint8Array, ArrayBuffer or Blob)');
    return strip(await this.request('upload_plugin', { name, module: bytesToBase64(bytes) }));
  }

  /** Uploaded plugins, sorted by name: their kind, size, sha256 and health counters. */
  async listPlugins() {
    return (await this.request('list_plugins')).plugins;
  }

  /** One plugin's description; `unknown_plugin` if there is none. */
  async describePlugin(name) {
    return strip(await this.request('describe_plugin', { name }));
  }

  /** Deletes a plugin; `invalid_config` while a topic routes with it. */
  async deletePlugin(name) {
    await this.request('delete_plugin', { name });
  }
}

function strip(ok) {
  const { type: _type, ...rest } = ok;
  return rest;
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

/**
 * Records of some partitions of a topic, pushed by the broker as they arrive. Iterate it with
 * `for await`; `close()` stops it. `positions` maps each partition to the offset after the
 * last record received.
 */
export class Subscription {
  constructor(client, options) {
    if (!options || !options.topic) throw new SluiceError('bad_request', 'subscribe needs a topic');
    this._client = client;
    this.topic = options.topic;
    this._partitions = options.partitions ? [...options.partitions] : null;
    this._from = wireFrom(options.from);
    this._creditBytes = Math.max(1, options.creditBytes ?? 256 * 1024);
    /** The filter plugin the broker runs for this subscription (`{plugin, params}`), if any. */
    this.filter = wireFilter(options.filter);
    /** The map plugin the broker runs for this subscription (`{plugin, params}`), if any. */
    this.map = wireMap(options.map);
    // A group member's partitions share the member's queue, which outlives each of them.
    this._ownsQueue = !options._queue;
    this._queue = options._queue || new RecordQueue();
    // A group member resumes its partitions itself, once the broker confirmed the membership.
    this._member = options._member || null;
    /** Partition → the offset after the last record received (where a resume starts). */
    this.positions = new Map();
    /** Partition → the offset after the last record the application took. */
    this.consumed = new Map();
    this._sids = new Set();
    this._owed = new Map();
    this._closed = false;
  }

  async _start() {
    this._client._subscriptions.add(this);
    try {
      await this._subscribe(this._partitions, this._from);
    } catch (e) {
      this._client._subscriptions.delete(this);
      throw e;
    }
    this._partitions = [...this.positions.keys()];
  }

  _subscribe(partitions, from) {
    const fields = { topic: this.topic, from, credit_bytes: this._creditBytes };
    if (partitions) fields.partitions = partitions;
    if (this.filter) fields.filter = this.filter;
    if (this.map) fields.map = this.map;
    return this._client.request('subscribe', fields, {
      sync: (ok) => {
        if (this._closed) {
          this._client.request('unsubscribe', { subscription: ok.subscription }).catch(() => {});
          return;
        }
        this._sids.add(ok.subscription);
        this._client._bySid.set(ok.subscription, this);
        for (const { partition, offset } of ok.positions) {
          this.positions.set(partition, offset);
          if (!this.consumed.has(partition)) this.consumed.set(partition, offset);
        }
      },
    });
  }

  /** The connection dropped: the broker forgot our subscriptions. */
  _detach() {
    this._sids.clear();
    this._owed.clear();
  }

  /** After a reconnect: subscribe again from each partition's position. */
  async _resume() {
    if (this._closed) return;
    const byOffset = new Map();
    for (const p of this._partitions) {
      const at = this.positions.get(p);
      if (!byOffset.has(at)) byOffset.set(at, []);
      byOffset.get(at).push(p);
    }
    try {
      for (const [offset, partitions] of byOffset) {
        await this._subscribe(partitions, { offset });
      }
    } catch (e) {
      if (e.code === 'disconnected' || e.code === 'closed') return; // the next reconnect retries
      this._fail(e);
    }
  }

  _push(d) {
    if (this._closed) return;
    const sid = d.subscription;
    const records = d.records || [];
    this.positions.set(d.partition, d.next_offset);
    if (records.length === 0) {
      // A filter dropped every record of this read: nothing to show, but the position moved.
      // A marker behind the records still queued moves `consumed` (and grants the push's
      // credit back) once they are taken, so a stalled reader still stalls the broker.
      this._queue.put([{ record: null, mark: { topic: d.topic, partition: d.partition, offset: d.next_offset }, sub: this, sid, bytes: d.bytes || 0 }]);
      return;
    }
    const tally = { sid, bytes: d.bytes || 0, left: records.length, partition: d.partition, next: d.next_offset };
    this._queue.put(records.map((r) => ({ record: decodeRecord(d.topic, d.partition, r), sub: this, tally })));
  }

  /** The application took a record (or passed a position marker): count it consumed and
   *  grant its push's credit back. After a push's last record, `consumed` is the push's
   *  `next_offset`, past records a filter dropped. */
  _taken(e) {
    if (!e.record) {
      this._advance(e.mark.partition, e.mark.offset);
      this._owe(e.sid, e.bytes);
      return;
    }
    this._advance(e.record.partition, e.record.offset + 1);
    if (--e.tally.left === 0) {
      this._advance(e.tally.partition, e.tally.next);
      this._owe(e.tally.sid, e.tally.bytes);
    }
  }

  _advance(partition, offset) {
    if (typeof offset !== 'number') return;
    if (!(this.consumed.get(partition) >= offset)) this.consumed.set(partition, offset);
  }

  _owe(sid, bytes) {
    if (!this._sids.has(sid)) return;
    this._owed.set(sid, (this._owed.get(sid) || 0) + bytes);
    // Grant in chunks, or at once when the application has caught up (never stall the stream).
    const total = [...this._owed.values()].reduce((a, b) => a + b, 0);
    if (total < this._creditBytes / 4 && this._queue.length > 0) return;
    for (const [s, n] of this._owed) {
      if (n > 0 && this._sids.has(s)) {
        this._client.request('credit', { subscription: s, bytes: n }).catch(() => {});
      }
    }
    this._owed.clear();
  }

  _serverFailed(sid, error) {
    this._sids.delete(sid);
    this._client._bySid.delete(sid);
    this._fail(error);
  }

  _fail(error) {
    if (this._closed) return;
    if (this._ownsQueue) this._queue.fail(error);
    this._client._emit('error', error);
    this._stop();
  }

  _end() {
    if (this._closed) return;
    if (this._ownsQueue) this._queue.end();
    this._stop();
  }

  _stop() {
    this._closed = true;
    this._client._subscriptions.delete(this);
    const sids = [...this._sids];
    this._detach();
    for (const sid of sids) {
      this._client._bySid.delete(sid);
      if (this._client._ready) {
        this._client.request('unsubscribe', { subscription: sid }).catch(() => {});
      }
    }
  }

  /** Stops the subscription; iteration ends after the records already received. */
  close() {
    this._end();
  }

  /** Records received but not yet taken by the application. */
  get buffered() {
    return this._queue.records;
  }

  next() {
    return this._queue.next();
  }

  return() {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

// ---------------------------------------------------------------------------------------------
// Consumer group members

/**
 * A member of a consumer group. The broker assigns it partitions (KIP-848 style: it computes
 * the assignment and pushes changes); the member consumes them, commits what it consumed, and
 * hands revoked partitions back. Iterate it with `for await` for the records of all its
 * partitions; `assignment` lists what it owns now; `close()` commits and leaves.
 */
export class GroupMember extends Emitter {
  constructor(client, options) {
    super();
    if (!options || !options.group) throw new SluiceError('bad_request', 'joinGroup needs a group');
    if (!options.topics && !options.topicPattern) {
      throw new SluiceError('bad_request', 'joinGroup needs topics or topicPattern');
    }
    this._client = client;
    this.group = options.group;
    this._topics = options.topics;
    this._topicPattern = options.topicPattern;
    this._onAssign = options.onAssign;
    this._onRevoke = options.onRevoke;
    this._from = options.from ?? 'latest';
    this._autoCommit = options.autoCommit ?? true;
    this._autoCommitIntervalMs = options.autoCommitIntervalMs ?? 5000;
    this._creditBytes = options.creditBytes ?? 128 * 1024;
    this._sessionTimeoutMs = options.sessionTimeoutMs;
    this._assignor = options.assignor;
    this._instanceId = options.instanceId;
    /** The filter plugin run on every partition this member consumes, if any. */
    this.filter = wireFilter(options.filter);
    /** The map plugin run on every partition this member consumes, if any. */
    this.map = wireMap(options.map);
    this._queue = new RecordQueue();
    /** The id the broker gave this member. */
    this.memberId = null;
    /** The member epoch (sent with heartbeats and commits). */
    this.memberEpoch = 0;
    this._interval = 3000;
    this._owned = new Map(); // key → {topic, partition, sub}
    this._committed = new Map(); // key → last committed offset
    this._latest = null; // the newest assignment not yet applied
    this._lostError = null; // set when the broker removed or fenced this member
    this._reconciling = null;
    this._timer = null;
    this._commitTimer = null;
    this._closed = false;
    this._unload = null;
  }

  /** Partitions this member owns now: `[{topic, partition}]`. */
  get assignment() {
    return [...this._owned.values()]
      .map(({ topic, partition }) => ({ topic, partition }))
      .sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
  }

  /** Joins, then keeps the membership alive: heartbeats, auto-commit, leave on page exit. */
  async _start() {
    await this._join();
    if (this._autoCommit) {
      this._commitTimer = setInterval(() => {
        this.commit().catch(() => {});
      }, this._autoCommitIntervalMs);
    }
    if (typeof globalThis.addEventListener === 'function') {
      // Leave when the page goes away, so the partitions move at once, not after the session timeout.
      this._unload = () => this._leaveNow();
      globalThis.addEventListener('pagehide', this._unload);
    }
    await this._reconciled();
  }

  /** Heartbeat with member epoch 0: join as a new member (or take a static identity over). */
  async _join() {
    const fields = { group: this.group, member_epoch: 0 };
    if (this._topics) fields.topics = this._topics;
    if (this._topicPattern) fields.topic_pattern = this._topicPattern;
    if (this._sessionTimeoutMs) fields.session_timeout_ms = this._sessionTimeoutMs;
    if (this._assignor) fields.assignor = this._assignor;
    if (this._instanceId) fields.instance_id = this._instanceId;
    const a = await this._client.request('group_heartbeat', fields, {
      sync: (ok) => this._register(ok),
    });
    this._assignment(a);
    this._beatSoon(this._interval);
  }

  _register(ok) {
    if (this.memberId && this.memberId !== ok.member_id) this._client._members.delete(this.memberId);
    this.memberId = ok.member_id;
    this.memberEpoch = ok.member_epoch;
    this._interval = ok.heartbeat_interval_ms || this._interval;
    this._client._members.set(ok.member_id, this);
    const early = this._client._earlyAssignments.get(ok.member_id);
    if (early) {
      this._client._earlyAssignments.delete(ok.member_id);
      queueMicrotask(() => this._assignment(early));
    }
  }

  /** Waits until every assignment received so far is applied. */
  async _reconciled() {
    while (this._reconciling) await this._reconciling;
  }

  /** An assignment from a heartbeat answer or a push: applied one at a time, newest wins. */
  _assignment(a) {
    if (this._closed || a.member_id !== this.memberId) return;
    if (a.member_epoch < this.memberEpoch) return; // stale
    this._latest = a;
    this._kick();
  }

  /** The broker removed or fenced this member: handled in order with the assignments. */
  _fenced(error) {
    this._lostError = error;
    this._kick();
  }

  _kick() {
    if (this._reconciling) return;
    this._reconciling = this._reconcileLoop().finally(() => {
      this._reconciling = null;
    });
  }

  async _reconcileLoop() {
    while (!this._closed && (this._lostError || this._latest)) {
      if (this._lostError) {
        const e = this._lostError;
        this._lostError = null;
        this._latest = null;
        await this._lost(e);
        continue;
      }
      const a = this._latest;
      this._latest = null;
      try {
        await this._apply(a);
      } catch (e) {
        if (e.code === 'unknown_member' || e.code === 'fenced_member_epoch') this._lostError = e;
        else if (e.code !== 'disconnected' && e.code !== 'closed') this._client._emit('error', e);
      }
    }
  }

  async _apply(a) {
    if (a.member_epoch < this.memberEpoch) return;
    this.memberEpoch = a.member_epoch;
    if (a.heartbeat_interval_ms) this._interval = a.heartbeat_interval_ms;
    const target = new Map();
    for (const tp of fromLists(a.assignment)) target.set(tpKey(tp.topic, tp.partition), tp);
    const revoked = [...this._owned.keys()].filter((k) => !target.has(k));
    if (revoked.length) {
      // Stop consuming, commit, tell the application, then report the smaller set at once.
      const gone = revoked.map((k) => this._owned.get(k));
      for (const o of gone) o.sub.close();
      const set = new Set(revoked);
      this._queue.drop((e) => {
        const tp = e.record || e.mark;
        return set.has(tpKey(tp.topic, tp.partition));
      });
      if (this._autoCommit) await this.commit(gone);
      try {
        await this._onRevoke?.(gone.map(({ topic, partition }) => ({ topic, partition })), { lost: false });
      } finally {
        for (const k of revoked) {
          this._owned.delete(k);
          this._committed.delete(k);
        }
        this._emit('assignment', this.assignment);
        this._beatSoon(0);
      }
    }
    const added = [...target.keys()].filter((k) => !this._owned.has(k)).map((k) => target.get(k));
    if (added.length) {
      const topics = [...new Set(added.map((tp) => tp.topic))];
      const committed = new Map();
      for (const c of await this._client.groupOffsets(this.group, topics)) {
        committed.set(tpKey(c.topic, c.partition), c.offset);
      }
      const started = [];
      for (const tp of added) {
        const k = tpKey(tp.topic, tp.partition);
        const at = committed.get(k);
        if (at !== undefined) this._committed.set(k, at);
        const sub = new Subscription(this._client, {
          topic: tp.topic,
          partitions: [tp.partition],
          from: at !== undefined ? { offset: at } : this._from,
          creditBytes: this._creditBytes,
          filter: this.filter,
          map: this.map,
          _queue: this._queue,
          _member: this,
        });
        await sub._start();
        this._owned.set(k, { topic: tp.topic, partition: tp.partition, sub });
        started.push({ topic: tp.topic, partition: tp.partition, offset: sub.positions.get(tp.partition) });
      }
      this._emit('assignment', this.assignment);
      await this._onAssign?.(started);
    }
  }

  /** The member was removed or fenced: its partitions are gone; rejoin as a new member. */
  async _lost(error) {
    const gone = [...this._owned.values()];
    for (const o of gone) o.sub.close();
    this._owned.clear();
    this._committed.clear();
    this._queue.drop(() => true);
    this._emit('assignment', this.assignment);
    this._client._emit('error', error);
    if (gone.length) {
      try {
        await this._onRevoke?.(gone.map(({ topic, partition }) => ({ topic, partition })), { lost: true });
      } catch (e) {
        this._client._emit('error', e);
      }
    }
    if (this._closed) return;
    this._client._members.delete(this.memberId);
    this.memberId = null;
    this.memberEpoch = 0;
    try {
      await this._join(); // its assignment is applied by the loop we are in
    } catch (e) {
      if (e.code !== 'closed') this._client._emit('error', e);
      this._beatSoon(this._interval); // a heartbeat without member id joins again
    }
  }

  _beatSoon(ms) {
    clearTimeout(this._timer);
    if (this._closed) return;
    this._timer = setTimeout(() => this._beat(), ms);
  }

  async _beat() {
    if (this._closed) return;
    if (!this.memberId) {
      try {
        await this._join();
      } catch {
        this._beatSoon(this._interval);
      }
      return;
    }
    const fields = {
      group: this.group,
      member_id: this.memberId,
      member_epoch: this.memberEpoch,
      owned: toLists(this._owned.values()),
    };
    try {
      const a = await this._client.request('group_heartbeat', fields);
      this._assignment(a);
    } catch (e) {
      if (e.code === 'unknown_member' || e.code === 'fenced_member_epoch') {
        this._fenced(e);
        return;
      }
      if (e.code === 'closed') return;
      if (e.code !== 'disconnected') this._client._emit('error', e);
    }
    this._beatSoon(this._interval);
  }

  /** The connection came back. If the broker still has this member (its session did not
   *  expire, the broker did not restart), resume its partitions where they stopped; if not,
   *  they are lost and the member rejoins. Nothing is read before the broker answered. */
  async _reconnected() {
    clearTimeout(this._timer);
    if (this._closed || !this.memberId) {
      this._beatSoon(0);
      return;
    }
    try {
      const a = await this._client.request('group_heartbeat', {
        group: this.group,
        member_id: this.memberId,
        member_epoch: this.memberEpoch,
        owned: toLists(this._owned.values()),
      });
      for (const o of this._owned.values()) o.sub._resume();
      this._assignment(a);
    } catch (e) {
      if (e.code === 'unknown_member' || e.code === 'fenced_member_epoch') this._fenced(e);
      else if (e.code !== 'disconnected' && e.code !== 'closed') this._client._emit('error', e);
    }
    this._beatSoon(this._interval);
  }

  /**
   * Commits the consumed offsets (the offset after the last record the application took) of
   * the owned partitions, or of `partitions`, that moved since the last commit.
   */
  async commit(partitions) {
    if (!this.memberId) return;
    const list = partitions || [...this._owned.values()];
    const offsets = [];
    for (const o of list) {
      const k = tpKey(o.topic, o.partition);
      const owned = o.sub ? o : this._owned.get(k);
      if (!owned) continue;
      const at = owned.sub.consumed.get(o.partition);
      if (at === undefined || at === this._committed.get(k)) continue;
      offsets.push({ topic: o.topic, partition: o.partition, offset: at });
    }
    if (!offsets.length) return;
    await this._client.request('commit_offsets', {
      group: this.group,
      member_id: this.memberId,
      member_epoch: this.memberEpoch,
      offsets,
    });
    for (const c of offsets) this._committed.set(tpKey(c.topic, c.partition), c.offset);
  }

  /** Best effort, synchronous: tell the broker we leave (the page is going away). */
  _leaveNow() {
    const ws = this._client._ws;
    if (!ws || !this.memberId || this._closed) return;
    try {
      ws.send(JSON.stringify({ id: this._client._nextId++, op: 'group_heartbeat', group: this.group, member_id: this.memberId, member_epoch: -1 }));
    } catch { /* the page is going away anyway */ }
  }

  /** Records received for this member's partitions but not yet taken by the application. */
  get buffered() {
    return this._queue.records;
  }

  /** Commits (with autoCommit), gives the partitions back (onRevoke) and leaves the group. */
  async close() {
    if (this._closed) return;
    await this._reconciled();
    clearTimeout(this._timer);
    clearInterval(this._commitTimer);
    if (this._unload) globalThis.removeEventListener?.('pagehide', this._unload);
    const gone = [...this._owned.values()];
    for (const o of gone) o.sub.close();
    try {
      if (this._autoCommit) await this.commit(gone);
      if (gone.length) {
        await this._onRevoke?.(gone.map(({ topic, partition }) => ({ topic, partition })), { lost: false });
      }
    } finally {
      this._closed = true;
      this._owned.clear();
      this._queue.end();
      if (this.memberId) {
        await this._client
          .request('group_heartbeat', { group: this.group, member_id: this.memberId, member_epoch: -1 })
          .catch(() => {});
        this._client._members.delete(this.memberId);
      }
      this._emit('assignment', []);
    }
  }

  next() {
    return this._queue.next();
  }

  return() {
    return this.close().then(() => ({ value: undefined, done: true }));
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

/** Entry point: `const client = await Sluice.connect(url?, options?)`. */
export const Sluice = {
  /**
   * Connects to a broker and says hello. `url`: `ws(s)://host/v1/ws`, or an `http(s)://host`
   * base; default: the page's own host. Options: `WebSocket` (an implementation, for Node),
   * `clientName`, `requestTimeoutMs` (30000), `connectTimeoutMs` (10000), `reconnect` (true),
   * `minBackoffMs` (100), `maxBackoffMs` (5000).
   */
  async connect(url, options) {
    const c = new Client(url, options);
    await c._start();
    return c;
  },
  SluiceError,
  PROTOCOL_VERSION,
};

export default Sluice;

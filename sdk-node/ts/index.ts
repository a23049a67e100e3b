/**
 * `sluice-client`: the Node.js client of Sluice, a Kafka-style streaming broker.
 *
 * A thin layer over the native addon (napi-rs bindings of the Rust SDK `sluice-client`, which
 * speaks the protocol): it shapes the API for JavaScript — per-record `send` promises gathered
 * into batches, consumers as async iterables, typed errors — and implements no protocol itself.
 *
 * ```js
 * import { Sluice } from 'sluice-client';
 *
 * const client = await Sluice.connect('http://127.0.0.1:9400');
 * const producer = client.producer();
 * const meta = await producer.send({ topic: 'orders', key: 'user-1', value: 'hello' });
 * await producer.close();
 * const consumer = await client.consumer({ topics: ['orders'], start: 'earliest' });
 * for await (const record of consumer) {
 *   console.log(record.offset, record.value.toString());
 *   break;
 * }
 * await client.close();
 * ```
 *
 * Nothing here keeps the process alive by itself: only a pending call (a `send` not yet
 * acknowledged, a consumer waiting for records) does, like a socket would. After `close()`
 * none remains.
 */

import { createRequire } from 'node:module';

import type * as native from '../native/binding.js';
import { ClosedError, InvalidInputError, fromEncoded, sync, toSluiceError, wrap } from './errors.js';

export * from './errors.js';

const binding = createRequire(import.meta.url)('../native/sluice.node') as typeof native;

/** Bytes: a `Buffer` (or any `Uint8Array`), or a string, sent as UTF-8. */
export type Bytes = Uint8Array | string;

/** Connection settings; every one is optional. */
export interface ClientOptions {
  /** How long a request may wait for its answer, including waiting for a connection (default 30 000). */
  requestTimeoutMs?: number;
  /** How long opening a connection may take (default 10 000). */
  connectTimeoutMs?: number;
  /** First delay between reconnection attempts. */
  reconnectBackoffMinMs?: number;
  /** Largest delay between reconnection attempts. */
  reconnectBackoffMaxMs?: number;
  /** Requests in flight on the connection at most. */
  maxInFlight?: number;
  /** Interval of WebSocket pings. */
  keepaliveMs?: number;
  /** Largest frame accepted from the broker. */
  maxReceiveBytes?: number;
  /** The name this client gives the broker. */
  clientName?: string;
}

/** The broker's hello. */
export type ServerInfo = native.ServerInfo;

/** The entry point: `await Sluice.connect(url)`. */
export const Sluice = {
  /**
   * Connects to a broker: `http://host:port`, `ws://host:port` or `host:port`. The connection
   * is reopened in the background when lost. Rejects with {@link ConnectionError} when the
   * broker cannot be reached, {@link TimeoutError}, or {@link InvalidInputError} for a bad URL.
   */
  async connect(url: string, options?: ClientOptions): Promise<Client> {
    if (typeof url !== 'string') throw new InvalidInputError('invalid_input', '', 'the URL must be a string', false);
    return new Client(await wrap(binding.connect(url, options)));
  },
};

/** One connection to a broker, shared by its admin, producers and consumers. */
export class Client {
  readonly #native: native.NativeClient;
  readonly #producers = new Set<Producer>();
  readonly #consumers = new Set<Consumer>();
  #admin?: Admin;

  /** @internal */
  constructor(n: native.NativeClient) {
    this.#native = n;
  }

  /** The WebSocket URL in use. */
  get url(): string {
    return this.#native.url;
  }

  /** The broker's hello on the current connection; `null` while reconnecting. */
  serverInfo(): ServerInfo | null {
    return this.#native.serverInfo();
  }

  /** Topic, group and plugin administration. */
  admin(): Admin {
    this.#admin ??= new Admin(this.#native);
    return this.#admin;
  }

  /** A producer that batches records per partition. */
  producer(options?: ProducerOptions): Producer {
    const p = new Producer(sync(() => this.#native.producer(producerOptions(options))), () => this.#producers.delete(p));
    this.#producers.add(p);
    return p;
  }

  /**
   * A consumer of `options.topics`: in a group when `options.group` is set (the broker shares
   * the partitions among the group's members), else of every partition ("broadcast"). Resolves
   * once subscribed or joined: an unknown topic rejects here.
   */
  async consumer(options: ConsumerOptions): Promise<Consumer> {
    const n = await wrap(this.#native.consumer(consumerOptions(options)));
    const c = new Consumer(n, options.maxBatch ?? 500, () => this.#consumers.delete(c));
    this.#consumers.add(c);
    return c;
  }

  /**
   * Closes the producers (sending what they buffer) and consumers made from this client, then
   * the connection. Later calls fail with {@link ClosedError}.
   */
  async close(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const p of this.#producers) closing.push(p.close());
    for (const c of this.#consumers) closing.push(c.close());
    const results = await Promise.allSettled(closing);
    this.#native.close();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

// ---------------------------------------------------------------------------------------------
// Producer

/** Producer settings; every one is optional. */
export interface ProducerOptions {
  /** `0` (no answer awaited), `1` or `all` (default). */
  acks?: 0 | 1 | 'all' | '0' | '1';
  /** How long a batch may wait for more records (ms). */
  lingerMs?: number;
  /** Largest batch (bytes). */
  batchBytes?: number;
  /** Bytes of records buffered in the native producer before sends wait. */
  bufferBytes?: number;
  /** Largest produce request (bytes). */
  requestBytes?: number;
  /** How long a record may take, retries included, before it fails (ms). */
  deliveryTimeoutMs?: number;
  /** Bytes queued in front of the native producer before sends fail with {@link QueueFullError} (default 64 MiB). */
  maxQueuedBytes?: number;
}

/** A record to send. */
export interface ProducerRecord {
  topic: string;
  /** The value; `null` or absent for a null value (a tombstone, with a key, in a compacted topic). */
  value?: Bytes | null;
  /** The key: records with the same key go to the same partition. */
  key?: Bytes | null;
  /**
   * Headers: an object of name to value, or (to repeat a name, or fix the order) an array of
   * `{key, value}`. A `null` value is a null value.
   */
  headers?: Record<string, Bytes | null> | Array<{ key: string; value: Bytes | null }>;
  /** An explicit partition, overriding routing by key. */
  partition?: number;
  /** ms since the Unix epoch (default: now). */
  timestamp?: number;
}

/** Where a record was written. */
export interface RecordMetadata {
  topic: string;
  /** The partition; `null` for a record routed by the topic's partitioner plugin with `acks: 0`. */
  partition: number | null;
  /** The record's offset; `null` with `acks: 0`, where the broker does not say. */
  offset: number | null;
  timestamp: number;
}

function producerOptions(o: ProducerOptions | undefined): native.ProducerOptionsJs | undefined {
  if (o === undefined) return undefined;
  return { ...o, acks: o.acks === undefined ? undefined : String(o.acks) };
}

/** A record with only a topic, a value and maybe a key: sent as columns. */
function isPlain(r: ProducerRecord): boolean {
  return r.headers == null && r.partition == null && r.timestamp == null;
}

/** The partition of a record routed by the broker, as long as the broker has not said. */
const ROUTED_BY_BROKER = 0xffff_ffff;

/** Records gathered in one native call at most. */
const MAX_BATCH_RECORDS = 1024;

type Pending = { resolve: (m: RecordMetadata) => void; reject: (e: unknown) => void };
type Settle = (index: number, error: unknown, meta?: RecordMetadata) => void;

/** The record with its headers as the native side takes them: a list of `{key, value}`. */
function withHeaderList(record: ProducerRecord): ProducerRecord {
  if (record.headers == null || Array.isArray(record.headers)) return record;
  return { ...record, headers: Object.entries(record.headers).map(([key, value]) => ({ key, value })) };
}

function invalidRecord(record: unknown): string | null {
  if (typeof record !== 'object' || record === null) return 'a record must be an object';
  const r = record as ProducerRecord;
  if (typeof r.topic !== 'string' || r.topic === '') return 'a record needs a topic (a non-empty string)';
  for (const field of ['value', 'key'] as const) {
    const v = r[field];
    if (v != null && typeof v !== 'string' && !(v instanceof Uint8Array)) {
      return `a record's ${field} must be a Buffer, a Uint8Array, a string or null`;
    }
  }
  if (r.partition != null && !(Number.isInteger(r.partition) && r.partition >= 0 && r.partition < 2 ** 32)) {
    return 'partition must be a non-negative integer';
  }
  if (r.timestamp != null && !Number.isSafeInteger(r.timestamp)) return 'timestamp must be an integer (ms)';
  if (r.headers != null) {
    if (typeof r.headers !== 'object') return 'headers must be an object of name to value, or an array of {key, value}';
    const values = Array.isArray(r.headers) ? r.headers.map((h) => h?.value) : Object.values(r.headers);
    if (Array.isArray(r.headers) && !r.headers.every((h) => typeof h?.key === 'string')) {
      return 'each header needs a `key` string';
    }
    for (const v of values) {
      if (v != null && typeof v !== 'string' && !(v instanceof Uint8Array)) {
        return 'a header value must be a Buffer, a Uint8Array, a string or null';
      }
    }
  }
  return null;
}

/**
 * Sends records. Records are routed on the client (explicit partition, else murmur2 of the
 * key as Kafka does, else one partition per batch), batched per partition, and sent in the
 * order of the calls; retriable failures are retried within `deliveryTimeoutMs`.
 *
 * `send` is cheap: records of calls made in the same tick cross into native code together.
 * Await each promise (or a window of them) to bound what is buffered.
 */
export class Producer {
  readonly #native: native.NativeProducer;
  readonly #onClose: () => void;
  #records: ProducerRecord[] = [];
  #pending: Pending[] = [];
  #scheduled = false;
  #closed = false;
  #closing?: Promise<void>;

  /** @internal */
  constructor(n: native.NativeProducer, onClose: () => void) {
    this.#native = n;
    this.#onClose = onClose;
  }

  /**
   * Sends one record; resolves with where it was written once acknowledged. Rejects with
   * {@link InvalidInputError} for a malformed record (or one too large for the topic),
   * {@link BrokerError} (`unknown_topic`, ...), {@link ClosedError} after `close()`.
   */
  send(record: ProducerRecord): Promise<RecordMetadata> {
    if (this.#closed) return Promise.reject(new ClosedError('closed', '', 'the producer is closed', false));
    const invalid = invalidRecord(record);
    if (invalid) return Promise.reject(new InvalidInputError('invalid_input', '', invalid, false));
    record = withHeaderList(record);
    return new Promise<RecordMetadata>((resolve, reject) => {
      this.#records.push(record);
      this.#pending.push({ resolve, reject });
      if (this.#records.length >= MAX_BATCH_RECORDS) {
        this.#dispatch();
      } else if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => this.#dispatch());
      }
    });
  }

  /**
   * Sends records in one call, the cheapest way to send many; resolves with each one's
   * metadata, in order. A malformed record rejects the call with nothing sent; if records
   * fail later, rejects with the first failure (the others may have been written).
   */
  async sendBatch(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    if (this.#closed) throw new ClosedError('closed', '', 'the producer is closed', false);
    if (!Array.isArray(records)) throw new InvalidInputError('invalid_input', '', 'sendBatch takes an array of records', false);
    for (let i = 0; i < records.length; i++) {
      const invalid = invalidRecord(records[i]);
      if (invalid) throw new InvalidInputError('invalid_input', '', `record ${i}: ${invalid}`, false);
    }
    // Records of earlier `send` calls go first.
    this.#dispatch();
    const out = new Array<RecordMetadata>(records.length);
    let failure: unknown;
    await Promise.all(
      this.#sendRuns(records.map(withHeaderList), (i, error, meta) => {
        if (meta) out[i] = meta;
        else failure ??= error;
      }),
    );
    if (failure !== undefined) throw failure;
    return out;
  }

  /** Hands the records of `send` calls made so far to native code. */
  #dispatch(): void {
    this.#scheduled = false;
    const pending = this.#pending;
    if (pending.length === 0) return;
    const records = this.#records;
    this.#records = [];
    this.#pending = [];
    this.#sendRuns(records, (i, error, meta) => {
      if (meta) pending[i].resolve(meta);
      else pending[i].reject(error);
    });
  }

  /**
   * Sends records in order and reports each one's outcome to `settle`. Runs of records to one
   * topic with only a value and a key cross into native code as columns (one topic, an array
   * of values, maybe one of keys), which is much cheaper than objects; other records go as
   * objects. The native side takes calls in order, so the records keep theirs.
   */
  #sendRuns(records: ProducerRecord[], settle: Settle): Promise<void>[] {
    const done: Promise<void>[] = [];
    for (let start = 0; start < records.length; ) {
      const first = records[start];
      let end = start + 1;
      if (isPlain(first)) {
        let keys: (Bytes | null)[] | undefined;
        const values: (Bytes | null)[] = [first.value ?? null];
        if (first.key != null) keys = [first.key];
        while (end < records.length && isPlain(records[end]) && records[end].topic === first.topic) {
          const r = records[end];
          if (r.key != null && keys === undefined) keys = new Array(values.length).fill(null);
          values.push(r.value ?? null);
          keys?.push(r.key ?? null);
          end += 1;
        }
        done.push(this.#settle(records, start, end, settle, () => this.#native.sendValues(first.topic, values, keys)));
      } else {
        while (end < records.length && !isPlain(records[end])) end += 1;
        const run = records.slice(start, end) as native.RecordIn[];
        done.push(this.#settle(records, start, end, settle, () => this.#native.sendBatch(run)));
      }
      start = end;
    }
    return done;
  }

  /** Reports the outcome of `send` for records[start..end]; never rejects. */
  #settle(
    records: ProducerRecord[],
    start: number,
    end: number,
    settle: Settle,
    send: () => Promise<native.SendResults>,
  ): Promise<void> {
    let sent: Promise<native.SendResults>;
    try {
      sent = send();
    } catch (e) {
      const err = toSluiceError(e);
      for (let i = start; i < end; i++) settle(i, err);
      return Promise.resolve();
    }
    return sent.then(
      (r) => {
        const failed = r.errors.length > 0;
        for (let i = 0; i < end - start; i++) {
          const error = failed ? r.errors[i] : null;
          if (error) {
            settle(start + i, fromEncoded(error));
          } else {
            const offset = r.offsets[i];
            const partition = r.partitions[i];
            settle(start + i, undefined, {
              topic: records[start + i].topic,
              partition: partition === ROUTED_BY_BROKER ? null : partition,
              offset: offset < 0 ? null : offset,
              timestamp: r.timestamps[i],
            });
          }
        }
      },
      (e: unknown) => {
        const err = toSluiceError(e);
        for (let i = start; i < end; i++) settle(i, err);
      },
    );
  }

  /** Sends everything without lingering; resolves once all records sent so far are acknowledged or failed. */
  async flush(): Promise<void> {
    this.#dispatch();
    await wrap(this.#native.flush());
  }

  /**
   * Sends what is buffered, waits for it, and stops; later sends reject with
   * {@link ClosedError}. Closing twice is fine.
   */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#dispatch();
      this.#closed = true;
      this.#closing = wrap(this.#native.close()).finally(this.#onClose);
    }
    return this.#closing;
  }
}

// ---------------------------------------------------------------------------------------------
// Consumer

/** Where a consumer without a group starts in each partition. */
export type StartFrom = 'earliest' | 'latest' | { offset: number } | { timestamp: number };

/** Consumer settings. */
export interface ConsumerOptions {
  /** The topics to read. */
  topics: string[];
  /** Join this consumer group: the broker shares the partitions among its members. */
  group?: string;
  /** Group: static membership id (a member joining with the same id takes over). */
  instanceId?: string;
  /** Group: how long the broker waits for a heartbeat before it removes the member. */
  sessionTimeoutMs?: number;
  /** Group: where a partition without a committed offset starts (default `latest`). */
  autoOffsetReset?: 'earliest' | 'latest' | 'none';
  /**
   * Group: commit positions every this many ms while the consumer is iterated, when
   * partitions are revoked and on `close()` (default 5000); `0` or `false` commits only on
   * `commit()`.
   */
  autoCommitIntervalMs?: number | false;
  /** Group: `sticky` (default), `range` or `roundrobin`. */
  assignor?: 'sticky' | 'range' | 'roundrobin';
  /** Without a group: where to start (default `latest`: only new records). */
  start?: StartFrom;
  /** Without a group: only these partitions of each topic. */
  partitions?: number[];
  /** Bytes the broker may push ahead of the application, per topic (default 8 MiB). */
  creditBytes?: number;
  /** Verify each batch's CRC (default true). */
  checkCrcs?: boolean;
  /**
   * A `filter` plugin (uploaded with `admin().uploadPlugin`) the broker runs on every read:
   * only the records it keeps are delivered, with their original offsets. `params` go to the
   * plugin's `init` (for the example keyword filter: `{ keyword: 'ERROR' }`).
   */
  filter?: { name: string; params?: Record<string, string> };
  /**
   * Records taken from native code at a time, at most (default 500). Iteration yields them
   * one by one; `commit()` and `close()` count only those yielded, but a commit the group
   * makes on its own when partitions are revoked counts all those taken.
   */
  maxBatch?: number;
}

/** A header of a consumed record. */
export interface Header {
  key: string;
  value: Buffer | null;
}

/** A consumed record. */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: number;
  /** ms since the Unix epoch. */
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  /** Headers in order; names may repeat. */
  headers: Header[];
}

/** A partition of a topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A partition and an offset (for commits: the next offset to consume). */
export interface TopicPartitionOffset extends TopicPartition {
  offset: number;
}

function consumerOptions(o: ConsumerOptions): native.ConsumerOptionsJs {
  if (typeof o !== 'object' || o === null || !Array.isArray(o.topics)) {
    throw new InvalidInputError('invalid_input', '', 'consumer options need `topics`, an array of topic names', false);
  }
  let from: string | undefined;
  let fromValue: number | undefined;
  const start = o.start;
  if (start === 'earliest' || start === 'latest') from = start;
  else if (start && typeof start === 'object' && 'offset' in start) [from, fromValue] = ['offset', start.offset];
  else if (start && typeof start === 'object' && 'timestamp' in start) [from, fromValue] = ['timestamp', start.timestamp];
  else if (start !== undefined) {
    throw new InvalidInputError('invalid_input', '', "start must be 'earliest', 'latest', {offset} or {timestamp}", false);
  }
  return {
    topics: o.topics,
    group: o.group,
    instanceId: o.instanceId,
    sessionTimeoutMs: o.sessionTimeoutMs,
    autoOffsetReset: o.autoOffsetReset,
    autoCommitIntervalMs: o.autoCommitIntervalMs === false ? 0 : o.autoCommitIntervalMs,
    assignor: o.assignor,
    from,
    fromValue,
    partitions: o.partitions,
    creditBytes: o.creditBytes,
    checkCrcs: o.checkCrcs,
    filter: o.filter,
  };
}

/**
 * Reads records: `for await (const record of consumer) { ... }`.
 *
 * Leaving the loop (`break`) does not close the consumer; iterate again to go on, and call
 * `close()` when done (iteration then ends). The broker pushes records under flow control, so a
 * consumer that is not iterated holds at most `creditBytes` per topic.
 */
export class Consumer implements AsyncIterable<ConsumedRecord> {
  readonly #native: native.NativeConsumer;
  readonly #maxBatch: number;
  readonly #onClose: () => void;
  #batch: native.RecordOut[] = [];
  #next = 0;
  #closed = false;
  #closing?: Promise<void>;

  /** @internal */
  constructor(n: native.NativeConsumer, maxBatch: number, onClose: () => void) {
    this.#native = n;
    this.#maxBatch = Math.max(1, Math.min(10_000, Math.floor(maxBatch)));
    this.#onClose = onClose;
  }

  [Symbol.asyncIterator](): AsyncIterator<ConsumedRecord> {
    return {
      next: async (): Promise<IteratorResult<ConsumedRecord>> => {
        const record = await this.#nextRecord();
        return record ? { value: record, done: false } : { value: undefined, done: true };
      },
      return: async (): Promise<IteratorResult<ConsumedRecord>> => ({ value: undefined, done: true }),
    };
  }

  async #nextRecord(): Promise<ConsumedRecord | null> {
    for (;;) {
      if (this.#next < this.#batch.length) return record(this.#batch[this.#next++]);
      if (this.#closed) return null;
      const batch = await wrap(this.#native.nextBatch(this.#maxBatch, null));
      if (batch === null) {
        this.#closed = true;
        return null;
      }
      this.#batch = batch;
      this.#next = 0;
    }
  }

  /**
   * Takes the records at hand, up to `max` (default `maxBatch`), waiting up to `timeoutMs`
   * (default: without limit) for a first one. Resolves with `[]` on timeout, `null` once closed.
   */
  async poll(options: { max?: number; timeoutMs?: number } = {}): Promise<ConsumedRecord[] | null> {
    const max = Math.max(1, Math.floor(options.max ?? this.#maxBatch));
    if (this.#next < this.#batch.length) {
      const out = this.#batch.slice(this.#next, this.#next + max).map(record);
      this.#next += out.length;
      return out;
    }
    if (this.#closed) return null;
    const batch = await wrap(this.#native.nextBatch(Math.min(max, 10_000), options.timeoutMs ?? null));
    if (batch === null) {
      this.#closed = true;
      return null;
    }
    return batch.map(record);
  }

  /**
   * The next record to yield from each partition with records taken but not yet yielded.
   */
  #unyielded(): Map<string, TopicPartitionOffset> {
    const first = new Map<string, TopicPartitionOffset>();
    for (let i = this.#next; i < this.#batch.length; i++) {
      const r = this.#batch[i];
      const k = `${r.partition}\u0000${r.topic}`;
      if (!first.has(k)) first.set(k, { topic: r.topic, partition: r.partition, offset: r.offset });
    }
    return first;
  }

  /**
   * Group mode: commits, as this member, the next offset to consume of every partition it
   * reads — what iteration has yielded so far — or the given offsets. Resolves once the broker
   * stored them.
   */
  async commit(offsets?: TopicPartitionOffset[]): Promise<void> {
    if (offsets !== undefined) {
      await wrap(this.#native.commit(offsets));
      return;
    }
    const unyielded = this.#unyielded();
    if (unyielded.size === 0) {
      await wrap(this.#native.commit(null));
      return;
    }
    const positions = await wrap(this.#native.positions());
    for (const p of positions) {
      const u = unyielded.get(`${p.partition}\u0000${p.topic}`);
      if (u) p.offset = u.offset;
    }
    await wrap(this.#native.commit(positions));
  }

  /**
   * Moves a partition's position: the next record yielded from it is the one at `offset` (or
   * the nearest the broker still has).
   */
  async seek(topic: string, partition: number, offset: number): Promise<void> {
    this.#batch = this.#batch
      .slice(this.#next)
      .filter((r) => r.topic !== topic || r.partition !== partition);
    this.#next = 0;
    await wrap(this.#native.seek(topic, partition, offset));
  }

  /** The partitions this consumer reads (in a group, those assigned to it). */
  async assignment(): Promise<TopicPartition[]> {
    return wrap(this.#native.assignment());
  }

  /**
   * Stops reading these partitions until `resume` (records of them already taken are still
   * yielded); in a group the consumer keeps them. Rejects, pausing nothing, if the consumer
   * does not read one of them.
   */
  async pause(partitions: TopicPartition[]): Promise<void> {
    return wrap(this.#native.pause(partitions));
  }

  /** Reads paused partitions again, from where they were. */
  async resume(partitions: TopicPartition[]): Promise<void> {
    return wrap(this.#native.resume(partitions));
  }

  /** The paused partitions. */
  async paused(): Promise<TopicPartition[]> {
    return wrap(this.#native.paused());
  }

  /** The next offset this consumer will yield from each partition it reads. */
  async positions(): Promise<TopicPartitionOffset[]> {
    const positions = await wrap(this.#native.positions());
    const unyielded = this.#unyielded();
    for (const p of positions) {
      const u = unyielded.get(`${p.partition}\u0000${p.topic}`);
      if (u) p.offset = u.offset;
    }
    return positions;
  }

  /**
   * Ends the subscriptions; in a group, commits what was yielded (with automatic commits) and
   * leaves. Iteration then ends. Closing twice is fine.
   */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = (async () => {
        // Records taken but not yielded are not consumed: move back before the final commit.
        const unyielded = this.#unyielded();
        this.#batch = [];
        this.#next = 0;
        this.#closed = true;
        for (const u of unyielded.values()) {
          await wrap(this.#native.seek(u.topic, u.partition, u.offset)).catch(() => {});
        }
        await wrap(this.#native.close());
      })().finally(this.#onClose);
    }
    return this.#closing;
  }
}

function record(r: native.RecordOut): ConsumedRecord {
  return {
    topic: r.topic,
    partition: r.partition,
    offset: r.offset,
    timestamp: r.timestamp,
    key: (r.key as Buffer | undefined) ?? null,
    value: (r.value as Buffer | undefined) ?? null,
    headers: r.headers.map((h) => ({ key: h.key, value: (h.value as Buffer | undefined) ?? null })),
  };
}

// ---------------------------------------------------------------------------------------------
// Admin

/** A topic to create. */
export interface NewTopic {
  name: string;
  /** Default 1. */
  partitions?: number;
  /** Default 1 (a single broker accepts only 1). */
  replicationFactor?: number;
  /** Settings: `retention.ms`, `cleanup.policy`, `max.message.bytes`, ... */
  configs?: Record<string, string>;
}

export type TopicDescription = native.TopicDescriptionJs;
export type TopicSummary = native.TopicSummaryJs;
export type PartitionOffsets = native.PartitionOffsetsJs;
export type GroupSummary = native.GroupSummaryJs;
export type GroupDescription = native.GroupDescriptionJs;
export type CommittedOffset = native.CommittedOffsetJs;
export type PluginDescription = native.PluginDescriptionJs;

/** Administration over the client's connection. */
export class Admin {
  readonly #native: native.NativeClient;

  /** @internal */
  constructor(n: native.NativeClient) {
    this.#native = n;
  }

  /** Creates a topic; rejects with `topic_exists`, `invalid_topic_name`, `invalid_config`, ... */
  async createTopic(topic: NewTopic | string): Promise<TopicDescription> {
    const t = typeof topic === 'string' ? { name: topic } : topic;
    return wrap(this.#native.createTopic(t));
  }

  /** Every topic, sorted by name, internal ones included. */
  async listTopics(): Promise<TopicSummary[]> {
    return wrap(this.#native.listTopics());
  }

  /** A topic's partitions and effective settings. */
  async describeTopic(topic: string): Promise<TopicDescription> {
    return wrap(this.#native.describeTopic(topic));
  }

  /** Changes settings (`null` resets one to the broker default) and/or grows the partition count. */
  async alterTopic(
    topic: string,
    changes: { configs?: Record<string, string | null>; partitions?: number },
  ): Promise<TopicDescription> {
    return wrap(this.#native.alterTopic(topic, changes));
  }

  /** Deletes a topic and its data. */
  async deleteTopic(topic: string): Promise<void> {
    return wrap(this.#native.deleteTopic(topic));
  }

  /** Earliest and latest offset of each partition; with `timestamp`, also the first offset at or after it. */
  async listOffsets(topic: string, timestamp?: number): Promise<PartitionOffsets[]> {
    return wrap(this.#native.listOffsets(topic, timestamp));
  }

  /** Every consumer group: name, state, member count. */
  async listGroups(): Promise<GroupSummary[]> {
    return wrap(this.#native.listGroups());
  }

  /** A group's members and assignments, and per partition its committed offset and lag. */
  async describeGroup(group: string): Promise<GroupDescription> {
    return wrap(this.#native.describeGroup(group));
  }

  /** A group's committed offsets (of these topics, or all). */
  async groupOffsets(group: string, topics?: string[]): Promise<CommittedOffset[]> {
    return wrap(this.#native.groupOffsets(group, topics));
  }

  /**
   * Moves a group's committed offsets (of these topics, or all) to the earliest or latest
   * offset, an offset, or the first record at or after a timestamp. The group must have no
   * members (`group_not_empty` otherwise).
   */
  async resetOffsets(group: string, to: StartFrom, topics?: string[]): Promise<CommittedOffset[]> {
    const [from, value] =
      to === 'earliest' || to === 'latest'
        ? [to, undefined]
        : 'offset' in to
          ? ['offset', to.offset]
          : ['timestamp', to.timestamp];
    return wrap(this.#native.resetOffsets(group, from, value, topics));
  }

  /** Deletes a group without members, with its committed offsets. */
  async deleteGroup(group: string): Promise<void> {
    return wrap(this.#native.deleteGroup(group));
  }

  /**
   * Uploads (or replaces) a WebAssembly plugin: a `filter` (for consumers' `filter`) or a
   * `partitioner` (for a topic's `partitioner` setting). The broker validates and compiles it;
   * a bad module rejects with `invalid_plugin`.
   */
  async uploadPlugin(name: string, module: Uint8Array): Promise<PluginDescription> {
    if (!(module instanceof Uint8Array)) {
      throw new InvalidInputError('invalid_input', '', 'a plugin module is a Buffer or Uint8Array of WebAssembly', false);
    }
    return wrap(this.#native.uploadPlugin(name, Buffer.from(module.buffer, module.byteOffset, module.byteLength)));
  }

  /** Every uploaded plugin, with its use counters. */
  async listPlugins(): Promise<PluginDescription[]> {
    return wrap(this.#native.listPlugins());
  }

  /** One plugin. */
  async describePlugin(name: string): Promise<PluginDescription> {
    return wrap(this.#native.describePlugin(name));
  }

  /** Deletes a plugin (refused while a topic uses it as its partitioner). */
  async deletePlugin(name: string): Promise<void> {
    return wrap(this.#native.deletePlugin(name));
  }
}

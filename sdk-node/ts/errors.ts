/**
 * Errors of the Sluice client. Every failure is a {@link SluiceError}; match on the class or on
 * `code` (for {@link BrokerError}, the broker's stable code: `unknown_topic`, `topic_exists`,
 * `record_too_large`, `unknown_plugin`, ...), never on the message.
 *
 * The native addon encodes errors as `sluice:<kind>:<code>:<retriable>: <message>`
 * (sdk-node/src/error.rs); {@link toSluiceError} turns them back into these classes.
 */

/** What went wrong, on the client side of things. */
export type ErrorKind =
  | 'broker'
  | 'connection'
  | 'timeout'
  | 'protocol'
  | 'closed'
  | 'invalid_input'
  | 'queue_full';

/** The base class of every error this package throws. */
export class SluiceError extends Error {
  /** The broker's code for {@link BrokerError}; otherwise the kind (`connection`, `timeout`, ...). */
  readonly code: string;
  readonly kind: ErrorKind;
  /** Whether the same call may succeed if tried again later. */
  readonly retriable: boolean;

  constructor(kind: ErrorKind, code: string, message: string, retriable: boolean) {
    super(message);
    this.name = new.target.name;
    this.kind = kind;
    this.code = code || kind;
    this.retriable = retriable;
  }
}

/** The broker answered with an error; `code` is its stable code. */
export class BrokerError extends SluiceError {}
/** No connection could be made, or it was lost while the request was in flight. */
export class ConnectionError extends SluiceError {}
/** No answer came in time. Whether the broker acted on the request is unknown. */
export class TimeoutError extends SluiceError {}
/** The broker sent something this client does not understand. */
export class ProtocolError extends SluiceError {}
/** The client, producer or consumer was closed. */
export class ClosedError extends SluiceError {}
/** The call asked for something impossible (bad URL, bad argument, partition out of range). */
export class InvalidInputError extends SluiceError {}
/** Too many bytes are waiting to be sent (`maxQueuedBytes`): await earlier sends first. */
export class QueueFullError extends SluiceError {}

const classes: Record<ErrorKind, new (k: ErrorKind, c: string, m: string, r: boolean) => SluiceError> = {
  broker: BrokerError,
  connection: ConnectionError,
  timeout: TimeoutError,
  protocol: ProtocolError,
  closed: ClosedError,
  invalid_input: InvalidInputError,
  queue_full: QueueFullError,
};

const ENCODED = /^sluice:([a-z_]+):([a-z_]*):([01]): ([\s\S]*)$/;

/** Makes a {@link SluiceError} of an encoded native error message. */
export function fromEncoded(encoded: string): SluiceError {
  const m = ENCODED.exec(encoded);
  if (!m) return new ProtocolError('protocol', '', encoded, false);
  const kind = (m[1] in classes ? m[1] : 'protocol') as ErrorKind;
  const code = m[2];
  const message = kind === 'broker' ? `${code}: ${m[4]}` : m[4];
  return new classes[kind](kind, code, message, m[3] === '1');
}

/** Turns whatever the native addon threw into a {@link SluiceError}. */
export function toSluiceError(e: unknown): SluiceError {
  if (e instanceof SluiceError) return e;
  if (e instanceof Error) {
    if (e.message.startsWith('sluice:')) {
      const err = fromEncoded(e.message);
      return err;
    }
    // napi-rs rejects arguments of the wrong type before any Rust code runs.
    const code = (e as { code?: unknown }).code;
    if (code === 'InvalidArg' || code === 'NumberExpected' || code === 'StringExpected' || e instanceof TypeError) {
      return new InvalidInputError('invalid_input', '', e.message, false);
    }
    return new ProtocolError('protocol', '', e.message, false);
  }
  return new ProtocolError('protocol', '', String(e), false);
}

/** The promise, with its rejection turned into a {@link SluiceError}. */
export function wrap<T>(p: Promise<T>): Promise<T> {
  return p.catch((e: unknown) => {
    throw toSluiceError(e);
  });
}

/** Runs a synchronous native call, turning its exception into a {@link SluiceError}. */
export function sync<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw toSluiceError(e);
  }
}

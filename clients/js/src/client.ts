// createHeraldClient: graphql-ws with Herald's resume and credentials built in.
//
// Resume. Herald puts each subscription event's log position in
// extensions.cursor; a subscription given a cursor as its `after` argument
// replays what followed it, then goes on live, with no gap and no duplicate.
// graphql-ws (6.x) reconnects by itself and then sends `subscribe` again for
// every active subscription, serializing the very payload object it was
// given (dist/client.js keeps `payload` in subscribe()'s closure). So each
// subscription here owns its payload and writes every cursor it receives
// into the variable its `after` argument takes (see document.ts) before the
// result reaches the application: whatever connection comes next resumes
// from the last result delivered. Herald sends no position before a
// subscription's first event: one started from now that has received none
// has no cursor, and starts from now again after a reconnect (the README
// says so; subscribeAfter(resumeCursor) covers that window). Resubscribes
// Herald refuses for the socket's subscribe rate (RATE_LIMITED, as when a
// reconnect sends them all at once) are sent again after the wait it asks
// for (see rateLimitedWait).
//
// Mutations go out once. graphql-ws also sends a query or a mutation again
// on every reconnect, until it has its answer. A mutation that reached the
// server, and whose answer the lost connection took with it, would then be
// applied twice. So a mutation (or an operation whose kind the document does
// not say) is sent again only if it was never sent: once graphql-ws has
// written it to a socket, a loss it reports before the answer ends the
// operation with an OutcomeUnknownError, before graphql-ws reconnects.
// Queries and subscriptions change nothing on the server and are sent again.
//
// Credentials. graphql-ws calls connectionParams on every connect, so the
// token is asked for (getToken) on every connect: a socket Herald closes
// because its token expired (4403, within a second of `exp`) reconnects
// with the new one, and its subscriptions resume from their cursors. A call
// that does not answer within getTokenTimeout counts as failed, and callers
// that need a token while a call is in flight share it (mergedToken).
//
// Back-off. graphql-ws starts its retry count over at every ack; the client
// keeps its own, which starts over only once a connection has stayed up
// (RETRY_RESET_AFTER): a server that acknowledges and closes at once is
// reconnected to ever more slowly, as one that refuses connects is.
import { createClient, type Client, type ClientOptions, type EventListener, type Event, type Sink } from 'graphql-ws';
import { print, type DocumentNode, type FormattedExecutionResult, type GraphQLFormattedError } from 'graphql';
import { operationKind, prepareOperation, type OperationKind, type PreparedOperation } from './document.js';
import { createWatchdog } from './liveness.js';

/** A token, or nothing for an anonymous connection. */
export type Token = string | null | undefined;

export interface HeraldClientOptions {
  /**
   * Herald's GraphQL endpoint: `ws://host/graphql` or `wss://…` (`http:` and
   * `https:` are turned into `ws:` and `wss:`).
   */
  url: string;
  /** A fixed token (`--auth jwt`), sent as `Authorization: Bearer <token>` in `connection_init`. */
  token?: Token;
  /**
   * Called on every connect (and by HeraldLink for every HTTP request); its
   * token is sent instead of `token`. Return a fresh token: Herald closes a
   * socket whose token expires, and the client reconnects with what this
   * returns. Calls are merged: whoever needs a token while a call is in
   * flight shares its outcome (token, failure or timeout); the next need
   * after it settled calls again. No token is kept beyond its call.
   */
  getToken?: () => Token | Promise<Token>;
  /**
   * How long (ms) a getToken call (or a connectionParams call) may take
   * before it counts as failed (a refresh request that hangs): the connect
   * is then given up on as when getToken rejects (close 4503, retried with
   * back-off), and a HeraldLink HTTP operation fails with an Error saying
   * so. It counts from the call: a caller that joined a call in flight
   * fails with it. Default 10 000; 0 or Infinity: no limit. A call that
   * answers later is ignored.
   */
  getTokenTimeout?: number;
  /** `--auth dev` only: the user to act as (`user` in `connection_init`, `X-Herald-User` over HTTP). */
  user?: string;
  /**
   * More `connection_init` payload; the credentials above are added to it.
   * A function is called on every connect, at the same time as getToken,
   * and bounded by getTokenTimeout as getToken is.
   */
  connectionParams?: Record<string, unknown> | (() => Record<string, unknown> | Promise<Record<string, unknown>>);
  /** A WebSocket class where there is no global one (Node.js before 22: the `ws` package). */
  webSocketImpl?: unknown;
  /** Reconnect attempts in a row before giving up; default Infinity. */
  retryAttempts?: number;
  /**
   * Waits before reconnect attempt `retries` (0, 1, …); default a random
   * 0.5–1.5 × min(300 ms × 2^retries, 10 s). `retries` counts the waits
   * since a connection last stayed up for retryResetAfter ms. If it throws,
   * the error is reported and the default waits instead.
   */
  retryWait?: (retries: number) => Promise<void>;
  /**
   * How long (ms) a connection must stay up after its connection_ack for
   * the back-off to start over (retryWait(0) after its loss); one that ends
   * sooner counts as a failed attempt, so a server that acknowledges and
   * closes at once is reconnected to ever more slowly. Default 5 000; 0:
   * every ack starts it over (graphql-ws's own way); Infinity: never.
   */
  retryResetAfter?: number;
  /**
   * Called when a subscription's cursor can no longer be resumed from
   * (CURSOR_EXPIRED: older than the room's retained history, or from an
   * earlier incarnation of the log). Refetch what you show there; return a
   * cursor to subscribe after it (the `resumeCursor` of the connection you
   * just refetched, e.g. `messages { resumeCursor }`), or nothing to
   * subscribe from now. Without it the subscription fails with the errors.
   * A subscribe option of the same name wins.
   */
  onCursorExpired?: CursorExpiredHandler;
  /**
   * Dead-connection detection: after this many ms with nothing received
   * from the server, the client pings it; default 20 000. Herald pings
   * every socket every 15 s (--ws-ping-interval), so against a default
   * Herald a healthy socket never needs the client's ping. 0 or Infinity
   * turns detection off (a silently dead socket then stalls until the
   * operating system gives up on it).
   */
  pingInterval?: number;
  /**
   * How long (ms) after its ping the client waits for anything from the
   * server before it closes the socket as dead (4408, Request Timeout) and
   * reconnects, every subscription resuming from its cursor; default 10 000.
   * A dead socket is noticed at most pingInterval + pongTimeout after the
   * last thing heard.
   */
  pongTimeout?: number;
  /** graphql-ws listeners (connecting, connected, closed, …); what one throws is reported and goes no further. */
  on?: Partial<{ [E in Event]: EventListener<E> }>;
  /** Any other graphql-ws option; those above win. */
  graphqlWs?: Partial<ClientOptions>;
}

export type CursorExpiredHandler = (errors: readonly GraphQLFormattedError[]) => Token | Promise<Token>;

/** A GraphQL operation as graphql-ws sends it; query may be a parsed document. */
export interface HeraldRequest {
  query: string | DocumentNode;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
  extensions?: Record<string, unknown> | null;
}

export interface SubscribeOptions {
  /**
   * Start after this cursor: replay what followed it, then go on live. For a
   * hand-over from a page rendered from a query, pass the `resumeCursor` of
   * the connection the query read (`messages { resumeCursor }` for
   * messagePosted and roomEvents, `rooms { resumeCursor }` for roomCreated):
   * set even for an empty list, and nothing the page showed is replayed.
   * null or undefined: start from now (or from the `after` variable given).
   */
  after?: Token;
  /** false: send the operation as it is, never adding or updating `after`. */
  resume?: boolean;
  onCursorExpired?: CursorExpiredHandler;
}

/** Ends the subscription; `cursor` is the last cursor it received (or started after). */
export interface Unsubscribe {
  (): void;
  readonly cursor: string | null;
}

export type Result<Data = Record<string, unknown>> = FormattedExecutionResult<Data, Record<string, unknown>>;

/**
 * A mutation's connection was lost after the mutation was sent and before
 * its answer came: the server may or may not have applied it. The client
 * does not send it again (graphql-ws would, on the next connection, and a
 * mutation that was applied would be applied twice). Retry it yourself if
 * that is safe, e.g. with the same idempotency key (postMessage's
 * `idempotencyKey`: a retry within two minutes is stored once and answers
 * with the first post), or look at the data to see whether it was applied.
 */
export class OutcomeUnknownError extends Error {
  override readonly name = 'OutcomeUnknownError';
  /** Always 'OUTCOME_UNKNOWN'. */
  readonly code = 'OUTCOME_UNKNOWN';
  /** The operation's kind: 'mutation', or null for a document that selects no operation. */
  readonly operation: OperationKind | null;
  readonly operationName: string | null;
  /** cause: what graphql-ws reported (the close event, or the error). */
  constructor(operation: OperationKind | null, operationName: string | null, cause: unknown) {
    const what = `${operation ?? 'operation'}${operationName ? ` ${operationName}` : ''}`;
    const how = isLikeClose(cause) ? ` (close ${cause.code}${cause.reason ? ` ${cause.reason}` : ''})` : '';
    super(`@heraldhq/client: the connection was lost${how} after the ${what} was sent and before its answer came, ` +
      'so whether the server applied it is unknown; it was not sent again', { cause });
    this.operation = operation;
    this.operationName = operationName;
  }
}

function isLikeClose(v: unknown): v is { code: number; reason?: string } {
  return typeof v === 'object' && v !== null && typeof (v as { code?: unknown }).code === 'number';
}

export interface HeraldClient {
  /**
   * Runs an operation over the socket. A subscription resumes from its last
   * cursor after every reconnect (one started from now that has received no
   * event yet has none, and starts from now again: use subscribeAfter with a
   * query's resumeCursor to cover that), and a query in flight is sent again; a
   * mutation is never sent twice: if the connection is lost after it was
   * sent and before its answer, it fails with an OutcomeUnknownError. Never
   * throws: a request that cannot be sent (a query that does not parse, a
   * cursor for an operation that cannot take one) fails through the sink's
   * `error`, after subscribe has returned, and nothing is sent.
   */
  subscribe<Data = Record<string, unknown>>(request: HeraldRequest, sink: Sink<Result<Data>>, options?: SubscribeOptions): Unsubscribe;
  /** subscribe(request, sink, { ...options, after: cursor }). */
  subscribeAfter<Data = Record<string, unknown>>(cursor: Token, request: HeraldRequest, sink: Sink<Result<Data>>,
    options?: Omit<SubscribeOptions, 'after'>): Unsubscribe;
  /**
   * The headers that carry this client's credentials over HTTP
   * (`Authorization`, or `X-Herald-User` with `user`); calls getToken.
   */
  httpHeaders(): Promise<Record<string, string>>;
  /** Listens to graphql-ws events (connecting, connected, closed, …); what a listener throws is reported and goes no further. */
  on: Client['on'];
  /**
   * Closes the socket; active subscriptions complete. Between two connects
   * it ends the wait at once; during a connect (socket opening, getToken
   * pending, no ack yet) it closes that socket. It connects no more, and a
   * subscribe after it fails at once. Returns at once; never rejects. A
   * socket of the ws package whose close handshake has not ended within
   * min(pongTimeout, 1 s) (a stalled connection) is then dropped, so that
   * it keeps no Node.js process alive.
   */
  dispose(): Promise<void>;
  /**
   * Closes the socket at once, as if it had dropped (graphql-ws terminate):
   * its close (4499, Terminated) is reported at once, the client reconnects
   * and every subscription resumes from its cursor. Whatever the old socket
   * still delivers (a stalled connection's late frames) is ignored.
   */
  terminate(): void;
  /** The graphql-ws client underneath. */
  readonly graphqlWs: Client;
}

const isCursorExpired = (errors: unknown): errors is readonly GraphQLFormattedError[] =>
  Array.isArray(errors) && errors.some((e) => (e as GraphQLFormattedError)?.extensions?.code === 'CURSOR_EXPIRED');

/**
 * The wait (ms) before starting a subscription again that Herald refused
 * with RATE_LIMITED (too many operations started on the socket, as when a
 * reconnect sends every subscription again at once), or undefined for any
 * other errors. Herald says how long in extensions.retryAfter (seconds);
 * the wait is that, between RATE_LIMITED_MIN_WAIT and RATE_LIMITED_MAX_WAIT
 * (RATE_LIMITED_DEFAULT_WAIT without one), plus up to half of it again
 * (at least RATE_LIMITED_MIN_WAIT) at random, so the subscriptions refused
 * together do not all come back at the same moment.
 */
function rateLimitedWait(errors: unknown): number | undefined {
  if (!Array.isArray(errors)) return undefined;
  const error = errors.find((e) => (e as GraphQLFormattedError)?.extensions?.code === 'RATE_LIMITED') as GraphQLFormattedError | undefined;
  if (!error) return undefined;
  const after = error.extensions?.retryAfter;
  const asked = typeof after === 'number' && Number.isFinite(after) && after >= 0 ? after * 1000 : RATE_LIMITED_DEFAULT_WAIT;
  const wait = Math.min(Math.max(asked, RATE_LIMITED_MIN_WAIT), RATE_LIMITED_MAX_WAIT);
  return wait + Math.random() * Math.max(wait / 2, RATE_LIMITED_MIN_WAIT);
}
/** Bounds (ms) of the wait after RATE_LIMITED (see rateLimitedWait), and the wait when Herald gives none. */
const RATE_LIMITED_MIN_WAIT = 50;
const RATE_LIMITED_MAX_WAIT = 5_000;
const RATE_LIMITED_DEFAULT_WAIT = 1_000;

const backoffDelay = (retries: number) => Math.min(300 * 2 ** retries, 10_000) * (0.5 + Math.random());

/** The default retryWait: jittered exponential back-off, 150 ms to 15 s. */
export async function backoff(retries: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, backoffDelay(retries)));
}

/**
 * p, or nothing as soon as signal aborts (dispose): a client disposed of
 * while it waits to reconnect neither keeps waiting nor reconnects. The
 * listener is removed either way, so waits do not pile up on the signal.
 */
function unlessAborted(signal: AbortSignal, p: Promise<void>, onAbort?: () => void): Promise<void> {
  if (signal.aborted) {
    onAbort?.();
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const abort = () => {
      onAbort?.();
      resolve();
    };
    signal.addEventListener('abort', abort, { once: true });
    p.then(
      () => { signal.removeEventListener('abort', abort); resolve(); },
      (err) => { signal.removeEventListener('abort', abort); reject(err); },
    );
  });
}

/**
 * onCursorExpired calls in a row, with no result in between, before a
 * subscription whose cursor expires again fails with the errors: a handler
 * answering with a cursor that has itself expired (from a cache) would
 * otherwise have the client resubscribe and refetch as fast as it can.
 */
const CURSOR_EXPIRED_CALLS = 3;

/**
 * Reports an error thrown by the application's code (its sink, its
 * retryWait) that the client goes on after. What a sink throws, left to
 * graphql-ws, would close the socket with 4004 (Bad response) and
 * reconnect; that close event, arriving once the close handshake is over,
 * could land on the next connect, which graphql-ws then gives up on as
 * fatal: every subscription would fail for one handler's bug. Reported as
 * an uncaught error where the platform can (reportError: window.onerror,
 * error monitoring), else on the console; the subscription goes on.
 */
function reportAppError(err: unknown, what = 'a subscription\'s sink threw'): void {
  const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (typeof report === 'function') {
    try {
      report(err);
      return;
    } catch {
      // fall back to the console
    }
  }
  console.error(`@heraldhq/client: ${what}`, err);
}

/** Calls the application's sink; what it throws goes to reportAppError, never to graphql-ws. */
function guarded<T>(sink: Sink<T>): Sink<T> {
  return {
    next(value) { try { sink.next(value); } catch (err) { reportAppError(err); } },
    error(err) { try { sink.error(err); } catch (e) { reportAppError(e); } },
    complete() { try { sink.complete(); } catch (err) { reportAppError(err); } },
  };
}

/** An operation's payload as the client builds it (see subscribe). */
interface OperationPayload {
  query: string;
  variables: Record<string, unknown>;
  operationName?: string;
  extensions?: Record<string, unknown>;
}

// What graphql-ws is given for one operation, in place of the
// subscription's own sink and payload: each holds them only until it is
// released, once graphql-ws has been told to stop the operation.
//
// graphql-ws keeps an operation's sink and payload until the operation is
// done, and an operation stopped while the client waits to reconnect (the
// network down, a token Herald refuses with 4403 again and again) is done
// only once a connect is acknowledged: its retry loop awaits the connect
// before it looks at whether it was stopped. Given them directly, every
// subscription stopped during an outage would keep its payload and the
// application's sink (and all the sink holds: a component, a room's
// messages) for as long as the outage lasts. Released, what graphql-ws
// still holds is an empty shell, which it neither sends (it sends nothing
// for an operation it was told to stop) nor delivers to.
//
// Classes of the module, not closures made in subscribe(): a closure keeps
// the whole scope it was made in (the sink among it) alive.

/** The sink graphql-ws delivers an operation's results to; forwards until released. */
class LeasedSink<T> implements Sink<T> {
  private held: Sink<T> | undefined;
  constructor(sink: Sink<T>) {
    this.held = sink;
  }
  next(value: T): void { this.held?.next(value); }
  error(err: unknown): void { this.held?.error(err); }
  complete(): void { this.held?.complete(); }
  release(): void { this.held = undefined; }
}

/**
 * The payload graphql-ws sends: graphql-ws checks its fields (query,
 * variables, …) and serializes it (toJSON), on the first connection and on
 * every reconnect, reading the subscription's own payload each time, so the
 * cursor written into its variables goes out. onSend is told when it is
 * serialized to be sent (JSON.stringify calls toJSON with the key
 * 'payload'): a mutation's is watched for a loss from then on.
 */
class LeasedPayload {
  private held: OperationPayload | undefined;
  private onSend: (() => void) | undefined;
  constructor(payload: OperationPayload, onSend?: () => void) {
    this.held = payload;
    this.onSend = onSend;
  }
  get query(): string { return this.held?.query ?? ''; }
  get variables(): Record<string, unknown> | undefined { return this.held?.variables; }
  get operationName(): string | undefined { return this.held?.operationName; }
  get extensions(): Record<string, unknown> | undefined { return this.held?.extensions; }
  toJSON(key: string): OperationPayload | undefined {
    if (key === 'payload') this.onSend?.();
    return this.held;
  }
  release(): void {
    this.held = undefined;
    this.onSend = undefined;
  }
}

/**
 * An application's graphql-ws listener (`on` option, client.on): what it
 * throws is reported (reportAppError) and goes no further. graphql-ws calls
 * its listeners in a row with its own after them, unguarded: a `closed`
 * listener that threw would keep graphql-ws from ever hearing of the close
 * (no reconnect, every subscription stalled for good, and on Node.js an
 * uncaught exception); one of `opened`, `connected`, `message`, `ping` or
 * `pong` would have it close the socket (4005, 4004) as if the server had
 * misbehaved; one of `connecting` would leave the connect pending for ever.
 */
function guardedListener<E extends Event>(event: E, listener: EventListener<E>): EventListener<E> {
  if (typeof listener !== 'function') return listener;
  return ((...args: unknown[]) => {
    try {
      (listener as (...a: unknown[]) => void)(...args);
    } catch (err) {
      reportAppError(err, `a '${event}' listener threw`);
    }
  }) as EventListener<E>;
}

function guardedListeners(on: HeraldClientOptions['on']): HeraldClientOptions['on'] {
  if (!on) return on;
  const guarded: Partial<{ [E in Event]: EventListener<E> }> = {};
  for (const [event, listener] of Object.entries(on) as [Event, EventListener<Event>][]) {
    (guarded as Record<string, unknown>)[event] = guardedListener(event, listener);
  }
  return guarded;
}

/** Half of a UTF-16 surrogate pair, alone (a string cut in the middle of an emoji). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The payload as it will be sent (a JSON copy), or what makes it impossible
 * to send: JSON cannot serialize it (a BigInt, a cycle), which graphql-ws
 * would find only as it sends, inside a retry loop that shouldRetry
 * (() => true) turns into a hang, no timer ever running again; or a string
 * holds a lone surrogate, which Herald answers by closing the whole socket
 * with 4400, fatal to every subscription on it.
 */
function sendable<T extends Record<string, unknown>>(payload: T): T {
  return JSON.parse(JSON.stringify(payload, (key, value) => {
    if (LONE_SURROGATE.test(key) || (typeof value === 'string' && LONE_SURROGATE.test(value))) {
      throw new TypeError('@heraldhq/client: the request holds half of a UTF-16 surrogate pair alone ' +
        '(a string cut in the middle of a character, such as an emoji), which Herald refuses by closing the socket; it was not sent');
    }
    return value;
  })) as T;
}

/** Close code of a connect given up because getToken or connectionParams failed; graphql-ws retries it. */
const CLOSE_CREDENTIALS_FAILED = 4503;

function closeReason(prefix: string, err: unknown): string {
  const reason = `${prefix}: ${err instanceof Error ? err.message : String(err)}`;
  return new TextEncoder().encode(reason).length <= 123 ? reason : prefix; // a close reason's limit
}

/** A socket that opens no connection and reports a close (code, reason) at once. */
class ClosingSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readonly readyState = 3;
  readonly protocol = '';
  onopen: unknown = null;
  onmessage: unknown = null;
  onerror: unknown = null;
  onclose: ((event: { code: number; reason: string; wasClean: boolean }) => void) | null = null;
  constructor(code: number, reason: string) {
    setTimeout(() => this.onclose?.({ code, reason, wasClean: false }), 0);
  }
  send(): void {}
  close(): void {}
}

/**
 * Stands in where there is no WebSocket (a server rendering a page on
 * Node.js 20, which has no global one): queries and mutations still go
 * over HTTP through HeraldLink, and a subscription fails at once with close
 * code 4005, which graphql-ws does not retry, instead of the client failing
 * to be created.
 */
class MissingWebSocket extends ClosingSocket {
  constructor() {
    super(4005, 'no WebSocket here: pass webSocketImpl (e.g. the ws package on Node.js 20)');
  }
}

/**
 * Close code 1000 from the server, while operations run: graphql-ws
 * reconnects at once, without retryWait, and a server (or a proxy) that
 * closes every connection with 1000 right away (after the ack, or after the
 * subscribe) would be reconnected to hundreds of times a second, by every
 * client at once. The client waits retryWait before such a reconnect, as
 * graphql-ws does after any other loss.
 */
const CLOSE_NORMAL = 1000;

/** What the client needs of a WebSocket it created. */
interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onclose?: unknown;
  onerror?: unknown;
  onmessage?: unknown;
  /** The ws package's: drops the TCP connection at once, with no close handshake. */
  terminate?: unknown;
}

/** pingInterval and pongTimeout by default (ms); see HeraldClientOptions and liveness.ts. */
const PING_INTERVAL = 20_000;
const PONG_TIMEOUT = 10_000;
/** getTokenTimeout by default (ms). */
const GET_TOKEN_TIMEOUT = 10_000;

/**
 * retryResetAfter by default (ms): how long a connection must stay up
 * after its connection_ack before the back-off starts over.
 *
 * graphql-ws starts its retry count over (retryWait(0)) at every ack. A
 * server or proxy that acknowledges and then closes at once with a code it
 * retries (Herald's 1013 when it cannot take the connection; 4403 for a
 * token that expires within the second, as from a cache that hands out a
 * token about to expire; a proxy's 1001 or 1012; 1006 from a proxy that
 * drops the connection) would have it reconnect after the shortest wait
 * every time, about 3 connects a second from every client, for ever. So the client keeps its own count: every
 * reconnect wait counts, a connection that ends sooner than this after its
 * ack counts as a failed attempt, and only one that stayed up at least
 * this long starts the count over. A connection lasting this long is
 * itself a bound: a server that closes every connection, however late,
 * gets at most one connect per retryResetAfter from a client. 5 s is well
 * past how long a server takes to close a connection it will not keep
 * (Herald's token-expiry close comes within a second of `exp`), and short
 * enough that a healthy connection lost later (a deploy, a network change)
 * is reconnected to after the shortest wait.
 */
const RETRY_RESET_AFTER = 5_000;
/** setTimeout's limit (ms); a longer delay would fire at once. */
const MAX_DELAY = 2 ** 31 - 1;

/**
 * Close code of a socket given up on as dead: 4408 (Request Timeout), as in
 * graphql-ws's recipe for ping timeouts; graphql-ws retries it.
 */
const CLOSE_DEAD = 4408;
const CLOSE_DEAD_REASON = 'Request Timeout';

/**
 * How long (ms, at most: pongTimeout if shorter) a socket closed by
 * dispose() may wait for its close handshake before it is dropped
 * (dropIfLingering).
 */
const DISPOSE_CLOSE_WAIT = 1_000;

/** Close code of a socket terminate() drops: graphql-ws's own for terminate(), which it retries. */
const CLOSE_TERMINATED = 4499;
const CLOSE_TERMINATED_REASON = 'Terminated';

function duration(name: string, value: number | undefined, fallback: number, off: boolean): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (!off && (value === 0 || value === Infinity))) {
    throw new RangeError(`@heraldhq/client: ${name} must be a ${off ? 'non-negative' : 'positive, finite'} number of milliseconds, got ${String(value)}`);
  }
  return value;
}

/**
 * The WebSocket class, telling onSocket of every socket made with it: the
 * only way to reach a socket graphql-ws is still opening. Anything but a
 * class is left for graphql-ws to refuse.
 *
 * A socket of the ws package (Node.js) is an EventEmitter, which throws an
 * 'error' event nobody listens to: graphql-ws's terminate() stops listening
 * (onerror = null) to a socket it then closes, and ws fails one still
 * opening with an error event, which would crash the process. Each such
 * socket gets a listener that ignores errors; graphql-ws still hears them
 * through onerror while it listens.
 *
 * A constructor that throws (a relative url on Node.js, a fragment, a ws:
 * url from an https: page) is answered with a socket closing with 4005,
 * which graphql-ws does not retry: its connect, which nothing catches,
 * would otherwise reject unhandled and never settle, leaving the sink
 * without an error and dispose() waiting for ever.
 */
function tracking(impl: unknown, onSocket: (socket: SocketLike) => void, standIn: () => SocketLike | undefined): unknown {
  if (typeof impl !== 'function') return impl;
  return new Proxy(impl, {
    construct(target, args) {
      const instead = standIn();
      if (instead) return instead;
      let socket: SocketLike & { on?: unknown };
      try {
        socket = Reflect.construct(target, args) as SocketLike & { on?: unknown };
      } catch (err) {
        return new ClosingSocket(4005, closeReason('cannot open a WebSocket', err));
      }
      if (typeof socket.on === 'function') (socket.on as (e: string, l: () => void) => void).call(socket, 'error', () => {});
      onSocket(socket);
      return socket;
    },
  });
}

/** A call to the application's code (getToken, connectionParams), bounded in time (see bounded). */
interface Bounded<T> {
  readonly answer: Promise<T>;
  /** Nobody waits for it any more: its timer is cleared, none is left behind. */
  cancel(): void;
}

/**
 * call's answer, or a failure once it has not answered within ms (0 or
 * Infinity: no limit). A getToken (or connectionParams) that never settles,
 * a refresh request that hangs, would otherwise hold a HeraldLink HTTP
 * operation for ever, and every connect (each retry calls it again) until
 * Herald gives up on connection_init. What it answers after that is
 * ignored; its timer is cleared as soon as the call settles.
 */
function bounded<T>(name: string, call: () => T | Promise<T>, ms: number): Bounded<T> {
  const asked = new Promise<T>((resolve) => resolve(call())); // a synchronous throw rejects
  if (!(ms > 0 && ms !== Infinity)) return { answer: asked, cancel: () => {} };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const answer = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`@heraldhq/client: ${name} did not answer within ${ms} ms (getTokenTimeout)`)),
      Math.min(ms, MAX_DELAY));
    asked.then(
      (value) => { clearTimeout(timer); resolve(value); },
      (err) => { clearTimeout(timer); reject(err); },
    );
  });
  answer.catch(() => {}); // a timeout nobody waits for any more is no unhandled rejection
  return { answer, cancel: () => clearTimeout(timer) };
}

/** The abort reason of a connect's wait for getToken when its socket closed (see connectionParams). */
const CONNECT_ENDED = Symbol('connect ended');

const disposedWhile = (name: string) => new Error(`@heraldhq/client: disposed of while ${name} ran`);

/**
 * p, or a failure as soon as signal aborts (dispose, for a connect's call):
 * a connect disposed of stops waiting for the application's code.
 * onAbort runs once the wait is given up.
 */
function unlessDisposed<T>(name: string, p: Promise<T>, signal: AbortSignal | undefined, onAbort?: () => void): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const aborted = () => {
      onAbort?.();
      reject(disposedWhile(name));
    };
    if (signal.aborted) return aborted();
    signal.addEventListener('abort', aborted, { once: true });
    p.then(
      (value) => { signal.removeEventListener('abort', aborted); resolve(value); },
      (err) => { signal.removeEventListener('abort', aborted); reject(err); },
    );
  });
}

/**
 * getToken, merged and bounded: what the client calls instead of it. A
 * connect and HeraldLink's HTTP operations often need a token at the same
 * moment (a page that subscribes and queries as it loads, every operation
 * after a token expired); each calling getToken would start a refresh of
 * its own when the application's cached token has expired. So a caller
 * that asks while a call is in flight shares that call's outcome: its
 * token, its failure, or its timeout (getTokenTimeout counts from the
 * call, so a caller that joined late may wait less). Once the call has
 * settled, the next caller calls getToken again: no token is kept beyond
 * its call, so how fresh a token is stays the application's to decide. A
 * caller that stops waiting (a connect disposed of) leaves the call to the
 * others; once none waits, the call is given up (its timer cleared) and
 * the next caller calls afresh.
 */
function mergedToken(getToken: () => Token | Promise<Token>, ms: number): (signal?: AbortSignal) => Promise<Token> {
  let inFlight: (Bounded<Token> & { waiting: number }) | undefined;
  return (signal) => {
    if (signal?.aborted) return Promise.reject(disposedWhile('getToken'));
    if (!inFlight) {
      const call = { ...bounded('getToken', getToken, ms), waiting: 0 };
      inFlight = call;
      // Registered before any caller's: a caller that asks again as it
      // hears the outcome (a connect retried at once) makes a new call.
      const settled = () => { if (inFlight === call) inFlight = undefined; };
      call.answer.then(settled, settled);
    }
    const call = inFlight;
    call.waiting++;
    return unlessDisposed('getToken', call.answer, signal, () => {
      // A connect whose socket closed stops waiting, but leaves the call
      // for the next connect to join (a refresh slower than the server's
      // init timeout still gets a connect through).
      if (--call.waiting > 0 || signal?.reason === CONNECT_ENDED) return;
      call.cancel();
      if (inFlight === call) inFlight = undefined;
    });
  };
}

function wsURL(url: string): string {
  return url.replace(/^http(s?):/i, 'ws$1:');
}

export function createHeraldClient(options: HeraldClientOptions): HeraldClient {
  const getTokenTimeout = duration('getTokenTimeout', options.getTokenTimeout, GET_TOKEN_TIMEOUT, true);
  // signal: a connect's call, which dispose() ends (see mergedToken).
  const askToken = options.getToken ? mergedToken(options.getToken, getTokenTimeout) : undefined;
  const credentials = async (signal?: AbortSignal): Promise<{ token: Token; user?: string }> => ({
    token: askToken ? await askToken(signal) : options.token,
    user: options.user,
  });

  // Aborted by dispose: ends a wait to reconnect at once.
  const disposal = new AbortController();
  // The application's connectionParams, for a connect: bounded as getToken
  // is (it may well fetch a token itself), and ended by dispose. Each
  // connect calls it once, so there is nothing to merge.
  const extraParams = async (signal: AbortSignal): Promise<Record<string, unknown> | undefined> => {
    const extra = options.connectionParams;
    if (typeof extra !== 'function') return extra;
    const call = bounded('connectionParams', extra, getTokenTimeout);
    return unlessDisposed('connectionParams', call.answer, signal, call.cancel);
  };
  const defaultWait = (retries: number): Promise<void> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<void>((resolve) => { timer = setTimeout(resolve, backoffDelay(retries)); });
    return unlessAborted(disposal.signal, waited, () => clearTimeout(timer));
  };
  // Never rejects: graphql-ws awaits retryWait where nothing catches, so
  // one that threw would leave the connect pending for ever (every
  // subscription stalled, dispose() too) and the rejection unhandled. What
  // the application's retryWait throws is reported, and the default
  // back-off waits instead.
  const retryWait = (retries: number): Promise<void> => {
    const own = options.retryWait;
    if (!own) return defaultWait(retries);
    const waited = new Promise<void>((resolve) => resolve(own(retries)));
    return unlessAborted(disposal.signal, waited).catch((err) => {
      reportAppError(err, 'retryWait threw');
      return defaultWait(retries);
    });
  };
  // Dead-connection detection (liveness.ts): watches the socket graphql-ws
  // uses (from its creation on, so a connect that stalls in a black hole
  // is given up on too) and closes it once it is found dead.
  const pingInterval = duration('pingInterval', options.pingInterval, PING_INTERVAL, true);
  const pongTimeout = duration('pongTimeout', options.pongTimeout, PONG_TIMEOUT, false);
  const watchdog = pingInterval > 0 && pingInterval !== Infinity
    ? createWatchdog<SocketLike>(pingInterval, pongTimeout, (socket) => closeDead(socket))
    : undefined;
  // The socket graphql-ws is about to send connection_init on: it emits
  // `opened` with it, then calls connectionParams.
  let opened: SocketLike | undefined;
  // The last socket graphql-ws created, and the last one acknowledged: one
  // that is not acknowledged is a connect under way, which dispose() ends.
  let latest: SocketLike | undefined;
  let acknowledged: unknown;
  // Sockets the client asked to close (graphql-ws once no operation runs,
  // dispose, the watchdog), as opposed to sockets the server closed.
  const closedHere = new WeakSet<object>();
  // Whether the server closed with 1000 (see CLOSE_NORMAL), and whether
  // graphql-ws called retryWait before the connect under way.
  let waitBeforeConnect = false;
  // The wait before a connect ended with nothing left to run (see url).
  let connectToNothing = false;
  let waitedForConnect = false;
  // graphql-ws's retryWait ended and no connect followed yet (see retryWait).
  let waitLedNowhere = false;
  // The back-off's own count (see RETRY_RESET_AFTER): reconnect waits since
  // a connection last stayed up retryResetAfter ms past its ack, the
  // `retries` each wait is given; and when the socket graphql-ws uses now
  // was acknowledged.
  const retryResetAfter = duration('retryResetAfter', options.retryResetAfter, RETRY_RESET_AFTER, true);
  let retries = 0;
  let ackedAt: number | undefined;
  const reconnectWait = () => retryWait(retries++);

  const ws = createClient({
    ...options.graphqlWs,
    // Called by graphql-ws just before it creates a socket: the wait after
    // the server's 1000 close, which graphql-ws does not make (CLOSE_NORMAL).
    url: async () => {
      const wait = waitBeforeConnect && !waitedForConnect;
      waitBeforeConnect = false;
      waitedForConnect = false;
      if (wait) {
        await reconnectWait();
        // Every subscription stopped during the wait: connect to nothing.
        connectToNothing = active.size === 0;
      }
      return wsURL(options.url);
    },
    webSocketImpl: tracking(options.webSocketImpl ?? options.graphqlWs?.webSocketImpl ??
      (typeof WebSocket === 'undefined' ? MissingWebSocket : WebSocket), (socket) => {
      latest = socket;
      if (!disposal.signal.aborted) watchdog?.watch(socket);
      // What the client closes, it marks. The ws package also calls close()
      // to answer the server's close frame: that one is the server's.
      const close = socket.close;
      socket.close = function (this: SocketLike, ...args: Parameters<SocketLike['close']>) {
        if ((this as { _closeFrameReceived?: unknown })._closeFrameReceived !== true) closedHere.add(this);
        return close.apply(this, args);
      };
    },
    // dispose() ended the wait above, or every subscription stopped during
    // it: graphql-ws creates a socket all the same. This one opens no
    // connection and closes (1000) at once, and graphql-ws, disposed of or
    // with nothing left to run, connects no more.
    () => {
      if (!disposal.signal.aborted && !connectToNothing) return undefined;
      connectToNothing = false;
      return new ClosingSocket(CLOSE_NORMAL, 'Normal Closure');
    }),
    retryAttempts: options.retryAttempts ?? Infinity,
    // graphql-ws's own count starts over at every ack (see RETRY_RESET_AFTER).
    retryWait: async () => {
      // The last wait led to no connect (every operation stopped during it):
      // graphql-ws's `retrying` stays set, and it calls this again before the
      // next operation's connect. That is no reconnect; it connects at once.
      if (waitLedNowhere) {
        waitLedNowhere = false;
        return;
      }
      waitedForConnect = true;
      await reconnectWait();
      waitLedNowhere = true; // cleared by the connect graphql-ws starts now, if any
    },
    // Retry every kind of loss, a refused reconnect (an error event, not a
    // close event) included: the replica may be restarting or draining.
    // graphql-ws still gives up on the fatal close codes (4400, 4401, 4409, …).
    shouldRetry: options.graphqlWs?.shouldRetry ?? (() => true),
    on: guardedListeners(options.on ?? options.graphqlWs?.on),
    connectionParams: async () => {
      const socket = opened;
      // This connect's wait for the application's code ends with dispose,
      // or once its socket has closed or failed (or graphql-ws's terminate()
      // ended it: an event with no socket): with no getTokenTimeout a
      // getToken that never answers would otherwise leave this wait behind
      // at every reconnect: a listener on the dispose signal, and the
      // connect (its socket) held by the call. A late event of an older
      // socket leaves it alone.
      const connect = new AbortController();
      const abort = () => connect.abort();
      disposal.signal.addEventListener('abort', abort, { once: true });
      if (disposal.signal.aborted) abort();
      const ended = (event: unknown) => {
        const target = (event as { target?: unknown } | null | undefined)?.target;
        if (target == null || target === socket) connect.abort(CONNECT_ENDED);
      };
      const offClosed = ws.on('closed', ended);
      const offError = ws.on('error', ended);
      try {
        // Both at once: the connect waits getTokenTimeout at most.
        const [extra, { token, user }] = await Promise.all([extraParams(connect.signal), credentials(connect.signal)]);
        const params: Record<string, unknown> = { ...extra };
        if (user) params.user = user;
        if (token) params.Authorization = `Bearer ${token}`;
        return params;
      } catch (err) {
        // Thrown, graphql-ws would report the error, retry (shouldRetry)
        // and close this socket with 4005; that close event, arriving once
        // the close handshake is over, would land on the next connect,
        // which graphql-ws then gives up on as fatal: every subscription
        // fails. Closed here with a code it retries, the close event is
        // this connect's own end; graphql-ws sends nothing on a socket no
        // longer open.
        if (socket && socket.readyState === 1) socket.close(CLOSE_CREDENTIALS_FAILED, closeReason('credentials failed', err));
        return {};
      } finally {
        disposal.signal.removeEventListener('abort', abort);
        offClosed();
        offError();
      }
    },
  });
  ws.on('connecting', () => { waitLedNowhere = false; });
  ws.on('opened', (socket) => { opened = socket as typeof opened; });
  ws.on('connected', (socket) => {
    acknowledged = socket;
    ackedAt = Date.now();
  });
  // The acknowledged connection ended (closed, or failed): the back-off
  // starts over only if it stayed up long enough. A late event of an older
  // socket (its target) says nothing about this one.
  const connectionEnded = (event: unknown) => {
    if (ackedAt === undefined) return;
    const target = (event as { target?: unknown } | null | undefined)?.target;
    if (target != null && target !== acknowledged) return;
    if (Date.now() - ackedAt >= retryResetAfter) retries = 0;
    ackedAt = undefined;
  };
  ws.on('closed', connectionEnded);
  ws.on('error', connectionEnded);
  ws.on('closed', (event) => {
    const { code, target } = (event ?? {}) as { code?: unknown; target?: unknown };
    if (code !== CLOSE_NORMAL || disposal.signal.aborted || active.size === 0) return;
    if (typeof target === 'object' && target !== null && closedHere.has(target)) return;
    // The server's (CLOSE_NORMAL): should graphql-ws reconnect now, it waits first.
    waitBeforeConnect = true;
  });
  if (watchdog) {
    // Anything graphql-ws reads (its 'message' event: pings, pongs, acks,
    // results) or the socket opening proves it alive. graphql-ws reads
    // only the socket it uses; one it has already closed could still
    // deliver a last frame, which at worst postpones detection once.
    ws.on('opened', () => watchdog.heard());
    ws.on('message', () => watchdog.heard());
    // graphql-ws is done with a socket that closed or failed: it connects
    // anew (a new socket, watched from its creation) or not at all. A late
    // close event of an older socket (its target) leaves the watch alone.
    const done = (event: unknown) => {
      const target = (event as { target?: unknown } | null | undefined)?.target;
      watchdog.stop(target != null && typeof target === 'object' ? target as SocketLike : undefined);
    };
    ws.on('closed', done);
    ws.on('error', done);
    disposal.signal.addEventListener('abort', () => watchdog.stop(), { once: true });
  }

  /**
   * Gives up on a socket the watchdog found dead, the one graphql-ws is
   * using (it has reported no close or error for it). Closing it is not
   * enough: a dead socket's close event waits for a close handshake the
   * server will never answer (30 s with the ws package; browsers have
   * timeouts of their own), and graphql-ws reconnects only once it comes,
   * as graphql-ws's recipe (close(4408) alone) would. So it is dropped
   * (see drop), and graphql-ws retries 4408: every subscription resumes
   * from its cursor.
   */
  function closeDead(socket: SocketLike): void {
    if (socket !== latest || disposal.signal.aborted) return;
    // Not graphql-ws 6's way of listening: its terminate() ends the
    // connect instead (close code 4499, which it retries too).
    if (!drop(socket, CLOSE_DEAD, CLOSE_DEAD_REASON)) ws.terminate();
  }

  /**
   * Drops the socket graphql-ws is using (the watchdog's dead socket,
   * terminate()) and tells graphql-ws at once, through its own handler, as
   * if it had closed with code and reason. graphql-ws stops listening to it
   * first: it keeps an operation's id across reconnects, so frames the old
   * socket still delivers (a stalled connection whose data comes in late)
   * would reach the resumed subscription as duplicates, and its late close
   * event would fail the next connect. Then the socket is closed (the ws
   * package's is dropped at once with its terminate(): its close handshake
   * would keep the process alive for 30 s). false when graphql-ws does not
   * listen to it in graphql-ws 6's way (onclose): no close event was given.
   */
  function drop(socket: SocketLike, code: number, reason: string): boolean {
    const deliver = socket.onclose;
    socket.onclose = null;
    socket.onerror = null;
    socket.onmessage = null;
    try {
      socket.close(code, reason);
    } catch {
      // closing already
    }
    if (typeof socket.terminate === 'function') {
      try {
        (socket.terminate as () => void).call(socket);
      } catch {
        // gone already
      }
    }
    if (typeof deliver !== 'function') return false;
    const event = typeof CloseEvent === 'function'
      ? new CloseEvent('close', { code, reason, wasClean: false })
      : { type: 'close', code, reason, wasClean: false, target: socket };
    (deliver as (e: unknown) => void).call(socket, event);
    return true;
  }

  /**
   * terminate(): graphql-ws's own (a close event 4499 for the connection)
   * stops listening to the socket's close and errors, but not to its
   * messages, and leaves the socket to its close handshake: on a stalled
   * connection, the typical reason to call it, frames the old socket gets
   * late would reach the resumed subscriptions again. So the socket
   * graphql-ws uses (open, opening or closing) is dropped as a dead one is,
   * with 4499 (Terminated), which graphql-ws retries; anything else (no
   * socket yet, one closed already, the wait between two connects) is left
   * to graphql-ws's terminate().
   */
  function terminate(): void {
    const socket = latest;
    if (socket && !disposal.signal.aborted && socket.readyState !== 3 && typeof socket.onclose === 'function') {
      drop(socket, CLOSE_TERMINATED, CLOSE_TERMINATED_REASON);
      return;
    }
    ws.terminate();
  }

  /**
   * After dispose(): the socket closed, whose close handshake a stalled
   * connection never answers. The ws package waits 30 s for it, with a timer
   * that keeps a Node.js process alive that has disposed of its client (a
   * service shutting down, a CLI, a test run). A socket of the ws package
   * (it has terminate()) that has not closed within DISPOSE_CLOSE_WAIT (or
   * pongTimeout, if shorter) is dropped; a healthy connection's handshake
   * takes a round trip. The timer keeps no process alive by itself.
   */
  function dropIfLingering(socket: SocketLike): void {
    if (typeof socket.terminate !== 'function' || socket.readyState === 3) return;
    const timer = setTimeout(() => {
      if (socket.readyState === 3) return;
      try {
        (socket.terminate as () => void).call(socket);
      } catch {
        // gone already
      }
    }, Math.min(pongTimeout, DISPOSE_CLOSE_WAIT));
    (timer as { unref?: () => void }).unref?.();
    const listen = (socket as { addEventListener?: unknown }).addEventListener;
    if (typeof listen === 'function') listen.call(socket, 'close', () => clearTimeout(timer), { once: true });
  }

  // What dispose ends: every subscription still running, and how it ends it.
  const active = new Map<() => void, () => void>();
  // With nothing left running, graphql-ws will not reconnect after the
  // server's 1000: a later subscription connects anew at once, as after
  // the client's own close, without the wait the 1000 asked for.
  const nothingLeft = () => {
    if (active.size === 0) waitBeforeConnect = false;
  };

  /**
   * The operation as it is sent, and the variable its cursor goes in;
   * throws what makes it impossible to send (a query that does not parse,
   * a cursor for an operation that cannot take one).
   */
  function prepare(request: HeraldRequest, opts: SubscribeOptions): PreparedOperation {
    const prepared: PreparedOperation = opts.resume === false
      ? {
        query: typeof request.query === 'string' ? request.query : print(request.query),
        operation: operationKind(request.query, request.operationName),
        cursorVariable: null,
      }
      : prepareOperation(request.query, request.operationName);
    if (opts.after != null && !prepared.cursorVariable) {
      // Starting from now instead would be a silent gap.
      throw new TypeError('@heraldhq/client: a cursor was given, but the operation is not a subscription ' +
        'whose root is one field that takes `after`');
    }
    return prepared;
  }

  function subscribe<Data>(request: HeraldRequest, appSink: Sink<Result<Data>>, opts: SubscribeOptions = {}): Unsubscribe {
    const sink = guarded(appSink);
    let prepared: PreparedOperation;
    let own: { variables?: Record<string, unknown>; extensions?: Record<string, unknown> };
    try {
      prepared = prepare(request, opts);
      own = sendable({ query: prepared.query, operationName: request.operationName,
        variables: request.variables ?? undefined, extensions: request.extensions ?? undefined });
    } catch (err) {
      // Reported as every other failure is (graphql-ws's subscribe never
      // throws): through the sink, once the caller has its unsubscribe,
      // which has nothing to stop. Nothing is sent; no socket is opened.
      // Stopped before that, it reports nothing, as a stopped subscription.
      let stopped = false;
      queueMicrotask(() => { if (!stopped) sink.error(err); });
      return Object.defineProperty(() => { stopped = true; }, 'cursor', { value: null, enumerable: true }) as Unsubscribe;
    }
    const name = prepared.cursorVariable;
    // Sent again after a reconnect (graphql-ws's way): only what changes
    // nothing on the server. A query sent again is answered on the new
    // connection; a mutation could be applied twice. A document that
    // selects no operation (which the server refuses) counts as a mutation.
    const resendable = prepared.operation === 'query' || prepared.operation === 'subscription';
    // The payload graphql-ws re-sends on every reconnect: variables of our own.
    // A copy (see sendable): what the application changes later in the
    // objects it passed is not sent, and cannot make sending throw.
    const variables: Record<string, unknown> = { ...own.variables };
    const payload = {
      query: prepared.query,
      variables,
      ...(request.operationName ? { operationName: request.operationName } : {}),
      ...(own.extensions ? { extensions: own.extensions } : {}),
    };
    let cursor: string | null = null;
    const setCursor = (c: Token) => {
      cursor = typeof c === 'string' ? c : null;
      if (!name) return;
      // null, not left out: left out, the document's default for the
      // variable (if it gives one) would apply instead of "from now".
      variables[name] = cursor;
    };
    if (name) {
      if (opts.after != null) setCursor(opts.after);
      else if (typeof variables[name] === 'string') setCursor(variables[name] as string);
      else if (!(name in variables) && prepared.literalCursor != null) setCursor(prepared.literalCursor);
    }
    const onExpired = opts.onCursorExpired ?? options.onCursorExpired;
    let stopped = false;
    // Releases the current graphql-ws operation, and what it was lent (see start).
    let stop = () => {};
    // The sink has had its complete or error: nothing more reaches it.
    let ended = false;
    // Stops watching for a loss (see start): a mutation that has ended.
    let unwatch = () => {};
    // A mutation sent and not answered yet (see start).
    let unanswered = () => false;
    // The wait before starting again after RATE_LIMITED (see rateLimited).
    let rateLimitTimer: ReturnType<typeof setTimeout> | undefined;
    // Releases the current graphql-ws operation once the frames the socket
    // read with the one being handled are handled too. graphql-ws listens
    // for a few ticks after a release, and releases an operation the server
    // ends (complete, error) even when it was released already: on Node.js,
    // where ws hands over every frame of one read at once, the `complete`
    // read with the `next` whose handler stopped the operation would release
    // it a second time, and a socket's count of operations one short closes
    // it (1000, not reconnected) under the other subscriptions. Released
    // after that `complete`, the operation is done and nothing happens.
    const releaseSoon = () => queueMicrotask(stop);
    const end = (failure?: { error: unknown }) => {
      if (ended) return;
      ended = true;
      clearTimeout(rateLimitTimer);
      rateLimitTimer = undefined;
      unwatch();
      // graphql-ws holds a connection for an operation until it is
      // released: it releases one the server ended (complete, error), but
      // not one it failed on a fatal close (4400, 4409, 1011, …). Never
      // released, that hold would keep every later socket open when the
      // last subscription stops (no lazy close; on Node.js the process
      // would not exit). Releasing an operation already done does nothing.
      // Released soon: end() may run in the handler of a frame (a sink
      // that stops in its `next`, see releaseSoon).
      releaseSoon();
      active.delete(unsubscribe);
      nothingLeft();
      if (failure) sink.error(failure.error);
      else sink.complete();
    };
    // CURSOR_EXPIRED answers since the last result: onCursorExpired calls in a row.
    let expiries = 0;
    const recoverable = (errors: unknown): errors is readonly GraphQLFormattedError[] =>
      !!name && !!onExpired && isCursorExpired(errors) && expiries < CURSOR_EXPIRED_CALLS;

    const start = () => {
      let recovering = false;
      // A mutation: graphql-ws serializes the payload it was given when it
      // sends the operation (JSON.stringify calls toJSON with the key
      // 'payload'), on the first connection and on every reconnect. Sent
      // once, the operation is watched: the first loss graphql-ws reports
      // (a socket closed, or failed) before the answer ends it here, during
      // that report, before graphql-ws can reconnect and send it again.
      let sent = false;
      let answered = false;
      const wire = new LeasedPayload(payload, resendable ? undefined : () => { sent = true; });
      if (!resendable) {
        const lost = (event: unknown) => {
          if (!sent || ended) return;
          // graphql-ws forgets the operation (telling the server only if
          // the socket is still open): it neither sends it again nor
          // reports it any more.
          stop();
          if (answered) end();
          else end({ error: new OutcomeUnknownError(prepared.operation, request.operationName ?? null, event) });
        };
        const offClosed = ws.on('closed', lost);
        const offError = ws.on('error', lost);
        unwatch = () => { offClosed(); offError(); };
        unanswered = () => sent && !answered;
      }
      const leased = new LeasedSink<Result<Data>>({
        next(result) {
          // graphql-ws goes on delivering a batch the socket read at once
          // for a few ticks after its unsubscribe: nothing reaches a sink
          // that stopped, nor moves its cursor past what it had.
          if (stopped || ended) return;
          answered = true;
          if (recoverable(result.errors)) {
            recovering = true;
            recover(result.errors);
            return;
          }
          if (!isCursorExpired(result.errors)) expiries = 0;
          const c = result.extensions?.cursor;
          if (typeof c === 'string') setCursor(c); // before the application sees it
          sink.next(result);
        },
        error(err) {
          // An error read with the frame whose handler unsubscribed (see
          // releaseSoon): the sink stopped, and it completes.
          if (stopped) return end();
          if (recoverable(err)) {
            recovering = true;
            recover(err);
            return;
          }
          const wait = name ? rateLimitedWait(err) : undefined;
          if (wait !== undefined && !stopped && !ended) {
            recovering = true;
            rateLimited(wait);
            return;
          }
          end({ error: err });
        },
        complete() {
          if (recovering) return;
          end();
        },
      });
      const release = ws.subscribe<Data, Record<string, unknown>>(wire, leased);
      // Once graphql-ws has been told to stop the operation, it sends
      // nothing more for it, and what it still delivers is not needed
      // (stopped, ended, or started again): it is lent nothing any more.
      stop = () => {
        release();
        leased.release();
        wire.release();
      };
    };

    // Unsubscribed (or disposed of) at any await below: the subscription
    // has completed already (see unsubscribe), and nothing more happens.
    const recover = async (errors: readonly GraphQLFormattedError[]) => {
      releaseSoon();
      if (stopped) return end();
      setCursor(null);
      // The cursor the last call returned has expired too: back off before
      // refetching again (retryWait, ended at once by dispose).
      if (expiries > 0) {
        await retryWait(expiries - 1);
        if (stopped) return end();
      }
      expiries++;
      let next: Token;
      try {
        next = await onExpired!(errors);
      } catch (err) {
        return end(stopped ? undefined : { error: err });
      }
      if (stopped) return end();
      setCursor(next);
      start();
    };

    /**
     * Herald refused to start the subscription for now (RATE_LIMITED): a
     * reconnect sends every subscription again at once, and those past the
     * socket's subscribe burst are refused. Started again after the wait
     * Herald asked for, from the current cursor (the refused operation
     * delivered nothing), it loses nothing and repeats nothing. While it
     * waits, no graphql-ws operation runs: unsubscribing (or dispose())
     * completes it at once and clears the timer (see end).
     */
    const rateLimited = (wait: number) => {
      releaseSoon();
      rateLimitTimer = setTimeout(() => {
        rateLimitTimer = undefined;
        if (stopped || ended) return;
        start();
      }, wait);
    };

    // The subscription completes here, at once, whatever the connection is
    // doing. graphql-ws would complete it only once its operation is done:
    // a few ticks later on an acknowledged socket (after sending the server
    // `complete`), but while the client waits to reconnect only once a
    // connect is acknowledged again, however long the outage lasts; and
    // while onCursorExpired or the wait after RATE_LIMITED runs, no
    // graphql-ws operation runs to complete it at all. end() releases the
    // operation (releaseSoon): graphql-ws tells the server if the socket is
    // open, and sends nothing for it after a reconnect; what it completes
    // later reaches nothing (end() completes once).
    const unsubscribe = () => {
      stopped = true;
      end();
    };
    // dispose(): a mutation sent and not answered yet is lost in flight (the
    // socket closes under it), and fails as such: completed, it would look
    // answered (or never sent), and whether it was applied is unknown.
    const disposeOf = () => {
      stopped = true;
      if (!unanswered()) return end();
      end({ error: new OutcomeUnknownError(prepared.operation, request.operationName ?? null,
        new Error('@heraldhq/client: the client was disposed of while the operation was in flight')) });
    };
    if (disposal.signal.aborted) {
      // graphql-ws would open a socket that nothing closes and that is never
      // reconnected (a subscription that silently stops resuming), or
      // complete at once as if the server had ended it.
      stopped = true;
      queueMicrotask(() => sink.error(new Error('@heraldhq/client: subscribe() after dispose(); create a new client')));
    } else {
      active.set(unsubscribe, disposeOf);
      start();
    }
    return Object.defineProperty(unsubscribe, 'cursor', { get: () => cursor, enumerable: true }) as Unsubscribe;
  }

  return {
    subscribe,
    subscribeAfter: (cursor, request, sink, opts) => subscribe(request, sink, { ...opts, after: cursor }),
    async httpHeaders() {
      const { token, user } = await credentials();
      const headers: Record<string, string> = {};
      if (user) headers['X-Herald-User'] = user;
      if (token) headers.Authorization = `Bearer ${token}`;
      return headers;
    },
    on: (event, listener) => ws.on(event, guardedListener(event, listener)),
    dispose: async () => {
      // Between two connects, graphql-ws would wait out the back-off, then
      // connect (getToken, every subscription sent again) only to close,
      // and reject if that connect failed. Ending the wait and every
      // subscription first leaves it nothing to connect for; they complete.
      disposal.abort();
      for (const disposeOf of [...active.values()]) disposeOf();
      // graphql-ws closes an acknowledged socket at once, but waits for a
      // connect under way to end first: for ever if the server never
      // answers the upgrade or connection_init, as long as getToken takes
      // (a token refresh in flight at log-out), or until Herald gives up on
      // connection_init (4408, 3 s). That connect is closed here instead;
      // its close ends graphql-ws's wait, and it sends nothing more.
      const disposing = Promise.resolve(ws.dispose()).catch(() => {
        // The connect under way failed or was given up: nothing to close.
      });
      const socket = latest;
      if (socket && socket !== acknowledged && socket.readyState <= 1) {
        try {
          socket.close(1000, 'Normal Closure');
        } catch {
          // already closing
        }
        dropIfLingering(socket);
        return;
      }
      await disposing;
      if (socket) dropIfLingering(socket);
    },
    terminate,
    graphqlWs: ws,
  };
}

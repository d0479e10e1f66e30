// The one module that knows how the browser talks to Herald: queries and
// mutations over HTTP, subscriptions over a WebSocket (graphql-ws) that
// resume from their last cursor after every reconnect, and Server-Sent
// Events (graphql-sse) when no WebSocket gets through. The rest of the app
// sees an Apollo link and a connection state, nothing else.
//
// TODO(@heraldhq/client): when clients/js lands on main, the WebSocket half
// becomes createHeraldClient({ url, getToken }) and its HeraldLink; the SSE
// fallback and the connection state stay here.
import { ApolloLink, HttpLink } from '@apollo/client';
import { CombinedGraphQLErrors } from '@apollo/client/errors';
import { Kind, print, type GraphQLFormattedError, type OperationDefinitionNode } from 'graphql';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { Observable, type Observer } from 'rxjs';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting';
export type TransportKind = 'websocket' | 'sse';
export interface ConnectionStatus { state: ConnectionState; transport: TransportKind }

/** Who the browser acts as: a name (`--auth dev`) or a token (`--auth jwt`). */
export interface Credentials { user?: string | null; token?: string | null }

export interface HeraldTransportOptions {
  /** Herald's GraphQL HTTP URL; the WebSocket URL is derived (http → ws, https → wss). */
  url: string;
  /** Asked before every connection and HTTP request. */
  credentials: () => Promise<Credentials>;
  /**
   * A subscription's cursor is too old to resume from (CURSOR_EXPIRED):
   * what it showed must be read again. Default: reload the page.
   */
  onCursorExpired?: () => void;
  /** Give up on the WebSocket if it is not acknowledged within this time, or after this many failed attempts. */
  wsGiveUpMs?: number;
  wsGiveUpAttempts?: number;
}

export interface HeraldTransport {
  link: ApolloLink;
  status(): ConnectionStatus;
  /** Calls listener on every change of status; returns the unsubscribe. */
  onStatus(listener: (s: ConnectionStatus) => void): () => void;
  dispose(): void;
}

/** Jittered exponential back-off, 250 ms to about 5 s. */
async function backoff(retries: number): Promise<void> {
  const ms = Math.min(250 * 2 ** retries, 4000) * (0.75 + Math.random() / 2);
  await new Promise((resolve) => setTimeout(resolve, ms));
}

export const wsUrlOf = (url: string) => url.replace(/^http(s?):/i, 'ws$1:');

async function headersOf(credentials: () => Promise<Credentials>): Promise<Record<string, string>> {
  const { user, token } = await credentials();
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  else if (user) headers['X-Herald-User'] = user;
  return headers;
}

const isCursorExpired = (errors: unknown): boolean =>
  Array.isArray(errors) && errors.some((e) => (e as GraphQLFormattedError)?.extensions?.code === 'CURSOR_EXPIRED');

function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (Array.isArray(err)) return new CombinedGraphQLErrors({ errors: err as GraphQLFormattedError[] });
  if (err && typeof err === 'object' && 'code' in err && 'reason' in err) {
    const e = err as { code: number; reason: string };
    return new Error(`socket closed with ${e.code} ${e.reason}`);
  }
  return new Error(String(err));
}

/** One subscription the app holds open, whichever transport carries it. */
interface ActiveSubscription {
  /** The payload every (re)subscribe sends; variables.after follows the cursors received. */
  payload: { query: string; variables: Record<string, unknown>; operationName?: string };
  resumable: boolean;
  observer: Observer<ApolloLink.Result>;
  /** Stops the current transport's subscription (and tells its sink to ignore what follows). */
  stop: () => void;
  ended: boolean;
  /** SSE: the attempt number of restarts in a row (a stream ended by the server). */
  restarts: number;
}

export function createHeraldTransport(options: HeraldTransportOptions): HeraldTransport {
  const giveUpMs = options.wsGiveUpMs ?? 5000;
  const giveUpAttempts = options.wsGiveUpAttempts ?? 2;
  const onCursorExpired = options.onCursorExpired ?? (() => window.location.reload());

  let status: ConnectionStatus = { state: 'connecting', transport: 'websocket' };
  const listeners = new Set<(s: ConnectionStatus) => void>();
  const setStatus = (next: Partial<ConnectionStatus>) => {
    const s = { ...status, ...next };
    if (s.state === status.state && s.transport === status.transport) return;
    status = s;
    for (const l of listeners) l(s);
  };

  const active = new Set<ActiveSubscription>();
  let disposed = false;

  // ---- WebSocket ---------------------------------------------------------
  let acknowledged = false; // the socket has reached `connected` once
  let failures = 0; // sockets closed before any was acknowledged
  const ws: WsClient = createWsClient({
    url: wsUrlOf(options.url),
    lazy: false, // the connection state means something before the first subscription
    onNonLazyError: () => {},
    retryAttempts: Infinity,
    shouldRetry: () => true, // a refused reconnect too: the replica may be restarting
    retryWait: backoff,
    connectionParams: async () => {
      const { user, token } = await options.credentials();
      return token ? { Authorization: `Bearer ${token}` } : user ? { user } : {};
    },
    on: {
      connecting: () => { if (status.transport === 'websocket') setStatus({ state: acknowledged ? 'reconnecting' : 'connecting' }); },
      connected: () => {
        acknowledged = true;
        if (status.transport === 'websocket') setStatus({ state: 'connected' });
      },
      closed: () => {
        if (status.transport !== 'websocket' || disposed) return;
        if (acknowledged) setStatus({ state: 'reconnecting' });
        else if (++failures >= giveUpAttempts) fallBackToSse(`${failures} WebSocket attempts failed`);
      },
    },
  });
  const giveUpTimer = setTimeout(() => {
    if (!acknowledged && status.transport === 'websocket') fallBackToSse(`no WebSocket acknowledged within ${giveUpMs} ms`);
  }, giveUpMs);

  // ---- Server-Sent Events -------------------------------------------------
  let sse: SseClient | null = null;
  function fallBackToSse(why: string) {
    if (status.transport === 'sse' || disposed) return;
    console.warn(`herald: falling back to Server-Sent Events (${why})`);
    clearTimeout(giveUpTimer);
    setStatus({ transport: 'sse', state: 'connecting' });
    void ws.dispose();
    sse = createSseClient({
      url: options.url,
      headers: () => headersOf(options.credentials),
      retryAttempts: Infinity,
      retry: backoff,
    });
    for (const sub of active) {
      sub.stop();
      start(sub);
    }
    if (active.size === 0) setStatus({ state: 'connected' });
  }

  // ---- Subscriptions -------------------------------------------------------
  function start(sub: ActiveSubscription) {
    let stopped = false;
    const sink = {
      next(result: ApolloLink.Result & { extensions?: Record<string, unknown> }) {
        if (stopped) return;
        if (sub.resumable && isCursorExpired(result.errors)) {
          sub.stop();
          onCursorExpired();
          return;
        }
        sub.restarts = 0;
        const cursor = result.extensions?.cursor;
        // Before the app sees it: whatever connection comes next resumes after it.
        if (sub.resumable && typeof cursor === 'string') sub.payload.variables.after = cursor;
        sub.observer.next(result);
      },
      error(err: unknown) {
        if (stopped) return;
        stopped = true;
        if (sub.resumable && isCursorExpired(err)) {
          onCursorExpired();
          return;
        }
        sub.ended = true;
        active.delete(sub);
        sub.observer.error(toError(err));
      },
      complete() {
        if (stopped) return;
        stopped = true;
        if (status.transport === 'sse' && !sub.ended) {
          // An event stream the server ended (a draining replica): resume
          // elsewhere from the cursor, as an EventSource would.
          setStatus({ state: 'reconnecting' });
          void backoff(sub.restarts++).then(() => { if (!sub.ended && !disposed) start(sub); });
          return;
        }
        sub.ended = true;
        active.delete(sub);
        sub.observer.complete();
      },
    };
    let stopTransport: () => void;
    if (status.transport === 'websocket') {
      stopTransport = ws.subscribe(sub.payload, sink as never);
    } else {
      stopTransport = sse!.subscribe(sub.payload, sink as never, {
        connecting: (reconnecting) => setStatus({ state: reconnecting ? 'reconnecting' : status.state === 'connected' ? 'connected' : 'connecting' }),
        connected: () => setStatus({ state: 'connected' }),
      });
    }
    sub.stop = () => {
      stopped = true;
      stopTransport();
    };
  }

  const subscriptionLink = new ApolloLink((operation) => new Observable<ApolloLink.Result>((observer) => {
    const def = operation.query.definitions.find((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
    const resumable = !!def?.variableDefinitions?.some((v) => v.variable.name.value === 'after');
    const sub: ActiveSubscription = {
      payload: {
        query: print(operation.query),
        variables: { ...operation.variables }, // ours: the cursor is written into it
        ...(operation.operationName ? { operationName: operation.operationName } : {}),
      },
      resumable,
      observer,
      stop: () => {},
      ended: false,
      restarts: 0,
    };
    if (sub.payload.variables.after == null) delete sub.payload.variables.after;
    active.add(sub);
    start(sub);
    return () => {
      sub.ended = true;
      active.delete(sub);
      sub.stop();
    };
  }));

  const httpLink = new HttpLink({
    uri: options.url,
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      for (const [k, v] of Object.entries(await headersOf(options.credentials))) headers.set(k, v);
      return fetch(input, { ...init, headers });
    },
  });

  const link = ApolloLink.split(({ operationType }) => operationType === 'subscription', subscriptionLink, httpLink);

  return {
    link,
    status: () => status,
    onStatus(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    dispose() {
      disposed = true;
      clearTimeout(giveUpTimer);
      for (const sub of active) { sub.ended = true; sub.stop(); }
      active.clear();
      void ws.dispose();
      sse?.dispose();
    },
  };
}

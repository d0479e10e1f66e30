// The one module that knows how the browser talks to Herald: queries and
// mutations over HTTP and subscriptions over a WebSocket, both through
// @heraldhq/client (createHeraldClient, HeraldLink), whose subscriptions
// resume from their last cursor after every reconnect; and Server-Sent Events
// (graphql-sse) when no WebSocket gets through. The rest of the app sees an
// Apollo link and a connection state, nothing else.
import { ApolloLink } from '@apollo/client';
import { CombinedGraphQLErrors } from '@apollo/client/errors';
import { createHeraldClient, prepareOperation, type HeraldClient, type Unsubscribe } from '@heraldhq/client';
import { HeraldLink } from '@heraldhq/client/apollo';
import { print, type GraphQLFormattedError } from 'graphql';
import { createClient as createSseClient, NetworkError, type Client as SseClient } from 'graphql-sse';
import { Observable, type Observer } from 'rxjs';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting';
export type TransportKind = 'websocket' | 'sse';
export interface ConnectionStatus { state: ConnectionState; transport: TransportKind }

export interface HeraldTransportOptions {
  /** Herald's GraphQL HTTP URL; the WebSocket URL is derived (http → ws, https → wss). */
  url: string;
  /** `--auth dev`: the user to act as. */
  user?: string | null;
  /** `--auth jwt`: asked on every connect and HTTP request; return a fresh token. */
  getToken?: () => Promise<string | null>;
  /**
   * When a token from getToken expires, on this browser's clock (ms), or
   * null if unknown; then the token's `exp` is used, which is on its
   * issuer's clock.
   */
  tokenExpiresAt?: (token: string) => number | null;
  /**
   * A subscription's cursor is too old to resume from (CURSOR_EXPIRED):
   * what it showed must be read again. Default: reload the page.
   */
  onCursorExpired?: () => void;
  /** Give up on the WebSocket if it is not acknowledged within this time, or after this many failed attempts. */
  wsGiveUpMs?: number;
  wsGiveUpAttempts?: number;
}

/**
 * What an operation's context may tell the transport. `herald.resume:
 * false` sends a subscription as it is, without the `after` variable the
 * transport otherwise adds: for a root field that takes no cursor
 * (roomPresence), which Herald would refuse with one.
 */
export interface HeraldTransportContext {
  herald?: { resume?: boolean };
}

/** The context of a subscription that takes no cursor (see HeraldTransportContext). */
export const NO_RESUME: HeraldTransportContext = { herald: { resume: false } };

export interface HeraldTransport {
  link: ApolloLink;
  status(): ConnectionStatus;
  /** Calls listener on every change of status; returns the unsubscribe. */
  onStatus(listener: (s: ConnectionStatus) => void): () => void;
  dispose(): void;
}

/** Jittered exponential back-off, about 200 ms to 5 s. */
export async function backoff(retries: number): Promise<void> {
  const ms = Math.min(250 * 2 ** retries, 4000) * (0.75 + Math.random() / 2);
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `--auth jwt`: the socket's token is replaced on the open socket
 * (refreshSession) this long before it expires, rather than Herald closing
 * the socket at expiry (4403) and every subscription, presence included,
 * starting again. Less than the 30 s before expiry at which
 * lib/credentials.ts stops handing out a cached token, so that getToken
 * then brings a new one.
 */
const REFRESH_BEFORE_MS = 25_000;
/** A refresh that failed, or brought no later expiry, is tried again after this. */
const REFRESH_RETRY_MS = 5_000;

const REFRESH_SESSION = 'mutation RefreshSession($token: String!) { refreshSession(token: $token) { expiresAt } }';

/** When a JWT expires (its `exp`, in ms, on its issuer's clock), or null if it does not say. */
function jwtExpiry(token: string): number | null {
  try {
    const { exp } = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: unknown };
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

const isCursorExpired = (errors: unknown): boolean =>
  Array.isArray(errors) && errors.some((e) => (e as GraphQLFormattedError)?.extensions?.code === 'CURSOR_EXPIRED');

/** An event stream's credentials expired: Herald ends it with this error, then `complete`. */
const isUnauthenticated = (errors: unknown): boolean =>
  Array.isArray(errors) && errors.some((e) => (e as GraphQLFormattedError)?.extensions?.code === 'UNAUTHENTICATED');

/** Herald ended an event stream that fell behind: it is opened again after its last cursor. */
const isSlowConsumer = (errors: unknown): boolean =>
  Array.isArray(errors) && errors.some((e) => (e as GraphQLFormattedError)?.extensions?.code === 'SLOW_CONSUMER');

const isCloseEvent = (err: unknown): err is { code: number; reason: string } =>
  !!err && typeof err === 'object' && 'code' in err && 'reason' in err;

function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (Array.isArray(err)) return new CombinedGraphQLErrors({ errors: err as GraphQLFormattedError[] });
  if (isCloseEvent(err)) return new Error(`socket closed with ${err.code} ${err.reason}`);
  return new Error(String(err));
}

/** One subscription the app holds open, whichever transport carries it. */
interface ActiveSubscription {
  request: { query: string; variables: Record<string, unknown>; operationName?: string };
  /**
   * The variable the root field's `after` takes (prepareOperation adds one if
   * the document has none); null for a subscription sent as it is (NO_RESUME),
   * which starts afresh on every reconnect.
   */
  cursorVariable: string | null;
  /** The last cursor received (or the one the app subscribed after). */
  cursor: string | null;
  observer: Observer<ApolloLink.Result>;
  /** Stops the current transport's subscription (and tells its sink to ignore what follows). */
  stop: () => void;
  ended: boolean;
  /** SSE: restarts in a row of a stream the server ended. */
  restarts: number;
  /**
   * SSE: the errors (no data) a stream carried before Herald ended it, which
   * end the subscription (FORBIDDEN: a member removed from the room,
   * BAD_USER_INPUT, ...), as the same error does over a socket.
   */
  failed: readonly GraphQLFormattedError[] | null;
  /**
   * Counts the transport subscriptions started for it: one replaced by a
   * newer one (SSE, a new token) says nothing more to the app once the newer
   * one speaks, and its end is not the subscription's.
   */
  generation: number;
}

export function createHeraldTransport(options: HeraldTransportOptions): HeraldTransport {
  const giveUpMs = options.wsGiveUpMs ?? 5000;
  const giveUpAttempts = options.wsGiveUpAttempts ?? 2;
  const onCursorExpired = options.onCursorExpired ?? (() => window.location.reload());
  const tokenExpiry = (token: string): number | null => options.tokenExpiresAt?.(token) ?? jwtExpiry(token);

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

  // ---- WebSocket: @heraldhq/client ----------------------------------------
  let acknowledged = false; // a socket has reached `connected` once
  let failures = 0; // sockets closed before any was acknowledged
  let socketOpen = false; // a socket is acknowledged and not closed since
  let refreshTimer: ReturnType<typeof setTimeout> | undefined; // the next refreshSession
  const herald: HeraldClient = createHeraldClient({
    url: options.url,
    user: options.user ?? undefined,
    getToken: options.getToken,
    retryWait: backoff,
    // Nothing to resume from: the page reads the room again (by default a reload).
    onCursorExpired: () => {
      onCursorExpired();
      return new Promise<null>(() => {});
    },
    // Connect at once: the connection state means something before the first subscription.
    graphqlWs: { lazy: false, onNonLazyError: () => {} },
    on: {
      connecting: () => { if (status.transport === 'websocket') setStatus({ state: acknowledged ? 'reconnecting' : 'connecting' }); },
      connected: () => {
        acknowledged = true;
        socketOpen = true;
        if (status.transport === 'websocket') setStatus({ state: 'connected' });
        // The socket carries the token getToken gave it (cached since):
        // replace it before it expires.
        if (options.getToken) {
          void options.getToken().then((token) => {
            const at = token ? tokenExpiry(token) : null;
            if (at !== null) scheduleRefresh(at);
          }, () => {});
        }
      },
      closed: () => {
        socketOpen = false;
        clearTimeout(refreshTimer);
        if (status.transport !== 'websocket' || disposed) return;
        if (acknowledged) setStatus({ state: 'reconnecting' });
        else if (++failures >= giveUpAttempts) fallBackToSse(`${failures} WebSocket attempts failed`);
      },
    },
  });

  // ---- Token refresh on the open socket (--auth jwt) -----------------------
  function scheduleRefresh(expiresAt: number, atLeast = 0) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshSession, Math.max(atLeast, expiresAt - REFRESH_BEFORE_MS - Date.now()));
  }
  async function refreshSession() {
    if (disposed || !socketOpen || status.transport !== 'websocket' || !options.getToken) return;
    const retry = (why: string) => {
      console.warn(`herald: the socket's token was not refreshed (${why}); trying again in ${REFRESH_RETRY_MS} ms`);
      scheduleRefresh(0, REFRESH_RETRY_MS);
    };
    let token: string | null;
    try {
      token = await options.getToken();
    } catch (err) {
      retry(toError(err).message);
      return;
    }
    if (!token || !socketOpen) return;
    const sent = token;
    let answered = false;
    herald.graphqlWs.subscribe<{ refreshSession: { expiresAt: string | null } }>({ query: REFRESH_SESSION, variables: { token } }, {
      next: ({ data, errors }) => {
        answered = true;
        if (errors?.length || !data) {
          retry(errors?.map((e) => e.message).join('; ') ?? 'no answer');
          return;
        }
        // Herald's expiresAt is on its own clock: the next refresh is timed
        // by the token's expiry on this browser's (tokenExpiry).
        if (data.refreshSession.expiresAt === null) return;
        const at = tokenExpiry(sent) ?? Date.parse(data.refreshSession.expiresAt);
        if (!Number.isNaN(at)) scheduleRefresh(at, REFRESH_RETRY_MS);
      },
      error: (err) => { if (socketOpen) retry(toError(err).message); },
      complete: () => { if (!answered && socketOpen) retry('no answer'); },
    });
  }

  const giveUpTimer = setTimeout(() => {
    if (!acknowledged && status.transport === 'websocket') fallBackToSse(`no WebSocket acknowledged within ${giveUpMs} ms`);
  }, giveUpMs);

  // ---- Server-Sent Events -------------------------------------------------
  let sse: SseClient | null = null;
  // --auth jwt: an event stream carries the token it was opened with, and
  // Herald ends it when that token expires. There is no refreshSession for a
  // stream: before the earliest expiry of the tokens streams were opened
  // with, every stream is opened again with a new token, after its last
  // cursor (see reopen).
  let sseTokenExpiry: number | null = null;
  let sseRefreshTimer: ReturnType<typeof setTimeout> | undefined;
  function noteStreamToken(expiresAt: number) {
    if (sseTokenExpiry !== null && sseTokenExpiry <= expiresAt) return;
    sseTokenExpiry = expiresAt;
    scheduleStreamRefresh(expiresAt - REFRESH_BEFORE_MS - Date.now());
  }
  function scheduleStreamRefresh(ms: number) {
    clearTimeout(sseRefreshTimer);
    sseRefreshTimer = setTimeout(refreshStreams, Math.max(0, ms));
  }
  async function refreshStreams() {
    if (disposed || status.transport !== 'sse' || !options.getToken) return;
    const carried = sseTokenExpiry;
    const retry = (why: string) => {
      console.warn(`herald: the event streams' token was not refreshed (${why}); trying again in ${REFRESH_RETRY_MS} ms`);
      scheduleStreamRefresh(REFRESH_RETRY_MS);
    };
    let token: string | null;
    try {
      token = await options.getToken();
    } catch (err) {
      retry(toError(err).message);
      return;
    }
    const at = token ? tokenExpiry(token) : null;
    if (at === null || (carried !== null && at <= carried)) {
      retry('no token expiring later');
      return;
    }
    if (disposed || status.transport !== 'sse') return;
    // Every stream opened from here on carries this token or a later one
    // (getToken caches it), and notes its expiry as it opens.
    sseTokenExpiry = null;
    clearTimeout(sseRefreshTimer);
    for (const sub of [...active]) reopen(sub);
  }

  function fallBackToSse(why: string) {
    if (status.transport === 'sse' || disposed) return;
    console.warn(`herald: falling back to Server-Sent Events (${why})`);
    clearTimeout(giveUpTimer);
    clearTimeout(refreshTimer);
    setStatus({ transport: 'sse', state: 'connecting' });
    sse = createSseClient({
      url: options.url,
      // Asked on every stream opened (graphql-sse's retries too). A token
      // that cannot be had just then (the token route down) is retried with
      // the back-off, as a network error, rather than ending the subscription.
      headers: async () => {
        let headers: Record<string, string>;
        try {
          headers = await herald.httpHeaders();
        } catch (err) {
          console.warn(`herald: no credentials for an event stream (${toError(err).message}); trying again`);
          throw new NetworkError(toError(err));
        }
        const at = headers.Authorization ? tokenExpiry(headers.Authorization.replace(/^Bearer /, '')) : null;
        if (at !== null) noteStreamToken(at);
        return headers;
      },
      retryAttempts: Infinity,
      retry: backoff,
    });
    for (const sub of active) {
      sub.stop();
      start(sub);
    }
    void herald.dispose();
    if (active.size === 0) setStatus({ state: 'connected' });
  }

  /**
   * SSE: opens a subscription's stream again (with the token getToken gives
   * now). One with a cursor is stopped, then opened after its last cursor:
   * an event the old stream delivered moved the cursor past it, and one it
   * had not delivered when stopped is ignored and comes again on the new
   * one, so nothing is lost or shown twice. One without (roomPresence) has
   * nothing to resume from and starts afresh, so the new stream is opened
   * first and the old one stopped at its first event (a SNAPSHOT, which
   * replaces what the page shows): the user always has a subscription open,
   * and is never seen to leave and come back.
   */
  function reopen(sub: ActiveSubscription) {
    if (sub.ended) return;
    if (sub.cursorVariable) {
      sub.stop();
      start(sub);
      return;
    }
    const stopOld = sub.stop;
    start(sub, stopOld);
  }

  // ---- Subscriptions -------------------------------------------------------
  /** Starts sub on the current transport; replacing: stops the stream it replaces, at this one's first event. */
  function start(sub: ActiveSubscription, replacing?: () => void) {
    let stopped = false;
    const generation = ++sub.generation;
    const superseded = () => sub.generation !== generation;
    const first = () => {
      if (replacing) replacing();
      replacing = undefined;
    };
    const sink = {
      next(result: ApolloLink.Result & { extensions?: Record<string, unknown> }) {
        if (stopped) return;
        if (superseded()) {
          // The stream a new one replaces, until that one's first event.
          if (!isUnauthenticated(result.errors)) sub.observer.next(result);
          return;
        }
        first();
        if (sseVariables && !result.data && isUnauthenticated(result.errors)) {
          // The stream's token expired before it was replaced (the refresh
          // failed, or the page slept): Herald ends the stream next, and it is
          // opened again after its last cursor with a new token, as a stream
          // the server ended. Not the app's concern.
          console.warn('herald: an event stream\'s token expired; opening it again');
          return;
        }
        if (sub.cursorVariable && isCursorExpired(result.errors)) {
          sub.stop();
          onCursorExpired();
          return;
        }
        if (sseVariables && !result.data && result.errors?.length) {
          // Herald ends the stream next (complete). One that fell behind is
          // opened again after its last cursor, which loses nothing; any
          // other error ends the subscription there, as over a socket:
          // opened again, it would be refused again, a few times a second.
          if (!isSlowConsumer(result.errors)) sub.failed = result.errors;
          return;
        }
        if (result.data) sub.restarts = 0;
        const cursor = result.extensions?.cursor;
        if (typeof cursor === 'string') sub.cursor = cursor;
        // Over SSE the request is ours: whatever is sent next resumes after this event.
        if (sseVariables && sub.cursorVariable && sub.cursor) sseVariables[sub.cursorVariable] = sub.cursor;
        sub.observer.next(result);
      },
      error(err: unknown) {
        if (stopped) return;
        if (superseded()) {
          stopped = true;
          return;
        }
        first();
        if (status.transport === 'websocket' && !acknowledged && isCloseEvent(err)) {
          // A socket closed before any was acknowledged with a code graphql-ws
          // does not retry (1011, say, from a proxy that refuses upgrades):
          // graphql-ws ends every subscription waiting for it. That is no
          // reason to stop this one: it moves to SSE with the others
          // (fallBackToSse stops it here and starts it again there).
          fallBackToSse(`a WebSocket closed with ${(err as { code: number }).code} before one was acknowledged`);
          return;
        }
        stopped = true;
        if (sub.cursorVariable && isCursorExpired(err)) {
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
        if (superseded()) return;
        first();
        if (status.transport === 'sse' && !sub.ended && sub.failed) {
          sub.ended = true;
          active.delete(sub);
          sub.observer.error(toError(sub.failed));
          return;
        }
        if (status.transport === 'sse' && !sub.ended) {
          // An event stream the server ended after a result (a subscription
          // that completed), or after SLOW_CONSUMER or UNAUTHENTICATED: open
          // it again after the last cursor. (A draining replica's stream
          // ends without a complete; graphql-sse reconnects by itself.)
          setStatus({ state: 'reconnecting' });
          // (Unless something started it again meanwhile: a new token's reopen.)
          void backoff(sub.restarts++).then(() => { if (!sub.ended && !disposed && !superseded()) start(sub); });
          return;
        }
        sub.ended = true;
        active.delete(sub);
        sub.observer.complete();
      },
    };
    let sseVariables: Record<string, unknown> | null = null;
    let stopTransport: () => void;
    if (status.transport === 'websocket') {
      // The client resumes from its last cursor on every reconnect by itself
      // (a subscription without a cursor variable is re-sent as it is).
      const unsubscribe: Unsubscribe = herald.subscribe(sub.request, sink as never,
        sub.cursorVariable ? { after: sub.cursor } : { resume: false });
      stopTransport = () => {
        sub.cursor = unsubscribe.cursor ?? sub.cursor;
        unsubscribe();
      };
    } else {
      // graphql-sse sends the same variables object again on every retry.
      sseVariables = { ...sub.request.variables };
      if (sub.cursorVariable) {
        if (sub.cursor) sseVariables[sub.cursorVariable] = sub.cursor;
        else delete sseVariables[sub.cursorVariable];
      }
      stopTransport = sse!.subscribe({ ...sub.request, variables: sseVariables }, sink as never, {
        connecting: (reconnecting) => setStatus({ state: reconnecting ? 'reconnecting' : status.state === 'connected' ? 'connected' : 'connecting' }),
        connected: () => setStatus({ state: 'connected' }),
      });
    }
    sub.stop = () => {
      stopped = true;
      first(); // and the stream this one was to replace, if it still runs
      stopTransport();
    };
  }

  const subscriptionLink = new ApolloLink((operation) => new Observable<ApolloLink.Result>((observer) => {
    const resume = (operation.getContext() as HeraldTransportContext).herald?.resume !== false;
    const prepared = resume
      ? prepareOperation(operation.query, operation.operationName)
      : { query: print(operation.query), cursorVariable: null, literalCursor: undefined };
    const variables: Record<string, unknown> = { ...operation.variables };
    const name = prepared.cursorVariable;
    const given = name ? variables[name] : undefined;
    const sub: ActiveSubscription = {
      request: { query: prepared.query, variables, ...(operation.operationName ? { operationName: operation.operationName } : {}) },
      cursorVariable: name,
      cursor: typeof given === 'string' ? given : prepared.literalCursor ?? null,
      observer,
      stop: () => {},
      ended: false,
      restarts: 0,
      failed: null,
      generation: 0,
    };
    if (name) delete variables[name]; // carried as sub.cursor
    active.add(sub);
    start(sub);
    return () => {
      sub.ended = true;
      active.delete(sub);
      sub.stop();
    };
  }));

  // Queries and mutations over HTTP, with the client's credentials as headers.
  const httpLink = new HeraldLink({ client: herald, http: { uri: options.url } });

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
      clearTimeout(refreshTimer);
      clearTimeout(sseRefreshTimer);
      for (const sub of active) { sub.ended = true; sub.stop(); }
      active.clear();
      void herald.dispose();
      sse?.dispose();
    },
  };
}

// One subscription over any of the three transports a browser app uses, as
// the tests of private rooms, sessions and presence need them: the official
// graphql-ws client (graphql-transport-ws), the legacy
// subscriptions-transport-ws client (the graphql-ws subprotocol) and the
// graphql-sse client (distinct connections), each on a connection of its
// own, as a user named by the development authentication or with a JWT.
//
// Each records what it received in an Inbox, a GraphQL error that ends the
// subscription as an event holding `errors` (stamped with the time it
// arrived) before the end, and how its socket closed (code, time), so a
// test can tell "ended with FORBIDDEN" from "the connection broke" and
// measure when either happened.
import { createClient as createWsClient } from 'graphql-ws';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import { createClient as createSseClient } from 'graphql-sse';
import {
  httpURL, wsURL, nameOf, withTimeout, describeError, TrackedWebSocket, Inbox, once, messageEvent,
} from './herald.js';

/** The transports, by the names the tests print. */
export const GRAPHQL_WS = 'graphql-ws';
export const LEGACY_WS = 'subscriptions-transport-ws (legacy graphql-ws)';
export const GRAPHQL_SSE = 'graphql-sse';
export const TRANSPORTS = [GRAPHQL_WS, LEGACY_WS, GRAPHQL_SSE];

/**
 * A WebSocket class for one client that records, in rec, the socket it
 * opened and how it closed: rec.close = {code, reason, at}.
 */
function recordingWebSocket(rec) {
  return class extends TrackedWebSocket {
    constructor(...args) {
      super(...args);
      rec.socket = this;
      this.on('close', (code, reason) => {
        rec.close = { code, reason: String(reason), at: Date.now() };
        rec.onClose?.();
      });
    }
  };
}

/**
 * Opens a client of transport on base, as `user` (development
 * authentication: connectionParams { user } or the X-Herald-User header)
 * or with `token` (a JWT: connectionParams { Authorization } or the
 * Authorization header); `where` names the replica in messages. Returns
 * a Conn: subscribe(), run() a single-result operation over the same
 * connection, close(); conn.rec.close tells how its socket closed.
 */
export function connect(transport, base, { user, token, label, where = nameOf(base) } = {}) {
  const who = token ? `a JWT (${label ?? 'token'})` : user;
  const name = `${transport} on ${where} as ${who}`;
  const rec = { socket: null, close: null, events: [] };
  if (transport === GRAPHQL_WS) {
    const client = createWsClient({
      url: wsURL(base),
      webSocketImpl: recordingWebSocket(rec),
      connectionParams: token ? { Authorization: `Bearer ${token}` } : { user },
      lazy: false,
      retryAttempts: 0, // a failure must fail the test, not retry
      onNonLazyError: () => {}, // the close is recorded below and by the socket
      on: {
        connected: () => rec.events.push('connected'),
        closed: (ev) => rec.events.push(`closed ${describeError(ev)}`),
      },
    });
    return new Conn(name, rec, {
      subscribe: (request, sink) => client.subscribe(request, {
        next: sink.next,
        // An "error" message carries the GraphQL errors; a broken
        // connection, a CloseEvent.
        error: (err) => (Array.isArray(err) ? sink.errors(err) : sink.broke(describeError(err))),
        complete: sink.complete,
      }),
      run: async (request) => once(name, client, request),
      close: () => client.dispose(),
    });
  }
  if (transport === LEGACY_WS) {
    const client = new SubscriptionClient(wsURL(base), {
      connectionParams: token ? { Authorization: `Bearer ${token}` } : { user },
      reconnect: false, // a failure must fail the test, not retry
      lazy: false,
      connectionCallback: (errors) => rec.events.push(errors ? `connection error ${describeError(errors)}` : 'connection_ack'),
    }, recordingWebSocket(rec));
    client.on('disconnected', () => rec.events.push('disconnected'));
    const sinks = new Set();
    // With reconnect off the client leaves its operations pending when the
    // connection closes: end them here.
    client.on('disconnected', () => {
      for (const s of sinks) s.broke(`the connection closed (code ${rec.close?.code})`);
    });
    const subscribe = (request, sink) => {
      sinks.add(sink);
      const sub = client.request(request).subscribe({
        next: sink.next,
        // An "error" message: the client hands its first error to error().
        error: (err) => (err?.message !== undefined ? sink.errors([err]) : sink.broke(describeError(err))),
        complete: sink.complete,
      });
      return () => { sinks.delete(sink); sub.unsubscribe(); };
    };
    return new Conn(name, rec, {
      subscribe,
      run: (request) => {
        const results = [];
        const done = new Promise((resolve, reject) => {
          subscribe(request, {
            next: (r) => results.push(r),
            errors: (errs) => reject(new Error(`${name}: ${describeError(errs)}`)),
            broke: (why) => reject(new Error(`${name}: ${why}`)),
            complete: () => resolve(results),
          });
        });
        return withTimeout(done, 10_000, () => `${name}: no complete for ${request.query.trim().split('\n')[0]}`);
      },
      close: () => {
        client.close();
        // A connection the server closed (4403) was closed with
        // close(false), which leaves the keep-alive check's interval
        // running (subscriptions-transport-ws 0.11.0, dist/client.js), and
        // close() then does nothing: clear the timers here.
        client.clearCheckConnectionInterval();
        client.clearMaxConnectTimeout();
        client.clearTryReconnectTimeout();
        client.clearInactivityTimeout();
      },
    });
  }
  if (transport === GRAPHQL_SSE) {
    const client = createSseClient({
      url: httpURL(base),
      singleConnection: false,
      headers: token ? { Authorization: `Bearer ${token}` } : { 'X-Herald-User': user },
      retryAttempts: 0, // a failure must fail the test, not retry
    });
    return new Conn(name, rec, {
      subscribe: (request, sink) => client.subscribe(request, {
        // A stream ended by the server with an error sends a "next" holding
        // it, then "complete".
        next: sink.next,
        error: (err) => sink.broke(describeError(err)),
        complete: sink.complete,
      }),
      run: (request) => once(name, client, request),
      close: () => client.dispose(),
    });
  }
  throw new Error(`unknown transport ${transport}`);
}

/** A client's connection (one socket, or graphql-sse's streams). */
class Conn {
  constructor(name, rec, impl) {
    this.name = name;
    this.rec = rec;
    this.impl = impl;
    this.stops = [];
  }

  /**
   * Subscribes; results go, normalized by normalize (messageEvent by
   * default), into the returned Inbox. GraphQL errors that end the
   * subscription become an event {errors} before the inbox ends; a broken
   * connection ends it without one.
   */
  subscribe(query, variables, { label = this.name, normalize = messageEvent } = {}) {
    const inbox = new Inbox(label);
    const stop = this.impl.subscribe({ query, variables }, {
      next: (r) => inbox.push(normalize(r)),
      errors: (errs) => { inbox.push({ errors: errs }); inbox.end(`error: ${describeError(errs)}`); },
      broke: (why) => inbox.end(`connection: ${why}`),
      complete: () => inbox.end('complete'),
    });
    this.stops.push(stop);
    return inbox;
  }

  /** Runs a query or mutation over this connection; resolves with its results. */
  run(query, variables = {}) {
    return this.impl.run({ query, variables });
  }

  /** Waits until the connection's socket has closed; returns {code, reason, at}. */
  async closed(ms, what = `${this.name} to close`) {
    const deadline = Date.now() + ms;
    while (!this.rec.close) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what} (client events ${JSON.stringify(this.rec.events)})`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.rec.onClose = () => { clearTimeout(timer); resolve(); };
      });
    }
    return this.rec.close;
  }

  close() {
    for (const stop of this.stops.splice(0)) {
      try { stop?.(); } catch { /* the connection is gone already */ }
    }
    return this.impl.close();
  }
}

/** The first event of inbox holding errors, or undefined. */
export const firstError = (inbox) => inbox.events.find((e) => e.errors?.length);

/** The extensions.code values of an event's errors. */
export const codes = (event) => (event?.errors ?? []).map((e) => e?.extensions?.code);

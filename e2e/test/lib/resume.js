// Resuming Herald subscriptions across reconnects: the recipe for JavaScript
// clients, as an app would copy it (e2e/README.md explains it; the tests in
// resume.test.js prove it).
//
// Herald puts the event's log position in every subscription result's
// extensions.cursor, and each Subscription field takes `after: String`: given
// the last cursor received, the server replays what followed it, then goes
// on live, with no gap and no duplicate, on any replica.
//
// graphql-ws (with retryAttempts) reconnects by itself and sends `subscribe`
// again for every active subscription, serializing the very payload object
// the app passed to client.subscribe each time (graphql-ws 6.4.2,
// dist/client.js: subscribe() keeps `payload` in its closure and calls
// stringifyMessage({ id, type: 'subscribe', payload }) on every connection).
// So the whole recipe is: own the variables object, and record the latest
// cursor in it as results arrive; every retry then resumes from there.
//
// A cursor the server can no longer resume from (older than the room's
// retained history, or from an earlier incarnation of the event log) fails
// with extensions.code CURSOR_EXPIRED. Then the app must refetch what it
// shows and subscribe again without a cursor; onCursorExpired is where it
// refetches. If it returns a cursor (e.g. the `cursor` field of the newest
// message it refetched), the new subscription starts after that one, so
// nothing posted between the refetch and the new subscription is missed.
//
// The subscription document must declare and pass `$after`:
//   subscription ($roomId: ID!, $after: String) { messagePosted(roomId: $roomId, after: $after) { ... } }
// and the graphql-ws client must retry every kind of connection loss:
//   createClient({ url, retryAttempts: Infinity, shouldRetry: () => true })
// (graphql-ws' default shouldRetry gives up when the socket fails with an
// error event rather than a close event, e.g. a refused reconnect).
import { ApolloLink } from '@apollo/client';
import { CombinedGraphQLErrors, CombinedProtocolErrors, ServerError } from '@apollo/client/errors';
import { Observable, tap } from 'rxjs';

/** Whether a list of GraphQL errors says the cursor cannot be resumed from. */
export const isCursorExpired = (errors) =>
  Array.isArray(errors) && errors.some((e) => e?.extensions?.code === 'CURSOR_EXPIRED');

/**
 * graphql-ws: client.subscribe(request, sink) that resumes from the last
 * cursor on every reconnect and recovers from CURSOR_EXPIRED. Options:
 * onCursorExpired(errors): refetch; may return a cursor to resume after.
 * Returns the function that ends the subscription.
 */
export function resumableSubscribe(client, { variables = {}, ...request }, sink, { onCursorExpired } = {}) {
  // One payload for the subscription's whole life, with variables this
  // function owns: graphql-ws serializes it anew on each (re)subscribe.
  const payload = { ...request, variables: { ...variables } };
  let unsubscribe = () => {};
  let stopped = false;

  function start() {
    let expired = false;
    unsubscribe = client.subscribe(payload, {
      next(result) {
        if (isCursorExpired(result.errors)) {
          expired = true;
          recover(result.errors);
          return;
        }
        const cursor = result.extensions?.cursor;
        if (typeof cursor === 'string') payload.variables.after = cursor;
        sink.next(result);
      },
      error(err) {
        if (isCursorExpired(err)) {
          expired = true;
          recover(err);
          return;
        }
        sink.error(err);
      },
      complete() {
        if (!expired) sink.complete?.();
      },
    });
  }

  async function recover(errors) {
    unsubscribe();
    delete payload.variables.after;
    let cursor;
    try {
      cursor = await onCursorExpired?.(errors);
    } catch (err) {
      sink.error(err);
      return;
    }
    if (stopped) return;
    if (typeof cursor === 'string') payload.variables.after = cursor;
    start();
  }

  start();
  return () => {
    stopped = true;
    unsubscribe();
  };
}

/**
 * Apollo Client: a link to put right before GraphQLWsLink. For a
 * subscription it gives the operation a variables object of its own, which
 * GraphQLWsLink hands to graphql-ws as is (@apollo/client 4.3.8,
 * link/subscriptions/index.js: client.subscribe({ variables, ... })), and
 * records each result's cursor in it. On CURSOR_EXPIRED it calls
 * onCursorExpired(errors, operation) (refetch there; return a cursor to
 * resume after it) and subscribes again without a cursor; the app's
 * observable goes on as if nothing happened.
 */
export function createResumeLink({ onCursorExpired } = {}) {
  return new ApolloLink((operation, forward) => {
    if (operation.operationType !== 'subscription') return forward(operation);
    // A copy: Apollo keeps the original for its cache keys.
    const variables = { ...operation.variables };
    operation.variables = variables;
    return new Observable((observer) => {
      let sub = null;
      let stopped = false;

      const start = () => {
        let expired = false;
        sub = forward(operation).subscribe({
          next(result) {
            if (isCursorExpired(result.errors)) {
              expired = true;
              recover(result.errors);
              return;
            }
            const cursor = result.extensions?.cursor;
            if (typeof cursor === 'string') variables.after = cursor;
            observer.next(result);
          },
          error(err) {
            // GraphQLWsLink wraps an "error" message in CombinedGraphQLErrors.
            if (isCursorExpired(err?.errors)) {
              expired = true;
              recover(err.errors);
              return;
            }
            observer.error(err);
          },
          complete() {
            if (!expired) observer.complete();
          },
        });
      };

      const recover = async (errors) => {
        sub?.unsubscribe();
        delete variables.after;
        let cursor;
        try {
          cursor = await onCursorExpired?.(errors, operation);
        } catch (err) {
          observer.error(err);
          return;
        }
        if (stopped) return;
        if (typeof cursor === 'string') variables.after = cursor;
        start();
      };

      start();
      return () => {
        stopped = true;
        sub?.unsubscribe();
      };
    });
  });
}

// ---------------------------------------------------------------------------
// Apollo Client with only an HttpLink: multipart subscriptions.
//
// A multipart stream never resumes by itself. It ends with a transport
// error part, {"payload":null,"errors":[…]}, when the replica drains
// (SHUTTING_DOWN) or the stream falls behind (SLOW_CONSUMER), which
// HttpLink reports as CombinedProtocolErrors; it breaks when the replica or
// the network dies (a network error); and a new one is refused with 503
// while a replica drains or is full (ServerError). Apollo Client's
// RetryLink (4.x) retries a protocol error like a network error, by
// forwarding the same operation again; HttpLink builds each request from
// operation.variables (@apollo/client 4.3.8, link/http/BaseHttpLink.js and
// selectHttpOptionsAndBody.js). So the recipe is two links before
// HttpLink: createCursorLink records each result's cursor as the
// operation's `after`, and a RetryLink with shouldResubscribe sends the
// subscription again, which then resumes from that cursor. The README
// shows the same code.

/**
 * A link that gives each subscription a variables object of its own and
 * records each result's extensions.cursor in it as `after`. Put it before
 * the RetryLink: every retry then sends the latest cursor.
 */
export function createCursorLink() {
  return new ApolloLink((operation, forward) => {
    if (operation.operationType !== 'subscription') return forward(operation);
    // A copy: Apollo keeps the original for its cache keys.
    const variables = { ...operation.variables };
    operation.variables = variables;
    return forward(operation).pipe(tap((result) => {
      const cursor = result.extensions?.cursor;
      if (typeof cursor === 'string') variables.after = cursor;
    }));
  });
}

/**
 * RetryLink's retryIf: subscribe again after anything that ended or
 * refused the stream but not the subscription: a transport error other
 * than UNAUTHENTICATED (refresh the token first), a 5xx (a draining or
 * full replica's 503, a proxy's 502), or the network. Queries and
 * mutations are left alone: a mutation sent twice may be applied twice.
 */
export function shouldResubscribe(error, operation) {
  if (operation.operationType !== 'subscription') return false;
  if (CombinedProtocolErrors.is(error)) return !error.errors.some((e) => e.extensions?.code === 'UNAUTHENTICATED');
  if (ServerError.is(error)) return error.statusCode >= 500;
  return !CombinedGraphQLErrors.is(error);
}

// The legacy subscriptions-transport-ws client (the graphql-ws subprotocol)
// on replica B: a query, a mutation and a messagePosted subscription, with the
// messages posted over HTTP on replica A.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import {
  A, B, wsURL, createRoom, unknownRoomID, withTimeout, describeError, TrackedWebSocket, assertSocketsClosed,
  failIfProcessLingers, Inbox, checkDelivery, MESSAGE_POSTED, messageEvent,
} from './lib/herald.js';

failIfProcessLingers('subscriptions-transport-ws.test.js');

function newClient(events) {
  const client = new SubscriptionClient(wsURL(B), {
    connectionParams: { user: 'alice' },
    reconnect: false, // a failure must fail the test, not retry
    lazy: false,
    connectionCallback: (errors) => events.push(errors ? `connection error ${describeError(errors)}` : 'connection_ack'),
  }, TrackedWebSocket);
  client.on('connected', () => events.push('connected'));
  client.on('disconnected', () => events.push('disconnected'));
  client.on('error', (err) => events.push(`error ${describeError(err)}`));
  return client;
}

/**
 * Calls onClose when the client's connection closes. With reconnect off the
 * client leaves its operations pending then, so the tests end them.
 */
function onDisconnect(client, events, onClose) {
  return client.on('disconnected', () => onClose(`the connection closed (client events ${JSON.stringify(events)})`));
}

/** Runs a single-result operation (query or mutation) over the client. */
function once(client, events, request, ms = 10_000) {
  const results = [];
  const what = request.query.trim().split('\n')[0];
  let off;
  const done = new Promise((resolve, reject) => {
    off = onDisconnect(client, events, (why) => reject(new Error(`subscriptions-transport-ws: ${what}: ${why}`)));
    client.request(request).subscribe({
      next: (r) => results.push(r),
      error: (err) => reject(new Error(`subscriptions-transport-ws: ${what} failed: ${describeError(err)}`)),
      complete: () => resolve(results),
    });
  });
  return withTimeout(done, ms, () => `subscriptions-transport-ws: no complete for ${what} (client events ${JSON.stringify(events)})`)
    .finally(() => off());
}

test('subscriptions-transport-ws on replica B: query, mutation, subscription to messages posted on replica A', { timeout: 60_000 }, async (t) => {
  const room = await createRoom(A, 'subscriptions-transport-ws');
  const events = [];
  const client = newClient(events);
  t.after(() => client.close());
  try {
    const [q, ...moreQ] = await once(client, events, {
      query: 'query Room($id: ID!) { viewer { name } room(id: $id) { id name messageCount } }',
      variables: { id: room.id },
    });
    assert.equal(moreQ.length, 0, `a query must yield one result, got ${JSON.stringify([q, ...moreQ])}`);
    assert.equal(q.errors, undefined, `query errors: ${JSON.stringify(q.errors)}`);
    assert.deepEqual(q.data, { viewer: { name: 'alice' }, room: { id: room.id, name: room.name, messageCount: 0 } },
      'the room created on replica A, seen on replica B, as alice');

    const [m, ...moreM] = await once(client, events, {
      query: `mutation Post($r: ID!) {
        postMessage(roomId: $r, text: "hello over subscriptions-transport-ws") { id author { name } room { messageCount } }
      }`,
      variables: { r: room.id },
    });
    assert.equal(moreM.length, 0, `a mutation must yield one result, got ${JSON.stringify([m, ...moreM])}`);
    assert.equal(m.errors, undefined, `mutation errors: ${JSON.stringify(m.errors)}`);
    assert.equal(m.data.postMessage.author.name, 'alice');
    assert.equal(m.data.postMessage.room.messageCount, 1);

    const inbox = new Inbox('subscriptions-transport-ws subscription on replica B');
    onDisconnect(client, events, (why) => inbox.end(why));
    const sub = client.request({ query: MESSAGE_POSTED, variables: { roomId: room.id } }).subscribe({
      next: (r) => inbox.push(messageEvent(r)),
      error: (err) => inbox.end(`error: ${describeError(err)}`),
      complete: () => inbox.end('complete'),
    });
    try {
      await checkDelivery(t, { inbox, postBase: A, roomId: room.id, baseCount: 1 });
    } finally {
      sub.unsubscribe();
    }
  } catch (err) {
    err.message += `\nclient events: ${JSON.stringify(events)}`;
    throw err;
  }
});

test('subscriptions-transport-ws: a subscription to an unknown room ends with an error', { timeout: 20_000 }, async (t) => {
  const events = [];
  const client = newClient(events);
  t.after(() => client.close());
  const roomId = unknownRoomID();
  const results = [];
  const outcome = await withTimeout(new Promise((resolve) => {
    onDisconnect(client, events, (why) => resolve({ how: 'disconnected', why }));
    client.request({ query: MESSAGE_POSTED, variables: { roomId } }).subscribe({
      next: (r) => results.push(r),
      error: (err) => resolve({ how: 'error', err }),
      complete: () => resolve({ how: 'complete' }),
    });
  }), 10_000, () => `subscriptions-transport-ws: the subscription to unknown room ${roomId} neither errored nor completed ` +
    `(client events ${JSON.stringify(events)})`);
  assert.notEqual(outcome.how, 'disconnected', outcome.why);
  // Either an "error" message, or "data" carrying errors and then "complete".
  const errors = outcome.how === 'error' ? [outcome.err] : results.flatMap((r) => r.errors ?? []);
  assert.ok(errors.length > 0, `the subscription completed without an error; results: ${JSON.stringify(results)}`);
  assert.ok(results.every((r) => r.data == null || r.data.messagePosted == null),
    `the subscription to an unknown room delivered data: ${JSON.stringify(results)}`);
  const code = (e) => e.extensions?.code ?? e.originalError?.extensions?.code;
  // The code, as graphql-ws's test requires it: not only the message.
  assert.ok(errors.some((e) => code(e) === 'NOT_FOUND'), `expected a NOT_FOUND error, got ${describeError(errors)}`);
  t.diagnostic(`unknown room: ${outcome.how} with ${JSON.stringify(errors.map((e) => ({ message: e.message, code: code(e) })))}`);
});

test('subscriptions-transport-ws: close closes the socket', { timeout: 20_000 }, async () => {
  const events = [];
  const client = newClient(events);
  const [r] = await once(client, events, { query: '{ viewer { name } }' });
  assert.deepEqual(r.data, { viewer: { name: 'alice' } });
  client.close();
  await assertSocketsClosed();
});

// The official graphql-ws client (the graphql-transport-ws subprotocol) on
// replica A: a query, a mutation and a messagePosted subscription over one
// socket, with the messages posted over HTTP on replica B.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-ws';
import {
  A, B, wsURL, createRoom, unknownRoomID, withTimeout, describeError, TrackedWebSocket, assertSocketsClosed,
  failIfProcessLingers, Inbox, once, checkDelivery, MESSAGE_POSTED, messageEvent,
} from './lib/herald.js';

failIfProcessLingers('graphql-ws.test.js');

function newClient(events) {
  return createClient({
    url: wsURL(A),
    webSocketImpl: TrackedWebSocket,
    connectionParams: { user: 'alice' },
    lazy: false,
    retryAttempts: 0, // a failure must fail the test, not retry
    onNonLazyError: (err) => events.push(`non-lazy error: ${describeError(err)}`),
    on: {
      connected: (_socket, payload) => events.push(`connected ${JSON.stringify(payload ?? null)}`),
      closed: (ev) => events.push(`closed ${describeError(ev)}`),
      error: (err) => events.push(`error ${describeError(err)}`),
    },
  });
}

test('graphql-ws on replica A: query, mutation, subscription to messages posted on replica B', { timeout: 60_000 }, async (t) => {
  const room = await createRoom(A, 'graphql-ws');
  const events = [];
  const client = newClient(events);
  t.after(() => client.dispose());
  try {
    // A query: the identity from connectionParams, and the room.
    const [q, ...moreQ] = await once('graphql-ws', client, {
      query: 'query Room($id: ID!) { viewer { name } room(id: $id) { id name messageCount } }',
      variables: { id: room.id },
    });
    assert.equal(moreQ.length, 0, `a query must yield one result, got ${JSON.stringify([q, ...moreQ])}`);
    assert.equal(q.errors, undefined, `query errors: ${JSON.stringify(q.errors)}`);
    assert.deepEqual(q.data, { viewer: { name: 'alice' }, room: { id: room.id, name: room.name, messageCount: 0 } });

    // A mutation, acting as alice.
    const [m, ...moreM] = await once('graphql-ws', client, {
      query: `mutation Post($r: ID!) {
        postMessage(roomId: $r, text: "hello over graphql-ws") { id text author { name } room { messageCount } }
      }`,
      variables: { r: room.id },
    });
    assert.equal(moreM.length, 0, `a mutation must yield one result, got ${JSON.stringify([m, ...moreM])}`);
    assert.equal(m.errors, undefined, `mutation errors: ${JSON.stringify(m.errors)}`);
    assert.equal(m.data.postMessage.author.name, 'alice');
    assert.equal(m.data.postMessage.room.messageCount, 1);

    // The subscription, fed by messages posted on replica B.
    const inbox = new Inbox('graphql-ws subscription on replica A');
    const unsubscribe = client.subscribe({ query: MESSAGE_POSTED, variables: { roomId: room.id } }, {
      next: (r) => inbox.push(messageEvent(r)),
      error: (err) => inbox.end(`error: ${describeError(err)}`),
      complete: () => inbox.end('complete'),
    });
    try {
      await checkDelivery(t, { inbox, postBase: B, roomId: room.id, baseCount: 1 });
    } finally {
      unsubscribe();
    }
  } catch (err) {
    err.message += `\nclient events: ${JSON.stringify(events)}`;
    throw err;
  }
});

test('graphql-ws: a subscription to an unknown room ends with an error', { timeout: 20_000 }, async (t) => {
  const events = [];
  const client = newClient(events);
  t.after(() => client.dispose());
  const roomId = unknownRoomID();
  const results = [];
  const outcome = await withTimeout(new Promise((resolve) => {
    client.subscribe({ query: MESSAGE_POSTED, variables: { roomId } }, {
      next: (r) => results.push(r),
      error: (err) => resolve({ how: 'error', err }),
      complete: () => resolve({ how: 'complete' }),
    });
  }), 10_000, () => `graphql-ws: the subscription to unknown room ${roomId} neither errored nor completed (events ${JSON.stringify(events)})`);

  // The protocol allows either an error message, or a next carrying errors
  // followed by complete.
  let errors;
  if (outcome.how === 'error') {
    assert.ok(Array.isArray(outcome.err),
      `expected GraphQL errors (an "error" message), got a connection failure: ${describeError(outcome.err)}; events ${JSON.stringify(events)}`);
    errors = outcome.err;
  } else {
    errors = results.flatMap((r) => r.errors ?? []);
    assert.ok(errors.length > 0, `the subscription completed without an error; results: ${JSON.stringify(results)}`);
    assert.ok(results.every((r) => r.data == null || r.data.messagePosted == null),
      `the subscription to an unknown room delivered data: ${JSON.stringify(results)}`);
  }
  assert.ok(errors.some((e) => e.extensions?.code === 'NOT_FOUND'),
    `expected an error with extensions.code NOT_FOUND, got ${JSON.stringify(errors)}`);
  t.diagnostic(`unknown room: ${outcome.how} with ${JSON.stringify(errors)}`);
});

test('graphql-ws: dispose closes the socket', { timeout: 20_000 }, async () => {
  const events = [];
  const client = newClient(events);
  const [r] = await once('graphql-ws', client, { query: '{ viewer { name } }' });
  assert.deepEqual(r.data, { viewer: { name: 'alice' } });
  await client.dispose();
  await assertSocketsClosed();
  // The process must now be able to exit: failIfProcessLingers checks it.
});

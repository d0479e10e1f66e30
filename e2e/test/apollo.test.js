// Apollo Client set up as a Next.js app would: InMemoryCache and a split link
// sending queries and mutations over HttpLink and subscriptions over
// GraphQLWsLink (graphql-ws), both to replica A. Messages are posted on
// replica B with plain fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { OperationTypeNode } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import {
  A, B, httpURL, wsURL, gql as httpGql, uniqueName, withTimeout, describeError, TrackedWebSocket,
  assertSocketsClosed, failIfProcessLingers, Inbox, checkDelivery, MESSAGE_POSTED, messageEvent,
} from './lib/herald.js';

failIfProcessLingers('apollo.test.js');

// A browser, where a Next.js client component runs, has a global WebSocket;
// Node 20 has none unless started with --experimental-websocket, and Apollo's
// GraphQLWsLink refers to it when it reports an error.
globalThis.WebSocket ??= WebSocket;

const ROOMS = gql`
  query Rooms {
    rooms(first: 100) { totalCount nodes { id name messageCount } }
  }
`;

const CREATE_ROOM = gql`
  mutation CreateRoom($name: String!) {
    createRoom(name: $name) { id name messageCount createdBy { name } }
  }
`;

function makeApollo(events) {
  const user = 'alice';
  const httpLink = new HttpLink({ uri: httpURL(A), fetch, headers: { 'X-Herald-User': user } });
  const wsClient = createClient({
    url: wsURL(A),
    webSocketImpl: TrackedWebSocket,
    connectionParams: { user },
    retryAttempts: 0, // a failure must fail the test, not retry
    on: {
      connected: () => events.push('ws connected'),
      closed: (ev) => events.push(`ws closed ${describeError(ev)}`),
      error: (err) => events.push(`ws error ${describeError(err)}`),
    },
  });
  const link = ApolloLink.split(
    ({ operationType }) => operationType === OperationTypeNode.SUBSCRIPTION,
    new GraphQLWsLink(wsClient),
    httpLink,
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  return {
    client,
    wsClient,
    async close() {
      client.stop();
      await wsClient.dispose();
    },
  };
}

// Shared by the tests of this file, which run in order.
let room;

test('Apollo over HttpLink on replica A: rooms query, createRoom mutation, visible on replica B', { timeout: 20_000 }, async (t) => {
  const apollo = makeApollo([]);
  t.after(() => apollo.close());
  const { client } = apollo;

  const before = await withTimeout(client.query({ query: ROOMS, fetchPolicy: 'network-only' }), 10_000, 'rooms query');
  assert.equal(before.error, undefined, `rooms query error: ${describeError(before.error)}`);
  assert.ok(Array.isArray(before.data.rooms.nodes), `rooms query data: ${JSON.stringify(before.data)}`);

  const name = uniqueName('apollo');
  const created = await withTimeout(client.mutate({ mutation: CREATE_ROOM, variables: { name } }), 10_000, 'createRoom mutation');
  assert.equal(created.error, undefined, `createRoom error: ${describeError(created.error)}`);
  room = created.data.createRoom;
  assert.equal(room.name, name);
  assert.equal(room.messageCount, 0);
  assert.equal(room.createdBy.name, 'alice', 'HttpLink sends the X-Herald-User header');

  const after = await withTimeout(client.query({ query: ROOMS, fetchPolicy: 'network-only' }), 10_000, 'rooms query');
  assert.equal(after.data.rooms.totalCount, before.data.rooms.totalCount + 1);
  assert.ok(after.data.rooms.nodes.some((r) => r.id === room.id), `the new room is not in ${JSON.stringify(after.data.rooms)}`);

  // The cache normalized the room: reading it back needs no request.
  const cached = client.readQuery({ query: ROOMS });
  assert.ok(cached.rooms.nodes.some((r) => r.id === room.id), 'the new room is in the Apollo cache');

  // The other replica sees it at once (read-your-writes is per replica; B
  // follows the same log, so give it a moment).
  let seen;
  for (let i = 0; i < 50 && !seen; i++) {
    seen = (await httpGql(B, 'query($id: ID!) { room(id: $id) { id name } }', { id: room.id })).room;
    if (!seen) await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(seen, { id: room.id, name }, 'replica B sees the room created on replica A within 5 s');
});

test('Apollo subscription over GraphQLWsLink on replica A, messages posted on replica B', { timeout: 60_000 }, async (t) => {
  assert.ok(room, 'the previous test created the room');
  const events = [];
  const apollo = makeApollo(events);
  t.after(() => apollo.close());
  const inbox = new Inbox('Apollo subscription on replica A');
  const sub = apollo.client.subscribe({ query: gql(MESSAGE_POSTED), variables: { roomId: room.id } }).subscribe({
    next: (r) => {
      if (r.error) {
        inbox.push({ errors: [describeError(r.error)] });
      } else {
        inbox.push(messageEvent(r));
      }
    },
    error: (err) => inbox.end(`error: ${describeError(err)}`),
    complete: () => inbox.end('complete'),
  });
  try {
    await checkDelivery(t, { inbox, postBase: B, roomId: room.id, baseCount: 0 });
  } catch (err) {
    err.message += `\nclient events: ${JSON.stringify(events)}`;
    throw err;
  } finally {
    sub.unsubscribe();
  }
  // Subscription results were written to the cache as Message objects.
  const ids = Object.keys(apollo.client.cache.extract()).filter((k) => k.startsWith('Message:'));
  assert.ok(ids.length >= 20, `the cache holds ${ids.length} messages`);
});

test('Apollo: stop and dispose leave no socket open', { timeout: 20_000 }, async () => {
  const events = [];
  const apollo = makeApollo(events);
  // Open the socket with a short-lived subscription, then close everything.
  const got = new Promise((resolve, reject) => {
    // Apollo reports a failed socket as a result with an error, then completes.
    const sub = apollo.client.subscribe({ query: gql(MESSAGE_POSTED), variables: { roomId: room.id } }).subscribe({
      next: (r) => r.error && reject(new Error(`${describeError(r.error)} (events ${JSON.stringify(events)})`)),
      error: (err) => reject(new Error(`${describeError(err)} (events ${JSON.stringify(events)})`)),
    });
    apollo.wsClient.on('connected', () => { sub.unsubscribe(); resolve(); });
  });
  await withTimeout(got, 10_000, () => `the Apollo WebSocket did not connect (events ${JSON.stringify(events)})`);
  await apollo.close();
  await assertSocketsClosed();
});

// Queries and mutations over the socket when the connection is lost while
// they are in flight. graphql-ws sends an operation again on the next
// connection until it has its answer; for a mutation that reached the
// server and whose answer was lost, that applies it twice. The client sends
// a mutation once: lost after it was sent, it fails with an
// OutcomeUnknownError. A query is sent again and answered. Kinds are judged
// by the operation operationName selects. Against a real Herald, through a
// TCP proxy that forwards the operation and then loses the answer and the
// connection.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHeraldClient, OutcomeUnknownError } from '@heraldhq/client';
import { Herald, Inbox, controllableSockets, createRoom, gql, post, proxiedClient, quickRetry, subscribedRoom, until } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

const MESSAGE_POSTED = 'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }';
// Two operations, the first of the other kind: the client must judge each
// request by the one operationName selects.
const DOCUMENT = `
  query Count($r: ID!) { room(id: $r) { messageCount } }
  mutation Post($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id text } }
`;
const DOCUMENT_QUERY_LAST = `
  mutation Post($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id text } }
  query Count($r: ID!) { room(id: $r) { messageCount } }
`;

/** A client as `poster` through a TCP proxy in front of herald (see proxiedClient). */
const throughProxy = (t) => proxiedClient(t, herald.port, { user: 'poster' });

/** The texts of a room's retained messages, over HTTP. */
async function texts(roomId) {
  const data = await gql(herald.url, 'query ($r: ID!) { room(id: $r) { messages(last: 100) { nodes { text } } } }', { r: roomId });
  return data.room.messages.nodes.map((m) => m.text);
}

const count = (list, text) => list.filter((x) => x === text).length;
const sentOps = (sockets, name) => sockets.subscribes().filter((m) => m.payload.operationName === name);

test('a mutation in flight when the connection is lost fails with OutcomeUnknownError and is not sent again: applied once', async (t) => {
  const { proxy, sockets, seen, client } = await throughProxy(t);
  // A subscription on the same client: it makes the client reconnect after
  // the loss (where graphql-ws would send the mutation again), and it sees
  // every post in the room, resuming from its cursor.
  const { roomId, inbox } = await subscribedRoom(client, herald.url, poster, MESSAGE_POSTED);
  assert.equal(seen.connected.length, 1);

  // The moment the client first sends the mutation, the server's answers
  // stop reaching it: the mutation is applied, its answer is lost.
  sockets.beforeSend = (frame) => {
    if (frame?.type === 'subscribe' && frame.payload.operationName === 'Post' && sentOps(sockets, 'Post').length === 1) {
      proxy.muteReplies();
    }
  };
  const result = new Inbox('the mutation');
  // No idempotency key: sent twice, it would be stored twice.
  client.subscribe({ query: DOCUMENT, operationName: 'Post', variables: { r: roomId, t: 'once' } }, result.sink);
  await until(() => sentOps(sockets, 'Post').length === 1, 5000, 'the mutation to be sent');
  // Applied on the server, the answer on its way to nowhere: now the
  // connection goes.
  const deadline = Date.now() + 5000;
  while (count(await texts(roomId), 'once') === 0) {
    if (Date.now() > deadline) throw new Error('the mutation was not applied within 5 s');
    await sleep(20);
  }
  assert.equal(result.results.length, 0, 'no answer reached the client');
  proxy.cut();

  await result.waitFor((i) => i.ended, 5000, 'the mutation to end', { allowEnd: true });
  assert.ok(result.error instanceof OutcomeUnknownError,
    `an OutcomeUnknownError, got ${result.ended} after ${JSON.stringify(result.results)}; ` +
    `sent ${sentOps(sockets, 'Post').length} time(s), applied ${count(await texts(roomId), 'once')} time(s)`);
  assert.equal(result.error.code, 'OUTCOME_UNKNOWN');
  assert.equal(result.error.operation, 'mutation');
  assert.equal(result.error.operationName, 'Post');
  assert.match(result.error.message, /connection was lost .*mutation Post.*unknown/);
  assert.equal(result.results.length, 0, 'no result either');

  // The client reconnects for the subscription, which resumes; anything the
  // client sent again would have been applied before the fence.
  await until(() => seen.connected.length >= 2, 5000, 'the client to reconnect');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');
  assert.equal(count(inbox.texts(), 'once'), 1, `the subscription saw the post once: ${JSON.stringify(inbox.texts())}`);
  assert.equal(count(await texts(roomId), 'once'), 1, 'applied once on the server');
  assert.equal(sentOps(sockets, 'Post').length, 1, 'the mutation went out once');
  assert.equal(inbox.ended, null, 'the subscription goes on');
});

test('a query in flight when the connection is lost is sent again and answered', async (t) => {
  const { proxy, sockets, seen, client } = await throughProxy(t);
  const roomId = await createRoom(herald.url, poster);
  await post(herald.url, roomId, 'one', poster);
  sockets.beforeSend = (frame) => {
    if (frame?.type === 'subscribe' && frame.payload.operationName === 'Count' && sentOps(sockets, 'Count').length === 1) {
      proxy.muteReplies();
      // Long enough for the server to answer; the answer is lost.
      setTimeout(() => proxy.cut(), 200);
    }
  };
  const result = new Inbox('the query');
  // The mutation comes first in the document; operationName picks the query.
  client.subscribe({ query: DOCUMENT_QUERY_LAST, operationName: 'Count', variables: { r: roomId } }, result.sink);
  await result.waitFor((i) => i.ended, 10_000, 'the query\'s answer', { allowEnd: true });
  assert.equal(result.ended, 'complete', `answered and complete, not ${result.ended}`);
  assert.deepEqual(result.results.map((r) => r.data?.room?.messageCount), [1]);
  assert.equal(sentOps(sockets, 'Count').length, 2, 'sent again on the new connection');
  assert.equal(seen.connected.length, 2, 'answered on the second connection');
  assert.ok(seen.closed.length >= 1, 'the first connection was lost');
});

test('a mutation not yet sent when the connection is lost (the client reconnecting) is sent once connected, and answered', async (t) => {
  const sockets = await controllableSockets();
  const client = createHeraldClient({ url: herald.wsURL, user: 'poster', webSocketImpl: sockets.WebSocket, retryWait: quickRetry });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const { roomId, inbox } = await subscribedRoom(client, herald.url, poster, MESSAGE_POSTED);
  sockets.setOffline(true);
  sockets.drop();
  const result = new Inbox('the mutation');
  client.subscribe({ query: DOCUMENT, operationName: 'Post', variables: { r: roomId, t: 'later' } }, result.sink);
  // Reconnects fail meanwhile (close and error events): nothing was sent, so nothing is lost.
  await until(() => sockets.attempts >= 3, 5000, 'reconnect attempts to fail');
  assert.equal(result.ended, null, 'still waiting for a connection');
  sockets.setOffline(false);
  await result.waitFor((i) => i.ended, 10_000, 'the answer', { allowEnd: true });
  assert.equal(result.ended, 'complete');
  assert.equal(result.results[0]?.data?.postMessage?.text, 'later');
  assert.equal(sentOps(sockets, 'Post').length, 1);
  await inbox.waitForText('later');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');
  assert.equal(count(await texts(roomId), 'later'), 1);
});

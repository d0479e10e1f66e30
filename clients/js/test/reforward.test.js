// HeraldLink and a subscription forwarded again: Apollo Client's restart()
// re-subscribes to the link's observable, and RetryLink calls
// forward(operation) again after an error. Either way it is the same
// operation, which started after a page's cursor; forwarded again, it must
// resume after the last cursor it delivered, not replay from the page's
// (every event the application already has, again). Against a real Herald.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApolloClient, ApolloLink, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { RetryLink } from '@apollo/client/link/retry';
import { createHeraldClient } from '@heraldhq/client';
import { HeraldLink } from '@heraldhq/client/apollo';
import { Herald, Inbox, controllableSockets, createRoom, gql, post, quickRetry, range, until } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

const PAGE = 'query ($r: ID!) { room(id: $r) { messages(last: 50) { nodes { id text } pageInfo { endCursor } } } }';
const POSTED = apolloGql`subscription Posted($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { id text } }`;

/** A room with three messages, rendered: { roomId, cursor } (the page's endCursor). */
async function renderedRoom() {
  const roomId = await createRoom(herald.url, poster);
  for (const text of range('old', 0, 3)) await post(herald.url, roomId, text, poster);
  const page = (await gql(herald.url, PAGE, { r: roomId })).room.messages;
  return { roomId, cursor: page.pageInfo.endCursor };
}

/** Subscribes through Apollo Client; the inbox gets each result's data and the cursors seen. */
function subscribe(apollo, roomId, cursor) {
  const inbox = new Inbox('Posted');
  inbox.cursors = [];
  const observable = apollo.subscribe({ query: POSTED, variables: { r: roomId, after: cursor } });
  const subscription = observable.subscribe({
    next: ({ data, error, extensions }) => {
      if (error) return inbox.sink.error(error);
      inbox.cursors.push(extensions?.cursor);
      inbox.sink.next({ data });
    },
    error: inbox.sink.error,
    complete: inbox.sink.complete,
  });
  return { inbox, observable, subscription };
}

test('HeraldLink: restart() resumes after the last cursor delivered, not from the page\'s cursor', async (t) => {
  const sockets = await controllableSockets();
  const client = createHeraldClient({ url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry });
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: herald.url } }), cache: new InMemoryCache() });
  const { roomId, cursor } = await renderedRoom();
  const { inbox, observable, subscription } = subscribe(apollo, roomId, cursor);
  t.after(async () => { subscription.unsubscribe(); apollo.stop(); await client.dispose(); await sockets.close(); });

  for (const text of range('live', 0, 5)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('live-4');
  const last = inbox.cursors.at(-1);
  assert.equal(typeof last, 'string');

  observable.restart();
  for (const text of range('after', 0, 5)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('after-4');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');

  assert.deepEqual(inbox.texts(), [...range('live', 0, 5), ...range('after', 0, 5), 'fence'],
    'every message after the page once and in order, across the restart');
  const subs = sockets.subscribes();
  assert.equal(subs.length, 2, 'subscribed, then subscribed again by the restart');
  assert.equal(subs[0].payload.variables.after, cursor, 'first after the page\'s cursor');
  assert.equal(subs[1].payload.variables.after, last, 'then after the last cursor delivered');
  assert.equal(inbox.ended, null);
});

test('HeraldLink behind RetryLink: the subscription forwarded again after an error resumes after its last cursor', async (t) => {
  const sockets = await controllableSockets();
  // No reconnects of its own: a lost socket fails the subscription, and
  // RetryLink forwards the operation again.
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry, retryAttempts: 0,
  });
  let retries = 0;
  const retry = new RetryLink({
    delay: { initial: 50, max: 50, jitter: false },
    attempts: { max: 3, retryIf: (error) => { retries++; return !!error; } },
  });
  const apollo = new ApolloClient({
    link: ApolloLink.from([retry, new HeraldLink({ client, http: { uri: herald.url } })]),
    cache: new InMemoryCache(),
  });
  const { roomId, cursor } = await renderedRoom();
  const { inbox, subscription } = subscribe(apollo, roomId, cursor);
  t.after(async () => { subscription.unsubscribe(); apollo.stop(); await client.dispose(); await sockets.close(); });

  for (const text of range('live', 0, 5)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('live-4');
  const last = inbox.cursors.at(-1);

  sockets.drop();
  for (const text of range('away', 0, 5)) await post(herald.url, roomId, text, poster);
  await until(() => retries >= 1, 5000, 'RetryLink to retry');
  await inbox.waitForText('away-4');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');

  assert.equal(retries, 1, 'one error, one retry');
  assert.deepEqual(inbox.texts(), [...range('live', 0, 5), ...range('away', 0, 5), 'fence'],
    'every message after the page once and in order, across the retry');
  const subs = sockets.subscribes();
  assert.equal(subs.length, 2, 'subscribed, then forwarded again by RetryLink');
  assert.equal(subs[0].payload.variables.after, cursor);
  assert.equal(subs[1].payload.variables.after, last, 'the retry resumed after the last cursor delivered');
  assert.equal(inbox.ended, null);
});

test('HeraldLink: a new subscription with the same variables starts where its variables say', async (t) => {
  const sockets = await controllableSockets();
  const client = createHeraldClient({ url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry });
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: herald.url } }), cache: new InMemoryCache() });
  const { roomId, cursor } = await renderedRoom();
  const first = subscribe(apollo, roomId, cursor);
  t.after(async () => { apollo.stop(); await client.dispose(); await sockets.close(); });
  await post(herald.url, roomId, 'live-0', poster);
  await first.inbox.waitForText('live-0');
  first.subscription.unsubscribe();

  // Another client.subscribe (a component mounted again): a new operation,
  // which asks for everything after the page.
  const second = subscribe(apollo, roomId, cursor);
  t.after(() => second.subscription.unsubscribe());
  await post(herald.url, roomId, 'live-1', poster);
  await second.inbox.waitForText('live-1');
  assert.deepEqual(second.inbox.texts(), ['live-0', 'live-1']);
  assert.equal(sockets.subscribes().at(-1).payload.variables.after, cursor);
});

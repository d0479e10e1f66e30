// Point 3: the hand-over from a server-rendered page. The page renders a
// room's latest messages from a query that also returns a cursor
// (messages { resumeCursor }: the room's log position when it was read), then
// subscribes after that cursor. Messages posted between the query and the
// subscribe must all arrive, and none of those the page rendered, nor any
// twice: also for a room with no message yet (no endCursor), and with
// roomEvents, no change the page already showed. Against a real Herald.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApolloClient, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { createHeraldClient } from '@heraldhq/client';
import { HeraldLink } from '@heraldhq/client/apollo';
import { Herald, Inbox, controllableSockets, createRoom, gql, post, quickRetry, range } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

// What a server-rendered page queries: the latest messages and the cursor to go on from.
const PAGE = `query ($r: ID!) { room(id: $r) { messages(last: 50) { nodes { id text } pageInfo { endCursor } resumeCursor } } }`;

test('subscribeAfter(resumeCursor): messages posted between the page query and the subscribe all arrive, none twice', async (t) => {
  const sockets = await controllableSockets();
  const client = createHeraldClient({ url: herald.wsURL, webSocketImpl: sockets.WebSocket, retryWait: quickRetry });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const roomId = await createRoom(herald.url, poster);
  for (const text of range('old', 0, 5)) await post(herald.url, roomId, text, poster);

  // "Server render": over HTTP, as a page's server would.
  const page = (await gql(herald.url, PAGE, { r: roomId })).room.messages;
  assert.deepEqual(page.nodes.map((m) => m.text), range('old', 0, 5));
  assert.equal(typeof page.resumeCursor, 'string');

  // Posted after the render, before the browser subscribes.
  for (const text of range('gap', 0, 10)) await post(herald.url, roomId, text, poster);

  const inbox = new Inbox('messagePosted after resumeCursor');
  // The document does not mention `after`: the client adds it.
  const sub = client.subscribeAfter(page.resumeCursor,
    { query: 'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }', variables: { r: roomId } }, inbox.sink);
  assert.equal(sub.cursor, page.resumeCursor);
  // Posted at once, while the subscription is being set up and after.
  for (const text of range('live', 0, 10)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('live-9');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');

  assert.deepEqual(inbox.texts(), [...range('gap', 0, 10), ...range('live', 0, 10), 'fence'],
    'everything after the rendered page, exactly once and in order, and nothing the page showed');
  const first = sockets.subscribes()[0];
  assert.equal(first.payload.variables.after, page.resumeCursor, 'the subscribe carried the page\'s cursor');
  sub();
});

test('subscribeAfter(resumeCursor) from an empty room: no endCursor, and every message posted after the page arrives once, in order', async (t) => {
  const sockets = await controllableSockets();
  const client = createHeraldClient({ url: herald.wsURL, webSocketImpl: sockets.WebSocket, retryWait: quickRetry });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const roomId = await createRoom(herald.url, poster);

  const page = (await gql(herald.url, PAGE, { r: roomId })).room.messages;
  assert.deepEqual(page.nodes, []);
  assert.equal(page.pageInfo.endCursor, null, 'an empty room has no endCursor');
  assert.equal(typeof page.resumeCursor, 'string', 'but it has a resumeCursor');

  // Posted after the render, before the browser subscribes: subscribing from
  // now (subscribeAfter(null, …)) would miss them.
  for (const text of range('gap', 0, 10)) await post(herald.url, roomId, text, poster);

  const inbox = new Inbox('messagePosted after an empty room\'s resumeCursor');
  const sub = client.subscribeAfter(page.resumeCursor,
    { query: 'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }', variables: { r: roomId } }, inbox.sink);
  for (const text of range('live', 0, 5)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('live-4');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');

  assert.deepEqual(inbox.texts(), [...range('gap', 0, 10), ...range('live', 0, 5), 'fence'],
    'every message of the room, exactly once and in order');
  assert.equal(sockets.subscribes()[0].payload.variables.after, page.resumeCursor, 'the subscribe carried the page\'s cursor');
  sub();
});

test('roomEvents after resumeCursor: an edit the page already shows is not replayed (after endCursor it is)', async (t) => {
  const sockets = await controllableSockets();
  const client = createHeraldClient({ url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const roomId = await createRoom(herald.url, poster);
  const m1 = await post(herald.url, roomId, 'm1', poster);
  await post(herald.url, roomId, 'm2', poster);
  // The room's last change is an edit of an older message.
  await gql(herald.url, 'mutation ($id: ID!) { editMessage(id: $id, version: 1, text: "m1-edited") { version } }', { id: m1.id }, poster);

  const page = (await gql(herald.url, PAGE, { r: roomId })).room.messages;
  assert.deepEqual(page.nodes.map((m) => m.text), ['m1-edited', 'm2'], 'the page shows the edit');
  assert.notEqual(page.resumeCursor, page.pageInfo.endCursor, 'the room moved on after its newest message');

  await post(herald.url, roomId, 'm3', poster);

  const EVENTS = 'subscription ($r: ID!) { roomEvents(roomId: $r) { kind message { text } } }';
  const events = (inbox) => inbox.results.map((r) => (r.data?.roomEvents
    ? `${r.data.roomEvents.kind} ${r.data.roomEvents.message.text}` : JSON.stringify(r)));
  const has = (inbox, e) => inbox.waitFor((i) => events(i).includes(e), 10_000, JSON.stringify(e));
  const viaResume = new Inbox('roomEvents after resumeCursor');
  const viaEnd = new Inbox('roomEvents after endCursor');
  const subs = [
    client.subscribeAfter(page.resumeCursor, { query: EVENTS, variables: { r: roomId } }, viaResume.sink),
    client.subscribeAfter(page.pageInfo.endCursor, { query: EVENTS, variables: { r: roomId } }, viaEnd.sink),
  ];
  t.after(() => subs.forEach((s) => s()));
  await has(viaResume, 'MESSAGE_POSTED m3');
  await has(viaEnd, 'MESSAGE_POSTED m3');
  await post(herald.url, roomId, 'fence', poster);
  await has(viaResume, 'MESSAGE_POSTED fence');
  await has(viaEnd, 'MESSAGE_POSTED fence');

  assert.deepEqual(events(viaResume), ['MESSAGE_POSTED m3', 'MESSAGE_POSTED fence'],
    'only what happened after the page was read');
  assert.deepEqual(events(viaEnd), ['MESSAGE_EDITED m1-edited', 'MESSAGE_POSTED m3', 'MESSAGE_POSTED fence'],
    'after endCursor, the edit the page already showed comes again');
});

test('HeraldLink: the page query goes over HTTP, the subscription after its cursor over the socket, with no gap', async (t) => {
  const sockets = await controllableSockets();
  const client = createHeraldClient({ url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry });
  const httpRequests = [];
  const countingFetch = (url, init) => {
    httpRequests.push(JSON.parse(init.body).operationName ?? JSON.parse(init.body).query.slice(0, 40));
    return fetch(url, init);
  };
  const apollo = new ApolloClient({
    link: new HeraldLink({ client, http: { uri: herald.url, fetch: countingFetch } }),
    cache: new InMemoryCache(),
  });
  t.after(async () => { apollo.stop(); await client.dispose(); await sockets.close(); });
  const roomId = await createRoom(herald.url, poster);
  for (const text of range('old', 0, 3)) await post(herald.url, roomId, text, poster);

  const { data } = await apollo.query({
    query: apolloGql`query Page($r: ID!) { room(id: $r) { id messages(last: 50) { nodes { id text } resumeCursor } } }`,
    variables: { r: roomId },
  });
  assert.deepEqual(data.room.messages.nodes.map((m) => m.text), range('old', 0, 3));
  assert.deepEqual(httpRequests, ['Page'], 'the query went over HTTP');
  assert.equal(sockets.sent.length, 0, 'nothing over the socket yet');
  const cursor = data.room.messages.resumeCursor;

  for (const text of range('gap', 0, 5)) await post(herald.url, roomId, text, poster);

  const inbox = new Inbox('useSubscription-like');
  const subscription = apollo.subscribe({
    query: apolloGql`subscription Posted($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { id text } }`,
    variables: { r: roomId, after: cursor },
  }).subscribe({
    next: ({ data: d, error }) => (error ? inbox.sink.error(error) : inbox.sink.next({ data: d })),
    error: inbox.sink.error,
    complete: inbox.sink.complete,
  });
  t.after(() => subscription.unsubscribe());
  for (const text of range('live', 0, 5)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('live-4');

  // The socket drops; messages posted meanwhile arrive once it is back.
  sockets.setOffline(true);
  sockets.drop();
  for (const text of range('away', 0, 5)) await post(herald.url, roomId, text, poster);
  sockets.setOffline(false);
  await inbox.waitForText('away-4');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');

  assert.deepEqual(inbox.texts(), [...range('gap', 0, 5), ...range('live', 0, 5), ...range('away', 0, 5), 'fence'],
    'after the page: every message once and in order, across the drop');
  assert.deepEqual(httpRequests, ['Page'], 'the subscription never went over HTTP');
  const subs = sockets.subscribes();
  assert.equal(subs[0].payload.variables.after, cursor, 'subscribed after the page\'s cursor');
  assert.equal(subs[0].payload.operationName, 'Posted');
  assert.ok(subs.length >= 2, 'resubscribed after the drop');
  assert.notEqual(subs.at(-1).payload.variables.after, cursor, 'the resubscribe resumed from a later cursor');

  // A mutation goes over HTTP with the client's credentials.
  const posted = await apollo.mutate({
    mutation: apolloGql`mutation Post($r: ID!) { postMessage(roomId: $r, text: "from-apollo") { id author { name } } }`,
    variables: { r: roomId },
  });
  assert.equal(posted.data.postMessage.author.name, 'reader', 'HTTP carried X-Herald-User from the client');
  assert.deepEqual(httpRequests, ['Page', 'Post']);
  await inbox.waitForText('from-apollo');
});

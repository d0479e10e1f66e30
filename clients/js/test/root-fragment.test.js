// A subscription whose root field is selected through a fragment (a named
// fragment spread, or an inline fragment on Subscription: valid GraphQL,
// which Herald runs) was never resumed: prepareOperation (src/document.ts)
// looked for `after` on a root that is a field only, so the client never
// wrote a cursor, and a reconnect sent the first payload again. What was
// posted while the connection was down was lost (or, with a page's cursor
// in $after, replayed twice).
//
// Expected (README): every subscription resumes after the last cursor it
// received: no gap, no duplicate.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createHeraldClient, prepareOperation } from '@heraldhq/client';
import { Herald, Inbox, controllableSockets, createRoom, post, prime, quickRetry, range, until } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

const SPREAD = `subscription ($r: ID!, $after: String) { ...Posted }
fragment Posted on Subscription { messagePosted(roomId: $r, after: $after) { id text } }`;
const INLINE = 'subscription ($r: ID!) { ... on Subscription { messagePosted(roomId: $r) { id text } } }';

test('prepareOperation finds the `after` a root fragment passes', () => {
  assert.equal(prepareOperation(SPREAD).cursorVariable, 'after', 'named fragment spread at the root');
  assert.ok(prepareOperation(INLINE).cursorVariable, 'inline fragment at the root');
});

test('a subscription selecting its field through a fragment resumes after a dropped socket: no gap, no duplicate', async (t) => {
  const sockets = await controllableSockets();
  let connected = 0;
  const closed = [];
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry,
    on: { connected: () => { connected++; }, closed: (e) => closed.push(e?.code) },
  });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const roomId = await createRoom(herald.url, poster);
  const inbox = new Inbox('messagePosted');
  const sub = client.subscribe({ query: SPREAD, variables: { r: roomId } }, inbox.sink);
  await prime(inbox, herald.url, roomId, poster);
  const probes = inbox.texts().length;
  for (const text of range('msg', 0, 3)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-2');
  assert.equal(sub.cursor, inbox.results.at(-1).extensions?.cursor, 'stop.cursor is the last cursor received');

  sockets.setOffline(true);
  sockets.drop();
  await until(() => closed.length >= 1, 5000, 'the client to notice the dropped socket');
  for (const text of range('msg', 3, 6)) await post(herald.url, roomId, text, poster);
  sockets.setOffline(false);
  await until(() => connected >= 2, 10_000, 'the reconnect');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');

  assert.deepEqual(inbox.texts().slice(probes), [...range('msg', 0, 6), 'fence'],
    'every message posted exactly once and in order');
});

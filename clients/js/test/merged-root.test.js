// A subscription whose one root field is selected twice (two fragments at
// the root each selecting messagePosted with the same arguments, as
// colocated component fragments do) is one root field to GraphQL, which
// merges them, and to Herald (one stream). The client gives each selection
// the cursor variable: it resumes after a reconnect with no gap, and
// subscribeAfter hands over to it. (It used to find "several root fields",
// add no cursor, and resume from now.)
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, Inbox, controllableSockets, createRoom, post, prime, quickRetry, range, until } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;
before(async () => { herald = await Herald.start(['--auth', 'dev']); });
after(async () => { await herald?.close(); });

const MERGED = `subscription ($roomId: ID!) { ...Ids ...Texts }
fragment Ids on Subscription { messagePosted(roomId: $roomId) { id } }
fragment Texts on Subscription { messagePosted(roomId: $roomId) { text } }`;

test('a root field selected through two fragments resumes after a dropped socket: no gap, no duplicate', async (t) => {
  const sockets = await controllableSockets();
  const seen = { closed: 0 };
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry,
    on: { closed: () => { seen.closed++; } },
  });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const roomId = await createRoom(herald.url, poster);
  const inbox = new Inbox('messagePosted');
  const sub = client.subscribe({ query: MERGED, variables: { roomId } }, inbox.sink);
  t.after(() => sub());
  await prime(inbox, herald.url, roomId, poster);
  const probes = inbox.texts().length;
  for (const text of range('msg', 0, 3)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-2');
  assert.ok(sub.cursor, `the subscription records its cursor (got ${sub.cursor})`);

  sockets.setOffline(true);
  sockets.drop();
  await until(() => seen.closed >= 1, 5000, 'the client to notice the dropped socket');
  for (const text of range('msg', 3, 6)) await post(herald.url, roomId, text, poster);
  sockets.setOffline(false);
  await until(() => sockets.subscribes().length >= 2, 10_000, 'the resubscribe');
  for (const text of range('msg', 6, 8)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-7');
  assert.deepEqual(inbox.texts().slice(probes), range('msg', 0, 8),
    `every message once, in order (resubscribe sent ${JSON.stringify(sockets.subscribes().at(-1).payload.variables)})`);
});

test('subscribeAfter(resumeCursor) with a root field selected through two fragments hands over', async (t) => {
  const client = createHeraldClient({ url: herald.wsURL, user: 'reader', retryWait: quickRetry, webSocketImpl: (await import('ws')).default });
  t.after(() => client.dispose());
  const roomId = await createRoom(herald.url, poster);
  const first = await post(herald.url, roomId, 'before', poster);
  await post(herald.url, roomId, 'gap', poster);
  const inbox = new Inbox('messagePosted');
  const sub = client.subscribeAfter(first.cursor, { query: MERGED, variables: { roomId } }, inbox.sink);
  t.after(() => sub());
  await inbox.waitFor((i) => i.texts().includes('gap'), 5000, 'the message posted after the cursor');
});

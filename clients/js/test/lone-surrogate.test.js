// A request whose variables hold half of a UTF-16 surrogate pair alone (a
// chat text cut with String.prototype.slice in the middle of an emoji)
// fails through its own sink and is not sent: Herald would answer it by
// closing the whole socket with 4400, which graphql-ws takes as fatal to
// every other subscription on it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, Inbox, post, quickRetry, subscribedRoom } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;
before(async () => { herald = await Herald.start(['--auth', 'dev']); });
after(async () => { await herald?.close(); });

test('a mutation whose text holds a lone surrogate does not end the other subscriptions on the socket', async (t) => {
  const closes = [];
  const client = createHeraldClient({ url: herald.wsURL, user: 'reader', webSocketImpl: WebSocket, retryWait: quickRetry,
    on: { closed: (e) => closes.push(`${e?.code} ${e?.reason ?? ''}`) } });
  t.after(() => client.dispose());
  const { roomId, inbox, sub } = await subscribedRoom(client, herald.url, poster,
    'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }');
  t.after(() => sub());
  const text = 'hello 👋'.slice(0, 7); // 'hello ' and half of the emoji
  const m = new Inbox('postMessage');
  client.subscribe({ query: 'mutation ($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }',
    variables: { r: roomId, t: text } }, m.sink);
  await m.waitFor((i) => i.ended !== null, 5000, 'the mutation to end', { allowEnd: true });
  await post(herald.url, roomId, 'after-the-bad-one', poster);
  await inbox.waitForText('after-the-bad-one', 5000).catch((err) => {
    throw new Error(`${err.message}; mutation ended with ${m.ended}; socket closes: ${JSON.stringify(closes)}`);
  });
  assert.equal(inbox.ended, null, 'the subscription goes on');
});

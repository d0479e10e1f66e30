// onCursorExpired returning nothing subscribes "from now" (README), also
// when the document gives its `after` variable a default: the client sends
// after: null rather than leaving the variable out, which would let the
// document's default, the expired cursor, apply again.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, Inbox, createRoom, post, quickRetry } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;
before(async () => { herald = await Herald.start(['--auth', 'dev']); });
after(async () => { await herald?.close(); });

test('onCursorExpired returning null subscribes from now, even when $after has a default', async (t) => {
  const client = createHeraldClient({ url: herald.wsURL, user: 'reader', webSocketImpl: WebSocket, retryWait: quickRetry });
  t.after(() => client.dispose());
  const roomId = await createRoom(herald.url, poster);
  await post(herald.url, roomId, 'old-0', poster);
  const stale = Buffer.from('h1:1:5').toString('base64url'); // another incarnation's cursor
  const query = `subscription ($roomId: ID!, $after: String = "${stale}") {
    messagePosted(roomId: $roomId, after: $after) { id text } }`;
  let calls = 0;
  const inbox = new Inbox('default after');
  const sub = client.subscribe({ query, variables: { roomId } }, inbox.sink, { onCursorExpired: () => { calls++; return null; } });
  t.after(() => sub());
  const deadline = Date.now() + 8000;
  for (let i = 0; !inbox.ended && !inbox.texts().some((x) => x.startsWith('live-')) && Date.now() < deadline; i++) {
    await post(herald.url, roomId, `live-${i}`, poster);
    await new Promise((ok) => setTimeout(ok, 200));
  }
  assert.equal(inbox.ended, null, `the subscription goes on from now after onCursorExpired returned null (ended: ${inbox.ended}, onCursorExpired called ${calls} times)`);
  assert.ok(inbox.texts().some((x) => x.startsWith('live-')), `a live message arrives (got ${JSON.stringify(inbox.texts())})`);
  assert.equal(calls, 1, 'onCursorExpired called once');
});

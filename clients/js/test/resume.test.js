// Point 1: a subscription resumes after a socket drop with no gap and no
// duplicate, against a real Herald: the client's socket cut off from the
// test, and Herald itself restarted on the same port and data directory.
// In both, messages are posted while the client is held offline (so a
// client that resubscribed from now would miss them) and while it
// reconnects; the sequence received must be exactly the one posted.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, Inbox, controllableSockets, createRoom, post, prime, quickRetry, range, until } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

/** A client on sockets the test controls, and counts of its connects and closes. */
async function setUp(server) {
  const sockets = await controllableSockets();
  const seen = { connected: 0, closed: [] };
  const client = createHeraldClient({
    url: server.wsURL,
    user: 'reader',
    webSocketImpl: sockets.WebSocket,
    retryWait: quickRetry,
    on: {
      connected: () => { seen.connected++; },
      closed: (e) => { seen.closed.push(e?.code); },
    },
  });
  return { sockets, seen, client };
}

const MESSAGE_POSTED = `subscription ($roomId: ID!, $after: String) {
  messagePosted(roomId: $roomId, after: $after) { id text } }`;

test('a socket cut off mid-stream resumes from the last cursor: no gap, no duplicate', async (t) => {
  const { sockets, seen, client } = await setUp(herald);
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const roomId = await createRoom(herald.url, poster);
  const inbox = new Inbox('messagePosted');
  const sub = client.subscribe({ query: MESSAGE_POSTED, variables: { roomId } }, inbox.sink);
  await prime(inbox, herald.url, roomId, poster);
  const probes = inbox.texts().length;

  for (const text of range('msg', 0, 10)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-9');
  const cursorBeforeDrop = inbox.results.at(-1).extensions.cursor;
  assert.equal(sub.cursor, cursorBeforeDrop, 'the subscription records the cursor of the last result');
  const subscribesBefore = sockets.subscribes().length;

  // Cut the socket and keep the client offline while 10 messages are posted.
  sockets.setOffline(true);
  sockets.drop();
  await until(() => seen.closed.length >= 1, 5000, 'the client to notice the dropped socket');
  for (const text of range('msg', 10, 20)) await post(herald.url, roomId, text, poster);
  // Back online; 10 more while it reconnects and after.
  sockets.setOffline(false);
  for (const text of range('msg', 20, 30)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-29');
  await post(herald.url, roomId, 'fence', poster); // anything still due before it (a duplicate) is in by then
  await inbox.waitForText('fence');

  assert.deepEqual(inbox.texts().slice(probes), [...range('msg', 0, 30), 'fence'],
    'every message posted exactly once and in order');
  assert.ok(seen.connected >= 2, `the client reconnected (connected ${seen.connected} times)`);
  const resubscribe = sockets.subscribes().slice(subscribesBefore);
  assert.ok(resubscribe.length >= 1, 'the subscription was sent again on the new socket');
  assert.equal(resubscribe[0].payload.variables.after, cursorBeforeDrop,
    'the resubscribe resumes after the last cursor received before the drop');
  assert.equal(resubscribe[0].payload.variables.roomId, roomId);
  assert.equal(inbox.ended, null, 'the subscription goes on');
  sub();
});

test('a Herald restart on the same port and data directory: the subscription resumes with no gap, no duplicate', async (t) => {
  const own = await Herald.start(['--auth', 'dev']);
  const { sockets, seen, client } = await setUp(own);
  t.after(async () => { await client.dispose(); await sockets.close(); await own.close(); });
  const roomId = await createRoom(own.url, poster);
  const inbox = new Inbox('messagePosted');
  // No `after` in the document: the client adds the variable itself.
  const sub = client.subscribe({ query: 'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }', variables: { r: roomId } }, inbox.sink);
  await prime(inbox, own.url, roomId, poster);
  const probes = inbox.texts().length;
  for (const text of range('msg', 0, 10)) await post(own.url, roomId, text, poster);
  await inbox.waitForText('msg-9');

  sockets.setOffline(true);
  const how = await own.stop(); // a drain: the socket is closed with 1001
  assert.equal(how, 'exit 0', `herald stopped cleanly${own.logTail()}`);
  await until(() => seen.closed.length >= 1, 5000, 'the client to see its socket closed');
  assert.equal(seen.closed[0], 1001, 'the draining Herald closed the socket with 1001 (going away)');
  await own.start();
  for (const text of range('msg', 10, 20)) await post(own.url, roomId, text, poster);
  sockets.setOffline(false);
  for (const text of range('msg', 20, 30)) await post(own.url, roomId, text, poster);
  await inbox.waitForText('msg-29', 20_000);
  await post(own.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');

  assert.deepEqual(inbox.texts().slice(probes), [...range('msg', 0, 30), 'fence'],
    'every message posted exactly once and in order, across the restart');
  assert.ok(seen.connected >= 2, `the client reconnected (connected ${seen.connected} times)`);
  const last = sockets.subscribes().at(-1);
  assert.match(last.payload.query, /after: \$after/, 'the client added the after argument');
  assert.equal(typeof last.payload.variables.after, 'string', 'the resubscribe carried a cursor');
  sub();
});

test('CURSOR_EXPIRED: onCursorExpired refetches and the subscription goes on after the cursor it returns', async (t) => {
  const { sockets, client } = await setUp(herald);
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const roomId = await createRoom(herald.url, poster);
  await post(herald.url, roomId, 'old-0', poster);
  // A well-formed cursor of another incarnation of the log (epoch 1).
  const stale = Buffer.from('h1:1:5').toString('base64url');

  // Without a handler the application gets the error.
  const plain = new Inbox('no handler');
  client.subscribeAfter(stale, { query: MESSAGE_POSTED, variables: { roomId } }, plain.sink);
  await plain.waitFor((i) => i.ended !== null || i.results.length > 0, 10_000, 'an answer', { allowEnd: true });
  const errors = plain.error ?? plain.results[0]?.errors;
  assert.equal(errors?.[0]?.extensions?.code, 'CURSOR_EXPIRED', `got ${JSON.stringify(plain.results)} ${plain.ended}`);

  let refetches = 0;
  const inbox = new Inbox('with handler');
  const sub = client.subscribeAfter(stale, { query: MESSAGE_POSTED, variables: { roomId } }, inbox.sink, {
    async onCursorExpired(errs) {
      assert.equal(errs[0].extensions.code, 'CURSOR_EXPIRED');
      refetches++;
      await post(herald.url, roomId, 'between-0', poster); // posted after the refetch's answer
      const page = await fetchPage(roomId);
      await post(herald.url, roomId, 'between-1', poster);
      return page;
    },
  });
  await inbox.waitForText('between-1');
  await post(herald.url, roomId, 'live-0', poster);
  await inbox.waitForText('live-0');
  assert.equal(refetches, 1);
  assert.deepEqual(inbox.texts(), ['between-1', 'live-0'], 'resumed after the refetched page: nothing missed, nothing twice');
  assert.equal(inbox.ended, null);
  sub();
});

test('CURSOR_EXPIRED again and again: onCursorExpired is retried with back-off, and after three calls the subscription fails', async (t) => {
  const sockets = await controllableSockets();
  const waits = [];
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket,
    retryWait: (n) => { waits.push(n); return quickRetry(); },
  });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const roomId = await createRoom(herald.url, poster);
  await post(herald.url, roomId, 'old-0', poster);
  const stale = Buffer.from('h1:1:5').toString('base64url');

  // A handler answering from a cache that holds an expired cursor too.
  const calls = [];
  const inbox = new Inbox('stale handler');
  const sub = client.subscribeAfter(stale, { query: MESSAGE_POSTED, variables: { roomId } }, inbox.sink, {
    onCursorExpired() {
      calls.push(Date.now());
      if (calls.length > 20) sub(); // a tight loop: stop it, the assertions below fail
      return stale;
    },
  });
  await until(() => inbox.ended !== null || calls.length > 20, 10_000, 'the subscription to fail');
  await new Promise((ok) => setTimeout(ok, 300)); // nothing more after it
  assert.equal(calls.length, 3, `onCursorExpired called three times in a row, not in a loop (${calls.length} calls)`);
  assert.deepEqual(waits, [0, 1], 'the second and third calls waited retryWait(0) and retryWait(1)');
  const errors = inbox.error ?? inbox.results.at(-1)?.errors;
  assert.equal(errors?.[0]?.extensions?.code, 'CURSOR_EXPIRED', `failed with the errors: ${JSON.stringify(inbox.results)} ${inbox.ended}`);
  assert.notEqual(inbox.ended, null, 'the subscription ended');
  assert.equal(sockets.subscribes().length, 4, 'the first subscribe and one after each call');
});

test('unsubscribe() or dispose() while onCursorExpired runs: the subscription completes at once, whatever the handler does later', async (t) => {
  const roomId = await createRoom(herald.url, poster);
  const stale = Buffer.from('h1:1:5').toString('base64url');
  for (const how of ['unsubscribe', 'dispose']) {
    await t.test(how, async (st) => {
      const { sockets, client } = await setUp(herald);
      st.after(async () => { await client.dispose(); await sockets.close(); });
      let settle;
      const inbox = new Inbox(`${how} during the handler`);
      const sub = client.subscribeAfter(stale, { query: MESSAGE_POSTED, variables: { roomId } }, inbox.sink, {
        // A refetch that takes its time (a slow network).
        onCursorExpired: () => new Promise((ok, fail) => { settle = { ok, fail }; }),
      });
      await until(() => settle !== undefined, 10_000, 'onCursorExpired to be called');
      const subscribes = sockets.subscribes().length;
      if (how === 'unsubscribe') sub();
      else await client.dispose();
      await inbox.waitFor((i) => i.ended !== null, 1000, 'the subscription to complete', { allowEnd: true });
      assert.equal(inbox.ended, 'complete');
      // The handler answers late: with a cursor, or failing.
      if (how === 'unsubscribe') settle.ok(stale);
      else settle.fail(new Error('the refetch failed'));
      await new Promise((ok) => setTimeout(ok, 300));
      assert.equal(inbox.ended, 'complete', 'nothing after the completion');
      assert.equal(sockets.subscribes().length, subscribes, 'no subscribe after it');
    });
  }
});

/** The endCursor of the room's latest messages, as a page refetching them gets it. */
async function fetchPage(roomId) {
  const res = await fetch(herald.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      query: 'query ($r: ID!) { room(id: $r) { messages(last: 50) { nodes { text } pageInfo { endCursor } } } }',
      variables: { r: roomId },
    }),
    signal: AbortSignal.timeout(10_000),
  });
  const { data } = await res.json();
  return data.room.messages.pageInfo.endCursor;
}

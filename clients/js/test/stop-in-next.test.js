// Stopping an operation in its own `next` ended every other subscription
// on the socket when the server's `complete` (or `error`) for it came in
// the same TCP read.
//
// graphql-ws (dist/client.js, subscribe) counts running operations in
// `locks`. Its release (locks--, done) ran at once, while its listener for
// the operation goes only a few promise ticks later; `ws` hands over every
// frame of one read synchronously, so the `complete` in the same read
// released it a second time. One count short, the socket closed (1000, not
// reconnected) under the other subscriptions, which completed as if the
// server had ended them. The client releases an operation it stops after
// the frames read with the current one (src/client.ts, releaseSoon); an
// `error` so read completes the stopped sink rather than failing it.
//
// Expected (README): stopping one operation touches no other.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket, { WebSocketServer } from 'ws';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, Inbox, post, subscribedRoom, until } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

const MESSAGE_POSTED = 'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }';

test('a query over the socket stopped in its own next does not end the other subscriptions (real Herald)', async (t) => {
  const closed = [];
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: WebSocket,
    on: { closed: (e) => closed.push(e?.code) },
  });
  t.after(() => client.dispose());
  const { roomId, inbox } = await subscribedRoom(client, herald.url, poster, MESSAGE_POSTED);

  // "Take the first result and stop": Herald writes the query's next and
  // complete in one batch.
  let got = 0;
  let queryEnded = null;
  const stopQuery = client.subscribe({ query: '{ __typename }' }, {
    next() { got++; stopQuery(); },
    error(e) { queryEnded = `error ${e}`; },
    complete() { queryEnded = 'complete'; },
  });
  await until(() => queryEnded !== null, 5000, 'the query to end');
  assert.equal(got, 1);
  await sleep(300);

  assert.equal(inbox.ended, null, `the messagePosted subscription must still run (closes seen: ${JSON.stringify(closed)})`);
  await post(herald.url, roomId, 'after-the-query', poster);
  await inbox.waitForText('after-the-query', 5000);
});

for (const ending of ['complete', 'error']) test(`stop() in next with the ${ending} in the same read leaves the other subscription running (protocol server)`, async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('graphql-transport-ws') ? 'graphql-transport-ws' : false) });
  await new Promise((ok) => wss.once('listening', ok));
  let connections = 0;
  const subs = new Map(); // operation id -> socket
  wss.on('connection', (sock) => {
    connections++;
    sock.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'connection_init') sock.send(JSON.stringify({ type: 'connection_ack' }));
      if (msg.type !== 'subscribe') return;
      if (msg.payload.query.includes('roomCreated')) {
        subs.set(msg.id, sock); // the long-running one: results sent later
        return;
      }
      // the short one: next and complete in one TCP write
      sock._socket.cork();
      sock.send(JSON.stringify({ id: msg.id, type: 'next', payload: { data: { __typename: 'Query' } } }));
      sock.send(JSON.stringify(ending === 'complete' ? { id: msg.id, type: 'complete' } : { id: msg.id, type: 'error', payload: [{ message: 'refused' }] }));
      process.nextTick(() => sock._socket.uncork());
    });
  });
  const closed = [];
  const client = createHeraldClient({
    url: `ws://127.0.0.1:${wss.address().port}/graphql`, webSocketImpl: WebSocket,
    on: { closed: (e) => closed.push(e?.code) },
  });
  t.after(async () => {
    await client.dispose();
    for (const c of wss.clients) c.terminate();
    await new Promise((ok) => wss.close(ok));
  });

  const long = new Inbox('roomCreated');
  client.subscribe({ query: 'subscription { roomCreated { id } }' }, long.sink);
  await until(() => subs.size === 1, 3000, 'the long subscription to reach the server');

  let queryEnded = null;
  const stopQuery = client.subscribe({ query: '{ __typename }' }, {
    next() { stopQuery(); },
    error(e) { queryEnded = `error ${e}`; },
    complete() { queryEnded = 'complete'; },
  });
  await until(() => queryEnded !== null, 3000, 'the query to end');
  assert.equal(queryEnded, 'complete', 'a sink that stopped completes; it gets no error after it');
  await sleep(200);

  assert.deepEqual(closed, [], 'no socket closed');
  assert.equal(long.ended, null, 'the other subscription goes on');
  const [[id, sock]] = [...subs];
  sock.send(JSON.stringify({ id, type: 'next', payload: { data: { roomCreated: { id: 'r1' } }, extensions: { cursor: 'c1' } } }));
  await long.waitFor((i) => i.results.length === 1, 3000, 'a result of the other subscription');
  assert.equal(connections, 1);
});

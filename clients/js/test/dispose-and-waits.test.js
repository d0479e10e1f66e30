// What dispose() does to a mutation in flight, the wait after every
// subscription stopped during a back-off, and what a getToken that never
// answers leaves behind, against graphql-transport-ws servers of the
// test's own: no Herald needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import WebSocket from 'ws';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHeraldClient } from '@heraldhq/client';
import { Inbox, protocolServer, quickRetry, until } from './lib/herald.js';

const roomCreated = (id, roomId, cursor) =>
  JSON.stringify({ id, type: 'next', payload: { data: { roomCreated: { id: roomId } }, extensions: { cursor } } });

// README: "a mutation sent over the socket is never sent twice: lost in
// flight, it fails with an OutcomeUnknownError". dispose() with one sent
// and unanswered: its sink must not just complete (as if it had been
// answered, or never sent).
test('dispose() while a mutation is in flight: the mutation fails with OutcomeUnknownError, not a bare complete', async (t) => {
  const server = await protocolServer(t, () => { /* never answers */ });
  const client = createHeraldClient({ url: server.url, webSocketImpl: WebSocket, retryWait: quickRetry, pingInterval: 0 });
  let outcome = null;
  client.subscribe({ query: 'mutation Post { postMessage(roomId: "r", text: "hi") { id } }', operationName: 'Post' }, {
    next(r) { outcome = `next ${JSON.stringify(r)}`; },
    error(e) { outcome ??= e?.name ?? String(e); },
    complete() { outcome ??= 'complete (no result, no error)'; },
  });
  await until(() => server.subscribes.length === 1, 5000, 'the mutation to reach the server');
  await client.dispose();
  await until(() => outcome !== null, 3000, 'the mutation to end');
  assert.equal(outcome, 'OutcomeUnknownError', 'a mutation sent and unanswered when the client was disposed of');
});

// Every subscription stopped during the back-off wait after a lost
// connection: a later subscribe is no reconnect, nothing runs; it should
// connect at once (as the README says for the wait after a 1000), not
// wait retryWait first.
test('every subscription stopped during the back-off wait: a later subscribe connects at once, without retryWait', async (t) => {
  const server = await protocolServer(t, (sock, msg) => sock.send(roomCreated(msg.id, 'r1', 'c1')));
  const waits = [];
  const client = createHeraldClient({
    url: server.url, webSocketImpl: WebSocket, pingInterval: 0,
    retryWait: async (n) => { waits.push(n); await sleep(800); },
  });
  t.after(() => client.dispose());
  const first = new Inbox('first');
  const stop1 = client.subscribe({ query: 'subscription { roomCreated { id } }' }, first.sink);
  await first.waitFor((i) => i.results.length >= 1, 5000, 'a result');
  server.drop(); // a lost connection: graphql-ws waits retryWait before reconnecting
  await until(() => waits.length === 1, 3000, 'the back-off wait');
  stop1(); // nothing runs any more
  await sleep(1000); // the wait ends; nothing connects
  const subscribesBefore = server.subscribes.length;
  const second = new Inbox('second');
  const began = Date.now();
  const stop2 = client.subscribe({ query: 'subscription { roomCreated { id } }' }, second.sink);
  t.after(() => stop2());
  await second.waitFor((i) => i.results.length >= 1, 5000, 'a result for the later subscribe');
  const took = Date.now() - began;
  assert.equal(server.subscribes.length, subscribesBefore + 1);
  assert.deepEqual(waits, [0], `retryWait calls (the later subscribe took ${took} ms)`);
  assert.ok(took < 700, `the later subscribe took ${took} ms to connect (retryWait waits 800)`);
});

// getTokenTimeout 0 and a getToken that never answers: a connect given up
// on (here the server closes each connection 30 ms after it opens, as
// Herald does after its init timeout) leaves nothing behind; each used to
// leave a listener on the client's dispose signal, and the connect held by
// the hung call, without limit.
test('getTokenTimeout 0 and a getToken that hangs: reconnects leave no listeners behind (no MaxListenersExceededWarning)', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'graphql-transport-ws' });
  await new Promise((ok) => wss.once('listening', ok));
  let connections = 0;
  wss.on('connection', (sock) => { connections++; setTimeout(() => sock.close(4408, 'Connection initialisation timeout'), 30); });
  t.after(async () => { for (const c of wss.clients) c.terminate(); await new Promise((ok) => wss.close(ok)); });
  const warnings = [];
  const onWarning = (w) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  let calls = 0;
  const client = createHeraldClient({
    url: `ws://127.0.0.1:${wss.address().port}/graphql`, webSocketImpl: WebSocket, pingInterval: 0,
    retryWait: () => sleep(5), getTokenTimeout: 0,
    getToken: () => { calls++; return new Promise(() => {}); },
  });
  t.after(() => client.dispose());
  const stop = client.subscribe({ query: 'subscription { roomCreated { id } }' }, new Inbox('x').sink);
  t.after(() => stop());
  await until(() => connections >= 25, 10_000, '25 connects');
  await sleep(50);
  assert.deepEqual(warnings.filter((w) => /MaxListeners|leak/i.test(w)), [], `after ${connections} connects (${calls} getToken calls)`);
});

// A getToken slower than the server's init timeout still gets a connect
// through: the next connect joins the call in flight rather than starting
// a new one.
test('a getToken slower than the server\'s init timeout: the next connect joins the call in flight and connects', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'graphql-transport-ws' });
  await new Promise((ok) => wss.once('listening', ok));
  wss.on('connection', (sock) => {
    const timer = setTimeout(() => sock.close(4408, 'Connection initialisation timeout'), 250);
    sock.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'connection_init') { clearTimeout(timer); sock.send(JSON.stringify({ type: 'connection_ack' })); }
      if (msg.type === 'subscribe') sock.send(roomCreated(msg.id, 'r1', 'c1'));
    });
  });
  t.after(async () => { for (const c of wss.clients) c.terminate(); await new Promise((ok) => wss.close(ok)); });
  let calls = 0;
  const client = createHeraldClient({
    url: `ws://127.0.0.1:${wss.address().port}/graphql`, webSocketImpl: WebSocket, pingInterval: 0,
    retryWait: () => sleep(5), getTokenTimeout: 0,
    getToken: async () => { calls++; await sleep(400); return 'tok'; },
  });
  t.after(() => client.dispose());
  const inbox = new Inbox('x');
  const stop = client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  t.after(() => stop());
  await inbox.waitFor((i) => i.results.length >= 1, 4000, `a result (getToken called ${calls} times)`);
});

// The wait before reconnecting after the server's close 1000
// (CLOSE_NORMAL in src/client.ts) is decided when the close arrives (the
// `closed` listener sets waitBeforeConnect) and made in graphql-ws's `url`
// callback, which graphql-ws calls for whatever connect comes next:
//
// 1. An application that stopped its last subscription during that wait
//    still got a connect: getToken is called, a socket opened and
//    acknowledged, only to be closed at once (fixed: the wait now ends in a
//    socket that closes at once, as after dispose()). graphql-ws's own wait (its
//    retryWait, after any other close) checks that an operation is left
//    and connects to nobody; the 1000 path has no such check. Expected
//    (README): the close with 1000 "waits `retryWait` first too", i.e. it
//    is retried as other losses are ("the client retries every kind of
//    loss"), and a loss whose operations have all stopped is not
//    reconnected to (graphql-ws after 1001, shown in the first test's
//    control case).
//
// 2. When graphql-ws does not reconnect after the 1000 at all (the only
//    operation was a mutation in flight, which fails with
//    OutcomeUnknownError), waitBeforeConnect stayed set, and the next
//    connect, for a subscription made any time later, waited retryWait
//    first (fixed: it is cleared once nothing is left running). Expected (README): the wait is for the reconnect "which
//    graphql-ws would answer with a new connect at once"; a later
//    subscribe "connects anew" ("the client's own close (its last
//    subscription stopped, then a new one) reconnects at once").
//
// Runs against an in-process graphql-transport-ws fake on 127.0.0.1.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket, { WebSocketServer } from 'ws';
import { createHeraldClient } from '@heraldhq/client';

async function fakeServer(onSubscribe = () => {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('graphql-transport-ws') ? 'graphql-transport-ws' : false) });
  await new Promise((ok) => wss.once('listening', ok));
  const conns = [];
  wss.on('connection', (sock) => {
    conns.push(sock);
    sock.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'connection_init') sock.send(JSON.stringify({ type: 'connection_ack' }));
      else if (msg.type === 'ping') sock.send(JSON.stringify({ type: 'pong' }));
      else if (msg.type === 'subscribe') onSubscribe(sock, msg);
    });
  });
  return {
    url: `ws://127.0.0.1:${wss.address().port}/graphql`,
    conns,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((ok) => wss.close(ok));
    },
  };
}

async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

for (const code of [1001, 1000]) {
  test(`server closes with ${code}, the last subscription stops during the reconnect wait: no connect for nobody`, async (t) => {
    const server = await fakeServer();
    let tokens = 0;
    const client = createHeraldClient({
      url: server.url, webSocketImpl: WebSocket, getToken: () => { tokens++; return 'token'; },
      retryWait: () => sleep(300),
    });
    t.after(async () => { await client.dispose(); await server.close(); });
    let ended = null;
    const stop = client.subscribe({ query: 'subscription { roomCreated { id } }' },
      { next() {}, error(e) { ended = `error ${e?.code ?? e}`; }, complete() { ended = 'complete'; } });
    await until(() => server.conns.length === 1 && tokens === 1, 3000, 'the first connection');
    await sleep(50);
    server.conns[0].close(code, 'bye');
    await sleep(100); // within the 300 ms wait
    stop();
    await sleep(700); // well past the wait
    assert.equal(ended, 'complete');
    assert.equal(server.conns.length, 1, `no new connection after close ${code} once nothing runs (got ${server.conns.length})`);
    assert.equal(tokens, 1, 'getToken not called for a connect nobody needs');
  });
}

test('server closes with 1000 and graphql-ws does not reconnect: a later subscribe connects at once, without retryWait', async (t) => {
  // The mutation is the only operation; the server closes with 1000 as it
  // receives it (a proxy's idle close, a restart): it fails with
  // OutcomeUnknownError and graphql-ws, with nothing left, connects no more.
  const server = await fakeServer((sock, msg) => { if (msg.payload.query.startsWith('mutation')) sock.close(1000, 'bye'); });
  const waits = [];
  let connected = 0;
  const client = createHeraldClient({
    url: server.url, webSocketImpl: WebSocket,
    retryWait: (n) => { waits.push(n); return sleep(2000); },
    on: { connected: () => { connected++; } },
  });
  t.after(async () => { await client.dispose(); await server.close(); });
  let mutation = null;
  client.subscribe({ query: 'mutation { postMessage(roomId: "r", text: "hi") { id } }' },
    { next() {}, error(e) { mutation = e?.name ?? String(e); }, complete() { mutation = 'complete'; } });
  await until(() => mutation !== null, 3000, 'the mutation to end');
  assert.equal(mutation, 'OutcomeUnknownError');
  await sleep(1000); // nothing runs now; the 1000 close is history
  assert.equal(server.conns.length, 1, 'graphql-ws did not reconnect (nothing to run)');

  const started = Date.now();
  client.subscribe({ query: 'subscription { roomCreated { id } }' }, { next() {}, error() {}, complete() {} });
  await until(() => connected === 2, 5000, 'the new subscription to connect');
  const took = Date.now() - started;
  assert.deepEqual(waits, [], `no retryWait before a fresh connect (waited ${took} ms, retryWait called with ${JSON.stringify(waits)})`);
  assert.ok(took < 1000, `connected in ${took} ms`);
});

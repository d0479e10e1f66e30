// stop() completes a subscription at once and lets go of it, whatever the
// connection is doing.
//
// A page keeps one subscription running (the room list, a notification
// feed) and starts and stops others as the user moves between rooms. While
// the client cannot connect (the network is down, or Herald refuses the
// socket's token with 4403, a session revoked or a refresh failing, which
// the client retries for ever), graphql-ws completes a stopped operation
// only once a connect is acknowledged again: its retry loop awaits the
// connect before it looks at whether the operation was stopped, holding the
// operation's payload and sink meanwhile. Left to it, every room visited
// during an outage stayed in memory (its sink and all the sink holds) for
// as long as the outage lasted, and its sink never heard `complete`. The
// client completes the subscription in stop() and lends graphql-ws its
// sink and payload only until then (src/client.ts, LeasedSink,
// LeasedPayload); graphql-ws still sends nothing for a stopped operation
// after the reconnect, and on an acknowledged socket it still tells the
// server (`complete`).
//
// Runs against an in-process graphql-transport-ws server on 127.0.0.1 and
// the test helpers' controllableSockets (offline: every connect is refused).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer } from 'ws';
import { createHeraldClient } from '@heraldhq/client';
import { controllableSockets, until } from './lib/herald.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

// A graphql-transport-ws server on a loopback port that records what it
// receives: it acknowledges, or (refuse: true) closes at connection_init
// with 4403, as Herald does for a token it rejects.
async function protocolServer(t) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('graphql-transport-ws') ? 'graphql-transport-ws' : false) });
  await new Promise((ok) => wss.once('listening', ok));
  const server = { refuse: false, refused: 0, subscribes: [], completes: [] };
  wss.on('connection', (sock) => {
    sock.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'connection_init') {
        if (!server.refuse) return sock.send(JSON.stringify({ type: 'connection_ack' }));
        server.refused++;
        sock.close(4403, 'Forbidden');
      } else if (msg.type === 'ping') sock.send(JSON.stringify({ type: 'pong' }));
      else if (msg.type === 'subscribe') server.subscribes.push({ id: msg.id, room: msg.payload.variables?.r });
      else if (msg.type === 'complete') server.completes.push(msg.id);
    });
  });
  server.url = `ws://127.0.0.1:${wss.address().port}/graphql`;
  server.rooms = () => server.subscribes.map((s) => s.room);
  t.after(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((ok) => wss.close(ok));
  });
  return server;
}

const ROOM = 'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }';

/** A client of server on controllableSockets, reconnecting every 40 ms; both closed after t. */
async function clientOf(t, server) {
  const sockets = await controllableSockets();
  const client = createHeraldClient({
    url: server.url, webSocketImpl: sockets.WebSocket, pingInterval: 0, getToken: () => 'token',
    retryWait: () => sleep(40),
  });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  return { sockets, client };
}

// How the client comes to wait to reconnect, what counts its attempts, and
// how the wait ends.
const outages = [
  {
    name: 'the network is down',
    begin: ({ sockets }) => sockets.setOffline(true),
    tries: ({ sockets }) => sockets.attempts,
    end: ({ sockets }) => sockets.setOffline(false),
  },
  {
    name: 'Herald refuses the token (4403)',
    begin: ({ server }) => { server.refuse = true; },
    tries: ({ server }) => server.refused,
    end: ({ server }) => { server.refuse = false; },
  },
];

const VISITS = 20;

for (const outage of outages) {
  test(`stop() while the client waits to reconnect (${outage.name}): the subscription completes at once, is let go of, and is not sent after the reconnect`, async (t) => {
    const server = await protocolServer(t);
    const { sockets, client } = await clientOf(t, server);
    const env = { server, sockets };

    // The subscription the page keeps: the client goes on reconnecting for it.
    const keep = client.subscribe({ query: ROOM, variables: { r: 'lobby' } }, { next() {}, error() {}, complete() {} });
    t.after(() => keep());
    await until(() => server.rooms().includes('lobby'), 5000, 'the kept subscription to be sent');

    outage.begin(env);
    const before = outage.tries(env);
    sockets.drop();
    await until(() => outage.tries(env) - before >= 2, 5000, 'the client to try to reconnect');

    // The user visits rooms while the client cannot connect. Each sink, and
    // each payload (its extensions object, which the client sends as given),
    // is watched for being let go of.
    const ends = [];
    const sinks = [];
    const payloads = [];
    const visit = async (i) => {
      const heard = (what) => (ends[i] ??= []).push(what);
      const sink = { next() { heard('next'); }, error(e) { heard(`error ${e?.code ?? e}`); }, complete() { heard('complete'); } };
      const extensions = { visit: i };
      sinks.push(new WeakRef(sink));
      payloads.push(new WeakRef(extensions));
      const stop = client.subscribe({ query: ROOM, variables: { r: `room-${i}` }, extensions }, sink);
      await sleep(5);
      stop();
      assert.deepEqual(ends[i], ['complete'], `room ${i}: completed within stop()`);
    };
    for (let i = 0; i < VISITS; i++) await visit(i);
    const tried = outage.tries(env);
    await sleep(300); // more reconnect attempts, still cut off
    assert.ok(outage.tries(env) > tried, 'sanity: the client is still trying to reconnect');

    await sleep(0);
    gc();
    await sleep(10);
    gc();
    const heldSinks = sinks.filter((r) => r.deref() !== undefined).length;
    const heldPayloads = payloads.filter((r) => r.deref() !== undefined).length;
    t.diagnostic(`${VISITS} subscriptions stopped during the outage: ${heldSinks} sinks and ${heldPayloads} payloads still held`);
    // One may survive a collection by chance (a register, a stack slot).
    assert.ok(heldSinks <= 1, `stopped subscriptions' sinks are let go of during the outage (${heldSinks} of ${VISITS} held)`);
    assert.ok(heldPayloads <= 1, `stopped subscriptions' payloads are let go of during the outage (${heldPayloads} of ${VISITS} held)`);

    // Back: only the kept subscription is sent again, and nothing more
    // reaches the stopped sinks.
    outage.end(env);
    await until(() => server.rooms().filter((r) => r === 'lobby').length === 2, 5000, 'the kept subscription to resume');
    await sleep(200);
    assert.deepEqual(server.rooms().filter((r) => r !== 'lobby'), [], 'no stopped subscription is sent after the reconnect');
    assert.deepEqual(ends, Array(VISITS).fill(['complete']), 'each stopped sink heard complete once, and nothing after it');
  });
}

test('stop() on an acknowledged socket: the subscription completes at once, the server is told (complete), the other goes on', async (t) => {
  const server = await protocolServer(t);
  const { sockets, client } = await clientOf(t, server);
  const keep = client.subscribe({ query: ROOM, variables: { r: 'lobby' } }, { next() {}, error() {}, complete() {} });
  t.after(() => keep());
  let ended = null;
  const stop = client.subscribe({ query: ROOM, variables: { r: 'room' } },
    { next() {}, error(e) { ended = `error ${e?.code ?? e}`; }, complete() { ended ??= 'complete'; } });
  await until(() => server.rooms().includes('room') && server.rooms().includes('lobby'), 5000, 'both subscriptions to be sent');
  const { id } = server.subscribes.find((s) => s.room === 'room');

  stop();
  assert.equal(ended, 'complete', 'completed within stop()');
  await until(() => server.completes.includes(id), 5000, 'the server to receive complete for the stopped subscription');
  await sleep(100);
  assert.deepEqual(server.completes, [id], 'only the stopped subscription is completed on the server');
  assert.equal(sockets.open.size, 1, 'the socket stays open for the other subscription');
  assert.equal(ended, 'complete', 'nothing more reached the stopped sink');
});

// Results reached the sink after the application had unsubscribed.
//
// The `ws` package (Node.js) emits the messages of one TCP read one after
// another, synchronously. graphql-ws stops listening to an operation only
// a few promise ticks after its unsubscribe, and its `next` handler does not
// look at whether the operation is done; the client's own `next`
// (src/client.ts, start()) checked neither `stopped` nor `ended` (it does
// now). So a sink
// that calls stop() (or dispose()) in `next` while a replay is arriving
// (several events in one read, as after every resume) still gets the
// following events, and `stop.cursor` moves past them.
//
// Expected (README): `stop(); // unsubscribe`, and `stop.cursor; // the
// last cursor received (keep it to subscribe after it later)`: after stop()
// nothing more is delivered, and the cursor stays where delivery stopped.
// Otherwise an app that keeps stop.cursor as it stops and resubscribes
// after it later sees the extra events twice; one whose torn-down sink
// ignores them and reads stop.cursor later loses them.
//
// Runs against an in-process graphql-transport-ws fake on 127.0.0.1 that
// sends five results in one TCP write.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket, { WebSocketServer } from 'ws';
import { createHeraldClient } from '@heraldhq/client';

test('no result reaches the sink after stop() is called in next; the cursor stays at the last one delivered', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('graphql-transport-ws') ? 'graphql-transport-ws' : false) });
  await new Promise((ok) => wss.once('listening', ok));
  wss.on('connection', (sock) => {
    sock.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'connection_init') sock.send(JSON.stringify({ type: 'connection_ack' }));
      if (msg.type !== 'subscribe') return;
      // A replay: five events, one TCP write.
      sock._socket.cork();
      for (let n = 1; n <= 5; n++) {
        sock.send(JSON.stringify({ id: msg.id, type: 'next', payload: { data: { roomCreated: { id: `r${n}` } }, extensions: { cursor: `c${n}` } } }));
      }
      process.nextTick(() => sock._socket.uncork());
    });
  });
  const client = createHeraldClient({ url: `ws://127.0.0.1:${wss.address().port}/graphql`, webSocketImpl: WebSocket });
  t.after(async () => {
    await client.dispose();
    for (const c of wss.clients) c.terminate();
    await new Promise((ok) => wss.close(ok));
  });

  const delivered = [];
  let stopped = false;
  let cursorAtStop = null;
  let ended = null;
  const stop = client.subscribe({ query: 'subscription { roomCreated { id } }' }, {
    next(r) {
      delivered.push({ id: r.data.roomCreated.id, afterStop: stopped });
      if (r.data.roomCreated.id === 'r2') {
        stop();
        stopped = true;
        cursorAtStop = stop.cursor;
      }
    },
    error(e) { ended = `error ${e}`; },
    complete() { ended = 'complete'; },
  });
  const deadline = Date.now() + 3000;
  while (ended === null && Date.now() < deadline) await sleep(10);
  await sleep(100);

  assert.equal(ended, 'complete');
  assert.equal(cursorAtStop, 'c2');
  assert.deepEqual(delivered.filter((d) => d.afterStop).map((d) => d.id), [], 'nothing delivered after stop()');
  assert.equal(stop.cursor, 'c2', 'the cursor stays at the last result delivered before stop()');
});

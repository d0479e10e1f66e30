// A `url` the WebSocket constructor refuses (a relative URL, as
// browser apps often pass, on Node.js; a fragment; a scheme that is not
// ws/wss/http/https; in browsers also a ws: URL from an https: page, which
// throws SecurityError). The constructor throws inside graphql-ws's connect,
// an async function nothing awaits or catches: the rejection was unhandled
// (on Node.js that ends the process), the subscription never heard of it
// (no error, no complete, for ever), and dispose() never resolved. The
// client now answers such a constructor with a socket closing with 4005.
//
// Expected (README): "`subscribe` and `subscribeAfter` never throw ... A
// request that cannot be sent ... fails through the sink's `error`", and
// "`dispose()` never rejects and returns at once". Either refusing the url
// in createHeraldClient (as a bad pingInterval or getTokenTimeout is
// refused: "a bad value is refused") or failing the subscription through
// its sink satisfies this test; an unhandled rejection, a subscription
// that hangs and a dispose() that never returns do not.
//
// Runs against an in-process fake: nothing listens, no socket is opened.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';

for (const url of ['/graphql', 'ws://127.0.0.1:9/graphql#x']) {
  test(`a url the WebSocket constructor refuses (${url}): no unhandled rejection, the sink hears of it, dispose() returns`, async () => {
    const unhandled = [];
    const onUnhandled = (err) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      let client;
      try {
        client = createHeraldClient({ url, webSocketImpl: WebSocket, retryWait: () => sleep(20) });
      } catch (err) {
        // Refused at creation, like the other bad options: fine.
        assert.ok(err instanceof Error);
        return;
      }
      let ended = null;
      client.subscribe({ query: 'subscription { roomCreated { id } }' }, {
        next() {},
        error(e) { ended = `error: ${e?.message ?? e?.code ?? e}`; },
        complete() { ended = 'complete'; },
      });
      await sleep(500);
      const disposed = await Promise.race([
        client.dispose().then(() => 'resolved', (e) => `rejected: ${e?.message}`),
        sleep(1000).then(() => 'still pending after 1 s'),
      ]);
      await sleep(50);
      assert.deepEqual(unhandled.map((e) => String(e?.message ?? e)), [], 'no unhandled rejection');
      assert.match(String(ended), /^error/, 'the subscription fails through its sink');
      assert.equal(disposed, 'resolved', 'dispose() returns at once');
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
}

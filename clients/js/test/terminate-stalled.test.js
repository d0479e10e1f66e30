// terminate() ("closes the socket as if it had dropped; the client
// reconnects") on a connection that has stalled, the typical reason to call
// it. graphql-ws keeps an operation's id across reconnects, so frames the
// old socket still receives when the network comes back would reach the
// resumed subscription again under that id. The client stops listening to
// the old socket and drops it (4499, Terminated): nothing arrives twice and
// the cursor never goes back, whether the socket can be dropped at once
// (the ws package's terminate()) or has to wait for its close handshake
// (as in browsers).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, controllableSockets, post, quickRetry, range, subscribedRoom, tcpProxy, until } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

const MESSAGE_POSTED = 'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }';

/**
 * A client through a TCP proxy on sockets of webSocketImpl (ws by default),
 * subscribed to a room that has received msg-0 … msg-2; then the
 * connection stalls, msg-3 … msg-7 are posted (held back on it), the app
 * calls terminate(), and the client reconnects and gets msg-3 … msg-7
 * replayed after its last cursor.
 */
async function terminatedWhileStalled(t, sockets, webSocketImpl, onEnd) {
  const proxy = await tcpProxy(herald.port);
  const seen = { connected: 0, closed: [] };
  const client = createHeraldClient({
    url: proxy.url, user: 'reader', webSocketImpl, retryWait: quickRetry, pingInterval: 0,
    on: {
      connected: () => { seen.connected++; },
      closed: (e) => { seen.closed.push(e?.code); },
    },
  });
  t.after(async () => { onEnd?.(); await client.dispose(); await sockets.close(); await proxy.close(); });
  const { roomId, inbox, sub } = await subscribedRoom(client, herald.url, poster, MESSAGE_POSTED);
  const probes = inbox.texts().length;
  for (const text of range('msg', 0, 3)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-2');

  // The connection stalls (held back both ways, not closed); the app
  // notices (its own heartbeat, the browser's `online` event) and calls
  // terminate(), as graphql-ws documents it for.
  proxy.stall();
  for (const text of range('msg', 3, 8)) await post(herald.url, roomId, text, poster);
  client.terminate();
  await until(() => seen.connected >= 2, 10_000, 'the client to reconnect after terminate()');
  await inbox.waitForText('msg-7'); // replayed on the new connection, after the last cursor
  return { proxy, seen, roomId, inbox, sub, probes, cursorAfterResume: sub.cursor };
}

test('terminate() on a stalled connection, a socket with no terminate() (as in browsers): frames the old socket receives late are not delivered again, the cursor does not go back', async (t) => {
  const sockets = await controllableSockets();
  // The ws package's socket, minus what browsers lack: closed, it waits for
  // the close handshake, and it still hands over frames that arrive meanwhile.
  let hidden = true;
  class BrowserLike extends sockets.WebSocket {
    get terminate() { return hidden ? undefined : sockets.WebSocket.prototype.terminate; }
  }
  const { proxy, seen, roomId, inbox, sub, probes, cursorAfterResume } =
    await terminatedWhileStalled(t, sockets, BrowserLike, () => { hidden = false; });
  assert.deepEqual(seen.closed, [4499], 'closed as graphql-ws\'s terminate() does: 4499');

  // The network comes back: the old socket, still closing, gets msg-3 … msg-7.
  const old = [...sockets.open].filter((s) => s.readyState !== 1);
  assert.equal(old.length, 1, 'the terminated socket is still closing');
  let late = 0;
  old[0].on('message', () => { late++; });
  proxy.release();
  await until(() => late >= 5, 5000, 'the held-back frames to reach the old socket');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');

  assert.deepEqual(inbox.texts().slice(probes), [...range('msg', 0, 8), 'fence'], 'every message exactly once, in order');
  assert.notEqual(sub.cursor, cursorAfterResume, 'sanity: the fence moved the cursor');
  assert.deepEqual(seen.closed, [4499], 'the old socket\'s own close event, when it came, was not reported');
  sub();
});

test('terminate() on a stalled connection, the ws package\'s socket: it is dropped at once, and nothing arrives twice once the network comes back', async (t) => {
  const sockets = await controllableSockets();
  const { proxy, seen, roomId, inbox, sub, probes, cursorAfterResume } = await terminatedWhileStalled(t, sockets, sockets.WebSocket);
  assert.deepEqual(seen.closed, [4499], 'closed as graphql-ws\'s terminate() does: 4499');
  await until(() => [...sockets.open].every((s) => s.readyState === 1), 5000, 'the terminated socket to be dropped');
  assert.equal(sockets.open.size, 1, 'only the new socket is left: the old one did not wait for a close handshake');

  proxy.release(); // the network comes back: whatever was held back finds no socket
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');
  assert.deepEqual(inbox.texts().slice(probes), [...range('msg', 0, 8), 'fence'], 'every message exactly once, in order');
  assert.notEqual(sub.cursor, cursorAfterResume, 'sanity: the fence moved the cursor');
  assert.deepEqual(seen.closed, [4499]);
  sub();
});

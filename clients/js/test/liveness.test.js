// Dead-connection detection against a real Herald: a connection that goes
// silent without closing (a black hole: a NAT entry that timed out, a
// Wi-Fi switch, a laptop waking) is noticed within pingInterval +
// pongTimeout, closed with 4408 and reconnected, and the subscription
// resumes with no gap and no duplicate; a healthy idle connection is never
// closed by it; and dispose() leaves no timer behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, Inbox, controllableSockets, createRoom, post, prime, proxiedClient, quickRetry, range, subscribedRoom, tcpProxy, until } from './lib/herald.js';

const here = dirname(fileURLToPath(import.meta.url));
const poster = { user: 'poster' };
// Herald pings every 15 s by default: within these tests, longer than any
// interval of the client's, so only the client's own pings keep a socket's
// silence short.
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

const MESSAGE_POSTED = 'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }';

/** A client through a TCP proxy in front of herald (see proxiedClient). */
const throughProxy = (t, clientOptions, proxyOptions) => proxiedClient(t, herald.port, { user: 'reader', clientOptions, proxyOptions });

const pings = (sockets) => sockets.sent.filter((m) => m?.type === 'ping').length;

test('a black-holed connection is closed (4408) within pingInterval + pongTimeout and the subscription resumes: every message once, in order', async (t) => {
  const PING = 500;
  const PONG = 500;
  // The budget from the black hole to the new connection's ack: detection
  // (at most PING + PONG after the last frame heard, which was before the
  // black hole), the retry wait (20–60 ms) and a connect over loopback,
  // with room for a busy machine.
  const DEADLINE = PING + PONG + 800;
  const { proxy, sockets, seen, client } = await throughProxy(t, { pingInterval: PING, pongTimeout: PONG });
  const { roomId, inbox, sub } = await subscribedRoom(client, herald.url, poster, MESSAGE_POSTED);
  const probes = inbox.texts().length;
  for (const text of range('msg', 0, 10)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-9');
  await sleep(PING + PONG); // past a ping and its pong: the detection leaves a healthy socket alone
  assert.deepEqual(seen.closed, [], 'nothing closed before the black hole');
  assert.ok(pings(sockets) >= 1, 'the client pinged the quiet socket');
  const cursorBefore = sub.cursor;
  assert.equal(typeof cursorBefore, 'string');
  const subscribesBefore = sockets.subscribes().length;

  proxy.blackHole();
  const holed = Date.now();
  // Posted while the connection is a black hole: a client that resubscribed
  // from now, or never noticed, would miss them.
  for (const text of range('msg', 10, 20)) await post(herald.url, roomId, text, poster);
  await until(() => seen.connected.length >= 2, DEADLINE + 5000, 'the client to reconnect after the black hole');
  const took = seen.connected[1] - holed;
  t.diagnostic(`reconnected ${took} ms after the black hole`);
  assert.ok(took <= DEADLINE, `reconnected ${took} ms after the black hole (deadline ${DEADLINE} ms)`);
  assert.equal(seen.closed.length, 1, `one close: ${JSON.stringify(seen.closed)}`);
  assert.equal(seen.closed[0].code, 4408, 'closed as graphql-ws\'s recipe does: 4408');
  assert.equal(seen.closed[0].reason, 'Request Timeout');
  assert.equal(proxy.accepted, 2, 'the reconnect made a new connection');
  for (const text of range('msg', 20, 30)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-29');
  await post(herald.url, roomId, 'fence', poster); // anything still due before it (a duplicate) is in by then
  await inbox.waitForText('fence');

  assert.deepEqual(inbox.texts().slice(probes), [...range('msg', 0, 30), 'fence'],
    'every message posted exactly once and in order, across the black hole');
  const resubscribe = sockets.subscribes().slice(subscribesBefore);
  assert.equal(resubscribe.length, 1, 'the subscription was sent again once, on the new socket');
  assert.equal(resubscribe[0].payload.variables.after, cursorBefore,
    'the resubscribe resumes after the last cursor received before the black hole');
  assert.equal(inbox.ended, null, 'the subscription goes on');
  assert.equal(seen.connected.length, 2, 'no further reconnect');
  sub();
});

test('a socket with no terminate() (as in browsers): the dead socket\'s close handshake is not waited for, and its frames arriving late are not delivered twice', async (t) => {
  const PING = 400;
  const PONG = 400;
  const sockets = await controllableSockets();
  // The ws package's socket, minus the one thing browsers lack: closed, it
  // waits for the close handshake (ws: up to 30 s), and it still hands over
  // frames that arrive meanwhile.
  let hidden = true;
  class BrowserLike extends sockets.WebSocket {
    get terminate() { return hidden ? undefined : sockets.WebSocket.prototype.terminate; }
  }
  const proxy = await tcpProxy(herald.port);
  const seen = { connected: [], closed: [] };
  const client = createHeraldClient({
    url: proxy.url, user: 'reader', webSocketImpl: BrowserLike, retryWait: quickRetry, pingInterval: PING, pongTimeout: PONG,
    on: {
      connected: () => { seen.connected.push(Date.now()); },
      closed: (e) => { seen.closed.push(e?.code); },
    },
  });
  t.after(async () => { hidden = false; await client.dispose(); await sockets.close(); await proxy.close(); });
  const { roomId, inbox, sub } = await subscribedRoom(client, herald.url, poster, MESSAGE_POSTED);
  const probes = inbox.texts().length;
  for (const text of range('msg', 0, 5)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-4');

  proxy.stall();
  const stalled = Date.now();
  // Herald sends these on the stalled connection (held back) and, after
  // the resume, again on the new one.
  for (const text of range('msg', 5, 15)) await post(herald.url, roomId, text, poster);
  await until(() => seen.connected.length >= 2, PING + PONG + 5000, 'the client to reconnect');
  const took = seen.connected[1] - stalled;
  assert.ok(took <= PING + PONG + 800, `reconnected ${took} ms after the stall, not after a close handshake`);
  assert.deepEqual(seen.closed, [4408]);
  await inbox.waitForText('msg-14');
  // The stall lifts: the old socket, still closing, gets msg-5 … msg-14 again.
  const old = [...sockets.open].filter((s) => s.readyState !== 1);
  assert.equal(old.length, 1, 'the dead socket is still closing (no terminate())');
  let late = 0;
  old[0].on('message', () => { late++; });
  proxy.release();
  await until(() => late >= 10, 5000, 'the held-back frames to reach the dead socket');
  await until(() => old[0].readyState === 3, 5000, 'the dead socket to finish its close handshake');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');
  assert.deepEqual(inbox.texts().slice(probes), [...range('msg', 0, 15), 'fence'], 'every message exactly once, in order');
  assert.deepEqual(seen.closed, [4408], 'the dead socket\'s own close event, when it came, was not reported');
  sub();
});

test('a connect that goes into a black hole (the upgrade never answered) is given up on after pingInterval + pongTimeout, and retried', async (t) => {
  const PING = 400;
  const PONG = 400;
  const { proxy, seen, client } = await throughProxy(t, { pingInterval: PING, pongTimeout: PONG });
  proxy.blackHoleNew = true;
  const started = Date.now();
  const roomId = await createRoom(herald.url, poster);
  const inbox = new Inbox('messagePosted');
  const sub = client.subscribe({ query: MESSAGE_POSTED, variables: { r: roomId } }, inbox.sink);
  await until(() => seen.closed.length >= 1, PING + PONG + 5000, 'the stalled connect to be given up on');
  const took = seen.closed[0].at - started;
  assert.equal(seen.closed[0].code, 4408);
  assert.ok(took >= PING + PONG - 50 && took <= PING + PONG + 800, `given up on after ${took} ms`);
  proxy.blackHoleNew = false;
  await prime(inbox, herald.url, roomId, poster);
  assert.ok(proxy.accepted >= 2, 'connected again');
  assert.equal(seen.connected.length, 1, 'one connect acknowledged: the one after the black hole');
  sub();
});

test('with detection off (pingInterval: 0) a black-holed connection stalls: no ping, no close, no message', async (t) => {
  const { proxy, sockets, seen, client } = await throughProxy(t, { pingInterval: 0 });
  const { roomId, inbox, sub } = await subscribedRoom(client, herald.url, poster, MESSAGE_POSTED);
  proxy.blackHole();
  await post(herald.url, roomId, 'lost', poster);
  await sleep(2000); // past the deadline the test above gives the detection
  assert.deepEqual({ connected: seen.connected.length, closed: seen.closed, pings: pings(sockets) },
    { connected: 1, closed: [], pings: 0 }, 'the client never noticed');
  assert.ok(!inbox.texts().includes('lost'));
  sub();
});

test('a healthy idle connection is not closed: the client pings a quiet socket, and latency below pongTimeout is fine', async (t) => {
  // 150 ms each way: every pong comes 300 ms after its ping.
  const PING = 300;
  const PONG = 500;
  const { sockets, seen, client } = await throughProxy(t, { pingInterval: PING, pongTimeout: PONG }, { delay: 150 });
  const { roomId, inbox, sub } = await subscribedRoom(client, herald.url, poster, MESSAGE_POSTED, 15_000);
  const pingsBefore = pings(sockets);
  await sleep(8 * PING); // idle: Herald's next ping is seconds away
  assert.deepEqual(seen.closed, [], 'not closed');
  assert.equal(seen.connected.length, 1, 'never reconnected');
  assert.ok(pings(sockets) - pingsBefore >= 3, `the client pinged the quiet socket (${pings(sockets) - pingsBefore} pings)`);
  await post(herald.url, roomId, 'still here', poster);
  await inbox.waitForText('still here');
  assert.equal(inbox.ended, null);
  sub();
});

test('a Herald that pings more often than pingInterval: the client never pings, and nothing is closed', async (t) => {
  const chatty = await Herald.start(['--auth', 'dev', '--ws-ping-interval', '200ms']);
  const sockets = await controllableSockets();
  const seen = { connected: 0, closed: [], serverPings: 0 };
  const client = createHeraldClient({
    url: chatty.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry,
    pingInterval: 600, pongTimeout: 300,
    on: {
      connected: () => { seen.connected++; },
      closed: (e) => { seen.closed.push(e?.code); },
      ping: (received) => { if (received) seen.serverPings++; },
    },
  });
  t.after(async () => { await client.dispose(); await sockets.close(); await chatty.close(); });
  const inbox = new Inbox('roomCreated');
  client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await until(() => seen.connected === 1 && sockets.subscribes().length === 1, 10_000, 'the subscription');
  await sleep(3000); // five of the client's intervals
  assert.ok(seen.serverPings >= 5, `Herald pinged (${seen.serverPings} times)`);
  assert.equal(pings(sockets), 0, 'the server\'s pings kept the socket from ever looking quiet: the client sent none');
  assert.deepEqual(seen.closed, [], 'not closed');
  assert.equal(seen.connected, 1);
});

test('dispose() leaves no timer behind: a process that disposes of its client exits by itself', async () => {
  const child = spawn(process.execPath, [join(here, 'lib/dispose-child.js'), herald.wsURL], {
    cwd: join(here, '..'), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((ok) => child.once('exit', (code, signal) => ok(signal ? `signal ${signal}` : `exit ${code}`)));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  let how;
  try {
    how = await exited;
  } finally {
    clearTimeout(timer);
  }
  const lines = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(how, 'exit 0', `the process exits by itself after dispose(); it said ${out}${err}`);
  assert.equal(lines[0]?.connected, 1, `it connected: ${out}${err}`);
  assert.ok(lines[0]?.pongs >= 2, `the watchdog pinged before dispose() and Herald answered: ${out}`);
  assert.equal(lines[0]?.closed, 0, 'and left the healthy socket alone');
  assert.deepEqual(lines[1], { disposed: true });
  assert.equal(lines[2]?.ended, 'complete', 'the subscription completed');
  assert.ok(!lines[2]?.resources.includes('Timeout'), `no timer left once the socket closed: ${JSON.stringify(lines[2]?.resources)}`);
});

test('the options are checked: pingInterval 0 or Infinity turns detection off, anything else must be a positive duration', () => {
  const url = 'ws://127.0.0.1:1/graphql';
  for (const pingInterval of [0, Infinity]) {
    // Lazy: no socket is opened before a subscribe, so nothing to dispose of.
    createHeraldClient({ url, pingInterval, pongTimeout: 1 });
  }
  assert.throws(() => createHeraldClient({ url, pingInterval: -1 }), RangeError);
  assert.throws(() => createHeraldClient({ url, pingInterval: Number.NaN }), RangeError);
  assert.throws(() => createHeraldClient({ url, pongTimeout: 0 }), RangeError);
  assert.throws(() => createHeraldClient({ url, pongTimeout: Infinity }), RangeError);
  assert.throws(() => createHeraldClient({ url, pongTimeout: '10s' }), RangeError);
});

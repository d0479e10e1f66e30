// Promises of the README about timers, back-off, cursors and tokens that
// need a server answering on cue, each checked against a
// graphql-transport-ws server of the test's own on a loopback port
// (protocolServer; no Herald needed).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { backoff, createHeraldClient } from '@heraldhq/client';
import { Inbox, controllableSockets, protocolServer, quickRetry, tcpProxy, until } from './lib/herald.js';

const here = dirname(fileURLToPath(import.meta.url));

const roomCreated = (id, roomId, cursor) =>
  JSON.stringify({ id, type: 'next', payload: { data: { roomCreated: { id: roomId } }, extensions: { cursor } } });
const failure = (id, code, extra = {}) =>
  JSON.stringify({ id, type: 'error', payload: [{ message: code, extensions: { code, ...extra } }] });

test('the cursor a result carries is the subscription\'s cursor before the sink sees the result', async (t) => {
  const server = await protocolServer(t, (sock, msg) => {
    sock.send(roomCreated(msg.id, 'r1', 'c1'));
    sock.send(roomCreated(msg.id, 'r2', 'c2'));
  });
  const client = createHeraldClient({ url: server.url, webSocketImpl: WebSocket, retryWait: quickRetry, pingInterval: 0 });
  t.after(() => client.dispose());
  const seen = [];
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribe({ query: 'subscription { roomCreated { id } }' }, {
    next: (r) => { seen.push([r.extensions.cursor, sub.cursor]); inbox.sink.next(r); },
    error: inbox.sink.error,
    complete: inbox.sink.complete,
  });
  await inbox.waitFor((i) => i.results.length >= 2, 5000, 'two results');
  sub();
  // An application (HeraldLink among them) that saves unsubscribe.cursor as
  // it handles a result, or restarts the subscription there, resumes after
  // that result, not before it (which would deliver it twice).
  assert.deepEqual(seen, [['c1', 'c1'], ['c2', 'c2']], '[result cursor, unsubscribe.cursor] in next()');
});

test('the default back-off waits at most 15 s, however many attempts failed (README: about 300 ms to about 10 s, ±50 %)', async (t) => {
  t.mock.method(Math, 'random', () => 0.999999);
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let done = false;
  const waiting = backoff(40).then(() => { done = true; });
  t.mock.timers.tick(15_000);
  await Promise.resolve();
  await Promise.resolve();
  assert.ok(done, 'backoff(40) has not ended 15 s after it started');
  await waiting;
  // And the first waits are short: backoff(0) at most 450 ms.
  let first = false;
  const short = backoff(0).then(() => { first = true; });
  t.mock.timers.tick(450);
  await Promise.resolve();
  await Promise.resolve();
  assert.ok(first, 'backoff(0) has not ended after 450 ms');
  await short;
});

test('RATE_LIMITED with a long retryAfter: the subscription waits at most 5 s (+ half of it) before subscribing again', async (t) => {
  const server = await protocolServer(t, (sock, msg, n) => {
    if (n === 1) sock.send(failure(msg.id, 'RATE_LIMITED', { retryAfter: 3600 }));
    else sock.send(roomCreated(msg.id, 'r2', 'c2'));
  });
  const client = createHeraldClient({ url: server.url, webSocketImpl: WebSocket, retryWait: quickRetry, pingInterval: 0 });
  t.after(() => client.dispose());
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribeAfter('c1', { query: 'subscription { roomCreated { id } }' }, inbox.sink);
  t.after(() => sub());
  await until(() => server.subscribes.length >= 1, 5000, 'the first subscribe');
  await until(() => server.subscribes.length >= 2, 9000, 'the subscribe again after RATE_LIMITED (README: at most 5 s plus half of it)');
  const waited = server.subscribes[1].at - server.subscribes[0].at;
  assert.ok(waited >= 5000 - 20 && waited <= 7500 + 500, `waited ${waited} ms`);
  await inbox.waitFor((i) => i.results.length >= 1, 5000, 'the result');
  assert.equal(inbox.ended, null);
});

test('CURSOR_EXPIRED after every reconnect of a long-lived subscription: onCursorExpired is called each time (the count of calls in a row starts over at each result)', async (t) => {
  // Every subscribe after a cursor the server sees as stale is refused with
  // CURSOR_EXPIRED; one after a fresh cursor (what onCursorExpired returns)
  // delivers a result whose cursor is stale by the next reconnect.
  const server = await protocolServer(t, (sock, msg, n) => {
    const after = msg.payload.variables?.after;
    if (typeof after === 'string' && after.startsWith('stale')) sock.send(failure(msg.id, 'CURSOR_EXPIRED'));
    else sock.send(roomCreated(msg.id, `r${n}`, `stale-${n}`));
  });
  const client = createHeraldClient({ url: server.url, webSocketImpl: WebSocket, retryWait: quickRetry, pingInterval: 0 });
  t.after(() => client.dispose());
  let calls = 0;
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribeAfter('fresh-0', { query: 'subscription { roomCreated { id } }' }, inbox.sink, {
    onCursorExpired: () => `fresh-${++calls}`,
  });
  t.after(() => sub());
  const ROUNDS = 5;
  await inbox.waitFor((i) => i.results.length >= 1, 5000, 'the first result');
  for (let k = 1; k <= ROUNDS; k++) {
    server.drop(); // a dropped connection; the resubscribe after the stale cursor expires
    await inbox.waitFor((i) => i.results.length >= k + 1, 5000, `the result after reconnect ${k}`);
  }
  assert.equal(calls, ROUNDS, 'onCursorExpired once per expiry');
  assert.equal(inbox.ended, null, 'the subscription goes on');
});

// The child: a client with getToken (answering at once) subscribes to the
// server (argv[1]), disposes of the client once connected, and does nothing
// more: it exits by itself only if nothing is left behind.
const CHILD = `
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';
const client = createHeraldClient({ url: process.argv[1], webSocketImpl: WebSocket, pingInterval: 0,
  getToken: () => 'a-token',
  retryWait: () => new Promise((ok) => setTimeout(ok, 20)),
  on: { connected: async () => {
    await new Promise((ok) => setTimeout(ok, 100));
    await client.dispose();
    process.stdout.write('disposed\\n');
  } } });
client.subscribe({ query: 'subscription { roomCreated { id } }' }, { next() {}, error() {}, complete() {} });
`;

test('getToken answered at once: dispose() leaves no getTokenTimeout timer behind (the process exits at once)', async (t) => {
  const server = await protocolServer(t, () => {});
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, server.url], {
    cwd: join(here, '..'), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((ok) => child.once('exit', (code, signal) => ok(signal ? `signal ${signal}` : `exit ${code}`)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  t.after(() => { clearTimeout(killer); child.kill('SIGKILL'); });
  await until(() => out.includes('disposed'), 10_000, `the child to connect and dispose (${out}${err})`);
  const how = await Promise.race([exited, new Promise((ok) => setTimeout(ok, 3000, 'still running 3 s after dispose()'))]);
  assert.equal(how, 'exit 0', `the process exits by itself after dispose(); ${out}${err}`);
});

test('a connect that stalls after a socket was given up on as dead gets the full pingInterval + pongTimeout, as every connect does', async (t) => {
  // A server that acknowledges but never answers the client's ping: the
  // watchdog gives its socket up (4408) pingInterval + pongTimeout after the
  // ack. The reconnect then goes into a black hole (the upgrade goes
  // nowhere): the README bounds it by the same pingInterval + pongTimeout,
  // and a slow network's connect is not given up on sooner.
  const PING = 200;
  const PONG = 600;
  const server = await protocolServer(t, () => {}, { pong: false });
  const proxy = await tcpProxy(Number(new URL(server.url).port));
  const sockets = await controllableSockets();
  const closed = [];
  let connected = 0;
  const client = createHeraldClient({
    url: proxy.url, webSocketImpl: sockets.WebSocket, retryWait: quickRetry, pingInterval: PING, pongTimeout: PONG,
    on: { connected: () => { connected++; }, closed: (e) => { closed.push({ code: e?.code, at: Date.now() }); } },
  });
  t.after(async () => { await client.dispose(); await sockets.close(); await proxy.close(); });
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  t.after(() => sub());
  await until(() => connected === 1, 5000, 'the first connect');
  proxy.blackHoleNew = true; // every connect from now on stalls
  await until(() => closed.length >= 2, 5000, 'the dead socket and the stalled connect to be given up on');
  assert.deepEqual(closed.slice(0, 2).map((c) => c.code), [4408, 4408]);
  const stalledFor = closed[1].at - closed[0].at; // includes the retry wait (20–60 ms)
  assert.ok(stalledFor >= PING + PONG - 50, `the stalled connect was given up on ${stalledFor} ms after the last close (pingInterval + pongTimeout = ${PING + PONG} ms)`);
});

test('RATE_LIMITED for a subscription sent as it is (resume: false): it fails with the errors, as the README says, and is not sent again', async (t) => {
  const server = await protocolServer(t, (sock, msg) => sock.send(failure(msg.id, 'RATE_LIMITED', { retryAfter: 0.05 })));
  const client = createHeraldClient({ url: server.url, webSocketImpl: WebSocket, retryWait: quickRetry, pingInterval: 0 });
  t.after(() => client.dispose());
  const inbox = new Inbox('roomPresence');
  const sub = client.subscribe({ query: 'subscription { roomPresence(roomId: "r") { online } }' }, inbox.sink, { resume: false });
  t.after(() => sub());
  await until(() => inbox.ended !== null, 5000, 'the subscription to fail');
  assert.match(inbox.ended, /RATE_LIMITED/);
  await new Promise((ok) => setTimeout(ok, 300)); // past the wait Herald asked for
  assert.equal(server.subscribes.length, 1, 'not sent again');
});

test('a retryWait that throws: the default back-off waits instead (no reconnect loop)', async (t) => {
  const refuser = net.createServer((s) => s.destroy());
  await new Promise((ok) => refuser.listen(0, '127.0.0.1', ok));
  t.after(() => new Promise((ok) => refuser.close(ok)));
  let attempts = 0;
  refuser.on('connection', () => { attempts++; });
  const reported = [];
  t.mock.method(console, 'error', (...args) => { reported.push(args); });
  const client = createHeraldClient({
    url: `ws://127.0.0.1:${refuser.address().port}/graphql`, webSocketImpl: WebSocket, pingInterval: 0,
    retryWait: () => { throw new Error('a bug in retryWait'); },
  });
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await new Promise((ok) => setTimeout(ok, 1000));
  sub();
  await client.dispose();
  // The default waits: 150–450 ms, 300–900 ms, …: at most 6 connects in 1 s.
  assert.ok(attempts >= 1 && attempts <= 6, `${attempts} connects in 1 s`);
  assert.ok(reported.length >= 1, 'the error was reported');
});

test('dispose() during a getToken call that hangs: an httpHeaders() that joined the call still fails after getTokenTimeout', async (t) => {
  const server = await protocolServer(t, () => {});
  let calls = 0;
  const client = createHeraldClient({
    url: server.url, webSocketImpl: WebSocket, pingInterval: 0, retryWait: quickRetry, getTokenTimeout: 500,
    getToken: () => { calls++; return new Promise(() => {}); }, // a refresh request that hangs
  });
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  t.after(() => sub());
  await until(() => calls === 1, 5000, 'the connect to call getToken');
  const headers = client.httpHeaders().then(() => 'answered', (e) => `failed: ${e.message}`); // joins the call in flight
  await client.dispose(); // the connect stops waiting; the HTTP caller still waits
  const how = await Promise.race([headers, new Promise((ok) => setTimeout(ok, 3000, 'still pending 3 s later'))]);
  assert.match(how, /^failed: .*did not answer within 500 ms/);
});

// A reconnect sends every running subscription again at once. A socket's
// subscribe rate (--ws-subscribe-rate, --ws-subscribe-burst; defaults 20/s
// and 50) that each subscription respected when it was started is exceeded
// by the resubscribes: Herald answers those past the burst with
// RATE_LIMITED and extensions.retryAfter (seconds). A resumable
// subscription so refused waits that long (capped, with jitter) and starts
// again from its current cursor, instead of ending; stop() or dispose()
// during the wait completes it at once and leaves no timer behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, Inbox, createRoom, post, prime, protocolServer, proxiedClient, quickRetry, until } from './lib/herald.js';

const here = dirname(fileURLToPath(import.meta.url));
const poster = { user: 'poster' };
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev', '--ws-subscribe-rate', '4', '--ws-subscribe-burst', '3']);
});
after(async () => {
  await herald?.close();
});

const MESSAGE_POSTED = 'subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }';

test('every subscription resumes after a reconnect, even when there are more of them than the socket\'s subscribe burst', async (t) => {
  const { sockets, seen, client } = await proxiedClient(t, herald.port, { user: 'reader', clientOptions: { pingInterval: 0 } });
  const N = 6;
  const subs = [];
  for (let i = 0; i < N; i++) {
    const roomId = await createRoom(herald.url, poster);
    const inbox = new Inbox(`room ${i}`);
    const sub = client.subscribe({ query: MESSAGE_POSTED, variables: { r: roomId } }, inbox.sink);
    await prime(inbox, herald.url, roomId, poster);
    subs.push({ roomId, inbox, sub });
    await sleep(400); // started one at a time, within the socket's rate: each is accepted
  }
  assert.ok(subs.every((s) => s.inbox.ended === null), 'all running before the drop');
  await sleep(1000); // the bucket is full again

  sockets.drop(); // a dropped connection (a deploy, a network change)
  await until(() => seen.connected.length >= 2, 10_000, 'the client to reconnect');
  await sleep(500);
  for (let i = 0; i < N; i++) await post(herald.url, subs[i].roomId, `after-${i}`, poster);
  const results = await Promise.all(subs.map(async (s, i) => {
    try {
      await s.inbox.waitForText(`after-${i}`, 5000);
      return 'resumed';
    } catch {
      return s.inbox.ended ?? 'nothing';
    }
  }));
  for (const s of subs) s.sub();
  assert.deepEqual(results, Array(N).fill('resumed'), 'every subscription resumed');
  const limited = sockets.sent.filter((m) => m?.type === 'subscribe').length - 2 * N;
  t.diagnostic(`${limited} subscribes sent again after RATE_LIMITED`);
  assert.ok(limited >= 1, 'sanity: some resubscribes were refused with RATE_LIMITED and sent again');
  // What each delivered: its probe(s) and its message after the reconnect, once.
  for (const [i, s] of subs.entries()) {
    const texts = s.inbox.texts().filter((x) => !x.startsWith('probe-'));
    assert.deepEqual(texts, [`after-${i}`], `room ${i}: nothing lost, nothing twice`);
  }
});

const rateLimited = (id, retryAfter) => JSON.stringify({
  id, type: 'error',
  payload: [{ message: `too many operations started on this socket; retry in ${retryAfter}s`, extensions: { code: 'RATE_LIMITED', retryAfter } }],
});
const roomCreated = (id, roomId, cursor) =>
  JSON.stringify({ id, type: 'next', payload: { data: { roomCreated: { id: roomId } }, extensions: { cursor } } });

test('RATE_LIMITED: the subscription waits extensions.retryAfter and subscribes again after its current cursor; the sink sees no error', async (t) => {
  const RETRY_AFTER = 0.3;
  // 1: refused; 2: accepted, delivers c2; (the connection drops) 3: refused; 4: accepted, delivers c3.
  const server = await protocolServer(t, (sock, msg, n) => {
    if (n === 1 || n === 3) sock.send(rateLimited(msg.id, RETRY_AFTER));
    if (n === 2) sock.send(roomCreated(msg.id, 'r2', 'c2'));
    if (n === 4) sock.send(roomCreated(msg.id, 'r3', 'c3'));
  });
  const client = createHeraldClient({ url: server.url, webSocketImpl: WebSocket, retryWait: quickRetry, pingInterval: 0 });
  t.after(() => client.dispose());
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribeAfter('c1', { query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await inbox.waitFor((i) => i.results.length >= 1, 5000, 'the first result');
  server.drop();
  await inbox.waitFor((i) => i.results.length >= 2, 5000, 'the result after the reconnect');

  const [s1, s2, s3, s4] = server.subscribes;
  assert.equal(server.subscribes.length, 4);
  assert.deepEqual([s1, s2, s3, s4].map((s) => s.msg.payload.variables.after), ['c1', 'c1', 'c2', 'c2'],
    'each subscribe after a refusal starts from the cursor the subscription had');
  for (const [a, b] of [[s1, s2], [s3, s4]]) {
    const waited = b.at - a.at;
    assert.ok(waited >= RETRY_AFTER * 1000 - 20 && waited <= RETRY_AFTER * 1000 * 1.5 + 300, `waited ${waited} ms after RATE_LIMITED (retryAfter ${RETRY_AFTER} s)`);
  }
  assert.deepEqual(inbox.results.map((r) => r.data.roomCreated.id), ['r2', 'r3']);
  assert.equal(inbox.ended, null, 'the subscription goes on');
  assert.equal(sub.cursor, 'c3');
  sub();
  await until(() => inbox.ended === 'complete', 5000, 'the subscription to complete');
});

test('RATE_LIMITED: stop() during the wait completes the subscription at once, and it is not sent again', async (t) => {
  const server = await protocolServer(t, (sock, msg) => sock.send(rateLimited(msg.id, 1)));
  const client = createHeraldClient({ url: server.url, webSocketImpl: WebSocket, retryWait: quickRetry, pingInterval: 0 });
  t.after(() => client.dispose());
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribeAfter('c1', { query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await until(() => server.subscribes.length === 1, 5000, 'the subscribe');
  await sleep(200); // refused; waiting
  assert.equal(inbox.ended, null, 'refused with RATE_LIMITED, the subscription waits instead of failing');
  sub();
  assert.equal(inbox.ended, 'complete', 'stopped during the wait: completed at once');
  await sleep(1800); // past the longest wait (1 s + half of it)
  assert.equal(server.subscribes.length, 1, 'not sent again after stop()');
  assert.equal(sub.cursor, 'c1');
});

// The child: subscribes to the server (argv[1]), which refuses with
// RATE_LIMITED and retryAfter 30 s (the client caps its wait at 5 s); once
// refused, it disposes of the client, reports how the subscription ended,
// and does nothing more (it exits by itself only if nothing is left).
const CHILD = `
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';
const client = createHeraldClient({ url: process.argv[1], webSocketImpl: WebSocket, pingInterval: 0,
  retryWait: () => new Promise((ok) => setTimeout(ok, 20)),
  on: { message: async (m) => {
    if (m.type !== 'error') return;
    await new Promise((ok) => setTimeout(ok, 100));
    await client.dispose();
    process.stdout.write('disposed ' + ended + '\\n');
  } } });
let ended = null;
client.subscribe({ query: 'subscription { roomCreated { id } }' },
  { next() {}, error(e) { ended = 'error ' + JSON.stringify(e); }, complete() { ended = 'complete'; } });
`;

test('RATE_LIMITED: dispose() during the wait leaves no timer: the process exits by itself at once', async (t) => {
  const server = await protocolServer(t, (sock, msg) => sock.send(rateLimited(msg.id, 30)));
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
  await until(() => out.includes('disposed'), 10_000, `the child to be refused and dispose (${out}${err})`);
  const disposedAt = Date.now();
  const how = await Promise.race([exited, new Promise((ok) => setTimeout(ok, 3000, 'still running 3 s after dispose()'))]);
  t.diagnostic(`child: ${how} ${Date.now() - disposedAt} ms after dispose() returned`);
  assert.match(out, /disposed complete/, 'the waiting subscription completed on dispose()');
  assert.equal(how, 'exit 0', `the process exits by itself after dispose(); ${out}${err}`);
  assert.equal(server.subscribes.length, 1, 'not sent again');
});

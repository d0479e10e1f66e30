// Point 2: getToken is called on every connect, so the next connect uses the
// new token, with no subscription lost. Against a real Herald with
// `--auth jwt`: the first token expires, Herald closes the socket (4403),
// the client reconnects with the token getToken now returns, and the server
// says who the socket is (`viewer` over the socket) while the subscription
// goes on with every message exactly once.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, Inbox, controllableSockets, createRoom, post, prime, quickRetry, range, signJWT, until } from './lib/herald.js';

const secret = randomBytes(32).toString('hex');
const token = (sub, seconds) => signJWT(secret, { sub, name: sub, exp: Math.floor(Date.now() / 1000) + seconds });
const poster = { token: token('poster', 3600) };
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'jwt', '--jwt-secret', secret]);
});
after(async () => {
  await herald?.close();
});

/** Runs `{ viewer { name } }` over the client's socket and returns the name. */
function viewerOverSocket(client) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer to the viewer query within 10 s')), 10_000);
    client.subscribe({ query: '{ viewer { name } }' }, {
      next: (r) => { clearTimeout(timer); r.errors ? reject(new Error(JSON.stringify(r.errors))) : resolve(r.data.viewer?.name ?? null); },
      error: (e) => { clearTimeout(timer); reject(new Error(`viewer query failed: ${JSON.stringify(e)}`)); },
      complete: () => {},
    });
  });
}

test('the token getToken returns is used on the next connect, and the subscription goes on with no gap or duplicate', async (t) => {
  const sockets = await controllableSockets();
  const tokens = [];
  const closed = [];
  let connected = 0;
  const client = createHeraldClient({
    url: herald.wsURL,
    // The first token expires in 5–6 s (exp is in whole seconds), time
    // enough to check the first connection; later ones in an hour.
    getToken: async () => {
      const name = `reader-${tokens.length + 1}`;
      tokens.push(name);
      return token(name, tokens.length === 1 ? 6 : 3600);
    },
    webSocketImpl: sockets.WebSocket,
    retryWait: quickRetry,
    on: {
      connected: () => { connected++; },
      closed: (e) => {
        closed.push(e?.code);
        // Hold the reconnect until the test has posted. Only at the first
        // close: a refused attempt made while offline also closes, and may
        // do so after the test went back online.
        if (closed.length === 1) sockets.setOffline(true);
      },
    },
  });
  t.after(async () => { await client.dispose(); await sockets.close(); });

  const roomId = await createRoom(herald.url, poster);
  const inbox = new Inbox('messagePosted');
  const sub = client.subscribe({ query: 'subscription ($r: ID!) { messagePosted(roomId: $r) { text author { name } } }', variables: { r: roomId } }, inbox.sink);
  await prime(inbox, herald.url, roomId, poster);
  const probes = inbox.texts().length;
  assert.equal(await viewerOverSocket(client), 'reader-1', 'the server sees the first token\'s user');
  assert.deepEqual(tokens, ['reader-1'], 'getToken was called once for the one connect');
  for (const text of range('msg', 0, 5)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-4');

  // Herald closes the socket within a second of the token's exp.
  assert.deepEqual(closed, [], 'the first connection lasted until the checks above were done');
  await until(() => closed.length >= 1, 15_000, 'Herald to close the socket when the first token expires');
  assert.equal(closed[0], 4403, 'closed as forbidden: the token expired');
  for (const text of range('msg', 5, 10)) await post(herald.url, roomId, text, poster); // while it is away
  sockets.setOffline(false);
  for (const text of range('msg', 10, 15)) await post(herald.url, roomId, text, poster);
  await inbox.waitForText('msg-14');
  await post(herald.url, roomId, 'fence', poster);
  await inbox.waitForText('fence');

  assert.equal(await viewerOverSocket(client), 'reader-2', 'the server sees the new token\'s user on the new connection');
  assert.ok(connected >= 2, `reconnected (${connected} connects)`);
  // One getToken call per connect attempt that got as far as connection_init.
  assert.equal(tokens.length, connected, `getToken called once per connect: tokens ${JSON.stringify(tokens)}, connects ${connected}`);
  assert.deepEqual(inbox.texts().slice(probes), [...range('msg', 0, 15), 'fence'], 'every message exactly once and in order');
  assert.equal(inbox.ended, null, 'the subscription survived the token change');
  // What each connection_init carried: the token of its own getToken call.
  const subs = sockets.sent.filter((m) => m?.type === 'connection_init').map((m) => {
    const [, jwt] = /^Bearer (.+)$/.exec(m.payload.Authorization);
    return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url')).sub;
  });
  assert.deepEqual(subs, tokens, 'each connect sent the token getToken returned for it');
  sub();
});

test('a getToken that fails once: that connect is retried and the subscription goes on, however slow the close', async (t) => {
  // A socket whose close event comes 300 ms after the close (a close
  // handshake over a slow network): longer than the wait before the retry.
  class SlowClose extends WebSocket {
    constructor(...args) { super(...args); this.on('error', () => {}); }
    emitClose() { setTimeout(() => super.emitClose(), 300); }
  }
  let calls = 0;
  const closed = [];
  const client = createHeraldClient({
    url: herald.wsURL,
    getToken: async () => {
      if (++calls === 1) throw new Error('the identity provider is unreachable');
      return token('reader', 3600);
    },
    webSocketImpl: SlowClose,
    retryWait: quickRetry,
    on: { closed: (e) => closed.push(e?.code) },
  });
  t.after(async () => { await client.dispose(); });
  const roomId = await createRoom(herald.url, poster);
  const inbox = new Inbox('messagePosted');
  const sub = client.subscribe({ query: 'subscription ($r: ID!) { messagePosted(roomId: $r) { text } }', variables: { r: roomId } }, inbox.sink);
  await prime(inbox, herald.url, roomId, poster);
  // Past the failed connect's close, however late it came: still live.
  await new Promise((ok) => setTimeout(ok, 1000));
  await post(herald.url, roomId, 'after', poster);
  await inbox.waitForText('after');
  assert.ok(calls >= 2, `getToken was called again (${calls} calls)`);
  assert.ok(!closed.includes(4005), `no connect failed as fatal: closes ${JSON.stringify(closed)}`);
  assert.equal(inbox.ended, null, 'the subscription goes on');
  sub();
});

test('HeraldLink sends queries and mutations over HTTP with the token getToken returns for each', async (t) => {
  const { ApolloClient, InMemoryCache, gql: apolloGql } = await import('@apollo/client');
  const { HeraldLink } = await import('@heraldhq/client/apollo');
  let n = 0;
  const client = createHeraldClient({ url: herald.wsURL, getToken: () => token(`writer-${++n}`, 3600) });
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: herald.url } }), cache: new InMemoryCache() });
  t.after(async () => { apollo.stop(); await client.dispose(); });
  const roomId = await createRoom(herald.url, poster);
  const POST = apolloGql`mutation ($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id author { name } } }`;
  const first = await apollo.mutate({ mutation: POST, variables: { r: roomId, t: 'one' } });
  const second = await apollo.mutate({ mutation: POST, variables: { r: roomId, t: 'two' } });
  assert.equal(first.data.postMessage.author.name, 'writer-1');
  assert.equal(second.data.postMessage.author.name, 'writer-2', 'the next request used the new token');
  // An operation's own Authorization header wins over the client's.
  const own = await apollo.mutate({ mutation: POST, variables: { r: roomId, t: 'three' },
    context: { headers: { authorization: `Bearer ${token('explicit', 3600)}` } } });
  assert.equal(own.data.postMessage.author.name, 'explicit');

  // Created with no WebSocket (Node.js 20 has no global one, as on a server
  // rendering a page): HTTP worked above; a subscription fails at once.
  const failed = await new Promise((resolve) => {
    const timer = setTimeout(resolve, 10_000, 'no answer within 10 s');
    client.subscribe({ query: 'subscription { roomCreated { id } }' }, {
      next: () => {}, complete: () => { clearTimeout(timer); resolve('complete'); },
      error: (e) => { clearTimeout(timer); resolve(e); },
    });
  });
  assert.equal(failed.code, 4005, `the subscription failed for want of a WebSocket: ${JSON.stringify(failed)}`);
});

/** p's outcome ({ value } or { error }), or 'pending' if it has not settled within ms. */
async function outcomeWithin(p, ms) {
  let timer;
  const late = new Promise((ok) => { timer = setTimeout(ok, ms, 'pending'); });
  try {
    return await Promise.race([p.then((value) => ({ value }), (error) => ({ error })), late]);
  } finally {
    clearTimeout(timer);
  }
}

// A WebSocket class that records what the client closes its sockets with:
// the close event carries what the server answered, without the reason.
function recordingCloses() {
  const closing = [];
  class Recorded extends WebSocket {
    close(code, reason) { closing.push({ code, reason }); return super.close(code, reason); }
  }
  return { closing, Recorded };
}

// A getToken that never settles (a token refresh whose request hangs): the
// connect waited for it for ever (until Herald gave up on connection_init,
// 4408 after 3 s, and the retry called getToken again), and an HTTP
// operation through HeraldLink never ended.
test('a getToken that never answers: after getTokenTimeout the connect fails (4503) and is retried, and its late answer is ignored', async (t) => {
  let calls = 0;
  let answerLate;
  const closed = [];
  let connected = 0;
  const { closing, Recorded } = recordingCloses();
  const client = createHeraldClient({
    url: herald.wsURL,
    getToken: () => {
      if (++calls === 1) return new Promise((ok) => { answerLate = () => ok(token('late', 3600)); });
      return token('reader', 3600);
    },
    getTokenTimeout: 300,
    webSocketImpl: Recorded,
    retryWait: quickRetry,
    on: { connected: () => { connected++; }, closed: (e) => closed.push({ code: e?.code, reason: e?.reason }) },
  });
  t.after(async () => { answerLate?.(); await client.dispose(); });
  const roomId = await createRoom(herald.url, poster);
  const inbox = new Inbox('messagePosted');
  const started = Date.now();
  const sub = client.subscribe({ query: 'subscription ($r: ID!) { messagePosted(roomId: $r) { text } }', variables: { r: roomId } }, inbox.sink);
  await until(() => connected === 1, 2500, 'a connect before Herald\'s 3 s connection_init timeout');
  const took = Date.now() - started;
  assert.ok(took >= 250, `the first connect waited for getTokenTimeout (${took} ms)`);
  assert.deepEqual(closed.map((c) => c.code), [4503], 'the hung call failed its connect as a failing getToken does');
  assert.equal(closing[0]?.code, 4503);
  assert.match(closing[0].reason, /^credentials failed: .*getToken did not answer within 300 ms/, 'the client closed it saying why');
  assert.equal(calls, 2, 'getToken was called again for the retry');
  await prime(inbox, herald.url, roomId, poster);

  // The hung call answers at last: nothing happens.
  answerLate();
  await sleep(300);
  assert.equal(await viewerOverSocket(client), 'reader', 'the connection uses the token of the call that answered in time');
  assert.equal(connected, 1, 'no reconnect');
  assert.equal(closed.length, 1, 'no close');
  assert.equal(inbox.ended, null, 'the subscription goes on');
  sub();
});

test('a getToken that never answers: HeraldLink\'s HTTP operation fails after getTokenTimeout with an Error that says so', async (t) => {
  const { ApolloClient, InMemoryCache, gql: apolloGql } = await import('@apollo/client');
  const { HeraldLink } = await import('@heraldhq/client/apollo');
  let calls = 0;
  const client = createHeraldClient({ url: herald.wsURL, getToken: () => { calls++; return new Promise(() => {}); }, getTokenTimeout: 200 });
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: herald.url } }), cache: new InMemoryCache() });
  t.after(async () => { apollo.stop(); await client.dispose(); });
  const started = Date.now();
  const got = await outcomeWithin(apollo.query({ query: apolloGql`{ viewer { name } }`, fetchPolicy: 'no-cache' }), 3000);
  const took = Date.now() - started;
  assert.notEqual(got, 'pending', 'the query ended');
  assert.ok(got.error instanceof Error, `the query failed: ${JSON.stringify(got)}`);
  assert.match(got.error.message, /getToken did not answer within 200 ms/);
  assert.ok(took >= 150 && took < 2000, `it failed after getTokenTimeout (${took} ms)`);
  const headers = await outcomeWithin(client.httpHeaders(), 3000);
  assert.match(headers.error?.message ?? String(headers), /getToken did not answer within 200 ms/, 'httpHeaders() fails the same way');
  assert.equal(calls, 2);
});

test('getTokenTimeout: 0 or Infinity is no limit; anything else must be a non-negative number of milliseconds', async () => {
  const url = 'ws://127.0.0.1:9/graphql';
  const slow = () => sleep(300).then(() => 'slow-token');
  for (const getTokenTimeout of [0, Infinity]) {
    const client = createHeraldClient({ url, getToken: slow, getTokenTimeout });
    assert.deepEqual(await client.httpHeaders(), { Authorization: 'Bearer slow-token' }, `getTokenTimeout ${getTokenTimeout}`);
  }
  const client = createHeraldClient({ url, getToken: slow, getTokenTimeout: 1000 });
  assert.deepEqual(await client.httpHeaders(), { Authorization: 'Bearer slow-token' }, 'answered within the limit');
  const failing = createHeraldClient({ url, getToken: () => { throw new Error('no refresh token'); } });
  await assert.rejects(failing.httpHeaders(), /no refresh token/, 'a getToken that throws still fails with its own error');
  for (const getTokenTimeout of [-1, Number.NaN, '10s']) {
    assert.throws(() => createHeraldClient({ url, getTokenTimeout }), RangeError, String(getTokenTimeout));
  }
});

// Each connect and each HTTP request called getToken: a page that
// subscribes and queries as it loads, or every operation after the cached
// token expired, started as many token refreshes at once.
test('getToken calls are merged: a connect and HTTP operations needing a token at once share one call (its token, failure or timeout); the next need calls again', async (t) => {
  const { ApolloClient, InMemoryCache, gql: apolloGql } = await import('@apollo/client');
  const { HeraldLink } = await import('@heraldhq/client/apollo');
  const sockets = await controllableSockets();
  let calls = 0;
  let mode = 'answer';
  const client = createHeraldClient({
    url: herald.wsURL,
    getToken: () => {
      const n = ++calls;
      if (mode === 'answer') return sleep(300).then(() => token(`reader-${n}`, 3600));
      if (mode === 'fail') return sleep(200).then(() => { throw new Error(`refresh ${n} failed`); });
      return new Promise(() => {}); // a refresh that hangs
    },
    getTokenTimeout: 500,
    webSocketImpl: sockets.WebSocket,
    retryWait: quickRetry,
  });
  // Three HTTP requests, not one: Apollo Client would merge identical queries in flight itself.
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: herald.url } }), cache: new InMemoryCache(), queryDeduplication: false });
  t.after(async () => { apollo.stop(); await client.dispose(); await sockets.close(); });
  const viewer = () => apollo.query({ query: apolloGql`{ viewer { name } }`, fetchPolicy: 'no-cache' }).then((r) => r.data.viewer.name);
  const initSubs = () => sockets.sent.filter((m) => m?.type === 'connection_init').map((m) => {
    const [, jwt] = /^Bearer (.+)$/.exec(m.payload.Authorization);
    return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url')).sub;
  });

  // A connect and three HTTP queries, all while the first call runs.
  const sub = client.subscribe({ query: '{ viewer { name } }' }, { next() {}, error() {}, complete() {} });
  const names = await Promise.all([viewer(), viewer(), viewer()]);
  await until(() => initSubs().length === 1, 2000, 'the connect\'s connection_init');
  assert.deepEqual(names, ['reader-1', 'reader-1', 'reader-1'], 'the HTTP queries used the one call\'s token');
  assert.deepEqual(initSubs(), ['reader-1'], 'so did the connect');
  assert.equal(calls, 1, 'one getToken call for all four');
  sub();

  // Settled: the next need calls again (no token is kept beyond its call).
  assert.equal(await viewer(), 'reader-2');
  assert.equal(calls, 2);

  // A failure is shared as a token is.
  mode = 'fail';
  const failed = await Promise.allSettled([client.httpHeaders(), client.httpHeaders(), viewer()]);
  assert.deepEqual(failed.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
  for (const r of failed) assert.match(r.reason.message, /refresh 3 failed/);
  assert.equal(calls, 3, 'one call for the three that failed');

  // So is a timeout, counted from the call: one that joins 300 ms later fails with it, 200 ms on.
  mode = 'hang';
  const started = Date.now();
  const first = outcomeWithin(client.httpHeaders(), 3000);
  await sleep(300);
  const joined = Date.now();
  const second = await outcomeWithin(client.httpHeaders(), 3000);
  const firstOutcome = await first;
  for (const got of [firstOutcome, second]) assert.match(got.error?.message ?? String(got), /getToken did not answer within 500 ms/);
  assert.ok(Date.now() - joined < 400, `the late joiner failed with the call, not 500 ms after joining (${Date.now() - joined} ms)`);
  assert.ok(Date.now() - started >= 450, 'after getTokenTimeout');
  assert.equal(calls, 4, 'one call for both');
  mode = 'answer';
  assert.equal(await viewer(), 'reader-5', 'after the timeout, the next need calls again');
});

test('getToken merged: dispose() ends the connect\'s wait, and an HTTP request sharing the call still gets its token', async (t) => {
  const sockets = await controllableSockets();
  let calls = 0;
  let answer;
  const jwt = token('reader', 3600);
  const client = createHeraldClient({
    url: herald.wsURL,
    getToken: () => { calls++; return new Promise((ok) => { answer = () => ok(jwt); }); },
    webSocketImpl: sockets.WebSocket,
    retryWait: quickRetry,
  });
  t.after(async () => { answer?.(); await client.dispose(); await sockets.close(); });
  const inbox = new Inbox('viewer');
  client.subscribe({ query: '{ viewer { name } }' }, inbox.sink);
  await until(() => calls === 1, 2000, 'the connect to call getToken');
  const headers = client.httpHeaders();
  const disposed = await outcomeWithin(client.dispose(), 1000);
  assert.notEqual(disposed, 'pending', 'dispose() did not wait for getToken');
  await inbox.waitFor((i) => i.ended !== null, 2000, 'the operation to end', { allowEnd: true });
  answer();
  assert.deepEqual(await outcomeWithin(headers, 1000), { value: { Authorization: `Bearer ${jwt}` } },
    'the HTTP request still got the call\'s token');
  assert.equal(calls, 1);
  assert.equal(sockets.sent.filter((m) => m?.type === 'connection_init').length, 0, 'the disposed connect sent nothing');
});

// The application's connectionParams was awaited with no limit: one that
// hung held the connect until Herald gave up on connection_init (4408
// after 3 s, for ever against a server with no such limit).
test('a connectionParams that never answers: after getTokenTimeout the connect fails (4503, saying so) and is retried', async (t) => {
  let calls = 0;
  let connected = 0;
  const { closing, Recorded } = recordingCloses();
  const client = createHeraldClient({
    url: herald.wsURL,
    getToken: () => token('reader', 3600),
    connectionParams: () => (++calls === 1 ? new Promise(() => {}) : { app: 'test' }),
    getTokenTimeout: 300,
    webSocketImpl: Recorded,
    retryWait: quickRetry,
    on: { connected: () => { connected++; } },
  });
  t.after(async () => { await client.dispose(); });
  const started = Date.now();
  assert.equal(await viewerOverSocket(client), 'reader');
  const took = Date.now() - started;
  assert.ok(took >= 250 && took < 2500, `connected after getTokenTimeout, before Herald's 3 s init timeout (${took} ms)`);
  assert.equal(connected, 1);
  assert.equal(calls, 2, 'connectionParams was called again for the retry');
  assert.equal(closing[0]?.code, 4503);
  assert.match(closing[0].reason, /^credentials failed: .*connectionParams did not answer within 300 ms/);
});

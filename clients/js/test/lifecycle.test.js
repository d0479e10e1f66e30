// The client's lifecycle around losses: which closes it retries, what
// dispose() leaves behind while it is between two connects, and how
// HeraldLink reports a socket that cannot connect.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import net from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, Inbox, controllableSockets, createRoom, post, prime, quickRetry, subscribedRoom, until } from './lib/herald.js';

const poster = { user: 'poster' };
let herald;

// protocolServer speaks graphql-transport-ws on a loopback port, for what
// a real Herald cannot be made to do within a test: answer(sock, message, n)
// gets each client message of the n-th connection.
async function protocolServer(answer) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('graphql-transport-ws') ? 'graphql-transport-ws' : false) });
  await new Promise((ok) => wss.once('listening', ok));
  let connections = 0;
  wss.on('connection', (sock) => {
    const n = ++connections;
    sock.on('message', (data) => answer(sock, JSON.parse(String(data)), n));
  });
  return {
    url: `ws://127.0.0.1:${wss.address().port}/graphql`,
    connections: () => connections,
    open: () => wss.clients.size,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((ok) => wss.close(ok));
    },
  };
}

// recordedClient is a client of a protocolServer that retries at once and
// records the code of every close; the test's end disposes of both.
function recordedClient(t, server) {
  const closed = [];
  const client = createHeraldClient({
    url: server.url, webSocketImpl: WebSocket, retryWait: quickRetry,
    on: { closed: (e) => closed.push(e?.code) },
  });
  t.after(async () => {
    await client.dispose();
    await server.close();
  });
  return { client, closed };
}

// roomCreated is the `next` message of subscription id with room roomId, at cursor.
const roomCreated = (id, roomId, cursor) =>
  JSON.stringify({ id, type: 'next', payload: { data: { roomCreated: { id: roomId } }, extensions: { cursor } } });

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

// Herald closes a socket with 1013 (try again later) when it cannot check
// the credentials in connection_init (server/wsmachine.go answerInit:
// "authentication is unavailable; try again later", e.g. its JWKS provider
// is unreachable).
// That cannot be provoked in a real Herald within a test (the JWK Set is
// refetched at most once a minute), so a server speaking the protocol closes
// the first connect as Herald does and accepts the next.
test('1013 "authentication is unavailable; try again later" is retried, not fatal', async (t) => {
  let inits = 0;
  const server = await protocolServer((sock, m) => {
    if (m.type === 'connection_init') {
      if (++inits === 1) sock.close(1013, 'authentication is unavailable; try again later');
      else sock.send(JSON.stringify({ type: 'connection_ack' }));
    } else if (m.type === 'subscribe') {
      sock.send(roomCreated(m.id, 'r1', 'c1'));
    }
  });
  const { client, closed } = recordedClient(t, server);
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await inbox.waitFor((i) => i.results.length === 1, 10_000, 'a result after the refused connect');
  assert.equal(inits, 2, 'connected again after the 1013');
  assert.deepEqual(closed, [1013], 'one close before the result, with the code Herald sent');
  assert.equal(sub.cursor, 'c1');
  sub();
});

test('a sink whose next throws: the error is reported, the socket is not closed, and the subscription goes on', async (t) => {
  // A socket whose close event comes 300 ms after the close (a close
  // handshake over a slow network): longer than the wait before a retry.
  class SlowClose extends WebSocket {
    constructor(...args) { super(...args); this.on('error', () => {}); }
    emitClose() { setTimeout(() => super.emitClose(), 300); }
  }
  const reported = [];
  const consoleError = console.error;
  console.error = (...args) => { reported.push(args); };
  const closed = [];
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: SlowClose, retryWait: quickRetry,
    on: { closed: (e) => closed.push(e?.code) },
  });
  t.after(async () => { console.error = consoleError; await client.dispose(); });
  const roomId = await createRoom(herald.url, poster);
  const inbox = new Inbox('messagePosted');
  let thrown = 0;
  const sub = client.subscribe({ query: 'subscription ($r: ID!) { messagePosted(roomId: $r) { text } }', variables: { r: roomId } }, {
    ...inbox.sink,
    next: (r) => {
      inbox.sink.next(r);
      if (!thrown++) throw new Error('a bug in the application');
    },
  });
  await prime(inbox, herald.url, roomId, poster);
  await sleep(1000); // past a close of that socket, however late it came
  await post(herald.url, roomId, 'after', poster);
  await inbox.waitForText('after');
  console.error = consoleError;
  assert.equal(inbox.ended, null, 'the subscription goes on');
  assert.deepEqual(closed, [], 'no socket was closed');
  assert.ok(reported.some((args) => args.some((a) => a instanceof Error && a.message === 'a bug in the application')),
    `the error was reported: ${JSON.stringify(reported.map((a) => a.map(String)))}`);
  sub();
});

test('dispose() while waiting to reconnect: resolves at once, and nothing connects after it', async (t) => {
  const sockets = await controllableSockets();
  const seen = { connecting: 0, closed: 0 };
  let tokens = 0;
  const client = createHeraldClient({
    url: herald.wsURL,
    user: 'reader',
    getToken: () => { tokens++; return null; },
    webSocketImpl: sockets.WebSocket,
    // A long wait, as the default back-off reaches after a few failures.
    retryWait: () => sleep(1500),
    on: { connecting: () => { seen.connecting++; }, closed: () => { seen.closed++; } },
  });
  t.after(async () => { await sockets.close(); });
  const { roomId, inbox } = await subscribedRoom(client, herald.url, poster, 'subscription ($r: ID!) { messagePosted(roomId: $r) { text } }');

  sockets.setOffline(true);
  sockets.drop();
  await until(() => seen.closed >= 1, 5000, 'the client to notice the dropped socket');
  await sleep(50); // now in retryWait
  const before = { connecting: seen.connecting, tokens, subscribes: sockets.subscribes().length };
  const started = Date.now();
  const disposed = client.dispose().then(() => 'resolved', (err) => `rejected: ${err?.code ?? err?.message ?? err}`);
  sockets.setOffline(false); // Herald is reachable again: a client still going would connect now
  assert.equal(await disposed, 'resolved', 'dispose() does not fail because the socket it disposes of is down');
  assert.ok(Date.now() - started < 500, `dispose() did not wait out the back-off (${Date.now() - started} ms)`);
  await inbox.waitFor((i) => i.ended !== null, 5000, 'the subscription to complete', { allowEnd: true });
  assert.equal(inbox.ended, 'complete');
  await sleep(2000); // past the back-off
  assert.deepEqual({ connecting: seen.connecting, tokens, subscribes: sockets.subscribes().length }, before,
    'no connect, getToken call or subscribe after dispose()');
});

test('dispose() while the server is down does not reject', async () => {
  const sockets = await controllableSockets();
  sockets.setOffline(true);
  let closed = 0;
  const client = createHeraldClient({
    url: herald.wsURL, webSocketImpl: sockets.WebSocket, retryWait: () => sleep(200), on: { closed: () => { closed++; } },
  });
  const inbox = new Inbox('roomCreated');
  client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await until(() => closed >= 1, 5000, 'a refused connect');
  const result = await client.dispose().then(() => 'resolved', (err) => `rejected: ${err?.code ?? err?.message ?? err}`);
  await sockets.close();
  assert.equal(result, 'resolved');
  await inbox.waitFor((i) => i.ended !== null, 5000, 'the subscription to complete', { allowEnd: true });
  assert.equal(inbox.ended, 'complete');
});

test('HeraldLink: a socket that cannot connect is reported as a socket error, not as GraphQL errors', async () => {
  const { ApolloClient, InMemoryCache, gql: apolloGql } = await import('@apollo/client');
  const { CombinedGraphQLErrors } = await import('@apollo/client/errors');
  const { HeraldLink } = await import('@heraldhq/client/apollo');
  const sockets = await controllableSockets();
  sockets.setOffline(true); // every connect is refused
  const client = createHeraldClient({ url: herald.wsURL, webSocketImpl: sockets.WebSocket, retryAttempts: 0 });
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: herald.url } }), cache: new InMemoryCache() });
  try {
    const error = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no error within 10 s')), 10_000);
      apollo.subscribe({ query: apolloGql`subscription { roomCreated { id } }` }).subscribe({
        next: ({ error: e }) => { if (e) { clearTimeout(timer); resolve(e); } },
        error: (e) => { clearTimeout(timer); resolve(e); },
      });
    });
    assert.ok(!CombinedGraphQLErrors.is(error), `not GraphQL errors: ${error?.constructor?.name}: ${error?.message}`);
    assert.match(error.message, /^Socket closed/);
  } finally {
    apollo.stop();
    await client.dispose();
    await sockets.close();
  }
});

test('dispose() while a connect is under way (socket opening, getToken pending, no ack yet): resolves at once and connects no more', async (t) => {
  // Three connects that stall at each stage: a server that accepts TCP but
  // never answers the upgrade, Herald itself while getToken has not
  // answered yet (a token refresh in flight at log-out), and a server that
  // never acknowledges connection_init.
  const stalled = new Set();
  const tcp = net.createServer((s) => { stalled.add(s); s.on('error', () => {}); });
  await new Promise((ok) => tcp.listen(0, '127.0.0.1', ok));
  const silent = await protocolServer(() => {}); // never acknowledges
  t.after(async () => {
    for (const s of stalled) s.destroy();
    await new Promise((ok) => tcp.close(ok));
    await silent.close();
  });

  let releaseToken;
  const cases = [
    { stage: 'the socket is still opening', url: `ws://127.0.0.1:${tcp.address().port}/graphql`, ready: (s) => s.attempts >= 1 },
    {
      stage: 'getToken has not answered', url: herald.wsURL, ready: () => releaseToken !== undefined,
      getToken: () => new Promise((ok) => { releaseToken = () => ok(null); }),
    },
    { stage: 'connection_init is not acknowledged', url: silent.url, ready: (s) => s.sent.some((m) => m?.type === 'connection_init') },
  ];
  for (const c of cases) await t.test(c.stage, async (st) => {
    const sockets = await controllableSockets();
    st.after(() => sockets.close());
    const seen = { connecting: 0 };
    const client = createHeraldClient({
      url: c.url, user: 'reader', getToken: c.getToken, webSocketImpl: sockets.WebSocket, retryWait: quickRetry,
      on: { connecting: () => { seen.connecting++; } },
    });
    const inbox = new Inbox('roomCreated');
    client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
    await until(() => c.ready(sockets), 5000, `the connect to stall (${c.stage})`);
    const inits = sockets.sent.filter((m) => m?.type === 'connection_init').length;
    const started = Date.now();
    const disposed = client.dispose().then(() => 'resolved', (err) => `rejected: ${err?.code ?? err?.message ?? err}`);
    const outcome = await Promise.race([disposed, sleep(2000).then(() => 'still pending after 2 s')]);
    assert.equal(outcome, 'resolved', `dispose() while ${c.stage}`);
    assert.ok(Date.now() - started < 500, `dispose() while ${c.stage} took ${Date.now() - started} ms`);
    await inbox.waitFor((i) => i.ended !== null, 2000, `the subscription to complete (${c.stage})`, { allowEnd: true });
    assert.equal(inbox.ended, 'complete', c.stage);
    releaseToken?.();
    await sleep(300);
    assert.equal(seen.connecting, 1, `no connect after dispose() (${c.stage})`);
    assert.equal(sockets.sent.filter((m) => m?.type === 'connection_init').length, inits, `no connection_init after dispose() (${c.stage})`);
    assert.ok([...sockets.open].every((s) => s.readyState >= 2), `the stalled socket is closed (${c.stage})`);
  });
});

test('subscribe() after dispose() fails at once and opens no socket', async (t) => {
  const sockets = await controllableSockets();
  let connecting = 0;
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry,
    on: { connecting: () => { connecting++; } },
  });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const first = new Inbox('before dispose()');
  client.subscribe({ query: 'subscription { roomCreated { id } }' }, first.sink);
  await until(() => sockets.subscribes().length === 1, 5000, 'the first subscribe');
  await client.dispose();
  await first.waitFor((i) => i.ended !== null, 2000, 'the subscription to complete', { allowEnd: true });
  await until(() => sockets.open.size === 0, 2000, 'the socket to close');

  // Left to graphql-ws, it would open a socket that nothing closes and that
  // is never reconnected: a subscription that silently stops resuming.
  const late = new Inbox('after dispose()');
  let returned = false;
  const sub = client.subscribe({ query: 'subscription { roomCreated { id } }' }, {
    ...late.sink,
    error: (e) => { assert.ok(returned, 'the error comes after subscribe() has returned'); late.sink.error(e); },
  });
  returned = true;
  await late.waitFor((i) => i.ended !== null, 2000, 'the late subscription to end', { allowEnd: true });
  assert.match(late.ended, /^error: Error: .*dispose/, 'it fails, naming dispose()');
  await sleep(300);
  assert.equal(connecting, 1, 'no connect after dispose()');
  assert.equal(sockets.subscribes().length, 1, 'nothing sent after dispose()');
  assert.equal(sub.cursor, null);
  sub(); // harmless
});

// graphql-ws's subscribe never throws; the client's threw (synchronously)
// when it could not prepare the request, before the caller had an
// unsubscribe, unlike every other failure, which reaches the sink's error.
test('a request that cannot be sent (a query that does not parse, no operation of that name) fails through the sink after subscribe() returns, and opens no socket', async (t) => {
  const { GraphQLError } = await import('graphql');
  const sockets = await controllableSockets();
  let connecting = 0;
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry,
    on: { connecting: () => { connecting++; } },
  });
  t.after(async () => { await client.dispose(); await sockets.close(); });
  const syntaxError = (e) => e instanceof GraphQLError && /^Syntax Error: Expected Name, found <EOF>\.$/.test(e.message);
  const cases = [
    { what: 'subscribe, a query that does not parse', check: syntaxError,
      call: (sink) => client.subscribe({ query: 'subscription { roomCreated { id }' }, sink) },
    { what: 'subscribeAfter, a query that does not parse', check: syntaxError,
      call: (sink) => client.subscribeAfter('abc', { query: 'subscription ($r: ID!) { messagePosted(roomId: $r) {' }, sink) },
    { what: 'subscribeAfter, an operationName the document does not have',
      check: (e) => e instanceof TypeError && /a cursor was given/.test(e.message),
      call: (sink) => client.subscribeAfter('abc', { query: 'subscription S { roomCreated { id } }', operationName: 'Nope' }, sink) },
  ];
  for (const c of cases) {
    let returned = false;
    let settle;
    const outcome = new Promise((ok) => { settle = ok; });
    const timer = setTimeout(() => settle('nothing within 2 s'), 2000);
    const sink = {
      next: (r) => settle(`next: ${JSON.stringify(r)}`),
      complete: () => settle('complete'),
      error: (e) => settle({ error: e, returned }),
    };
    let sub;
    assert.doesNotThrow(() => { sub = c.call(sink); }, c.what);
    returned = true;
    const got = await outcome;
    clearTimeout(timer);
    assert.equal(typeof got, 'object', `${c.what}: ${got}`);
    assert.ok(got.returned, `${c.what}: the error comes after the call has returned`);
    assert.ok(c.check(got.error), `${c.what}: ${got.error?.constructor?.name}: ${got.error?.message}`);
    assert.equal(typeof sub, 'function', c.what);
    assert.equal(sub.cursor, null, c.what);
    assert.doesNotThrow(() => sub(), `${c.what}: unsubscribing is harmless`);
  }
  // Stopped as soon as it returns, it reports nothing, as a stopped subscription.
  let reported = false;
  const stop = client.subscribe({ query: 'subscription {' }, { next() {}, complete() {}, error: () => { reported = true; } });
  stop();
  await sleep(50);
  assert.equal(reported, false, 'a request stopped before its error was reported reports nothing');
  await sleep(200);
  assert.equal(connecting, 0, 'no connect for requests that cannot be sent');
  assert.equal(sockets.attempts, 0, 'no socket opened');

  // The client still works: a good request connects and is answered.
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await until(() => sockets.subscribes().length === 1, 5000, 'a good subscription to be sent');
  assert.equal(inbox.ended, null);
  sub();

  // Through HeraldLink: a cursor for a subscription that cannot take one
  // reaches Apollo Client as an Error.
  const { ApolloClient, InMemoryCache, gql: apolloGql } = await import('@apollo/client');
  const { HeraldLink } = await import('@heraldhq/client/apollo');
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: herald.url } }), cache: new InMemoryCache() });
  t.after(() => apollo.stop());
  const error = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no error within 2 s')), 2000);
    apollo.subscribe({
      query: apolloGql`subscription { ...F } fragment F on Subscription { roomCreated { id } }`,
      context: { herald: { after: 'abc' } },
    }).subscribe({
      next: ({ error: e }) => { if (e) { clearTimeout(timer); resolve(e); } },
      error: (e) => { clearTimeout(timer); resolve(e); },
    });
  });
  assert.match(error.message, /a cursor was given/);
});

test('a retryWait that throws: the client backs off by itself and reconnects, with no unhandled rejection', async (t) => {
  const unhandled = [];
  const onUnhandled = (reason) => { unhandled.push(reason); };
  process.on('unhandledRejection', onUnhandled);
  const reported = [];
  const consoleError = console.error;
  console.error = (...args) => { reported.push(args); };
  const sockets = await controllableSockets();
  const seen = { closed: 0, connected: 0 };
  let waits = 0;
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket,
    // Its first call rejects, its second throws before returning a promise.
    retryWait: (n) => {
      if (++waits === 1) return Promise.reject(new Error('a bug in retryWait'));
      if (waits === 2) throw new Error('another bug in retryWait');
      return quickRetry(n);
    },
    on: { closed: () => { seen.closed++; }, connected: () => { seen.connected++; } },
  });
  t.after(async () => {
    console.error = consoleError;
    process.off('unhandledRejection', onUnhandled);
    const disposed = client.dispose();
    await sockets.close();
    await Promise.race([disposed, sleep(2000)]);
  });
  const { roomId, inbox } = await subscribedRoom(client, herald.url, poster, 'subscription ($r: ID!) { messagePosted(roomId: $r) { text } }');

  // Refused twice (so both bad waits come up), then back.
  sockets.setOffline(true);
  sockets.drop();
  await until(() => seen.closed >= 3, 10_000, 'two refused reconnects');
  sockets.setOffline(false);
  await post(herald.url, roomId, 'after', poster);
  await inbox.waitForText('after', 10_000);
  console.error = consoleError;
  assert.ok(waits >= 2, `retryWait was called (${waits})`);
  assert.deepEqual(unhandled.map(String), [], 'no unhandled rejection');
  assert.equal(inbox.ended, null, 'the subscription goes on');
  assert.ok(seen.connected >= 2, 'reconnected');
  assert.ok(reported.some((args) => args.some((a) => a instanceof Error && a.message === 'a bug in retryWait')),
    'what retryWait threw is reported');
});

test('terminate() while the socket is still opening (ws on Node.js): no uncaught error, and it connects again', async (t) => {
  const stalled = new Set();
  const tcp = net.createServer((s) => { stalled.add(s); s.on('error', () => {}); });
  await new Promise((ok) => tcp.listen(0, '127.0.0.1', ok));
  const uncaught = [];
  const onUncaught = (err) => { uncaught.push(err); };
  process.on('uncaughtException', onUncaught);
  let connecting = 0;
  const client = createHeraldClient({
    url: `ws://127.0.0.1:${tcp.address().port}/graphql`,
    webSocketImpl: WebSocket, // the ws package as it is, with no error listener of the test's
    retryWait: quickRetry,
    on: { connecting: () => { connecting++; } },
  });
  t.after(async () => {
    await client.dispose();
    process.off('uncaughtException', onUncaught);
    for (const s of stalled) s.destroy();
    await new Promise((ok) => tcp.close(ok));
  });
  const inbox = new Inbox('roomCreated');
  client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await until(() => stalled.size === 1, 5000, 'the socket to open its TCP connection');
  client.terminate();
  await until(() => connecting >= 2, 5000, 'a new connect after terminate()');
  await sleep(100);
  assert.deepEqual(uncaught.map(String), [], 'no uncaught error');
  assert.equal(inbox.ended, null, 'the subscription goes on');
});

// A server (or a proxy in front of it) that closes with 1000 while
// operations run: graphql-ws reconnects at once, with no retryWait, so a
// server that did it to every connection got hundreds of connects a second
// from every client.
test('a server that closes every connection with 1000: each reconnect waits retryWait, no storm', async (t) => {
  let closing = true;
  const subscribes = [];
  const server = await protocolServer((sock, m, n) => {
    if (m.type === 'connection_init') sock.send(JSON.stringify({ type: 'connection_ack' }));
    else if (m.type === 'subscribe') {
      subscribes.push(m.payload.variables);
      sock.send(roomCreated(m.id, `r${n}`, `c${n}`));
      if (closing) sock.close(1000, 'Normal Closure');
    }
  });
  const conns = server.connections;
  let waits = 0;
  const client = createHeraldClient({
    url: server.url, webSocketImpl: WebSocket,
    retryWait: () => { waits++; return sleep(100); },
  });
  t.after(async () => {
    await client.dispose();
    await server.close();
  });
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await sleep(1000);
  closing = false;
  const seen = conns();
  assert.ok(seen >= 3 && seen <= 15, `reconnected, every 100 ms at most (${seen} connects in 1 s)`);
  assert.ok(waits >= seen - 1, `retryWait before each reconnect (${waits} waits, ${seen} connects)`);
  await inbox.waitFor((i) => i.results.length === conns() && sub.cursor === `c${conns()}`, 2000, 'the last connection\'s result');
  assert.equal(inbox.ended, null, 'the subscription goes on');
  assert.deepEqual(subscribes.map((v) => v.after), Array.from({ length: conns() }, (_, k) => (k ? `c${k}` : undefined)),
    'each resubscribe resumes after the last cursor');

  // Closes of the client's own (its last subscription stopped, then a new
  // one) are not the server's: no wait before the new connect.
  sub();
  const waited = waits;
  const next = new Inbox('roomCreated again');
  const started = Date.now();
  client.subscribe({ query: 'subscription { roomCreated { id } }' }, next.sink);
  await next.waitFor((i) => i.results.length === 1, 5000, 'a result on a new connection');
  assert.equal(waits, waited, 'no retryWait after the client closed the socket itself');
  assert.ok(Date.now() - started < 1000, `connected at once (${Date.now() - started} ms)`);
});

test('dispose() during the wait after a server\'s 1000: resolves at once, the subscription completes, and nothing connects', async (t) => {
  const server = await protocolServer((sock, m) => {
    if (m.type === 'connection_init') sock.send(JSON.stringify({ type: 'connection_ack' }));
    else if (m.type === 'subscribe') sock.close(1000, 'Normal Closure');
  });
  let closed = 0;
  let waiting = false;
  const client = createHeraldClient({
    url: server.url, webSocketImpl: WebSocket,
    retryWait: () => { waiting = true; return sleep(1500); },
    on: { closed: () => { closed++; } },
  });
  t.after(() => server.close());
  const inbox = new Inbox('roomCreated');
  client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await until(() => closed === 1 && waiting, 5000, 'the server\'s close, and the wait after it');
  const started = Date.now();
  const disposed = client.dispose().then(() => 'resolved', (err) => `rejected: ${err?.code ?? err?.message ?? err}`);
  assert.equal(await Promise.race([disposed, sleep(1000).then(() => 'pending after 1 s')]), 'resolved');
  assert.ok(Date.now() - started < 500, `dispose() did not wait out the back-off (${Date.now() - started} ms)`);
  await inbox.waitFor((i) => i.ended !== null, 2000, 'the subscription to complete', { allowEnd: true });
  assert.equal(inbox.ended, 'complete');
  await sleep(1800); // past the back-off
  assert.equal(server.connections(), 1, 'no connect after dispose()');
});

test('listeners that throw (on, client.on): reported, and the client still reconnects and resumes', { timeout: 30_000 }, async (t) => {
  const uncaught = [];
  const onUncaught = (err) => { uncaught.push(err); };
  process.on('uncaughtException', onUncaught);
  const unhandled = [];
  const onUnhandled = (reason) => { unhandled.push(reason); };
  process.on('unhandledRejection', onUnhandled);
  const reported = [];
  const consoleError = console.error;
  console.error = (...args) => { reported.push(args); };
  const sockets = await controllableSockets();
  const closed = [];
  let armed = true;
  const bug = (where) => () => { if (armed) throw new Error(`a bug in a '${where}' listener`); };
  const client = createHeraldClient({
    url: herald.wsURL, user: 'reader', webSocketImpl: sockets.WebSocket, retryWait: quickRetry,
    on: {
      connecting: bug('connecting'),
      opened: bug('opened'),
      connected: bug('connected'),
      message: bug('message'),
      closed: (e) => { if (!armed) return; closed.push(e?.code); throw new Error('a bug in a \'closed\' listener'); },
    },
  });
  const off = client.on('closed', bug('closed (client.on)'));
  t.after(async () => {
    armed = false;
    off();
    const disposed = client.dispose();
    await sockets.close();
    await Promise.race([disposed, sleep(2000)]);
    console.error = consoleError;
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUnhandled);
  });
  const { roomId, inbox, sub } = await subscribedRoom(client, herald.url, poster, 'subscription ($r: ID!) { messagePosted(roomId: $r) { text } }');
  assert.deepEqual(closed, [], 'no socket was closed because a listener threw');
  const cursor = sub.cursor;
  sockets.drop();
  await post(herald.url, roomId, 'after', poster);
  await inbox.waitForText('after', 10_000);
  console.error = consoleError;
  assert.equal(inbox.ended, null, 'the subscription goes on');
  assert.equal(closed.length, 1, `one close, the dropped socket's (${JSON.stringify(closed)})`);
  assert.equal(sockets.subscribes().at(-1).payload.variables.after, cursor, 'resumed after the last cursor');
  assert.deepEqual(uncaught.map(String), [], 'no uncaught exception');
  assert.deepEqual(unhandled.map(String), [], 'no unhandled rejection');
  for (const where of ['connecting', 'opened', 'connected', 'message', 'closed', 'closed (client.on)']) {
    assert.ok(reported.some((args) => args.some((a) => a instanceof Error && a.message === `a bug in a '${where}' listener`)),
      `what the '${where}' listener threw is reported`);
  }
});

// graphql-ws gives up on a fatal close (4400 here) without releasing the
// operations it failed: their hold on the connection kept every later
// socket open once the last subscription stopped.
test('after a fatal close, the last subscription stopping still closes the socket', async (t) => {
  const server = await protocolServer((sock, m, n) => {
    if (m.type === 'connection_init') sock.send(JSON.stringify({ type: 'connection_ack' }));
    else if (m.type === 'subscribe' && n === 1) sock.close(4400, 'Bad request');
    else if (m.type === 'subscribe') sock.send(roomCreated(m.id, 'r1', 'c1'));
  });
  const { client, closed } = recordedClient(t, server);
  const failed = new Inbox('failed');
  client.subscribe({ query: 'subscription { roomCreated { id } }' }, failed.sink); // never stopped: it failed
  await failed.waitFor((i) => i.ended !== null, 5000, 'the fatal close', { allowEnd: true });
  assert.equal(failed.ended, 'error: close 4400 Bad request');
  const inbox = new Inbox('roomCreated');
  const sub = client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
  await inbox.waitFor((i) => i.results.length === 1, 5000, 'a result on a new connection');
  sub();
  await until(() => server.open() === 0, 2000, 'the socket to close once nothing runs on it');
  assert.deepEqual(closed, [4400, 1000]);
});

// graphql-ws starts its retry count over at every connection_ack, so a
// server (or a proxy) that acknowledges and then closes at once, with any
// code it retries, was reconnected to after retryWait(0) every time: about
// 3 connects a second with the default back-off, from every client, for
// ever. (1011 and 4500 do not show it: graphql-ws gives up on them.)
test('a server that acknowledges and then closes at once: the back-off grows as after failed connects', async (t) => {
  for (const code of [1013, 4403, 1000]) await t.test(`close ${code}`, async () => {
    const server = await protocolServer((sock, m) => {
      if (m.type !== 'connection_init') return;
      sock.send(JSON.stringify({ type: 'connection_ack' }));
      sock.close(code, 'closed after the ack');
    });
    const waits = [];
    const client = createHeraldClient({
      url: server.url, webSocketImpl: WebSocket,
      // 20 ms × 2^retries, at most 320 ms: the default back-off, shrunk.
      retryWait: (n) => { waits.push(n); return sleep(Math.min(20 * 2 ** n, 320)); },
    });
    try {
      const inbox = new Inbox('roomCreated');
      client.subscribe({ query: 'subscription { roomCreated { id } }' }, inbox.sink);
      await sleep(1500);
      const seen = server.connections();
      assert.deepEqual(waits, Array.from({ length: waits.length }, (_, k) => k),
        `each reconnect waits longer than the last, as after failed connects (retries ${JSON.stringify(waits)})`);
      assert.ok(seen >= 4 && seen <= 12, `reconnected, ever more slowly (${seen} connects in 1.5 s; at once every time would be about 50)`);
      assert.equal(inbox.ended, null, 'the subscription goes on waiting');
    } finally {
      await client.dispose();
      await server.close();
    }
  });
});

test('a connection that stays up retryResetAfter past its ack starts the back-off over; retryResetAfter 0 is graphql-ws\'s way', async (t) => {
  // Connections 1–3 and 5–6 are closed at once after the ack, the 4th
  // 500 ms after it (1013 each time).
  const run = async (retryResetAfter) => {
    const server = await protocolServer((sock, m, n) => {
      if (m.type !== 'connection_init') return;
      sock.send(JSON.stringify({ type: 'connection_ack' }));
      setTimeout(() => sock.close(1013, 'Try Again Later'), n === 4 ? 500 : 0);
    });
    const waits = [];
    const client = createHeraldClient({
      url: server.url, webSocketImpl: WebSocket, retryResetAfter,
      retryWait: (n) => { waits.push(n); return sleep(20); },
    });
    try {
      client.subscribe({ query: 'subscription { roomCreated { id } }' }, { next() {}, error() {}, complete() {} });
      await until(() => waits.length >= 6, 5000, 'six reconnects');
      return waits.slice(0, 6);
    } finally {
      await client.dispose();
      await server.close();
    }
  };
  assert.deepEqual(await run(300), [0, 1, 2, 0, 1, 2], 'the long connection started the count over; the short ones count as failures');
  assert.deepEqual(await run(0), [0, 0, 0, 0, 0, 0], 'every ack starts the count over');
  for (const retryResetAfter of [-1, Number.NaN, '5s']) {
    assert.throws(() => createHeraldClient({ url: 'ws://127.0.0.1:9/graphql', retryResetAfter }), RangeError, String(retryResetAfter));
  }
});

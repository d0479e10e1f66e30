// Subscriptions over plain HTTP: the graphql-sse client (distinct
// connections mode) on replica A with messages posted on replica B, and an
// EventSource (the `eventsource` package, WHATWG semantics) that resumes by
// itself with Last-Event-ID when its connection is cut and it reconnects,
// through a TCP proxy standing for a load balancer, to the other replica.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-sse';
import { EventSource } from 'eventsource';
import {
  A, B, httpURL, createRoom, postMessage, withTimeout, describeError, failIfProcessLingers, Inbox, once,
  checkDelivery, primeSubscription, awaitFence, describeDifference, MESSAGE_POSTED, messageEvent,
} from './lib/herald.js';
import { TcpProxy } from './lib/proxy.js';

failIfProcessLingers('graphql-sse.test.js');

test('graphql-sse (distinct connections) on replica A: query, mutation, subscription to messages posted on replica B',
  { timeout: 60_000 }, async (t) => {
    const room = await createRoom(A, 'graphql-sse');
    const client = createClient({
      url: httpURL(A),
      singleConnection: false,
      headers: { 'X-Herald-User': 'alice' },
      retryAttempts: 0, // a failure must fail the test, not retry
    });
    t.after(() => client.dispose());

    const [q, ...moreQ] = await once('graphql-sse', client, {
      query: 'query Room($id: ID!) { viewer { name } room(id: $id) { id name messageCount } }',
      variables: { id: room.id },
    });
    assert.equal(moreQ.length, 0, `a query must yield one result, got ${JSON.stringify([q, ...moreQ])}`);
    assert.equal(q.errors, undefined, `query errors: ${JSON.stringify(q.errors)}`);
    assert.deepEqual(q.data, { viewer: { name: 'alice' }, room: { id: room.id, name: room.name, messageCount: 0 } });

    const [m, ...moreM] = await once('graphql-sse', client, {
      query: `mutation Post($r: ID!) { postMessage(roomId: $r, text: "hello over graphql-sse") { text author { name } room { messageCount } } }`,
      variables: { r: room.id },
    });
    assert.equal(moreM.length, 0, `a mutation must yield one result, got ${JSON.stringify([m, ...moreM])}`);
    assert.equal(m.errors, undefined, `mutation errors: ${JSON.stringify(m.errors)}`);
    assert.equal(m.data.postMessage.author.name, 'alice');
    assert.equal(m.data.postMessage.room.messageCount, 1);

    const inbox = new Inbox('graphql-sse subscription on replica A');
    const unsubscribe = client.subscribe({ query: MESSAGE_POSTED, variables: { roomId: room.id } }, {
      next: (r) => inbox.push(messageEvent(r)),
      error: (err) => inbox.end(`error: ${describeError(err)}`),
      complete: () => inbox.end('complete'),
    });
    try {
      await checkDelivery(t, { inbox, postBase: B, roomId: room.id, baseCount: 1 });
    } finally {
      unsubscribe();
    }
  });

/** messagePosted with the resume argument in a variable, as a stream needs it to resume. */
const RESUMABLE = `subscription OnMessagePosted($roomId: ID!, $after: String) {
  messagePosted(roomId: $roomId, after: $after) { id text version author { name } room { id messageCount } }
}`;

test('an EventSource cut off from replica A resumes on replica B from its Last-Event-ID, nothing lost or repeated',
  { timeout: 60_000 }, async (t) => {
    const room = await createRoom(A, 'eventsource');
    const proxy = await TcpProxy.start(A);
    t.after(() => proxy.close());
    const url = new URL(httpURL(proxy.base));
    url.searchParams.set('query', RESUMABLE);
    url.searchParams.set('variables', JSON.stringify({ roomId: room.id }));

    const inbox = new Inbox('EventSource through the proxy');
    const ids = [];
    const opened = [];
    const es = new EventSource(url.href);
    t.after(() => es.close());
    es.addEventListener('open', () => opened.push(Date.now()));
    es.addEventListener('next', (ev) => {
      ids.push(ev.lastEventId);
      const result = JSON.parse(ev.data);
      const e = messageEvent(result);
      assert.equal(ev.lastEventId, e.cursor, 'each event\'s id is its cursor');
      inbox.push(e);
    });
    es.addEventListener('complete', () => inbox.end('complete'));

    await primeSubscription(inbox, B, room.id);
    const want = Array.from({ length: 30 }, (_, i) => `msg-${i}`);
    for (const text of want.slice(0, 10)) await postMessage(B, room.id, text);
    await inbox.waitFor((evs) => evs.some((e) => e.text === 'msg-9'), 10_000, 'the first ten messages');

    // The "load balancer" loses replica A: the stream is cut and the next
    // connection goes to B. Messages posted meanwhile reach the client
    // only by replay from its Last-Event-ID.
    proxy.route(B);
    proxy.cut();
    for (const text of want.slice(10, 20)) await postMessage(B, room.id, text);
    await withTimeout((async () => { while (opened.length < 2) await new Promise((r) => setTimeout(r, 20)); })(),
      15_000, 'the EventSource to reconnect');
    for (const text of want.slice(20)) await postMessage(B, room.id, text);

    const isReal = (e) => typeof e.text === 'string' && e.text.startsWith('msg-');
    await inbox.waitFor((evs) => evs.filter(isReal).length >= want.length, 15_000,
      () => `all ${want.length} messages (${describeDifference(inbox.events.filter(isReal).map((e) => e.text), want)})`);
    await awaitFence(inbox, B, room.id);
    const got = inbox.events.filter(isReal).map((e) => e.text);
    assert.deepEqual(got, want, `messages not received exactly once and in order: ${describeDifference(got, want)}`);
    assert.ok(proxy.stats.byTarget[B] >= 1, `the reconnection went to replica B: ${JSON.stringify(proxy.stats)}`);
    t.diagnostic(`${want.length} messages once each, in order, across a cut and a reconnect to replica B; ` +
      `${opened.length} connections opened`);
  });

test('graphql-sse (single connection) with no sticky sessions: reservation and operations on replica B, the stream on replica A',
  { timeout: 60_000 }, async (t) => {
    const room = await createRoom(A, 'graphql-sse-single');
    // The "load balancer": the stream (GET with Accept: text/event-stream)
    // lands on A; the reservation (PUT), operations (POST) and their stops
    // (DELETE) land on B, which relays them to A over NATS.
    const routed = { A: 0, B: 0 };
    const fetchFn = (input, init = {}) => {
      const url = new URL(input);
      const accept = new Headers(init.headers).get('accept') ?? '';
      const toA = (init.method ?? 'GET') === 'GET' && accept.includes('text/event-stream');
      const base = new URL(toA ? A : B);
      url.host = base.host;
      routed[toA ? 'A' : 'B'] += 1;
      return fetch(url, init);
    };
    const client = createClient({
      url: httpURL(A),
      singleConnection: true,
      fetchFn,
      headers: { 'X-Herald-User': 'alice' },
      retryAttempts: 0, // a failure must fail the test, not retry
    });
    t.after(() => client.dispose());

    const [q, ...moreQ] = await once('graphql-sse single connection', client, {
      query: 'query Room($id: ID!) { viewer { name } room(id: $id) { id name } }',
      variables: { id: room.id },
    });
    assert.equal(moreQ.length, 0, `a query must yield one result, got ${JSON.stringify([q, ...moreQ])}`);
    assert.equal(q.errors, undefined, `query errors: ${JSON.stringify(q.errors)}`);
    assert.deepEqual(q.data, { viewer: { name: 'alice' }, room: { id: room.id, name: room.name } });

    const [m] = await once('graphql-sse single connection', client, {
      query: `mutation Post($r: ID!) { postMessage(roomId: $r, text: "hello over one stream") { text author { name } } }`,
      variables: { r: room.id },
    });
    assert.equal(m.errors, undefined, `mutation errors: ${JSON.stringify(m.errors)}`);
    assert.equal(m.data.postMessage.author.name, 'alice');

    const inbox = new Inbox('graphql-sse single-connection subscription, stream on replica A');
    const unsubscribe = client.subscribe({ query: MESSAGE_POSTED, variables: { roomId: room.id } }, {
      next: (r) => inbox.push(messageEvent(r)),
      error: (err) => inbox.end(`error: ${describeError(err)}`),
      complete: () => inbox.end('complete'),
    });
    try {
      await checkDelivery(t, { inbox, postBase: B, roomId: room.id, baseCount: 1 });
    } finally {
      unsubscribe();
    }
    assert.ok(routed.A >= 1 && routed.B >= 4, `requests were split between the replicas: ${JSON.stringify(routed)}`);
    t.diagnostic(`requests routed: ${JSON.stringify(routed)}`);
  });

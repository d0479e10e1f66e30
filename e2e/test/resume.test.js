// The resume recipe (lib/resume.js) with graphql-ws and with Apollo Client,
// through a TCP proxy standing for a load balancer: the subscriber's
// connection is cut while messages are posted, the client reconnects to the
// other replica, and must get every message exactly once and in order —
// those posted while it was away only by replay from its cursor. Also: an
// expired cursor makes the recipe call the app's refetch and go on live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import {
  A, B, httpURL, wsURL, gql, createRoom, postMessage, withTimeout, describeError, TrackedWebSocket,
  assertSocketsClosed, failIfProcessLingers, Inbox, primeSubscription, describeDifference, messageEvent, assertExactly, awaitFence,
} from './lib/herald.js';
import { TcpProxy } from './lib/proxy.js';
import { resumableSubscribe, createResumeLink } from './lib/resume.js';

failIfProcessLingers('resume.test.js');

// Apollo's GraphQLWsLink refers to the global WebSocket when reporting an
// error; Node 20 has none (see apollo.test.js).
globalThis.WebSocket ??= WebSocket;

/** messagePosted with the `$after` the recipe fills in. */
const RESUMABLE = `subscription OnMessagePosted($roomId: ID!, $after: String) {
  messagePosted(roomId: $roomId, after: $after) { id text version author { name } room { id messageCount } }
}`;

const NEWEST = 'query Newest($id: ID!) { room(id: $id) { messageCount messages(last: 1) { nodes { id text cursor } } } }';

const json = (v) => JSON.stringify(v);
const isReal = (e) => typeof e.text === 'string' && e.text.startsWith('msg-');
const texts = (inbox) => inbox.events.filter(isReal).map((e) => e.text);

/**
 * A WebSocket that records every graphql-transport-ws `subscribe` it sends
 * as {id, after}, so the tests can see which cursor each (re)subscribe
 * carried.
 */
function recordingWebSocket(sent) {
  return class RecordingWebSocket extends TrackedWebSocket {
    send(data, ...rest) {
      try {
        const m = JSON.parse(data);
        if (m.type === 'subscribe') sent.push({ id: m.id, after: m.payload?.variables?.after ?? null });
      } catch { /* not JSON: not ours to record */ }
      return super.send(data, ...rest);
    }
  };
}

/** A graphql-ws client to the proxy that retries every connection loss, quickly. */
function wsClient(proxy, log, sent) {
  return createClient({
    url: wsURL(proxy.base),
    webSocketImpl: recordingWebSocket(sent),
    connectionParams: { user: 'alice' },
    // The recipe's client settings; retryWait is short only to keep the test fast.
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: () => sleep(50),
    on: {
      connected: (_socket, _payload, wasRetry) => log.push(wasRetry ? 'reconnected' : 'connected'),
      closed: (ev) => log.push(`closed ${describeError(ev)}`),
      error: (err) => log.push(`error ${describeError(err)}`),
    },
  });
}

/** The client set-ups under test: each opens one resumable subscription. */
const clients = {
  'graphql-ws': {
    /** resumableSubscribe over a graphql-ws client. */
    open({ proxy, log, sent, roomId, after, inbox, onCursorExpired }) {
      const client = wsClient(proxy, log, sent);
      const variables = after ? { roomId, after } : { roomId };
      const stop = resumableSubscribe(client, { query: RESUMABLE, variables }, {
        next: (r) => inbox.push(messageEvent(r)),
        error: (err) => inbox.end(`error: ${describeError(err)}`),
        complete: () => inbox.end('complete'),
      }, { onCursorExpired: (errors) => onCursorExpired(errors, (id) => gql(B, NEWEST, { id })) });
      return {
        async close() {
          stop();
          await client.dispose();
        },
      };
    },
  },
  Apollo: {
    /** ApolloClient: split link, createResumeLink + GraphQLWsLink for subscriptions, HttpLink (to B) otherwise. */
    open({ proxy, log, sent, roomId, after, inbox, onCursorExpired }) {
      const ws = wsClient(proxy, log, sent);
      let client = null;
      // The app's refetch goes through Apollo itself, over HttpLink.
      const refetch = async (id) => {
        const r = await client.query({ query: apolloGql(NEWEST), variables: { id }, fetchPolicy: 'network-only' });
        if (r.error) throw r.error;
        return r.data;
      };
      const link = ApolloLink.split(
        ({ operationType }) => operationType === 'subscription',
        ApolloLink.from([
          createResumeLink({ onCursorExpired: (errors) => onCursorExpired(errors, refetch) }),
          new GraphQLWsLink(ws),
        ]),
        new HttpLink({ uri: httpURL(B), fetch, headers: { 'X-Herald-User': 'alice' } }),
      );
      client = new ApolloClient({ link, cache: new InMemoryCache() });
      const variables = after ? { roomId, after } : { roomId };
      const sub = client.subscribe({ query: apolloGql(RESUMABLE), variables }).subscribe({
        // Apollo turns an error into a result carrying it, then completes.
        next: (r) => (r.error ? inbox.push({ errors: [describeError(r.error)] }) : inbox.push(messageEvent(r))),
        error: (err) => inbox.end(`error: ${describeError(err)}`),
        complete: () => inbox.end('complete'),
      });
      return {
        async close() {
          sub.unsubscribe();
          client.stop();
          await ws.dispose();
        },
      };
    },
  },
};

/**
 * Runs body with a proxy (to replica A first) and a client from open, then
 * closes both and checks that no socket is left open. On failure it adds
 * what the client and the proxy saw to the message.
 */
async function withSetup(kind, label, opts, body) {
  const proxy = await TcpProxy.start(A);
  const log = [];
  const sent = [];
  const inbox = new Inbox(label);
  let conn;
  try {
    conn = clients[kind].open({ proxy, log, sent, inbox, ...opts });
    await body({ proxy, log, sent, inbox });
  } catch (err) {
    err.message += `\nclient events: ${json(log)}\nsubscribes sent: ${json(sent)}\nproxy: ${json(proxy.stats)}`;
    throw err;
  } finally {
    proxy.pass(); // forward a held connection, so the client can close it
    try {
      if (conn) await withTimeout(conn.close(), 5000, `${label}: closing the client`);
    } finally {
      await proxy.close();
    }
  }
  await assertSocketsClosed();
}

/** Posts want[from..to) on replica B, in order. */
async function postRange(roomId, want, from, to) {
  for (let i = from; i < to; i++) await postMessage(B, roomId, want[i]);
}

/** The cursor of the last event the inbox received. */
const lastCursor = (inbox) => inbox.events.at(-1)?.cursor;

for (const kind of Object.keys(clients)) {
  test(`${kind}: resume recipe — connection cut twice (A → B → A), every message once and in order, those posted meanwhile by replay`,
    { timeout: 60_000 }, async (t) => {
      const started = Date.now();
      const room = await createRoom(B, `resume-${kind}`);
      const label = `${kind} resumable subscription via the proxy`;
      await withSetup(kind, label, { roomId: room.id }, async ({ proxy, log, sent, inbox }) => {
        const want = Array.from({ length: 25 }, (_, i) => `msg-${i}`);
        const probes = await primeSubscription(inbox, B, room.id);
        assert.equal(proxy.open(A), 1, 'the client is connected through the proxy to replica A');

        // Live on A.
        await postRange(room.id, want, 0, 5);
        await inbox.waitFor((evs) => evs.filter(isReal).length === 5, 10_000, 'msg-0..4 live from replica A');

        // Replica A goes away; the balancer has nothing to offer for a while
        // (reconnects are refused), and messages are posted meanwhile.
        const cursor1 = lastCursor(inbox);
        proxy.refuse();
        assert.equal(proxy.cut(), 1, 'one connection cut');
        await proxy.waitUntil((p) => p.stats.refused >= 2, 10_000, 'two refused reconnect attempts');
        await postRange(room.id, want, 5, 10);
        assert.deepEqual(texts(inbox), want.slice(0, 5), 'nothing arrives while the client has no connection');

        // The client gets through to replica B and replays msg-5..9.
        proxy.route(B);
        proxy.pass();
        await inbox.waitFor((evs) => evs.filter(isReal).length >= 10, 10_000, 'msg-5..9 replayed by replica B');
        await postRange(room.id, want, 10, 15);
        await inbox.waitFor((evs) => evs.filter(isReal).length >= 15, 10_000, 'msg-10..14 live from replica B');
        assert.equal(proxy.open(B), 1, 'the client is connected through the proxy to replica B');

        // Replica B goes away; this time the balancer holds the reconnect
        // until A is back. Messages are posted meanwhile.
        const cursor2 = lastCursor(inbox);
        proxy.hold();
        assert.equal(proxy.cut(), 1, 'one connection cut');
        await proxy.waitUntil((p) => p.stats.held >= 1, 10_000, 'a held reconnect attempt');
        await postRange(room.id, want, 15, 20);
        assert.deepEqual(texts(inbox), want.slice(0, 15), 'nothing arrives while the reconnect is held');
        proxy.route(A);
        proxy.pass();
        // Posted at once: replay and live together must neither lose nor repeat.
        await postRange(room.id, want, 20, 25);

        await assertExactly(inbox, want, { postBase: B, roomId: room.id });
        const lateProbes = inbox.events.slice(inbox.events.findIndex(isReal)).filter((e) => e.text?.startsWith('probe-'));
        assert.deepEqual(lateProbes, [], 'no probe after the first counted message');

        // Each resubscribe carried the last cursor received before its cut;
        // graphql-ws retried the same operation (same id) each time.
        assert.deepEqual(sent.map((s) => s.after), [null, cursor1, cursor2], 'the cursor each subscribe carried');
        assert.equal(new Set(sent.map((s) => s.id)).size, 1, 'graphql-ws resent the same subscription');
        const reconnects = log.filter((e) => e === 'reconnected').length;
        assert.ok(reconnects >= 1, `at least one reconnect, got ${reconnects}`);
        assert.deepEqual(proxy.stats.byTarget, { [A]: 2, [B]: 1 }, 'connections per replica');
        t.diagnostic(`${kind}: ${want.length} messages once each and in order across 2 cuts (${reconnects} reconnects, ` +
          `${proxy.stats.refused} refused and ${proxy.stats.held} held attempts, ${probes} probe(s)) in ${Date.now() - started} ms`);
      });
    });

  for (const resumeFromRefetch of [false, true]) {
    const what = resumeFromRefetch
      ? 'onCursorExpired returns the refetched cursor: what was posted meanwhile is replayed'
      : 'onCursorExpired refetches, then the subscription goes on live';
    test(`${kind}: expired cursor (another log epoch) → CURSOR_EXPIRED → ${what}`, { timeout: 30_000 }, async (t) => {
      const started = Date.now();
      const room = await createRoom(B, `expired-${kind}`);
      await postMessage(B, room.id, 'before-0');
      const { room: before } = await gql(B, NEWEST, { id: room.id });
      const stale = otherEpoch(before.messages.nodes[0].cursor);
      const calls = [];
      const label = `${kind} subscription from an expired cursor`;
      const onCursorExpired = async (errors, refetch) => {
        const data = await refetch(room.id);
        const newest = data.room.messages.nodes[0];
        if (resumeFromRefetch) {
          // A message slips in between the refetch and the new subscription:
          // only the cursor of the refetch can bring it.
          await postMessage(B, room.id, 'msg-0');
        }
        // Recorded last: the test posts the next messages once it sees this.
        calls.push({ errors, newest });
        return resumeFromRefetch ? newest.cursor : undefined;
      };
      await withSetup(kind, label, { roomId: room.id, after: stale, onCursorExpired }, async ({ sent, inbox }) => {
        const deadline = Date.now() + 10_000;
        while (!calls.length) {
          if (inbox.ended) throw new Error(`${label}: the subscription ended (${inbox.ended}) instead of calling onCursorExpired`);
          if (Date.now() > deadline) throw new Error(`${label}: onCursorExpired was not called within 10 s; received ${inbox.summary()}`);
          await sleep(10);
        }
        const codes = calls[0].errors.map((e) => e.extensions?.code);
        assert.ok(codes.includes('CURSOR_EXPIRED'), `onCursorExpired got ${json(calls[0].errors)}`);
        assert.equal(calls[0].newest.text, 'before-0', 'the refetch saw the room');

        const want = Array.from({ length: 5 }, (_, i) => `msg-${i}`);
        if (resumeFromRefetch) {
          await postRange(room.id, want, 1, 5);
        } else {
          await primeSubscription(inbox, B, room.id);
          await postRange(room.id, want, 0, 5);
        }
        await assertExactly(inbox, want, { postBase: B, roomId: room.id });
        assert.equal(calls.length, 1, 'onCursorExpired called once');
        assert.ok(!inbox.events.some((e) => e.text === 'before-0'), 'the message before the refetched cursor is not replayed');
        const resumed = resumeFromRefetch ? calls[0].newest.cursor : null;
        assert.deepEqual(sent.map((s) => s.after).slice(0, 2), [stale, resumed],
          'first the stale cursor, then the refetched one or none');
        assert.notEqual(sent[0].id, sent[1].id, 'a new subscription after CURSOR_EXPIRED');
        t.diagnostic(`${kind}: CURSOR_EXPIRED (${calls[0].errors[0].message}) → refetch → ` +
          `${resumeFromRefetch ? 'resumed after the refetched cursor' : 'live'}; 5 messages once each in ${Date.now() - started} ms`);
      });
    });
  }
}

test('control: graphql-ws without the recipe resubscribes from scratch and misses what was posted while away', { timeout: 30_000 }, async (t) => {
  const room = await createRoom(B, 'no-resume');
  const proxy = await TcpProxy.start(A);
  const log = [];
  const sent = [];
  const client = wsClient(proxy, log, sent);
  const inbox = new Inbox('plain graphql-ws subscription via the proxy');
  const stop = client.subscribe({ query: RESUMABLE, variables: { roomId: room.id } }, {
    next: (r) => inbox.push(messageEvent(r)),
    error: (err) => inbox.end(`error: ${describeError(err)}`),
    complete: () => inbox.end('complete'),
  });
  try {
    const want = Array.from({ length: 15 }, (_, i) => `msg-${i}`);
    await primeSubscription(inbox, B, room.id);
    await postRange(room.id, want, 0, 5);
    await inbox.waitFor((evs) => evs.filter(isReal).length === 5, 10_000, 'msg-0..4');
    proxy.refuse();
    proxy.cut();
    await proxy.waitUntil((p) => p.stats.refused >= 1, 10_000, 'a refused reconnect attempt');
    await postRange(room.id, want, 5, 10);
    proxy.route(B);
    proxy.pass();
    // Wait until the new subscription is live, as the recipe never needs to.
    for (let i = 0; ; i++) {
      await postMessage(B, room.id, `again-${i}`);
      try {
        await inbox.waitFor((evs) => evs.some((e) => e.text?.startsWith('again-')), 250, 'a live message after the reconnect');
        break;
      } catch (err) {
        if (i >= 40) throw err;
      }
    }
    await postRange(room.id, want, 10, 15);
    await inbox.waitFor((evs) => evs.filter(isReal).length >= 10, 10_000, 'msg-10..14');
    await awaitFence(inbox, B, room.id);
    const got = texts(inbox);
    assert.deepEqual(got, [...want.slice(0, 5), ...want.slice(10)],
      `without a cursor the messages posted while away are lost: ${describeDifference(got, want)}`);
    assert.deepEqual(sent.map((s) => s.after), [null, null], 'graphql-ws resent the payload as it was');
    t.diagnostic(`without the recipe: ${describeDifference(got, want)}`);
  } catch (err) {
    err.message += `\nclient events: ${json(log)}\nproxy: ${json(proxy.stats)}`;
    throw err;
  } finally {
    stop();
    try {
      await withTimeout(client.dispose(), 5000, 'closing the client');
    } finally {
      await proxy.close();
    }
  }
  await assertSocketsClosed();
});

test('control: graphql-ws with its default shouldRetry gives up when a reconnect is refused', { timeout: 20_000 }, async (t) => {
  // Why the recipe sets shouldRetry: () => true. A refused connection fails
  // with an error event, not a close event, and graphql-ws' default
  // shouldRetry (isLikeCloseEvent) takes that as fatal: the subscription
  // ends even though retryAttempts is not used up.
  const room = await createRoom(B, 'default-retry');
  const proxy = await TcpProxy.start(A);
  const log = [];
  const client = createClient({
    url: wsURL(proxy.base),
    webSocketImpl: TrackedWebSocket,
    connectionParams: { user: 'alice' },
    retryAttempts: 10,
    retryWait: () => sleep(50),
    on: { connected: () => log.push('connected'), closed: (ev) => log.push(`closed ${describeError(ev)}`) },
  });
  const inbox = new Inbox('graphql-ws subscription with the default shouldRetry');
  const stop = client.subscribe({ query: RESUMABLE, variables: { roomId: room.id } }, {
    next: (r) => inbox.push(messageEvent(r)),
    error: (err) => inbox.end(`error: ${describeError(err)}`),
    complete: () => inbox.end('complete'),
  });
  try {
    await primeSubscription(inbox, B, room.id);
    proxy.refuse();
    proxy.cut();
    const deadline = Date.now() + 10_000;
    while (!inbox.ended && Date.now() < deadline) await sleep(10);
    assert.match(inbox.ended ?? 'still running', /^error: error event/, 'the subscription ends with the error event');
    assert.equal(proxy.stats.refused, 1, 'after one refused attempt');
    t.diagnostic(`default shouldRetry: ${inbox.ended} after ${proxy.stats.refused} refused attempt`);
  } catch (err) {
    err.message += `\nclient events: ${json(log)}\nproxy: ${json(proxy.stats)}`;
    throw err;
  } finally {
    stop();
    try {
      await withTimeout(client.dispose(), 5000, 'closing the client');
    } finally {
      await proxy.close();
    }
  }
  await assertSocketsClosed();
});

/**
 * A syntactically valid cursor of another log epoch: cursors are opaque to
 * clients, but the test knows they are base64url("h2:<epoch36>:<seq36>:<tag>"),
 * the tag naming the list the cursor was taken from.
 */
function otherEpoch(cursor) {
  const raw = Buffer.from(cursor, 'base64url').toString();
  const m = /^h2:([0-9a-z]+):([0-9a-z]+):([0-9a-z]+)$/.exec(raw);
  assert.ok(m, `unexpected cursor format ${json(raw)} (from ${cursor})`);
  const epoch = m[1].slice(0, -1) + (m[1].endsWith('1') ? '2' : '1');
  return Buffer.from(`h2:${epoch}:${m[2]}:${m[3]}`).toString('base64url');
}

// graphql-sse's own client (distinct connections mode) resuming across replicas
// with the README's recipe: record each result's extensions.cursor into
// request.variables.after. graphql-sse 2.6.1 (lib/client.mjs, subscribe() in
// distinct connections mode) retries a stream that failed or ended without
// `complete` by POSTing JSON.stringify(request) again, the very object the app
// passed to subscribe, and sends no Last-Event-ID. So with the recipe the
// retry carries the last cursor and Herald replays from it, on any replica.
//
// Each test goes through a TCP proxy standing for a load balancer: the
// subscriber's replica goes away (the proxy cuts it off, or a replica C the
// test started drains with SIGTERM or is SIGKILLed), new connections are held
// meanwhile, ten messages are posted on replica B, and then the held
// connections go on to B. The last two tests are the same without the
// recipe, and assert what it prevents: a request with no `after` loses the
// messages posted while it was away, one whose `after` is never updated gets
// the messages again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'graphql-sse';
import {
  A, B, httpURL, createRoom, gql, postMessage, withTimeout, describeError, failIfProcessLingers, Inbox,
  primeSubscription, awaitFence, describeDifference, messageEvent,
} from './lib/herald.js';
import { TcpProxy } from './lib/proxy.js';
import { Replica } from './lib/replica.js';

failIfProcessLingers('graphql-sse-resume.test.js');

/** messagePosted with the resume argument in a variable. */
const RESUMABLE = `subscription OnMessagePosted($roomId: ID!, $after: String) {
  messagePosted(roomId: $roomId, after: $after) { id text version author { name } room { id messageCount } }
}`;

const json = (v) => JSON.stringify(v);
const isReal = (e) => typeof e.text === 'string' && e.text.startsWith('msg-');
const texts = (n, from = 0) => Array.from({ length: n }, (_, i) => `msg-${from + i}`);

let primes = 0;

/** Posts probes with a fresh prefix until one arrives: the (re)subscription is live. */
async function primeAgain(inbox, roomId, ms = 15_000) {
  const prefix = `reprobe-${primes++}-`;
  const deadline = Date.now() + ms;
  for (let i = 0; ; i++) {
    await postMessage(B, roomId, `${prefix}${i}`);
    try {
      await inbox.waitFor((evs) => evs.some((e) => e.text?.startsWith(prefix)), 250, `a ${prefix} probe`);
      return;
    } catch (err) {
      if (inbox.ended || Date.now() >= deadline) throw err;
    }
  }
}

/**
 * One outage of the subscriber's replica. outage: 'cut' (the proxy, routed
 * to A, cuts every connection), 'drain' (replica C, behind the proxy, gets
 * SIGTERM) or 'kill' (C gets SIGKILL). recipe: whether next() records the
 * cursor into request.variables.after. after: the request's initial after.
 * Returns the real messages received, the POSTs' `after`s and the count of
 * connections.
 */
async function outageScenario(t, { label, outage, recipe, after }) {
  const room = await createRoom(A, `sse-resume-${outage}`);
  let c = null;
  if (outage !== 'cut') {
    c = await Replica.start(`sse-resume-${outage}-${Date.now()}`);
    t.after(() => c.stop('SIGKILL'));
  }
  const first = c ? c.base : A;
  const proxy = await TcpProxy.start(first);
  t.after(() => proxy.close());

  let seed = null;
  if (after === 'seed') {
    // The app read the room and subscribes after the last message it has.
    seed = (await gql(B, 'mutation($r: ID!) { postMessage(roomId: $r, text: "seed") { id cursor } }',
      { r: room.id }, { user: 'bob', retryRateLimited: true })).postMessage;
  }

  const posts = []; // variables.after of every POST the client sent
  const fetchFn = (input, init = {}) => {
    if ((init.method ?? 'GET') === 'POST' && typeof init.body === 'string') {
      posts.push(JSON.parse(init.body).variables?.after ?? null);
    }
    return fetch(input, init);
  };
  const client = createClient({
    url: httpURL(proxy.base),
    fetchFn,
    headers: { 'X-Herald-User': 'alice' },
    retryAttempts: 40,
    retry: () => sleep(150), // instead of the default 1 s+ randomised backoff
  });
  t.after(() => client.dispose());

  // The README's recipe, as an app would write it.
  const request = { query: RESUMABLE, variables: { roomId: room.id } };
  if (seed) request.variables.after = seed.cursor;
  const inbox = new Inbox(label);
  let connected = 0;
  client.subscribe(request, {
    next(result) {
      if (recipe && typeof result.extensions?.cursor === 'string') request.variables.after = result.extensions.cursor;
      inbox.push(messageEvent(result));
    },
    error: (err) => inbox.end(`error: ${describeError(err)}`),
    complete: () => inbox.end('complete'),
  }, { connected: () => { connected++; } });

  await primeSubscription(inbox, B, room.id);
  for (const text of texts(10)) await postMessage(B, room.id, text);
  await inbox.waitFor((evs) => evs.some((e) => e.text === 'msg-9'), 10_000, 'msg-0..msg-9');
  const lastBefore = inbox.events.at(-1).cursor;

  // The subscriber's replica goes away; the balancer holds new connections
  // until it has somewhere to send them (B).
  proxy.hold();
  proxy.route(B);
  let how = 'cut';
  if (outage === 'cut') proxy.cut();
  else how = await c.stop(outage === 'drain' ? 'SIGTERM' : 'SIGKILL');
  await proxy.waitUntil((p) => p.open(first) === 0, 15_000, `no connection left to ${first}`);
  for (const text of texts(10, 10)) await postMessage(B, room.id, text);
  proxy.pass();
  await withTimeout((async () => { while (connected < 2) await sleep(20); })(), 15_000,
    () => `graphql-sse to reconnect (connected ${connected}, POST afters ${json(posts)}, proxy ${json(proxy.stats)}; ${inbox.ended ?? 'not ended'})`);
  await primeAgain(inbox, room.id);
  for (const text of texts(10, 20)) await postMessage(B, room.id, text);
  await inbox.waitFor((evs) => evs.some((e) => e.text === 'msg-29'), 15_000,
    () => `msg-29 (${describeDifference(inbox.events.filter(isReal).map((e) => e.text), texts(30))})`);
  await awaitFence(inbox, B, room.id);

  const errored = inbox.events.filter((e) => e.errors?.length);
  assert.equal(errored.length, 0, `${label}: events with errors: ${json(errored)}`);
  assert.equal(inbox.ended, null, `${label}: the subscription ended: ${inbox.ended}`);
  assert.ok(proxy.stats.byTarget[B] >= 1, `${label}: the reconnection went to replica B: ${json(proxy.stats)}`);
  const got = inbox.events.filter(isReal).map((e) => e.text);
  t.diagnostic(`${label}: outage ${how}; ${connected} connections; POSTs' variables.after: ${json(posts)}; ` +
    `proxy ${json(proxy.stats)}`);
  t.diagnostic(`${label}: received ${got.length} msg-*: ${describeDifference(got, texts(30))}`);
  return { got, posts, lastBefore, seed };
}

for (const outage of ['cut', 'drain', 'kill']) {
  const what = { cut: 'cut off from replica A by the proxy', drain: 'on replica C, which drains (SIGTERM)',
    kill: 'on replica C, which is SIGKILLed' }[outage];
  test(`graphql-sse client with the cursor recipe, ${what}, resumes on replica B: nothing lost or repeated`,
    { timeout: 60_000 }, async (t) => {
      const { got, posts, lastBefore } = await outageScenario(t, { label: `recipe/${outage}`, outage, recipe: true });
      assert.deepEqual(got, texts(30), `messages not received exactly once and in order: ${describeDifference(got, texts(30))}`);
      assert.equal(posts[0], null, 'the first POST has no after');
      assert.ok(posts.includes(lastBefore),
        `a retry POSTed the last cursor received before the outage (${lastBefore}): ${json(posts)}`);
    });
}

test('without the recipe (no after), the graphql-sse client loses what was posted while it reconnected',
  { timeout: 60_000 }, async (t) => {
    const { got, posts } = await outageScenario(t, { label: 'no-recipe/no-after', outage: 'cut', recipe: false });
    assert.ok(posts.every((a) => a === null), `no POST carried an after: ${json(posts)}`);
    assert.deepEqual(got, [...texts(10), ...texts(10, 20)],
      `want msg-10..msg-19 (posted while away) lost, the others once each: ${describeDifference(got, texts(30))}`);
  });

test('without the recipe (a fixed after), the graphql-sse client receives again what it had',
  { timeout: 60_000 }, async (t) => {
    const { got, posts, seed } = await outageScenario(t, { label: 'no-recipe/fixed-after', outage: 'cut', recipe: false, after: 'seed' });
    assert.ok(posts.length >= 2 && posts.every((a) => a === seed.cursor), `every POST carried the seed's cursor: ${json(posts)}`);
    assert.deepEqual(got, [...texts(10), ...texts(30)],
      `want msg-0..msg-9 twice, then msg-10..msg-29 once: ${describeDifference(got, texts(30))}`);
  });

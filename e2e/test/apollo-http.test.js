// Apollo Client with nothing but an HttpLink: queries, mutations and
// subscriptions all go over HTTP to replica A, subscriptions in Apollo's
// multipart protocol (HttpLink asks for it with
// Accept: multipart/mixed;boundary=graphql;subscriptionSpec=1.0,...).
// Messages are posted on replica B with plain fetch. Then the README's
// recipe for resuming such subscriptions (lib/resume.js: createCursorLink
// and a RetryLink with shouldResubscribe) across a replica that drains and
// restarts, and across a connection cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { CombinedGraphQLErrors, CombinedProtocolErrors, ServerError } from '@apollo/client/errors';
import { RetryLink } from '@apollo/client/link/retry';
import {
  A, B, httpURL, withTimeout, describeError, failIfProcessLingers, Inbox, checkDelivery, MESSAGE_POSTED, messageEvent,
  createRoom, postMessage, primeSubscription, assertExactly,
} from './lib/herald.js';
import { createCursorLink, shouldResubscribe } from './lib/resume.js';
import { Replica } from './lib/replica.js';
import { TcpProxy } from './lib/proxy.js';

failIfProcessLingers('apollo-http.test.js');

const CREATE_ROOM = gql`
  mutation CreateRoom($name: String!) {
    createRoom(name: $name) { id name messageCount }
  }
`;

/** An Apollo Client whose only link is an HttpLink, fetching with fetchImpl. */
function httpOnlyApollo(uri = httpURL(A), fetchImpl = fetch) {
  return new ApolloClient({
    link: new HttpLink({ uri, fetch: fetchImpl, headers: { 'X-Herald-User': 'alice' } }),
    cache: new InMemoryCache(),
  });
}

/** Subscribes and collects what Apollo Client reports into an Inbox. */
function subscribeInto(client, inbox, query, variables) {
  return client.subscribe({ query, variables }).subscribe({
    next: (r) => {
      if (r.error) {
        inbox.push({ errors: [describeError(r.error)], error: r.error });
      } else {
        inbox.push(messageEvent(r));
      }
    },
    error: (err) => inbox.end(`error: ${describeError(err)}`),
    complete: () => inbox.end('complete'),
  });
}

/** Open multipart streams on a replica, from its herald_http_streams gauge. */
async function openMultipartStreams(base) {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const line = text.split('\n').find((l) => l.startsWith('herald_http_streams{transport="multipart"}'));
  assert.ok(line, `no herald_http_streams{transport="multipart"} in ${base}/metrics`);
  return Number(line.split(' ').pop());
}

test('Apollo Client with only an HttpLink on replica A: mutation, then a subscription to messages posted on replica B',
  { timeout: 60_000 }, async (t) => {
    const client = httpOnlyApollo();
    t.after(() => client.stop());
    const name = `apollo-http-${Date.now().toString(36)}`;
    const created = await withTimeout(client.mutate({ mutation: CREATE_ROOM, variables: { name } }), 10_000, 'createRoom mutation');
    assert.equal(created.error, undefined, `createRoom error: ${describeError(created.error)}`);
    const room = created.data.createRoom;

    const inbox = new Inbox('Apollo HttpLink (multipart) subscription on replica A');
    const sub = subscribeInto(client, inbox, gql(MESSAGE_POSTED), { roomId: room.id });
    try {
      await checkDelivery(t, { inbox, postBase: B, roomId: room.id, baseCount: 0 });
      assert.equal(await openMultipartStreams(A), 1, 'the subscription is a multipart stream on replica A');
    } finally {
      sub.unsubscribe();
    }
    // Unsubscribing aborts the request: replica A's stream ends with it.
    const deadline = Date.now() + 5000;
    let open;
    while ((open = await openMultipartStreams(A)) !== 0 && Date.now() < deadline) await sleep(50);
    assert.equal(open, 0, 'replica A still holds a multipart stream 5 s after the subscription was unsubscribed');
  });

test('Apollo Client over multipart: a subscription that fails validation reports CombinedGraphQLErrors', { timeout: 20_000 }, async (t) => {
  const client = httpOnlyApollo();
  t.after(() => client.stop());
  const inbox = new Inbox('invalid subscription');
  const sub = subscribeInto(client, inbox, gql`subscription Bad($roomId: ID!) { messagePosted(roomId: $roomId) { nope } }`,
    { roomId: 'whatever' });
  t.after(() => sub.unsubscribe());
  await inbox.waitFor((evs) => evs.some((e) => e.errors), 10_000, 'the validation error');
  const { error } = inbox.events.find((e) => e.errors);
  assert.ok(CombinedGraphQLErrors.is(error), `want CombinedGraphQLErrors, got ${describeError(error)}`);
  assert.match(error.errors[0].message, /nope/);
});

// Herald's transport errors (a slow consumer, expired credentials, a
// draining replica) end a stream with {"payload":null,"errors":[...]} and
// the close delimiter. None can be caused on demand against the e2e
// replicas, so this feeds Apollo Client a stream in exactly that layout
// (server/multipart.go, multipartFormat), in small chunks that split
// delimiters and parts, and checks what Apollo Client makes of it.
test('Apollo Client reads a Herald transport error as CombinedProtocolErrors, after the results before it', { timeout: 10_000 }, async (t) => {
  const head = 'Content-Type: application/json; charset=utf-8\r\n\r\n';
  const delimiter = '\r\n--graphql\r\n';
  const result = (text, cursor) => JSON.stringify({
    payload: { data: { messagePosted: { id: 'm1', text, version: 1, author: { name: 'bob', __typename: 'User' }, room: { id: 'r1', messageCount: 1, __typename: 'Room' }, __typename: 'Message' } }, extensions: { cursor } },
  });
  const body = delimiter +
    head + result('msg-0', 'c0') + delimiter +
    head + '{}' + delimiter +
    head + JSON.stringify({ payload: null, errors: [{ message: 'slow consumer: the stream fell behind', extensions: { code: 'SLOW_CONSUMER' } }] }) +
    '\r\n--graphql--\r\n';
  const bytes = new TextEncoder().encode(body);
  const fakeFetch = async () => new Response(new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.slice(i, i + 7));
      controller.close();
    },
  }), { status: 200, headers: { 'Content-Type': 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0' } });
  const client = httpOnlyApollo(httpURL(A), fakeFetch);
  t.after(() => client.stop());
  const inbox = new Inbox('Apollo Client on a canned multipart stream');
  const sub = subscribeInto(client, inbox, gql(MESSAGE_POSTED), { roomId: 'r1' });
  t.after(() => sub.unsubscribe());
  await inbox.waitFor((evs) => evs.some((e) => e.errors), 5000, 'the transport error');
  await inbox.waitFor(() => inbox.ended, 5000, 'the subscription to complete');
  const [first, second, ...rest] = inbox.events;
  assert.equal(first.text, 'msg-0');
  assert.equal(first.cursor, 'c0');
  assert.ok(CombinedProtocolErrors.is(second.error), `want CombinedProtocolErrors, got ${describeError(second.error)}`);
  assert.equal(second.error.errors[0].extensions.code, 'SLOW_CONSUMER');
  assert.equal(rest.length, 0, `nothing after the error: ${JSON.stringify(rest)}`);
  assert.equal(inbox.ended, 'complete');
});

/** messagePosted with the `$after` the recipe fills in. */
const RESUMABLE = gql`
  subscription OnMessagePosted($roomId: ID!, $after: String) {
    messagePosted(roomId: $roomId, after: $after) { id text version author { name } room { id messageCount } }
  }
`;

const json = (v) => JSON.stringify(v);
const isReal = (e) => typeof e.text === 'string' && e.text.startsWith('msg-');
const texts = (inbox) => inbox.events.filter(isReal).map((e) => e.text);

/** Why RetryLink was asked to retry, in a word or two. */
function retryReason(error) {
  if (CombinedProtocolErrors.is(error)) return `protocol ${error.errors.map((e) => e.extensions?.code).join(',')}`;
  if (ServerError.is(error)) return `http ${error.statusCode}`;
  return `network ${error?.message}`;
}

/**
 * An Apollo Client whose HttpLink to uri runs behind the resume recipe.
 * It records the `after` of every subscription request it sends, and why
 * RetryLink retried.
 */
function resumingApollo(uri) {
  const sent = [];
  const retried = [];
  const recordingFetch = (url, init) => {
    const body = JSON.parse(init.body);
    if (body.operationName === 'OnMessagePosted') sent.push(body.variables?.after ?? null);
    return fetch(url, init);
  };
  const client = new ApolloClient({
    link: ApolloLink.from([
      createCursorLink(),
      new RetryLink({
        delay: { initial: 50, max: 500 }, // short only to keep the test fast
        attempts: {
          max: Infinity,
          retryIf: (error, operation) => {
            retried.push(retryReason(error));
            return shouldResubscribe(error, operation);
          },
        },
      }),
      new HttpLink({ uri, fetch: recordingFetch, headers: { 'X-Herald-User': 'alice' } }),
    ]),
    cache: new InMemoryCache(),
  });
  return { client, sent, retried };
}

/** Waits until pred() holds, polling; fails naming what after ms. */
async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
    await sleep(20);
  }
}

test('Apollo HttpLink with the resume recipe: its replica drains (SHUTTING_DOWN) and restarts, and the subscription resumes from its cursor, every message once and in order',
  { timeout: 90_000 }, async (t) => {
    const started = Date.now();
    const room = await createRoom(B, 'apollo-http-restart');
    const c = await Replica.start('c');
    const { client, sent, retried } = resumingApollo(httpURL(c.base));
    const inbox = new Inbox('Apollo HttpLink subscription on replica C, with the resume recipe');
    const sub = subscribeInto(client, inbox, RESUMABLE, { roomId: room.id });
    const want = Array.from({ length: 15 }, (_, i) => `msg-${i}`);
    try {
      await primeSubscription(inbox, B, room.id);
      for (const text of want.slice(0, 5)) await postMessage(B, room.id, text);
      await inbox.waitFor((evs) => evs.filter(isReal).length === 5, 10_000, 'msg-0..4 live from replica C');
      const cursor = inbox.events.at(-1).cursor;

      // The replica drains: the stream ends with a SHUTTING_DOWN part, and
      // every new attempt is refused until it is back.
      assert.equal(await c.stop('SIGTERM'), 'exit 0', 'replica C drains and exits 0 on SIGTERM');
      await until(() => retried.includes('protocol SHUTTING_DOWN'), 10_000, () => `a SHUTTING_DOWN retry (retries: ${json(retried)})`);
      for (const text of want.slice(5, 10)) await postMessage(B, room.id, text);
      assert.deepEqual(texts(inbox), want.slice(0, 5), 'nothing arrives while replica C is down');

      // Back on the same port: the next retry resumes from the cursor of
      // msg-4, and msg-5..9 arrive by replay.
      await c.start();
      await inbox.waitFor((evs) => evs.filter(isReal).length >= 10, 15_000, 'msg-5..9 replayed by the restarted replica C');
      for (const text of want.slice(10)) await postMessage(B, room.id, text);
      await assertExactly(inbox, want, { postBase: B, roomId: room.id });
      assert.equal(inbox.ended, null, 'the application\'s subscription saw no error and no end');

      assert.equal(sent[0], null, 'the first subscribe has no cursor');
      assert.ok(sent.length >= 2, `at least one resubscribe: ${json(sent)}`);
      assert.deepEqual(sent.slice(1), sent.slice(1).map(() => cursor), 'every resubscribe carried the cursor of msg-4');
      t.diagnostic(`${want.length} messages once each and in order across a drain and a restart, in ${Date.now() - started} ms; ` +
        `${sent.length - 1} resubscribe attempt(s), retried after: ${json(retried)}`);
    } catch (err) {
      err.message += `\nsubscribe requests' after: ${json(sent)}\nretried after: ${json(retried)}${c.logTail()}`;
      throw err;
    } finally {
      sub.unsubscribe();
      client.stop();
      await c.stop();
    }
  });

test('Apollo HttpLink with the resume recipe: a multipart stream cut off from replica A resumes on replica B from its cursor',
  { timeout: 60_000 }, async (t) => {
    const room = await createRoom(B, 'apollo-http-cut');
    const proxy = await TcpProxy.start(A);
    const { client, sent, retried } = resumingApollo(httpURL(proxy.base));
    const inbox = new Inbox('Apollo HttpLink subscription through the proxy, with the resume recipe');
    const sub = subscribeInto(client, inbox, RESUMABLE, { roomId: room.id });
    const want = Array.from({ length: 15 }, (_, i) => `msg-${i}`);
    try {
      await primeSubscription(inbox, B, room.id);
      for (const text of want.slice(0, 5)) await postMessage(B, room.id, text);
      await inbox.waitFor((evs) => evs.filter(isReal).length === 5, 10_000, 'msg-0..4 live from replica A');
      const cursor = inbox.events.at(-1).cursor;

      // The network breaks: the stream is cut mid-body, and the next
      // connection goes to B. What is posted meanwhile comes by replay.
      proxy.route(B);
      assert.equal(proxy.cut(), 1, 'one connection cut');
      for (const text of want.slice(5, 10)) await postMessage(B, room.id, text);
      await inbox.waitFor((evs) => evs.filter(isReal).length >= 10, 10_000, 'msg-5..9 replayed by replica B');
      for (const text of want.slice(10)) await postMessage(B, room.id, text);
      await assertExactly(inbox, want, { postBase: B, roomId: room.id });
      assert.equal(inbox.ended, null, 'the application\'s subscription saw no error and no end');

      assert.ok(retried.some((r) => r.startsWith('network')), `retried after a network error: ${json(retried)}`);
      assert.deepEqual(sent, [null, cursor], 'one resubscribe, with the cursor of msg-4');
      assert.equal(proxy.stats.byTarget[B], 1, `the resubscribe went to replica B: ${json(proxy.stats)}`);
      t.diagnostic(`${want.length} messages once each and in order across a cut; retried after: ${json(retried)}`);
    } catch (err) {
      err.message += `\nsubscribe requests' after: ${json(sent)}\nretried after: ${json(retried)}\nproxy: ${json(proxy.stats)}`;
      throw err;
    } finally {
      sub.unsubscribe();
      client.stop();
      await proxy.close();
    }
  });

// Apollo Client with nothing but an HttpLink: queries, mutations and
// subscriptions all go over HTTP to replica A, subscriptions in Apollo's
// multipart protocol (HttpLink asks for it with
// Accept: multipart/mixed;boundary=graphql;subscriptionSpec=1.0,...).
// Messages are posted on replica B with plain fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { CombinedGraphQLErrors, CombinedProtocolErrors } from '@apollo/client/errors';
import {
  A, B, httpURL, withTimeout, describeError, failIfProcessLingers, Inbox, checkDelivery, MESSAGE_POSTED, messageEvent,
} from './lib/herald.js';

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
  }), { status: 200, headers: { 'Content-Type': 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0"' } });
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

// What Apollo Client gets for documents Herald does not run: @defer (which
// Apollo Client 4 sends once an incrementalHandler is configured), and
// @skip or @include on a subscription's root field. Each is refused in
// validation with GRAPHQL_VALIDATION_FAILED before anything runs (before,
// a deferred fragment's non-null fields came back null with no error, and
// a subscription's skipped root field streamed an error without a code).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { Defer20220824Handler } from '@apollo/client/incremental';
import { A, B, httpURL, withTimeout, describeError, failIfProcessLingers, createRoom } from './lib/herald.js';

failIfProcessLingers('apollo-unsupported.test.js');

/** An Apollo Client 4 with an HttpLink to replica A and @defer enabled. */
function deferApollo() {
  return new ApolloClient({
    link: new HttpLink({ uri: httpURL(A), headers: { 'X-Herald-User': 'alice' } }),
    cache: new InMemoryCache(),
    incrementalHandler: new Defer20220824Handler(),
  });
}

/** The first error a subscription ends with, within 10 s. */
async function firstError(client, query, variables) {
  let error = null;
  const results = [];
  const sub = client.subscribe({ query, variables }).subscribe({
    next: (r) => { if (r.error) error ??= r.error; else results.push(r); },
    error: (err) => { error ??= err; },
  });
  try {
    const until = Date.now() + 10_000;
    while (!error && Date.now() < until) await sleep(50);
  } finally {
    sub.unsubscribe();
  }
  assert.ok(error, `the subscription ended with no error; results: ${JSON.stringify(results)}`);
  return error;
}

function assertValidationError(err, want) {
  const errors = err.errors ?? [];
  assert.ok(errors.length > 0, `not a GraphQL error: ${describeError(err)}`);
  assert.ok(errors.every((e) => e.extensions?.code === 'GRAPHQL_VALIDATION_FAILED'), `codes: ${describeError(err)}`);
  assert.match(errors[0].message, want);
}

test('a query with @defer is refused in validation, not answered with nulls', { timeout: 20_000 }, async (t) => {
  const room = await createRoom(B, 'apollo-defer-query');
  const client = deferApollo();
  t.after(() => client.stop());
  const query = gql`query RoomDeferred($id: ID!) { room(id: $id) { id name ... @defer { messageCount createdBy { id name } } } }`;
  const result = await withTimeout(client.query({ query, variables: { id: room.id }, errorPolicy: 'all' }), 10_000, 'the @defer query');
  assert.ok(result.error, `answered ${JSON.stringify(result.data)} with no error`);
  assertValidationError(result.error, /@defer is not supported/);
});

test('a subscription with @defer is refused in validation', { timeout: 20_000 }, async (t) => {
  const room = await createRoom(B, 'apollo-defer-sub');
  const client = deferApollo();
  t.after(() => client.stop());
  const err = await firstError(client,
    gql`subscription DeferredPosted($roomId: ID!) { messagePosted(roomId: $roomId) { id ... @defer { author { id } } } }`,
    { roomId: room.id });
  assertValidationError(err, /@defer is not supported/);
});

test('a subscription whose root field has @skip is refused in validation', { timeout: 20_000 }, async (t) => {
  const room = await createRoom(B, 'apollo-skip-root');
  const client = new ApolloClient({ link: new HttpLink({ uri: httpURL(A) }), cache: new InMemoryCache() });
  t.after(() => client.stop());
  const err = await firstError(client,
    gql`subscription MaybePosted($roomId: ID!, $off: Boolean!) { messagePosted(roomId: $roomId) @skip(if: $off) { id text } }`,
    { roomId: room.id, off: true });
  assertValidationError(err, /must not use @skip or @include/);
});

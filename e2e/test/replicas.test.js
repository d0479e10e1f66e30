// Plain HTTP against both replicas: the ground the WebSocket tests stand on.
// A room created on one replica and messages posted on the other are seen
// by both, in the same order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { A, B, gql, createRoom, postMessage, failIfProcessLingers } from './lib/herald.js';

failIfProcessLingers('replicas.test.js');

const ROOM = `query($id: ID!) {
  room(id: $id) { id name messageCount messages(last: 50) { nodes { id text author { name } } } }
}`;

/** Polls base until pred(room) holds (the replicas follow one log, each at its own pace). */
async function eventually(base, id, pred, what) {
  let room;
  for (let i = 0; i < 50; i++) {
    room = (await gql(base, ROOM, { id })).room;
    if (room && pred(room)) return room;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: not seen within 5 s; last answer: ${JSON.stringify(room)}`);
}

test('both replicas are ready', { timeout: 10_000 }, async () => {
  for (const base of [A, B]) {
    const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200, `${base}/readyz: ${res.status} ${await res.text()}`);
  }
});

test('a room created on A and messages posted on B are the same on both replicas', { timeout: 20_000 }, async () => {
  const room = await createRoom(A, 'replicas');
  await eventually(B, room.id, (r) => r.name === room.name, 'the room created on A, on B');

  const posted = [];
  for (let i = 0; i < 5; i++) posted.push(await postMessage(i % 2 ? A : B, room.id, `msg-${i}`, i % 2 ? 'alice' : 'bob'));
  posted.forEach((m, i) => assert.equal(m.room.messageCount, i + 1, `read-your-writes: the answer to post ${i}`));

  const want = posted.map((m) => ({ id: m.id, text: m.text, author: m.author }));
  for (const base of [A, B]) {
    const r = await eventually(base, room.id, (x) => x.messageCount === 5, `5 messages on ${base}`);
    assert.deepEqual(r.messages.nodes, want, `messages on ${base}, in posting order`);
  }
});

test('the same idempotencyKey on both replicas stores one message', { timeout: 20_000 }, async () => {
  const room = await createRoom(B, 'idempotency');
  const post = (base) => gql(base,
    'mutation($r: ID!) { postMessage(roomId: $r, text: "once", idempotencyKey: "same-key") { id } }',
    { r: room.id }, { user: 'carol' });
  const first = await post(A);
  await eventually(B, room.id, (r) => r.messageCount === 1, 'the first post, on B');
  const second = await post(B);
  assert.equal(second.postMessage.id, first.postMessage.id, 'a retry on the other replica returns the first post');
  // A fence posted after the retry: a replica that has it has everything
  // stored before it, so a second "once" would be there too.
  const fence = await postMessage(B, room.id, 'fence', 'carol');
  for (const base of [A, B]) {
    const r = await eventually(base, room.id, (x) => x.messages.nodes.some((m) => m.id === fence.id), `the fence on ${base}`);
    assert.deepEqual(r.messages.nodes.map((m) => m.text), ['once', 'fence'], `messages on ${base}: the retry stored nothing`);
  }
});

test('a subscription over HTTP is refused with a GraphQL error', { timeout: 10_000 }, async () => {
  const res = await fetch(`${A}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Herald-User': 'alice' },
    body: JSON.stringify({ query: 'subscription { roomCreated { id } }' }),
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.json();
  // Herald's own refusal, not any error (a crash, a validation error).
  assert.deepEqual((body.errors ?? []).map((e) => e.extensions?.code), ['BAD_REQUEST'],
    `expected one BAD_REQUEST error, got HTTP ${res.status} ${JSON.stringify(body)}`);
  assert.match(body.errors[0].message, /subscription operations are not supported over a plain HTTP request/);
  assert.equal(body.data ?? null, null, `data with the refusal: ${JSON.stringify(body)}`);
});

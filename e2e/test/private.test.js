// Private rooms across the two replicas, with real clients: a room made
// private on replica A is refused to a non-member on replica B on every
// operation and transport (FORBIDDEN, naming nothing but the ID given);
// a member added on A receives on B; a member removed on A has their
// subscriptions on B ended with FORBIDDEN within a second, and resuming
// from their last cursor gets nothing posted since.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  A, B, nameOf, gql, gqlRaw, uniqueName, unknownRoomID, postMessage, failIfProcessLingers, primeSubscription, awaitFence,
  describeDifference, MESSAGE_POSTED,
} from './lib/herald.js';
import { connect, TRANSPORTS, GRAPHQL_WS, GRAPHQL_SSE, firstError, codes } from './lib/subs.js';

failIfProcessLingers('private.test.js');

// Users of this file alone: mutations are rate-limited per user, and the
// other files run beside this one.
const tag = randomBytes(3).toString('hex');
const ann = `ann-${tag}`; // creates the rooms; stays a member
const bob = `bob-${tag}`; // added, then removed
const eve = `eve-${tag}`; // never a member

const json = (v) => JSON.stringify(v);

/**
 * Checks that conn still serves after one of its subscriptions was refused
 * or ended: a query over it is answered as user, and it has not closed. (A
 * close right after the refusal would come after the refusal's frame: a
 * look at conn.rec.close alone would not see it.)
 */
async function assertConnectionServes(conn, user, what) {
  const results = await conn.run('{ viewer { id } }');
  assert.deepEqual(results.map((r) => r.data), [{ viewer: { id: user } }],
    `${conn.name}: a query after ${what}: ${json(results)}`);
  assert.equal(conn.rec.close, null, `${conn.name}: ${what} ends the subscription, not the connection`);
}

/** messagePosted with the resume argument, as a client that resumes sends it. */
const RESUMABLE = `subscription OnMessagePosted($roomId: ID!, $after: String) {
  messagePosted(roomId: $roomId, after: $after) { id text version author { name } room { id messageCount } }
}`;

async function createPrivateRoom(base, prefix, user) {
  const name = uniqueName(prefix);
  const data = await gql(base, 'mutation($n: String!) { createRoom(name: $n, private: true) { id name private members { totalCount nodes { id } } } }',
    { n: name }, { user, retryRateLimited: true });
  assert.deepEqual(data.createRoom, { id: data.createRoom.id, name, private: true, members: { totalCount: 1, nodes: [{ id: user }] } },
    'a private room, its creator its one member');
  return data.createRoom;
}

const membership = (op) => `mutation($r: ID!, $u: ID!) { ${op}(roomId: $r, userId: $u) { id members { totalCount nodes { id } } } }`;

/** Waits until replica base shows user the room (it may lag the replica that took the mutation). */
async function waitVisible(base, roomId, user, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await gqlRaw(base, 'query($r: ID!) { room(id: $r) { id } }', { r: roomId }, { user });
    if (last.data?.room?.id === roomId) return;
    if (Date.now() >= deadline) throw new Error(`${nameOf(base)} did not show ${user} room ${roomId} within ${ms} ms: ${json(last)}`);
    await sleep(50);
  }
}

/** Every room `rooms` lists for user on base, page by page. */
async function listRooms(base, user) {
  const ids = [];
  let after = null;
  for (let page = 0; page < 200; page++) {
    const data = await gql(base, 'query($a: String) { rooms(first: 50, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } }',
      { a: after }, { user });
    ids.push(...data.rooms.nodes.map((n) => n.id));
    if (!data.rooms.pageInfo.hasNextPage) return ids;
    after = data.rooms.pageInfo.endCursor;
  }
  throw new Error('rooms: more than 200 pages');
}

/** The answer with every occurrence of roomId (and msgId) replaced, to compare two rooms' answers. */
const anonymize = (body, ids) => {
  let s = json(body);
  for (const [id, as] of ids) s = s.split(id).join(as);
  return JSON.parse(s);
};

test('a private room made on replica A: a non-member on replica B gets FORBIDDEN from the room, its message, posting and a subscription on every transport, and learns nothing of it but the ID it gave',
  { timeout: 60_000 }, async (t) => {
    // Two private rooms that differ in everything but privacy: a
    // non-member's answers must be the same for both, but for the ID.
    const secret = await createPrivateRoom(A, 'private-secret', ann);
    const other = await createPrivateRoom(A, 'private-other', ann);
    const msg = await postMessage(A, secret.id, 'the secret text', ann);
    const decoy = await postMessage(A, other.id, 'another text', ann);
    await waitVisible(B, secret.id, ann);
    await waitVisible(B, other.id, ann);
    const leaks = [secret.name, other.name, 'secret text', 'another text', ann];
    const assertNoLeak = (what, body) => {
      for (const l of leaks) assert.ok(!json(body).includes(l), `${what} tells ${json(l)}: ${json(body)}`);
    };

    const operations = [
      ['the room query', 'query($r: ID!) { room(id: $r) { id name private messageCount members { totalCount nodes { id } } } }', (r) => ({ r: r.id })],
      ['the message query', 'query($m: ID!) { message(id: $m) { id text room { name } } }', (r, m) => ({ m: m.id })],
      ['postMessage', 'mutation($r: ID!) { postMessage(roomId: $r, text: "let me in") { id } }', (r) => ({ r: r.id })],
      ['addMember of themselves', 'mutation($r: ID!, $u: ID!) { addMember(roomId: $r, userId: $u) { id } }', (r) => ({ r: r.id, u: eve })],
    ];
    for (const [what, query, vars] of operations) {
      const answers = [];
      for (const [room, m] of [[secret, msg], [other, decoy]]) {
        const body = await gqlRaw(B, query, vars(room, m), { user: eve });
        assert.deepEqual(codes(body), ['FORBIDDEN'], `${what} on replica B as the non-member ${eve}: ${json(body)}`);
        assert.ok(body.data == null || Object.values(body.data).every((v) => v == null), `${what} returned data: ${json(body)}`);
        assertNoLeak(what, body);
        answers.push(anonymize(body, [[m.id, 'MESSAGE'], [room.id, 'ROOM']])); // a message ID may hold its room's
      }
      assert.deepEqual(answers[0], answers[1], `${what}: the non-member's answers for two private rooms differ in more than their IDs`);
    }

    // For comparison (not asserted): an ID that names no room is no
    // FORBIDDEN but a null room, so a refusal says the ID is taken; room
    // IDs are random, and only a member can have shown it to you.
    const unknown = await gqlRaw(B, 'query($r: ID!) { room(id: $r) { id } }', { r: unknownRoomID() }, { user: eve });
    t.diagnostic(`an ID that names no room: ${json(unknown)}`);

    // The name tells nothing either: a room of the same name can be made.
    const same = await gql(B, 'mutation($n: String!) { createRoom(name: $n) { id name private } }', { n: secret.name },
      { user: eve, retryRateLimited: true });
    assert.equal(same.createRoom.name, secret.name, 'a public room named like the private one is created');
    assert.notEqual(same.createRoom.id, secret.id);

    // rooms lists it for its member, not for the non-member.
    const annSees = await listRooms(B, ann);
    assert.ok(annSees.includes(secret.id), `rooms on replica B does not list the private room for its member ${ann}`);
    const eveSees = await listRooms(B, eve);
    assert.ok(eveSees.includes(same.createRoom.id), `rooms on replica B does not list ${eve}'s own public room`);
    assert.ok(!eveSees.includes(secret.id) && !eveSees.includes(other.id), `rooms on replica B lists a private room to the non-member: ${json(eveSees)}`);

    // Subscriptions: each ends with FORBIDDEN, and nothing else arrives.
    for (const transport of TRANSPORTS) {
      const conn = connect(transport, B, { user: eve });
      try {
        const inbox = conn.subscribe(MESSAGE_POSTED, { roomId: secret.id }, { label: `${conn.name}, messagePosted of the private room` });
        await inbox.waitFor(() => inbox.ended, 10_000, 'the subscription to end');
        const errored = firstError(inbox);
        assert.ok(errored, `${conn.name}: the subscription ended (${inbox.ended}) without a GraphQL error; received ${inbox.summary()}`);
        assert.deepEqual(codes(errored), ['FORBIDDEN'], `${conn.name}: ${json(errored.errors)}`);
        assert.ok(inbox.events.every((e) => e.text === undefined), `${conn.name}: a non-member received data: ${inbox.summary()}`);
        assertNoLeak(conn.name, errored.errors);
        await assertConnectionServes(conn, eve, 'the refusal');
        t.diagnostic(`${conn.name}: ${inbox.ended}`);
      } finally {
        await conn.close();
      }
    }
  });

test('a member added on replica A receives on replica B; removed on A, their subscriptions on B end with FORBIDDEN within 1 s on every transport, and a resume from their last cursor gets nothing posted after the removal',
  { timeout: 90_000 }, async (t) => {
    const room = await createPrivateRoom(A, 'private-members', ann);
    const added = await gql(A, membership('addMember'), { r: room.id, u: bob }, { user: ann, retryRateLimited: true });
    assert.deepEqual(added.addMember.members, { totalCount: 2, nodes: [{ id: ann }, { id: bob }] }, 'members in the order they joined');
    await waitVisible(B, room.id, bob);

    // bob on replica B over every transport; ann beside him, who stays.
    const conns = TRANSPORTS.map((tr) => connect(tr, B, { user: bob }));
    const annConn = connect(GRAPHQL_WS, B, { user: ann });
    t.after(() => Promise.all([...conns, annConn].map((c) => c.close())));
    const bobs = conns.map((c) => ({ conn: c, inbox: c.subscribe(RESUMABLE, { roomId: room.id }, { label: `${bob}'s ${c.name}` }) }));
    const annInbox = annConn.subscribe(RESUMABLE, { roomId: room.id }, { label: `${ann}'s ${annConn.name}` });
    for (const { inbox } of bobs) await primeSubscription(inbox, A, room.id, { user: ann });
    await primeSubscription(annInbox, A, room.id, { user: ann });

    // Posts on A reach the new member on B.
    const want = Array.from({ length: 5 }, (_, i) => `msg-${i}`);
    for (const text of want) await postMessage(A, room.id, text, ann);
    const real = (inbox) => inbox.events.filter((e) => e.text?.startsWith('msg-'));
    for (const { conn, inbox } of bobs) {
      await awaitFence(inbox, A, room.id, ann);
      assert.deepEqual(real(inbox).map((e) => e.text), want,
        `${conn.name}: ${describeDifference(real(inbox).map((e) => e.text), want)}`);
      assert.ok(real(inbox).every((e) => e.author === ann && e.cursor), `${conn.name}: ${inbox.summary()}`);
    }
    // One more message, last before the removal: once every subscription
    // has it, each has everything posted before (the fences of the others
    // included), so whatever follows came after the removal.
    await postMessage(A, room.id, 'settled', ann);
    for (const { inbox } of bobs) await inbox.waitFor((evs) => evs.some((e) => e.text === 'settled'), 10_000, 'the last message before the removal');
    const lastCursor = bobs[0].inbox.events.find((e) => e.text === 'settled').cursor;
    assert.ok(lastCursor, 'the last event has a cursor');
    const before = bobs.map(({ inbox }) => inbox.events.length);

    // The removal alone, with nothing posted, ends every one of bob's
    // subscriptions on B with FORBIDDEN.
    const sentAt = Date.now();
    const removed = await gql(A, membership('removeMember'), { r: room.id, u: bob }, { user: ann, retryRateLimited: true });
    const removedAt = Date.now();
    assert.deepEqual(removed.removeMember.members, { totalCount: 1, nodes: [{ id: ann }] });
    await Promise.all(bobs.map(({ inbox }) => inbox.waitFor(() => inbox.ended, 5_000, 'the end of the subscription after the removal')
      .catch((err) => err)));
    const took = [];
    for (const [i, { conn, inbox }] of bobs.entries()) {
      const after = inbox.events.slice(before[i]);
      const errored = after.find((e) => e.errors?.length);
      assert.ok(errored, `${conn.name}: not ended with a GraphQL error after the removal (${inbox.ended ?? 'still open'}); ` +
        `received since: ${json(after)}`);
      assert.deepEqual(codes(errored), ['FORBIDDEN'], `${conn.name}: ${json(errored.errors)}`);
      assert.ok(after.every((e) => e.text === undefined), `${conn.name}: data after the removal: ${json(after)}`);
      await assertConnectionServes(conn, bob, 'the removal');
      took.push(`${conn.name} ${errored.at - removedAt} ms (${errored.at - sentAt} ms after it was sent)`);
      assert.ok(errored.at - removedAt <= 1000,
        `${conn.name}: FORBIDDEN ${errored.at - removedAt} ms after the removeMember answer, want within 1000 ms`);
    }
    t.diagnostic(`removeMember answered in ${removedAt - sentAt} ms; FORBIDDEN after its answer (negative: before the answer reached ` +
      `the test): ${took.join(', ')}`);

    // Posted after the removal: ann gets it, bob's subscriptions do not.
    await postMessage(A, room.id, 'after-removal', ann);
    await annInbox.waitFor((evs) => evs.some((e) => e.text === 'after-removal'), 10_000, 'the message posted after the removal');
    assert.equal(annInbox.ended, null, `${ann}'s subscription goes on`);
    for (const { conn, inbox } of bobs) {
      assert.ok(!inbox.events.some((e) => e.text === 'after-removal'), `${conn.name}: received a message posted after the removal`);
    }

    // Resuming from the last cursor bob got (graphql-ws, then graphql-sse)
    // replays nothing: FORBIDDEN.
    for (const transport of [GRAPHQL_WS, GRAPHQL_SSE]) {
      const conn = connect(transport, B, { user: bob });
      try {
        const inbox = conn.subscribe(RESUMABLE, { roomId: room.id, after: lastCursor }, { label: `${bob}'s resume over ${conn.name}` });
        await inbox.waitFor(() => inbox.ended, 10_000, 'the resumed subscription to end');
        const errored = firstError(inbox);
        assert.ok(errored, `${conn.name}: the resume ended (${inbox.ended}) without a GraphQL error: ${inbox.summary()}`);
        assert.deepEqual(codes(errored), ['FORBIDDEN'], `${conn.name}: ${json(errored.errors)}`);
        assert.ok(inbox.events.every((e) => e.text === undefined), `${conn.name}: the resume after the removal delivered ${inbox.summary()}`);
      } finally {
        await conn.close();
      }
    }
  });

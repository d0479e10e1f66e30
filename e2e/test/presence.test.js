// Presence across the two replicas, with real clients: roomPresence on
// replica A sees a user who subscribes to messagePosted on replica B join;
// the same user's further tabs on A do not count twice, and they leave
// when their last tab closes; setTyping on B shows them typing on A, until
// it lapses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  A, B, nameOf, gql, gqlRaw, createRoom, failIfProcessLingers, primeSubscription, MESSAGE_POSTED,
} from './lib/herald.js';
import { connect, GRAPHQL_WS, LEGACY_WS, GRAPHQL_SSE } from './lib/subs.js';

failIfProcessLingers('presence.test.js');

// Users of this file alone: a user is present in a room whatever their
// subscription, and the other files run beside this one.
const tag = randomBytes(3).toString('hex');
const poster = `poster-${tag}`; // posts probes; never subscribes, so never present

const json = (v) => JSON.stringify(v);

const PRESENCE = `subscription RoomPresence($roomId: ID!) {
  roomPresence(roomId: $roomId) { kind user { id } count users { id } typing { id } }
}`;

/** Normalizes a roomPresence result for an Inbox: users and typing as IDs. */
function presenceEvent(result) {
  const p = result?.data?.roomPresence;
  return {
    kind: p?.kind,
    user: p?.user?.id ?? null,
    count: p?.count,
    users: p?.users?.map((u) => u.id),
    typing: p?.typing?.map((u) => u.id),
    errors: result?.errors,
  };
}

const sorted = (...ids) => [...ids].sort();

/** Waits until replica base knows the room. */
async function waitVisible(base, roomId, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const body = await gqlRaw(base, 'query($r: ID!) { room(id: $r) { id } }', { r: roomId });
    if (body.data?.room?.id === roomId) return;
    if (Date.now() >= deadline) throw new Error(`${nameOf(base)} did not know room ${roomId} within ${ms} ms: ${json(body)}`);
    await sleep(50);
  }
}

/**
 * A roomPresence subscriber: its events, each checked as it is read (no
 * error; count is the number of users; users each once, ordered by ID).
 */
class Watcher {
  constructor(conn, roomId) {
    this.conn = conn;
    this.inbox = conn.subscribe(PRESENCE, { roomId }, { label: `roomPresence over ${conn.name}`, normalize: presenceEvent });
    this.read = 0; // events already returned by until()
  }

  events() {
    return this.inbox.events;
  }

  /**
   * Waits until an event leaves exactly users present; returns it and the
   * events read since the last call (the last included).
   */
  async until(users, ms, what = `users ${json(users)}`, { keep = [] } = {}) {
    const want = json(users);
    const from = this.read;
    // A user of keep missing from an event fails at once.
    const lost = (evs) => evs.slice(from).find((e) => keep.some((u) => !e.users?.includes(u)));
    await this.inbox.waitFor((evs) => lost(evs) || evs.slice(from).some((e) => json(e.users) === want), ms,
      () => `${what}; presence events so far: ${json(this.events())}`);
    const gone = lost(this.events());
    assert.ok(!gone, `waiting for ${what}, ${json(keep)} must stay present, but: ${json(gone)}; events: ${json(this.events().slice(from))}`);
    const i = this.events().findIndex((e, k) => k >= from && json(e.users) === want);
    this.read = i + 1;
    const seen = this.events().slice(from, i + 1);
    for (const e of seen) {
      assert.equal(e.errors, undefined, `roomPresence: an error: ${json(e)}`);
      assert.ok(Array.isArray(e.users) && e.count === e.users.length, `roomPresence: count ${e.count} for users ${json(e.users)}`);
      assert.deepEqual(e.users, [...new Set(e.users)].sort(), `roomPresence: users not each once and ordered by ID: ${json(e)}`);
    }
    return { event: seen.at(-1), seen };
  }
}

/** Opens a messagePosted subscription as user on base and waits until it delivers (probes posted on postBase). */
async function tab(transport, base, user, roomId, postBase) {
  const conn = connect(transport, base, { user });
  const inbox = conn.subscribe(MESSAGE_POSTED, { roomId }, { label: `${user}'s tab: ${transport} on ${nameOf(base)}` });
  await primeSubscription(inbox, postBase, roomId, { user: poster });
  return conn;
}

test('roomPresence on replica A: a user subscribing on replica B joins; their tabs on A (two, on two protocols) do not count twice; they leave only when the last tab closes',
  { timeout: 90_000 }, async (t) => {
    const room = await createRoom(A, 'presence', poster);
    await waitVisible(B, room.id);
    const watcher = `watcher-${tag}`;
    const dave = `dave-${tag}`;
    const conns = [];
    t.after(() => Promise.all(conns.map((c) => c.close())));
    const open = async (...args) => { const c = await tab(...args); conns.push(c); return c; };

    const wconn = connect(GRAPHQL_WS, A, { user: watcher });
    conns.push(wconn);
    const w = new Watcher(wconn, room.id);
    await w.inbox.waitFor((evs) => evs.length > 0, 10_000, 'the first roomPresence event');
    assert.equal(w.events()[0].kind, 'SNAPSHOT', `the first event is a SNAPSHOT: ${json(w.events()[0])}`);
    await w.until([watcher], 10_000, 'the watcher present itself');

    // dave subscribes on replica B: A's roomPresence shows him join.
    const onB = await open(GRAPHQL_WS, B, dave, room.id, A);
    const joined = await w.until(sorted(dave, watcher), 10_000, `${dave} (on replica B) to join`);
    assert.deepEqual([joined.event.kind, joined.event.user, joined.event.count], ['JOINED', dave, 2],
      `${dave} joined as ${json(joined.event)}`);

    // Two more tabs on replica A, each live (it delivered a message).
    // A user who comes afterwards, on A too, is the fence: once they are
    // in, whatever A had to say of dave's tabs has been said.
    const fence = async (n, base) => {
      const f = `fence${n}-${tag}`;
      const c = await open(LEGACY_WS, base, f, room.id, A);
      return { user: f, conn: c };
    };
    const onA1 = await open(GRAPHQL_WS, A, dave, room.id, B);
    const onA2 = await open(LEGACY_WS, A, dave, room.id, B);
    const f1 = await fence(1, A);
    let step = await w.until(sorted(dave, f1.user, watcher), 10_000, `${f1.user} to join`, { keep: [dave] });
    assert.deepEqual(step.seen.map((e) => [e.kind, e.user]), [['JOINED', f1.user]],
      `${dave}'s second and third tabs (on replica A) changed presence: ${json(step.seen)}`);
    assert.equal(step.event.count, 3, `${dave} counted once over 3 tabs on 2 replicas: ${json(step.event)}`);

    // His tab on B closes, then one on A: still present through the other.
    await onB.close();
    await onB.closed(5_000);
    const f2 = await fence(2, B);
    step = await w.until(sorted(dave, f1.user, f2.user, watcher), 10_000, `${f2.user} (on replica B) to join`, { keep: [dave] });
    assert.deepEqual(step.seen.map((e) => [e.kind, e.user]), [['JOINED', f2.user]],
      `closing ${dave}'s tab on replica B, with two open on A, changed his presence: ${json(step.seen)}`);
    await onA1.close();
    await onA1.closed(5_000);
    await f1.conn.close();
    step = await w.until(sorted(dave, f2.user, watcher), 10_000, `${f1.user} to leave`, { keep: [dave] });
    assert.deepEqual(step.seen.map((e) => [e.kind, e.user]), [['LEFT', f1.user]],
      `closing one of ${dave}'s two tabs on replica A changed his presence: ${json(step.seen)}`);

    // The last tab closes: he leaves, once.
    const closedAt = Date.now();
    await onA2.close();
    step = await w.until(sorted(f2.user, watcher), 10_000, `${dave} to leave when his last tab closed`);
    assert.deepEqual([step.event.kind, step.event.user, step.event.count], ['LEFT', dave, 2], `${dave} left as ${json(step.event)}`);
    assert.deepEqual(step.seen.map((e) => [e.kind, e.user]), [['LEFT', dave]], `more than ${dave}'s leaving: ${json(step.seen)}`);
    t.diagnostic(`${dave} joined from replica B, stayed through 3 tabs on 2 replicas, left ${Date.now() - closedAt} ms after his last tab closed`);
    assert.equal(w.inbox.ended, null, `roomPresence ended: ${w.inbox.ended}`);
  });

test('setTyping on replica B shows the user typing in roomPresence on replica A (graphql-sse), and the typing lapses by itself',
  { timeout: 60_000 }, async (t) => {
    const room = await createRoom(A, 'typing', poster);
    await waitVisible(B, room.id);
    const watcher = `watcher-${tag}`;
    const tina = `tina-${tag}`;
    const conn = connect(GRAPHQL_SSE, A, { user: watcher });
    t.after(() => conn.close());
    const w = new Watcher(conn, room.id);
    await w.until([watcher], 10_000, 'the watcher present itself');

    const data = await gql(B, 'mutation($r: ID!) { setTyping(roomId: $r) }', { r: room.id }, { user: tina, retryRateLimited: true });
    const typedAt = Date.now();
    assert.deepEqual(data, { setTyping: true });
    await w.inbox.waitFor((evs) => evs.slice(w.read).some((e) => e.kind === 'TYPING'), 10_000, () => `a TYPING event: ${json(w.events())}`);
    const typing = w.events().slice(w.read).find((e) => e.kind === 'TYPING');
    assert.deepEqual(typing, { kind: 'TYPING', user: tina, count: 1, users: [watcher], typing: [tina], errors: undefined, at: typing.at },
      'tina typing, and not present (setTyping alone is no subscription)');
    t.diagnostic(`TYPING on replica A ${typing.at - typedAt} ms after setTyping answered on replica B`);
    w.read = w.events().indexOf(typing) + 1;

    // Without another setTyping, it lapses after 5 s.
    await w.inbox.waitFor((evs) => evs.slice(w.read).some((e) => e.kind === 'TYPING'), 10_000, () => `the typing to lapse: ${json(w.events())}`);
    const lapsed = w.events().slice(w.read).find((e) => e.kind === 'TYPING');
    assert.deepEqual([lapsed.user, lapsed.typing, lapsed.users], [tina, [], [watcher]], `the typing lapsed as ${json(lapsed)}`);
    const after = lapsed.at - typedAt;
    assert.ok(after >= 4000 && after <= 8000, `the typing lapsed ${after} ms after setTyping, want about 5 s`);
    t.diagnostic(`the typing lapsed ${after} ms after setTyping`);
  });

// The room page's Apollo cache (node --test; no build, no Herald): what the
// page shows when its roomEvents subscription and its own mutations' answers
// meet in the cache, in either order, as they may over a WebSocket and an
// HTTP request that race.
//
//   node --test examples/nextjs-chat/test/room-cache.test.mjs
//
// The app's own code is used: lib/operations.ts (the documents),
// app/providers.tsx's cache() (its type policies) and room.tsx's followRoom
// (the page's subscription, as its Room runs it) and the options its
// mutations are sent with (postOptions, editOptions, deleteOptions,
// reactOptions). Only the network is replaced: a link that hands the test
// the subscription's observer and each mutation's, so that events and
// answers arrive in an order the test chooses.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { transpileApp } from './app-modules.mjs';

let built;
let ops;
let room;
let providers;
let apollo;
let rxjs;

before(async () => {
  built = transpileApp();
  ops = await built.module('lib/operations.ts');
  room = await built.module('app/rooms/[roomId]/room.tsx');
  providers = await built.module('app/providers.tsx');
  apollo = await import('@apollo/client');
  rxjs = await import('rxjs');
});

after(() => built?.remove());

const ROOM = 'r1';
const tick = () => new Promise((r) => setTimeout(r, 20));
const user = (name) => ({ __typename: 'User', id: name, name });
const msg = (over) => ({
  __typename: 'Message', id: 'm1', text: 'hello', version: 1, deleted: false,
  createdAt: '2026-01-01T00:00:00Z', editedAt: null, author: user('bob'), reactions: [], ...over,
});
const reaction = (emoji, count) => ({ __typename: 'ReactionGroup', emoji, count });
const roomEvent = (kind, cursor, message) => ({
  data: {
    roomEvents: {
      __typename: 'RoomEvent', kind, cursor, message,
      room: { __typename: 'Room', id: ROOM, messageCount: 1, lastMessageAt: '2026-01-01T00:00:00Z' },
    },
  },
  extensions: { cursor },
});

/**
 * The room page, as the browser has it: the app's cache with the server
 * render's ROOM_PAGE result in it, its query watched (as useReadQuery does),
 * and its roomEvents subscription started with room.tsx's followRoom.
 */
async function roomPage(initial) {
  const { ApolloClient, ApolloLink } = apollo;
  let subscriber = null;
  const mutations = [];
  const link = new ApolloLink((operation) => new rxjs.Observable((observer) => {
    if (operation.operationType === 'subscription') {
      subscriber = observer;
      return () => { subscriber = null; };
    }
    mutations.push({ name: operation.operationName, variables: operation.variables, observer });
    return () => {};
  }));
  const client = new ApolloClient({ cache: providers.cache(), link });
  client.writeQuery({
    query: ops.ROOM_PAGE,
    variables: { roomId: ROOM },
    data: {
      room: {
        __typename: 'Room', id: ROOM, name: 'general', messageCount: initial.length,
        messages: { __typename: 'MessageConnection', nodes: initial, resumeCursor: 'c0' },
      },
    },
  });
  const oq = client.watchQuery({ query: ops.ROOM_PAGE, variables: { roomId: ROOM }, fetchPolicy: 'cache-only' });
  const watching = oq.subscribe({ next() {}, error() {} });
  const awaiting = new Set();
  const cursors = [];
  const problems = [];
  const stopEvents = room.followRoom(client, ROOM, {
    after: 'c0',
    awaiting,
    onCursor: (c) => cursors.push(c),
    onError: (err) => problems.push(err.message),
  });
  await tick();
  assert.ok(subscriber, 'the page subscribed to roomEvents');
  return {
    client,
    awaiting,
    cursors,
    problems,
    async event(result) {
      subscriber.next(result);
      await tick();
    },
    /** Delivers several events at once. */
    async events(results) {
      for (const r of results) subscriber.next(r);
      await tick();
    },
    /** Sends a mutation with the options the page sends it with; returns { done }, its promise. */
    async mutate(options) {
      const done = client.mutate(options);
      done.catch(() => {});
      await tick();
      return { done };
    },
    /** Answers the oldest mutation not yet answered. */
    async answer(data) {
      const m = mutations.shift();
      assert.ok(m, 'a mutation is in flight');
      m.observer.next({ data });
      m.observer.complete();
      await tick();
    },
    /** The list in the cache, under any optimistic layer. */
    stored() {
      return client.readQuery({ query: ops.ROOM_PAGE, variables: { roomId: ROOM } }).room.messages.nodes;
    },
    /** The list the page renders from the cache: its watched query's result (optimistic layers included). */
    shown() {
      return oq.getCurrentResult().data.room.messages.nodes;
    },
    stop() {
      stopEvents();
      watching.unsubscribe();
      client.stop();
    },
  };
}

const summary = (m) => ({ version: m.version, deleted: m.deleted, text: m.text, reactions: m.reactions.map((r) => `${r.emoji} ${r.count}`) });

// alice reacts to bob's message; Herald stores her reaction (the message,
// version 1, with 👍 1), then bob deletes the message (version 2). Her page's
// socket brings the deletion before her HTTP request's answer: the answer,
// an older state, must not bring the deleted message and its text back.
test('a reaction\'s answer arriving after a later deletion event leaves the message deleted', async () => {
  const page = await roomPage([msg({})]);
  try {
    const reacting = await page.mutate(room.reactOptions('m1', '👍'));
    await page.event(roomEvent('MESSAGE_DELETED', 'c2', msg({ text: '', deleted: true, version: 2, reactions: [reaction('👍', 1)] })));
    assert.equal(page.shown()[0].deleted, true, 'the deletion is shown');
    await page.answer({ react: msg({ reactions: [reaction('👍', 1)] }) });
    await reacting.done;
    for (const list of [page.shown(), page.stored()]) {
      assert.deepEqual(summary(list[0]), { version: 2, deleted: true, text: '', reactions: ['👍 1'] },
        'the page keeps the deletion, not the reaction\'s older answer');
    }
  } finally {
    page.stop();
  }
});

// Reactions change no version: alice reacts 👍, bob reacts 🎉 just after;
// bob's event (👍 1, 🎉 1) reaches alice's page before her answer (👍 1).
test('a reaction\'s answer arriving after another user\'s later reaction event keeps that reaction', async () => {
  const page = await roomPage([msg({})]);
  try {
    const reacting = await page.mutate(room.reactOptions('m1', '👍'));
    await page.event(roomEvent('REACTIONS_CHANGED', 'c2', msg({ reactions: [reaction('👍', 1), reaction('🎉', 1)] })));
    await page.answer({ react: msg({ reactions: [reaction('👍', 1)] }) });
    await reacting.done;
    assert.deepEqual(summary(page.shown()[0]).reactions, ['👍 1', '🎉 1'], 'the later event\'s reactions stay shown');
  } finally {
    page.stop();
  }
});

// bob edits his message (version 2); frank's 🎉 follows (still version 2).
// Frank's event reaches bob's page before bob's edit answer (version 2,
// without the 🎉): the answer must not drop the reaction.
test('an edit\'s answer arriving after a later reaction event keeps that reaction', async () => {
  const page = await roomPage([msg({})]);
  try {
    const editing = await page.mutate(room.editOptions(msg({}), 'hello again'));
    assert.deepEqual(summary(page.shown()[0]), { version: 2, deleted: false, text: 'hello again', reactions: [] },
      'the edit is shown at once (optimistic)');
    await page.event(roomEvent('MESSAGE_EDITED', 'c2', msg({ text: 'hello again', version: 2, editedAt: '2026-01-01T00:01:00Z' })));
    await page.event(roomEvent('REACTIONS_CHANGED', 'c3',
      msg({ text: 'hello again', version: 2, editedAt: '2026-01-01T00:01:00Z', reactions: [reaction('🎉', 1)] })));
    await page.answer({ editMessage: msg({ text: 'hello again', version: 2, editedAt: '2026-01-01T00:01:00Z' }) });
    await editing.done;
    assert.deepEqual(summary(page.shown()[0]), { version: 2, deleted: false, text: 'hello again', reactions: ['🎉 1'] });
  } finally {
    page.stop();
  }
});

// bob edits (version 2), then deletes (version 3) at once; the events of
// both come before the edit's answer, which must not undelete the message.
test('an edit\'s answer arriving after a later deletion event leaves the message deleted', async () => {
  const page = await roomPage([msg({})]);
  try {
    const editing = await page.mutate(room.editOptions(msg({}), 'hello again'));
    await page.event(roomEvent('MESSAGE_EDITED', 'c2', msg({ text: 'hello again', version: 2 })));
    await page.event(roomEvent('MESSAGE_DELETED', 'c3', msg({ text: '', deleted: true, version: 3 })));
    await page.answer({ editMessage: msg({ text: 'hello again', version: 2 }) });
    await editing.done;
    for (const list of [page.shown(), page.stored()]) {
      assert.deepEqual(summary(list[0]), { version: 3, deleted: true, text: '', reactions: [] });
    }
  } finally {
    page.stop();
  }
});

// The other order: the answers come first (the socket is slow). Each is
// shown as it comes; the events that follow are older than what is shown
// (the edit's) or the same (the deletion's): of two versions, the latest
// is kept, and the edit's event does not bring the text back meanwhile.
test('answers that come before their events are shown, and an older event does not replace a later answer', async () => {
  const page = await roomPage([msg({})]);
  try {
    const editing = await page.mutate(room.editOptions(msg({}), 'hello again'));
    await page.answer({ editMessage: msg({ text: 'hello again', version: 2 }) });
    await editing.done;
    assert.deepEqual(summary(page.stored()[0]), { version: 2, deleted: false, text: 'hello again', reactions: [] },
      'the edit\'s answer is in the cache before its event');
    const deleting = await page.mutate(room.deleteOptions(msg({ text: 'hello again', version: 2 })));
    assert.equal(page.shown()[0].deleted, true, 'the deletion is shown at once (optimistic)');
    await page.answer({ deleteMessage: msg({ text: '', deleted: true, version: 3 }) });
    await deleting.done;
    assert.deepEqual(summary(page.stored()[0]), { version: 3, deleted: true, text: '', reactions: [] });
    await page.event(roomEvent('MESSAGE_EDITED', 'c2', msg({ text: 'hello again', version: 2 })));
    for (const list of [page.shown(), page.stored()]) {
      assert.deepEqual(summary(list[0]), { version: 3, deleted: true, text: '', reactions: [] },
        'the edit\'s event, older than the deletion shown, is dropped');
    }
    await page.event(roomEvent('MESSAGE_DELETED', 'c3', msg({ text: '', deleted: true, version: 3 })));
    assert.deepEqual(summary(page.shown()[0]), { version: 3, deleted: true, text: '', reactions: [] });
    assert.deepEqual(page.cursors, ['c2', 'c3'], 'every event\'s cursor is kept');
    assert.deepEqual(page.problems, []);
  } finally {
    page.stop();
  }
});

// The composer's post: nothing of it may be in the cache while it is in
// flight (an optimistic list there shadows the list the subscription
// updates: the room looks frozen for as long as the post takes). The page
// shows the pending post from its own state.
test('messages delivered while the page\'s own post is in flight are shown, and the post then waits at the end', async () => {
  const page = await roomPage([msg({})]);
  try {
    let answered = 0;
    const posting = await page.mutate(room.postOptions({
      roomId: ROOM, text: 'mine', key: 'k1', awaiting: page.awaiting, onAnswer: () => { answered++; },
    }));
    assert.deepEqual(page.shown().map((n) => n.id), ['m1'], 'the pending post is not in the cached list');
    // bob's posts arrive live while alice's post is still on its way.
    await page.event(roomEvent('MESSAGE_POSTED', 'c2', msg({ id: 'b1', text: 'bob 1' })));
    await page.event(roomEvent('MESSAGE_POSTED', 'c3', msg({ id: 'b2', text: 'bob 2' })));
    assert.deepEqual(page.shown().map((n) => n.id), ['m1', 'b1', 'b2'],
      'bob\'s messages, delivered live, are shown while alice\'s post is in flight');
    assert.equal(answered, 0);
    // Her answer: the stored message goes at the end until its event comes.
    await page.answer({ postMessage: msg({ id: 'a1', text: 'mine', author: user('alice') }) });
    await posting.done;
    assert.equal(answered, 1, 'the page is told of the answer (it stops showing the post as pending)');
    assert.deepEqual(page.shown().map((n) => n.id), ['m1', 'b1', 'b2', 'a1']);
    assert.ok(page.awaiting.has('a1'), 'the stored message awaits its event');
    // bob's post that Herald stored before alice's, then hers: in log order.
    await page.event(roomEvent('MESSAGE_POSTED', 'c4', msg({ id: 'b3', text: 'bob 3' })));
    assert.deepEqual(page.shown().map((n) => n.id), ['m1', 'b1', 'b2', 'b3', 'a1']);
    await page.event(roomEvent('MESSAGE_POSTED', 'c5', msg({ id: 'a1', text: 'mine', author: user('alice') })));
    assert.deepEqual(page.shown().map((n) => n.id), ['m1', 'b1', 'b2', 'b3', 'a1']);
    assert.equal(page.awaiting.size, 0);
  } finally {
    page.stop();
  }
});

// The subscription may deliver the page's own post, and a reaction to it,
// before the post's answer: the answer must neither show the message twice
// nor drop the reaction.
test('a post\'s answer arriving after its event and a reaction to it changes nothing', async () => {
  const page = await roomPage([msg({})]);
  try {
    const posting = await page.mutate(room.postOptions({ roomId: ROOM, text: 'mine', key: 'k2', awaiting: page.awaiting }));
    await page.event(roomEvent('MESSAGE_POSTED', 'c2', msg({ id: 'a1', text: 'mine', author: user('alice') })));
    await page.event(roomEvent('REACTIONS_CHANGED', 'c3', msg({ id: 'a1', text: 'mine', author: user('alice'), reactions: [reaction('❤️', 1)] })));
    await page.answer({ postMessage: msg({ id: 'a1', text: 'mine', author: user('alice') }) });
    await posting.done;
    assert.deepEqual(page.shown().map((n) => n.id), ['m1', 'a1']);
    assert.deepEqual(summary(page.shown()[1]).reactions, ['❤️ 1']);
    assert.equal(page.awaiting.size, 0);
  } finally {
    page.stop();
  }
});

// A page left open on a busy room kept every message posted while it was
// open, in its list and in the cache. It keeps the latest MAX_SHOWN: the
// oldest leave the list and the cache.
test('a room page keeps its latest MAX_SHOWN messages, in the list and the cache', async () => {
  const page = await roomPage([msg({ id: 'm0', text: 'first' })]);
  const max = room.MAX_SHOWN;
  await page.events(Array.from({ length: max + 5 }, (_, k) =>
    roomEvent('MESSAGE_POSTED', `c${k + 1}`, msg({ id: `m${k + 1}`, text: `t${k + 1}` }))));
  const nodes = page.stored();
  assert.equal(nodes.length, max);
  assert.equal(nodes[0].id, `m${6}`, 'the oldest went first');
  assert.equal(nodes.at(-1).id, `m${max + 5}`);
  const cached = page.client.cache.extract();
  assert.equal(cached['Message:m0'], undefined, 'a message no longer shown left the cache');
  assert.equal(cached['Message:m5'], undefined);
  assert.ok(cached[`Message:m${max + 5}`]);
  page.stop();
});

// The Next.js chat app in Debian's Chromium against two Herald replicas
// behind nginx (deploy/nginx.conf). Run by e2e/run.sh, which starts them.
// The tests run in this order; the first one needs no room to exist yet,
// the second makes more than a page of rooms, the last one kills replica B.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  APP, HERALD, HERALD_B, HERALD_JWT, JWT_APP, WAIT_MS, connectionState, createRoom, decodeCursor, difference, gql, openConnectionsOn, openOnReplica,
  post, presenceOf, presenceSeen, recordHttpOperations, renderedResumeCursors, send, serverMessages, shown, sleep, statesSeen, transportOf, until,
  waitConnected, waitForText, waitForTexts, signToken, waitPresence, waitTyping, watchSubscribes, withScreenshots,
} from './lib.mjs';

/**
 * Every "who is here" state a page showed listed each user once, with the
 * count of users it listed, and never more than max.
 */
async function assertPresenceHistory(u, max) {
  const seen = await presenceSeen(u.page);
  assert.ok(seen.length > 0, `${u.name}'s page showed who is here`);
  for (const p of seen) {
    assert.equal(new Set(p.users).size, p.users.length, `${u.name}'s page listed a user twice: ${JSON.stringify(p)}`);
    assert.equal(p.count, p.users.length, `${u.name}'s page showed a count other than the users it listed: ${JSON.stringify(p)}`);
    assert.ok(p.count <= max, `${u.name}'s page counted ${p.count} (at most ${max} users were here): ${JSON.stringify(seen)}`);
  }
  return seen;
}

/** The page shows exactly Herald's messages from its first one on: same ids, same order, none twice. */
async function assertShowsServerOrder(u, roomId, { from } = {}) {
  const server = await serverMessages(roomId);
  const list = await shown(u.page);
  const ids = list.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${u.name}'s page shows a message twice: ${difference(ids, [...new Set(ids)])}`);
  const start = from === undefined ? 0 : server.findIndex((m) => m.id === ids[0]);
  assert.ok(start >= 0, `${u.name}'s page starts with ${ids[0]}, which Herald does not have`);
  const want = server.slice(start).map((m) => m.id);
  assert.deepEqual(ids, want, `${u.name}'s page against Herald's order: ${difference(ids, want)}`);
  assert.deepEqual(list.map((m) => m.text), server.slice(start).map((m) => m.text), `${u.name}'s page shows the texts in Herald's order`);
  return list;
}

// First: it needs the room directory empty (run.sh starts Herald afresh).
test('the room list, rendered with no room, goes live after its resumeCursor: a room created before its subscription is live shows once',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      // The list is empty when the server renders it, so it has no
      // endCursor; its resumeCursor is the directory's position 0. The test
      // holds the page's RoomCreated subscribe message (its socket is
      // acknowledged) while another user creates a room, then lets it
      // through: only the replay after resumeCursor brings that room
      // (subscribing from now lost it).
      const alice = await open('alice');
      const hold = await watchSubscribes(alice, 'RoomCreated', { hold: true });
      const res = await alice.page.goto(`${APP}/`);
      assert.equal(res.status(), 200);
      const html = await res.text();
      assert.equal((html.match(/data-testid="room"/g) ?? []).length, 0,
        'the server rendered the room list empty (this test runs first, on a Herald with no room yet)');
      await waitConnected(alice);
      await until(() => hold.held() > 0, 'alice\'s page to subscribe to roomCreated (held by the test)');
      const early = await createRoom('list-early');
      hold.release();
      const rooms = () => alice.page.$$eval('[data-testid="room"]', (els) => els.map((el) => el.getAttribute('data-id')));
      await until(async () => (await rooms()).includes(early.id),
        async () => `alice's list to show the room created before its subscription was live; it shows ${JSON.stringify(await rooms().catch(() => []))}`);
      // And live after the replay.
      const live = await createRoom('list-live');
      await until(async () => (await rooms()).includes(live.id), 'alice\'s list to show the room created live');
      await sleep(500); // a duplicate would come with the same event
      assert.deepEqual(await rooms(), [early.id, live.id], 'each room once, in the order created');
      assert.equal(hold.subscribes.length, 1, 'one RoomCreated subscribe');
      const after = hold.subscribes[0].after;
      assert.equal(typeof after, 'string', `alice's page subscribed to roomCreated after a cursor, not from now (after: ${JSON.stringify(after)})`);
      assert.deepEqual(renderedResumeCursors(html), [after], 'alice\'s page subscribed after the resumeCursor the server rendered');
      const c = decodeCursor(after);
      assert.equal(c.tag, 'rooms', `the cursor is the room directory's (${JSON.stringify(c)})`);
      assert.equal(c.seq, 0, `the rendered resumeCursor of an empty directory is its position 0 (${JSON.stringify(c)})`);
      t.diagnostic(`roomCreated went after ${after} (${JSON.stringify(c)})`);
      assert.deepEqual(alice.problems, [], 'alice\'s page reported problems');
    });
  });

// Second: it makes the room list longer than its first page.
test('a room list longer than its first page shows every room: the replay after the page\'s endCursor brings the rest, then rooms created live',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      const allRooms = async () => {
        const ids = [];
        for (let after = null; ;) {
          const { rooms } = await gql('query($a: String) { rooms(first: 100, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } }', { a: after }, { user: 'bob' });
          ids.push(...rooms.nodes.map((r) => r.id));
          if (!rooms.pageInfo.hasNextPage) return ids;
          after = rooms.pageInfo.endCursor;
        }
      };
      for (let n = (await allRooms()).length; n < 105; n++) await createRoom('list-long');
      const want = await allRooms();
      const bob = await open('bob');
      const res = await bob.page.goto(`${APP}/`);
      assert.equal(res.status(), 200);
      const rendered = ((await res.text()).match(/data-testid="room"/g) ?? []).length;
      assert.equal(rendered, 100, 'the server rendered the list\'s first page of 100');
      await waitConnected(bob);
      const rooms = () => bob.page.$$eval('[data-testid="room"]', (els) => els.map((el) => el.getAttribute('data-id')));
      await until(async () => (await rooms()).length >= want.length,
        async () => `bob's list to show all ${want.length} rooms; it shows ${(await rooms().catch(() => [])).length}`);
      const live = await createRoom('list-long-live');
      await until(async () => (await rooms()).includes(live.id), 'bob\'s list to show the room created live');
      await sleep(500); // a duplicate would come with the same event
      assert.deepEqual(await rooms(), [...want, live.id], 'every room once, in creation order');
      assert.deepEqual(bob.problems, [], 'bob\'s page reported problems');
    });
  });

test('two users chat in one room: every message shows once, in order, in both pages', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    const room = await createRoom('two-users');
    const alice = await open('alice');
    const bob = await open('bob');
    for (const u of [alice, bob]) {
      const res = await u.page.goto(`${APP}/rooms/${room.id}`);
      assert.equal(res.status(), 200);
      await waitConnected(u);
    }
    assert.equal(await alice.page.getByTestId('room-name').textContent(), room.name);

    // Both type at once, without waiting for each other: 8 messages each,
    // interleaved, each send as soon as the previous one was submitted.
    const texts = { alice: [], bob: [] };
    await Promise.all([alice, bob].map(async (u) => {
      for (let i = 0; i < 8; i++) {
        const text = `${u.user} says ${i}`;
        texts[u.user].push(text);
        await send(u, text);
        // The composer empties itself once a message is submitted.
        await until(async () => (await u.page.locator('input[name="text"]').inputValue()) === '', `${u.user}'s composer to empty`);
      }
    }));
    const all = [...texts.alice, ...texts.bob];
    for (const u of [alice, bob]) await waitForTexts(u, all);

    for (const u of [alice, bob]) {
      const list = await assertShowsServerOrder(u, room.id);
      assert.deepEqual(list.map((m) => m.text).sort(), [...all].sort(), `${u.name}'s page shows every message sent`);
      assert.deepEqual(u.problems, [], `${u.name}'s page reported problems`);
    }
    t.diagnostic(`${all.length} messages, identical in both pages and in Herald's order`);
  });
});

test('a page loaded while another user posts 20 messages a second shows every message exactly once', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    const room = await createRoom('hand-over');
    for (let i = 0; i < 5; i++) await post(room.id, `before ${i}`, 'bob');

    // bob posts every 50 ms over HTTP through nginx until told to stop.
    let stop = false;
    const posted = [];
    const poster = (async () => {
      for (let i = 0; !stop && i < 90; i++) {
        const started = Date.now();
        posted.push(await post(room.id, `live ${i}`, 'bob'));
        await sleep(Math.max(0, 50 - (Date.now() - started)));
      }
    })();
    try {
      await until(() => posted.length >= 10, 'bob\'s first 10 live posts');
      const carol = await open('carol');
      const res = await carol.page.goto(`${APP}/rooms/${room.id}`);
      assert.equal(res.status(), 200);
      // What the server rendered: a prefix of the room, with bob still posting.
      const html = await res.text();
      const rendered = (html.match(/data-testid="message"/g) ?? []).length;
      const atRender = posted.length;
      await waitConnected(carol);
      // Keep posting a while after the page went live, then stop.
      const live = posted.length;
      await until(() => posted.length >= live + 20, 'bob\'s 20 posts after the page went live');
      stop = true;
      await poster;
      const fence = await post(room.id, 'fence', 'bob');
      await waitForText(carol, 'fence');

      const list = await assertShowsServerOrder(carol, room.id, { from: 'first shown' });
      const server = await serverMessages(room.id);
      assert.equal(list.at(-1).id, fence);
      assert.ok(rendered >= 5, `the server rendered the room's messages (${rendered} in the HTML)`);
      assert.ok(rendered < server.length, `messages were posted after the render (${rendered} rendered, ${server.length} in all)`);
      assert.equal(list[0].id, server[0].id, 'the page starts with the room\'s first message (fewer than 50 at render)');
      t.diagnostic(`rendered ${rendered} messages (bob had posted ${atRender} live), then ${list.length - rendered} arrived live; ` +
        `${posted.length} posted at 20/s, every one shown once in order`);
      assert.deepEqual(carol.problems, [], 'carol\'s page reported problems');
    } finally {
      stop = true;
      await poster.catch(() => {});
    }
  });
});

/**
 * The hand-over of a page rendered from an empty room, checked from what
 * the page sent: its RoomEvents subscription went after the rendered
 * page's resumeCursor (not null: an empty room has no endCursor), which is
 * the room's position 0 (it had no event), and the page read nothing over
 * HTTP (no catch-up read: the replay is the catch-up). Returns the cursor.
 */
function assertHandOverFromEmpty(u, html, watch, ops) {
  assert.ok(watch.subscribes.length >= 1, `${u.name}'s page subscribed to the room's events`);
  const after = watch.subscribes[0].after;
  assert.equal(typeof after, 'string', `${u.name}'s page subscribed to roomEvents after a cursor, not from now (after: ${JSON.stringify(after)})`);
  const rendered = renderedResumeCursors(html);
  assert.deepEqual(rendered, [after], `${u.name}'s page subscribed after the resumeCursor the server rendered (${JSON.stringify(rendered)})`);
  const c = decodeCursor(after);
  assert.equal(c.seq, 0, `the rendered resumeCursor of an empty room is its position 0 (${JSON.stringify(c)})`);
  const reads = ops.filter((o) => o.kind !== 'mutation');
  assert.deepEqual(reads, [], `${u.name}'s page read nothing over HTTP (no catch-up read), it only posted`);
  return after;
}

test('a page loaded on an empty room as another user starts posting shows every message exactly once', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    // An empty room has no endCursor, but its page has a resumeCursor (the
    // room's position 0): the page subscribes after it, and Herald replays
    // every post since the render, then goes on live.
    const room = await createRoom('empty-hand-over');
    const carol = await open('carol');
    const watch = await watchSubscribes(carol, 'RoomEvents');
    const ops = await recordHttpOperations(carol);
    // Posting starts as soon as the page's response begins: after the
    // server has read the (empty) room, before the browser subscribes.
    const res = await carol.page.goto(`${APP}/rooms/${room.id}`, { waitUntil: 'commit' });
    const posted = [];
    for (let i = 0; i < 40; i++) {
      const started = Date.now();
      posted.push(await post(room.id, `early ${i}`, 'bob'));
      await sleep(Math.max(0, 50 - (Date.now() - started)));
    }
    await waitConnected(carol);
    const fence = await post(room.id, 'fence', 'bob');
    await waitForText(carol, 'fence');
    const list = await assertShowsServerOrder(carol, room.id);
    assert.deepEqual(list.map((m) => m.id), [...posted, fence], 'every message bob posted, once, in order');
    assertHandOverFromEmpty(carol, await res.text(), watch, ops);
    assert.deepEqual(carol.problems, [], 'carol\'s page reported problems');
  });
});

test('an empty room\'s page whose socket is cut before its first event resubscribes after the rendered resumeCursor: every message once, no error',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      // The page goes live on an empty room, then its socket is cut and
      // its reconnects refused while bob posts 80 messages (more than a
      // page of 50): the subscription has received no event, so its
      // cursor is still the rendered resumeCursor, and the subscription
      // sent again on the new socket must go after it (from now would lose
      // all 80). (It replaces the test of the catch-up read failing for a
      // while: that read is gone, and this is how the hand-over can fail.)
      const room = await createRoom('empty-cut');
      const carol = await open('carol', { proxyWebSocket: true });
      const ops = await recordHttpOperations(carol);
      const res = await carol.page.goto(`${APP}/rooms/${room.id}`);
      assert.equal(res.status(), 200);
      const html = await res.text();
      assert.equal((html.match(/data-testid="message"/g) ?? []).length, 0, 'the server rendered the room empty');
      await waitConnected(carol);
      const roomEvents = () => carol.network.subscribes.filter((s) => s.operationName === 'RoomEvents');
      await until(() => roomEvents().length > 0, 'carol\'s page to subscribe to the room\'s events');
      await carol.network.cut();
      await until(async () => (await connectionState(carol.page)) === 'reconnecting', 'carol\'s page to show reconnecting');
      const TOTAL = 80;
      const posted = [];
      for (let i = 0; i < TOTAL; i++) posted.push(await post(room.id, `early ${i}`, 'bob'));
      carol.network.restore();
      await waitConnected(carol, 30_000);
      const fence = await post(room.id, 'fence', 'bob');
      await waitForText(carol, 'fence');
      const list = await assertShowsServerOrder(carol, room.id);
      assert.deepEqual(list.map((m) => m.id), [...posted, fence], `every message bob posted, once, in order: ${difference(list.map((m) => m.id), [...posted, fence])}`);
      const subs = roomEvents();
      const rendered = renderedResumeCursors(html);
      const afters = subs.map((s) => s.variables.after ?? null);
      t.diagnostic(`RoomEvents subscribed ${subs.length} times, after ${JSON.stringify(afters)}; rendered ${JSON.stringify(rendered)}`);
      assert.ok(subs.length >= 2, `carol's page subscribed again after the cut (${subs.length} subscribe messages)`);
      assert.equal(typeof afters[0], 'string', `carol's page subscribed to roomEvents after a cursor, not from now (after: ${JSON.stringify(afters[0])})`);
      assert.deepEqual(rendered, [afters[0]], 'carol\'s page subscribed after the resumeCursor the server rendered');
      assert.deepEqual(afters, subs.map(() => afters[0]), 'every subscribe went after the rendered resumeCursor (no event had come before the cut)');
      assert.deepEqual(ops.filter((o) => o.kind !== 'mutation'), [], 'carol\'s page read nothing over HTTP (no catch-up read)');
      const states = await statesSeen(carol.page);
      assert.equal(states.at(-1), 'connected/websocket');
      assert.equal(await carol.page.locator('main [role="alert"]').count(), 0, 'carol\'s page reports no problem');
      assert.deepEqual(carol.problems, [], 'carol\'s page reported problems');
    });
  });

test('an empty room with more than a page (120 messages) posted before its subscription is live: the replay from its resumeCursor shows every message once, in order',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      // The room is empty when the server renders it. The test holds the
      // page's RoomEvents subscribe message (its socket is acknowledged and
      // its presence goes on) while bob posts 120 messages, more than two
      // pages (50): they are all posted before the subscription is live,
      // and only the replay after the rendered resumeCursor brings them
      // (subscribing from now, with no catch-up read, lost all 120).
      const room = await createRoom('empty-replay-pages');
      const carol = await open('carol');
      const TOTAL = 120;
      const hold = await watchSubscribes(carol, 'RoomEvents', { hold: true });
      const ops = await recordHttpOperations(carol);
      const html = await openEmptyRoom(carol, room, hold);
      const posted = [];
      for (let i = 0; i < TOTAL; i++) posted.push(await post(room.id, `early ${i}`, 'bob'));
      hold.release();
      // Whether Herald has the subscription yet is not observable from
      // here: bob posts a fence every 300 ms until one shows on carol's page.
      const fences = [];
      await until(async () => {
        if ((await shown(carol.page)).some((m) => m.text.startsWith('fence'))) return true;
        fences.push(await post(room.id, `fence ${fences.length}`, 'bob'));
        await sleep(300);
        return false;
      }, 'carol\'s page to show a fence');
      const want = [...posted.map((id, i) => ({ id, text: `early ${i}` })), ...fences.map((id, i) => ({ id, text: `fence ${i}` }))];
      await waitForTexts(carol, want.map((m) => m.text));
      const list = await shown(carol.page);
      const ids = list.map((m) => m.id);
      assert.deepEqual(ids, want.map((m) => m.id), `every message bob posted, once, in order: ${difference(ids, want.map((m) => m.id))}`);
      assert.deepEqual(list.map((m) => m.text), want.map((m) => m.text), 'carol\'s page shows the texts in posting order');
      const after = assertHandOverFromEmpty(carol, html, hold, ops);
      t.diagnostic(`${TOTAL} messages posted while the subscription was held; it went after ${after} (${JSON.stringify(decodeCursor(after))})`);
      assert.equal(await carol.page.locator('main [role="alert"]').count(), 0, 'carol\'s page reports no problem');
      assert.deepEqual(carol.problems, [], 'carol\'s page reported problems');
    });
  });

/**
 * An empty room's page, rendered empty, live (its RoomEvents subscribe held
 * by hold, from watchSubscribes). Returns the server-rendered HTML.
 */
async function openEmptyRoom(u, room, hold) {
  const res = await u.page.goto(`${APP}/rooms/${room.id}`);
  assert.equal(res.status(), 200);
  const html = await res.text();
  assert.equal((html.match(/data-testid="message"/g) ?? []).length, 0, 'the server rendered the room empty');
  await waitConnected(u);
  await until(() => hold.held() > 0, `${u.name}'s page to subscribe to the room's events (held by the test)`);
  return html;
}

const EDIT = 'mutation($id: ID!, $v: Int!, $t: String!) { editMessage(id: $id, version: $v, text: $t) { version } }';
const REACT = 'mutation($m: ID!, $e: String!) { react(messageId: $m, emoji: $e) { version } }';
const DELETE = 'mutation($id: ID!, $v: Int!) { deleteMessage(id: $id, version: $v) { version } }';

test('an empty room whose messages are posted, edited, reacted to and deleted before its subscription is live: each shows once, in order, as it is now',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      // The room is empty when the server renders it; while the test holds
      // the page's subscription, bob posts 3 messages, edits the first
      // twice, reacts to the second, deletes the third, and posts a fourth:
      // the replay from the rendered resumeCursor holds the posts and the
      // changes after them (an edit before the post of a later message, so
      // the page's first event may be of a message it has). Let through,
      // the page shows the 4 in Herald's order, each at its latest version;
      // then a live edit and a live post.
      const room = await createRoom('empty-replay-changes');
      const carol = await open('carol');
      const hold = await watchSubscribes(carol, 'RoomEvents', { hold: true });
      const ops = await recordHttpOperations(carol);
      const html = await openEmptyRoom(carol, room, hold);
      const early = [];
      for (let i = 0; i < 3; i++) early.push(await post(room.id, `early ${i}`, 'bob'));
      let { editMessage: { version } } = await gql(EDIT, { id: early[0], v: 1, t: 'early 0, edit 1' }, { user: 'bob' });
      ({ editMessage: { version } } = await gql(EDIT, { id: early[0], v: version, t: 'early 0, edit 2' }, { user: 'bob' }));
      await gql(REACT, { m: early[1], e: '🎉' }, { user: 'bob' });
      await gql(DELETE, { id: early[2], v: 1 }, { user: 'bob' });
      early.push(await post(room.id, 'early 3', 'bob'));
      hold.release();
      await waitForTexts(carol, ['early 0, edit 2', 'early 1', 'message deleted', 'early 3']);
      const want = ['early 0, edit 2', 'early 1', 'message deleted', 'early 3'];
      const list = await shown(carol.page);
      assert.deepEqual(list.map((m) => m.id), early, `every message once, in Herald's order: ${difference(list.map((m) => m.id), early)}`);
      assert.deepEqual(list.map((m) => m.text), want, 'each message as it is now: the latest edit, the deletion');
      const item = (id) => carol.page.locator(`[data-testid="message"][data-id="${id}"]`);
      assert.equal(await item(early[0]).getAttribute('data-version'), '3', 'the first message at its latest version (posted, edited twice)');
      assert.match(await item(early[1]).getByRole('button', { name: 'react 🎉' }).textContent(), /1/, 'bob\'s reaction shows');
      // And live after the replay.
      await gql(EDIT, { id: early[3], v: 1, t: 'early 3, edited live' }, { user: 'bob' });
      const last = await post(room.id, 'posted live', 'bob');
      await waitForTexts(carol, ['early 3, edited live', 'posted live']);
      const server = (await serverMessages(room.id)).map((m) => m.id);
      const ids = (await shown(carol.page)).map((m) => m.id);
      assert.deepEqual(ids, server, `carol's page against Herald's order: ${difference(ids, server)}`);
      assert.deepEqual(ids, [...early, last], 'the live post went last');
      assertHandOverFromEmpty(carol, html, hold, ops);
      assert.equal(await carol.page.locator('main [role="alert"]').count(), 0, 'carol\'s page reports no problem');
      assert.deepEqual(carol.problems, [], 'carol\'s page reported problems');
    });
  });

test('an empty room where the page posts before its subscription is live: later posts go after its own, in Herald\'s order',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      // The room is empty when the server renders it: carol posts while the
      // test holds the page's subscription, and its answer shows her post
      // at the end of the list, waiting for its place; the replay after the
      // rendered resumeCursor, once let through, delivers it in its place
      // (between bob's two), and every later post goes after it.
      const room = await createRoom('empty-own-post-first');
      const carol = await open('carol');
      const hold = await watchSubscribes(carol, 'RoomEvents', { hold: true });
      const ops = await recordHttpOperations(carol);
      const html = await openEmptyRoom(carol, room, hold);
      await post(room.id, 'bob before', 'bob');
      await send(carol, 'carol before live');
      await waitForText(carol, 'carol before live'); // stored: Herald answered
      await post(room.id, 'bob before, after carol', 'bob');
      hold.release();
      const fences = [];
      await until(async () => {
        if ((await shown(carol.page)).some((m) => m.text.startsWith('fence'))) return true;
        fences.push(await post(room.id, `fence ${fences.length}`, 'bob'));
        await sleep(300);
        return false;
      }, 'carol\'s page to show a fence');
      await waitForTexts(carol, ['bob before', 'bob before, after carol', ...fences.map((_, i) => `fence ${i}`)]);
      for (let i = 0; i < 3; i++) await post(room.id, `after ${i}`, 'bob');
      await waitForTexts(carol, ['after 0', 'after 1', 'after 2']);
      await send(carol, 'carol after');
      await waitForText(carol, 'carol after');
      await post(room.id, 'last', 'bob');
      await waitForText(carol, 'last');
      const list = await assertShowsServerOrder(carol, room.id);
      assert.deepEqual(list.slice(0, 3).map((m) => m.text), ['bob before', 'carol before live', 'bob before, after carol'],
        'carol\'s own post took its place between bob\'s two');
      assertHandOverFromEmpty(carol, html, hold, ops);
      t.diagnostic(`${list.length} messages, ${fences.length} fence(s), in Herald's order`);
      assert.equal(await carol.page.locator('main [role="alert"]').count(), 0, 'carol\'s page reports no problem');
      assert.deepEqual(carol.problems, [], 'carol\'s page reported problems');
    });
  });

test('with WebSockets blocked, the app falls back to Server-Sent Events', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    const room = await createRoom('sse');
    await post(room.id, 'before', 'bob');
    const dave = await open('dave', { blockWebSocket: true });
    const streams = [];
    dave.page.on('request', (r) => { if ((r.headers().accept ?? '').includes('text/event-stream')) streams.push(r.url()); });
    await dave.page.goto(`${APP}/rooms/${room.id}`);
    await until(async () => (await transportOf(dave.page)) === 'sse', async () => `the page to fall back to SSE; it shows ${await transportOf(dave.page)}`);
    await waitConnected(dave);
    assert.ok(streams.length >= 1, `the page opened an event stream (${JSON.stringify(streams)})`);

    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await post(room.id, `over sse ${i}`, 'bob'));
    await send(dave, 'dave over http');
    await waitForText(dave, 'dave over http');
    await assertShowsServerOrder(dave, room.id);
    const list = await shown(dave.page);
    for (const id of ids) assert.ok(list.some((m) => m.id === id), `bob's message ${id} arrived over SSE`);
    const states = await statesSeen(dave.page);
    assert.ok(states.includes('connected/sse'), `the connection showed connected over SSE: ${JSON.stringify(states)}`);
    assert.ok(!states.includes('connected/websocket'), `no WebSocket was ever acknowledged: ${JSON.stringify(states)}`);
    t.diagnostic(`connection states ${JSON.stringify(states)}; ${streams.length} event stream(s)`);
  });
});

test('over SSE, a member removed from a private room is told once: its streams are not opened again to be refused again',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      const { createRoom: room } = await gql('mutation($n: String!) { createRoom(name: $n, private: true) { id } }',
        { n: `removed-${process.pid}-${Date.now().toString(36)}` }, { user: 'setup' });
      await gql('mutation($r: ID!, $u: ID!) { addMember(roomId: $r, userId: $u) { id } }', { r: room.id, u: 'dave' }, { user: 'setup' });
      const dave = await open('dave', { blockWebSocket: true });
      const streams = [];
      dave.page.on('request', (r) => { if ((r.headers().accept ?? '').includes('text/event-stream')) streams.push(Date.now()); });
      await dave.page.goto(`${APP}/rooms/${room.id}`);
      await until(async () => (await transportOf(dave.page)) === 'sse', async () => `the page to fall back to SSE; it shows ${await transportOf(dave.page)}`);
      await waitConnected(dave);
      await post(room.id, 'before the removal', 'setup');
      await waitForText(dave, 'before the removal');
      const removed = Date.now();
      await gql('mutation($r: ID!, $u: ID!) { removeMember(roomId: $r, userId: $u) { id } }', { r: room.id, u: 'dave' }, { user: 'setup' });
      await new Promise((r) => setTimeout(r, 3000));
      const reopened = streams.filter((at) => at > removed).length;
      // Before, each of the page's two streams (roomEvents, roomPresence)
      // was opened again about four times a second, each refused again.
      assert.ok(reopened <= 1, `${reopened} event streams opened in the 3 s after dave's removal (FORBIDDEN)`);
      t.diagnostic(`${reopened} event stream(s) opened after the removal`);
    });
  });

test('editing, deleting and reacting show in the other user\'s page; a name picked in the header is who posts', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    const room = await createRoom('edits');
    // erin has no name yet: the room list says so, and the header's picker sets one.
    const erin = await open(null);
    assert.equal((await erin.page.goto(`${APP}/`)).status(), 200);
    // Hydrated (before that, the picker's form would submit natively).
    await waitConnected(erin);
    await erin.page.getByText('Pick a name to create rooms and post.').waitFor();
    await erin.page.getByTestId('room').filter({ hasText: room.name }).waitFor();
    await erin.page.locator('form[aria-label="user"] input[name="user"]').fill('erin');
    await Promise.all([erin.page.waitForEvent('load'), erin.page.locator('form[aria-label="user"] button').click()]);
    await erin.page.getByRole('link', { name: room.name }).click();
    await erin.page.waitForURL(`**/rooms/${room.id}`);
    await waitConnected(erin);
    const frank = await open('frank');
    await frank.page.goto(`${APP}/rooms/${room.id}`);
    await waitConnected(frank);

    await send(erin, 'first draft', { button: true });
    await waitForText(frank, 'first draft');
    const [{ id }] = await shown(frank.page);
    const item = (u) => u.page.locator(`[data-testid="message"][data-id="${id}"]`);
    assert.equal(await item(frank).locator('.author').textContent(), 'erin', 'the message is erin\'s');

    await item(erin).getByRole('button', { name: 'Edit' }).click();
    await item(erin).locator('input[name="edit"]').fill('second draft');
    await item(erin).getByRole('button', { name: 'Save' }).click();
    await waitForText(frank, 'second draft');

    await item(frank).getByRole('button', { name: 'react 🎉' }).click();
    for (const u of [erin, frank]) {
      await until(async () => (await item(u).getByRole('button', { name: 'react 🎉' }).textContent()).includes('1'),
        `${u.name}'s page to count frank's reaction`);
    }

    await item(erin).getByRole('button', { name: 'Delete' }).click();
    await waitForText(frank, 'message deleted');
    for (const u of [erin, frank]) {
      const list = await shown(u.page);
      assert.deepEqual(list.map((m) => m.text), ['message deleted'], `${u.name}'s page: one message, deleted`);
      assert.equal(await item(u).getAttribute('data-version'), '3', 'posted, edited, deleted: version 3');
      assert.deepEqual(u.problems, [], `${u.name}'s page reported problems`);
    }
    t.diagnostic('posted, edited, reacted to and deleted, each seen in the other page');
  });
});

test('with --auth jwt, the development token route signs the browser in; it is off unless configured', { timeout: 120_000 }, async (t) => {
  const token = async (app, user) => fetch(`${app}/api/dev-token`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  assert.equal((await token(APP, 'mallory')).status, 404, 'the dev-mode app has no token route');
  const res = await token(JWT_APP, 'setup');
  assert.equal(res.status, 200);
  const setup = (await res.json()).token;
  await assert.rejects(gql('mutation { createRoom(name: "nobody") { id } }', {}, { url: HERALD_JWT }), /UNAUTHENTICATED/,
    'the jwt replica refuses an anonymous mutation');
  const { createRoom: room } = await gql('mutation($n: String!) { createRoom(name: $n) { id name } }',
    { n: `jwt-${process.pid}-${Date.now().toString(36)}` }, { url: HERALD_JWT, token: setup });

  await withScreenshots(t, async ({ open }) => {
    const grace = await open('grace', { app: JWT_APP });
    const henry = await open('henry', { app: JWT_APP });
    for (const u of [grace, henry]) {
      assert.equal((await u.page.goto(`${JWT_APP}/rooms/${room.id}`)).status(), 200);
      await waitConnected(u);
    }
    await send(grace, 'signed by a token');
    await waitForText(henry, 'signed by a token');
    const { room: r } = await gql('query($r: ID!) { room(id: $r) { messages(last: 5) { nodes { text author { name } } } } }',
      { r: room.id }, { url: HERALD_JWT, token: setup });
    assert.deepEqual(r.messages.nodes, [{ text: 'signed by a token', author: { name: 'grace' } }], 'Herald took grace\'s token');
    for (const u of [grace, henry]) {
      assert.deepEqual(await u.page.getByTestId('message').locator('.author').allTextContents(), ['grace']);
      assert.deepEqual(u.problems, [], `${u.name}'s page reported problems`);
    }
  });
});

test('presence: two users on different replicas see each other (count 2), a second tab does not count, a closed page leaves within 3 s',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      const room = await createRoom('presence');
      const url = `${APP}/rooms/${room.id}`;
      // alice's socket on one replica, bob's on the other (/metrics says which).
      const a = await openOnReplica(() => open('alice'), url);
      const b = await openOnReplica(() => open('bob'), url, a.replica === 'A' ? 'B' : 'A');
      const [alice, bob] = [a.u, b.u];
      t.diagnostic(`alice's page is on replica ${a.replica} (${a.all.length} page(s) opened), bob's on ${b.replica} (${b.all.length})`);
      for (const u of [...a.all, ...b.all]) await waitPresence(u, ['alice', 'bob']);
      // The viewer is marked; nobody types yet.
      assert.deepEqual(await alice.page.getByTestId('presence-user').allTextContents(), ['alice (you)', 'bob']);
      assert.equal((await presenceOf(bob.page)).typing, '', 'nobody is typing');

      // Another tab of alice (in her page's browser context), on the other
      // replica: still 2.
      const newTab = async () => {
        const page = await alice.context.newPage();
        page.setDefaultTimeout(WAIT_MS);
        return { ...alice, name: 'alice (tab)', page };
      };
      const tabs = await openOnReplica(newTab, url, b.replica);
      for (const u of tabs.all) await waitPresence(u, ['alice', 'bob']);
      t.diagnostic(`alice's other tab is on replica ${tabs.replica} (${tabs.all.length} tab(s) opened)`);
      // carol comes in after it: once bob's page shows her, it has had
      // every change before her, the second tab included.
      const carol = await open('carol');
      await carol.page.goto(url);
      await waitPresence(bob, ['alice', 'bob', 'carol']);
      await waitPresence(alice, ['alice', 'bob', 'carol']);
      // alice's other tabs go, then carol: alice is still here (her first tab).
      for (const u of tabs.all) await u.page.close();
      await carol.context.close();
      await waitPresence(bob, ['alice', 'bob']);
      for (const u of [alice, bob]) await assertPresenceHistory(u, 3);

      // bob closes every page he has: he leaves alice's list at once (his
      // sockets close), on the other replica.
      const closed = Date.now();
      await Promise.all(b.all.map((u) => u.context.close()));
      await waitPresence(alice, ['alice'], 10_000);
      const left = Date.now() - closed;
      t.diagnostic(`bob left alice's list ${left} ms after his page closed`);
      assert.ok(left <= 3000, `bob left alice's list within 3 s of closing his page (${left} ms)`);
      await assertPresenceHistory(alice, 3);
      for (const u of a.all) assert.deepEqual(u.problems, [], `${u.name}'s page reported problems`);
    });
  });

test('typing: shows on the other user\'s page (on the other replica) while one types, setTyping every 2 s at most, gone within 7 s of stopping',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      const room = await createRoom('typing');
      const url = `${APP}/rooms/${room.id}`;
      const a = await openOnReplica(() => open('alice'), url);
      const b = await openOnReplica(() => open('bob'), url, a.replica === 'A' ? 'B' : 'A');
      const [alice, bob] = [a.u, b.u];
      for (const u of [alice, bob]) await waitPresence(u, ['alice', 'bob']);
      await waitTyping(alice, '');

      // Every setTyping bob's page sends, when.
      const calls = [];
      bob.page.on('request', (r) => { if (r.method() === 'POST' && (r.postData() ?? '').includes('setTyping')) calls.push(Date.now()); });

      // bob types a key every 100 ms for 5 s (a person typing; the pause
      // paces the keys, it waits for nothing).
      const input = bob.page.locator('form[aria-label="composer"] input[name="text"]');
      await input.click();
      const started = Date.now();
      let keys = 0;
      let shownAfter = null;
      while (Date.now() - started < 5000) {
        await input.press('abcdefghij'[keys++ % 10]);
        if (shownAfter === null && (await presenceOf(alice.page)).typing === 'bob is typing…') shownAfter = Date.now() - started;
        await sleep(100);
      }
      const stopped = Date.now();
      assert.notEqual(shownAfter, null, 'alice\'s page showed "bob is typing…" while he typed');
      // Still shown when he stops (his last call was less than 2 s ago).
      assert.equal((await presenceOf(alice.page)).typing, 'bob is typing…', 'alice\'s page shows bob typing as he stops');
      assert.equal((await presenceOf(bob.page)).typing, '', 'bob\'s own page does not tell him he is typing');
      assert.equal(await bob.page.locator('[data-testid="presence-user"][data-user="bob"]').getAttribute('data-typing'), 'true',
        'bob is marked typing in the list');
      const gaps = calls.slice(1).map((c, i) => c - calls[i]);
      t.diagnostic(`${keys} keys in ${stopped - started} ms: ${calls.length} setTyping calls, ${JSON.stringify(gaps)} ms apart; ` +
        `alice saw bob typing ${shownAfter} ms after his first key`);
      assert.ok(calls.length >= 2 && calls.length <= 4, `setTyping every ~2 s while typing, not per key: ${calls.length} calls for ${keys} keys`);
      assert.ok(gaps.every((g) => g >= 1900), `setTyping calls at least ~2 s apart: ${JSON.stringify(gaps)}`);

      // He sends it: no setTyping after that, and the indicator goes 5 s
      // after his last call.
      const before = calls.length;
      const lastCall = calls.at(-1);
      await input.press('Enter');
      await waitForText(alice, 'abcdefghij'.repeat(Math.ceil(keys / 10)).slice(0, keys));
      await waitTyping(alice, '', 10_000);
      const gone = Date.now() - lastCall;
      t.diagnostic(`alice's indicator went ${gone} ms after bob's last setTyping, ${Date.now() - stopped} ms after his last key`);
      assert.ok(gone >= 4000 && gone <= 7000, `the indicator went about 5 s after the last setTyping (${gone} ms)`);
      assert.equal(calls.length, before, 'no setTyping once the message was sent');
      // bob's own list follows his replica, alice's hers, and each replica
      // times typing out itself: his may go a moment after hers, but also
      // within 7 s of his last call.
      await until(async () => (await bob.page.locator('[data-testid="presence-user"][data-user="bob"]').getAttribute('data-typing')) === null,
        'bob to be no longer marked typing in his own list, within 7 s of his last setTyping', Math.max(500, 7000 - (Date.now() - lastCall)));
      for (const u of [alice, bob]) assert.deepEqual(u.problems, [], `${u.name}'s page reported problems`);
    });
  });

test('presence over SSE and across a reconnect: the SNAPSHOT after it replaces the list, which dropped and gained users meanwhile',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      const room = await createRoom('presence-reconnect');
      const url = `${APP}/rooms/${room.id}`;
      const alice = await open('alice');
      await alice.page.goto(url);
      await waitConnected(alice);
      // dave's page has no WebSocket: its presence comes over an event
      // stream. The socket is refused only after 3 s, when the page's
      // subscriptions are waiting for it (graphql-ws ends them on that close
      // code; the transport moves them to SSE instead).
      const dave = await open('dave', { blockWebSocket: 3000 });
      await dave.page.goto(url);
      await until(async () => (await transportOf(dave.page)) === 'sse', 'dave\'s page to fall back to SSE');
      await waitConnected(dave);
      // erin's socket goes through the test, which cuts it below.
      const erin = await open('erin', { proxyWebSocket: true });
      await erin.page.goto(url);
      await waitConnected(erin);
      for (const u of [alice, dave, erin]) await waitPresence(u, ['alice', 'dave', 'erin']);
      assert.ok(dave.warnings.some((w) => w.includes('a WebSocket closed with 1011 before one was acknowledged')),
        `dave's page fell back to SSE as the refused socket ended its subscriptions: ${JSON.stringify(dave.warnings)}`);
      // Typing reaches the SSE page too.
      await alice.page.locator('form[aria-label="composer"] input[name="text"]').pressSequentially('hi');
      await waitTyping(dave, 'alice is typing…');

      // erin's network drops and stays down: her page is reconnecting, and
      // she has left (her only socket closed).
      await erin.network.cut();
      await until(async () => (await connectionState(erin.page)) === 'reconnecting', 'erin\'s page to show reconnecting');
      await waitPresence(alice, ['alice', 'dave']);
      // Meanwhile dave leaves and frank comes in; erin's page hears of neither.
      await dave.context.close();
      const frank = await open('frank');
      await frank.page.goto(url);
      await waitPresence(alice, ['alice', 'frank']);
      const stale = await presenceOf(erin.page);
      assert.deepEqual(stale.users, ['alice', 'dave', 'erin'], 'erin\'s page still shows the list from before the cut');
      assert.ok(stale.stale, 'and shows it faded, as out of date');

      // Back online: the subscription starts again (it has no cursor), and
      // its SNAPSHOT replaces the list: dave gone, frank there.
      erin.network.restore();
      await waitConnected(erin, 30_000);
      await waitPresence(erin, ['alice', 'erin', 'frank']);
      assert.equal((await presenceOf(erin.page)).stale, false, 'erin\'s list is no longer faded');
      await waitPresence(alice, ['alice', 'erin', 'frank']);
      const states = (await statesSeen(erin.page)).map((s) => s.split('/')[0]);
      assert.ok(states.indexOf('reconnecting') > states.indexOf('connected') && states.at(-1) === 'connected',
        `erin's page went connected, reconnecting, connected: ${JSON.stringify(states)}`);
      const seen = await assertPresenceHistory(erin, 3);
      t.diagnostic(`erin's page showed ${JSON.stringify(seen.map((p) => p.users))}`);
      // Not even for a moment did it add the SNAPSHOT to the stale list:
      // after that list, dave is never shown.
      const cutAt = seen.map((p) => p.users.join()).lastIndexOf('alice,dave,erin');
      assert.ok(cutAt >= 0 && seen.slice(cutAt + 1).every((p) => !p.users.includes('dave')),
        `erin's page showed dave after it reconnected: ${JSON.stringify(seen)}`);
      for (const u of [alice, frank]) assert.deepEqual(u.problems, [], `${u.name}'s page reported problems`);
    });
  });

test('a post whose answer was lost, sent again from the composer, is stored and shown once', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    const room = await createRoom('lost-answer');
    const alice = await open('alice');
    const bob = await open('bob');
    for (const u of [alice, bob]) {
      await u.page.goto(`${APP}/rooms/${room.id}`);
      await waitConnected(u);
    }
    // alice's first post reaches Herald, which stores it, but its answer is
    // lost (the connection drops as it comes back).
    let dropped = 0;
    await alice.page.route(HERALD, async (route) => {
      const req = route.request();
      if (dropped === 0 && req.method() === 'POST' && (req.postData() ?? '').includes('PostMessage')) {
        dropped++;
        await route.fetch().catch(() => {});
        await route.abort('connectionreset');
        return;
      }
      await route.fallback();
    });
    const input = alice.page.locator('form[aria-label="composer"] input[name="text"]');
    const alert = alice.page.locator('form[aria-label="composer"] [role="alert"]');
    await send(alice, 'only once');
    await alert.filter({ hasText: 'not posted' }).waitFor();
    await until(async () => (await input.inputValue()) === 'only once', 'the text back in alice\'s composer');
    await waitForText(bob, 'only once'); // it was stored
    // She sends it again, as the error invites her to.
    await input.press('Enter');
    await until(async () => (await input.inputValue()) === '' && !(await shown(alice.page)).some((m) => m.pending) &&
      (await alert.count()) === 0, 'alice\'s second send to be answered');
    const fence = await post(room.id, 'fence', 'bob');
    for (const u of [alice, bob]) await waitForText(u, 'fence');
    const server = await serverMessages(room.id);
    assert.deepEqual(server.map((m) => m.text), ['only once', 'fence'], 'Herald stored alice\'s message once');
    assert.equal(server[1].id, fence);
    for (const u of [alice, bob]) await assertShowsServerOrder(u, room.id);
    assert.deepEqual(bob.problems, [], 'bob\'s page reported problems');
  });
});

test('the composer refuses, as Herald would, a text that shows nothing or holds control characters, without posting it',
  { timeout: 120_000 }, async (t) => {
    await withScreenshots(t, async ({ open }) => {
      const room = await createRoom('refused-text');
      const alice = await open('alice');
      const posts = [];
      alice.page.on('request', (r) => { if (r.method() === 'POST' && (r.postData() ?? '').includes('PostMessage')) posts.push(r.postData()); });
      await alice.page.goto(`${APP}/rooms/${room.id}`);
      await waitConnected(alice);
      // Every message element the page ever shows, pending ones included.
      await alice.page.evaluate(() => {
        window.__messagesShown = 0;
        new MutationObserver(() => {
          window.__messagesShown = Math.max(window.__messagesShown, document.querySelectorAll('[data-testid="message"]').length);
        }).observe(document.body, { subtree: true, childList: true });
      });
      const input = alice.page.locator('form[aria-label="composer"] input[name="text"]');
      const alert = alice.page.locator('form[aria-label="composer"] [role="alert"]');
      // Zero-width space, word joiner, a variation selector: nothing to see.
      for (const [text, why] of [['\u200b\u2060\ufe0f', 'text must not be empty'],
        ['ding\u0007', 'text must not contain control characters other than tabs and line breaks']]) {
        await input.fill(text);
        await input.press('Enter');
        await until(async () => (await alert.count()) === 1 && (await alert.textContent()).includes(why),
          async () => `the composer to say "${why}"; it says ${JSON.stringify(await alert.allTextContents())}`);
        assert.equal(await input.inputValue(), text, 'the text stays in the composer');
      }
      await sleep(500);
      assert.deepEqual(posts, [], 'nothing was posted');
      assert.equal(await alice.page.evaluate(() => window.__messagesShown), 0, 'no message, not even a pending one, was shown');
      // A text with something to see goes, and the problem goes with it.
      await send(alice, '\u200bhi\u200b');
      await waitForText(alice, '\u200bhi\u200b');
      assert.equal(await alert.count(), 0, 'the problem is gone');
      assert.deepEqual((await serverMessages(room.id)).map((m) => m.text), ['\u200bhi\u200b']);
    });
  });

test('with --auth jwt, a token about to expire is refreshed on the open socket: no reconnect, nobody seen to leave',
  { timeout: 150_000 }, async (t) => {
    const LIFETIME_S = 40; // the token route's live 15 minutes
    const { createRoom: room } = await gql('mutation($n: String!) { createRoom(name: $n) { id name } }',
      { n: `jwt-refresh-${process.pid}-${Date.now().toString(36)}` }, { url: HERALD_JWT, token: signToken('setup', 300).token });
    await withScreenshots(t, async ({ open }) => {
      const grace = await open('grace', { app: JWT_APP });
      // grace's page gets tokens that live 40 s: the test answers its token route.
      const issued = [];
      await grace.context.route('**/api/dev-token', async (route) => {
        issued.push(Date.now());
        await route.fulfill({ json: signToken('grace', LIFETIME_S), headers: { 'Cache-Control': 'no-store' } });
      });
      const henry = await open('henry', { app: JWT_APP });
      for (const u of [grace, henry]) {
        assert.equal((await u.page.goto(`${JWT_APP}/rooms/${room.id}`)).status(), 200);
        await waitConnected(u);
      }
      for (const u of [grace, henry]) await waitPresence(u, ['grace', 'henry']);
      const first = issued[0];
      // Past the first token's expiry, and well into the second's life.
      await sleep(Math.max(0, first + (LIFETIME_S + 12) * 1000 - Date.now()));
      const states = (await statesSeen(grace.page)).map((s) => s.split('/')[0]);
      t.diagnostic(`grace's page asked for ${issued.length} tokens, ${JSON.stringify(issued.map((x) => x - first))} ms after the first; states ${JSON.stringify(states)}`);
      assert.ok(issued.length >= 2, `grace's page asked for a new token before the first expired (${issued.length})`);
      assert.ok(!states.includes('reconnecting'), `grace's socket was not closed as its token expired: ${JSON.stringify(states)}`);
      assert.equal(grace.sockets.length, 1, `grace's page kept one socket: ${JSON.stringify(grace.sockets)}`);
      const seen = await presenceSeen(henry.page);
      const full = seen.findIndex((p) => p.users.includes('grace') && p.users.includes('henry'));
      assert.ok(full >= 0 && seen.slice(full).every((p) => p.users.includes('grace')), `henry never saw grace leave: ${JSON.stringify(seen)}`);
      await send(grace, 'still signed in');
      await waitForText(henry, 'still signed in');
      for (const u of [grace, henry]) assert.deepEqual(u.problems, [], `${u.name}'s page reported problems`);
    });
  });

/**
 * The set-up of the two SSE token tests (--auth jwt): a room on the jwt
 * replica with one message (so its page has a cursor, and reads nothing over
 * HTTP at its first event), postAs(text) to post to it, and grace's page on
 * it over event streams (her WebSockets are refused), loaded and connected.
 * The test answers her token route: tokens that live lifetimeS (issued: when
 * each was), or 503 while setDown(true).
 */
async function openGraceOverSSE(open, prefix, lifetimeS) {
  const setup = signToken('setup', 300).token;
  const { createRoom: room } = await gql('mutation($n: String!) { createRoom(name: $n) { id name } }',
    { n: `${prefix}-${process.pid}-${Date.now().toString(36)}` }, { url: HERALD_JWT, token: setup });
  const postAs = (text) => gql('mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }',
    { r: room.id, t: text }, { url: HERALD_JWT, token: setup });
  await postAs('before grace came');
  const grace = await open('grace', { app: JWT_APP, blockWebSocket: true });
  const issued = [];
  let down = false;
  await grace.context.route('**/api/dev-token', async (route) => {
    if (down) return route.fulfill({ status: 503, body: 'down (the test)\n' });
    issued.push(Date.now());
    await route.fulfill({ json: signToken('grace', lifetimeS), headers: { 'Cache-Control': 'no-store' } });
  });
  const streams = []; // every event stream grace's page opened: when, and with which token
  grace.page.on('request', async (r) => {
    const headers = await r.allHeaders();
    if ((headers.accept ?? '').includes('text/event-stream')) streams.push({ at: Date.now(), auth: headers.authorization ?? '' });
  });
  assert.equal((await grace.page.goto(`${JWT_APP}/rooms/${room.id}`)).status(), 200);
  await waitConnected(grace);
  assert.equal(await transportOf(grace.page), 'sse', 'grace\'s page is on SSE');
  return { room, postAs, grace, issued, streams, setDown: (v) => { down = v; } };
}

test('with --auth jwt over SSE, a token about to expire is replaced by opening the streams again after their cursor: nothing lost or twice, nobody seen to leave',
  { timeout: 150_000 }, async (t) => {
    const LIFETIME_S = 40; // the token route's live 15 minutes
    await withScreenshots(t, async ({ open }) => {
      // grace has no WebSocket (her page is on event streams) and gets
      // tokens that live 40 s: the test answers her token route.
      const { room, postAs, grace, issued, streams } = await openGraceOverSSE(open, 'jwt-sse-refresh', LIFETIME_S);
      const henry = await open('henry', { app: JWT_APP });
      assert.equal((await henry.page.goto(`${JWT_APP}/rooms/${room.id}`)).status(), 200);
      await waitConnected(henry);
      for (const u of [grace, henry]) await waitPresence(u, ['grace', 'henry']);
      const first = issued[0];
      const expiry = first + LIFETIME_S * 1000;
      // Posts every 150 ms from before the streams are replaced (25 s before
      // the first token's expiry) to well after, and a few past the expiry.
      const texts = [];
      const postUntil = async (until_) => { while (Date.now() < until_) { const x = `p${texts.length}`; texts.push(x); await postAs(x); await sleep(150); } };
      await sleep(Math.max(0, expiry - 28_000 - Date.now()));
      await postUntil(expiry - 20_000);
      await sleep(Math.max(0, expiry + 4000 - Date.now()));
      await postUntil(expiry + 6000);
      await send(grace, 'grace still signed in');
      await waitForTexts(grace, [...texts, 'grace still signed in']);
      await waitForText(henry, 'grace still signed in');

      const tokens = [...new Set(streams.map((s) => s.auth))];
      const states = (await statesSeen(grace.page)).map((s) => s.split('/')[0]);
      t.diagnostic(`grace's page asked for ${issued.length} tokens, ${JSON.stringify(issued.map((x) => x - first))} ms after the first; ` +
        `${streams.length} event streams, ${JSON.stringify(streams.map((s) => `${s.at - first} ms, token ${tokens.indexOf(s.auth)}`))}; states ${JSON.stringify(states)}`);
      assert.ok(tokens.length >= 2 && streams.some((s) => s.auth === tokens[1] && s.at < expiry - 5000),
        `grace's page opened its event streams again with a new token before the first expired: ${JSON.stringify(streams.map((s) => [s.at - first, tokens.indexOf(s.auth)]))}`);
      assert.ok(!states.includes('reconnecting'), `grace's streams were not ended as their token expired: ${JSON.stringify(states)}`);
      // Nothing lost, nothing twice, in Herald's order.
      await assertShowsServerOrder(grace, room.id);
      const seen = await presenceSeen(henry.page);
      const full = seen.findIndex((p) => p.users.includes('grace') && p.users.includes('henry'));
      assert.ok(full >= 0 && seen.slice(full).every((p) => p.users.includes('grace')), `henry never saw grace leave: ${JSON.stringify(seen)}`);
      await waitPresence(grace, ['grace', 'henry']);
      assert.equal(await grace.page.locator('main [role="alert"], .presence .error').count(), 0,
        `grace's page reports no problem: ${JSON.stringify(await grace.page.locator('main').textContent())}`);
      for (const u of [grace, henry]) assert.deepEqual(u.problems, [], `${u.name}'s page reported problems`);
    });
  });

test('with --auth jwt over SSE, streams whose token expired as the token route was down are opened again after their cursor: nothing lost, no error',
  { timeout: 150_000 }, async (t) => {
    const LIFETIME_S = 35;
    await withScreenshots(t, async ({ open }) => {
      // Not an empty room: its page has a cursor, and reads nothing over
      // HTTP at the first event (which would fail while the token route is
      // down). The test answers grace's token route: 35 s tokens, then
      // nothing (503) from 5 s after the first until 3 s after it expired.
      const { room, postAs, grace, issued, setDown } = await openGraceOverSSE(open, 'jwt-sse-expired', LIFETIME_S);
      await waitPresence(grace, ['grace']);
      const first = issued[0];
      const expiry = first + LIFETIME_S * 1000;
      await sleep(Math.max(0, first + 5000 - Date.now()));
      setDown(true);
      // Posts about 2 a second across the expiry (fewer than 100 in all:
      // serverMessages reads the last 100), while grace's page has no token.
      const texts = [];
      while (Date.now() < expiry + 3000) { const x = `q${texts.length}`; texts.push(x); await postAs(x); await sleep(400); }
      setDown(false);
      for (let i = 0; i < 5; i++) { const x = `q${texts.length}`; texts.push(x); await postAs(x); }
      await waitForTexts(grace, texts, 30_000);
      await waitConnected(grace);
      await send(grace, 'grace signed in again');
      await waitForText(grace, 'grace signed in again');
      await assertShowsServerOrder(grace, room.id);
      await waitPresence(grace, ['grace']);
      const states = (await statesSeen(grace.page)).map((s) => s.split('/')[0]);
      t.diagnostic(`tokens at ${JSON.stringify(issued.map((x) => x - first))} ms; states ${JSON.stringify(states)}; warnings ${JSON.stringify([...new Set(grace.warnings.map((w) => w.replace(/\d+ ms/, 'N ms')))])}`);
      assert.equal(await grace.page.locator('main [role="alert"], .presence .error').count(), 0,
        `grace's page reports no problem: ${JSON.stringify(await grace.page.locator('main').textContent())}`);
      // The token route's 503s (each also logged by the browser as a
      // resource that failed to load; a 503 of anything else still shows as
      // its own HTTP 503) are the test's.
      assert.deepEqual(grace.problems.filter((p) => !/^HTTP 503: POST .*\/api\/dev-token$|^console error: Failed to load resource: .* status of 503/.test(p)), [],
        'grace\'s page reported problems (other than the token route down)');
    });
  });

test('a private room\'s page says why it cannot be shown, and leads back to the rooms', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    const { createRoom: room } = await gql('mutation($n: String!) { createRoom(name: $n, private: true) { id } }',
      { n: `private-${process.pid}-${Date.now().toString(36)}` }, { user: 'setup' });
    const alice = await open('alice');
    await alice.page.goto(`${APP}/rooms/${room.id}`);
    await waitConnected(alice);
    const alert = alice.page.locator('main [role="alert"]');
    await until(async () => (await alert.count()) === 1 && /not a member/.test(await alert.textContent()),
      async () => `the page to say alice is not a member; it shows ${JSON.stringify((await alice.page.locator('main').textContent().catch(() => '')).slice(0, 300))}`);
    await alice.page.getByRole('link', { name: 'All rooms' }).click();
    await alice.page.waitForURL(`${APP}/`);
    await alice.page.getByTestId('rooms').waitFor();
    assert.deepEqual(alice.problems, [], 'alice\'s page reported problems (before, the page failed: HTTP 500, then an uncaught error)');
  });
});

test('a private room is rendered on the server as the viewer: a member sees it (dev mode and --auth jwt), a non-member the error',
  { timeout: 120_000 }, async (t) => {
    const stamp = `${process.pid}-${Date.now().toString(36)}`;
    const modes = [
      // dev mode: the name is the identity (X-Herald-User).
      { app: APP, member: 'alice', outsider: 'bob', as: (user) => ({ user }), url: HERALD },
      // --auth jwt: the render presents a token for the viewer.
      { app: JWT_APP, member: 'grace', outsider: 'henry', as: (user) => ({ token: signToken(user, 300).token }), url: HERALD_JWT },
    ];
    await withScreenshots(t, async ({ open }) => {
      for (const { app, member, outsider, as, url } of modes) {
        const { createRoom: room } = await gql('mutation($n: String!) { createRoom(name: $n, private: true) { id } }',
          { n: `private-ssr-${stamp}-${member}` }, { ...as(member), url });
        const secret = `only for members ${member} ${stamp}`;
        await gql('mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }',
          { r: room.id, t: secret }, { ...as(member), url });
        const m = await open(member, { app });
        const o = await open(outsider, { app });
        // Both at once: neither render may be the other's.
        const [mRes, oRes] = await Promise.all([m, o].map((u) => u.page.goto(`${app}/rooms/${room.id}`)));
        const [mHtml, oHtml] = await Promise.all([mRes.text(), oRes.text()]);
        assert.equal(mRes.status(), 200);
        // The page, once in the browser, shows the room (before, it said
        // FORBIDDEN for good: nothing read the room again as the viewer).
        await waitConnected(m);
        await until(async () => (await shown(m.page)).some((x) => x.text === secret),
          async () => `${member}'s page (a member) to show the private room's message; it says ${JSON.stringify((await m.page.locator('main').textContent()).slice(0, 200))}`);
        assert.equal(await m.page.locator('main [role="alert"]').count(), 0, `${member}'s page shows no error`);
        assert.ok(mHtml.includes(secret) && !mHtml.includes('not a member'),
          `the server rendered the private room for ${member}, a member (${app === APP ? 'dev' : 'jwt'}): its HTML ${mHtml.includes('not a member') ? 'says not a member' : 'lacks the message'}`);
        assert.ok(!oHtml.includes(secret) && oHtml.includes('not a member'), `the server rendered the error, not the room, for ${outsider}`);
        // And it is live: a post after the render arrives.
        await gql('mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }',
          { r: room.id, t: `${secret} live` }, { ...as(member), url });
        await waitForText(m, `${secret} live`);
        const alert = o.page.locator('main [role="alert"]');
        await until(async () => (await alert.count()) === 1 && /not a member/.test(await alert.textContent()), `${outsider}'s page to say they are not a member`);
        assert.equal((await shown(o.page)).length, 0, `${outsider}'s page shows no message`);
        for (const u of [m, o]) assert.deepEqual(u.problems, [], `${u.name}'s page reported problems`);
      }
    });
  });

// Last: it kills replica B.
test('one replica killed mid-conversation: both pages show every message once, in order, and showed reconnecting then connected',
  { timeout: 180_000 }, async (t) => {
    const pidB = Number(process.env.HERALD_B_PID);
    assert.ok(pidB > 0, 'HERALD_B_PID names replica B');
    await withScreenshots(t, async ({ open }) => {
      const room = await createRoom('killed');
      // nginx gives each new socket to the replica with the fewest
      // (least_conn). Each user opens pages until one's socket lands on B,
      // seen as one more socket on B's own /metrics; the pages on A stay
      // open and are checked too.
      const pages = [];
      const onB = new Map(); // user -> their page whose socket is on B
      for (const name of ['alice', 'bob']) {
        for (let tries = 0; !onB.has(name); tries++) {
          assert.ok(tries < 5, `none of ${name}'s ${tries} pages got a socket on replica B`);
          const before = await openConnectionsOn(HERALD_B);
          const u = await open(name);
          await u.page.goto(`${APP}/rooms/${room.id}`);
          await waitConnected(u);
          pages.push(u);
          if (await openConnectionsOn(HERALD_B) > before) onB.set(name, u);
        }
      }
      const [alice, bob] = [onB.get('alice'), onB.get('bob')];

      const sent = [];
      const say = async (u, text) => {
        sent.push(text);
        await send(u, text);
        await waitForText(u, text);
      };
      for (let i = 0; i < 4; i++) await say([alice, bob][i % 2], `before ${i}`);
      process.kill(pidB, 'SIGKILL');
      t.diagnostic(`killed replica B (pid ${pidB}), which held alice's and bob's sockets (${pages.length} pages in all)`);
      // Posting goes on at once, through nginx to A, while the sockets reconnect.
      for (let i = 0; i < 6; i++) await say([alice, bob][i % 2], `after ${i}`);
      for (const u of pages) await waitConnected(u, 30_000);
      await say(alice, 'fence');
      for (const u of pages) await waitForText(u, 'fence', 30_000);

      for (const u of pages) {
        const list = await assertShowsServerOrder(u, room.id);
        assert.deepEqual(list.map((m) => m.text), sent, `${u.name}'s page shows every message sent, in order`);
      }
      for (const u of [alice, bob]) {
        const states = (await statesSeen(u.page)).map((s) => s.split('/')[0]);
        const r = states.indexOf('reconnecting');
        assert.ok(r > states.indexOf('connected') && states.indexOf('connected') >= 0,
          `${u.name}'s page showed connected, then reconnecting once B was killed: ${JSON.stringify(states)}`);
        assert.equal(states.at(-1), 'connected', `${u.name}'s page is connected again: ${JSON.stringify(states)}`);
      }
      // Their presence subscriptions came back too: carol coming in shows
      // in every page, alice and bob once each (B's keys for them expire,
      // and they are here through A anyway).
      const carol = await open('carol');
      await carol.page.goto(`${APP}/rooms/${room.id}`);
      for (const u of [...pages, carol]) await waitPresence(u, ['alice', 'bob', 'carol'], 30_000);
      for (const u of pages) await assertPresenceHistory(u, 3);
      t.diagnostic(`${pages.length} pages; alice's and bob's went reconnecting, then connected; ${sent.length} messages once, in order, in each`);
    });
  });

// The Next.js chat app in Debian's Chromium against two Herald replicas
// behind nginx (deploy/nginx.conf). Run by e2e/run.sh, which starts them.
// The tests run in this order; the last one kills replica B.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  APP, HERALD_B, HERALD_JWT, JWT_APP, WAIT_MS, createRoom, difference, gql, openConnectionsOn, post, send, serverMessages, shown,
  sleep, statesSeen, transportOf, until, waitConnected, waitForText, waitForTexts, withScreenshots,
} from './lib.mjs';

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

test('a page loaded on an empty room as another user starts posting shows every message exactly once', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    // An empty room has no cursor to hand over from: the page subscribes
    // from now and, at its first event, reads the room again and merges.
    const room = await createRoom('empty-hand-over');
    const carol = await open('carol');
    // Posting starts as soon as the page's response begins: after the
    // server has read the (empty) room, before the browser subscribes.
    await carol.page.goto(`${APP}/rooms/${room.id}`, { waitUntil: 'commit' });
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
      t.diagnostic(`${pages.length} pages; alice's and bob's went reconnecting, then connected; ${sent.length} messages once, in order, in each`);
    });
  });

// The page's own post answered while its subscription had not yet delivered
// an earlier post of someone else, the page left (All rooms), then Back: the
// room shows Herald's order. Back restores the room from the cached list, with
// a cursor from before both posts: the own post, left at the list's end, had
// the replayed earlier post placed after it.
import assert from 'node:assert/strict';
import test from 'node:test';
import { APP, createRoom, post, send, serverMessages, shown, sleep, waitConnected, waitForTexts, withScreenshots } from './lib.mjs';

test('own post answered before an earlier post was delivered, page left and Back: messages in Herald\'s order, once', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    const A = await createRoom('await');
    await post(A.id, 'b1', 'bob');
    const alice = await open('alice');
    const p = alice.page;
    // Herald's messages to the page go through the test, which can hold them (a slow link).
    const net = { hold: false, held: [] };
    await alice.context.routeWebSocket(() => true, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => server.send(m));
      server.onMessage((m) => { if (net.hold) net.held.push(m); else ws.send(m); });
    });
    await p.goto(`${APP}/`);
    await waitConnected(alice);
    await p.locator(`[data-testid="room"][data-id="${A.id}"] a`).click();
    await p.waitForURL(`${APP}/rooms/${A.id}`);
    await waitForTexts(alice, ['b1']);
    await sleep(500);
    net.hold = true; // from here the page's socket delivers nothing (yet)
    await post(A.id, 'o1-before-mine', 'bob');
    await send(alice, 'mine');
    await waitForTexts(alice, ['mine']); // the answer (HTTP) put it in the list
    await p.locator('a.brand').click();
    await p.waitForURL(`${APP}/`);
    net.hold = false;
    await sleep(300);
    await p.goBack();
    await p.waitForURL(`${APP}/rooms/${A.id}`);
    await waitForTexts(alice, ['b1', 'o1-before-mine', 'mine']);
    await post(A.id, 'live', 'bob');
    await waitForTexts(alice, ['live']);
    await sleep(1500);
    const want = (await serverMessages(A.id)).map((m) => m.text);
    const texts = (await shown(p)).map((m) => m.text);
    assert.deepEqual(texts, want, 'alice\'s page after Back, against Herald\'s order');
  });
});

// Messages of any shape in the room page: a 4000-character word, emoji
// sequences and right-to-left text show as sent, on the sender's page and
// another's, without pushing the page sideways (one long word made it
// 39,508 px wide), and a right-to-left message is laid out right to left.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { APP, createRoom, send, serverMessages, shown, waitConnected, waitForTexts, withScreenshots } from './lib.mjs';

test('a 4000-character word, emoji and right-to-left messages show as sent, wrapped, each in its direction', { timeout: 120_000 }, async (t) => {
  await withScreenshots(t, async ({ open }) => {
    const room = await createRoom('text-shapes');
    const alice = await open('alice');
    const bob = await open('bob');
    for (const u of [alice, bob]) { await u.page.goto(`${APP}/rooms/${room.id}`); await waitConnected(u); }
    const long = 'https://example.com/' + 'a'.repeat(3980);
    const emoji = '👨‍👩‍👧‍👦🏳️‍🌈👍🏽';
    const hebrew = 'שלום עולם!';
    const arabic = 'مرحبا بالعالم!';
    const texts = [long, emoji, hebrew, arabic];
    for (const x of texts) await send(alice, x);
    for (const u of [alice, bob]) await waitForTexts(u, texts);
    assert.deepEqual((await serverMessages(room.id)).map((m) => m.text), texts, 'Herald stored the texts as sent');
    for (const u of [alice, bob]) {
      assert.deepEqual((await shown(u.page)).map((m) => m.text), texts, `${u.name}'s page shows the texts as sent`);
      const layout = await u.page.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        viewport: document.documentElement.clientWidth,
        directions: [...document.querySelectorAll('[data-testid="message-text"]')].map((e) => getComputedStyle(e).direction),
      }));
      assert.ok(layout.page <= layout.viewport,
        `${u.name}'s page is ${layout.page} px wide in a ${layout.viewport} px window with a long message: it must wrap`);
      assert.deepEqual(layout.directions, ['ltr', 'ltr', 'rtl', 'rtl'], `${u.name}'s page lays the messages out ${layout.directions}`);
    }
  });
});

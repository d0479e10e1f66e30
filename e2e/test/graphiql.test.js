// GraphiQL as a person uses it: Debian's Chromium, driven by playwright-core
// (which downloads no browser), loads the page replica A serves at `/`, runs
// a query, a mutation with the Headers pane and a subscription typed into
// the editor, while messages are posted on replica B over HTTP; every one
// must show in the result pane. The page must load every asset and break
// its strict Content-Security-Policy nowhere: no console error, no failed
// request, no securitypolicyviolation event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { A, B, gql, createRoom, withTimeout, failIfProcessLingers, describeDifference } from './lib/herald.js';
import { openBrowser, WAIT_MS } from './lib/browser.js';

failIfProcessLingers('graphiql.test.js');

const json = (v) => JSON.stringify(v);

const QUERY_EDITOR = '.graphiql-query-editor';
const HEADERS_EDITOR = 'section.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden)';

/**
 * Replaces the text of a GraphiQL editor (one line) as a person pasting
 * would, and waits until the editor shows it.
 */
async function setEditor(page, selector, text) {
  await page.locator(`${selector} .CodeMirror`).click();
  await page.keyboard.press('Control+A');
  // insertText, not type: typing would trigger GraphiQL's bracket closing
  // and completion, as it does for a person, who would not type the
  // closing brackets.
  await page.keyboard.insertText(text);
  await page.waitForFunction(([sel, t]) => document.querySelector(`${sel} .CodeMirror-code`)?.innerText.includes(t), [selector, text]);
}

/**
 * Sets the query editor and waits until GraphiQL has taken the edit: it
 * parses an edit 100 ms later and runs the operation it parsed last (run
 * sooner, a subscription would go out as the query before it, over HTTP).
 * It keeps the query in localStorage in the same step.
 */
async function setQuery(page, text) {
  await setEditor(page, QUERY_EDITOR, text);
  await page.waitForFunction((t) => localStorage.getItem('graphiql:query') === t, text);
}

/** The result pane's text, once it includes every string of want. */
async function resultIncluding(page, ...want) {
  try {
    await page.waitForFunction((w) => {
      const text = document.querySelector('.result-window')?.innerText ?? '';
      return w.every((s) => text.includes(s));
    }, want);
  } catch (err) {
    const shown = await page.locator('.result-window').innerText().catch(() => '(no result pane)');
    throw new Error(`the result pane did not show ${json(want)} within ${WAIT_MS} ms; it shows: ${shown}\n${err.message}`);
  }
  return page.locator('.result-window').innerText();
}

/** Runs the operation in the query editor with GraphiQL's run button. */
const run = (page) => page.locator('.graphiql-execute-button').click();

test('GraphiQL in Chromium: query, mutation with headers, and a subscription that shows messages posted on the other replica; no CSP violation, no failed asset',
  { timeout: 120_000 }, async (t) => {
    const room = await createRoom(B, 'graphiql');
    // The subscription resumes after this message, so the messages posted
    // next reach it however long the browser takes to start it.
    const seed = await gql(B, 'mutation($r: ID!) { postMessage(roomId: $r, text: "seed") { cursor } }', { r: room.id }, { user: 'bob' });

    const browser = await openBrowser();
    const { page, problems, violations, frames } = browser;
    const report = () => `\nproblems: ${json(problems)}\npolicy violations: ${json(violations)}`;
    try {
      const started = Date.now();
      const response = await page.goto(`${A}/`);
      assert.equal(response.status(), 200, 'GET / answers 200');
      assert.match(response.headers()['content-security-policy'] ?? '', /script-src 'self'/, 'the page has its strict policy');
      await page.locator(`${QUERY_EDITOR} .CodeMirror`).waitFor();
      t.diagnostic(`GraphiQL loaded from replica A in ${Date.now() - started} ms`);

      // A query over HTTP.
      await setQuery(page, `query { room(id: "${room.id}") { name messageCount } }`);
      await run(page);
      await resultIncluding(page, `"name": "${room.name}"`, '"messageCount": 1');

      // A mutation with an identity from the Headers pane.
      await page.getByRole('button', { name: 'Headers' }).click();
      await setEditor(page, HEADERS_EDITOR, json({ 'X-Herald-User': 'alice', user: 'alice' }));
      await setQuery(page, `mutation { postMessage(roomId: "${room.id}", text: "from GraphiQL") { text author { name } } }`);
      await run(page);
      await resultIncluding(page, '"text": "from GraphiQL"', '"name": "alice"');

      // A dialog: while one is open GraphiQL adds the one <style> element
      // the policy allows by its nonce.
      await page.getByRole('button', { name: 'Open settings dialog' }).click();
      await page.getByRole('dialog').waitFor();
      await page.keyboard.press('Escape');
      await page.getByRole('dialog').waitFor({ state: 'detached' });

      // CodeMirror's jump-to-line dialog (Alt-G in an editor) is built from
      // HTML with two style attributes, which the policy allows by their
      // hashes.
      await page.locator(`${QUERY_EDITOR} .CodeMirror`).click();
      await page.keyboard.press('Alt+G');
      await page.locator(`${QUERY_EDITOR} .CodeMirror-dialog input`).waitFor();
      await page.keyboard.press('Escape');
      await page.locator(`${QUERY_EDITOR} .CodeMirror-dialog`).waitFor({ state: 'detached' });

      // A subscription over graphql-transport-ws, resumed after the seed;
      // each message posted on B must show in the result pane before the
      // next is posted.
      await setQuery(page,
        `subscription { messagePosted(roomId: "${room.id}", after: "${seed.postMessage.cursor}") { id text author { name } } }`);
      await run(page);
      const want = Array.from({ length: 5 }, (_, i) => `msg-${i}`);
      for (const text of want) {
        const { postMessage: m } = await gql(B, 'mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }',
          { r: room.id, t: text }, { user: 'bob' });
        await resultIncluding(page, `"text": "${text}"`, `"id": "${m.id}"`, '"cursor"');
      }

      // What the socket carried: each message once, in order, each with
      // a cursor of its own.
      const nexts = frames.filter((f) => f.type === 'next');
      const got = nexts.map((f) => f.payload?.data?.messagePosted?.text);
      const wantAll = ['from GraphiQL', ...want];
      assert.deepEqual(got, wantAll, `the subscription's messages, over the socket: ${describeDifference(got, wantAll)}`);
      const cursors = nexts.map((f) => f.payload?.extensions?.cursor);
      assert.ok(cursors.every((c) => typeof c === 'string' && c), `a message without a cursor: ${json(cursors)}`);
      assert.equal(new Set(cursors).size, cursors.length, `cursors repeat: ${json(cursors)}`);
      assert.deepEqual(frames.filter((f) => f.type === 'error'), [], 'no error message on the socket');

      assert.deepEqual(problems, [], `the page reported problems${report()}`);
      assert.deepEqual(violations, [], `the page broke its Content-Security-Policy${report()}`);

      // The control: an inline style, which the policy forbids, is
      // reported, so the silence above means something.
      await page.evaluate(() => {
        const style = document.createElement('style');
        style.textContent = 'body { outline: 0 }';
        document.head.append(style);
      });
      await withTimeout((async () => { while (!violations.length) await new Promise((r) => setTimeout(r, 20)); })(),
        5000, 'the securitypolicyviolation of an inline style without the nonce');
      assert.match(violations[0].directive, /^style-src/, `the control's violation: ${json(violations)}`);
      t.diagnostic(`query, mutation and ${want.length} subscription results shown in ${Date.now() - started} ms; ` +
        `no console error, failed request or policy violation`);
    } catch (err) {
      err.message += report();
      throw err;
    } finally {
      await browser.close();
    }
  });

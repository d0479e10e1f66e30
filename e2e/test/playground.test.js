// GraphQL Playground as a person uses it: the graphql-playground-react
// build from npm (its standalone bundle, the one graphql-playground-html
// loads from a CDN), served by this test from a loopback port of its own,
// in Debian's Chromium. It subscribes on replica A over the legacy
// subprotocol (subscriptions-transport-ws, which Playground speaks) while
// messages are posted on replica B; each must show in the result pane, and
// the socket must carry them as the legacy protocol's "data" messages, in
// order, each once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { A, B, gql, createRoom, httpURL, wsURL, withTimeout, failIfProcessLingers, describeDifference } from './lib/herald.js';
import { openBrowser, WAIT_MS } from './lib/browser.js';

failIfProcessLingers('playground.test.js');

const run = promisify(execFile);

// The package and its registry integrity (npm view graphql-playground-react@1.7.28 dist.integrity).
// Only its prebuilt bundle is used: installing it would pull 446 packages
// (React 16, an old GraphiQL) that Herald's tests need nothing of.
const PLAYGROUND = 'graphql-playground-react@1.7.28';
const INTEGRITY = 'sha512-YPR33Ph9kuKlFOMpc8mKGsL/fOiX0ltgzV1BokXYNsBLtTVQnhdCSKQuZg80CcxWKD8syNuWXDkGZSAdFkwmRg==';
const ASSETS = ['build/static/js/middleware.js', 'build/static/css/middleware.css'];

// Kept between runs (and ignored by git), so the tarball is fetched once.
const CACHE = join(dirname(fileURLToPath(import.meta.url)), '..', '.cache', 'playground-1.7.28');

/**
 * Fetches the package's tarball from the registry with npm pack (through
 * npm's cache), checks it against the pinned integrity, and extracts the
 * bundle. Returns the directory holding package/build/....
 */
async function playgroundAssets() {
  if (ASSETS.every((a) => existsSync(join(CACHE, 'package', a)))) return CACHE;
  const work = mkdtempSync(join(tmpdir(), 'herald-e2e-playground-'));
  try {
    await run('npm', ['pack', PLAYGROUND, '--pack-destination', work, '--silent'], { timeout: 120_000 });
    const [tgz] = readdirSync(work).filter((f) => f.endsWith('.tgz'));
    assert.ok(tgz, `npm pack ${PLAYGROUND} wrote no tarball`);
    const got = 'sha512-' + createHash('sha512').update(readFileSync(join(work, tgz))).digest('base64');
    assert.equal(got, INTEGRITY, `${PLAYGROUND}'s tarball does not match its pinned integrity`);
    mkdirSync(CACHE, { recursive: true });
    await run('tar', ['-xzf', join(work, tgz), '-C', CACHE, ...ASSETS.map((a) => `package/${a}`)], { timeout: 60_000 });
    return CACHE;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The page graphql-playground-html would render, with local assets. */
function page({ endpoint, subscriptionEndpoint, query }) {
  const options = JSON.stringify({
    endpoint,
    subscriptionEndpoint,
    settings: { 'request.credentials': 'omit', 'editor.reuseHeaders': true },
    tabs: [{ endpoint, query, name: 'Herald' }],
  }).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>GraphQL Playground</title>
<link rel="stylesheet" href="/middleware.css">
<script src="/middleware.js"></script></head>
<body><div id="root"></div>
<script>window.addEventListener('load', () => GraphQLPlayground.init(document.getElementById('root'), ${options}));</script>
</body></html>`;
}

/** Serves the page and the bundle on a free loopback port. */
async function servePlayground(dir, options) {
  const files = {
    '/middleware.js': ['application/javascript', readFileSync(join(dir, 'package', ASSETS[0]))],
    '/middleware.css': ['text/css', readFileSync(join(dir, 'package', ASSETS[1]))],
    '/': ['text/html; charset=utf-8', Buffer.from(page(options))],
  };
  const server = createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': f[0], 'Cache-Control': 'no-store' }).end(f[1]);
  });
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((resolve) => server.close(resolve)) };
}

test('GraphQL Playground (graphql-playground-react 1.7.28) in Chromium: a subscription over the legacy subprotocol shows messages posted on the other replica',
  { timeout: 180_000 }, async (t) => {
    const dir = await playgroundAssets();
    const room = await createRoom(B, 'playground');
    // Resume after this message, so the posts that follow reach the
    // subscription however long the browser takes to start it.
    const seed = await gql(B, 'mutation($r: ID!) { postMessage(roomId: $r, text: "seed") { cursor } }', { r: room.id }, { user: 'bob' });
    const query = `subscription { messagePosted(roomId: "${room.id}", after: "${seed.postMessage.cursor}") { id text } }`;
    const site = await servePlayground(dir, { endpoint: httpURL(A), subscriptionEndpoint: wsURL(A), query });
    const browser = await openBrowser();
    const { page: tab, frames, problems } = browser;
    try {
      const started = Date.now();
      const response = await tab.goto(site.url);
      assert.equal(response.status(), 200);
      const execute = tab.getByTitle('Execute Query (Ctrl-Enter)');
      await execute.first().waitFor();
      // Playground fills the tab's editor from the options; run it once it shows.
      await tab.waitForFunction((room) => document.body.innerText.includes(room), room.id);
      t.diagnostic(`Playground loaded in ${Date.now() - started} ms`);
      await execute.first().click();

      const want = Array.from({ length: 5 }, (_, i) => `pg-${i}`);
      for (const text of want) {
        await gql(B, 'mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }', { r: room.id, t: text }, { user: 'bob' });
        try {
          await tab.waitForFunction((s) => document.body.innerText.includes(s), text, { timeout: WAIT_MS });
        } catch (err) {
          const shown = await tab.evaluate(() => document.body.innerText.slice(-2000));
          throw new Error(`Playground did not show ${text} within ${WAIT_MS} ms; the page shows: ${shown}\n${err.message}`);
        }
      }

      // The socket spoke the legacy protocol: its results are "data"
      // messages (graphql-transport-ws would send "next"), each posted
      // message once, in order.
      assert.equal(frames.filter((f) => f.type === 'next').length, 0, 'no graphql-transport-ws "next" message');
      const got = frames.filter((f) => f.type === 'data').map((f) => f.payload?.data?.messagePosted?.text);
      assert.deepEqual(got, want, `the subscription's messages, over the socket: ${describeDifference(got, want)}`);
      assert.ok(frames.some((f) => f.type === 'connection_ack'), 'the legacy connection_ack');
      assert.deepEqual(frames.filter((f) => f.type === 'error'), [], 'no error message on the socket');
      t.diagnostic(`${want.length} messages shown in ${Date.now() - started} ms`);
    } catch (err) {
      err.message += `\nthe page's problems: ${JSON.stringify(problems)}`;
      throw err;
    } finally {
      await withTimeout(browser.close(), 15_000, 'closing Chromium');
      await site.close();
    }
  });

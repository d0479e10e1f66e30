// The production build's pages when Herald accepts connections but never
// answers (overloaded, stuck behind a proxy, a replica hung on NATS): each
// request of the server render to Herald has a time limit
// (lib/timed-fetch.ts, 10 s), so the page answers, saying it cannot show the
// rooms or the room, instead of holding the request open for as long as
// Node's fetch waits for headers (300 s).
//
// It needs the production build in .next, which e2e/run.sh makes (or
// reuses) before it runs the tests in this folder; it starts that build
// itself (`next start` on a free loopback port) against a loopback TCP
// server that never answers, and stops both (by PID). Run alone after
// `npm run build`: node --test examples/nextjs-chat/e2e/herald-not-answering.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const app = dirname(dirname(fileURLToPath(import.meta.url)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** How long a page may take to answer when Herald does not: the 10 s limit, and some. */
const ANSWER_WITHIN_MS = 20_000;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

test('with a Herald that accepts connections but never answers, the room list and a room page say they cannot be shown', {
  skip: existsSync(join(app, '.next', 'BUILD_ID')) ? false : 'no production build in .next (e2e/run.sh or npm run build makes it)',
  timeout: 90_000,
}, async (t) => {
  // Herald, hung: accepts, reads, never answers.
  const sockets = new Set();
  const hung = net.createServer((s) => {
    sockets.add(s);
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((r) => hung.listen(0, '127.0.0.1', r));
  const heraldUrl = `http://127.0.0.1:${hung.address().port}/graphql`;

  const port = await freePort();
  const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', NEXT_PUBLIC_HERALD_URL: heraldUrl };
  delete env.HERALD_DEV_JWT_SECRET;
  const next = spawn(process.execPath, [join(app, 'node_modules/next/dist/bin/next'), 'start', '-H', '127.0.0.1', '-p', String(port)],
    { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  next.stdout.on('data', (b) => { log += b; });
  next.stderr.on('data', (b) => { log += b; });
  const base = `http://127.0.0.1:${port}`;
  try {
    // Ready: a static file, which reads nothing from Herald.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const res = await fetch(`${base}/icon.svg`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.ok) break;
      } catch {
        // not yet
      }
      assert.ok(Date.now() < deadline, `next start did not come up: ${log}`);
      assert.equal(next.exitCode, null, `next start exited: ${log}`);
      await sleep(200);
    }

    const load = async (path) => {
      const started = Date.now();
      try {
        const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
        return { status: res.status, html: await res.text(), ms: Date.now() - started };
      } catch (err) {
        assert.fail(`${path} did not answer within ${ANSWER_WITHIN_MS} ms (${err.name}) when Herald does not answer`);
      }
    };
    const [home, room] = await Promise.all([load('/'), load('/rooms/some-room')]);
    t.diagnostic(`the room list answered HTTP ${home.status} after ${home.ms} ms, the room page HTTP ${room.status} after ${room.ms} ms`);
    // The page itself, saying why (no HTTP 500 and Next.js's empty error page).
    assert.equal(home.status, 200, `the room list: HTTP ${home.status}`);
    assert.match(home.html, /data-testid="rooms-error"[^>]*>The rooms cannot be shown: (<!-- -->)?Herald could not be read \(it did not answer in time/);
    assert.equal(room.status, 200, `the room page: HTTP ${room.status}`);
    assert.match(room.html, /This room cannot be shown: (<!-- -->)?Herald could not be read \(it did not answer in time/);
    assert.match(room.html, /<a href="\/">All rooms<\/a>/);
  } finally {
    try {
      process.kill(-next.pid, 'SIGTERM'); // the process group this test started
    } catch {
      // gone
    }
    for (const s of sockets) s.destroy();
    hung.close();
    await Promise.race([new Promise((r) => next.once('exit', r)), sleep(5000)]);
    if (next.exitCode === null && next.signalCode === null) {
      try { process.kill(-next.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
});

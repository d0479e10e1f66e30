// The time limit on the server render's requests to Herald
// (lib/timed-fetch.ts, the fetch of lib/apollo-rsc.ts's HttpLink), against a
// loopback TCP server that accepts connections and never answers: the hung
// Herald that held every page request open for 300 s (node --test; no build).
//
//   node --test examples/nextjs-chat/test/timed-fetch.test.mjs
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { app, transpileApp } from './app-modules.mjs';

let built;
let timed;
let hung;
let hungUrl;
const sockets = new Set();

before(async () => {
  built = transpileApp();
  timed = await built.module('lib/timed-fetch.ts');
  // Herald, hung: accepts, reads, never answers.
  hung = net.createServer((s) => {
    sockets.add(s);
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((r) => hung.listen(0, '127.0.0.1', r));
  hungUrl = `http://127.0.0.1:${hung.address().port}/graphql`;
});

after(() => {
  for (const s of sockets) s.destroy();
  hung?.close();
  built?.remove();
});

const post = { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"query":"{ rooms { nodes { id } } }"}' };

test('the server render reads Herald through the timed fetch, with a limit of seconds', () => {
  assert.equal(timed.HERALD_TIMEOUT_MS, 10_000);
  const rsc = readFileSync(join(app, 'lib', 'apollo-rsc.ts'), 'utf8');
  assert.match(rsc, /new HttpLink\(\{[^}]*fetch: fetchWithTimeout\(HERALD_TIMEOUT_MS\)/, 'lib/apollo-rsc.ts\'s HttpLink uses fetchWithTimeout');
});

test('a request to a Herald that accepts the connection but never answers fails after the limit, saying so', async () => {
  const started = Date.now();
  await assert.rejects(timed.fetchWithTimeout(300)(hungUrl, post), (err) => {
    assert.match(err.message, /Herald did not answer within 0\.3 s/);
    return true;
  });
  const took = Date.now() - started;
  assert.ok(took >= 250 && took < 5000, `failed after ${took} ms`);
});

test('the limit covers the answer\'s body too, and the caller\'s own signal still aborts the request', async () => {
  // Headers at once, then a body that never ends.
  const slow = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write('{"data":');
  });
  await new Promise((r) => slow.listen(0, '127.0.0.1', r));
  try {
    const res = await timed.fetchWithTimeout(300)(`http://127.0.0.1:${slow.address().port}/graphql`, post);
    assert.equal(res.status, 200);
    await assert.rejects(res.text(), /abort|timeout/i);
  } finally {
    slow.closeAllConnections();
    slow.close();
  }
  const mine = new AbortController();
  const p = timed.fetchWithTimeout(60_000)(hungUrl, { ...post, signal: mine.signal });
  setTimeout(() => mine.abort(), 100);
  await assert.rejects(p, (err) => {
    assert.equal(err.name, 'AbortError', `the caller's abort, not a timeout: ${err.message}`);
    return true;
  });
});

test('a request answered in time is passed through untouched', async () => {
  const ok = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"data":{"ok":true}}');
  });
  await new Promise((r) => ok.listen(0, '127.0.0.1', r));
  try {
    const res = await timed.fetchWithTimeout(5000)(`http://127.0.0.1:${ok.address().port}/graphql`, post);
    assert.deepEqual(await res.json(), { data: { ok: true } });
  } finally {
    ok.close();
  }
});

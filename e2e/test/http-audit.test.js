// The GraphQL over HTTP conformance audits of graphql-http (auditServer)
// against replica A's /graphql, as a client that knows nothing of Herald:
// no user header, plain fetch. Every audit must be 'ok', MUST, SHOULD and
// MAY alike, so that a change to media types, status codes or parameter
// handling that costs an audit fails here, one subtest per audit, naming
// the audit, its reason and what the replica answered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auditServer } from 'graphql-http';
import { A, httpURL, failIfProcessLingers } from './lib/herald.js';

failIfProcessLingers('http-audit.test.js');

/**
 * graphql-http 1.23.1 runs 61 audits; fewer than this means the list came
 * back empty or cut, which must not pass for a clean audit.
 */
const MIN_AUDITS = 50;

const clip = (s, n = 500) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** An unread copy of each response, for the report of an audit that read the body it fails on. */
const copies = new WeakMap();

/**
 * fetch, with every request bounded (an audit that hangs fails the run
 * instead of holding it) and its response's body kept in copies.
 */
async function fetchFn(url, init = {}) {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  copies.set(res, res.clone());
  return res;
}

/**
 * What the replica answered to a failed audit: status, content type and the
 * start of the body. The audit may have read the body already (it reports a
 * clone when it checks the body, but the response itself when the body is
 * not JSON), so this reads the copy fetchFn kept then, and reading may
 * still fail.
 */
async function describeResponse(res) {
  if (!res) return 'no response recorded';
  const head = `HTTP ${res.status} ${res.statusText}, content-type ${JSON.stringify(res.headers?.get('content-type'))}`;
  const readable = res.bodyUsed ? copies.get(res) : res;
  if (!readable || readable.bodyUsed) return `${head}, body already read by the audit`;
  let body;
  try {
    body = await readable.text();
  } catch (err) {
    return `${head}, body unreadable: ${err.message}`;
  }
  return `${head}, body: ${clip(body) || '(empty)'}`;
}

test('graphql-http audits of replica A: every GraphQL over HTTP audit passes', { timeout: 30_000 }, async (t) => {
  const url = httpURL(A);
  const results = await auditServer({ url, fetchFn });
  const counts = {};
  for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
  t.diagnostic(`${results.length} audits of ${url}: ${JSON.stringify(counts)}`);
  assert.ok(results.length >= MIN_AUDITS, `auditServer returned ${results.length} audit(s), want at least ${MIN_AUDITS}`);

  for (const r of results) {
    await t.test(`${r.id} ${r.name}`, async () => {
      if (r.status === 'ok') return;
      assert.fail(`audit ${r.id} "${r.name}" is ${r.status}: ${r.reason}; replica A answered ${await describeResponse(r.response)}`);
    });
  }
});

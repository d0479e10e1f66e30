// Shared helpers of the end-to-end tests: the two replicas' addresses, GraphQL
// over HTTP with plain fetch, a WebSocket class that remembers its sockets,
// an inbox of subscription events, and the delivery check every client runs.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

function replica(name) {
  const url = process.env[name];
  if (!url) {
    throw new Error(`${name} is not set: run these tests with the e2e driver (make e2e, or go run ./e2e), which starts two replicas ` +
      'and sets HERALD_A and HERALD_B to their base URLs (e.g. http://127.0.0.1:8080)');
  }
  return url.replace(/\/+$/, '');
}

/** Base URLs of replica A (embeds NATS) and replica B (joins A's NATS). */
export const A = replica('HERALD_A');
export const B = replica('HERALD_B');

/** The GraphQL endpoint of a replica, over HTTP or WebSocket. */
export const httpURL = (base) => `${base}/graphql`;
export const wsURL = (base) => `${base.replace(/^http/, 'ws')}/graphql`;

/** Which replica a base URL is, for messages. */
export const nameOf = (base) => (base === A ? 'replica A' : base === B ? 'replica B' : base);

/** A room name no other test or run uses. */
export function uniqueName(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** A well-formed room ID that names no room. */
export function unknownRoomID() {
  return `rnonexistent${randomBytes(6).toString('hex')}`;
}

const json = (v) => JSON.stringify(v);
const clip = (s, n = 2000) => (s.length > n ? `${s.slice(0, n)}…` : s);

/**
 * Runs a GraphQL operation over HTTP POST with plain fetch and returns the
 * whole response body ({data, errors, extensions}). It throws on a transport
 * failure, a non-JSON answer or an HTTP status other than 200.
 */
export async function gqlRaw(base, query, variables = {}, { user, timeoutMs = 10_000, retryRateLimited = false } = {}) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json' };
  if (user) headers['X-Herald-User'] = user;
  const deadline = Date.now() + timeoutMs;
  let res;
  let body;
  for (;;) {
    try {
      res = await fetch(httpURL(base), {
        method: 'POST',
        headers,
        body: json({ query, variables }),
        signal: AbortSignal.timeout(Math.max(deadline - Date.now(), 1)),
      });
    } catch (err) {
      throw new Error(`POST ${httpURL(base)} failed: ${err.message}${err.cause ? ` (${err.cause.message ?? err.cause})` : ''}`);
    }
    const text = await res.text();
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`POST ${httpURL(base)}: HTTP ${res.status} with a body that is not JSON: ${clip(text)}`);
    }
    // With retryRateLimited, a RATE_LIMITED refusal is sent again after
    // the retryAfter the replica names, as a client should, within
    // timeoutMs in all.
    const retryAfter = body.errors?.[0]?.extensions?.retryAfter;
    if (!retryRateLimited || res.status !== 429 || typeof retryAfter !== 'number' ||
      Date.now() + retryAfter * 1000 >= deadline) break;
    await sleep(Math.ceil(retryAfter * 1000));
  }
  if (res.status !== 200) {
    throw new Error(`POST ${httpURL(base)}: HTTP ${res.status}: ${clip(json(body))}\nquery: ${query}\nvariables: ${json(variables)}`);
  }
  return body;
}

/** Like gqlRaw, but returns data and throws if the response has errors. */
export async function gql(base, query, variables = {}, opts = {}) {
  const body = await gqlRaw(base, query, variables, opts);
  if (body.errors?.length) {
    throw new Error(`GraphQL errors from ${nameOf(base)}: ${json(body.errors)}\nquery: ${query}\nvariables: ${json(variables)}`);
  }
  assert.ok(body.data, `no data from ${nameOf(base)}: ${json(body)}`);
  return body.data;
}

/** Creates a uniquely named room over HTTP and returns {id, name, messageCount}. */
export async function createRoom(base, prefix, user = 'alice') {
  const name = uniqueName(prefix);
  const data = await gql(base, 'mutation($name: String!) { createRoom(name: $name) { id name messageCount } }',
    { name }, { user });
  assert.equal(data.createRoom.name, name);
  assert.equal(data.createRoom.messageCount, 0, 'a new room has no messages');
  return data.createRoom;
}

/**
 * Posts a message over HTTP and returns {id, text, author {name}, room {messageCount}}.
 * A post refused with RATE_LIMITED is sent again (see gqlRaw's
 * retryRateLimited): a test file posts as one user, faster than
 * --mutation-rate allows once nothing paces it. The idempotency key stays
 * the same, so a retry never stores a message twice.
 */
export async function postMessage(base, roomId, text, user = 'bob') {
  const data = await gql(base,
    `mutation($r: ID!, $t: String!, $k: String) {
       postMessage(roomId: $r, text: $t, idempotencyKey: $k) { id text author { name } room { id messageCount } }
     }`,
    { r: roomId, t: text, k: `${text}-${randomBytes(6).toString('hex')}` }, { user, retryRateLimited: true });
  return data.postMessage;
}

/**
 * Rejects with a message naming what timed out if p does not settle within
 * ms. what is a string, or a function called at the timeout to describe it.
 */
export function withTimeout(p, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${typeof what === 'function' ? what() : what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------
// WebSockets that can be checked for leaks.

const sockets = new Set();

/**
 * The ws WebSocket, remembering every socket it opens so a test can check
 * that closing a client closed them all. Pass it as the clients' WebSocket
 * implementation.
 */
export class TrackedWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    sockets.add(this);
    // ws emits 'error' on a refused upgrade; the clients listen through
    // onerror, but keep an extra listener so an unobserved error never
    // crashes the test process.
    this.on('error', () => {});
    // A refused upgrade: keep the status and body for error messages, then
    // fail the socket as ws does without this listener (error, close 1006).
    this.on('unexpected-response', (req, res) => {
      let body = '';
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        this.refusal = `HTTP ${res.statusCode} ${res.statusMessage}: ${body.trim()}`;
        lastRefusal = `${this.url}: ${this.refusal}`;
        this.terminate();
      };
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });
  }
}

let lastRefusal = '';

/** The last refused WebSocket upgrade, as "url: HTTP status: body", or "". */
export const lastUpgradeRefusal = () => lastRefusal;

/** Sockets TrackedWebSocket opened that are not closed. */
export const openSockets = () => [...sockets].filter((s) => s.readyState !== WebSocket.CLOSED);

/** Waits until every tracked socket is closed; fails naming the open ones. */
export async function assertSocketsClosed(ms = 3000) {
  const deadline = Date.now() + ms;
  while (openSockets().length && Date.now() < deadline) await sleep(20);
  const open = openSockets();
  assert.equal(open.length, 0,
    `${open.length} WebSocket(s) still open ${ms} ms after the client was closed: ` +
    open.map((s) => `${s.url} (readyState ${s.readyState}, protocol ${json(s.protocol)})`).join(', '));
}

/**
 * Registers a check that the test process exits by itself once its tests are
 * done: if anything still holds it (a socket, a timer) 5 s later, it names
 * what and exits 1, so a leak fails the file instead of hanging the run.
 */
export function failIfProcessLingers(what) {
  after(() => {
    const timer = setTimeout(() => {
      console.error(`${what}: the test process is still alive 5 s after its tests finished; ` +
        `active resources: ${json(process.getActiveResourcesInfo())}; open WebSockets: ${openSockets().length}`);
      process.exit(1);
    }, 5000);
    timer.unref();
  });
}

/** A readable description of what a WebSocket client reported as an error. */
export function describeError(err) {
  if (err == null) return String(err);
  if (Array.isArray(err)) return `GraphQL errors ${json(err)}`;
  if (err instanceof Error) {
    const extra = err.errors ? ` ${json(err.errors)}` : err.cause ? ` (cause: ${describeError(err.cause)})` : '';
    return `${err.name}: ${err.message}${extra}`;
  }
  // CloseEvent / ErrorEvent from ws
  if (typeof err === 'object' && ('code' in err || 'reason' in err || 'message' in err || 'type' in err)) {
    const refusal = err.target?.refusal;
    if (refusal) return `WebSocket upgrade refused: ${refusal}`;
    const parts = [];
    if (err.type) parts.push(`${err.type} event`);
    if (err.code !== undefined) parts.push(`close code ${err.code}`);
    if (err.reason) parts.push(`reason ${json(String(err.reason))}`);
    if (err.message) parts.push(`message ${json(err.message)}`);
    return parts.join(', ') || json(err);
  }
  return json(err);
}

// ---------------------------------------------------------------------------
// Subscription events.

/**
 * Collects what one subscription delivers, normalized by the test to
 * {text, id, author, messageCount, cursor, errors}, and lets the test wait
 * for a condition. An error or completion of the subscription ends it and
 * wakes waiters with a description of how it ended.
 */
export class Inbox {
  constructor(label) {
    this.label = label;
    this.events = [];
    this.ended = null; // a description once the subscription ended
    this.waiters = new Set();
  }

  push(event) {
    this.events.push({ ...event, at: Date.now() });
    this.wake();
  }

  end(description) {
    if (!this.ended) this.ended = description;
    this.wake();
  }

  wake() {
    for (const w of this.waiters) w();
  }

  /**
   * Waits until pred(events) holds; rejects on timeout or if the subscription
   * ended. what describes the wait: a string, or a function called on failure.
   */
  async waitFor(pred, ms, what) {
    const deadline = Date.now() + ms;
    const describe = () => (typeof what === 'function' ? what() : what);
    for (;;) {
      if (pred(this.events)) return;
      if (this.ended) {
        throw new Error(`${this.label}: the subscription ended (${this.ended}) while waiting for ${describe()}; ` +
          `received so far: ${this.summary()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`${this.label}: timed out after ${ms} ms waiting for ${describe()}; received so far: ${this.summary()}`);
      }
      await new Promise((resolve) => {
        const done = () => { clearTimeout(timer); this.waiters.delete(done); resolve(); };
        const timer = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  summary() {
    if (!this.events.length) return 'nothing';
    return `${this.events.length} event(s): ` + json(this.events.map((e) => e.errors ? { errors: e.errors } : e.text));
  }
}

const isProbe = (e) => typeof e.text === 'string' && e.text.startsWith('probe-');
const isReal = (e) => typeof e.text === 'string' && e.text.startsWith('msg-');

/**
 * Makes sure the subscription is live before the counted messages are sent.
 * A client cannot tell when the server has started a subscription, so this
 * posts probe messages on postBase until the subscriber sees one. Returns how
 * many probes were posted (each one is a message of the room).
 */
export async function primeSubscription(inbox, postBase, roomId, { user = 'bob', ms = 10_000 } = {}) {
  const deadline = Date.now() + ms;
  let posted = 0;
  for (;;) {
    await postMessage(postBase, roomId, `probe-${posted}`, user);
    posted++;
    const left = Math.min(250, deadline - Date.now());
    try {
      await inbox.waitFor((evs) => evs.some(isProbe), Math.max(left, 1), 'a probe message');
      return posted;
    } catch (err) {
      if (inbox.ended || Date.now() >= deadline) {
        throw new Error(`${inbox.label}: the subscription never delivered any of the ${posted} probe message(s) ` +
          `posted on ${nameOf(postBase)} within ${ms} ms. ${err.message}`);
      }
    }
  }
}

/** Describes how the received texts differ from the expected ones. */
export function describeDifference(got, want) {
  const problems = [];
  const count = new Map();
  for (const t of got) count.set(t, (count.get(t) ?? 0) + 1);
  const missing = want.map((t, i) => [t, i]).filter(([t]) => !count.has(t)).map(([, i]) => i);
  if (missing.length) problems.push(`missing message index(es) ${json(missing)}`);
  const dups = [...count].filter(([, c]) => c > 1).map(([t, c]) => `${t} ×${c}`);
  if (dups.length) problems.push(`delivered more than once: ${dups.join(', ')}`);
  const wanted = new Set(want);
  const extra = got.filter((t) => !wanted.has(t));
  if (extra.length) problems.push(`unexpected: ${json(extra)}`);
  const order = [...new Set(got.filter((t) => wanted.has(t)))];
  const inOrder = want.filter((t) => count.has(t));
  const firstOut = order.findIndex((t, i) => t !== inOrder[i]);
  if (firstOut >= 0) problems.push(`out of order from position ${firstOut}: got ${json(order)}`);
  return problems.length ? problems.join('; ') : 'no difference';
}

/**
 * The check every client runs: with a subscription to messagePosted(roomId)
 * feeding inbox, posts n messages on postBase (the other replica) and asserts
 * the subscriber receives each exactly once, in order, with a non-empty
 * extensions.cursor and a room.messageCount that includes that message.
 * baseCount is the room's message count before the probes.
 */
export async function checkDelivery(t, { inbox, postBase, roomId, baseCount, n = 20, user = 'bob' }) {
  const probes = await primeSubscription(inbox, postBase, roomId, { user });
  const want = Array.from({ length: n }, (_, i) => `msg-${i}`);
  const posted = [];
  for (const text of want) posted.push(await postMessage(postBase, roomId, text, user));
  const firstCount = baseCount + probes + 1;
  posted.forEach((m, i) => assert.equal(m.room.messageCount, firstCount + i,
    `the postMessage answer for ${m.text} on ${nameOf(postBase)} counts ${m.room.messageCount} messages, want ${firstCount + i}`));

  await inbox.waitFor((evs) => want.every((w) => evs.some((e) => e.text === w)), 10_000,
    () => `all ${n} messages posted on ${nameOf(postBase)} (${describeDifference(inbox.events.filter(isReal).map((e) => e.text), want)})`);
  await awaitFence(inbox, postBase, roomId, user);

  const errored = inbox.events.filter((e) => e.errors?.length);
  assert.equal(errored.length, 0, `${inbox.label}: events with errors: ${json(errored)}`);
  const firstReal = inbox.events.findIndex(isReal);
  const lateProbes = inbox.events.slice(firstReal).filter(isProbe);
  assert.equal(lateProbes.length, 0,
    `${inbox.label}: probe messages, posted before every counted message, arrived after one: ${json(lateProbes.map((e) => e.text))}`);
  const real = inbox.events.filter(isReal);
  const got = real.map((e) => e.text);
  assert.deepEqual(got, want, `${inbox.label}: messages not received exactly once and in order: ${describeDifference(got, want)}`);

  real.forEach((e, i) => {
    assert.equal(e.id, posted[i].id, `${inbox.label}: message ${i} has id ${e.id}, but postMessage returned ${posted[i].id}`);
    assert.equal(e.author, user, `${inbox.label}: message ${i} has author ${json(e.author)}, want ${user}`);
    assert.ok(typeof e.cursor === 'string' && e.cursor.length > 0,
      `${inbox.label}: message ${i} (${e.text}) has no extensions.cursor: ${json(e.cursor)}`);
  });
  const cursors = new Set(real.map((e) => e.cursor));
  assert.equal(cursors.size, real.length, `${inbox.label}: cursors repeat: ${json(real.map((e) => e.cursor))}`);

  // room { messageCount } of each event includes that message. It is
  // resolved when the event is delivered, so it may already count later
  // messages; it must never count fewer, nor go down.
  const counts = real.map((e) => e.messageCount);
  const exact = want.map((_, i) => firstCount + i);
  counts.forEach((c, i) => {
    assert.ok(Number.isInteger(c) && c >= exact[i] && c <= firstCount + n - 1,
      `${inbox.label}: message ${i} has room.messageCount ${c}, want ${exact[i]} (counts: ${json(counts)}, want ${json(exact)})`);
    if (i > 0) assert.ok(c >= counts[i - 1], `${inbox.label}: room.messageCount went down at message ${i}: ${json(counts)}`);
  });
  if (json(counts) !== json(exact)) {
    t.diagnostic(`room.messageCount ran ahead of some messages (resolved at delivery): ${json(counts)}, posting order ${json(exact)}`);
  }
  t.diagnostic(`${inbox.label}: ${n} messages posted on ${nameOf(postBase)} arrived once each and in order ` +
    `(after ${probes} probe message(s)); the last came ${real.at(-1).at - real[0].at} ms after the first`);
  return { probes, posted, events: real };
}

let fences = 0;

/**
 * Posts a fence message to the room on postBase and waits until the inbox
 * has it. A subscription delivers a room's messages in the room's order, so
 * once the fence is in, whatever was still to come before it (a duplicate,
 * a message that should not be there) is in too. Waiting a fixed while
 * instead passes whenever the server is merely slow.
 */
export async function awaitFence(inbox, postBase, roomId, user = 'bob') {
  const text = `fence-${fences++}`;
  await postMessage(postBase, roomId, text, user);
  await inbox.waitFor((evs) => evs.some((e) => e.text === text), 10_000, `the fence message ${text}`);
}

/**
 * Waits until the inbox has every message of want (msg-*), then for a fence
 * posted to roomId on postBase (see awaitFence), and asserts it got exactly
 * want, once each and in order, each with a cursor of its own, and no
 * error. Returns the events.
 */
export async function assertExactly(inbox, want, { postBase, roomId }) {
  const texts = () => inbox.events.filter(isReal).map((e) => e.text);
  await inbox.waitFor((evs) => want.every((w) => evs.some((e) => e.text === w)), 10_000,
    () => `all ${want.length} messages (${describeDifference(texts(), want)})`);
  await awaitFence(inbox, postBase, roomId);
  const errored = inbox.events.filter((e) => e.errors?.length);
  assert.equal(errored.length, 0, `${inbox.label}: events with errors: ${json(errored)}`);
  const got = texts();
  assert.deepEqual(got, want, `${inbox.label}: messages not received exactly once and in order: ${describeDifference(got, want)}`);
  const real = inbox.events.filter(isReal);
  const cursors = real.map((e) => e.cursor);
  assert.ok(cursors.every((c) => typeof c === 'string' && c.length > 0), `${inbox.label}: a message without a cursor: ${json(cursors)}`);
  assert.equal(new Set(cursors).size, cursors.length, `${inbox.label}: cursors repeat: ${json(cursors)}`);
  return real;
}

/**
 * Runs a single-result operation (query or mutation) over a client with the
 * graphql-ws style subscribe(payload, sink) API (graphql-ws, graphql-sse);
 * resolves with every result once the operation completes.
 */
export function once(label, client, payload, ms = 10_000) {
  const results = [];
  const what = payload.query.trim().split('\n')[0];
  const done = new Promise((resolve, reject) => {
    client.subscribe(payload, {
      next: (r) => results.push(r),
      error: (err) => reject(new Error(`${label}: ${what} failed: ${describeError(err)}`)),
      complete: () => resolve(results),
    });
  });
  return withTimeout(done, ms, `${label}: no complete for ${what}`);
}

/** Text of the messagePosted subscription used by every client. */
export const MESSAGE_POSTED = `subscription OnMessagePosted($roomId: ID!) {
  messagePosted(roomId: $roomId) { id text version author { name } room { id messageCount } }
}`;

/** Normalizes a messagePosted result ({data, errors, extensions}) for an Inbox. */
export function messageEvent(result) {
  const m = result?.data?.messagePosted;
  return {
    text: m?.text,
    id: m?.id,
    author: m?.author?.name,
    messageCount: m?.room?.messageCount,
    cursor: result?.extensions?.cursor,
    errors: result?.errors,
  };
}

// Helpers of the browser tests: Herald over HTTP, Chromium with
// playwright-core, and waits that are always bounded.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests with examples/nextjs-chat/e2e/run.sh`);
  return v;
};
export const APP = need('APP_URL');
export const HERALD = need('HERALD_URL'); // nginx's /graphql
export const HERALD_A = need('HERALD_A');
export const HERALD_B = need('HERALD_B');
export const ARTIFACTS = need('ARTIFACTS');
/** The same build started with the development token route, against a --auth jwt replica. */
export const JWT_APP = need('JWT_APP_URL');
export const HERALD_JWT = need('HERALD_JWT_URL');
/** The jwt replica's HS256 secret (the token route's too): the tests sign tokens of their own lifetime. */
const JWT_SECRET = need('HERALD_JWT_TEST_SECRET');

/** An HS256 token for the jwt replica, as the token route signs them, that lives lifetimeS seconds. */
export function signToken(user, lifetimeS) {
  const b64url = (x) => Buffer.from(x).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub: user, name: user, iat: now, exp: now + lifetimeS }))}`;
  return { token: `${unsigned}.${createHmac('sha256', JWT_SECRET).update(unsigned).digest('base64url')}`, expiresAt: (now + lifetimeS) * 1000, expiresIn: lifetimeS };
}

/** Debian's Chromium; never a downloaded browser. */
export const CHROMIUM = '/usr/bin/chromium';
/** Every wait on a page or on Herald is bounded by this. */
export const WAIT_MS = 20_000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; fails with what() after ms. */
export async function until(fn, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? await what(last) : what}`);
    await sleep(50);
  }
}

/** A GraphQL request over HTTP (through nginx unless url says otherwise), as user. */
export async function gql(query, variables = {}, { user, token, url = HERALD } = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      ...(user ? { 'X-Herald-User': user } : {}),
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await res.json();
  if (body.errors?.length) throw new Error(`${query.slice(0, 60)}…: ${JSON.stringify(body.errors)}`);
  return body.data;
}

let rooms = 0;
export async function createRoom(prefix) {
  const name = `${prefix}-${process.pid}-${Date.now().toString(36)}-${rooms++}`;
  const { createRoom: room } = await gql('mutation($n: String!) { createRoom(name: $n) { id name } }', { n: name }, { user: 'setup' });
  return room;
}

export async function post(roomId, text, user) {
  const { postMessage } = await gql('mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }',
    { r: roomId, t: text }, { user });
  return postMessage.id;
}

/** The room's messages in posting order, as Herald has them (at most 100). */
export async function serverMessages(roomId) {
  const { room } = await gql('query($r: ID!) { room(id: $r) { messages(last: 100) { nodes { id text } } } }', { r: roomId });
  return room.messages.nodes;
}

/** Replica B's open WebSockets and event streams, from its own /metrics. */
export async function openConnectionsOn(base) {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) })).text();
  let n = 0;
  for (const line of text.split('\n')) {
    const m = /^herald_(?:ws_sockets|http_streams)\{[^}]*\} (\d+)/.exec(line);
    if (m) n += Number(m[1]);
  }
  return n;
}

/** Open WebSockets and event streams on each replica. */
export async function connectionsByReplica() {
  const [A, B] = await Promise.all([openConnectionsOn(HERALD_A), openConnectionsOn(HERALD_B)]);
  return { A, B };
}

/**
 * Opens pages at url, each with newPage() (a user: open(name), or another
 * tab of one), until one's socket is on replica want ('A' or 'B'; either
 * when null), seen as one more socket on that replica's /metrics and none
 * more on the other's. nginx gives each new socket to the replica with the
 * fewest (least_conn), so this takes one or two pages. Returns that page's
 * user, the replica, and every page opened (the others are the same
 * user's too, and stay open).
 */
export async function openOnReplica(newPage, url, want = null, tries = 6) {
  const all = [];
  for (let i = 0; i < tries; i++) {
    const before = await connectionsByReplica();
    const u = await newPage();
    all.push(u);
    await u.page.goto(url);
    await waitConnected(u);
    const after = await connectionsByReplica();
    const dA = after.A - before.A;
    const dB = after.B - before.B;
    const on = dA === 1 && dB === 0 ? 'A' : dB === 1 && dA === 0 ? 'B' : null;
    if (on && (want === null || on === want)) return { u, replica: on, all };
  }
  assert.fail(`none of ${all[0]?.name}'s ${tries} pages got its socket on replica ${want ?? 'A or B'} (as /metrics counts them)`);
}

/** Describes how got differs from want (lists of ids or texts). */
export function difference(got, want) {
  const seen = new Map();
  for (const x of got) seen.set(x, (seen.get(x) ?? 0) + 1);
  const missing = want.filter((x) => !seen.has(x));
  const twice = [...seen].filter(([, n]) => n > 1).map(([x, n]) => `${x} ×${n}`);
  const extra = got.filter((x) => !want.includes(x));
  return `missing ${JSON.stringify(missing)}; more than once ${JSON.stringify(twice)}; unexpected ${JSON.stringify(extra)}` +
    `; got ${got.length}, want ${want.length}`;
}

/**
 * Chromium, headless, with a fresh profile and nothing that talks to the
 * network by itself. Each test gets its own browser; contexts are users.
 */
export async function launch() {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch (err) {
    assert.fail(`Chromium is not installed at ${CHROMIUM} (${err.code}): apt-get install -y chromium (.ci/run installs it)`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    timeout: WAIT_MS,
  });
  return browser;
}

/**
 * A user: a browser context whose cookie names the user (what the name
 * picker sets), with one page that records the connection states it shows
 * and every problem it reports.
 */
export async function openUser(browser, user, { blockWebSocket = false, proxyWebSocket = false, app = APP } = {}) {
  const context = await browser.newContext();
  if (user) await context.addCookies([{ name: 'herald_user', value: user, url: app }]);
  const problems = [];
  const warnings = []; // console warnings (the transport says why it falls back to SSE)
  const sockets = []; // WebSocket URLs the page opened (and got through)
  if (blockWebSocket) {
    // As a proxy that does not let WebSockets through: every upgrade fails,
    // at once, or (blockWebSocket: ms) after leaving it unanswered that long,
    // so that the page's subscriptions are waiting for it when it fails.
    const after = typeof blockWebSocket === 'number' ? blockWebSocket : 0;
    await context.routeWebSocket(() => true, (ws) => {
      const refuse = () => ws.close({ code: 1011, reason: 'blocked by the test' }).catch(() => {});
      if (after > 0) setTimeout(refuse, after);
      else refuse();
    });
  }
  let network = null;
  if (proxyWebSocket) {
    // The page's sockets go through the test, which can cut them and keep
    // the page offline (a network that drops) while it tries to reconnect.
    const open = new Set();
    network = {
      held: false,
      /** Every subscribe message the page sent, in order: { operationName, variables }. */
      subscribes: [],
      /**
       * Closes every socket of the page (1012 to the page: a reconnect, as a
       * restarting server says; the connection to the server is the page's
       * own, whose close() takes 1000 or 3000-4999 only) and refuses new
       * ones until restore().
       */
      async cut() {
        network.held = true;
        const routes = [...open];
        open.clear();
        await Promise.all(routes.flatMap(({ page, server }) => [
          page.close({ code: 1012, reason: 'cut by the test' }).catch(() => {}),
          server.close({ code: 1000, reason: 'cut by the test' }).catch(() => {}),
        ]));
      },
      restore() { network.held = false; },
    };
    await context.routeWebSocket(() => true, (ws) => {
      if (network.held) {
        ws.close({ code: 1012, reason: 'offline (the test)' }).catch(() => {});
        return;
      }
      const server = ws.connectToServer(); // the server's messages go to the page as they are
      // The page's are too, and each subscribe message is kept (subscribes).
      ws.onMessage((message) => {
        const sub = subscribeOf(message);
        if (sub) network.subscribes.push(sub);
        server.send(message);
      });
      open.add({ page: ws, server });
    });
  }
  // Every state the connection element shows, in order (deduplicated).
  await context.addInitScript(() => {
    window.__states = [];
    const record = () => {
      const el = document.querySelector('[data-testid="connection"]');
      const s = el && `${el.getAttribute('data-state')}/${el.getAttribute('data-transport')}`;
      if (s && window.__states[window.__states.length - 1] !== s) window.__states.push(s);
    };
    new MutationObserver(record).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-transport'] });
    // Every "who is here" state the page shows, in order (deduplicated):
    // its count and the users it lists.
    window.__presence = [];
    const recordPresence = () => {
      const el = document.querySelector('[data-testid="presence"]');
      if (!el || !el.hasAttribute('data-count')) return;
      const p = {
        count: Number(el.getAttribute('data-count')),
        users: [...el.querySelectorAll('[data-testid="presence-user"]')].map((li) => li.getAttribute('data-user')),
      };
      const last = window.__presence[window.__presence.length - 1];
      if (!last || last.count !== p.count || last.users.join() !== p.users.join()) window.__presence.push(p);
    };
    new MutationObserver(recordPresence).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-count', 'data-user'] });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    if (m.type() === 'warning') warnings.push(m.text());
  });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`); });
  page.on('websocket', (ws) => sockets.push(ws.url()));
  return { user, context, page, problems, warnings, sockets, network, name: user ?? 'anonymous' };
}

/** The ids and texts of the messages a page shows, in order (optimistic ones included). */
export async function shown(page) {
  return page.$$eval('[data-testid="message"]', (els) => els.map((el) => ({
    id: el.getAttribute('data-id'),
    text: el.querySelector('[data-testid="message-text"]')?.textContent ?? '',
    pending: el.getAttribute('data-pending') === 'true',
  })));
}

/** Waits until the page shows a message with text and nothing pending. */
export async function waitForText(u, text, ms = WAIT_MS) {
  await until(async () => {
    const list = await shown(u.page);
    return list.some((m) => m.text === text) && !list.some((m) => m.pending);
  }, async () => `${u.name}'s page to show "${text}"; it shows ${JSON.stringify((await shown(u.page).catch(() => [])).map((m) => m.text).slice(-10))} (last 10)`, ms);
}

/** Waits until the page shows every one of texts (and perhaps more), nothing pending. */
export async function waitForTexts(u, texts, ms = WAIT_MS) {
  await until(async () => {
    const list = await shown(u.page);
    const have = new Set(list.map((m) => m.text));
    return texts.every((x) => have.has(x)) && !list.some((m) => m.pending);
  }, async () => {
    const have = new Set((await shown(u.page).catch(() => [])).map((m) => m.text));
    return `${u.name}'s page to show ${texts.length} messages; missing ${JSON.stringify(texts.filter((x) => !have.has(x)))}`;
  }, ms);
}

/**
 * What a page's "who is here" shows: the count (null before the first
 * event), the users listed (by id, in order), whether it is faded as out
 * of date, and the typing indicator's text.
 */
export async function presenceOf(page) {
  return page.evaluate(() => {
    const el = document.querySelector('[data-testid="presence"]');
    if (!el) return null;
    return {
      count: el.hasAttribute('data-count') ? Number(el.getAttribute('data-count')) : null,
      kind: el.getAttribute('data-kind'),
      users: [...el.querySelectorAll('[data-testid="presence-user"]')].map((li) => li.getAttribute('data-user')),
      stale: el.classList.contains('stale'),
      typing: document.querySelector('[data-testid="typing"]')?.textContent ?? '',
    };
  });
}

/** Every presence state the page showed, in order: [{ count, users }]. */
export const presenceSeen = (page) => page.evaluate(() => window.__presence);

/** Waits until the page lists exactly users (each once) with that count. */
export async function waitPresence(u, users, ms = WAIT_MS) {
  const want = [...users].sort();
  await until(async () => {
    const p = await presenceOf(u.page);
    return p && p.count === want.length && JSON.stringify([...p.users].sort()) === JSON.stringify(want);
  }, async () => `${u.name}'s page to list ${JSON.stringify(want)} as here (count ${want.length}); it shows ${JSON.stringify(await presenceOf(u.page).catch((e) => e.message))}`, ms);
}

/** Waits until the page's typing indicator says text ('' : nobody typing). */
export async function waitTyping(u, text, ms = WAIT_MS) {
  await until(async () => (await presenceOf(u.page))?.typing === text,
    async () => `${u.name}'s typing indicator to say ${JSON.stringify(text)}; it says ${JSON.stringify((await presenceOf(u.page).catch(() => null))?.typing)}`, ms);
}

export const connectionState = (page) => page.locator('[data-testid="connection"]').getAttribute('data-state');
export const transportOf = (page) => page.locator('[data-testid="connection"]').getAttribute('data-transport');
export const statesSeen = (page) => page.evaluate(() => window.__states);

export async function waitConnected(u, ms = WAIT_MS) {
  await until(async () => (await connectionState(u.page)) === 'connected',
    async () => `${u.name}'s connection to be "connected"; it is ${await connectionState(u.page).catch(() => '?')}`, ms);
}

/**
 * Types text into the composer and submits it, as a person would: with
 * Enter, or with the submit button. (Enter does not depend on where the
 * button is: while messages arrive the list grows and moves the composer,
 * and a click may land where the button was a frame earlier.)
 */
export async function send(u, text, { button = false } = {}) {
  const input = u.page.locator('form[aria-label="composer"] input[name="text"]');
  await input.fill(text);
  if (button) await u.page.locator('form[aria-label="composer"] button[type="submit"]').click();
  else await input.press('Enter');
}

/**
 * A graphql-ws subscribe message the page sent, as { operationName, variables }
 * (the operation's name read from its document if the message names none);
 * null for any other message.
 */
export function subscribeOf(message) {
  if (typeof message !== 'string' || !/"type":"subscribe"/.test(message)) return null;
  const { payload = {} } = JSON.parse(message);
  const operationName = payload.operationName ?? /\b(?:subscription|query|mutation)\s+(\w+)/.exec(payload.query ?? '')?.[1] ?? null;
  return { operationName, variables: payload.variables ?? {} };
}

/**
 * Watches a page's subscribe messages of the operation named (RoomEvents,
 * RoomCreated) on its sockets, and keeps each one's variables (subscribes);
 * with hold, it holds them (the socket is acknowledged and the page's other
 * subscriptions go on) until release() is called. Every other message is
 * passed through as it is. held() is how many were held.
 */
export async function watchSubscribes(u, operationName, { hold = false } = {}) {
  let held = 0;
  let release = null;
  const released = hold ? new Promise((resolve) => { release = resolve; }) : null;
  const subscribes = [];
  await u.context.routeWebSocket(() => true, (ws) => {
    const server = ws.connectToServer(); // the server's messages go to the page as they are
    ws.onMessage(async (message) => {
      const sub = subscribeOf(message);
      if (sub?.operationName === operationName) {
        subscribes.push(sub.variables);
        if (released) {
          held++;
          await released;
        }
      }
      server.send(message);
    });
  });
  return { held: () => held, release: release ?? (() => {}), subscribes };
}

/**
 * The resumeCursor values the server-rendered HTML carries (the preloaded
 * query's result, streamed into the page), each once, in order.
 */
export function renderedResumeCursors(html) {
  return [...new Set([...html.matchAll(/resumeCursor\\*"\s*:\s*\\*"([A-Za-z0-9_-]+)/g)].map((m) => m[1]))];
}

/** What a Herald cursor says (it is opaque to the app; the tests look): { version, seq, tag }. */
export function decodeCursor(cursor) {
  const [version, epoch, seq, tag] = Buffer.from(cursor, 'base64url').toString().split(':');
  return { version, epoch, seq: parseInt(seq, 36), tag: tag ?? null };
}

/**
 * Records every GraphQL request the page sends Herald over HTTP (through
 * nginx) as { operationName, kind } (kind: query, mutation or subscription,
 * from the document), and lets it through.
 */
export async function recordHttpOperations(u) {
  const ops = [];
  await u.context.route((url) => url.href === HERALD, (route) => {
    try {
      const body = JSON.parse(route.request().postData() ?? '{}');
      const m = /^\s*(query|mutation|subscription)\b\s*(\w+)?/.exec(body.query ?? '');
      ops.push({ operationName: body.operationName ?? m?.[2] ?? null, kind: m?.[1] ?? (body.query ? 'query' : null) });
    } catch {
      ops.push({ operationName: null, kind: null });
    }
    return route.fallback();
  });
  return ops;
}

/**
 * Runs body with the users it opens; when it throws, every page is
 * screenshotted into ARTIFACTS (printed) before the error goes on.
 */
export async function withScreenshots(t, body) {
  const users = [];
  const browser = await launch();
  try {
    await body({ browser, users, open: async (...args) => { const u = await openUser(browser, ...args); users.push(u); return u; } });
  } catch (err) {
    const slug = t.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
    for (const [i, u] of users.entries()) {
      const file = join(ARTIFACTS, `${slug}-${i}-${u.name}.png`);
      try {
        await u.page.screenshot({ path: file, fullPage: true, timeout: 5000 });
        console.error(`screenshot of ${u.name}'s page at the failing step: ${file}`);
      } catch (e) {
        console.error(`no screenshot of ${u.name}'s page: ${e.message}`);
      }
      err.message += `\n${u.name}: problems ${JSON.stringify(u.problems)}; connection states ${JSON.stringify(await statesSeen(u.page).catch(() => '?'))}` +
        `; presence shown ${JSON.stringify(await presenceSeen(u.page).catch(() => '?'))}`;
    }
    throw err;
  } finally {
    await Promise.race([browser.close(), sleep(10_000)]);
  }
}


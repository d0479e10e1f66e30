// Test helpers: a real Herald process, GraphQL over HTTP, HS256 tokens, a
// WebSocket class the tests can cut off and hold offline, and an inbox to
// wait on. Every wait has a deadline; every process started is stopped by
// its child handle (and recorded in $HERALD_JS_PIDS for run-tests.sh).
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket, { WebSocketServer } from 'ws';
import { createHeraldClient } from '@heraldhq/client';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../../..');

if (!existsSync(join(here, '../../dist/index.js'))) {
  throw new Error('clients/js/dist is missing: run `npm run build` first (run-tests.sh does)');
}

const children = new Set();
// Should the test process end with a Herald still running (a failed
// assertion before a stop), kill it rather than leave it behind.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

let builtBin = null;
/** The herald binary: $HERALD_BIN (run-tests.sh builds it), or one built now into a temporary directory. */
function heraldBin() {
  if (process.env.HERALD_BIN) return process.env.HERALD_BIN;
  if (builtBin) return builtBin;
  const dir = mkdtempSync(join(tmpdir(), 'herald-js-bin-'));
  const bin = join(dir, 'herald');
  const go = process.env.GO || 'go';
  const r = spawnSync(go, ['build', '-o', bin, './cmd/herald'], { cwd: repoRoot, stdio: 'inherit', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${go} build ./cmd/herald failed (${r.error?.message ?? `exit ${r.status}`})`);
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  builtBin = bin;
  return bin;
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

const LOG_KEEP = 20_000;

/**
 * One Herald process with embedded NATS, on a loopback port and data
 * directory it keeps across restarts. flags: extra command-line flags.
 */
export class Herald {
  static async start(flags = []) {
    const h = new Herald(flags, await freePort());
    await h.start();
    return h;
  }

  constructor(flags, port) {
    this.flags = flags;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.url = `${this.base}/graphql`;
    this.wsURL = `ws://127.0.0.1:${port}/graphql`;
    // Under run-tests.sh's own directory when it runs the tests, so that
    // even a run it had to stop leaves nothing behind.
    this.dataDir = mkdtempSync(join(process.env.HERALD_JS_TMP || tmpdir(), 'herald-js-data-'));
    this.child = null;
    this.exited = null;
    this.output = '';
  }

  /** Starts the process and waits (at most 20 s) until /readyz answers 200. */
  async start() {
    if (this.child) throw new Error('herald is already running');
    // Only the flags configure it: no HERALD_* variable of the caller's.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_')));
    const child = spawn(heraldBin(), [
      '--addr', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir,
      '--drain-timeout', '0s', '--mutation-rate', '0', '--log-level', 'warn', ...this.flags,
    ], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    // A binary that cannot be started emits 'error' and never 'exit'.
    await new Promise((ok, fail) => {
      child.once('spawn', ok);
      child.once('error', (err) => fail(new Error(`cannot start ${heraldBin()}: ${err.message}`)));
    });
    this.child = child;
    children.add(child);
    const pidFile = process.env.HERALD_JS_PIDS ? join(process.env.HERALD_JS_PIDS, String(child.pid)) : null;
    if (pidFile) writeFileSync(pidFile, 'herald');
    const keep = (chunk) => { this.output = (this.output + chunk).slice(-LOG_KEEP); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.exited = new Promise((ok) => {
      child.once('exit', (code, signal) => {
        children.delete(child);
        if (pidFile) rmSync(pidFile, { force: true });
        if (this.child === child) this.child = null;
        ok(signal ? `signal ${signal}` : `exit ${code}`);
      });
    });
    const deadline = Date.now() + 20_000;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (!this.child) throw new Error(`herald exited before it was ready (${await this.exited})${this.logTail()}`);
      try {
        const res = await fetch(`${this.base}/readyz`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = err.message;
      }
      await sleep(50); // polling /readyz, bounded by the deadline
    }
    throw new Error(`herald was not ready within 20 s; /readyz: ${last}${this.logTail()}`);
  }

  /** SIGTERM (a drain), then SIGKILL if it is still running after 10 s; resolves once it has exited (or 5 s after SIGKILL). */
  async stop() {
    const child = this.child;
    if (!child) return 'not running';
    child.kill('SIGTERM');
    const how = await within(this.exited, 10_000);
    if (how !== 'late') return how;
    child.kill('SIGKILL');
    return `killed after 10 s (${await within(this.exited, 5000)})`;
  }

  /** Stops the process and removes its data directory. */
  async close() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  logTail() {
    return `\n----- herald log (last ${LOG_KEEP} characters) -----\n${this.output}\n----- end -----`;
  }
}

/** p's value, or 'late' if it has not settled within ms. */
async function within(p, ms) {
  let timer;
  const late = new Promise((ok) => { timer = setTimeout(ok, ms, 'late'); });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * POSTs a GraphQL operation and returns data; throws on errors. auth:
 * { user } (dev mode) or { token } (jwt mode).
 */
export async function gql(url, query, variables = {}, { user, token } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (user) headers['X-Herald-User'] = user;
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, {
    method: 'POST', headers, body: JSON.stringify({ query, variables }), signal: AbortSignal.timeout(10_000),
  });
  const body = await res.json();
  if (res.status !== 200 || body.errors?.length) {
    throw new Error(`POST ${url}: HTTP ${res.status}: ${JSON.stringify(body)}\nquery: ${query}`);
  }
  return body.data;
}

export async function createRoom(url, auth) {
  const name = `room-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const data = await gql(url, 'mutation($n: String!) { createRoom(name: $n) { id } }', { n: name }, auth);
  return data.createRoom.id;
}

/** Posts a message; returns {id, text, cursor}. */
export async function post(url, roomId, text, auth) {
  const data = await gql(url,
    'mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id text cursor } }',
    { r: roomId, t: text }, auth);
  return data.postMessage;
}

/** An HS256 JSON Web Token for `--auth jwt --jwt-secret secret`. */
export function signJWT(secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/**
 * A WebSocket class (ws) for the client under test that records the frames
 * the client sends, can cut off every open socket at once (drop), and can
 * hold the client offline: while offline, new sockets go to a loopback
 * server that closes every connection, so reconnects fail until online.
 */
export async function controllableSockets() {
  const refuser = net.createServer((s) => s.destroy());
  await new Promise((ok) => refuser.listen(0, '127.0.0.1', ok));
  const refuseURL = `ws://127.0.0.1:${refuser.address().port}/graphql`;
  const state = { offline: false, open: new Set(), sent: [], attempts: 0, beforeSend: null };
  class ControlledWebSocket extends WebSocket {
    constructor(url, ...rest) {
      super(state.offline ? refuseURL : url, ...rest);
      state.attempts++;
      this.on('error', () => {}); // reported through onerror to graphql-ws
      state.open.add(this);
      this.on('close', () => state.open.delete(this));
    }

    send(data, ...rest) {
      let frame;
      try {
        frame = JSON.parse(String(data));
      } catch {
        frame = String(data);
      }
      state.sent.push(frame);
      state.beforeSend?.(frame);
      return super.send(data, ...rest);
    }
  }
  return {
    WebSocket: ControlledWebSocket,
    /** Every frame the client sent, parsed. */
    sent: state.sent,
    /** The `subscribe` frames sent, in order. */
    subscribes: () => state.sent.filter((m) => m?.type === 'subscribe'),
    setOffline(v) { state.offline = v; },
    /** Called with each frame the client sends (parsed), just before it goes out. */
    set beforeSend(fn) { state.beforeSend = fn; },
    /** How many sockets the client has created. */
    get attempts() { return state.attempts; },
    /** The client's sockets that have not closed yet. */
    open: state.open,
    /** Cuts off every open socket, as a dropped connection does (no close frame). */
    drop() { for (const s of state.open) s.terminate(); },
    async close() {
      for (const s of state.open) s.terminate();
      await new Promise((ok) => refuser.close(ok));
    },
  };
}

/**
 * A TCP proxy on 127.0.0.1 in front of targetPort, forwarding both ways
 * (each chunk delay ms late, if given). blackHole() makes every connection
 * open now a black hole, as a NAT entry that timed out or a network that
 * went away: nothing more is forwarded in either direction and nothing is
 * closed, not even when either end closes; connections made afterwards
 * forward as before (unless blackHoleNew is set). muteReplies() and cut()
 * lose a connection's answers and then the connection.
 */
export async function tcpProxy(targetPort, { delay = 0 } = {}) {
  const conns = new Set();
  let accepted = 0;
  const forward = (c, from, to) => {
    from.on('data', (chunk) => {
      if (c.dead || (c.muted && from === c.up)) return;
      if (c.held) return c.held.push([to, chunk]);
      if (!delay) return to.write(chunk);
      setTimeout(() => { if (!c.dead && !to.destroyed) to.write(chunk); }, delay);
    });
    from.on('end', () => { if (!c.dead) setTimeout(() => { if (!c.dead) to.end(); }, delay); });
    from.on('close', () => { if (!c.dead) setTimeout(() => { if (!c.dead) to.destroy(); }, delay); });
  };
  let holeNew = false;
  const server = net.createServer({ allowHalfOpen: true }, (down) => {
    accepted++;
    if (holeNew) {
      // Accepted, and then nothing: the upgrade request goes nowhere.
      const c = { down, up: null, dead: true };
      conns.add(c);
      down.on('error', () => {});
      return;
    }
    const up = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
    const c = { down, up, dead: false };
    conns.add(c);
    for (const s of [down, up]) s.on('error', () => {});
    down.on('close', () => { if (up.destroyed) conns.delete(c); });
    up.on('close', () => { if (down.destroyed) conns.delete(c); });
    forward(c, down, up);
    forward(c, up, down);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  return {
    url: `ws://127.0.0.1:${port}/graphql`,
    /** Connections accepted so far. */
    get accepted() { return accepted; },
    blackHole() { for (const c of conns) c.dead = true; },
    /**
     * From now on the connections open now lose everything the server sends
     * (what the client sends still reaches it): a connection whose answers
     * are lost on the way, until cut() ends it.
     */
    muteReplies() { for (const c of conns) c.muted = true; },
    /** Drops every connection open now, both ends at once, as a network that fails does. */
    cut() {
      for (const c of conns) { c.dead = true; c.down.destroy(); c.up?.destroy(); conns.delete(c); }
    },
    /** Holds back what the connections open now carry, both ways, until release(): a black hole that later lifts. */
    stall() { for (const c of conns) c.held ??= []; },
    /** Delivers what stall() held back, in order, and forwards as before. */
    release() {
      for (const c of conns) {
        const held = c.held ?? [];
        c.held = null;
        for (const [to, chunk] of held) if (!to.destroyed) to.write(chunk);
      }
    },
    /** true: connections made from now on are black holes from the start (until set to false). */
    set blackHoleNew(v) { holeNew = v; },
    async close() {
      for (const c of conns) { c.dead = true; c.down.destroy(); c.up?.destroy(); }
      await new Promise((ok) => server.close(ok));
    },
  };
}

/** A quick retryWait for tests: 20–60 ms. */
export const quickRetry = () => sleep(20 + Math.random() * 40);

/**
 * A client of the Herald on targetPort as user, through a tcpProxy, on
 * controllableSockets the test records: { proxy, sockets, seen, client },
 * where seen.connected holds the time of each acknowledged connect and
 * seen.closed each close event's { code, reason, at }. All three are
 * closed after the test t.
 */
export async function proxiedClient(t, targetPort, { user, clientOptions, proxyOptions } = {}) {
  const proxy = await tcpProxy(targetPort, proxyOptions);
  const sockets = await controllableSockets();
  const seen = { connected: [], closed: [] };
  const client = createHeraldClient({
    url: proxy.url,
    user,
    webSocketImpl: sockets.WebSocket,
    retryWait: quickRetry,
    ...clientOptions,
    on: {
      connected: () => { seen.connected.push(Date.now()); },
      closed: (e) => { seen.closed.push({ code: e?.code, reason: e?.reason, at: Date.now() }); },
    },
  });
  t.after(async () => { await client.dispose(); await sockets.close(); await proxy.close(); });
  return { proxy, sockets, seen, client };
}

/**
 * Collects what a subscription delivers and lets a test wait for a
 * condition with a deadline. An error or completion ends it.
 */
export class Inbox {
  constructor(label) {
    this.label = label;
    this.results = [];
    this.ended = null;
    this.waiters = new Set();
  }

  get sink() {
    return {
      next: (r) => { this.results.push(r); this.wake(); },
      error: (e) => { this.ended = `error: ${describe(e)}`; this.error = e; this.wake(); },
      complete: () => { this.ended ??= 'complete'; this.wake(); },
    };
  }

  /** The texts of the messages received (messagePosted results). */
  texts() {
    return this.results.map((r) => r.data?.messagePosted?.text ?? JSON.stringify(r));
  }

  wake() {
    for (const w of this.waiters) w();
  }

  async waitFor(pred, ms, what, { allowEnd = false } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      if (pred(this)) return;
      if (this.ended && !allowEnd) {
        throw new Error(`${this.label}: ended (${this.ended}) while waiting for ${what}; received ${JSON.stringify(this.texts())}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: timed out after ${ms} ms waiting for ${what}; received ${JSON.stringify(this.texts())}`);
      await new Promise((ok) => {
        const done = () => { clearTimeout(timer); this.waiters.delete(done); ok(); };
        const timer = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  /** Waits until a message with this text has arrived. */
  waitForText(text, ms = 10_000) {
    return this.waitFor((i) => i.texts().includes(text), ms, JSON.stringify(text));
  }
}

export function describe(e) {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  if (e && typeof e === 'object' && 'code' in e) return `close ${e.code} ${e.reason ?? ''}`;
  return JSON.stringify(e);
}

/**
 * Resolves when cond() holds, checked whenever wake is called (or every
 * 20 ms); rejects after ms naming what.
 */
export async function until(cond, ms, what) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Posts probe messages until the inbox has one: the subscription is live on the server. */
export async function prime(inbox, url, roomId, auth, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (let i = 0; ; i++) {
    await post(url, roomId, `probe-${i}`, auth);
    try {
      await inbox.waitFor((x) => x.texts().some((t) => t.startsWith('probe-')), Math.min(250, Math.max(deadline - Date.now(), 1)), 'a probe');
      return;
    } catch (err) {
      if (inbox.ended || Date.now() >= deadline) throw err;
    }
  }
}

/**
 * Creates a room, subscribes client to query on it (messagePosted, the room
 * in variable r) and primes the subscription: { roomId, inbox, sub }.
 */
export async function subscribedRoom(client, url, auth, query, ms) {
  const roomId = await createRoom(url, auth);
  const inbox = new Inbox('messagePosted');
  const sub = client.subscribe({ query, variables: { r: roomId } }, inbox.sink);
  await prime(inbox, url, roomId, auth, ms);
  return { roomId, inbox, sub };
}

export const range = (prefix, from, to) => Array.from({ length: to - from }, (_, i) => `${prefix}-${from + i}`);

// protocolServer is a graphql-transport-ws server of the test's own on a
// loopback port, for what a real Herald cannot be made to do on cue:
// onSubscribe(sock, msg, n) answers the n-th subscribe it receives (1, 2,
// …); with pong false it leaves pings unanswered. It is closed after the
// test.
export async function protocolServer(t, onSubscribe, { pong = true } = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('graphql-transport-ws') ? 'graphql-transport-ws' : false) });
  await new Promise((ok) => wss.once('listening', ok));
  const subscribes = [];
  wss.on('connection', (sock) => {
    sock.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'connection_init') sock.send(JSON.stringify({ type: 'connection_ack' }));
      else if (msg.type === 'ping') { if (pong) sock.send(JSON.stringify({ type: 'pong' })); }
      else if (msg.type === 'subscribe') {
        subscribes.push({ at: Date.now(), msg });
        onSubscribe(sock, msg, subscribes.length);
      }
    });
  });
  const server = {
    url: `ws://127.0.0.1:${wss.address().port}/graphql`,
    subscribes,
    drop: () => { for (const c of wss.clients) c.terminate(); },
    close: async () => {
      server.drop();
      await new Promise((ok) => wss.close(ok));
    },
  };
  t.after(() => server.close());
  return server;
}

// Sessions across replicas, with real clients: refreshSession sent over an
// open socket (graphql-ws on replica A, the legacy protocol on replica B)
// keeps the socket and its subscription for the same user and is refused
// for another; and disconnectUser, sent by an administrator to a third
// replica the test starts with --auth jwt and --jwt-admin-claim, ends the
// user's sockets (4403) and event streams (FORBIDDEN) on all three
// replicas within a second, and nobody else's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  A, B, httpURL, nameOf, gqlRaw, createRoom, postMessage, failIfProcessLingers, primeSubscription, awaitFence,
  MESSAGE_POSTED,
} from './lib/herald.js';
import { connect, GRAPHQL_WS, LEGACY_WS, GRAPHQL_SSE, firstError, codes } from './lib/subs.js';
import { Replica } from './lib/replica.js';

failIfProcessLingers('session.test.js');

// Users of this file alone: disconnectUser ends every session of its user
// on every replica, and the other files run beside this one.
const tag = randomBytes(3).toString('hex');
const poster = `poster-${tag}`;

const json = (v) => JSON.stringify(v);

const REFRESH = 'mutation($t: String!) { refreshSession(token: $t) { user { id name } expiresAt } }';
const DISCONNECT = 'mutation($u: ID!) { disconnectUser(userId: $u) }';

test('refreshSession over an open socket, graphql-ws on replica A and legacy graphql-ws on replica B: the same user\'s token keeps the socket and its subscription; another user\'s is refused with FORBIDDEN and changes nothing',
  { timeout: 60_000 }, async (t) => {
    const sam = `sam-${tag}`;
    const other = `mallory-${tag}`;
    const room = await createRoom(A, 'session-refresh', poster);
    for (const [transport, base, postBase] of [[GRAPHQL_WS, A, B], [LEGACY_WS, B, A]]) {
      const conn = connect(transport, base, { user: sam });
      try {
        const inbox = conn.subscribe(MESSAGE_POSTED, { roomId: room.id }, { label: `${conn.name}, messagePosted` });
        await primeSubscription(inbox, postBase, room.id, { user: poster });

        // In development mode a token is the user name.
        const [same, ...more] = await conn.run(REFRESH, { t: sam });
        assert.equal(more.length, 0, `one result: ${json([same, ...more])}`);
        assert.equal(same.errors, undefined, `${conn.name}: refreshSession for the same user: ${json(same.errors)}`);
        assert.deepEqual(same.data.refreshSession.user, { id: sam, name: sam });

        const [refused] = await conn.run(REFRESH, { t: other });
        assert.deepEqual(codes(refused), ['FORBIDDEN'], `${conn.name}: refreshSession with ${other}'s token: ${json(refused)}`);
        assert.equal(refused.data?.refreshSession ?? null, null, `${conn.name}: ${json(refused)}`);
        const [invalid] = await conn.run(REFRESH, { t: 'not\na name' });
        assert.deepEqual(codes(invalid), ['UNAUTHENTICATED'], `${conn.name}: refreshSession with an invalid token: ${json(invalid)}`);

        // The socket is still sam's, and its subscription goes on.
        const [viewer] = await conn.run('{ viewer { id } }');
        assert.deepEqual(viewer.data, { viewer: { id: sam } }, `${conn.name}: the refused refreshes left the socket as it was`);
        const want = ['msg-0', 'msg-1', 'msg-2'];
        for (const text of want) await postMessage(postBase, room.id, text, poster);
        await awaitFence(inbox, postBase, room.id, poster);
        const got = inbox.events.filter((e) => e.text?.startsWith('msg-')).map((e) => e.text);
        assert.deepEqual(got, want, `${conn.name}: after the refreshes the subscription delivers every message once, in order`);
        assert.equal(inbox.ended, null, `${conn.name}: the subscription ended: ${inbox.ended}`);
        assert.equal(conn.rec.close, null, `${conn.name}: the socket closed: ${json(conn.rec.close)}`);
        assert.equal(conn.rec.events.filter((e) => e === 'connected' || e === 'connection_ack').length, 1,
          `${conn.name}: one connection, never re-established: ${json(conn.rec.events)}`);
        t.diagnostic(`${conn.name}: refreshed as ${sam}, refused ${other} (FORBIDDEN) and a bad token (UNAUTHENTICATED); ` +
          `${want.length} messages posted on ${nameOf(postBase)} arrived after`);
      } finally {
        await conn.close();
      }
    }

    // Over plain HTTP there is no socket to refresh.
    const http = await gqlRaw(A, REFRESH, { t: sam }, { user: sam });
    assert.deepEqual(codes(http), ['BAD_USER_INPUT'], `refreshSession over HTTP: ${json(http)}`);
  });

// ---------------------------------------------------------------------------
// disconnectUser, on a replica with JWTs.

/** An HS256 JWT of claims, signed with secret (what --jwt-secret verifies). */
function signJWT(claims, secret) {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** A GraphQL request over HTTP with a bearer token ('' for none); returns {status, body}. */
async function gqlBearer(base, token, query, variables = {}) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(httpURL(base), {
    method: 'POST', headers, body: json({ query, variables }), signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    throw new Error(`POST ${httpURL(base)}: HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 2000)}`);
  }
}

test('disconnectUser sent by an administrator to a --auth jwt replica closes the user\'s sockets there and on replicas A and B with 4403 and ends their event stream with FORBIDDEN, within 1 s; another user\'s sockets stay',
  { timeout: 90_000 }, async (t) => {
    const secret = randomBytes(32).toString('hex');
    const j = await Replica.start('jwt', { auth: ['--auth', 'jwt', '--jwt-secret', secret, '--jwt-admin-claim', 'admin'] });
    const conns = [];
    t.after(async () => {
      await Promise.all(conns.map((c) => c.close()));
      await j.stop();
    });
    try {
      const carol = `carol-${tag}`; // the same user ID under a JWT (sub) and in development mode
      const dan = `dan-${tag}`;
      const exp = Math.floor(Date.now() / 1000) + 3600;
      const token = (sub, extra = {}) => signJWT({ sub, exp, ...extra }, secret);
      const room = await createRoom(A, 'session-disconnect', poster);
      // The jwt replica knows the room once it has applied it.
      const deadline = Date.now() + 10_000;
      for (let seen = false; !seen;) {
        const { body } = await gqlBearer(j.base, token(dan), 'query($r: ID!) { room(id: $r) { id } }', { r: room.id });
        seen = body.data?.room?.id === room.id;
        if (!seen && Date.now() > deadline) throw new Error(`the jwt replica never showed room ${room.id}: ${json(body)}`);
        if (!seen) await sleep(50);
      }

      const open = (transport, base, who) => {
        const conn = connect(transport, base, who);
        conns.push(conn);
        return { conn, inbox: conn.subscribe(MESSAGE_POSTED, { roomId: room.id }, { label: `${conn.name}, messagePosted` }) };
      };
      const carols = [
        open(GRAPHQL_WS, j.base, { token: token(carol), label: carol, where: 'replica J (jwt)' }),
        open(GRAPHQL_WS, A, { user: carol }),
        open(LEGACY_WS, B, { user: carol }),
      ];
      const carolStream = open(GRAPHQL_SSE, B, { user: carol });
      const dans = [open(GRAPHQL_WS, j.base, { token: token(dan), label: dan, where: 'replica J (jwt)' }), open(GRAPHQL_WS, A, { user: dan })];
      const all = [...carols, carolStream, ...dans];
      for (const { inbox } of all) await primeSubscription(inbox, A, room.id, { user: poster });
      const [viewer] = await carols[0].conn.run('{ viewer { id } }');
      assert.deepEqual(viewer.data, { viewer: { id: carol } }, 'the JWT\'s sub is the user on the jwt replica');

      // Refused: a development identity (no admin claim there), a token
      // without the claim, no token. None of them disconnects anyone.
      const devAdmin = await gqlRaw(A, DISCONNECT, { u: carol }, { user: `root-${tag}` });
      assert.deepEqual(codes(devAdmin), ['FORBIDDEN'], `disconnectUser under --auth dev: ${json(devAdmin)}`);
      const notAdmin = await gqlBearer(j.base, token(dan, { admin: 'true' }), DISCONNECT, { u: carol });
      assert.deepEqual(codes(notAdmin.body), ['FORBIDDEN'], `disconnectUser with "admin": "true" (a string): ${json(notAdmin)}`);
      const anonymous = await gqlBearer(j.base, '', DISCONNECT, { u: carol });
      assert.deepEqual(codes(anonymous.body), ['UNAUTHENTICATED'], `disconnectUser without a token: ${json(anonymous)}`);
      for (const { inbox } of all) await awaitFence(inbox, A, room.id, poster);
      for (const { conn, inbox } of all) {
        assert.equal(inbox.ended, null, `${conn.name}: ended by a refused disconnectUser: ${inbox.ended}`);
        assert.equal(conn.rec.close, null, `${conn.name}: closed by a refused disconnectUser: ${json(conn.rec.close)}`);
      }

      const sentAt = Date.now();
      const kicked = await gqlBearer(j.base, token(`root-${tag}`, { admin: true }), DISCONNECT, { u: carol });
      const answeredAt = Date.now();
      assert.deepEqual(kicked.body, { data: { disconnectUser: true } }, `the administrator's disconnectUser: ${json(kicked)}`);

      const took = [];
      const results = await Promise.all(carols.map(({ conn }) => conn.closed(5_000).catch((err) => err)));
      for (const [i, { conn, inbox }] of carols.entries()) {
        const close = results[i];
        assert.ok(!(close instanceof Error), `${conn.name}: ${close.message}`);
        assert.equal(close.code, 4403, `${conn.name}: closed with ${close.code} ${json(close.reason)}, want 4403`);
        assert.ok(inbox.events.every((e) => e.text?.startsWith('probe-') || e.text?.startsWith('fence-')), `${conn.name}: ${inbox.summary()}`);
        took.push(`${conn.name} ${close.at - answeredAt} ms`);
        assert.ok(close.at - answeredAt <= 1000, `${conn.name}: closed ${close.at - answeredAt} ms after disconnectUser answered, want within 1000 ms`);
      }
      await carolStream.inbox.waitFor(() => carolStream.inbox.ended, 5_000, 'the event stream to end');
      const errored = firstError(carolStream.inbox);
      assert.ok(errored, `${carolStream.conn.name}: ended (${carolStream.inbox.ended}) without a GraphQL error: ${carolStream.inbox.summary()}`);
      assert.deepEqual(codes(errored), ['FORBIDDEN'], `${carolStream.conn.name}: ${json(errored.errors)}`);
      took.push(`${carolStream.conn.name} ${errored.at - answeredAt} ms`);
      assert.ok(errored.at - answeredAt <= 1000,
        `${carolStream.conn.name}: FORBIDDEN ${errored.at - answeredAt} ms after disconnectUser answered, want within 1000 ms`);
      t.diagnostic(`disconnectUser answered in ${answeredAt - sentAt} ms; then ${took.join(', ')}`);

      // dan's sockets, on the jwt replica and on A, go on.
      await postMessage(A, room.id, 'msg-after', poster);
      for (const { conn, inbox } of dans) {
        await inbox.waitFor((evs) => evs.some((e) => e.text === 'msg-after'), 10_000, 'the message posted after the disconnect');
        assert.equal(inbox.ended, null, `${conn.name}: ${inbox.ended}`);
        assert.equal(conn.rec.close, null, `${conn.name}: another user's socket closed: ${json(conn.rec.close)}`);
      }
    } catch (err) {
      err.message += j.logTail();
      throw err;
    }
  });

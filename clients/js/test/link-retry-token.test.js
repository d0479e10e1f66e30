// HeraldLink behind RetryLink: an HTTP operation forwarded again
// (the same Operation) must carry the token getToken returns now, not the
// one the link added on the first attempt (README: getToken is called "by
// HeraldLink for every HTTP request"; "an operation's own Authorization
// header wins" — the link's own header from an earlier attempt is not the
// operation's own).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createHeraldClient } from '@heraldhq/client';
import { Herald, createRoom, signJWT } from './lib/herald.js';

const secret = randomBytes(32).toString('hex');
const token = (sub, seconds) => signJWT(secret, { sub, name: sub, exp: Math.floor(Date.now() / 1000) + seconds });
let herald;
before(async () => { herald = await Herald.start(['--auth', 'jwt', '--jwt-secret', secret]); });
after(async () => { await herald?.close(); });

test('HeraldLink behind RetryLink: an HTTP mutation retried after a network error carries the token getToken returns then', async (t) => {
  const { ApolloClient, ApolloLink, InMemoryCache, gql } = await import('@apollo/client');
  const { RetryLink } = await import('@apollo/client/link/retry');
  const { HeraldLink } = await import('@heraldhq/client/apollo');
  let n = 0;
  // The first token is good for about a second; the network fails the
  // first attempt, and RetryLink tries again after 2.2 s, by when that
  // token has expired: getToken (asked for every HTTP request) has a new one.
  const client = createHeraldClient({ url: herald.wsURL, getToken: () => token(`writer-${++n}`, n === 1 ? 1 : 3600) });
  const sent = [];
  let fetches = 0;
  const fetchSpy = async (url, init) => {
    sent.push(new Headers(init.headers).get('authorization'));
    if (++fetches === 1) throw new TypeError('fetch failed (the network dropped)');
    return fetch(url, init);
  };
  const link = ApolloLink.from([
    new RetryLink({ delay: { initial: 2200, max: 2200, jitter: false }, attempts: { max: 2 } }),
    new HeraldLink({ client, http: { uri: herald.url, fetch: fetchSpy } }),
  ]);
  const apollo = new ApolloClient({ link, cache: new InMemoryCache() });
  t.after(async () => { apollo.stop(); await client.dispose(); });
  const roomId = await createRoom(herald.url, { token: token('poster', 3600) });
  const POST = gql`mutation ($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id author { name } } }`;
  let outcome;
  try {
    const r = await apollo.mutate({ mutation: POST, variables: { r: roomId, t: 'one' } });
    outcome = r.data?.postMessage?.author?.name;
  } catch (err) {
    outcome = `${err.name}: ${err.message}`;
  }
  const tokens = sent.map((h) => (h ? JSON.parse(Buffer.from(h.split('.')[1], 'base64url')).sub : h));
  assert.equal(outcome, 'writer-2', `getToken called ${n} times; the ${sent.length} requests carried the tokens of ${JSON.stringify(tokens)}`);
});

// The browser's token cache (lib/credentials.ts) against a server whose
// clock is not the browser's.
//
//   node --test examples/nextjs-chat/test/credentials.test.mjs
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { transpileApp } from './app-modules.mjs';

let built;
let credentials;

before(async () => {
  built = transpileApp();
  credentials = await built.module('lib/credentials.ts');
});

after(() => built?.remove());

const LIFETIME_S = 15 * 60;

/**
 * A token route on a server whose clock runs skewMs ahead of the browser's
 * (negative: behind), as app/api/dev-token/route.ts answers; counts calls.
 */
function fakeRoute(skewMs) {
  const route = { calls: 0 };
  route.fetch = async () => {
    route.calls++;
    const serverNow = Date.now() + skewMs;
    return Response.json({ token: `token-${route.calls}`, expiresAt: serverNow + LIFETIME_S * 1000, expiresIn: LIFETIME_S });
  };
  return route;
}

/** Runs fn with Date.now() moved by the returned function's argument (ms). */
async function withClock(fn) {
  const realNow = Date.now;
  let offset = 0;
  Date.now = () => realNow() + offset;
  try {
    await fn((ms) => { offset += ms; });
  } finally {
    Date.now = realNow;
  }
}

for (const [name, skewMs] of [['in step', 0], ['5 min ahead', 300_000], ['5 min behind', -300_000]]) {
  test(`a token is replaced before it expires by the browser's clock (server clock ${name})`, async () => {
    const route = fakeRoute(skewMs);
    const realFetch = globalThis.fetch;
    globalThis.fetch = route.fetch;
    try {
      await withClock(async (advance) => {
        const identity = credentials.browserIdentity('jwt', 'alice');
        const start = Date.now();
        const first = await identity.getToken();
        assert.equal(route.calls, 1);
        const expiresAt = identity.tokenExpiresAt(first);
        // On the browser's clock, whatever the server's says.
        assert.ok(Math.abs(expiresAt - (start + LIFETIME_S * 1000)) < 1000, `expiresAt ${expiresAt - start} ms after asking`);
        assert.equal(identity.tokenExpiresAt('a token it never gave'), null);

        advance(LIFETIME_S * 1000 - 60_000); // a minute before it expires
        assert.equal(await identity.getToken(), first, 'reused a minute before expiry');
        assert.equal(route.calls, 1);

        advance(40_000); // 20 s before it expires
        const second = await identity.getToken();
        assert.notEqual(second, first, 'the token 20 s from its expiry was handed out again');
        assert.equal(route.calls, 2);
        // The replaced token's expiry is still known (a socket may carry it).
        assert.equal(identity.tokenExpiresAt(first), expiresAt);
      });
    } finally {
      globalThis.fetch = realFetch;
    }
  });
}

test('a token route answer without expiresIn is an error, not a token kept forever', async () => {
  const realFetch = globalThis.fetch;
  globalThis.fetch = async () => Response.json({ token: 't', expiresAt: Date.now() + 60_000 });
  try {
    await assert.rejects(credentials.browserIdentity('jwt', 'alice').getToken(), /expiresIn/);
  } finally {
    globalThis.fetch = realFetch;
  }
});

// The development token route (app/api/dev-token/route.ts), called as
// Next.js calls it (node --test; no build).
//
//   node --test examples/nextjs-chat/test/dev-token.test.mjs
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { transpileApp } from './app-modules.mjs';

let built;
let route;
const SECRET = 'dev-token-test-0123456789abcdef0123456789';

before(async () => {
  built = transpileApp();
  route = await built.module('app/api/dev-token/route.ts');
});

after(() => {
  delete process.env.HERALD_DEV_JWT_SECRET;
  built?.remove();
});

const call = (body) => route.POST(new Request('http://127.0.0.1/api/dev-token', {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
}));

test('the token route is off (404) unless its secret is configured', async () => {
  delete process.env.HERALD_DEV_JWT_SECRET;
  assert.equal((await call('{"user":"alice"}')).status, 404);
});

test('the token route answers 400, never 500, to a body that is not an object with a valid user', async () => {
  process.env.HERALD_DEV_JWT_SECRET = SECRET;
  for (const body of ['null', '[]', '"alice"', '42', 'true', '{}', '{"user":null}', '{"user":"no spaces"}', 'not json', '']) {
    const res = await call(body);
    assert.equal(res.status, 400, `body ${JSON.stringify(body)}: HTTP ${res.status}`);
    assert.match((await res.json()).error, /^user: /);
  }
});

test('the token route signs a token for a valid user', async () => {
  process.env.HERALD_DEV_JWT_SECRET = SECRET;
  const res = await call('{"user":"alice"}');
  assert.equal(res.status, 200);
  const { token } = await res.json();
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  assert.equal(claims.sub, 'alice');
});

test('a production build keeps the token route off unless HERALD_ALLOW_DEV_TOKENS=1 says otherwise', async () => {
  process.env.HERALD_DEV_JWT_SECRET = SECRET;
  const nodeEnv = process.env.NODE_ENV;
  try {
    process.env.NODE_ENV = 'production';
    delete process.env.HERALD_ALLOW_DEV_TOKENS;
    assert.equal((await call('{"user":"alice"}')).status, 404);
    process.env.HERALD_ALLOW_DEV_TOKENS = '1';
    assert.equal((await call('{"user":"alice"}')).status, 200);
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
    delete process.env.HERALD_ALLOW_DEV_TOKENS;
  }
});

// Development-only HS256 tokens for `herald --auth jwt`, signed with
// HERALD_DEV_JWT_SECRET (lib/config.ts): what the token route hands the
// browser, and what the server render presents as the viewer (lib/viewer.ts).
// Server code only; never in production, where your own sign-in issues tokens.
import { createHmac } from 'node:crypto';

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * A token for user that lives lifetimeS seconds; when it expires (ms, on
 * this server's clock) and its lifetime (s, which a browser adds to its own
 * clock).
 */
export function signDevToken(secret: string, user: string, lifetimeS: number): { token: string; expiresAt: number; expiresIn: number } {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { sub: user, name: user, iat: now, exp: now + lifetimeS };
  if (process.env.HERALD_DEV_JWT_ISSUER) claims.iss = process.env.HERALD_DEV_JWT_ISSUER;
  if (process.env.HERALD_DEV_JWT_AUDIENCE) claims.aud = process.env.HERALD_DEV_JWT_AUDIENCE;
  const unsigned = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  const signature = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return { token: `${unsigned}.${signature}`, expiresAt: (now + lifetimeS) * 1000, expiresIn: lifetimeS };
}

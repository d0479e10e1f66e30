// Development-only token route for `herald --auth jwt --jwt-secret …`: it
// signs an HS256 token for whatever name it is given, so it must never run
// in production. It is off (404) unless HERALD_DEV_JWT_SECRET (the same
// secret, at least 32 bytes) is set in the Next.js server's environment.
import { createHmac } from 'node:crypto';
import { devJwtSecret } from '@/lib/config';
import { USER_NAME } from '@/lib/shared';

export const dynamic = 'force-dynamic';

/** Tokens live this long; the browser asks for a new one before they expire. */
const LIFETIME_S = 15 * 60;

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export async function POST(request: Request) {
  const secret = devJwtSecret();
  if (!secret) return new Response('not found\n', { status: 404 });
  const { user } = await request.json().catch(() => ({})) as { user?: unknown };
  if (typeof user !== 'string' || !USER_NAME.test(user)) {
    return Response.json({ error: 'user: letters, digits, . _ - (at most 32)' }, { status: 400 });
  }
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { sub: user, name: user, iat: now, exp: now + LIFETIME_S };
  if (process.env.HERALD_DEV_JWT_ISSUER) claims.iss = process.env.HERALD_DEV_JWT_ISSUER;
  if (process.env.HERALD_DEV_JWT_AUDIENCE) claims.aud = process.env.HERALD_DEV_JWT_AUDIENCE;
  const unsigned = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  const signature = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return Response.json({ token: `${unsigned}.${signature}`, expiresAt: (now + LIFETIME_S) * 1000 },
    { headers: { 'Cache-Control': 'no-store' } });
}

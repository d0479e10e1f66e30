// Development-only token route for `herald --auth jwt --jwt-secret …`: it
// signs an HS256 token for whatever name it is given, so it must never run
// in production. It is off (404) unless HERALD_DEV_JWT_SECRET (the same
// secret, at least 32 bytes) is set in the Next.js server's environment,
// and, in a production build, HERALD_ALLOW_DEV_TOKENS=1 (lib/config.ts).
import { devJwtSecret } from '@/lib/config';
import { signDevToken } from '@/lib/dev-jwt';
import { USER_NAME } from '@/lib/shared';

export const dynamic = 'force-dynamic';

/** Tokens live this long; the browser asks for a new one before they expire. */
const LIFETIME_S = 15 * 60;

export async function POST(request: Request) {
  const secret = devJwtSecret();
  if (!secret) return new Response('not found\n', { status: 404 });
  // Any JSON body but an object with a valid user is a 400 (`null` too).
  const body: unknown = await request.json().catch(() => null);
  const user = body !== null && typeof body === 'object' ? (body as { user?: unknown }).user : undefined;
  if (typeof user !== 'string' || !USER_NAME.test(user)) {
    return Response.json({ error: 'user: letters, digits, . _ - (at most 32)' }, { status: 400 });
  }
  return Response.json(signDevToken(secret, user, LIFETIME_S), { headers: { 'Cache-Control': 'no-store' } });
}

// Server-side configuration, read from the environment when a page renders
// (not at build time), so one `next build` serves any Herald. Server code only.

import type { AuthMode } from './shared';

/**
 * Herald's GraphQL HTTP URL (`/graphql`). The WebSocket URL is derived from
 * it (http → ws, https → wss). Read through a computed name: Next.js inlines
 * `process.env.NEXT_PUBLIC_…` written out literally at build time, and this
 * app wants the value of the running server's environment instead.
 */
export function heraldUrl(): string {
  const name = 'NEXT_PUBLIC_HERALD_URL';
  return process.env[name] || 'http://localhost:8080/graphql';
}

/**
 * The development token route is on only when its secret is configured,
 * and, in a production build (`next start`), only when
 * HERALD_ALLOW_DEV_TOKENS=1 says so as well: the route signs a token for
 * any name it is given, and the server render acts as whoever the
 * unsigned name cookie names. A copy of this app whose deployment sets the
 * secret (Herald's own) would otherwise let anyone act as anyone.
 */
export function devJwtSecret(): string | null {
  const secret = process.env.HERALD_DEV_JWT_SECRET;
  if (process.env.NODE_ENV === 'production' && process.env.HERALD_ALLOW_DEV_TOKENS !== '1') return null;
  return secret && secret.length >= 32 ? secret : null;
}

/** `jwt` when the development token route is configured, else `dev` (a name picker). */
export function authMode(): AuthMode {
  return devJwtSecret() ? 'jwt' : 'dev';
}

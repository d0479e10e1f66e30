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

/** The development token route is on only when its secret is configured. */
export function devJwtSecret(): string | null {
  const secret = process.env.HERALD_DEV_JWT_SECRET;
  return secret && secret.length >= 32 ? secret : null;
}

/** `jwt` when the development token route is configured, else `dev` (a name picker). */
export function authMode(): AuthMode {
  return devJwtSecret() ? 'jwt' : 'dev';
}

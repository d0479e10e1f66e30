// Who the browser acts as: the picked name (`--auth dev`), or short-lived
// tokens from the development token route (`--auth jwt`).
import type { AuthMode } from './shared';

export interface Identity {
  user?: string | null;
  getToken?: () => Promise<string | null>;
  /**
   * When a token getToken gave expires, on this browser's clock (ms), or
   * null if unknown. The token's own `exp` is on the server's clock, which
   * the browser's may be minutes away from.
   */
  tokenExpiresAt?: (token: string) => number | null;
}

/** A token is handed out again until this long before it expires. */
const REUSE_UNTIL_MS = 30_000;

export function browserIdentity(auth: AuthMode, user: string | null): Identity {
  if (auth === 'dev' || !user) return { user };
  let cached: { token: string; expiresAt: number } | null = null;
  // The expiries of the last few tokens handed out: a socket or stream may
  // still carry one that the cache has replaced.
  const expiries = new Map<string, number>();
  let pending: Promise<string> | null = null;
  const getToken = async (): Promise<string> => {
    // Asked on every connect and request: reuse the token until shortly before it expires.
    if (cached && cached.expiresAt - Date.now() > REUSE_UNTIL_MS) return cached.token;
    pending ??= (async () => {
      try {
        // The token is signed after this instant, so it expires no sooner
        // than its lifetime after it, whatever the two clocks say.
        const askedAt = Date.now();
        const res = await fetch('/api/dev-token', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ user }),
        });
        if (!res.ok) throw new Error(`the token route answered ${res.status}`);
        const { token, expiresIn } = await res.json() as { token: string; expiresIn: number };
        if (typeof token !== 'string' || typeof expiresIn !== 'number') throw new Error('the token route answered without token and expiresIn');
        cached = { token, expiresAt: askedAt + expiresIn * 1000 };
        expiries.set(token, cached.expiresAt);
        for (const old of expiries.keys()) if (expiries.size > 4) expiries.delete(old);
        return token;
      } finally {
        pending = null;
      }
    })();
    return pending;
  };
  const tokenExpiresAt = (token: string): number | null => expiries.get(token) ?? null;
  return { getToken, tokenExpiresAt };
}

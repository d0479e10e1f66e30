// Who the browser acts as: the picked name (`--auth dev`), or short-lived
// tokens from the development token route (`--auth jwt`).
import type { AuthMode } from './shared';

export interface Identity { user?: string | null; getToken?: () => Promise<string | null> }

export function browserIdentity(auth: AuthMode, user: string | null): Identity {
  if (auth === 'dev' || !user) return { user };
  let cached: { token: string; expiresAt: number } | null = null;
  let pending: Promise<string> | null = null;
  const getToken = async (): Promise<string> => {
    // Asked on every connect and request: reuse the token until 30 s before it expires.
    if (cached && cached.expiresAt - Date.now() > 30_000) return cached.token;
    pending ??= (async () => {
      try {
        const res = await fetch('/api/dev-token', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ user }),
        });
        if (!res.ok) throw new Error(`the token route answered ${res.status}`);
        const { token, expiresAt } = await res.json() as { token: string; expiresAt: number };
        cached = { token, expiresAt };
        return token;
      } finally {
        pending = null;
      }
    })();
    return pending;
  };
  return { getToken };
}

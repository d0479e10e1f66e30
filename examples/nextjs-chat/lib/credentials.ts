// The browser's credentials for Herald: the picked name (`--auth dev`), or a
// short-lived token from the development token route (`--auth jwt`).
import type { AuthMode } from './shared';
import type { Credentials } from './herald-transport';

export function browserCredentials(auth: AuthMode, user: string | null): () => Promise<Credentials> {
  if (auth === 'dev' || !user) return async () => ({ user });
  let cached: { token: string; expiresAt: number } | null = null;
  let pending: Promise<Credentials> | null = null;
  return async () => {
    // Asked on every connect and request: reuse the token until 30 s before it expires.
    if (cached && cached.expiresAt - Date.now() > 30_000) return { token: cached.token };
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
        return { token };
      } finally {
        pending = null;
      }
    })();
    return pending;
  };
}

// Who is viewing, on the server: the name picked in the header (the
// herald_user cookie), and the credentials the server render presents to
// Herald as that viewer, so that what they may see (a private room they are a
// member of) is rendered for them. Server code only.
import { cookies } from 'next/headers';
import { authMode, devJwtSecret } from './config';
import { signDevToken } from './dev-jwt';
import { USER_COOKIE, USER_NAME } from './shared';

/** The picked name, or null (no cookie, or not a name this app lets one pick). */
export async function viewerName(): Promise<string | null> {
  const picked = (await cookies()).get(USER_COOKIE)?.value;
  return picked && USER_NAME.test(picked) ? picked : null;
}

/** The server render's token lives this long: one render, not a session. */
const RENDER_TOKEN_S = 60;

/**
 * The HTTP headers that make a request to Herald the viewer's: in dev mode
 * `X-Herald-User`; with `--auth jwt` a short-lived token signed for them, as
 * the development token route would give their browser (an app with a real
 * sign-in forwards the token of the viewer's session instead). None for a
 * viewer without a name. Read per request (the request's cookie): never put
 * what these fetch in a cache shared across requests.
 */
export async function viewerHeaders(): Promise<Record<string, string>> {
  const user = await viewerName();
  if (!user) return {};
  if (authMode() === 'dev') return { 'X-Herald-User': user };
  const secret = devJwtSecret();
  return secret ? { Authorization: `Bearer ${signDevToken(secret, user, RENDER_TOKEN_S).token}` } : {};
}

// What the server and the browser both need to know.

export type AuthMode = 'dev' | 'jwt';

/** The cookie holding the name the person picked (dev mode) or asks a token for (jwt). */
export const USER_COOKIE = 'herald_user';

/** Names this app lets a person pick. */
export const USER_NAME = /^[A-Za-z0-9_.-]{1,32}$/;

// What Herald shows as nothing: white space, format characters (zero-width
// space, joiners, marks of direction, the byte order mark, soft hyphen,
// tags), variation selectors and the other default-ignorable code points.
const VISIBLE = /[^\p{White_Space}\p{Cf}\p{Default_Ignorable_Code_Point}]/u;
// Control characters other than tabs and line breaks.
const CONTROL = /[^\P{Cc}\t\n\r]/u;

/** Herald's longest message text, in characters (code points). */
export const MAX_TEXT_LENGTH = 4000;

/**
 * Why Herald would refuse a message text (BAD_USER_INPUT), in its words, or
 * null: one that shows nothing, holds control characters other than tabs and
 * line breaks, or is too long.
 */
export function textProblem(text: string): string | null {
  if (!VISIBLE.test(text)) return 'text must not be empty';
  if (CONTROL.test(text)) return 'text must not contain control characters other than tabs and line breaks';
  if ([...text].length > MAX_TEXT_LENGTH) return `text is longer than ${MAX_TEXT_LENGTH} characters`;
  return null;
}

/**
 * What a page says of a query of its server render that failed: Herald's own
 * words when it refused it (a GraphQL error, `not a member`); a request that
 * failed (Herald did not answer in time, lib/timed-fetch.ts, or could not be
 * reached) reaches the page without its message, which
 * @apollo/client-integration-nextjs redacts, so the page says what it may be.
 */
export function readProblem(error: { message: string } | undefined): string {
  const message = (error?.message ?? '').replace(/\.+$/, '');
  if (!message || /redacted/i.test(message)) return 'Herald could not be read (it did not answer in time, or could not be reached)';
  return message;
}

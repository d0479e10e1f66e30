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

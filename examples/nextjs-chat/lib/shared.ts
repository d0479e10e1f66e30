// What the server and the browser both need to know.

export type AuthMode = 'dev' | 'jwt';

/** The cookie holding the name the person picked (dev mode) or asks a token for (jwt). */
export const USER_COOKIE = 'herald_user';

/** Names this app lets a person pick. */
export const USER_NAME = /^[A-Za-z0-9_.-]{1,32}$/;

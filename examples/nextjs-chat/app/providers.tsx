'use client';
// Apollo Client for the browser (and for the server-side render of client
// components), the connection to Herald, and who the person is.
import { ApolloLink } from '@apollo/client';
import { ApolloClient, ApolloNextAppProvider, InMemoryCache } from '@apollo/client-integration-nextjs';
import { createContext, useContext, useSyncExternalStore, type ReactNode } from 'react';
import { Observable } from 'rxjs';
import { browserIdentity } from '@/lib/credentials';
import { createHeraldTransport, type ConnectionStatus, type HeraldTransport } from '@/lib/herald-transport';
import type { AuthMode } from '@/lib/shared';

export interface Session { url: string; user: string | null; auth: AuthMode }

const SessionContext = createContext<Session>({ url: '', user: null, auth: 'dev' });
export const useSession = () => useContext(SessionContext);

// One transport per page load: a browser keeps one socket to Herald.
let transport: HeraldTransport | null = null;

/** The browser's cache (its type policies; exported for test/room-cache.test.mjs). */
export function cache() {
  return new InMemoryCache({
    typePolicies: {
      // Room pages append to the list themselves (see app/rooms/[roomId]/room.tsx).
      Room: { fields: { messages: { merge: false } } },
    },
  });
}

/**
 * The link of the server-side render of client components, which reads
 * nothing from Herald. That render has no viewer (a client component cannot
 * read the request's cookie, and handing it credentials would put them in
 * the page), so a query it ran would be anonymous: a member's private room
 * refused, the room list without their private rooms, and that result
 * streamed into their browser's cache. It runs none: every query a client
 * component reads there is preloaded as the viewer in a server component
 * (PreloadQuery from lib/apollo-rsc.ts: the rooms in app/page.tsx, a room in
 * app/rooms/[roomId]/page.tsx), and its result is streamed in by
 * @apollo/client-integration-nextjs, never through this link; everything
 * else (presence, mutations, subscriptions) runs in
 * effects or handlers, in the browser. Should a query reach it (one read
 * with useSuspenseQuery but not preloaded), it fails here, loudly, and the
 * integration runs it again in the browser, as the viewer.
 */
const serverRenderLink = new ApolloLink((operation) => new Observable<ApolloLink.Result>((observer) => {
  const what = operation.operationName ?? 'a query';
  console.error(`herald: ${what} reached the server render of client components, which has no viewer; ` +
    'preload it in a server component (PreloadQuery from lib/apollo-rsc.ts). It runs in the browser instead.');
  observer.error(new Error(`${what} is not run in the server render of client components (it has no viewer)`));
}));

function makeClientFor(session: Session) {
  return () => {
    if (typeof window === 'undefined') return new ApolloClient({ cache: cache(), link: serverRenderLink });
    transport ??= createHeraldTransport({ url: session.url, ...browserIdentity(session.auth, session.user) });
    return new ApolloClient({ cache: cache(), link: transport.link });
  };
}

export function Providers({ session, children }: { session: Session; children: ReactNode }) {
  return (
    <SessionContext.Provider value={session}>
      <ApolloNextAppProvider makeClient={makeClientFor(session)}>{children}</ApolloNextAppProvider>
    </SessionContext.Provider>
  );
}

const SERVER_STATUS: ConnectionStatus = { state: 'connecting', transport: 'websocket' };

/**
 * The connection's state, as the header shows it and room pages go by: the
 * transport's own (the socket or streams), re-rendered on every change.
 */
export function useConnectionStatus(): ConnectionStatus {
  return useSyncExternalStore(
    (onChange) => transport?.onStatus(onChange) ?? (() => {}),
    () => transport?.status() ?? SERVER_STATUS,
    () => SERVER_STATUS,
  );
}

'use client';
// Apollo Client for the browser (and for the server-side render of client
// components), the connection to Herald, and who the person is.
import { HttpLink } from '@apollo/client';
import { ApolloClient, ApolloNextAppProvider, InMemoryCache } from '@apollo/client-integration-nextjs';
import { createContext, useContext, useSyncExternalStore, type ReactNode } from 'react';
import { browserIdentity } from '@/lib/credentials';
import { createHeraldTransport, type ConnectionStatus, type HeraldTransport } from '@/lib/herald-transport';
import type { AuthMode } from '@/lib/shared';

export interface Session { url: string; user: string | null; auth: AuthMode }

const SessionContext = createContext<Session>({ url: '', user: null, auth: 'dev' });
export const useSession = () => useContext(SessionContext);

// One transport per page load: a browser keeps one socket to Herald.
let transport: HeraldTransport | null = null;

function cache() {
  return new InMemoryCache({
    typePolicies: {
      // Room pages append to the list themselves (see app/rooms/[roomId]/room.tsx).
      Room: { fields: { messages: { merge: false } } },
    },
  });
}

function makeClientFor(session: Session) {
  return () => {
    if (typeof window === 'undefined') {
      // The server-side render of client components: queries only, over HTTP.
      return new ApolloClient({ cache: cache(), link: new HttpLink({ uri: session.url, fetchOptions: { cache: 'no-store' } }) });
    }
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

/** The connection's state, re-rendered on every change. */
export function useConnectionStatus(): ConnectionStatus {
  return useSyncExternalStore(
    (onChange) => transport?.onStatus(onChange) ?? (() => {}),
    () => transport?.status() ?? SERVER_STATUS,
    () => SERVER_STATUS,
  );
}

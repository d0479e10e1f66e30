// Apollo Client for React Server Components: one client, and one cache, per
// request (registerApolloClient), reading Herald over HTTP as the viewer
// (lib/viewer.ts: the request's cookie), so that a member's private room is
// rendered for them and nobody else's render is ever shared with them. Each
// request to Herald has a time limit (lib/timed-fetch.ts): a Herald that does
// not answer makes the page say so, not hang.
import { HttpLink } from '@apollo/client';
import { ApolloClient, InMemoryCache, registerApolloClient } from '@apollo/client-integration-nextjs';
import { SetContextLink } from '@apollo/client/link/context';
import { heraldUrl } from './config';
import { fetchWithTimeout, HERALD_TIMEOUT_MS } from './timed-fetch';
import { viewerHeaders } from './viewer';

export const { getClient, query, PreloadQuery } = registerApolloClient(() => new ApolloClient({
  cache: new InMemoryCache(),
  link: new SetContextLink(async (prev) => ({ headers: { ...prev.headers, ...(await viewerHeaders()) } }))
    .concat(new HttpLink({ uri: heraldUrl(), fetch: fetchWithTimeout(HERALD_TIMEOUT_MS), fetchOptions: { cache: 'no-store' } })),
}));

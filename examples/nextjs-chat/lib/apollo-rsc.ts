// Apollo Client for React Server Components: one client per request, reading
// Herald over HTTP (reading needs no identity).
import { HttpLink } from '@apollo/client';
import { ApolloClient, InMemoryCache, registerApolloClient } from '@apollo/client-integration-nextjs';
import { heraldUrl } from './config';

export const { getClient, query, PreloadQuery } = registerApolloClient(() => new ApolloClient({
  cache: new InMemoryCache(),
  link: new HttpLink({ uri: heraldUrl(), fetchOptions: { cache: 'no-store' } }),
}));

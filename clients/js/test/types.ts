// Compiled (not run) by `npm run build`: the published types, as a
// TypeScript app imports them through the package's exports, fit together
// with Apollo Client's.
import { ApolloClient, HttpLink, InMemoryCache } from '@apollo/client';
import { createHeraldClient, OutcomeUnknownError, operationKind, type HeraldClient, type OperationKind, type Unsubscribe } from '@heraldhq/client';
import { HeraldLink } from '@heraldhq/client/apollo';

const herald: HeraldClient = createHeraldClient({ url: 'ws://127.0.0.1:8080/graphql', getToken: async () => 'token' });
const stop: Unsubscribe = herald.subscribeAfter<{ messagePosted: { id: string } }>('cursor',
  { query: 'subscription ($r: ID!) { messagePosted(roomId: $r) { id } }', variables: { r: 'room' } },
  {
    next: (result) => {
      const id: string | undefined = result.data?.messagePosted.id;
      const cursor: unknown = result.extensions?.cursor;
      void id, void cursor;
    },
    error: () => {},
    complete: () => {},
  });
const last: string | null = stop.cursor;
void last;
new ApolloClient({ link: new HeraldLink({ client: herald, http: new HttpLink({ uri: '/graphql' }) }), cache: new InMemoryCache() });
new HeraldLink({ client: herald, http: { uri: '/graphql' }, httpCredentials: false });
// @ts-expect-error a cursor is a string
herald.subscribeAfter(5, { query: '' }, { next() {}, error() {}, complete() {} });
// Dead-connection detection: milliseconds; pingInterval 0 turns it off.
createHeraldClient({ url: 'ws://127.0.0.1:8080/graphql', pingInterval: 20_000, pongTimeout: 10_000 });
createHeraldClient({ url: 'ws://127.0.0.1:8080/graphql', pingInterval: 0 });
// @ts-expect-error a duration is a number of milliseconds
createHeraldClient({ url: 'ws://127.0.0.1:8080/graphql', pongTimeout: '10s' });
// A mutation lost in flight fails with an OutcomeUnknownError.
herald.subscribe({ query: 'mutation { setTyping(roomId: "r") }' }, {
  next() {},
  error: (err: unknown) => {
    if (err instanceof OutcomeUnknownError) {
      const code: 'OUTCOME_UNKNOWN' = err.code;
      const kind: OperationKind | null = err.operation;
      const name: string | null = err.operationName;
      void code, void kind, void name;
    }
  },
  complete() {},
});
const kind: OperationKind | null = operationKind('query Q { viewer { name } } mutation M { x }', 'M');
void kind;
// getToken's deadline: milliseconds; 0 turns it off.
createHeraldClient({ url: 'ws://127.0.0.1:8080/graphql', getToken: async () => 'token', getTokenTimeout: 5_000 });
createHeraldClient({ url: 'ws://127.0.0.1:8080/graphql', getTokenTimeout: 0 });
// The back-off starts over once a connection stays up this long past its ack (ms).
createHeraldClient({ url: 'ws://127.0.0.1:8080/graphql', retryResetAfter: 5_000, getTokenTimeout: 2_000 });

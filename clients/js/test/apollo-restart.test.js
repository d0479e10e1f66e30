// HeraldLink's promises that need a server answering on cue, against a
// graphql-transport-ws server of the test's own (protocolServer).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApolloClient, InMemoryCache, gql as apolloGql } from '@apollo/client';
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';
import { HeraldLink } from '@heraldhq/client/apollo';
import { Inbox, protocolServer, quickRetry, until } from './lib/herald.js';

const posted = (id, text, cursor) => JSON.stringify({
  id, type: 'next',
  payload: { data: { messagePosted: { __typename: 'Message', id: text, text } }, extensions: { cursor } },
});

const POSTED = apolloGql`subscription Posted($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { id text } }`;

test('HeraldLink: restart() while Apollo Client delivers a result resumes after that result, not before it', async (t) => {
  // The first subscribe delivers m1 (cursor c1); every later one delivers
  // what follows the cursor it was sent with.
  const server = await protocolServer(t, (sock, msg, n) => {
    if (n === 1) sock.send(posted(msg.id, 'm1', 'c1'));
    else sock.send(posted(msg.id, `after-${msg.payload.variables.after}`, `c${n}`));
  });
  const client = createHeraldClient({ url: server.url, webSocketImpl: WebSocket, retryWait: quickRetry, pingInterval: 0 });
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: 'http://127.0.0.1:9/graphql' } }), cache: new InMemoryCache() });
  const inbox = new Inbox('Posted');
  const observable = apollo.subscribe({ query: POSTED, variables: { r: 'room', after: 'page' } });
  let restarted = false;
  const subscription = observable.subscribe({
    next: ({ data, error }) => {
      if (error) return inbox.sink.error(error);
      inbox.sink.next({ data });
      // The application restarts the subscription as it handles a result.
      if (!restarted) { restarted = true; observable.restart(); }
    },
    error: inbox.sink.error,
    complete: inbox.sink.complete,
  });
  t.after(async () => { subscription.unsubscribe(); apollo.stop(); await client.dispose(); });
  await until(() => server.subscribes.length >= 2, 5000, 'the subscribe of the restart');
  await inbox.waitFor((i) => i.results.length >= 2, 5000, 'the result after the restart');
  assert.deepEqual(server.subscribes.map((s) => s.msg.payload.variables.after), ['page', 'c1'],
    'the restart resumes after the last cursor delivered (c1), not from the page\'s cursor');
  assert.deepEqual(inbox.texts(), ['m1', 'after-c1']);
});

// roomPresence through HeraldLink. Its field takes no `after` (it starts
// with a snapshot, after every reconnect too), so the link must send it
// untouched when the operation's context says resume: false. Against a
// real Herald.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApolloClient, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { createHeraldClient } from '@heraldhq/client';
import { HeraldLink } from '@heraldhq/client/apollo';
import { Herald, Inbox, controllableSockets, createRoom, quickRetry } from './lib/herald.js';

let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

const PRESENCE = apolloGql`subscription Presence($r: ID!) { roomPresence(roomId: $r) { kind count users { id } } }`;

function presenceOf(apollo, roomId, context) {
  const inbox = new Inbox('roomPresence');
  const sub = apollo.subscribe({ query: PRESENCE, variables: { r: roomId }, context }).subscribe({
    next: ({ data, error }) => (error ? inbox.sink.error(error) : inbox.sink.next({ data })),
    error: inbox.sink.error,
    complete: inbox.sink.complete,
  });
  return { inbox, sub };
}

const snapshots = (inbox) => inbox.results.filter((r) => r.data?.roomPresence?.kind === 'SNAPSHOT');

test('HeraldLink with resume: false sends roomPresence untouched, and a reconnect brings a fresh snapshot', async (t) => {
  const sockets = await controllableSockets();
  const client = createHeraldClient({ url: herald.wsURL, user: 'pia', webSocketImpl: sockets.WebSocket, retryWait: quickRetry });
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: herald.url } }), cache: new InMemoryCache() });
  const { inbox, sub } = presenceOf(apollo, await createRoom(herald.url, { user: 'pia' }), { herald: { resume: false } });
  t.after(async () => { sub.unsubscribe(); apollo.stop(); await client.dispose(); await sockets.close(); });

  // A snapshot first, then (if the snapshot did not count pia yet) pia joining.
  await inbox.waitFor((i) => snapshots(i).length === 1 && i.results.some((r) => r.data.roomPresence.users.some((u) => u.id === 'pia')),
    10_000, 'a snapshot, and pia present');
  assert.equal(inbox.results[0].data.roomPresence.kind, 'SNAPSHOT', 'the snapshot comes first');
  const first = sockets.subscribes()[0].payload;
  assert.ok(!/\bafter\b/.test(first.query), `the operation went out untouched: ${first.query}`);
  assert.ok(!('after' in first.variables), 'no after variable');

  sockets.setOffline(true);
  sockets.drop();
  sockets.setOffline(false);
  await inbox.waitFor((i) => snapshots(i).length >= 2 && sockets.subscribes().length >= 2, 10_000, 'a fresh snapshot after the reconnect');
  const again = sockets.subscribes().at(-1).payload;
  assert.ok(!/\bafter\b/.test(again.query) && !('after' in again.variables), 'the resubscribe carries no cursor either');
  assert.equal(inbox.ended, null, 'the subscription goes on');
});

test('without resume: false the link adds `after`, which roomPresence does not take, and Herald refuses it', async (t) => {
  const sockets = await controllableSockets();
  const client = createHeraldClient({ url: herald.wsURL, user: 'quinn', webSocketImpl: sockets.WebSocket, retryWait: quickRetry });
  const apollo = new ApolloClient({ link: new HeraldLink({ client, http: { uri: herald.url } }), cache: new InMemoryCache() });
  const { inbox, sub } = presenceOf(apollo, await createRoom(herald.url, { user: 'quinn' }), undefined);
  t.after(async () => { sub.unsubscribe(); apollo.stop(); await client.dispose(); await sockets.close(); });
  await inbox.waitFor((i) => i.ended !== null, 10_000, 'the refusal', { allowEnd: true });
  assert.match(inbox.ended, /Unknown argument "after"/, 'the error names the argument');
});

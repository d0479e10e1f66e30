// The child of unserializable.test.js: subscribes with variables JSON.stringify cannot serialize
// (a BigInt), against the server at argv[2], and reports on stdout whether
// the sink heard of it; the event loop must stay free (a timer ticks).
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';

const client = createHeraldClient({ url: process.argv[2], user: 'reader', webSocketImpl: WebSocket, pingInterval: 0 });
let ticks = 0;
const ticker = setInterval(() => { ticks++; }, 10);
const kind = process.argv[3] ?? 'bigint';
const nested = {};
const variables = kind === 'bigint' ? { n: 1n } : kind === 'late' ? { o: nested } : (() => { const v = { a: {} }; v.a.self = v; return v; })();
client.subscribe({ query: 'query ($n: Int) { viewer { name } }', variables }, {
  next: (r) => { console.log(`sink next: ${JSON.stringify(r)}`); },
  error: (e) => { console.log(`sink error: ${e?.name}: ${e?.message}`); },
  complete: () => { console.log('sink complete'); },
});
if (kind === 'late') nested.n = 1n; // changed after subscribe(), before the connect sends it
setTimeout(() => {
  console.log(`ticks after 1 s: ${ticks}`);
  clearInterval(ticker);
  client.dispose();
}, 1000);

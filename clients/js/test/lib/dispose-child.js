// Run by test/liveness.test.js as a process of its own: a client with
// dead-connection detection on short intervals subscribes to a Herald
// (argv[2], its WebSocket URL), lets the watchdog ping a few times, then
// disposes of the client and does nothing more. It never calls
// process.exit: the process ends by itself only if dispose() left nothing
// behind (no timer, no socket). It reports on stdout what it has done, and
// what still keeps it alive once the socket has closed.
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';

const url = process.argv[2];
const say = (what) => process.stdout.write(`${JSON.stringify(what)}\n`);
let connected = 0;
let closed = 0;
let pongs = 0;
const client = createHeraldClient({
  url, user: 'reader', webSocketImpl: WebSocket, pingInterval: 100, pongTimeout: 300,
  retryWait: () => sleep(20),
  on: {
    connected: () => { connected++; },
    closed: () => { closed++; },
    pong: (received) => { if (received) pongs++; }, // answers to the watchdog's pings
  },
});
let ended = null;
client.subscribe({ query: 'subscription { roomCreated { id } }' }, {
  next() {}, error(e) { ended = `error: ${e?.code ?? e?.message ?? e}`; }, complete() { ended = 'complete'; },
});
const deadline = Date.now() + 10_000;
while (connected === 0 && Date.now() < deadline) await sleep(20);
await sleep(700); // the watchdog pings (every 100 ms of silence) and is answered
say({ connected, closed, pongs });
await client.dispose();
say({ disposed: true });
const closeDeadline = Date.now() + 5000;
while (closed === 0 && Date.now() < closeDeadline) await sleep(20);
await sleep(50);
say({ closed, ended, resources: process.getActiveResourcesInfo() });

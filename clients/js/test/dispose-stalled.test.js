// dispose() of a client whose connection has stalled (the network went
// away: nothing arrives, nothing is closed). dispose() returns at once, but
// the socket graphql-ws closes waits for a close handshake the server never
// answers: with the ws package (the webSocketImpl the README asks for on
// Node.js 20) a 30 s timer, which would keep a Node.js process that disposed
// of its client alive for 30 s (a service shutting down, a CLI, a test
// run). The client drops such a socket (the ws package's terminate()) once
// it has not closed within min(pongTimeout, 1 s) of dispose().
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Herald, tcpProxy, until } from './lib/herald.js';

const here = dirname(fileURLToPath(import.meta.url));
let herald;

before(async () => {
  herald = await Herald.start(['--auth', 'dev']);
});
after(async () => {
  await herald?.close();
});

// The child: subscribes, says "ready" once acknowledged, disposes of the
// client when told to on stdin, and then does nothing more (never exits
// by itself unless nothing keeps it alive).
const CHILD = `
import WebSocket from 'ws';
import { createHeraldClient } from '@heraldhq/client';
const client = createHeraldClient({ url: process.argv[1], user: 'reader', webSocketImpl: WebSocket,
  retryWait: () => new Promise((ok) => setTimeout(ok, 20)),
  on: { connected: () => process.stdout.write('ready\\n') } });
client.subscribe({ query: 'subscription { roomCreated { id } }' }, { next() {}, error() {}, complete() {} });
process.stdin.once('data', async () => {
  await client.dispose();
  process.stdout.write('disposed\\n');
  process.stdin.destroy();
});
`;

test('dispose() on a stalled connection: the process exits by itself soon after, not after ws\'s 30 s close timeout', async (t) => {
  const proxy = await tcpProxy(herald.port);
  t.after(() => proxy.close());
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, proxy.url], {
    cwd: join(here, '..'), stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((ok) => child.once('exit', (code, signal) => ok(signal ? `signal ${signal}` : `exit ${code}`)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  t.after(() => { clearTimeout(killer); child.kill('SIGKILL'); });

  await until(() => out.includes('ready'), 10_000, `the child to connect (${out}${err})`);
  proxy.stall(); // the network goes away: nothing more either way, nothing closed
  child.stdin.write('dispose\n');
  await until(() => out.includes('disposed'), 5000, `dispose() to return (${out}${err})`);
  const disposedAt = Date.now();
  const how = await Promise.race([exited, new Promise((ok) => setTimeout(ok, 5000, 'still running 5 s after dispose()'))]);
  t.diagnostic(`child: ${how} ${Date.now() - disposedAt} ms after dispose() returned`);
  assert.equal(how, 'exit 0', `the process exits by itself after dispose(); ${out}${err}`);
});

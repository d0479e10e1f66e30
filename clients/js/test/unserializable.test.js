// A request whose variables JSON cannot serialize (a BigInt, a cycle)
// fails through its sink (README: subscribe never throws; a request that
// cannot be sent fails through the sink's error). Sent as it was,
// graphql-ws's socket.send(stringify(...)) threw inside its retry loop,
// which the client's shouldRetry (() => true) ran again at once, for ever,
// in microtasks: the event loop never ran again.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Herald } from './lib/herald.js';

const here = dirname(fileURLToPath(import.meta.url));
let herald;
before(async () => { herald = await Herald.start(['--auth', 'dev']); });
after(async () => { await herald?.close(); });

for (const kind of ['bigint', 'cycle', 'late']) {
  test(`variables JSON cannot serialize (${kind}): the sink gets an error and the event loop goes on`, async () => {
    const child = spawn(process.execPath, [join(here, 'lib/unserializable-child.js'), herald.wsURL, kind],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    const how = await new Promise((ok) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); ok('killed after 6 s: the child hung'); }, 6000);
      child.once('exit', (code, signal) => { clearTimeout(timer); ok(signal ? `signal ${signal}` : `exit ${code}`); });
    });
    assert.equal(how, 'exit 0', `child: ${how}; output: ${JSON.stringify(out)}`);
    // bigint, cycle: cannot be sent, the sink is told; late (a BigInt put into
    // a nested object after subscribe()): sent as it was, and answered.
    assert.match(out, kind === 'late' ? /sink (next|error)/ : /sink error/, `the sink is told; output: ${JSON.stringify(out)}`);
    assert.match(out, /ticks after 1 s: ([1-9]\d)/, `timers still run; output: ${JSON.stringify(out)}`);
  });
}

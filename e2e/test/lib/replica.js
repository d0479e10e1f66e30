// A third replica a test starts, stops and restarts itself: the binary
// the e2e driver (e2e/main.go) built, joined to replica A's NATS, on a
// loopback port of its own that it keeps across restarts. It stays in
// node's process group, so the driver stops any such replica the test
// could not.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests with the e2e driver (make e2e), which starts the replicas and sets it`);
  return v;
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const LOG_KEEP = 20_000; // characters of the replica's output kept for error messages

export class Replica {
  /**
   * Starts replica `name` and waits until it is ready. auth: its
   * authentication flags (default --auth dev), e.g. ['--auth', 'jwt',
   * '--jwt-secret', secret, '--jwt-admin-claim', 'admin'].
   */
  static async start(name, { auth = ['--auth', 'dev'] } = {}) {
    const r = new Replica(name, await freePort(), auth);
    await r.start();
    return r;
  }

  constructor(name, port, auth = ['--auth', 'dev']) {
    this.name = name;
    this.port = port;
    this.auth = auth;
    this.base = `http://127.0.0.1:${port}`;
    this.child = null;
    this.exited = null; // a promise of the exit status of the running process
    this.output = '';
    this.dataDir = join(env('HERALD_E2E_DATA'), name);
  }

  /** Starts the process (on the same port as before) and waits until /readyz answers 200. */
  async start() {
    if (this.child) throw new Error(`replica ${this.name} is already running`);
    mkdirSync(this.dataDir, { recursive: true });
    // Only the flags configure it, as in the driver.
    const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_')));
    const child = spawn(env('HERALD_E2E_BIN'), [
      ...this.auth, '--log-level', 'debug', '--drain-timeout', '1s',
      '--addr', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, '--nats-url', env('HERALD_E2E_NATS_URL'),
    ], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (chunk) => { this.output = (this.output + chunk).slice(-LOG_KEEP); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = null;
        resolve(signal ? `signal ${signal}` : `exit ${code}`);
      });
    });
    await this.waitReady(20_000);
  }

  async waitReady(ms) {
    const deadline = Date.now() + ms;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (!this.child) throw new Error(`replica ${this.name} exited before it was ready (${await this.exited})${this.logTail()}`);
      try {
        const res = await fetch(`${this.base}/readyz`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
        last = `HTTP ${res.status}: ${await res.text()}`;
      } catch (err) {
        last = err.message;
      }
      await sleep(100);
    }
    throw new Error(`replica ${this.name} was not ready within ${ms} ms; /readyz: ${last}${this.logTail()}`);
  }

  /**
   * Sends signal (SIGTERM: a drain) and resolves with how the process
   * ended; SIGKILL if it is still running after ms.
   */
  async stop(signal = 'SIGTERM', ms = 10_000) {
    const child = this.child;
    if (!child) return 'not running';
    child.kill(signal);
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(resolve, ms, 'late'); });
    const how = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (how !== 'late') return how;
    child.kill('SIGKILL');
    return `still running ${ms} ms after ${signal}, killed (${await this.exited})`;
  }

  /** The last of the replica's log, for error messages. */
  logTail() {
    return `\n----- replica ${this.name} log (last ${LOG_KEEP} characters) -----\n${this.output}\n----- end -----`;
  }
}

// A TCP proxy on loopback standing for a load balancer in front of the two
// replicas: the test picks the replica the NEXT connection goes to, cuts every
// open connection at will (as when a replica goes away), and while "down"
// either refuses new connections (no healthy backend) or holds them (the
// balancer queues them) until it is passed again.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export class TcpProxy {
  /** Starts a proxy on a free 127.0.0.1 port, routing to targetBase (an http://127.0.0.1:PORT base URL). */
  static async start(targetBase) {
    const proxy = new TcpProxy();
    proxy.route(targetBase);
    await new Promise((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => { proxy.server.off('error', reject); resolve(); });
    });
    return proxy;
  }

  constructor() {
    this.mode = 'pass'; // 'pass' | 'refuse' | 'hold'
    this.target = null; // { host, port, base }
    this.pairs = new Set(); // open { client, upstream, base }
    this.held = []; // client sockets waiting for pass()
    this.stats = { accepted: 0, refused: 0, held: 0, cut: 0, byTarget: {} };
    this.server = net.createServer((client) => this.accept(client));
  }

  /** Base URL of the proxy (http://127.0.0.1:PORT): use it as a replica's base. */
  get base() {
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  /** The replica (base URL) the next connection goes to; open ones stay where they are. */
  route(targetBase) {
    const u = new URL(targetBase);
    if (!LOOPBACK.has(u.hostname)) throw new Error(`the test proxy only forwards to loopback, not ${targetBase}`);
    this.target = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), base: targetBase };
  }

  /** New connections are accepted and closed at once, until pass(). */
  refuse() {
    this.mode = 'refuse';
  }

  /** New connections are accepted but not forwarded (nor read) until pass(). */
  hold() {
    this.mode = 'hold';
  }

  /** Forward connections again, the held ones first, to the current route. */
  pass() {
    this.mode = 'pass';
    const held = this.held.splice(0);
    for (const client of held) if (!client.destroyed) this.forward(client);
  }

  /** Destroys every open connection (both sides) and returns how many. */
  cut() {
    const n = this.pairs.size;
    for (const p of [...this.pairs]) this.drop(p);
    this.stats.cut += n;
    return n;
  }

  /** Open (forwarded) connections, per target base URL. */
  open(base) {
    return [...this.pairs].filter((p) => base === undefined || p.base === base).length;
  }

  /** Waits until pred(this) holds; throws naming what after ms. */
  async waitUntil(pred, ms, what) {
    const deadline = Date.now() + ms;
    while (!pred(this)) {
      if (Date.now() >= deadline) throw new Error(`proxy: timed out after ${ms} ms waiting for ${what}; stats ${JSON.stringify(this.stats)}`);
      await sleep(10);
    }
  }

  /** Closes the listener and destroys every connection, held ones included. */
  async close() {
    this.mode = 'refuse';
    this.cut();
    for (const client of this.held.splice(0)) client.destroy();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }

  accept(client) {
    this.stats.accepted++;
    client.on('error', () => {}); // a reset by the peer is expected here
    if (this.mode === 'refuse') {
      this.stats.refused++;
      client.destroy();
      return;
    }
    if (this.mode === 'hold') {
      // Not reading: what the client sends waits in the socket until pass().
      this.stats.held++;
      this.held.push(client);
      return;
    }
    this.forward(client);
  }

  forward(client) {
    const { host, port, base } = this.target;
    const upstream = net.connect({ host, port });
    upstream.on('error', () => {});
    const pair = { client, upstream, base };
    this.pairs.add(pair);
    this.stats.byTarget[base] = (this.stats.byTarget[base] ?? 0) + 1;
    client.on('close', () => this.drop(pair));
    upstream.on('close', () => this.drop(pair));
    client.pipe(upstream);
    upstream.pipe(client);
  }

  drop(pair) {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream.destroy();
  }
}

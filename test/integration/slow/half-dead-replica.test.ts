/**
 * A replica that passes its health checks but never answers data commands is an outlier:
 * after `outlierTimeouts` of its data connections were closed by commandTimeout, it leaves
 * the read rotation (INFO proxy: in_rotation=0), so reads are fast again; once it answers
 * again, it comes back.
 *
 * The half-dead replica is a TCP relay in front of a real replica. A connection whose first
 * command is INFO (the proxy's control connection: with no password its first command is
 * the health check's `INFO server replication persistence`, see src/backend/node.ts
 * checkHealth and control-client.ts) is forwarded. Any other connection is a black hole:
 * its handshake (`HELLO 2` for a data connection with no password, RESP2, db 0;
 * src/backend/connection.ts) is answered `+PONG` by the relay, so the connection is
 * established, and nothing after that is forwarded or answered. Healing the relay
 * forwards every new connection and closes the black-holed ones.
 */
import net from 'node:net';
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { callsDuring } from '../../helpers/stats.js';
import { waitFor } from '../../helpers/wait.js';
import {
  bounded,
  infoProxy,
  listenerFor,
  median,
  nodeLine,
  percentile,
  sleep,
  startProxyWithNewKeys,
  tally,
} from './_support.js';

const HANDSHAKE_PING = '*1\r\n$4\r\nPING\r\n';

class HalfDeadRelay {
  readonly server: net.Server;
  port = 0;
  healed = false;
  readonly blackHoled = new Set<net.Socket>();
  readonly sockets = new Set<net.Socket>();
  /** Connections by what the relay did with them. */
  readonly counts = { forwarded: 0, blackHoled: 0 };

  constructor(private readonly upstreamPort: number) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** From now on every new connection is forwarded; the black-holed ones are closed. */
  heal(): void {
    this.healed = true;
    for (const s of this.blackHoled) s.destroy();
    this.blackHoled.clear();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let first = Buffer.alloc(0);
    const decide = (chunk: Buffer) => {
      first = Buffer.concat([first, chunk]);
      if (!first.includes('\r\n')) return; // not even one line yet
      socket.off('data', decide);
      const text = first.toString('latin1');
      if (this.healed || /INFO/i.test(text)) this.forward(socket, first);
      else this.blackHole(socket, text);
    };
    socket.on('data', decide);
  }

  private forward(socket: net.Socket, first: Buffer): void {
    this.counts.forwarded++;
    const upstream = net.connect({ host: '127.0.0.1', port: this.upstreamPort });
    this.sockets.add(upstream);
    upstream.on('close', () => {
      this.sockets.delete(upstream);
      socket.destroy();
    });
    upstream.on('error', () => undefined);
    socket.on('close', () => upstream.destroy());
    upstream.write(first);
    socket.pipe(upstream);
    upstream.pipe(socket);
  }

  private blackHole(socket: net.Socket, text: string): void {
    this.counts.blackHoled++;
    this.blackHoled.add(socket);
    socket.on('close', () => this.blackHoled.delete(socket));
    // Answer the data connection's handshake, then swallow everything.
    if (text.startsWith(HANDSHAKE_PING)) socket.write('+PONG\r\n');
    socket.on('data', () => undefined);
  }
}

const set = await startReplicaSet({ replicas: 2 });
const { master } = set;
const [behindRelay, healthy] = set.replicas as [typeof set.replicas[0], typeof set.replicas[0]];
const keys = Array.from({ length: 20 }, (_, i) => [`hd:${i}`, `value-${i}`]).flat();
await master.client().mset(...keys);
await set.sync();

t.test('a replica that passes health checks but never answers reads leaves the rotation, and returns when healed', async (t) => {
  const relay = new HalfDeadRelay(behindRelay.port);
  await relay.listen();
  t.teardown(() => relay.close());

  const { port } = await startProxyWithNewKeys(
    t,
    listenerFor(master, [relay.port, healthy], { commandTimeout: 1000, healthCheckInterval: 200, outlierTimeouts: 2 }),
    ['outlierTimeouts', 'outlierWindow'],
  );
  const startInfo = await infoProxy(port, 1000);
  t.equal(
    nodeLine(startInfo, relay.port)?.inRotation,
    1,
    `the half-dead replica passes its health checks and starts in the rotation (${nodeLine(startInfo, relay.port)?.raw ?? startInfo.text})`,
  );

  // Open loops: 4 clients each issue a GET every 20 ms without waiting, for 6 s.
  const clients = [0, 1, 2, 3].map(() => ioredisClient(port, { maxRetriesPerRequest: 0 }));
  await Promise.all(clients.map((c) => c.ping()));
  const origin = performance.now();
  const duration = 6000;
  const reads: Array<{ at: number; ms: number; ok: boolean; detail: string }> = [];
  let ejectedAt = -1;
  const watcher = (async () => {
    while (performance.now() - origin < duration) {
      const info = await infoProxy(port, 300);
      if (ejectedAt < 0 && nodeLine(info, relay.port)?.inRotation === 0) ejectedAt = performance.now() - origin;
      await sleep(100);
    }
  })();
  await Promise.all(
    clients.map(async (client, n) => {
      const pending: Promise<void>[] = [];
      for (let i = n; performance.now() - origin < duration; i += 4) {
        const at = performance.now() - origin;
        const key = i % 20;
        pending.push(
          bounded(client.get(`hd:${key}`), 5000).then((r) => {
            const ok = !r.timedOut && r.error === undefined && r.value === `value-${key}`;
            const detail = r.timedOut ? 'no reply within 5000 ms' : r.error ? (r.error as Error).message : String(r.value);
            reads.push({ at, ms: r.ms, ok, detail });
          }),
        );
        await sleep(20);
      }
      await Promise.all(pending);
    }),
  );
  await watcher;

  const early = reads.filter((r) => r.at < 3000).map((r) => r.ms);
  const lastTwo = reads.filter((r) => r.at >= duration - 2000);
  const late = lastTwo.map((r) => r.ms);
  const slowLate = late.filter((ms) => ms > 500).length;
  t.comment(
    `relay: ${relay.counts.forwarded} connections forwarded, ${relay.counts.blackHoled} black-holed; ` +
      `in_rotation=0 first seen at ${ejectedAt < 0 ? 'never' : `${Math.round(ejectedAt)} ms`}`,
  );
  t.comment(
    `read latency, first 3 s: median ${median(early).toFixed(1)} ms, p90 ${percentile(early, 90).toFixed(1)} ms (${early.length} reads); ` +
      `last 2 s: median ${median(late).toFixed(1)} ms, p90 ${percentile(late, 90).toFixed(1)} ms, max ${Math.max(...late).toFixed(1)} ms (${late.length} reads, ${slowLate} over 500 ms)`,
  );
  const failed = reads.filter((r) => !r.ok);
  t.equal(failed.length, 0, `every read got its value (${failed.length} of ${reads.length} did not: ${tally(failed.map((r) => r.detail))})`);
  t.ok(early.length > 100 && late.length > 100, `reads in both windows (${early.length}, ${late.length})`);
  t.ok(median(late) < 50, `median read latency over the last 2 s is back to normal: ${median(late).toFixed(1)} ms (want < 50; first 3 s: ${median(early).toFixed(1)} ms)`);
  // The median alone misses a replica that holds a quarter of the reads for up to
  // commandTimeout (the reads sent late in a connection's life are retried early), so the
  // tail is checked too.
  t.ok(
    percentile(late, 90) < 100,
    `p90 read latency over the last 2 s is back to normal: ${percentile(late, 90).toFixed(1)} ms (want < 100; ${slowLate} of ${late.length} reads over 500 ms)`,
  );
  t.ok(ejectedAt >= 0, `INFO proxy showed the half-dead replica in_rotation=0 (${ejectedAt < 0 ? 'never, in 6 s' : `at ${Math.round(ejectedAt)} ms`})`);
  const healthyLine = nodeLine(await infoProxy(port, 1000), healthy.port);
  t.equal(healthyLine?.inRotation, 1, `the healthy replica stays in the rotation (${healthyLine?.raw})`);

  // Heal: the relay forwards everything from now on.
  relay.heal();
  const healedAt = performance.now();
  let lastLine = '';
  const back = await waitFor(
    'the healed replica back in the rotation',
    async () => {
      const info = await infoProxy(port, 300);
      lastLine = nodeLine(info, relay.port)?.raw ?? info.text;
      return nodeLine(info, relay.port)?.inRotation === 1;
    },
    { timeoutMs: 5000, intervalMs: 100 },
  ).then(
    () => true,
    () => false,
  );
  t.ok(back, `the healed replica is back in_rotation=1 within 5 s (${Math.round(performance.now() - healedAt)} ms; last seen: ${lastLine})`);

  let served = [0];
  const serving = await waitFor(
    'reads through the proxy to reach the healed replica',
    async () => {
      served = await callsDuring([behindRelay], 'get', async () => {
        for (let i = 0; i < 20; i++) {
          const r = await bounded(clients[0]!.get('hd:1'), 2000);
          if (r.value !== 'value-1') throw new Error(`GET hd:1: ${r.timedOut ? 'no reply in 2000 ms' : String(r.error ?? r.value)}`);
        }
      });
      return served[0]! > 0;
    },
    { timeoutMs: 5000, intervalMs: 100 },
  ).then(
    () => true,
    (e: Error) => e,
  );
  t.equal(serving, true, `the healed replica serves reads again (cmdstat_get grew by ${served[0]}${serving === true ? '' : `; ${(serving as Error).message}`})`);
});

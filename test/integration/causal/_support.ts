/**
 * Helpers for the causal-reads tests: a replica whose replication stream arrives late
 * (a delaying TCP relay between it and its master), replication-offset waits, and a
 * proxy start that reports a refused `causalReads` key as a failed assertion.
 *
 * The delayed link (`DelayRelay`, `startSlowReplicaSet`)
 * ----------------------------------------------------
 * The slow replica runs `replicaof 127.0.0.1 <relay port>`. The relay accepts the
 * replica's connection, opens one to the master, and copies bytes both ways:
 *   - replica -> master (PING, REPLCONF, PSYNC, the REPLCONF ACKs): at once;
 *   - master -> replica (the handshake replies, the RDB, the command stream): each chunk
 *     is queued with a due time `max(now + delayMs, due time of the previous chunk)` and
 *     written when due, by one timer per connection that always serves the head of the
 *     queue, so the order of the stream is kept whatever `delayMs` does meanwhile.
 * The replica therefore answers reads at once but applies every write `delayMs` late.
 * `delayMs` can be changed at any time (the set starts the link with 0 so that the
 * handshake and full sync are quick, then sets the real delay). When the master side
 * closes (master killed), the relay by default still delivers what is queued and then
 * closes the replica side, like data already in flight on a network; with
 * `dropOnUpstreamClose` it drops the queue and closes at once, so the replica never gets
 * the last writes. Clients (the proxy included) talk to the master and the replica
 * directly: only the replication link goes through the relay.
 */
import net from 'node:net';
import t from 'tap';
import { listenerFor, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { startRedis, type RedisServer } from '../../helpers/redis.js';
import { sleep, waitFor } from '../../helpers/wait.js';

export { listenerFor, sleep, waitFor };

export interface DelayRelayOptions {
  /** Delay of the master -> replica direction, in ms (default 300). */
  delayMs?: number;
  /** On the master side closing: drop what is queued instead of delivering it (default false). */
  dropOnUpstreamClose?: boolean;
}

interface Link {
  down: net.Socket;
  up: net.Socket;
  queue: Array<{ due: number; chunk: Buffer }>;
  timer: NodeJS.Timeout | undefined;
  lastDue: number;
  upClosed: boolean;
}

/** A TCP relay to `127.0.0.1:upstreamPort` that delays the upstream -> downstream direction. */
export class DelayRelay {
  delayMs: number;
  dropOnUpstreamClose: boolean;
  port = 0;
  readonly stats = { connections: 0, chunksDelayed: 0, bytesDelayed: 0, maxQueued: 0 };
  private readonly server: net.Server;
  private readonly links = new Set<Link>();

  constructor(
    readonly upstreamPort: number,
    { delayMs = 300, dropOnUpstreamClose = false }: DelayRelayOptions = {},
  ) {
    this.delayMs = delayMs;
    this.dropOnUpstreamClose = dropOnUpstreamClose;
    this.server = net.createServer((down) => this.accept(down));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Stops listening and drops every link. */
  async close(): Promise<void> {
    for (const link of this.links) this.drop(link);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(down: net.Socket): void {
    this.stats.connections++;
    const up = net.connect({ host: '127.0.0.1', port: this.upstreamPort });
    const link: Link = { down, up, queue: [], timer: undefined, lastDue: 0, upClosed: false };
    this.links.add(link);
    down.setNoDelay(true);
    up.setNoDelay(true);
    down.on('error', () => undefined);
    up.on('error', () => undefined);
    // replica -> master: at once (net buffers what is written before `up` connects).
    down.on('data', (chunk: Buffer) => up.write(chunk));
    down.on('close', () => this.drop(link));
    // master -> replica: delayed, in order.
    up.on('data', (chunk: Buffer) => this.enqueue(link, chunk));
    up.on('close', () => {
      link.upClosed = true;
      if (this.dropOnUpstreamClose || link.queue.length === 0) this.drop(link);
      // else: pump() ends `down` once the queue is delivered.
    });
  }

  private enqueue(link: Link, chunk: Buffer): void {
    const now = performance.now();
    if (this.delayMs <= 0 && link.queue.length === 0) {
      link.down.write(chunk);
      return;
    }
    const due = Math.max(now + this.delayMs, link.lastDue);
    link.lastDue = due;
    link.queue.push({ due, chunk });
    this.stats.chunksDelayed++;
    this.stats.bytesDelayed += chunk.length;
    this.stats.maxQueued = Math.max(this.stats.maxQueued, link.queue.length);
    if (link.timer === undefined) link.timer = setTimeout(() => this.pump(link), Math.max(0, due - now));
  }

  private pump(link: Link): void {
    link.timer = undefined;
    const now = performance.now();
    while (link.queue.length > 0 && link.queue[0]!.due <= now) link.down.write(link.queue.shift()!.chunk);
    if (link.queue.length > 0) {
      link.timer = setTimeout(() => this.pump(link), Math.max(0, link.queue[0]!.due - now));
    } else if (link.upClosed) {
      link.down.end();
      this.links.delete(link);
    }
  }

  private drop(link: Link): void {
    if (link.timer !== undefined) clearTimeout(link.timer);
    link.timer = undefined;
    link.queue.length = 0;
    link.up.destroy();
    link.down.destroy();
    this.links.delete(link);
  }
}

/** INFO replication of `server` via a fresh ioredis call (its admin client). */
async function replication(server: RedisServer): Promise<Record<string, string>> {
  return server.info('replication');
}

/** The master's current `master_repl_offset`. */
export async function masterOffset(master: RedisServer): Promise<number> {
  return Number((await replication(master)).master_repl_offset);
}

/** The offset `replica` has processed, or -1 while its link is not up. */
export async function replicaOffset(replica: RedisServer): Promise<number> {
  const info = await replication(replica);
  if (info.role !== 'slave' || info.master_link_status !== 'up') return -1;
  return Number(info.slave_repl_offset ?? -1);
}

/** Waits (bounded) until `replica` has processed everything `master` has sent so far. */
export async function caughtUp(master: RedisServer, replica: RedisServer, timeoutMs = 3000): Promise<number> {
  const target = await masterOffset(master);
  const started = performance.now();
  await waitFor(
    `replica ${replica.port} to reach offset ${target}`,
    async () => (await replicaOffset(replica)) >= target,
    { timeoutMs, intervalMs: 10 },
  );
  return performance.now() - started;
}

export interface SlowReplicaSet {
  master: RedisServer;
  /** The replica behind the delaying relay. */
  slow: RedisServer;
  /** Replicas linked directly (as many as asked for). */
  normal: RedisServer[];
  relay: DelayRelay;
}

/**
 * A master, one replica whose replication link goes through a `DelayRelay` (delay
 * `delayMs`, set once the link is up and synced), and `normal` directly linked replicas.
 * Returned once every replica's link is up and caught up. Everything is stopped at the
 * end of `scope` (default: the test file).
 */
export async function startSlowReplicaSet({
  delayMs = 300,
  normal = 0,
  dropOnUpstreamClose = false,
  t: scope = t,
}: { delayMs?: number; normal?: number; dropOnUpstreamClose?: boolean; t?: Pick<typeof t, 'teardown'> } = {}): Promise<SlowReplicaSet> {
  const master = await startRedis({ t: scope });
  const relay = new DelayRelay(master.port, { delayMs: 0, dropOnUpstreamClose });
  await relay.listen();
  scope.teardown(() => relay.close());
  const [slow, ...normals] = await Promise.all([
    startRedis({ replicaOf: relay.port, t: scope }),
    ...Array.from({ length: normal }, () => startRedis({ replicaOf: master.port, t: scope })),
  ]);
  for (const replica of [slow!, ...normals]) {
    await waitFor(
      `master_link_status:up on replica ${replica.port}`,
      async () => (await replication(replica)).master_link_status === 'up',
      { timeoutMs: 8000, intervalMs: 20 },
    );
    await caughtUp(master, replica, 3000);
  }
  relay.delayMs = delayMs;
  return { master, slow: slow!, normal: normals, relay };
}

/**
 * Checks on the servers themselves that the slow replica lags: a SET on the master is
 * not readable on the replica right after its reply, and becomes readable only after
 * about the relay's delay. Returns what was measured.
 */
export async function measureLag(
  set: SlowReplicaSet,
  key = 'lag:probe',
): Promise<{ staleRightAfter: boolean; visibleAfterMs: number }> {
  const m = set.master.client();
  const r = set.slow.client();
  const value = `probe-${Date.now()}-${Math.random()}`;
  await m.set(key, value);
  const started = performance.now();
  const first = await r.get(key);
  await waitFor(`the slow replica to show ${key}`, async () => (await r.get(key)) === value, {
    timeoutMs: 3000,
    intervalMs: 5,
  });
  return { staleRightAfter: first !== value, visibleAfterMs: performance.now() - started };
}

/**
 * Starts the proxy with `listener`. When the config refuses `causalReads` (as before the
 * feature exists), that is a failed assertion and the proxy is started without it, so
 * that the rest of the test still runs and shows today's behaviour. The proxy is closed
 * at the end of `scope` (default `tt`). Call it in a subtest: a failed assertion on the
 * top-level test ends the file's TAP stream early (and its teardowns run).
 */
export async function startCausalProxy(
  tt: Pick<typeof t, 'teardown' | 'fail' | 'comment'>,
  listener: Record<string, unknown>,
  { scope = tt }: { scope?: Pick<typeof t, 'teardown'> } = {},
): Promise<TestProxy & { refused: boolean }> {
  try {
    return { ...(await startTestProxy([listener], { t: scope })), refused: false };
  } catch (err) {
    const message = (err as Error).message;
    if (!('causalReads' in listener) || !message.includes('causalReads')) throw err;
    tt.fail(
      `the config accepts causalReads: ${JSON.stringify(listener.causalReads)} ` +
        `(refused: ${message.split('\n').slice(0, 2).join(' | ').slice(0, 200)}...)`,
    );
    const { causalReads: _dropped, ...rest } = listener;
    tt.comment('started WITHOUT causalReads: what follows shows the behaviour of the proxy as it is');
    return { ...(await startTestProxy([rest], { t: scope })), refused: true };
  }
}

/** "3× 'a', 1× 'b'" for a list of values (most frequent first, at most `max` kinds). */
export function tally(values: string[], max = 6): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const kinds = [...counts].sort((a, b) => b[1] - a[1]);
  const shown = kinds.slice(0, max).map(([v, n]) => `${n}× ${JSON.stringify(v.slice(0, 120))}`);
  if (kinds.length > max) shown.push(`… ${kinds.length - max} more kinds`);
  return shown.length > 0 ? shown.join(', ') : 'none';
}

/**
 * Real redis-server processes for the integration tests: one per call, on a free port,
 * in a fresh temporary directory, never persisting anything. Every server started is
 * stopped when the test file ends (tap teardown), and SIGKILLed if the test process
 * exits or dies first (see spawn.ts).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import type tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import t from 'tap';
import { freePort, ioredisClient } from './clients.js';
import { startServerProcess, type ServerProcess } from './spawn.js';
import { waitFor } from './wait.js';

/** A redis-server process (the process itself: ./spawn.ts ServerProcess; its `stop` also closes the admin client). */
export interface RedisServer extends ServerProcess {
  /** A new ioredis client connected directly to this server (closed at the end of the file). */
  client(): Redis;
  /** INFO `section`, parsed into `field -> value`. */
  info(section: string): Promise<Record<string, string>>;
  /** `calls=` of `cmdstat_<cmd>` in INFO commandstats (`get`, `object|encoding`); 0 if absent. */
  commandCalls(cmd: string): Promise<number>;
  /** CONFIG RESETSTAT. */
  resetStats(): Promise<void>;
}

/**
 * A TLS-only redis-server (`--port 0 --tls-port <port>`), from the files of
 * ./certs.ts. The test's own clients of it (`client()`, `info()`) connect with TLS too.
 */
export interface RedisTls {
  cert: string;
  key: string;
  /** `--tls-ca-cert-file`: the CA of client certificates (and of the master, for a replica). */
  ca: string;
  /** `--tls-auth-clients yes`; default no (clients need no certificate). */
  authClients?: boolean;
  /** The certificate the test's own clients present (needed with authClients). */
  client?: { cert: string; key: string };
}

export interface StartRedisOptions {
  /** Listen with TLS only, on `port` (a replica then replicates over TLS: `--tls-replication yes`). */
  tls?: RedisTls;
  /** Port of a master to replicate (`--replicaof 127.0.0.1 <port>`). */
  replicaOf?: number;
  /** Extra redis-server arguments, e.g. `['--maxmemory', '10mb']`. */
  args?: string[];
  /** Port to use (e.g. to restart a killed server in its place); default: a free one. */
  port?: number;
  /** Test whose teardown stops the server; default: the whole test file. */
  t?: Pick<typeof t, 'teardown'>;
}

/** Parses the text of an INFO reply into `field -> value` (sections flattened). */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return fields;
}

/** What the test's own clients of a TLS server pass to tls.connect / ioredis's `tls`. */
function clientTls(opts: RedisTls): tls.ConnectionOptions {
  const options: tls.ConnectionOptions = { ca: readFileSync(opts.ca) };
  if (opts.client !== undefined) {
    options.cert = readFileSync(opts.client.cert);
    options.key = readFileSync(opts.client.key);
  }
  return options;
}

async function spawnOnce(opts: StartRedisOptions): Promise<RedisServer | undefined> {
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'redis-proxy-test-'));
  const tlsArgs =
    opts.tls === undefined
      ? []
      : [
          '--port', '0',
          '--tls-port', String(port),
          '--tls-cert-file', opts.tls.cert,
          '--tls-key-file', opts.tls.key,
          '--tls-ca-cert-file', opts.tls.ca,
          '--tls-auth-clients', opts.tls.authClients === true ? 'yes' : 'no',
          ...(opts.replicaOf !== undefined ? ['--tls-replication', 'yes'] : []),
        ];
  const tlsOptions = opts.tls === undefined ? undefined : clientTls(opts.tls);
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    '--daemonize', 'no',
    '--logfile', '',
    // A replica attaching to this server gets its full sync at once (a diskless sync
    // would leave it offline until its first REPLCONF ACK, up to a second later).
    '--repl-diskless-sync', 'no',
    '--repl-diskless-sync-delay', '0',
    // DEBUG SLEEP etc. for tests that need a slow or frozen server.
    '--enable-debug-command', 'local',
    ...(opts.replicaOf !== undefined ? ['--replicaof', '127.0.0.1', String(opts.replicaOf)] : []),
    ...tlsArgs,
    ...(opts.args ?? []),
  ];
  const proc = await startServerProcess('redis-server', 'redis-server', args, {
    port,
    dir,
    retryOnClash: opts.port === undefined,
    tls: tlsOptions,
  });
  if (proc === undefined) return undefined;

  let admin: Redis | undefined;
  const tlsClient = tlsOptions === undefined ? {} : { tls: tlsOptions };
  const adminClient = () => (admin ??= ioredisClient(port, { maxRetriesPerRequest: 1, ...tlsClient }));
  let stopping: Promise<void> | undefined;

  const server: RedisServer = {
    port,
    pid: proc.pid,
    dir,
    stop() {
      stopping ??= (async () => {
        admin?.disconnect();
        await proc.stop();
      })();
      return stopping;
    },
    kill: (signal?: NodeJS.Signals) => proc.kill(signal),
    exited: () => proc.exited(),
    client: () => ioredisClient(port, tlsClient),
    async info(section: string) {
      return parseInfo(await adminClient().info(section));
    },
    async commandCalls(cmd: string) {
      const stats = await server.info('commandstats');
      const line = stats[`cmdstat_${cmd.toLowerCase()}`];
      const match = line === undefined ? null : /(?:^|,)calls=(\d+)/.exec(line);
      return match ? Number(match[1]) : 0;
    },
    async resetStats() {
      await adminClient().config('RESETSTAT');
    },
    output: () => proc.output(),
  };
  return server;
}

/** Starts a redis-server on a free port and waits until it answers PING. */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const server = await spawnOnce(opts);
    if (server) {
      (opts.t ?? t).teardown(() => server.stop());
      return server;
    }
  }
  throw new Error('could not find a free port for redis-server');
}

export interface ReplicaSet {
  master: RedisServer;
  replicas: RedisServer[];
  /** Waits until every live replica has processed everything the master has now. */
  sync(timeoutMs?: number): Promise<void>;
  /** CONFIG RESETSTAT on every live server. */
  resetStats(): Promise<void>;
  stop(): Promise<void>;
}

/** The replication offset a replica has processed, or undefined when its link is down. */
async function replicaOffset(replica: RedisServer): Promise<number | undefined> {
  const info = await replica.info('replication');
  if (info.role !== 'slave' || info.master_link_status !== 'up') return undefined;
  return Number(info.slave_repl_offset ?? info.master_repl_offset);
}

/**
 * A master and `replicas` replicas of it, returned once every replica's link is up and
 * it has caught up with the master's replication offset. With `tls`, every server is
 * TLS-only and the replicas replicate over TLS.
 */
export async function startReplicaSet(
  {
    replicas = 2,
    args = [],
    tls: tlsFiles,
    t: scope,
  }: { replicas?: number; args?: string[]; tls?: RedisTls; t?: StartRedisOptions['t'] } = {},
): Promise<ReplicaSet> {
  const withTls = tlsFiles === undefined ? {} : { tls: tlsFiles };
  const master = await startRedis({ args, t: scope, ...withTls });
  const replicaServers = await Promise.all(
    Array.from({ length: replicas }, () => startRedis({ replicaOf: master.port, args, t: scope, ...withTls })),
  );
  const exited = new Set<RedisServer>();
  for (const s of [master, ...replicaServers]) void s.exited().then(() => exited.add(s));
  const alive = (s: RedisServer) => !exited.has(s);

  const set: ReplicaSet = {
    master,
    replicas: replicaServers,
    async sync(timeoutMs = 5000) {
      const target = Number((await master.info('replication')).master_repl_offset);
      await Promise.all(
        replicaServers.filter(alive).map((replica) =>
          waitFor(
            `replica ${replica.port} to reach offset ${target}`,
            async () => ((await replicaOffset(replica)) ?? -1) >= target,
            { timeoutMs },
          ),
        ),
      );
    },
    async resetStats() {
      await Promise.all([master, ...replicaServers].filter(alive).map((s) => s.resetStats()));
    },
    async stop() {
      await Promise.all([master, ...replicaServers].map((s) => s.stop()));
    },
  };
  await waitFor(
    `the master to see ${replicas} online replicas`,
    async () => {
      const info = await master.info('replication');
      const online = Object.keys(info).filter((k) => /^slave\d+$/.test(k) && info[k]!.includes('state=online'));
      return online.length === replicas;
    },
    { timeoutMs: 5000 },
  );
  await set.sync(5000);
  return set;
}

/**
 * Real Redis Sentinel processes for the integration tests, monitoring a master started
 * with redis.ts: each on a free port, in a fresh temporary directory holding the config
 * file Sentinel rewrites. Every Sentinel started is stopped when the test (or the file)
 * ends, and SIGKILLed if the test process exits or dies first (see spawn.ts).
 *
 * Sentinel: https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import t from 'tap';
import { freePort, ioredisClient } from './clients.js';
import type { RedisServer } from './redis.js';
import { startServerProcess, type ServerProcess } from './spawn.js';
import { waitFor } from './wait.js';

/** A redis-sentinel process (the process itself: ./spawn.ts ServerProcess; its `stop` also closes the admin client). */
export interface SentinelProcess extends ServerProcess {
  /** `127.0.0.1:<port>`, as the watcher names it. */
  readonly address: string;
  /** A new ioredis client connected to this Sentinel (closed at the end of the file). */
  client(): Redis;
  /** `SENTINEL <args>` on a shared client. */
  sentinel(...args: string[]): Promise<unknown>;
  /** `SENTINEL MASTER <name>` parsed into `field -> value`. */
  masterState(name?: string): Promise<Record<string, string>>;
}

export interface StartSentinelsOptions {
  /** How many Sentinels (default 3). */
  count?: number;
  /** Name the master is monitored under (default `mymaster`). */
  masterName?: string;
  /** Sentinels that must agree the master is down (default 2). */
  quorum?: number;
  /** `down-after-milliseconds` (default 1000). */
  downAfterMs?: number;
  /** `failover-timeout` in ms (default 5000). */
  failoverTimeoutMs?: number;
  /** Test whose teardown stops the Sentinels; default: the whole test file. */
  t?: Pick<typeof t, 'teardown'>;
}

/** redis-sentinel, or redis-server in Sentinel mode where redis-sentinel is not installed. */
const sentinelCommand = (conf: string): [string, string[]] =>
  spawnSync('sh', ['-c', 'command -v redis-sentinel'], { stdio: 'ignore' }).status === 0
    ? ['redis-sentinel', [conf]]
    : ['redis-server', [conf, '--sentinel']];

/** A flat `[field, value, ...]` reply as an object. */
export function fieldsOf(reply: unknown): Record<string, string> {
  const fields: Record<string, string> = {};
  if (!Array.isArray(reply)) return fields;
  for (let i = 0; i + 1 < reply.length; i += 2) fields[String(reply[i])] = String(reply[i + 1]);
  return fields;
}

async function spawnOnce(masterPort: number, opts: Required<Omit<StartSentinelsOptions, 't'>>): Promise<SentinelProcess | undefined> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'redis-proxy-sentinel-'));
  const conf = path.join(dir, 'sentinel.conf');
  const name = opts.masterName;
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      'daemonize no',
      `dir ${dir}`,
      'logfile ""',
      'sentinel resolve-hostnames no',
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${opts.quorum}`,
      `sentinel down-after-milliseconds ${name} ${opts.downAfterMs}`,
      `sentinel failover-timeout ${name} ${opts.failoverTimeoutMs}`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'),
  );
  const [command, args] = sentinelCommand(conf);
  const proc = await startServerProcess('redis-sentinel', command, args, { port, dir, retryOnClash: true });
  if (proc === undefined) return undefined;

  let admin: Redis | undefined;
  const adminClient = () => (admin ??= ioredisClient(port, { maxRetriesPerRequest: 1 }));
  let stopping: Promise<void> | undefined;
  const sentinel: SentinelProcess = {
    port,
    pid: proc.pid,
    address: `127.0.0.1:${port}`,
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
    client: () => ioredisClient(port),
    sentinel: (...args: string[]) => adminClient().call('SENTINEL', ...args),
    async masterState(masterName = name) {
      return fieldsOf(await adminClient().call('SENTINEL', 'MASTER', masterName));
    },
    output: () => proc.output(),
  };
  return sentinel;
}

/**
 * Starts `count` Sentinels monitoring `master` (a server or its port) and waits until
 * each answers PING. They do not know each other yet: see {@link waitForSentinels}.
 */
export async function startSentinels(
  master: RedisServer | number,
  opts: StartSentinelsOptions = {},
): Promise<SentinelProcess[]> {
  const settings = {
    count: opts.count ?? 3,
    masterName: opts.masterName ?? 'mymaster',
    quorum: opts.quorum ?? 2,
    downAfterMs: opts.downAfterMs ?? 1000,
    failoverTimeoutMs: opts.failoverTimeoutMs ?? 5000,
  };
  const masterPort = typeof master === 'number' ? master : master.port;
  const startOne = async (): Promise<SentinelProcess> => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const sentinel = await spawnOnce(masterPort, settings);
      if (sentinel) {
        (opts.t ?? t).teardown(() => sentinel.stop());
        return sentinel;
      }
    }
    throw new Error('could not find a free port for redis-sentinel');
  };
  return Promise.all(Array.from({ length: settings.count }, startOne));
}

/**
 * Waits until every Sentinel in `sentinels` sees `replicas` replicas of the master and
 * knows the other Sentinels (`num-slaves`, `num-other-sentinels` of `SENTINEL MASTER`):
 * before that a failover can be neither voted nor completed. Sentinels find each other
 * through hello messages published every 2 s.
 */
export async function waitForSentinels(
  sentinels: SentinelProcess[],
  { replicas, masterName = 'mymaster', timeoutMs = 10_000 }: { replicas: number; masterName?: string; timeoutMs?: number },
): Promise<void> {
  await Promise.all(
    sentinels.map((s) =>
      waitFor(
        `Sentinel ${s.address} to see ${replicas} replicas and ${sentinels.length - 1} other Sentinels`,
        async () => {
          const state = await s.masterState(masterName);
          return Number(state['num-slaves']) === replicas && Number(state['num-other-sentinels']) === sentinels.length - 1;
        },
        { timeoutMs, intervalMs: 100 },
      ),
    ),
  );
}

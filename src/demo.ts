/**
 * `redis-proxy --demo`: a master and two replicas from the local `redis-server` binary,
 * on free ports in a fresh temporary directory, with a proxy in front of them on 6380
 * (or the next free port), so the proxy can be tried without writing a config.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normalizeConfig } from './config/index.js';
import type { ProxyConfig } from './config/index.js';
import type { Logger } from './log.js';
import { findRedisServer, freePort, isPortFree, LOCALHOST, RedisProcess } from './demo/redis-process.js';

/** What the demo needs of a running proxy (the Proxy of src/index.ts satisfies it). */
export interface DemoProxy {
  readonly listeners: ReadonlyArray<{ name: string; port: number }>;
  close(timeoutMs?: number): Promise<void>;
}

/** `startProxy` of src/index.ts, passed in by the CLI. */
export type StartProxy = (config: ProxyConfig, logger: Logger) => Promise<DemoProxy>;

export interface DemoOptions {
  logger: Logger;
  startProxy: StartProxy;
  /** First proxy port tried; the next ones are tried while in use. Default 6380. */
  firstPort?: number;
}

/** A running demo: three servers and a proxy. */
export interface Demo {
  readonly config: ProxyConfig;
  readonly proxy: DemoProxy;
  readonly proxyPort: number;
  readonly master: RedisProcess;
  readonly replicas: readonly RedisProcess[];
  /** The temporary directory holding the servers' working directories. */
  readonly dir: string;
  /** Text telling the user how to connect and what to try. */
  readonly banner: string;
  /**
   * Closes the proxy (waiting up to `timeoutMs` for in-flight replies), then stops the
   * three servers and removes the temporary directory. Idempotent.
   */
  close(timeoutMs?: number): Promise<void>;
}

const PROXY_PORT_ATTEMPTS = 20;

/**
 * Starts the demo: master, two replicas (waiting until both report
 * `master_link_status:up`), then the proxy. If any step fails, whatever was started is
 * stopped and the temporary directory removed before the error is thrown.
 *
 * @throws Error when redis-server is missing, a server does not start or link, or no
 *   proxy port among the 20 from `firstPort` can be listened on.
 */
export async function startDemo(options: DemoOptions): Promise<Demo> {
  const { logger } = options;
  const binary = findRedisServer();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'redis-proxy-demo-'));
  const servers: RedisProcess[] = [];
  let proxy: DemoProxy | undefined;

  // If the process exits without close() (second Ctrl-C, crash), still kill the
  // servers (they are in their own process group) and remove the directory.
  const onExit = (): void => {
    for (const s of servers) s.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', onExit);

  let closed: Promise<void> | undefined;
  const close = (timeoutMs?: number): Promise<void> => {
    closed ??= (async () => {
      try {
        if (proxy !== undefined) await proxy.close(timeoutMs);
      } finally {
        await Promise.all(servers.map((s) => s.stop()));
        rmSync(dir, { recursive: true, force: true });
        process.off('exit', onExit);
      }
    })();
    return closed;
  };

  try {
    const masterPort = await freePort();
    const master = await RedisProcess.start({ binary, port: masterPort, dir: path.join(dir, 'master') });
    servers.push(master);
    for (const name of ['replica-1', 'replica-2']) {
      const port = await freePort();
      servers.push(await RedisProcess.start({ binary, port, dir: path.join(dir, name), replicaOf: masterPort }));
    }
    const replicas = servers.slice(1);
    await Promise.all(replicas.map((r) => r.waitForLinkUp()));
    logger.debug({ master: masterPort, replicas: replicas.map((r) => r.port), dir }, 'demo servers ready');

    let config: ProxyConfig | undefined;
    let proxyPort = options.firstPort ?? 6380;
    for (let attempt = 0; ; attempt++, proxyPort++) {
      if (attempt >= PROXY_PORT_ATTEMPTS) {
        throw new Error(`no free port for the proxy among ${proxyPort - attempt}-${proxyPort - 1}`);
      }
      if (!(await isPortFree(proxyPort))) continue;
      config = normalizeConfig({
        logLevel: logger.level,
        shutdownTimeout: 2000,
        listeners: [
          {
            name: 'demo',
            listen: proxyPort,
            master: { host: LOCALHOST, port: masterPort },
            slave: replicas.map((r) => ({ host: LOCALHOST, port: r.port })),
          },
        ],
      });
      try {
        proxy = await options.startProxy(config, logger);
        break;
      } catch (err) {
        // Taken between the check and the start: try the next port.
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
    const banner = demoBanner(proxyPort, master.port, replicas.map((r) => r.port), dir);
    return { config: config!, proxy: proxy!, proxyPort, master, replicas, dir, banner, close };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

/** The text printed once the demo runs. */
export function demoBanner(proxyPort: number, masterPort: number, replicaPorts: readonly number[], dir: string): string {
  const [r1, r2] = replicaPorts;
  return [
    '',
    'redis-proxy demo is running.',
    '',
    `  proxy     ${LOCALHOST}:${proxyPort}   connect here:  redis-cli -p ${proxyPort}`,
    `  master    ${LOCALHOST}:${masterPort}   gets the writes`,
    ...replicaPorts.map((p) => `  replica   ${LOCALHOST}:${p}   gets the reads (replicaof ${masterPort})`),
    '',
    'Try:',
    `  redis-cli -p ${proxyPort} set greeting hello`,
    `  redis-cli -p ${proxyPort} get greeting          # run it a few times`,
    `  redis-cli -p ${masterPort} info commandstats     # the SET was executed here`,
    `  redis-cli -p ${r1} info commandstats     # the GETs are spread over the replicas`,
    `  redis-cli -p ${r2} info commandstats`,
    '',
    `Servers' files: ${dir} (removed on exit).`,
    'Proxy logs are JSON lines below (warnings only unless --log-level is given).',
    'Press Ctrl-C to stop the proxy and the three Redis servers.',
    '',
  ].join('\n');
}

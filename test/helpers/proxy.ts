/**
 * The proxy under test: in-process (`startTestProxy`, the usual way) or as the real CLI
 * in a child process (`spawnProxyCli`, for signals and exit codes). Both are closed when
 * the test file ends.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { normalizeConfig } from '../../src/config/index.js';
import type { LogLevel } from '../../src/config/types.js';
import { startProxy, type Proxy, type ReloadOutcome } from '../../src/index.js';
import { createLogger } from '../../src/log.js';
import type { RedisOptions } from 'ioredis';
import { closeAllClients, freePort, ioredisClient } from './clients.js';
import { closeRawConnections, rawCommand } from './raw.js';
import type { RedisServer } from './redis.js';
import { forgetDir, spawnGuarded } from './spawn.js';
import { sleep, waitFor } from './wait.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

type RawListener = Record<string, unknown>;

/** The listener entries of a raw config, array form or object form (`{ listeners: [...] }`). */
function rawListeners(raw: unknown): RawListener[] {
  if (Array.isArray(raw)) return raw as RawListener[];
  if (raw !== null && typeof raw === 'object') {
    const listeners = (raw as { listeners?: unknown }).listeners;
    if (Array.isArray(listeners)) return listeners as RawListener[];
  }
  return [];
}

/** A deep copy of `raw` where every listener with `listen: 0` has a free port instead. */
export async function withFreePorts(raw: unknown): Promise<unknown> {
  const copy: unknown = structuredClone(raw);
  for (const listener of rawListeners(copy)) {
    if (listener.listen === 0) listener.listen = await freePort();
  }
  return copy;
}

/** `{ host, port }` of a test redis-server, as a node of the raw config. */
export function node(server: RedisServer | number, extra: Record<string, unknown> = {}) {
  const port = typeof server === 'number' ? server : server.port;
  return { host: '127.0.0.1', port, ...extra };
}

/**
 * One raw listener entry (listen: 0, i.e. a free port) for `master` and `replicas`,
 * with extra settings such as `readPolicy`. The one place that knows the config's
 * field names for nodes.
 */
export function listenerFor(
  master: RedisServer | number,
  replicas: (RedisServer | number | { server: RedisServer; weight: number })[] = [],
  settings: Record<string, unknown> = {},
): RawListener {
  return {
    listen: 0,
    master: node(master),
    slave: replicas.map((r) =>
      typeof r === 'object' && 'server' in r ? node(r.server, { weight: r.weight }) : node(r),
    ),
    ...settings,
  };
}

export interface TestProxy {
  proxy: Proxy;
  /** Port of the first listener. */
  port: number;
  /** Ports of all listeners, in config order. */
  ports: number[];
  /**
   * Applies `raw` live (as SIGHUP does); listeners with `listen: 0` get free ports (new
   * listeners), so a kept listener must name its port (`listen: tp.port`).
   * @throws Error when the reload did not apply in full
   */
  reload(raw: unknown): Promise<ReloadOutcome>;
  close(): Promise<void>;
}

function testLogLevel(): LogLevel {
  return (process.env.REDIS_PROXY_TEST_LOG as LogLevel | undefined) ?? 'silent';
}

/**
 * Starts the proxy in this process with the given raw (JSON) config, listeners with
 * `listen: 0` getting free ports. Closed at the end of the test (or file).
 */
export async function startTestProxy(
  raw: unknown,
  { t: scope = t }: { t?: Pick<typeof t, 'teardown'> } = {},
): Promise<TestProxy> {
  let proxy: Proxy | undefined;
  for (let attempt = 1; proxy === undefined; attempt++) {
    const config = normalizeConfig(await withFreePorts(raw));
    try {
      proxy = await startProxy(config, createLogger(testLogLevel()));
    } catch (err) {
      // Another process took a port between freePort() and listen(): try other ports.
      const inUse = /EADDRINUSE/.test(String((err as { code?: string }).code ?? (err as Error).message));
      if (!inUse || attempt >= 3) throw err;
    }
  }
  const ports = proxy.listeners.map((l) => l.port);
  let closing: Promise<void> | undefined;
  // The test's clients of this proxy go first, so that close() has no sessions to wait for.
  const close = () =>
    (closing ??= (async () => {
      closeRawConnections(ports);
      await closeAllClients(ports);
      await proxy.close(2000);
    })());
  scope.teardown(close);
  const reload = async (next: unknown): Promise<ReloadOutcome> => {
    const outcome = await proxy.reload(normalizeConfig(await withFreePorts(next)));
    if (!outcome.ok) throw new Error(`reload failed: ${outcome.errors.join('; ')}`);
    return outcome;
  };
  return { proxy, port: ports[0]!, ports, reload, close };
}

export interface ProxyProcess {
  child: ChildProcess;
  ports: number[];
  /** The config file the proxy was started with (rewrite it, then SIGHUP, to reload). */
  configPath: string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exit: Promise<number | string>;
  output(): string;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Runs the built CLI (`node bin/redis-proxy <config.json>`, which needs `npm run build`)
 * with the given raw config in a temp file, and waits until every listener answers PING.
 */
export async function spawnProxyCli(
  raw: unknown,
  { t: scope = t }: { t?: Pick<typeof t, 'teardown'> } = {},
): Promise<ProxyProcess> {
  const config = await withFreePorts(raw);
  const ports = rawListeners(config).map((l) => Number(l.listen));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'redis-proxy-cli-'));
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const child = spawnGuarded(process.execPath, [path.join(repoRoot, 'bin/redis-proxy'), file], {
    cwd: repoRoot,
    dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exit = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });
  let exited = false;
  void exit.then(() => (exited = true));
  scope.teardown(async () => {
    if (!exited) {
      child.kill('SIGKILL');
      await exit;
    }
    rmSync(dir, { recursive: true, force: true });
    forgetDir(dir);
  });
  for (const port of ports) {
    await waitFor(
      `the proxy CLI to answer PING on ${port}`,
      async () => {
        if (exited) throw new Error(`proxy exited early:\n${output}`);
        return (await rawCommand(port, 'PING\r\n', { timeoutMs: 500 })).text === '+PONG\r\n';
      },
      { timeoutMs: 10000, intervalMs: 50 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- proxy output ---\n${output}`);
    });
  }
  return {
    child,
    ports,
    configPath: file,
    exit,
    output: () => output,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      if (!exited) child.kill(signal);
    },
  };
}

export { sleep };

/** The `# Proxy` fields of `INFO proxy` through the proxy on `port` (its node lines as `node0` … keys). */
export async function proxyInfo(port: number, options: RedisOptions = {}): Promise<Record<string, string>> {
  const text = String(await ioredisClient(port, options).info('proxy'));
  return Object.fromEntries(
    text
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
}

/**
 * One worker process of the cluster (`workers` > 1): a whole proxy (every listener, its
 * own backend connections, health checks and sessions) that accepts the client
 * connections the primary hands it, and asks the other workers, through the primary,
 * what one process would know alone (./peers.ts). Its log lines carry `worker`: its number.
 */
import { ConfigError, loadConfig, rereadConfig, type LogLevel } from '../config/index.js';
import { createLogger, type Logger } from '../log.js';
import { ENV_WORKER, ENV_WORKERS, type PrimaryMessage, type WorkerMessage } from './messages.js';
import { WorkerPeers } from './peers.js';

/** True when this process is a worker forked by the primary. */
export function isWorkerProcess(): boolean {
  return process.env[ENV_WORKER] !== undefined && typeof process.send === 'function';
}

/**
 * Runs this worker: loads the config, starts the proxy, and follows the primary's
 * messages (reload, shutdown) until told to stop; the process exits then. A start that
 * fails is reported to the primary and exits 1.
 * @param installCrashHandlers logs and exits on an uncaught exception (the CLI's)
 */
export async function runWorker(
  configPath: string,
  logLevel: LogLevel | undefined,
  installCrashHandlers: (logger: Logger) => void,
): Promise<void> {
  const index = Number(process.env[ENV_WORKER]);
  const workers = Number(process.env[ENV_WORKERS]);
  const send = (message: WorkerMessage): void => {
    // The primary may be gone (its exit closes the channel): the disconnect handler stops this worker.
    if (process.connected) process.send!(message, undefined, undefined, () => undefined);
  };
  const fail = (reason: string): never => {
    send({ k: 'startFailed', reason });
    process.exit(1);
  };
  let config;
  try {
    config = loadConfig(configPath);
  } catch (err) {
    return fail(err instanceof ConfigError ? err.problems.join('; ') : String(err));
  }
  const logger = createLogger(logLevel ?? config.logLevel).child({ worker: index });
  installCrashHandlers(logger);
  const peers = new WorkerPeers(index, workers, send);
  const { startProxy } = await import('../index.js');
  let proxy: Awaited<ReturnType<typeof startProxy>> | null = null;
  let stopping = false;
  const stop = (timeoutMs: number): void => {
    if (stopping) return;
    stopping = true;
    void (proxy?.close(timeoutMs) ?? Promise.resolve()).finally(() => process.exit(0));
  };

  process.on('message', (message: PrimaryMessage) => {
    if (peers.receive(message)) return;
    switch (message.k) {
      case 'reload':
        if (proxy !== null) void reload(proxy, peers, configPath, logLevel, logger);
        return;
      case 'reloadRejected':
        proxy?.reloadRejected(message.reason);
        return;
      case 'shutdown':
        stop(message.timeoutMs);
        return;
    }
  });
  send({ k: 'hello' });
  // The primary is gone: no new clients can reach this worker; its own close at once.
  process.on('disconnect', () => {
    peers.disconnected();
    stop(0);
  });
  // Ctrl-C reaches every process of the group: the primary coordinates the shutdown.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => stop(config.shutdownTimeout));

  await peers.start();
  try {
    proxy = await startProxy(config, logger, { peers });
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
  send({ k: 'started', listeners: [...proxy.listeners] });
}

/** Re-reads the config (the primary validated it; it may have changed since) and applies it. */
async function reload(
  proxy: Awaited<ReturnType<typeof import('../index.js').startProxy>>,
  peers: WorkerPeers,
  configPath: string,
  logLevel: LogLevel | undefined,
  logger: Logger,
): Promise<void> {
  const next = rereadConfig(configPath, logger);
  if ('rejected' in next) {
    proxy.reloadRejected(next.rejected);
    return;
  }
  logger.level = logLevel ?? next.logLevel;
  peers.workers = next.workers;
  await proxy.reload(next);
}

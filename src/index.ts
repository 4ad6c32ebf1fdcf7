/**
 * The proxy as a library: `startProxy(config, logger)` starts every listener of a
 * normalized config (see config/) and returns a handle to stop them.
 */
import type { Logger } from 'pino';
import type { ProxyConfig } from './config/types.js';
import { Listener } from './server/listener.js';

export type { ProxyConfig } from './config/types.js';

/** A running proxy. */
export interface Proxy {
  /** One entry per listener, in config order, with the port it accepts clients on. */
  readonly listeners: ReadonlyArray<{ name: string; port: number }>;
  /**
   * Stops accepting clients, lets in-flight replies reach their clients for up to
   * `timeoutMs` (default: the config's shutdownTimeout), then closes everything.
   */
  close(timeoutMs?: number): Promise<void>;
}

/**
 * Starts every listener: checks its nodes once, then listens.
 * @throws Error when a listener cannot listen (port in use, not permitted); the listeners
 *   already started are closed first.
 */
export async function startProxy(config: ProxyConfig, logger: Logger): Promise<Proxy> {
  const listeners = config.listeners.map((l) => new Listener(l, logger));
  try {
    for (const l of listeners) await l.start();
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close(0)));
    throw err;
  }
  logger.info({ listeners: listeners.map((l) => l.port) }, 'proxy started');
  let closing: Promise<void> | null = null;
  return {
    listeners: listeners.map((l) => ({ name: l.config.name, port: l.port })),
    close(timeoutMs = config.shutdownTimeout): Promise<void> {
      closing ??= Promise.all(listeners.map((l) => l.close(timeoutMs))).then(() => undefined);
      return closing;
    },
  };
}

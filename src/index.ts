/**
 * The proxy as a library: `startProxy(config, logger)` starts every listener of a
 * normalized config (see config/) and returns a handle to reload and stop them.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AdminServer } from './admin/server.js';
import type { PeerOp } from './cluster/messages.js';
import type { Peers } from './cluster/peers.js';
import { setTiming } from './io/clock.js';
import type { AdminConfig, ListenerConfig, ProxyConfig } from './config/types.js';
import { Listener, type ProxyStatus } from './server/listener.js';
import { useClientIds } from './session/client-ids.js';

export type { ProxyConfig } from './config/types.js';

/** What a reload did. */
export interface ReloadOutcome {
  /** Every change applied; false when some listener's part failed (`errors` says which). */
  ok: boolean;
  /** The config generation now. */
  generation: number;
  /** Listener names started, stopped and reconfigured. */
  added: string[];
  removed: string[];
  changed: string[];
  /** One line per listener whose change failed, naming it and why. */
  errors: string[];
}

/** A running proxy. */
export interface Proxy {
  /** One entry per listener, in config order, with the port it accepts clients on. */
  readonly listeners: ReadonlyArray<{ name: string; port: number }>;
  /** The port of the admin HTTP server, or 0 without one. */
  readonly adminPort: number;
  /**
   * Applies `next` live (SIGHUP): listeners are matched by port (by name for port 0);
   * a new one starts, a removed one stops accepting and closes once its sessions got
   * their replies (up to the new shutdownTimeout), a kept one is reconfigured without
   * closing a session (Listener.reconfigure). Reloads run one at a time, in call order.
   * Never rejects: what failed is in the outcome (and the rest is applied). The outcome
   * is logged (`config reloaded`, or at error `config reloaded in part`).
   */
  reload(next: ProxyConfig): Promise<ReloadOutcome>;
  /** Records a reload that could not be applied at all (unreadable or invalid file), for INFO proxy. */
  reloadRejected(reason: string): void;
  /**
   * Runs another worker's request for the listener named `listener` (src/cluster/peers.ts;
   * see Listener.peerRequest); undefined when this proxy has no such listener.
   */
  peerRequest(op: PeerOp, listener: string, arg: unknown): unknown;
  /**
   * Stops accepting clients, lets in-flight replies reach their clients for up to
   * `timeoutMs` (default: the config's shutdownTimeout), then closes everything.
   */
  close(timeoutMs?: number): Promise<void>;
}

/** How reloads match a listener of the new config to a running one. */
function listenerKey(config: ListenerConfig): string {
  return config.listen !== 0 ? `port ${config.listen}` : `name ${config.name}`;
}

/** How a proxy runs besides its config. */
export interface StartOptions {
  /** The other workers, when this process is one worker of several (src/cluster/). */
  peers?: Peers;
}

/**
 * Starts every listener: checks its nodes once (asks Sentinel first where it follows
 * one), then listens; then the admin HTTP server, when the config has `admin`.
 * @throws Error when a listener or the admin server cannot listen (port in use, not
 *   permitted) or no Sentinel of a listener answers; the listeners already started are
 *   closed first.
 */
export async function startProxy(config: ProxyConfig, logger: Logger, options: StartOptions = {}): Promise<Proxy> {
  const peers = options.peers ?? null;
  if (peers !== null) useClientIds(() => peers.nextClientId());
  const status: { -readonly [K in keyof ProxyStatus]: ProxyStatus[K] } = {
    generation: 1,
    reloadedAt: 0,
    reloadResult: '',
    shutdownTimeout: config.shutdownTimeout,
    reloads: 0,
    reloadFailures: 0,
    peers,
  };
  let listeners: Listener[] = [];
  // Made with the first admin server: prom-client's default metrics run timers of their own.
  let registry: Registry | null = null;
  let admin: AdminServer | null = null;
  /**
   * Starts, moves or stops the admin server for `wanted`; requests are timed only while it
   * runs. A worker (src/cluster/) serves none: the primary does, with every worker's
   * metrics (prom-client's AggregatorRegistry asks each for its registry).
   */
  const applyAdmin = async (wanted: AdminConfig | undefined): Promise<void> => {
    if (peers !== null) {
      if (wanted !== undefined && registry === null) {
        const [{ createRegistry }, { AggregatorRegistry }] = await Promise.all([import('./admin/metrics.js'), import('prom-client')]);
        registry = createRegistry(() => listeners, status);
        // Constructing one is what makes prom-client answer the primary's requests in a worker.
        new AggregatorRegistry();
        AggregatorRegistry.setRegistries([registry]);
      }
      setTiming(wanted !== undefined);
      return;
    }
    if (admin !== null && (wanted === undefined || wanted.listen !== admin.config.listen || wanted.bind !== admin.config.bind)) {
      await admin.close();
      admin = null;
    }
    if (wanted !== undefined && admin === null) {
      // Loaded only when asked for: prom-client costs memory and timers a proxy without admin does not need.
      const [{ createRegistry }, { AdminServer }] = await Promise.all([import('./admin/metrics.js'), import('./admin/server.js')]);
      const own = (registry ??= createRegistry(() => listeners, status));
      const server = new AdminServer(
        wanted,
        {
          metrics: async () => ({ contentType: own.contentType, text: await own.metrics() }),
          readiness: async () => listeners.map((l) => l.readiness()),
        },
        logger,
      );
      await server.start();
      admin = server;
    }
    setTiming(admin !== null);
  };
  /** Listeners created and not yet among `listeners` (starting, or added by a reload in progress). */
  const starting = new Set<Listener>();
  const create = async (l: ListenerConfig): Promise<Listener> => {
    const listener = await Listener.create(l, logger, status);
    starting.add(listener);
    return listener;
  };
  const peerRequest = (op: PeerOp, listener: string, arg: unknown): unknown => {
    if (op === 'ready') return listeners.map((l) => l.readiness());
    const named = (l: Listener): boolean => l.config.name === listener;
    return (listeners.find(named) ?? [...starting].find(named))?.peerRequest(op, arg);
  };
  // From now on, before any listener exists: a listener records the other workers'
  // writes from the moment it is created (causal reads).
  peers?.serve(peerRequest);
  try {
    for (const l of config.listeners) {
      const listener = await create(l);
      listeners.push(listener);
      starting.delete(listener);
      await listener.start();
    }
    await applyAdmin(config.admin);
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close(0)));
    throw err;
  }
  logger.info({ listeners: listeners.map((l) => l.port) }, 'proxy started');

  let closing: Promise<void> | null = null;
  let reloads: Promise<unknown> = Promise.resolve();

  const applyReload = async (next: ProxyConfig): Promise<ReloadOutcome> => {
    const outcome: ReloadOutcome = { ok: true, generation: 0, added: [], removed: [], changed: [], errors: [] };
    status.shutdownTimeout = next.shutdownTimeout;
    const running = new Map(listeners.map((l) => [listenerKey(l.config), l]));
    const kept: Listener[] = [];
    for (const l of next.listeners) {
      const current = running.get(listenerKey(l));
      try {
        if (current !== undefined) {
          running.delete(listenerKey(l));
          await current.reconfigure(l);
          kept.push(current);
          outcome.changed.push(l.name);
        } else {
          const listener = await create(l);
          try {
            await listener.start();
          } catch (err) {
            await listener.close(0);
            throw err;
          }
          kept.push(listener);
          outcome.added.push(l.name);
        }
      } catch (err) {
        // The running listener stays as it was; a new one is not started.
        if (current !== undefined) kept.push(current);
        outcome.ok = false;
        outcome.errors.push(`listener ${l.name} (port ${l.listen}): ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const gone of running.values()) {
      outcome.removed.push(gone.config.name);
      void gone.close(next.shutdownTimeout);
    }
    listeners = kept;
    starting.clear();
    try {
      await applyAdmin(next.admin);
    } catch (err) {
      outcome.ok = false;
      outcome.errors.push(`admin (port ${next.admin?.listen}): ${err instanceof Error ? err.message : String(err)}`);
    }
    status.reloads++;
    if (!outcome.ok) status.reloadFailures++;
    status.generation++;
    outcome.generation = status.generation;
    status.reloadedAt = Date.now();
    status.reloadResult = outcome.ok ? 'ok' : `failed: ${outcome.errors.join('; ')}`;
    const { ok, errors, ...what } = outcome;
    if (ok) logger.info(what, `config reloaded (generation ${outcome.generation})`);
    else logger.error({ ...what, errors }, `config reloaded in part: ${errors.join('; ')}`);
    return outcome;
  };

  return {
    get listeners() {
      return listeners.map((l) => ({ name: l.config.name, port: l.port }));
    },
    get adminPort() {
      return admin?.port ?? 0;
    },
    reload(next: ProxyConfig): Promise<ReloadOutcome> {
      const done = reloads.then(() => applyReload(next));
      reloads = done.catch(() => undefined);
      return done;
    },
    reloadRejected(reason: string): void {
      status.reloads++;
      status.reloadFailures++;
      status.reloadedAt = Date.now();
      status.reloadResult = `failed: ${reason}`;
    },
    peerRequest,
    close(timeoutMs = status.shutdownTimeout): Promise<void> {
      closing ??= reloads
        .then(() => Promise.all([...listeners.map((l) => l.close(timeoutMs)), admin?.close()]))
        .then(() => undefined);
      return closing;
    },
  };
}

/**
 * The cluster's primary process (`workers` > 1): it forks the workers (node:cluster; every
 * worker serves every listener, and the primary hands each accepted client connection to
 * one of them, round-robin), and serves nothing itself. It
 *
 * - relays what workers ask of each other (./peers.ts): CLIENT LIST/KILL, session ids
 *   named by UNBLOCK or TRACKING REDIRECT, causal reads' acknowledged writes, health
 *   changes; and hands out blocks of client ids, so CLIENT ID is unique across workers;
 * - restarts a worker that exits unasked (its own clients are disconnected; the others'
 *   stay), after a pause that grows while it keeps failing;
 * - on SIGHUP validates the file and tells every worker to apply it (a changed `workers`
 *   forks or stops workers to match); on SIGTERM/SIGINT tells every worker to drain
 *   (up to shutdownTimeout) and exits once they have.
 *
 * Source for the process model: https://nodejs.org/api/cluster.html
 */
import cluster, { type Worker } from 'node:cluster';
import { rereadConfig, type LogLevel, type ProxyConfig } from '../config/index.js';
import type { AdminServer, ListenerReadiness } from '../admin/server.js';
import type { AdminConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { ENV_WORKER, ENV_WORKERS, ID_BLOCK, type PeerOp, type PrimaryMessage, type WorkerMessage } from './messages.js';

/** Restart pauses (ms): the first, and the longest while a worker keeps failing soon after starting. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5000;
/** A worker that ran this long before exiting restarts after the shortest pause again (ms). */
const STABLE_MS = 10_000;

/** One request fanned out to the other workers, waiting for their answers. */
interface Fanout {
  /** The worker that asked, or a function of the primary's own (the admin server's readiness). */
  origin: Worker | ((results: unknown[]) => void);
  /** The origin's own request id. */
  rid: number;
  waiting: Set<Worker>;
  results: unknown[];
}

/** A worker slot: its number (1-based), the process serving it now, and its restart pacing. */
interface Slot {
  readonly index: number;
  worker: Worker | null;
  startedAt: number;
  pause: number;
  /** The worker said `hello`: it handles messages (the other workers' requests reach it from then on). */
  listening: boolean;
  /** The worker reported `started` (it serves every listener). */
  serving: boolean;
  /** Asked to stop (shutdown, or fewer workers after a reload): not restarted. */
  retiring: boolean;
}

export interface PrimaryOptions {
  configPath: string;
  config: ProxyConfig;
  /** `--log-level` from the command line: wins over the file's logLevel, also after a reload. */
  logLevel: LogLevel | undefined;
  logger: Logger;
}

/**
 * Runs the primary: forks `config.workers` workers and resolves once every one of them
 * serves every listener, with the listeners' names and ports.
 * @throws Error when a worker could not start (the reason it gave, as in one process);
 *   the workers already forked are stopped first
 */
export async function runPrimary(options: PrimaryOptions): Promise<{
  listeners: Array<{ name: string; port: number }>;
  /** The config's shutdownTimeout now (ms; a reload may change it). */
  readonly shutdownTimeout: number;
  reload(): void;
  close(timeoutMs: number): Promise<void>;
}> {
  const { configPath, logger } = options;
  let config = options.config;
  cluster.setupPrimary({ serialization: 'json' });
  const slots: Slot[] = [];
  const bySlot = new Map<Worker, Slot>();
  const fanouts = new Map<number, Fanout>();
  const sessions: Record<number, Record<string, number>> = {};
  let nextRid = 1;
  let nextBlock = 0;
  let stopping = false;
  let starting: { resolve: (l: Array<{ name: string; port: number }>) => void; reject: (e: Error) => void } | null = null;
  let listeners: Array<{ name: string; port: number }> = [];

  const live = (): Worker[] => slots.flatMap((s) => (s.worker !== null ? [s.worker] : []));
  const post = (w: Worker, message: PrimaryMessage): void => {
    // A worker that is exiting may have closed its channel: nothing to tell it then.
    if (w.isConnected()) w.send(message, undefined, undefined, () => undefined);
  };

  const finish = (rid: number, f: Fanout): void => {
    fanouts.delete(rid);
    if (typeof f.origin === 'function') f.origin(f.results);
    else post(f.origin, { k: 'answer', rid: f.rid, results: f.results });
  };

  /** Runs `op` on every serving worker; resolves with their answers. */
  const askWorkers = (op: PeerOp, listener: string, arg: unknown): Promise<unknown[]> =>
    new Promise((resolve) => {
      const targets = live().filter((w) => bySlot.get(w)?.serving);
      if (targets.length === 0) return resolve([]);
      const rid = nextRid++;
      fanouts.set(rid, { origin: resolve, rid: 0, waiting: new Set(targets), results: [] });
      for (const w of targets) post(w, { k: 'peer', rid, op, listener, arg });
    });

  let admin: AdminServer | null = null;
  /** Starts, moves or stops the admin server: it serves every worker's metrics and readiness. */
  const applyAdmin = async (wanted: AdminConfig | undefined): Promise<void> => {
    if (admin !== null && (wanted === undefined || wanted.listen !== admin.config.listen || wanted.bind !== admin.config.bind)) {
      await admin.close();
      admin = null;
    }
    if (wanted === undefined || admin !== null) return;
    const [{ AdminServer }, { AggregatorRegistry }] = await Promise.all([import('../admin/server.js'), import('prom-client')]);
    const aggregator = new AggregatorRegistry();
    admin = new AdminServer(
      wanted,
      {
        metrics: async () => ({ contentType: aggregator.contentType, text: await aggregator.clusterMetrics() }),
        readiness: async () => combineReadiness((await askWorkers('ready', '', null)) as ListenerReadiness[][]),
      },
      logger,
    );
    await admin.start();
  };

  const onMessage = (from: Worker, message: WorkerMessage): void => {
    switch (message.k) {
      case 'ask': {
        // Workers still starting are asked too: causal reads need a starting worker to
        // record the writes acknowledged from its hello on (its listeners count every
        // write before they exist as unknown: see Listener's constructor).
        const others = live().filter((w) => w !== from && bySlot.get(w)?.listening);
        const rid = nextRid++;
        const f: Fanout = { origin: from, rid: message.rid, waiting: new Set(others), results: [] };
        if (others.length === 0) return post(from, { k: 'answer', rid: message.rid, results: [] });
        fanouts.set(rid, f);
        for (const w of others) post(w, { k: 'peer', rid, op: message.op, listener: message.listener, arg: message.arg });
        return;
      }
      case 'hello':
        bySlot.get(from)!.listening = true;
        return;
      case 'tell':
        for (const w of live()) if (w !== from && bySlot.get(w)?.listening) post(w, { k: 'peer', rid: 0, op: message.op, listener: message.listener, arg: message.arg });
        return;
      case 'peerReply': {
        const f = fanouts.get(message.rid);
        if (f === undefined || !f.waiting.delete(from)) return;
        f.results.push(message.result);
        if (f.waiting.size === 0) finish(message.rid, f);
        return;
      }
      case 'ids':
        return post(from, { k: 'answer', rid: message.rid, results: [nextBlock++ * ID_BLOCK + 1] });
      case 'sessions':
        sessions[bySlot.get(from)!.index] = message.counts;
        for (const w of live()) post(w, { k: 'sessions', byWorker: sessions });
        return;
      case 'started': {
        const slot = bySlot.get(from)!;
        slot.serving = true;
        listeners = message.listeners;
        if (starting !== null && slots.every((s) => s.serving || s.retiring)) {
          starting.resolve(listeners);
          starting = null;
        }
        return;
      }
      case 'startFailed':
        if (starting !== null) {
          starting.reject(new Error(message.reason));
          starting = null;
        }
        return;
    }
  };

  const fork = (slot: Slot): void => {
    const worker = cluster.fork({ [ENV_WORKER]: String(slot.index), [ENV_WORKERS]: String(config.workers) });
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.listening = false;
    slot.serving = false;
    bySlot.set(worker, slot);
    worker.on('message', (message: WorkerMessage) => onMessage(worker, message));
    worker.on('exit', (code, signal) => onExit(slot, worker, code, signal));
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    bySlot.delete(worker);
    slot.worker = null;
    // Whatever waited for this worker's answer goes on without it.
    for (const [rid, f] of fanouts) {
      if (f.origin === worker) fanouts.delete(rid);
      else if (f.waiting.delete(worker) && f.waiting.size === 0) finish(rid, f);
    }
    delete sessions[slot.index];
    for (const w of live()) post(w, { k: 'sessions', byWorker: sessions });
    if (starting !== null) {
      starting.reject(new Error(`worker ${slot.index} exited while starting (${signal ?? `code ${code}`})`));
      starting = null;
      return;
    }
    if (stopping || slot.retiring) {
      const at = slots.indexOf(slot);
      if (slot.retiring && !stopping && at >= 0) slots.splice(at, 1);
      return;
    }
    const ran = Date.now() - slot.startedAt;
    slot.pause = ran >= STABLE_MS ? RESTART_MIN_MS : Math.min(slot.pause * 2, RESTART_MAX_MS);
    logger.error(
      { worker: slot.index, pid: worker.process.pid, code, signal, restartInMs: slot.pause },
      `worker ${slot.index} exited unexpectedly; restarting it (its clients were disconnected, the other workers' were not)`,
    );
    setTimeout(() => {
      if (!stopping && !slot.retiring) fork(slot);
    }, slot.pause).unref();
  };

  /** Forks or retires workers until `count` run. */
  const resize = (count: number): void => {
    while (slots.filter((s) => !s.retiring).length < count) {
      const index = Math.max(0, ...slots.map((s) => s.index)) + 1;
      const slot: Slot = { index, worker: null, startedAt: 0, pause: RESTART_MIN_MS / 2, listening: false, serving: false, retiring: false };
      slots.push(slot);
      fork(slot);
    }
    const active = slots.filter((s) => !s.retiring);
    for (const slot of active.slice(count)) {
      slot.retiring = true;
      if (slot.worker !== null) post(slot.worker, { k: 'shutdown', timeoutMs: config.shutdownTimeout });
    }
  };

  const started = new Promise<Array<{ name: string; port: number }>>((resolve, reject) => {
    starting = { resolve, reject };
  });
  resize(config.workers);
  try {
    listeners = await started;
  } catch (err) {
    stopping = true;
    for (const w of live()) w.process.kill('SIGKILL');
    throw err;
  }
  try {
    await applyAdmin(config.admin);
  } catch (err) {
    stopping = true;
    for (const w of live()) w.process.kill('SIGKILL');
    throw err;
  }
  logger.info({ workers: config.workers, pids: live().map((w) => w.process.pid) }, `${config.workers} workers serving`);

  return {
    listeners,
    get shutdownTimeout(): number {
      return config.shutdownTimeout;
    },
    /** SIGHUP: validates the file; a valid one goes to every worker (each re-reads it), an invalid one is logged. */
    reload(): void {
      const next = rereadConfig(configPath, logger);
      if ('rejected' in next) {
        for (const w of live()) post(w, { k: 'reloadRejected', reason: next.rejected });
        return;
      }
      logger.level = options.logLevel ?? next.logLevel;
      const before = config.workers;
      config = next;
      for (const w of live()) post(w, { k: 'reload' });
      if (next.workers !== before) {
        logger.info({ from: before, to: next.workers }, 'workers changed by reload');
        resize(next.workers);
      }
      applyAdmin(next.admin).catch((err: unknown) => logger.error({ err }, 'admin server: the reload could not apply it'));
    },
    /** Every worker drains (up to `timeoutMs`) and exits; resolves once all have. */
    async close(timeoutMs: number): Promise<void> {
      stopping = true;
      const exits = live().map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))));
      for (const w of live()) post(w, { k: 'shutdown', timeoutMs });
      const timer = setTimeout(() => {
        for (const w of live()) w.process.kill('SIGKILL');
      }, timeoutMs + 3000);
      timer.unref();
      await Promise.all([...exits, admin?.close()]);
      clearTimeout(timer);
    },
  };
}

/**
 * One readiness per listener out of every worker's: ready only where every worker is,
 * with each distinct problem.
 */
function combineReadiness(perWorker: ListenerReadiness[][]): ListenerReadiness[] {
  const byName = new Map<string, ListenerReadiness>();
  for (const list of perWorker) {
    if (!Array.isArray(list)) continue;
    for (const l of list) {
      const seen = byName.get(l.name);
      if (seen === undefined) byName.set(l.name, { ...l });
      else if (!l.ready) {
        seen.ready = false;
        if (!seen.problem.split('; ').includes(l.problem)) seen.problem = seen.problem === '' ? l.problem : `${seen.problem}; ${l.problem}`;
      }
    }
  }
  return [...byName.values()];
}

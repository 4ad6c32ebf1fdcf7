/**
 * A listener: one `listen` entry of the config. Accepts sessions on its port, owns its
 * master and replica nodes, their health checks and its router. Independent of the other
 * listeners (its own pools, health, sessions).
 *
 * Live topology: a reload ({@link Listener.reconfigure}) or Sentinel
 * (../topology/sentinel.ts) changes the nodes in place ({@link Listener.applyTopology}):
 * a node that stays keeps its connections, a node that goes is retired (its in-flight
 * replies arrive, then it closes), and sessions never notice unless the master moved
 * while they held a dedicated connection on it.
 *
 * Clients are accepted on a ClientServer (./client-server.ts): plain TCP or TLS. With
 * `http`, an HTTP GET front end (../http/server.ts) reads through the same router and
 * causal reads; with `http.cache` or `nearCache`, a near cache (../cache/) answers hot
 * GETs from memory.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { learnCommands, lookupCommand } from '../commands/index.js';
import type { ListenerConfig, NodeConfig } from '../config/types.js';
import { Node } from '../backend/node.js';
import { coarseNow } from '../io/clock.js';
import { Router } from '../routing/router.js';
import { Session, type SessionContext } from '../session/session.js';
import { PROXY_VERSION } from '../version.js';
import { ClientServer, describeTls } from './client-server.js';
import { DenyList } from './deny-list.js';
import { RedisUsers } from './redis-users.js';
import type { ListenerReadiness } from '../admin/server.js';
import type { PeerOp } from '../cluster/messages.js';
import type { Peers } from '../cluster/peers.js';
import { CausalReads } from '../consistency/causal-reads.js';
import { BUCKET_ALL, SharedWrites } from '../consistency/shared-writes.js';
import { killMatching, listLines, type ClientFilter } from '../session/client-command.js';
import { REMOTE_NO_SESSION } from '../session/client-ids.js';
import { CachedReads } from '../cache/cached-reads.js';
import { HttpFrontEnd } from '../http/server.js';
import type { NearCacheConfig } from '../config/types.js';
import { ListenerStats } from '../metrics/stats.js';
import { SentinelWatcher } from '../topology/sentinel.js';
import { addressOf, nodeKey, resolveTopology, type DiscoveredTopology, type Topology } from '../topology/topology.js';

/** What every listener shows of the proxy as a whole (INFO proxy) and needs from it. */
export interface ProxyStatus {
  /** Config generation: 1 at start, +1 for each reload applied. */
  readonly generation: number;
  /** Epoch ms of the last reload attempt; 0 none yet. */
  readonly reloadedAt: number;
  /** `ok`, or `failed: <reason>` for the last reload attempt; '' none yet. */
  readonly reloadResult: string;
  /** The config's shutdownTimeout (ms): how long departing sessions and nodes get to finish. */
  readonly shutdownTimeout: number;
  /** Reloads applied (in full or in part) and reloads that failed (an invalid file, or a listener's change). */
  readonly reloads: number;
  readonly reloadFailures: number;
  /** The other worker processes (src/cluster/), or null when the proxy runs one process. */
  readonly peers: Peers | null;
}

export class Listener implements SessionContext {
  master: Node;
  replicas: Node[];
  readonly router: Router;
  readonly sessions = new Set<Session>();
  private readonly byId = new Map<number, Session>();
  logger: Logger;
  databases = 16;
  /** Causal reads: which writes a read must see and which node has them. */
  readonly causal: CausalReads;
  denyList: DenyList;
  /** The Redis ACL users sessions log in as (`authentication: "redis"`; unused otherwise). */
  readonly redisUsers: RedisUsers;
  /** The port actually listened on. */
  port = 0;
  /** Where clients are accepted (plain TCP or TLS). */
  private readonly clients: ClientServer;
  private readonly startedAt = Date.now();
  private healthTimer: NodeJS.Timeout | null = null;
  private timeoutTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private checking = false;
  /** A check was asked for during a round (new nodes): another round follows at once. */
  private recheck = false;
  private closedWaiters: Array<() => void> = [];
  /** Nodes that left the topology and still finish what they owe (closed with the listener). */
  private readonly retiring = new Set<Node>();
  /** The master reports role:slave (a failover the config does not know of); logged once per episode. */
  private masterDemoted = false;
  /** Counters for the metrics (src/metrics/stats.ts). */
  readonly stats = new ListenerStats();
  /** The near cache (`http.cache` or `nearCache`; null: none). */
  nearCache: CachedReads | null = null;
  /** The HTTP GET front end (`http`; null: none). */
  http: HttpFrontEnd | null = null;

  /**
   * Builds a listener (not started) for `config`: with `sentinel`, after asking Sentinel
   * where the master and replicas are.
   * @throws Error when no Sentinel could say (the message names each one and why)
   */
  static async create(config: ListenerConfig, logger: Logger, status: ProxyStatus): Promise<Listener> {
    let listener: Listener | null = null;
    const watcher = Listener.watcherFor(config, logger, (from, discovered, reason) =>
      listener?.sentinelChanged(from, discovered, reason),
    );
    const discovered = watcher === null ? null : await watcher.discover();
    listener = new Listener(config, logger, status, resolveTopology(config, discovered), watcher);
    return listener;
  }

  /** A watcher of the listener's Sentinels (null without `sentinel`), reporting changes to `onChange`. */
  private static watcherFor(
    config: ListenerConfig,
    logger: Logger,
    onChange: (from: SentinelWatcher, discovered: DiscoveredTopology, reason: string) => void,
  ): SentinelWatcher | null {
    if (config.sentinel === undefined) return null;
    const watcher: SentinelWatcher = new SentinelWatcher({
      config: config.sentinel,
      timeout: config.connectTimeout,
      refreshInterval: config.healthCheckInterval,
      logger: logger.child({ listener: config.name }),
      onChange: (discovered, reason) => onChange(watcher, discovered, reason),
    });
    return watcher;
  }

  private constructor(
    public config: ListenerConfig,
    private readonly rootLogger: Logger,
    private readonly status: ProxyStatus,
    topology: Topology,
    private watcher: SentinelWatcher | null,
  ) {
    this.logger = rootLogger.child({ listener: config.name });
    this.denyList = new DenyList(config);
    this.master = this.createNode('master', topology.master);
    this.replicas = topology.replicas.map((r) => this.createNode('replica', r));
    this.router = new Router(this.master, this.replicas, config.readPolicy, config.maxReplicationLag, () =>
      this.causal?.progress.rotationChanged(),
    );
    const router = this.router;
    // Read through `this`: the nodes change with the topology.
    const nodes = {
      get master(): Node {
        return router.master;
      },
      get replicas(): readonly Node[] {
        return router.replicas;
      },
      inRotation: () => router.replicasInRotation,
    };
    this.causal = new CausalReads(config.causalReads, nodes, config.healthCheckInterval);
    const peers = status.peers;
    if (peers !== null) {
      this.causal.shared = new SharedWrites(peers, () => this.config.name);
      // Writes the other workers acknowledged before this listener existed are not known
      // here: reads wait for a master offset sampled from now on.
      this.causal.peerWrites([BUCKET_ALL]);
    }
    // Read through `this`: the master moves with the topology, and a reload changes the timeout.
    const listener = this;
    this.redisUsers = new RedisUsers({
      get master(): Node {
        return listener.master;
      },
      get connectTimeout(): number {
        return listener.config.connectTimeout;
      },
    });
    this.clients = new ClientServer(config, (socket) => this.accept(socket), () => this.logger);
    if (config.cache !== undefined) this.nearCache = this.createCache(config.cache);
  }

  private createCache(config: NearCacheConfig): CachedReads {
    return new CachedReads(config, this.causal, this.router, () => this.logger);
  }

  /**
   * A reload's `http.cache` / `nearCache`: a new size makes a new, empty cache (the old
   * one's tracking connections close); none closes it.
   */
  private reconfigureCache(before: NearCacheConfig | undefined, next: NearCacheConfig | undefined): void {
    if (JSON.stringify(before) === JSON.stringify(next)) return;
    this.nearCache?.close();
    this.nearCache = next === undefined ? null : this.createCache(next);
  }

  /** A reload's `http`: started, moved (a new port, bind or TLS) or stopped. */
  private async reconfigureHttp(): Promise<void> {
    const next = this.config.http;
    if (next === undefined) {
      const http = this.http;
      this.http = null;
      await http?.close();
      return;
    }
    if (this.http === null) {
      const http = new HttpFrontEnd(this, next);
      await http.start();
      this.http = http;
      return;
    }
    await this.http.reconfigure(next);
  }

  /** Node identity (see ../topology/topology.ts nodeKey) of each node created, to keep it across reloads. */
  private readonly keys = new WeakMap<Node, string>();

  private createNode(role: 'master' | 'replica', nodeConfig: NodeConfig): Node {
    const config = this.config;
    const node = new Node({
      role,
      // loadConfig has already resolved each node's credentials (its own pair, or the listener's backend pair).
      config: nodeConfig,
      sharedConnections: config.sharedConnections,
      maxDedicated: config.maxDedicatedConnections,
      connectTimeout: config.connectTimeout,
      outlierTimeouts: config.outlierTimeouts,
      outlierWindow: config.outlierWindow,
      logger: this.logger,
      onStateChange: (n, before) => {
        if (n.retired) return;
        this.router.rebuild();
        // The other workers check at once too: a node is down for all of them within a round trip.
        this.status.peers?.tell('health', this.config.name, null);
        if (before !== 'down' || !n.reachable || this.port === 0) return;
        // A master that comes back (or was down at start) may know commands the table lacks.
        if (n === this.master) void this.learnFromMaster();
        // A node that comes back may have lost (or gained) the ACL rules scripts rely on.
        void this.verifyDenyList();
      },
      onConnectionLost: (n) => {
        if (!n.retired) void this.checkHealth();
      },
    });
    this.keys.set(node, nodeKey(role, nodeConfig, config));
    return node;
  }

  /** Every node in the topology now, the master first. */
  get nodes(): Node[] {
    return [this.master, ...this.replicas];
  }

  /**
   * Checks every node once, learns what it needs from the master (databases, module
   * commands), then listens.
   * @throws Error when the port cannot be listened on (in use, not permitted).
   */
  async start(): Promise<void> {
    await this.checkHealth();
    // Before the first session: does Redis's `default` user need a password?
    if (this.config.authentication === 'redis') await this.redisUsers.probeDefault();
    for (const n of [this.master, ...this.replicas]) {
      if (n.reachable) this.logger.info({ node: n.label, version: n.serverVersion, role: n.health.role }, 'backend connected');
      else this.logger.warn({ node: n.label, error: n.health.error }, 'backend unreachable at start');
    }
    await this.learnFromMaster();
    await this.verifyDenyList();
    this.port = await this.clients.listen(this.config.listen);
    if (this.config.http !== undefined) {
      const http = new HttpFrontEnd(this, this.config.http);
      try {
        await http.start();
      } catch (err) {
        // The listener does not start: its client port must not stay open.
        void this.clients.close();
        throw err;
      }
      this.http = http;
    }
    this.startTimers();
    this.watcher?.start();
    this.logger.info(
      {
        bind: this.config.bind,
        port: this.port,
        master: this.master.label,
        replicas: this.replicas.map((r) => r.label),
        readPolicy: this.config.readPolicy,
        sentinel: this.config.sentinel?.masterName,
        tls: this.config.tls === undefined ? undefined : describeTls(this.config.tls),
      },
      'listener up',
    );
  }

  /** The health-check and command-timeout timers, for the settings now. */
  private startTimers(): void {
    if (this.healthTimer !== null) clearInterval(this.healthTimer);
    if (this.timeoutTimer !== null) clearInterval(this.timeoutTimer);
    this.healthTimer = setInterval(() => void this.checkHealth(), this.config.healthCheckInterval);
    this.healthTimer.unref();
    // Command timeouts (and closing idle extra shared connections) on their own tick, not
    // the health round's: that round waits on a hung node for up to connectTimeout.
    const tick = this.config.commandTimeout > 0 ? Math.min(Math.max(this.config.commandTimeout / 4, 25), 1000) : 1000;
    this.timeoutTimer = setInterval(() => this.expireCommands(), tick);
    this.timeoutTimer.unref();
  }

  /** Sentinel reported a new master or replica set: applied at once (a +switch-master takes writes now). */
  private sentinelChanged(from: SentinelWatcher, discovered: DiscoveredTopology, reason: string): void {
    if (this.closing || from !== this.watcher) return;
    this.applyTopology(resolveTopology(this.config, discovered), `sentinel ${reason}`);
  }

  /**
   * Applies a reload's settings for this listener (same port) live: every session stays
   * connected and every request in flight completes. Settings sessions read per request
   * (read policy, limits, deny list, passwords, causal reads) apply to the next request;
   * nodes are kept, re-weighted, added, or retired (see {@link applyTopology}); a new
   * `bind`, TLS turned on or off, or a new `tls.clientAuth` listens anew (the sessions
   * stay); a new certificate, key or CA (the files were re-read by normalizeConfig) is
   * used for the connections accepted from now on (tls.Server#setSecureContext); a
   * changed `sentinel` is asked first.
   * @throws Error when the new Sentinel list cannot say where the master is; nothing is
   *   changed then
   */
  async reconfigure(next: ListenerConfig): Promise<void> {
    const before = this.config;
    let watcher = this.watcher;
    let discovered: DiscoveredTopology | null = watcher?.current ?? null;
    const sentinelChanged = JSON.stringify(next.sentinel) !== JSON.stringify(before.sentinel);
    if (sentinelChanged) {
      watcher = Listener.watcherFor(next, this.rootLogger, (from, d, reason) => this.sentinelChanged(from, d, reason));
      discovered = watcher === null ? null : await watcher.discover().catch((err: unknown) => {
        watcher!.close();
        throw err;
      });
    }
    if (this.closing) {
      watcher?.close();
      return;
    }

    this.config = next;
    if (next.name !== before.name) this.logger = this.rootLogger.child({ listener: next.name });
    if (
      JSON.stringify(next.denyCommands) !== JSON.stringify(before.denyCommands) ||
      next.scriptsBypassDenyCommands !== before.scriptsBypassDenyCommands
    ) {
      this.denyList = new DenyList(next);
    }
    this.router.configure(next.readPolicy, next.maxReplicationLag);
    this.causal.setMode(next.causalReads);
    if (next.healthCheckInterval !== before.healthCheckInterval || next.commandTimeout !== before.commandTimeout) {
      this.startTimers();
    }
    for (const session of this.sessions) session.settingsChanged();
    if (sentinelChanged) {
      this.watcher?.close();
      this.watcher = watcher;
      watcher?.start();
    }
    this.applyTopology(resolveTopology(next, discovered), 'reload');
    if (next.authentication === 'redis' && before.authentication !== 'redis') void this.redisUsers.probeDefault();
    this.reconfigureCache(before.cache, next.cache);
    await this.clients.reconfigure(next);
    await this.reconfigureHttp();
    void this.verifyDenyList();
  }

  /**
   * Makes `topology` the listener's nodes. A node whose identity (address, credentials,
   * connection settings: ../topology/topology.ts nodeKey) is unchanged is kept with its
   * connections, taking the new weight; the others are created. Nodes no longer in the
   * topology get no new requests and are retired: their in-flight replies arrive (up to
   * shutdownTimeout), then their connections close. When the master moved to another
   * server, sessions holding a dedicated connection on the old one are closed after the
   * replies owed to them (see Session.masterMoved), and causal reads start over with the
   * new master's offsets.
   */
  applyTopology(topology: Topology, reason: string): void {
    const old = this.nodes;
    const unused = new Map(old.map((n) => [this.keys.get(n)!, n]));
    const created: Node[] = [];
    const take = (role: 'master' | 'replica', nodeConfig: NodeConfig): Node => {
      const key = nodeKey(role, nodeConfig, this.config);
      const kept = unused.get(key);
      if (kept !== undefined) {
        unused.delete(key);
        kept.weight = nodeConfig.weight;
        return kept;
      }
      const node = this.createNode(role, nodeConfig);
      created.push(node);
      return node;
    };
    const oldMaster = this.master;
    const master = take('master', topology.master);
    const replicas = topology.replicas.map((r) => take('replica', r));
    const moved = addressOf(oldMaster) !== addressOf(master);
    this.master = master;
    this.replicas = replicas;
    this.router.setNodes(master, replicas);
    if (created.length > 0 || unused.size > 0 || master !== oldMaster) {
      this.logger.info(
        {
          reason,
          master: master.label,
          replicas: replicas.map((r) => `${r.host}:${r.port}/${r.weight}`),
          added: created.map((n) => n.label),
          removed: [...unused.values()].map((n) => n.label),
        },
        moved ? `master moved from ${oldMaster.host}:${oldMaster.port} to ${master.host}:${master.port}` : 'topology changed',
      );
    }
    const drainMs = this.status.shutdownTimeout;
    for (const node of unused.values()) {
      this.retiring.add(node);
      void node.retire(drainMs).finally(() => this.retiring.delete(node));
    }
    if (moved) {
      this.masterDemoted = false;
      this.causal.masterChanged();
      for (const session of this.sessions) session.masterMoved(drainMs);
    }
    // New nodes serve reads once a health check has seen them linked and in time.
    if (created.length > 0 && this.port !== 0) void this.checkHealth();
    // The cache's tracking connections to nodes that left close (and flush the cache).
    this.nearCache?.tracking.retain(this.nodes);
  }

  /**
   * Stops accepting, lets sessions receive the replies they are owed (up to `timeoutMs`),
   * then closes every session and backend connection.
   */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    if (this.healthTimer !== null) clearInterval(this.healthTimer);
    if (this.timeoutTimer !== null) clearInterval(this.timeoutTimer);
    this.healthTimer = this.timeoutTimer = null;
    this.watcher?.close();
    this.causal.close();
    this.redisUsers.close();
    const serverClosed = this.clients.close();
    const httpClosed = this.http?.close();
    this.nearCache?.close();
    for (const s of this.sessions) s.closeAfterReplies();
    if (this.sessions.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.closedWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    for (const s of this.sessions) s.close('proxy shutting down');
    // What is left of a TLS server's connections never finished its handshake.
    this.clients.dropHandshakes();
    await serverClosed;
    await httpClosed;
    await Promise.all([...this.nodes, ...this.retiring].map((n) => n.close()));
  }

  /**
   * Whether the listener can serve (`/readyz`): its master is reachable (up, or slow:
   * slow is not down) and reports itself a master, and, with readPolicy `replica`, some
   * replica is in the read rotation (else its reads fail).
   */
  readiness(): ListenerReadiness {
    const master = this.master;
    let problem = '';
    if (!master.reachable) problem = `${master.label} is down (${master.health.error || 'unreachable'})`;
    else if (master.health.role === 'slave') problem = `${master.label} reports role:slave`;
    else if (this.config.readPolicy === 'replica' && this.router.healthyReplicas.length === 0) {
      problem = 'no replica is in the read rotation (readPolicy "replica")';
    }
    return { name: this.config.name, port: this.port, ready: problem === '', problem };
  }

  get peers(): Peers | null {
    return this.status.peers;
  }

  /**
   * Runs another worker's request for this listener (src/cluster/peers.ts):
   * - `list` (a ClientFilter): CLIENT LIST lines of the sessions it names, with their ids;
   * - `kill` (a ClientFilter): closes the sessions it names; how many;
   * - `lease` ({id, redirect}): the node's client id of session `id`'s lease, -1 without
   *   one, REMOTE_NO_SESSION no such session here; with `redirect`, the session takes a lease for it
   *   (CLIENT TRACKING REDIRECT) and the promise resolves once it has one;
   * - `health`: a health round now (another worker saw a node change state);
   * - `writes` (key buckets): writes another worker acknowledged (causal reads).
   */
  peerRequest(op: PeerOp, arg: unknown): unknown {
    switch (op) {
      case 'list':
        return listLines(this.sessions, arg as ClientFilter);
      case 'kill':
        return killMatching(this.sessions, arg as ClientFilter, null);
      case 'lease': {
        const { id, redirect } = arg as { id: number; redirect: boolean };
        const session = this.byId.get(id);
        if (session === undefined) return REMOTE_NO_SESSION;
        return redirect ? session.leaseForRemoteRedirect() : session.leaseClientId;
      }
      case 'health':
        if (!this.closing && this.port !== 0) void this.checkHealth();
        return undefined;
      case 'writes':
        this.causal.peerWrites(arg as number[]);
        return 1;
      default:
        // `ready` is the whole proxy's (Proxy.peerRequest answers it for every listener).
        return undefined;
    }
  }

  get serverVersion(): string {
    return this.master.serverVersion;
  }

  sessionById(id: number): Session | undefined {
    return this.byId.get(id);
  }

  onSessionClosed(session: Session): void {
    this.sessions.delete(session);
    this.byId.delete(session.id);
    this.status.peers?.sessionsChanged(this.config.name, this.sessions.size);
    if (this.sessions.size === 0) for (const w of this.closedWaiters.splice(0)) w();
  }

  proxyInfo(): string {
    const inRotation = this.router.healthyReplicas;
    const nodes = this.nodes.map((n, i) => {
      const serving = n.role === 'replica' ? `,in_rotation=${inRotation.includes(n) ? 1 : 0},lag=${n.lag},ejected=${n.ejected ? 1 : 0}` : '';
      return `node${i}:role=${n.role},addr=${n.host}:${n.port},state=${n.state}${serving}`;
    });
    const status = this.status;
    const sentinel = this.config.sentinel;
    return [
      `proxy_version:${PROXY_VERSION}`,
      `proxy_uptime_in_seconds:${Math.floor((Date.now() - this.startedAt) / 1000)}`,
      `config_generation:${status.generation}`,
      `config_last_reload:${Math.floor(status.reloadedAt / 1000)}`,
      `config_last_reload_result:${status.reloadResult === '' ? 'none' : status.reloadResult.replace(/[\r\n]+/g, ' ')}`,
      `listener:${this.config.name}`,
      `listener_port:${this.port}`,
      `read_policy:${this.config.readPolicy}`,
      `authentication:${this.config.authentication}`,
      ...(this.config.authentication === 'redis'
        ? [`redis_users:${this.redisUsers.size}`, `redis_default_needs_password:${this.redisUsers.defaultNeedsPassword ? 1 : 0}`]
        : []),
      ...this.workerInfo(),
      ...(sentinel === undefined
        ? []
        : [`sentinel_master_name:${sentinel.masterName}`, `sentinel_in_use:${this.watcher?.sentinel || 'none'}`]),
      `master_role:${this.master.health.role || 'unknown'}`,
      ...nodes,
      `near_cache_resp:${this.config.nearCache ? 1 : 0}`,
      ...(this.nearCache?.cache.infoLines() ?? []),
      ...(this.http?.infoLines() ?? []),
    ].join('\r\n');
  }

  /** INFO proxy's session count: with workers, every worker's, and which worker answers. */
  private workerInfo(): string[] {
    const peers = this.status.peers;
    if (peers === null) return [`sessions:${this.sessions.size}`];
    return [
      `sessions:${this.sessions.size + peers.otherSessions(this.config.name)}`,
      `worker:${peers.worker}`,
      `worker_pid:${process.pid}`,
      `workers:${peers.workers}`,
      `worker_sessions:${this.sessions.size}`,
    ];
  }

  sendToReplicas(args: Buffer[]): void {
    for (const r of this.replicas) {
      r.call(...args).catch((err: Error) => this.logger.warn({ node: r.label, error: err.message }, 'replica refused a command sent to every node'));
    }
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      // Accepted just as shutdown began: not served.
      this.stats.connectionsRejected++;
      socket.destroy();
      return;
    }
    this.stats.connectionsAccepted++;
    const session = new Session(socket, this);
    this.sessions.add(session);
    this.byId.set(session.id, session);
    this.status.peers?.sessionsChanged(this.config.name, this.sessions.size);
  }

  /**
   * One health round: the master (its INFO also gives each replica's lag), then the
   * replicas; then the read rotation is rebuilt.
   */
  private async checkHealth(): Promise<void> {
    if (this.checking) {
      this.recheck = true;
      return;
    }
    this.checking = true;
    this.recheck = false;
    try {
      const master = this.master;
      // Whether Redis's `default` user needs a password, asked alongside (it may change at any time).
      const probe = this.config.authentication === 'redis' ? this.redisUsers.probeDefault() : null;
      const masterInfo = await master.checkHealth();
      if (master === this.master) this.noteMasterRole();
      const lags = new Map<string, number>();
      for (const [key, value] of masterInfo ?? []) {
        if (!/^slave\d+$/.test(key)) continue;
        const fields = new Map(value.split(',').map((kv) => kv.split('=') as [string, string]));
        lags.set(`${fields.get('ip')}:${fields.get('port')}`, Number(fields.get('lag') ?? -1));
      }
      await Promise.all(
        [...this.replicas].map(async (r) => {
          r.lag = lags.get(`${r.host}:${r.port}`) ?? -1;
          await r.checkHealth();
          r.probe();
        }),
      );
      this.router.rebuild();
      await probe;
    } finally {
      this.checking = false;
    }
    // An unresponsive node is checked again at once: the check waiting on it is answered
    // the moment it recovers (the end of a DEBUG SLEEP), not an interval later.
    if (!this.closing && (this.recheck || this.nodes.some((n) => n.state === 'unresponsive'))) {
      setImmediate(() => void this.checkHealth());
    }
  }

  /**
   * Logs once when the master starts reporting role:slave (writes are then refused with a
   * READONLY error naming it: ../session/errors.ts demotedMasterText), and once when it
   * is a master again.
   */
  private noteMasterRole(): void {
    const role = this.master.health.role;
    if (role === 'slave' && !this.masterDemoted) {
      this.masterDemoted = true;
      this.logger.error(
        { node: this.master.label, sentinel: this.config.sentinel?.masterName },
        this.config.sentinel === undefined
          ? 'the configured master reports role:slave: writes are refused until the config names the new master (reload) or it is promoted again'
          : 'the master reports role:slave: writes are refused until Sentinel names the new master',
      );
    } else if (role === 'master' && this.masterDemoted) {
      this.masterDemoted = false;
      this.logger.info({ node: this.master.label }, 'the master reports role:master again');
    }
  }

  /** Command timeouts and idle extra connections; the connections of Redis users no session runs as any more. */
  private expireCommands(): void {
    const now = coarseNow();
    for (const node of this.nodes) node.expireShared(now, this.config.commandTimeout);
    this.nearCache?.tracking.expire(now, this.config.commandTimeout);
    this.redisUsers.prune();
  }

  /**
   * Checks with ACL DRYRUN that every node refuses the denied commands a script could
   * call (see ./deny-list.ts); until it has, or where they do not, scripts are refused.
   */
  private async verifyDenyList(): Promise<void> {
    if (this.denyList.scriptReachable.length === 0) return;
    const nodes = this.nodes.map((n) => ({
      label: n.label,
      username: n.username,
      call: (...args: Array<string | Buffer>) => n.call(...args),
    }));
    const result = await this.denyList.verify(nodes);
    if (result.enforced) {
      this.logger.info({ denyCommands: this.denyList.scriptReachable }, 'scripts allowed: the nodes refuse the denied commands to the proxy');
    } else if (!this.config.scriptsBypassDenyCommands) {
      const first = result.unenforced[0];
      this.logger.warn(
        { denyCommands: this.denyList.scriptReachable, command: first?.command, node: first?.node, reason: first?.reason },
        'scripts refused on this listener: a denied command could run inside them',
      );
    }
  }

  private async learnFromMaster(): Promise<void> {
    try {
      const reply = (await this.master.call('CONFIG', 'GET', 'databases')) as string[];
      if (Array.isArray(reply) && reply.length === 2) this.databases = Number(reply[1]) || 16;
    } catch {
      // CONFIG may be renamed or denied by ACL: Redis's default of 16 is assumed.
    }
    try {
      // Module commands (JSON.GET, FT.SEARCH) and commands of a Redis newer than the table.
      const names = (await this.master.call('COMMAND', 'LIST')) as string[];
      // Subcommands (`xinfo|help`) come with their container's COMMAND INFO.
      const unknown = names.filter((n) => !n.includes('|') && lookupCommand(n) === undefined);
      if (unknown.length > 0) {
        const learned = learnCommands(await this.master.call('COMMAND', 'INFO', ...unknown));
        this.logger.info({ learned, commands: unknown.slice(0, 20) }, 'learned commands from the master');
      }
    } catch {
      // Not reachable now, or COMMAND denied by ACL: the static table is used.
    }
  }
}

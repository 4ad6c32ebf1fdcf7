/**
 * A node: one Redis server behind a listener (the master or a replica). Owns the shared
 * (multiplexed) connections to it (./shared-links.ts), the generic-pool pool of dedicated
 * connections, the control connection, and what it knows of the node's state.
 *
 * Slow is not down. The node is:
 * - `down` (unreachable) when a connection to it cannot be established: refused, reset,
 *   TCP connect timeout, a refused handshake, a health check that could not connect;
 * - `unresponsive` when its health check got no reply in time on an open connection;
 * - `busy` when its health check was answered with BUSY (a script or function past its
 *   time limit);
 * - `up` otherwise.
 * Only `down` makes the master's requests fail fast. A replica serves reads only when
 * `up` and not ejected by outlier detection (./outlier.ts); when it stops serving, the
 * reads in flight on it are retried elsewhere at once.
 *
 * Identities (./identity.ts): the shared and priority connections are kept per identity,
 * identity 0 (`null`, the node's own credentials) in a field of its own, the others in a
 * map by id; dedicated connections all sit in one pool on identity 0 and are switched to
 * the session's identity when leased. A refused handshake for a client's identity leaves
 * the node's state alone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import genericPool, { type Pool } from 'generic-pool';
import type { Logger } from 'pino';
import type { NodeConfig } from '../config/types.js';
import { coarseNow } from '../io/clock.js';
import { encodeCommand } from '../protocol/resp.js';
import { BackendConnection, type ConnectionEvents } from './connection.js';
import { ControlClient, parseInfo, ReplyError, ReplyTimeout } from './control-client.js';
import type { BackendIdentity } from './identity.js';
import { Lease, type LeasePool } from './lease.js';
import type { BackendFailure, Link, OwedReply } from './link.js';
import { OutlierDetector } from './outlier.js';
import { SharedLinks } from './shared-links.js';
import { backendTlsOptions, type BackendTlsOptions } from './tls.js';

export type NodeRole = 'master' | 'replica';

export interface NodeOptions {
  role: NodeRole;
  config: NodeConfig;
  /** Shared connections per database and RESP version. */
  sharedConnections: number;
  /** Most dedicated connections at once. */
  maxDedicated: number;
  /** ms to connect (and for each health-check reply). */
  connectTimeout: number;
  /** Outlier detection: command timeouts within `outlierWindow` ms that take a replica out of the read rotation (0 = never). */
  outlierTimeouts: number;
  outlierWindow: number;
  logger: Logger;
  /** Called when the node's state changes (down, up, unresponsive, busy, ejected, back); `before` is the state it left. */
  onStateChange(node: Node, before: Node['state']): void;
  /** Called when an established connection to the node closed unexpectedly: check the node now. */
  onConnectionLost(node: Node): void;
}

/** What the node's health checks and connections found. */
export interface NodeHealth {
  /** Connections to it can be established (last check or connection). */
  reachable: boolean;
  /** Answered its last health check in time. */
  responsive: boolean;
  /** Answered its last health check with BUSY. */
  busy: boolean;
  /** `loading:1` (still loading its dataset). */
  loading: boolean;
  /** For replicas: `master_link_status:up`. */
  linkUp: boolean;
  /** `role` from INFO replication (`master` or `slave`). */
  role: string;
  /** `master_repl_offset` (for a replica: how far it has applied the stream). */
  replOffset: number;
  /** Why it is not `up` ('' when it is): the last failure or Redis's BUSY text. */
  error: string;
}

/** A probe's PING on a data connection of an ejected replica. */
class Probe implements OwedReply {
  sentAt = 0;
  readonly patient = false;
  constructor(private readonly node: Node) {}
  settle(): void {
    this.node.probeAnswered(true);
  }
  fail(): void {
    this.node.probeAnswered(false);
  }
}

const PING = encodeCommand(['PING']);

/** The shared connections of one identity other than 0. */
interface IdentityLinks {
  readonly identity: BackendIdentity;
  readonly links: SharedLinks;
}

export class Node implements ConnectionEvents, LeasePool {
  readonly role: NodeRole;
  readonly label: string;
  /** Share of reads (the config's `weight`); changed in place by a reload. */
  weight: number;
  readonly health: NodeHealth = {
    reachable: true,
    responsive: true,
    busy: false,
    loading: false,
    linkUp: true,
    role: '',
    replOffset: 0,
    error: '',
  };
  /** `redis_version` from the last health check ('' until known). */
  serverVersion = '';
  /** Seconds since the master heard from this replica (`lag=` in the master's INFO); -1 unknown. */
  lag = -1;
  /** Shared and priority connections of identity 0 (the node's own credentials). */
  private readonly shared: SharedLinks;
  /** Those of the other identities, by id; dropped once the identity is unused and they owe nothing. */
  private readonly byIdentity = new Map<number, IdentityLinks>();
  private readonly pool: Pool<BackendConnection>;
  private readonly control: ControlClient;
  private readonly outliers: OutlierDetector;
  /** tls.connect options of every connection to the node (its `tls` config, parsed once); undefined: plain TCP. */
  readonly tls: BackendTlsOptions | undefined;
  private probing = false;
  private closing = false;
  /** Out of service for good (see {@link retire}): its state changes no longer matter. */
  retired = false;

  constructor(private readonly options: NodeOptions) {
    const { config, role } = options;
    this.role = role;
    this.weight = config.weight;
    this.label = `${role} ${config.host}:${config.port}`;
    this.outliers = new OutlierDetector(role === 'replica' ? options.outlierTimeouts : 0, options.outlierWindow);
    this.tls = config.tls === undefined ? undefined : backendTlsOptions(config.tls);
    this.shared = new SharedLinks(options.sharedConnections, (db, protocol) => this.open(db, protocol));
    this.control = new ControlClient({
      host: config.host,
      port: config.port,
      username: config.username,
      password: config.password,
      timeout: options.connectTimeout,
      tls: this.tls,
    });
    this.pool = genericPool.createPool<BackendConnection>(
      {
        create: async () => {
          const conn = this.open(0, 2, true);
          await conn.whenReady();
          return conn;
        },
        destroy: async (conn) => conn.destroy('released'),
        validate: async (conn) => !conn.closed,
      },
      {
        max: options.maxDedicated,
        min: 0,
        testOnBorrow: true,
        acquireTimeoutMillis: options.connectTimeout,
        idleTimeoutMillis: 60_000,
        evictionRunIntervalMillis: 30_000,
      },
    );
  }

  get host(): string {
    return this.options.config.host;
  }

  get port(): number {
    return this.options.config.port;
  }

  /** The ACL user the proxy authenticates to this node as (undefined: `default`). */
  get username(): string | undefined {
    return this.options.config.username;
  }

  /** Connections to the node can be established (it is not `down`). */
  get reachable(): boolean {
    return this.health.reachable;
  }

  /** `up`, `down`, `unresponsive` or `busy` (see the file's comment). */
  get state(): 'up' | 'down' | 'unresponsive' | 'busy' {
    const h = this.health;
    if (!h.reachable) return 'down';
    if (!h.responsive) return 'unresponsive';
    return h.busy ? 'busy' : 'up';
  }

  /** Taken out of the read rotation by outlier detection. */
  get ejected(): boolean {
    return this.outliers.ejected;
  }

  /**
   * A shared connection for database `db` speaking RESP `protocol` (see ./shared-links.ts),
   * authenticated as `identity` (null, the default: the node's own credentials, with no
   * lookup; another identity: one map lookup by its id).
   */
  sharedLink(db: number, protocol: 2 | 3, identity: BackendIdentity | null = null): Link {
    if (identity === null) return this.shared.get(db, protocol, coarseNow());
    return this.linksOf(identity).get(db, protocol, coarseNow());
  }

  /** The connection for commands Redis runs while a script is busy (SCRIPT KILL, FUNCTION KILL, …), as `identity`. */
  priorityLink(protocol: 2 | 3, identity: BackendIdentity | null = null): Link {
    return (identity === null ? this.shared : this.linksOf(identity)).priorityLink(protocol);
  }

  /** The shared connections of `identity`, made on first use. */
  private linksOf(identity: BackendIdentity): SharedLinks {
    let entry = this.byIdentity.get(identity.id);
    if (entry === undefined) {
      const links = new SharedLinks(this.options.sharedConnections, (db, protocol) => this.open(db, protocol, false, identity));
      entry = { identity, links };
      this.byIdentity.set(identity.id, entry);
    }
    return entry.links;
  }

  /**
   * Leases a dedicated connection from the pool, switched to database `db`, RESP
   * `protocol` and `identity` (null: the node's own credentials). For another identity the
   * AUTH is answered before the lease is handed out, so nothing of the session's runs as
   * the proxy's own user. End the lease with {@link Lease.release}.
   * @throws Error when none can be had within the connect timeout (pool exhausted or node
   *   down), or Redis refused the identity's AUTH (the message is Redis's text)
   */
  async acquire(db: number, protocol: 2 | 3, identity: BackendIdentity | null = null): Promise<Lease> {
    const conn = await this.pool.acquire();
    if (identity !== null) {
      try {
        await conn.authenticate(identity);
      } catch (err) {
        this.discard(conn, 'refused the lease\'s AUTH');
        throw new Error(`refused user '${identity.username}': ${(err as Error).message}`);
      }
    }
    conn.setProtocol(protocol);
    conn.select(db);
    return new Lease(conn, this);
  }

  /** Dedicated connections leased to sessions now, and idle in the pool (metrics). */
  get poolSize(): { inUse: number; idle: number } {
    return { inUse: this.pool.borrowed, idle: this.pool.available };
  }

  giveBack(conn: BackendConnection): void {
    void this.pool.release(conn);
  }

  discard(conn: BackendConnection, reason: string): void {
    conn.destroy(reason);
    void this.pool.destroy(conn).catch(() => undefined);
  }

  /**
   * Asks the node for its state (INFO server, replication, persistence) and records it.
   * Never throws: a node that cannot be reached, answers late or answers BUSY is
   * recorded as such.
   * @returns the INFO fields, or null when the node gave none
   */
  async checkHealth(): Promise<Map<string, string> | null> {
    if (this.closing) return null;
    let info: Map<string, string>;
    try {
      info = parseInfo(String(await this.control.call('INFO', 'server', 'replication', 'persistence')));
    } catch (err) {
      const message = (err as Error).message;
      if (err instanceof ReplyError && message.startsWith('BUSY')) this.setState(true, true, true, message);
      else if (err instanceof ReplyTimeout) this.setState(true, false, false, message);
      else this.setState(false, true, false, message);
      return null;
    }
    const h = this.health;
    this.serverVersion = info.get('redis_version') ?? this.serverVersion;
    h.loading = info.get('loading') === '1';
    h.role = info.get('role') ?? '';
    h.linkUp = h.role === 'master' || info.get('master_link_status') === 'up';
    h.replOffset = Number(info.get(h.role === 'master' ? 'master_repl_offset' : 'slave_repl_offset') ?? 0);
    this.setState(true, true, false, '');
    return info;
  }

  /**
   * Closes shared connections whose oldest owed reply was sent more than `timeoutMs` ago
   * (coarse ms), unless it is a script's: the replies owed on them get a timeout error
   * (reads are retried elsewhere). Dedicated connections are exempt: they carry blocking
   * commands.
   */
  expireShared(now: number, timeoutMs: number): void {
    this.shared.expire(now, timeoutMs);
    for (const entry of this.byIdentity.values()) {
      entry.links.expire(now, timeoutMs);
      // No session runs as it any more: its connections close once they owe nothing.
      if (entry.identity.inUse === 0 && entry.links.closeIdle('no session of its user is left')) {
        this.byIdentity.delete(entry.identity.id);
      }
    }
  }

  /** Every open shared and priority connection, of every identity. */
  private *sharedConnections(): Generator<BackendConnection> {
    yield* this.shared.all();
    for (const entry of this.byIdentity.values()) yield* entry.links.all();
  }

  /** Closes every shared and priority connection, of every identity; their owed replies fail. */
  private closeShared(detail: string, kind: BackendFailure['kind'] = 'closed'): void {
    for (const conn of [...this.sharedConnections()]) conn.destroy(detail, kind);
  }

  /** While ejected: sends a PING on a data connection; its answer brings the node back into the rotation. */
  probe(): void {
    if (!this.outliers.ejected || this.probing) return;
    this.probing = true;
    this.sharedLink(0, 2).send(new Probe(this), PING, 0, PING.length);
  }

  /** A probe was answered (or its connection failed). */
  probeAnswered(answered: boolean): void {
    this.probing = false;
    if (!answered || !this.outliers.answered()) return;
    this.options.logger.info({ node: this.label }, 'replica back in the read rotation: its data connection answers');
    this.options.onStateChange(this, this.state);
  }

  /** Sends one command on the node's control connection (off the hot path). */
  call(...args: Array<string | Buffer>): Promise<unknown> {
    if (this.closing) return Promise.reject(new Error(`${this.label} is closed`));
    return this.control.call(...args);
  }

  /**
   * Takes the node out of service for good: it left the config or Sentinel's topology,
   * or a reload changed how the proxy connects to it (credentials, pool sizes, timeouts).
   * The caller has already stopped routing to it. The replies owed on its shared
   * connections arrive for up to `drainMs` ms, then those connections close (a reply
   * still owed fails, and a read is retried elsewhere); leased connections stay until
   * their sessions release them, then the node is closed. Never throws.
   */
  async retire(drainMs: number): Promise<void> {
    if (this.retired) return;
    this.retired = true;
    const deadline = Date.now() + drainMs;
    while (Date.now() < deadline && this.sharedOwed() > 0) await sleep(20);
    this.closing = true;
    this.control.close();
    this.closeShared(`${this.label} left the listener's topology`);
    while (this.pool.borrowed > 0) await sleep(100);
    await this.close();
  }

  /** Replies owed on the shared connections now. */
  private sharedOwed(): number {
    let owed = 0;
    for (const conn of this.sharedConnections()) owed += conn.owedCount;
    return owed;
  }

  /** Closes every connection of the node. */
  async close(): Promise<void> {
    this.closing = true;
    this.control.close();
    this.closeShared('proxy shutting down');
    await this.pool.drain();
    await this.pool.clear();
  }

  onReady(): void {
    // A connection that completes its handshake proves the node reachable again.
    const h = this.health;
    this.setState(true, h.responsive, h.busy, h.error);
  }

  onAnswered(): void {
    // A data connection answered: the node is responsive again, whatever its health check is still waiting for.
    const h = this.health;
    if (!h.responsive) this.setState(h.reachable, true, h.busy, '');
  }

  onClosed(_conn: BackendConnection, failure: BackendFailure): void {
    if (this.closing) return;
    const h = this.health;
    switch (failure.kind) {
      case 'unreachable':
        // Could not be established: presumed down until a health check or a new
        // connection says otherwise, so reads go elsewhere and writes fail fast.
        this.setState(false, h.responsive, h.busy, failure.detail);
        break;
      case 'lost':
      case 'protocol':
        // An established connection closed (the node died, its `timeout` or CLIENT KILL,
        // garbage): a health check decides, now.
        this.options.onConnectionLost(this);
        break;
      case 'busy':
        this.setState(h.reachable, h.responsive, true, failure.detail);
        break;
      case 'timeout':
        if (this.outliers.timedOut(Date.now())) {
          this.options.logger.warn(
            { node: this.label, timeouts: this.options.outlierTimeouts, windowMs: this.options.outlierWindow },
            'replica ejected from the read rotation: its data connections keep timing out',
          );
          this.options.onStateChange(this, this.state);
          this.closeShared(`${this.label} was taken out of the read rotation (its commands time out)`);
        }
        break;
      case 'closed':
      case 'refused':
        // Closed on purpose, or a client's Redis user refused: no verdict on the node.
        break;
    }
  }

  private setState(reachable: boolean, responsive: boolean, busy: boolean, error: string): void {
    if (this.retired) return;
    const h = this.health;
    const before = this.state;
    h.reachable = reachable;
    h.responsive = responsive;
    h.busy = busy;
    h.error = error;
    const after = this.state;
    if (before === after) return;
    if (after === 'unresponsive') for (const conn of this.sharedConnections()) conn.reportAnswers = true;
    const logger = this.options.logger;
    if (after === 'up') logger.info({ node: this.label, was: before }, 'backend back');
    else if (after === 'down') logger.warn({ node: this.label, error }, 'backend lost');
    else logger.warn({ node: this.label, error }, `backend ${after}`);
    this.options.onStateChange(this, before);
    if (this.role === 'replica' && before === 'up') {
      // It no longer serves reads: those in flight on it are retried elsewhere now.
      this.closeShared(`${this.label} is ${after} (${error})`);
    }
  }

  /**
   * Opens a connection of the proxy's own to the node, apart from its shared, priority
   * and pooled ones: on database `db`, speaking RESP `protocol`, authenticated with the
   * node's own credentials, its events going to `events` (not to the node). The near
   * cache's tracking connections (src/cache/tracking.ts) are these.
   */
  openOwn(db: number, protocol: 2 | 3, events: ConnectionEvents): BackendConnection {
    const { config, connectTimeout } = this.options;
    const { host, port, username, password } = config;
    const hello = this.serverVersion === '' || Number.parseInt(this.serverVersion, 10) >= 6;
    const options = { host, port, db, protocol, username, password, identity: null, connectTimeout, label: this.label, hello, tls: this.tls };
    return new BackendConnection(options, events);
  }

  private open(db: number, protocol: 2 | 3, wantClientId = false, identity: BackendIdentity | null = null): BackendConnection {
    const { config, connectTimeout } = this.options;
    const { host, port, username, password } = config;
    // HELLO (Redis 6+) runs while a script is busy; an older Redis gets AUTH or PING.
    const hello = this.serverVersion === '' || Number.parseInt(this.serverVersion, 10) >= 6;
    const options = { host, port, db, protocol, username, password, identity, connectTimeout, label: this.label, wantClientId, hello, tls: this.tls };
    const conn = new BackendConnection(options, this);
    conn.reportAnswers = !this.health.responsive;
    return conn;
  }
}

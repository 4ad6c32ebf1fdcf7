/**
 * A node: one Redis server behind a listener (the master or a replica). Owns the shared
 * (multiplexed) connections to it, kept per database, the generic-pool pool of dedicated
 * connections, and what the last health check found.
 */
import genericPool, { type Pool } from 'generic-pool';
import type { Logger } from 'pino';
import type { NodeConfig } from '../config/types.js';
import { BackendConnection, type ConnectionEvents } from './connection.js';
import { ControlClient, parseInfo } from './control-client.js';
import { Lease, type LeasePool } from './lease.js';
import type { BackendFailure, Link } from './link.js';

export type NodeRole = 'master' | 'replica';

export interface NodeOptions {
  role: NodeRole;
  config: NodeConfig;
  /** Shared connections per database. */
  sharedConnections: number;
  /** Most dedicated connections at once. */
  maxDedicated: number;
  /** ms. */
  connectTimeout: number;
  logger: Logger;
  /** Called when the node goes down or comes back. */
  onStateChange(node: Node): void;
  /** Called when an established connection to the node closed unexpectedly: check the node now. */
  onConnectionLost(node: Node): void;
}

/** What the last health check of a node found. */
export interface NodeHealth {
  /** Answered the last check. */
  reachable: boolean;
  /** `loading:1` (still loading its dataset). */
  loading: boolean;
  /** For replicas: `master_link_status:up`. */
  linkUp: boolean;
  /** `role` from INFO replication (`master` or `slave`). */
  role: string;
  /** `master_repl_offset` (for a replica: how far it has applied the stream). */
  replOffset: number;
  /** Why it is unreachable ('' when reachable). */
  error: string;
}

export class Node implements ConnectionEvents, LeasePool {
  readonly role: NodeRole;
  readonly label: string;
  readonly weight: number;
  readonly health: NodeHealth = { reachable: true, loading: false, linkUp: true, role: '', replOffset: 0, error: '' };
  /** `redis_version` from the last health check ('' until known). */
  serverVersion = '';
  /** Seconds since the master heard from this replica (`lag=` in the master's INFO); -1 unknown. */
  lag = -1;
  /** Shared connections by RESP version (index 0: RESP2, 1: RESP3), then by database. */
  private readonly shared: [Array<BackendConnection[] | undefined>, Array<BackendConnection[] | undefined>] = [[], []];
  private rr = 0;
  private readonly pool: Pool<BackendConnection>;
  private readonly control: ControlClient;
  private closing = false;

  constructor(private readonly options: NodeOptions) {
    const { config, role } = options;
    this.role = role;
    this.weight = config.weight;
    this.label = `${role} ${config.host}:${config.port}`;
    this.control = new ControlClient({
      host: config.host,
      port: config.port,
      username: config.username,
      password: config.password,
      timeout: options.connectTimeout,
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

  /** True when the node answered its last health check and no connection to it has failed since. */
  get reachable(): boolean {
    return this.health.reachable;
  }

  /**
   * A shared connection for database `db` speaking RESP `protocol`: round-robin over the
   * node's shared connections for that pair, opened on first use and replaced when closed.
   */
  sharedLink(db: number, protocol: 2 | 3): Link {
    const byDb = this.shared[protocol - 2]!;
    let conns = byDb[db];
    if (conns === undefined) {
      conns = [];
      byDb[db] = conns;
    }
    const n = this.options.sharedConnections;
    const i = n === 1 ? 0 : this.rr++ % n;
    let conn = conns[i];
    if (conn === undefined || conn.closed) {
      conn = this.open(db, protocol);
      conns[i] = conn;
    }
    return conn;
  }

  /**
   * Leases a dedicated connection from the pool, switched to database `db` and RESP
   * `protocol`. End the lease with {@link Lease.release}.
   * @throws Error when none can be had within the connect timeout (pool exhausted or node down).
   */
  async acquire(db: number, protocol: 2 | 3): Promise<Lease> {
    const conn = await this.pool.acquire();
    conn.setProtocol(protocol);
    conn.select(db);
    return new Lease(conn, this);
  }

  giveBack(conn: BackendConnection): void {
    void this.pool.release(conn);
  }

  discard(conn: BackendConnection, reason: string): void {
    conn.destroy(reason);
    void this.pool.destroy(conn).catch(() => undefined);
  }

  /**
   * Asks the node for its state (INFO replication and persistence) and records it.
   * Never throws: an unreachable node is recorded as such.
   * @returns the INFO fields, or null when the node did not answer.
   */
  async checkHealth(): Promise<Map<string, string> | null> {
    let info: Map<string, string> | null = null;
    try {
      info = parseInfo(String(await this.control.call('INFO', 'server', 'replication', 'persistence')));
    } catch (err) {
      this.setReachable(false, (err as Error).message);
      return null;
    }
    const h = this.health;
    this.serverVersion = info.get('redis_version') ?? this.serverVersion;
    h.loading = info.get('loading') === '1';
    h.role = info.get('role') ?? '';
    h.linkUp = h.role === 'master' || info.get('master_link_status') === 'up';
    h.replOffset = Number(info.get(h.role === 'master' ? 'master_repl_offset' : 'slave_repl_offset') ?? 0);
    this.setReachable(true, '');
    return info;
  }

  /**
   * Closes shared connections whose oldest owed reply was sent more than `timeoutMs` ago
   * (coarse ms): the replies owed on them get a timeout error (reads are retried elsewhere).
   * Dedicated connections are exempt: they carry blocking commands.
   */
  expireShared(now: number, timeoutMs: number): void {
    for (const conn of this.sharedConnections()) {
      const sentAt = conn.oldestSentAt;
      if (sentAt > 0 && now - sentAt > timeoutMs) conn.destroy(`command timed out after ${timeoutMs} ms`, 'timeout');
    }
  }

  /** Sends one command on the node's control connection (off the hot path). */
  call(...args: Array<string | Buffer>): Promise<unknown> {
    return this.control.call(...args);
  }

  /** Closes every connection of the node. */
  async close(): Promise<void> {
    this.closing = true;
    this.control.close();
    for (const c of this.sharedConnections()) c.destroy('proxy shutting down');
    await this.pool.drain();
    await this.pool.clear();
  }

  onReady(): void {
    // A connection that completes its handshake proves the node reachable again.
    this.setReachable(true, '');
  }

  onClosed(_conn: BackendConnection, failure: BackendFailure): void {
    if (this.closing) return;
    // A connection that could not be established: the node is presumed down until a health
    // check or a new connection says otherwise, so reads go elsewhere and writes fail fast.
    // An established one that closed (the node died, or its `timeout` or CLIENT KILL ended
    // it, or it broke the protocol) calls for a health check now rather than a verdict.
    if (failure.kind === 'unreachable') this.setReachable(false, failure.detail);
    else if (failure.kind === 'lost' || failure.kind === 'protocol') this.options.onConnectionLost(this);
  }

  private setReachable(reachable: boolean, error: string): void {
    const h = this.health;
    h.error = error;
    if (h.reachable === reachable) return;
    h.reachable = reachable;
    if (reachable) this.options.logger.info({ node: this.label }, 'backend back');
    else this.options.logger.warn({ node: this.label, error }, 'backend lost');
    this.options.onStateChange(this);
  }

  private *sharedConnections(): Generator<BackendConnection> {
    for (const byDb of this.shared) for (const conns of byDb) if (conns !== undefined) yield* conns;
  }

  private open(db: number, protocol: 2 | 3, wantClientId = false): BackendConnection {
    const { config, connectTimeout } = this.options;
    const { host, port, username, password } = config;
    const options = { host, port, db, protocol, username, password, connectTimeout, label: this.label, wantClientId };
    return new BackendConnection(options, this);
  }
}

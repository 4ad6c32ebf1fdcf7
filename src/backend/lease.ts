/**
 * A dedicated connection leased from a node's pool to one session. The lease records the
 * server-side state the session has put on the connection (MULTI, WATCH, subscriptions,
 * MONITOR, tracking) and whether anything happened whose effect it cannot follow; on
 * {@link Lease.release} the connection goes back to the pool only when that state is
 * provably clean, and is destroyed otherwise. This is the one place that decides, so no
 * path can return a connection carrying one client's state to the next client
 * (docs/architecture.md "Isolation").
 */
import type { BackendConnection } from './connection.js';
import type { Link, OwedReply, StreamSink } from './link.js';

/** Connection state bits a lease tracks (see {@link Lease.enter}). */
export const LEASE_TX = 1; // MULTI sent, no EXEC or DISCARD yet
export const LEASE_WATCH = 2; // WATCH sent, no EXEC, DISCARD or UNWATCH yet
export const LEASE_PUBSUB = 4; // subscribed to channels, patterns or shard channels
export const LEASE_MONITOR = 8; // in MONITOR mode (only RESET or QUIT end it)
export const LEASE_TRACKING = 16; // CLIENT TRACKING on

/** Where a lease's connection goes when the lease ends. */
export interface LeasePool {
  /** The connection is clean: back into the pool for the next session. */
  giveBack(conn: BackendConnection): void;
  /** The connection holds state or failed: close it. */
  discard(conn: BackendConnection, reason: string): void;
}

export class Lease implements Link {
  private state = 0;
  private stateUnknown = false;
  private ended = false;

  constructor(
    private readonly conn: BackendConnection,
    private readonly pool: LeasePool,
  ) {}

  /** The node's CLIENT ID for this connection (read during the handshake). */
  get clientId(): number {
    return this.conn.clientId;
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  /** Replies the connection still owes (the session's and the proxy's own). */
  get owed(): number {
    return this.conn.owedCount;
  }

  /** The LEASE_* bits set now. */
  get connectionState(): number {
    return this.state;
  }

  send(reply: OwedReply, buf: Buffer, start: number, end: number): void {
    this.conn.send(reply, buf, start, end);
  }

  /** Writes a request whose reply goes to the stream sink, not to an owed reply (Pub/Sub and MONITOR mode). */
  write(request: Buffer): void {
    this.conn.write(request);
  }

  /** Sends the connection's unsolicited output (pushes, Pub/Sub, MONITOR, replies to {@link write}) to `sink`. */
  stream(sink: StreamSink | null): void {
    this.conn.sink = sink;
  }

  /** Switches the connection to database `db` (a SELECT before whatever comes next, when it differs). */
  select(db: number): void {
    this.conn.select(db);
  }

  /** Switches the connection's RESP version (a HELLO before whatever comes next, when it differs). */
  setProtocol(protocol: 2 | 3): void {
    this.conn.setProtocol(protocol);
  }

  /** Records that a SELECT the client sent (inside a transaction) moved the connection to `db`. */
  assumeDb(db: number): void {
    this.conn.assumeDb(db);
  }

  /** Records that a HELLO written in a stream switched the connection to RESP `protocol`. */
  assumeProtocol(protocol: 2 | 3): void {
    this.conn.assumeProtocol(protocol);
  }

  /** Records that the session put LEASE_* state `bits` on the connection. */
  enter(bits: number): void {
    this.state |= bits;
  }

  /** Records that the session ended LEASE_* state `bits` (EXEC, DISCARD, UNWATCH, the last unsubscribe). */
  leave(bits: number): void {
    this.state &= ~bits;
  }

  /**
   * Records that something ran on the connection whose effect the lease cannot follow (a
   * CLIENT SETNAME or HELLO queued in a transaction, tracking, …): it will be destroyed,
   * never pooled.
   */
  markStateUnknown(): void {
    this.stateUnknown = true;
  }

  /** True when the connection could go back to the pool now. */
  get clean(): boolean {
    return this.state === 0 && !this.stateUnknown && this.conn.owedCount === 0 && !this.conn.closed;
  }

  /**
   * Ends the lease: the connection goes back to the pool when {@link clean}, else it is
   * destroyed (its owed replies fail). Idempotent.
   * @returns true when it went back to the pool
   */
  release(): boolean {
    if (this.ended) return false;
    this.ended = true;
    this.conn.sink = null;
    if (this.clean) {
      this.pool.giveBack(this.conn);
      return true;
    }
    this.pool.discard(this.conn, 'released with connection state');
    return false;
  }
}

/**
 * A dedicated connection leased from a node's pool to one session. The lease records the
 * server-side state the session has put on the connection (MULTI, WATCH, subscriptions,
 * MONITOR, tracking) and whether anything happened whose effect it cannot follow; on
 * {@link Lease.release} the connection goes back to the pool only when that state is
 * provably clean, and is destroyed otherwise. This is the one place that decides, so no
 * path can return a connection carrying one client's state to the next client
 * (docs/architecture.md "Isolation").
 *
 * Identity (./identity.ts): pooled connections are all authenticated as the node's own
 * credentials (identity 0). A lease for a client's Redis user was switched to it with an
 * AUTH that Redis accepted before the lease was handed out (Node.acquire); a clean lease
 * whose connection is not on identity 0 (that user, or another one the client switched
 * to) goes back to the pool only after an AUTH back to identity 0 that Redis accepted,
 * and is destroyed otherwise. So a connection authenticated as one user never serves
 * another.
 */
import type { BackendConnection } from './connection.js';
import type { BackendIdentity } from './identity.js';
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

  /** Who the connection is authenticated as (null: the node's own credentials). */
  get identity(): BackendIdentity | null {
    return this.conn.identity;
  }

  /**
   * Switches the connection to `identity` (an AUTH before whatever comes next, when it
   * differs): the session switched user. A refusal tears the connection down (the lease is
   * then lost, as on any failure); what the session sent before it ran as its previous
   * user, which was its own.
   */
  setIdentity(identity: BackendIdentity | null): void {
    if (identity === this.conn.identity) return;
    // The failure reaches the session through the connection's teardown.
    this.conn.authenticate(identity).catch(() => undefined);
  }

  /** Records that an AUTH the client ran on the connection (in a transaction or a stream) made it `identity`. */
  assumeIdentity(identity: BackendIdentity | null): void {
    this.conn.assumeIdentity(identity);
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
   * destroyed (its owed replies fail). A clean connection authenticated as a client's user
   * is first switched back to the node's own credentials: pooled once Redis accepted that
   * AUTH, destroyed if it did not (or the connection closed meanwhile). Idempotent.
   * @returns true when it went (or is going) back to the pool
   */
  release(): boolean {
    if (this.ended) return false;
    this.ended = true;
    const conn = this.conn;
    conn.sink = null;
    if (!this.clean) {
      this.pool.discard(conn, 'released with connection state');
      return false;
    }
    if (conn.identity === null) {
      this.pool.giveBack(conn);
      return true;
    }
    conn.authenticate(null).then(
      () => this.pool.giveBack(conn),
      (err: Error) => this.pool.discard(conn, `could not authenticate back: ${err.message}`),
    );
    return true;
  }
}

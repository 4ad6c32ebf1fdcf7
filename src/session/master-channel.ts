/**
 * A session's way to the master: which connection a master-bound request goes on, the
 * ordering barrier, and the session's dedicated connection (its lease).
 *
 * Ordering barrier: a session has requests in flight on one master connection at a time.
 * Moving to another (its lease, or the shared connection of another database, RESP
 * version or identity: the Redis user it runs as, src/backend/identity.ts) waits until every reply owed on the current one has arrived, so a client's
 * own commands execute in the order it sent them (docs/architecture.md).
 *
 * The session never touches a connection: it asks the channel to send, to lease, and to
 * release, and the lease itself decides at release whether the connection is clean.
 */
import type { BackendIdentity } from '../backend/identity.js';
import type { Lease } from '../backend/lease.js';
import type { Link, StreamSink } from '../backend/link.js';
import type { Node } from '../backend/node.js';
import { SLOT_DEDICATED, SLOT_MASTER, type ReplySlot } from './reply-slot.js';

/** Where a retiring lease's unsolicited output goes: nowhere (the session has moved on). */
const DROP_OUTPUT: StreamSink = {
  onStreamReply() {},
  onStreamClosed() {},
};

/** Where the listener's master is now: a reload or Sentinel may move it at any time. */
export interface MasterSource {
  readonly master: Node;
}

/** What the channel needs from its session. */
export interface ChannelOwner extends StreamSink {
  /** A reply slot for the request being dispatched, in request order. */
  newSlot(flags: number): ReplySlot;
  /** True while the session holds state that lives on its lease (MULTI, WATCH, Pub/Sub, …). */
  readonly holdsLease: boolean;
  /** Dispatch may go on: the barrier cleared, or a lease arrived or failed. Called from I/O callbacks: schedule, do not dispatch here. */
  wake(): void;
  /** Whether the session has ended (a lease arriving then is released at once). */
  readonly ended: boolean;
}

export class MasterChannel {
  /** Database and RESP version the session's requests need. */
  private db = 0;
  private protocol: 2 | 3 = 2;
  /** Who the session's requests run as: null for the listener's backend identity. */
  private identity: BackendIdentity | null = null;
  /** The session's dedicated connection, or null. */
  lease: Lease | null = null;
  /** The node the lease is on (the master when it was leased). */
  private leaseNode: Node | null = null;
  /** The connection replies are owed on, its node, the (db, protocol) and identity it was chosen for, and how many. */
  private link: Link | null = null;
  private linkNode: Node | null = null;
  private linkKey = 0;
  private linkIdentity: BackendIdentity | null = null;
  private owed = 0;
  private acquiring = false;
  /** The lease arrived for a request not sent yet: kept for it even while the session holds no state. */
  private leaseWanted = false;
  private leaseError = '';
  /** A lease the session let go of while replies were still owed on it: released when they are in. */
  private retiring: Lease | null = null;

  constructor(
    private readonly source: MasterSource,
    private readonly owner: ChannelOwner,
  ) {}

  /** The node the lease is on, or null without a lease. */
  get leasedFrom(): Node | null {
    return this.lease === null ? null : this.leaseNode;
  }

  /** Replies owed on the master connection now. */
  get inFlight(): number {
    return this.owed;
  }

  /**
   * Sends `buf[start, end)` to the master: on the lease when there is one, else on the
   * shared connection for the session's (db, protocol) and identity. The slot gets `flags` plus
   * SLOT_MASTER (and SLOT_DEDICATED on the lease).
   * @returns the slot, or null with nothing sent when the barrier holds the request
   */
  send(buf: Buffer, start: number, end: number, flags: number): ReplySlot | null {
    const key = this.db * 4 + this.protocol;
    let link: Link;
    let node: Node;
    if (this.lease !== null) {
      link = this.lease;
      node = this.leaseNode!;
    } else if (this.owed === 0) {
      node = this.source.master;
      link = node.sharedLink(this.db, this.protocol, this.identity);
    } else if (
      this.linkKey === key &&
      this.linkIdentity === this.identity &&
      this.link !== null &&
      !this.link.closed &&
      this.linkNode === this.source.master
    ) {
      link = this.link;
      node = this.linkNode;
    } else {
      // Another connection, or the master moved: wait for the replies owed on this one.
      return null;
    }
    if (link !== this.link && this.owed > 0) return null;
    if (link === this.lease) this.leaseWanted = false;
    this.link = link;
    this.linkNode = node;
    this.linkKey = key;
    this.linkIdentity = this.identity;
    this.owed++;
    const slot = this.owner.newSlot(flags | SLOT_MASTER | (link === this.lease ? SLOT_DEDICATED : 0));
    slot.node = node;
    link.send(slot, buf, start, end);
    return slot;
  }

  /** A reply (or failure) for a SLOT_MASTER slot arrived. */
  replied(): void {
    if (--this.owed > 0) return;
    this.link = null;
    this.linkNode = null;
    if (this.retiring !== null) {
      this.retiring.release();
      this.retiring = null;
    }
    this.releaseIfIdle();
    this.owner.wake();
  }

  /**
   * Starts leasing a dedicated connection unless one is held or on its way. `forOther`:
   * another session asked (a tracking REDIRECT names this one); a failure is not left
   * for this session's next request.
   * @returns true when the lease is held now; false while it is being acquired (the owner
   *   is woken when it arrives or fails: see {@link takeLeaseError})
   */
  acquire(forOther = false): boolean {
    if (this.lease !== null) return true;
    if (this.acquiring) return false;
    this.acquiring = true;
    const node = this.source.master;
    node.acquire(this.db, this.protocol, this.identity).then(
      (lease) => {
        this.acquiring = false;
        if (this.owner.ended) {
          lease.release();
          return;
        }
        if (node !== this.source.master) {
          // The master moved while the lease was on its way: lease from the new one.
          lease.release();
          this.acquire(forOther);
          return;
        }
        this.lease = lease;
        this.leaseNode = node;
        // The session may have switched database, protocol or user while the lease was on its way.
        lease.setIdentity(this.identity);
        lease.setProtocol(this.protocol);
        lease.select(this.db);
        lease.stream(this.owner);
        this.leaseWanted = !forOther;
        this.owner.wake();
      },
      (err: Error) => {
        this.acquiring = false;
        // Asked for by another session (a tracking REDIRECT): that one reports the failure.
        if (!forOther) this.leaseError = err.message;
        this.owner.wake();
      },
    );
    return false;
  }

  /** Why the last lease could not be had ('' when it could, or was not asked for); cleared by reading. */
  takeLeaseError(): string {
    const error = this.leaseError;
    this.leaseError = '';
    return error;
  }

  /**
   * Writes `request` on the lease with no reply owed (Pub/Sub and MONITOR mode: what comes
   * back goes to the stream). The caller checks {@link writable} first.
   */
  writeRaw(request: Buffer): void {
    this.leaseWanted = false;
    this.lease!.write(request);
  }

  /** True when a request may be written on the lease now (held, and no replies owed on another connection). */
  get writable(): boolean {
    return this.lease !== null && (this.owed === 0 || this.link === this.lease);
  }

  /** True while a lease is being acquired. */
  get acquiringLease(): boolean {
    return this.acquiring;
  }

  /** Returns the lease when nothing is owed on it and the session holds no state on it. */
  releaseIfIdle(): void {
    const lease = this.lease;
    if (lease !== null && this.owed === 0 && !this.owner.holdsLease && !this.leaseWanted) {
      this.lease = null;
      lease.release();
    }
  }

  /**
   * Lets go of the lease whatever the session held on it (RESET, the end of a stream):
   * requests from now on use shared connections. The lease is released (proved clean or
   * destroyed) once the replies owed on it are in; until then the barrier keeps later
   * master requests waiting, so they still run after the earlier ones.
   */
  retireLease(): void {
    const lease = this.lease;
    if (lease === null) return;
    this.lease = null;
    this.leaseWanted = false;
    lease.stream(DROP_OUTPUT);
    if (this.owed > 0 && this.link === lease) {
      this.retiring = lease;
      // Later requests must not join it: they wait at the barrier for its replies.
      this.linkKey = -1;
    } else {
      lease.release();
    }
  }

  /** The session ended: the lease (and one being retired) is released now; replies still owed on it fail. */
  close(): void {
    this.retiring?.release();
    this.retiring = null;
    const lease = this.lease;
    this.lease = null;
    lease?.release();
  }

  /** The session switched database: requests from now on go to connections on `db`. */
  select(db: number): void {
    this.db = db;
    this.lease?.select(db);
  }

  /** The session switched RESP version. */
  setProtocol(protocol: 2 | 3): void {
    this.protocol = protocol;
    this.lease?.setProtocol(protocol);
  }

  /**
   * The session runs as `identity` from its next request on (a login on a listener with
   * `authentication: "redis"`; null: the backend identity). Shared connections of that
   * identity serve it, after the barrier; a lease held is switched with an AUTH.
   */
  setIdentity(identity: BackendIdentity | null): void {
    this.identity = identity;
    this.lease?.setIdentity(identity);
  }

  /** An AUTH the client ran on the lease (in a transaction or a stream) made it, and the session, `identity`. */
  assumeIdentity(identity: BackendIdentity | null): void {
    this.identity = identity;
    this.lease?.assumeIdentity(identity);
  }

  /** A HELLO written in a stream switched the lease (and the session) to RESP `protocol`. */
  assumeProtocol(protocol: 2 | 3): void {
    this.protocol = protocol;
    this.lease?.assumeProtocol(protocol);
  }

  /** A SELECT the client's transaction ran moved the lease (and the session) to `db`. */
  assumeDb(db: number): void {
    this.db = db;
    this.lease?.assumeDb(db);
  }
}

/**
 * A reply slot: the place one request's reply goes. The session keeps its slots in request
 * order (./reply-queue.ts); the link the request went to owes the slot its reply
 * (src/backend/link.ts). Every flag bit a slot can carry is defined here.
 */
import type { BackendIdentity } from '../backend/identity.js';
import type { BackendFailure, OwedReply } from '../backend/link.js';
import type { Node } from '../backend/node.js';

/** Who receives a slot's outcome (the session). */
export interface SlotOwner {
  /** The reply for `slot` arrived: `buf[start, end)` (a view; keep it only by subarray). */
  onSlotReply(slot: ReplySlot, buf: Buffer, start: number, end: number): void;
  /** The link failed before the reply arrived. */
  onSlotError(slot: ReplySlot, failure: BackendFailure): void;
}

/** Sent on a master connection: counts for the session's ordering barrier (./master-channel.ts). */
export const SLOT_MASTER = 1;
/** A read: may be retried on another node (up to MAX_READ_RETRIES times). */
export const SLOT_READ = 2;
// 4: free (was SLOT_RETRIED; ReplySlot.retries counts retries now).
/** Sent on the session's dedicated connection (its lease). */
export const SLOT_DEDICATED = 8;
/** EXEC: its reply applies what the transaction did to the session (./transaction.ts). */
export const SLOT_EXEC = 16;
/** Filled but not written to the client (CLIENT REPLY OFF/SKIP, the proxy's own requests). */
export const SLOT_SILENT = 32;
/** INFO: the reply gets the `# Proxy` section. */
export const SLOT_INFO = 64;
/** A write: causal reads count it in flight until its reply, then number it. */
export const SLOT_WRITE = 128;
/** CLIENT TRACKING ON: an error reply turns the session's tracking back off. */
export const SLOT_TRACKING = 256;
/** A script or function call: commandTimeout does not close its connection while it runs (OwedReply.patient). */
export const SLOT_PATIENT = 512;
/** The PUBLISH marker sent before WAIT / WAITAOF: a refusal replaces the WAIT's reply (it would not count the session's writes). */
export const SLOT_WAIT_MARKER = 1024;
/** WAIT or WAITAOF after its marker. */
export const SLOT_WAIT = 2048;
/** SCRIPT LOAD / FLUSH of a session running as a Redis user: the replicas get it once the master accepted it. */
export const SLOT_FANOUT = 4096;

/**
 * How often a read is sent again after the node it was on failed: twice, since a
 * failover can cost a read two connections (the master dying, then Sentinel's CLIENT
 * KILL on the replica it promotes or reconfigures).
 */
export const MAX_READ_RETRIES = 2;

export class ReplySlot implements OwedReply {
  /** Next slot in the session's queue. */
  next: ReplySlot | null = null;
  /** The reply bytes once arrived, while earlier slots are still waiting. */
  reply: Buffer | null = null;
  done = false;
  flags: number;
  /** Coarse time it was sent (ms, src/io/clock.ts), for command timeouts. */
  sentAt = 0;
  /** The node it was sent to. */
  node: Node | null = null;
  /**
   * The request's bytes, `request[requestStart, requestEnd)`, and the database and RESP
   * version it was sent for: kept for reads so they can be retried elsewhere.
   */
  request: Buffer | null = null;
  requestStart = 0;
  requestEnd = 0;
  /** The database and RESP version of the request, as `db * 4 + protocol`. */
  requestFor = 2;
  /** For a read: the identity it was sent as (null: the backend identity), so that a retry runs as the same user. */
  identity: BackendIdentity | null = null;
  /** For a write under causal reads `global`: its key's bucket, or a KEYS_* value (src/consistency/causal-reads.ts). */
  keys = -1;
  /** The buckets of a write's keys when it has several. */
  manyKeys: number[] | null = null;
  /**
   * For a write with the near cache on: the hashes of the keys it dropped when sent
   * (src/cache/near-cache.ts keyHash), dropped again when it is answered; null: its keys
   * are unknown (the cache was flushed, and is again). Undefined without a cache.
   */
  cacheKeys: number[] | null | undefined = undefined;
  /** Times a read was sent again elsewhere after its node failed. */
  retries = 0;
  /** performance.now() when a read or write was sent, while requests are timed (metrics); else 0. */
  startedAt = 0;

  constructor(
    readonly owner: SlotOwner,
    flags: number,
  ) {
    this.flags = flags;
  }

  get patient(): boolean {
    return (this.flags & SLOT_PATIENT) !== 0;
  }

  settle(buf: Buffer, start: number, end: number): void {
    this.owner.onSlotReply(this, buf, start, end);
  }

  fail(failure: BackendFailure): void {
    this.owner.onSlotError(this, failure);
  }
}

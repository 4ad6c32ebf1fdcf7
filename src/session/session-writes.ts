/**
 * A session's side of causal reads (src/consistency/causal-reads.ts): its writes in flight
 * and their keys, its last acknowledged write, and the node its next read may go to.
 */
import Denque from 'denque';
import type { Node } from '../backend/node.js';
import type { CachedReads } from '../cache/cached-reads.js';
import type { CommandInfo } from '../commands/index.js';
import type { CausalMode } from '../config/types.js';
import { KEYS_MANY, KEYS_UNKNOWN, requestKeys, type CausalReads } from '../consistency/causal-reads.js';
import type { RequestView } from '../protocol/request-parser.js';
import type { Router } from '../routing/router.js';
import type { ReplySlot } from './reply-slot.js';

/** Where the listener's near cache is now (a reload may add, resize or remove it). */
export interface CacheSource {
  readonly nearCache: CachedReads | null;
}

export class SessionWrites {
  /**
   * The causal-read mode this session follows: the listener's, taken whenever the
   * session has no write in flight (a reload may change it; a write is answered under
   * the mode it was sent under).
   */
  private mode: CausalMode;
  /** Writes sent and not yet answered. */
  private inFlight = 0;
  /** Sequence number of the session's last acknowledged write (mode `session`). */
  private lastSeq = 0;
  /** Reused for the key buckets of a multi-key request. */
  private readonly scratch: number[] = [];
  /**
   * Mode `global`: the key buckets of the writes in flight, in send order (a write with
   * several keys has an entry per key; one whose keys are not known, KEYS_UNKNOWN). A
   * read of other keys need not wait for them.
   */
  private pending: Denque<number> | null = null;

  constructor(
    private readonly causal: CausalReads,
    private readonly caches: CacheSource,
  ) {
    this.mode = causal.mode;
  }

  /**
   * A write was sent with `slot` (the request, and its command when known, for its keys
   * in database `db`; `req` null for bytes the proxy made, such as EXEC's stand-ins).
   */
  sent(slot: ReplySlot, cmd: CommandInfo | undefined, req: RequestView | null, db: number): void {
    // The near cache drops the keys now, before Redis runs the write, and again at its reply (src/cache/cached-reads.ts).
    const near = this.caches.nearCache;
    if (near !== null) slot.cacheKeys = near.written(cmd, req);
    if (this.inFlight === 0) this.mode = this.causal.mode;
    if (this.mode === 'none') return;
    this.inFlight++;
    if (this.mode !== 'global') return;
    const keys = req === null ? KEYS_UNKNOWN : requestKeys(cmd, req, db, this.scratch);
    const pending = (this.pending ??= new Denque<number>());
    slot.keys = keys;
    if (keys === KEYS_MANY) {
      slot.manyKeys = this.scratch.slice();
      for (const b of slot.manyKeys) pending.push(b);
    } else {
      pending.push(keys >= 0 ? keys : KEYS_UNKNOWN);
    }
  }

  /** The reply (or failure: it may have run) of a write sent with `slot` arrived. Replies come in send order. */
  answered(slot: ReplySlot): void {
    if (slot.cacheKeys !== undefined) {
      this.caches.nearCache?.acknowledged(slot.cacheKeys);
      slot.cacheKeys = undefined;
    }
    if (this.mode === 'none') return;
    this.inFlight--;
    const pending = this.pending;
    if (pending !== null) {
      if (slot.manyKeys !== null) pending.splice(0, slot.manyKeys.length);
      else pending.shift();
    }
    this.lastSeq = this.causal.writeAcked(slot.keys, slot.manyKeys);
  }

  /** A write the proxy could not follow by its slot (EXEC of a transaction that turned into a stream) was answered. */
  barrierAnswered(): void {
    if (this.mode !== 'none') this.lastSeq = this.causal.writeAcked(KEYS_UNKNOWN, null);
  }

  /**
   * The node for a read of `req` (command `cmd`, database `db`): one that has every write
   * the read must see, as the read policy allows. Null: policy `replica` and none healthy.
   */
  readNode(cmd: CommandInfo, req: RequestView, db: number, router: Router): Node | null {
    const causal = this.causal;
    if (this.inFlight === 0) this.mode = causal.mode;
    if (this.mode === 'none') return router.readNode();
    if (this.mode === 'session') {
      // Its own writes in flight: only the master is sure to have them once they run.
      return this.inFlight > 0 ? router.master : causal.readNode(router, this.lastSeq);
    }
    const keys = requestKeys(cmd, req, db, this.scratch);
    if (this.inFlight > 0 && this.pendingTouches(keys)) return router.master;
    return causal.readNode(router, causal.readNeeds(keys, this.scratch));
  }

  /**
   * A write sent without a reply slot (written to the lease in a Pub/Sub or MONITOR
   * stream, or the EXEC of a transaction that subscribes; `cmd` undefined: keys unknown):
   * the near cache drops its keys, or is flushed, all the same.
   */
  sentInStream(cmd: CommandInfo | undefined, req: RequestView): void {
    this.caches.nearCache?.written(cmd, req);
  }

  /**
   * The latest write a GET `req` (command `cmd`, database `db`) must see, for the near
   * cache: 0 under causalReads `none`, the session's last acknowledged write under
   * `session`, the latest acknowledged write to its key under `global`. -1 when one of
   * the session's own writes in flight may touch it: only the master will do then.
   */
  cacheNeeds(cmd: CommandInfo, req: RequestView, db: number): number {
    const causal = this.causal;
    if (this.inFlight === 0) this.mode = causal.mode;
    if (this.mode === 'none') return 0;
    if (this.mode === 'session') return this.inFlight > 0 ? -1 : this.lastSeq;
    const keys = requestKeys(cmd, req, db, this.scratch);
    if (this.inFlight > 0 && this.pendingTouches(keys)) return -1;
    return causal.readNeeds(keys, this.scratch);
  }

  /** True when a write in flight may touch what a read of `keys` (with `scratch`) reads. */
  private pendingTouches(keys: number): boolean {
    const pending = this.pending;
    if (pending === null || (keys < 0 && keys !== KEYS_MANY)) return true;
    for (let i = 0; i < pending.length; i++) {
      const b = pending.peekAt(i)!;
      if (b === KEYS_UNKNOWN || b === keys) return true;
      if (keys === KEYS_MANY && this.scratch.includes(b)) return true;
    }
    return false;
  }
}

/**
 * Causal reads `global` across workers (src/cluster/): a write acknowledged by one worker
 * must be seen by a read that any worker routes after the client learned of it. So a
 * worker tells every other one which keys its writes touched (their buckets, as in
 * ./recent-writes.ts) before it lets the acknowledgements reach its clients: the reply of
 * such a write is held until every other worker has recorded it (one round trip through
 * the primary per event-loop turn, for all the writes acknowledged in that turn). A
 * worker numbers the writes it is told of as if acknowledged there and then; its next
 * `ROLE` sample covers them, since Redis had executed them before replying.
 */
import type { Peers } from '../cluster/peers.js';

/** Who gets a held reply back: the session, which writes it in its turn. */
export interface HeldReplyOwner<S> {
  releaseHeld(slot: S, reply: Buffer): void;
}

/** Bucket value for a write whose keys are not known (every read must see it). */
export const BUCKET_ALL = -1;

export class SharedWrites<S = unknown> {
  /** Buckets of the writes acknowledged since the last flush (BUCKET_ALL: keys not known). */
  private buckets: number[] = [];
  private held: Array<{ owner: HeldReplyOwner<S>; slot: S; reply: Buffer }> = [];
  private scheduled = false;

  /**
   * @param peers the other workers
   * @param listener the listener's name now (a reload may rename it)
   */
  constructor(
    private readonly peers: Peers,
    private readonly listener: () => string,
  ) {}

  /** A write to a key in `bucket` (BUCKET_ALL: keys not known) was acknowledged here. */
  publish(bucket: number): void {
    this.buckets.push(bucket);
    this.schedule();
  }

  /** The reply `reply` (a copy the caller no longer needs) of a write just published goes to `owner` once every worker has it. */
  hold(owner: HeldReplyOwner<S>, slot: S, reply: Buffer): void {
    this.held.push({ owner, slot, reply });
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const buckets = this.buckets;
    const held = this.held;
    this.buckets = [];
    this.held = [];
    // The primary answers once every other worker recorded them (or exited).
    void this.peers.ask('writes', this.listener(), buckets).then(() => {
      for (const h of held) h.owner.releaseHeld(h.slot, h.reply);
    });
  };
}

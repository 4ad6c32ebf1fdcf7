/**
 * How far replication has got, precisely enough to route each read: the master's
 * replication offset after the writes acknowledged so far, and each replica's applied
 * offset.
 *
 * Writes are numbered in the order their replies passed through the proxy (sequence
 * numbers). A sample pairs the highest sequence number acknowledged when a `ROLE` was
 * sent to the master with the offset it answered: Redis executed those writes before
 * replying to them, so before it read that ROLE, and the offset covers them. A replica
 * whose applied offset (its own `ROLE`) has reached a sample's offset has applied every
 * write up to the sample's sequence number.
 *
 * The proxy polls only while some acknowledged write is not yet known to be on every
 * replica in the read rotation: one `ROLE` per node per round, rounds {@link MIN_POLL_MS}
 * apart while reads wait for them, and backing off to the health-check interval while
 * none does (a write-only load, or reads of other keys); a read that needs an uncovered
 * write ends the pause at once. So a read of a just-written key goes to the master (or a
 * replica known to have the write) and makes the next round run now, and the reads after
 * it go back to the replicas within a round or two; with no writes there is no polling.
 * Source: https://redis.io/docs/latest/commands/role/
 */
import type { Node } from '../backend/node.js';

/** ms between polling rounds while they make progress. */
export const MIN_POLL_MS = 1;
/** Samples kept; an older one is replaced by a later one, which asks more of a replica, never less. */
const SAMPLES = 1024;

/** The nodes the tracker polls: the master and the replicas in the read rotation now. */
export interface ProgressNodes {
  readonly master: Node;
  readonly replicas: readonly Node[];
  /** Replicas reads may go to now. */
  inRotation(): readonly Node[];
}

export class ReplicationProgress {
  /** Sequence number of the latest acknowledged write. */
  acked = 0;
  /** Every write up to this sequence number is known to be on every replica in the rotation. */
  covered = 0;
  private readonly sampleSeqs = new Float64Array(SAMPLES);
  private readonly sampleOffsets = new Float64Array(SAMPLES);
  /** Index of the oldest sample, and how many there are. */
  private first = 0;
  private count = 0;
  /** Applied offset of each replica at its last poll (-1: unknown, or not linked). */
  private readonly offsets = new Map<Node, number>();
  private polling = false;
  /** Ends the pause between two rounds early (set while the poll loop pauses). */
  private wakePoll: (() => void) | null = null;
  /** A read needed a write not yet covered since the current round began. */
  private wanted = false;
  private closed = false;
  /** Polling rounds since the proxy started (metrics, tests). */
  rounds = 0;

  /**
   * @param nodes the listener's nodes
   * @param maxPollMs longest pause between rounds while writes are pending (the health-check interval)
   */
  constructor(
    private readonly nodes: ProgressNodes,
    private readonly maxPollMs: number,
  ) {}

  /** A write was acknowledged; returns its sequence number. Starts polling if it is not running. */
  writeAcked(): number {
    const seq = ++this.acked;
    if (!this.polling && !this.closed) void this.poll();
    return seq;
  }

  /**
   * A read needs writes not yet known to be everywhere: polling goes on at full pace, and
   * a round backed off while no read waited runs now.
   */
  want(): void {
    this.wanted = true;
    if (this.wakePoll !== null) this.wakePoll();
    else if (!this.polling && !this.closed && this.covered < this.acked) void this.poll();
  }

  /**
   * The master offset a replica must have applied to have every write up to `seq`, or -1
   * when no sample covers it yet (only the master is known to have it).
   */
  requiredOffset(seq: number): number {
    if (this.count === 0 || this.sampleSeqs[(this.first + this.count - 1) % SAMPLES]! < seq) return -1;
    // The earliest sample taken after `seq` was acknowledged; an older one may have been
    // replaced by a later one, which asks for a higher offset: safe.
    for (let i = 0; i < this.count; i++) {
      const at = (this.first + i) % SAMPLES;
      if (this.sampleSeqs[at]! >= seq) return this.sampleOffsets[at]!;
    }
    return -1;
  }

  /** The replica's applied offset at its last poll (-1 when unknown or not linked to the master). */
  offsetOf(node: Node): number {
    return this.offsets.get(node) ?? -1;
  }

  /** The read rotation changed: what is covered is worked out again for the replicas in it. */
  rotationChanged(): void {
    this.updateCovered(true);
  }

  /**
   * The master changed: every sample and replica offset is dropped and nothing counts as
   * covered until new rounds say so (they start at once if writes are pending).
   */
  restart(): void {
    this.first = 0;
    this.count = 0;
    this.offsets.clear();
    this.covered = 0;
    if (!this.polling && !this.closed && this.acked > 0) void this.poll();
  }

  /** Stops polling for good. */
  close(): void {
    this.closed = true;
  }

  private async poll(): Promise<void> {
    this.polling = true;
    let pause = MIN_POLL_MS;
    try {
      while (!this.closed && this.covered < this.acked) {
        this.wanted = false;
        await this.round();
        // Full pace only while reads wait for what is not yet covered; else back off (a
        // write-only load polls about once per health-check interval) until one does.
        pause = this.wanted ? MIN_POLL_MS : Math.min(pause * 2, this.maxPollMs);
        if (this.wanted) {
          await new Promise((resolve) => setTimeout(resolve, pause));
        } else {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              clearTimeout(timer);
              this.wakePoll = null;
              resolve();
            };
            const timer = setTimeout(done, pause);
            this.wakePoll = done;
          });
        }
      }
    } finally {
      this.polling = false;
    }
  }

  /** One round: ROLE on the master and on every replica, at once. */
  private async round(): Promise<void> {
    this.rounds++;
    const seq = this.acked;
    const { master, replicas } = this.nodes;
    const [fromMaster, ...fromReplicas] = await Promise.allSettled([master.call('ROLE'), ...replicas.map((r) => r.call('ROLE'))]);
    if (fromMaster!.status === 'fulfilled') {
      const offset = masterOffset(fromMaster!.value);
      if (offset >= 0) this.addSample(seq, offset);
    }
    replicas.forEach((r, i) => {
      const result = fromReplicas[i]!;
      this.offsets.set(r, result.status === 'fulfilled' ? replicaOffset(result.value) : -1);
    });
    this.updateCovered();
  }

  private addSample(seq: number, offset: number): void {
    const last = this.count === 0 ? -1 : (this.first + this.count - 1) % SAMPLES;
    if (last >= 0 && this.sampleOffsets[last]! > offset) {
      // The master's offset went back (a restart or a new replication history): nothing
      // sampled before can be compared with it.
      this.first = 0;
      this.count = 0;
    }
    if (this.count === SAMPLES) {
      this.first = (this.first + 1) % SAMPLES;
      this.count--;
    }
    const at = (this.first + this.count) % SAMPLES;
    this.sampleSeqs[at] = seq;
    this.sampleOffsets[at] = offset;
    this.count++;
  }

  /**
   * Moves {@link covered} up to the latest sample every replica in the rotation has
   * reached, and drops the samples before that one. With `recompute` (the rotation
   * changed, maybe to include a replica that is behind), it may also move down.
   */
  private updateCovered(recompute = false): void {
    const rotation = this.nodes.inRotation();
    if (rotation.length === 0) {
      // Reads go to the master: nothing to wait for.
      this.covered = this.acked;
      return;
    }
    let least = Infinity;
    for (const r of rotation) least = Math.min(least, this.offsetOf(r));
    let reached = -1;
    for (let i = 0; i < this.count && this.sampleOffsets[(this.first + i) % SAMPLES]! <= least; i++) reached = i;
    if (reached < 0) {
      if (recompute) this.covered = 0;
      return;
    }
    const seq = this.sampleSeqs[(this.first + reached) % SAMPLES]!;
    this.covered = recompute ? seq : Math.max(this.covered, seq);
    this.first = (this.first + reached) % SAMPLES;
    this.count -= reached;
  }
}

/** The master's offset from its ROLE reply (`master`, offset, replicas), or -1. */
function masterOffset(reply: unknown): number {
  if (!Array.isArray(reply) || String(reply[0]) !== 'master') return -1;
  return Number(reply[1]);
}

/** A replica's applied offset from its ROLE reply (`slave`, host, port, state, offset); -1 unless linked. */
function replicaOffset(reply: unknown): number {
  if (!Array.isArray(reply) || String(reply[0]) !== 'slave' || String(reply[3]) !== 'connected') return -1;
  return Number(reply[4]);
}

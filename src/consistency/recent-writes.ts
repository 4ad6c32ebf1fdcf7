/**
 * Which recent write a read must see, per key, in fixed memory: a table of 65,536 buckets,
 * each holding the sequence number of the latest acknowledged write to a key that hashes
 * there (database included). Two keys sharing a bucket only make a read wait for a write
 * it did not need (it goes to the master or to a replica that has caught up), never the
 * reverse. Nothing needs pruning: an entry stops mattering once every replica is known
 * to have its write (the progress tracker's covered sequence number).
 *
 * A write whose keys the proxy does not know (FLUSHDB, SWAPDB, MOVE, scripts, EXEC,
 * unknown commands) is a barrier: every read must see it.
 */

const BUCKETS = 1 << 16;
const MASK = BUCKETS - 1;

/** The bucket of key `buf[start, end)` in database `db` (FNV-1a over the bytes and the db). */
export function keyBucket(db: number, buf: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5 ^ db;
  for (let i = start; i < end; i++) {
    h ^= buf[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return (h ^ (h >>> 16)) & MASK;
}

export class RecentWrites {
  private readonly table = new Float64Array(BUCKETS);
  /** Sequence number of the latest write whose keys are not known. */
  barrier = 0;

  /** A write to a key in `bucket` was acknowledged as write number `seq`. */
  wrote(bucket: number, seq: number): void {
    this.table[bucket] = seq;
  }

  /** The latest write a read of a key in `bucket` must see (the barrier included). */
  latest(bucket: number): number {
    const seq = this.table[bucket]!;
    return seq > this.barrier ? seq : this.barrier;
  }
}

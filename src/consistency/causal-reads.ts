/**
 * Causal reads for one listener: which writes a read must see, and which node has them.
 *
 * - `none`: reads go where the read policy sends them.
 * - `session`: a read sees the writes of its own session.
 * - `global`: a read sees every write acknowledged to any client of the listener before
 *   the read arrived, per key: only the writes to the keys it reads (./recent-writes.ts),
 *   or every write for a read whose keys are not known (KEYS, SCAN, DBSIZE, EVAL_RO).
 *
 * A read whose writes every replica in the rotation is known to have goes anywhere the
 * read policy allows; otherwise to a replica whose applied offset has reached them
 * (./replication-progress.ts), else to the master. A session's own writes still in
 * flight send to the master its reads of the keys they touch (`global`) or all its reads
 * (`session`): a pipelined write is read back as on one Redis.
 * The idea follows MaxScale's causal_reads: https://mariadb.com/kb/en/mariadb-maxscale-2308-readwritesplit/#causal_reads
 */
import type { Node } from '../backend/node.js';
import { TRAIT_KEYS_UNKNOWN, type CommandInfo } from '../commands/index.js';
import type { CausalMode } from '../config/types.js';
import type { RequestView } from '../protocol/request-parser.js';
import type { Router } from '../routing/router.js';
import { keyBucket, RecentWrites } from './recent-writes.js';
import { ReplicationProgress, type ProgressNodes } from './replication-progress.js';
import { BUCKET_ALL, type SharedWrites } from './shared-writes.js';

/** What {@link requestKeys} found besides one key's bucket (a bucket is ≥ 0). */
export const KEYS_UNKNOWN = -1; // keys the proxy cannot tell (or a command that touches more than its keys)
export const KEYS_MANY = -2; // several keys: their buckets are in the scratch array
export const KEYS_NONE = -3; // no keys: a read of the whole keyspace, a write of no particular key

/**
 * The key buckets of a request, from its command's key positions
 * (https://redis.io/docs/latest/commands/command-info/): the bucket of its one key, or
 * KEYS_MANY with the buckets in `scratch`, or KEYS_NONE, or KEYS_UNKNOWN.
 */
export function requestKeys(cmd: CommandInfo | undefined, req: RequestView, db: number, scratch: number[]): number {
  if (cmd === undefined || cmd.traits & TRAIT_KEYS_UNKNOWN) return KEYS_UNKNOWN;
  const first = cmd.firstKey;
  if (first <= 0 || first >= req.argc) return KEYS_NONE;
  const last = cmd.lastKey < 0 ? req.argc + cmd.lastKey : Math.min(cmd.lastKey, req.argc - 1);
  if (last === first) return keyBucket(db, req.buf, req.starts[first]!, req.ends[first]!);
  const step = cmd.step > 0 ? cmd.step : 1;
  scratch.length = 0;
  for (let i = first; i <= last; i += step) scratch.push(keyBucket(db, req.buf, req.starts[i]!, req.ends[i]!));
  return KEYS_MANY;
}

export class CausalReads {
  readonly progress: ReplicationProgress;
  private readonly writes = new RecentWrites();
  /**
   * With workers (src/cluster/): tells the other workers of the writes acknowledged here,
   * and holds their replies until they have recorded them (./shared-writes.ts); null in
   * one process.
   */
  shared: SharedWrites | null = null;

  /**
   * @param mode the listener's `causalReads`
   * @param nodes the listener's nodes (polled while writes are pending)
   * @param maxPollMs the health-check interval (the longest pause between polls)
   */
  constructor(
    public mode: CausalMode,
    nodes: ProgressNodes,
    maxPollMs: number,
  ) {
    this.progress = new ReplicationProgress(nodes, maxPollMs);
  }

  /**
   * A write was acknowledged. `keys` is what {@link requestKeys} found when it was sent
   * (with `many` its buckets for KEYS_MANY). Returns the write's sequence number.
   */
  writeAcked(keys: number, many: readonly number[] | null): number {
    const seq = this.progress.writeAcked();
    if (this.mode !== 'global') return seq;
    const writes = this.writes;
    const shared = this.shared;
    if (keys >= 0) {
      writes.wrote(keys, seq);
      shared?.publish(keys);
    } else if (keys === KEYS_MANY && many !== null) {
      for (const b of many) {
        writes.wrote(b, seq);
        shared?.publish(b);
      }
    } else {
      writes.barrier = seq;
      shared?.publish(BUCKET_ALL);
    }
    return seq;
  }

  /**
   * Writes another worker acknowledged, by key bucket (negative: keys not known): numbered
   * here as if acknowledged now, so reads routed here from now on see them (the next
   * master offset sampled covers them).
   */
  peerWrites(buckets: readonly number[]): void {
    if (this.mode !== 'global' || buckets.length === 0) return;
    const seq = this.progress.writeAcked();
    for (const b of buckets) {
      if (b >= 0) this.writes.wrote(b, seq);
      else this.writes.barrier = seq;
    }
  }

  /** True when a write's reply must wait for the other workers (./shared-writes.ts). */
  get holdsReplies(): boolean {
    return this.shared !== null && this.mode === 'global';
  }

  /** The sequence number of the latest write a read of `keys` (from {@link requestKeys}) must see. */
  readNeeds(keys: number, scratch: readonly number[]): number {
    if (keys >= 0) return this.writes.latest(keys);
    if (keys !== KEYS_MANY) return this.progress.acked;
    let needed = 0;
    for (const b of scratch) needed = Math.max(needed, this.writes.latest(b));
    return needed;
  }

  /**
   * The node for a read that must see every write up to `needed`: any the read policy
   * allows when every replica in the rotation has them, else a replica that has applied
   * them, else the master. Null only as the router's own null (policy `replica`, none healthy).
   */
  readNode(router: Router, needed: number): Node | null {
    const progress = this.progress;
    if (needed <= progress.covered) return router.readNode();
    progress.want();
    const offset = progress.requiredOffset(needed);
    if (offset < 0) return router.master;
    return router.readNodeAtLeast(offset, progress);
  }

  /**
   * A reload changed the listener's `causalReads`. Sessions switch at their next write
   * with none in flight (./session-writes.ts). Turning `global` on makes every read need
   * every write acknowledged so far: the per-key table did not record them.
   */
  setMode(mode: CausalMode): void {
    if (mode === this.mode) return;
    // With workers, writes acknowledged by the others before now are not in the table
    // either: a new number makes reads wait for a master offset sampled after now.
    if (mode === 'global') this.writes.barrier = this.shared !== null ? this.progress.writeAcked() : this.progress.acked;
    this.mode = mode;
  }

  /**
   * The master moved to another server (a failover, or a reload that names another
   * master): offsets measured on the old one mean nothing on the new one. Until new
   * samples are taken, a read that needs any write goes to the new master.
   */
  masterChanged(): void {
    this.progress.restart();
  }

  close(): void {
    this.progress.close();
  }
}

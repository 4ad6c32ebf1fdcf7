/**
 * A listener's near cache as its readers and writers use it: the cache (./near-cache.ts),
 * its tracking connections (./tracking.ts), and the causal-reads bookkeeping that says
 * which cached versions a read may take.
 *
 * - Readers (RESP GET with `nearCache`, the HTTP front end) look up with the sequence
 *   number of the latest write they must see (src/consistency/causal-reads.ts), and fill
 *   from the node causal reads and the read policy picked, on that node's tracking
 *   connection ({@link CachedReads.fetch}, {@link CachedReads.prefetch}).
 * - Writers (every write sent through the listener, src/session/session-writes.ts) drop
 *   their keys when they are sent ({@link CachedReads.written}) and again when they are
 *   answered ({@link CachedReads.acknowledged}); a write whose keys are not known flushes
 *   the cache.
 */
import type { Logger } from 'pino';
import type { Node } from '../backend/node.js';
import { TRAIT_KEYS_UNKNOWN, type CommandInfo } from '../commands/index.js';
import type { NearCacheConfig } from '../config/types.js';
import type { CausalReads } from '../consistency/causal-reads.js';
import type { RequestView } from '../protocol/request-parser.js';
import type { Router } from '../routing/router.js';
import { keyHash, NearCache, type CacheEntry } from './near-cache.js';
import { CacheTracking, type FillResult } from './tracking.js';

export class CachedReads {
  readonly cache: NearCache;
  readonly tracking: CacheTracking;

  /**
   * @param config the cache's size (entries, bytes, ttl ms)
   * @param causal the listener's causal reads (which writes each node is known to have)
   * @param router the listener's router (which node is the master)
   * @param logger the listener's logger now
   */
  constructor(
    config: NearCacheConfig,
    private readonly causal: CausalReads,
    private readonly router: Router,
    logger: () => Logger,
  ) {
    this.cache = new NearCache(config);
    this.tracking = new CacheTracking(this.cache, logger);
  }

  /**
   * The sequence number `node` is known to have applied, for a fill sent to it now that
   * needs writes up to `needed`: every acknowledged write for the master; for a replica,
   * `needed` (causal reads picked it for that) or what every replica in the rotation has.
   */
  private coveredBy(node: Node, needed: number): number {
    const progress = this.causal.progress;
    return node === this.router.master ? progress.acked : Math.max(needed, progress.covered);
  }

  /**
   * Reads `key` from `node` (database `db`) on its tracking connection and caches a string
   * value; `done` gets what was found and the entry inserted (null when nothing was: not
   * a string, or invalidated while in flight). `needed`: the latest write the read must see.
   * @returns false, with nothing sent, when `node` refused CLIENT TRACKING (read it elsewhere, uncached)
   */
  fetch(node: Node, db: number, key: Buffer, needed: number, done: (result: FillResult, entry: CacheEntry | null) => void): boolean {
    if (!this.tracking.canTrack(node)) return false;
    const cache = this.cache;
    const name = keyHash(key, 0, key.length);
    const token = cache.beginFill(name);
    const fetchedAt = Date.now();
    const covered = this.coveredBy(node, needed);
    this.tracking.get(node, db, key, (result) => {
      if (result.kind === 'value') {
        done(result, cache.completeFill(token, db, name, key, result.value, fetchedAt, covered));
      } else {
        cache.abandonFill(token, name);
        done(result, null);
      }
    });
    return true;
  }

  /**
   * A RESP GET of `buf[start, end)` missed and went to `node` the usual way: the cache is
   * filled in the background from the same node (one more GET, on its tracking
   * connection), unless a fill of the key is already in flight or the node is not usable.
   */
  prefetch(node: Node, db: number, buf: Buffer, start: number, end: number, needed: number): void {
    if (!node.reachable || this.cache.filling(keyHash(buf, start, end))) return;
    this.fetch(node, db, Buffer.from(buf.subarray(start, end)), needed, () => undefined);
  }

  /**
   * A write `req` (command `cmd`, undefined when unknown; `req` null for bytes the proxy
   * made, such as EXEC) is being sent: its keys are dropped from the cache now, and fills
   * of them in flight will not be inserted; a write whose keys are not known (FLUSHDB,
   * FLUSHALL, SWAPDB, EXEC, EVAL, unknown commands) flushes the cache.
   */
  written(cmd: CommandInfo | undefined, req: RequestView | null): number[] | null {
    const cache = this.cache;
    if (cmd === undefined || req === null || cmd.traits & TRAIT_KEYS_UNKNOWN || cmd.firstKey <= 0 || cmd.firstKey >= req.argc) {
      cache.flush();
      return null;
    }
    const first = cmd.firstKey;
    const last = cmd.lastKey < 0 ? req.argc + cmd.lastKey : Math.min(cmd.lastKey, req.argc - 1);
    const step = cmd.step > 0 ? cmd.step : 1;
    const buf = req.buf;
    const keys: number[] = [];
    for (let i = first; i <= last; i += step) {
      const key = keyHash(buf, req.starts[i]!, req.ends[i]!);
      cache.invalidate(key);
      keys.push(key);
    }
    return keys;
  }

  /**
   * The write that dropped `keys` (null: a flush) when it was sent has been answered: they
   * are dropped again. A fill that ran on the node before the write did, on another
   * connection, and whose invalidation is still on its way, is not left for reads that
   * come after the acknowledgement.
   */
  acknowledged(keys: number[] | null): void {
    if (keys === null) this.cache.flush();
    else for (const key of keys) this.cache.invalidate(key);
  }

  /** Drops every entry and closes the tracking connections (the listener closes, or a reload resizes the cache). */
  close(): void {
    this.tracking.close();
    this.cache.flush();
  }
}

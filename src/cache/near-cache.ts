/**
 * The near cache of one listener: string values read with GET, kept in the proxy's
 * memory (lru-cache) and kept correct by Redis's server-assisted client-side caching
 * (./tracking.ts delivers the invalidations).
 * See https://redis.io/docs/latest/develop/reference/client-side-caching/
 *
 * What keeps an entry correct:
 * - It is only inserted from a fill read on a connection with `CLIENT TRACKING on`
 *   (./tracking.ts), so the node it came from tells the proxy when the key changes.
 * - An invalidation drops the key at once (every database: Redis's invalidation
 *   messages name keys, not databases); a null invalidation (FLUSHALL, FLUSHDB) or a
 *   tracking connection lost flushes everything ({@link NearCache.flush}).
 * - A fill whose key was invalidated (or written through the proxy, or flushed) while it
 *   was in flight is discarded ({@link FillToken}).
 * - A write sent through the proxy drops its keys when it is sent, before Redis has run it
 *   (src/session/session-writes.ts); a write whose keys are unknown flushes.
 * - Each entry records the causal-reads sequence number its node was known to have
 *   applied when the fill was sent (`covered`); a read that needs a later write
 *   (src/consistency/causal-reads.ts) does not take it.
 *
 * Keys: a 53-bit hash of the key's bytes ({@link keyHash}, computed once per request,
 * no string built), mixed with the database for the LRU; an entry keeps its key's bytes
 * and a lookup compares them, so a collision is a miss, never a wrong value. Fills in
 * flight and invalidations go by the hash alone (an invalidation names no database; a
 * collision only drops an entry too many). Sizes: the entry's key bytes plus value bytes.
 */
import { LRUCache } from 'lru-cache';
import type { NearCacheConfig } from '../config/types.js';

/**
 * A 53-bit hash of `buf[start, end)` (two 32-bit FNV-1a variants): the identity of a key
 * in the cache, the same in every database.
 */
export function keyHash(buf: Buffer, start: number, end: number): number {
  let a = 0x811c9dc5;
  let b = 0x1b873593;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0) * 2097152 + (b >>> 11);
}

/** The LRU key of hash `h` in database `db`. */
function slotOf(h: number, db: number): number {
  return db === 0 ? h : (h + db * 0x9e3779b1) % 9007199254740992;
}

/** Whether `key` holds the bytes `buf[start, end)`. */
function sameBytes(key: Buffer, buf: Buffer, start: number, end: number): boolean {
  const n = end - start;
  if (key.length !== n) return false;
  for (let i = 0; i < n; i++) if (key[i] !== buf[start + i]) return false;
  return true;
}

/** One cached value. */
export interface CacheEntry {
  /** The key's bytes (a lookup compares them). */
  readonly key: Buffer;
  /** The value as a RESP bulk string (`$<n>\r\n<value>\r\n`): the same bytes in RESP2 and RESP3. */
  readonly reply: Buffer;
  /** Where the value starts in `reply` (it ends 2 bytes before the end). */
  readonly valueStart: number;
  /** Date.now() (ms) when the fill that brought it was sent. */
  readonly fetchedAt: number;
  /** The causal-reads sequence number its node had applied when the fill was sent. */
  readonly covered: number;
}

/** A fill in flight for one key: marked stale when the key is invalidated before it completes. */
export class FillToken {
  stale = false;
  /** Fills sharing the token (several in flight for the same key). */
  count = 0;
}

/** The cache's counters since start (INFO proxy, /metrics). */
export interface NearCacheCounters {
  /** Reads answered from memory. */
  hits: number;
  /** Reads that looked and found nothing usable. */
  misses: number;
  /** Keys invalidated: Redis said they changed, or a write through the proxy was sent (cached or not). */
  invalidations: number;
  /** Entries pushed out by maxKeys or maxBytes. */
  evictions: number;
  /** Whole-cache flushes: a null invalidation, a write of unknown keys, a tracking connection lost. */
  flushes: number;
  /** Fills inserted. */
  fills: number;
  /** Fills discarded because their key was invalidated while they were in flight. */
  discarded: number;
}

/** Bytes of a RESP bulk string's header for a value of `n` bytes: `$<n>\r\n`. */
function bulkHeader(n: number): string {
  return `$${n}\r\n`;
}

export class NearCache {
  private readonly lru: LRUCache<number, CacheEntry>;
  /** Fills in flight, by key hash (no database). */
  private readonly inflight = new Map<number, FillToken>();
  /** Databases that have had entries (an invalidation names keys only). */
  private readonly dbs = new Set<number>();
  readonly counters: NearCacheCounters = { hits: 0, misses: 0, invalidations: 0, evictions: 0, flushes: 0, fills: 0, discarded: 0 };

  /** @param config maxKeys (entries), maxBytes (bytes of keys plus values; unset: no limit), ttl (ms) */
  constructor(readonly config: NearCacheConfig) {
    this.lru = new LRUCache<number, CacheEntry>({
      max: config.maxKeys,
      // Sizes are always counted (INFO shows the bytes); the limit applies only when set.
      maxSize: config.maxBytes ?? Number.MAX_SAFE_INTEGER,
      sizeCalculation: (entry) => Math.max(1, entry.key.length + entry.reply.length - entry.valueStart - 2),
      ttl: config.ttl,
      updateAgeOnGet: false,
      dispose: (_entry, _key, reason) => {
        if (reason === 'evict') this.counters.evictions++;
      },
    });
  }

  /** Entries now. */
  get size(): number {
    return this.lru.size;
  }

  /** Bytes of keys and values now. */
  get bytes(): number {
    return this.lru.calculatedSize;
  }

  /**
   * The entry for `key` (`buf[start, end)`) in database `db`, counted as a hit, if there is
   * one a read that must see writes up to sequence number `needed` may take; else
   * undefined, counted as a miss.
   */
  get(db: number, buf: Buffer, start: number, end: number, needed: number): CacheEntry | undefined {
    const entry = this.lru.get(slotOf(keyHash(buf, start, end), db));
    if (entry === undefined || entry.covered < needed || !sameBytes(entry.key, buf, start, end)) {
      this.counters.misses++;
      return undefined;
    }
    this.counters.hits++;
    return entry;
  }

  /** True when a fill for the key of hash `key` ({@link keyHash}) is in flight. */
  filling(key: number): boolean {
    return this.inflight.has(key);
  }

  /** A fill of the key of hash `key` is about to be sent: its token says, when it completes, whether to insert it. */
  beginFill(key: number): FillToken {
    let token = this.inflight.get(key);
    if (token === undefined) {
      token = new FillToken();
      this.inflight.set(key, token);
    }
    token.count++;
    return token;
  }

  /**
   * A fill of `name` (its bytes; `key` its hash) in database `db` completed: inserts
   * `value` (a copy is kept) unless the key was invalidated meanwhile; `value` null (a
   * miss, another type, an error) inserts nothing.
   * @param fetchedAt Date.now() when the fill was sent
   * @param covered the sequence number its node had applied then (see the file's comment)
   * @returns the entry inserted, or null
   */
  completeFill(
    token: FillToken,
    db: number,
    key: number,
    name: Buffer,
    value: Buffer | null,
    fetchedAt: number,
    covered: number,
  ): CacheEntry | null {
    this.endFill(token, key);
    if (value === null) return null;
    if (token.stale) {
      this.counters.discarded++;
      return null;
    }
    const header = bulkHeader(value.length);
    const reply = Buffer.allocUnsafe(header.length + value.length + 2);
    reply.write(header, 0, 'latin1');
    value.copy(reply, header.length);
    reply[reply.length - 2] = 0x0d;
    reply[reply.length - 1] = 0x0a;
    const entry: CacheEntry = { key: Buffer.from(name), reply, valueStart: header.length, fetchedAt, covered };
    this.dbs.add(db);
    const slot = slotOf(key, db);
    this.lru.set(slot, entry);
    // A value larger than maxBytes is not kept.
    if (this.lru.peek(slot) !== entry) return null;
    this.counters.fills++;
    return entry;
  }

  /** A fill of `key` failed (its connection went): nothing is inserted. */
  abandonFill(token: FillToken, key: number): void {
    this.endFill(token, key);
  }

  private endFill(token: FillToken, key: number): void {
    if (--token.count === 0 && this.inflight.get(key) === token) this.inflight.delete(key);
  }

  /**
   * The key of hash `key` changed, or is about to (a write through the proxy was sent):
   * dropped in every database, and the fills in flight for it will not be inserted.
   */
  invalidate(key: number): void {
    this.counters.invalidations++;
    const token = this.inflight.get(key);
    if (token !== undefined) {
      token.stale = true;
      this.inflight.delete(key);
    }
    for (const db of this.dbs) this.lru.delete(slotOf(key, db));
  }

  /** Drops every entry; fills in flight are not inserted. */
  flush(): void {
    for (const token of this.inflight.values()) token.stale = true;
    this.inflight.clear();
    this.lru.clear();
    this.counters.flushes++;
  }

  /** The `INFO proxy` lines of the cache (without CRLF). */
  infoLines(): string[] {
    const c = this.counters;
    return [
      `near_cache_entries:${this.size}`,
      `near_cache_bytes:${this.bytes}`,
      `near_cache_max_keys:${this.config.maxKeys}`,
      `near_cache_max_bytes:${this.config.maxBytes ?? 0}`,
      `near_cache_ttl_ms:${this.config.ttl}`,
      `near_cache_hits:${c.hits}`,
      `near_cache_misses:${c.misses}`,
      `near_cache_fills:${c.fills}`,
      `near_cache_fills_discarded:${c.discarded}`,
      `near_cache_invalidations:${c.invalidations}`,
      `near_cache_evictions:${c.evictions}`,
      `near_cache_flushes:${c.flushes}`,
    ];
  }
}

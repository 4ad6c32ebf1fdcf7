/**
 * The near cache's connections to the nodes: one per node and database, RESP3, with
 * `CLIENT TRACKING on` (default mode: Redis remembers the keys read on the connection and
 * pushes an invalidation when one changes). Every fill of the cache is a GET on one of
 * them, so the node that answered it is the node that will invalidate it: the master, or
 * a replica, whose invalidations come when it applies the write from replication.
 * See https://redis.io/docs/latest/develop/reference/client-side-caching/ and
 * https://redis.io/docs/latest/commands/client-tracking/
 *
 * RESP3 puts the invalidation pushes on the same connection as the replies, so a push is
 * never overtaken by a reply sent after it. A push `>2 invalidate [keys]` drops the keys;
 * `>2 invalidate _` (FLUSHALL, FLUSHDB) flushes the cache, and so does losing a connection
 * (its tracking is gone with it: invalidations could have been missed).
 *
 * These connections carry only the cache's fills, which are few (misses of hot keys), so
 * Redis tracks only the keys the cache holds. Their replies time out like a shared
 * connection's (`commandTimeout`, {@link CacheTracking.expire}).
 */
import type { Logger } from 'pino';
import type { BackendConnection, ConnectionEvents } from '../backend/connection.js';
import type { BackendFailure, OwedReply, StreamSink } from '../backend/link.js';
import type { Node } from '../backend/node.js';
import { parseDecimal } from '../protocol/decimal.js';
import { encodeCommand } from '../protocol/resp.js';
import { keyHash, type NearCache } from './near-cache.js';

const TRACKING_ON = encodeCommand(['CLIENT', 'TRACKING', 'ON']);

/** What a fill found. `value`: the string (a view: copy it to keep it). */
export type FillResult =
  | { readonly kind: 'value'; readonly value: Buffer }
  | { readonly kind: 'nil' }
  | { readonly kind: 'wrongtype' }
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'failed'; readonly failure: BackendFailure };

/** The reply to CLIENT TRACKING ON: a refusal (a Redis before 6, an ACL) closes the connection and rules the node out. */
class TrackingOnReply implements OwedReply {
  sentAt = 0;
  readonly patient = false;
  constructor(
    private readonly tracking: CacheTracking,
    private readonly node: Node,
    private readonly conn: BackendConnection,
  ) {}
  settle(buf: Buffer, start: number, end: number): void {
    if (buf[start] === 0x2d) this.tracking.refused(this.node, this.conn, buf.toString('latin1', start + 1, end - 2));
  }
  fail(): void {
    // The connection is gone; onClosed says so.
  }
}

/** A GET sent on a tracking connection. */
class FillReply implements OwedReply {
  sentAt = 0;
  readonly patient = false;
  constructor(private readonly done: (result: FillResult) => void) {}
  settle(buf: Buffer, start: number, end: number): void {
    this.done(readGetReply(buf, start, end));
  }
  fail(failure: BackendFailure): void {
    this.done({ kind: 'failed', failure });
  }
}

/** A GET's reply (RESP2 or RESP3) as a FillResult. */
export function readGetReply(buf: Buffer, start: number, end: number): FillResult {
  switch (buf[start]) {
    case 0x24: {
      // $<n>\r\n<value>\r\n, or $-1\r\n
      if (buf[start + 1] === 0x2d) return { kind: 'nil' };
      const header = buf.indexOf(0x0a, start) + 1;
      return { kind: 'value', value: buf.subarray(header, end - 2) };
    }
    case 0x5f:
      return { kind: 'nil' };
    case 0x2d: {
      const message = buf.toString('utf8', start + 1, end - 2);
      return message.startsWith('WRONGTYPE') ? { kind: 'wrongtype' } : { kind: 'error', message };
    }
    default:
      return { kind: 'error', message: `unexpected reply ${JSON.stringify(buf.toString('latin1', start, Math.min(end, start + 20)))}` };
  }
}

/**
 * The keys of an invalidation push (`>2\r\n$10\r\ninvalidate\r\n*<n>\r\n$<len>\r\n<key>\r\n...`),
 * as views of `buf`; null for a null invalidation (`_` or `*-1`: flush everything);
 * undefined for a push that is not an invalidation.
 */
export function invalidatedKeys(buf: Buffer, start: number, end: number): Buffer[] | null | undefined {
  let at = start;
  const line = (): number => {
    const eol = buf.indexOf(0x0d, at);
    const n = parseDecimal(buf, at + 1, eol);
    at = eol + 2;
    return n;
  };
  if (buf[at] !== 0x3e || line() !== 2) return undefined;
  if (buf[at] !== 0x24) return undefined;
  const nameLength = line();
  if (buf.toString('latin1', at, at + nameLength) !== 'invalidate') return undefined;
  at += nameLength + 2;
  if (buf[at] === 0x5f) return null;
  if (buf[at] !== 0x2a) return undefined;
  const count = line();
  if (count < 0) return null;
  const keys: Buffer[] = [];
  for (let i = 0; i < count && at < end; i++) {
    if (buf[at] !== 0x24) return undefined;
    const n = line();
    keys.push(buf.subarray(at, at + n));
    at += n + 2;
  }
  return keys;
}

export class CacheTracking implements StreamSink {
  /** By node, then by database. */
  private readonly conns = new Map<Node, Array<BackendConnection | undefined>>();
  /** Nodes that refused CLIENT TRACKING: their reads are not cached. */
  private readonly refusing = new WeakSet<Node>();
  private closed = false;

  /**
   * @param cache the listener's near cache, which the invalidations go to
   * @param logger the listener's logger now
   */
  constructor(
    readonly cache: NearCache,
    private readonly logger: () => Logger,
  ) {}

  /** False when `node` refused CLIENT TRACKING: nothing read from it may be cached. */
  canTrack(node: Node): boolean {
    return !this.refusing.has(node);
  }

  /**
   * Sends `GET key` to `node` on its tracking connection for database `db` (opened, with
   * CLIENT TRACKING ON pipelined ahead, when there is none); `done` gets what it found, or
   * the failure of the connection. The caller inserts the value (NearCache.completeFill).
   */
  get(node: Node, db: number, key: Buffer, done: (result: FillResult) => void): void {
    const request = encodeCommand(['GET', key]);
    this.connection(node, db).send(new FillReply(done), request, 0, request.length);
  }

  /** Sends `words` on the tracking connection (TYPE after a WRONGTYPE); `done` gets the raw reply or the failure. */
  call(node: Node, db: number, words: Array<string | Buffer>, done: (reply: Buffer | BackendFailure) => void): void {
    const request = encodeCommand(words);
    const owed: OwedReply = {
      sentAt: 0,
      patient: false,
      settle: (buf, start, end) => done(Buffer.from(buf.subarray(start, end))),
      fail: (failure) => done(failure),
    };
    this.connection(node, db).send(owed, request, 0, request.length);
  }

  private connection(node: Node, db: number): BackendConnection {
    let byDb = this.conns.get(node);
    if (byDb === undefined) {
      byDb = [];
      this.conns.set(node, byDb);
    }
    let conn = byDb[db];
    if (conn !== undefined && !conn.closed) return conn;
    const events: ConnectionEvents = {
      onReady: () => undefined,
      onAnswered: () => undefined,
      onClosed: (c, failure) => this.lost(node, db, c, failure),
    };
    conn = node.openOwn(db, 3, events);
    conn.sink = this;
    conn.send(new TrackingOnReply(this, node, conn), TRACKING_ON, 0, TRACKING_ON.length);
    byDb[db] = conn;
    return conn;
  }

  /** A RESP3 push on a tracking connection. */
  onStreamReply(buf: Buffer, start: number, end: number): void {
    const keys = invalidatedKeys(buf, start, end);
    if (keys === undefined) return;
    if (keys === null) {
      this.cache.flush();
      return;
    }
    for (const key of keys) this.cache.invalidate(keyHash(key, 0, key.length));
  }

  onStreamClosed(): void {
    // Handled by the connection's onClosed (it carries the failure).
  }

  /** A tracking connection closed: what it tracked can no longer be invalidated, so the cache is flushed. */
  private lost(node: Node, db: number, conn: BackendConnection, failure: BackendFailure): void {
    const byDb = this.conns.get(node);
    if (byDb !== undefined && byDb[db] === conn) byDb[db] = undefined;
    if (this.closed) return;
    this.cache.flush();
    this.logger().info({ node: node.label, db, reason: failure.detail }, 'near cache flushed: a tracking connection closed');
  }

  /** `node` refused CLIENT TRACKING ON: its connection closes and its reads are not cached from now on. */
  refused(node: Node, conn: BackendConnection, text: string): void {
    this.refusing.add(node);
    this.logger().warn({ node: node.label, error: text }, 'CLIENT TRACKING refused: reads from this node are not cached');
    conn.destroy(`refused CLIENT TRACKING: ${text}`);
  }

  /**
   * Closes the tracking connections whose oldest fill was sent more than `timeoutMs` ago
   * (coarse ms; 0: never): their fills fail with a timeout, and the cache is flushed.
   */
  expire(now: number, timeoutMs: number): void {
    if (timeoutMs <= 0) return;
    for (const byDb of this.conns.values()) {
      for (const conn of byDb) {
        const oldest = conn?.oldest;
        if (conn !== undefined && oldest !== undefined && now - oldest.sentAt > timeoutMs) {
          conn.destroy(`command timed out after ${timeoutMs} ms`, 'timeout');
        }
      }
    }
  }

  /** Closes the connections to nodes that are not in `nodes` (they left the topology). */
  retain(nodes: readonly Node[]): void {
    for (const [node, byDb] of this.conns) {
      if (nodes.includes(node)) continue;
      this.conns.delete(node);
      for (const conn of byDb) conn?.destroy(`${node.label} left the listener's topology`);
    }
  }

  /** Closes every tracking connection (the listener closes, or the cache is turned off). */
  close(): void {
    this.closed = true;
    for (const byDb of this.conns.values()) for (const conn of byDb) conn?.destroy('near cache closed');
    this.conns.clear();
  }
}

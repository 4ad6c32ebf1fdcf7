/**
 * A node's shared (multiplexed) connections: `size` per database and RESP version,
 * round-robin, opened on first use and replaced when closed; plus one priority
 * connection per RESP version for the commands Redis runs while a script is busy.
 *
 * A shared connection whose oldest request has waited longer than {@link STALL_MS} is
 * stalled (a slow command or a busy script holds it): new requests go to another one,
 * opened for the purpose when needed (at most {@link MAX_EXTRA} more per pair), so one
 * client's slow command delays only what queued behind it, not everyone who comes later.
 * Extra connections are closed once idle again.
 */
import type { BackendConnection } from './connection.js';
import type { BackendFailure } from './link.js';

/** ms a shared connection's oldest request may wait before new requests avoid it. */
export const STALL_MS = 200;
/** Most extra connections opened per (database, RESP version) while the usual ones are stalled. */
export const MAX_EXTRA = 4;

/** Opens a connection to the node: on database `db`, speaking `protocol`. */
export type OpenConnection = (db: number, protocol: 2 | 3) => BackendConnection;

/** The connections of one (database, RESP version): the usual ones first, then the extras; a hole where one was closed. */
type Slots = Array<BackendConnection | undefined>;

function stalled(conn: BackendConnection, now: number): boolean {
  const oldest = conn.oldest;
  return oldest !== undefined && now - oldest.sentAt >= STALL_MS;
}

export class SharedLinks {
  /** By RESP version (index 0: RESP2, 1: RESP3), then by database. */
  private readonly byProtocol: [Array<Slots | undefined>, Array<Slots | undefined>] = [[], []];
  private readonly priority: [BackendConnection | null, BackendConnection | null] = [null, null];
  private rr = 0;

  /**
   * @param size connections per (database, RESP version) in normal operation (`sharedConnections`)
   * @param open opens one
   */
  constructor(
    private readonly size: number,
    private readonly open: OpenConnection,
  ) {}

  /**
   * The connection for the next request on database `db` in RESP `protocol`.
   * @param now coarse ms (src/io/clock.ts), for the stall check
   */
  get(db: number, protocol: 2 | 3, now: number): BackendConnection {
    const byDb = this.byProtocol[protocol - 2]!;
    let conns = byDb[db];
    if (conns === undefined) {
      conns = [];
      byDb[db] = conns;
    }
    const n = this.size;
    const i = n === 1 ? 0 : this.rr++ % n;
    let conn = conns[i];
    if (conn === undefined || conn.closed) {
      conn = this.open(db, protocol);
      conns[i] = conn;
    } else if (stalled(conn, now)) {
      conn = this.unstalled(conns, db, protocol, now) ?? conn;
    }
    return conn;
  }

  /** A connection of `conns` that is not stalled, opening an extra one if none is and there is room. */
  private unstalled(conns: Slots, db: number, protocol: 2 | 3, now: number): BackendConnection | null {
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i];
      if (c !== undefined && !c.closed && !stalled(c, now)) return c;
    }
    for (let i = this.size; i < this.size + MAX_EXTRA; i++) {
      const c = conns[i];
      if (c === undefined || c.closed) {
        const fresh = this.open(db, protocol);
        conns[i] = fresh;
        return fresh;
      }
    }
    return null;
  }

  /**
   * The priority connection for RESP `protocol` (database 0): only commands Redis runs
   * while a script is busy (SCRIPT KILL, FUNCTION KILL, FUNCTION STATS, SHUTDOWN) go on
   * it, so they never queue behind a script.
   */
  priorityLink(protocol: 2 | 3): BackendConnection {
    let conn = this.priority[protocol - 2]!;
    if (conn === null || conn.closed) {
      conn = this.open(0, protocol);
      this.priority[protocol - 2] = conn;
    }
    return conn;
  }

  /**
   * Closes every connection whose oldest request was sent more than `timeoutMs` ago and
   * is not patient (a script), and the extra connections that are idle again.
   */
  expire(now: number, timeoutMs: number): void {
    for (const byDb of this.byProtocol) {
      for (const conns of byDb) {
        if (conns === undefined) continue;
        for (let i = 0; i < conns.length; i++) {
          const conn = conns[i];
          if (conn === undefined || conn.closed) continue;
          const oldest = conn.oldest;
          if (timeoutMs > 0 && oldest !== undefined && !oldest.patient && now - oldest.sentAt > timeoutMs) {
            conn.destroy(`command timed out after ${timeoutMs} ms`, 'timeout');
          } else if (i >= this.size && oldest === undefined && !this.anyStalled(conns, now)) {
            conn.destroy('idle extra connection');
            conns[i] = undefined;
          }
        }
      }
    }
  }

  private anyStalled(conns: Slots, now: number): boolean {
    for (let i = 0; i < this.size; i++) {
      const c = conns[i];
      if (c !== undefined && !c.closed && stalled(c, now)) return true;
    }
    return false;
  }

  /**
   * Closes every connection that owes no reply (its identity has no session left).
   * @returns true when no connection is left open
   */
  closeIdle(detail: string): boolean {
    let open = 0;
    for (const conn of this.all()) {
      if (conn.owedCount === 0) conn.destroy(detail);
      else open++;
    }
    return open === 0;
  }

  /** Closes every connection (the node left service or the proxy stops); their owed replies fail. */
  closeAll(detail: string, kind: BackendFailure['kind'] = 'closed'): void {
    for (const conn of this.all()) conn.destroy(detail, kind);
  }

  /** Every open connection. */
  *all(): Generator<BackendConnection> {
    for (const byDb of this.byProtocol) {
      for (const conns of byDb) {
        if (conns === undefined) continue;
        for (const c of conns) if (c !== undefined && !c.closed) yield c;
      }
    }
    for (const c of this.priority) if (c !== null && !c.closed) yield c;
  }
}

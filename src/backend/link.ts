/**
 * The narrow surface through which the rest of the proxy talks to a node: a link that
 * carries requests and owes their replies in order, what a link owes a reply to, why a
 * reply will not come, and where unsolicited output (Pub/Sub, MONITOR, pushes) goes.
 * Nothing here knows about clients or sessions.
 */

/**
 * Why a link will not answer. `node` is the node's label (`master 10.0.0.1:6379`);
 * `detail` says what happened in a few words (`connection closed`,
 * `command timed out after 5000 ms`). The session turns this into the client's error text.
 *
 * - `unreachable`: the connection could not be established (refused, reset, connect
 *   timeout, refused handshake).
 * - `lost`: an established connection was closed by the node or the network.
 * - `timeout`: the proxy closed the connection because a reply was later than `commandTimeout`.
 * - `closed`: the proxy closed the connection on purpose (released, shutting down, a
 *   SELECT or HELLO the node refused).
 * - `protocol`: the node sent bytes that are not RESP, or a reply nobody asked for.
 * - `refused`: the connection was opened for a client's Redis user (`authentication:
 *   "redis"`) and the node refused that user's handshake (WRONGPASS, NOAUTH, a disabled
 *   user): no verdict on the node, which stays up.
 * - `busy`: the node answered a request the proxy made for the connection (SELECT,
 *   CLIENT ID) with BUSY (a script or function over its time limit); `detail` is Redis's
 *   own error text, which is what the requests owed on it get.
 */
export interface BackendFailure {
  readonly kind: 'unreachable' | 'lost' | 'timeout' | 'closed' | 'protocol' | 'busy' | 'refused';
  readonly node: string;
  readonly detail: string;
}

/** A request's place in a link's queue of owed replies. */
export interface OwedReply {
  /** Coarse ms (src/io/clock.ts) when the request was sent; set by the link. */
  sentAt: number;
  /**
   * The request may take as long as it takes (a script or function the client called):
   * while it is the oldest reply owed, `commandTimeout` does not close its connection.
   */
  readonly patient: boolean;
  /** The reply arrived: `buf[start, end)` (a view; keep it only by subarray). */
  settle(buf: Buffer, start: number, end: number): void;
  /** The link failed before the reply arrived. Called in order, never re-entrantly from `send`. */
  fail(failure: BackendFailure): void;
}

/** A connection to a node that requests can be sent on. */
export interface Link {
  /**
   * Queues the request `buf[start, end)` (bytes as the client sent them); its reply will
   * settle `reply`, in send order. On a closed link `reply` fails in a microtask.
   */
  send(reply: OwedReply, buf: Buffer, start: number, end: number): void;
  /** True once the connection is gone. */
  readonly closed: boolean;
}

/**
 * Receives a connection's output that no request owes: Pub/Sub messages and
 * confirmations, MONITOR lines, RESP3 pushes (tracking invalidations), and the replies
 * to requests written without an owed reply ({@link Lease.write}).
 */
export interface StreamSink {
  /** One reply or pushed message: `buf[start, end)`. */
  onStreamReply(buf: Buffer, start: number, end: number): void;
  /** The connection closed (by the node, the network or the proxy). */
  onStreamClosed(reason: string): void;
}

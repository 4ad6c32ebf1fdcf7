/**
 * A listener's counters: what the hot path counts in plain fields and typed arrays, and
 * what the admin server (../admin/) turns into Prometheus metrics when scraped. Counting
 * costs an array increment; nothing is formatted, allocated or labelled per request.
 */

/** Who answered a command: the master, a replica, or the proxy itself. */
export const SERVED_BY_MASTER = 0;
export const SERVED_BY_REPLICA = 1;
export const SERVED_BY_PROXY = 2;
export const SERVED_BY = ['master', 'replica', 'proxy'] as const;

/** Kinds of error replies the proxy gives on its own (Redis's own errors pass through uncounted). */
export const ERROR_TIMEOUT = 0; // commandTimeout
export const ERROR_NODE_DOWN = 1; // a node unreachable, a connection lost, no replica, no connection
export const ERROR_DENIED = 2; // denyCommands, topology and replication commands, scripts, a demoted master
export const ERROR_PROTOCOL = 3; // a client protocol error
export const ERROR_AUTH = 4; // NOAUTH, WRONGPASS
export const ERROR_BUSY = 5; // a node busy with a script, as the proxy found it
export const ERROR_KINDS = ['timeout', 'node_down', 'denied', 'protocol', 'auth', 'busy'] as const;

/** Request latency buckets, upper bounds in seconds (the Prometheus `le` label). */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** One latency histogram: counts per bucket (not cumulative; the last is +Inf), sum, count. */
export class LatencyHistogram {
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  /** Records one request that took `ms` milliseconds. */
  observe(ms: number): void {
    const seconds = ms / 1000;
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

export class ListenerStats {
  /** Client connections accepted, and those closed at once without being served (the listener was closing). */
  connectionsAccepted = 0;
  connectionsRejected = 0;
  /** Bytes read from and written to clients whose sessions have ended (live ones are summed at scrape). */
  closedBytesIn = 0;
  closedBytesOut = 0;
  /** Reads sent again to another node after theirs failed. */
  readRetries = 0;
  /** Error replies by ERROR_* kind. */
  readonly errors = new Float64Array(ERROR_KINDS.length);
  /**
   * Request latency, for reads and for writes: from the arrival of the client's bytes
   * that held the request (or from its dispatch, for one that waited) to the arrival of
   * the node's bytes that held the reply. Recorded only while timing is on
   * (src/io/clock.ts, the admin server runs).
   */
  readonly readLatency = new LatencyHistogram();
  readonly writeLatency = new LatencyHistogram();
  /** Commands by `id * 3 + SERVED_BY_*` (ids: src/commands/table.ts COMMAND_NAMES); grows as commands are learned. */
  commands = new Float64Array(1024 * 3);

  /** One command answered (or sent) for a client: `id` its command id, `servedBy` a SERVED_BY_* value. */
  command(id: number, servedBy: number): void {
    const at = id * 3 + servedBy;
    if (at >= this.commands.length) this.grow(at);
    this.commands[at]!++;
  }

  /** One error reply of ERROR_* `kind` from the proxy. */
  error(kind: number): void {
    this.errors[kind]!++;
  }

  private grow(at: number): void {
    const bigger = new Float64Array(Math.max(this.commands.length * 2, at + 3));
    bigger.set(this.commands);
    this.commands = bigger;
  }
}

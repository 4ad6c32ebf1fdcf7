/**
 * Outlier detection on data traffic, as Envoy does it: a replica whose data connections
 * keep timing out leaves the read rotation even while its health checks pass (a node
 * that answers INFO on one connection but not the reads on others), and comes back once
 * a probe on a data connection is answered.
 * Source of the idea: https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier
 */

export class OutlierDetector {
  /** Out of the read rotation now. */
  ejected = false;
  /** Times (ms) of the recent command timeouts, oldest first. */
  private timeouts: number[] = [];

  /**
   * @param limit timeouts within `windowMs` that eject (`outlierTimeouts`; 0 = never)
   * @param windowMs how far back timeouts count (`outlierWindow`), ms
   */
  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /**
   * A data connection was closed by commandTimeout at `now` (ms).
   * @returns true when this ejects the node
   */
  timedOut(now: number): boolean {
    if (this.limit === 0 || this.ejected) return false;
    const since = now - this.windowMs;
    while (this.timeouts.length > 0 && this.timeouts[0]! < since) this.timeouts.shift();
    this.timeouts.push(now);
    if (this.timeouts.length < this.limit) return false;
    this.ejected = true;
    this.timeouts = [];
    return true;
  }

  /**
   * The node's data path answered (a probe).
   * @returns true when this brings an ejected node back
   */
  answered(): boolean {
    if (!this.ejected) return false;
    this.ejected = false;
    return true;
  }
}

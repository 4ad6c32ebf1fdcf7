/**
 * Where reads go: the listener's read policy applied to the nodes that are healthy now,
 * round-robin by weight. Writes always go to the master and need no router.
 * See docs/architecture.md "Routing rules".
 */
import type { ReadPolicy } from '../config/types.js';
import type { Node } from '../backend/node.js';

/**
 * A replica serves reads when it is `up` (reachable, answering its health checks in time,
 * not BUSY), not ejected by outlier detection, not loading, lags at most `maxLagSeconds`
 * (when the master reports its lag) and is linked to its master. The link counts only
 * while the master is reachable: with the master down every replica has lost its link,
 * and stale reads beat no reads (writes fail meanwhile).
 */
export function replicaServesReads(node: Node, maxLagSeconds: number, masterReachable: boolean): boolean {
  const h = node.health;
  return (
    node.state === 'up' &&
    !node.ejected &&
    (h.linkUp || !masterReachable) &&
    !h.loading &&
    h.role === 'slave' &&
    node.weight > 0 &&
    (node.lag < 0 || node.lag <= maxLagSeconds)
  );
}

/**
 * A smooth weighted round-robin order (weights 1 and 3 give b a b b, not a b b b):
 * one full cycle, each node appearing `weight / gcd` times.
 */
export function weightedRotation(nodes: readonly Node[]): Node[] {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const divisor = nodes.reduce((g, n) => gcd(g, n.weight), 0) || 1;
  const weights = nodes.map((n) => n.weight / divisor);
  const total = weights.reduce((a, b) => a + b, 0);
  const current = weights.map(() => 0);
  const order: Node[] = [];
  for (let step = 0; step < total; step++) {
    let best = 0;
    for (let i = 0; i < nodes.length; i++) {
      current[i]! += weights[i]!;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    order.push(nodes[best]!);
  }
  return order;
}

/** Where replicas' applied replication offsets come from (src/consistency/replication-progress.ts). */
export interface ReplicaOffsets {
  /** The replica's applied offset as last known; -1 unknown. */
  offsetOf(node: Node): number;
}

export class Router {
  private rotation: Node[] = [];
  private next = 0;
  /** Round-robin position among fallback nodes (its own: `next` indexes the rotation). */
  private nextFallback = 0;
  /** The replicas serving reads, to tell when the rotation changes. */
  private serving: Node[] = [];

  /**
   * @param master the listener's master
   * @param replicas its replicas (the config's `slave` list, plus those Sentinel reports)
   * @param policy the listener's `readPolicy`
   * @param maxLagSeconds the listener's `maxReplicationLag`
   * @param onRotationChange called when the replicas serving reads change
   */
  constructor(
    public master: Node,
    public replicas: readonly Node[],
    public policy: ReadPolicy,
    private maxLagSeconds: number,
    private readonly onRotationChange: () => void = () => undefined,
  ) {
    this.rebuild();
  }

  /** A reload or Sentinel changed the nodes: reads go by the new ones from now on. */
  setNodes(master: Node, replicas: readonly Node[]): void {
    this.master = master;
    this.replicas = replicas;
    this.rebuild();
  }

  /** A reload changed the listener's `readPolicy` or `maxReplicationLag`. */
  configure(policy: ReadPolicy, maxLagSeconds: number): void {
    this.policy = policy;
    this.maxLagSeconds = maxLagSeconds;
    this.rebuild();
  }

  /** Replicas in the read rotation now. */
  get healthyReplicas(): Node[] {
    return this.replicas.filter((r) => replicaServesReads(r, this.maxLagSeconds, this.master.reachable));
  }

  /** Recomputes the rotation from the nodes' health; call after any health change. */
  rebuild(): void {
    const healthy = this.healthyReplicas;
    const changed = healthy.length !== this.serving.length || healthy.some((n, i) => n !== this.serving[i]);
    this.serving = healthy;
    const serving = this.policy === 'master' ? [] : [...healthy];
    if (this.policy === 'any' && this.master.state === 'up' && this.master.weight > 0) serving.push(this.master);
    this.rotation = serving.length > 0 ? weightedRotation(serving) : [];
    this.next = 0;
    if (changed) this.onRotationChange();
  }

  /**
   * Where a read goes after its node failed while the master is down (or died under it
   * with the rotation empty): no rotation then, since replicas drop out as their link to
   * the master breaks and as a failover promotes or reconfigures them (Sentinel also
   * kills their clients). Stale reads beat no reads with the master down: a replica that
   * would serve with the master down (replicaServesReads), else any replica that is
   * `up`, a just-promoted one included; never `avoid`. Null for policy `master` or when
   * there is none.
   */
  fallbackNode(avoid: Node | null): Node | null {
    if (this.policy === 'master') return null;
    const up = this.replicas.filter((r) => r !== avoid && r.state === 'up' && !r.ejected && !r.health.loading);
    const standby = up.filter((r) => replicaServesReads(r, this.maxLagSeconds, false));
    const pool = standby.length > 0 ? standby : up;
    if (pool.length === 0) return null;
    return pool[this.nextFallback++ % pool.length]!;
  }

  /** The replicas reads may go to now (the policy permitting). */
  get replicasInRotation(): readonly Node[] {
    return this.policy === 'master' ? [] : this.serving;
  }

  /**
   * For causal reads: the next node in the rotation whose applied replication offset has
   * reached `offset`; the master when none has (also with policy `replica`: correctness first).
   */
  readNodeAtLeast(offset: number, offsets: ReplicaOffsets): Node {
    const rotation = this.rotation;
    for (let i = 0; i < rotation.length; i++) {
      const node = rotation[this.next]!;
      if (++this.next >= rotation.length) this.next = 0;
      if (node === this.master || offsets.offsetOf(node) >= offset) return node;
    }
    return this.master;
  }

  /**
   * The node for the next read, or null when the policy allows none (`replica` with no
   * healthy replica). `avoid` (a node that just failed) is skipped when another will do.
   */
  readNode(avoid: Node | null = null): Node | null {
    const rotation = this.rotation;
    const n = rotation.length;
    if (n > 0) {
      let node = rotation[this.next]!;
      if (++this.next >= n) this.next = 0;
      if (node === avoid) {
        for (let i = 0; i < n && node === avoid; i++) {
          node = rotation[this.next]!;
          if (++this.next >= n) this.next = 0;
        }
      }
      if (node !== avoid) return node;
    }
    return this.policy === 'replica' ? null : this.master;
  }
}

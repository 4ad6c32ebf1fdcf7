/**
 * A listener's topology: which servers are its master and replicas now. It comes from
 * the config's fixed addresses, or from Sentinel plus the config's fixed replicas, and
 * changes on a reload or a failover. See docs/architecture.md "Live topology".
 */
import { createHash } from 'node:crypto';
import { buildNode } from '../config/load.js';
import type { BackendTls, ListenerConfig, NodeConfig } from '../config/types.js';

/** The servers a listener routes to now. */
export interface Topology {
  master: NodeConfig;
  replicas: NodeConfig[];
}

/** Where Sentinel says the master and its replicas are (./sentinel.ts). */
export interface DiscoveredTopology {
  master: { host: string; port: number };
  /**
   * Every replica `SENTINEL REPLICAS` lists, whatever its flags (the proxy's own health
   * checks decide which serve reads), in Sentinel's order; except the master's own
   * address, which Sentinel still lists as a replica for a moment during a failover.
   */
  replicas: Array<{ host: string; port: number }>;
}

/** `host:port` of a node, the way two configs (or Sentinel and a config) are compared. */
export function addressOf(node: { host: string; port: number }): string {
  return `${node.host.toLowerCase()}:${node.port}`;
}

/**
 * The listener's topology: its fixed `master`, or the master Sentinel reports; its fixed
 * replicas (the `slave` list) and, with Sentinel, every replica Sentinel reports that the
 * list lacks. Nodes Sentinel reports get weight 1 and the listener's backend
 * credentials and backend TLS. A replica at the master's address is left out (after a failover the
 * fixed list may still name the promoted replica).
 * @throws Error when the listener follows Sentinel and `discovered` is null
 */
export function resolveTopology(config: ListenerConfig, discovered: DiscoveredTopology | null): Topology {
  const backend = { username: config.backendUsername, password: config.backendPassword, tls: config.backendTls };
  let master = config.master;
  if (master === undefined) {
    if (discovered === null) throw new Error(`listener ${config.name}: Sentinel has not reported a master yet`);
    master = buildNode(discovered.master, backend);
  }
  const masterAddress = addressOf(master);
  const replicas = config.replicas.filter((r) => addressOf(r) !== masterAddress);
  if (discovered !== null) {
    const known = new Set([masterAddress, ...replicas.map(addressOf)]);
    for (const r of discovered.replicas) {
      if (known.has(addressOf(r))) continue;
      known.add(addressOf(r));
      replicas.push(buildNode(r, backend));
    }
  }
  return { master, replicas };
}

/** Identities of loaded backend TLS settings (the objects are shared by the nodes of a config). */
const tlsIds = new WeakMap<BackendTls, string>();

/**
 * A short identity of a node's TLS settings: a SHA-256 over the PEM contents (not the
 * paths: a certificate renewed in place changes it), servername and rejectUnauthorized;
 * null for plain TCP.
 */
function tlsIdentity(tls: BackendTls | undefined): string | null {
  if (tls === undefined) return null;
  let id = tlsIds.get(tls);
  if (id === undefined) {
    const fields = [tls.ca ?? null, tls.cert ?? null, tls.key ?? null, tls.servername ?? null, tls.rejectUnauthorized];
    id = createHash('sha256').update(JSON.stringify(fields)).digest('hex');
    tlsIds.set(tls, id);
  }
  return id;
}

/**
 * What identifies a node's connections: its role, address, credentials, TLS settings
 * (their files' contents, see tlsIdentity) and the listener's connection settings. A
 * reload that keeps the key keeps the node (and its connections; a new weight is applied
 * in place); any other change replaces it, so a changed `backendTls` (or a renewed CA or
 * client certificate) gives the node new connections.
 */
export function nodeKey(role: 'master' | 'replica', node: NodeConfig, config: ListenerConfig): string {
  return JSON.stringify([
    role,
    addressOf(node),
    node.username ?? null,
    node.password ?? null,
    tlsIdentity(node.tls),
    config.sharedConnections,
    config.maxDedicatedConnections,
    config.connectTimeout,
    config.outlierTimeouts,
    config.outlierWindow,
  ]);
}

/**
 * The Prometheus metrics (`GET /metrics`): a prom-client registry whose proxy metrics
 * are read from the listeners' counters (src/metrics/stats.ts) and nodes when scraped,
 * plus prom-client's default process metrics. Nothing here runs per request.
 *
 * Names follow https://prometheus.io/docs/practices/naming/ with the `redis_proxy_`
 * prefix; every proxy metric has a `listener` label (its name), node metrics a `node`
 * (`host:port`) and `role` label. The README's "Metrics" section lists them all.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { COMMAND_NAMES } from '../commands/index.js';
import { ERROR_KINDS, LATENCY_BUCKETS, SERVED_BY, type LatencyHistogram } from '../metrics/stats.js';
import type { Listener, ProxyStatus } from '../server/listener.js';

type Labels = Record<string, string | number>;
/** One sample; `metricName` overrides the metric's name (a histogram's `_bucket`, `_sum`, `_count`). */
interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}
type Values = Sample[];
type MetricKind = 'counter' | 'gauge' | 'histogram';

/**
 * One metric whose samples are computed at scrape time. prom-client's Registry formats
 * any registered object with `name`, `help`, `type` and a `get()` returning its samples
 * (the shape its own metrics have; prom-client is pinned to an exact version).
 */
interface ScrapedMetric {
  name: string;
  help: string;
  type: MetricKind;
  aggregator: Aggregator;
  get(): { name: string; help: string; type: MetricKind; aggregator: Aggregator; values: Values };
}

/**
 * How the primary combines one metric's samples from every worker (`workers` > 1,
 * prom-client's AggregatorRegistry): counts add up; a node is up or in the rotation only
 * if every worker says so (`min`); lags and the config generation take the highest.
 */
type Aggregator = 'sum' | 'min' | 'max';

function metric(name: string, help: string, type: MetricKind, values: () => Values, aggregator: Aggregator = 'sum'): ScrapedMetric {
  return {
    name,
    help,
    type,
    aggregator,
    get() {
      return { name, help, type, aggregator, values: values() };
    },
  };
}

/** The `_bucket` (cumulative, with `le`), `_sum` and `_count` values of one histogram. */
function histogramValues(name: string, labels: Labels, h: LatencyHistogram): Values {
  const values: Values = [];
  let cumulative = 0;
  for (let i = 0; i <= LATENCY_BUCKETS.length; i++) {
    cumulative += h.buckets[i]!;
    const le = i < LATENCY_BUCKETS.length ? String(LATENCY_BUCKETS[i]) : '+Inf';
    values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
  }
  values.push({ metricName: `${name}_sum`, labels, value: h.sum });
  values.push({ metricName: `${name}_count`, labels, value: h.count });
  return values;
}

/** Bytes from (`in`) or to (`out`) the listener's clients: ended sessions' totals plus the live ones'. */
function clientBytes(l: Listener, way: 'in' | 'out'): number {
  let bytes = way === 'in' ? l.stats.closedBytesIn : l.stats.closedBytesOut;
  for (const s of l.sessions) bytes += way === 'in' ? s.bytesIn : s.bytesOut;
  return bytes;
}

/**
 * A registry for the running proxy. `listeners()` gives the listeners now (a reload
 * changes them); `status` the reload counters.
 */
export function createRegistry(listeners: () => readonly Listener[], status: ProxyStatus): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const perListener = (f: (l: Listener, labels: Labels) => Values) => (): Values =>
    listeners().flatMap((l) => f(l, { listener: l.config.name }));
  const perNode = (f: (n: Listener['master'], labels: Labels, l: Listener) => Values) => (): Values =>
    listeners().flatMap((l) =>
      l.nodes.flatMap((n) => f(n, { listener: l.config.name, node: `${n.host}:${n.port}`, role: n.role }, l)),
    );
  const metrics: ScrapedMetric[] = [
    metric('redis_proxy_client_connections', 'Client connections open now.', 'gauge', perListener((l, labels) => [{ labels, value: l.sessions.size }])),
    metric(
      'redis_proxy_client_connections_total',
      'Client connections accepted.',
      'counter',
      perListener((l, labels) => [{ labels, value: l.stats.connectionsAccepted }]),
    ),
    metric(
      'redis_proxy_client_connections_rejected_total',
      'Client connections closed at once, unserved (the listener was closing).',
      'counter',
      perListener((l, labels) => [{ labels, value: l.stats.connectionsRejected }]),
    ),
    metric(
      'redis_proxy_commands_total',
      'Commands from clients, by command and by who answered them (master, replica, or the proxy itself).',
      'counter',
      perListener((l, labels) => {
        const values: Values = [];
        const counts = l.stats.commands;
        for (let at = 0; at < counts.length; at++) {
          const value = counts[at]!;
          if (value === 0) continue;
          const id = Math.floor(at / 3);
          values.push({ labels: { ...labels, command: COMMAND_NAMES[id] ?? 'unknown', served_by: SERVED_BY[at % 3]! }, value });
        }
        return values;
      }),
    ),
    metric(
      'redis_proxy_errors_total',
      'Error replies the proxy gave on its own, by kind (Redis\'s own errors are not counted).',
      'counter',
      perListener((l, labels) => ERROR_KINDS.map((kind, i) => ({ labels: { ...labels, kind }, value: l.stats.errors[i]! }))),
    ),
    metric(
      'redis_proxy_request_duration_seconds',
      'Time from sending a read or a write to a node to its reply.',
      'histogram',
      perListener((l, labels) => [
        ...histogramValues('redis_proxy_request_duration_seconds', { ...labels, kind: 'read' }, l.stats.readLatency),
        ...histogramValues('redis_proxy_request_duration_seconds', { ...labels, kind: 'write' }, l.stats.writeLatency),
      ]),
    ),
    metric(
      'redis_proxy_read_retries_total',
      'Reads sent again to another node after theirs failed.',
      'counter',
      perListener((l, labels) => [{ labels, value: l.stats.readRetries }]),
    ),
    metric(
      'redis_proxy_client_bytes_received_total',
      'Bytes read from clients.',
      'counter',
      perListener((l, labels) => [{ labels, value: clientBytes(l, 'in') }]),
    ),
    metric(
      'redis_proxy_client_bytes_sent_total',
      'Bytes written to clients.',
      'counter',
      perListener((l, labels) => [{ labels, value: clientBytes(l, 'out') }]),
    ),
    metric(
      'redis_proxy_node_up',
      'Whether the node is up (1), or down, unresponsive or busy (0).',
      'gauge',
      perNode((n, labels) => [{ labels, value: n.state === 'up' ? 1 : 0 }]),
      'min',
    ),
    metric(
      'redis_proxy_node_in_rotation',
      'Whether the replica serves reads now (1) or not (0).',
      'gauge',
      perNode((n, labels, l) => (n.role === 'replica' ? [{ labels, value: l.router.healthyReplicas.includes(n) ? 1 : 0 }] : [])),
      'min',
    ),
    metric(
      'redis_proxy_replica_lag_seconds',
      'Seconds since the master last heard from the replica (the master\'s INFO lag=); absent when unknown.',
      'gauge',
      perNode((n, labels) => (n.role === 'replica' && n.lag >= 0 ? [{ labels, value: n.lag }] : [])),
      'max',
    ),
    metric(
      'redis_proxy_replica_lag_bytes',
      'Bytes of the replication stream the replica has not applied: the master\'s offset minus the replica\'s, as of their last health checks.',
      'gauge',
      perNode((n, labels, l) => {
        const master = l.master;
        if (n.role !== 'replica' || !master.reachable || n.health.role !== 'slave' || !n.health.linkUp) return [];
        return [{ labels, value: Math.max(0, master.health.replOffset - n.health.replOffset) }];
      }),
      'max',
    ),
    metric(
      'redis_proxy_dedicated_connections',
      'Dedicated (leased) connections per node, in use by a session or idle in the pool.',
      'gauge',
      perNode((n, labels) => {
        const pool = n.poolSize;
        return [
          { labels: { ...labels, state: 'in_use' }, value: pool.inUse },
          { labels: { ...labels, state: 'idle' }, value: pool.idle },
        ];
      }),
    ),
    metric(
      'redis_proxy_near_cache_events_total',
      'Near cache events: hits, misses, fills, fills discarded (invalidated in flight), invalidations, evictions, flushes (src/cache/).',
      'counter',
      perListener((l, labels) => {
        const c = l.nearCache?.cache.counters;
        if (c === undefined) return [];
        const events: Array<[string, number]> = [
          ['hit', c.hits],
          ['miss', c.misses],
          ['fill', c.fills],
          ['fill_discarded', c.discarded],
          ['invalidation', c.invalidations],
          ['eviction', c.evictions],
          ['flush', c.flushes],
        ];
        return events.map(([event, value]) => ({ labels: { ...labels, event }, value }));
      }),
    ),
    metric(
      'redis_proxy_near_cache_entries',
      'Entries in the near cache now.',
      'gauge',
      perListener((l, labels) => (l.nearCache === null ? [] : [{ labels, value: l.nearCache.cache.size }])),
    ),
    metric(
      'redis_proxy_near_cache_bytes',
      'Bytes of keys and values in the near cache now.',
      'gauge',
      perListener((l, labels) => (l.nearCache === null ? [] : [{ labels, value: l.nearCache.cache.bytes }])),
    ),
    metric(
      'redis_proxy_config_generation',
      'Config generation: 1 at start, +1 per reload applied.',
      'gauge',
      () => [{ labels: {}, value: status.generation }],
      'max',
    ),
    metric(
      'redis_proxy_config_reloads_total',
      'Config reloads, by result.',
      'counter',
      () => [
        { labels: { result: 'ok' }, value: status.reloads - status.reloadFailures },
        { labels: { result: 'failed' }, value: status.reloadFailures },
      ],
      'max',
    ),
  ];
  for (const m of metrics) registry.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
  return registry;
}

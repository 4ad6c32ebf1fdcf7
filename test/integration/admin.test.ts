/**
 * The admin HTTP server (top-level `admin`): /healthz, /readyz (200, then 503 naming the
 * master once it is killed), 404 and 405, HEAD; and /metrics, parsed with a Prometheus
 * text parser and a strict line checker, with values asserted after real traffic: the
 * replica-read counter rises by exactly the GETs sent, SET counts on the master, PING on
 * the proxy, denied and auth errors by kind, node up/down, reloads.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import t from 'tap';
import { freePort, ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { rawCommand } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { waitForReplicaReads } from '../helpers/stats.js';
import { waitFor } from '../helpers/wait.js';

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Array<{ labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string; sum?: string }>;
}

const METRIC_LINE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?\d+(\.\d+)?(e[+-]?\d+)?|[+-]?inf|nan)$/i;

/**
 * Checks the Prometheus text format line by line (every sample line well formed, every
 * family announced by HELP and TYPE before its samples, no family twice) and returns the
 * parsed families.
 */
function parseStrict(t: Pick<typeof import('tap').default, 'fail'>, text: string): Map<string, Family> {
  const announced = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) /.exec(line);
    if (meta !== null) {
      if (meta[1] === 'TYPE') {
        if (announced.has(meta[2]!)) t.fail(`family ${meta[2]} twice`);
        announced.add(meta[2]!);
      }
      continue;
    }
    if (!METRIC_LINE.test(line)) t.fail(`malformed sample line: ${line}`);
    const name = line.replace(/[{ ].*/, '');
    const family = name.replace(/_(bucket|sum|count)$/, '');
    if (!announced.has(name) && !announced.has(family)) t.fail(`sample before its TYPE: ${line}`);
  }
  const families = parsePrometheusTextFormat(text) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

/** The value of the sample of `family` whose labels include `labels` (0 when absent). */
function value(families: Map<string, Family>, family: string, labels: Record<string, string>): number {
  const f = families.get(family);
  const m = f?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  return m === undefined ? 0 : Number(m.value ?? m.count);
}

t.test('health endpoints, methods and paths', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const admin = await freePort();
  const tp = await startTestProxy({ admin: { listen: admin }, listeners: [listenerFor(set.master, set.replicas, { healthCheckInterval: 100 })] }, { t });
  t.equal(tp.proxy.adminPort, admin);
  const base = `http://127.0.0.1:${admin}`;

  const health = await fetch(`${base}/healthz`);
  t.equal(health.status, 200);
  t.equal(await health.text(), 'ok\n');
  const ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 200);
  t.same(await ready.json(), { ready: true, listeners: [{ name: `listener-${tp.port}`, port: tp.port, ready: true, problem: '' }] });

  t.equal((await fetch(`${base}/nope`)).status, 404);
  const post = await fetch(`${base}/metrics`, { method: 'POST' });
  t.equal(post.status, 405);
  t.equal(post.headers.get('allow'), 'GET, HEAD');
  const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(await head.text(), '', 'HEAD has no body');
  t.match(head.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);

  set.master.kill('SIGKILL');
  await waitFor('readyz to turn 503', async () => (await fetch(`${base}/readyz`)).status === 503);
  const body = (await (await fetch(`${base}/readyz`)).json()) as { ready: boolean; listeners: Array<{ problem: string }> };
  t.equal(body.ready, false);
  t.match(body.listeners[0]!.problem, new RegExp(`^master 127\\.0\\.0\\.1:${set.master.port} is down`));
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'the process still serves');
});

t.test('metrics: strict format, and values after traffic', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const [replica] = set.replicas as [(typeof set.replicas)[0]];
  await set.master.client().set('k', 'v');
  await set.sync();
  const admin = await freePort();
  const raw = {
    admin: { listen: admin },
    listeners: [listenerFor(set.master, [replica], { name: 'app', causalReads: 'none', denyCommands: ['flushall'], password: 'pw' })],
  };
  const tp = await startTestProxy(raw, { t });
  const scrape = async () => parseStrict(t, await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text());
  const client = ioredisClient(tp.port, { password: 'pw' });
  await waitForReplicaReads([replica], () => client.get('k'));

  const before = await scrape();
  for (let i = 0; i < 100; i++) await client.get('k');
  await client.set('k', 'w');
  await client.ping();
  await t.rejects(client.flushall());
  await rawCommand(tp.port, 'GET k\r\n'); // NOAUTH
  await rawCommand(tp.port, 'AUTH wrong\r\n'); // WRONGPASS
  const after = await scrape();

  const delta = (family: string, labels: Record<string, string>) => value(after, family, labels) - value(before, family, labels);
  t.equal(delta('redis_proxy_commands_total', { listener: 'app', command: 'get', served_by: 'replica' }), 100, '100 GETs on the replica');
  t.equal(delta('redis_proxy_commands_total', { listener: 'app', command: 'set', served_by: 'master' }), 1);
  t.equal(delta('redis_proxy_commands_total', { listener: 'app', command: 'ping', served_by: 'proxy' }), 1);
  t.equal(delta('redis_proxy_commands_total', { listener: 'app', command: 'flushall', served_by: 'proxy' }), 1, 'a refusal is the proxy\'s answer');
  t.equal(delta('redis_proxy_errors_total', { listener: 'app', kind: 'denied' }), 1);
  t.equal(delta('redis_proxy_errors_total', { listener: 'app', kind: 'auth' }), 2, 'NOAUTH and WRONGPASS');
  t.ok(delta('redis_proxy_client_connections_total', { listener: 'app' }) >= 2, 'the raw connections');
  t.equal(value(after, 'redis_proxy_client_connections', { listener: 'app' }) >= 1, true);
  t.ok(delta('redis_proxy_client_bytes_received_total', { listener: 'app' }) > 100 * 'GET k'.length);

  t.equal(after.get('redis_proxy_request_duration_seconds')?.type, 'HISTOGRAM');
  // The parser drops a histogram's labels: its read series are taken from the text itself.
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const series = (suffix: string) =>
    [...text.matchAll(new RegExp(`^redis_proxy_request_duration_seconds_${suffix}\\{listener="app",kind="read"(?:,le="([^"]+)")?\\} (\\S+)$`, 'gm'))].map(
      (m) => [m[1], Number(m[2])] as const,
    );
  const buckets = series('bucket');
  const [[, count]] = series('count') as [readonly [string | undefined, number]];
  t.equal(buckets.length, 17, 'every bucket, +Inf included');
  t.ok(buckets.every(([, c], i) => i === 0 || c >= buckets[i - 1]![1]), 'buckets are cumulative');
  t.ok(count >= 100, 'every timed read counted');
  t.same(buckets.at(-1), ['+Inf', count], 'the +Inf bucket holds every read');

  const node = { listener: 'app', node: `127.0.0.1:${replica.port}`, role: 'replica' };
  t.equal(value(after, 'redis_proxy_node_up', node), 1);
  t.equal(value(after, 'redis_proxy_node_in_rotation', node), 1);
  t.equal(value(after, 'redis_proxy_replica_lag_bytes', node) >= 0, true);
  t.ok(after.has('process_cpu_user_seconds_total'), 'prom-client\'s process metrics');

  await tp.reload({ ...raw, listeners: [{ ...raw.listeners[0], listen: tp.port }] });
  replica.kill('SIGKILL');
  await waitFor('the replica to show down', async () => value(await scrape(), 'redis_proxy_node_up', node) === 0);
  const last = await scrape();
  t.equal(value(last, 'redis_proxy_config_reloads_total', { result: 'ok' }), 1);
  t.equal(value(last, 'redis_proxy_config_generation', {}), 2);
});

#!/usr/bin/env node
// The HTTP front end and the near cache: HTTP GET throughput on cache hits, on cache
// misses and without a cache (autocannon), and RESP GET throughput on 1,000 hot keys with
// nearCache on and off (redis-benchmark).
//
//   node bench/http.mjs [--rounds 3] [--duration 3] [--connections 50] [--requests 100000] [--out bench/results]
//
// One run starts a Redis master and replica and the built proxy (dist/, as bin/redis-proxy)
// with three listeners on them:
//   cached: "nearCache": true and "http": {"cache": {"maxKeys": 10000, "ttl": 120000}}
//   tiny:   "http": {"cache": {"maxKeys": 1, "ttl": 120000}}: with 1,000 keys in turn every
//           HTTP GET misses, reads Redis on the tracking connection and is inserted
//   plain:  "http" without a cache, no nearCache
// It writes 1,000 keys (100-byte values; `hot:<i>` for HTTP, redis-benchmark's `key:<i>`
// for RESP), then per round:
//   autocannon -c C -d D on each HTTP port, the 1,000 paths in turn (hit, miss, no cache)
//   redis-benchmark -c 50 -n N -t get -r 1000 -P 1|16 on the cached and plain RESP ports
// and reads each node's GET calls (INFO commandstats) around the RESP runs. It writes
// http-<date>.md, http-latest.md and http-latest.json. See bench/README.md.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import autocannon from 'autocannon';

import { command, parseInfo, request } from './lib/resp.mjs';
import { freePort, waitUntil, run, versionOf } from './lib/procs.mjs';
import { mdTable, fmtInt, median } from './lib/report.mjs';
import { startRedis, launchProxy, sanityCheck, tail, runScope, otherCpuMeter, machineInfo, writeReport } from './lib/setup.mjs';
import { harnessOptions } from './lib/options.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KEYS = 1000;
const PIPELINES = [1, 16];

const USAGE = `usage: node bench/http.mjs [options]

  --rounds N          rounds, the order of the cases alternating; the report shows medians (default 3)
  --duration S        seconds per autocannon run (default 3)
  --connections N     autocannon -c (default 50)
  --requests N        redis-benchmark -n per run (default 100000)
  --out DIR           where http-<date>.md and http-latest.md go (default bench/results)
  --json FILE         machine-readable results (default <out>/http-latest.json)
  --proxy-bin FILE    Node script started as the proxy (default bin/redis-proxy)
  -h, --help          this text
`;

function options() {
  const { values, number, out, json, proxyBin } = harnessOptions({
    usage: USAGE,
    json: 'http-latest.json',
    own: {
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      connections: { type: 'string', default: '50' },
      requests: { type: 'string', default: '100000' },
    },
  });
  return {
    rounds: number('rounds', values.rounds),
    duration: number('duration', values.duration),
    connections: number('connections', values.connections),
    requests: number('requests', values.requests),
    out,
    json,
    proxyBin,
  };
}

const log = (msg) => process.stderr.write(`${msg}\n`);

/** One autocannon run against `port`, cycling over the 1,000 hot paths. */
async function httpOnce(port, opts) {
  const requests = Array.from({ length: KEYS }, (_, i) => ({ method: 'GET', path: `/hot:${i}` }));
  const r = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: opts.connections,
    duration: opts.duration,
    requests,
  });
  return {
    rps: r.requests.average,
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

/** GET calls on the servers on `ports` (INFO commandstats). */
async function getCalls(ports) {
  let n = 0;
  for (const port of ports) {
    const line = parseInfo(await command(port, ['INFO', 'commandstats'])).cmdstat_get;
    n += line === undefined ? 0 : Number(/calls=(\d+)/.exec(line)?.[1] ?? 0);
  }
  return n;
}

/** One redis-benchmark GET run on 1,000 keys through `port`, and the GETs that reached the nodes. */
async function respOnce(port, P, nodePorts, opts) {
  const before = await getCalls(nodePorts);
  const r = await run('redis-benchmark', [
    '-h', '127.0.0.1', '-p', String(port), '-c', '50', '-n', String(opts.requests), '-t', 'get', '-r', String(KEYS), '-P', String(P), '--csv',
  ], { timeoutMs: 120_000 });
  const reached = (await getCalls(nodePorts)) - before;
  const row = r.stdout.split('\n').find((l) => l.startsWith('"GET"'));
  if (r.code !== 0 || !row) return { error: `redis-benchmark exit ${r.code}: ${r.stderr.slice(0, 200) || 'no CSV row'}` };
  const f = row.split(',').map((s) => Number(s.replace(/"/g, '')));
  return { rps: f[1], p50ms: f[4], p99ms: f[6], reachedRedis: reached / opts.requests };
}

const f2 = (x) => (x == null ? '–' : x.toFixed(2));

function markdown(report) {
  const http = report.http.map((c) => [c.label, fmtInt(c.rps), f2(c.p50ms), f2(c.p99ms), String(c.non2xx), String(c.errors)]);
  const resp = report.resp.map((c) => [c.label, String(c.pipeline), fmtInt(c.rps), f2(c.p50ms), f2(c.p99ms),
    c.reachedRedis == null ? '–' : `${(c.reachedRedis * 100).toFixed(1)}%`]);
  return [
    '# redis-proxy: HTTP front end and near cache',
    '',
    `Started ${report.startedAt}, ${report.durationSec.toFixed(0)} s, ${report.rounds} round(s) (medians). One proxy, one master and`,
    'one replica; 1,000 keys with 100-byte values. The listeners differ only in their cache settings (see bench/http.mjs).',
    '',
    '## HTTP GET (autocannon)',
    '',
    `\`autocannon -c ${report.connections} -d ${report.duration}\`, the paths \`/hot:0\` … \`/hot:999\` in turn.`,
    '',
    mdTable([['case', 'l'], ['req/s', 'r'], ['p50 ms', 'r'], ['p99 ms', 'r'], ['non-2xx', 'r'], ['errors', 'r']], http),
    '',
    '## RESP GET on 1,000 hot keys (redis-benchmark)',
    '',
    `\`redis-benchmark -c 50 -n ${report.requests} -t get -r 1000 -P <P>\`. "reached Redis" is the GET calls the nodes counted`,
    '(INFO commandstats) per GET sent: the cache\'s background fills included.',
    '',
    mdTable([['nearCache', 'l'], ['pipeline', 'r'], ['ops/s', 'r'], ['p50 ms', 'r'], ['p99 ms', 'r'], ['reached Redis', 'r']], resp),
    '',
    '## Machine',
    '',
    ...Object.entries(report.machine).map(([k, v]) => `- ${k}: ${v}`),
    `- load average at start: ${report.loadAtStart}`,
    `- CPU used by other processes during the run: ${report.otherCpuPercent == null ? '?' : `${report.otherCpuPercent.toFixed(0)}% of all cores`}`,
    '',
    'autocannon runs inside this harness and redis-benchmark beside it: both share the cores with Redis and the proxy, so',
    'compare the rows of this report with each other, not with other machines.',
    ...(report.notes.length ? ['', '## Notes', '', ...report.notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}

async function main() {
  const opts = options();
  const startedAt = new Date();
  const loadAtStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const machine = { ...machineInfo(ROOT), 'redis-benchmark': versionOf('redis-benchmark', ['--version']), autocannon: '9.0.0' };
  const otherCpu = otherCpuMeter();
  const { tmp, cleanup } = runScope('redis-proxy-bench-http-', log);
  const httpRuns = [];
  const respRuns = [];
  const notes = [];
  let exitCode = 0;
  try {
    const masterPort = await freePort();
    const replicaPort = await freePort();
    const ports = {};
    for (const name of ['cached', 'tiny', 'plain', 'httpCached', 'httpTiny', 'httpPlain']) ports[name] = await freePort();
    await startRedis(tmp, 'master', masterPort);
    await startRedis(tmp, 'replica', replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
    await waitUntil('replica link up', async () =>
      parseInfo(await command(replicaPort, ['INFO', 'replication'])).master_link_status === 'up', { timeoutMs: 15000 });
    const nodes = { master: { host: '127.0.0.1', port: masterPort }, slave: [{ host: '127.0.0.1', port: replicaPort }] };
    const cache = { maxKeys: 10_000, ttl: 120_000 };
    const config = {
      logLevel: 'warn',
      listeners: [
        { name: 'cached', listen: ports.cached, ...nodes, nearCache: true, http: { listen: ports.httpCached, cache } },
        { name: 'tiny', listen: ports.tiny, ...nodes, http: { listen: ports.httpTiny, cache: { maxKeys: 1, ttl: 120_000 } } },
        { name: 'plain', listen: ports.plain, ...nodes, http: { listen: ports.httpPlain } },
      ],
    };
    const conf = path.join(tmp, 'redis-proxy.json');
    fs.writeFileSync(conf, JSON.stringify(config, null, 2));
    const logFile = path.join(tmp, 'redis-proxy.log');
    const proxy = await launchProxy({ name: 'redis-proxy', root: ROOT, conf, logFile, port: ports.cached, proxyBin: opts.proxyBin });
    // The proxy answers on the first listener's port once it is up; the others start in turn.
    for (const port of [ports.tiny, ports.plain]) await waitUntil(`:${port}`, async () => (await command(port, ['PING'])) === 'PONG');
    for (const port of [ports.httpCached, ports.httpTiny, ports.httpPlain]) {
      await waitUntil(`HTTP :${port}`, async () => (await fetch(`http://127.0.0.1:${port}/none`)).status === 404);
    }
    await sanityCheck(ports.plain);
    const value = 'v'.repeat(100);
    const writes = [];
    for (let i = 0; i < KEYS; i++) {
      writes.push(['SET', `hot:${i}`, value], ['SET', `key:${String(i).padStart(12, '0')}`, value]);
    }
    await request(masterPort, writes, { timeoutMs: 10000 });
    await waitUntil('the replica has the keys', async () => (await command(replicaPort, ['GET', `hot:${KEYS - 1}`])) === value, { timeoutMs: 10000 });

    // Warm-up: every key read once on each HTTP port (the caches filled), then short runs
    // that let V8 compile the paths.
    for (const port of [ports.httpCached, ports.httpTiny, ports.httpPlain]) {
      for (let i = 0; i < KEYS; i++) await fetch(`http://127.0.0.1:${port}/hot:${i}`).then((r) => r.arrayBuffer());
    }
    for (const port of [ports.httpCached, ports.httpTiny, ports.httpPlain]) await httpOnce(port, { ...opts, duration: 1 });
    for (const port of [ports.cached, ports.plain]) await respOnce(port, 16, [masterPort, replicaPort], { ...opts, requests: 20000 });
    const cases = [['cache hit', ports.httpCached], ['cache miss (maxKeys 1)', ports.httpTiny], ['no cache', ports.httpPlain]];
    for (let round = 1; round <= opts.rounds; round++) {
      // Alternating order per round: no case always runs first (or on a warmer machine).
      for (const [label, port] of round % 2 === 1 ? cases : [...cases].reverse()) {
        const r = await httpOnce(port, opts);
        httpRuns.push({ round, label, ...r });
        log(`round ${round} HTTP ${label}: ${fmtInt(r.rps)} req/s, p99 ${r.p99ms} ms, non-2xx ${r.non2xx}`);
      }
      for (const P of PIPELINES) {
        const pair = [['on', ports.cached], ['off', ports.plain]];
        for (const [label, port] of round % 2 === 1 ? pair : pair.reverse()) {
          const r = await respOnce(port, P, [masterPort, replicaPort], opts);
          respRuns.push({ round, label, pipeline: P, ...r });
          if (r.error) notes.push(`round ${round} RESP ${label} -P ${P}: ${r.error}`);
          log(`round ${round} RESP nearCache ${label} -P ${P}: ${r.error ?? `${fmtInt(r.rps)} ops/s, ${(r.reachedRedis * 100).toFixed(1)}% reached Redis`}`);
        }
      }
    }
    const info = parseInfo(await command(ports.cached, ['INFO', 'proxy']));
    notes.push(`cached listener at the end: ${Object.entries(info).filter(([k]) => k.startsWith('near_cache_')).map(([k, v]) => `${k}=${v}`).join(', ')}`);
    if (!proxy.alive()) notes.push(`the proxy exited: ${tail(logFile)}`);
  } catch (err) {
    notes.push(`run aborted: ${err.message}`);
    log(`error: ${err.message}`);
    exitCode = 1;
  }
  const med = (rows, k) => median(rows.map((x) => x[k]).filter((x) => x != null));
  const report = {
    startedAt: startedAt.toISOString(),
    durationSec: (Date.now() - startedAt.getTime()) / 1000,
    rounds: opts.rounds,
    duration: opts.duration,
    connections: opts.connections,
    requests: opts.requests,
    machine,
    loadAtStart,
    otherCpuPercent: otherCpu(),
    http: [...new Set(httpRuns.map((x) => x.label))].map((label) => {
      const rows = httpRuns.filter((x) => x.label === label);
      return { label, rps: med(rows, 'rps'), p50ms: med(rows, 'p50ms'), p99ms: med(rows, 'p99ms'),
        non2xx: rows.reduce((a, x) => a + x.non2xx, 0), errors: rows.reduce((a, x) => a + x.errors, 0) };
    }),
    resp: PIPELINES.flatMap((P) => ['on', 'off'].map((label) => {
      const rows = respRuns.filter((x) => x.label === label && x.pipeline === P && x.rps !== undefined);
      return { label, pipeline: P, rps: med(rows, 'rps'), p50ms: med(rows, 'p50ms'), p99ms: med(rows, 'p99ms'), reachedRedis: med(rows, 'reachedRedis') };
    })),
    runs: { http: httpRuns, resp: respRuns },
    notes,
  };
  await cleanup();
  const md = markdown(report);
  const file = writeReport({ out: opts.out, json: opts.json, prefix: 'http-' }, report, md);
  process.stdout.write(`${md}\nwritten: ${file}\n`);
  process.exit(exitCode);
}

main();

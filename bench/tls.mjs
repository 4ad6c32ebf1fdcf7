#!/usr/bin/env node
// What TLS on the client side costs: throughput, latency and the proxy's CPU per request
// through a plain listener and a TLS listener of the same proxy, on the same (plain)
// master and replica.
//
//   node bench/tls.mjs [--rounds 3] [--requests 100000] [--clients 50] [--out bench/results]
//
// One run makes a CA and a server certificate for 127.0.0.1 with openssl, starts a Redis
// master and replica (plain) and the built proxy (dist/, started as bin/redis-proxy) with
// two listeners on them, one plain and one with "tls", then runs per round, at -P 1 and
// -P 16, for each listener (order alternating per round):
//   redis-benchmark -h 127.0.0.1 -p PORT [--tls --cacert ca.crt] -c 50 -n N -t set,get -P 1|16 --csv
// and reads the proxy's CPU time from /proc around each run. It writes
// tls-<date>.md, tls-latest.md and tls-latest.json. See bench/README.md.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { command, parseInfo } from './lib/resp.mjs';
import { freePort, waitUntil, run, versionOf, clockTicks, processTree, cpuTicks } from './lib/procs.mjs';
import { mdTable, fmtInt, median } from './lib/report.mjs';
import { startRedis, launchProxy, sanityCheck, tail, runScope, otherCpuMeter, machineInfo, writeReport } from './lib/setup.mjs';
import { harnessOptions } from './lib/options.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PIPELINES = [1, 16];
const TESTS = ['set', 'get'];
const LISTENERS = ['plain', 'tls'];
const CLK_TCK = clockTicks();

const USAGE = `usage: node bench/tls.mjs [options]

  --rounds N          rounds; the report shows medians over them (default 3)
  --requests N        redis-benchmark -n per test and run (default 100000)
  --clients N         redis-benchmark -c (default 50)
  --out DIR           where tls-<date>.md and tls-latest.md go (default bench/results)
  --json FILE         machine-readable results (default <out>/tls-latest.json)
  --proxy-bin FILE    Node script started as the proxy (default bin/redis-proxy,
                      which loads dist/cli.js); it gets the config file path as argument
  -h, --help          this text
`;

function options() {
  const { values, number, out, json, proxyBin } = harnessOptions({
    usage: USAGE,
    json: 'tls-latest.json',
    own: {
      rounds: { type: 'string', default: '3' },
      requests: { type: 'string', default: '100000' },
      clients: { type: 'string', default: '50' },
    },
  });
  return {
    rounds: number('rounds', values.rounds),
    requests: number('requests', values.requests),
    clients: number('clients', values.clients),
    out,
    json,
    proxyBin,
  };
}

const log = (msg) => process.stderr.write(`${msg}\n`);

/** A CA and a server certificate it signs for 127.0.0.1 and localhost (EC P-256), in dir. */
function makeCerts(dir) {
  const openssl = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=bench CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  fs.writeFileSync(path.join(dir, 'server.ext'),
    'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=redis-proxy bench']);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '1', '-days', '1',
    '-out', 'server.crt', '-extfile', 'server.ext']);
  return { ca: path.join(dir, 'ca.crt'), cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key') };
}

/** One redis-benchmark run (SET and GET) through one listener, with the proxy's CPU around it. */
async function benchOnce(env, listener, P, round, opts) {
  const port = env.ports[listener];
  const tlsArgs = listener === 'tls' ? ['--tls', '--cacert', env.certs.ca] : [];
  const pids = processTree(env.proxy.pid);
  const cpuBefore = cpuTicks(pids);
  const r = await run('redis-benchmark', [
    '-h', '127.0.0.1', '-p', String(port), ...tlsArgs, '-c', String(opts.clients),
    '-n', String(opts.requests), '-t', TESTS.join(','), '-P', String(P), '--csv',
  ], { timeoutMs: 120_000 });
  const cpuUsPerReq = ((cpuTicks(pids) - cpuBefore) / CLK_TCK) * 1e6 / (opts.requests * TESTS.length);
  const stderr = r.stderr.split('\n').filter((l) => l.trim() && !l.includes('Could not fetch server CONFIG')).join(' ').trim();
  const results = [];
  for (const test of TESTS) {
    const result = { round, listener, pipeline: P, test, requests: opts.requests, cpuUsPerReq };
    // redis-benchmark 7 --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    const row = r.stdout.split('\n').find((l) => l.startsWith(`"${test.toUpperCase()}"`));
    if (r.timedOut) result.error = 'redis-benchmark killed after 120 s';
    else if (r.code !== 0 || !row || stderr) result.error = `redis-benchmark exit ${r.code}: ${stderr.slice(0, 200) || 'no CSV row'}`;
    else {
      const f = row.split(',').map((s) => Number(s.replace(/"/g, '')));
      Object.assign(result, { rps: f[1], avgms: f[2], p50ms: f[4], p99ms: f[6] });
    }
    results.push(result);
  }
  return results;
}

function summarise(runs) {
  const cells = [];
  for (const P of PIPELINES) {
    for (const test of TESTS) {
      for (const listener of LISTENERS) {
        const ok = runs.filter((x) => x.listener === listener && x.pipeline === P && x.test === test && x.rps !== undefined);
        cells.push({
          listener, pipeline: P, test, ok: ok.length,
          rps: median(ok.map((x) => x.rps)), p50ms: median(ok.map((x) => x.p50ms)), p99ms: median(ok.map((x) => x.p99ms)),
          cpuUsPerReq: median(ok.map((x) => x.cpuUsPerReq)),
        });
      }
    }
  }
  return cells;
}

const f2 = (x) => (x == null ? '–' : x.toFixed(2));
const f1 = (x) => (x == null ? '–' : x.toFixed(1));

function markdown(report) {
  const { cells } = report;
  const cell = (l, P, test) => cells.find((c) => c.listener === l && c.pipeline === P && c.test === test);
  const rows = cells.map((c) => [c.listener, String(c.pipeline), c.test.toUpperCase(), fmtInt(c.rps), f2(c.p50ms), f2(c.p99ms),
    f1(c.cpuUsPerReq), `${c.ok}/${report.rounds}`]);
  const cost = [];
  for (const P of PIPELINES) {
    for (const test of TESTS) {
      const plain = cell('plain', P, test);
      const secure = cell('tls', P, test);
      const ratio = plain?.rps && secure?.rps ? secure.rps / plain.rps : null;
      const cpu = plain?.cpuUsPerReq != null && secure?.cpuUsPerReq != null ? secure.cpuUsPerReq - plain.cpuUsPerReq : null;
      cost.push([String(P), test.toUpperCase(), ratio == null ? '–' : `${ratio.toFixed(2)}x`,
        ratio == null ? '–' : `${((1 - ratio) * 100).toFixed(0)}%`, cpu == null ? '–' : `${cpu >= 0 ? '+' : ''}${cpu.toFixed(1)}`]);
    }
  }
  return [
    '# redis-proxy: the cost of client-side TLS',
    '',
    `Started ${report.startedAt}, ${report.durationSec.toFixed(0)} s. One proxy with two listeners on the same master and replica`,
    `(plain Redis): \`plain\` on port ${report.ports.plain} and \`tls\` (the listener's \`tls\` key, EC P-256 certificate) on port ${report.ports.tls}.`,
    `Per round, at -P 1 and -P 16, for each listener: \`redis-benchmark -c ${report.clients} -n ${report.requests} -t set,get -P <P> --csv\`,`,
    'with `--tls --cacert ca.crt` for the TLS listener. Medians over the rounds. CPU is the proxy\'s user + system time per request',
    '(SET and GET runs together, from `/proc`, in clock ticks: coarse).',
    '',
    mdTable([['listener', 'l'], ['pipeline', 'r'], ['test', 'l'], ['ops/s (median)', 'r'], ['p50 ms', 'r'], ['p99 ms', 'r'],
      ['proxy CPU µs/req', 'r'], ['ok runs', 'r']], rows),
    '',
    '## TLS vs plain',
    '',
    mdTable([['pipeline', 'r'], ['test', 'l'], ['ops/s tls / plain', 'r'], ['throughput lost', 'r'], ['proxy CPU µs/req added', 'r']], cost),
    '',
    '## Machine',
    '',
    ...Object.entries(report.machine).map(([k, v]) => `- ${k}: ${v}`),
    `- load average at start: ${report.loadAtStart}`,
    `- CPU used by other processes during the run: ${report.otherCpuPercent == null ? '?' : `${report.otherCpuPercent.toFixed(0)}% of all cores`}`,
    '',
    'Everything (redis-benchmark, Redis, the proxy) shares the machine\'s cores; compare the two listeners within this report.',
    ...(report.notes.length ? ['', '## Notes', '', ...report.notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}

async function main() {
  const opts = options();
  const startedAt = new Date();
  const loadAtStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const machine = { ...machineInfo(ROOT), 'redis-benchmark': versionOf('redis-benchmark', ['--version']), openssl: versionOf('openssl', ['version']) };
  const otherCpu = otherCpuMeter();
  const { tmp, cleanup } = runScope('redis-proxy-bench-tls-', log);
  const runs = [];
  const notes = [];
  const env = { ports: {} };
  let exitCode = 0;
  try {
    env.certs = makeCerts(tmp);
    const masterPort = await freePort();
    const replicaPort = await freePort();
    env.ports.plain = await freePort();
    env.ports.tls = await freePort();
    log(`master :${masterPort}, replica :${replicaPort}, proxy plain :${env.ports.plain}, tls :${env.ports.tls}`);
    await startRedis(tmp, 'master', masterPort);
    await startRedis(tmp, 'replica', replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
    await waitUntil('replica link up', async () =>
      parseInfo(await command(replicaPort, ['INFO', 'replication'])).master_link_status === 'up', { timeoutMs: 15000 });
    const nodes = { master: { host: '127.0.0.1', port: masterPort }, slave: [{ host: '127.0.0.1', port: replicaPort }] };
    const config = {
      logLevel: 'warn',
      listeners: [
        { name: 'plain', listen: env.ports.plain, ...nodes },
        { name: 'tls', listen: env.ports.tls, ...nodes, tls: { cert: env.certs.cert, key: env.certs.key } },
      ],
    };
    const conf = path.join(tmp, 'redis-proxy.json');
    fs.writeFileSync(conf, JSON.stringify(config, null, 2));
    const logFile = path.join(tmp, 'redis-proxy.log');
    env.proxy = await launchProxy({ name: 'redis-proxy', root: ROOT, conf, logFile, port: env.ports.plain, proxyBin: opts.proxyBin });
    await sanityCheck(env.ports.plain);
    const ping = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(env.ports.tls), '--tls', '--cacert', env.certs.ca, 'PING'], { timeoutMs: 10000 });
    if (ping.stdout.trim() !== 'PONG') throw new Error(`redis-cli --tls PING answered ${JSON.stringify(ping.stdout + ping.stderr)}`);

    // Warm-up: V8 compiles the hot paths (and the TLS ones) before the first measured run.
    for (const listener of LISTENERS) await benchOnce(env, listener, 16, 0, { ...opts, requests: Math.min(opts.requests, 50000) });
    for (let round = 1; round <= opts.rounds; round++) {
      for (const P of PIPELINES) {
        const order = round % 2 === 1 ? LISTENERS : [...LISTENERS].reverse();
        for (const listener of order) {
          const results = await benchOnce(env, listener, P, round, opts);
          runs.push(...results);
          log(`round ${round} -P ${P} ${listener}: ${results.map((x) => `${x.test} ${x.rps === undefined ? x.error : fmtInt(x.rps)}`).join(', ')}`);
          for (const x of results) if (x.error) notes.push(`round ${round} ${listener} -P ${P} ${x.test}: ${x.error}`);
        }
      }
    }
    if (!env.proxy.alive()) notes.push(`the proxy exited: ${tail(logFile)}`);
  } catch (err) {
    notes.push(`run aborted: ${err.message}`);
    log(`error: ${err.message}`);
    exitCode = 1;
  }
  const report = {
    startedAt: startedAt.toISOString(),
    durationSec: (Date.now() - startedAt.getTime()) / 1000,
    rounds: opts.rounds,
    requests: opts.requests,
    clients: opts.clients,
    ports: env.ports,
    machine,
    loadAtStart,
    otherCpuPercent: otherCpu(),
    cells: summarise(runs),
    runs,
    notes,
  };
  await cleanup();
  const md = markdown(report);
  const file = writeReport({ out: opts.out, json: opts.json, prefix: 'tls-' }, report, md);
  process.stdout.write(`${md}\nwritten: ${file}\n`);
  process.exit(exitCode);
}

main();

#!/usr/bin/env node
// Benchmark harness: redis-proxy against direct Redis and twemproxy (nutcracker).
//
//   node bench/run.mjs [--rounds 5] [--requests N | --requests-p1 N --requests-p16 N]
//
// One run starts a Redis master and replica, the built proxy (dist/) and twemproxy on
// free ports in a temporary directory, runs redis-benchmark against each target
// (interleaved, order rotated per round), measures the proxies' CPU and RSS from /proc,
// measures RSS with 1,000 idle clients, writes bench/results/<date>.md, latest.md and
// latest.json, and stops everything it started. With --baseline DIR it also runs the
// redis-proxy built in another checkout as the target "baseline", for before/after
// comparisons. See bench/README.md.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { command, parseInfo, idleClient } from './lib/resp.mjs';
import {
  start, stop, freePort, waitUntil, sleep, run, versionOf, clockTicks, processTree, cpuTicks, rssBytes, rssSampler,
} from './lib/procs.mjs';
import { startRedis, proxyConfig, launchProxy, sanityCheck, tail, runScope, otherCpuMeter, build, machineInfo, writeReport } from './lib/setup.mjs';
import { summarise, verdict, table, comparison, comparisonTable, markdown, fmtInt } from './lib/report.mjs';
import { harnessOptions } from './lib/options.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PIPELINES = [1, 16];
const TESTS = ['set', 'get']; // SET first so the GETs find the key
const DEFAULT_TARGETS = ['direct', 'twemproxy', 'redis-proxy'];
const ALL_TARGETS = [...DEFAULT_TARGETS, 'baseline']; // baseline: only with --baseline
const PROXIES = ['twemproxy', 'redis-proxy', 'baseline']; // the targets the harness starts
const MB = 1024 * 1024;

const USAGE = `usage: node bench/run.mjs [options]

  --rounds N          rounds of interleaved runs (default 5)
  --requests N        requests per redis-benchmark run, both pipelines
  --requests-p1 N     requests per run at -P 1  (default 200000)
  --requests-p16 N    requests per run at -P 16 (default 1000000)
  --clients N         redis-benchmark -c (default 50)
  --idle-clients N    idle connections for the RSS check (default 1000; 0 skips it)
  --targets LIST      comma list out of direct,twemproxy,redis-proxy,baseline
                      (default direct,twemproxy,redis-proxy, plus baseline with --baseline)
  --baseline DIR      also run the redis-proxy of another checkout DIR (its own dist/
                      built) as the target "baseline", e.g. the commit before a change
                      (DIR may be this checkout, to compare two settings of one build)
  --listener JSON     extra listener settings for redis-proxy, e.g. '{"causalReads":"none"}'
  --admin             redis-proxy (not baseline) runs its admin HTTP server and /metrics is
                      scraped every second during the run (the cost of metrics: compare with
                      --baseline . , the same checkout without it)
  --baseline-listener JSON   the same for baseline
  --workers N         redis-proxy runs N worker processes (top-level "workers"; default 1);
                      CPU is summed over the primary and its workers, and the idle-client
                      check also reports the largest single process's RSS
  --baseline-workers N       the same for baseline
  --out DIR           where <date>.md and latest.md go (default bench/results)
  --json FILE         machine-readable results (default <out>/latest.json)
  --no-warmup         skip the unmeasured warm-up run per target
  --run-timeout S     seconds before one redis-benchmark run is killed (default 300)
  --proxy-bin FILE    Node script started as the proxy (default bin/redis-proxy,
                      which loads dist/cli.js); it gets the config file path as argument
  --strict            exit with status 3 when the verdict is FAIL
  -h, --help          this text
`;

function options() {
  const { values, number: int, usageError, out, json, proxyBin } = harnessOptions({
    usage: USAGE,
    json: 'latest.json',
    own: {
      rounds: { type: 'string', default: '5' },
      requests: { type: 'string' },
      'requests-p1': { type: 'string', default: '200000' },
      'requests-p16': { type: 'string', default: '1000000' },
      clients: { type: 'string', default: '50' },
      'idle-clients': { type: 'string', default: '1000' },
      targets: { type: 'string' },
      baseline: { type: 'string' },
      listener: { type: 'string' },
      'baseline-listener': { type: 'string' },
      'no-warmup': { type: 'boolean', default: false },
      'run-timeout': { type: 'string', default: '300' },
      admin: { type: 'boolean', default: false },
      workers: { type: 'string', default: '1' },
      'baseline-workers': { type: 'string', default: '1' },
      strict: { type: 'boolean', default: false },
    },
  });
  const baseline = values.baseline ? path.resolve(values.baseline) : null;
  if (baseline && !fs.existsSync(path.join(baseline, 'bin', 'redis-proxy'))) usageError(`--baseline ${values.baseline}: ${path.join(baseline, 'bin', 'redis-proxy')} not found (DIR must be a checkout of redis-proxy)`);
  const targets = values.targets !== undefined
    ? values.targets.split(',').map((s) => s.trim()).filter(Boolean)
    : [...DEFAULT_TARGETS, ...(baseline ? ['baseline'] : [])];
  for (const t of targets) if (!ALL_TARGETS.includes(t)) usageError(`unknown target ${t}`);
  if (targets.includes('baseline') && !baseline) usageError('target baseline needs --baseline DIR');
  const settings = (name) => {
    if (values[name] === undefined) return {};
    try {
      const parsed = JSON.parse(values[name]);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      return parsed;
    } catch (e) {
      return usageError(`--${name}: must be a JSON object of listener settings, like '{"causalReads":"none"}' (${e.message})`);
    }
  };
  return {
    rounds: int('rounds', values.rounds, 1),
    requests: {
      1: int('requests-p1', values.requests ?? values['requests-p1'], 1),
      16: int('requests-p16', values.requests ?? values['requests-p16'], 1),
    },
    clients: int('clients', values.clients, 1),
    idleClients: int('idle-clients', values['idle-clients'], 0),
    targets,
    out,
    json,
    warmup: !values['no-warmup'],
    runTimeoutMs: int('run-timeout', values['run-timeout'], 1) * 1000,
    proxyBin,
    baseline,
    listener: settings('listener'),
    baselineListener: settings('baseline-listener'),
    strict: values.strict,
    admin: values.admin,
    workers: int('workers', values.workers, 1),
    baselineWorkers: int('baseline-workers', values['baseline-workers'], 1),
  };
}

const log = (msg) => process.stderr.write(`${msg}\n`);

// ---- setup -----------------------------------------------------------------------

async function startTwemproxy(tmp, port, masterPort) {
  const conf = path.join(tmp, 'nutcracker.yml');
  // One pool, one server: the same single-master path as the other targets.
  fs.writeFileSync(conf, [
    'bench:',
    `  listen: 127.0.0.1:${port}`,
    '  redis: true',
    '  hash: fnv1a_64',
    '  distribution: ketama',
    '  timeout: 5000',
    '  preconnect: true',
    '  auto_eject_hosts: false',
    '  server_connections: 1',
    '  servers:',
    `    - 127.0.0.1:${masterPort}:1`,
    '',
  ].join('\n'));
  const check = await run('nutcracker', ['-t', '-c', conf], { timeoutMs: 10000 });
  if (check.code !== 0) throw new Error(`nutcracker -t rejected the config: ${(check.stdout + check.stderr).trim()}`);
  const statsPort = await freePort();
  const child = start('twemproxy', 'nutcracker', [
    '-c', conf, '-s', String(statsPort), '-a', '127.0.0.1',
    '-o', path.join(tmp, 'nutcracker.log'), '-p', path.join(tmp, 'nutcracker.pid'),
  ], { logFile: path.join(tmp, 'nutcracker.stdout') });
  await waitUntil(`twemproxy on :${port}`, async () => (await command(port, ['PING'])) === 'PONG', { child })
    .catch(async (e) => { await stop(child); throw e; });
  return { child, config: { listen: `127.0.0.1:${port}`, statsPort, timeout: 5000, server_connections: 1, auto_eject_hosts: false } };
}

/**
 * Starts the redis-proxy of checkout `root` (this one, or the --baseline one) as target
 * `name`; its config and log are <name>.json and <name>.log in tmp.
 */
async function startProxy(tmp, name, root, port, masterPort, replicaPort, proxyBin, settings = {}, top = {}) {
  const config = proxyConfig(port, masterPort, replicaPort, settings, top);
  const conf = path.join(tmp, `${name}.json`);
  fs.writeFileSync(conf, JSON.stringify(config, null, 2));
  const child = await launchProxy({ name, root, conf, logFile: path.join(tmp, `${name}.log`), port, proxyBin });
  return { child, config };
}

// ---- measuring -------------------------------------------------------------------

const CLK_TCK = clockTicks();

async function getSetCalls(port) {
  const info = parseInfo(await command(port, ['INFO', 'commandstats']));
  const calls = (cmd) => Number(/calls=(\d+)/.exec(info[`cmdstat_${cmd}`] ?? '')?.[1] ?? 0);
  return { get: calls('get'), set: calls('set') };
}

/** One redis-benchmark invocation against one target, with the proxy's CPU and RSS around it. */
async function benchOnce(env, target, P, test, requests, opts) {
  const t = env.targets[target];
  const result = { target, pipeline: P, test, requests };
  if (!t.port || (t.child && !t.child.alive())) {
    result.error = t.error ?? `${target} is not running`;
    return result;
  }
  const pids = t.child ? processTree(t.child.pid) : null;
  const sampler = pids ? rssSampler(pids) : null;
  const [mBefore, rBefore] = await Promise.all([getSetCalls(env.masterPort), getSetCalls(env.replicaPort)]);
  const cpuBefore = pids ? cpuTicks(pids) : 0;
  const t0 = process.hrtime.bigint();
  const r = await run('redis-benchmark', [
    '-h', '127.0.0.1', '-p', String(t.port), '-c', String(opts.clients),
    '-n', String(requests), '-t', test, '-P', String(P), '--csv',
  ], { timeoutMs: opts.runTimeoutMs });
  result.wallSec = Number(process.hrtime.bigint() - t0) / 1e9;
  if (pids) {
    result.cpuUsPerReq = ((cpuTicks(pids) - cpuBefore) / CLK_TCK) * 1e6 / requests;
    result.maxRssBytes = await sampler.stop();
  }
  const [mAfter, rAfter] = await Promise.all([getSetCalls(env.masterPort), getSetCalls(env.replicaPort)]);
  result.executed = { master: mAfter[test] - mBefore[test], replica: rAfter[test] - rBefore[test] };

  // redis-benchmark 7 --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const row = r.stdout.split('\n').find((l) => l.startsWith(`"${test.toUpperCase()}"`));
  // "Could not fetch server CONFIG" is expected from proxies that refuse CONFIG; anything else is not.
  const stderr = r.stderr.split('\n').filter((l) => l.trim() && !l.includes('Could not fetch server CONFIG')).join(' ').trim();
  if (r.timedOut) result.error = `redis-benchmark killed after ${opts.runTimeoutMs / 1000} s`;
  else if (r.code !== 0 || !row || stderr) result.error = `redis-benchmark exit ${r.code}: ${stderr.slice(0, 200) || 'no CSV row'}`;
  if (row) {
    const f = row.split(',').map((s) => Number(s.replace(/"/g, '')));
    Object.assign(result, { rps: f[1], avgms: f[2], p50ms: f[4], p95ms: f[5], p99ms: f[6], maxms: f[7] });
  }
  if (result.error) { delete result.rps; }
  return result;
}

/** RSS of the target with N idle clients connected (each answered one PING). */
async function idleRss(t, n) {
  const pids = processTree(t.child.pid);
  const out = { clients: n };
  out.beforeMB = (await rssBytes(pids)) / MB;
  const socks = [];
  try {
    for (let i = 0; i < n; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => idleClient(t.port)));
      socks.push(...batch);
    }
    await sleep(500);
    let max = 0;
    let maxProcess = 0;
    const all = processTree(t.child.pid);
    for (let i = 0; i < 10; i++) {
      max = Math.max(max, await rssBytes(all));
      for (const pid of all) maxProcess = Math.max(maxProcess, await rssBytes([pid]));
      await sleep(100);
    }
    out.withClientsMB = max / MB;
    // With workers: the largest one process (a worker) reached; the sum above counts them all.
    out.maxProcessMB = maxProcess / MB;
  } catch (e) {
    out.error = `${e.message} (after ${socks.length} connected)`;
  } finally {
    for (const s of socks) s.destroy();
  }
  await sleep(500);
  out.afterMB = (await rssBytes(pids)) / MB;
  if (!t.child.alive()) out.error = `${t.child.name} exited during the idle-client check`;
  else if ((await command(t.port, ['PING']).catch((e) => e.message)) !== 'PONG') out.error = `${t.child.name} stopped answering PING after the idle clients left`;
  return out;
}

// ---- the run ---------------------------------------------------------------------

function machine(baseline) {
  const { 'redis-proxy commit': commit, 'dist/cli.js built': built, ...host } = machineInfo(ROOT);
  const base = baseline ? build(baseline) : null;
  return {
    ...host,
    'redis-benchmark': versionOf('redis-benchmark', ['--version']),
    nutcracker: versionOf('nutcracker', ['--version']).replace(/^This is /, ''),
    'redis-proxy commit': commit,
    'dist/cli.js built': built,
    ...(base ? {
      'baseline checkout': baseline,
      'baseline commit': base.commit,
      'baseline dist/cli.js built': base.built,
    } : {}),
  };
}

/** Other load on the machine skews everything; the report records it. */
function loadAverage() {
  return os.loadavg().map((x) => x.toFixed(2)).join(' ');
}

async function main() {
  const opts = options();
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  const machineAtStart = machine(opts.baseline); // before the proxies start: the builds and commits they run
  const otherCpuSinceStart = otherCpuMeter();
  let otherCpu = null;
  const { tmp, cleanup } = runScope('redis-proxy-bench-', log);
  const notes = [];
  const runs = [];
  const idle = {};
  const env = { targets: {} };
  let settingsExtra = {};


  try {
    env.masterPort = await freePort();
    env.replicaPort = await freePort();
    log(`temp dir ${tmp}`);
    log(`starting redis master :${env.masterPort} and replica :${env.replicaPort}`);
    await startRedis(tmp, 'master', env.masterPort);
    await startRedis(tmp, 'replica', env.replicaPort, ['--replicaof', '127.0.0.1', String(env.masterPort)]);
    await waitUntil('replica link up', async () =>
      parseInfo(await command(env.replicaPort, ['INFO', 'replication'])).master_link_status === 'up', { timeoutMs: 15000 });

    if (opts.targets.includes('direct')) env.targets.direct = { port: env.masterPort };

    // The proxies may fail to start; that is reported, and the rest of the run goes on.
    const starters = {
      twemproxy: async (port) => {
        const { child, config } = await startTwemproxy(tmp, port, env.masterPort);
        settingsExtra.twemproxy = config;
        return child;
      },
      'redis-proxy': async (port) => {
        const top = {
          ...(opts.admin ? { admin: { listen: await freePort() } } : {}),
          ...(opts.workers > 1 ? { workers: opts.workers } : {}),
        };
        const { child, config } = await startProxy(tmp, 'redis-proxy', ROOT, port, env.masterPort, env.replicaPort, opts.proxyBin, opts.listener, top);
        settingsExtra['redis-proxy config'] = config;
        if (opts.admin) {
          // Scraped every second, as a Prometheus server would (more often than the usual 15 s).
          const url = `http://127.0.0.1:${top.admin.listen}/metrics`;
          const scraper = setInterval(() => void fetch(url).then((r) => r.text()).catch(() => undefined), 1000);
          void child.exited.then(() => clearInterval(scraper));
          settingsExtra['redis-proxy admin'] = `${url} scraped every 1 s`;
        }
        return child;
      },
      // The same config shape on its own port, started from the other checkout's launcher.
      baseline: async (port) => {
        const top = opts.baselineWorkers > 1 ? { workers: opts.baselineWorkers } : {};
        const { child, config } = await startProxy(tmp, 'baseline', opts.baseline, port, env.masterPort, env.replicaPort, null, opts.baselineListener, top);
        settingsExtra['baseline config'] = config;
        return child;
      },
    };
    for (const name of PROXIES) {
      if (!opts.targets.includes(name)) continue;
      const port = await freePort();
      log(`starting ${name} :${port}`);
      let child;
      try {
        child = await starters[name](port);
        await sanityCheck(port);
        env.targets[name] = { port, child };
      } catch (e) {
        if (child) await stop(child);
        const logFile = path.join(tmp, name === 'twemproxy' ? 'nutcracker.log' : `${name}.log`);
        const t = tail(logFile);
        env.targets[name] = { error: `${name} not benchmarked: ${e.message}` };
        notes.push(`${name} not benchmarked: ${e.message}${t ? `\n\n  \`\`\`\n${t.replace(/^/gm, '  ')}\n  \`\`\`` : ''}`);
        log(`!! ${name} not benchmarked: ${e.message}${t ? `\n--- ${path.basename(logFile)} (tail) ---\n${t}\n---` : ''}`);
      }
    }
    if (env.targets['direct']) await sanityCheck(env.masterPort);

    const active = opts.targets.filter((n) => env.targets[n]?.port);
    if (opts.warmup) {
      for (const name of active) {
        log(`warm-up ${name}`);
        for (const test of TESTS) {
          const r = await benchOnce(env, name, 16, test, Math.min(100000, opts.requests[16]), opts);
          if (r.error) log(`  warm-up ${name} ${test}: ${r.error}`);
        }
      }
    }

    for (let round = 0; round < opts.rounds; round++) {
      const order = opts.targets.map((_, i) => opts.targets[(i + round) % opts.targets.length]);
      for (const P of PIPELINES) {
        for (const name of order) {
          for (const test of TESTS) {
            const r = await benchOnce(env, name, P, test, opts.requests[P], opts);
            r.round = round + 1;
            runs.push(r);
            const extra = r.cpuUsPerReq != null ? `  cpu ${r.cpuUsPerReq.toFixed(2)} us/req  rss ${(r.maxRssBytes / MB).toFixed(1)} MB` : '';
            log(`[round ${round + 1}/${opts.rounds}] -P ${String(P).padEnd(2)} ${name.padEnd(11)} ${test.toUpperCase()}: ${r.error
              ? `ERROR ${r.error}`
              : `${fmtInt(r.rps).padStart(9)} ops/s  p50 ${r.p50ms.toFixed(3)}  p99 ${r.p99ms.toFixed(3)} ms${extra}`}`);
          }
        }
      }
    }

    if (opts.idleClients > 0) {
      for (const name of PROXIES) {
        const t = env.targets[name];
        if (!opts.targets.includes(name)) continue;
        if (!t?.child?.alive()) { idle[name] = { clients: opts.idleClients, error: t?.error ?? `${name} is not running` }; continue; }
        log(`${name}: RSS with ${opts.idleClients} idle clients`);
        idle[name] = await idleRss(t, opts.idleClients);
        log(idle[name].error ? `  ${idle[name].error}` : `  ${idle[name].withClientsMB.toFixed(1)} MB (before ${idle[name].beforeMB.toFixed(1)} MB)`);
      }
    }

    for (const name of PROXIES) {
      const c = env.targets[name]?.child;
      if (c && !c.alive()) {
        const ei = c.exitInfo();
        notes.push(`${name} exited during the run (code ${ei?.code}, signal ${ei?.signal}); later runs against it are errors. Log tail:\n\n  \`\`\`\n${tail(c.logFile).replace(/^/gm, '  ')}\n  \`\`\``);
      }
    }
  } finally {
    // The logs live in tmp; keep the proxies' warnings if they wrote any.
    for (const name of ['redis-proxy', 'baseline']) {
      const proxyLog = tail(path.join(tmp, `${name}.log`), 10);
      if (proxyLog && env.targets[name]?.port) notes.push(`${name} wrote to its log (last lines):\n\n  \`\`\`\n${proxyLog.replace(/^/gm, '  ')}\n  \`\`\``);
    }
    // Measured before stopping, while the live children's CPU can still be read.
    otherCpu = otherCpuSinceStart();
    log('stopping everything');
    await cleanup();
  }

  // ---- report ----
  const targets = opts.targets;
  const cells = summarise(runs, targets, PIPELINES, TESTS);
  const versus = comparison(cells, PIPELINES, TESTS); // null unless both redis-proxy and baseline ran
  const routing = [];
  for (const name of targets) {
    const gets = runs.filter((r) => r.target === name && r.test === 'get' && r.executed && !r.error);
    if (!gets.length) continue;
    const m = gets.reduce((s, r) => s + r.executed.master, 0);
    const rep = gets.reduce((s, r) => s + r.executed.replica, 0);
    const sent = gets.reduce((s, r) => s + r.requests, 0);
    routing.push(`${name}: ${fmtInt(sent)} GETs sent; master executed ${fmtInt(m)}, replica ${fmtInt(rep)}`);
  }
  for (const name of targets) {
    if (env.targets[name]?.error) continue; // its start failure is already in the notes
    const errs = [...new Set(runs.filter((r) => r.target === name && r.error).map((r) => r.error))];
    for (const e of errs.slice(0, 5)) notes.push(`${name}: ${e}`);
  }
  const machineNow = machine(opts.baseline);
  for (const [key, what, who] of [['dist/cli.js built', 'dist/cli.js', 'redis-proxy'], ['baseline dist/cli.js built', `${opts.baseline}/dist/cli.js`, 'baseline']]) {
    if (!(key in machineAtStart) || machineNow[key] === machineAtStart[key]) continue;
    notes.push(`${what} was rebuilt during the run (at ${machineNow[key]}); ${who} kept running the build it started with (${machineAtStart[key]}), unless it had to load more of its dist/ later.`);
  }
  if (opts.proxyBin) notes.push(`redis-proxy was started from ${opts.proxyBin}, not bin/redis-proxy.`);
  if (opts.baseline && targets.includes('baseline')) notes.push(`baseline is the redis-proxy of ${opts.baseline} (commit ${machineAtStart['baseline commit']}), started from its own bin/redis-proxy with the same config shape on its own port.`);
  notes.push(
    `Other processes (not started by the harness) used ${otherCpu?.toFixed(1) ?? '?'}% of the machine's CPU during the run (from /proc/stat minus the harness's own processes). The higher, the noisier the numbers.`,
    `Everything shares ${os.availableParallelism()} cores: redis-benchmark (one thread, often the bottleneck at -P 1), the master, the replica (which also applies every replicated SET) and the proxy under test. Absolute numbers are therefore low and noisy; compare targets within one run, not across machines.`,
    `direct and twemproxy send GETs to the master; ${targets.includes('baseline') ? 'redis-proxy and baseline send them to the replica (their' : 'redis-proxy sends them to the replica (its'} read/write split), see "Where the GETs were executed". SETs go to the master everywhere.`,
    `CPU comes from /proc/PID/stat utime+stime in clock ticks (CLK_TCK ${CLK_TCK}, so ${(1e6 / CLK_TCK / 1000).toFixed(0)} ms resolution), read before and after each redis-benchmark run, divided by its requests; it includes accepting the ${opts.clients} benchmark connections.`,
    `Each redis-benchmark run is one test (-t set, then -t get) so that CPU per request is per test. All runs use one key (redis-benchmark's default key:__rand_int__ without -r) and 3-byte values.`,
  );
  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { ...machineAtStart, 'load average at start (1/5/15 min)': loadAtStart, 'other processes\' CPU during the run': `${otherCpu?.toFixed(1) ?? '?'}% of all cores` },
    settings: {
      rounds: opts.rounds,
      'requests per run': `${opts.requests[1]} at -P 1, ${opts.requests[16]} at -P 16`,
      'redis-benchmark': `-h 127.0.0.1 -c ${opts.clients} -t <set|get> -P <1|16> --csv`,
      order: `per round: -P 1 then -P 16; within each, targets ${targets.join(', ')} rotated by one each round; SET then GET per target`,
      warmup: opts.warmup ? `one unmeasured -P 16 SET and GET run (${Math.min(100000, opts.requests[16])} requests) per target` : 'none',
      redis: 'master + 1 replica (--replicaof), --save "" --appendonly no',
      ...settingsExtra,
      ...(opts.workers > 1 ? { 'redis-proxy workers': opts.workers } : {}),
      ...(opts.baseline && opts.baselineWorkers > 1 ? { 'baseline workers': opts.baselineWorkers } : {}),
    },
    cells,
    idle,
    routing,
    ...(versus ? { comparison: versus } : {}),
    verdict: verdict(cells, idle, PIPELINES, TESTS),
    notes,
    runs,
  };
  const md = markdown(report);
  const dated = writeReport({ out: opts.out, json: opts.json, prefix: '' }, report, md);

  process.stdout.write(`\n${table(cells)}\n\n`);
  if (versus) process.stdout.write(`redis-proxy vs baseline (${machineAtStart['redis-proxy commit']} vs ${machineAtStart['baseline commit']}); ratio = redis-proxy / baseline ops/s:\n${comparisonTable(versus)}\n\n`);
  for (const [name, i] of Object.entries(idle)) {
    process.stdout.write(i.error ? `${name}, ${i.clients} idle clients: ${i.error}\n` : `${name}, ${i.clients} idle clients: ${i.withClientsMB.toFixed(1)} MB\n`);
  }
  for (const l of routing) process.stdout.write(`${l}\n`);
  process.stdout.write(`\nVerdict: ${report.verdict.pass ? 'PASS' : 'FAIL'}\n${report.verdict.lines.map((l) => `  ${l}`).join('\n')}\n`);
  if (opts.strict && !report.verdict.pass) process.exitCode = 3;
  process.stdout.write(`\nwrote ${path.relative(process.cwd(), dated)}, latest.md, ${path.relative(process.cwd(), opts.json)}\n`);
}

main().catch((e) => {
  log(`bench failed: ${e.stack ?? e.message}`);
  process.exitCode = 1;
});

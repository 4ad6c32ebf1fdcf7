#!/usr/bin/env node
// Live topology benchmark: what clients of redis-proxy see while its topology changes
// under load (SIGHUP reloads, Sentinel failovers).
//
//   node bench/topology.mjs [--rounds 5] [--quick] [--parts reload,scale,failover]
//                           [--out bench/results] [--logs DIR]
//
// Three parts, on Redis processes and the built proxy (dist/, started as bin/redis-proxy
// with logLevel info, its log kept in the temporary directory):
//
// - reload: master + 3 replicas; redis-benchmark -c 50 -t set,get -r 100000 -e runs
//   through the proxy once without reloads (baseline) and once while the harness rewrites
//   the config file and sends SIGHUP 20 times (1, 2 or 3 replicas, different weights).
//   Four long-lived connections of the harness run alongside (they span the whole run,
//   while redis-benchmark opens new connections per test). Reloads applied, connections
//   dropped, error replies, throughput with and without reloads.
// - scale: a replica started fresh is added by reload while 10 connections read; the time
//   from SIGHUP to the first GET the new replica executes (its INFO commandstats polled
//   every 10 ms). Repeated --rounds times.
// - failover: per round a fresh master, 2 replicas, 3 Sentinels and a proxy following
//   them (the `sentinel` key); 40 readers and 10 writers (INCR c:<writer>) through the
//   proxy; then SENTINEL FAILOVER, or kill -9 of the master. Time from +switch-master to
//   the first successful write, write and read errors, writes counted twice or lost.
//   --rounds rounds of each, and the kill -9 rounds once more with causalReads "none".
//
// It writes topology-<date>.md, topology-latest.md and topology-latest.json. See
// bench/README.md.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { command, nodeLines, parseInfo } from './lib/resp.mjs';
import { Conn } from './lib/conn.mjs';
import { run, stop, stopAll, freePort, waitUntil, sleep } from './lib/procs.mjs';
import { mdTable, fmtInt } from './lib/report.mjs';
import { startRedis, launchProxy, sanityCheck, tail, runScope, otherCpuMeter, machineInfo, writeReport } from './lib/setup.mjs';
import { startSentinels, waitForSentinels, subscribeEvents, until } from './lib/sentinel.mjs';
import { harnessOptions } from './lib/options.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PARTS = ['reload', 'scale', 'failover'];
const MASTER_NAME = 'mymaster';

// What each part does; the README's section describes the same numbers.
const RELOAD = {
  clients: 50,
  keyspace: 100000,        // redis-benchmark -r
  requests: 600000,        // redis-benchmark -n (per test: SET, then GET)
  warmupRequests: 100000,  // one unmeasured run before the baseline
  reloads: 20,
  spread: 0.6,             // reloads spread evenly over this share of the baseline run's duration
  watchers: 4,             // the harness's own connections (2 GET, 2 SET), one request per watchEveryMs each
  watchEveryMs: 2,
  applyTimeoutMs: 5000,    // a reload not visible in INFO proxy by then is counted as not applied
  benchTimeoutMs: 300000,
};
const SCALE = {
  readers: 10,
  readEveryMs: 2,
  pollEveryMs: 2,
  timeoutMs: 5000,
  goalMs: 1000,            // one health-check interval (the default)
};
const FAILOVER = {
  readers: 40,
  writers: 10,
  everyMs: 5,              // per connection: the next request when the reply came and at least this long after the previous one
  keys: 1000,              // r:<i> = v<i>, written on the master before the load
  downAfterMs: 1000,
  failoverTimeoutMs: 5000,
  warmMs: 1000,            // load before the failover starts
  afterMs: 1500,           // load after the first successful write following +switch-master
  switchTimeoutMs: 25000,  // no +switch-master by then: the round fails
  firstWriteTimeoutMs: 10000,
  infoEveryMs: 10,         // INFO proxy polled during the failover
  stallMs: 10000,          // a reply owed longer than this counts as missing
  goalP50Ms: 100,
  goalMaxMs: 1000,
};
/** The failover rounds: what starts the failover, and the listener's causalReads. */
const SETS = [
  { key: 'failover', kind: 'failover', causal: null, title: 'SENTINEL FAILOVER' },
  { key: 'kill', kind: 'kill', causal: null, title: 'kill -9 of the master' },
  { key: 'kill-none', kind: 'kill', causal: 'none', title: 'kill -9 of the master, causalReads "none"' },
];
const QUICK = { requests: 200000, reloads: 6, rounds: 1 };

const USAGE = `usage: node bench/topology.mjs [options]

  --rounds N          scale repetitions and failover rounds of each kind (default 5;
                      1 with --quick)
  --quick             a smoke run: ${QUICK.reloads} reloads, -n ${QUICK.requests}, 1 round each
  --parts LIST        comma list out of ${PARTS.join(',')} (default all)
  --sets LIST         failover rounds to run, out of failover,kill,kill-none
                      (default all: SENTINEL FAILOVER, kill -9, kill -9 with
                      causalReads "none")
  --out DIR           where topology-<date>.md, topology-latest.md and
                      topology-latest.json go (default bench/results)
  --json FILE         machine-readable results (default <out>/topology-latest.json)
  --logs DIR          copy every log (proxy, Redis, Sentinel) and config file there
  --proxy-bin FILE    Node script started as the proxy (default bin/redis-proxy)
  -h, --help          this text
`;

function options() {
  const { values, number, list, out, json, proxyBin } = harnessOptions({
    usage: USAGE,
    json: 'topology-latest.json',
    own: {
      rounds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      parts: { type: 'string', default: PARTS.join(',') },
      sets: { type: 'string', default: SETS.map((x) => x.key).join(',') },
      logs: { type: 'string' },
    },
  });
  const rounds = number('rounds', values.rounds ?? (values.quick ? QUICK.rounds : 5));
  const parts = list('parts', values.parts, PARTS);
  const sets = list('sets', values.sets, SETS.map((x) => x.key), { allowEmpty: true });
  return {
    sets: SETS.filter((x) => sets.includes(x.key)),
    rounds,
    quick: values.quick,
    parts: PARTS.filter((p) => parts.includes(p)),
    requests: values.quick ? QUICK.requests : RELOAD.requests,
    reloads: values.quick ? QUICK.reloads : RELOAD.reloads,
    out,
    json,
    logs: values.logs ? path.resolve(values.logs) : null,
    proxyBin,
  };
}

const log = (msg) => process.stderr.write(`${msg}\n`);

// ---- numbers -------------------------------------------------------------------------

/** Nearest-rank percentile p (0-100) of xs; null for none. */
function pctl(xs, p) {
  const v = xs.filter((x) => x != null && Number.isFinite(x));
  if (!v.length) return null;
  v.sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}
const maxOf = (xs) => { const v = xs.filter((x) => x != null && Number.isFinite(x)); return v.length ? Math.max(...v) : null; };
const fmt = (x, d = 0) => (x == null || !Number.isFinite(x) ? '–' : x.toFixed(d));
const ms = (x) => (x == null || !Number.isFinite(x) ? '–' : `${x.toFixed(Math.abs(x) < 10 ? 1 : 0)} ms`);
const mark = (ok) => (ok ? 'PASS' : 'FAIL');
const sum = (xs) => xs.reduce((a, b) => a + (b ?? 0), 0);

/** { text: count } of texts. */
function countTexts(texts) {
  const out = {};
  for (const t of texts) out[t] = (out[t] ?? 0) + 1;
  return out;
}

/** "3× 'ERR x', 1× 'ERR y'": the kinds of texts, most frequent first, at most `max` kinds. */
function tally(texts, max = 6) {
  return tallyCounts(countTexts(texts), max);
}

/** tally() of { text: count } objects, summed. */
function tallyCounts(counts, max = 6) {
  if (Array.isArray(counts)) {
    const merged = {};
    for (const c of counts) for (const [t, n] of Object.entries(c ?? {})) merged[t] = (merged[t] ?? 0) + n;
    counts = merged;
  }
  const kinds = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  const shown = kinds.slice(0, max).map(([t, n]) => `${n}× \`${t.slice(0, 160)}\``);
  if (kinds.length > max) shown.push(`… ${kinds.length - max} more kinds`);
  return shown.join(', ') || 'none';
}
/** Error texts with numbers (ports, counts, ids) made generic, so that they group. */
const generic = (t) => String(t).replace(/\d+/g, 'N');

// ---- INFO proxy ----------------------------------------------------------------------

/** INFO proxy parsed: the fields and the node lines; throws when the reply is not INFO text. */
function parseProxyInfo(reply) {
  if (typeof reply !== 'string') throw new Error(`INFO proxy answered ${JSON.stringify(reply)}`);
  return { fields: parseInfo(reply), nodes: nodeLines(reply), text: reply };
}

async function infoProxy(port, timeoutMs = 2000) {
  return parseProxyInfo(await command(port, ['INFO', 'proxy'], { timeoutMs }));
}

/** cmdstat_<name> calls from an INFO commandstats text. */
function calls(info, name) {
  const m = new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(String(info));
  return m ? Number(m[1]) : 0;
}

async function commandCalls(port, name) {
  return calls(await command(port, ['INFO', 'commandstats']), name);
}

// ---- processes, config, logs ----------------------------------------------------------

async function waitLinkUp(replicaPort, timeoutMs = 15000) {
  await waitUntil(`replica :${replicaPort} link up`, async () =>
    parseInfo(await command(replicaPort, ['INFO', 'replication'])).master_link_status === 'up', { timeoutMs, intervalMs: 50 });
}

const node = (port, weight) => (weight === undefined ? { host: '127.0.0.1', port } : { host: '127.0.0.1', port, weight });

/** Starts the proxy with `config` (written to dir/<name>.json); its log is dir/<name>.log. */
async function startProxy(dir, name, port, config, proxyBin) {
  const conf = path.join(dir, `${name}.json`);
  fs.writeFileSync(conf, JSON.stringify(config, null, 2));
  const logFile = path.join(dir, `${name}.log`);
  try {
    const child = await launchProxy({ name: 'redis-proxy', root: ROOT, conf, logFile, port, proxyBin });
    return { child, conf, logFile };
  } catch (e) {
    const out = tail(logFile, 20);
    throw new Error(`${e.message}${out ? `\n--- ${path.basename(logFile)} (tail) ---\n${out}\n---` : ''}`);
  }
}

/** The proxy's log as parsed JSON lines (pino: level label, ISO time, msg); unparsable lines as { raw }. */
function proxyLog(file) {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean).map((l) => {
    try { const j = JSON.parse(l); return { ...j, t: Date.parse(j.time) }; } catch { return { raw: l, level: 'raw' }; }
  });
}

const BORING = new Set(['level', 'time', 't', 'pid', 'hostname', 'msg', 'listener', 'sentinelMaster', 'v']);
/** One log entry as a short line: `+123 ms warn msg {fields}` relative to wall-clock origin. */
function logLine(e, origin) {
  if (e.raw !== undefined) return `(not JSON) ${e.raw.slice(0, 200)}`;
  const extra = Object.fromEntries(Object.entries(e).filter(([k]) => !BORING.has(k)));
  const rel = origin == null ? '' : `${e.t - origin >= 0 ? '+' : ''}${e.t - origin} ms `;
  const fields = Object.keys(extra).length ? ` ${JSON.stringify(extra).slice(0, 300)}` : '';
  return `${rel}${e.level} ${e.msg}${fields}`;
}
const isWarn = (e) => ['warn', 'error', 'fatal', 'raw'].includes(e.level);

/** Copies dir's logs and configs to opts.logs/<label>/ when --logs was given. */
function keepLogs(opts, dir, label) {
  if (!opts.logs) return;
  const dest = path.join(opts.logs, label);
  fs.mkdirSync(dest, { recursive: true });
  for (const f of fs.readdirSync(dir)) {
    if (/\.(log|json)$/.test(f)) fs.copyFileSync(path.join(dir, f), path.join(dest, f));
  }
}

// ---- load ----------------------------------------------------------------------------

/**
 * A client connection in a closed loop through the proxy: sends make(i), waits for the
 * reply, records it with `record({ i, sentAt, doneAt, reply | failure })`, and sends the
 * next one no sooner than everyMs after the previous send, until stop(). A connection
 * that fails (closed, reset, a reply owed longer than stallMs) is counted in `drops` and
 * opened anew. Resolves when stopped.
 */
function closedLoop(port, { everyMs, stop, make, record, stallMs = FAILOVER.stallMs }) {
  const state = { drops: [], sent: 0 };
  const done = (async () => {
    let conn = await Conn.open(port, { stallMs });
    for (let i = 0; !stop(); i++) {
      const o = { i, sentAt: performance.now() };
      state.sent++;
      try {
        o.reply = await conn.call(make(i));
      } catch (e) {
        o.failure = e.message;
        state.drops.push({ at: performance.now(), error: e.message });
        conn.close();
        conn = null;
      }
      o.doneAt = performance.now();
      record(o);
      while (!conn && !stop()) {
        try { conn = await Conn.open(port, { stallMs }); } catch { await sleep(50); }
      }
      const wait = o.sentAt + everyMs - performance.now();
      if (wait > 0 && !stop()) await sleep(wait);
    }
    conn?.close();
  })();
  return { state, done };
}

const isErr = (v) => v !== null && typeof v === 'object' && 'error' in v;

// ---- part 1: reloads under load -------------------------------------------------------

/** The replicas (index into the three, weight) of reload number i: 1, 2, 3 replicas in turn, a different first one and weights each cycle. */
function reloadSpec(i) {
  const k = 1 + (i % 3);
  const first = Math.floor(i / 3) % 3;
  return Array.from({ length: k }, (_, j) => [(first + j) % 3, 1 + ((i + j) % 3)]);
}
const specText = (spec) => spec.map(([r, w]) => `R${r + 1}:${w}`).join(' ');

/** redis-benchmark's output: CSV rows per test, error lines, anything else on stderr. */
function parseBench(r) {
  const rows = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^"(SET|GET)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)"/.exec(line);
    if (m) rows[m[1]] = { rps: Number(m[2]), avgms: Number(m[3]), p50ms: Number(m[5]), p99ms: Number(m[7]), maxms: Number(m[8]) };
  }
  // redis-benchmark 7 prints a warning for -e and exits at the first error reply ("Error from
  // server: ...") or at the first connection the server closes ("Error: ...").
  const expected = (l) => l.includes('Could not fetch server CONFIG') || l.includes('-e option has no effect');
  const all = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l && !expected(l));
  const errorLines = all.filter((l) => /\bERR\b|error/i.test(l) && !/^Error: |Error writing/.test(l));
  const dropLines = all.filter((l) => /connection reset|closed the connection|disconnected|Error writing|^Error: /i.test(l));
  const stderr = r.stderr.split('\n').map((l) => l.trim()).filter((l) => l && !expected(l));
  return { rows, errorLines, dropLines, stderr, code: r.code, signal: r.signal, timedOut: r.timedOut };
}

async function reloadPart(tmp, opts) {
  const dir = path.join(tmp, 'reload');
  fs.mkdirSync(dir);
  const res = { part: 'reload' };
  const env = { dir };
  try {
    env.masterPort = await freePort();
    await startRedis(dir, 'master', env.masterPort, ['--repl-diskless-sync-delay', '0']);
    env.replicaPorts = [];
    for (let i = 1; i <= 3; i++) {
      const p = await freePort();
      await startRedis(dir, `replica${i}`, p, ['--replicaof', '127.0.0.1', String(env.masterPort)]);
      env.replicaPorts.push(p);
    }
    for (const p of env.replicaPorts) await waitLinkUp(p);
    env.port = await freePort();
    env.config = (spec) => ({
      logLevel: 'info',
      listeners: [{ listen: env.port, master: node(env.masterPort), slave: spec.map(([r, w]) => node(env.replicaPorts[r], w)) }],
    });
    const first = [[0, 1], [1, 1], [2, 1]];
    env.proxy = await startProxy(dir, 'proxy', env.port, env.config(first), opts.proxyBin);
    await sanityCheck(env.port, 'topology:sanity', 5000);
    await waitUntil('three replicas in the rotation', async () =>
      (await infoProxy(env.port)).nodes.filter((n) => n.role === 'replica' && n.inRotation === 1).length === 3, { timeoutMs: 10000 });
    res.listener = env.config(first).listeners[0];

    // Unmeasured: the proxy's hot paths compiled before the baseline.
    const warm = await run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(env.port), '-c', String(RELOAD.clients),
      '-n', String(Math.min(RELOAD.warmupRequests, opts.requests)), '-t', 'set,get', '-r', String(RELOAD.keyspace), '-q'], { timeoutMs: RELOAD.benchTimeoutMs });
    if (warm.code !== 0) throw new Error(`warm-up redis-benchmark exit ${warm.code}: ${warm.stderr.slice(0, 300)}`);
    res.baseline = await benchRun(env, opts, false);
    log(`[reload] without reloads: SET ${fmtInt(res.baseline.bench.rows.SET?.rps)} GET ${fmtInt(res.baseline.bench.rows.GET?.rps)} ops/s in ${res.baseline.wallS.toFixed(1)} s`);
    res.withReloads = await benchRun(env, opts, true, res.baseline.wallS);
    const w = res.withReloads;
    log(`[reload] with ${w.reloads.length} reloads: SET ${fmtInt(w.bench.rows.SET?.rps)} GET ${fmtInt(w.bench.rows.GET?.rps)} ops/s; generation ${w.generationBefore} -> ${w.generationAfter}; redis-benchmark exit ${w.bench.code}, ${w.bench.errorLines.length} error lines; watchers: ${w.watch.drops} drops, ${w.watch.errors} errors`);
    if (!opts.quick) {
      // A second run without reloads after it: the machine drifts (other load), so the
      // comparison is against both.
      res.baseline2 = await benchRun(env, opts, false);
      log(`[reload] without reloads, again: SET ${fmtInt(res.baseline2.bench.rows.SET?.rps)} GET ${fmtInt(res.baseline2.bench.rows.GET?.rps)} ops/s`);
    }

    if (opts.parts.includes('scale')) res.scale = await scalePart(env, opts);
  } catch (e) {
    res.error = e.message;
    log(`!! [reload] ${e.stack ?? e.message}`);
  } finally {
    if (env.proxy) {
      const entries = proxyLog(env.proxy.logFile);
      res.proxyLog = {
        lines: entries.length,
        warnings: entries.filter(isWarn).map((e) => logLine(e, null)).slice(0, 40),
        warningCount: entries.filter(isWarn).length,
        alive: env.proxy.child.alive(),
        exit: env.proxy.child.exitInfo(),
      };
    }
    await stopAll();
    keepLogs(opts, dir, 'reload');
  }
  return res;
}

/** One redis-benchmark run through the proxy, with `reloads` spread over `expectedS` seconds when asked. */
async function benchRun(env, opts, reloads, expectedS = 0) {
  const out = { reloads: [] };
  const otherCpu = otherCpuMeter();
  const admin = await Conn.open(env.port, { stallMs: 10000 });
  const info = async () => parseProxyInfo(await admin.call(['INFO', 'proxy']));
  const nodesPorts = [env.masterPort, ...env.replicaPorts];
  const getsBefore = await Promise.all(nodesPorts.map((p) => commandCalls(p, 'get')));
  const setsBefore = await commandCalls(env.masterPort, 'set');
  out.generationBefore = Number((await info()).fields.config_generation);

  // The harness's own long-lived connections: 2 readers, 2 writers.
  let stopWatch = false;
  const watch = { requests: 0, errors: [], wrong: 0 };
  const watchers = Array.from({ length: RELOAD.watchers }, (_, n) => closedLoop(env.port, {
    everyMs: RELOAD.watchEveryMs,
    stop: () => stopWatch,
    make: (i) => (n % 2 ? ['SET', `watch:${n}`, String(i)] : ['GET', `watch:${n + 1}`]),
    record: (o) => {
      watch.requests++;
      if (o.failure) watch.errors.push(`(connection: ${o.failure})`);
      else if (isErr(o.reply)) watch.errors.push(o.reply.error);
    },
    stallMs: 10000,
  }));
  await sleep(100);

  const t0 = performance.now();
  const bench = run('redis-benchmark', [
    '-h', '127.0.0.1', '-p', String(env.port), '-c', String(RELOAD.clients), '-n', String(opts.requests),
    '-t', 'set,get', '-r', String(RELOAD.keyspace), '-e', '--csv',
  ], { timeoutMs: RELOAD.benchTimeoutMs });
  let benchDone = false;
  bench.then(() => { benchDone = true; });

  if (reloads) {
    const n = opts.reloads;
    // Over the first RELOAD.spread of the baseline's duration, so that every reload falls
    // within the load even when this run is faster.
    const every = (RELOAD.spread * expectedS * 1000) / (n + 1);
    for (let i = 0; i < n; i++) {
      const wait = t0 + (i + 1) * every - performance.now();
      if (wait > 0) await sleep(wait);
      const spec = reloadSpec(i);
      const before = await info();
      const rec = { n: i + 1, spec: specText(spec), at: performance.now() - t0, duringLoad: !benchDone, sessionsBefore: Number(before.fields.sessions) };
      fs.writeFileSync(env.proxy.conf, JSON.stringify(env.config(spec), null, 2));
      const sentAt = performance.now();
      env.proxy.child.proc.kill('SIGHUP');
      const want = out.generationBefore + i + 1;
      let after = null;
      const deadline = performance.now() + RELOAD.applyTimeoutMs;
      for (;;) {
        after = await info();
        if (Number(after.fields.config_generation) >= want || performance.now() > deadline) break;
        await sleep(5);
      }
      rec.applied = Number(after.fields.config_generation) >= want;
      rec.applyMs = performance.now() - sentAt;
      rec.result = after.fields.config_last_reload_result;
      rec.sessionsAfter = Number(after.fields.sessions);
      rec.replicas = after.nodes.filter((x) => x.role === 'replica').map((x) => `${x.addr.split(':')[1]}:${x.state}`).join(' ');
      out.reloads.push(rec);
    }
  }

  const r = await bench;
  out.wallS = (performance.now() - t0) / 1000;
  out.otherCpuPct = otherCpu();
  stopWatch = true;
  await Promise.all(watchers.map((x) => x.done));
  out.watch = {
    requests: watch.requests,
    errors: watch.errors.length,
    errorKinds: tally(watch.errors),
    drops: sum(watchers.map((x) => x.state.drops.length)),
    dropKinds: tally(watchers.flatMap((x) => x.state.drops.map((d) => d.error))),
  };
  out.bench = parseBench(r);
  const end = await info();
  out.generationAfter = Number(end.fields.config_generation);
  out.lastResult = end.fields.config_last_reload_result;
  out.endNodes = end.nodes.map((x) => x.raw);
  out.sessionsAfterLoad = Number(end.fields.sessions);
  admin.close();
  const getsAfter = await Promise.all(nodesPorts.map((p) => commandCalls(p, 'get')));
  out.gets = getsAfter.map((g, i) => g - getsBefore[i]);
  out.setsOnMaster = (await commandCalls(env.masterPort, 'set')) - setsBefore;
  return out;
}

// ---- part 2: a replica added by reload receives reads ---------------------------------

async function scalePart(env, opts) {
  const res = { part: 'scale', reps: [] };
  const base = [[0, 1], [1, 1]];
  const setConfig = (extraPort) => {
    const c = env.config(base);
    if (extraPort) c.listeners[0].slave.push(node(extraPort, 1));
    fs.writeFileSync(env.proxy.conf, JSON.stringify(c, null, 2));
  };
  const generation = async () => Number((await infoProxy(env.port)).fields.config_generation);
  const reloadAndWait = async () => {
    const want = (await generation()) + 1;
    env.proxy.child.proc.kill('SIGHUP');
    await waitUntil('the reload to apply', async () => (await generation()) >= want, { timeoutMs: 5000, intervalMs: 10 });
  };
  setConfig(null);
  await reloadAndWait();
  // Keys to read, written on the master before the readers start.
  await command(env.masterPort, ['MSET', ...Array.from({ length: 100 }, (_, i) => [`scale:${i}`, `v${i}`]).flat()]);
  await command(env.masterPort, ['WAIT', '2', '2000']);

  let stopReads = false;
  const reads = { n: 0, errors: [] };
  const readers = Array.from({ length: SCALE.readers }, (_, n) => closedLoop(env.port, {
    everyMs: SCALE.readEveryMs,
    stop: () => stopReads,
    make: (i) => ['GET', `scale:${(i * SCALE.readers + n) % 100}`],
    record: (o) => { reads.n++; if (o.failure) reads.errors.push(`(connection: ${o.failure})`); else if (isErr(o.reply)) reads.errors.push(o.reply.error); },
  }));
  try {
    await sleep(300);
    for (let k = 1; k <= opts.rounds; k++) {
      const rep = { rep: k };
      const port = await freePort();
      const replica = await startRedis(env.dir, `scale${k}`, port, ['--replicaof', '127.0.0.1', String(env.masterPort)]);
      await waitLinkUp(port);
      const poll = await Conn.open(port, { stallMs: 5000 });
      if ((await poll.call(['INFO', 'commandstats'])).includes('cmdstat_get')) throw new Error('the new replica executed GETs before it was added');
      setConfig(port);
      const wall0 = Date.now();
      const t0 = performance.now();
      env.proxy.child.proc.kill('SIGHUP');
      let prev = t0;
      let seenAt = null;
      while (performance.now() - t0 < SCALE.timeoutMs) {
        const sent = performance.now();
        const got = calls(await poll.call(['INFO', 'commandstats']), 'get');
        if (got > 0) { seenAt = performance.now(); rep.getsAtFirstSight = got; break; }
        prev = sent;
        const wait = sent + SCALE.pollEveryMs - performance.now();
        if (wait > 0) await sleep(wait);
      }
      poll.close();
      rep.firstGetMs = seenAt === null ? null : seenAt - t0;
      rep.lastPollWithoutMs = prev - t0; // the last poll that saw none was sent this long after SIGHUP
      const entries = proxyLog(env.proxy.logFile).filter((e) => e.t >= wall0 - 5);
      const reloaded = entries.find((e) => /^config reloaded/.test(e.msg ?? ''));
      rep.reloadLoggedMs = reloaded ? reloaded.t - wall0 : null;
      const gen = await generation();
      rep.generation = gen;
      log(`[scale ${k}] first GET on the new replica ${seenAt === null ? `not within ${SCALE.timeoutMs} ms` : `${ms(rep.firstGetMs)} after SIGHUP (last poll without: ${ms(rep.lastPollWithoutMs)})`}; reload logged at ${ms(rep.reloadLoggedMs)}`);
      // Remove it again, then stop it.
      setConfig(null);
      await reloadAndWait();
      await sleep(100);
      await stop(replica);
      res.reps.push(rep);
    }
  } finally {
    stopReads = true;
    await Promise.all(readers.map((x) => x.done));
  }
  res.reads = { n: reads.n, errors: reads.errors.length, errorKinds: tally(reads.errors), drops: sum(readers.map((x) => x.state.drops.length)) };
  return res;
}

// ---- part 3: Sentinel failover under load ---------------------------------------------

/**
 * Per writer: the acknowledged INCRs in order, and the final counter F. The acks from the
 * final master's lineage are those from the last point where the returned value went
 * back (a new master continuing from an older value) on, with value <= F, plus the
 * earlier ones below the value it went back to (they were replicated before the
 * promotion). Everything else acknowledged is lost.
 */
function writerLineage(acks, F) {
  let start = 0;
  let drops = 0;
  for (let i = 1; i < acks.length; i++) if (acks[i].value <= acks[i - 1].value) { start = i; drops++; }
  const floor = start > 0 ? acks[start].value : Infinity;
  const keep = (a, i) => (i >= start ? a.value <= F : a.value < floor && a.value <= F);
  const kept = acks.filter(keep);
  const lostAcks = acks.filter((a, i) => !keep(a, i));
  return { kept, lostAcks, lost: lostAcks.length, drops, lineageStart: start };
}

async function failoverRound(tmp, opts, kind, causal, round) {
  const label = `${kind}${causal ? `-${causal}` : ''}-${round}`;
  const dir = path.join(tmp, label);
  fs.mkdirSync(dir);
  const res = { kind, causal: causal ?? 'global (default)', round };
  const conns = [];
  const subs = [];
  let proxy = null;
  let stopLoad = false;
  let loops = [];
  let poller = null;
  let wall0 = null;
  try {
    const masterPort = await freePort();
    const replicaPorts = [await freePort(), await freePort()];
    const extra = ['--repl-diskless-sync-delay', '0'];
    const master = await startRedis(dir, 'master', masterPort, extra);
    for (const [i, p] of replicaPorts.entries()) await startRedis(dir, `replica${i + 1}`, p, [...extra, '--replicaof', '127.0.0.1', String(masterPort)]);
    for (const p of replicaPorts) await waitLinkUp(p);
    res.ports = { master: masterPort, replicas: replicaPorts };
    // The keys the readers read, on every node before the load.
    const m = await Conn.open(masterPort);
    for (let i = 0; i < FAILOVER.keys; i += 100) {
      await m.call(['MSET', ...Array.from({ length: 100 }, (_, j) => [`r:${i + j}`, `v${i + j}`]).flat()]);
    }
    const acked = await m.call(['WAIT', '2', '5000']);
    m.close();
    if (acked !== 2) throw new Error(`WAIT 2 answered ${JSON.stringify(acked)}`);

    const sentinels = await startSentinels(dir, masterPort, { masterName: MASTER_NAME, downAfterMs: FAILOVER.downAfterMs, failoverTimeoutMs: FAILOVER.failoverTimeoutMs });
    await waitForSentinels(sentinels, { replicas: 2, masterName: MASTER_NAME });
    const events = [];
    for (const s of sentinels) subs.push(await subscribeEvents(s.port, (e) => events.push({ ...e, sentinel: s.address })));

    const port = await freePort();
    const listener = { listen: port, sentinel: { masterName: MASTER_NAME, nodes: sentinels.map((s) => node(s.port)) } };
    if (causal) listener.causalReads = causal;
    res.listener = listener;
    proxy = await startProxy(dir, 'proxy', port, { logLevel: 'info', listeners: [listener] }, opts.proxyBin);
    let ready = null;
    await waitUntil('the proxy to see the master and both replicas in rotation', async () => {
      ready = await infoProxy(port);
      const n = ready.nodes;
      return n[0]?.addr === `127.0.0.1:${masterPort}` && n[0]?.state === 'up'
        && n.filter((x) => x.role === 'replica' && x.state === 'up' && x.inRotation === 1).length === 2
        && ready.fields.sentinel_in_use && ready.fields.sentinel_in_use !== 'none';
    }, { timeoutMs: 15000 }).catch((e) => { throw new Error(`${e.message}; INFO proxy: ${ready?.text?.replace(/\r\n/g, ' | ')}`); });
    res.proxySentinel = ready.fields.sentinel_in_use;

    // The load: 40 readers, 10 writers, each its own connection.
    const W = [];
    const reads = { n: 0, ok: 0, wrong: [], errors: [], failures: [] };
    for (let w = 0; w < FAILOVER.writers; w++) W.push({ w, sent: 0, acks: [], errors: [], failures: [] });
    const stop = () => stopLoad;
    loops = [
      ...W.map((wr) => closedLoop(port, {
        everyMs: FAILOVER.everyMs, stop, make: () => ['INCR', `c:${wr.w}`],
        record: (o) => {
          wr.sent++;
          if (o.failure) wr.failures.push({ at: o.doneAt, text: `(connection: ${o.failure})` });
          else if (isErr(o.reply)) wr.errors.push({ at: o.doneAt, text: o.reply.error });
          else wr.acks.push({ value: Number(o.reply), sentAt: o.sentAt, doneAt: o.doneAt });
        },
      })),
      ...Array.from({ length: FAILOVER.readers }, (_, n) => closedLoop(port, {
        everyMs: FAILOVER.everyMs, stop, make: (i) => ['GET', `r:${(i * FAILOVER.readers + n) % FAILOVER.keys}`],
        record: (o) => {
          reads.n++;
          const k = (o.i * FAILOVER.readers + n) % FAILOVER.keys;
          if (o.failure) reads.failures.push({ at: o.doneAt, text: `(connection: ${o.failure})` });
          else if (isErr(o.reply)) reads.errors.push({ at: o.doneAt, text: o.reply.error });
          else if (o.reply === `v${k}`) reads.ok++;
          else reads.wrong.push({ at: o.doneAt, text: JSON.stringify(o.reply) });
        },
      })),
    ];
    await sleep(FAILOVER.warmMs);

    // INFO proxy, polled through the proxy during the failover: when node0 changes.
    const admin = await Conn.open(port, { stallMs: 5000 });
    conns.push(admin);
    const masterSeen = [];
    let stopPoll = false;
    poller = (async () => {
      let last = null;
      while (!stopPoll) {
        const sent = performance.now();
        try {
          const i = parseProxyInfo(await admin.call(['INFO', 'proxy']));
          const now = `${i.nodes[0]?.addr} ${i.nodes[0]?.state} role=${i.fields.master_role}`;
          if (now !== last) { masterSeen.push({ at: performance.now(), sent, addr: i.nodes[0]?.addr, state: i.nodes[0]?.state, role: i.fields.master_role }); last = now; }
        } catch (e) { masterSeen.push({ at: performance.now(), sent, error: e.message }); break; }
        const wait = sent + FAILOVER.infoEveryMs - performance.now();
        if (wait > 0) await sleep(wait);
      }
    })();

    // The failover.
    const before = { sent: sum(W.map((x) => x.sent)) };
    wall0 = Date.now();
    const t0 = performance.now();
    if (kind === 'failover') {
      // Odd rounds: a Sentinel the proxy does not follow (it learns of the failover at
      // +switch-master); even rounds: the one it follows (the leader's own events).
      const toProxys = round % 2 === 0;
      const target = sentinels.find((s) => (s.address === res.proxySentinel) === toProxys) ?? sentinels[0];
      res.failoverSentTo = target.address;
      let reply;
      for (let attempt = 0; attempt < 20; attempt++) {
        reply = await command(target.port, ['SENTINEL', 'FAILOVER', MASTER_NAME]).catch((e) => ({ error: e.message }));
        if (reply === 'OK' || !/NOGOODSLAVE|INPROG/.test(reply?.error ?? '')) break;
        await sleep(250);
      }
      res.failoverReply = isErr(reply) ? `-${reply.error}` : String(reply);
      if (reply !== 'OK') throw new Error(`SENTINEL FAILOVER answered ${res.failoverReply}`);
    } else {
      master.proc.kill('SIGKILL');
    }
    const switched = () => events.find((e) => e.channel === '+switch-master');
    if (!(await until(switched, FAILOVER.switchTimeoutMs, 5))) throw new Error(`no +switch-master within ${FAILOVER.switchTimeoutMs} ms; events: ${events.map((e) => e.channel).join(' ')}`);
    const sw = switched();
    const switchAt = sw.at;
    const [, , , newHost, newPort] = sw.message.split(' ');
    res.newMaster = `${newHost}:${newPort}`;
    // Load goes on until a write after the switch succeeded, then afterMs more.
    const writeAfterSwitch = () => W.some((x) => x.acks.some((a) => a.doneAt >= switchAt));
    await until(writeAfterSwitch, FAILOVER.firstWriteTimeoutMs, 5);
    await sleep(FAILOVER.afterMs);
    stopLoad = true;
    await Promise.all(loops.map((l) => l.done));
    stopPoll = true;
    await poller;
    const tEnd = performance.now();

    // The final data.
    const finals = await command(Number(newPort), ['MGET', ...W.map((x) => `c:${x.w}`)]);
    res.finalRole = parseInfo(await command(Number(newPort), ['INFO', 'replication'])).role;
    const end = await infoProxy(port).catch((e) => ({ text: e.message, nodes: [], fields: {} }));
    res.proxyEnd = { nodes: end.nodes.map((x) => x.raw), master_role: end.fields.master_role, sentinel_in_use: end.fields.sentinel_in_use };

    // Timeline (ms from the failover's start).
    const rel = (at) => (at == null ? null : at - t0);
    const firstOf = (channel, sentinel) => events.find((e) => e.channel === channel && (!sentinel || e.sentinel === sentinel));
    res.timeline = {
      sdown: rel(firstOf('+sdown')?.at), odown: rel(firstOf('+odown')?.at),
      electedLeader: rel(firstOf('+elected-leader')?.at), leader: firstOf('+elected-leader')?.sentinel ?? null,
      promotion: rel(firstOf('+failover-state-wait-promotion')?.at), // REPLICAOF NO ONE answered: the new master takes writes
      promoted: rel(firstOf('+promoted-slave')?.at),
      switchMaster: rel(switchAt), switchFrom: sw.sentinel,
      switchMasterProxySentinel: rel(firstOf('+switch-master', res.proxySentinel)?.at),
      switchMasterEach: Object.fromEntries(sentinels.map((s) => [s.address, rel(firstOf('+switch-master', s.address)?.at)])),
    };
    const moved = masterSeen.find((x) => x.addr === res.newMaster);
    res.timeline.proxyInfoSwitch = rel(moved?.at);
    res.leaderFollowed = res.timeline.leader != null && res.timeline.leader === res.proxySentinel;
    res.masterSeen = masterSeen.map((x) => ({ ...x, at: rel(x.at), sent: rel(x.sent) }));

    // Writes.
    // The first write on the new master: the first write sent after the promotion
    // (REPLICAOF NO ONE answered; the harness hears of it a little after) that was
    // acknowledged and is in the final lineage. A write sent after the promotion either
    // went to the new master or, sent to the old one, is not in the lineage (lost).
    const promotionAt = firstOf('+failover-state-wait-promotion')?.at ?? switchAt;
    let firstWrite = Infinity;
    const lostAcks = [];
    res.writers = W.map((wr) => {
      const F = Number(finals[wr.w] ?? 0);
      const lin = writerLineage(wr.acks, F);
      const after = lin.kept.find((a) => a.sentAt >= promotionAt);
      lostAcks.push(...lin.lostAcks);
      if (after) firstWrite = Math.min(firstWrite, after.doneAt);
      const values = new Map();
      for (const a of wr.acks) values.set(a.value, (values.get(a.value) ?? 0) + 1);
      return {
        w: wr.w, sent: wr.sent, acked: wr.acks.length, errors: wr.errors.length, failures: wr.failures.length,
        final: F, maxAcked: wr.acks.length ? Math.max(...wr.acks.map((a) => a.value)) : 0,
        overCount: Math.max(0, F - wr.sent), // F above the INCRs sent: a write applied twice
        lost: lin.lost, valueWentBack: lin.drops,
        valuesAckedTwice: [...values.values()].filter((c) => c > 1).length,
        firstNewLineageAck: lin.lineageStart > 0 ? rel(wr.acks[lin.lineageStart].doneAt) : null,
      };
    });
    res.firstWriteAfterSwitchMs = Number.isFinite(firstWrite) ? firstWrite - switchAt : null;
    res.firstWriteFromStartMs = Number.isFinite(firstWrite) ? firstWrite - t0 : null;
    // Longest stretch without an acknowledged write that is in the final data, from the start on.
    const keptTimes = res.writers.length ? W.flatMap((wr) => writerLineage(wr.acks, Number(finals[wr.w] ?? 0)).kept.map((a) => a.doneAt)).filter((x) => x >= t0).sort((a, b) => a - b) : [];
    let gap = 0;
    let gapFrom = t0;
    let prevAt = t0;
    for (const x of [...keptTimes, tEnd]) { if (x - prevAt > gap) { gap = x - prevAt; gapFrom = prevAt; } prevAt = x; }
    res.writeGapMs = gap;
    res.writeGapFromMs = gapFrom - t0;
    const wErr = W.flatMap((x) => [...x.errors, ...x.failures]);
    res.writes = {
      sent: sum(W.map((x) => x.sent)), sentBefore: before.sent, acked: sum(W.map((x) => x.acks.length)),
      errors: wErr.length, errorKinds: tally(wErr.map((e) => generic(e.text))), errorCounts: countTexts(wErr.map((e) => generic(e.text))),
      errorWindow: wErr.length ? [rel(Math.min(...wErr.map((e) => e.at))), rel(Math.max(...wErr.map((e) => e.at)))] : null,
      lost: sum(res.writers.map((x) => x.lost)),
      lostWindow: lostAcks.length ? [rel(Math.min(...lostAcks.map((a) => a.sentAt))), rel(Math.max(...lostAcks.map((a) => a.doneAt)))] : null,
      overCount: sum(res.writers.map((x) => x.overCount)),
      writersOverCount: res.writers.filter((x) => x.overCount > 0).length,
      valuesAckedTwice: sum(res.writers.map((x) => x.valuesAckedTwice)),
      drops: sum(loops.slice(0, FAILOVER.writers).map((l) => l.state.drops.length)),
    };
    const rErr = [...reads.errors, ...reads.failures, ...reads.wrong];
    res.reads = {
      n: reads.n, ok: reads.ok, errors: reads.errors.length, failures: reads.failures.length, wrong: reads.wrong.length,
      errorKinds: tally(rErr.map((e) => generic(e.text))), errorCounts: countTexts(rErr.map((e) => generic(e.text))),
      masterUnreachable: reads.errors.filter((e) => /master .* is unreachable/i.test(e.text)).length,
      errorWindow: rErr.length ? [rel(Math.min(...rErr.map((e) => e.at))), rel(Math.max(...rErr.map((e) => e.at)))] : null,
      drops: sum(loops.slice(FAILOVER.writers).map((l) => l.state.drops.length)),
    };
    res.loadMs = tEnd - t0;
    log(`[${label}] +switch-master at ${ms(res.timeline.switchMaster)} (proxy's Sentinel ${ms(res.timeline.switchMasterProxySentinel)}, INFO proxy moved ${ms(res.timeline.proxyInfoSwitch)}); first write ${ms(res.firstWriteAfterSwitchMs)} after it; writes ${res.writes.acked}/${res.writes.sent} acked, ${res.writes.errors} errors, ${res.writes.lost} lost, ${res.writes.overCount} over-counted; reads ${reads.n}, ${rErr.length} failed (${res.reads.masterUnreachable} causal)`);
  } catch (e) {
    res.error = e.message;
    log(`!! [${label}] ${e.stack ?? e.message}`);
  } finally {
    stopLoad = true;
    await Promise.all(loops.map((l) => l.done.catch(() => {})));
    for (const c of conns) c.close();
    for (const s of subs) s.close();
    if (proxy) {
      const entries = proxyLog(proxy.logFile);
      const origin = wall0 ?? entries[0]?.t ?? Date.now();
      res.proxyLog = {
        warningCount: entries.filter(isWarn).length,
        // What the proxy said from the failover on: every line at info and above (there are few), capped.
        lines: entries.filter((e) => wall0 === null || e.t >= wall0 - 50 || isWarn(e)).map((e) => logLine(e, origin)).slice(0, 60),
        moved: (() => { const e = entries.find((x) => /^master moved/.test(x.msg ?? '') && wall0 !== null && x.t >= wall0); return e ? { at: e.t - wall0, reason: e.reason } : null; })(),
        alive: proxy.child.alive(),
        exit: proxy.child.exitInfo(),
      };
    }
    await stopAll();
    keepLogs(opts, dir, label);
  }
  return res;
}

async function failoverPart(tmp, opts) {
  const out = [];
  for (const s of opts.sets) {
    const rounds = [];
    for (let r = 1; r <= opts.rounds; r++) {
      log(`[failover] ${s.title}, round ${r}/${opts.rounds} ...`);
      rounds.push(await failoverRound(tmp, opts, s.kind, s.causal, r));
    }
    out.push({ ...s, rounds, summary: summarise(rounds) });
  }
  return out;
}

function summarise(rounds) {
  const done = rounds.filter((r) => !r.error);
  const first = done.map((r) => r.firstWriteAfterSwitchMs);
  return {
    rounds: rounds.length, completed: done.length,
    firstWriteP50: pctl(first, 50), firstWriteMax: maxOf(first),
    firstWriteMissing: done.filter((r) => r.firstWriteAfterSwitchMs == null).length,
    fromStartP50: pctl(done.map((r) => r.firstWriteFromStartMs), 50), fromStartMax: maxOf(done.map((r) => r.firstWriteFromStartMs)),
    switchP50: pctl(done.map((r) => r.timeline.switchMaster), 50),
    gapP50: pctl(done.map((r) => r.writeGapMs), 50), gapMax: maxOf(done.map((r) => r.writeGapMs)),
    writeErrors: sum(done.map((r) => r.writes.errors)),
    writeErrorKinds: tallyCounts(done.map((r) => r.writes.errorCounts), 8),
    readErrorKinds: tallyCounts(done.map((r) => r.reads.errorCounts), 8),
    lost: sum(done.map((r) => r.writes.lost)),
    overCount: sum(done.map((r) => r.writes.overCount)),
    valuesAckedTwice: sum(done.map((r) => r.writes.valuesAckedTwice)),
    reads: sum(done.map((r) => r.reads.n)),
    readErrors: sum(done.map((r) => r.reads.errors + r.reads.failures + r.reads.wrong)),
    readMasterUnreachable: sum(done.map((r) => r.reads.masterUnreachable)),
    drops: sum(done.map((r) => r.writes.drops + r.reads.drops)),
    proxyWarnings: sum(rounds.map((r) => r.proxyLog?.warningCount ?? 0)),
  };
}

// ---- report --------------------------------------------------------------------------

function reloadTables(res) {
  const out = [];
  const b = res.baseline;
  const w = res.withReloads;
  const row = (name, x) => [name, fmtInt(x.bench.rows.SET?.rps), fmtInt(x.bench.rows.GET?.rps),
    fmt(x.bench.rows.SET?.p99ms, 3), fmt(x.bench.rows.GET?.p99ms, 3), fmt(x.bench.rows.GET?.maxms, 1),
    `${x.bench.code}${x.bench.timedOut ? ' (killed)' : ''}`, fmtInt(x.bench.errorLines.length), fmtInt(x.bench.dropLines.length),
    `${fmtInt(x.watch.requests)} / ${x.watch.errors} / ${x.watch.drops}`, x.gets.map(fmtInt).join(' / '),
    `${x.generationBefore} → ${x.generationAfter}`, `${fmt(x.otherCpuPct, 1)}%`];
  out.push(mdTable([
    ['run', 'l'], ['SET ops/s', 'r'], ['GET ops/s', 'r'], ['SET p99 ms', 'r'], ['GET p99 ms', 'r'], ['GET max ms', 'r'],
    ['redis-benchmark exit', 'r'], ['error lines (-e)', 'r'], ['drop lines', 'r'],
    ['harness conns: requests / errors / drops', 'r'], ['GETs on master / R1 / R2 / R3', 'r'], ['config_generation', 'r'], ['other processes\' CPU', 'r'],
  ], [row('no reloads', b), row(`${w.reloads.length} reloads`, w), ...(res.baseline2 ? [row('no reloads, again', res.baseline2)] : [])]));
  out.push('');
  out.push(mdTable([
    ['#', 'r'], ['at s', 'r'], ['replicas:weight', 'l'], ['during load', 'l'], ['applied', 'l'], ['SIGHUP → INFO shows it', 'r'],
    ['result', 'l'], ['sessions before → after', 'r'], ['replicas in INFO (port:state)', 'l'],
  ], w.reloads.map((r) => [r.n, fmt(r.at / 1000, 2), r.spec, r.duringLoad ? 'yes' : 'no', r.applied ? 'yes' : '**no**', ms(r.applyMs),
    r.result, `${r.sessionsBefore} → ${r.sessionsAfter}`, r.replicas])));
  return out.join('\n');
}

function scaleTable(s) {
  return mdTable([
    ['#', 'r'], ['SIGHUP → first GET on the new replica', 'r'], ['last poll without a GET', 'r'], ['GETs at first sight', 'r'], ['"config reloaded" logged', 'r'],
  ], s.reps.map((r) => [r.rep, ms(r.firstGetMs), ms(r.lastPollWithoutMs), fmtInt(r.getsAtFirstSight), ms(r.reloadLoggedMs)]));
}

function failoverTable(set) {
  return mdTable([
    ['round', 'r'], ['proxy follows the leader', 'l'], ['promotion', 'r'], ['+switch-master', 'r'], ['proxy moved (log)', 'r'], ['INFO shows new master', 'r'],
    ['first write on the new master, from +switch-master', 'r'], ['start → first write', 'r'], ['longest write gap', 'r'],
    ['writes acked / sent', 'r'], ['write errors', 'r'], ['lost acked', 'r'], ['over-count', 'r'],
    ['reads', 'r'], ['read errors', 'r'], ['conn drops', 'r'],
  ], set.rounds.map((r) => (r.error
    ? [r.round, `error: ${r.error.split('\n')[0].slice(0, 200)}`, '', '', '', '', '', '', '', '', '', '', '', '', '', '']
    : [r.round, r.leaderFollowed ? 'yes' : 'no', ms(r.timeline.promotion), ms(r.timeline.switchMaster),
      r.proxyLog?.moved ? `${ms(r.proxyLog.moved.at)} (${String(r.proxyLog.moved.reason ?? '').replace(/^sentinel /, '')})` : '–', ms(r.timeline.proxyInfoSwitch),
      ms(r.firstWriteAfterSwitchMs), ms(r.firstWriteFromStartMs), `${ms(r.writeGapMs)} (from ${ms(r.writeGapFromMs)})`,
      `${fmtInt(r.writes.acked)} / ${fmtInt(r.writes.sent)}`, fmtInt(r.writes.errors), fmtInt(r.writes.lost), fmtInt(r.writes.overCount),
      fmtInt(r.reads.n), fmtInt(r.reads.errors + r.reads.failures + r.reads.wrong), fmtInt(r.writes.drops + r.reads.drops)])));
}

/** What a read error naming the master as unreachable means under causalReads `causal`. */
function unreachableMeaning(causal) {
  return causal === 'none'
    ? 'with causalReads "none" a read goes to the master only when the router has no healthy replica (readPolicy prefer-replica), so these reads found none while the master was down'
    : 'either a causal read that only the master could serve, or a read that found no healthy replica (see the proxy\'s log)';
}

function failoverDetails(set) {
  const out = [];
  for (const r of set.rounds) {
    if (r.error) { out.push(`Round ${r.round}: **not run to the end**: ${r.error.split('\n')[0]}`); continue; }
    const t = r.timeline;
    const parts = [
      `Round ${r.round}: ${r.kind === 'failover' ? `SENTINEL FAILOVER sent to ${r.failoverSentTo} (${r.failoverReply}); ` : ''}proxy followed ${r.proxySentinel}; `
      + `Sentinel events: ${t.sdown != null ? `+sdown ${ms(t.sdown)}, ` : ''}${t.odown != null ? `+odown ${ms(t.odown)}, ` : ''}+elected-leader ${ms(t.electedLeader)} (${t.leader ?? '?'}), +failover-state-wait-promotion ${ms(t.promotion)}, +promoted-slave ${ms(t.promoted)}, +switch-master ${Object.entries(t.switchMasterEach).map(([a, x]) => `${a.split(':')[1]} ${ms(x)}`).join(', ')}; `
      + `new master ${r.newMaster} (role:${r.finalRole}).`,
    ];
    if (r.writes.errors) parts.push(`Write errors (${ms(r.writes.errorWindow[0])} to ${ms(r.writes.errorWindow[1])}): ${r.writes.errorKinds}.`);
    if (r.writes.lost || r.writes.valuesAckedTwice) parts.push(`Lost acknowledged writes: ${r.writes.lost}, sent from ${ms(r.writes.lostWindow?.[0])}, acknowledged up to ${ms(r.writes.lostWindow?.[1])} (${r.writers.filter((x) => x.lost).map((x) => `c:${x.w} final ${x.final}, max acked ${x.maxAcked}, lost ${x.lost}`).join('; ')}); values acknowledged twice: ${r.writes.valuesAckedTwice}.`);
    if (r.writes.overCount) parts.push(`**Over-count (a write applied twice)**: ${r.writers.filter((x) => x.overCount).map((x) => `c:${x.w} final ${x.final} > ${x.sent} sent`).join('; ')}.`);
    const rErr = r.reads.errors + r.reads.failures + r.reads.wrong;
    if (rErr) parts.push(`Read errors (${ms(r.reads.errorWindow[0])} to ${ms(r.reads.errorWindow[1])}): ${r.reads.errorKinds}${r.reads.masterUnreachable ? ` — ${r.reads.masterUnreachable} of them name the master as unreachable: ${unreachableMeaning(r.causal)}` : ''}.`);
    out.push(parts.join(' '));
  }
  return out;
}

function verdictLines(report) {
  const lines = [];
  const rl = report.reload;
  if (rl && !rl.error) {
    const w = rl.withReloads;
    const applied = w.generationAfter - w.generationBefore;
    const drops = w.watch.drops + w.bench.dropLines.length + (w.bench.code !== 0 ? 1 : 0);
    const errors = w.watch.errors + w.bench.errorLines.length;
    const bases = [rl.baseline, rl.baseline2].filter(Boolean);
    const baseRps = (t) => (bases.every((x) => x.bench.rows[t]?.rps) ? sum(bases.map((x) => x.bench.rows[t].rps)) / bases.length : null);
    const ratio = (t) => (w.bench.rows[t]?.rps && baseRps(t) ? w.bench.rows[t].rps / baseRps(t) : null);
    lines.push({ figure: `reload under load: ${report.settings.reloads} reloads`, result: `${applied} applied (all ok: ${w.reloads.every((r) => r.result === 'ok') ? 'yes' : 'no'}), ${w.reloads.filter((r) => r.duringLoad).length} during the load; dropped connections ${drops}; error replies ${errors}; throughput vs no reloads${bases.length > 1 ? ' (mean of the runs before and after)' : ''} SET ${fmt(ratio('SET'), 2)}x, GET ${fmt(ratio('GET'), 2)}x`, goal: '0 dropped, 0 errors', pass: applied === report.settings.reloads && drops === 0 && errors === 0 && Boolean(w.bench.rows.SET && w.bench.rows.GET) });
  } else if (rl) lines.push({ figure: 'reload under load', result: `not run to the end: ${rl.error.split('\n')[0]}`, goal: '0 dropped, 0 errors', pass: false });
  const sc = rl?.scale;
  if (sc) {
    const xs = sc.reps.map((r) => r.firstGetMs);
    lines.push({ figure: 'scaling reads: SIGHUP → first GET on an added replica', result: `${xs.map((x) => ms(x)).join(', ')}; max ${ms(maxOf(xs))}; read errors meanwhile ${sc.reads.errors}`, goal: `each < ${SCALE.goalMs} ms (one health-check interval)`, pass: xs.length > 0 && xs.every((x) => x != null && x < SCALE.goalMs) && sc.reads.errors === 0 });
  }
  for (const set of report.failover ?? []) {
    const s = set.summary;
    lines.push({ figure: `${set.title}: +switch-master → first write on the new master`, result: `p50 ${ms(s.firstWriteP50)}, max ${ms(s.firstWriteMax)} (${s.completed}/${s.rounds} rounds)`, goal: `p50 < ${FAILOVER.goalP50Ms} ms, max < ${FAILOVER.goalMaxMs} ms`, pass: s.completed === s.rounds && s.firstWriteMissing === 0 && s.firstWriteP50 < FAILOVER.goalP50Ms && s.firstWriteMax < FAILOVER.goalMaxMs });
    lines.push({ figure: `${set.title}: read errors (a replica up throughout)`, result: `${fmtInt(s.readErrors)} of ${fmtInt(s.reads)}${s.readMasterUnreachable ? ` (${s.readMasterUnreachable} name the master as unreachable${set.causal === 'none' ? ': no healthy replica, fell back to the dead master' : ''})` : ''}`, goal: '0', pass: s.completed === s.rounds && s.readErrors === 0 });
    lines.push({ figure: `${set.title}: writes applied twice`, result: `over-count ${s.overCount}`, goal: '0', pass: s.completed === s.rounds && s.overCount === 0 });
    lines.push({ figure: `${set.title}: start → first write; write errors; lost acked writes`, result: `p50 ${ms(s.fromStartP50)}, max ${ms(s.fromStartMax)}; ${fmtInt(s.writeErrors)} errors; ${fmtInt(s.lost)} lost (${done(set).map((r) => r.writes.lost).join(', ')} per round)`, goal: 'measured', pass: null });
  }
  return lines;
}

const done = (set) => set.rounds.filter((r) => !r.error);

function summaryTable(lines) {
  return mdTable([['figure', 'l'], ['result', 'l'], ['goal', 'l'], ['', 'l']], lines.map((l) => [l.figure, l.result, l.goal, l.pass === null ? '' : mark(l.pass)]));
}

function markdown(report) {
  const out = [];
  out.push(`# redis-proxy: live topology — ${report.startedAt}`, '');
  out.push('## Machine', '');
  for (const [k, v] of Object.entries(report.machine)) out.push(`- ${k}: ${v}`);
  out.push('', '## Settings', '');
  for (const [k, v] of Object.entries(report.settings)) out.push(`- ${k}: ${v}`);
  out.push('', '## Summary', '', summaryTable(report.verdict), '');

  const rl = report.reload;
  if (rl) {
    out.push('## Reload under load', '');
    out.push(`Master, 3 replicas (R1–R3), the proxy with listener \`${JSON.stringify(rl.listener ?? {})}\` (healthCheckInterval default 1000, logLevel info). \`redis-benchmark -c ${RELOAD.clients} -n ${report.settings.requests} -t set,get -r ${RELOAD.keyspace} -e --csv\` through the proxy after one unmeasured warm-up run: first without reloads, then with ${report.settings.reloads} reloads spread evenly over the first ${RELOAD.spread * 100}% of the first run's duration${rl.baseline2 ? ', then once more without reloads' : ''}: each rewrites the config file (the replica set of the row, \`R<i>:<weight>\`) and sends SIGHUP; the next waits until INFO proxy shows the generation. Alongside, ${RELOAD.watchers} connections of the harness (2 GET, 2 SET, one request every ${RELOAD.watchEveryMs} ms each) stay open from before the first reload to after the last: redis-benchmark opens new connections per test, these span the whole run and count every error exactly. redis-benchmark 7.0 ignores \`-e\` (it prints "-e option has no effect. We now immediately exit on error to avoid false results"): it exits with status 1 at the first error reply ("Error from server: …") and at the first connection the server closes ("Error: …"), so exit 0 with both CSV rows means no error reply and no dropped connection among its clients. "sessions" (INFO proxy) includes the harness's ${RELOAD.watchers} and its INFO connection.`, '');
    if (rl.error) out.push(`**not run to the end: ${rl.error.split('\n')[0]}**`, '');
    if (rl.withReloads) {
      out.push(reloadTables(rl), '');
      const w = rl.withReloads;
      if (w.bench.errorLines.length) out.push(`- redis-benchmark error lines: ${tally(w.bench.errorLines)}`);
      if (w.bench.stderr.length) out.push(`- redis-benchmark stderr: ${tally(w.bench.stderr)}`);
      if (w.watch.errors) out.push(`- harness connections' errors: ${w.watch.errorKinds}`);
      if (w.watch.drops) out.push(`- harness connections dropped: ${w.watch.dropKinds}`);
      out.push(`- INFO proxy after the run: sessions ${w.sessionsAfterLoad} (the INFO connection and the harness's connections had closed except the INFO one), last reload result \`${w.lastResult}\`; nodes: ${w.endNodes.map((x) => `\`${x}\``).join(', ')}`);
    }
    if (rl.proxyLog) out.push(`- proxy log: ${rl.proxyLog.lines} lines, ${rl.proxyLog.warningCount} at warn or above${rl.proxyLog.alive ? '' : ` (**the proxy exited**: ${JSON.stringify(rl.proxyLog.exit)})`}${rl.proxyLog.warningCount ? `:\n\n  \`\`\`\n${rl.proxyLog.warnings.map((l) => `  ${l}`).join('\n')}\n  \`\`\`` : ''}`);
    out.push('');
  }
  if (rl?.scale) {
    const s = rl.scale;
    out.push('## Scaling reads: a replica added by reload', '');
    out.push(`On the same proxy after the reload runs (replicas R1, R2; healthCheckInterval 1000). Per repetition a fresh replica is started and synced, the config gets it as a third replica (weight 1) and the proxy SIGHUP; meanwhile ${SCALE.readers} connections each GET one of 100 keys every ${SCALE.readEveryMs} ms. The new replica's \`INFO commandstats\` is polled every ${SCALE.pollEveryMs} ms on its own connection: the first poll showing \`cmdstat_get\` gives the time (an upper bound; the previous poll, without, a lower one). Then the replica is removed again by reload and stopped.`, '');
    out.push(scaleTable(s), '');
    out.push(`- reads meanwhile: ${fmtInt(s.reads.n)}, errors ${s.reads.errors}${s.reads.errors ? ` (${s.reads.errorKinds})` : ''}, connection drops ${s.reads.drops}`, '');
  }
  for (const set of report.failover ?? []) {
    out.push(`## Sentinel failover: ${set.title}`, '');
    out.push(describeFailover(set), '');
    out.push(failoverTable(set), '');
    const s = set.summary;
    out.push(`Over the rounds: +switch-master → first write on the new master p50 ${ms(s.firstWriteP50)}, max ${ms(s.firstWriteMax)}; start → first write p50 ${ms(s.fromStartP50)}, max ${ms(s.fromStartMax)}; longest write gap p50 ${ms(s.gapP50)}, max ${ms(s.gapMax)}; write errors ${s.writeErrors}${s.writeErrors ? ` (${s.writeErrorKinds})` : ''}; lost acknowledged writes ${s.lost}; over-count ${s.overCount}; values acknowledged twice ${s.valuesAckedTwice}; read errors ${s.readErrors} of ${fmtInt(s.reads)}${s.readErrors ? ` (${s.readErrorKinds})` : ''}${s.readMasterUnreachable ? ` (${s.readMasterUnreachable} name the master as unreachable)` : ''}; connection drops ${s.drops}; proxy log lines at warn or above ${s.proxyWarnings}.`, '');
    for (const l of failoverDetails(set)) out.push(`- ${l}`);
    const example = set.rounds.find((r) => !r.error && (r.reads.errors || r.reads.failures || r.reads.wrong || r.writes.overCount || r.writes.drops || r.reads.drops)) ?? set.rounds.find((r) => !r.error) ?? set.rounds[0];
    if (example?.proxyLog) {
      out.push('', `The proxy's log in round ${example.round} (info and above, ms from the failover's start; fields shortened):`, '', '```');
      for (const l of example.proxyLog.lines.slice(0, 30)) out.push(l);
      out.push('```');
    }
    for (const r of set.rounds) if (r.proxyLog && !r.proxyLog.alive) out.push('', `**Round ${r.round}: the proxy exited** (${JSON.stringify(r.proxyLog.exit)}).`);
    out.push('');
  }
  out.push('## Notes', '');
  for (const n of report.notes) out.push(`- ${n}`);
  out.push('');
  return out.join('\n');
}

function describeFailover(set) {
  return `Per round, fresh processes: a master and 2 replicas (\`--repl-diskless-sync-delay 0\`), ${FAILOVER.keys} keys \`r:<i>\` written on the master and replicated (WAIT 2), 3 Sentinels (quorum 2, down-after-milliseconds ${FAILOVER.downAfterMs}, failover-timeout ${FAILOVER.failoverTimeoutMs}, parallel-syncs 1), then the proxy with the listener \`{"sentinel": {"masterName": "${MASTER_NAME}", "nodes": [the 3]}${set.causal ? `, "causalReads": "${set.causal}"` : ''}}\` (causalReads ${set.causal ? `"${set.causal}"` : 'default "global"'}, logLevel info). Load through the proxy: ${FAILOVER.readers} readers (GET r:<i>, must return v<i>) and ${FAILOVER.writers} writers (INCR c:<writer>), each on its own connection, in a closed loop (next request after the reply, at most one per ${FAILOVER.everyMs} ms). After ${FAILOVER.warmMs} ms: ${set.kind === 'failover' ? '`SENTINEL FAILOVER mymaster`, in odd rounds sent to a Sentinel the proxy does not follow, in even rounds to the one it follows (which then leads the failover)' : '`kill -9` of the master (nothing is restarted)'}; the load goes on until ${FAILOVER.afterMs} ms after the first write acknowledged after +switch-master. The harness subscribes to all three Sentinels (PSUBSCRIBE *). "proxy follows the leader": the Sentinel that published +elected-leader is the one INFO proxy names in sentinel_in_use. "promotion": the leader's +failover-state-wait-promotion (its REPLICAOF NO ONE was answered: from here on the new master takes writes). "+switch-master": the earliest of the three; the leader publishes its own only at +failover-end, after the other replica was reconfigured, about 1 s later than the other two, which take the new configuration from the leader's hello messages. "proxy moved (log)": the proxy's "master moved" log line and the Sentinel event it acted on. "INFO shows new master": INFO proxy polled every ${FAILOVER.infoEveryMs} ms through the proxy. A write counts as successful when it was acknowledged and its value is in the final master's lineage (see Notes); "first write on the new master": the first such write among those sent after the promotion (a write sent after it either reached the new master or, sent to the old one, is lost), in ms from +switch-master (negative: before it); "longest write gap": the longest time from the start on without such a write. "lost acked": acknowledged writes whose value is not in the final counter; "over-count": final counter above the INCRs the writer sent (a write applied twice). Times in ms from the failover's start unless said otherwise.`;
}

// ---- the run ---------------------------------------------------------------------------

async function main() {
  const opts = options();
  const startedAt = new Date();
  const t0 = performance.now();
  const machineAtStart = machineInfo(ROOT);
  const loadAtStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const otherCpuSinceStart = otherCpuMeter();
  const { tmp, cleanup } = runScope('redis-proxy-topology-', log);
  const report = {
    startedAt: startedAt.toISOString(),
    machine: {},
    settings: {
      parts: opts.parts.join(', '),
      'failover sets': opts.sets.map((x) => x.key).join(', '),
      quick: opts.quick ? 'yes' : 'no',
      reloads: opts.reloads,
      requests: opts.requests,
      rounds: `${opts.rounds} (scale repetitions; failover rounds per kind)`,
      redis: '--save "" --appendonly no',
      proxy: 'bin/redis-proxy, logLevel info, healthCheckInterval default (1000)',
    },
    reload: null,
    failover: null,
    notes: [],
  };
  let otherCpu = null;
  try {
    log(`temp dir ${tmp}`);
    if (opts.parts.includes('reload') || opts.parts.includes('scale')) {
      if (!opts.parts.includes('reload')) throw new Error('--parts scale needs reload (it runs on the same processes)');
      log('[reload] ...');
      report.reload = await reloadPart(tmp, opts);
    }
    if (opts.parts.includes('failover')) report.failover = await failoverPart(tmp, opts);
  } finally {
    otherCpu = otherCpuSinceStart();
    await cleanup();
  }
  const wallS = (performance.now() - t0) / 1000;
  report.finishedAt = new Date().toISOString();
  report.machine = { ...machineAtStart, 'load average at start (1/5/15 min)': loadAtStart, 'other processes\' CPU during the run': `${otherCpu.toFixed(1)}% of all cores`, 'run time': `${wallS.toFixed(0)} s` };
  const machineNow = machineInfo(ROOT);
  if (machineNow['dist/cli.js built'] !== machineAtStart['dist/cli.js built']) report.notes.push(`dist/cli.js was rebuilt during the run (at ${machineNow['dist/cli.js built']}).`);
  if (opts.proxyBin) report.notes.push(`redis-proxy was started from ${opts.proxyBin}, not bin/redis-proxy.`);
  report.notes.push(
    'Final-master lineage (failover): each writer INCRs its own counter one at a time, so the values it gets back rise by one per write. A new master continues from the value it had replicated; when the proxy wrote to the old master after the promotion (or the old master acknowledged writes it had not replicated), the values go back at the switch. The acknowledged writes from the last such step on (with a value up to the final counter), and the earlier ones below the value it went back to, are in the final data; the other acknowledged writes are "lost". A final counter above the INCRs a writer sent would mean a write applied twice ("over-count").',
    'In the SENTINEL FAILOVER rounds the old master stays up and writable (Sentinel reconfigures it as a replica some seconds after +switch-master, after the round): writes the proxy sends it after the promotion are acknowledged and lost. With kill -9 the old master is gone; writes acknowledged by it but not yet replicated are lost.',
    `Timings are taken in the harness, which shares the machine's ${os.availableParallelism()} cores with Redis, the Sentinels, redis-benchmark and the proxy; a few ms are scheduling noise. Other processes (not started by the harness) used ${otherCpu.toFixed(1)}% of the machine's CPU during the run.`,
  );
  report.verdict = verdictLines(report);
  const md = markdown(report);
  const dated = writeReport({ out: opts.out, json: opts.json, prefix: 'topology-' }, report, md);

  // Console: the tables.
  const w = process.stdout;
  if (report.reload?.withReloads) w.write(`\nReload under load\n${reloadTables(report.reload)}\n`);
  if (report.reload?.scale) w.write(`\nScaling reads\n${scaleTable(report.reload.scale)}\n`);
  for (const set of report.failover ?? []) {
    w.write(`\nSentinel failover: ${set.title}\n${failoverTable(set)}\n`);
    for (const l of failoverDetails(set)) w.write(`- ${l}\n`);
  }
  w.write(`\nSummary\n${summaryTable(report.verdict)}\n`);
  w.write(`\nrun time ${wallS.toFixed(0)} s; wrote ${path.relative(process.cwd(), dated)}, topology-latest.md, ${path.relative(process.cwd(), opts.json)}\n`);
}

main().catch((e) => {
  log(`topology bench failed: ${e.stack ?? e.message}`);
  process.exitCode = 1;
});

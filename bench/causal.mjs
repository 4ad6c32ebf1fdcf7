#!/usr/bin/env node
// Causal-reads benchmark: how often a read through redis-proxy misses a write that was
// already acknowledged, and what each `causalReads` mode costs.
//
//   node bench/causal.mjs [--modes none,session,global] [--pairs 200000] [--seconds 10]
//                         [--replica-delay MS] [--out bench/results]
//
// Per mode it starts a Redis master and one replica (optionally behind a relay that
// delays the replication stream), the built proxy (dist/) with the listener key
// `causalReads` set to the mode, runs five workloads through it (loop, two-conn,
// session-store, cache, offload), counts stale reads, measures throughput, where the
// GETs executed and the ROLE/INFO traffic on each Redis, and stops everything. It writes
// causal-<date>.md, causal-latest.md and causal-latest.json. See bench/README.md.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { command, parseInfo } from './lib/resp.mjs';
import { Conn, openPool } from './lib/conn.mjs';
import { startRelay } from './lib/relay.mjs';
import { start, stopAll, freePort, waitUntil, sleep, clockTicks, processTree, cpuTicks } from './lib/procs.mjs';
import { mdTable, fmtInt, median } from './lib/report.mjs';
import { startRedis, proxyConfig, launchProxy, sanityCheck, tail, runScope, otherCpuMeter, machineInfo, writeReport } from './lib/setup.mjs';
import { harnessOptions } from './lib/options.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ALL_MODES = ['none', 'session', 'global', 'ryw'];
const DEFAULT_MODES = ['none', 'session', 'global'];
const WORKLOADS = ['loop', 'two-conn', 'session-store', 'cache', 'offload'];
const CLK_TCK = clockTicks();

const USAGE = `usage: node bench/causal.mjs [options]

  --modes LIST          comma list out of ${ALL_MODES.join(',')} (default ${DEFAULT_MODES.join(',')});
                        none/session/global set the listener key "causalReads",
                        ryw sets "readYourWrites": true (today's option, for comparison)
  --workloads LIST      comma list out of ${WORKLOADS.join(',')} (default all)
  --pairs N             write+read pairs in loop, two-conn and cache, logins in
                        session-store (default 200000)
  --seconds S           duration of offload (default 10)
  --clients N           offload's connections (default 50)
  --replica-delay MS    hold the master->replica stream for MS ms in a relay (default 0:
                        the replica connects to the master directly)
  --out DIR             where causal-<date>.md and causal-latest.md go (default bench/results)
  --json FILE           machine-readable results (default <out>/causal-latest.json)
  --proxy-bin FILE      Node script started as the proxy (default bin/redis-proxy,
                        which loads dist/cli.js); it gets the config file path as argument
  -h, --help            this text
`;

function options() {
  const { values, number, list, out, json, proxyBin } = harnessOptions({
    usage: USAGE,
    json: 'causal-latest.json',
    own: {
      modes: { type: 'string', default: DEFAULT_MODES.join(',') },
      workloads: { type: 'string', default: WORKLOADS.join(',') },
      pairs: { type: 'string', default: '200000' },
      seconds: { type: 'string', default: '10' },
      clients: { type: 'string', default: '50' },
      'replica-delay': { type: 'string', default: '0' },
    },
  });
  return {
    modes: list('modes', values.modes, ALL_MODES),
    workloads: list('workloads', values.workloads, WORKLOADS),
    pairs: number('pairs', values.pairs, 1),
    seconds: number('seconds', values.seconds, 0.1, false),
    clients: number('clients', values.clients, 1),
    delayMs: number('replica-delay', values['replica-delay'], 0, false),
    out,
    json,
    proxyBin,
  };
}

const log = (msg) => process.stderr.write(`${msg}\n`);

// ---- setup -----------------------------------------------------------------------

/** The listener keys a mode sets; `fallback` is what `none` uses when the build rejects causalReads. */
function modeKeys(mode) {
  if (mode === 'ryw') return { key: 'readYourWrites', settings: { readYourWrites: true } };
  return { key: 'causalReads', settings: { causalReads: mode }, fallback: mode === 'none' ? {} : null };
}

/**
 * Starts the proxy with one listener (master + replica) and `settings` merged into it.
 * Resolves { child, config } or { rejected: 'log line' } when the proxy exited at start
 * and its output names `key` (the build does not know the key or the value).
 */
async function startProxy(dir, port, masterPort, replicaPort, settings, key, proxyBin) {
  const config = proxyConfig(port, masterPort, replicaPort, settings);
  // Each start has its own config and log file, so a rejected first try does not show up
  // in the log of the fallback's run.
  const base = `proxy-${Object.keys(settings).join('-') || 'plain'}`;
  const conf = path.join(dir, `${base}.json`);
  fs.writeFileSync(conf, JSON.stringify(config, null, 2));
  const logFile = path.join(dir, `${base}.log`);
  try {
    const child = await launchProxy({ name: 'redis-proxy', root: ROOT, conf, logFile, port, proxyBin });
    return { child, config, logFile };
  } catch (e) {
    const out = tail(logFile, 30);
    if (key && out.includes(key)) {
      // "<config path>: listeners[0].causalReads: unknown key; allowed keys are …" -> "listeners[0].causalReads: unknown key"
      const line = (out.split('\n').find((l) => l.includes(key)) ?? out).trim();
      return { rejected: line.split(`${conf}: `).join('').replace(/; allowed keys are .*$/, '').slice(0, 300) };
    }
    throw new Error(`${e.message}${out ? `\n--- ${path.basename(logFile)} (tail) ---\n${out}\n---` : ''}`);
  }
}

/** How long a SET on the master takes to show on the replica (direct connections), ms. */
async function replicationDelay(masterPort, replicaPort, samples = 7) {
  const m = await Conn.open(masterPort);
  const r = await Conn.open(replicaPort);
  const out = [];
  try {
    for (let i = 0; i < samples; i++) {
      const v = `d${i}-${Date.now()}`;
      const t0 = performance.now();
      await m.call(['SET', 'causal:delay-probe', v]);
      while ((await r.call(['GET', 'causal:delay-probe'])) !== v) {
        if (performance.now() - t0 > 10000) throw new Error('replica did not apply a write within 10 s');
        await sleep(1);
      }
      out.push(performance.now() - t0);
    }
  } finally {
    m.close();
    r.close();
  }
  return median(out);
}

// ---- measuring -------------------------------------------------------------------

async function commandStats(port) {
  const info = parseInfo(await command(port, ['INFO', 'commandstats']));
  const calls = {};
  for (const [k, v] of Object.entries(info)) {
    if (!k.startsWith('cmdstat_')) continue;
    calls[k.slice(8)] = Number(/calls=(\d+)/.exec(v)?.[1] ?? 0);
  }
  return calls;
}

/** after - before per command; the INFO that took `before` is counted in `after` and taken out. */
function statsDelta(before, after) {
  const d = {};
  for (const [k, v] of Object.entries(after)) {
    const n = v - (before[k] ?? 0) - (k === 'info' ? 1 : 0);
    if (n > 0) d[k] = n;
  }
  return d;
}

/** Latencies in ms; percentiles at the end. */
class Latencies {
  constructor() { this.xs = []; }
  add(ms) { this.xs.push(ms); }
  summary() {
    if (!this.xs.length) return { p50ms: null, p99ms: null, maxms: null };
    const v = Float64Array.from(this.xs).sort();
    const at = (q) => v[Math.min(v.length - 1, Math.floor(q * v.length))];
    return { p50ms: at(0.5), p99ms: at(0.99), maxms: v[v.length - 1] };
  }
}

/** Fresh counters for one workload. */
function counters() {
  return { ops: 0, gets: 0, stale: 0, notFound: 0, errors: 0, firstErrors: [], lat: new Latencies() };
}
function error(c, what) {
  c.errors++;
  if (c.firstErrors.length < 3) c.firstErrors.push(typeof what === 'string' ? what : JSON.stringify(what));
}
/** A GET's reply against the value it must return. */
function checkRead(c, got, want) {
  c.gets++;
  if (got !== null && typeof got === 'object') error(c, got);
  else if (got === null) { c.stale++; c.notFound++; } else if (got !== want) c.stale++;
}
/** n tasks over at most `workers` concurrent workers; task(i) is awaited. */
async function parallel(n, workers, task) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(workers, n) }, async (_, w) => {
    for (let i; (i = next++) < n;) await task(i, w);
  }));
}
const randInt = (n) => Math.floor(Math.random() * n);

// ---- workloads -----------------------------------------------------------------------
// Each resolves counters; the caller measures time, commandstats and proxy CPU around it.

const workloads = {
  /** One connection: SET k v<i>, its reply, GET k; the GET must return v<i>. */
  async loop(port, opts) {
    const c = counters();
    const conn = await Conn.open(port);
    try {
      for (let i = 0; i < opts.pairs; i++) {
        const v = `v${i}`;
        const ok = await conn.call(['SET', 'causal:loop', v]);
        if (ok !== 'OK') { error(c, ok); continue; }
        const t = performance.now();
        const got = await conn.call(['GET', 'causal:loop']);
        c.lat.add(performance.now() - t);
        checkRead(c, got, v);
        c.ops++;
      }
    } finally { conn.close(); }
    return { ...c, unit: 'pairs' };
  },

  /** SET on connection A, after its reply GET on connection B. */
  async 'two-conn'(port, opts) {
    const c = counters();
    const [a, b] = await openPool(port, 2);
    try {
      for (let i = 0; i < opts.pairs; i++) {
        const v = `v${i}`;
        const ok = await a.call(['SET', 'causal:two', v]);
        if (ok !== 'OK') { error(c, ok); continue; }
        const t = performance.now();
        const got = await b.call(['GET', 'causal:two']);
        c.lat.add(performance.now() - t);
        checkRead(c, got, v);
        c.ops++;
      }
    } finally { a.close(); b.close(); }
    return { ...c, unit: 'pairs' };
  },

  /**
   * connect-redis: a login stores the session (SET sess:<id> <json> EX 86400), the next
   * request of the browser, served by another connection of the pool, loads it.
   * 8 concurrent users over a pool of 4 connections.
   */
  async 'session-store'(port, opts) {
    const c = counters();
    const pool = await openPool(port, 4);
    const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
    try {
      await parallel(opts.pairs, 8, async (i) => {
        const id = `${run}-${i}`;
        const json = JSON.stringify({
          cookie: { originalMaxAge: 86400000, expires: new Date(Date.now() + 86400000).toISOString(), secure: false, httpOnly: true, path: '/' },
          userId: `u${i}`, csrf: `t${i}`,
        });
        const ok = await pool[i % pool.length].call(['SET', `sess:${id}`, json, 'EX', '86400']);
        if (ok !== 'OK') { error(c, ok); return; }
        const t = performance.now();
        const got = await pool[(i + 1) % pool.length].call(['GET', `sess:${id}`]);
        c.lat.add(performance.now() - t);
        checkRead(c, got, json);
        c.ops++;
      });
    } finally { for (const p of pool) p.close(); }
    return { ...c, unit: 'logins' };
  },

  /**
   * keyv: overwrite `keyv:<k>` with {"value":…,"expires":null}, then GET it on another
   * connection of the pool. 1,000 keys split among 8 workers (one writer per key, so the
   * GET must return exactly what the worker wrote); pool of 4 connections.
   */
  async cache(port, opts) {
    const c = counters();
    const pool = await openPool(port, 4);
    const KEYS = 1000;
    const W = 8;
    const version = new Uint32Array(KEYS);
    try {
      await parallel(opts.pairs, W, async (i, w) => {
        const k = w + W * randInt(Math.floor(KEYS / W));
        const ver = ++version[k];
        const json = JSON.stringify({ value: { id: k, v: ver, name: `item ${k}`, tags: ['a', 'b'] }, expires: null });
        const a = randInt(pool.length);
        const ok = await pool[a].call(['SET', `keyv:${k}`, json]);
        if (ok !== 'OK') { error(c, ok); return; }
        const t = performance.now();
        const got = await pool[(a + 1 + randInt(pool.length - 1)) % pool.length].call(['GET', `keyv:${k}`]);
        c.lat.add(performance.now() - t);
        checkRead(c, got, json);
        c.ops++;
      });
    } finally { for (const p of pool) p.close(); }
    return { ...c, unit: 'pairs' };
  },

  /**
   * Read offload: `clients` connections, each closed-loop, 90% GET / 10% SET over 100,000
   * keys with values v<n> (per-key versions). A GET must return at least the highest
   * version whose SET was acknowledged before the GET was sent (to any client); a key
   * never has two SETs in flight, so versions reach the master in order. `ownStale`: GETs
   * older than the reading connection's own last acknowledged SET of that key.
   */
  async offload(port, opts) {
    const c = counters();
    c.ownStale = 0;
    const KEYS = 100000;
    const sent = new Uint32Array(KEYS);
    const acked = new Uint32Array(KEYS);
    const inFlight = new Uint8Array(KEYS);
    const pool = await openPool(port, opts.clients);
    const deadline = performance.now() + opts.seconds * 1000;
    try {
      await Promise.all(pool.map(async (conn) => {
        const own = new Map(); // key -> this connection's last acknowledged version
        while (performance.now() < deadline) {
          const k = randInt(KEYS);
          if (Math.random() < 0.1 && !inFlight[k]) {
            const ver = ++sent[k];
            inFlight[k] = 1;
            const ok = await conn.call(['SET', `causal:o:${k}`, `v${ver}`]);
            inFlight[k] = 0;
            if (ok !== 'OK') { error(c, ok); continue; }
            if (ver > acked[k]) acked[k] = ver;
            own.set(k, ver);
          } else {
            const floor = acked[k];
            const mine = own.get(k) ?? 0;
            const t = performance.now();
            const got = await conn.call(['GET', `causal:o:${k}`]);
            c.lat.add(performance.now() - t);
            c.gets++;
            if (got !== null && typeof got === 'object') { error(c, got); continue; }
            const ver = got === null ? 0 : Number(got.slice(1));
            if (ver < floor) { c.stale++; if (got === null) c.notFound++; }
            if (ver < mine) c.ownStale++;
          }
          c.ops++;
        }
      }));
    } finally { for (const p of pool) p.close(); }
    return { ...c, unit: 'ops' };
  },
};

/** Runs one workload with commandstats and proxy CPU around it. */
async function measure(name, env, opts) {
  const pids = processTree(env.proxy.pid);
  const [m0, r0] = await Promise.all([commandStats(env.masterPort), commandStats(env.replicaPort)]);
  const cpu0 = cpuTicks(pids);
  const t0 = performance.now();
  let c;
  let failure = null;
  try {
    c = await workloads[name](env.proxyPort, opts);
  } catch (e) {
    failure = e.message;
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuTicks(pids) - cpu0;
  const [m1, r1] = await Promise.all([commandStats(env.masterPort), commandStats(env.replicaPort)]);
  const master = statsDelta(m0, m1);
  const replica = statsDelta(r0, r1);
  const perSec = (d, k) => (d[k] ?? 0) / seconds;
  const result = { workload: name, seconds, master, replica };
  if (failure) return { ...result, error: failure };
  const getsExecuted = (master.get ?? 0) + (replica.get ?? 0);
  return {
    ...result,
    unit: c.unit,
    ops: c.ops,
    rate: c.ops / seconds,
    gets: c.gets,
    stale: c.stale,
    notFound: c.notFound,
    ...(c.ownStale !== undefined ? { ownStale: c.ownStale } : {}),
    errors: c.errors,
    firstErrors: c.firstErrors,
    ...c.lat.summary(),
    replicaGetShare: getsExecuted ? (replica.get ?? 0) / getsExecuted : null,
    tracking: {
      masterRole: perSec(master, 'role'), masterInfo: perSec(master, 'info'),
      replicaRole: perSec(replica, 'role'), replicaInfo: perSec(replica, 'info'),
    },
    proxyCpuUsPerOp: c.ops ? (cpu / CLK_TCK) * 1e6 / c.ops : null,
  };
}

// ---- one mode ------------------------------------------------------------------------

async function runMode(mode, tmp, opts) {
  const dir = path.join(tmp, mode);
  fs.mkdirSync(dir);
  const res = { mode, workloads: [], notes: [] };
  const env = {};
  let relay = null;
  try {
    env.masterPort = await freePort();
    env.replicaPort = await freePort();
    // No 5 s wait before the replica's full sync (Redis 7 defaults to diskless sync with a delay).
    await startRedis(dir, 'master', env.masterPort, ['--repl-diskless-sync-delay', '0']);
    let upstream = env.masterPort;
    if (opts.delayMs > 0) {
      relay = await startRelay({ port: await freePort(), targetPort: env.masterPort, delayMs: opts.delayMs });
      upstream = relay.port;
    }
    log(`[${mode}] redis master :${env.masterPort}, replica :${env.replicaPort}${relay ? ` via relay :${relay.port} (+${opts.delayMs} ms)` : ''}`);
    await startRedis(dir, 'replica', env.replicaPort, ['--replicaof', '127.0.0.1', String(upstream)]);
    await waitUntil('replica link up', async () =>
      parseInfo(await command(env.replicaPort, ['INFO', 'replication'])).master_link_status === 'up', { timeoutMs: 15000 + 20 * opts.delayMs });
    res.replicationDelayMs = await replicationDelay(env.masterPort, env.replicaPort);
    log(`[${mode}] a SET on the master shows on the replica after ${res.replicationDelayMs.toFixed(1)} ms (median of 7)`);

    const { key, settings, fallback } = modeKeys(mode);
    env.proxyPort = await freePort();
    let p = await startProxy(dir, env.proxyPort, env.masterPort, env.replicaPort, settings, key, opts.proxyBin);
    if (p.rejected) {
      const msg = `${key} not supported by this build (the proxy refused ${JSON.stringify(settings)}: ${p.rejected})`;
      if (!fallback) {
        log(`!! [${mode}] ${msg}; mode skipped`);
        res.unsupported = msg;
        return res;
      }
      log(`!! [${mode}] ${msg}; running without the key (today's default: eventual reads)`);
      res.notes.push(`${msg}. Ran without the key instead: this build's default is eventual reads (readYourWrites false), the same as "none".`);
      res.fallback = true;
      p = await startProxy(dir, env.proxyPort, env.masterPort, env.replicaPort, fallback, null, opts.proxyBin);
    }
    env.proxy = p.child;
    res.listener = p.config.listeners[0];
    log(`[${mode}] redis-proxy :${env.proxyPort} ${JSON.stringify(res.fallback ? fallback : settings)}`);
    await sanityCheck(env.proxyPort, 'causal:sanity', 5000);

    for (const name of opts.workloads) {
      if (!env.proxy.alive()) {
        res.workloads.push({ workload: name, error: 'redis-proxy is not running' });
        continue;
      }
      log(`[${mode}] ${name} ...`);
      const r = await measure(name, env, opts);
      res.workloads.push(r);
      log(r.error ? `[${mode}] ${name}: ERROR ${r.error}` : `[${mode}] ${name}: ${fmtInt(r.rate)} ${r.unit}/s, stale ${fmtInt(r.stale)}/${fmtInt(r.gets)} GETs${r.ownStale !== undefined ? ` (own writes ${fmtInt(r.ownStale)})` : ''}, errors ${r.errors}, GETs on replica ${pct(r.replicaGetShare)}, GET p50 ${fmt(r.p50ms, 3)} ms`);
    }
    if (!env.proxy.alive()) {
      const ei = env.proxy.exitInfo();
      res.notes.push(`redis-proxy exited during the run (code ${ei?.code}, signal ${ei?.signal}). Log tail:\n\n  \`\`\`\n${tail(env.proxy.logFile).replace(/^/gm, '  ')}\n  \`\`\``);
    }
    const proxyLog = env.proxy ? tail(env.proxy.logFile, 10) : '';
    if (proxyLog && env.proxy.alive()) res.notes.push(`redis-proxy wrote to its log (last lines):\n\n  \`\`\`\n${proxyLog.replace(/^/gm, '  ')}\n  \`\`\``);
  } catch (e) {
    res.error = e.message;
    log(`!! [${mode}] ${e.message}`);
  } finally {
    if (relay) res.relay = { ...relay.stats };
    await stopAll();
    if (relay) await relay.close();
  }
  return res;
}

// ---- report --------------------------------------------------------------------------

const fmt = (x, d) => (x == null ? '–' : x.toFixed(d));
const pct = (x) => (x == null ? '–' : `${(x * 100).toFixed(1)}%`);
const rate = (x) => (x == null ? '–' : x < 10 ? x.toFixed(1) : fmtInt(x));

/** What a mode promises, as a predicate on a workload result: stale reads it must not have. */
const PROMISES = {
  none: { text: 'nothing (eventual reads)', violations: () => 0 },
  session: { text: 'a connection reads its own writes: 0 stale in loop, 0 own-write stale in offload', violations: (r) => (r.workload === 'loop' ? r.stale : r.workload === 'offload' ? r.ownStale : 0) },
  ryw: { text: 'a connection reads its own writes: 0 stale in loop, 0 own-write stale in offload', violations: (r) => (r.workload === 'loop' ? r.stale : r.workload === 'offload' ? r.ownStale : 0) },
  global: { text: 'a read sees every write acknowledged before it was sent: 0 stale in every workload', violations: (r) => r.stale },
};

function staleCell(r) {
  if (r.gets == null) return '–';
  const s = `${fmtInt(r.stale)} (${pct(r.gets ? r.stale / r.gets : 0)})`;
  return r.ownStale !== undefined ? `${s}, own ${fmtInt(r.ownStale)}` : s;
}

function modeTable(res) {
  return mdTable([
    ['workload', 'l'], ['ops', 'r'], ['rate /s', 'r'], ['GET p50 ms', 'r'], ['GET p99 ms', 'r'],
    ['stale GETs', 'r'], ['not found', 'r'], ['errors', 'r'], ['GETs on replica', 'r'],
    ['ROLE/s m', 'r'], ['INFO/s m', 'r'], ['ROLE/s r', 'r'], ['INFO/s r', 'r'], ['proxy CPU µs/op', 'r'],
  ], res.workloads.map((r) => (r.error
    ? [r.workload, `error: ${r.error.split('\n')[0]}`, '', '', '', '', '', '', '', '', '', '', '', '']
    : [r.workload, fmtInt(r.ops), `${fmtInt(r.rate)} ${r.unit}`, fmt(r.p50ms, 3), fmt(r.p99ms, 3),
      staleCell(r), fmtInt(r.notFound), fmtInt(r.errors), pct(r.replicaGetShare),
      rate(r.tracking.masterRole), rate(r.tracking.masterInfo), rate(r.tracking.replicaRole), rate(r.tracking.replicaInfo),
      fmt(r.proxyCpuUsPerOp, 1)])));
}

function verdictLine(res) {
  if (res.unsupported) return `not run: ${res.unsupported}`;
  if (res.error) return `not run to the end: ${res.error.split('\n')[0]}`;
  const p = PROMISES[res.mode];
  const bad = res.workloads.filter((r) => !r.error && p.violations(r) > 0).map((r) => `${r.workload} ${fmtInt(p.violations(r))}`);
  const failed = res.workloads.filter((r) => r.error).map((r) => r.workload);
  return `promise: ${p.text}: ${bad.length ? `VIOLATED (${bad.join(', ')})` : 'held'}${failed.length ? `; not measured: ${failed.join(', ')}` : ''}`;
}

const modeLabel = (res) => (res.fallback ? `${res.mode} (key omitted)` : res.mode);

function comparisonTable(results, workloadNames) {
  const ran = results.filter((r) => r.workloads.length);
  if (!ran.length) return null;
  const metrics = [
    ['rate /s', (r) => `${fmtInt(r.rate)} ${r.unit}`],
    ['stale GETs', staleCell],
    ['GETs on replica', (r) => pct(r.replicaGetShare)],
    ['GET p99 ms', (r) => fmt(r.p99ms, 3)],
    ['ROLE+INFO/s master / replica', (r) => `${rate(r.tracking.masterRole + r.tracking.masterInfo)} / ${rate(r.tracking.replicaRole + r.tracking.replicaInfo)}`],
    ['proxy CPU µs/op', (r) => fmt(r.proxyCpuUsPerOp, 1)],
  ];
  const rows = [];
  for (const w of workloadNames) {
    for (const [label, f] of metrics) {
      rows.push([w, label, ...ran.map((res) => {
        const r = res.workloads.find((x) => x.workload === w);
        return !r ? '–' : r.error ? 'error' : f(r);
      })]);
    }
  }
  return mdTable([['workload', 'l'], ['metric', 'l'], ...ran.map((res) => [modeLabel(res), 'r'])], rows);
}

/** Commands other than GET/SET/ROLE/INFO that ran on the nodes during the workloads, per second. */
function otherCommands(res) {
  const lines = [];
  for (const node of ['master', 'replica']) {
    const sum = {};
    let secs = 0;
    for (const r of res.workloads) {
      if (!r[node]) continue;
      secs += r.seconds;
      for (const [k, v] of Object.entries(r[node])) if (!['get', 'set', 'role', 'info'].includes(k)) sum[k] = (sum[k] ?? 0) + v;
    }
    const parts = Object.entries(sum).map(([k, v]) => `${k} ${rate(v / secs)}/s`);
    if (parts.length) lines.push(`${node}: ${parts.join(', ')}`);
  }
  return lines;
}

function markdown(report) {
  const out = [];
  out.push(`# redis-proxy causal reads — ${report.startedAt}`, '');
  out.push('## Machine', '');
  for (const [k, v] of Object.entries(report.machine)) out.push(`- ${k}: ${v}`);
  out.push('', '## Settings', '');
  for (const [k, v] of Object.entries(report.settings)) out.push(`- ${k}: ${v}`);
  for (const res of report.modes) {
    out.push('', `## Mode ${modeLabel(res)}`, '');
    if (res.listener) {
      const { listen, master, slave, ...keys } = res.listener;
      out.push(`Listener keys beyond master and replica: \`${JSON.stringify(keys)}\`. Replica lag measured before the proxy started: ${fmt(res.replicationDelayMs, 1)} ms.`, '');
    }
    if (res.workloads.length) out.push(modeTable(res), '');
    out.push(`**${verdictLine(res)}**`);
    const other = otherCommands(res);
    if (other.length) out.push('', `Other commands on the nodes during the workloads: ${other.join('; ')}.`);
    for (const n of res.notes) out.push('', `- ${n}`);
  }
  const cmp = report.modes.filter((r) => r.workloads.length).length > 1 ? comparisonTable(report.modes, report.workloads) : null;
  if (cmp) out.push('', '## Comparison across modes', '', cmp);
  out.push('', '## Verdicts', '');
  for (const res of report.modes) out.push(`- ${modeLabel(res)}: ${verdictLine(res)}`);
  out.push('', '## Notes', '');
  for (const n of report.notes) out.push(`- ${n}`);
  out.push('');
  return out.join('\n');
}

// ---- the run ---------------------------------------------------------------------------

async function main() {
  const opts = options();
  const startedAt = new Date();
  const machineAtStart = machineInfo(ROOT);
  const loadAtStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const otherCpuSinceStart = otherCpuMeter();
  const { tmp, cleanup } = runScope('redis-proxy-causal-', log);
  const results = [];

  let otherCpu = null;
  try {
    log(`temp dir ${tmp}`);
    for (const mode of opts.modes) results.push(await runMode(mode, tmp, opts));
  } finally {
    otherCpu = otherCpuSinceStart();
    await cleanup();
  }

  const notes = [];
  const machineNow = machineInfo(ROOT);
  if (machineNow['dist/cli.js built'] !== machineAtStart['dist/cli.js built']) notes.push(`dist/cli.js was rebuilt during the run (at ${machineNow['dist/cli.js built']}); modes started after that ran the new build.`);
  if (opts.proxyBin) notes.push(`redis-proxy was started from ${opts.proxyBin}, not bin/redis-proxy.`);
  notes.push(
    `Stale GET: a GET whose reply is older than the value it must return. loop, two-conn, session-store, cache: the value written by the SET acknowledged just before (a missing key counts as stale and as "not found"). offload: a version older than the highest one acknowledged to any client before the GET was sent; "own" counts those older than the reading connection's own last acknowledged write of the key.`,
    `ROLE/s and INFO/s: calls on the master (m) and the replica (r) during the workload (INFO commandstats deltas, the harness's own INFO calls taken out) per second of the workload. They are the proxy's health checks and replication tracking; mode none shows the health-check floor.`,
    `GETs on replica: share of the GETs executed by the replica (cmdstat_get deltas on both nodes; the harness's own GETs are not counted since it only reads INFO during a workload).`,
    `proxy CPU µs/op: the proxy's utime+stime (/proc, ${(1000 / CLK_TCK).toFixed(0)} ms ticks) over the workload, divided by its ops (a pair counts as one op).`,
    `Replica delay: ${opts.delayMs > 0 ? `the replica replicates from a relay inside the harness that holds every chunk from the master for ${opts.delayMs} ms (replica->master traffic passes at once)` : 'none added; the replica connects to the master directly'}. The measured lag (per mode) is the median time for a SET on the master to show on the replica, polled every ms.`,
    `Other processes (not started by the harness) used ${otherCpu.toFixed(1)}% of the machine's CPU during the run. Everything (harness, relay, master, replica, proxy) shares ${os.availableParallelism()} cores.`,
  );
  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { ...machineAtStart, 'load average at start (1/5/15 min)': loadAtStart, 'other processes\' CPU during the run': `${otherCpu.toFixed(1)}% of all cores` },
    settings: {
      modes: opts.modes.join(', '),
      workloads: opts.workloads.join(', '),
      pairs: `${opts.pairs} (loop, two-conn, cache: SET+GET pairs; session-store: logins)`,
      offload: `${opts.clients} connections, ${opts.seconds} s, 90% GET / 10% SET over 100,000 keys`,
      'replica delay': opts.delayMs > 0 ? `${opts.delayMs} ms (relay on the master->replica stream)` : '0 (direct replication)',
      redis: 'master + 1 replica, --save "" --appendonly no, fresh per mode',
      proxy: 'one listener: master + the replica, logLevel warn, the mode\'s key; fresh per mode',
    },
    workloads: opts.workloads,
    modes: results,
    notes,
  };
  const md = markdown(report);
  const dated = writeReport({ out: opts.out, json: opts.json, prefix: 'causal-' }, report, md);

  for (const res of results) {
    process.stdout.write(`\nMode ${modeLabel(res)}${res.replicationDelayMs != null ? ` (replica lag ${fmt(res.replicationDelayMs, 1)} ms)` : ''}:\n`);
    if (res.workloads.length) process.stdout.write(`${modeTable(res)}\n`);
    process.stdout.write(`${verdictLine(res)}\n`);
  }
  const cmp = comparisonTable(results, opts.workloads);
  if (cmp && results.filter((r) => r.workloads.length).length > 1) process.stdout.write(`\nComparison across modes:\n${cmp}\n`);
  process.stdout.write(`\nwrote ${path.relative(process.cwd(), dated)}, causal-latest.md, ${path.relative(process.cwd(), opts.json)}\n`);
}

main().catch((e) => {
  log(`causal bench failed: ${e.stack ?? e.message}`);
  process.exitCode = 1;
});

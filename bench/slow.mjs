#!/usr/bin/env node
// "Slow is not down" benchmark: what clients of redis-proxy see while a node is slow
// rather than down (README, Failure semantics).
//
//   node bench/slow.mjs [--scenarios busy-script,slow-command,half-dead-replica]
//                       [--rounds 5] [--out bench/results]
//
// Three scenarios, each on fresh processes (a Redis master, its replica(s), and the built
// proxy (dist/) started as bin/redis-proxy):
//
// - busy-script: a runaway EVAL on a master with busy-reply-threshold 10 ms, five writers
//   in open loop, SCRIPT KILL through the proxy after 500 ms. How long SCRIPT KILL takes,
//   how soon writes succeed again after its reply, what the writers got meanwhile
//   (Redis's BUSY, proxy errors, +OK). Repeated --rounds times, fresh processes per round.
// - slow-command: DEBUG SLEEP 3 on the master while five clients SET/GET in open loop.
//   Errors (there should be none, only delay), the longest latency, and whether INFO
//   proxy ever showed the master down.
// - half-dead-replica: a second replica behind a relay that forwards the proxy's control
//   connection (health checks pass) and black-holes every data connection after its
//   handshake. Read latency per second, the time until outlier detection ejects it, and
//   the latency after that.
//
// It writes slow-<date>.md, slow-latest.md and slow-latest.json. See bench/README.md.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { command, nodeLines, parseInfo, parseReply } from './lib/resp.mjs';
import { Conn, openPool } from './lib/conn.mjs';
import { stopAll, freePort, waitUntil, sleep, clockTicks } from './lib/procs.mjs';
import { mdTable, fmtInt } from './lib/report.mjs';
import { startRedis, proxyConfig, launchProxy, sanityCheck, tail, runScope, otherCpuMeter, machineInfo, writeReport } from './lib/setup.mjs';
import { harnessOptions } from './lib/options.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCENARIOS = ['busy-script', 'slow-command', 'half-dead-replica'];
const CLK_TCK = clockTicks();

// What each scenario does; the README's section describes the same numbers.
const BUSY = {
  threshold: 10,         // master --busy-reply-threshold (ms)
  writers: 5,
  writeEveryMs: 2,       // per writer, open loop
  killAfterMs: 500,      // SCRIPT KILL this long after the EVAL was sent
  killTimeoutMs: 2000,   // SCRIPT KILL with no reply by then: the round kills the script directly
  afterKillMs: 1000,     // writers go on this long after SCRIPT KILL's reply
  goalMs: 50,            // first successful write within this of SCRIPT KILL's reply
};
const SLOWCMD = {
  sleepS: 3,             // DEBUG SLEEP
  clients: 5,
  everyMs: 20,           // per client: a SET and a GET, open loop
  loadMs: 4000,
  listener: { connectTimeout: 1000, healthCheckInterval: 200 },
};
const HALFDEAD = {
  clients: 5,
  everyMs: 20,           // per client: a GET, open loop
  loadMs: 8000,
  keys: 20,
  listener: { commandTimeout: 1000, healthCheckInterval: 200, outlierTimeouts: 2 },
  ejectGoalMs: 5000,     // "a few seconds"
  normalMedianMs: 50,    // after ejection: the bounds test/integration/slow/half-dead-replica.test.ts uses
  normalP99Ms: 100,
};
const INFO_POLL = { intervalMs: 100, timeoutMs: 300 };
const DRAIN_MS = 5000;   // replies still owed when a load ends: waited for this long, then counted as missing

const USAGE = `usage: node bench/slow.mjs [options]

  --scenarios LIST    comma list out of ${SCENARIOS.join(',')} (default all)
  --rounds N          busy-script rounds, each on fresh processes (default 5)
  --out DIR           where slow-<date>.md, slow-latest.md and slow-latest.json go
                      (default bench/results)
  --json FILE         machine-readable results (default <out>/slow-latest.json)
  --proxy-bin FILE    Node script started as the proxy (default bin/redis-proxy,
                      which loads dist/cli.js); it gets the config file path as argument
  -h, --help          this text
`;

function options() {
  const { values, number, list, out, json, proxyBin } = harnessOptions({
    usage: USAGE,
    json: 'slow-latest.json',
    own: {
      scenarios: { type: 'string', default: SCENARIOS.join(',') },
      rounds: { type: 'string', default: '5' },
    },
  });
  const scenarios = list('scenarios', values.scenarios, SCENARIOS);
  return {
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)),
    rounds: number('rounds', values.rounds),
    out,
    json,
    proxyBin,
  };
}

const log = (msg) => process.stderr.write(`${msg}\n`);

// ---- numbers -------------------------------------------------------------------------

/** Nearest-rank percentile p (0-100) of xs; null for none. */
function pctl(xs, p) {
  if (!xs.length) return null;
  const v = Float64Array.from(xs).sort();
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}
const fmt = (x, d = 1) => (x == null || !Number.isFinite(x) ? '–' : x.toFixed(d));
const ms = (x) => (x == null || !Number.isFinite(x) ? '–' : `${x.toFixed(x < 10 ? 1 : 0)} ms`);
const mark = (ok) => (ok ? 'PASS' : 'FAIL');

/** A reply (or a failure) as one short line of text, for tallies. */
function replyText(o) {
  if (!o.replied) return `(no reply: ${o.failure})`;
  const v = o.reply;
  if (v !== null && typeof v === 'object' && 'error' in v) return `-${v.error}`;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return `:${v}`;
  return v === null ? '(nil)' : JSON.stringify(v);
}

/** "3× '+OK', 1× '-ERR x'": the kinds of texts, most frequent first, at most `max` kinds. */
function tally(texts, max = 4) {
  const counts = new Map();
  for (const t of texts) counts.set(t, (counts.get(t) ?? 0) + 1);
  const kinds = [...counts].sort((a, b) => b[1] - a[1]);
  const shown = kinds.slice(0, max).map(([t, n]) => `${n}× ${t.slice(0, 120)}`);
  if (kinds.length > max) shown.push(`… ${kinds.length - max} more kinds`);
  return shown.join(', ') || 'none';
}

const isError = (o) => o.replied && o.reply !== null && typeof o.reply === 'object' && 'error' in o.reply;
const errorText = (o) => (isError(o) ? o.reply.error : '');

// ---- clients -------------------------------------------------------------------------

/** Settles with { value } or { error }, or { timedOut } after timeoutMs; `ms` is how long it took. */
async function bounded(promise, timeoutMs) {
  const t0 = performance.now();
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve({ timedOut: true }), timeoutMs); });
  try {
    const r = await Promise.race([promise.then((value) => ({ value }), (e) => ({ error: e.message })), timeout]);
    return { ...r, ms: performance.now() - t0, doneAt: performance.now() };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An open loop on one connection: the commands make(i) are sent at t0 + i·everyMs
 * whether or not earlier replies came (a late timer sends what is due at once), until
 * stop() says so. Each outcome records sentAt, doneAt (performance.now()), the reply or
 * why there was none. Resolves when the loop has stopped and every reply came or
 * drainMs passed; the connection is closed then, and what it still owed counts as missing.
 */
async function openLoop(conn, everyMs, stop, make, drainMs = DRAIN_MS) {
  const outcomes = [];
  const settled = [];
  const t0 = performance.now();
  for (let i = 0; !stop(); i++) {
    const wait = t0 + i * everyMs - performance.now();
    if (wait > 0) await sleep(wait);
    if (stop()) break;
    for (const args of make(i)) {
      const o = { cmd: String(args[0]).toUpperCase(), sentAt: performance.now(), doneAt: null, replied: false };
      outcomes.push(o);
      settled.push(conn.call(args).then(
        (v) => { o.doneAt = performance.now(); o.reply = v; o.replied = true; },
        (e) => { o.doneAt = performance.now(); o.failure = e.message; },
      ));
    }
  }
  const all = Promise.all(settled);
  await bounded(all, drainMs);
  conn.close();
  await all;
  for (const o of outcomes) o.ms = o.doneAt - o.sentAt;
  return outcomes;
}

/** INFO proxy on a fresh connection, waiting at most timeoutMs: { ok, timedOut, text, nodes, ms }. */
async function infoProxy(port, timeoutMs = INFO_POLL.timeoutMs) {
  const t0 = performance.now();
  try {
    const r = await command(port, ['INFO', 'proxy'], { timeoutMs });
    const took = performance.now() - t0;
    if (typeof r !== 'string') return { ok: false, timedOut: false, text: JSON.stringify(r), nodes: [], ms: took };
    return { ok: true, timedOut: false, text: r, nodes: nodeLines(r), ms: took };
  } catch (e) {
    return { ok: false, timedOut: /timeout/.test(e.message), text: e.message, nodes: [], ms: performance.now() - t0 };
  }
}

const nodeAt = (info, port) => info.nodes.find((n) => n.addr === `127.0.0.1:${port}`);

/** Polls INFO proxy every intervalMs until stop(); each poll is { at (ms since origin), ...infoProxy }. */
async function pollInfo(port, stop, origin) {
  const polls = [];
  while (!stop()) {
    const at = performance.now() - origin;
    polls.push({ at, ...(await infoProxy(port, INFO_POLL.timeoutMs)) });
    await sleep(INFO_POLL.intervalMs);
  }
  return polls;
}

/** "up 12, unresponsive 20, 3 timed out" for a node over polls. */
function statesSeen(polls, port) {
  const counts = {};
  let timedOut = 0;
  let other = 0;
  for (const p of polls) {
    if (!p.ok) { if (p.timedOut) timedOut++; else other++; continue; }
    const s = nodeAt(p, port)?.state ?? '(no line)';
    counts[s] = (counts[s] ?? 0) + 1;
  }
  return { counts, timedOut, failed: other, polls: polls.length };
}
const statesText = (s) => [
  ...Object.entries(s.counts).map(([k, v]) => `${k} ${v}`),
  ...(s.timedOut ? [`no reply within ${INFO_POLL.timeoutMs} ms ${s.timedOut}`] : []),
  ...(s.failed ? [`failed ${s.failed}`] : []),
].join(', ') || 'no polls';

// ---- setup ---------------------------------------------------------------------------

async function waitLinkUp(replicaPort) {
  await waitUntil(`replica :${replicaPort} link up`, async () =>
    parseInfo(await command(replicaPort, ['INFO', 'replication'])).master_link_status === 'up', { timeoutMs: 15000 });
}

/** The proxy with `config`, its config file and log named `name` in dir. */
async function startProxy(dir, name, port, config, proxyBin) {
  const conf = path.join(dir, `${name}.json`);
  fs.writeFileSync(conf, JSON.stringify(config, null, 2));
  const logFile = path.join(dir, `${name}.log`);
  try {
    return await launchProxy({ name: 'redis-proxy', root: ROOT, conf, logFile, port, proxyBin });
  } catch (e) {
    const out = tail(logFile, 20);
    throw new Error(`${e.message}${out ? `\n--- ${path.basename(logFile)} (tail) ---\n${out}\n---` : ''}`);
  }
}

/** What the proxy wrote to its log, as a note (warn level and above), or null. */
function proxyLogNote(child, label) {
  const text = child ? tail(child.logFile, 8) : '';
  if (!text) return null;
  const state = child.alive() ? '' : ` (it exited: code ${child.exitInfo()?.code}, signal ${child.exitInfo()?.signal})`;
  return `${label}: redis-proxy's log, last lines${state}:\n\n  \`\`\`\n${text.replace(/^/gm, '  ')}\n  \`\`\``;
}

// ---- busy-script ---------------------------------------------------------------------

async function busyRound(round, tmp, opts) {
  const dir = path.join(tmp, `busy-script-${round}`);
  fs.mkdirSync(dir);
  const res = { round };
  const conns = [];
  let proxy = null;
  let masterPort = null;
  let stopAt = Infinity; // when the open loops and the INFO polls stop
  try {
    masterPort = await freePort();
    const replicaPort = await freePort();
    await startRedis(dir, 'master', masterPort, ['--busy-reply-threshold', String(BUSY.threshold), '--repl-diskless-sync-delay', '0']);
    await startRedis(dir, 'replica', replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
    await waitLinkUp(replicaPort);
    const port = await freePort();
    const config = proxyConfig(port, masterPort, replicaPort);
    res.listener = config.listeners[0];
    proxy = await startProxy(dir, 'proxy', port, config, opts.proxyBin);
    await sanityCheck(port, 'slow:sanity', 5000);

    const writers = await openPool(port, BUSY.writers, { stallMs: 60000 });
    conns.push(...writers);
    for (const w of writers) if ((await w.call(['SET', 'slow:warm', '1'])) !== 'OK') throw new Error('a writer\'s warm-up SET failed');
    const [a, b, direct] = [await Conn.open(port, { stallMs: 60000 }), await Conn.open(port, { stallMs: 60000 }), await Conn.open(masterPort, { stallMs: 60000 })];
    conns.push(a, b, direct);
    for (const c of [a, b, direct]) if ((await c.call(['PING'])) !== 'PONG') throw new Error('a client\'s PING failed');

    const stop = () => performance.now() >= stopAt;
    const origin = performance.now();
    const evalReply = bounded(a.call(['EVAL', 'while true do end', '0']), 10000 + BUSY.killAfterMs + BUSY.killTimeoutMs);
    const loops = writers.map((w, n) => openLoop(w, BUSY.writeEveryMs, stop, (i) => [['SET', `slow:w${n}:${i % 20}`, String(i)]]));
    // Redis itself, for comparison: the same writes on a direct connection to the master.
    const directLoop = openLoop(direct, BUSY.writeEveryMs, stop, (i) => [['SET', 'slow:direct', String(i)]]);
    const polls = pollInfo(port, stop, origin);

    await sleep(origin + BUSY.killAfterMs - performance.now());
    const killSentAt = performance.now();
    const kill = await bounded(b.call(['SCRIPT', 'KILL']), BUSY.killTimeoutMs);
    res.killSentAfterMs = killSentAt - origin;
    res.killReply = kill.timedOut ? `(no reply within ${BUSY.killTimeoutMs} ms)` : kill.error ? `(${kill.error})` : replyText({ replied: true, reply: kill.value });
    res.killMs = kill.timedOut ? null : kill.ms;
    let killedAt = kill.doneAt;
    if (kill.value !== 'OK') {
      const d = await command(masterPort, ['SCRIPT', 'KILL'], { timeoutMs: 2000 }).catch((e) => ({ error: e.message }));
      killedAt = performance.now();
      res.killedDirectly = replyText({ replied: true, reply: d });
      log(`[busy-script ${round}] SCRIPT KILL through the proxy got ${res.killReply}; killed directly: ${res.killedDirectly}`);
    }
    stopAt = killedAt + BUSY.afterKillMs;

    const ev = await evalReply;
    res.evalReply = ev.timedOut ? '(no reply)' : ev.error ? `(${ev.error})` : replyText({ replied: true, reply: ev.value });
    const outcomes = (await Promise.all(loops)).flat();
    const directOutcomes = await directLoop;
    res.masterStates = statesSeen(await polls, masterPort);

    const firstOk = (os) => os.filter((o) => o.replied && o.reply === 'OK' && o.doneAt >= killSentAt)
      .reduce((m, o) => Math.min(m, o.doneAt), Infinity);
    const wOk = firstOk(outcomes);
    const dOk = firstOk(directOutcomes);
    res.recoveryMs = Number.isFinite(wOk) ? Math.max(0, wOk - killedAt) : null;
    res.directRecoveryMs = Number.isFinite(dOk) ? Math.max(0, dOk - killedAt) : null;
    res.beyondRedisMs = Number.isFinite(wOk) && Number.isFinite(dOk) ? wOk - dOk : null;
    const ok = outcomes.filter((o) => o.replied && o.reply === 'OK');
    const busy = outcomes.filter((o) => errorText(o).startsWith('BUSY'));
    const proxyErrors = outcomes.filter((o) => errorText(o).startsWith('ERR redis-proxy:'));
    const missing = outcomes.filter((o) => !o.replied);
    const other = outcomes.filter((o) => o.replied && o.reply !== 'OK' && !busy.includes(o) && !proxyErrors.includes(o));
    res.writes = {
      sent: outcomes.length, ok: ok.length, okBeforeKill: ok.filter((o) => o.doneAt < killSentAt).length,
      busy: busy.length, proxyErrors: proxyErrors.length, other: other.length, noReply: missing.length,
      maxMs: Math.max(...outcomes.map((o) => o.ms)),
      oddReplies: tally([...proxyErrors, ...other, ...missing].map(replyText)),
    };
    res.direct = { sent: directOutcomes.length, busy: directOutcomes.filter((o) => errorText(o).startsWith('BUSY')).length };
    log(`[busy-script ${round}] SCRIPT KILL ${res.killReply} in ${ms(res.killMs)}; first write +OK ${ms(res.recoveryMs)} after its reply (Redis direct: ${ms(res.directRecoveryMs)}); writes: ${res.writes.ok} OK, ${res.writes.busy} BUSY, ${res.writes.proxyErrors} proxy errors, ${res.writes.other} other, ${res.writes.noReply} no reply`);
  } catch (e) {
    res.error = e.message;
    log(`!! [busy-script ${round}] ${e.message}`);
    if (masterPort) await command(masterPort, ['SCRIPT', 'KILL'], { timeoutMs: 1000 }).catch(() => {});
  } finally {
    stopAt = 0;
    for (const c of conns) c.close();
    const note = proxy && (!proxy.alive() || res.error) ? proxyLogNote(proxy, `round ${round}`) : null;
    if (note) res.note = note;
    await stopAll();
  }
  return res;
}

async function busyScript(tmp, opts) {
  const res = { scenario: 'busy-script', rounds: [] };
  for (let r = 1; r <= opts.rounds; r++) res.rounds.push(await busyRound(r, tmp, opts));
  const done = res.rounds.filter((r) => !r.error);
  const rec = done.map((r) => r.recoveryMs).filter((x) => x != null);
  res.listener = done[0]?.listener ?? res.rounds[0]?.listener;
  res.summary = {
    rounds: res.rounds.length,
    completed: done.length,
    killOk: done.filter((r) => r.killReply === 'OK').length,
    killMsMedian: pctl(done.map((r) => r.killMs).filter((x) => x != null), 50),
    killMsMax: done.length ? Math.max(...done.map((r) => r.killMs ?? Infinity)) : null,
    recoveryMsMedian: pctl(rec, 50),
    recoveryMsMax: rec.length ? Math.max(...rec) : null,
    directRecoveryMsMedian: pctl(done.map((r) => r.directRecoveryMs).filter((x) => x != null), 50),
    beyondRedisMsMedian: pctl(done.map((r) => r.beyondRedisMs).filter((x) => x != null), 50),
    beyondRedisMsMax: done.some((r) => r.beyondRedisMs != null) ? Math.max(...done.map((r) => r.beyondRedisMs).filter((x) => x != null)) : null,
    writes: ['sent', 'ok', 'busy', 'proxyErrors', 'other', 'noReply'].reduce((o, k) => ({ ...o, [k]: done.reduce((s, r) => s + r.writes[k], 0) }), {}),
    masterDownSeen: done.reduce((s, r) => s + (r.masterStates.counts.down ?? 0), 0),
  };
  const s = res.summary;
  const recoveryPass = done.length === res.rounds.length && rec.length === done.length && s.recoveryMsMax < BUSY.goalMs;
  res.verdict = [
    `SCRIPT KILL through the proxy got +OK in ${s.killOk} of ${s.rounds} rounds (median ${ms(s.killMsMedian)}, max ${ms(s.killMsMax)})`,
    `first successful write after SCRIPT KILL's reply: median ${ms(s.recoveryMsMedian)}, max ${ms(s.recoveryMsMax)}; goal < ${BUSY.goalMs} ms in every round: ${mark(recoveryPass)} (Redis itself, direct: median ${ms(s.directRecoveryMsMedian)})`,
    `writers' replies: ${fmtInt(s.writes.ok)} +OK, ${fmtInt(s.writes.busy)} Redis BUSY, ${fmtInt(s.writes.proxyErrors)} proxy errors, ${fmtInt(s.writes.other)} other, ${fmtInt(s.writes.noReply)} missing; goal 0 proxy errors and 0 missing: ${mark(done.length > 0 && s.writes.proxyErrors === 0 && s.writes.noReply === 0)}`,
  ];
  res.pass = recoveryPass && s.killOk === s.rounds && s.writes.proxyErrors === 0 && s.writes.noReply === 0;
  return res;
}

function busyTable(res) {
  return mdTable([
    ['round', 'r'], ['SCRIPT KILL reply', 'l'], ['SCRIPT KILL ms', 'r'], ['first write +OK after it, ms', 'r'],
    ['Redis direct, ms', 'r'], ['writes', 'r'], ['+OK', 'r'], ['Redis BUSY', 'r'], ['proxy errors', 'r'],
    ['other / missing', 'r'], ['slowest write ms', 'r'], ['master state in INFO proxy', 'l'],
  ], res.rounds.map((r) => (r.error
    ? [r.round, `error: ${r.error.split('\n')[0]}`, '', '', '', '', '', '', '', '', '', '']
    : [r.round, `${r.killReply}${r.killedDirectly ? ' (killed directly)' : ''}`, fmt(r.killMs), fmt(r.recoveryMs),
      fmt(r.directRecoveryMs), fmtInt(r.writes.sent), fmtInt(r.writes.ok), fmtInt(r.writes.busy), fmtInt(r.writes.proxyErrors),
      `${fmtInt(r.writes.other)} / ${fmtInt(r.writes.noReply)}`, fmt(r.writes.maxMs, 0), statesText(r.masterStates)])));
}

// ---- slow-command --------------------------------------------------------------------

async function slowCommand(tmp, opts) {
  const dir = path.join(tmp, 'slow-command');
  fs.mkdirSync(dir);
  const res = { scenario: 'slow-command' };
  const conns = [];
  let proxy = null;
  let loading = true; // the INFO polls go on while this holds
  try {
    const masterPort = await freePort();
    const replicaPort = await freePort();
    await startRedis(dir, 'master', masterPort, ['--enable-debug-command', 'local', '--repl-diskless-sync-delay', '0']);
    await startRedis(dir, 'replica', replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
    await waitLinkUp(replicaPort);
    await command(masterPort, ['SET', 'slow:k', 'v']);
    await waitUntil('slow:k on the replica', async () => (await command(replicaPort, ['GET', 'slow:k'])) === 'v', { intervalMs: 20 });
    const port = await freePort();
    const config = proxyConfig(port, masterPort, replicaPort, SLOWCMD.listener);
    res.listener = config.listeners[0];
    proxy = await startProxy(dir, 'proxy', port, config, opts.proxyBin);
    await sanityCheck(port, 'slow:sanity', 5000);

    const clients = await openPool(port, SLOWCMD.clients, { stallMs: 60000 });
    conns.push(...clients);
    for (const c of clients) if ((await c.call(['SET', 'slow:warm', '1'])) !== 'OK') throw new Error('a client\'s warm-up SET failed');
    const sleeper = await Conn.open(port, { stallMs: 60000 });
    conns.push(sleeper);
    if ((await sleeper.call(['PING'])) !== 'PONG') throw new Error('PING failed');

    const origin = performance.now();
    const polls = pollInfo(port, () => !loading, origin);
    const slept = bounded(sleeper.call(['DEBUG', 'SLEEP', String(SLOWCMD.sleepS)]), SLOWCMD.sleepS * 1000 + 10000);
    await sleep(50);
    const until = performance.now() + SLOWCMD.loadMs;
    const loops = clients.map((c, n) => openLoop(c, SLOWCMD.everyMs, () => performance.now() >= until,
      (i) => [['SET', `slow:s${n}`, String(i)], ['GET', 'slow:k']]));
    const s = await slept;
    res.sleepReply = s.timedOut ? '(no reply)' : s.error ? `(${s.error})` : replyText({ replied: true, reply: s.value });
    res.sleepMs = s.ms;
    const after = await infoProxy(port, 1000);
    res.masterAfterSleep = nodeAt(after, masterPort)?.raw ?? after.text;
    const outcomes = (await Promise.all(loops)).flat();
    loading = false;
    const allPolls = await polls;
    res.masterStates = statesSeen(allPolls, masterPort);
    const down = allPolls.filter((p) => p.ok && nodeAt(p, masterPort)?.state === 'down');
    res.masterDown = down.length;
    res.firstDown = down[0] ? `at ${Math.round(down[0].at)} ms: ${nodeAt(down[0], masterPort).raw}` : null;

    const errors = outcomes.filter((o) => !o.replied || isError(o));
    const odd = outcomes.filter((o) => o.replied && !isError(o) && o.reply !== 'OK' && o.reply !== 'v');
    const lat = outcomes.filter((o) => o.replied).map((o) => o.ms);
    const latOf = (cmd) => {
      const xs = outcomes.filter((o) => o.replied && o.cmd === cmd).map((o) => o.ms);
      return { replies: xs.length, p50ms: pctl(xs, 50), p99ms: pctl(xs, 99), maxMs: xs.length ? Math.max(...xs) : null };
    };
    res.replies = {
      sent: outcomes.length, replied: lat.length, errors: errors.length, errorKinds: tally(errors.map(replyText)),
      unexpected: odd.length, p50ms: pctl(lat, 50), p99ms: pctl(lat, 99), maxMs: lat.length ? Math.max(...lat) : null,
      over1s: lat.filter((x) => x > 1000).length, set: latOf('SET'), get: latOf('GET'),
    };
    res.verdict = [
      `error replies: ${fmtInt(errors.length)} of ${fmtInt(outcomes.length)}${errors.length ? ` (${res.replies.errorKinds})` : ''}; goal 0: ${mark(errors.length === 0)}`,
      `longest latency ${ms(res.replies.maxMs)} (DEBUG SLEEP ${SLOWCMD.sleepS} took ${ms(s.ms)})`,
      `INFO proxy showed the master down in ${down.length} of ${allPolls.length} polls${res.firstDown ? ` (first ${res.firstDown})` : ''}; goal never: ${mark(down.length === 0)} (master states seen: ${statesText(res.masterStates)})`,
    ];
    res.pass = errors.length === 0 && down.length === 0 && odd.length === 0 && res.sleepReply === 'OK';
    log(`[slow-command] ${res.verdict.join('; ')}`);
  } catch (e) {
    res.error = e.message;
    log(`!! [slow-command] ${e.message}`);
  } finally {
    loading = false;
    for (const c of conns) c.close();
    const note = proxy ? proxyLogNote(proxy, 'slow-command') : null;
    if (note && (res.error || !proxy.alive())) res.note = note;
    await stopAll();
  }
  return res;
}

function slowTable(res) {
  const r = res.replies;
  return mdTable([
    ['DEBUG SLEEP reply', 'l'], ['its latency ms', 'r'], ['requests', 'r'], ['replies', 'r'], ['error replies', 'r'],
    ['SET p50 / max ms', 'r'], ['GET p50 / max ms', 'r'], ['longest ms', 'r'], ['over 1 s', 'r'],
    ['master state in INFO proxy', 'l'], ['ever down', 'l'],
  ], [[res.sleepReply, fmt(res.sleepMs, 0), fmtInt(r.sent), fmtInt(r.replied), fmtInt(r.errors),
    `${fmt(r.set.p50ms, r.set.p50ms < 10 ? 2 : 0)} / ${fmt(r.set.maxMs, 0)}`, `${fmt(r.get.p50ms, r.get.p50ms < 10 ? 2 : 0)} / ${fmt(r.get.maxMs, 0)}`,
    fmt(r.maxMs, 0), fmtInt(r.over1s), statesText(res.masterStates), res.masterDown ? `yes (${res.masterDown})` : 'no']]);
}

// ---- half-dead-replica ---------------------------------------------------------------

/**
 * A relay in front of a replica that is half dead: a connection whose first command is
 * INFO (the proxy's control connection: with no password its first command is the health
 * check's `INFO server replication persistence`) is forwarded, so the health checks pass.
 * Any other connection (a data connection) gets its handshake answered by the relay
 * (`HELLO` and a first `PING` with +PONG, AUTH/SELECT with +OK, CLIENT with :1), so it is
 * established, and everything after that is swallowed, never answered.
 */
function startHalfDeadRelay(targetPort) {
  const sockets = new Set();
  const stats = { forwarded: 0, blackHoled: 0 };
  const server = net.createServer((down) => {
    sockets.add(down);
    down.on('close', () => sockets.delete(down));
    down.on('error', () => {});
    down.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let phase = 'first'; // first -> handshake -> swallow (or forward)
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let off = 0;
      for (;;) {
        let r;
        try { r = parseReply(buf, off); } catch { r = undefined; phase = 'swallow'; }
        if (!r || phase === 'swallow') break;
        const name = String(Array.isArray(r.value) ? r.value[0] : r.value).toUpperCase();
        if (phase === 'first' && name === 'INFO') {
          down.off('data', onData);
          stats.forwarded++;
          const up = net.createConnection({ host: '127.0.0.1', port: targetPort });
          sockets.add(up);
          up.on('error', () => {});
          up.on('close', () => { sockets.delete(up); down.destroy(); });
          down.on('close', () => up.destroy());
          up.write(buf);
          down.pipe(up);
          up.pipe(down);
          return;
        }
        if (phase === 'first') stats.blackHoled++;
        const answer = (phase === 'first' && name === 'PING') || name === 'HELLO' ? '+PONG\r\n'
          : name === 'AUTH' || name === 'SELECT' ? '+OK\r\n' : name === 'CLIENT' ? ':1\r\n' : null;
        if (answer === null) { phase = 'swallow'; break; }
        down.write(answer);
        off = r.end;
        phase = name === 'PING' ? 'swallow' : 'handshake';
      }
      buf = buf.subarray(off);
      if (phase === 'swallow') { down.off('data', onData); down.on('data', () => {}); buf = Buffer.alloc(0); }
    };
    down.on('data', onData);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      port: server.address().port,
      stats,
      close() {
        for (const s of sockets) s.destroy();
        return new Promise((r) => server.close(() => r()));
      },
    }));
  });
}

async function halfDead(tmp, opts) {
  const dir = path.join(tmp, 'half-dead-replica');
  fs.mkdirSync(dir);
  const res = { scenario: 'half-dead-replica' };
  const conns = [];
  let relay = null;
  let proxy = null;
  let loading = true; // the INFO polls go on while this holds
  try {
    const masterPort = await freePort();
    const behindRelayPort = await freePort();
    const healthyPort = await freePort();
    await startRedis(dir, 'master', masterPort, ['--repl-diskless-sync-delay', '0']);
    await startRedis(dir, 'replica-half-dead', behindRelayPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
    await startRedis(dir, 'replica-healthy', healthyPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
    await waitLinkUp(behindRelayPort);
    await waitLinkUp(healthyPort);
    // The keys are written on the master directly: no write passes the proxy, so no read
    // has to wait for one (causal reads) and every read may go to either replica.
    const kv = Array.from({ length: HALFDEAD.keys }, (_, i) => [`slow:hd:${i}`, `value-${i}`]).flat();
    await command(masterPort, ['MSET', ...kv]);
    for (const p of [behindRelayPort, healthyPort]) {
      await waitUntil(`keys on :${p}`, async () => (await command(p, ['GET', `slow:hd:${HALFDEAD.keys - 1}`])) === `value-${HALFDEAD.keys - 1}`, { intervalMs: 20 });
    }
    relay = await startHalfDeadRelay(behindRelayPort);
    const port = await freePort();
    const config = proxyConfig(port, masterPort, relay.port, HALFDEAD.listener);
    config.listeners[0].slave.push({ host: '127.0.0.1', port: healthyPort });
    res.listener = config.listeners[0];
    proxy = await startProxy(dir, 'proxy', port, config, opts.proxyBin);
    // No sanity check through the proxy: a read sent to the half-dead replica now would
    // count towards its ejection before the measurement starts.
    let start = null;
    await waitUntil('both replicas in the rotation', async () => {
      start = await infoProxy(port, 1000);
      return nodeAt(start, relay.port)?.inRotation === 1 && nodeAt(start, healthyPort)?.inRotation === 1;
    }, { timeoutMs: 10000 }).catch((e) => { throw new Error(`${e.message}; INFO proxy: ${start?.nodes.map((n) => n.raw).join(' | ') ?? start?.text}`); });
    res.startLine = nodeAt(start, relay.port).raw;

    const clients = await openPool(port, HALFDEAD.clients, { stallMs: 60000 });
    conns.push(...clients);
    for (const c of clients) if ((await c.call(['PING'])) !== 'PONG') throw new Error('PING failed');

    const origin = performance.now();
    const until = origin + HALFDEAD.loadMs;
    let inRotation0 = null;
    let ejected1 = null;
    const watcher = (async () => {
      const polls = [];
      while (loading) {
        const p = await infoProxy(port, INFO_POLL.timeoutMs);
        const at = performance.now() - origin;
        polls.push(p);
        const line = nodeAt(p, relay.port);
        if (inRotation0 === null && line?.inRotation === 0) inRotation0 = { at, raw: line.raw };
        if (ejected1 === null && line?.ejected === 1) ejected1 = { at, raw: line.raw };
        await sleep(INFO_POLL.intervalMs);
      }
      return polls;
    })();
    const loops = clients.map((c, n) => openLoop(c, HALFDEAD.everyMs, () => performance.now() >= until,
      (i) => [['GET', `slow:hd:${(i * HALFDEAD.clients + n) % HALFDEAD.keys}`]]));
    const outcomes = (await Promise.all(loops)).flat();
    loading = false;
    const polls = await watcher;
    const end = await infoProxy(port, 1000);
    res.endLines = { halfDead: nodeAt(end, relay.port)?.raw ?? end.text, healthy: nodeAt(end, healthyPort)?.raw ?? end.text };
    res.relay = { ...relay.stats };
    res.infoPolls = { polls: polls.length, unanswered: polls.filter((p) => !p.ok).length };

    const isGood = (o) => o.replied && typeof o.reply === 'string' && o.reply.startsWith('value-');
    for (const o of outcomes) o.at = o.sentAt - origin;
    const bad = outcomes.filter((o) => !isGood(o));
    res.reads = { sent: outcomes.length, failed: bad.length, failedKinds: tally(bad.map(replyText)) };
    res.inRotation0AtMs = inRotation0?.at ?? null;
    res.ejectedAtMs = ejected1?.at ?? null;
    res.ejectedLine = ejected1?.raw ?? inRotation0?.raw ?? null;
    // Per second of the run, by the time each read was sent.
    res.seconds = [];
    for (let s = 0; s * 1000 < HALFDEAD.loadMs; s++) {
      const xs = outcomes.filter((o) => o.at >= s * 1000 && o.at < (s + 1) * 1000);
      const lat = xs.filter(isGood).map((o) => o.ms);
      res.seconds.push({
        second: s, reads: xs.length, failed: xs.length - lat.length,
        p50ms: pctl(lat, 50), p99ms: pctl(lat, 99), maxMs: lat.length ? Math.max(...lat) : null,
        over500ms: lat.filter((x) => x > 500).length,
      });
    }
    const out = res.ejectedAtMs ?? res.inRotation0AtMs;
    const afterLat = out == null ? [] : outcomes.filter((o) => o.at >= out && isGood(o)).map((o) => o.ms);
    const beforeLat = outcomes.filter((o) => (out == null || o.at < out) && isGood(o)).map((o) => o.ms);
    res.after = { reads: afterLat.length, p50ms: pctl(afterLat, 50), p99ms: pctl(afterLat, 99), maxMs: afterLat.length ? Math.max(...afterLat) : null };
    res.before = { reads: beforeLat.length, p50ms: pctl(beforeLat, 50), p99ms: pctl(beforeLat, 99), maxMs: beforeLat.length ? Math.max(...beforeLat) : null };
    // From which second on every second is normal (median and p99 under the bounds).
    const normal = (x) => x.reads > 0 && x.failed === 0 && x.p50ms < HALFDEAD.normalMedianMs && x.p99ms < HALFDEAD.normalP99Ms;
    let from = res.seconds.length;
    while (from > 0 && normal(res.seconds[from - 1])) from--;
    res.normalFromSecond = from < res.seconds.length ? from : null;

    const ejectedOk = res.ejectedAtMs != null && res.ejectedAtMs <= HALFDEAD.ejectGoalMs;
    const afterOk = res.after.reads > 0 && res.after.p50ms < HALFDEAD.normalMedianMs && res.after.p99ms < HALFDEAD.normalP99Ms;
    res.verdict = [
      `the half-dead replica was ejected (INFO proxy ejected=1) ${res.ejectedAtMs == null ? `never in ${HALFDEAD.loadMs / 1000} s` : `${ms(res.ejectedAtMs)} after the reads began`}${res.inRotation0AtMs != null ? ` (in_rotation=0 first seen at ${ms(res.inRotation0AtMs)})` : ''}; goal within ${HALFDEAD.ejectGoalMs / 1000} s: ${mark(ejectedOk)}`,
      `reads sent after that: median ${ms(res.after.p50ms)}, p99 ${ms(res.after.p99ms)}, max ${ms(res.after.maxMs)} (${fmtInt(res.after.reads)} reads); before: median ${ms(res.before.p50ms)}, p99 ${ms(res.before.p99ms)}; goal back to normal (median < ${HALFDEAD.normalMedianMs} ms, p99 < ${HALFDEAD.normalP99Ms} ms): ${mark(afterOk)}`,
      `every second from second ${res.normalFromSecond ?? '–'} on is normal; reads that got no value: ${fmtInt(bad.length)} of ${fmtInt(outcomes.length)}${bad.length ? ` (${res.reads.failedKinds})` : ''}`,
    ];
    res.pass = ejectedOk && afterOk && bad.length === 0;
    log(`[half-dead-replica] ${res.verdict.join('; ')}`);
  } catch (e) {
    res.error = e.message;
    log(`!! [half-dead-replica] ${e.message}`);
  } finally {
    loading = false;
    for (const c of conns) c.close();
    const note = proxy ? proxyLogNote(proxy, 'half-dead-replica') : null;
    if (note) res.note = note;
    await stopAll();
    if (relay) await relay.close();
  }
  return res;
}

function halfDeadTable(res) {
  const out = res.ejectedAtMs ?? res.inRotation0AtMs;
  return mdTable([
    ['second', 'r'], ['reads', 'r'], ['median ms', 'r'], ['p99 ms', 'r'], ['max ms', 'r'], ['over 500 ms', 'r'], ['no value', 'r'], ['', 'l'],
  ], res.seconds.map((x) => [`${x.second}–${x.second + 1}`, fmtInt(x.reads), fmt(x.p50ms, 2), fmt(x.p99ms, 0), fmt(x.maxMs, 0),
    fmtInt(x.over500ms), fmtInt(x.failed),
    out != null && out >= x.second * 1000 && out < (x.second + 1) * 1000 ? `ejected at ${Math.round(out)} ms` : '']));
}

// ---- report --------------------------------------------------------------------------

const TITLES = {
  'busy-script': 'busy-script: SCRIPT KILL of a runaway EVAL',
  'slow-command': `slow-command: DEBUG SLEEP ${SLOWCMD.sleepS} on the master`,
  'half-dead-replica': 'half-dead-replica: a replica that passes health checks but never answers reads',
};

function listenerKeys(listener) {
  if (!listener) return '–';
  const { listen, master, slave, ...keys } = listener;
  return `\`${JSON.stringify(keys)}\``;
}

function scenarioTable(res) {
  if (res.scenario === 'busy-script') return busyTable(res);
  if (res.error) return null;
  return res.scenario === 'slow-command' ? slowTable(res) : halfDeadTable(res);
}

function describe(res) {
  switch (res.scenario) {
    case 'busy-script': return `Master with \`--busy-reply-threshold ${BUSY.threshold}\`, one replica, the proxy with listener keys ${listenerKeys(res.listener)} (defaults otherwise); fresh processes per round. Client A sends \`EVAL "while true do end" 0\` through the proxy; ${BUSY.writers} writers each send a SET every ${BUSY.writeEveryMs} ms (open loop) through the proxy, and one more connection does the same directly on the master ("Redis direct"); ${BUSY.killAfterMs} ms after the EVAL client B sends \`SCRIPT KILL\` through the proxy. The writers go on until ${BUSY.afterKillMs} ms after its reply. "first write +OK after it": from SCRIPT KILL's reply to the first +OK any writer received (0 when one came before it); "Redis direct": the same for the direct connection. Master states: INFO proxy polled every ${INFO_POLL.intervalMs} ms through the proxy.`;
    case 'slow-command': return `Master (\`--enable-debug-command local\`) and one replica; listener keys ${listenerKeys(res.listener)} (commandTimeout default 5000). Client A sends \`DEBUG SLEEP ${SLOWCMD.sleepS}\` through the proxy; 50 ms later ${SLOWCMD.clients} clients each send a SET and a GET every ${SLOWCMD.everyMs} ms (open loop) for ${SLOWCMD.loadMs / 1000} s. INFO proxy polled every ${INFO_POLL.intervalMs} ms on a fresh connection (replies later than ${INFO_POLL.timeoutMs} ms are ignored). \`unresponsive\` is the expected state of a sleeping master.`;
    case 'half-dead-replica': return `Master and two replicas; the first replica is behind a relay that forwards only connections whose first command is INFO (the proxy's control connection, so health checks pass) and black-holes every other connection after answering its handshake. Listener keys ${listenerKeys(res.listener)}. ${HALFDEAD.clients} clients each send a GET every ${HALFDEAD.everyMs} ms (open loop) for ${HALFDEAD.loadMs / 1000} s over ${HALFDEAD.keys} keys written on the master directly. Per second of the run (by the time a read was sent): latency of the reads that got their value. INFO proxy polled every ${INFO_POLL.intervalMs} ms.`;
    default: return '';
  }
}

function detailLines(res) {
  const out = [];
  if (res.scenario === 'busy-script') {
    const s = res.summary;
    out.push(`Median over the rounds: SCRIPT KILL ${ms(s.killMsMedian)}; first write +OK ${ms(s.recoveryMsMedian)} after its reply (max ${ms(s.recoveryMsMax)}); Redis direct ${ms(s.directRecoveryMsMedian)}; the proxy's writers' first +OK minus the direct connection's: median ${fmt(s.beyondRedisMsMedian)} ms, max ${fmt(s.beyondRedisMsMax)} ms (negative: the proxy's writers got theirs first).`);
    for (const r of res.rounds.filter((x) => !x.error)) {
      out.push(`Round ${r.round}: the EVAL's client got ${r.evalReply.slice(0, 160)}; ${r.writes.okBeforeKill} writes got +OK before SCRIPT KILL was sent${r.writes.oddReplies !== 'none' ? `; proxy errors, others and missing: ${r.writes.oddReplies}` : ''}.`);
    }
  } else if (res.scenario === 'slow-command' && !res.error) {
    out.push(`Right after DEBUG SLEEP returned, INFO proxy: \`${res.masterAfterSleep}\`.`);
    if (res.replies.unexpected) out.push(`${res.replies.unexpected} replies were neither +OK nor the value.`);
  } else if (res.scenario === 'half-dead-replica' && !res.error) {
    out.push(`Before the reads: \`${res.startLine}\`. At the ejection: \`${res.ejectedLine ?? '–'}\`. At the end: \`${res.endLines.halfDead}\`, \`${res.endLines.healthy}\`.`);
    out.push(`Relay: ${res.relay.forwarded} connections forwarded (control), ${res.relay.blackHoled} black-holed (data). INFO proxy polls: ${res.infoPolls.polls}, ${res.infoPolls.unanswered} unanswered.`);
  }
  return out;
}

function markdown(report) {
  const out = [];
  out.push(`# redis-proxy: slow is not down — ${report.startedAt}`, '');
  out.push('## Machine', '');
  for (const [k, v] of Object.entries(report.machine)) out.push(`- ${k}: ${v}`);
  out.push('', '## Settings', '');
  for (const [k, v] of Object.entries(report.settings)) out.push(`- ${k}: ${v}`);
  for (const res of report.scenarios) {
    out.push('', `## ${TITLES[res.scenario]}`, '', describe(res), '');
    const table = scenarioTable(res);
    if (table) out.push(table, '');
    if (res.error) out.push(`**not run to the end: ${res.error.split('\n')[0]}**`, '');
    for (const l of detailLines(res)) out.push(`- ${l}`);
    if (res.verdict) {
      out.push('', `**Verdict: ${mark(res.pass)}**`, '');
      for (const l of res.verdict) out.push(`- ${l}`);
    }
    for (const n of [res.note, ...(res.rounds ?? []).map((r) => r.note)].filter(Boolean)) out.push('', `- ${n}`);
  }
  out.push('', '## Notes', '');
  for (const n of report.notes) out.push(`- ${n}`);
  out.push('');
  return out.join('\n');
}

// ---- the run ---------------------------------------------------------------------------

const RUNNERS = { 'busy-script': busyScript, 'slow-command': slowCommand, 'half-dead-replica': halfDead };

async function main() {
  const opts = options();
  const startedAt = new Date();
  const machineAtStart = machineInfo(ROOT);
  const loadAtStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const otherCpuSinceStart = otherCpuMeter();
  const { tmp, cleanup } = runScope('redis-proxy-slow-', log);
  const results = [];

  let otherCpu = null;
  try {
    log(`temp dir ${tmp}`);
    for (const s of opts.scenarios) {
      log(`[${s}] ...`);
      results.push(await RUNNERS[s](tmp, opts));
    }
  } finally {
    otherCpu = otherCpuSinceStart();
    await cleanup();
  }

  const notes = [];
  const machineNow = machineInfo(ROOT);
  if (machineNow['dist/cli.js built'] !== machineAtStart['dist/cli.js built']) notes.push(`dist/cli.js was rebuilt during the run (at ${machineNow['dist/cli.js built']}); scenarios started after that ran the new build.`);
  if (opts.proxyBin) notes.push(`redis-proxy was started from ${opts.proxyBin}, not bin/redis-proxy.`);
  notes.push(
    `Open loop: each client sends on a fixed schedule without waiting for replies (they are pipelined on its connection and matched in order), so requests keep arriving while a node is slow; a timer that fires late sends what is due at once. A latency is from sending a request to its reply. Replies still owed ${DRAIN_MS / 1000} s after a load ends count as missing.`,
    `Timings are taken in the harness, which shares the machine's ${os.availableParallelism()} cores with Redis and the proxy; single numbers of a few ms are within its scheduling noise. Other processes (not started by the harness) used ${otherCpu.toFixed(1)}% of the machine's CPU during the run.`,
  );
  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { ...machineAtStart, 'load average at start (1/5/15 min)': loadAtStart, 'other processes\' CPU during the run': `${otherCpu.toFixed(1)}% of all cores` },
    settings: {
      scenarios: opts.scenarios.join(', '),
      'busy-script rounds': `${opts.rounds} (fresh Redis and proxy per round)`,
      redis: '--save "" --appendonly no, fresh per scenario',
      proxy: 'bin/redis-proxy, one listener, logLevel warn, fresh per scenario',
    },
    scenarios: results,
    notes,
  };
  const md = markdown(report);
  const dated = writeReport({ out: opts.out, json: opts.json, prefix: 'slow-' }, report, md);

  for (const res of results) {
    process.stdout.write(`\n${TITLES[res.scenario]}\n`);
    const table = scenarioTable(res);
    if (table) process.stdout.write(`${table}\n`);
    if (res.error) process.stdout.write(`not run to the end: ${res.error.split('\n')[0]}\n`);
    for (const l of detailLines(res).slice(0, 1)) process.stdout.write(`${l}\n`);
    if (res.verdict) {
      process.stdout.write(`verdict: ${mark(res.pass)}\n`);
      for (const l of res.verdict) process.stdout.write(`- ${l}\n`);
    }
  }
  process.stdout.write(`\nwrote ${path.relative(process.cwd(), dated)}, slow-latest.md, ${path.relative(process.cwd(), opts.json)}\n`);
}

main().catch((e) => {
  log(`slow bench failed: ${e.stack ?? e.message}`);
  process.exitCode = 1;
});

// Child processes the harness starts, free ports, and /proc readings (CPU ticks, RSS).
// Every child goes through `start`, so `stopAll` can always find it again: on success,
// on error, on SIGINT, and (as a last resort, synchronously) on process exit.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';

const children = new Set();

/**
 * Spawns a long-running child with stdout/stderr appended to logFile.
 * Returns { name, pid, proc, logFile, exited: Promise<{code, signal}>, alive() }.
 */
export function start(name, cmd, args, { logFile, cwd } = {}) {
  const fd = fs.openSync(logFile, 'a');
  const proc = spawn(cmd, args, { cwd, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => { exitInfo = { code, signal }; children.delete(child); resolve(exitInfo); });
    proc.on('error', (err) => { exitInfo = { code: null, signal: null, error: err.message }; children.delete(child); resolve(exitInfo); });
  });
  const child = {
    name, pid: proc.pid, proc, logFile, exited,
    alive: () => exitInfo === null && proc.pid !== undefined,
    exitInfo: () => exitInfo,
  };
  children.add(child);
  return child;
}

/** SIGTERM, wait up to graceMs, then SIGKILL. */
export async function stop(child, graceMs = 6000) {
  if (!child.alive()) return;
  try { child.proc.kill('SIGTERM'); } catch { /* already gone */ }
  const t = setTimeout(() => { try { child.proc.kill('SIGKILL'); } catch { /* gone */ } }, graceMs);
  await child.exited;
  clearTimeout(t);
}

/** Stops every child still running, in reverse start order. */
export async function stopAll() {
  for (const c of [...children].reverse()) await stop(c);
}

/** Synchronous last resort for process 'exit': SIGKILL whatever is left. */
export function killAllSync() {
  for (const c of children) { try { c.proc.kill('SIGKILL'); } catch { /* gone */ } }
}

/** A TCP port that was free a moment ago (never 6379). */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => { const p = srv.address().port; srv.close(() => resolve(p)); });
    });
    if (port !== 6379) return port;
  }
}

/** Retries fn every intervalMs until it returns truthy; throws the last error after timeoutMs. */
export async function waitUntil(what, fn, { timeoutMs = 10000, intervalMs = 100, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    if (child && !child.alive()) {
      const ei = child.exitInfo();
      throw new Error(`${what}: ${child.name} exited (code ${ei?.code}, signal ${ei?.signal}${ei?.error ? `, ${ei.error}` : ''})`);
    }
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { lastErr = e; }
    if (Date.now() > deadline) throw new Error(`${what}: timed out after ${timeoutMs} ms${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
    await sleep(intervalMs);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion; resolves { code, signal, stdout, stderr, timedOut }. */
export function run(cmd, args, { timeoutMs = 0 } = {}) {
  return new Promise((resolve) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const entry = { name: cmd, proc, alive: () => proc.exitCode === null && proc.signalCode === null };
    children.add(entry);
    const out = [];
    const err = [];
    let timedOut = false;
    const timer = timeoutMs ? setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs) : null;
    proc.stdout.on('data', (d) => out.push(d));
    proc.stderr.on('data', (d) => err.push(d));
    const finish = (code, signal, error) => {
      if (timer) clearTimeout(timer);
      children.delete(entry);
      resolve({ code, signal, timedOut, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() + (error ? `\n${error}` : '') });
    };
    proc.on('error', (e) => finish(null, null, e.message));
    proc.on('close', (code, signal) => finish(code, signal));
  });
}

/** First non-empty line of `cmd args` output (stdout, then stderr); '?' when it cannot run. */
export function versionOf(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return '?';
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find(Boolean) ?? '?';
}

// ---- /proc ------------------------------------------------------------------------

/** Clock ticks per second for /proc/PID/stat's utime/stime. */
export function clockTicks() {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; }
}

function parseStat(text) {
  // "pid (comm) state ppid ..." — comm may contain spaces and parens; split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]),
    cutime: Number(rest[13]), cstime: Number(rest[14]), // reaped children's time
  };
}

/** pid and every descendant (a proxy that forks workers is measured whole). */
export function processTree(rootPid) {
  const parentOf = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try { parentOf.set(Number(d), parseStat(fs.readFileSync(`/proc/${d}/stat`, 'utf8')).ppid); } catch { /* exited */ }
  }
  const tree = [rootPid];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === tree[i]) tree.push(pid);
  }
  return tree;
}

/** utime+stime in clock ticks, summed over pids (ones that exited count as 0). */
export function cpuTicks(pids) {
  let total = 0;
  for (const pid of pids) {
    try { const s = parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); total += s.utime + s.stime; } catch { /* exited */ }
  }
  return total;
}

/** VmRSS in bytes, summed over pids. */
export async function rssBytes(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(await fsp.readFile(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch { /* exited */ }
  }
  return total;
}

/** Samples RSS of pids every intervalMs until stopped; stop() resolves the max in bytes. */
export function rssSampler(pids, intervalMs = 100) {
  let max = 0;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { max = Math.max(max, await rssBytes(pids)); } finally { busy = false; }
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    async stop() { clearInterval(timer); await tick(); return max; },
  };
}

/** Busy clock ticks of the whole machine (all CPUs), from /proc/stat. */
export function machineBusyTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...; busy = all but idle and iowait
  return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0);
}

/**
 * CPU ticks spent by the harness and everything it started: itself, its reaped
 * children (every redis-benchmark run), and its live children with their own reaped
 * children. Compared with machineBusyTicks it tells how much else ran meanwhile.
 */
export function harnessTicks() {
  const me = parseStat(fs.readFileSync('/proc/self/stat', 'utf8'));
  let total = me.utime + me.stime + me.cutime + me.cstime;
  for (const c of children) {
    for (const pid of processTree(c.proc.pid)) {
      try {
        const s = parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
        total += s.utime + s.stime + s.cutime + s.cstime;
      } catch { /* exited */ }
    }
  }
  return total;
}

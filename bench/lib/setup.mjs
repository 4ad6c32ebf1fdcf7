// What every benchmark harness needs around its measurements: Redis servers, the proxy
// under test (launched as users launch it), the check that a write through a target can
// be read back, a temporary directory cleaned up whatever happens, and the share of CPU
// other processes took meanwhile.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { command } from './resp.mjs';
import { execFileSync } from 'node:child_process';

import { start, stop, stopAll, killAllSync, waitUntil, clockTicks, machineBusyTicks, harnessTicks, versionOf } from './procs.mjs';

/** The last `lines` lines of a log file ('' when it cannot be read). */
export function tail(file, lines = 15) {
  try { return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n'); } catch { return ''; }
}

/** A redis-server named `name` on `port`, its data in dir/name, persistence off; resolves once it answers PING. */
export async function startRedis(dir, name, port, extra = []) {
  const data = path.join(dir, name);
  fs.mkdirSync(data);
  const child = start(name, 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', data,
    '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...extra,
  ], { logFile: path.join(dir, `${name}.log`) });
  await waitUntil(`${name} on :${port}`, async () => (await command(port, ['PING'])) === 'PONG', { child });
  return child;
}

/**
 * The proxy config the benchmarks use: one listener on `port` over the master and one
 * replica, plus listener `settings`, plus `top` (top-level keys such as `admin`).
 */
export function proxyConfig(port, masterPort, replicaPort, settings = {}, top = {}) {
  return {
    logLevel: 'warn',
    ...top,
    listeners: [{
      listen: port,
      master: { host: '127.0.0.1', port: masterPort },
      slave: [{ host: '127.0.0.1', port: replicaPort }],
      ...settings,
    }],
  };
}

/**
 * Starts the redis-proxy of checkout `root` with config file `conf`, as process `name`
 * logging to `logFile`, and waits (up to 20 s) until `port` answers PING. The launcher is
 * run as users run it (its shebang carries the proxy's Node flags); a `proxyBin` script is
 * run with node.
 * @throws Error when dist/ is missing or the proxy does not answer (the process is stopped)
 */
export async function launchProxy({ name, root, conf, logFile, port, proxyBin = null }) {
  const cli = path.join(root, 'dist', 'cli.js');
  if (!proxyBin && !fs.existsSync(cli)) throw new Error(`${cli} not found (run \`npm run build\` first in ${root})`);
  const [cmd, args] = proxyBin ? [process.execPath, [proxyBin, conf]] : [path.join(root, 'bin', 'redis-proxy'), [conf]];
  const child = start(name, cmd, args, { logFile, cwd: root });
  await waitUntil(`${name} on :${port}`, async () => (await command(port, ['PING'])) === 'PONG', { child, timeoutMs: 20000 })
    .catch(async (e) => { await stop(child); throw e; });
  return child;
}

/** A write through the target on `port` must be readable through it (after replication). */
export async function sanityCheck(port, key = 'bench:sanity', timeoutMs = 3000) {
  const value = `v${process.pid}-${Date.now()}`;
  const set = await command(port, ['SET', key, value]);
  if (set !== 'OK') throw new Error(`SET through :${port} answered ${JSON.stringify(set)}`);
  await waitUntil(`GET through :${port} returns the value just written`,
    async () => (await command(port, ['GET', key])) === value, { timeoutMs, intervalMs: 20 });
}

/**
 * A harness run's temporary directory, removed together with every process the harness
 * started when the run ends (`cleanup()`), when the harness exits, or on SIGINT/SIGTERM
 * (exit status 130). `log` writes a line to the operator.
 */
export function runScope(prefix, log) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  let cleaned = null;
  const cleanup = () => (cleaned ??= (async () => {
    await stopAll();
    fs.rmSync(tmp, { recursive: true, force: true });
  })());
  process.on('exit', () => { killAllSync(); fs.rmSync(tmp, { recursive: true, force: true }); });
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, async () => {
      log(`\n${sig}: stopping everything the harness started`);
      await cleanup();
      process.exit(130);
    });
  }
  return { tmp, cleanup };
}

/**
 * Starts measuring the CPU that processes the harness did not start use; the returned
 * function gives their share (percent of all cores) since then. The higher, the noisier
 * a run's numbers.
 */
export function otherCpuMeter() {
  const startedAt = Date.now();
  const busy = machineBusyTicks();
  const ours = harnessTicks();
  const tck = clockTicks();
  return () => {
    const seconds = (Date.now() - startedAt) / 1000;
    const other = (machineBusyTicks() - busy) - (harnessTicks() - ours);
    return Math.max(0, other / tck / seconds / os.availableParallelism() * 100);
  };
}

/** Commit (flagging uncommitted src/ changes) and dist/cli.js build time of the checkout `root`. */
export function build(root) {
  const tryExec = (cmd, args) => { try { return execFileSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; } };
  const cli = path.join(root, 'dist', 'cli.js');
  return {
    commit: `${tryExec('git', ['-C', root, 'rev-parse', '--short', 'HEAD']) ?? '?'}${tryExec('git', ['-C', root, 'status', '--porcelain', '--', 'src']) ? ' (src has uncommitted changes)' : ''}`,
    built: fs.existsSync(cli) ? fs.statSync(cli).mtime.toISOString() : 'missing',
  };
}

/** The machine and the build a report describes: cores, CPU, memory, kernel, Node, Redis, the checkout `root`'s commit and build time. */
export function machineInfo(root) {
  const own = build(root);
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? '?',
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    redis: versionOf('redis-server', ['--version']).replace(/^Redis server v=(\S+).*$/, '$1'),
    'redis-proxy commit': own.commit,
    'dist/cli.js built': own.built,
  };
}

/**
 * Writes a report: `<out>/<prefix><date>.md`, `<out>/<prefix>latest.md` and the JSON file
 * `json`; returns the dated file's path.
 */
export function writeReport({ out, json, prefix = '' }, report, md) {
  fs.mkdirSync(out, { recursive: true });
  const stamp = report.startedAt.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const dated = path.join(out, `${prefix}${stamp}.md`);
  fs.writeFileSync(dated, md);
  fs.writeFileSync(path.join(out, `${prefix}latest.md`), md);
  fs.mkdirSync(path.dirname(json), { recursive: true });
  fs.writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  return dated;
}

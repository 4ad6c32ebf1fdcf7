#!/usr/bin/env node
// Regenerates src/commands/table.json from a real redis-server.
//
// Starts `redis-server` (whatever is on PATH) on a free loopback port in a
// temporary directory, with persistence off, asks it `COMMAND INFO` (every
// command, subcommands nested) and `COMMAND DOCS` (for the group of each
// command), writes one sorted, deterministic JSON file and stops the server.
//
// Usage: node scripts/gen-commands.mjs [--out path] [--redis-server path]
//
// Reply shapes: https://redis.io/docs/latest/commands/command-info/ and
// https://redis.io/docs/latest/commands/command-docs/

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import RedisParser from 'redis-parser';

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const opts = {
    out: path.resolve(here, '..', 'src', 'commands', 'table.json'),
    server: 'redis-server',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') opts.out = path.resolve(argv[++i]);
    else if (a === '--redis-server') opts.server = argv[++i];
    else throw new Error(`unknown argument: ${a}`);
  }
  return opts;
}

/** Asks the OS for a free TCP port on the loopback interface. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts redis-server; resolves to { child, port, dir } once it accepts connections. */
async function startServer(bin) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'redis-proxy-gen-'));
  const port = await freePort();
  if (port === 6379) throw new Error('refusing to use port 6379');
  const child = spawn(
    bin,
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--logfile', '',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  child.on('error', (err) => { exited = { err }; });

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`redis-server exited early (${JSON.stringify(exited)}):\n${output}`);
    }
    try {
      const client = await Client.connect(port);
      const pong = await client.call('PING');
      client.close();
      if (pong === 'PONG') break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start on port ${port}:\n${output}`);
    }
    await sleep(50);
  }
  return { child, port, dir };
}

async function stopServer({ child, dir }) {
  if (child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
  await rm(dir, { recursive: true, force: true });
}

/** A minimal RESP2 client: one request at a time, replies decoded by redis-parser. */
class Client {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new Client(sock));
      });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.pending = [];
    this.parser = new RedisParser({
      returnReply: (reply) => this.pending.shift()?.resolve(reply),
      returnError: (err) => this.pending.shift()?.reject(err),
      returnFatalError: (err) => this.fail(err),
    });
    sock.on('data', (buf) => this.parser.execute(buf));
    sock.on('error', (err) => this.fail(err));
    sock.on('close', () => this.fail(new Error('connection closed')));
  }

  fail(err) {
    for (const p of this.pending.splice(0)) p.reject(err);
  }

  /** Sends one command as a RESP array of bulk strings. */
  call(...args) {
    let req = `*${args.length}\r\n`;
    for (const a of args) {
      const s = String(a);
      req += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.sock.write(req);
    });
  }

  close() {
    this.sock.destroy();
  }
}

/** RESP2 renders maps as flat [k1, v1, k2, v2, ...] arrays. */
function flatToMap(arr) {
  const m = new Map();
  if (!Array.isArray(arr)) return m;
  for (let i = 0; i + 1 < arr.length; i += 2) m.set(String(arr[i]).toLowerCase(), arr[i + 1]);
  return m;
}

/** Collects name -> group from a COMMAND DOCS reply, subcommands included. */
function collectGroups(docsReply, into = new Map()) {
  for (const [name, doc] of flatToMap(docsReply)) {
    const fields = flatToMap(doc);
    const group = fields.get('group');
    if (typeof group === 'string') into.set(name, group);
    const subs = fields.get('subcommands');
    if (subs) collectGroups(subs, into);
  }
  return into;
}

/** Flattens a COMMAND INFO reply into rows, subcommands as their own rows. */
function collectCommands(infoReply, groups, into = []) {
  for (const entry of infoReply) {
    if (!Array.isArray(entry)) continue; // unknown command names reply nil
    const [name, arity, flags, firstKey, lastKey, step, , , , subcommands] = entry;
    const lname = String(name).toLowerCase();
    into.push({
      name: lname,
      arity: Number(arity),
      flags: (Array.isArray(flags) ? flags.map((f) => String(f).toLowerCase()) : []).sort(),
      firstKey: Number(firstKey),
      lastKey: Number(lastKey),
      step: Number(step),
      group: groups.get(lname) ?? '',
    });
    if (Array.isArray(subcommands)) collectCommands(subcommands, groups, into);
  }
  return into;
}

function render(version, rows) {
  rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const lines = rows.map((r) => JSON.stringify(r));
  return (
    '{\n' +
    `"source": ${JSON.stringify(`redis-server ${version}: COMMAND INFO + COMMAND DOCS (scripts/gen-commands.mjs)`)},\n` +
    `"redisVersion": ${JSON.stringify(version)},\n` +
    '"commands": [\n' +
    lines.join(',\n') +
    '\n]\n}\n'
  );
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const server = await startServer(opts.server);
  let client;
  try {
    client = await Client.connect(server.port);
    const serverInfo = String(await client.call('INFO', 'server'));
    const version = /redis_version:([^\r\n]+)/.exec(serverInfo)?.[1] ?? 'unknown';
    const infoReply = await client.call('COMMAND', 'INFO');
    const docsReply = await client.call('COMMAND', 'DOCS');
    const groups = collectGroups(docsReply);
    const rows = collectCommands(infoReply, groups);
    const missing = rows.filter((r) => r.group === '').map((r) => r.name);
    if (missing.length) console.warn(`warning: no group in COMMAND DOCS for: ${missing.join(', ')}`);
    await writeFile(opts.out, render(version, rows));
    const subs = rows.filter((r) => r.name.includes('|')).length;
    console.log(
      `wrote ${path.relative(process.cwd(), opts.out)}: ${rows.length - subs} commands, ` +
        `${subs} subcommands (redis ${version})`,
    );
  } finally {
    client?.close();
    await stopServer(server);
  }
}

main().catch((err) => {
  console.error(err?.stack ?? err);
  process.exitCode = 1;
});

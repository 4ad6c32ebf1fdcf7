/**
 * Self-test of the test harness against real redis-server processes: if this file
 * fails, the other integration tests' failures say nothing about the proxy.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/proxy.js';
import { rawCommand } from '../helpers/raw.js';
import { startRedis, startReplicaSet } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

t.test('startReplicaSet: replicas are linked and receive the master\'s writes', async (t) => {
  const set = await startReplicaSet({ replicas: 2, t });
  t.equal(set.replicas.length, 2);
  for (const replica of set.replicas) {
    const info = await replica.info('replication');
    t.equal(info.role, 'slave', `${replica.port} is a replica`);
    t.equal(info.master_port, String(set.master.port), `${replica.port} follows the master`);
    t.equal(info.master_link_status, 'up');
  }
  t.equal((await set.master.info('replication')).connected_slaves, '2');

  await set.master.client().set('harness:key', 'value');
  await set.sync();
  for (const replica of set.replicas) {
    t.equal(await replica.client().get('harness:key'), 'value', `replica ${replica.port} has the write`);
  }
});

t.test('commandCalls counts the calls a server executed; resetStats clears them', async (t) => {
  const server = await startRedis({ t });
  const client = server.client();
  t.equal(await server.commandCalls('get'), 0);
  for (let i = 0; i < 7; i++) await client.get('k');
  await client.object('ENCODING', 'nokey').catch(() => null);
  t.equal(await server.commandCalls('get'), 7);
  t.equal(await server.commandCalls('GET'), 7, 'case-insensitive');
  t.equal(await server.commandCalls('object|encoding'), 1, 'subcommands are counted as cmd|sub');
  await server.resetStats();
  t.equal(await server.commandCalls('get'), 0);
});

t.test('stop() ends the process and kill() sends a signal', async (t) => {
  const a = await startRedis({ t });
  const b = await startRedis({ t });
  t.not(a.port, b.port);
  await a.stop();
  t.throws(() => process.kill(a.pid, 0), 'stopped server process is gone');
  await a.stop(); // idempotent
  b.kill('SIGKILL');
  await b.exited();
  t.throws(() => process.kill(b.pid, 0), 'killed server process is gone');
  const refused = await rawCommand(b.port, 'PING\r\n', { timeoutMs: 500 });
  t.ok(refused.error, 'connecting to a killed server fails');
});

t.test('rawCommand: inline and RESP requests, byte by byte, protocol errors', async (t) => {
  const server = await startRedis({ t });
  t.equal((await rawCommand(server.port, 'PING\r\n')).text, '+PONG\r\n');
  const setGet = await rawCommand(server.port, '*3\r\n$3\r\nSET\r\n$1\r\na\r\n$2\r\nbc\r\nGET a\r\n', {
    replies: 2,
  });
  t.equal(setGet.text, '+OK\r\n$2\r\nbc\r\n');
  const slow = await rawCommand(server.port, '*2\r\n$3\r\nGET\r\n$1\r\na\r\n', { byteDelayMs: [1, 3] });
  t.equal(slow.text, '$2\r\nbc\r\n');
  const bad = await rawCommand(server.port, '*1\r\n:1\r\n', { untilClosed: true });
  t.match(bad.text, /^-ERR Protocol error/);
  t.ok(bad.closed, 'redis closes the connection after a protocol error');
});

t.test('a server dies with its test process, even when that is SIGKILLed', async (t) => {
  // Runs the fixture the way tap runs test files (its TypeScript loader).
  const loader = path.join(repoRoot, 'node_modules/@tapjs/typescript/dist/esm/import.mjs');
  const holder = spawn(process.execPath, [`--import=file://${loader}`, path.join(repoRoot, 'test/helpers/fixtures/hold-redis.ts')], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => void holder.kill('SIGKILL'));
  let out = '';
  holder.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  holder.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const ready = await waitFor('the fixture to start a server', () => /READY (\d+) (\S+)/.exec(out), {
    timeoutMs: 20_000,
    intervalMs: 50,
  }).catch((err: Error) => {
    throw new Error(`${err.message}\n${out}`);
  });
  const pid = Number(ready[1]);
  const dir = ready[2]!;
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  t.ok(alive(), 'the fixture\'s redis-server runs');
  holder.kill('SIGKILL');
  await waitFor('the orphaned redis-server to be killed', () => !alive(), { timeoutMs: 4000, intervalMs: 50 });
  t.pass('the redis-server is gone');
  await waitFor('its directory to be removed', () => !existsSync(dir), { timeoutMs: 2000, intervalMs: 50 });
  t.pass('its temporary directory is gone');
});

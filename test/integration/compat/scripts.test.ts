/**
 * Drop-in compatibility: Lua scripts and functions. Read-only scripts (EVALSHA_RO,
 * EVAL_RO, FCALL_RO) are served by replicas and succeed even when the script was only
 * loaded on the master; scripts that write run on the master; ioredis's defineCommand
 * (EVALSHA with EVAL fallback) works.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { callsDuring, callsDuringMany, sum, waitForReplicaReads } from '../../helpers/stats.js';
import { compareSession, waitFor } from './_helpers.js';

const set = await startReplicaSet({ replicas: 2 });
const { master, replicas } = set;
const all = [master, ...replicas];
const { port } = await startTestProxy([listenerFor(master, replicas)]);
await waitForReplicaReads(replicas, () => ioredisClient(port).get('sc:warm'));
const r = ioredisClient(port);

const sha1 = (body: string) => createHash('sha1').update(body).digest('hex');
const READ = "return redis.call('GET', KEYS[1])";

t.before(async () => {
  await r.set('sc:k', 'value');
  await set.sync();
});

t.test('SCRIPT LOAD through the proxy, then EVALSHA_RO is served by a replica and succeeds', async (t) => {
  const sha = (await r.script('LOAD', READ)) as string;
  t.equal(sha, sha1(READ), 'SCRIPT LOAD returns the SHA1 of the body');
  await waitFor('every node to know the script', async () => {
    const known = await Promise.all(all.map((s) => s.client().script('EXISTS', sha) as Promise<number[]>));
    return known.every((k) => k[0] === 1);
  }, { timeoutMs: 3000 }).catch(() => undefined);
  const known = await Promise.all(all.map((s) => s.client().script('EXISTS', sha) as Promise<number[]>));
  t.same(known, all.map(() => [1]), 'SCRIPT EXISTS on the master and each replica');
  const results: unknown[] = [];
  const calls = await callsDuring(all, 'evalsha_ro', async () => {
    for (let i = 0; i < 6; i++) results.push(await r.call('EVALSHA_RO', sha, '1', 'sc:k'));
  });
  t.same(results, Array(6).fill('value'), 'EVALSHA_RO returns the value');
  t.equal(calls[0], 0, 'the master ran none');
  t.equal(sum(calls.slice(1)), 6, `the replicas ran them all (${JSON.stringify(calls)})`);
});

t.test('EVALSHA_RO of a script loaded only on the master (not through the proxy) still succeeds', async (t) => {
  const body = `${READ} -- loaded on the master only`;
  const sha = (await master.client().script('LOAD', body)) as string;
  const onReplicas = await Promise.all(replicas.map((s) => s.client().script('EXISTS', sha) as Promise<number[]>));
  t.same(onReplicas, replicas.map(() => [0]), 'setup: the replicas do not have it');
  const results: unknown[] = [];
  for (let i = 0; i < 6; i++) {
    results.push(await r.call('EVALSHA_RO', sha, '1', 'sc:k').catch((err: Error) => `error: ${err.message}`));
  }
  t.same(results, Array(6).fill('value'), 'every call succeeds (a replica NOSCRIPT is retried on the master)');
});

t.test('EVAL_RO reads on a replica; writes from a read-only script get the same error as from Redis', async (t) => {
  const calls = await callsDuring(all, 'eval_ro', async () => {
    t.equal(await r.call('EVAL_RO', READ, '1', 'sc:k'), 'value');
  });
  t.equal(calls[0], 0, 'not on the master');
  t.equal(sum(calls.slice(1)), 1, 'on a replica');
  await compareSession(t, master.port, port, [
    ['EVAL_RO', "return redis.call('SET', KEYS[1], 'x')", '1', 'sc:ro'],
    ['EVAL_RO', 'return 1', '0'],
  ]);
});

t.test('EVAL and EVALSHA that write go to the master', async (t) => {
  const WRITE = "return redis.call('SET', KEYS[1], ARGV[1])";
  const calls = await callsDuringMany(all, ['eval', 'evalsha'], async () => {
    t.equal(await r.eval(WRITE, 1, 'sc:w', 'one'), 'OK');
    const sha = (await r.script('LOAD', WRITE)) as string;
    t.equal(await r.evalsha(sha, 1, 'sc:w2', 'two'), 'OK');
  });
  t.same(calls.eval, [1, 0, 0], 'EVAL ran on the master only');
  t.same(calls.evalsha, [1, 0, 0], 'EVALSHA ran on the master only');
  t.equal(await master.client().get('sc:w'), 'one');
  t.equal(await master.client().get('sc:w2'), 'two');
  await set.sync();
  t.equal(await r.get('sc:w'), 'one', 'replicated');
});

t.test('FUNCTION LOAD through the proxy, then FCALL_RO (replica) and FCALL (master)', async (t) => {
  const lib = [
    '#!lua name=compatlib',
    "redis.register_function{function_name='compat_get', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}",
    "redis.register_function('compat_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)",
  ].join('\n');
  t.equal(await r.call('FUNCTION', 'LOAD', lib), 'compatlib');
  await set.sync();
  const calls = await callsDuringMany(all, ['fcall_ro', 'fcall'], async () => {
    for (let i = 0; i < 4; i++) t.equal(await r.call('FCALL_RO', 'compat_get', '1', 'sc:k'), 'value', 'FCALL_RO returns the value');
    t.equal(await r.call('FCALL', 'compat_set', '1', 'sc:f', 'fv'), 'OK', 'FCALL writes');
  });
  t.equal(calls.fcall_ro![0], 0, 'FCALL_RO not on the master');
  t.equal(sum(calls.fcall_ro!.slice(1)), 4, 'FCALL_RO on the replicas');
  t.same(calls.fcall, [1, 0, 0], 'FCALL on the master');
  t.equal(await master.client().get('sc:f'), 'fv');
  await compareSession(t, master.port, port, [
    ['FCALL_RO', 'compat_set', '1', 'sc:x', 'y'],
    ['FUNCTION', 'LOAD', lib],
  ]);
});

t.test('ioredis defineCommand (EVALSHA, EVAL on NOSCRIPT) works, writing and read-only', async (t) => {
  const client = ioredisClient(port) as ReturnType<typeof ioredisClient> & {
    compatIncrBy(key: string, by: number): Promise<number>;
    compatGet(key: string): Promise<string | null>;
  };
  const tag = Date.now();
  client.defineCommand('compatIncrBy', { numberOfKeys: 1, lua: `return redis.call('INCRBY', KEYS[1], ARGV[1]) -- ${tag}` });
  client.defineCommand('compatGet', { numberOfKeys: 1, lua: `return redis.call('GET', KEYS[1]) -- ${tag}`, readOnly: true });
  t.equal(await client.compatIncrBy('sc:n', 5), 5, 'first call (script not cached anywhere yet)');
  t.equal(await client.compatIncrBy('sc:n', 5), 10, 'second call');
  t.equal(await master.client().get('sc:n'), '10', 'the writes reached the master');
  await set.sync();
  t.equal(await client.compatGet('sc:k'), 'value', 'read-only defined command');
  t.equal(await client.compatGet('sc:k'), 'value', 'again');
  const pipeline = client.pipeline() as ReturnType<typeof client.pipeline> & { compatIncrBy(key: string, by: number): typeof pipeline };
  const pipelined = await pipeline.compatIncrBy('sc:n', 1).compatIncrBy('sc:n', 1).exec();
  t.same(pipelined, [[null, 11], [null, 12]], 'in a pipeline');
});

t.test('SCRIPT FLUSH through the proxy empties the script cache of every node', async (t) => {
  const sha = (await r.script('LOAD', `${READ} -- to flush`)) as string;
  await waitFor('replicas to know the script', async () => {
    const known = await Promise.all(replicas.map((s) => s.client().script('EXISTS', sha) as Promise<number[]>));
    return known.every((k) => k[0] === 1);
  }, { timeoutMs: 3000 }).catch(() => undefined);
  t.equal(await r.script('FLUSH'), 'OK');
  await waitFor('every node to forget it', async () => {
    const known = await Promise.all(all.map((s) => s.client().script('EXISTS', sha) as Promise<number[]>));
    return known.every((k) => k[0] === 0);
  }, { timeoutMs: 3000 }).catch(() => undefined);
  const known = await Promise.all(all.map((s) => s.client().script('EXISTS', sha) as Promise<number[]>));
  t.same(known, all.map(() => [0]), 'gone from the master and the replicas');
});

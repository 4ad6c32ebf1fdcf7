/**
 * Routing: which node serves each command, seen from the nodes' INFO commandstats.
 * Writes go to the master, reads to the replicas (round-robin by weight), as the read
 * policy says; unknown commands go to the master and their errors come back verbatim.
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawCommand } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { callsDuring, callsDuringMany, sum, waitForReplicaReads } from '../helpers/stats.js';

const set = await startReplicaSet({ replicas: 2 });
const { master, replicas } = set;
const [r1, r2] = replicas as [typeof replicas[0], typeof replicas[0]];
const all = [master, r1, r2];

// Data the reads below can find on every node.
await master.client().mset('route:a', 'A', 'route:b', 'B', 'route:n', '1');
await set.sync();

// Eventual reads: this file checks which node each kind of command goes to. Under the
// default causal reads, a read sent right after a write it may depend on (EVAL_RO after
// EVAL: a script's keys are not known) goes to the master until the replicas are known
// to have it; that is tested in ./causal/.
const { port } = await startTestProxy([listenerFor(master, [r1, r2], { causalReads: 'none' })]);
const client = ioredisClient(port);
await waitForReplicaReads(replicas, () => client.get('route:a'));

t.test('GET and other reads are served by replicas, not the master', async (t) => {
  const calls = await callsDuringMany(all, ['get', 'mget', 'strlen', 'exists'], async () => {
    for (let i = 0; i < 20; i++) t.equal(await client.get('route:a'), 'A');
    t.same(await client.mget('route:a', 'route:b'), ['A', 'B']);
    t.equal(await client.strlen('route:b'), 1);
    t.equal(await client.exists('route:a', 'route:missing'), 1);
  });
  t.equal(calls.get![0], 0, 'master served no GET');
  t.equal(sum(calls.get!), 20, 'all 20 GETs were served by replicas');
  for (const cmd of ['mget', 'strlen', 'exists']) {
    t.equal(calls[cmd]![0], 0, `master served no ${cmd}`);
    t.equal(sum(calls[cmd]!), 1, `${cmd} served by a replica`);
  }
});

t.test('SET, INCR and DEL are served by the master', async (t) => {
  const calls = await callsDuringMany(all, ['set', 'incr', 'del'], async () => {
    for (let i = 0; i < 10; i++) t.equal(await client.set(`route:w${i}`, 'v'), 'OK');
    t.equal(await client.incr('route:counter'), 1);
    t.equal(await client.incr('route:counter'), 2);
    t.equal(await client.del('route:w0', 'route:w1'), 2);
  });
  // Replicas execute the replicated writes too, so only the master's counts are exact.
  t.equal(calls.set![0], 10, 'master executed the 10 SETs');
  t.equal(calls.incr![0], 2, 'master executed both INCRs');
  t.equal(calls.del![0], 1, 'master executed the DEL');
});

t.test('reads are spread round-robin over two replicas', async (t) => {
  const calls = await callsDuring(all, 'get', async () => {
    for (let i = 0; i < 100; i++) await client.get('route:a');
  });
  t.equal(calls[0], 0, 'master served none');
  t.equal(calls[1]! + calls[2]!, 100);
  t.ok(calls[1]! >= 40 && calls[1]! <= 60, `replica 1 served ${calls[1]} of 100 (want 40-60)`);
  t.ok(calls[2]! >= 40 && calls[2]! <= 60, `replica 2 served ${calls[2]} of 100 (want 40-60)`);

  const pipelined = await callsDuring(all, 'get', async () => {
    const pipeline = client.pipeline();
    for (let i = 0; i < 100; i++) pipeline.get('route:a');
    const replies = await pipeline.exec();
    t.ok(replies!.every(([err, value]) => err === null && value === 'A'), 'every reply is A');
  });
  t.equal(pipelined[0], 0, 'pipelined: master served none');
  t.ok(
    pipelined[1]! >= 40 && pipelined[2]! >= 40,
    `pipelined GETs spread too: ${pipelined[1]} / ${pipelined[2]}`,
  );
});

t.test('replica weights set the share of reads (1 : 3)', async (t) => {
  const weighted = await startTestProxy(
    [listenerFor(master, [{ server: r1, weight: 1 }, { server: r2, weight: 3 }])],
    { t },
  );
  const c = ioredisClient(weighted.port);
  await waitForReplicaReads(replicas, () => c.get('route:a'));
  const calls = await callsDuring(all, 'get', async () => {
    for (let i = 0; i < 400; i++) await c.get('route:a');
  });
  t.equal(calls[0], 0, 'master served none');
  t.ok(calls[1]! >= 70 && calls[1]! <= 130, `weight 1 replica served ${calls[1]} of 400 (want ~100)`);
  t.ok(calls[2]! >= 270 && calls[2]! <= 330, `weight 3 replica served ${calls[2]} of 400 (want ~300)`);
});

t.test('readPolicy master: reads are served by the master only', async (t) => {
  const p = await startTestProxy([listenerFor(master, [r1, r2], { readPolicy: 'master' })], { t });
  const c = ioredisClient(p.port);
  await c.get('route:a'); // connected and warmed up
  const calls = await callsDuring(all, 'get', async () => {
    for (let i = 0; i < 30; i++) t.equal(await c.get('route:a'), 'A');
  });
  t.same(calls, [30, 0, 0]);
});

t.test('readPolicy replica: reads are served by replicas only', async (t) => {
  const p = await startTestProxy([listenerFor(master, [r1, r2], { readPolicy: 'replica' })], { t });
  const c = ioredisClient(p.port);
  await waitForReplicaReads(replicas, () => c.get('route:a').catch(() => null));
  const calls = await callsDuring(all, 'get', async () => {
    for (let i = 0; i < 30; i++) t.equal(await c.get('route:a'), 'A');
  });
  t.equal(calls[0], 0, 'master served none');
  t.equal(calls[1]! + calls[2]!, 30);
  t.ok(calls[1]! > 0 && calls[2]! > 0, `both replicas served reads: ${calls.slice(1)}`);
});

t.test('readPolicy any: reads are spread over the master and the replicas', async (t) => {
  const p = await startTestProxy([listenerFor(master, [r1, r2], { readPolicy: 'any' })], { t });
  const c = ioredisClient(p.port);
  await waitForReplicaReads(replicas, () => c.get('route:a'));
  const calls = await callsDuring(all, 'get', async () => {
    for (let i = 0; i < 300; i++) t.equal(await c.get('route:a'), 'A');
  });
  t.equal(sum(calls), 300);
  for (const [i, name] of ['master', 'replica 1', 'replica 2'].entries()) {
    t.ok(calls[i]! >= 60, `${name} served ${calls[i]} of 300 (want at least 60)`);
  }
});

t.test('EVAL is a write (master); EVAL_RO is a read (replica)', async (t) => {
  const calls = await callsDuringMany(all, ['eval', 'eval_ro'], async () => {
    t.equal(
      await client.eval("return redis.call('set', KEYS[1], ARGV[1])", 1, 'route:eval', 'x'),
      'OK',
    );
    for (let i = 0; i < 4; i++) {
      t.equal(
        await client.call('EVAL_RO', "return redis.call('get', KEYS[1])", '1', 'route:a'),
        'A',
      );
    }
  });
  t.equal(calls.eval![0], 1, 'master ran EVAL');
  t.equal(calls.eval_ro![0], 0, 'master ran no EVAL_RO');
  t.equal(sum(calls.eval_ro!), 4, 'replicas ran the 4 EVAL_RO');
});

t.test('an unknown command goes to the master and its error comes back verbatim', async (t) => {
  const request = encodeCommand('FOOBAR', 'a', 'b');
  const direct = await rawCommand(master.port, request);
  t.match(direct.text, /^-ERR unknown command 'FOOBAR'/, 'what Redis itself says');

  const errorsOn = async () =>
    Promise.all(all.map(async (s) => Number(/count=(\d+)/.exec((await s.info('errorstats')).errorstat_ERR ?? '')?.[1] ?? 0)));
  const before = await errorsOn();
  const viaProxy = await rawCommand(port, request);
  const after = await errorsOn();
  t.equal(viaProxy.text, direct.text, 'the proxy returns Redis\'s error byte for byte');
  t.same(
    after.map((n, i) => n - before[i]!),
    [1, 0, 0],
    'the master (only) answered the unknown command',
  );
  t.equal(await client.get('route:a'), 'A', 'the connection still works afterwards');
});

t.test('CONFIG GET is served by the master', async (t) => {
  const calls = await callsDuring(all, 'config|get', async () => {
    for (let i = 0; i < 3; i++) {
      const reply = (await client.config('GET', 'port')) as string[];
      t.same(reply, ['port', String(master.port)], 'the master\'s port');
    }
  });
  t.same(calls, [3, 0, 0]);
});

t.test('OBJECT ENCODING is a read (replica)', async (t) => {
  const calls = await callsDuring(all, 'object|encoding', async () => {
    for (let i = 0; i < 4; i++) t.equal(await client.object('ENCODING', 'route:n'), 'int');
  });
  t.equal(calls[0], 0, 'master served none');
  t.equal(calls[1]! + calls[2]!, 4);
});

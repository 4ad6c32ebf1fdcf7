/**
 * causalReads "global" and the keys of commands, against a replica forced to lag by
 * 300 ms (_support.ts). Every write goes through proxy connection A, and the read right
 * after it (once A has its reply) through proxy connection B, so only the listener-wide
 * tracking can make the read right; old values are first put on the master directly and
 * waited for on the slow replica, so a read served by the replica would return them.
 *   - multi-key writes and reads (MSET / MGET);
 *   - commands whose keys the proxy does not know are barriers for every key: FLUSHDB,
 *     MOVE, SWAPDB, EVAL with declared and with undeclared keys, EVALSHA, FCALL, EXEC;
 *   - reads without keys (DBSIZE, KEYS, SCAN, RANDOMKEY) see earlier writes;
 *   - keys are per database: SELECT and same-named keys in other databases;
 *   - hashes, sets, sorted sets, lists, counters.
 * Each check also reads the slow replica directly right after, and says what it had
 * (proof that a read served there would have been wrong).
 */
import type { Redis } from 'ioredis';
import t from 'tap';

const tap = t;
import { ioredisClient } from '../../helpers/clients.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { caughtUp, listenerFor, startCausalProxy, startSlowReplicaSet } from './_support.js';

const DELAY = 300;
const set = await startSlowReplicaSet({ delayMs: DELAY });
const { master, slow } = set;
let port = 0;

/** Proxy connections A (writes) and B (reads) per database, and direct ones per server. */
const pairs = new Map<number, { a: Redis; b: Redis }>();
function proxyPair(db = 0) {
  let pair = pairs.get(db);
  if (!pair) {
    pair = { a: ioredisClient(port, { protocol: 2, db }), b: ioredisClient(port, { protocol: 2, db }) };
    pairs.set(db, pair);
  }
  return pair;
}
const direct = new Map<string, Redis>();
function directClient(serverPort: number, db: number): Redis {
  const id = `${serverPort}/${db}`;
  let c = direct.get(id);
  if (!c) direct.set(id, (c = ioredisClient(serverPort, { protocol: 2, db })));
  return c;
}
const onMaster = (db = 0) => directClient(master.port, db);
const onSlow = (db = 0) => directClient(slow.port, db);

t.test('the proxy starts with causalReads: "global"', async (t) => {
  const proxy = await startCausalProxy(t, listenerFor(master, [slow], { causalReads: 'global' }), { scope: tap });
  port = proxy.port;
  await waitForReplicaReads([slow], () => proxyPair(0).b.get('keys:warm'));
  t.pass(`proxy on ${port}, reads reach the slow replica`);
});

/** Runs `seed` on the master directly, then waits until the slow replica has applied it. */
async function seeded(seed: () => Promise<unknown>): Promise<void> {
  await seed();
  await caughtUp(master, slow, 3000);
}

/**
 * `read` through the proxy must return `expected`; `replicaRead` (the same read on the
 * slow replica directly, right after) shows what a replica-served read would have said.
 */
async function expectRead(
  tt: Pick<typeof t, 'same' | 'comment'>,
  label: string,
  read: () => Promise<unknown>,
  expected: unknown,
  replicaRead?: () => Promise<unknown>,
): Promise<void> {
  let got: unknown;
  try {
    got = await read();
  } catch (err) {
    got = `(error: ${(err as Error).message})`;
  }
  const onReplica = replicaRead ? await replicaRead().catch((err: Error) => `(error: ${err.message})`) : undefined;
  const replicaNote = replicaRead
    ? `; the slow replica had ${JSON.stringify(onReplica)}${JSON.stringify(onReplica) === JSON.stringify(expected) ? ' already' : ''}`
    : '';
  tt.comment(`${label}: got ${JSON.stringify(got)}, want ${JSON.stringify(expected)}${replicaNote}`);
  tt.same(got, expected, `${label} -> ${JSON.stringify(got)}${replicaNote}`);
}

t.test('multi-key commands: MSET then MGET, SET then MGET of another key and it', async (t) => {
  const { a, b } = proxyPair(0);
  const m = onMaster(0);
  const r = onSlow(0);
  await seeded(() => m.mset('mk:a', 'old-a', 'mk:b', 'old-b', 'mk:c', 'old-c'));
  t.equal(await a.mset('mk:a', '1', 'mk:b', '2'), 'OK', 'MSET mk:a 1 mk:b 2 through the proxy');
  await expectRead(t, 'MSET mk:a 1 mk:b 2; MGET mk:a mk:b', () => b.mget('mk:a', 'mk:b'), ['1', '2'], () => r.mget('mk:a', 'mk:b'));
  t.equal(await a.set('mk:a', 'x'), 'OK', 'SET mk:a x through the proxy');
  await expectRead(t, 'SET mk:a x; MGET mk:c mk:a', () => b.mget('mk:c', 'mk:a'), ['old-c', 'x'], () => r.mget('mk:c', 'mk:a'));
});

t.test('barriers: commands whose keys the proxy does not know', async (t) => {
  t.test('FLUSHDB', async (t) => {
    const db = 5;
    const { a, b } = proxyPair(db);
    await seeded(() => onMaster(db).set('fl:old', 'old'));
    t.equal(await a.flushdb(), 'OK', 'FLUSHDB through the proxy');
    await expectRead(t, `(db ${db}) FLUSHDB; GET fl:old`, () => b.get('fl:old'), null, () => onSlow(db).get('fl:old'));
  });

  t.test('MOVE k 1', async (t) => {
    const { a, b } = proxyPair(0);
    const b1 = proxyPair(1).b;
    await seeded(async () => {
      await onMaster(0).set('mv:k', 'old');
      await onMaster(1).del('mv:k');
    });
    t.equal(await a.move('mv:k', 1), 1, 'MOVE mv:k 1 through the proxy');
    await expectRead(t, 'MOVE mv:k 1; GET mv:k (db 0)', () => b.get('mv:k'), null, () => onSlow(0).get('mv:k'));
    await expectRead(t, 'MOVE mv:k 1; GET mv:k (db 1)', () => b1.get('mv:k'), 'old', () => onSlow(1).get('mv:k'));
  });

  t.test('SWAPDB', async (t) => {
    // Databases 8 and 9 rather than 0 and 1, so that the other tests' keys stay put.
    const { a, b } = proxyPair(8);
    const b9 = proxyPair(9).b;
    await seeded(async () => {
      await onMaster(8).set('sw:k', 'was-in-8');
      await onMaster(9).set('sw:k', 'was-in-9');
    });
    t.equal(await a.swapdb(8, 9), 'OK', 'SWAPDB 8 9 through the proxy');
    await expectRead(t, 'SWAPDB 8 9; GET sw:k (db 8)', () => b.get('sw:k'), 'was-in-9', () => onSlow(8).get('sw:k'));
    await expectRead(t, 'SWAPDB 8 9; GET sw:k (db 9)', () => b9.get('sw:k'), 'was-in-8', () => onSlow(9).get('sw:k'));
  });

  t.test('EVAL with the key declared', async (t) => {
    const { a, b } = proxyPair(0);
    await seeded(() => onMaster(0).set('ev:k', 'old'));
    await a.eval("redis.call('SET', KEYS[1], ARGV[1])", 1, 'ev:k', 'v');
    await expectRead(t, 'EVAL SET KEYS[1] (1 ev:k v); GET ev:k', () => b.get('ev:k'), 'v', () => onSlow(0).get('ev:k'));
  });

  t.test('EVAL with an undeclared key', async (t) => {
    const { a, b } = proxyPair(0);
    await seeded(() => onMaster(0).set('undeclared', 'old'));
    await a.eval("redis.call('SET', 'undeclared', 'v')", 0);
    await expectRead(t, "EVAL redis.call('SET', 'undeclared', 'v') 0; GET undeclared", () => b.get('undeclared'), 'v', () =>
      onSlow(0).get('undeclared'),
    );
  });

  t.test('EVALSHA with an undeclared key', async (t) => {
    const { a, b } = proxyPair(0);
    const script = "redis.call('SET', 'undeclared:sha', ARGV[1])";
    let sha = '';
    await seeded(async () => {
      await onMaster(0).set('undeclared:sha', 'old');
      sha = String(await onMaster(0).script('LOAD', script));
    });
    await a.evalsha(sha, 0, 'v');
    await expectRead(t, 'EVALSHA (SET undeclared:sha) 0 v; GET undeclared:sha', () => b.get('undeclared:sha'), 'v', () =>
      onSlow(0).get('undeclared:sha'),
    );
  });

  t.test('FCALL with an undeclared key', async (t) => {
    const { a, b } = proxyPair(0);
    const lib =
      "#!lua name=causaltest\nredis.register_function('causal_set', function(keys, args) return redis.call('SET', 'undeclared:fn', args[1]) end)";
    await seeded(async () => {
      await onMaster(0).set('undeclared:fn', 'old');
      await onMaster(0).call('FUNCTION', 'LOAD', 'REPLACE', lib);
    });
    await a.call('FCALL', 'causal_set', 0, 'v');
    await expectRead(t, 'FCALL causal_set 0 v; GET undeclared:fn', () => b.get('undeclared:fn'), 'v', () =>
      onSlow(0).get('undeclared:fn'),
    );
  });

  t.test('MULTI/EXEC', async (t) => {
    const { a, b } = proxyPair(0);
    await seeded(() => onMaster(0).set('tx:k', 'old'));
    await a.multi().set('tx:k', 'v').exec();
    await expectRead(t, 'MULTI; SET tx:k v; EXEC; GET tx:k', () => b.get('tx:k'), 'v', () => onSlow(0).get('tx:k'));
  });
});

t.test('reads without keys see earlier acknowledged writes', async (t) => {
  const db = 10;
  const { a, b } = proxyPair(db);
  const r = onSlow(db);
  await seeded(async () => {
    const m = onMaster(db);
    await m.flushdb();
    await m.mset('nk:1', '1', 'nk:2', '2', 'nk:3', '3');
  });
  await a.set('nk:x', '1');
  await expectRead(t, `(db ${db}, 3 keys) SET nk:x 1; DBSIZE`, () => b.dbsize(), 4, () => r.dbsize());
  await a.set('nk:y', '1');
  await expectRead(
    t,
    'SET nk:y 1; KEYS * includes nk:y',
    async () => (await b.keys('*')).includes('nk:y'),
    true,
    async () => (await r.keys('*')).includes('nk:y'),
  );
  await a.set('nk:z', '1');
  // A small database: one SCAN call with a large COUNT returns every key.
  const scanAll = async (c: Redis) => (await c.scan('0', 'COUNT', 1000))[1].includes('nk:z');
  await expectRead(t, 'SET nk:z 1; SCAN 0 COUNT 1000 includes nk:z', () => scanAll(b), true, () => scanAll(r));

  const db2 = 11;
  const pair2 = proxyPair(db2);
  await seeded(() => onMaster(db2).flushdb());
  await pair2.a.set('rk:only', '1');
  await expectRead(t, `(empty db ${db2}) SET rk:only 1; RANDOMKEY`, () => pair2.b.randomkey(), 'rk:only', () =>
    onSlow(db2).randomkey(),
  );
});

t.test('SELECTed databases: keys are per database', async (t) => {
  await seeded(async () => {
    await onMaster(0).set('sel:k', 'v0-old');
    await onMaster(2).set('sel:k', 'v2-old');
  });
  const p0 = proxyPair(0);
  const p2 = proxyPair(2);
  // A recent write of the same key name in db 0, then one in db 2.
  await p0.a.set('sel:k', 'v0');
  await p2.a.set('sel:k', 'v2');
  await expectRead(t, 'db 0: SET sel:k v0; db 2: SET sel:k v2; GET sel:k in db 2', () => p2.b.get('sel:k'), 'v2', () =>
    onSlow(2).get('sel:k'),
  );
  await expectRead(t, '... GET sel:k in db 0', () => p0.b.get('sel:k'), 'v0', () => onSlow(0).get('sel:k'));

  // One connection that SELECTs: SELECT 2, SET, GET; then back in db 0.
  const c = ioredisClient(port, { protocol: 2 });
  await c.set('sel:j', 'j0');
  await c.select(2);
  await c.set('sel:j', 'j2');
  await expectRead(t, 'SET sel:j j0; SELECT 2; SET sel:j j2; GET sel:j', () => c.get('sel:j'), 'j2', () => onSlow(2).get('sel:j'));
  await expectRead(t, '... GET sel:j in db 2 on connection B', () => p2.b.get('sel:j'), 'j2');
  await c.select(0);
  await expectRead(t, '... SELECT 0; GET sel:j', () => c.get('sel:j'), 'j0', () => onSlow(0).get('sel:j'));
});

t.test('data types: each read sees the write just made', async (t) => {
  const { a, b } = proxyPair(0);
  await seeded(() => onMaster(0).del('dt:h', 'dt:s', 'dt:z', 'dt:l', 'dt:c'));
  const rounds = 20;
  const misses: Record<string, string[]> = { hash: [], set: [], zset: [], list: [], counter: [] };
  for (let i = 0; i < rounds; i++) {
    // Each read on the other connection (B) and on the writer's own (A).
    for (const reader of [b, a]) {
      const who = reader === a ? 'A' : 'B';
      const tag = `${i}${who}`;
      await a.hset('dt:h', 'f', `v${tag}`);
      const h = await reader.hget('dt:h', 'f');
      if (h !== `v${tag}`) misses.hash!.push(`${tag}: ${String(h)}`);

      await a.sadd('dt:s', `m${tag}`);
      const s = await reader.smembers('dt:s');
      if (!s.includes(`m${tag}`)) misses.set!.push(`${tag}: ${s.length} members`);

      const score = 2 * i + (reader === a ? 1 : 0);
      await a.zadd('dt:z', score, `m${tag}`);
      const z = await reader.zrange('dt:z', '0', '-1');
      if (z.at(-1) !== `m${tag}` || z.length !== score + 1) misses.zset!.push(`${tag}: last ${String(z.at(-1))}`);

      await a.lpush('dt:l', `e${tag}`);
      const l = await reader.lrange('dt:l', 0, 0);
      if (l[0] !== `e${tag}`) misses.list!.push(`${tag}: ${String(l[0])}`);

      const n = await a.incr('dt:c');
      const c = await reader.get('dt:c');
      if (c !== String(n)) misses.counter!.push(`${tag}: ${String(c)} (want ${n})`);
    }
  }
  for (const [kind, list] of Object.entries(misses)) {
    t.comment(`${kind}: ${list.length} of ${2 * rounds} reads missed the write${list.length ? ` (first: ${list[0]})` : ''}`);
    t.equal(list.length, 0, `${kind}: ${list.length} of ${2 * rounds} reads right after the write missed it`);
  }
});

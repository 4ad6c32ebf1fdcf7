/**
 * Everyday use of the two common Node.js client libraries through the proxy, with their
 * own connection handshakes (both speak RESP3 by default and open with HELLO 3; ioredis
 * then INFO ready check, CLIENT SETNAME, SELECT; node-redis CLIENT SETINFO, SELECT), and
 * with RESP2. Reads after writes wait for replication (the default consistency is
 * eventual).
 */
import t from 'tap';
import { ioredisClient, nodeRedisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { startReplicaSet } from '../helpers/redis.js';
import { waitForReplicaReads } from '../helpers/stats.js';

const set = await startReplicaSet({ replicas: 2 });
const { port } = await startTestProxy([listenerFor(set.master, set.replicas)]);
const warm = ioredisClient(port);
await waitForReplicaReads(set.replicas, () => warm.get('lib:warm'));

for (const protocol of [3, 2] as const) {
  t.test(`ioredis (RESP${protocol}): strings, hashes, lists, sets, sorted sets`, async (t) => {
    const r = ioredisClient(port, { protocol });
    const k = (name: string) => `io${protocol}:${name}`;
    t.equal(await r.set(k('s'), 'hello', 'EX', 100), 'OK');
    t.equal(await r.hset(k('h'), { a: '1', b: '2' }), 2);
    t.equal(await r.rpush(k('l'), 'x', 'y', 'z'), 3);
    t.equal(await r.sadd(k('set'), 'm1', 'm2'), 2);
    t.equal(await r.zadd(k('z'), '1', 'one', '2', 'two'), 2);
    t.equal(await r.incrby(k('n'), 5), 5);
    await set.sync();
    t.equal(await r.get(k('s')), 'hello');
    t.ok((await r.ttl(k('s'))) > 90, 'TTL kept');
    t.same(await r.hgetall(k('h')), { a: '1', b: '2' });
    t.equal(await r.hget(k('h'), 'b'), '2');
    t.same(await r.lrange(k('l'), 0, -1), ['x', 'y', 'z']);
    t.same((await r.smembers(k('set'))).sort(), ['m1', 'm2']);
    t.same(await r.zrange(k('z'), '0', '-1', 'WITHSCORES'), ['one', '1', 'two', '2']);
    t.equal(await r.type(k('h')), 'hash');
    t.same(await r.getBuffer(k('s')), Buffer.from('hello'));
  });

  t.test(`ioredis (RESP${protocol}): pipeline and multi`, async (t) => {
    const r = ioredisClient(port, { protocol });
    const k = (name: string) => `io${protocol}:${name}`;
    const piped = await r.pipeline().set(k('p'), '1').incr(k('p')).incr(k('p')).exec();
    t.same(piped, [[null, 'OK'], [null, 2], [null, 3]]);
    const tx = await r.multi().incr(k('p')).get(k('p')).exec();
    t.same(tx, [[null, 4], [null, '4']]);
    const withError = await r.pipeline().set(k('pe'), 'a').incr(k('pe')).exec();
    t.equal(withError![0]![1], 'OK');
    t.match(String(withError![1]![0]), /ERR value is not an integer/, 'a per-command error in a pipeline');
  });

  t.test(`ioredis (RESP${protocol}): connectionName, db option (SELECT) and SCAN`, async (t) => {
    const r = ioredisClient(port, { protocol, db: 3, connectionName: 'lib-test' });
    const k = (name: string) => `io${protocol}:${name}`;
    t.equal(await r.set(k('db3'), 'three'), 'OK');
    t.equal(await set.master.client().get(k('db3')), null, 'not in db 0');
    const direct = set.master.client();
    await direct.select(3);
    t.equal(await direct.get(k('db3')), 'three', 'written to db 3 on the master');
    await set.sync();
    t.equal(await r.get(k('db3')), 'three', 'read back from db 3');
    t.equal(await r.client('GETNAME'), 'lib-test');

    const many = ioredisClient(port, { protocol, db: 4 });
    const keys = Array.from({ length: 300 }, (_, i) => k(`scan:${i}`));
    await many.mset(...keys.flatMap((k) => [k, 'v']));
    await set.sync();
    const seen = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await many.scan(cursor, 'MATCH', k('scan:*'), 'COUNT', 20);
      for (const k of batch) seen.add(k);
      cursor = next;
    } while (cursor !== '0');
    t.same([...seen].sort(), [...keys].sort(), 'SCAN through the proxy visits every key');
  });
}

for (const RESP of [3, 2] as const) {
  t.test(`node-redis (RESP${RESP}): strings, hashes, lists, multi`, async (t) => {
    const c = await nodeRedisClient(port, { RESP });
    const k = (name: string) => `nr${RESP}:${name}`;
    t.equal(await c.set(k('s'), 'hello'), 'OK');
    t.equal(await c.hSet(k('h'), { a: '1', b: '2' }), 2);
    t.equal(await c.rPush(k('l'), ['x', 'y']), 2);
    t.equal(await c.incrBy(k('n'), 7), 7);
    await set.sync();
    t.equal(await c.get(k('s')), 'hello');
    t.same({ ...(await c.hGetAll(k('h'))) }, { a: '1', b: '2' });
    t.same(await c.lRange(k('l'), 0, -1), ['x', 'y']);
    t.same(await c.multi().incr(k('n')).get(k('n')).exec(), [8, '8']);
    const many = await Promise.all(Array.from({ length: 200 }, (_, i) => c.incr(k('auto'))));
    t.same(many, Array.from({ length: 200 }, (_, i) => i + 1), 'auto-pipelined INCRs in order');
    t.equal(await c.ping(), 'PONG');
  });
}

t.test('node-redis: database option and client name', async (t) => {
  const c = await nodeRedisClient(port, { database: 5, name: 'nr-lib' });
  t.equal(await c.set('nr:db5', 'five'), 'OK');
  const direct = set.master.client();
  await direct.select(5);
  t.equal(await direct.get('nr:db5'), 'five', 'written to db 5 on the master');
  await set.sync();
  t.equal(await c.get('nr:db5'), 'five');
  t.equal(await c.clientGetName(), 'nr-lib');
  const scanned: string[] = [];
  for await (const keys of c.scanIterator({ MATCH: 'nr:db5*' })) scanned.push(...keys);
  t.same(scanned, ['nr:db5'], 'scanIterator in db 5');
});

/**
 * Drop-in compatibility: iterating the keyspace. With two replicas serving reads, a full
 * SCAN (or HSCAN / SSCAN / ZSCAN) iteration through the proxy returns every element
 * exactly once, whichever client drives it (ioredis scanStream, node-redis scanIterator,
 * redis-cli --scan, a hand-written cursor loop); KEYS, DBSIZE and RANDOMKEY work.
 */
import t from 'tap';
import { ioredisClient, nodeRedisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { callsDuring, waitForReplicaReads } from '../../helpers/stats.js';
import { redisCli } from './_helpers.js';

const set = await startReplicaSet({ replicas: 2 });
const { master, replicas } = set;
const { port } = await startTestProxy([listenerFor(master, replicas)]);
await waitForReplicaReads(replicas, () => ioredisClient(port).get('scan:warm'));

const N = 1000;
const keys = Array.from({ length: N }, (_, i) => `scan:key:${i}`);
const fields = Array.from({ length: N }, (_, i) => `field:${i}`);

t.before(async () => {
  const m = master.client();
  await m.flushall();
  const pipe = m.pipeline();
  for (const k of keys) pipe.set(k, 'v');
  await pipe.exec();
  await m.hset('big:hash', Object.fromEntries(fields.map((f, i) => [f, String(i)])));
  await m.sadd('big:set', ...fields);
  await m.zadd('big:zset', ...fields.flatMap((f, i) => [String(i), f]));
  await set.sync();
});

/** The keys we seeded (the big collections apart). */
const seeded = (found: string[]) => found.filter((k) => k.startsWith('scan:key:'));

function checkExactlyOnce(t: Pick<typeof import('tap').default, 'equal' | 'same'>, found: string[], expected: string[], what: string) {
  t.equal(found.length, expected.length, `${what}: ${found.length} returned for ${expected.length}`);
  t.equal(new Set(found).size, found.length, `${what}: no duplicates`);
  t.same([...new Set(found)].sort(), [...expected].sort(), `${what}: every one`);
}

t.test('a hand-written SCAN cursor loop over raw commands (served by replicas)', async (t) => {
  const r = ioredisClient(port);
  const found: string[] = [];
  const calls = await callsDuring([master, ...replicas], 'scan', async () => {
    let cursor = '0';
    do {
      const [next, page] = (await r.scan(cursor, 'COUNT', 37)) as [string, string[]];
      found.push(...page);
      cursor = next;
    } while (cursor !== '0');
  });
  checkExactlyOnce(t, seeded(found), keys, 'SCAN loop');
  t.equal(found.length, N + 3, 'and the three collections');
  t.equal(calls[0], 0, 'the master ran no SCAN');
  t.ok(calls[1]! + calls[2]! > 10, `replicas ran the SCAN pages (${JSON.stringify(calls)})`);
});

t.test('two SCAN iterations interleaved on one connection, with other reads in between', async (t) => {
  const r = ioredisClient(port);
  const a: string[] = [];
  const b: string[] = [];
  let ca = '0';
  let cb = '0';
  let started = false;
  while (!started || ca !== '0' || cb !== '0') {
    if (!started || ca !== '0') {
      const [next, page] = (await r.scan(ca, 'MATCH', 'scan:key:1*', 'COUNT', 50)) as [string, string[]];
      a.push(...page);
      ca = next;
    }
    await r.get('scan:key:1');
    if (!started || cb !== '0') {
      const [next, page] = (await r.scan(cb, 'COUNT', 80)) as [string, string[]]; 
      b.push(...page);
      cb = next;
    }
    started = true;
  }
  checkExactlyOnce(t, a, keys.filter((k) => k.startsWith('scan:key:1')), 'SCAN MATCH scan:key:1*');
  checkExactlyOnce(t, seeded(b), keys, 'SCAN COUNT 80');
});

t.test('ioredis scanStream', async (t) => {
  const r = ioredisClient(port);
  const found: string[] = [];
  for await (const page of r.scanStream({ count: 50 })) found.push(...(page as string[]));
  checkExactlyOnce(t, seeded(found), keys, 'scanStream');
  const matched: string[] = [];
  for await (const page of r.scanStream({ match: 'scan:key:9*', count: 100 })) matched.push(...(page as string[]));
  checkExactlyOnce(t, matched, keys.filter((k) => k.startsWith('scan:key:9')), 'scanStream match');
});

for (const RESP of [3, 2] as const) {
  t.test(`node-redis scanIterator (RESP${RESP})`, async (t) => {
    const r = await nodeRedisClient(port, { RESP });
    const found: string[] = [];
    for await (const page of r.scanIterator({ COUNT: 60 })) found.push(...(page as string[]));
    checkExactlyOnce(t, seeded(found), keys, 'scanIterator');
  });
}

t.test('redis-cli --scan', async (t) => {
  const res = await redisCli(['-p', String(port), '--scan']);
  t.equal(res.code, 0, `exit 0 ${res.stderr}`);
  const found = res.stdout.split('\n').filter((l) => l !== '');
  checkExactlyOnce(t, seeded(found), keys, 'redis-cli --scan');
});

t.test('HSCAN, SSCAN, ZSCAN on big collections return each element once', async (t) => {
  const r = ioredisClient(port);
  const h: string[] = [];
  for await (const page of r.hscanStream('big:hash', { count: 30 })) {
    const p = page as string[];
    for (let i = 0; i < p.length; i += 2) h.push(p[i]!);
  }
  checkExactlyOnce(t, h, fields, 'hscanStream');
  const s: string[] = [];
  for await (const page of r.sscanStream('big:set', { count: 30 })) s.push(...(page as string[]));
  checkExactlyOnce(t, s, fields, 'sscanStream');
  const z: string[] = [];
  for await (const page of r.zscanStream('big:zset', { count: 30 })) {
    const p = page as string[];
    for (let i = 0; i < p.length; i += 2) z.push(p[i]!);
  }
  checkExactlyOnce(t, z, fields, 'zscanStream');

  const nr = await nodeRedisClient(port);
  const nh: string[] = [];
  for await (const entries of nr.hScanIterator('big:hash', { COUNT: 45 })) nh.push(...entries.map((e) => e.field));
  checkExactlyOnce(t, nh, fields, 'node-redis hScanIterator');

  let cursor = '0';
  const raw: string[] = [];
  do {
    const [next, page] = (await r.hscan('big:hash', cursor, 'COUNT', 25)) as [string, string[]];
    for (let i = 0; i < page.length; i += 2) raw.push(page[i]!);
    cursor = next;
  } while (cursor !== '0');
  checkExactlyOnce(t, raw, fields, 'HSCAN loop');
});

t.test('KEYS *, DBSIZE, RANDOMKEY', async (t) => {
  const r = ioredisClient(port);
  const all = await r.keys('*');
  checkExactlyOnce(t, seeded(all), keys, 'KEYS *');
  t.equal(all.length, N + 3);
  t.same((await r.keys('scan:key:99*')).sort(), keys.filter((k) => k.startsWith('scan:key:99')).sort(), 'KEYS with a pattern');
  t.equal(await r.dbsize(), N + 3, 'DBSIZE');
  t.equal(await r.dbsize(), await master.client().dbsize(), "DBSIZE equals the master's");
  const random = new Set<string>();
  for (let i = 0; i < 10; i++) random.add((await r.randomkey())!);
  t.ok([...random].every((k) => all.includes(k)), `RANDOMKEY returns existing keys: ${[...random].join(' ')}`);
  t.ok(random.size > 1, 'and not always the same');
  const empty = ioredisClient(port, { db: 9 });
  t.equal(await empty.randomkey(), null, 'RANDOMKEY on an empty database');
  t.same(await empty.keys('*'), []);
  t.equal(await empty.dbsize(), 0);
});

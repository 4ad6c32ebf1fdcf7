/**
 * The near cache (`nearCache`, `http.cache`), against a real master and replica:
 * - RESP GET answered from memory (INFO commandstats on both nodes: no GET reached Redis),
 *   in RESP2 and RESP3, per database;
 * - a write through the proxy drops its key before it is acknowledged: a GET on another
 *   connection right after the SET's reply always has the new value;
 * - a key changed or deleted directly on the master (not through the proxy) is never
 *   served from the cache once the invalidation has arrived (replica tracking under readPolicy replica,
 *   the master's under readPolicy master), and the window is measured;
 * - eviction by count and by bytes; a flush on FLUSHALL (null invalidation) and when the
 *   tracking connection is killed.
 */
import http from 'node:http';
import type { Redis } from 'ioredis';
import t from 'tap';
import { freePort, ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../helpers/raw.js';
import { parseInfo, startReplicaSet, type RedisServer } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/** INFO proxy of the proxy on `client`'s port, parsed. */
async function cacheInfo(client: Redis): Promise<Record<string, number>> {
  const fields = parseInfo(String(await client.info('proxy')));
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(fields)) if (k.startsWith('near_cache_') || k.startsWith('http_')) out[k] = Number(v);
  return out;
}

function httpGet(port: number, target: string): Promise<{ status: number; cache: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: target, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cache: res.headers['x-cache'] as string | undefined, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
  });
}

/** GET calls on every server. */
async function getCalls(servers: RedisServer[]): Promise<number> {
  let n = 0;
  for (const s of servers) n += await s.commandCalls('get');
  return n;
}

t.test('RESP GET served from memory, RESP2 and RESP3, per database', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const tp = await startTestProxy([listenerFor(set.master, set.replicas, { nearCache: { maxKeys: 100, ttl: 60_000 } })], { t });
  const client = ioredisClient(tp.port);
  await client.set('hot', 'value-0');
  t.equal(await client.get('hot'), 'value-0', 'the first GET goes to Redis');
  await waitFor('the background fill', async () => (await cacheInfo(client)).near_cache_entries === 1);
  const servers = [set.master, ...set.replicas];
  await set.resetStats();
  for (let i = 0; i < 20; i++) t.equal(await client.get('hot'), 'value-0');
  t.equal(await getCalls(servers), 0, 'no GET reached Redis: every one was answered from memory');
  t.ok((await cacheInfo(client)).near_cache_hits >= 20);

  // RESP3: the same bulk string; CLIENT REPLY OFF: nothing at all.
  const raw = await rawConnection(tp.port);
  const hello = await raw.send('HELLO 3\r\n');
  t.match(hello[0]!.toString(), /^%/, 'RESP3 now');
  const [resp3] = await raw.send(encodeCommand('GET', 'hot'));
  t.equal(resp3!.toString(), '$7\r\nvalue-0\r\n');
  const replies = await raw.send(Buffer.concat([encodeCommand('CLIENT', 'REPLY', 'OFF'), encodeCommand('GET', 'hot'), encodeCommand('CLIENT', 'REPLY', 'ON')]), 1);
  t.same(replies.map(String), ['+OK\r\n'], 'under CLIENT REPLY OFF the cached GET is silent too');

  // Database 1 has no `hot`: the cache is keyed by database.
  const db1 = ioredisClient(tp.port, { db: 1 });
  t.equal(await db1.get('hot'), null);
  await db1.set('hot', 'db1-value');
  t.equal(await db1.get('hot'), 'db1-value');
  t.equal(await client.get('hot'), 'value-0', 'db 0 still has its own value');
  t.ok((await getCalls(servers)) >= 3, "the GETs of db 1, and the db-0 GET after the db-1 SET (which dropped `hot` in every database), went to Redis");
});

// causalReads none with readPolicy master: only the cache's own drops keep reads fresh (a
// read that misses goes to the master); the default (global) adds causal reads' check.
for (const settings of [{}, { readPolicy: 'master', causalReads: 'none' }]) {
t.test(`a write through the proxy drops the key before its reply: the next GET always has it ${JSON.stringify(settings)}`, async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const tp = await startTestProxy([listenerFor(set.master, set.replicas, { ...settings, nearCache: { maxKeys: 100, ttl: 60_000 } })], { t });
  const writer = ioredisClient(tp.port);
  const reader = ioredisClient(tp.port);
  await writer.set('k', '0');
  await reader.get('k');
  let hits = 0;
  let stale = 0;
  for (let i = 1; i <= 300; i++) {
    // Several reads between writes, so the cache is filled and hit in between.
    for (let j = 0; j < 3; j++) if ((await reader.get('k')) !== String(i - 1)) stale++;
    await writer.set('k', String(i));
    if ((await reader.get('k')) !== String(i)) stale++;
    if (i % 50 === 0) hits = (await cacheInfo(reader)).near_cache_hits;
  }
  t.equal(stale, 0, 'no read saw a value older than an acknowledged write');
  t.ok(hits > 100, `the cache served reads in between (${hits} hits)`);
  const pipelined = await writer.pipeline().set('k', 'p').get('k').exec();
  t.same(pipelined?.map((r) => r[1]), ['OK', 'p'], 'a pipelined SET then GET reads the write');
  await writer.del('k');
  t.equal(await reader.get('k'), null, 'DEL drops it too');
  await writer.set('k', 'again');
  await reader.get('k');
  await writer.flushdb();
  t.equal(await reader.get('k'), null, 'FLUSHDB (keys unknown) flushes');
  t.ok((await cacheInfo(reader)).near_cache_flushes >= 1);
});
}

for (const readPolicy of ['replica', 'master'] as const) {
  t.test(`a write made around the proxy: invalidated by the ${readPolicy} (readPolicy ${readPolicy})`, async (t) => {
    const set = await startReplicaSet({ replicas: 1, t });
    const tp = await startTestProxy([listenerFor(set.master, set.replicas, { readPolicy, nearCache: { maxKeys: 100, ttl: 60_000 } })], { t });
    const client = ioredisClient(tp.port);
    const direct = set.master.client();
    const windows: number[] = [];
    for (let round = 0; round < 20; round++) {
      await direct.set('around', `old-${round}`);
      await set.sync();
      await waitFor('the value cached', async () => {
        await client.get('around');
        return (await cacheInfo(client)).near_cache_entries === 1;
      });
      t.equal(await client.get('around'), `old-${round}`);
      const before = (await cacheInfo(client)).near_cache_invalidations;
      // Odd rounds delete the key instead of changing it.
      const fresh = round % 2 === 1 ? null : `new-${round}`;
      const written = performance.now();
      if (fresh === null) await direct.del('around');
      else await direct.set('around', fresh);
      // Until the invalidation arrives the old value may be served; once it has, never.
      let arrived = false;
      for (;;) {
        const invalidated = (await cacheInfo(client)).near_cache_invalidations > before;
        const value = await client.get('around');
        if (arrived && value !== fresh) t.fail(`round ${round}: ${value} served after the invalidation arrived`);
        if (invalidated && !arrived) {
          arrived = true;
          windows.push(performance.now() - written);
          t.equal(await client.get('around'), fresh, 'the new value (or none) once the invalidation is in');
        }
        if (arrived) break;
        if (performance.now() - written > 2000) {
          t.fail(`round ${round}: no invalidation within 2 s`);
          break;
        }
      }
    }
    windows.sort((a, b) => a - b);
    t.comment(`invalidation window (write on the master to invalidation seen, ms): median ${windows[10]?.toFixed(2)}, max ${windows.at(-1)?.toFixed(2)}`);
    t.equal(windows.length, 20);
  });
}

t.test('eviction by count and by bytes; flushed by FLUSHALL and by a lost tracking connection', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const byCount = await freePort();
  const byBytes = await freePort();
  const admin = await freePort();
  const tp = await startTestProxy(
    {
      admin: { listen: admin },
      listeners: [
      listenerFor(set.master, set.replicas, { name: 'by-count', http: { listen: byCount, cache: { maxKeys: 3, ttl: 60_000 } } }),
      listenerFor(set.master, set.replicas, { http: { listen: byBytes, cache: { maxKeys: 100, maxBytes: 100, ttl: 60_000 } } }),
      ],
    },
    { t },
  );
  const direct = set.master.client();
  for (let i = 1; i <= 5; i++) await direct.set(`c${i}`, `v${i}`);
  for (let i = 1; i <= 5; i++) await direct.set(`b${i}`, 'x'.repeat(30));
  await set.sync();
  const countInfo = ioredisClient(tp.ports[0]!);
  const bytesInfo = ioredisClient(tp.ports[1]!);

  for (let i = 1; i <= 5; i++) t.equal((await httpGet(byCount, `/c${i}`)).cache, 'MISS');
  let info = await cacheInfo(countInfo);
  t.equal(info.near_cache_entries, 3, 'maxKeys 3');
  t.equal(info.near_cache_evictions, 2);
  t.equal((await httpGet(byCount, '/c5')).cache, 'HIT', 'the most recent stays');
  t.equal((await httpGet(byCount, '/c1')).cache, 'MISS', 'the least recently used went first');
  const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  t.match(metrics, /^redis_proxy_near_cache_entries\{listener="by-count"\} 3$/m);
  t.match(metrics, /^redis_proxy_near_cache_events_total\{listener="by-count",event="eviction"\} 3$/m);
  t.match(metrics, /^redis_proxy_near_cache_events_total\{listener="by-count",event="hit"\} 1$/m);

  for (let i = 1; i <= 5; i++) await httpGet(byBytes, `/b${i}`);
  info = await cacheInfo(bytesInfo);
  t.equal(info.near_cache_entries, 3, '3 entries of 32 bytes (2 of key, 30 of value) fit in 100');
  t.equal(info.near_cache_bytes, 96);
  t.equal(info.near_cache_evictions, 2);

  // A null invalidation (FLUSHALL on the node the fills came from) empties the cache.
  const flushesBefore = info.near_cache_flushes;
  await direct.set('b5', 'y');
  await direct.flushall();
  await waitFor('the flush', async () => (await cacheInfo(bytesInfo)).near_cache_flushes > flushesBefore);
  t.equal((await cacheInfo(bytesInfo)).near_cache_entries, 0);

  // Losing a tracking connection (CLIENT KILL on the node) flushes too: invalidations could be lost.
  await direct.set('c2', 'v2');
  await set.sync();
  await httpGet(byCount, '/c2');
  t.equal((await httpGet(byCount, '/c2')).cache, 'HIT');
  const before = (await cacheInfo(countInfo)).near_cache_flushes;
  let killed = 0;
  for (const server of [set.master, ...set.replicas]) {
    const clients = String(await server.client().call('CLIENT', 'LIST'));
    for (const line of clients.split('\n')) {
      const id = /\bid=(\d+)\b/.exec(line)?.[1];
      if (id !== undefined && /\bflags=\S*t/.test(line)) killed += Number(await server.client().call('CLIENT', 'KILL', 'ID', id));
    }
  }
  t.ok(killed >= 1, `killed ${killed} tracking connection(s)`);
  await waitFor('the flush', async () => (await cacheInfo(countInfo)).near_cache_flushes > before);
  t.equal((await cacheInfo(countInfo)).near_cache_entries, 0);
  t.equal((await httpGet(byCount, '/c2')).cache, 'MISS', 'filled again on a new tracking connection');
  t.equal((await httpGet(byCount, '/c2')).cache, 'HIT');
});

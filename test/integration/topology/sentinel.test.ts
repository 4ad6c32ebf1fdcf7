/**
 * A listener that follows a Sentinel-managed master (issue 8), with real processes: a
 * master, two replicas and three Sentinels (down-after 1 s). The proxy finds the master
 * and replicas through Sentinel; on a failover (SENTINEL FAILOVER, and SIGKILL of the
 * master) writes move to the new master without a restart, the clients stay connected,
 * reads never fail while a replica is up, and the demoted master serves reads once it is
 * a linked replica. A listener whose Sentinels all are down does not start, and says why.
 */
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { node, proxyInfo, startTestProxy } from '../../helpers/proxy.js';
import { startReplicaSet, type RedisServer } from '../../helpers/redis.js';
import { startSentinels, waitForSentinels, type SentinelProcess } from '../../helpers/sentinel.js';
import { callsDuring, waitForReplicaReads } from '../../helpers/stats.js';
import { sleep, waitFor } from '../../helpers/wait.js';

type Scope = Pick<typeof t, 'teardown'>;

/** A master, two replicas and three Sentinels that know each other and both replicas. */
async function sentinelSet(t: Scope): Promise<{ master: RedisServer; replicas: RedisServer[]; sentinels: SentinelProcess[] }> {
  const set = await startReplicaSet({ replicas: 2, t });
  await set.master.client().set('r', 'read me');
  await set.sync();
  const sentinels = await startSentinels(set.master, { t });
  await waitForSentinels(sentinels, { replicas: 2 });
  return { master: set.master, replicas: set.replicas, sentinels };
}

function sentinelListener(sentinels: SentinelProcess[], extra: Record<string, unknown> = {}) {
  return {
    listen: 0,
    sentinel: { masterName: 'mymaster', nodes: sentinels.map((s) => node(s.port)) },
    healthCheckInterval: 200,
    ...extra,
  };
}

/** The acknowledged writes that `server` lacks. */
async function missing(server: RedisServer, acked: LoadResult['acked']): Promise<typeof acked> {
  // One client for them all (server.client() opens a new connection each call).
  const client = server.client();
  const exists = await Promise.all(acked.map((w) => client.exists(w.key)));
  return acked.filter((_, i) => exists[i] === 0);
}

interface LoadResult {
  /** Acknowledged writes: key and performance.now() of the acknowledgement. */
  acked: Array<{ key: string; at: number }>;
  writeErrors: string[];
  reads: number;
  readErrors: string[];
  firstWriteAfter(ms: number): number;
}

interface Load {
  stop(): Promise<LoadResult>;
}

/**
 * Connects a writer and a reader, then starts a write loop (SET w:<n>, a new key each time) and a read loop (GET of `r`, written and
 * replicated before: with the master down, causal reads fail a read that needs a write
 * no replica is known to have, see README "Consistency") on one client each, recording
 * every outcome and when each write was acknowledged.
 */
async function startLoad(port: number): Promise<Load> {
  const writer = ioredisClient(port, { maxRetriesPerRequest: 0 });
  const reader = ioredisClient(port, { maxRetriesPerRequest: 0 });
  // Connected and served before the failover starts (under CI's load a connection can
  // take longer than the pause before the failover; its handshake would then meet it).
  await Promise.all([writer.ping(), reader.ping()]);
  let running = true;
  const acked: Array<{ key: string; at: number }> = [];
  const writeErrors: string[] = [];
  const readErrors: string[] = [];
  let reads = 0;
  const writes = (async () => {
    for (let n = 0; running; n++) {
      try {
        await writer.set(`w:${n}`, String(n));
        acked.push({ key: `w:${n}`, at: performance.now() });
      } catch (err) {
        writeErrors.push((err as Error).message);
        await sleep(5);
      }
    }
  })();
  const readsDone = (async () => {
    while (running) {
      try {
        await reader.get('r');
        reads++;
      } catch (err) {
        readErrors.push((err as Error).message);
        await sleep(5);
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await Promise.all([writes, readsDone]);
      t.same([...writer.errors, ...reader.errors], [], 'no client lost its connection');
      return {
        acked,
        writeErrors,
        reads,
        readErrors,
        firstWriteAfter: (ms: number) => acked.find((w) => w.at >= ms)?.at ?? Infinity,
      };
    },
  };
}

t.test('the master and replicas come from Sentinel', async (t) => {
  const { master, replicas, sentinels } = await sentinelSet(t);
  const tp = await startTestProxy([sentinelListener(sentinels)], { t });
  const client = ioredisClient(tp.port);
  await client.set('k', 'v');
  t.equal(await master.client().get('k'), 'v', 'writes go to the master Sentinel names');
  await waitForReplicaReads(replicas, () => client.get('k'));
  const spread = await callsDuring(replicas, 'get', () => Promise.all(Array.from({ length: 20 }, () => client.get('k'))));
  t.same(spread, [10, 10], 'reads over both replicas Sentinel reports');
  const info = await proxyInfo(tp.port);
  t.equal(info.sentinel_master_name, 'mymaster');
  t.match(info.sentinel_in_use, /^127\.0\.0\.1:\d+$/);
  t.match(info.node0, `addr=127.0.0.1:${master.port}`);
});

t.test('SENTINEL FAILOVER under load: writes move to the new master, no read fails, the old master serves reads once linked', async (t) => {
  const { master, replicas, sentinels } = await sentinelSet(t);
  const tp = await startTestProxy([sentinelListener(sentinels)], { t });
  const load = await startLoad(tp.port);
  await sleep(300);
  const started = performance.now();
  await sentinels[0]!.sentinel('FAILOVER', 'mymaster');
  await waitFor('the proxy to follow the failover', async () => !(await proxyInfo(tp.port)).node0!.includes(`:${master.port},`), {
    timeoutMs: 15_000,
  });
  const switched = performance.now();
  await sleep(500);
  const result = await load.stop();
  const firstWrite = result.firstWriteAfter(switched);
  t.comment(`failover: ${Math.round(switched - started)} ms to the switch; first write ${Math.round(firstWrite - switched)} ms after the proxy showed it`);
  t.ok(firstWrite < Infinity, 'writes succeed after the switch');
  t.same(result.readErrors, [], 'no read failed');
  const promoted = (await proxyInfo(tp.port)).node0!;
  const newMaster = replicas.find((r) => promoted.includes(`:${r.port},`))!;
  t.ok(newMaster, 'a former replica is the master');
  const lost = await missing(newMaster, result.acked);
  // Sentinel promotes the replica before it announces +switch-master; the old master
  // takes writes until then, and they are lost when it becomes a replica (as for any
  // Sentinel client). Writes the proxy acknowledged after the switch are all there.
  t.comment(`${result.acked.length} writes acknowledged, ${lost.length} lost (acknowledged by the old master before +switch-master)`);
  t.same(lost.filter((w) => w.at >= switched), [], 'every write acknowledged after the switch is on the new master');

  // The demoted master: a replica of the new one, listed by Sentinel, serving reads once linked.
  const probe = ioredisClient(tp.port);
  await waitFor('the old master to serve reads', async () => {
    const [calls] = await callsDuring([master], 'get', () => Promise.all(Array.from({ length: 10 }, () => probe.get('r'))));
    return calls! > 0;
  }, { timeoutMs: 15_000 });
  t.equal((await master.info('replication')).master_link_status, 'up', 'it reads only once linked');
});

t.test('the master killed with SIGKILL: reads go on, writes resume on the promoted replica', async (t) => {
  const { master, replicas, sentinels } = await sentinelSet(t);
  const tp = await startTestProxy([sentinelListener(sentinels)], { t });
  const load = await startLoad(tp.port);
  await sleep(300);
  master.kill('SIGKILL');
  await master.exited();
  await waitFor('the proxy to follow the failover', async () => !(await proxyInfo(tp.port)).node0!.includes(`:${master.port},`), {
    timeoutMs: 20_000,
  });
  const switched = performance.now();
  await sleep(500);
  const result = await load.stop();
  t.comment(`kill -9: first write ${Math.round(result.firstWriteAfter(switched) - switched)} ms after the proxy showed the new master`);
  t.ok(result.firstWriteAfter(switched) < Infinity, 'writes succeed again');
  t.same(result.readErrors, [], 'no read failed while a replica was up');
  t.ok(result.writeErrors.every((e) => /redis-proxy|READONLY/.test(e)), 'writes in the gap got the proxy\'s error or READONLY');
  const promoted = (await proxyInfo(tp.port)).node0!;
  t.ok(replicas.some((r) => promoted.includes(`:${r.port},`)), 'a former replica is the master');
});

t.test('every Sentinel down at start: the listener does not start, and the error names each Sentinel', async (t) => {
  const { sentinels } = await sentinelSet(t);
  await Promise.all(sentinels.map((s) => s.stop()));
  await t.rejects(
    startTestProxy([sentinelListener(sentinels, { connectTimeout: 300 })], { t }),
    new RegExp(sentinels.map((s) => `127\\.0\\.0\\.1:${s.port}`).join('[^]*')),
  );
});

/**
 * Failures of nodes behind the proxy: a replica dying mid-traffic costs at most the
 * reads in flight on it, never a hang; a dead master makes writes fail fast while reads
 * go on.
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { startReplicaSet } from '../helpers/redis.js';
import { callsDuring, waitForReplicaReads } from '../helpers/stats.js';
import { rawCommand } from '../helpers/raw.js';
import { sleep, timed, waitFor } from '../helpers/wait.js';

interface Outcome {
  startedAt: number;
  ms: number;
  ok: boolean;
  detail: string;
}

/** Runs `op` in `loops` concurrent loops until `stop()` returns true, recording every outcome. */
async function traffic(
  loops: number,
  stop: () => boolean,
  op: (i: number) => Promise<string | null>,
  expected: (i: number) => string | null,
): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let n = 0;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (!stop()) {
        const i = n++;
        const startedAt = Date.now();
        const { ms, value, error } = await timed(op(i));
        outcomes.push({
          startedAt,
          ms,
          ok: error === undefined && value === expected(i),
          detail: error !== undefined ? `error: ${(error as Error).message}` : `value: ${String(value)}`,
        });
      }
    }),
  );
  return outcomes;
}

t.test('a replica killed mid-traffic: reads and writes keep working, no hang', async (t) => {
  const set = await startReplicaSet({ replicas: 2, t });
  const [r1, r2] = set.replicas as [typeof set.replicas[0], typeof set.replicas[0]];
  const keys = Array.from({ length: 50 }, (_, i) => [`fo:${i}`, `value-${i}`]).flat();
  await set.master.client().mset(...keys);
  await set.sync();
  const { port } = await startTestProxy([listenerFor(set.master, [r1, r2])], { t });
  const reader = ioredisClient(port, { commandTimeout: 5000 });
  const writer = ioredisClient(port, { commandTimeout: 5000 });
  await waitForReplicaReads([r1, r2], () => reader.get('fo:0'));

  let diedAt = Infinity;
  let stopAt = Infinity;
  const stop = () => Date.now() >= stopAt;
  const reads = traffic(4, stop, (i) => reader.get(`fo:${i % 50}`), (i) => `value-${i % 50}`);
  const writes = traffic(1, stop, (i) => writer.set(`fo:w${i}`, 'x'), () => 'OK');

  await sleep(300);
  r1.kill('SIGKILL');
  await r1.exited();
  diedAt = Date.now();
  stopAt = diedAt + 1500;
  const [readOutcomes, writeOutcomes] = await Promise.all([reads, writes]);

  const before = readOutcomes.filter((o) => o.startedAt < diedAt);
  const after = readOutcomes.filter((o) => o.startedAt >= diedAt);
  t.ok(before.length > 20 && after.length > 20, `traffic before (${before.length}) and after (${after.length}) the kill`);
  t.ok(before.filter((o) => !o.ok).length <= 4, 'at most the 4 reads in flight at the kill failed');
  for (const o of readOutcomes.filter((o) => !o.ok)) {
    t.match(o.detail, /^error: \S/, `a failed read has a clear error (${o.detail})`);
  }
  const failedAfter = after.filter((o) => !o.ok);
  t.equal(failedAfter.length, 0, `every read issued after the kill is right${failedAfter.length ? ` (first: ${failedAfter[0]!.detail})` : ''}`);
  const slowest = Math.max(...readOutcomes.map((o) => o.ms));
  t.ok(slowest < 2500, `no read hung (slowest ${Math.round(slowest)} ms)`);
  const failedWrites = writeOutcomes.filter((o) => !o.ok);
  t.equal(failedWrites.length, 0, `every write succeeded${failedWrites.length ? ` (first: ${failedWrites[0]!.detail})` : ''}`);

  const served = await callsDuring([set.master, r2], 'get', async () => {
    for (let i = 0; i < 20; i++) t.equal(await reader.get('fo:1'), 'value-1');
  });
  t.equal(served[1], 20, 'the surviving replica serves the reads');
});

t.test('a read in flight on a replica that dies is retried on another node', async (t) => {
  const set = await startReplicaSet({ replicas: 2, t });
  const [r1, r2] = set.replicas as [typeof set.replicas[0], typeof set.replicas[0]];
  await set.master.client().set('retry:k', 'v');
  await set.sync();
  const { port } = await startTestProxy([listenerFor(set.master, [r1, r2])], { t });
  const client = ioredisClient(port, { commandTimeout: 5000 });
  await waitForReplicaReads([r1, r2], () => client.get('retry:k'));

  // Freeze r1 so the reads sent to it stay in flight, then kill it.
  void r1.client().debug('SLEEP', '3').catch(() => null);
  // Under load the DEBUG SLEEP may start late: wait until r1 really does not answer.
  await waitFor('r1 to be frozen', async () => (await rawCommand(r1.port, 'PING\r\n', { timeoutMs: 100 })).timedOut, { timeoutMs: 2000 });
  let settled = 0;
  const reads = Array.from({ length: 10 }, () =>
    timed(client.get('retry:k')).finally(() => settled++),
  );
  await sleep(300);
  t.ok(settled < 10, `some reads are waiting on the frozen replica (${10 - settled} of 10)`);
  r1.kill('SIGKILL');
  const results = await Promise.all(reads);
  const failed = results.filter((r) => r.error !== undefined || r.value !== 'v');
  t.equal(
    failed.length,
    0,
    `every in-flight read was answered${failed.length ? ` (first failure: ${String(failed[0]!.error ?? failed[0]!.value)})` : ''}`,
  );
  t.ok(Math.max(...results.map((r) => r.ms)) < 2500, 'none waited for the frozen replica to wake');
});

t.test('the master killed: writes fail fast, reads are still served', async (t) => {
  const set = await startReplicaSet({ replicas: 2, t });
  await set.master.client().mset('mk:a', 'A', 'mk:b', 'B');
  await set.sync();
  const { port } = await startTestProxy([listenerFor(set.master, set.replicas)], { t });
  const client = ioredisClient(port, { commandTimeout: 5000 });
  await waitForReplicaReads(set.replicas, () => client.get('mk:a'));
  t.equal(await client.set('mk:before', '1'), 'OK');

  set.master.kill('SIGKILL');
  await set.master.exited();

  for (let i = 0; i < 5; i++) {
    const { ms, error } = await timed(client.set(`mk:after${i}`, '1'));
    t.ok(error instanceof Error, `write ${i} after the master died gets an error`);
    t.match((error as Error | undefined)?.message ?? '', /\S/, `with a message: ${(error as Error | undefined)?.message}`);
    t.ok(ms < 2000, `write ${i} failed within ${Math.round(ms)} ms (want < 2000)`);
  }
  const { ms: incrMs, error: incrError } = await timed(client.incr('mk:n'));
  t.ok(incrError instanceof Error && incrMs < 2000, `INCR fails fast too (${Math.round(incrMs)} ms)`);

  // Reads go on being served, also after the proxy's health checks have seen the
  // replicas lose their master link (several check intervals).
  const failures: string[] = [];
  let reads = 0;
  let slowest = 0;
  const until = Date.now() + 3000;
  for (let i = 0; Date.now() < until; i++) {
    const { ms, value, error } = await timed(client.get(i % 2 ? 'mk:a' : 'mk:b'));
    reads++;
    slowest = Math.max(slowest, ms);
    if (error !== undefined || value !== (i % 2 ? 'A' : 'B')) {
      failures.push(`after ${Date.now() - (until - 3000)} ms: ${error ? (error as Error).message : String(value)}`);
    }
    await sleep(50);
  }
  t.same(failures, [], `all ${reads} reads in the 3 s after the master died were served`);
  t.ok(slowest < 1000, `slowest read ${Math.round(slowest)} ms`);
  t.same(await client.mget('mk:a', 'mk:b').catch((e: Error) => e.message), ['A', 'B'], 'MGET from a replica');
  const late = await timed(client.set('mk:late', '1'));
  t.ok(late.error instanceof Error && late.ms < 2000, `a write 3 s later still fails fast (${Math.round(late.ms)} ms)`);
});

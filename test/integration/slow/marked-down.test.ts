/**
 * Reads in flight on a replica that leaves the read rotation are retried elsewhere at
 * once, not after commandTimeout. A replica frozen with SIGSTOP keeps its TCP connections
 * open and answers nothing; its health check gets no reply within connectTimeout
 * (500 ms), the proxy marks it unresponsive (slow, not down: it still accepts
 * connections), and from then on the reads waiting on it must go to another node instead
 * of waiting for commandTimeout (10 s here).
 */
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { startTestProxy } from '../../helpers/proxy.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { bounded, listenerFor, nodeLine, pollProxyInfo, sleep, tally } from './_support.js';

const set = await startReplicaSet({ replicas: 2 });
const { master } = set;
const [frozen, other] = set.replicas as [typeof set.replicas[0], typeof set.replicas[0]];
// Whatever happens, the frozen replica is thawed before the servers are stopped.
t.teardown(() => frozen.kill('SIGCONT'));
const keys = Array.from({ length: 20 }, (_, i) => [`md:${i}`, `value-${i}`]).flat();
await master.client().mset(...keys);
await set.sync();

t.test('a replica frozen with SIGSTOP: the reads waiting on it are answered by another node within ~2 s', async (t) => {
  const { port } = await startTestProxy(
    [listenerFor(master, [frozen, other], { commandTimeout: 10000, connectTimeout: 500, healthCheckInterval: 200 })],
    { t },
  );
  const clients = [0, 1, 2, 3].map(() => ioredisClient(port, { maxRetriesPerRequest: 0 }));
  await waitForReplicaReads([frozen, other], () => clients[0]!.get('md:0'));

  const origin = performance.now();
  let stopAt = Infinity;
  const polls = pollProxyInfo(port, () => performance.now() >= stopAt, { intervalMs: 100, timeoutMs: 500, origin });
  const reads: Array<{ at: number; ms: number; ok: boolean; detail: string }> = [];
  // Each client keeps 3 GETs in flight at a time, so that reads are on the replica when it freezes.
  const loops = clients.flatMap((client, n) =>
    [0, 1, 2].map(async (lane) => {
      for (let i = n * 3 + lane; performance.now() < stopAt; i += 12) {
        const key = i % 20;
        const at = performance.now() - origin;
        const r = await bounded(client.get(`md:${key}`), 4000);
        const ok = !r.timedOut && r.error === undefined && r.value === `value-${key}`;
        reads.push({ at, ms: r.ms, ok, detail: r.timedOut ? 'no reply within 4000 ms' : r.error ? (r.error as Error).message : String(r.value) });
        await sleep(2);
      }
    }),
  );
  await sleep(300);
  const frozenAt = performance.now() - origin;
  frozen.kill('SIGSTOP');
  stopAt = performance.now() + 2500;
  try {
    await Promise.all(loops);
  } finally {
    frozen.kill('SIGCONT');
  }

  const around = reads.filter((r) => r.at >= frozenAt - 100);
  const slowest = Math.max(...reads.map((r) => r.ms));
  const slowestAround = around.reduce((a, r) => (r.ms > a.ms ? r : a), around[0]!);
  t.comment(
    `${reads.length} reads, ${around.length} from just before the freeze on; slowest read ${Math.round(slowest)} ms ` +
      `(sent ${Math.round(slowestAround.at - frozenAt)} ms after the freeze)`,
  );
  const failed = reads.filter((r) => !r.ok);
  t.equal(failed.length, 0, `every GET completed with its value (${failed.length} of ${reads.length} did not: ${tally(failed.map((r) => r.detail))})`);
  t.ok(slowest < 2000, `no read waited for commandTimeout (10 s): slowest ${Math.round(slowest)} ms (want < 2000)`);

  const answered = (await polls).filter((p) => !p.timedOut);
  const masterNotUp = answered.filter((p) => nodeLine(p, master.port)?.state !== 'up');
  t.ok(answered.length > 10, `INFO proxy answered during the freeze (${answered.length} polls)`);
  t.equal(
    masterNotUp.length,
    0,
    `the master was never reported other than up (${masterNotUp.length} of ${answered.length}: ` +
      `${masterNotUp.length ? (nodeLine(masterNotUp[0]!, master.port)?.raw ?? masterNotUp[0]!.text) : 'none'})`,
  );
  // A frozen process still accepts TCP connections (the kernel does): it is unresponsive, not down.
  const frozenDown = answered.some((p) => p.at > frozenAt && nodeLine(p, frozen.port)?.state === 'unresponsive');
  t.ok(frozenDown, 'the frozen replica was reported unresponsive meanwhile');
});

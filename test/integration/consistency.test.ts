/**
 * Consistency with `readYourWrites: true` (the older spelling of causalReads "session"):
 * a session always reads its own writes, and still reads from replicas once they have
 * caught up. The other modes, with staleness forced, are in ./causal/.
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { startReplicaSet } from '../helpers/redis.js';
import { callsDuring, waitForReplicaReads } from '../helpers/stats.js';
import { waitFor } from '../helpers/wait.js';

const set = await startReplicaSet({ replicas: 2 });
const all = [set.master, ...set.replicas];

/** Pipelines `SET key i` + `GET key` `rounds` times; returns how many GETs missed the SET. */
async function staleReads(port: number, key: string, rounds: number): Promise<number> {
  const client = ioredisClient(port, { protocol: 2 });
  let stale = 0;
  for (let i = 0; i < rounds; i++) {
    const replies = await client.pipeline().set(key, String(i)).get(key).exec();
    if (replies![1]![1] !== String(i)) stale++;
  }
  return stale;
}

t.test('readYourWrites: a session reads its own writes at once', async (t) => {
  const { port } = await startTestProxy([listenerFor(set.master, set.replicas, { readYourWrites: true })], { t });
  const warm = ioredisClient(port);
  await waitForReplicaReads(set.replicas, () => warm.get('ryw:warm'));
  const stale = await staleReads(port, 'ryw:k', 300);
  t.equal(stale, 0, `${stale} of 300 reads right after the session's own write missed it`);

  // Once the replicas have caught up, reads go back to them (the proxy learns replica
  // offsets from its ROLE polls, which a read that needs them starts).
  const client = ioredisClient(port, { protocol: 2 });
  await client.set('ryw:settled', 'v');
  await set.sync();
  await waitFor(
    'reads of a session that wrote to go back to caught-up replicas',
    async () => {
      const calls = await callsDuring(all, 'get', async () => {
        for (let i = 0; i < 10; i++) t.equal(await client.get('ryw:settled'), 'v');
      });
      return calls[0] === 0;
    },
    { timeoutMs: 3500, intervalMs: 100 },
  );
  t.pass('caught-up replicas serve the session\'s reads again');
});

t.test('readYourWrites: another session\'s write is not waited for', async (t) => {
  const { port } = await startTestProxy([listenerFor(set.master, set.replicas, { readYourWrites: true })], { t });
  const writer = ioredisClient(port, { protocol: 2 });
  const reader = ioredisClient(port, { protocol: 2 });
  await waitForReplicaReads(set.replicas, () => reader.get('ryw:warm'));
  await writer.set('ryw:other', 'x');
  await set.sync();
  const calls = await callsDuring(all, 'get', async () => {
    for (let i = 0; i < 20; i++) await reader.get('ryw:other');
  });
  t.equal(calls[0], 0, 'a session that wrote nothing reads from replicas only');
});

t.test('readYourWrites: connecting is not writing (ioredis handshake: HELLO, INFO)', async (t) => {
  const { port } = await startTestProxy([listenerFor(set.master, set.replicas, { readYourWrites: true })], { t });
  const warm = ioredisClient(port);
  await waitForReplicaReads(set.replicas, () => warm.get('ryw:warm'));
  // A new client whose session has sent only its handshake (HELLO 3, INFO ready check,
  // no write) has no write of its own to wait for: its reads go to the replicas.
  for (const protocol of [3, 2] as const) {
    const fresh = ioredisClient(port, { protocol });
    await fresh.ping();
    const calls = await callsDuring(all, 'get', async () => {
      for (let i = 0; i < 10; i++) await fresh.get('ryw:warm');
    });
    t.equal(calls[0], 0, `RESP${protocol}: the master served none of the 10 GETs (served: ${calls})`);
  }
  const raw = ioredisClient(port, { protocol: 2, enableReadyCheck: false });
  await raw.ping();
  await raw.info('server');
  const calls = await callsDuring(all, 'get', async () => {
    for (let i = 0; i < 10; i++) await raw.get('ryw:warm');
  });
  t.equal(calls[0], 0, `after INFO (not a write), GETs still go to replicas (served: ${calls})`);
});

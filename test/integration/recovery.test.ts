/**
 * Recovery: a node that died and is restarted in its place (same address) is used again
 * without restarting the proxy: the master takes writes again, a replica rejoins the
 * read rotation.
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { startRedis, startReplicaSet } from '../helpers/redis.js';
import { callsDuring, waitForReplicaReads } from '../helpers/stats.js';
import { timed, waitFor } from '../helpers/wait.js';

t.test('the master restarted in its place: writes work again', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const { port } = await startTestProxy([listenerFor(set.master, set.replicas)], { t });
  const client = ioredisClient(port, { commandTimeout: 5000 });
  t.equal(await client.set('rs:k', '1'), 'OK');
  set.master.kill('SIGKILL');
  await set.master.exited();
  await t.rejects(client.set('rs:k', '2'), 'a write fails while the master is down');

  const restarted = await startRedis({ port: set.master.port, t });
  const { ms } = await timed(
    waitFor('writes through the proxy to succeed again', async () => (await client.set('rs:k', '3')) === 'OK', {
      timeoutMs: 8000,
      intervalMs: 100,
    }),
  );
  t.pass(`writes work again ${Math.round(ms)} ms after the master came back`);
  t.equal(await client.incr('rs:n'), 1);
  t.equal(await restarted.client().get('rs:k'), '3', 'written to the restarted master');
});

t.test('a killed replica restarted in its place rejoins the read rotation', async (t) => {
  const set = await startReplicaSet({ replicas: 2, t });
  const [r1, r2] = set.replicas as [typeof set.replicas[0], typeof set.replicas[0]];
  await set.master.client().set('rj:k', 'v');
  await set.sync();
  const { port } = await startTestProxy([listenerFor(set.master, [r1, r2])], { t });
  const client = ioredisClient(port, { commandTimeout: 5000 });
  await waitForReplicaReads([r1, r2], () => client.get('rj:k'));

  r1.kill('SIGKILL');
  await r1.exited();
  for (let i = 0; i < 10; i++) t.equal(await client.get('rj:k'), 'v', `read ${i} while r1 is down`);

  const back = await startRedis({ port: r1.port, replicaOf: set.master.port, t });
  await waitFor('the restarted replica to sync', async () => (await back.info('replication')).master_link_status === 'up');
  await waitFor(
    'the restarted replica to serve reads again',
    async () => {
      const calls = await callsDuring([back], 'get', async () => {
        for (let i = 0; i < 10; i++) {
          if ((await client.get('rj:k')) !== 'v') throw new Error('wrong value');
        }
      });
      return calls[0]! > 0;
    },
    { timeoutMs: 8000, intervalMs: 100 },
  );
  t.pass('it serves reads again');
});

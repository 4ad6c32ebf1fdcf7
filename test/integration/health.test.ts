/**
 * Replica health: a replica that loses its master (link down) or stops being a replica
 * leaves the read rotation, and comes back once it is replicating again.
 */
import t from 'tap';
import { freePort, ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { startReplicaSet } from '../helpers/redis.js';
import { callsDuring, waitForReplicaReads } from '../helpers/stats.js';
import { waitFor } from '../helpers/wait.js';

const set = await startReplicaSet({ replicas: 2 });
const { master } = set;
const [r1, r2] = set.replicas as [typeof set.replicas[0], typeof set.replicas[0]];
const all = [master, r1, r2];
await master.client().set('hc:k', 'v');
await set.sync();
const { port } = await startTestProxy([listenerFor(master, [r1, r2], { healthCheckInterval: 100 })]);
const client = ioredisClient(port);
await waitForReplicaReads([r1, r2], () => client.get('hc:k'));

/** How many of 20 GETs each node served. */
const spread = () =>
  callsDuring(all, 'get', async () => {
    for (let i = 0; i < 20; i++) {
      const value = await client.get('hc:k');
      if (value !== 'v') throw new Error(`GET hc:k returned ${value}`);
    }
  });

/** Waits until `check(spread)` holds for a round of 20 GETs. */
const waitForSpread = (what: string, check: (calls: number[]) => boolean) =>
  waitFor(what, async () => check(await spread()), { timeoutMs: 4000, intervalMs: 50 });

t.test('both replicas serve reads while healthy', async (t) => {
  const calls = await spread();
  t.equal(calls[0], 0);
  t.ok(calls[1]! > 0 && calls[2]! > 0, `both replicas served: ${calls}`);
});

t.test('a replica whose master link is down leaves the rotation, and returns', async (t) => {
  const deadPort = await freePort();
  await r1.client().replicaof('127.0.0.1', deadPort);
  await waitFor('r1 to report its link down', async () => (await r1.info('replication')).master_link_status === 'down');
  await waitForSpread('reads to avoid the disconnected replica', (calls) => calls[1] === 0);
  const calls = await spread();
  t.same(calls, [0, 0, 20], 'the healthy replica serves all reads');

  await r1.client().replicaof('127.0.0.1', master.port);
  await set.sync();
  await waitForSpread('the replica to rejoin the rotation', (calls) => calls[1]! > 0);
  t.pass('back in the rotation once its link is up');
});

t.test('a replica that is no longer a replica (REPLICAOF NO ONE) leaves the rotation', async (t) => {
  await r2.client().replicaof('NO', 'ONE');
  await r2.client().set('hc:k', 'diverged'); // it now takes writes of its own
  await waitForSpread('reads to avoid the former replica', (calls) => calls[2] === 0);
  const calls = await spread(); // spread() checks every value is 'v'
  t.equal(calls[2], 0, 'the detached node serves no reads');

  await r2.client().replicaof('127.0.0.1', master.port);
  await set.sync();
  await waitForSpread('the replica to rejoin the rotation', (calls) => calls[2]! > 0);
  t.pass('back once it replicates the master again');
});

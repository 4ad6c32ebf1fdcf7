/**
 * causalReads "global" keeps reads on the replica under a read-mostly load: one normal
 * (directly linked) replica, 10 clients, 90% GET / 10% SET over 10,000 keys for ~4 s.
 * Values are versioned (`v<n>`, n increasing per key). Each key is written by one client
 * only (key % 10), one SET at a time, so the order of its versions is the order of its
 * SETs. Before a GET is sent, the test notes the highest version of the key whose SET was
 * already acknowledged (to any client); the GET must return that version or a newer one.
 * Asserts: no stale read, no error, and at least 85% of the GETs executed on the replica
 * (INFO commandstats deltas). Prints the share and the ROLE calls (the proxy's
 * replication-progress polling) on the master and the replica.
 */
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { callsDuringMany, waitForReplicaReads } from '../../helpers/stats.js';
import { listenerFor, startCausalProxy, tally } from './_support.js';

const KEYS = 10_000;
const CLIENTS = 10;
const DURATION_MS = 4000;
const WRITE_SHARE = 0.1;

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const replica = set.replicas[0]!;
const key = (k: number) => `off:${k}`;
{
  const m = master.client();
  for (let from = 0; from < KEYS; from += 1000) {
    await m.mset(...Array.from({ length: 1000 }, (_, i) => [key(from + i), 'v0']).flat());
  }
  await set.sync();
}

t.test('causalReads "global": 90/10 GET/SET over 10,000 keys, 10 clients: no stale read, reads stay on the replica', async (t) => {
  const { port } = await startCausalProxy(t, listenerFor(master, [replica], { causalReads: 'global' }));
  const clients = Array.from({ length: CLIENTS }, () => ioredisClient(port, { protocol: 2, maxRetriesPerRequest: 0 }));
  await Promise.all(clients.map((c) => c.ping()));
  await waitForReplicaReads([replica], () => clients[0]!.get(key(0)));

  const acked = new Int32Array(KEYS);
  const issued = new Int32Array(KEYS);
  let gets = 0;
  let sets = 0;
  const stale: string[] = [];
  const errors: string[] = [];
  let elapsed = 0;

  const calls = await callsDuringMany([master, replica], ['get', 'role'], async () => {
    const started = performance.now();
    await Promise.all(
      clients.map(async (c, ci) => {
        while (performance.now() - started < DURATION_MS) {
          if (Math.random() < WRITE_SHARE) {
            // A key of this client's own: key % CLIENTS === ci.
            const k = ci + CLIENTS * Math.floor(Math.random() * (KEYS / CLIENTS));
            const v = ++issued[k]!;
            try {
              await c.set(key(k), `v${v}`);
              if (v > acked[k]!) acked[k] = v;
              sets++;
            } catch (err) {
              errors.push(`SET: ${(err as Error).message}`);
            }
          } else {
            const k = Math.floor(Math.random() * KEYS);
            const floor = acked[k]!;
            try {
              const got = await c.get(key(k));
              gets++;
              const n = typeof got === 'string' && got.startsWith('v') ? Number(got.slice(1)) : -1;
              if (!(n >= floor)) stale.push(`${key(k)}: got ${String(got)}, acknowledged v${floor} before the GET`);
            } catch (err) {
              errors.push(`GET: ${(err as Error).message}`);
            }
          }
        }
      }),
    );
    elapsed = performance.now() - started;
  });

  const [masterGets, replicaGets] = calls.get as [number, number];
  const [masterRoles, replicaRoles] = calls.role as [number, number];
  const share = replicaGets / Math.max(1, masterGets + replicaGets);
  const seconds = elapsed / 1000;
  t.comment(
    `${gets} GETs and ${sets} SETs in ${seconds.toFixed(1)} s (${((gets + sets) / seconds).toFixed(0)} ops/s); ` +
      `GETs executed: master ${masterGets}, replica ${replicaGets} -> ${(share * 100).toFixed(1)}% on the replica`,
  );
  t.comment(
    `ROLE calls during the run: master ${masterRoles}, replica ${replicaRoles} ` +
      `(${(masterRoles / seconds).toFixed(1)}/s and ${(replicaRoles / seconds).toFixed(1)}/s)`,
  );
  t.comment(`stale reads: ${stale.length}${stale.length ? ` (first: ${stale.slice(0, 3).join('; ')})` : ''}; errors: ${tally(errors, 3)}`);

  t.ok(gets > 1000 && sets > 100, `enough traffic: ${gets} GETs, ${sets} SETs`);
  t.equal(errors.length, 0, `no command failed (${tally(errors, 3)})`);
  t.equal(stale.length, 0, `no GET returned an older version than one acknowledged before it was sent (${stale.length} of ${gets} did)`);
  t.ok(masterGets + replicaGets >= gets, `the servers executed the GETs (${masterGets} + ${replicaGets} >= ${gets})`);
  t.ok(share >= 0.85, `at least 85% of the GETs executed on the replica: ${(share * 100).toFixed(1)}%`);
});

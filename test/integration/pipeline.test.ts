/**
 * Pipelining: many requests written before any reply is read, spread over the master
 * (writes) and the replicas (reads), come back in request order with the right values.
 */
import t from 'tap';
import { ioredisClient, nodeRedisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { callsDuring, sum, waitForReplicaReads } from '../helpers/stats.js';

const set = await startReplicaSet({ replicas: 2 });
const all = [set.master, ...set.replicas];

// 1000 keys every replica has, so reads give known values wherever they are served.
const PRELOADED = 1000;
const preload: string[] = [];
for (let i = 0; i < PRELOADED; i++) preload.push(`pre:${i}`, `v-${i}`);
await set.master.client().mset(...preload);
await set.sync();

// Eventual reads: this file checks ordering and values across nodes, so every GET must be
// free to go to a replica. (Under the default causal reads, a GET pipelined behind writes
// may go to the master when its key shares a bucket with one of them: see causal/*.test.ts.)
const { port } = await startTestProxy([listenerFor(set.master, set.replicas, { causalReads: 'none' })]);
const warm = ioredisClient(port);
await waitForReplicaReads(set.replicas, () => warm.get('pre:0'));

/** The i-th command of the mixed workload and the reply it must get. */
function mixed(i: number, prefix: string): { cmd: string; args: string[]; expect: string | number } {
  switch (i % 3) {
    case 0:
      return { cmd: 'set', args: [`${prefix}:${i}`, `s-${i}`], expect: 'OK' };
    case 1:
      return { cmd: 'get', args: [`pre:${i % PRELOADED}`], expect: `v-${i % PRELOADED}` };
    default:
      return { cmd: 'incr', args: [`${prefix}:counter`], expect: (i + 1) / 3 };
  }
}

t.test('a 10,000-command ioredis pipeline of SET/GET/INCR: replies in order, values right', async (t) => {
  const client = ioredisClient(port);
  const N = 10_000;
  let replies: [Error | null, unknown][] = [];
  const gets = await callsDuring(all, 'get', async () => {
    const pipeline = client.pipeline();
    for (let i = 0; i < N; i++) {
      const { cmd, args } = mixed(i, 'io');
      pipeline.call(cmd, ...args);
    }
    replies = (await pipeline.exec()) ?? [];
  });
  t.equal(replies.length, N);
  let wrong = 0;
  for (let i = 0; i < N; i++) {
    const [err, value] = replies[i]!;
    const { expect } = mixed(i, 'io');
    if (err !== null || value !== expect) {
      if (wrong++ < 5) t.fail(`reply ${i}: expected ${expect}, got ${err ? `error ${err.message}` : value}`);
    }
  }
  t.equal(wrong, 0, 'every reply is the right one for its request');
  t.equal(gets[0], 0, 'the GETs were served by replicas, not the master');
  t.equal(sum(gets), Math.floor(N / 3) + (N % 3 > 1 ? 1 : 0), 'replicas served every GET');
  t.equal(await client.get('io:counter'), String(Math.floor((N + 1) / 3)), 'INCRs all applied');
});

t.test('10,000 node-redis commands issued at once (auto-pipelined): replies in order', async (t) => {
  // RESP2: this file is about ordering; RESP3 (node-redis's default) is client-libs.test.ts's.
  const client = await nodeRedisClient(port, { RESP: 2 });
  const N = 10_000;
  const promises: Promise<unknown>[] = [];
  for (let i = 0; i < N; i++) {
    const { cmd, args } = mixed(i, 'nr');
    promises.push(client.sendCommand([cmd.toUpperCase(), ...args]));
  }
  const replies = await Promise.all(promises);
  let wrong = 0;
  for (let i = 0; i < N; i++) {
    const { expect } = mixed(i, 'nr');
    if (replies[i] !== expect && wrong++ < 5) t.fail(`reply ${i}: expected ${expect}, got ${String(replies[i])}`);
  }
  t.equal(wrong, 0, 'every reply is the right one for its request');
});

t.test('replies from different nodes are not reordered (raw bytes)', async (t) => {
  // One write: a write (master), a read (replica), then INCRs (master); replicas are
  // usually faster to answer a GET than the master is to answer after a SET, so a
  // proxy that forwards replies as they arrive would reorder them.
  const conn = await rawConnection(port);
  const N = 50;
  const requests = [
    encodeCommand('SET', 'order:k', 'v1'),
    encodeCommand('GET', 'pre:0'),
    ...Array.from({ length: N }, () => encodeCommand('INCR', 'order:c')),
    encodeCommand('GET', 'pre:1'),
    encodeCommand('SET', 'order:k', 'v2'),
    encodeCommand('GET', 'pre:2'),
  ];
  const replies = await conn.send(Buffer.concat(requests), requests.length);
  const expected = [
    '+OK\r\n',
    '$3\r\nv-0\r\n',
    ...Array.from({ length: N }, (_, i) => `:${i + 1}\r\n`),
    '$3\r\nv-1\r\n',
    '+OK\r\n',
    '$3\r\nv-2\r\n',
  ];
  t.same(
    replies.map((r) => r.toString('latin1')),
    expected,
    'replies are exactly the expected ones, in request order',
  );

  // The same interleaving many times over, in one write.
  conn.clear();
  const rounds = 500;
  const batch: Buffer[] = [];
  const want: string[] = [];
  for (let i = 0; i < rounds; i++) {
    batch.push(encodeCommand('GET', `pre:${i}`), encodeCommand('INCR', 'order:c2'));
    want.push(`$${`v-${i}`.length}\r\nv-${i}\r\n`, `:${i + 1}\r\n`);
  }
  const many = await conn.send(Buffer.concat(batch), batch.length, 10_000);
  t.equal(Buffer.concat(many).toString('latin1'), want.join(''), '1000 alternating replies in order');
});

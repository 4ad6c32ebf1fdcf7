/**
 * Several listeners in one proxy process are independent: each routes to its own master
 * and replicas, and data written through one is not seen through another.
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { startRedis, startReplicaSet } from '../helpers/redis.js';
import { callsDuringMany, waitForReplicaReads } from '../helpers/stats.js';

const setA = await startReplicaSet({ replicas: 2 });
const masterB = await startRedis();
const everyNode = [setA.master, ...setA.replicas, masterB];

const { proxy, ports } = await startTestProxy({
  logLevel: 'silent',
  listeners: [
    { ...listenerFor(setA.master, setA.replicas), name: 'alpha' },
    { ...listenerFor(masterB), name: 'beta' },
  ],
});
const [portA, portB] = ports as [number, number];
const a = ioredisClient(portA);
const b = ioredisClient(portB);
await waitForReplicaReads(setA.replicas, () => a.get('lst:warm'));

t.test('the proxy reports both listeners with their names and ports', async (t) => {
  t.equal(ports.length, 2);
  t.not(portA, portB);
  t.same(
    proxy.listeners.map((l) => l.name),
    ['alpha', 'beta'],
  );
});

t.test('keys written through one listener are not visible through the other', async (t) => {
  t.equal(await a.set('lst:k', 'from-a'), 'OK');
  await setA.sync();
  t.equal(await b.get('lst:k'), null, 'listener B does not see A\'s key');
  t.equal(await b.set('lst:k', 'from-b'), 'OK');
  t.equal(await a.get('lst:k'), 'from-a', 'listener A still sees its own value');
  t.equal(await b.get('lst:k'), 'from-b', 'listener B sees its own value');
  t.equal(await setA.master.client().get('lst:k'), 'from-a', 'A\'s master holds A\'s value');
  t.equal(await masterB.client().get('lst:k'), 'from-b', 'B\'s master holds B\'s value');
  t.equal(await b.dbsize(), 1, 'B\'s master has only B\'s key');
});

t.test('each listener routes to its own nodes', async (t) => {
  const calls = await callsDuringMany(everyNode, ['set', 'get'], async () => {
    for (let i = 0; i < 5; i++) await a.set(`lst:a${i}`, 'x');
    for (let i = 0; i < 7; i++) await b.set(`lst:b${i}`, 'y');
    for (let i = 0; i < 10; i++) await a.get('lst:k');
    for (let i = 0; i < 4; i++) await b.get('lst:k');
  });
  t.equal(calls.set![0], 5, 'A\'s SETs on A\'s master');
  t.equal(calls.set![3], 7, 'B\'s SETs on B\'s master');
  t.equal(calls.get![0], 0, 'A\'s master served no GET (A reads from its replicas)');
  t.equal(calls.get![1]! + calls.get![2]!, 10, 'A\'s replicas served A\'s GETs');
  t.equal(calls.get![3], 4, 'B has no replicas: its master served B\'s GETs');
});

t.test('a transaction on one listener does not affect the other', async (t) => {
  const result = await a.multi().incr('lst:n').incr('lst:n').exec();
  t.same(result, [[null, 1], [null, 2]]);
  t.same(await b.multi().incr('lst:n').exec(), [[null, 1]], 'B has its own counter');
});

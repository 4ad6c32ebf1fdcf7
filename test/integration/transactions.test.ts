/**
 * Transactions: MULTI/EXEC/DISCARD and WATCH/UNWATCH behave as on one Redis server, and
 * everything inside a transaction (or under WATCH) runs on the master.
 */
import t from 'tap';
import { ioredisClient, nodeRedisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawCommand, rawConnection } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { callsDuringMany, waitForReplicaReads } from '../helpers/stats.js';

const set = await startReplicaSet({ replicas: 2 });
const { master } = set;
const all = [master, ...set.replicas];
await master.client().set('tx:pre', 'P');
await set.sync();
const { port } = await startTestProxy([listenerFor(master, set.replicas)]);
const warm = ioredisClient(port);
await waitForReplicaReads(set.replicas, () => warm.get('tx:pre'));

const lines = (replies: Buffer[]) => replies.map((r) => r.toString('latin1'));

t.test('MULTI / SET / INCR / EXEC returns the array of replies (ioredis)', async (t) => {
  const client = ioredisClient(port);
  const result = await client.multi().set('tx:a', '10').incr('tx:a').get('tx:a').exec();
  t.same(result, [[null, 'OK'], [null, 11], [null, '11']]);
  t.equal(await master.client().get('tx:a'), '11', 'applied on the master');
});

t.test('MULTI / EXEC as raw bytes: QUEUED replies and the EXEC array', async (t) => {
  const conn = await rawConnection(port);
  const replies = await conn.send(
    Buffer.concat([
      encodeCommand('MULTI'),
      encodeCommand('SET', 'tx:raw', 'x'),
      encodeCommand('GET', 'tx:raw'),
      encodeCommand('EXEC'),
    ]),
    4,
  );
  t.same(lines(replies), ['+OK\r\n', '+QUEUED\r\n', '+QUEUED\r\n', '*2\r\n+OK\r\n$1\r\nx\r\n']);
});

t.test('every command inside MULTI runs on the master, reads included', async (t) => {
  const client = ioredisClient(port);
  const calls = await callsDuringMany(all, ['multi', 'get', 'exists', 'exec'], async () => {
    const result = await client.multi().get('tx:pre').exists('tx:pre').get('tx:pre').exec();
    t.same(result, [[null, 'P'], [null, 1], [null, 'P']]);
  });
  t.same(calls.multi, [1, 0, 0], 'MULTI on the master');
  t.same(calls.get, [2, 0, 0], 'GETs inside MULTI on the master');
  t.same(calls.exists, [1, 0, 0], 'EXISTS inside MULTI on the master');
  t.same(calls.exec, [1, 0, 0], 'EXEC on the master');
});

t.test('DISCARD drops the queued commands', async (t) => {
  const conn = await rawConnection(port);
  const replies = await conn.send(
    Buffer.concat([
      encodeCommand('MULTI'),
      encodeCommand('SET', 'tx:discarded', 'x'),
      encodeCommand('DISCARD'),
      encodeCommand('EXEC'),
    ]),
    4,
  );
  t.same(lines(replies), ['+OK\r\n', '+QUEUED\r\n', '+OK\r\n', '-ERR EXEC without MULTI\r\n']);
  t.equal(await master.client().exists('tx:discarded'), 0, 'nothing was written');
  const [after] = await conn.send(encodeCommand('GET', 'tx:pre'));
  t.equal(after!.toString(), '$1\r\nP\r\n', 'the session works normally after DISCARD');
});

t.test('a queuing error aborts EXEC with Redis\'s own error', async (t) => {
  const bytes = Buffer.concat([
    encodeCommand('MULTI'),
    encodeCommand('SET', 'tx:only-key'),
    encodeCommand('INCR', 'tx:abort'),
    encodeCommand('EXEC'),
  ]);
  const direct = await rawCommand(master.port, bytes, { replies: 4 });
  const viaProxy = await rawCommand(port, bytes, { replies: 4 });
  t.match(direct.text, /-EXECABORT/, 'Redis aborts the transaction');
  t.equal(viaProxy.text, direct.text, 'the proxy returns exactly what Redis does');
  t.equal(await master.client().exists('tx:abort'), 0, 'nothing was executed');
});

t.test('WATCH: a key modified by another client makes EXEC return nil', async (t) => {
  const a = ioredisClient(port);
  const b = ioredisClient(port);
  await a.set('tx:watched', '1');
  t.equal(await a.watch('tx:watched'), 'OK');
  t.equal(await a.get('tx:watched'), '1', 'read under WATCH sees the latest value');
  t.equal(await b.set('tx:watched', 'changed-by-b'), 'OK');
  const result = await a.multi().set('tx:watched', 'by-a').exec();
  t.equal(result, null, 'EXEC returns nil: the transaction was not executed');
  t.equal(await master.client().get('tx:watched'), 'changed-by-b');

  // Same with raw bytes, to see the exact reply.
  const conn = await rawConnection(port);
  t.same(lines(await conn.send(encodeCommand('WATCH', 'tx:watched'))), ['+OK\r\n']);
  await b.set('tx:watched', 'again');
  const replies = await conn.send(
    Buffer.concat([encodeCommand('MULTI'), encodeCommand('SET', 'tx:watched', 'raw'), encodeCommand('EXEC')]),
    3,
  );
  t.same(lines(replies), ['+OK\r\n', '+QUEUED\r\n', '*-1\r\n'], 'nil array for an aborted EXEC');
});

t.test('WATCH then an unmodified key: EXEC runs', async (t) => {
  const a = ioredisClient(port);
  await a.set('tx:calm', '1');
  await a.watch('tx:calm');
  const result = await a.multi().incr('tx:calm').exec();
  t.same(result, [[null, 2]]);
});

t.test('UNWATCH forgets the watched keys', async (t) => {
  const a = ioredisClient(port);
  const b = ioredisClient(port);
  await a.set('tx:unwatched', '1');
  await a.watch('tx:unwatched');
  t.equal(await a.unwatch(), 'OK');
  await b.set('tx:unwatched', '2');
  const result = await a.multi().set('tx:unwatched', '3').exec();
  t.same(result, [[null, 'OK']], 'EXEC runs: the key is no longer watched');
  t.equal(await master.client().get('tx:unwatched'), '3');
});

t.test('reads under WATCH (before MULTI) are served by the master', async (t) => {
  const a = ioredisClient(port);
  await a.get('tx:pre'); // connected
  const calls = await callsDuringMany(all, ['get'], async () => {
    await a.watch('tx:pre');
    for (let i = 0; i < 5; i++) t.equal(await a.get('tx:pre'), 'P');
    await a.unwatch();
  });
  t.same(calls.get, [5, 0, 0]);
});

t.test('a transaction between replica reads in one pipeline: replies in order', async (t) => {
  const conn = await rawConnection(port);
  const replies = await conn.send(
    Buffer.concat([
      encodeCommand('GET', 'tx:pre'),
      encodeCommand('MULTI'),
      encodeCommand('INCR', 'tx:pipe'),
      encodeCommand('INCR', 'tx:pipe'),
      encodeCommand('EXEC'),
      encodeCommand('GET', 'tx:pre'),
      encodeCommand('INCR', 'tx:pipe'),
    ]),
    7,
  );
  t.same(lines(replies), [
    '$1\r\nP\r\n',
    '+OK\r\n',
    '+QUEUED\r\n',
    '+QUEUED\r\n',
    '*2\r\n:1\r\n:2\r\n',
    '$1\r\nP\r\n',
    ':3\r\n',
  ]);
});

t.test('node-redis multi().exec()', async (t) => {
  // RESP2: RESP3 (node-redis's default) is client-libs.test.ts's concern.
  const client = await nodeRedisClient(port, { RESP: 2 });
  const result = await client.multi().set('tx:nr', '5').incrBy('tx:nr', 2).get('tx:nr').exec();
  t.same(result, ['OK', 7, '7']);
  const client2 = await nodeRedisClient(port, { RESP: 2 });
  await client.watch('tx:nr');
  await client2.set('tx:nr', 'x');
  await t.rejects(
    client.multi().set('tx:nr', 'y').exec(),
    /watched keys has been changed/,
    'node-redis reports the aborted transaction (EXEC returned nil)',
  );
  t.equal(await master.client().get('tx:nr'), 'x');
});

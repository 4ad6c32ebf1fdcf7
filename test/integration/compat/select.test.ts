/**
 * Drop-in compatibility: databases. SELECT through the proxy applies to both the writes
 * (master) and the reads (replicas) of the session; SELECT's errors, MOVE, SWAPDB and
 * FLUSHDB behave as on Redis; the db options of ioredis and node-redis work.
 */
import t from 'tap';
import { ioredisClient, nodeRedisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../../helpers/raw.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { callsDuring, sum, waitForReplicaReads } from '../../helpers/stats.js';
import { compareSession, type SessionStep } from './_helpers.js';

const set = await startReplicaSet({ replicas: 2 });
const { master, replicas } = set;
const { port } = await startTestProxy([listenerFor(master, replicas)]);
await waitForReplicaReads(replicas, () => ioredisClient(port).get('sel:warm'));

/** A direct client to the master with database `db` selected. */
async function masterDb(db: number) {
  const c = master.client();
  await c.select(db);
  return c;
}

const text = (bufs: Buffer[]) => Buffer.concat(bufs).toString('latin1');

t.test('SELECT 3: the write lands in db 3 of the master, the read is served by a replica from db 3', async (t) => {
  await (await masterDb(0)).set('sel:k', 'db0');
  const c = await rawConnection(port);
  t.equal(text(await c.send(encodeCommand('SELECT', '3'))), '+OK\r\n');
  t.equal(text(await c.send(encodeCommand('SET', 'sel:k', 'db3'))), '+OK\r\n');
  t.equal(await (await masterDb(3)).get('sel:k'), 'db3', 'db 3 of the master has the value');
  t.equal(await (await masterDb(0)).get('sel:k'), 'db0', 'db 0 of the master is untouched');
  await set.sync();
  let reply = '';
  const calls = await callsDuring([master, ...replicas], 'get', async () => {
    reply = text(await c.send(encodeCommand('GET', 'sel:k')));
  });
  t.equal(reply, '$3\r\ndb3\r\n', 'GET after replication reads db 3');
  t.equal(calls[0], 0, 'the master did not serve the GET');
  t.equal(sum(calls.slice(1)), 1, 'a replica served the GET');

  // Back to db 0 on the same connection: reads and writes follow.
  t.equal(text(await c.send(encodeCommand('SELECT', '0'))), '+OK\r\n');
  t.equal(text(await c.send(encodeCommand('GET', 'sel:k'))), '$3\r\ndb0\r\n', 'db 0 again');
});

t.test('pipelined SELECTs between writes: each write lands in the database selected before it', async (t) => {
  const c = await rawConnection(port);
  const replies = await c.send(
    Buffer.concat([
      encodeCommand('SELECT', '8'),
      encodeCommand('SET', 'sel:p', 'eight'),
      encodeCommand('SELECT', '9'),
      encodeCommand('SET', 'sel:p', 'nine'),
      encodeCommand('INCR', 'sel:n'),
      encodeCommand('SELECT', '8'),
      encodeCommand('INCR', 'sel:n'),
      encodeCommand('INCR', 'sel:n'),
    ]),
    8,
  );
  t.same(
    replies.map((b) => b.toString('latin1')),
    ['+OK\r\n', '+OK\r\n', '+OK\r\n', '+OK\r\n', ':1\r\n', '+OK\r\n', ':1\r\n', ':2\r\n'],
  );
  const db8 = await masterDb(8);
  const db9 = await masterDb(9);
  t.same([await db8.get('sel:p'), await db8.get('sel:n')], ['eight', '2']);
  t.same([await db9.get('sel:p'), await db9.get('sel:n')], ['nine', '1']);
});

t.test('SELECT errors are the same as Redis gives', async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['SELECT', '16'], label: 'SELECT 16 (out of range with 16 databases)' },
    { cmd: ['SELECT', '-1'] },
    { cmd: ['SELECT', 'abc'] },
    { cmd: ['SELECT', '1.5'] },
    { cmd: ['SELECT', '99999999999999999999'] },
    { cmd: ['SELECT', ''], label: 'SELECT "" (empty)' },
    { cmd: ['SELECT', '01'], label: 'SELECT 01 (leading zero: not an integer for Redis)' },
    { cmd: ['SELECT', '-0'], label: 'SELECT -0 (not an integer for Redis)' },
    { cmd: ['SELECT', '+1'] },
    { cmd: ['SELECT', ' 1'] },
    { cmd: ['SELECT'] },
    { cmd: ['SELECT', '1', '2'] },
    { cmd: ['SELECT', '15'] },
    { cmd: ['SELECT', '0'] },
  ];
  await compareSession(t, master.port, port, steps);
});

t.test('MOVE moves a key to another database, with Redis errors', async (t) => {
  const c = await rawConnection(port);
  t.equal(text(await c.send(encodeCommand('SET', 'sel:mv', 'moved'))), '+OK\r\n');
  t.equal(text(await c.send(encodeCommand('MOVE', 'sel:mv', '5'))), ':1\r\n');
  t.equal(text(await c.send(encodeCommand('MOVE', 'sel:mv', '5'))), ':0\r\n', 'nothing left to move');
  t.equal(await (await masterDb(5)).get('sel:mv'), 'moved', 'db 5 of the master has the key');
  t.equal(await (await masterDb(0)).get('sel:mv'), null, 'db 0 no longer has it');
  await set.sync();
  t.equal(text(await c.send(encodeCommand('SELECT', '5'))), '+OK\r\n');
  t.equal(text(await c.send(encodeCommand('GET', 'sel:mv'))), '$5\r\nmoved\r\n', 'read from db 5');
  await compareSession(t, master.port, port, [
    ['MOVE', 'sel:mv', '16'],
    ['MOVE', 'sel:mv', 'abc'],
    ['MOVE', 'sel:mv', '0'],
    ['SELECT', '5'],
    { cmd: ['MOVE', 'sel:mv', '5'], label: 'MOVE to the selected database' },
  ]);
});

t.test('SWAPDB swaps databases for everyone, as on Redis', async (t) => {
  await (await masterDb(1)).set('sel:sw', 'one');
  await (await masterDb(2)).set('sel:sw', 'two');
  await set.sync();
  const c = await rawConnection(port);
  t.equal(text(await c.send(encodeCommand('SELECT', '1'))), '+OK\r\n');
  t.equal(text(await c.send(encodeCommand('GET', 'sel:sw'))), '$3\r\none\r\n');
  t.equal(text(await c.send(encodeCommand('SWAPDB', '1', '2'))), '+OK\r\n');
  t.equal(await (await masterDb(1)).get('sel:sw'), 'two', 'db 1 of the master now has db 2 data');
  t.equal(await (await masterDb(2)).get('sel:sw'), 'one');
  await set.sync();
  t.equal(text(await c.send(encodeCommand('GET', 'sel:sw'))), '$3\r\ntwo\r\n', 'the session (db 1) sees the swapped data');
  await compareSession(t, master.port, port, [['SWAPDB', '0', '16'], ['SWAPDB', 'a', 'b'], ['SWAPDB', '0']]);
});

t.test('FLUSHDB empties only the selected database', async (t) => {
  const db4 = await masterDb(4);
  await db4.mset('sel:f1', 'a', 'sel:f2', 'b');
  const db10 = await masterDb(10);
  await db10.set('sel:keep', 'c');
  await set.sync();
  const c = await rawConnection(port);
  t.equal(text(await c.send(encodeCommand('SELECT', '4'))), '+OK\r\n');
  t.equal(text(await c.send(encodeCommand('DBSIZE'))), ':2\r\n');
  t.equal(text(await c.send(encodeCommand('FLUSHDB'))), '+OK\r\n');
  t.equal(await db4.dbsize(), 0, 'db 4 of the master is empty');
  t.equal(await db10.get('sel:keep'), 'c', 'db 10 is untouched');
  await set.sync();
  t.equal(text(await c.send(encodeCommand('DBSIZE'))), ':0\r\n', 'DBSIZE through the proxy (db 4) after replication');
  t.equal(text(await c.send(encodeCommand('SELECT', '10'))), '+OK\r\n');
  t.equal(text(await c.send(encodeCommand('DBSIZE'))), ':1\r\n');
});

t.test('ioredis `db` option', async (t) => {
  const r = ioredisClient(port, { db: 6 });
  t.equal(await r.set('sel:io', 'six'), 'OK');
  t.equal(await (await masterDb(6)).get('sel:io'), 'six', 'written to db 6 of the master');
  t.equal(await (await masterDb(0)).get('sel:io'), null);
  await set.sync();
  t.equal(await r.get('sel:io'), 'six');
  t.equal(await r.dbsize(), 1);
});

t.test('node-redis `database` option (RESP3 handshake)', async (t) => {
  const r = await nodeRedisClient(port, { database: 7 });
  t.equal(await r.set('sel:nr', 'seven'), 'OK');
  t.equal(await (await masterDb(7)).get('sel:nr'), 'seven', 'written to db 7 of the master');
  t.equal(await (await masterDb(0)).get('sel:nr'), null);
  await set.sync();
  t.equal(await r.get('sel:nr'), 'seven');
  t.equal(await r.dbSize(), 1);
  await r.select(6);
  t.equal(await r.get('sel:io'), 'six', 'SELECT through node-redis');
});

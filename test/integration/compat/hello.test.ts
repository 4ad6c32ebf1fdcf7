/**
 * Drop-in compatibility: HELLO and RESP3. The proxy's HELLO replies carry the same fields
 * and values as Redis's (but the connection id); a RESP3 session gets RESP3 replies
 * (maps, sets, doubles, nulls, pushes) byte for byte as from Redis; HELLO errors are
 * Redis's. Reference: a fresh standalone redis-server of the same version.
 */
import t from 'tap';
import { ioredisClient, nodeRedisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../../helpers/raw.js';
import { startRedis, startReplicaSet } from '../../helpers/redis.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { compareSession, decode, helloFields, type SessionStep } from './_helpers.js';

const reference = await startRedis();
const set = await startReplicaSet({ replicas: 1 });
const { port } = await startTestProxy([listenerFor(set.master, set.replicas)]);
await waitForReplicaReads(set.replicas, () => ioredisClient(port).get('hello:warm'));
const sync = () => set.sync();

/** Blanks out the client id in HELLO replies (RESP2 and RESP3), the one field that differs by nature. */
const blankId = (text: string) => text.replace(/(\$2\r\nid\r\n:)\d+/, '$1<id>');

t.test('HELLO, HELLO 2, HELLO 3 replies equal Redis (id aside)', async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['HELLO'], label: 'HELLO (no protocol: RESP2 array)' },
    { cmd: ['HELLO', '2'] },
    { cmd: ['HELLO', '3'], label: 'HELLO 3 (RESP3 map)' },
    { cmd: ['HELLO'], label: 'HELLO in a RESP3 session' },
    { cmd: ['HELLO', '2'], label: 'HELLO 2 back from RESP3' },
    { cmd: ['GET', 'hello:none'], label: 'GET missing in RESP2 again ($-1)' },
    { cmd: ['HELLO', '3', 'SETNAME', 'hello-client'] },
    ['CLIENT', 'GETNAME'],
    { cmd: ['HELLO', '2', 'AUTH', 'default', 'anything'], label: 'HELLO 2 AUTH default (no password configured)' },
  ];
  await compareSession(t, reference.port, port, steps, { normalize: blankId });
});

t.test('HELLO 3 fields: server, version, proto, id, mode, role, modules', async (t) => {
  const c = await rawConnection(port);
  const [hello] = await c.send(encodeCommand('HELLO', '3'));
  t.equal(String.fromCharCode(hello![0]!), '%', 'a RESP3 map');
  const f = helloFields(decode(hello!));
  const [id] = await c.send(encodeCommand('CLIENT', 'ID'));
  const version = (await set.master.info('server')).redis_version;
  t.same(Object.keys(f), ['server', 'version', 'proto', 'id', 'mode', 'role', 'modules'], 'the fields, in Redis order');
  t.equal(f.server, 'redis');
  t.equal(f.version, version, "the master's version");
  t.equal(f.proto, 3);
  t.equal(f.id, decode(id!), 'id equals CLIENT ID of the same connection');
  t.equal(f.mode, 'standalone');
  t.equal(f.role, 'master', 'an application sees a master (writes are accepted)');
  t.same(f.modules, []);

  const other = await rawConnection(port);
  const [hello2] = await other.send(encodeCommand('HELLO'));
  t.not(helloFields(decode(hello2!)).id, f.id, 'another connection has another id');
});

t.test('HELLO errors equal Redis (NOPROTO and the others), and leave the protocol as it was', async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['HELLO', '4'], label: 'HELLO 4' },
    { cmd: ['HELLO', '1'] },
    { cmd: ['HELLO', '0'] },
    { cmd: ['HELLO', '-1'] },
    { cmd: ['HELLO', 'abc'] },
    { cmd: ['HELLO', '3.0'] },
    { cmd: ['HELLO', '99999999999999999999'] },
    { cmd: ['HELLO', '3', 'AUTH'] },
    { cmd: ['HELLO', '3', 'AUTH', 'default'] },
    { cmd: ['HELLO', '3', 'SETNAME'] },
    { cmd: ['HELLO', '3', 'SETNAME', 'has space'] },
    { cmd: ['HELLO', '3', 'bogus'] },
    { cmd: ['GET', 'hello:none'], label: 'still RESP2 after the errors' },
    { cmd: ['HELLO', '3'] },
    { cmd: ['HELLO', '4'], label: 'HELLO 4 in a RESP3 session' },
    { cmd: ['GET', 'hello:none'], label: 'still RESP3 (_) after HELLO 4' },
  ];
  await compareSession(t, reference.port, port, steps, { normalize: blankId });
});

t.test('a RESP3 session gets RESP3 replies byte for byte as from Redis', async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['HELLO', '3'] },
    ['HSET', 'r3:h', 'a', '1', 'b', '2'],
    { cmd: ['HGETALL', 'r3:h'], label: 'HGETALL (a map %)' },
    { cmd: ['HGETALL', 'r3:nokey'], label: 'HGETALL of a missing key (empty map)' },
    { cmd: ['HGET', 'r3:h', 'zz'], label: 'HGET missing field (RESP3 null _)' },
    { cmd: ['GET', 'r3:nokey'], label: 'GET missing key (_)' },
    ['MGET', 'r3:nokey', 'r3:h'],
    ['SADD', 'r3:s', '3', '1', '2'],
    { cmd: ['SMEMBERS', 'r3:s'], label: 'SMEMBERS (a set ~)' },
    ['ZADD', 'r3:z', '1.5', 'a', '2', 'b'],
    { cmd: ['ZSCORE', 'r3:z', 'a'], label: 'ZSCORE (a double ,)' },
    { cmd: ['ZRANGE', 'r3:z', '0', '-1', 'WITHSCORES'], label: 'ZRANGE WITHSCORES (pairs with doubles)' },
    ['ZINCRBY', 'r3:z', '1', 'a'],
    ['ZPOPMIN', 'r3:z'],
    ['EXISTS', 'r3:h'],
    ['TYPE', 'r3:h'],
    ['OBJECT', 'ENCODING', 'r3:h'],
    ['XADD', 'r3:x', '1-1', 'f', 'v'],
    ['XRANGE', 'r3:x', '-', '+'],
    ['CONFIG', 'GET', 'maxmemory-policy'],
    ['PING'],
    ['ECHO', 'hi'],
    { cmd: ['CLIENT', 'GETNAME'], label: 'CLIENT GETNAME without a name (_)' },
    ['MULTI'],
    ['HGETALL', 'r3:h'],
    ['ZSCORE', 'r3:z', 'b'],
    { cmd: ['EXEC'], label: 'EXEC (array of a map and a double)' },
    { cmd: ['SUBSCRIBE', 'r3:ch'], label: 'SUBSCRIBE (a push >)' },
    { cmd: ['GET', 'r3:nokey'], label: 'GET while subscribed (allowed in RESP3)' },
    { cmd: ['HGETALL', 'r3:h'], label: 'HGETALL while subscribed' },
    { cmd: ['PING'], label: 'PING while subscribed in RESP3' },
    { cmd: ['UNSUBSCRIBE'], label: 'UNSUBSCRIBE (a push)' },
    { cmd: ['UNSUBSCRIBE'], label: 'UNSUBSCRIBE when not subscribed' },
    { cmd: ['HELLO', '2'] },
    { cmd: ['HGETALL', 'r3:h'], label: 'HGETALL back in RESP2 (flat array)' },
    { cmd: ['ZSCORE', 'r3:z', 'b'], label: 'ZSCORE back in RESP2 (bulk string)' },
  ];
  await compareSession(t, reference.port, port, steps, { normalize: blankId, afterProxyStep: sync });
});

t.test('node-redis (RESP3 by default) gets typed replies', async (t) => {
  const r = await nodeRedisClient(port);
  await r.hSet('r3:nr', { a: '1', b: '2' });
  await r.zAdd('r3:nrz', [{ score: 2.5, value: 'x' }]);
  await set.sync();
  t.same({ ...(await r.hGetAll('r3:nr')) }, { a: '1', b: '2' });
  t.equal(await r.zScore('r3:nrz', 'x'), 2.5);
  t.equal(await r.get('r3:nonexistent'), null);
  t.equal(await r.hGet('r3:nr', 'zz'), null);
});

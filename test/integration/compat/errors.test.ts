/**
 * Drop-in compatibility: wrong commands get the very same error replies through the proxy
 * as from Redis (byte for byte), whether the proxy answers them itself, forwards them to
 * the master or reads from a replica. Reference: a fresh standalone redis-server given the
 * same commands; the proxy side waits for replication after every step so that replica
 * reads see the same data.
 */
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { startRedis, startReplicaSet } from '../../helpers/redis.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { compareSession, type SessionStep } from './_helpers.js';

const reference = await startRedis();
const set = await startReplicaSet({ replicas: 2 });
const { port } = await startTestProxy([listenerFor(set.master, set.replicas)]);
await waitForReplicaReads(set.replicas, () => ioredisClient(port).get('err:warm'));
const sync = () => set.sync();

t.test('setup keys of each type, then type errors (WRONGTYPE) on reads and writes', async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['SET', 'err:str', 'hello'] },
    { cmd: ['RPUSH', 'err:list', 'a', 'b'] },
    { cmd: ['HSET', 'err:hash', 'f', 'v'] },
    { cmd: ['SADD', 'err:set', 'm'] },
    { cmd: ['ZADD', 'err:zset', '1', 'one'] },
    { cmd: ['GET', 'err:list'], label: 'GET on a list (a read)' },
    { cmd: ['HGET', 'err:str', 'f'], label: 'HGET on a string (a read)' },
    { cmd: ['LRANGE', 'err:hash', '0', '-1'], label: 'LRANGE on a hash (a read)' },
    { cmd: ['SMEMBERS', 'err:zset'], label: 'SMEMBERS on a zset (a read)' },
    { cmd: ['ZSCORE', 'err:set', 'm'], label: 'ZSCORE on a set (a read)' },
    { cmd: ['LPUSH', 'err:str', 'x'], label: 'LPUSH on a string (a write)' },
    { cmd: ['INCR', 'err:str'], label: 'INCR on a non-integer string' },
    { cmd: ['INCRBYFLOAT', 'err:str', '1.5'] },
    { cmd: ['HINCRBY', 'err:hash', 'f', '1'], label: 'HINCRBY on a non-integer field' },
    { cmd: ['ZADD', 'err:zset', 'notanumber', 'two'] },
    { cmd: ['SETRANGE', 'err:str', '-1', 'x'] },
    { cmd: ['GETRANGE', 'err:str', 'a', 'b'] },
  ];
  await compareSession(t, reference.port, port, steps, { afterProxyStep: sync });
});

t.test('wrong arity, unknown commands, syntax errors', async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['GET'] },
    { cmd: ['GET', 'a', 'b'] },
    { cmd: ['SET', 'err:k'] },
    { cmd: ['HSET', 'err:h2', 'f'] },
    { cmd: ['MGET'] },
    { cmd: ['NOSUCHCOMMAND'] },
    { cmd: ['NOSUCHCOMMAND', 'x', 'y z'] },
    { cmd: Buffer.from('nosuchinline one two\r\n'), label: 'unknown inline command' },
    { cmd: Buffer.from('GET\r\n'), label: 'inline GET without a key' },
    { cmd: ['SET', 'err:k', 'v', 'XX', 'NX'] },
    { cmd: ['SET', 'err:k', 'v', 'EX', '0'] },
    { cmd: ['SET', 'err:k', 'v', 'EX', 'soon'] },
    { cmd: ['SET', 'err:k', 'v', 'BOGUS'] },
    { cmd: ['EXPIRE', 'err:k', 'abc'] },
    { cmd: ['LRANGE', 'err:list', 'x', '1'] },
    { cmd: ['ZRANGE', 'err:zset', '0', '-1', 'NOPE'] },
    { cmd: ['OBJECT', 'NOSUCHSUB', 'x'] },
    { cmd: ['OBJECT', 'ENCODING', 'err:missing'] },
    { cmd: ['CONFIG', 'NOSUCHSUB'] },
    { cmd: ['CLIENT'] },
    { cmd: ['CLIENT', 'NOSUCHSUB'] },
    { cmd: ['CLIENT', 'SETNAME'] },
    { cmd: ['CLIENT', 'SETNAME', 'has space'] },
    { cmd: ['CLIENT', 'GETNAME', 'extra'] },
    { cmd: ['CLIENT', 'ID', 'extra'] },
    { cmd: ['PING', 'a', 'b'] },
    { cmd: ['ECHO'] },
    { cmd: ['ECHO', 'a', 'b'] },
    { cmd: ['SELECT'] },
    { cmd: ['SELECT', 'x'] },
    { cmd: ['SELECT', '1000'] },
    { cmd: ['AUTH'] },
    { cmd: ['HELLO', 'x'] },
    { cmd: ['HELLO', '3', 'bogus'] },
    { cmd: ['RESET', 'extra'] },
    { cmd: ['MULTI', 'extra'] },
    { cmd: ['SUBSCRIBE'] },
    { cmd: ['PUBLISH', 'c'] },
    { cmd: ['EVAL', "return redis.call('nosuchcmd')", '0'] },
    { cmd: ['EVAL', 'return 1', 'notanumber'] },
    { cmd: ['EVALSHA', 'ffffffffffffffffffffffffffffffffffffffff', '0'] },
    { cmd: ['EVALSHA_RO', 'ffffffffffffffffffffffffffffffffffffffff', '0'] },
    { cmd: ['FCALL', 'nosuchfunction', '0'] },
    { cmd: ['FCALL_RO', 'nosuchfunction', '0'] },
  ];
  await compareSession(t, reference.port, port, steps, { afterProxyStep: sync });
});

t.test('transaction misuse', async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['EXEC'], label: 'EXEC without MULTI' },
    { cmd: ['DISCARD'], label: 'DISCARD without MULTI' },
    { cmd: ['MULTI'] },
    { cmd: ['MULTI'], label: 'nested MULTI' },
    { cmd: ['WATCH', 'err:w'], label: 'WATCH inside MULTI' },
    { cmd: ['SET', 'err:tx', '1'] },
    { cmd: ['INCR', 'err:tx'] },
    { cmd: ['EXEC'], label: 'EXEC runs the queued commands (nested MULTI and WATCH did not abort it)' },
    { cmd: ['MULTI'] },
    { cmd: ['GET'], label: 'wrong arity inside MULTI' },
    { cmd: ['SET', 'err:tx', '2'] },
    { cmd: ['EXEC'], label: 'EXEC after a queueing error (EXECABORT)' },
    { cmd: ['GET', 'err:tx'], label: 'the aborted transaction changed nothing' },
    { cmd: ['MULTI'] },
    { cmd: ['INCR', 'err:str'] },
    { cmd: ['SET', 'err:tx', '3'] },
    { cmd: ['EXEC'], label: 'EXEC with a runtime error inside' },
    { cmd: ['MULTI'] },
    { cmd: ['NOSUCHCOMMAND', 'x'], label: 'unknown command inside MULTI' },
    { cmd: ['DISCARD'] },
    { cmd: ['UNWATCH'] },
    { cmd: ['WATCH'] },
    { cmd: ['GET', 'err:tx'] },
  ];
  await compareSession(t, reference.port, port, steps, { afterProxyStep: sync });
});

/**
 * Drop-in compatibility at the seams between session states, where the proxy once
 * differed from Redis: pipelined QUIT behind SUBSCRIBE/UNSUBSCRIBE, DISCARD after a
 * refused command, a failing SELECT inside MULTI, out-of-range SELECT, a denied command
 * in subscribed mode. Each compared with a standalone redis-server where Redis decides.
 */
import t from 'tap';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { rawConnection } from '../../helpers/raw.js';
import { startRedis, startReplicaSet } from '../../helpers/redis.js';
import { compareSession, pipelineTranscript } from './_helpers.js';

const reference = await startRedis();
const set = await startReplicaSet({ replicas: 1 });
const proxy = await startTestProxy([
  listenerFor(set.master, set.replicas),
  listenerFor(set.master, set.replicas, { denyCommands: ['flushall', 'psubscribe'] }),
]);
const [port, denyPort] = proxy.ports as [number, number];
t.teardown(async () => {
  await proxy.close();
  await set.stop();
  await reference.stop();
});

t.test('QUIT pipelined behind SUBSCRIBE and UNSUBSCRIBE answers like Redis', async (t) => {
  const cmds = [
    ['SUBSCRIBE', 'ec:a'],
    ['UNSUBSCRIBE', 'ec:a'],
    ['QUIT'],
  ] as const;
  const direct = await pipelineTranscript(reference.port, cmds);
  const through = await pipelineTranscript(port, cmds);
  t.equal(through, direct, 'same bytes, including +OK, then closed');
  t.match(through, /\+OK\r\n«closed»$/);
});

t.test('SELECT and HELLO with out-of-range numbers: Redis 7.0 wording', async (t) => {
  await compareSession(t, reference.port, port, [
    ['SELECT', '99999999999'],
    ['SELECT', '99999999999999999999999'],
    ['SELECT', '-1'],
    ['SELECT', '01'],
    ['SELECT', '1152921504606846976'], // 2^60: within 64 bits, out of 32
    ['SELECT', '9223372036854775808'], // 2^63: beyond 64 bits
    ['HELLO', '1152921504606846976'],
    ['HELLO', '9223372036854775808'],
  ]);
});

t.test('a SELECT that fails inside MULTI leaves the session where it was', async (t) => {
  await compareSession(t, reference.port, port, [
    ['MULTI'],
    ['SELECT', '99'],
    ['EXEC'],
    ['SET', 'ec:after', 'v'],
    ['GET', 'ec:after'],
  ]);
  const master = set.master.client();
  t.equal(await master.get('ec:after'), 'v', 'the write went to db 0');
});

t.test('a command refused by denyCommands aborts EXEC but not DISCARD', async (t) => {
  const conn = await rawConnection(denyPort);
  t.teardown(() => conn.socket.destroy());
  conn.socket.write('MULTI\r\nFLUSHALL\r\nDISCARD\r\nMULTI\r\nFLUSHALL\r\nSET ec:x 1\r\nEXEC\r\nGET ec:x\r\n');
  await conn.waitFor((buf) => buf.toString('latin1').split('\r\n').length >= 9, 3000);
  const lines = conn.received().toString('latin1').split('\r\n');
  t.equal(lines[0], '+OK');
  t.match(lines[1], /^-ERR redis-proxy: command 'flushall' is denied .*denyCommands/);
  t.equal(lines[2], '+OK', 'DISCARD answers OK');
  t.equal(lines[3], '+OK');
  t.match(lines[4], /denied/);
  t.equal(lines[5], '+QUEUED');
  t.equal(lines[6], '-EXECABORT Transaction discarded because of previous errors.', 'EXEC aborts');
  t.equal(lines[7], '$-1', 'nothing of the transaction ran');
});

t.test('a CLIENT TRACKING ON that Redis refuses does not hold a connection', async (t) => {
  const conn = await rawConnection(port);
  t.teardown(() => conn.socket.destroy());
  // OPTIN with OPTOUT is refused by Redis.
  conn.socket.write('CLIENT TRACKING on OPTIN OPTOUT\r\n');
  await conn.waitFor((buf) => buf.toString('latin1').endsWith('\r\n'), 3000);
  conn.socket.write('CLIENT INFO\r\n');
  await conn.waitFor((buf) => buf.toString('latin1').includes('flags='), 3000);
  const text = conn.received().toString('latin1');
  t.match(text, /^-ERR /, 'Redis refused it');
  t.match(text, /flags=N /, 'the session holds no dedicated connection and is not tracking');
});

t.test('a denied command in subscribed mode is answered at once, between messages', async (t) => {
  const conn = await rawConnection(denyPort);
  t.teardown(() => conn.socket.destroy());
  conn.socket.write('SUBSCRIBE ec:ch\r\n');
  await conn.waitFor((buf) => buf.toString('latin1').includes(':1\r\n'), 3000);
  conn.socket.write('PSUBSCRIBE ec:*\r\n');
  const answered = await conn.waitFor((buf) => buf.toString('latin1').includes('denied'), 1000);
  t.ok(answered, 'the refusal arrives while still subscribed');
  await set.master.client().publish('ec:ch', 'hello');
  t.ok(await conn.waitFor((buf) => buf.toString('latin1').includes('hello'), 3000), 'messages still flow');
});

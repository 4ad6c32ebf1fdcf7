/**
 * Blocking commands: they block only their own client, are woken by other clients'
 * writes through the proxy, time out as Redis says, and keep the client's own order.
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { timed, waitFor } from '../helpers/wait.js';

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const { port } = await startTestProxy([listenerFor(master, set.replicas)]);

/** Waits until the master has `n` clients blocked (so the blocking command has arrived). */
const blockedOnMaster = (n: number) =>
  waitFor(`${n} client(s) blocked on the master`, async () => Number((await master.info('clients')).blocked_clients) >= n);

t.test('BLPOP is woken by another client\'s LPUSH through the proxy', async (t) => {
  const waiter = ioredisClient(port);
  const pusher = ioredisClient(port);
  const popped = waiter.blpop('blk:q1', 5);
  await blockedOnMaster(1);
  t.equal(await pusher.lpush('blk:q1', 'hello'), 1);
  const { ms, value } = await timed(popped);
  t.same(value, ['blk:q1', 'hello']);
  t.ok(ms < 2000, `woken promptly (${Math.round(ms)} ms), not at its timeout`);
});

t.test('BLPOP with a 1 s timeout returns nil after about 1 s', async (t) => {
  const client = ioredisClient(port);
  await client.ping();
  const { ms, value, error } = await timed(client.blpop('blk:never', 1));
  t.equal(error, undefined);
  t.equal(value, null, 'nil reply');
  t.ok(ms >= 900 && ms < 2000, `took ${Math.round(ms)} ms (want ~1000)`);
});

t.test('while one client is blocked, other clients\' commands keep flowing', async (t) => {
  const blocked = ioredisClient(port);
  const other = ioredisClient(port);
  await other.ping();
  const pending = blocked.blpop('blk:idle', 3);
  await blockedOnMaster(1);
  for (let i = 0; i < 20; i++) {
    const { ms } = await timed(Promise.all([other.set(`blk:flow${i}`, 'v'), other.incr('blk:flow-n')]));
    if (ms > 500) t.fail(`command round trip ${i} took ${Math.round(ms)} ms while another client was blocked`);
  }
  t.equal(await master.client().get('blk:flow-n'), '20');
  t.pass('20 write round trips completed while BLPOP was blocked');
  await other.lpush('blk:idle', 'done');
  t.same(await pending, ['blk:idle', 'done']);
});

t.test('many clients blocked at once are each woken by their own push', async (t) => {
  const N = 20;
  const waiters = Array.from({ length: N }, () => ioredisClient(port));
  await Promise.all(waiters.map((w) => w.ping()));
  const pops = waiters.map((w, i) => w.brpop(`blk:many${i}`, 5));
  await blockedOnMaster(N);
  const pusher = ioredisClient(port);
  for (let i = N - 1; i >= 0; i--) await pusher.lpush(`blk:many${i}`, `item${i}`);
  const results = await Promise.all(pops);
  t.same(results, Array.from({ length: N }, (_, i) => [`blk:many${i}`, `item${i}`]));
});

t.test('BRPOPLPUSH and BLMOVE move the element once woken', async (t) => {
  const waiter = ioredisClient(port);
  const pusher = ioredisClient(port);
  const direct = master.client();

  const moved = waiter.brpoplpush('blk:src1', 'blk:dst1', 5);
  await blockedOnMaster(1);
  await pusher.rpush('blk:src1', 'a');
  t.equal(await moved, 'a', 'BRPOPLPUSH returns the element');
  t.same(await direct.lrange('blk:dst1', 0, -1), ['a'], 'and it is in the destination');

  const moved2 = waiter.blmove('blk:src2', 'blk:dst2', 'LEFT', 'RIGHT', 5);
  await blockedOnMaster(1);
  await pusher.rpush('blk:src2', 'b');
  t.equal(await moved2, 'b', 'BLMOVE returns the element');
  t.same(await direct.lrange('blk:dst2', 0, -1), ['b']);

  const { value, ms } = await timed(waiter.blmove('blk:empty', 'blk:dst3', 'LEFT', 'RIGHT', 0.2));
  t.equal(value, null, 'BLMOVE times out with nil');
  t.ok(ms >= 150 && ms < 1500, `after ${Math.round(ms)} ms (want ~200)`);
});

t.test('XREAD BLOCK returns the entry another client adds', async (t) => {
  const reader = ioredisClient(port);
  const writer = ioredisClient(port);
  await writer.xadd('blk:stream', '1-1', 'f', 'old');
  const read = reader.xread('BLOCK', 5000, 'STREAMS', 'blk:stream', '$');
  await blockedOnMaster(1);
  await writer.xadd('blk:stream', '2-1', 'f', 'new');
  t.same(await read, [['blk:stream', [['2-1', ['f', 'new']]]]]);

  const { value, ms } = await timed(reader.xread('BLOCK', 200, 'STREAMS', 'blk:stream', '$'));
  t.equal(value, null, 'XREAD BLOCK times out with nil');
  t.ok(ms >= 150 && ms < 1500, `after ${Math.round(ms)} ms`);
});

t.test('writes before and after a blocking command execute in the client\'s order', async (t) => {
  const client = ioredisClient(port);
  const replies = await client
    .pipeline()
    .set('blk:order', '1')
    .blpop('blk:order-empty', 0.1)
    .incr('blk:order')
    .get('blk:order')
    .exec();
  t.same(replies?.slice(0, 3), [[null, 'OK'], [null, null], [null, 2]], 'SET, BLPOP (nil), INCR -> 2');

  // The same in raw bytes, with a read from the replica in between.
  const conn = await rawConnection(port);
  const got = await conn.send(
    Buffer.concat([
      encodeCommand('SET', 'blk:order2', '10'),
      encodeCommand('BLPOP', 'blk:order-empty', '0.1'),
      encodeCommand('INCR', 'blk:order2'),
      encodeCommand('PING'),
      encodeCommand('INCR', 'blk:order2'),
    ]),
    5,
  );
  t.same(
    got.map((b) => b.toString('latin1')),
    ['+OK\r\n', '*-1\r\n', ':11\r\n', '+PONG\r\n', ':12\r\n'],
  );
});

t.test('a blocked client disconnecting does not steal a later push', async (t) => {
  const quitter = ioredisClient(port);
  void quitter.blpop('blk:steal', 10).catch(() => null);
  await blockedOnMaster(1);
  quitter.disconnect();
  // Redis drops a disconnected client's BLPOP; the proxy must not leave it blocked on
  // the master, where it would take the next element pushed (within its 10 s timeout).
  await waitFor(
    'the abandoned BLPOP to be released on the master',
    async () => Number((await master.info('clients')).blocked_clients) === 0,
    { timeoutMs: 3000 },
  );
  const pusher = ioredisClient(port);
  await pusher.lpush('blk:steal', 'kept');
  t.same(await master.client().lrange('blk:steal', 0, -1), ['kept'], 'the element is still in the list');
});

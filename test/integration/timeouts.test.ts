/**
 * Timeouts: a command that outlives `commandTimeout` gets an error (blocking commands are
 * exempt) and its late reply never lands on a later command; `clientIdleTimeout` closes
 * idle clients only.
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { sleep, timed, waitFor } from '../helpers/wait.js';

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
await master.client().set('to:k', 'v');
await set.sync();

t.test('commandTimeout: a slow command gets an error; later replies stay in place', async (t) => {
  // The proxy checks command timeouts once per health-check interval (documented
  // precision), so the interval is short here.
  const { port } = await startTestProxy(
    [listenerFor(master, set.replicas, { commandTimeout: 300, healthCheckInterval: 100 })],
    { t },
  );
  const slow = await rawConnection(port);
  const other = await rawConnection(port);
  t.equal((await slow.send(encodeCommand('PING')))[0]!.toString(), '+PONG\r\n');
  t.equal((await other.send(encodeCommand('SET', 'to:n', '0')))[0]!.toString(), '+OK\r\n');

  const started = Date.now();
  const slowReply = slow.send(encodeCommand('DEBUG', 'SLEEP', '2.5'), 1, 4000);
  await sleep(50);
  // Queued behind the sleep on the master.
  const otherReply = other.send(encodeCommand('INCR', 'to:n'), 1, 4000);
  const [reply] = await slowReply;
  const elapsed = Date.now() - started;
  t.match(reply!.toString(), /^-\S+ .*tim/i, `the slow command gets a timeout error: ${JSON.stringify(reply!.toString())}`);
  t.ok(
    elapsed >= 250 && elapsed < 1500,
    `after ${elapsed} ms (commandTimeout 300, healthCheckInterval 100; the master sleeps 2500)`,
  );
  const [incr] = await otherReply;
  t.match(incr!.toString(), /^(:1\r\n|-.*tim)/i, `the queued INCR gets its own reply or a timeout: ${JSON.stringify(incr!.toString())}`);

  // Let the sleep end and its late +OK arrive at the proxy, then check nothing shifted.
  await waitFor('the master to answer again', async () => (await master.client().ping()) === 'PONG');
  for (const conn of [slow, other]) {
    const replies = await conn.send(
      Buffer.concat([encodeCommand('SET', 'to:s', 'x'), encodeCommand('INCR', 'to:m'), encodeCommand('ECHO', 'marker')]),
      3,
    );
    t.equal(replies[0]!.toString(), '+OK\r\n');
    t.match(replies[1]!.toString(), /^:\d+\r\n$/, 'INCR gets an integer, not a late reply');
    t.equal(replies[2]!.toString(), '$6\r\nmarker\r\n');
  }
  const client = ioredisClient(port);
  t.equal(await client.get('to:k'), 'v', 'reads are fine');
  t.equal(await client.incr('to:fresh'), 1, 'writes are fine');
});

t.test('commandTimeout does not apply to blocking commands', async (t) => {
  const { port } = await startTestProxy([listenerFor(master, set.replicas, { commandTimeout: 300 })], { t });
  const client = ioredisClient(port);
  await client.ping();
  const { ms, value, error } = await timed(client.blpop('to:empty', 1));
  t.equal(error, undefined, 'no error');
  t.equal(value, null, 'BLPOP times out with nil on its own terms');
  t.ok(ms >= 900, `after ${Math.round(ms)} ms`);
  const xread = await timed(client.xread('BLOCK', 800, 'STREAMS', 'to:stream', '$'));
  t.equal(xread.error, undefined);
  t.equal(xread.value, null, 'XREAD BLOCK 800 returns nil after its own timeout');
});

t.test('clientIdleTimeout closes idle clients, not active or blocked ones', async (t) => {
  const { port } = await startTestProxy([listenerFor(master, set.replicas, { clientIdleTimeout: 400 })], { t });
  const idle = await rawConnection(port);
  const active = await rawConnection(port);
  const blocked = await rawConnection(port);
  await idle.send('PING\r\n');
  const blpop = blocked.send(encodeCommand('BLPOP', 'to:idle-empty', '1.5'), 1, 4000);
  const started = Date.now();
  let idleClosedAfter = -1;
  void idle.closedPromise.then(() => (idleClosedAfter = Date.now() - started));
  while (Date.now() - started < 1200) {
    await active.send('PING\r\n');
    await sleep(100);
  }
  t.ok(idleClosedAfter >= 300 && idleClosedAfter < 1200, `the idle client was closed after ${idleClosedAfter} ms (timeout 400)`);
  t.notOk(active.closed, 'the active client is still connected');
  const [nil] = await blpop;
  t.equal(nil!.toString(), '*-1\r\n', 'the blocked client got its BLPOP reply (not closed as idle)');
});

/**
 * Drop-in compatibility: Pub/Sub. A subscriber through the proxy receives exactly what a
 * subscriber connected straight to the master receives (same bytes, same order); a
 * subscribed connection answers and refuses commands as Redis does; PUBSUB introspection
 * shows the master's state; ioredis and node-redis subscribers work, and ioredis gets
 * its subscriptions back after the proxy restarts.
 */
import t from 'tap';
import { createClient } from 'redis';
import { ioredisClient, nodeRedisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection, splitReplies } from '../../helpers/raw.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { compareSession, decode, show, waitFor, type SessionStep } from './_helpers.js';

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const { port } = await startTestProxy([listenerFor(master, set.replicas)]);
await waitForReplicaReads(set.replicas, () => ioredisClient(port).get('ps:warm'));

const opts = { timeout: 20000 };

t.test('a subscriber through the proxy gets the same bytes, in the same order, as one on the master', opts, async (t) => {
  const subscribe = Buffer.concat([
    encodeCommand('SUBSCRIBE', 'ps:a', 'ps:b'),
    encodeCommand('PSUBSCRIBE', 'ps:p.*'),
    encodeCommand('SSUBSCRIBE', 'ps:s'),
  ]);
  const direct = await rawConnection(master.port);
  const proxied = await rawConnection(port);
  await direct.send(subscribe, 4);
  await proxied.send(subscribe, 4, 3000).catch(() => undefined);
  t.equal(proxied.received().toString('latin1'), direct.received().toString('latin1'), 'the subscription confirmations');

  // Another session of the proxy publishes, pipelined, to every kind of subscription.
  const pub = await rawConnection(port);
  const publishes: Buffer[] = [];
  const expectedReplies: string[] = [];
  for (let i = 0; i < 40; i++) {
    const kind = i % 4;
    if (kind === 0) publishes.push(encodeCommand('PUBLISH', 'ps:a', `m${i}`));
    if (kind === 1) publishes.push(encodeCommand('PUBLISH', 'ps:p.x', `m${i}`));
    if (kind === 2) publishes.push(encodeCommand('PUBLISH', 'ps:b', `m${i}`));
    if (kind === 3) publishes.push(encodeCommand('SPUBLISH', 'ps:s', `m${i}`));
    expectedReplies.push(':2\r\n');
  }
  const replies = await pub.send(Buffer.concat(publishes), 40);
  t.same(replies.map((r) => r.toString('latin1')), expectedReplies, 'every PUBLISH reached both subscribers');
  t.ok(await direct.waitFor((b) => splitReplies(b).length >= 4 + 40, 3000), 'the direct subscriber got the 40 messages');
  await proxied.waitFor((b) => b.length >= direct.received().length, 3000);
  t.equal(proxied.received().toString('latin1'), direct.received().toString('latin1'), 'the same stream of messages');
  const messages = splitReplies(proxied.received()).slice(4).map(decode);
  t.same(
    messages.map((m) => (m as string[]).at(-1)),
    Array.from({ length: 40 }, (_, i) => `m${i}`),
    'messages in publish order',
  );
});

t.test('a subscribed connection answers and refuses as Redis does; UNSUBSCRIBE all leaves the mode', opts, async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['SUBSCRIBE', 'ps:x'] },
    { cmd: ['GET', 'ps:k'], label: 'GET while subscribed' },
    { cmd: ['SET', 'ps:k', 'v'], label: 'SET while subscribed' },
    { cmd: ['SELECT', '1'], label: 'SELECT while subscribed' },
    { cmd: ['CLIENT', 'SETNAME', 'n'], label: 'CLIENT SETNAME while subscribed' },
    { cmd: ['CLIENT', 'ID'], label: 'CLIENT ID while subscribed' },
    { cmd: ['ECHO', 'hi'], label: 'ECHO while subscribed' },
    { cmd: ['MULTI'], label: 'MULTI while subscribed' },
    { cmd: ['HELLO', '2'], label: 'HELLO while subscribed' },
    { cmd: ['AUTH', 'x'], label: 'AUTH while subscribed' },
    { cmd: ['NOSUCHCOMMAND'], label: 'an unknown command while subscribed' },
    { cmd: ['PING'], label: 'PING while subscribed' },
    { cmd: ['PING', 'hello'], label: 'PING <message> while subscribed' },
    { cmd: ['PSUBSCRIBE', 'ps:y*'], label: 'PSUBSCRIBE adds to the count' },
    { cmd: ['SUBSCRIBE', 'ps:x'], label: 'SUBSCRIBE to a channel already subscribed' },
    { cmd: ['UNSUBSCRIBE', 'ps:nosuch'], label: 'UNSUBSCRIBE a channel not subscribed' },
    { cmd: ['UNSUBSCRIBE'], label: 'UNSUBSCRIBE all channels (a pattern is left)' },
    { cmd: ['GET', 'ps:k'], label: 'GET while still pattern-subscribed' },
    { cmd: ['PUNSUBSCRIBE'], label: 'PUNSUBSCRIBE all: leaves the mode' },
    { cmd: ['GET', 'ps:k'], label: 'GET after leaving the mode' },
    { cmd: ['PING'], label: 'PING after leaving the mode' },
    { cmd: ['SSUBSCRIBE', 'ps:s1', 'ps:s2'], replies: 2 },
    { cmd: ['GET', 'ps:k'], label: 'GET while shard-subscribed' },
    { cmd: ['SUNSUBSCRIBE'], replies: 2, label: 'SUNSUBSCRIBE all' },
    { cmd: ['ECHO', 'normal'], label: 'ECHO after SUNSUBSCRIBE all' },
  ];
  await compareSession(t, master.port, port, steps);
});

t.test('UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE when not subscribed equal Redis (RESP2 and RESP3)', opts, async (t) => {
  const resp2: SessionStep[] = [
    ['UNSUBSCRIBE'],
    { cmd: ['UNSUBSCRIBE', 'ps:a', 'ps:b'], replies: 2 },
    ['PUNSUBSCRIBE'],
    { cmd: ['PUNSUBSCRIBE', 'ps:*'] },
    ['SUNSUBSCRIBE'],
    { cmd: ['SUNSUBSCRIBE', 'ps:s1', 'ps:s2'], replies: 2 },
    ['GET', 'ps:k'],
  ];
  await compareSession(t, master.port, port, resp2);
  const blankId = (text: string) => text.replace(/(\$2\r\nid\r\n:)\d+/, '$1<id>');
  await compareSession(t, master.port, port, [['HELLO', '3'], ...resp2], { normalize: blankId });
});

t.test('PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS / SHARDNUMSUB reflect the master', opts, async (t) => {
  const sub = await rawConnection(port);
  await sub.send(
    Buffer.concat([
      encodeCommand('SUBSCRIBE', 'ps:n1', 'ps:n2'),
      encodeCommand('PSUBSCRIBE', 'ps:np*'),
      encodeCommand('SSUBSCRIBE', 'ps:ns'),
    ]),
    4,
  );
  const direct = master.client();
  const proxied = ioredisClient(port);
  t.same(
    await proxied.pubsub('NUMSUB', 'ps:n1', 'ps:n2', 'ps:none'),
    await direct.pubsub('NUMSUB', 'ps:n1', 'ps:n2', 'ps:none'),
    'PUBSUB NUMSUB',
  );
  t.same(await proxied.pubsub('NUMSUB', 'ps:n1'), ['ps:n1', 1], 'the proxied subscriber is counted');
  const sorted = (v: unknown) => [...(v as string[])].sort();
  t.same(sorted(await proxied.pubsub('CHANNELS', 'ps:n*')), sorted(await direct.pubsub('CHANNELS', 'ps:n*')), 'PUBSUB CHANNELS');
  t.same(sorted(await proxied.pubsub('CHANNELS', 'ps:n*')), ['ps:n1', 'ps:n2']);
  t.equal(await proxied.pubsub('NUMPAT'), await direct.pubsub('NUMPAT'), 'PUBSUB NUMPAT');
  t.ok(Number(await proxied.pubsub('NUMPAT')) >= 1, 'PUBSUB NUMPAT counts the proxied pattern');
  t.same(await proxied.call('PUBSUB', 'SHARDCHANNELS', 'ps:*'), await direct.call('PUBSUB', 'SHARDCHANNELS', 'ps:*'), 'PUBSUB SHARDCHANNELS');
  t.same(await proxied.call('PUBSUB', 'SHARDNUMSUB', 'ps:ns'), ['ps:ns', 1], 'PUBSUB SHARDNUMSUB');
  sub.socket.destroy();
  await waitFor('the subscriber to be gone', async () => ((await proxied.pubsub('NUMSUB', 'ps:n1')) as unknown[])[1] === 0);
  t.pass('PUBSUB NUMSUB drops to 0 once the subscriber disconnects');
});

for (const protocol of [3, 2] as const) {
  t.test(`ioredis subscriber (RESP${protocol})`, opts, async (t) => {
    const sub = ioredisClient(port, { protocol });
    const pub = ioredisClient(port, { protocol });
    const got: string[] = [];
    sub.on('message', (channel: string, message: string) => got.push(`${channel}:${message}`));
    sub.on('pmessage', (_p: string, channel: string, message: string) => got.push(`p ${channel}:${message}`));
    t.equal(await sub.subscribe(`ps:io${protocol}`), 1);
    t.equal(await sub.psubscribe(`ps:iop${protocol}.*`), 2);
    t.equal(await pub.publish(`ps:io${protocol}`, 'one'), 1);
    t.equal(await pub.publish(`ps:iop${protocol}.x`, 'two'), 1);
    t.equal(await pub.publish(`ps:io${protocol}`, 'three'), 1);
    await waitFor('three messages', () => got.length >= 3, { timeoutMs: 3000 }).catch(() => undefined);
    t.same(got, [`ps:io${protocol}:one`, `p ps:iop${protocol}.x:two`, `ps:io${protocol}:three`]);
    // By name: ioredis's unsubscribe() without names waits for a count of 0 (a pattern is still there), also against Redis.
    await sub.unsubscribe(`ps:io${protocol}`);
    await sub.punsubscribe(`ps:iop${protocol}.*`);
    t.equal(await sub.set(`ps:io${protocol}:after`, 'x'), 'OK', 'normal commands after unsubscribing');
  });
}

/** A node-redis subscriber (client.duplicate() + subscribe) against `target`: what it sees, as text. */
async function nodeRedisFlow(target: number, RESP: 2 | 3): Promise<string[]> {
  const client = await nodeRedisClient(target, { RESP });
  const sub = client.duplicate() as ReturnType<typeof createClient>;
  sub.on('error', () => {});
  const out: string[] = [];
  // Messages apart: whether a message or the PUBLISH reply arrives first is a race between two connections.
  const messages: string[] = [];
  try {
    await sub.connect();
    await sub.subscribe(`ps:nr${RESP}`, (message, channel) => messages.push(`message ${channel}:${message}`));
    await sub.pSubscribe(`ps:nrp${RESP}.*`, (message, channel) => messages.push(`pmessage ${channel}:${message}`));
    out.push(`publish: ${await client.publish(`ps:nr${RESP}`, 'one')}`);
    out.push(`publish: ${await client.publish(`ps:nrp${RESP}.z`, 'two')}`);
    await waitFor('two messages', () => messages.length >= 2, { timeoutMs: 3000 }).catch(() => undefined);
    await sub.unsubscribe();
    await sub.pUnsubscribe();
    out.push(`publish after unsubscribing: ${await client.publish(`ps:nr${RESP}`, 'three')}`);
    out.push(`set after unsubscribing: ${await sub.set(`ps:nr${RESP}:k`, 'v')}`);
    out.push(`ping after unsubscribing: ${JSON.stringify(await sub.ping())}`);
  } catch (err) {
    out.push(`error: ${(err as Error).message}`);
  } finally {
    try {
      sub.destroy();
    } catch {
      /* closed */
    }
  }
  return [...messages, ...out];
}

for (const RESP of [3, 2] as const) {
  t.test(`node-redis subscriber: client.duplicate() + subscribe (RESP${RESP}), as against the master`, opts, async (t) => {
    const expected = await nodeRedisFlow(master.port, RESP);
    const got = await nodeRedisFlow(port, RESP);
    t.same(got, expected, `through the proxy as directly: ${JSON.stringify(expected)}`);
    t.ok(got.includes(`message ps:nr${RESP}:one`) && got.includes(`pmessage ps:nrp${RESP}.z:two`), 'both messages arrived');
  });
}

t.test('ioredis resubscribes after the proxy restarts on the same port', { timeout: 30000 }, async (t) => {
  const first = await startTestProxy([listenerFor(master, set.replicas)], { t });
  const proxyPort = first.port;
  const sub = ioredisClient(proxyPort, { retryStrategy: (n: number) => (n > 100 ? null : 100) });
  const got: string[] = [];
  sub.on('message', (_c: string, m: string) => got.push(m));
  await sub.subscribe('ps:restart');
  const pub = master.client();
  t.equal(await pub.publish('ps:restart', 'before'), 1);
  await waitFor('the first message', () => got.includes('before'), { timeoutMs: 3000 });

  // The proxy itself stops (not via the harness's close(), which also closes the test's clients).
  await first.proxy.close(2000);
  t.equal(sub.status === 'end', false, 'the subscriber did not give up');
  t.equal(await pub.publish('ps:restart', 'while-down'), 0, 'nobody subscribed while the proxy is down');
  await startTestProxy([{ ...listenerFor(master, set.replicas), listen: proxyPort }], { t });
  await waitFor(
    'the resubscribed client to receive a message published after the restart',
    async () => {
      await pub.publish('ps:restart', 'after');
      return got.includes('after');
    },
    { timeoutMs: 10000, intervalMs: 200 },
  );
  t.notOk(got.includes('while-down'));
  t.pass(`messages received: ${show(got.join(','))}`);
});

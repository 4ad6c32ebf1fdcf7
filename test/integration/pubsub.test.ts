/**
 * Pub/Sub through the proxy: subscribers get what other clients publish, and a
 * subscribed connection behaves exactly as on Redis (same replies, same refusals).
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const { port } = await startTestProxy([listenerFor(master, set.replicas)]);

t.test('SUBSCRIBE / PSUBSCRIBE receive what another client PUBLISHes', async (t) => {
  const sub = ioredisClient(port);
  const pub = ioredisClient(port);
  const messages: string[] = [];
  sub.on('message', (channel: string, message: string) => messages.push(`${channel}:${message}`));
  sub.on('pmessage', (pattern: string, channel: string, message: string) =>
    messages.push(`${pattern}|${channel}:${message}`),
  );
  t.equal(await sub.subscribe('ps:news'), 1);
  t.equal(await sub.psubscribe('ps:sport.*'), 2);
  t.equal(await pub.publish('ps:news', 'hello'), 1, 'PUBLISH counts the one subscriber');
  t.equal(await pub.publish('ps:sport.tennis', 'ace'), 1);
  t.equal(await pub.publish('ps:other', 'nobody'), 0);
  await waitFor('both messages', () => messages.length >= 2);
  t.same(messages, ['ps:news:hello', 'ps:sport.*|ps:sport.tennis:ace']);
  // (named: ioredis 6 mishandles UNSUBSCRIBE without arguments, even against Redis itself)
  t.equal(await sub.unsubscribe('ps:news'), 1);
  t.equal(await sub.punsubscribe('ps:sport.*'), 0);
  t.equal(await sub.get('ps:none'), null, 'normal commands work again after unsubscribing');
});

t.test('a subscribed connection answers exactly as Redis does', async (t) => {
  const steps: [string, Buffer][] = [
    ['SUBSCRIBE two channels', encodeCommand('SUBSCRIBE', 'ps:a', 'ps:b')],
    ['PING while subscribed', encodeCommand('PING')],
    ['GET while subscribed (refused)', encodeCommand('GET', 'ps:a')],
    ['UNSUBSCRIBE one channel', encodeCommand('UNSUBSCRIBE', 'ps:a')],
    ['UNSUBSCRIBE the rest', encodeCommand('UNSUBSCRIBE')],
    ['GET after unsubscribing', encodeCommand('GET', 'ps:a')],
  ];
  const replyCounts = [2, 1, 1, 1, 1, 1];
  const direct = await rawConnection(master.port);
  const proxied = await rawConnection(port);
  for (const [i, [what, bytes]] of steps.entries()) {
    const expected = Buffer.concat(await direct.send(bytes, replyCounts[i])).toString('latin1');
    const got = Buffer.concat(await proxied.send(bytes, replyCounts[i])).toString('latin1');
    t.equal(got, expected, `${what}: ${JSON.stringify(expected)}`);
  }
});

t.test('messages reach every subscriber, each on its own connection', async (t) => {
  const subs = Array.from({ length: 10 }, () => ioredisClient(port));
  const got = subs.map(() => [] as string[]);
  await Promise.all(
    subs.map(async (s, i) => {
      s.on('message', (_channel: string, message: string) => got[i]!.push(message));
      await s.subscribe('ps:fanout');
    }),
  );
  const pub = ioredisClient(port);
  t.equal(await pub.publish('ps:fanout', 'm1'), 10, 'ten receivers');
  t.equal(await pub.publish('ps:fanout', 'm2'), 10);
  await waitFor('every subscriber to get both messages', () => got.every((g) => g.length >= 2));
  t.same(got, subs.map(() => ['m1', 'm2']));
});

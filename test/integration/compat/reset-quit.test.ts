/**
 * Drop-in compatibility: RESET and QUIT. RESET clears the connection's state (database,
 * name, MULTI, WATCH, subscriptions, protocol, CLIENT REPLY, authentication) as Redis
 * does; QUIT answers +OK after every earlier reply and then closes, running nothing sent
 * after it. Compared with standalone redis-servers given the same commands.
 */
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawCommand, rawConnection } from '../../helpers/raw.js';
import { startRedis, startReplicaSet } from '../../helpers/redis.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { authedClient, closedWithin, compareSession, pipelineTranscript, show, type SessionStep } from './_helpers.js';

const PASSWORD = 'sekret';
const reference = await startRedis();
const referenceAuth = await startRedis();
await referenceAuth.client().config('SET', 'requirepass', PASSWORD);
const set = await startReplicaSet({ replicas: 1 });
const proxy = await startTestProxy([
  listenerFor(set.master, set.replicas),
  listenerFor(set.master, set.replicas, { password: PASSWORD }),
]);
const [port, authPort] = proxy.ports as [number, number];
await waitForReplicaReads(set.replicas, () => ioredisClient(port).get('rq:warm'));
const sync = () => set.sync();

const blankId = (text: string) => text.replace(/(\$2\r\nid\r\n:)\d+/, '$1<id>');

/** The same data on the reference and (through the proxy) on the master, replicated. */
t.before(async () => {
  const setup: SessionStep[] = [
    ['SET', 'rq:k', 'zero'],
    ['HSET', 'rq:h', 'a', '1'],
    ['SELECT', '2'],
    ['SET', 'rq:k', 'two'],
  ];
  const ignore = { equal: () => true };
  await compareSession(ignore, reference.port, port, setup);
  await authedClient(referenceAuth.port, PASSWORD).set('rq:k', 'zero');
  await sync();
});

/** A write from another connection to the same target (the proxy or the reference). */
const otherClient = (...args: string[]) => async (target: number) => {
  const r = await rawCommand(target, encodeCommand(...args));
  if (r.timedOut || r.text.startsWith('-')) throw new Error(`${args.join(' ')} failed: ${r.text}`);
};

t.test('RESET clears db, name, MULTI, WATCH, subscriptions, protocol and CLIENT REPLY as on Redis', async (t) => {
  const steps: SessionStep[] = [
    ['SELECT', '2'],
    ['CLIENT', 'SETNAME', 'before-reset'],
    ['GET', 'rq:k'],
    ['MULTI'],
    ['SET', 'rq:k', 'changed'],
    { cmd: ['RESET'], label: 'RESET inside MULTI' },
    { cmd: ['CLIENT', 'GETNAME'], label: 'the name is gone' },
    { cmd: ['GET', 'rq:k'], label: 'back in db 0' },
    { cmd: ['EXEC'], label: 'no transaction left' },
    ['SELECT', '2'],
    { cmd: ['GET', 'rq:k'], label: 'the queued SET never ran' },
    ['SELECT', '0'],

    ['WATCH', 'rq:w'],
    { cmd: ['RESET'], label: 'RESET while holding WATCH' },
    { run: otherClient('SET', 'rq:w', 'theirs'), label: 'another client changes the watched key' },
    ['MULTI'],
    ['SET', 'rq:w', 'mine'],
    { cmd: ['EXEC'], label: 'EXEC succeeds: the WATCH was cleared' },

    ['SUBSCRIBE', 'rq:ch'],
    { cmd: ['RESET'], label: 'RESET while subscribed' },
    { run: otherClient('PUBLISH', 'rq:ch', 'after-reset'), label: 'a message to the old channel' },
    { cmd: ['PING'], label: 'PING: not subscribed any more (and no message)' },
    ['GET', 'rq:k'],

    ['PSUBSCRIBE', 'rq:*'],
    ['RESET'],
    { run: otherClient('PUBLISH', 'rq:pat', 'after-reset') },
    { cmd: ['PING'], label: 'PING after RESET of a pattern subscription' },

    ['HELLO', '3'],
    { cmd: ['HGETALL', 'rq:h'], label: 'RESP3 map before RESET' },
    ['RESET'],
    { cmd: ['HGETALL', 'rq:h'], label: 'RESP2 array after RESET' },
    { cmd: ['GET', 'rq:none'], label: 'RESP2 null after RESET' },

    { cmd: ['CLIENT', 'REPLY', 'OFF'], replies: 0 },
    { cmd: ['SET', 'rq:silent', '1'], replies: 0 },
    { cmd: ['RESET'], label: 'RESET under CLIENT REPLY OFF answers' },
    { cmd: ['PING'], label: 'replies are on again' },
    { cmd: ['UNSUBSCRIBE'], label: 'UNSUBSCRIBE after RESET (not subscribed)' },
  ];
  await compareSession(t, reference.port, port, steps, { normalize: blankId, afterProxyStep: sync });
});

t.test('RESET pipelined right behind SUBSCRIBE: the confirmation, then +RESET, as on Redis', async (t) => {
  const cmds = [['SUBSCRIBE', 'rq:pc1', 'rq:pc2'], ['RESET'], ['GET', 'rq:k']];
  const expected = await pipelineTranscript(reference.port, cmds);
  const got = await pipelineTranscript(port, cmds);
  t.equal(got, expected, show(expected, 300));
});

t.test('RESET forgets authentication as on Redis (listener with password / requirepass)', async (t) => {
  const steps: SessionStep[] = [
    ['AUTH', PASSWORD],
    ['GET', 'rq:k'],
    { cmd: ['RESET'], label: 'RESET an authenticated connection' },
    { cmd: ['GET', 'rq:k'], label: 'GET after RESET: must authenticate again' },
    ['PING'],
    ['AUTH', PASSWORD],
    ['GET', 'rq:k'],
  ];
  await compareSession(t, referenceAuth.port, authPort, steps);
});

/** Sends `cmds` in one write and collects everything until the server closes the connection. */
async function untilClosed(target: number, cmds: string[][]) {
  const r = await rawCommand(target, Buffer.concat(cmds.map((c) => encodeCommand(...c))), { untilClosed: true, timeoutMs: 3000 });
  return { text: r.text, closed: r.closed };
}

t.test('QUIT answers +OK after every earlier pipelined reply, closes, and runs nothing sent after it', async (t) => {
  const cases: [string, string[][]][] = [
    [
      'writes, a replica read and a slow command before QUIT',
      [
        ['SET', 'rq:q', '1'],
        ['GET', 'rq:k'],
        ['DEBUG', 'SLEEP', '0.2'],
        ['INCR', 'rq:q'],
        ['GET', 'rq:k'],
        ['QUIT'],
        ['INCR', 'rq:q'],
        ['GET', 'rq:k'],
      ],
    ],
    ['QUIT inside MULTI', [['MULTI'], ['SET', 'rq:tx', 'queued'], ['QUIT'], ['EXEC']]],
    ['QUIT while subscribed', [['SUBSCRIBE', 'rq:qch'], ['QUIT'], ['PING']]],
    ['QUIT in a RESP3 session', [['HELLO', '3'], ['HGETALL', 'rq:h'], ['QUIT']]],
  ];
  for (const [what, cmds] of cases) {
    const expected = await untilClosed(reference.port, cmds);
    const got = await untilClosed(port, cmds);
    t.ok(got.closed, `${what}: the proxy closed the connection`);
    t.equal(blankId(got.text), blankId(expected.text), `${what}: ${show(blankId(expected.text), 300)}`);
  }
  // QUIT sent once the subscription is confirmed (not pipelined behind SUBSCRIBE).
  for (const target of [reference.port, port]) {
    const c = await rawConnection(target);
    await c.send(encodeCommand('SUBSCRIBE', 'rq:qch2'));
    c.clear();
    c.socket.write(encodeCommand('QUIT'));
    const closed = await closedWithin(c, 2000);
    const who = target === port ? 'proxy' : 'redis';
    t.ok(closed, `${who}: QUIT after a confirmed SUBSCRIBE closes the connection`);
    t.equal(c.received().toString('latin1'), '+OK\r\n', `${who}: QUIT after a confirmed SUBSCRIBE answers +OK`);
  }
  await sync();
  t.equal(await set.master.client().get('rq:q'), '2', 'the INCR after QUIT never ran');
  t.equal(await set.master.client().get('rq:tx'), null, 'the transaction cut by QUIT never ran');
});

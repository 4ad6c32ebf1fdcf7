/**
 * A slow command is slow, not down. While the master runs DEBUG SLEEP 3 (commandTimeout
 * 5000, so no timeout is due), the other clients' commands are only delayed: no error
 * replies, and INFO proxy never shows the master down, although the proxy's health check
 * (connectTimeout 1000) gets no reply while the master sleeps.
 */
import t from 'tap';
import { encodeCommand, rawConnection } from '../../helpers/raw.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { startTestProxy } from '../../helpers/proxy.js';
import { PipelinedClient, infoProxy, listenerFor, nodeLine, pollProxyInfo, sleep, tally, type Outcome } from './_support.js';

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
await master.client().set('sc:k', 'v');
await set.sync();

t.test('DEBUG SLEEP 3 on the master: other clients are delayed, never given errors; the master is never reported down', async (t) => {
  const { port } = await startTestProxy(
    [listenerFor(master, set.replicas, { connectTimeout: 1000, commandTimeout: 5000, healthCheckInterval: 200 })],
    { t },
  );
  const clients = await Promise.all(Array.from({ length: 5 }, () => PipelinedClient.open(port)));
  for (const c of clients) t.equal((await c.call('SET', 'sc:warm', '1')).text, '+OK');
  const sleeper = await rawConnection(port);
  t.equal((await sleeper.send(encodeCommand('PING')))[0]!.toString(), '+PONG\r\n');

  const origin = performance.now();
  const until = origin + 4000;
  let sleeping = true;
  const polls = pollProxyInfo(port, () => !sleeping, { intervalMs: 100, timeoutMs: 300, origin });
  const sleepReply = sleeper.send(encodeCommand('DEBUG', 'SLEEP', '3'), 1, 6000).then(
    (r) => r[0]!.toString('latin1').trimEnd(),
    (e: Error) => `(${e.message})`,
  );
  await sleep(50);
  // Open loops: each client sends a SET and a GET every 20 ms without waiting for the
  // replies, so that requests keep arriving while the master sleeps.
  const loops = clients.map(async (client, n) => {
    const replies: Promise<Outcome>[] = [];
    for (let i = 0; performance.now() < until; i++) {
      replies.push(client.call('SET', `sc:${n}`, String(i)), client.call('GET', 'sc:k'));
      await sleep(20);
    }
    await client.drain(3000);
    return Promise.all(replies);
  });

  const slept = await sleepReply;
  const sleptMs = performance.now() - origin;
  sleeping = false;
  t.equal(slept, '+OK', `DEBUG SLEEP 3 itself gets +OK (got ${JSON.stringify(slept)} after ${Math.round(sleptMs)} ms)`);

  const after = await infoProxy(port, 1000);
  const masterAfter = nodeLine(after, master.port);
  t.equal(
    masterAfter?.state,
    'up',
    `right after DEBUG SLEEP returned, INFO proxy shows the master up (${after.ok ? (masterAfter?.raw ?? 'no master line') : after.text})`,
  );

  const outcomes = (await Promise.all(loops)).flat();
  const errors = outcomes.filter((o) => !o.replied || o.text.startsWith('-'));
  const expectedReply = (o: Outcome) => o.text === '+OK' || o.text === '$1\r\nv';
  const longest = Math.max(...outcomes.map((o) => o.ms));
  t.comment(`error replies: ${errors.length} of ${outcomes.length}; longest latency ${Math.round(longest)} ms`);
  t.equal(errors.length, 0, `no error replies during the sleep, only delay (${errors.length} of ${outcomes.length}: ${tally(errors.map((o) => o.text))})`);
  const odd = outcomes.filter((o) => !o.text.startsWith('-') && o.replied && !expectedReply(o));
  t.equal(odd.length, 0, `every SET got +OK and every GET the value (others: ${tally(odd.map((o) => o.text))})`);
  t.ok(longest < 3500, `nothing waited much past the sleep (longest ${Math.round(longest)} ms)`);

  // INFO proxy may itself wait for the sleep (then the poll timed out, which is ignored);
  // no answer it gave may show the master down (`unresponsive` is what a sleeping node is).
  const answered = (await polls).filter((p) => !p.timedOut);
  const down = answered.filter((p) => nodeLine(p, master.port)?.state === 'down');
  t.comment(`INFO proxy polls during the sleep: ${answered.length} answered, timeouts ignored`);
  t.equal(
    down.length,
    0,
    `INFO proxy never showed the master down during the sleep (${down.length} of ${answered.length}; first: ` +
      `${down.length ? `at ${Math.round(down[0]!.at)} ms: ${nodeLine(down[0]!, master.port)?.raw ?? down[0]!.text}` : 'none'})`,
  );
});

/**
 * `INFO proxy` is the proxy's own answer, whatever the master's state: it does not run
 * INFO on the master, and it answers (with the master shown down) while the master is
 * down. Plain INFO with the master down still gives the proxy's section, plus a line that
 * says the master's sections are missing and why.
 */
import t from 'tap';
import { startReplicaSet } from '../../helpers/redis.js';
import { startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawCommand } from '../../helpers/raw.js';
import { waitFor } from '../../helpers/wait.js';
import { infoProxy, infoVia, listenerFor, nodeLine } from './_support.js';

t.test('INFO proxy while the master is up does not run INFO on the master', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const { master } = set;
  // Health checks far apart, so that none runs INFO on the master meanwhile.
  const { port } = await startTestProxy([listenerFor(master, set.replicas, { healthCheckInterval: 60000 })], { t });
  const first = await infoProxy(port, 1000);
  t.ok(first.ok && /# Proxy/.test(first.text) && /^listener:/m.test(first.text), `INFO proxy answers with the # Proxy section (${first.text.slice(0, 200)})`);

  // Each reading of the master's commandstats is itself one INFO on the master.
  const before = await master.commandCalls('info');
  const replies: string[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await infoProxy(port, 1000);
    replies.push(r.ok && /# Proxy/.test(r.text) ? 'ok' : r.text.slice(0, 120));
  }
  const after = await master.commandCalls('info');
  const bad = replies.filter((r) => r !== 'ok');
  t.equal(bad.length, 0, `all 20 INFO proxy calls answered with the # Proxy section (${bad.length} not: ${bad[0] ?? ''})`);
  const delta = after - before;
  t.ok(delta < 20, `20 INFO proxy calls ran INFO on the master ${delta} times in all, counting the one that read the stats (want < 20)`);
});

t.test('INFO proxy and INFO with the master killed', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const { master } = set;
  const { port } = await startTestProxy([listenerFor(master, set.replicas, { healthCheckInterval: 100, connectTimeout: 500 })], { t });
  master.kill('SIGKILL');
  await master.exited();

  // The proxy has noticed once writes fail fast with "unreachable" (README, Failure semantics).
  let lastWrite = '';
  await waitFor(
    'writes through the proxy to fail with "unreachable"',
    async () => {
      lastWrite = (await rawCommand(port, encodeCommand('SET', 'ip:k', 'v'), { timeoutMs: 1000 })).text.trimEnd();
      return /unreachable/.test(lastWrite);
    },
    { timeoutMs: 3000, intervalMs: 50 },
  ).catch((err: Error) => t.fail(`${err.message}; last reply ${JSON.stringify(lastWrite)}`));

  const info = await infoProxy(port, 1000);
  t.ok(info.ok, `INFO proxy gets a bulk reply with the master down (got ${JSON.stringify(info.text.slice(0, 200))} after ${Math.round(info.ms)} ms)`);
  t.match(info.text, /# Proxy/, 'with the # Proxy header');
  t.match(info.text, /^listener:/m, 'and a listener: line');
  t.equal(nodeLine(info, master.port)?.state, 'down', `showing the master down (${nodeLine(info, master.port)?.raw ?? 'no master line'})`);
  t.equal(nodeLine(info, set.replicas[0]!.port)?.state, 'up', `and the replica up (${nodeLine(info, set.replicas[0]!.port)?.raw ?? 'no replica line'})`);

  const plain = await infoVia(port, [], 1000);
  t.ok(plain.ok, `plain INFO gets a bulk reply with the master down (got ${JSON.stringify(plain.text.slice(0, 200))})`);
  t.match(plain.text, /# Proxy/, "plain INFO includes the proxy's section");
  t.match(plain.text, /^listener:/m, '... with its listener: line');
  // Only a line inside the INFO reply counts (an error reply naming the master does not).
  const why = !plain.ok ? undefined : plain.text.split(/\r?\n/).find((line) => /master.*(unreachable|unavailable)/i.test(line) && !/^node\d+:/.test(line));
  t.ok(why !== undefined, `plain INFO says the master's sections are missing and why (line: ${JSON.stringify(why ?? 'none')})`);
});

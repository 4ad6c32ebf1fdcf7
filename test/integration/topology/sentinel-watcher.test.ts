/**
 * SentinelWatcher (src/topology/sentinel.ts) against real processes: a master, two
 * replicas and three Sentinels (down-after 1 s, failover-timeout 5 s). Checks discovery,
 * following a forced failover (SENTINEL FAILOVER) and a master killed with SIGKILL, the
 * first Sentinel being down or frozen (queries and the subscription move to the next),
 * every Sentinel down or frozen, and an unknown master name. Then a fake Sentinel (a small
 * RESP server) for what real Sentinels cannot show deterministically: `+switch-master`
 * reported at once without waiting for a re-query, events for other masters ignored, at
 * most one re-query in flight, AUTH with username and password.
 *
 * Every case that makes a failover starts its own master, replicas and Sentinels.
 */
import net from 'node:net';
import RedisParser from 'redis-parser';
import t from 'tap';
import { encodeValue, type ReplyValue } from '../../../src/protocol/resp.js';
import { createLogger } from '../../../src/log.js';
import type { SentinelConfig } from '../../../src/config/types.js';
import { SentinelWatcher } from '../../../src/topology/sentinel.js';
import type { DiscoveredTopology } from '../../../src/topology/topology.js';
import { freePort } from '../../helpers/clients.js';
import { startReplicaSet, type ReplicaSet } from '../../helpers/redis.js';
import { startSentinels, waitForSentinels, type SentinelProcess } from '../../helpers/sentinel.js';
import { sleep, waitFor } from '../../helpers/wait.js';

/** What the helpers below need of a test: its teardown. */
type Scope = Pick<typeof t, 'teardown'>;

interface Change {
  topology: DiscoveredTopology;
  reason: string;
  /** performance.now() when onChange was called. */
  at: number;
}

const addr = (port: number): string => `127.0.0.1:${port}`;
const masterOf = (topology: DiscoveredTopology | null): string =>
  topology === null ? '' : `${topology.master.host}:${topology.master.port}`;
const replicasOf = (topology: DiscoveredTopology | null): string[] =>
  (topology?.replicas ?? []).map((r) => `${r.host}:${r.port}`).sort();

/** A master, two replicas and three Sentinels that know each other and both replicas. */
async function cluster(t: Scope): Promise<{ set: ReplicaSet; sentinels: SentinelProcess[] }> {
  const set = await startReplicaSet({ replicas: 2, t });
  const sentinels = await startSentinels(set.master, { t });
  await waitForSentinels(sentinels, { replicas: 2 });
  return { set, sentinels };
}

/** A watcher on `nodes` recording its onChange calls and its log lines; closed at the end of `t`. */
function watcher(
  t: Scope,
  nodes: number[],
  { masterName = 'mymaster', timeout = 500, refreshInterval = 1000, ...auth }: Partial<SentinelConfig> & {
    timeout?: number;
    refreshInterval?: number;
  } = {},
) {
  const changes: Change[] = [];
  const logs: string[] = [];
  const w = new SentinelWatcher({
    config: { masterName, nodes: nodes.map((port) => ({ host: '127.0.0.1', port })), ...auth },
    timeout,
    refreshInterval,
    logger: createLogger('info', { write: (line: string) => void logs.push(line) }),
    onChange: (topology, reason) => changes.push({ topology, reason, at: performance.now() }),
  });
  t.teardown(() => w.close());
  return { w, changes, logs };
}

/** Sentinel's own answer to GET-MASTER-ADDR-BY-NAME, as `host:port`. */
async function sentinelSays(sentinel: SentinelProcess): Promise<string> {
  const reply = (await sentinel.sentinel('GET-MASTER-ADDR-BY-NAME', 'mymaster')) as [string, string];
  return `${reply[0]}:${reply[1]}`;
}

t.test('against three real Sentinels', async (t) => {
  const { set, sentinels } = await cluster(t);
  const ports = sentinels.map((s) => s.port);
  const master = addr(set.master.port);
  const replicas = set.replicas.map((r) => addr(r.port)).sort();

  await t.test('discover() returns the master and both replicas', async (t) => {
    // Re-queries and PINGs on the subscription every 200 ms: none may fail.
    const { w, changes, logs } = watcher(t, ports, { refreshInterval: 200 });
    t.equal(w.current, null, 'no topology before discover()');
    const topology = await w.discover();
    t.equal(masterOf(topology), master);
    t.same(replicasOf(topology), replicas);
    t.equal(w.current, topology, 'current is what discover() returned');
    t.equal(w.sentinel, '', 'no subscription before start()');
    w.start();
    await waitFor('the subscription to the first Sentinel', () => w.sentinel === sentinels[0]!.address);
    await sleep(1200);
    t.same(changes, [], 'no onChange while nothing changes');
    t.equal(w.sentinel, sentinels[0]!.address, 'the subscription stayed on the first Sentinel');
    t.same(logs.filter((l) => !l.includes('"level":"info"')), [], 'nothing logged above info');
  });

  await t.test('a master name no Sentinel knows: discover() says so', async (t) => {
    const { w } = watcher(t, ports, { masterName: 'nosuchmaster' });
    const error = await w.discover().then(() => undefined, (err: unknown) => err as Error);
    t.ok(error, 'discover() rejects');
    t.match(error?.message, /nosuchmaster/);
    for (const s of sentinels) t.match(error?.message, `${s.address}: does not know master nosuchmaster`);
  });

  await t.test('SENTINEL FAILOVER: +switch-master reported with the promoted replica', async (t) => {
    const { w, changes } = watcher(t, ports);
    await w.discover();
    w.start();
    await waitFor('the subscription to the first Sentinel', () => w.sentinel === sentinels[0]!.address);
    // The test's own subscriber on the watcher's Sentinel: when the event reached a client.
    const listener = sentinels[0]!.client();
    let eventAt = 0;
    listener.on('message', () => (eventAt ||= performance.now()));
    await listener.subscribe('+switch-master');

    const sentAt = performance.now();
    // To another Sentinel: the watcher's Sentinel learns of it through hello messages.
    t.equal(await sentinels[1]!.sentinel('FAILOVER', 'mymaster'), 'OK');
    const first = await waitFor('onChange with a new master', () => changes.find((c) => masterOf(c.topology) !== master), {
      timeoutMs: 10_000,
    });
    const promoted = masterOf(first.topology);
    t.ok(replicas.includes(promoted), `the new master ${promoted} is one of the replicas`);
    t.equal(await sentinelSays(sentinels[0]!), promoted, 'Sentinel agrees');
    t.comment(
      `new master reported ${(first.at - sentAt).toFixed(0)} ms after SENTINEL FAILOVER (reason ${first.reason}); ` +
        `+switch-master reached a plain subscriber at ${(eventAt - sentAt).toFixed(0)} ms`,
    );
    const switched = await waitFor('onChange with reason +switch-master', () =>
      changes.find((c) => c.reason === '+switch-master'),
    );
    t.equal(masterOf(switched.topology), promoted, '+switch-master names the promoted replica');
    t.comment(`onChange(+switch-master) ${(switched.at - eventAt).toFixed(1)} ms after the event reached the plain subscriber`);
    t.ok(switched.at - eventAt < 100, 'onChange within 100 ms of the event');
    const withOld = await waitFor('the old master listed as a replica', () =>
      changes.find((c) => replicasOf(c.topology).includes(master)),
    );
    t.equal(masterOf(withOld.topology), promoted);
    t.notOk(replicasOf(withOld.topology).includes(promoted), 'the new master is not listed as a replica');
    t.same(replicasOf(w.current), [master, ...replicas.filter((r) => r !== promoted)].sort(), 'current: the old master and the other replica');
  });

  await t.test('the subscribed Sentinel frozen: its PING goes unanswered, the subscription moves on', async (t) => {
    const [first, second] = await startSentinels(set.master, { count: 2, t });
    const { w, changes } = watcher(t, [first!.port, second!.port], { timeout: 300, refreshInterval: 200 });
    await w.discover();
    w.start();
    await waitFor('the subscription to the first Sentinel', () => w.sentinel === first!.address);
    const frozenAt = performance.now();
    first!.kill('SIGSTOP');
    await waitFor('the subscription to move to the second Sentinel', () => w.sentinel === second!.address, { timeoutMs: 3000 });
    t.comment(`moved ${(performance.now() - frozenAt).toFixed(0)} ms after SIGSTOP`);
    t.same(changes, [], 'no onChange: nothing changed');
  });

  await t.test('every Sentinel down or frozen: discover() names each one', async (t) => {
    const [stopped, frozen] = await startSentinels(set.master, { count: 2, t });
    await stopped!.stop();
    frozen!.kill('SIGSTOP');
    const nobody = await freePort();
    const { w } = watcher(t, [stopped!.port, frozen!.port, nobody], { timeout: 300 });
    const started = performance.now();
    const error = await w.discover().then(() => undefined, (err: unknown) => err as Error);
    const ms = performance.now() - started;
    t.ok(error, 'discover() rejects');
    t.match(error?.message, `${stopped!.address}: ECONNREFUSED`);
    t.match(error?.message, new RegExp(`${frozen!.address}: no (answer|reply) within 300 ms`));
    t.match(error?.message, `${addr(nobody)}: ECONNREFUSED`);
    t.ok(ms < 600, `a frozen Sentinel costs at most the timeout (the round took ${ms.toFixed(0)} ms)`);
  });
});

t.test('SIGKILL of the master: a replica is reported as the new master', async (t) => {
  const { set, sentinels } = await cluster(t);
  const master = addr(set.master.port);
  const replicas = set.replicas.map((r) => addr(r.port));
  const { w, changes } = watcher(t, sentinels.map((s) => s.port));
  await w.discover();
  w.start();
  await waitFor('the subscription', () => w.sentinel !== '');
  const killedAt = performance.now();
  set.master.kill('SIGKILL');
  const change = await waitFor('onChange with a new master', () => changes.find((c) => masterOf(c.topology) !== master), {
    timeoutMs: 10_000,
  });
  const promoted = masterOf(change.topology);
  t.ok(replicas.includes(promoted), `the new master ${promoted} is one of the replicas`);
  t.comment(`new master reported ${(change.at - killedAt).toFixed(0)} ms after SIGKILL (reason ${change.reason})`);
  t.equal(await sentinelSays(sentinels[0]!), promoted, 'Sentinel agrees');
});

t.test('the first Sentinel stopped: discovery and the subscription use the next one', async (t) => {
  const { set, sentinels } = await cluster(t);
  const master = addr(set.master.port);
  const replicas = set.replicas.map((r) => addr(r.port));
  const ports = sentinels.map((s) => s.port);
  const { w, changes, logs } = watcher(t, ports);
  await w.discover();
  w.start();
  await waitFor('the subscription to the first Sentinel', () => w.sentinel === sentinels[0]!.address);

  await sentinels[0]!.stop();
  await waitFor('the subscription to move to the second Sentinel', () => w.sentinel === sentinels[1]!.address, {
    timeoutMs: 3000,
  });
  t.ok(
    logs.some((l) => l.includes('"level":"warn"') && l.includes('event subscription failed') && l.includes(sentinels[0]!.address)),
    'warned about the lost subscription',
  );

  const other = watcher(t, ports);
  const topology = await other.w.discover();
  t.equal(masterOf(topology), master, 'discover() answered through the next Sentinel');

  t.equal(await sentinels[2]!.sentinel('FAILOVER', 'mymaster'), 'OK');
  const switched = await waitFor('onChange with reason +switch-master', () =>
    changes.find((c) => c.reason === '+switch-master'),
    { timeoutMs: 10_000 },
  );
  const promoted = masterOf(switched.topology);
  t.ok(replicas.includes(promoted), `the new master ${promoted} is one of the replicas`);
  t.equal(await sentinelSays(sentinels[1]!), promoted, 'Sentinel agrees');
});

// --- a fake Sentinel ---

interface FakeSentinel {
  port: number;
  /** Where GET-MASTER-ADDR-BY-NAME and REPLICAS say the master and replicas are. */
  master: number;
  replicas: number[];
  /** Every command received, joined with spaces. */
  commands: string[];
  /** GET-MASTER-ADDR-BY-NAME received. */
  rounds(): number;
  /** While true, query replies are held (and computed when released). */
  hold: boolean;
  /** Query rounds whose replies are held now. */
  held(): number;
  release(): void;
  publish(channel: string, payload: string): void;
  subscribers(): number;
}

/** A RESP server answering like a Sentinel for `mymaster`; closed at the end of `t`. */
async function startFakeSentinel(t: Scope, master: number, replicas: number[]): Promise<FakeSentinel> {
  const subscribed = new Set<net.Socket>();
  let heldReplies: Array<() => void> = [];
  const fake: FakeSentinel = {
    port: 0,
    master,
    replicas,
    commands: [],
    rounds: () => fake.commands.filter((c) => c.startsWith('SENTINEL GET-MASTER-ADDR-BY-NAME')).length,
    hold: false,
    held: () => heldReplies.length / 2,
    release() {
      fake.hold = false;
      const replies = heldReplies;
      heldReplies = [];
      for (const reply of replies) reply();
    },
    publish(channel, payload) {
      for (const s of subscribed) s.write(encodeValue(['message', channel, payload]));
    },
    subscribers: () => subscribed.size,
  };
  const entry = (port: number): ReplyValue[] => ['name', addr(port), 'ip', '127.0.0.1', 'port', String(port), 'flags', 'slave'];
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.on('close', () => subscribed.delete(socket));
    const parser = new RedisParser({
      returnReply: (args: string[]) => {
        fake.commands.push(args.join(' '));
        const [command, sub] = [args[0]!.toUpperCase(), args[1]?.toUpperCase()];
        const answer = (value: () => ReplyValue) => {
          const send = () => void socket.write(encodeValue(value()));
          if (fake.hold) heldReplies.push(send);
          else send();
        };
        if (command === 'AUTH') socket.write('+OK\r\n');
        else if (command === 'PING') socket.write(encodeValue(['pong', '']));
        else if (command === 'SUBSCRIBE') {
          subscribed.add(socket);
          args.slice(1).forEach((channel, i) => socket.write(encodeValue(['subscribe', channel, i + 1])));
        } else if (sub === 'GET-MASTER-ADDR-BY-NAME') answer(() => ['127.0.0.1', String(fake.master)]);
        else if (sub === 'REPLICAS') answer(() => fake.replicas.map(entry));
        else socket.write('-ERR unknown command\r\n');
      },
      returnError: () => socket.destroy(),
    });
    socket.on('data', (chunk: Buffer) => parser.execute(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.port = (server.address() as net.AddressInfo).port;
  t.teardown(() => {
    for (const s of subscribed) s.destroy();
    server.close();
  });
  return fake;
}

t.test('a fake Sentinel: +switch-master at once, other masters ignored, one re-query in flight', async (t) => {
  const fake = await startFakeSentinel(t, 7001, [7002, 7003]);
  // No periodic re-query during the test: every query comes from an event.
  const { w, changes } = watcher(t, [fake.port], { username: 'proxy', password: 'secret', timeout: 5000, refreshInterval: 60_000 });
  const topology = await w.discover();
  t.equal(masterOf(topology), addr(7001));
  t.same(replicasOf(topology), [addr(7002), addr(7003)]);
  t.equal(fake.commands[0], 'AUTH proxy secret', 'AUTH with username and password first');
  w.start();
  await waitFor('the subscription', () => w.sentinel === addr(fake.port));
  t.ok(fake.commands.some((c) => c.startsWith('SUBSCRIBE') && c.includes('+switch-master')), 'subscribed to +switch-master');
  await waitFor('the re-query after subscribing', () => fake.rounds() === 2);

  fake.publish('+sdown', 'slave 127.0.0.1:7002 127.0.0.1 7002 @ othermaster 127.0.0.1 7001');
  fake.publish('+switch-master', 'othermaster 127.0.0.1 7001 127.0.0.1 7002');
  await sleep(100);
  t.equal(fake.rounds(), 2, 'events for another master name: no re-query');
  t.same(changes, [], 'and no onChange');

  fake.hold = true;
  for (let i = 0; i < 5; i++) fake.publish('+sdown', 'slave 127.0.0.1:7003 127.0.0.1 7003 @ mymaster 127.0.0.1 7001');
  await waitFor('a re-query', () => fake.rounds() === 3);
  await sleep(50);
  t.equal(fake.held(), 1, 'five events: one re-query in flight');

  fake.master = 7002;
  fake.replicas = [7003, 7001];
  const sentAt = performance.now();
  fake.publish('+switch-master', 'mymaster 127.0.0.1 7001 127.0.0.1 7002');
  const first = await waitFor('onChange', () => changes[0]);
  t.equal(first.reason, '+switch-master');
  t.equal(masterOf(first.topology), addr(7002), 'the new master, while every query reply is still held');
  t.same(replicasOf(first.topology), [addr(7003)], 'the replicas known so far, less the new master');
  t.ok(first.at - sentAt < 50, `reported ${(first.at - sentAt).toFixed(1)} ms after the event was sent`);

  fake.release();
  const second = await waitFor('the re-query after +switch-master', () => changes[1]);
  t.equal(second.reason, '+switch-master');
  t.same(replicasOf(second.topology), [addr(7001), addr(7003)], 'the old master now listed as a replica');
  await sleep(100);
  t.equal(fake.rounds(), 4, 'the held re-query, then one more (stale answer dropped, no onChange from it)');
  t.equal(changes.length, 2);

  w.close();
  await waitFor('the subscription closed', () => fake.subscribers() === 0);
  t.equal(w.sentinel, '');
  fake.publish('+switch-master', 'mymaster 127.0.0.1 7002 127.0.0.1 7003');
  await sleep(50);
  t.equal(changes.length, 2, 'no onChange after close()');
});

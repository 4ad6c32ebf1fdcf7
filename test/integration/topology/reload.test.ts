/**
 * Live reload (issue 8): a reload applies a new config without closing a client
 * connection or failing a request in flight. Replicas added, removed and re-weighted;
 * listener settings; listeners added and removed; the master moved (sessions on shared
 * connections follow it, those holding a dedicated connection on the old one are closed
 * after their replies); a configured master that reports role:slave; and SIGHUP on the
 * real CLI, with an invalid file leaving the running config in place.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, node, proxyInfo, spawnProxyCli, startTestProxy } from '../../helpers/proxy.js';
import { rawCommand, rawConnection } from '../../helpers/raw.js';
import { startRedis, startReplicaSet } from '../../helpers/redis.js';
import { callsDuring, waitForReplicaReads } from '../../helpers/stats.js';
import { sleep, waitFor } from '../../helpers/wait.js';

/** Connections to `server` (CLIENT LIST) but for the test's own CLIENT LIST clients and a replica's replication link. */
async function proxyConnections(server: { client(): import('ioredis').Redis }): Promise<number> {
  const list = String(await server.client().client('LIST'));
  // Neither the test's own client nor, on a replica, its master's replication link (flags=M).
  return list.split('\n').filter((l) => l.includes('id=') && !l.includes('cmd=client|list') && !l.includes('flags=M')).length;
}

t.test('replicas added, re-weighted and removed by reload: same client connection, reads follow', async (t) => {
  const set = await startReplicaSet({ replicas: 2, t });
  const [r1, r2] = set.replicas as [(typeof set.replicas)[0], (typeof set.replicas)[0]];
  await set.master.client().set('k', 'v');
  await set.sync();
  const tp = await startTestProxy([listenerFor(set.master, [r1], { healthCheckInterval: 200 })], { t });
  const client = ioredisClient(tp.port);
  await waitForReplicaReads([r1], () => client.get('k'));
  const clientId = await client.client('ID');
  const baseline = await proxyConnections(r2);

  // Added: reads reach it within one health-check interval.
  const added = await tp.reload([listenerFor(set.master, [r1, r2], { listen: tp.port, healthCheckInterval: 200 })]);
  t.same(added.changed, [`listener-${tp.port}`]);
  await sleep(400);
  const spread = await callsDuring([r1, r2], 'get', () => Promise.all(Array.from({ length: 40 }, () => client.get('k'))));
  t.same(spread, [20, 20], 'round-robin over both replicas');

  // Re-weighted: 1 to 3, without new connections.
  await tp.reload([listenerFor(set.master, [r1, { server: r2, weight: 3 }], { listen: tp.port, healthCheckInterval: 200 })]);
  const weighted = await callsDuring([r1, r2], 'get', () => Promise.all(Array.from({ length: 40 }, () => client.get('k'))));
  t.same(weighted, [10, 30], 'weights 1:3');

  // Removed while reads are in flight: every one is answered, then its connections close.
  const inFlight = Promise.all(Array.from({ length: 200 }, () => client.get('k')));
  await tp.reload([listenerFor(set.master, [r1], { listen: tp.port, healthCheckInterval: 200 })]);
  t.same(new Set(await inFlight), new Set(['v']), 'no read in flight failed');
  const after = await callsDuring([r1, r2], 'get', () => Promise.all(Array.from({ length: 20 }, () => client.get('k'))));
  t.same(after, [20, 0], 'the removed replica gets no new reads');
  await waitFor('the removed replica\'s connections to close', async () => (await proxyConnections(r2)) === baseline);

  t.equal(await client.client('ID'), clientId, 'the same session throughout');
  t.same(client.errors, []);
  const info = await proxyInfo(tp.port);
  t.equal(info.config_generation, '4');
  t.equal(info.config_last_reload_result, 'ok');
});

t.test('listener settings apply to sessions already connected', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const [r1] = set.replicas as [(typeof set.replicas)[0]];
  await set.master.client().set('k', 'v');
  await set.sync();
  const base = listenerFor(set.master, [r1], { causalReads: 'none' });
  const tp = await startTestProxy([base], { t });
  const client = ioredisClient(tp.port);
  await waitForReplicaReads([r1], () => client.get('k'));

  await tp.reload([{ ...base, listen: tp.port, readPolicy: 'master', denyCommands: ['flushall'], password: 'sesame' }]);
  t.same(await callsDuring([set.master, r1], 'get', () => client.get('k')), [1, 0], 'readPolicy master');
  await t.rejects(client.flushall(), /ERR.*flushall/i, 'denyCommands');
  t.equal(await client.get('k'), 'v', 'the session authenticated before the password was set stays so');
  const fresh = await rawCommand(tp.port, 'GET k\r\n');
  t.match(fresh.text, /^-NOAUTH/, 'a new session must AUTH');
  const authed = await rawCommand(tp.port, 'AUTH sesame\r\nGET k\r\n', { replies: 2 });
  t.equal(authed.text, '+OK\r\n$1\r\nv\r\n');
});

t.test('listeners added and removed by reload', async (t) => {
  const a = await startRedis({ t });
  const b = await startRedis({ t });
  await a.client().set('who', 'a');
  await b.client().set('who', 'b');
  const tp = await startTestProxy([listenerFor(a, [], { name: 'a' })], { t });
  const onA = ioredisClient(tp.port, { retryStrategy: () => null });
  t.equal(await onA.get('who'), 'a');

  const outcome = await tp.reload([
    listenerFor(a, [], { name: 'a', listen: tp.port }),
    listenerFor(b, [], { name: 'b' }),
  ]);
  t.same(outcome.added, ['b']);
  const bPort = tp.proxy.listeners.find((l) => l.name === 'b')!.port;
  t.equal(await ioredisClient(bPort).get('who'), 'b', 'the added listener serves');

  const closed = new Promise<void>((resolve) => onA.once('end', () => resolve()));
  const removal = await tp.reload([listenerFor(b, [], { name: 'b', listen: bPort })]);
  t.same(removal.removed, ['a']);
  await closed;
  t.pass('the removed listener closed its sessions');
  await waitFor('port to stop accepting', async () => (await rawCommand(tp.port, 'PING\r\n', { timeoutMs: 300 })).error !== undefined);
  t.same(
    tp.proxy.listeners.map((l) => l.name),
    ['b'],
  );
});

t.test('the master moved by reload: shared traffic follows, a session holding a dedicated connection is closed after its replies', async (t) => {
  const oldMaster = await startRedis({ t });
  const newMaster = await startRedis({ t });
  const tp = await startTestProxy([listenerFor(oldMaster, [], { causalReads: 'none' })], { t });
  const plain = ioredisClient(tp.port, { retryStrategy: () => null });
  await plain.set('k', 'old');
  const tx = await rawConnection(tp.port);
  t.same((await tx.send('MULTI\r\nSET k in-tx\r\n', 2)).map(String), ['+OK\r\n', '+QUEUED\r\n']);
  const subscriber = await rawConnection(tp.port);
  await subscriber.send('SUBSCRIBE ch\r\n', 1);

  await tp.reload([listenerFor(newMaster, [], { listen: tp.port, causalReads: 'none' })]);

  t.equal(await plain.set('k', 'new'), 'OK', 'the plain session stays connected');
  t.equal(await newMaster.client().get('k'), 'new', 'its write went to the new master');
  t.equal(await oldMaster.client().get('k'), 'old', 'not to the old one');
  await tx.closedPromise;
  await subscriber.closedPromise;
  t.pass('the MULTI and Pub/Sub sessions were closed');
  const info = await proxyInfo(tp.port);
  t.match(info.node0, new RegExp(`role=master,addr=127.0.0.1:${newMaster.port},`));
});

t.test('a configured master that reports role:slave: INFO says so, writes get READONLY naming it', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const [r1] = set.replicas as [(typeof set.replicas)[0]];
  const tp = await startTestProxy([listenerFor(set.master, [r1], { healthCheckInterval: 100 })], { t });
  const client = ioredisClient(tp.port);
  t.equal(await client.set('k', 'v'), 'OK');
  // Demote the master behind the proxy's back (as a failover the config does not know of would).
  await r1.client().replicaof('NO', 'ONE');
  await set.master.client().replicaof('127.0.0.1', String(r1.port));
  await waitFor('INFO proxy to show the demotion', async () => (await proxyInfo(tp.port)).master_role === 'slave');
  await t.rejects(client.set('k', 'w'), /^READONLY redis-proxy: master 127\.0\.0\.1:\d+ reports role:slave/);
  t.equal(await set.master.client().get('k'), 'v', 'no write reached the demoted master');

  // The fix: a reload naming the new master.
  await tp.reload([listenerFor(r1, [set.master], { listen: tp.port, healthCheckInterval: 100 })]);
  t.equal(await client.set('k', 'w'), 'OK');
  t.equal(await r1.client().get('k'), 'w');
});

t.test('SIGHUP reloads the config file; an invalid file is rejected and the running config stays', async (t) => {
  const set = await startReplicaSet({ replicas: 2, t });
  const [r1, r2] = set.replicas as [(typeof set.replicas)[0], (typeof set.replicas)[0]];
  await set.master.client().set('k', 'v');
  await set.sync();
  const proxy = await spawnProxyCli({ logLevel: 'info', listeners: [listenerFor(set.master, [r1], { listen: 0, healthCheckInterval: 200 })] }, { t });
  const port = proxy.ports[0]!;
  const client = ioredisClient(port);
  await waitForReplicaReads([r1], () => client.get('k'));
  const config = JSON.parse(readFileSync(proxy.configPath, 'utf8')) as { listeners: Array<Record<string, unknown>> };

  config.listeners[0]!.slave = [node(r1), node(r2)];
  writeFileSync(proxy.configPath, JSON.stringify(config));
  proxy.kill('SIGHUP');
  await waitFor('the reload', async () => (await proxyInfo(port)).config_generation === '2');
  await waitForReplicaReads([r2], () => client.get('k'));

  writeFileSync(proxy.configPath, '{ "listeners": [ { "listen": "x" } ] }');
  proxy.kill('SIGHUP');
  await waitFor('the rejection', async () => /reload rejected/.test(proxy.output()));
  t.match(proxy.output(), /listeners\[0\]\.listen: must be an integer 1-65535/, 'the same message as at start');
  const info = await proxyInfo(port);
  t.equal(info.config_generation, '2', 'the running config stays');
  t.match(info.config_last_reload_result, /^failed: listeners\[0\]\.listen/);
  t.same(await callsDuring([r1, r2], 'get', () => Promise.all(Array.from({ length: 10 }, () => client.get('k')))), [5, 5]);
  t.same(client.errors, [], 'the client never lost its connection');
  proxy.kill('SIGTERM');
  t.equal(await proxy.exit, 0);
});

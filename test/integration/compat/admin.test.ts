/**
 * Drop-in compatibility: administrative commands. CONFIG, CLIENT PAUSE/UNPAUSE, DEBUG
 * and FLUSHALL act on the master; `denyCommands` refuses what it names with a clear
 * error and nothing else; INFO is the master's INFO plus a `# Proxy` section describing
 * the listener and its nodes, and INFO keyspace equals the master's.
 */
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawCommand, rawConnection } from '../../helpers/raw.js';
import { parseInfo, startReplicaSet } from '../../helpers/redis.js';
import { callsDuringMany, waitForReplicaReads } from '../../helpers/stats.js';
import { waitFor } from './_helpers.js';

const set = await startReplicaSet({ replicas: 2 });
const { master, replicas } = set;
const all = [master, ...replicas];
const proxy = await startTestProxy([
  listenerFor(master, replicas, { name: 'main' }),
  listenerFor(master, replicas, { name: 'guarded', denyCommands: ['flushall', 'config|set'] }),
]);
const [port, guardedPort] = proxy.ports as [number, number];
await waitForReplicaReads(replicas, () => ioredisClient(port).get('adm:warm'));
const r = ioredisClient(port);

t.test('CONFIG GET / SET act on the master', async (t) => {
  t.same(await r.config('GET', 'maxmemory-samples'), ['maxmemory-samples', '5']);
  const calls = await callsDuringMany(all, ['config|set', 'config|get'], async () => {
    t.equal(await r.config('SET', 'maxmemory-samples', '7'), 'OK');
    t.same(await r.config('GET', 'maxmemory-samples'), ['maxmemory-samples', '7'], 'CONFIG GET sees the new value');
  });
  t.same(calls['config|set'], [1, 0, 0], 'CONFIG SET ran on the master only');
  t.same(calls['config|get'], [1, 0, 0], 'CONFIG GET ran on the master');
  t.same(await master.client().config('GET', 'maxmemory-samples'), ['maxmemory-samples', '7'], 'the master changed');
  for (const replica of replicas) {
    t.same(await replica.client().config('GET', 'maxmemory-samples'), ['maxmemory-samples', '5'], 'a replica did not');
  }
  t.same(await r.config('GET', 'databases'), ['databases', '16']);
});

t.test('CLIENT PAUSE / UNPAUSE go to the master and pause its writes', async (t) => {
  const calls = await callsDuringMany(all, ['client|pause', 'client|unpause'], async () => {
    t.equal(await r.client('PAUSE', '300', 'WRITE'), 'OK');
    const started = Date.now();
    const other = ioredisClient(port);
    const write = other.set('adm:paused', '1').then(() => Date.now() - started);
    await new Promise((res) => setTimeout(res, 100));
    t.equal(await r.client('UNPAUSE'), 'OK');
    const took = await write;
    t.ok(took >= 80, `a write waited for the pause (${took} ms)`);
  });
  t.same(calls['client|pause'], [1, 0, 0]);
  t.same(calls['client|unpause'], [1, 0, 0]);
});

t.test('DEBUG SLEEP 0 goes to the master', async (t) => {
  const calls = await callsDuringMany(all, ['debug'], async () => {
    t.equal(await r.call('DEBUG', 'SLEEP', '0'), 'OK');
  });
  t.same(calls.debug, [1, 0, 0]);
});

t.test('FLUSHALL goes to the master (and so to every replica)', async (t) => {
  await r.set('adm:f1', 'x');
  const db3 = ioredisClient(port, { db: 3 });
  await db3.set('adm:f2', 'y');
  const calls = await callsDuringMany([master], ['flushall'], async () => {
    t.equal(await r.flushall(), 'OK');
  });
  t.same(calls.flushall, [1]);
  t.equal(await master.client().dbsize(), 0, 'the master is empty');
  const m3 = master.client();
  await m3.select(3);
  t.equal(await m3.dbsize(), 0, 'every database');
  await set.sync();
  for (const replica of replicas) t.equal(await replica.client().dbsize(), 0, 'a replica is empty too');
});

t.test('denyCommands ["flushall", "config|set"]: refused clearly, CONFIG GET still works', async (t) => {
  const g = await rawConnection(guardedPort);
  await g.send(encodeCommand('SET', 'adm:keep', 'kept'));
  for (const cmd of [['FLUSHALL'], ['flushall', 'ASYNC'], ['CONFIG', 'SET', 'maxmemory-samples', '9'], ['config', 'set', 'maxmemory-samples', '9']]) {
    const [reply] = await g.send(encodeCommand(...cmd));
    const text = reply!.toString('latin1');
    t.match(text, /^-ERR /, `${cmd.join(' ')}: an error reply`);
    t.match(text, /denyCommands/, `${cmd.join(' ')}: the error names denyCommands: ${JSON.stringify(text)}`);
  }
  t.equal(await master.client().get('adm:keep'), 'kept', 'FLUSHALL did not run');
  t.same(await master.client().config('GET', 'maxmemory-samples'), ['maxmemory-samples', '7'], 'CONFIG SET did not run');
  const [get] = await g.send(encodeCommand('CONFIG', 'GET', 'maxmemory-samples'));
  t.equal(get!.toString('latin1'), '*2\r\n$17\r\nmaxmemory-samples\r\n$1\r\n7\r\n', 'CONFIG GET works');
  const [flushdb] = await g.send(encodeCommand('FLUSHDB'));
  t.equal(flushdb!.toString('latin1'), '+OK\r\n', 'FLUSHDB is not denied');
  // Inside MULTI the denial still applies, and the transaction goes on as Redis would go on after a refused command.
  const tx = await rawCommand(
    guardedPort,
    Buffer.concat([encodeCommand('MULTI'), encodeCommand('FLUSHALL'), encodeCommand('SET', 'adm:tx', '1'), encodeCommand('EXEC')]),
    { replies: 4 },
  );
  t.match(tx.text, /denyCommands/, `FLUSHALL inside MULTI is refused: ${JSON.stringify(tx.text)}`);
  // Redis aborts a transaction in which a command was refused while queueing (as for an ACL denial).
  t.match(tx.text, /-EXECABORT Transaction discarded because of previous errors\.\r\n$/, 'EXEC then answers EXECABORT');
  t.equal(await master.client().get('adm:tx'), null, 'the rest of the transaction did not run');
  // The other listener has no deny list.
  t.equal(await r.config('SET', 'maxmemory-samples', '5'), 'OK', 'the main listener allows CONFIG SET');
});

t.test('INFO has a # Proxy section with the listener and the state of each node', async (t) => {
  const text = await r.info();
  t.match(text, /^# Server\r\n/, "starts with the master's INFO");
  t.match(text, /\r\n# Proxy\r\n/, 'has a # Proxy section');
  const proxySection = text.slice(text.indexOf('# Proxy'));
  const fields = parseInfo(proxySection);
  t.equal(fields.listener, 'main');
  t.equal(fields.listener_port, String(port));
  const nodes = Object.entries(fields).filter(([k]) => /^node\d+$/.test(k)).map(([, v]) => v);
  t.equal(nodes.length, 3, `three nodes: ${JSON.stringify(nodes)}`);
  t.match(nodes[0], new RegExp(`role=master,addr=127\\.0\\.0\\.1:${master.port},state=up`));
  for (const [i, replica] of replicas.entries()) {
    t.match(nodes[i + 1], new RegExp(`role=replica,addr=127\\.0\\.0\\.1:${replica.port},state=up`));
  }
  const only = await r.info('proxy');
  t.match(only, /# Proxy\r\n/, 'INFO proxy shows the section');
  t.notMatch(await r.info('server'), /# Proxy/, 'INFO server does not');
  const serverFields = parseInfo(text);
  t.equal(serverFields.tcp_port, String(master.port), "the rest is the master's INFO");
  t.equal(serverFields.role, 'master');

  // A replica going down shows in the section.
  const extra = await startReplicaSet({ replicas: 1, t });
  const p2 = await startTestProxy([listenerFor(extra.master, extra.replicas)], { t });
  const c2 = ioredisClient(p2.port);
  extra.replicas[0]!.kill('SIGKILL');
  await extra.replicas[0]!.exited();
  const down = await waitFor('the # Proxy section to show the replica down', async () => {
    const info = parseInfo((await c2.info('proxy')) as string);
    return info.node1?.includes('state=down') ? info.node1 : undefined;
  }, { timeoutMs: 5000, intervalMs: 100 }).catch(() => undefined);
  t.ok(down, `node1 shows state=down: ${down}`);
});

t.test('INFO keyspace equals the master INFO keyspace', async (t) => {
  await r.set('adm:ks1', '1');
  await r.set('adm:ks2', '2', 'EX', 1000);
  const db5 = ioredisClient(port, { db: 5 });
  await db5.set('adm:ks3', '3');
  await set.sync();
  const viaProxy = await rawCommand(port, encodeCommand('INFO', 'keyspace'));
  const direct = await rawCommand(master.port, encodeCommand('INFO', 'keyspace'));
  t.equal(viaProxy.text, direct.text, `byte for byte: ${JSON.stringify(direct.text)}`);
  t.match(viaProxy.text, /db5:keys=1/);
});

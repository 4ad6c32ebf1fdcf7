/**
 * Many clients share a few backend connections, yet each sees only its own replies and
 * its own connection state (database, name).
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { waitForReplicaReads } from '../helpers/stats.js';

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const [replica] = set.replicas as [typeof set.replicas[0]];
await master.client().set('mx:shared', 'S');
await set.sync();
const { port } = await startTestProxy([listenerFor(master, [replica])]);
const warm = ioredisClient(port);
await waitForReplicaReads([replica], () => warm.get('mx:shared'));

const connectedClients = async (server: typeof master) =>
  Number((await server.info('clients')).connected_clients);

t.test('100 clients: correct replies each, few backend connections', async (t) => {
  const masterBefore = await connectedClients(master);
  const replicaBefore = await connectedClients(replica);
  const clients = Array.from({ length: 100 }, () => ioredisClient(port, { protocol: 2 }));
  await Promise.all(clients.map((c) => c.get('mx:shared')));

  // Each client INCRs its own counter 20 times and reads a shared key, all at once.
  const results = await Promise.all(
    clients.map(async (c, i) => {
      const p = c.pipeline();
      for (let n = 0; n < 20; n++) p.incr(`mx:own:${i}`).get('mx:shared');
      return (await p.exec())!.map(([err, value]) => (err ? `error ${err.message}` : value));
    }),
  );
  const expected = Array.from({ length: 20 }, (_, n) => [n + 1, 'S']).flat();
  const wrong = results.filter((r) => JSON.stringify(r) !== JSON.stringify(expected));
  t.equal(wrong.length, 0, `every client got exactly its own replies${wrong.length ? `: ${JSON.stringify(wrong[0])}` : ''}`);

  const masterGrowth = (await connectedClients(master)) - masterBefore;
  const replicaGrowth = (await connectedClients(replica)) - replicaBefore;
  t.ok(masterGrowth <= 5, `master connections grew by ${masterGrowth} for 100 clients`);
  t.ok(replicaGrowth <= 5, `replica connections grew by ${replicaGrowth} for 100 clients`);
});

t.test('SELECT is per client: another client\'s database is not affected', async (t) => {
  const a = await rawConnection(port);
  const b = await rawConnection(port);
  t.same((await a.send(encodeCommand('SELECT', '2')))[0]!.toString(), '+OK\r\n');
  const replies = await Promise.all([
    a.send(encodeCommand('SET', 'mx:db', 'in-2')),
    b.send(encodeCommand('SET', 'mx:db', 'in-0')),
  ]);
  t.same(replies.flat().map(String), ['+OK\r\n', '+OK\r\n']);
  const direct = master.client();
  t.equal(await direct.get('mx:db'), 'in-0', 'db 0 has B\'s value');
  await direct.select(2);
  t.equal(await direct.get('mx:db'), 'in-2', 'db 2 has A\'s value');
  await set.sync();
  t.equal((await a.send(encodeCommand('GET', 'mx:db')))[0]!.toString(), '$4\r\nin-2\r\n', 'A reads db 2');
  t.equal((await b.send(encodeCommand('GET', 'mx:db')))[0]!.toString(), '$4\r\nin-0\r\n', 'B reads db 0');
  t.equal(
    (await a.send(encodeCommand('SELECT', '99')))[0]!.toString(),
    (await rawConnection(master.port).then((c) => c.send(encodeCommand('SELECT', '99'))))[0]!.toString(),
    'an invalid SELECT gets Redis\'s error',
  );
});

t.test('CLIENT SETNAME is per client', async (t) => {
  const a = ioredisClient(port, { protocol: 2 });
  const b = ioredisClient(port, { protocol: 2 });
  t.equal(await a.client('SETNAME', 'alice'), 'OK');
  t.equal(await b.client('SETNAME', 'bob'), 'OK');
  t.equal(await a.client('GETNAME'), 'alice');
  t.equal(await b.client('GETNAME'), 'bob');
  const c = ioredisClient(port, { protocol: 2 });
  t.equal(await c.client('GETNAME'), null, 'a new client has no name');
});

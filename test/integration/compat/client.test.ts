/**
 * Drop-in compatibility: CLIENT subcommands. They describe and act on the application's
 * own connections to the proxy (its sessions), never on the proxy's backend
 * connections, and answer as Redis does.
 */
import t from 'tap';
import { ioredisClient, nodeRedisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection, type RawConnection } from '../../helpers/raw.js';
import { startRedis, startReplicaSet } from '../../helpers/redis.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { closedWithin, compareSession, decode, pipelineTranscript, waitFor, type SessionStep } from './_helpers.js';

const reference = await startRedis();
const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const { port } = await startTestProxy([listenerFor(master, set.replicas)]);
await waitForReplicaReads(set.replicas, () => ioredisClient(port).get('cl:warm'));

const text = (bufs: Buffer[]) => Buffer.concat(bufs).toString('latin1');

async function call(c: RawConnection, ...args: string[]): Promise<unknown> {
  const [reply] = await c.send(encodeCommand(...args));
  return decode(reply!);
}

/** CLIENT LIST text -> one field map per line. */
function parseClientList(list: string): Record<string, string>[] {
  return list
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => Object.fromEntries(line.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])));
}

t.test('CLIENT SETNAME / GETNAME answer as Redis', async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['CLIENT', 'GETNAME'], label: 'GETNAME without a name' },
    ['CLIENT', 'SETNAME', 'worker-1'],
    ['CLIENT', 'GETNAME'],
    { cmd: ['CLIENT', 'SETNAME', 'with space'] },
    { cmd: ['CLIENT', 'SETNAME', 'new\nline'] },
    { cmd: ['CLIENT', 'GETNAME'], label: 'name unchanged after a refused SETNAME' },
    { cmd: ['CLIENT', 'SETNAME', ''], label: 'SETNAME "" clears the name' },
    ['CLIENT', 'GETNAME'],
    ['CLIENT', 'SETNAME', 'a', 'b'],
    ['CLIENT', 'NO-EVICT', 'on'],
    ['CLIENT', 'NO-EVICT', 'off'],
    ['CLIENT', 'NO-EVICT', 'maybe'],
    ['CLIENT', 'NO-EVICT'],
    ['CLIENT', 'REPLY', 'bogus'],
    ['CLIENT', 'KILL', '127.0.0.1:1'],
    ['CLIENT', 'KILL', 'ID', '999999'],
    ['CLIENT', 'KILL', 'ID', 'abc'],
    ['CLIENT', 'KILL', 'BOGUS', 'x'],
    ['CLIENT', 'KILL', 'TYPE', 'nosuchtype'],
    ['CLIENT', 'LIST', 'TYPE', 'nosuchtype'],
    ['CLIENT', 'LIST', 'ID', 'abc'],
    ['CLIENT', 'LIST', 'BOGUS'],
  ];
  await compareSession(t, reference.port, port, steps);
});

t.test('CLIENT ID, CLIENT INFO and CLIENT SETINFO describe the session', async (t) => {
  const a = await rawConnection(port);
  const b = await rawConnection(port);
  const idA = (await call(a, 'CLIENT', 'ID')) as number;
  const idB = (await call(b, 'CLIENT', 'ID')) as number;
  t.ok(Number.isInteger(idA) && idA > 0, 'a positive integer id');
  t.not(idA, idB, 'each session has its own id');
  t.equal(await call(a, 'CLIENT', 'ID'), idA, 'stable for the connection');
  t.equal(await call(a, 'CLIENT', 'SETNAME', 'info-a'), 'OK');
  t.equal(await call(a, 'CLIENT', 'SETINFO', 'lib-name', 'compat-lib'), 'OK', 'SETINFO lib-name');
  t.equal(await call(a, 'CLIENT', 'SETINFO', 'lib-ver', '1.2.3'), 'OK', 'SETINFO lib-ver');
  t.match(await call(a, 'CLIENT', 'SETINFO', 'lib-name', 'has space'), { error: /^ERR / }, 'SETINFO with a space is refused');
  await call(a, 'SELECT', '2');
  const [info] = parseClientList(String(await call(a, 'CLIENT', 'INFO')));
  t.equal(info!.id, String(idA), 'CLIENT INFO id= is CLIENT ID');
  t.equal(info!.name, 'info-a');
  t.equal(info!.db, '2', 'db= follows SELECT');
  t.equal(info!['lib-name'], 'compat-lib');
  t.equal(info!['lib-ver'], '1.2.3');
  t.equal(info!.laddr, `127.0.0.1:${port}`, 'laddr is the proxy port the client connected to');
  t.equal(info!.addr, `${a.socket.localAddress}:${a.socket.localPort}`, "addr is the client's own address");
});

t.test('CLIENT LIST lists the sessions of the proxy with their names, not its backend connections', async (t) => {
  // Only raw connections of this test are open to the proxy now (library clients of other tests are closed).
  const conns = await Promise.all([0, 1, 2].map(() => rawConnection(port)));
  const ids: number[] = [];
  for (const [i, c] of conns.entries()) {
    t.equal(await call(c, 'CLIENT', 'SETNAME', `listed-${i}`), 'OK');
    ids.push((await call(c, 'CLIENT', 'ID')) as number);
  }
  // Give the backend some connections to show, if it wrongly would: a read, a write, a blocking call.
  await call(conns[0]!, 'GET', 'cl:x');
  await call(conns[1]!, 'SET', 'cl:x', '1');
  await call(conns[2]!, 'BLPOP', 'cl:list', '0.01');
  const listText = String(await call(conns[0]!, 'CLIENT', 'LIST'));
  t.ok(listText.endsWith('\n'), 'lines end with a newline as in Redis');
  const list = parseClientList(listText);
  const ours = list.filter((l) => l.name?.startsWith('listed-'));
  t.same(
    ours.map((l) => l.name).sort(),
    ['listed-0', 'listed-1', 'listed-2'],
    'every session is listed with its name',
  );
  t.same(
    ours.map((l) => Number(l.id)).sort((x, y) => x - y),
    [...ids].sort((x, y) => x - y),
    'with the ids CLIENT ID gave',
  );
  t.ok(
    list.every((l) => l.laddr === `127.0.0.1:${port}`),
    `every line is a connection to the proxy port (laddr=127.0.0.1:${port}): ${JSON.stringify(list.map((l) => l.laddr))}`,
  );
  const masterPorts = new Set((await master.client().client('LIST') as string).split('\n').map((l) => /addr=127\.0\.0\.1:(\d+)/.exec(l)?.[1]));
  t.ok(
    list.every((l) => !masterPorts.has(l.addr?.split(':')[1])),
    "no line is one of the proxy's backend connections",
  );
  const [idOnly] = parseClientList(String(await call(conns[0]!, 'CLIENT', 'LIST', 'ID', String(ids[1]))));
  t.equal(idOnly?.name, 'listed-1', 'CLIENT LIST ID <id>');
  const normal = parseClientList(String(await call(conns[0]!, 'CLIENT', 'LIST', 'TYPE', 'normal')));
  t.ok(normal.some((l) => l.name === 'listed-2'), 'CLIENT LIST TYPE normal');
  for (const c of conns) c.socket.destroy();
});

t.test('library connection names appear in CLIENT LIST', async (t) => {
  const io = ioredisClient(port, { connectionName: 'io-named' });
  await io.ping();
  const nr = await nodeRedisClient(port, { name: 'nr-named' });
  await nr.ping();
  const names = parseClientList((await io.client('LIST')) as string).map((l) => l.name);
  t.ok(names.includes('io-named'), 'ioredis connectionName');
  t.ok(names.includes('nr-named'), 'node-redis name');
  t.equal(await io.client('GETNAME'), 'io-named');
  t.equal(await nr.clientGetName(), 'nr-named');
});

t.test('CLIENT KILL ID and ADDR close another session', async (t) => {
  const killer = await rawConnection(port);
  for (const form of ['ID', 'ADDR', 'old-form ip:port', 'USER + SKIPME no'] as const) {
    const victim = await rawConnection(port);
    const victimId = (await call(victim, 'CLIENT', 'ID')) as number;
    const addr = `${victim.socket.localAddress}:${victim.socket.localPort}`;
    let reply: unknown;
    if (form === 'ID') reply = await call(killer, 'CLIENT', 'KILL', 'ID', String(victimId));
    else if (form === 'ADDR') reply = await call(killer, 'CLIENT', 'KILL', 'ADDR', addr);
    else if (form === 'old-form ip:port') reply = await call(killer, 'CLIENT', 'KILL', addr);
    else reply = await call(killer, 'CLIENT', 'KILL', 'ADDR', addr, 'USER', 'default', 'SKIPME', 'no');
    t.same(reply, form === 'old-form ip:port' ? 'OK' : 1, `CLIENT KILL ${form}: reply`);
    t.ok(await closedWithin(victim, 2000), `CLIENT KILL ${form}: the victim's socket closes`);
    t.equal(await call(killer, 'PING'), 'PONG', 'the killer is still connected');
    const ids = parseClientList(String(await call(killer, 'CLIENT', 'LIST'))).map((l) => Number(l.id));
    t.notOk(ids.includes(victimId), `CLIENT KILL ${form}: gone from CLIENT LIST`);
  }
  const self = (await call(killer, 'CLIENT', 'ID')) as number;
  t.equal(await call(killer, 'CLIENT', 'KILL', 'ID', String(self)), 0, 'CLIENT KILL ID of itself with the default SKIPME yes: 0');
});

t.test('CLIENT KILL of a session in the middle of a blocking command closes it', async (t) => {
  const killer = await rawConnection(port);
  const victim = await rawConnection(port);
  const victimId = (await call(victim, 'CLIENT', 'ID')) as number;
  victim.socket.write(encodeCommand('BLPOP', 'cl:never', '0'));
  await waitFor('the BLPOP to be blocked on the master', async () => (await master.info('clients')).blocked_clients === '1');
  t.equal(await call(killer, 'CLIENT', 'KILL', 'ID', String(victimId)), 1);
  t.ok(await closedWithin(victim, 2000), 'the blocked session is closed');
  await waitFor('the master to release the blocked call', async () => (await master.info('clients')).blocked_clients === '0', { timeoutMs: 3000 });
  t.pass('the blocked backend call was given up');
});

t.test('CLIENT REPLY OFF / ON / SKIP: the same reply stream as Redis', async (t) => {
  for (const port2 of [reference.port, port]) {
    const c = await rawConnection(port2);
    await c.send(Buffer.concat([encodeCommand('SET', 'cl:pre', 'before'), encodeCommand('DEL', 'cl:n')]), 2);
  }
  await set.sync();
  const cmds = [
    ['CLIENT', 'REPLY', 'SKIP'],
    ['SET', 'cl:skipped', '1'],
    ['GET', 'cl:pre'],
    ['CLIENT', 'REPLY', 'OFF'],
    ['INCR', 'cl:n'],
    ['GET', 'cl:pre'],
    ['PING'],
    ['ECHO', 'silent'],
    ['CLIENT', 'REPLY', 'SKIP'],
    ['NOSUCHCOMMAND'],
    ['CLIENT', 'REPLY', 'ON'],
    ['INCR', 'cl:n'],
    ['CLIENT', 'REPLY', 'SKIP'],
    ['CLIENT', 'REPLY', 'SKIP'],
    ['GET', 'cl:pre'],
    ['ECHO', 'visible'],
  ];
  const expected = await pipelineTranscript(reference.port, cmds);
  const got = await pipelineTranscript(port, cmds);
  t.equal(got, expected, `reply stream: ${JSON.stringify(expected)}`);
  t.equal(await master.client().get('cl:skipped'), '1', 'a command whose reply was skipped still ran');
});

t.test('CLIENT NO-EVICT on is accepted and the session goes on working', async (t) => {
  const c = await rawConnection(port);
  t.equal(text(await c.send(encodeCommand('CLIENT', 'NO-EVICT', 'on'))), '+OK\r\n');
  t.equal(text(await c.send(encodeCommand('SET', 'cl:ne', 'v'))), '+OK\r\n');
  t.equal(text(await c.send(encodeCommand('CLIENT', 'NO-EVICT', 'off'))), '+OK\r\n');
});

/**
 * `authentication: "redis"`: clients log in as Redis ACL users, checked by the master, and
 * their commands run on backend connections authenticated as that user, on the master and
 * on the replicas, so Redis enforces each user's ACL (NOPERM as Redis words it, ACL
 * WHOAMI, channel and key patterns).
 *
 * A master and a replica with the same ACL users (set with ACL SETUSER on both: replicas
 * do not get ACL changes through replication). Wherever the answer is Redis's, the same
 * commands are sent to the master directly and through the proxy, pipelined in one write,
 * and the replies compared byte for byte.
 * See https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/
 */
import t, { type Test } from 'tap';
import { createClient } from 'redis';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawCommand, rawConnection } from '../helpers/raw.js';
import { startRedis, startReplicaSet, type RedisServer } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const replica = set.replicas[0]!;

/** The users, as ACL SETUSER rules, defined on every node. */
const USERS: Record<string, string[]> = {
  reader: ['on', '>rpw', '~*', '+@read', '+ping', '+acl|whoami'],
  writer: ['on', '>wpw', '~app:*', '&chan:*', '+@all'],
  // May run transactions and WATCH, and publish to the proxy's WAIT channel.
  txuser: ['on', '>tpw', '~*', '&__redis-proxy__:wait', '+@all', '-flushall'],
  temp: ['on', '>xpw', '~*', '+@all'],
  leaser: ['on', '>lpw', '~*', '+@all'],
  // Everything but the commands Redis calls dangerous (CLIENT LIST, CLIENT KILL, …).
  operator: ['on', '>opw', '~*', '+@all', '-@dangerous'],
  gone: ['on', '>gpw', '~*', '+@all'],
};
for (const server of [master, replica]) {
  for (const [name, rules] of Object.entries(USERS)) await server.client().call('ACL', 'SETUSER', name, ...rules);
}
await master.client().set('k', 'v');
await master.client().set('app:k', 'appv');
await set.sync();

const proxy = await startTestProxy([
  listenerFor(master, [replica], { authentication: 'redis' }),
  listenerFor(master, [replica], { authentication: 'redis', maxDedicatedConnections: 1, name: 'one-lease' }),
]);
const [port, oneLeasePort] = proxy.ports as [number, number];

/** Sends `cmds` pipelined in one write on a new connection to `to`; returns each reply as latin1 text. */
async function pipelined(to: number, cmds: Array<Array<string | number>>): Promise<string[]> {
  const c = await rawConnection(to);
  try {
    const replies = await c.send(Buffer.concat(cmds.map((cmd) => encodeCommand(...cmd))), cmds.length, 5000);
    return replies.map((b) => b.toString('latin1'));
  } finally {
    c.socket.destroy();
  }
}

/** The part of a tap Test the helpers use. */
type Asserts = Pick<Test, 'same'>;

/** The same pipeline to the master directly and through the proxy: the replies must be Redis's, byte for byte. */
async function sameAsRedis(t: Asserts, cmds: Array<Array<string | number>>, label: string): Promise<string[]> {
  const direct = await pipelined(master.port, cmds);
  const proxied = await pipelined(port, cmds);
  t.same(proxied, direct, label);
  return proxied;
}

/** Connections on `server` authenticated as `user` (CLIENT LIST). */
async function connectionsOf(server: RedisServer, user: string): Promise<number> {
  const list = String(await server.client().call('CLIENT', 'LIST'));
  return list.split('\n').filter((line) => line.includes(` user=${user} `)).length;
}

/** INFO commandstats `calls` of `cmd` on `server`. */
const calls = (server: RedisServer, cmd: string) => server.commandCalls(cmd);

t.test('before a login the session is Redis’s default user (nopass here)', async (t) => {
  await sameAsRedis(t, [['ACL', 'WHOAMI'], ['GET', 'k'], ['CLIENT', 'GETNAME']], 'default runs commands');
  const info = await pipelined(port, [['CLIENT', 'INFO']]);
  t.match(info[0], / user=default /, 'CLIENT INFO shows the default user');
});

t.test('reader: GET on the replica, SET refused with NOPERM as Redis words it, ACL WHOAMI', async (t) => {
  await sameAsRedis(
    t,
    [['AUTH', 'reader', 'rpw'], ['ACL', 'WHOAMI'], ['SET', 'k', 'x'], ['GET', 'k'], ['INFO', 'server'], ['DEL', 'k']],
    'every reply as the master gives it to reader',
  );
  t.equal(await master.client().get('k'), 'v', 'the refused writes did not run');
  const c = await rawConnection(port);
  await c.send(encodeCommand('AUTH', 'reader', 'rpw'));
  await waitFor(
    'a GET as reader served by the replica',
    async () => {
      const before = await calls(replica, 'get');
      const [reply] = await c.send(encodeCommand('GET', 'k'));
      t.equal(reply!.toString(), '$1\r\nv\r\n');
      return (await calls(replica, 'get')) > before;
    },
    { timeoutMs: 5000, intervalMs: 50 },
  );
  const [info] = await c.send(encodeCommand('CLIENT', 'INFO'));
  t.match(info!.toString(), / user=reader /, 'CLIENT INFO shows the user');
  const clients = String(await replica.client().call('CLIENT', 'LIST'));
  t.match(clients, /user=reader/, 'the replica served it on a connection authenticated as reader');
  c.socket.destroy();
});

t.test('writer: its key pattern, NOPERM for other keys', async (t) => {
  await sameAsRedis(
    t,
    [['AUTH', 'writer', 'wpw'], ['SET', 'app:w', '1'], ['SET', 'other', '1'], ['GET', 'other'], ['INCR', 'app:w'], ['ACL', 'WHOAMI']],
    'replies as Redis gives them to writer',
  );
  t.equal(await master.client().exists('other'), 0);
});

t.test('refused logins: WRONGPASS, AUTH <password> without a default password, as Redis words them', async (t) => {
  await sameAsRedis(
    t,
    [
      ['AUTH', 'reader', 'bad'],
      ['AUTH', 'nosuchuser', 'x'],
      ['AUTH', 'onlypass'],
      ['AUTH'],
      ['AUTH', 'a', 'b', 'c'],
      ['HELLO', '3', 'AUTH', 'reader', 'bad'],
      ['HELLO', '2', 'AUTH', 'reader'],
      ['ACL', 'WHOAMI'],
      ['AUTH', 'reader', 'rpw'],
      ['AUTH', 'writer', 'bad'],
      ['ACL', 'WHOAMI'],
    ],
    'refusals keep the session as it was',
  );
  const stats = await pipelined(port, [['INFO', 'proxy']]);
  t.match(stats[0], /node0:role=master,addr=[^,]+,state=up/, 'a refused login says nothing about the master');
  t.match(stats[0], /\r\nauthentication:redis\r\nredis_users:\d+\r\nredis_default_needs_password:0\r\n/, 'INFO proxy shows the mode');
});

/** `HELLO 3 …`'s map with the `id` field blanked (the proxy's session id, Redis's client id). */
const blankId = (text: string) => text.replace(/(\$2\r\nid\r\n:)\d+/, '$1<id>');

t.test('CLIENT LIST and CLIENT KILL, answered by the proxy, follow the user’s ACL (they reach other sessions)', async (t) => {
  await sameAsRedis(
    t,
    [
      ['AUTH', 'reader', 'rpw'],
      ['CLIENT', 'LIST'],
      ['CLIENT', 'KILL', 'ID', '999999'],
      ['AUTH', 'operator', 'opw'],
      ['CLIENT', 'KILL', 'ID', '999999'],
      ['MULTI'],
      ['SET', 'a', '1'],
      ['CLIENT', 'LIST'],
      ['EXEC'],
      ['CLIENT', 'GETNAME'],
    ],
    'NOPERM as Redis words it; inside MULTI it aborts the transaction',
  );
  const [, list] = await pipelined(port, [['AUTH', 'txuser', 'tpw'], ['CLIENT', 'LIST']]);
  t.match(list, /^\$\d+\r\nid=\d+ .* user=txuser /, 'a user allowed to gets the proxy’s sessions');
  await sameAsRedis(t, [['AUTH', 'writer', 'wpw'], ['CLIENT', 'KILL', 'ID', '999999']], 'a user allowed to kills as Redis would');
});

t.test('HELLO AUTH: the login, then HELLO’s own answer', async (t) => {
  const cmds = [['HELLO', '3', 'AUTH', 'reader', 'rpw', 'SETNAME', 'r1'], ['ACL', 'WHOAMI'], ['HGETALL', 'k']];
  const direct = await pipelined(master.port, cmds);
  const proxied = await pipelined(port, cmds);
  t.same(proxied.map(blankId), direct.map(blankId), 'RESP3 replies as Redis gives them');
  t.match(proxied[0], /\$5\r\nproto\r\n:3\r\n/);
  t.equal(proxied[1], '$6\r\nreader\r\n');
});

t.test('client libraries log in with username and password', async (t) => {
  const io = ioredisClient(port, { username: 'writer', password: 'wpw' });
  t.equal(await io.call('ACL', 'WHOAMI'), 'writer', 'ioredis (AUTH user pass)');
  t.equal(await io.set('app:io', '1'), 'OK');
  await t.rejects(io.set('nope', '1'), /^NOPERM this user has no permissions to access one of the keys used as arguments$/);
  io.disconnect();
  for (const RESP of [3, 2] as const) {
    const client = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false }, RESP, username: 'reader', password: 'rpw' });
    client.on('error', () => {});
    await client.connect();
    t.equal(await client.sendCommand(['ACL', 'WHOAMI']), 'reader', `node-redis RESP${RESP}`);
    t.equal(await client.get('k'), 'v');
    await t.rejects(client.set('k', 'x'), /NOPERM this user has no permissions to run the 'set' command/);
    client.destroy();
    const bad = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false }, RESP, username: 'reader', password: 'no' });
    bad.on('error', () => {});
    await t.rejects(bad.connect(), /WRONGPASS invalid username-password pair or user is disabled\./, `node-redis RESP${RESP}: wrong password`);
  }
});

t.test('switching user mid-connection: each command runs as the user of the moment, in order', async (t) => {
  const cmds: Array<Array<string | number>> = [];
  for (let i = 0; i < 20; i++) {
    cmds.push(['AUTH', 'reader', 'rpw'], ['SET', `app:s${i}`, i], ['ACL', 'WHOAMI'], ['GET', 'k']);
    cmds.push(['AUTH', 'writer', 'wpw'], ['SET', `app:s${i}`, i], ['ACL', 'WHOAMI'], ['GET', 'k']);
  }
  await sameAsRedis(t, cmds, '160 pipelined commands switching between reader and writer');
});

t.test('MULTI/EXEC as a user: queued NOPERM aborts; AUTH inside MULTI runs at EXEC as on Redis', async (t) => {
  await sameAsRedis(
    t,
    [['AUTH', 'writer', 'wpw'], ['MULTI'], ['SET', 'app:t', '1'], ['SET', 'other', '1'], ['EXEC'], ['GET', 'app:t']],
    'a command Redis refuses to queue (NOPERM): EXECABORT',
  );
  await sameAsRedis(
    t,
    [
      ['AUTH', 'txuser', 'tpw'],
      ['MULTI'],
      ['SET', 'app:t2', '1'],
      ['AUTH', 'writer', 'wpw'],
      ['SET', 'app:t3', '1'],
      ['GET', 'k'],
      ['EXEC'],
      ['ACL', 'WHOAMI'],
      ['GET', 'k'],
      ['MULTI'],
      ['AUTH', 'reader', 'bad'],
      ['SET', 'app:t4', '1'],
      ['EXEC'],
      ['ACL', 'WHOAMI'],
    ],
    'AUTH queued in MULTI: later commands of the EXEC run as the new user; a refused one changes nothing',
  );
  const cmds = [['AUTH', 'txuser', 'tpw'], ['MULTI'], ['HELLO', '3', 'AUTH', 'writer', 'wpw'], ['SET', 'app:t5', '1'], ['EXEC'], ['ACL', 'WHOAMI']];
  const direct = await pipelined(master.port, cmds);
  const proxied = await pipelined(port, cmds);
  t.same(proxied.slice(0, 4), direct.slice(0, 4), 'HELLO AUTH inside MULTI is queued');
  t.match(proxied[4], /^\*2\r\n%7\r\n/, 'its answer at EXEC is HELLO’s map');
  t.equal(proxied[5], direct[5], 'and the session is writer afterwards');
  t.equal(direct[5], '$6\r\nwriter\r\n');
});

t.test('Pub/Sub as a user restricted to chan:* gets NOPERM for other channels', async (t) => {
  await sameAsRedis(
    t,
    [['AUTH', 'writer', 'wpw'], ['SUBSCRIBE', 'other'], ['PING'], ['SUBSCRIBE', 'chan:1'], ['PSUBSCRIBE', 'x*'], ['PUBLISH', 'other', 'm']],
    'RESP2: the refused SUBSCRIBE leaves the session out of Pub/Sub mode, as on Redis',
  );
  const sub = await rawConnection(port);
  await sub.send(encodeCommand('AUTH', 'writer', 'wpw'));
  const [confirm] = await sub.send(encodeCommand('SUBSCRIBE', 'chan:1'));
  t.equal(confirm!.toString(), '*3\r\n$9\r\nsubscribe\r\n$6\r\nchan:1\r\n:1\r\n');
  const publisher = ioredisClient(port, { username: 'writer', password: 'wpw' });
  t.equal(await publisher.publish('chan:1', 'hello'), 1);
  await t.rejects(publisher.publish('other', 'no'), /^NOPERM this user has no permissions to access one of the channels used as arguments$/);
  t.ok(await sub.waitFor((buf) => buf.includes('hello')), 'the message arrives');
  const resp3 = await pipelined(port, [['HELLO', '3', 'AUTH', 'writer', 'wpw'], ['SUBSCRIBE', 'chan:2'], ['SUBSCRIBE', 'other'], ['AUTH', 'reader', 'rpw'], ['ACL', 'WHOAMI']]);
  t.equal(resp3[2], '-NOPERM this user has no permissions to access one of the channels used as arguments\r\n', 'RESP3 stream: NOPERM');
  t.equal(resp3[3], '+OK\r\n', 'AUTH in a RESP3 Pub/Sub stream');
  t.equal(resp3[4], '$6\r\nreader\r\n', 'the subscribed connection runs as the new user');
  sub.socket.destroy();
  publisher.disconnect();
});

t.test('two sessions as different users never see each other’s identity (shared connections)', async (t) => {
  const a = await rawConnection(port);
  const b = await rawConnection(port);
  await a.send(encodeCommand('AUTH', 'reader', 'rpw'));
  await b.send(encodeCommand('AUTH', 'writer', 'wpw'));
  const rounds = 20;
  for (let round = 0; round < rounds; round++) {
    const batchA: Buffer[] = [];
    const batchB: Buffer[] = [];
    for (let i = 0; i < 25; i++) {
      batchA.push(encodeCommand('ACL', 'WHOAMI'), encodeCommand('GET', 'app:k'), encodeCommand('SET', 'app:r', i));
      batchB.push(encodeCommand('ACL', 'WHOAMI'), encodeCommand('GET', 'app:k'), encodeCommand('SET', `app:b${i}`, i));
    }
    const [ra, rb] = await Promise.all([a.send(Buffer.concat(batchA), 75, 5000), b.send(Buffer.concat(batchB), 75, 5000)]);
    for (let i = 0; i < 75; i += 3) {
      t.equal(ra[i]!.toString(), '$6\r\nreader\r\n');
      t.equal(ra[i + 1]!.toString(), '$4\r\nappv\r\n');
      t.equal(ra[i + 2]!.toString(), "-NOPERM this user has no permissions to run the 'set' command\r\n");
      t.equal(rb[i]!.toString(), '$6\r\nwriter\r\n');
      t.equal(rb[i + 1]!.toString(), '$4\r\nappv\r\n');
      t.equal(rb[i + 2]!.toString(), '+OK\r\n');
    }
  }
  a.socket.destroy();
  b.socket.destroy();
});

t.test('a lease used as a user goes back to the pool as the proxy’s own user', async (t) => {
  // One dedicated connection: the next lease is the very connection the user had.
  const steps = [['AUTH', 'leaser', 'lpw'], ['MULTI'], ['ACL', 'WHOAMI'], ['EXEC']];
  t.same(await pipelined(oneLeasePort, steps), ['+OK\r\n', '+OK\r\n', '+QUEUED\r\n', '*1\r\n$6\r\nleaser\r\n']);
  // The listener's AUTH checker stays logged in as the last user it checked: move it off leaser.
  await pipelined(oneLeasePort, [['AUTH', 'reader', 'rpw']]);
  await waitFor(
    'no connection of the master left as leaser: the pooled one switched back, the shared ones closed',
    async () => (await connectionsOf(master, 'leaser')) === 0,
    { timeoutMs: 5000, intervalMs: 100 },
  );
  t.same(
    await pipelined(oneLeasePort, [['MULTI'], ['ACL', 'WHOAMI'], ['EXEC']]),
    ['+OK\r\n', '+QUEUED\r\n', '*1\r\n$7\r\ndefault\r\n'],
    'a session that did not log in runs as default on it',
  );
  // WATCH held, then AUTH: the lease is switched to the new user, as Redis's own connection would be.
  t.same(
    await pipelined(oneLeasePort, [['AUTH', 'txuser', 'tpw'], ['WATCH', 'app:w'], ['AUTH', 'writer', 'wpw'], ['ACL', 'WHOAMI'], ['MULTI'], ['SET', 'app:w', '2'], ['EXEC']]),
    ['+OK\r\n', '+OK\r\n', '+OK\r\n', '$6\r\nwriter\r\n', '+OK\r\n', '+QUEUED\r\n', '*1\r\n+OK\r\n'],
  );
  t.same(await pipelined(oneLeasePort, [['MULTI'], ['ACL', 'WHOAMI'], ['EXEC']]), ['+OK\r\n', '+QUEUED\r\n', '*1\r\n$7\r\ndefault\r\n']);
  t.equal(await master.client().get('app:w'), '2');
});

t.test('WAIT as a user: counts with permission to the proxy’s channel, a clear error without', async (t) => {
  const ok = await pipelined(port, [['AUTH', 'txuser', 'tpw'], ['SET', 'app:wait', '1'], ['WAIT', '1', '2000']]);
  t.same(ok, ['+OK\r\n', '+OK\r\n', ':1\r\n']);
  const refused = await pipelined(port, [['AUTH', 'writer', 'wpw'], ['SET', 'app:wait', '2'], ['WAIT', '1', '100'], ['ACL', 'WHOAMI']]);
  t.match(refused[2], /^-ERR redis-proxy: WAIT needs the proxy's PUBLISH to __redis-proxy__:wait first .*: NOPERM this user has no permissions to access one of the channels used as arguments\r\n$/);
  t.equal(refused[3], '$6\r\nwriter\r\n', 'the session goes on');
});

t.test('SCRIPT LOAD reaches the replicas only when the master accepted it from the user', async (t) => {
  const script = 'return "acl-users"';
  const [, refused] = await pipelined(port, [['AUTH', 'reader', 'rpw'], ['SCRIPT', 'LOAD', script]]);
  t.match(refused, /^-NOPERM this user has no permissions to run the 'script\|load' command/);
  const [, sha] = await pipelined(port, [['AUTH', 'writer', 'wpw'], ['SCRIPT', 'LOAD', script]]);
  const id = sha!.split('\r\n')[1]!;
  await waitFor('the replica to have the script', async () => {
    const [exists] = (await replica.client().call('SCRIPT', 'EXISTS', id)) as number[];
    return exists === 1;
  });
  t.pass('loaded on the replica');
});

t.test('a user’s connections close once no session runs as it', async (t) => {
  const c = await rawConnection(port);
  await c.send(encodeCommand('AUTH', 'temp', 'xpw'));
  await c.send(encodeCommand('SET', 'app:temp', '1'));
  await waitFor('a read as temp on the replica', async () => {
    await c.send(encodeCommand('GET', 'k'));
    return (await connectionsOf(replica, 'temp')) > 0;
  });
  t.ok((await connectionsOf(master, 'temp')) > 0, 'temp has connections on the master');
  // The proxy's AUTH checker stays logged in as the last user it checked: move it off temp.
  await pipelined(port, [['AUTH', 'reader', 'rpw']]);
  c.socket.destroy();
  await waitFor('temp’s connections to close', async () => (await connectionsOf(master, 'temp')) + (await connectionsOf(replica, 'temp')) === 0, {
    timeoutMs: 5000,
    intervalMs: 100,
  });
  t.pass('none left on the master or the replica');
});

t.test('a user Redis no longer accepts: its commands fail, the nodes stay up', async (t) => {
  const c = await rawConnection(port);
  await c.send(encodeCommand('AUTH', 'gone', 'gpw'));
  t.equal((await c.send(encodeCommand('ACL', 'WHOAMI')))[0]!.toString(), '$4\r\ngone\r\n');
  await pipelined(port, [['AUTH', 'reader', 'rpw']]);
  // Redis closes the connections of a user it deletes.
  for (const server of [master, replica]) await server.client().call('ACL', 'DELUSER', 'gone');
  const reply = await waitFor('the deleted user’s command to fail', async () => {
    const [r] = await c.send(encodeCommand('GET', 'k'));
    return r!.toString().startsWith('-') ? r!.toString() : null;
  });
  t.match(reply, /^-ERR redis-proxy: (master|replica) 127\.0\.0\.1:\d+ refused user 'gone': WRONGPASS invalid username-password pair or user is disabled\.\r\n$/);
  const [info] = await pipelined(port, [['INFO', 'proxy']]);
  t.match(info, /node0:role=master,addr=[^,]+,state=up/, 'the master is not marked down');
  t.match(info, /node1:role=replica,addr=[^,]+,state=up/, 'nor the replica');
  t.equal((await c.send(encodeCommand('AUTH', 'reader', 'rpw')))[0]!.toString(), '+OK\r\n', 'the session can log in again');
  t.equal((await c.send(encodeCommand('GET', 'k')))[0]!.toString(), '$1\r\nv\r\n');
  c.socket.destroy();
});

t.test('a default user with a password: NOAUTH before a login, as on Redis', async (t) => {
  const secured = await startRedis({ t });
  const admin = secured.client();
  await admin.call('ACL', 'SETUSER', 'app', 'on', '>apw', '~*', '+@all');
  await admin.config('SET', 'requirepass', 'dpw');
  const p = await startTestProxy([listenerFor(secured, [], { authentication: 'redis', backendPassword: 'dpw' })], { t });
  const cmds = [
    ['GET', 'k'],
    ['ACL', 'WHOAMI'],
    ['HELLO', '3'],
    ['AUTH', 'wrong'],
    ['AUTH', 'dpw'],
    ['ACL', 'WHOAMI'],
    ['AUTH', 'app', 'apw'],
    ['ACL', 'WHOAMI'],
    ['RESET'],
    ['GET', 'k'],
  ];
  const direct = await pipelined(secured.port, cmds);
  const proxied = await pipelined(p.port, cmds);
  t.same(proxied, direct, 'NOAUTH, the logins and RESET as on Redis');
  t.equal(proxied[0], '-NOAUTH Authentication required.\r\n');
  const unauthenticated = await rawCommand(p.port, encodeCommand('SET', 'k', 'v'));
  t.equal(unauthenticated.text, '-NOAUTH Authentication required.\r\n');
});

t.test('reloaded to "proxy": new sessions run as the proxy’s user, on leases that users had', async (t) => {
  t.same(
    await pipelined(oneLeasePort, [['AUTH', 'txuser', 'tpw'], ['MULTI'], ['ACL', 'WHOAMI'], ['EXEC']]),
    ['+OK\r\n', '+OK\r\n', '+QUEUED\r\n', '*1\r\n$6\r\ntxuser\r\n'],
  );
  const kept = await rawConnection(oneLeasePort);
  t.equal((await kept.send(encodeCommand('AUTH', 'writer', 'wpw')))[0]!.toString(), '+OK\r\n');
  await proxy.reload([
    { ...listenerFor(master, [replica], { authentication: 'redis' }), listen: port },
    { ...listenerFor(master, [replica], { maxDedicatedConnections: 1, name: 'one-lease' }), listen: oneLeasePort },
  ]);
  t.same(
    await pipelined(oneLeasePort, [['MULTI'], ['ACL', 'WHOAMI'], ['EXEC'], ['ACL', 'WHOAMI']]),
    ['+OK\r\n', '+QUEUED\r\n', '*1\r\n$7\r\ndefault\r\n', '$7\r\ndefault\r\n'],
    'the one pooled connection came back as the proxy’s own user',
  );
  t.equal((await kept.send(encodeCommand('ACL', 'WHOAMI')))[0]!.toString(), '$6\r\nwriter\r\n', 'a session logged in before the reload stays that user');
  kept.socket.destroy();
});

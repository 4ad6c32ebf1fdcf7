/**
 * Drop-in compatibility: authentication. A listener with `password` / `users` behaves like
 * a Redis with `requirepass` and ACL users (same NOAUTH / WRONGPASS replies, AUTH and
 * HELLO AUTH forms, client library options); a listener without client auth answers AUTH
 * as a Redis without a password does. Backend auth: the proxy authenticates to a master
 * and replicas that require a password, and a wrong backend password gives a clear error.
 */
import t from 'tap';
import { createClient } from 'redis';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawCommand, rawConnection } from '../../helpers/raw.js';
import { startRedis, startReplicaSet, type RedisServer } from '../../helpers/redis.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { authedClient, callsOf, compareSession, waitFor, type SessionStep } from './_helpers.js';

const PASSWORD = 'sekret';
const USER = { username: 'app', password: 'apppass' };

/** A standalone Redis with `requirepass` and an ACL user like the listener's (set after start: the harness pings unauthenticated). */
async function redisWithAuth(): Promise<RedisServer> {
  const server = await startRedis();
  const admin = server.client();
  await admin.call('ACL', 'SETUSER', USER.username, 'on', `>${USER.password}`, '~*', '&*', '+@all');
  await admin.config('SET', 'requirepass', PASSWORD);
  return server;
}

const referenceAuth = await redisWithAuth();
const referenceOpen = await startRedis();
const set = await startReplicaSet({ replicas: 1 });
const proxy = await startTestProxy([
  listenerFor(set.master, set.replicas, { password: PASSWORD, users: [USER] }),
  listenerFor(set.master, set.replicas),
]);
const [authPort, openPort] = proxy.ports as [number, number];
await waitForReplicaReads(set.replicas, () => ioredisClient(openPort).get('auth:warm'));

/** Blanks out the client id in a HELLO reply (RESP2 or RESP3), the one field that differs by nature. */
const blankId = (text: string) => text.replace(/(\$2\r\nid\r\n:)\d+/, '$1<id>');

t.test('unauthenticated commands get exactly -NOAUTH Authentication required.', async (t) => {
  const r = await rawCommand(authPort, encodeCommand('GET', 'auth:k'));
  t.equal(r.text, '-NOAUTH Authentication required.\r\n');
  const w = await rawCommand(authPort, encodeCommand('SET', 'auth:k', 'v'));
  t.equal(w.text, '-NOAUTH Authentication required.\r\n');
  t.equal(await set.master.client().exists('auth:k'), 0, 'the refused SET did not reach the master');
});

t.test('an unauthenticated session gets the same replies as from a Redis with requirepass', async (t) => {
  const steps: SessionStep[] = [
    ['GET', 'auth:k'],
    ['PING'],
    ['ECHO', 'hi'],
    ['SELECT', '1'],
    ['CLIENT', 'SETNAME', 'x'],
    ['CLIENT', 'GETNAME'],
    ['CLIENT', 'ID'],
    ['INFO', 'server'],
    ['MULTI'],
    ['SUBSCRIBE', 'auth:ch'],
    ['HELLO', '3'],
    ['HELLO', '2', 'SETNAME', 'x'],
    { cmd: ['AUTH', 'wrong'], label: 'AUTH wrong' },
    { cmd: ['AUTH', 'default', 'wrong'], label: 'AUTH default wrong' },
    { cmd: ['AUTH', 'app', 'wrong'], label: 'AUTH app wrong' },
    { cmd: ['AUTH', 'nosuchuser', 'apppass'], label: 'AUTH nosuchuser ...' },
    ['AUTH', 'a', 'b', 'c'],
    { cmd: ['HELLO', '2', 'AUTH', 'app', 'wrong'], label: 'HELLO 2 AUTH app wrong' },
    { cmd: ['HELLO', '3', 'AUTH', 'app'], label: 'HELLO 3 AUTH with a missing password' },
    ['GET', 'auth:k'],
    { cmd: ['AUTH', PASSWORD], label: 'AUTH <password>' },
    ['GET', 'auth:k'],
    { cmd: ['AUTH', 'wrong'], label: 'AUTH wrong after a successful AUTH' },
    { cmd: ['GET', 'auth:k'], label: 'still authenticated after the failed AUTH' },
    { cmd: ['AUTH', USER.username, USER.password], label: 'AUTH <user> <pass>' },
    ['GET', 'auth:k'],
  ];
  await compareSession(t, referenceAuth.port, authPort, steps);
});

t.test('HELLO 2 AUTH user pass and HELLO 3 AUTH default pass: same replies as Redis (but the id)', async (t) => {
  for (const steps of [
    [['HELLO', '2', 'AUTH', USER.username, USER.password], ['HGETALL', 'auth:none'], ['GET', 'auth:none']],
    [['HELLO', '3', 'AUTH', 'default', PASSWORD], ['HGETALL', 'auth:none'], ['GET', 'auth:none'], ['CLIENT', 'GETNAME']],
    [['HELLO', '3', 'AUTH', USER.username, USER.password, 'SETNAME', 'authed'], ['CLIENT', 'GETNAME']],
  ] as string[][][]) {
    await compareSession(t, referenceAuth.port, authPort, steps, { normalize: blankId });
  }
});

t.test('an authenticated session works normally', async (t) => {
  const c = await rawConnection(authPort);
  const replies = await c.send(
    Buffer.concat([
      encodeCommand('AUTH', PASSWORD),
      encodeCommand('SET', 'auth:ok', '1'),
      encodeCommand('INCR', 'auth:ok'),
    ]),
    3,
  );
  t.same(replies.map((b) => b.toString('latin1')), ['+OK\r\n', '+OK\r\n', ':2\r\n']);
  t.equal(await set.master.client().get('auth:ok'), '2');
});

/** What an ioredis client with `options` ends up with against `port`: its errors and the outcome of a SET/GET. */
async function ioredisOutcome(port: number, options: Record<string, unknown>): Promise<string[]> {
  const r = ioredisClient(port, { retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: true, ...options });
  const out: string[] = [];
  try {
    out.push(`set: ${await r.set('auth:lib', 'v')}`);
    out.push(`get: ${await r.get('auth:lib')}`);
  } catch (err) {
    out.push(`command error: ${(err as Error).message}`);
  }
  out.push(...r.errors.map((e) => `client error: ${e.message}`));
  r.disconnect();
  return out;
}

t.test('ioredis password / username options', async (t) => {
  const ok = await ioredisOutcome(authPort, { password: PASSWORD });
  t.same(ok, ['set: OK', 'get: v'], 'password option');
  const user = await ioredisOutcome(authPort, { username: USER.username, password: USER.password });
  t.same(user, ['set: OK', 'get: v'], 'username + password options');
  for (const options of [{ password: 'wrong' }, { username: USER.username, password: 'wrong' }, {}]) {
    const expected = await ioredisOutcome(referenceAuth.port, options);
    const got = await ioredisOutcome(authPort, options);
    t.same(got, expected, `ioredis with ${JSON.stringify(options)} fails as against Redis: ${JSON.stringify(expected)}`);
  }
});

/** What a node-redis client (RESP2 or RESP3) with `options` ends up with against `port`. */
async function nodeRedisOutcome(port: number, options: Record<string, unknown>): Promise<string[]> {
  const client = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false }, ...options });
  client.on('error', () => {});
  const out: string[] = [];
  try {
    await client.connect();
    out.push(`set: ${await client.set('auth:nr', 'w')}`);
    out.push(`get: ${await client.get('auth:nr')}`);
  } catch (err) {
    out.push(`error: ${(err as Error).message}`);
  } finally {
    try {
      client.destroy();
    } catch {
      /* not connected */
    }
  }
  return out;
}

t.test('node-redis password / username options, RESP3 (HELLO 3 AUTH) and RESP2 (AUTH)', async (t) => {
  for (const RESP of [3, 2] as const) {
    t.same(await nodeRedisOutcome(authPort, { RESP, password: PASSWORD }), ['set: OK', 'get: w'], `RESP${RESP} password`);
    t.same(
      await nodeRedisOutcome(authPort, { RESP, username: USER.username, password: USER.password }),
      ['set: OK', 'get: w'],
      `RESP${RESP} username + password`,
    );
    for (const options of [{ password: 'wrong' }, { username: USER.username, password: 'wrong' }]) {
      const expected = await nodeRedisOutcome(referenceAuth.port, { RESP, ...options });
      const got = await nodeRedisOutcome(authPort, { RESP, ...options });
      t.same(got, expected, `RESP${RESP} ${JSON.stringify(options)} fails as against Redis: ${JSON.stringify(expected)}`);
    }
  }
});

t.test('without client auth configured, AUTH and HELLO AUTH answer as a Redis without a password', async (t) => {
  const steps: SessionStep[] = [
    { cmd: ['AUTH', 'x'], label: 'AUTH x' },
    { cmd: ['AUTH', 'default', 'x'], label: 'AUTH default x' },
    { cmd: ['AUTH', 'nosuchuser', 'x'], label: 'AUTH nosuchuser x' },
    { cmd: ['HELLO', '2', 'AUTH', 'nosuchuser', 'x'] },
    { cmd: ['HELLO', '2', 'AUTH', 'default', 'anything'] },
    ['GET', 'auth:none'],
  ];
  await compareSession(t, referenceOpen.port, openPort, steps, { normalize: blankId });
});

t.test('backend auth: master and replica with requirepass, listener with backendPassword', async (t) => {
  const BACKEND = 'bpass';
  const secured = await startReplicaSet({ replicas: 1, t });
  const [replica] = secured.replicas as [RedisServer];
  // Passwords set after start (the harness checks that a server is up with an unauthenticated
  // PING, and a replica with masterauth cannot sync from a master without a password).
  await replica.client().config('SET', 'masterauth', BACKEND);
  for (const server of [replica, secured.master]) await server.client().config('SET', 'requirepass', BACKEND);
  const m = authedClient(secured.master.port, BACKEND);
  const r = authedClient(replica.port, BACKEND);
  t.match(
    (await rawCommand(secured.master.port, encodeCommand('GET', 'x'))).text,
    /^-NOAUTH/,
    'setup: the master refuses unauthenticated clients',
  );

  const good = await startTestProxy([listenerFor(secured.master, [replica], { backendPassword: BACKEND })], { t });
  const client = ioredisClient(good.port);
  t.equal(await client.set('auth:b', 'secret-data'), 'OK', 'a write through the proxy');
  t.equal(await m.get('auth:b'), 'secret-data', 'reached the master');
  await waitFor('the replica to have the key', async () => (await r.get('auth:b')) === 'secret-data');
  await waitFor(
    'a read through the proxy served by the password-protected replica',
    async () => {
      const before = await callsOf(r, 'get');
      t.equal(await client.get('auth:b'), 'secret-data');
      return (await callsOf(r, 'get')) > before;
    },
    { timeoutMs: 5000, intervalMs: 100 },
  );

  // The same servers with a wrong backend password: a clear error, at start or per command, never a hang.
  const started = await startTestProxy([listenerFor(secured.master, [replica], { backendPassword: 'wrong' })], { t }).then(
    (p) => p,
    (err: Error) => err,
  );
  if (started instanceof Error) {
    t.match(started.message, /WRONGPASS|auth|password/i, `startup fails clearly: ${started.message}`);
    return;
  }
  const bad = started;
  for (const words of [['SET', 'auth:bad', '1'], ['GET', 'auth:b']]) {
    const res = await rawCommand(bad.port, encodeCommand(...words), { timeoutMs: 4000 });
    t.notOk(res.timedOut, `${words.join(' ')}: answered, not hanging`);
    t.match(res.text, /^-.*(WRONGPASS|auth|password)/i, `a clear error: ${JSON.stringify(res.text)}`);
  }
  t.equal(await m.exists('auth:bad'), 0, 'nothing was written');
});

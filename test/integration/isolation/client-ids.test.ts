/**
 * Client ids are the proxy's session ids everywhere a client can name another client.
 *
 * CLIENT ID answers the proxy's session id (the application never sees the backend's
 * connections), so every command taking an id must understand that id and act on the
 * session's backend connection, as Redis would act on that client:
 *
 * - CLIENT UNBLOCK <id of a session blocked in BLPOP> -> `:1`, and the blocked session
 *   gets a nil (`*-1`), or with ERROR `-UNBLOCKED client unblocked via CLIENT UNBLOCK`;
 *   a session that is not blocked, or an id nobody has -> `:0`. (Sent to the master as
 *   it is, the proxy id would name some unrelated backend connection, or none.)
 * - CLIENT TRACKING ON REDIRECT <id> where the target session has no dedicated
 *   connection yet (it only asked CLIENT ID): `+OK`, and invalidations for keys the
 *   tracking session read reach the target once it subscribes to
 *   `__redis__:invalidate`. CLIENT GETREDIR answers the proxy id given.
 * - CLIENT KILL ID <id> closes that session.
 *
 * Every scenario runs against a real redis-server first (the expected replies are its
 * replies), then against the proxy.
 */
import type { Redis } from 'ioredis';
import t from 'tap';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection, splitReplies, type RawConnection } from '../../helpers/raw.js';
import { startRedis, type RedisServer } from '../../helpers/redis.js';
import { waitFor } from '../../helpers/wait.js';
import { closedWithin, show } from '../compat/_helpers.js';

const reference = await startRedis();
const master = await startRedis();
const { port } = await startTestProxy([listenerFor(master)]);

/** Where the clients connect, and the redis-server that runs their commands. */
interface Target {
  name: string;
  port: number;
  server: RedisServer;
  direct: Redis;
}
const targets: Target[] = [
  { name: 'Redis', port: reference.port, server: reference, direct: reference.client() },
  { name: 'proxy', port, server: master, direct: master.client() },
];

const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;

/** Sends `args` and returns its one reply as text, or what came plus «timeout»/«closed». */
async function ask(conn: RawConnection, args: (string | number)[], timeoutMs = 2000): Promise<string> {
  const before = splitReplies(conn.received()).length;
  conn.socket.write(encodeCommand(...args));
  const ok = await conn.waitFor((b) => splitReplies(b).length > before, timeoutMs);
  const got = splitReplies(conn.received()).slice(before, before + 1).map((b) => b.toString('latin1')).join('');
  return ok ? got : `${got}${conn.closed ? '«closed»' : '«timeout»'}`;
}

async function clientId(conn: RawConnection): Promise<number> {
  const reply = await ask(conn, ['CLIENT', 'ID']);
  const m = /^:(\d+)\r\n$/.exec(reply);
  if (!m) throw new Error(`CLIENT ID answered ${show(reply)}`);
  return Number(m[1]);
}

/** Waits until the server has `n` blocked clients. */
const blockedOn = (server: RedisServer, n: number) =>
  waitFor(`${n} client(s) blocked on the server`, async () => Number((await server.info('clients')).blocked_clients) === n, {
    timeoutMs: 2000,
  });

/**
 * Starts `BLPOP key 0` on `conn` and waits until it is blocked. `reply()` waits up to 1 s
 * for its reply; if none came (the unblock did not reach it), a push to `key` wakes it,
 * so that the next step starts clean, and «not unblocked» is returned.
 */
async function blpop(target: Target, conn: RawConnection, key: string): Promise<{ reply(): Promise<string> }> {
  const before = splitReplies(conn.received()).length;
  conn.socket.write(encodeCommand('BLPOP', key, '0'));
  await blockedOn(target.server, 1);
  const replyAt = (i: number) => splitReplies(conn.received()).slice(i, i + 1).map((b) => b.toString('latin1')).join('');
  return {
    async reply() {
      if (await conn.waitFor((b) => splitReplies(b).length > before, 1000)) return replyAt(before);
      await target.direct.lpush(key, 'wake');
      await conn.waitFor((b) => splitReplies(b).length > before, 1000);
      await blockedOn(target.server, 0).catch(() => undefined);
      return `«not unblocked»${replyAt(before)}`;
    },
  };
}

for (const target of targets) {
  t.test(`${target.name}: CLIENT UNBLOCK with the id of a blocked session`, async (t) => {
    const a = await rawConnection(target.port);
    const b = await rawConnection(target.port);
    const idA = await clientId(a);
    await clientId(b); // B is a session of its own, with an id of its own

    const first = await blpop(target, a, 'ci:k');
    t.equal(await ask(b, ['CLIENT', 'UNBLOCK', idA]), ':1\r\n', `CLIENT UNBLOCK ${idA} -> :1`);
    t.equal(await first.reply(), '*-1\r\n', 'A gets a nil reply');
    t.equal(await ask(a, ['PING']), '+PONG\r\n', 'A goes on');

    const second = await blpop(target, a, 'ci:k');
    t.equal(await ask(b, ['CLIENT', 'UNBLOCK', idA, 'ERROR']), ':1\r\n', `CLIENT UNBLOCK ${idA} ERROR -> :1`);
    t.equal(await second.reply(), '-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n', 'A gets the UNBLOCKED error');
    t.equal(await ask(a, ['PING']), '+PONG\r\n', 'A goes on');

    await blockedOn(target.server, 0);
    t.equal(await ask(b, ['CLIENT', 'UNBLOCK', idA]), ':0\r\n', 'a session that is not blocked -> :0');
    t.equal(await ask(b, ['CLIENT', 'UNBLOCK', 987654]), ':0\r\n', 'an id no session has -> :0');
    t.equal(await ask(b, ['CLIENT', 'UNBLOCK', idA, 'TIMEOUT']), ':0\r\n', 'with TIMEOUT, not blocked -> :0');

    // A's id names A only: another session's blocked call stays blocked.
    const c = await rawConnection(target.port);
    const third = await blpop(target, c, 'ci:other');
    t.equal(await ask(b, ['CLIENT', 'UNBLOCK', idA]), ':0\r\n', "A's id does not unblock another session");
    await target.direct.lpush('ci:other', 'v');
    t.equal(await third.reply(), `*2\r\n${bulk('ci:other')}${bulk('v')}`, 'that session is woken by its push as usual');
    for (const conn of [a, b, c]) conn.socket.destroy();
  });

  t.test(`${target.name}: CLIENT KILL ID closes that session`, async (t) => {
    const a = await rawConnection(target.port);
    const killer = await rawConnection(target.port);
    const idA = await clientId(a);
    await blpop(target, a, 'ci:kill');
    t.equal(await ask(killer, ['CLIENT', 'KILL', 'ID', idA]), ':1\r\n', `CLIENT KILL ID ${idA} -> :1`);
    t.ok(await closedWithin(a, 2000), 'the session is closed');
    await blockedOn(target.server, 0);
    t.pass('its blocked call is released on the server');
    t.equal(await ask(killer, ['PING']), '+PONG\r\n', 'the killer goes on');
    killer.socket.destroy();
  });

  t.test(`${target.name}: CLIENT TRACKING REDIRECT to a session that has no dedicated connection yet`, async (t) => {
    await target.direct.set('tk', 'v1');
    const redirectTo = await rawConnection(target.port); // RESP2
    const idT = await clientId(redirectTo);
    const tracker = await rawConnection(target.port);
    t.equal(await ask(tracker, ['CLIENT', 'TRACKING', 'ON', 'REDIRECT', idT]), '+OK\r\n', `CLIENT TRACKING ON REDIRECT ${idT} -> +OK`);
    t.equal(await ask(tracker, ['CLIENT', 'GETREDIR']), `:${idT}\r\n`, 'CLIENT GETREDIR -> the id given');

    t.equal(
      await ask(redirectTo, ['SUBSCRIBE', '__redis__:invalidate']),
      `*3\r\n${bulk('subscribe')}${bulk('__redis__:invalidate')}:1\r\n`,
      'the target subscribes to __redis__:invalidate',
    );
    t.equal(await ask(tracker, ['GET', 'tk']), bulk('v1'), 'the tracker reads tk');
    const before = redirectTo.received().length;
    await target.direct.set('tk', 'v2');
    const invalidation = `*3\r\n${bulk('message')}${bulk('__redis__:invalidate')}*1\r\n${bulk('tk')}`;
    const got = await redirectTo.waitFor((b) => b.toString('latin1', before).includes(invalidation), 1000);
    t.ok(got, `the target receives the invalidation of tk (got ${show(redirectTo.received().toString('latin1', before))})`);
    t.equal(await ask(tracker, ['CLIENT', 'GETREDIR']), `:${idT}\r\n`, 'CLIENT GETREDIR still answers the id given');
    redirectTo.socket.destroy();
    tracker.socket.destroy();
  });
}

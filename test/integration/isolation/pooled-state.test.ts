/**
 * Isolation between sessions that lease the same pooled (dedicated) master connection.
 *
 * A dedicated connection goes back to the pool after a session used it for MULTI,
 * a blocking command or Pub/Sub, and the next session that leases one may get the same
 * socket. Whatever Redis-side state the first session left on it must not reach the
 * next one:
 *
 * - SUBSCRIBE queued inside MULTI: on Redis the client is subscribed once EXEC ran
 *   (EXEC's array holds the subscribe confirmation). The session must be subscribed
 *   through the proxy as well, keep its connection, and that connection must never be
 *   handed to another session (which would get a subscribe count of 2 and someone
 *   else's messages, or "Can't execute 'blpop'").
 * - CLIENT REPLY OFF left on a Pub/Sub connection (RESP3: HELLO 3, SUBSCRIBE,
 *   CLIENT REPLY OFF, UNSUBSCRIBE, disconnect): the next sessions must get their replies.
 * - CLIENT REPLY OFF / SKIP / a bad mode inside MULTI: the reply stream is Redis's own
 *   (EXEC's array header is completed by the replies that follow), compared byte for
 *   byte with a standalone redis-server, and the session goes on working.
 *
 * `maxDedicatedConnections` 1 or 2 forces the pooled connection to be reused.
 */
import type { Redis } from 'ioredis';
import t from 'tap';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection, splitReplies, type RawConnection } from '../../helpers/raw.js';
import { startRedis } from '../../helpers/redis.js';
import { sleep } from '../../helpers/wait.js';
import { pipelineTranscript, show, type Cmd } from '../compat/_helpers.js';

const reference = await startRedis();
const master = await startRedis();
const direct = master.client();
const referenceClient = reference.client();

const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const confirm = (kind: string, ch: string, n: number) => `*3\r\n${bulk(kind)}${bulk(ch)}:${n}\r\n`;
const pushConfirm = (kind: string, ch: string, n: number) => `>3\r\n${bulk(kind)}${bulk(ch)}:${n}\r\n`;
const message = (ch: string, payload: string) => `*3\r\n${bulk('message')}${bulk(ch)}${bulk(payload)}`;
const text = (bufs: Buffer[]) => Buffer.concat(bufs).toString('latin1');
const cmds = (...list: (string | number)[][]) => Buffer.concat(list.map((c) => encodeCommand(...c)));
const notSubscribedError =
  "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n";

/** Sends `bytes` and returns the next `n` replies as text, or what came plus «timeout»/«closed». */
async function ask(conn: RawConnection, bytes: Buffer, n = 1, timeoutMs = 1000): Promise<string> {
  const before = splitReplies(conn.received()).length;
  conn.socket.write(bytes);
  const ok = await conn.waitFor((b) => splitReplies(b).length >= before + n, timeoutMs);
  const got = text(splitReplies(conn.received()).slice(before, before + n));
  return ok ? got : `${got}${conn.closed ? '«closed»' : '«timeout»'}`;
}

/** True when `conn` receives bytes containing `needle` within `ms`. */
const receives = (conn: RawConnection, needle: string, ms: number) =>
  conn.waitFor((b) => b.toString('latin1').includes(needle), ms);

/** Phase 1 of session A: MULTI, SUBSCRIBE evil, EXEC in one write; A stays connected. */
async function subscribeInMulti(port: number): Promise<{ a: RawConnection; replies: string }> {
  const a = await rawConnection(port);
  const replies = await ask(a, cmds(['MULTI'], ['SUBSCRIBE', 'evil'], ['EXEC']), 3);
  return { a, replies };
}

/** Phase 2 of session A: a PUBLISH to `evil` reaches it, and GET is refused as in subscribed mode. */
async function aIsSubscribed(a: RawConnection, publisher: Redis, payload: string): Promise<string[]> {
  const start = a.received().length;
  await publisher.publish('evil', payload);
  const gotMessage = await receives(a, message('evil', payload), 1000);
  const afterMessage = gotMessage ? a.received().toString('latin1', start) : '«no message»';
  const get = await ask(a, encodeCommand('GET', 'x'));
  return [afterMessage, get];
}

const expectedA = `+OK\r\n+QUEUED\r\n*1\r\n${confirm('subscribe', 'evil', 1)}`;

t.test('real Redis: SUBSCRIBE inside MULTI subscribes the client (reference for the proxy tests)', async (t) => {
  const { a, replies } = await subscribeInMulti(reference.port);
  t.equal(replies, expectedA, 'MULTI, SUBSCRIBE, EXEC -> +OK, +QUEUED, EXEC array holding the confirmation');
  t.same(await aIsSubscribed(a, referenceClient, 'boo'), [message('evil', 'boo'), notSubscribedError], 'subscribed afterwards');
  a.socket.destroy();
});

t.test('SUBSCRIBE inside MULTI: the session is subscribed and its connection is not handed to another session', async (t) => {
  // Two pooled connections: A's (subscribed) must stay A's, B gets the other one.
  const { port } = await startTestProxy([listenerFor(master, [], { maxDedicatedConnections: 2 })], { t });
  const { a, replies } = await subscribeInMulti(port);
  t.equal(replies, expectedA, `A: MULTI, SUBSCRIBE evil, EXEC -> ${show(expectedA)}`);

  // B subscribes before anything is published: a count of 2 means it got A's connection.
  const b = await rawConnection(port);
  t.equal(await ask(b, encodeCommand('SUBSCRIBE', 'news')), confirm('subscribe', 'news', 1), 'B: SUBSCRIBE news -> count 1, not 2');

  const [aMessage, aGet] = await aIsSubscribed(a, direct, 'boo');
  t.equal(aMessage, message('evil', 'boo'), 'A receives the message published to evil');
  t.equal(aGet, notSubscribedError, "A: GET x -> Redis's error for a subscribed RESP2 client");
  await sleep(100);
  t.notOk(b.received().toString('latin1').includes('evil'), 'B never receives anything about evil');
  await direct.publish('news', 'hello');
  t.ok(await receives(b, message('news', 'hello'), 1000), 'B receives its own channel');
  t.equal(await ask(b, encodeCommand('UNSUBSCRIBE', 'news')), confirm('unsubscribe', 'news', 0), 'B: UNSUBSCRIBE -> count 0');

  // C leases a pooled connection for a blocking command and a transaction.
  const c = await rawConnection(port);
  t.equal(await ask(c, encodeCommand('BLPOP', 'somekey', '0.1')), '*-1\r\n', 'C: BLPOP somekey 0.1 -> nil');
  t.equal(
    await ask(c, cmds(['MULTI'], ['SET', 'ps:c', '1'], ['EXEC']), 3),
    '+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n',
    'C: MULTI, SET, EXEC works',
  );
  t.equal(await ask(a, encodeCommand('PING')), `*2\r\n${bulk('pong')}${bulk('')}`, 'A is still in subscribed mode (RESP2 PING reply)');
  for (const conn of [a, b, c]) conn.socket.destroy();
});

t.test('maxDedicatedConnections 1: the subscribed connection of A is never leased to anyone else', async (t) => {
  const { port } = await startTestProxy(
    [listenerFor(master, [], { maxDedicatedConnections: 1, connectTimeout: 500 })],
    { t },
  );
  const { a, replies } = await subscribeInMulti(port);
  t.equal(replies, expectedA, 'A: MULTI, SUBSCRIBE evil, EXEC');

  // The only pooled connection is A's: B may wait and fail for want of a connection, but
  // must not be put on A's.
  const b = await rawConnection(port);
  const bSub = await ask(b, encodeCommand('SUBSCRIBE', 'news'), 1, 3000);
  t.notMatch(bSub, /:2\r\n/, `B: SUBSCRIBE news is not counted with A's channel: ${show(bSub)}`);
  t.ok(
    bSub === confirm('subscribe', 'news', 1) || bSub.startsWith('-ERR redis-proxy:'),
    `B: SUBSCRIBE news -> count 1 or the proxy's no-connection error: ${show(bSub)}`,
  );
  const [aMessage] = await aIsSubscribed(a, direct, 'boo');
  t.equal(aMessage, message('evil', 'boo'), 'A receives the message published to evil');
  await sleep(100);
  t.notOk(b.received().toString('latin1').includes('evil'), 'B never receives anything about evil');

  const c = await rawConnection(port);
  const blpop = await ask(c, encodeCommand('BLPOP', 'somekey', '0.1'), 1, 3000);
  t.notMatch(blpop, /Can't execute/, `C: BLPOP is not run on A's subscribed connection: ${show(blpop)}`);
  t.ok(blpop === '*-1\r\n' || blpop.startsWith('-ERR redis-proxy:'), `C: BLPOP -> nil or the proxy's no-connection error: ${show(blpop)}`);
  for (const conn of [b, c]) conn.socket.destroy();
  await sleep(50);

  // A leaves: its subscribed connection must not come back to the pool.
  a.socket.destroy();
  await sleep(100);
  const d = await rawConnection(port);
  t.equal(await ask(d, encodeCommand('BLPOP', 'somekey', '0.1')), '*-1\r\n', 'after A left: BLPOP -> nil');
  t.equal(
    await ask(d, cmds(['MULTI'], ['SET', 'ps:d', '1'], ['EXEC']), 3),
    '+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n',
    'after A left: MULTI, SET, EXEC works',
  );
  t.equal(await ask(d, encodeCommand('SUBSCRIBE', 'news')), confirm('subscribe', 'news', 1), 'after A left: SUBSCRIBE news -> count 1');
  await direct.publish('evil', 'late');
  await direct.publish('news', 'fresh');
  t.ok(await receives(d, message('news', 'fresh'), 1000), 'D receives its own channel');
  t.notOk(d.received().toString('latin1').includes('evil'), 'D never receives anything about evil');
  d.socket.destroy();
});

t.test('a session that leaves with CLIENT REPLY OFF on its Pub/Sub connection does not silence the next sessions', async (t) => {
  const { port } = await startTestProxy([listenerFor(master, [], { maxDedicatedConnections: 1 })], { t });
  const s1 = await rawConnection(port);
  await s1.send(encodeCommand('HELLO', '3'));
  t.equal(await ask(s1, encodeCommand('SUBSCRIBE', 'ch')), pushConfirm('subscribe', 'ch', 1), 'RESP3 SUBSCRIBE ch');
  s1.socket.write(cmds(['CLIENT', 'REPLY', 'OFF'], ['UNSUBSCRIBE', 'ch']));
  await sleep(150);
  s1.socket.destroy();
  await sleep(100);

  const r2 = await rawConnection(port);
  t.equal(await ask(r2, encodeCommand('SUBSCRIBE', 'ch2')), confirm('subscribe', 'ch2', 1), 'next session, RESP2: SUBSCRIBE is confirmed');
  t.equal(await ask(r2, encodeCommand('PING')), `*2\r\n${bulk('pong')}${bulk('')}`, 'RESP2: PING while subscribed');
  t.equal(await ask(r2, encodeCommand('UNSUBSCRIBE', 'ch2')), confirm('unsubscribe', 'ch2', 0), 'RESP2: UNSUBSCRIBE is confirmed');
  r2.socket.destroy();

  const r3 = await rawConnection(port);
  await r3.send(encodeCommand('HELLO', '3'));
  t.equal(await ask(r3, encodeCommand('SUBSCRIBE', 'ch3')), pushConfirm('subscribe', 'ch3', 1), 'next session, RESP3: SUBSCRIBE is confirmed');
  t.equal(await ask(r3, encodeCommand('PING')), '+PONG\r\n', 'RESP3: PING while subscribed');
  t.equal(await ask(r3, encodeCommand('UNSUBSCRIBE', 'ch3')), pushConfirm('unsubscribe', 'ch3', 0), 'RESP3: UNSUBSCRIBE is confirmed');
  r3.socket.destroy();

  const c = await rawConnection(port);
  t.equal(await ask(c, encodeCommand('BLPOP', 'somekey', '0.1')), '*-1\r\n', 'BLPOP with a timeout answers nil');
  t.equal(
    await ask(c, cmds(['MULTI'], ['SET', 'ps:r', '1'], ['EXEC']), 3),
    '+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n',
    'MULTI, SET, EXEC answer',
  );
  t.equal(
    await ask(c, cmds(['WATCH', 'ps:r'], ['MULTI'], ['INCR', 'ps:r'], ['EXEC']), 4),
    '+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:2\r\n',
    'WATCH, MULTI, INCR, EXEC answer',
  );
  c.socket.destroy();
});

/**
 * CLIENT REPLY inside MULTI, the whole reply stream compared with Redis, sent in one
 * write and sent one command at a time. `literal` is what redis-server 7.0 sends (the
 * test checks that too); CLIENT REPLY ON + PING appended show the session still answers.
 */
const replyInMulti: { name: string; cmds: Cmd[]; literal: string }[] = [
  {
    name: 'MULTI, CLIENT REPLY OFF, EXEC, CLIENT REPLY ON, PING',
    cmds: [['MULTI'], ['CLIENT', 'REPLY', 'OFF'], ['EXEC'], ['CLIENT', 'REPLY', 'ON'], ['PING']],
    literal: '+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n+PONG\r\n',
  },
  {
    name: 'MULTI, SET a 1, CLIENT REPLY OFF, GET a, EXEC, PING, CLIENT REPLY ON, PING',
    cmds: [['MULTI'], ['SET', 'a', '1'], ['CLIENT', 'REPLY', 'OFF'], ['GET', 'a'], ['EXEC'], ['PING'], ['CLIENT', 'REPLY', 'ON'], ['PING']],
    literal: '+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n+OK\r\n+PONG\r\n',
  },
  {
    name: 'MULTI, CLIENT REPLY SKIP, GET a, EXEC, PING, PING',
    cmds: [['MULTI'], ['CLIENT', 'REPLY', 'SKIP'], ['GET', 'a'], ['EXEC'], ['PING'], ['PING']],
    literal: '+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$1\r\n1\r\n+PONG\r\n',
  },
  {
    name: 'MULTI, CLIENT REPLY FOO, EXEC',
    cmds: [['MULTI'], ['CLIENT', 'REPLY', 'FOO'], ['EXEC']],
    literal: '+OK\r\n+QUEUED\r\n*1\r\n-ERR syntax error\r\n',
  },
];
const tail: Cmd[] = [['CLIENT', 'REPLY', 'ON'], ['PING']];
const tailReplies = '+OK\r\n+PONG\r\n';

/** Like pipelineTranscript, but each command is its own write, 20 ms apart. */
async function sequentialTranscript(port: number, list: readonly Cmd[], timeoutMs = 3000): Promise<string> {
  const conn = await rawConnection(port);
  const marker = `end-${Math.random().toString(36).slice(2)}`;
  const markerReply = bulk(marker);
  try {
    for (const cmd of [...list, ['PING', marker] as Cmd]) {
      conn.socket.write(Buffer.isBuffer(cmd) ? cmd : encodeCommand(...cmd));
      await sleep(20);
    }
    const ok = await conn.waitFor((buf) => buf.toString('latin1').includes(markerReply), timeoutMs);
    const got = conn.received().toString('latin1');
    if (!ok) return `${got}${conn.closed ? '«closed»' : '«timeout»'}`;
    return got.slice(0, got.indexOf(markerReply));
  } finally {
    conn.socket.destroy();
  }
}

t.test('CLIENT REPLY inside MULTI: the same reply stream as Redis, and the session keeps working', async (t) => {
  const { port } = await startTestProxy([listenerFor(master, [], { maxDedicatedConnections: 1 })], { t });
  await referenceClient.set('a', '1');
  await direct.set('a', '1');
  for (const c of replyInMulti) {
    const list = [...c.cmds, ...tail];
    const wanted = c.literal + tailReplies;
    for (const [how, transcript] of [
      ['one write', pipelineTranscript],
      ['one write per command', sequentialTranscript],
    ] as const) {
      const expected = await transcript(reference.port, list);
      t.equal(expected, wanted, `Redis (${how}): ${c.name} -> ${show(wanted)}`);
      const got = await transcript(port, list, 1000);
      t.equal(got, expected, `proxy (${how}): ${c.name}, then CLIENT REPLY ON, PING`);
    }
  }
  // The pooled connection those transactions used still answers another session.
  const next = await rawConnection(port);
  t.equal(
    await ask(next, cmds(['MULTI'], ['GET', 'a'], ['EXEC']), 3),
    '+OK\r\n+QUEUED\r\n*1\r\n$1\r\n1\r\n',
    'a later session: MULTI, GET, EXEC answer',
  );
  next.socket.destroy();
});

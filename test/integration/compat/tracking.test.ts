/**
 * CLIENT TRACKING through the proxy: a tracking session runs on its own master
 * connection; REDIRECT names a proxy session and reaches that session's subscribed
 * connection (RESP2 invalidation messages); RESP3 sessions get invalidation pushes on
 * their own connection; BCAST with PREFIX works without reads.
 */
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { rawConnection } from '../../helpers/raw.js';
import { startReplicaSet } from '../../helpers/redis.js';

const set = await startReplicaSet({ replicas: 1 });
const proxy = await startTestProxy([listenerFor(set.master, set.replicas)]);
const { port } = proxy;
t.teardown(async () => {
  await proxy.close();
  await set.stop();
});
const writer = ioredisClient(port);

/** Sends `text` and waits until the received bytes match `until`. */
async function send(conn: Awaited<ReturnType<typeof rawConnection>>, text: string, until: RegExp): Promise<string> {
  conn.socket.write(text);
  const ok = await conn.waitFor((buf) => until.test(buf.toString('latin1')), 3000);
  const received = conn.received().toString('latin1');
  if (!ok) throw new Error(`no ${until} in ${JSON.stringify(received)}`);
  return received;
}

t.test('REDIRECT to another proxy session delivers invalidations to its subscription (RESP2)', async (t) => {
  const sub = await rawConnection(port);
  const tracker = await rawConnection(port);
  t.teardown(() => {
    sub.socket.destroy();
    tracker.socket.destroy();
  });
  const id = /:(\d+)\r\n/.exec(await send(sub, 'CLIENT ID\r\n', /:\d+\r\n/))![1]!;
  await send(sub, 'SUBSCRIBE __redis__:invalidate\r\n', /__redis__:invalidate\r\n:1\r\n/);
  await send(tracker, `CLIENT TRACKING on REDIRECT ${id}\r\n`, /\+OK\r\n/);
  await writer.set('tr:k', '1');
  await send(tracker, 'GET tr:k\r\n', /\$1\r\n1\r\n/);
  await writer.set('tr:k', '2');
  const got = await send(sub, '', /message\r\n\$20\r\n__redis__:invalidate\r\n\*1\r\n\$4\r\ntr:k\r\n/);
  t.match(got, /tr:k/, 'the subscriber got the invalidation of tr:k');
  t.match(await send(tracker, 'CLIENT INFO\r\n', /flags=/), /flags=t/, 'CLIENT INFO shows tracking');
});

t.test('REDIRECT to a session that does not exist gets Redis error text', async (t) => {
  const tracker = await rawConnection(port);
  t.teardown(() => tracker.socket.destroy());
  const got = await send(tracker, 'CLIENT TRACKING on REDIRECT 999999\r\n', /\r\n/);
  t.equal(got, '-ERR The client ID you want redirect to does not exist\r\n');
});

t.test('RESP3: invalidation pushes on the tracking connection itself', async (t) => {
  const conn = await rawConnection(port);
  t.teardown(() => conn.socket.destroy());
  await send(conn, 'HELLO 3\r\n', /proto/);
  await send(conn, 'CLIENT TRACKING on\r\n', /\+OK\r\n$/);
  await writer.set('tr:r3', 'a');
  await send(conn, 'GET tr:r3\r\n', /\$1\r\na\r\n$/);
  await writer.set('tr:r3', 'b');
  const got = await send(conn, '', />2\r\n\$10\r\ninvalidate\r\n\*1\r\n\$5\r\ntr:r3\r\n/);
  t.match(got, /invalidate/, 'push received');
  t.match(await send(conn, 'GET tr:r3\r\n', /\$1\r\nb\r\n$/), /\$1\r\nb\r\n$/, 'replies keep flowing after the push');
});

t.test('RESP3 BCAST PREFIX: invalidations for the prefix without reading', async (t) => {
  const conn = await rawConnection(port);
  t.teardown(() => conn.socket.destroy());
  await send(conn, 'HELLO 3\r\n', /proto/);
  await send(conn, 'CLIENT TRACKING on BCAST PREFIX tb:\r\n', /\+OK\r\n$/);
  await writer.set('tb:x', '1');
  await writer.set('other:y', '1');
  const got = await send(conn, '', /invalidate\r\n\*1\r\n\$4\r\ntb:x\r\n/);
  t.notMatch(got, /other:y/, 'keys outside the prefix are not announced');
  await send(conn, 'CLIENT TRACKING off\r\n', /\+OK\r\n$/);
});

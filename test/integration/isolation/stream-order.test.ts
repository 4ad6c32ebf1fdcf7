/**
 * Replies the proxy answers itself keep their place in request order while the session
 * is in a streaming mode (Pub/Sub, MONITOR).
 *
 * In these modes the session's requests go to its dedicated connection and Redis's
 * answers are streamed back; a reply made by the proxy (a `denyCommands` refusal, a
 * locally answered CLIENT ID) must come after the replies to the requests sent before
 * it and before the replies to those sent after it, exactly where Redis would have put
 * its own reply. All requests are sent in ONE write, so the proxy sees them at once:
 *
 * - `SUBSCRIBE x`, `FLUSHALL` (denied), `PING` -> confirmation, denial, RESP2 subscribed
 *   PING reply `*2 pong ""`;
 * - `MONITOR`, `FLUSHALL` (denied) -> `+OK`, denial;
 * - RESP3: `SUBSCRIBE x`, `CLIENT ID` -> the push confirmation, then `:<id>` where id is
 *   the proxy's session id (what CLIENT ID answered before subscribing), not the id of
 *   the backend connection.
 */
import t from 'tap';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection, splitReplies, type RawConnection } from '../../helpers/raw.js';
import { startRedis } from '../../helpers/redis.js';
import { show } from '../compat/_helpers.js';

const master = await startRedis();
// Rare health checks: no INFO of the proxy's shows up in the MONITOR stream meanwhile.
const { port } = await startTestProxy([listenerFor(master, [], { denyCommands: ['flushall'], healthCheckInterval: 60000 })]);

const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const DENIAL = /^-ERR redis-proxy: command 'flushall' is denied .*denyCommands.*\r\n$/;
const cmds = (...list: string[][]) => Buffer.concat(list.map((c) => encodeCommand(...c)));

/** Writes `bytes` at once and returns the next `n` replies as text (fewer on timeout). */
async function replies(conn: RawConnection, bytes: Buffer, n: number, timeoutMs = 2000): Promise<string[]> {
  const before = splitReplies(conn.received()).length;
  conn.socket.write(bytes);
  await conn.waitFor((b) => splitReplies(b).length >= before + n, timeoutMs);
  return splitReplies(conn.received())
    .slice(before, before + n)
    .map((r) => r.toString('latin1'));
}

t.test('Pub/Sub: SUBSCRIBE x, FLUSHALL (denied), PING in one write -> in that order', async (t) => {
  const c = await rawConnection(port);
  const got = await replies(c, cmds(['SUBSCRIBE', 'x'], ['FLUSHALL'], ['PING']), 3);
  t.equal(got.length, 3, `three replies: ${show(got.join(''), 400)}`);
  t.equal(got[0], `*3\r\n${bulk('subscribe')}${bulk('x')}:1\r\n`, 'first the subscribe confirmation');
  t.match(got[1] ?? '', DENIAL, `then the denial: ${show(got[1] ?? '')}`);
  t.equal(got[2], `*2\r\n${bulk('pong')}${bulk('')}`, 'then the subscribed PING reply');
  c.socket.destroy();
});

t.test('MONITOR: MONITOR, FLUSHALL (denied) in one write -> +OK, then the denial', async (t) => {
  const c = await rawConnection(port);
  const got = await replies(c, cmds(['MONITOR'], ['FLUSHALL']), 2);
  t.equal(got.length, 2, `two replies: ${show(got.join(''), 400)}`);
  t.equal(got[0], '+OK\r\n', 'first MONITOR\'s +OK');
  t.match(got[1] ?? '', DENIAL, `then the denial: ${show(got[1] ?? '')}`);
  c.socket.destroy();
});

t.test('RESP3 Pub/Sub: SUBSCRIBE x, CLIENT ID in one write -> the push, then the session id', async (t) => {
  const c = await rawConnection(port);
  await c.send(encodeCommand('HELLO', '3'));
  const [idReply] = await c.send(encodeCommand('CLIENT', 'ID'));
  const id = idReply!.toString('latin1');
  t.match(id, /^:\d+\r\n$/, `CLIENT ID before subscribing: ${show(id)}`);
  const got = await replies(c, cmds(['SUBSCRIBE', 'x'], ['CLIENT', 'ID']), 2);
  t.equal(got.length, 2, `two replies: ${show(got.join(''), 400)}`);
  t.equal(got[0], `>3\r\n${bulk('subscribe')}${bulk('x')}:1\r\n`, 'first the push confirmation');
  t.equal(got[1], id, `then CLIENT ID, the same proxy session id (${id.trim()})`);
  c.socket.destroy();
});

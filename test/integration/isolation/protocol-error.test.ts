/**
 * After a client protocol error the proxy answers Redis's error and closes the
 * connection at once, as Redis does, whatever the client does next.
 *
 * If the proxy only half-closed (socket.end()) and stopped reading, a client that never
 * closes would keep its session (and its memory and `sessions:` count) forever, a
 * client that keeps writing would block once the buffers fill up, and a graceful
 * shutdown would wait for such clients until its timeout. Checked:
 *
 * - PING then `*1\r\n$x\r\n`: `+PONG`, `-ERR Protocol error: invalid bulk length`, then
 *   the socket is closed by the server within 500 ms though the client never closes
 *   (the same bytes and the same close as a real redis-server);
 * - a client that keeps writing 64 KB every 10 ms gets an error (EPIPE/ECONNRESET) or
 *   a close within 1 s, as with Redis;
 * - `sessions:` of INFO proxy (asked by another client) drops within 300 ms even if the
 *   offending client keeps its socket open and never reads;
 * - the proxy's graceful close() is not held up by such a client (< 1 s).
 */
import net from 'node:net';
import t from 'tap';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../../helpers/raw.js';
import { startRedis } from '../../helpers/redis.js';
import { sleep } from '../../helpers/wait.js';
import { show } from '../compat/_helpers.js';

const reference = await startRedis();
const master = await startRedis();
const { port } = await startTestProxy([listenerFor(master)]);

const GARBAGE = Buffer.from('*1\r\n$x\r\n');
const PING_AND_GARBAGE = Buffer.concat([encodeCommand('PING'), GARBAGE]);
const EXPECTED = '+PONG\r\n-ERR Protocol error: invalid bulk length\r\n';

interface Untracked extends net.Socket {
  /** How the connection ended so far: 'end' (FIN received), 'close', an error code; undefined while open. */
  ended(): string | undefined;
  /** Every byte received. */
  data(): string;
  /** Resolves true once `check()` holds, false after `ms`. */
  until(check: () => boolean, ms: number): Promise<boolean>;
}

/** A plain socket the test helpers do not track (so nothing closes it for us). */
async function untracked(p: number, { allowHalfOpen = false } = {}): Promise<Untracked> {
  const socket = net.connect({ host: '127.0.0.1', port: p, allowHalfOpen });
  let ended: string | undefined;
  let data = '';
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
  socket.on('error', (err: NodeJS.ErrnoException) => (ended = ended === 'end' || ended === undefined ? err.code ?? err.message : ended));
  socket.on('end', () => (ended ??= 'end'));
  socket.on('close', () => (ended = ended === 'end' || ended === undefined ? 'close' : ended));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  t.teardown(() => socket.destroy());
  const until = async (check: () => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() >= deadline) return false;
      await sleep(5);
    }
    return true;
  };
  return Object.assign(socket, { ended: () => ended, data: () => data, until });
}

/** The proxy's `sessions:` count, asked over `conn`. */
async function sessionsOf(conn: Awaited<ReturnType<typeof rawConnection>>): Promise<number> {
  const [reply] = await conn.send(encodeCommand('INFO', 'proxy'));
  const m = /sessions:(\d+)/.exec(reply!.toString('latin1'));
  if (!m) throw new Error(`no sessions: field in ${show(reply!.toString('latin1'))}`);
  return Number(m[1]);
}

for (const [target, p] of [
  ['Redis', reference.port],
  ['proxy', port],
] as const) {
  t.test(`${target}: PING + garbage -> +PONG, the protocol error, and the server closes the connection`, async (t) => {
    // Half-open allowed: the client itself never closes, so only the server can end it.
    const socket = await untracked(p, { allowHalfOpen: true });
    socket.write(PING_AND_GARBAGE);
    t.ok(await socket.until(() => socket.data().length >= EXPECTED.length, 1000), 'two replies');
    t.equal(socket.data(), EXPECTED, `the bytes are ${show(EXPECTED)}`);
    t.ok(await socket.until(() => socket.ended() !== undefined, 500), `the server ends the connection within 500 ms (${socket.ended()})`);
    // Fully closed, not half-closed: a further request is not read, the client gets a reset.
    // (The first write is accepted by the kernel; the reset it provokes fails the next one.)
    socket.write(encodeCommand('PING'));
    await sleep(50);
    if (socket.ended() === 'end') socket.write(encodeCommand('PING'));
    const reset = await socket.until(() => socket.ended() !== 'end' && socket.ended() !== undefined, 450);
    t.ok(reset, `a request written after that fails at once (${socket.ended()}), the server does not hold the connection half-open`);
    t.equal(socket.data(), EXPECTED, 'and nothing more is answered');
    socket.destroy();
  });

  t.test(`${target}: a client that keeps writing after the protocol error is cut off within 1 s`, async (t) => {
    // Half-open allowed: receiving the server's FIN does not end the client's writes.
    const socket = await untracked(p, { allowHalfOpen: true });
    socket.write(PING_AND_GARBAGE);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const started = Date.now();
    const cut = () => socket.ended() !== undefined && socket.ended() !== 'end';
    while (!cut() && Date.now() - started < 1000) {
      socket.write(chunk);
      await sleep(10);
    }
    // Let an error or close that is already on its way arrive.
    await sleep(20);
    const why = socket.ended();
    t.ok(cut(), `an error or a close within 1 s (${why ?? 'none'}; ${socket.writableLength} bytes stuck in the client)`);
    socket.destroy();
  });
}

t.test('proxy: the session is gone from INFO proxy at once, even if the client never reads nor closes', async (t) => {
  const observer = await rawConnection(port);
  await sleep(50);
  const baseline = await sessionsOf(observer);
  const offender = await untracked(port);
  offender.pause(); // never reads
  await sleep(50);
  t.equal(await sessionsOf(observer), baseline + 1, `the offender is counted (sessions:${baseline + 1})`);
  offender.write(PING_AND_GARBAGE);
  const started = Date.now();
  let now = baseline + 1;
  while (Date.now() - started < 300) {
    now = await sessionsOf(observer);
    if (now === baseline) break;
    await sleep(20);
  }
  t.equal(now, baseline, `sessions: back to ${baseline} within 300 ms (took ${Date.now() - started} ms)`);
  offender.destroy();
  observer.socket.destroy();
});

t.test('proxy: graceful shutdown is not held up by a client that sent garbage and stays connected', async (t) => {
  const own = await startTestProxy([listenerFor(master)], { t });
  const silent = await untracked(own.port);
  silent.pause();
  silent.write(PING_AND_GARBAGE);
  const writer = await untracked(own.port);
  writer.write(PING_AND_GARBAGE);
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let writing = true;
  const keepWriting = (async () => {
    while (writing && writer.ended() === undefined) {
      writer.write(chunk);
      await sleep(10);
    }
  })();
  await sleep(100);
  const started = Date.now();
  await own.close();
  const ms = Date.now() - started;
  writing = false;
  await keepWriting;
  t.ok(ms < 1000, `close() took ${ms} ms (< 1000)`);
  silent.destroy();
  writer.destroy();
});

/**
 * Drop-in compatibility: MONITOR through the proxy streams, in Redis's format, the
 * commands the master executes, including those other sessions of the proxy send.
 */
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection } from '../../helpers/raw.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { waitFor } from './_helpers.js';

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const { port } = await startTestProxy([listenerFor(master, set.replicas)]);

const opts = { timeout: 15000 };
/** A MONITOR line: `+<seconds>.<micros> [<db> <addr>] "CMD" "arg" ...`. */
const LINE = /^\+\d+\.\d{6} \[\d+ [^\]]+\] (".*")$/;

t.test('MONITOR (raw) shows the commands other sessions send to the master, in Redis format', opts, async (t) => {
  const mon = await rawConnection(port);
  const [ok] = await mon.send(encodeCommand('MONITOR'));
  t.equal(ok!.toString('latin1'), '+OK\r\n', 'MONITOR answers +OK');
  const other = await rawConnection(port);
  await other.send(
    Buffer.concat([
      encodeCommand('SET', 'mon:k', 'hello world'),
      encodeCommand('INCR', 'mon:n'),
      encodeCommand('SELECT', '3'),
      encodeCommand('HSET', 'mon:h', 'f', 'v'),
    ]),
    4,
  );
  const seen = () =>
    mon
      .received()
      .toString('latin1')
      .split('\r\n')
      .filter((l) => l.startsWith('+') && l !== '+OK');
  const wanted = ['"SET" "mon:k" "hello world"', '"INCR" "mon:n"', '"HSET" "mon:h" "f" "v"'];
  const ok2 = await waitFor('the three commands on the MONITOR stream', () => wanted.every((w) => seen().some((l) => l.endsWith(w))), {
    timeoutMs: 3000,
  }).catch(() => false);
  t.ok(ok2, `every command shown: ${JSON.stringify(seen())}`);
  const lines = seen().filter((l) => wanted.some((w) => l.endsWith(w)));
  t.ok(lines.every((l) => LINE.test(l)), `lines in Redis's MONITOR format: ${JSON.stringify(lines)}`);
  const hset = lines.find((l) => l.endsWith('"HSET" "mon:h" "f" "v"'));
  t.match(hset, /^\+\S+ \[3 /, 'the HSET ran in db 3, as the session selected');
  t.ok(
    lines.findIndex((l) => l.endsWith('"SET" "mon:k" "hello world"')) < lines.findIndex((l) => l.endsWith('"INCR" "mon:n"')),
    'in execution order',
  );
  // A command sent straight to the master shows up too: it is the master's MONITOR.
  await master.client().set('mon:direct', '1');
  const direct = await waitFor('a direct command on the stream', () => seen().some((l) => l.endsWith('"set" "mon:direct" "1"')), {
    timeoutMs: 3000,
  }).catch(() => false);
  t.ok(direct, 'a command another client sent straight to the master');
});

t.test('MONITOR then QUIT: +OK and the connection closes', opts, async (t) => {
  const mon = await rawConnection(port);
  await mon.send(encodeCommand('MONITOR'));
  mon.clear();
  mon.socket.write(encodeCommand('QUIT'));
  const closed = await Promise.race([mon.closedPromise.then(() => true), new Promise((r) => setTimeout(() => r(false), 2000))]);
  t.ok(closed, 'closed');
  t.match(mon.received().toString('latin1'), /\+OK\r\n$/, 'QUIT answered +OK');
});

t.test('ioredis monitor() receives the commands of another client of the proxy', opts, async (t) => {
  const client = ioredisClient(port);
  const monitor = await client.monitor();
  t.teardown(() => monitor.disconnect());
  const got: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[]) => got.push(args));
  const app = ioredisClient(port);
  await app.set('mon:io', 'x');
  await app.lpush('mon:list', 'a', 'b');
  const ok = await waitFor('both commands', () => got.some((a) => a[0]?.toLowerCase() === 'lpush'), { timeoutMs: 3000 }).catch(() => false);
  t.ok(ok, `monitor events: ${JSON.stringify(got)}`);
  t.ok(got.some((a) => a.join(' ').toLowerCase() === 'set mon:io x'), 'SET shown with its arguments');
  t.ok(got.some((a) => a.join(' ').toLowerCase() === 'lpush mon:list a b'), 'LPUSH shown with its arguments');
});

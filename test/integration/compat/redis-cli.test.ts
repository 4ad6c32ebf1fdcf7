/**
 * Drop-in compatibility: redis-cli pointed at the proxy prints what it prints for Redis:
 * commands read from stdin, a command given as arguments, `--pipe` mass insertion and
 * `--scan --pattern`.
 */
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand } from '../../helpers/raw.js';
import { startRedis, startReplicaSet } from '../../helpers/redis.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { redisCli } from './_helpers.js';

const reference = await startRedis();
const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const { port } = await startTestProxy([listenerFor(master, set.replicas)]);
await waitForReplicaReads(set.replicas, () => ioredisClient(port).get('cli:warm'));

t.before(async () => {
  for (const c of [reference.client(), master.client()]) {
    await c.set('cli:pre', 'hello');
    await c.hset('cli:pre-hash', 'f1', 'v1');
    await c.rpush('cli:pre-list', 'a', 'b', 'c');
  }
  await set.sync();
});

t.test('commands on stdin: the same output as against Redis', async (t) => {
  const input = [
    'PING',
    'ECHO "hello world"',
    'GET cli:pre',
    'GET cli:missing',
    'SET cli:a 1',
    'INCR cli:a',
    'INCRBY cli:a 10',
    'HGETALL cli:pre-hash',
    'LRANGE cli:pre-list 0 -1',
    'EXISTS cli:pre cli:missing',
    'TYPE cli:pre-list',
    'NOSUCHCOMMAND x',
    'LPUSH cli:pre x',
    'GET',
    'SELECT 2',
    'DBSIZE',
    'SELECT 0',
    'CLIENT SETNAME cli-session',
    'CLIENT GETNAME',
    'MULTI',
    'INCR cli:a',
    'GET cli:pre',
    'EXEC',
    'QUIT',
    '',
  ].join('\n');
  const expected = await redisCli(['-p', String(reference.port)], input);
  const got = await redisCli(['-p', String(port)], input);
  t.equal(got.stdout, expected.stdout, `stdout:\n${expected.stdout}`);
  t.equal(got.code, expected.code, 'exit code');
});

t.test('a command given as arguments, with -n and --raw / --no-raw', async (t) => {
  for (const args of [
    ['GET', 'cli:pre'],
    ['--no-raw', 'HGETALL', 'cli:pre-hash'],
    ['--raw', 'LRANGE', 'cli:pre-list', '0', '-1'],
    ['--no-raw', 'GET', 'cli:missing'],
    ['-n', '3', 'DBSIZE'],
    ['-n', '99', 'PING'],
    ['--no-raw', 'NOSUCHCOMMAND'],
  ]) {
    const expected = await redisCli(['-p', String(reference.port), ...args]);
    const got = await redisCli(['-p', String(port), ...args]);
    t.equal(got.stdout, expected.stdout, `redis-cli ${args.join(' ')}: ${JSON.stringify(expected.stdout)}`);
    t.equal(got.code, expected.code, `redis-cli ${args.join(' ')}: exit code ${expected.code}`);
  }
});

t.test('redis-cli --pipe: mass insert of 10,000 SETs', async (t) => {
  const n = 10000;
  const payload = Buffer.concat(Array.from({ length: n }, (_, i) => encodeCommand('SET', `cli:pipe:${i}`, `value-${i}`)));
  const res = await redisCli(['-p', String(port), '--pipe'], payload.toString('latin1'), 30000);
  t.equal(res.code, 0, `exit 0 (stderr: ${res.stderr})`);
  t.match(res.stdout, /errors: 0, replies: 10000/, `redis-cli reports: ${JSON.stringify(res.stdout.trim().split('\n').at(-1))}`);
  const m = master.client();
  const count = (await m.eval("return #redis.call('KEYS', 'cli:pipe:*')", 0)) as number;
  t.equal(count, n, 'every key is on the master');
  t.equal(await m.get('cli:pipe:9999'), 'value-9999');
});

t.test('redis-cli --pipe with errors reports them as against Redis', async (t) => {
  const cmds: Buffer[] = [];
  for (let i = 0; i < 500; i++) {
    cmds.push(i % 50 === 7 ? encodeCommand('INCR', 'cli:pre') : encodeCommand('RPUSH', 'cli:pipelist', String(i)));
  }
  const payload = Buffer.concat(cmds).toString('latin1');
  const expected = await redisCli(['-p', String(reference.port), '--pipe'], payload);
  const got = await redisCli(['-p', String(port), '--pipe'], payload);
  const summary = (s: string) => s.split('\n').filter((l) => l.startsWith('errors:') || l.startsWith('ERR'));
  t.same(summary(got.stdout), summary(expected.stdout), `summary and error lines: ${JSON.stringify(summary(expected.stdout))}`);
  t.equal(got.code, expected.code, 'exit code');
  t.equal(await master.client().llen('cli:pipelist'), 490, 'the good commands ran');
});

t.test('redis-cli --scan --pattern', async (t) => {
  const m = master.client();
  const pipe = m.pipeline();
  const wanted: string[] = [];
  for (let i = 0; i < 300; i++) {
    pipe.set(`cli:scan:${i}`, '1');
    wanted.push(`cli:scan:${i}`);
    pipe.set(`cli:other:${i}`, '1');
  }
  await pipe.exec();
  await set.sync();
  const res = await redisCli(['-p', String(port), '--scan', '--pattern', 'cli:scan:*']);
  t.equal(res.code, 0);
  const found = res.stdout.split('\n').filter((l) => l !== '');
  t.equal(found.length, wanted.length, 'as many keys as match');
  t.same([...new Set(found)].sort(), wanted.sort(), 'each matching key once');
});

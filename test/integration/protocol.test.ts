/**
 * The wire protocol as clients use it: inline commands, redis-cli, requests split into
 * single bytes, a 64 MB value, and malformed input (Redis's own error text, only that
 * connection closed).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawCommand, rawConnection } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { waitForReplicaReads } from '../helpers/stats.js';

const run = promisify(execFile);
const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const { port } = await startTestProxy([listenerFor(master, set.replicas)]);
const warm = ioredisClient(port);
await waitForReplicaReads(set.replicas, () => warm.get('warmup'));

t.test('inline commands', async (t) => {
  t.equal((await rawCommand(port, 'PING\r\n')).text, '+PONG\r\n', 'inline PING');
  const conn = await rawConnection(port);
  const [setReply] = await conn.send('SET inline:a b\r\n');
  t.equal(setReply!.toString(), '+OK\r\n', 'inline SET');
  await set.sync();
  const [getReply] = await conn.send('GET inline:a\r\n');
  t.equal(getReply!.toString(), '$1\r\nb\r\n', 'inline GET');
  const [quoted] = await conn.send('ECHO "hello world"\r\n');
  t.equal(quoted!.toString(), '$11\r\nhello world\r\n', 'quoted inline argument');
  const [two, three] = await conn.send('PING\r\nEXISTS inline:a inline:zz\r\n', 2);
  t.equal(two!.toString(), '+PONG\r\n');
  t.equal(three!.toString(), ':1\r\n', 'two inline commands in one packet');
});

t.test('redis-cli through the proxy', async (t) => {
  const cli = async (...args: string[]) =>
    (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 })).stdout;
  t.equal(await cli('ping'), 'PONG\n');
  t.equal(await cli('set', 'cli:x', 'y'), 'OK\n');
  await set.sync();
  t.equal(await cli('get', 'cli:x'), 'y\n');
  t.equal(await cli('incrby', 'cli:n', '5'), '5\n');
});

t.test('a request written one byte at a time gets the right reply', async (t) => {
  const request = encodeCommand('SET', 'split:key', 'split-value');
  const reply = await rawCommand(port, request, { byteDelayMs: [1, 5], timeoutMs: 5000 });
  t.equal(reply.text, '+OK\r\n', 'RESP SET split into single bytes');
  await set.sync();
  const get = await rawCommand(port, encodeCommand('GET', 'split:key'), { byteDelayMs: [1, 5], timeoutMs: 5000 });
  t.equal(get.text, '$11\r\nsplit-value\r\n', 'RESP GET split into single bytes');
  const inline = await rawCommand(port, 'GET split:key\r\n', { byteDelayMs: [1, 5], timeoutMs: 5000 });
  t.equal(inline.text, '$11\r\nsplit-value\r\n', 'inline GET split into single bytes');
});

t.test('a 64 MB value round-trips intact (SET on the master, GET from the replica)', async (t) => {
  const client = ioredisClient(port);
  const value = Buffer.alloc(64 * 1024 * 1024);
  for (let i = 0; i < value.length; i += 4096) value.writeUInt32LE((i ^ 0x9e3779b9) >>> 0, i); // not all zeros
  value.write('\r\n$5\r\nfake\r\n', 1000, 'latin1'); // framing-like bytes inside the value
  const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');
  t.equal(await client.set('big:value', value), 'OK');
  await set.sync(20_000);
  const back = await client.getBuffer('big:value');
  t.ok(back, 'got a value back');
  t.equal(back!.length, value.length, 'same length');
  t.equal(sha1(back!), sha1(value), 'same bytes');
  t.equal(await client.strlen('big:value'), value.length);
  t.equal(await client.get('warmup'), null, 'the connection still works after the big reply');
  await client.del('big:value');
});

/** Sends `bytes` to `targetPort` on a fresh connection and reads until it is closed. */
const untilClosed = (targetPort: number, bytes: string) =>
  rawCommand(targetPort, bytes, { untilClosed: true, timeoutMs: 3000 });

for (const [what, bytes] of [
  ['a non-bulk argument (*1 :1)', '*1\r\n:1\r\n'],
  ['a malformed multibulk length (*abc)', '*abc\r\n'],
  ['a malformed bulk length', '*1\r\n$x\r\n'],
  ['unbalanced quotes in an inline command', 'SET "a b\r\n'],
] as const) {
  t.test(`protocol error, ${what}: Redis's error text, only that connection closed`, async (t) => {
    const direct = await untilClosed(master.port, bytes);
    t.match(direct.text, /^-ERR Protocol error/, `redis-server itself says ${JSON.stringify(direct.text)}`);
    t.ok(direct.closed, 'redis-server closes the connection');

    const bystander = await rawConnection(port);
    t.equal((await bystander.send('PING\r\n'))[0]!.toString(), '+PONG\r\n', 'another client works before');

    const viaProxy = await untilClosed(port, bytes);
    t.equal(viaProxy.text, direct.text, 'the proxy sends the same error text as Redis');
    t.ok(viaProxy.closed, 'the proxy closes that connection');
    t.notOk(viaProxy.timedOut, 'and does so promptly');

    t.equal((await bystander.send('PING\r\n'))[0]!.toString(), '+PONG\r\n', 'the other client still works');
    t.notOk(bystander.closed);
    t.equal((await rawCommand(port, 'PING\r\n')).text, '+PONG\r\n', 'new connections are accepted');
  });
}

t.test('requests before a protocol error in the same packet are answered first', async (t) => {
  const bytes = encodeCommand('SET', 'perr:k', 'v').toString('latin1') + 'PING\r\n*1\r\n:1\r\n';
  const direct = await untilClosed(master.port, bytes);
  const viaProxy = await untilClosed(port, bytes);
  t.equal(direct.text, "+OK\r\n+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n", 'what Redis does');
  t.equal(viaProxy.text, direct.text, 'the proxy does the same');
  t.ok(viaProxy.closed);
});

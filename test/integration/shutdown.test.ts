/**
 * Graceful shutdown of the real CLI (`bin/redis-proxy`, which runs `dist/`: needs
 * `npm run build`): on SIGTERM the proxy stops accepting connections, delivers the
 * replies still in flight, and exits 0.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { listenerFor, repoRoot, spawnProxyCli } from '../helpers/proxy.js';
import { encodeCommand, rawCommand, rawConnection } from '../helpers/raw.js';
import { startRedis } from '../helpers/redis.js';
import { sleep, timed, waitFor } from '../helpers/wait.js';

const cliJs = path.join(repoRoot, 'dist/cli.js');
if (!existsSync(cliJs)) {
  throw new Error(`${cliJs} is missing: run \`npm run build\` before the integration tests`);
}
const newestSource = (dir: string): number =>
  Math.max(
    ...readdirSync(dir, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? newestSource(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs,
    ),
  );
if (newestSource(path.join(repoRoot, 'src')) > statSync(cliJs).mtimeMs) {
  t.comment('warning: src/ is newer than dist/cli.js; this test runs the built CLI (npm run build)');
}

const master = await startRedis();

/** The ioredis-free way to tell "refused" from "accepted": a fresh raw connection. */
async function refusesConnections(port: number): Promise<boolean> {
  const result = await rawCommand(port, 'PING\r\n', { timeoutMs: 500 });
  return result.error !== undefined || (result.closed && result.text === '');
}

t.test('SIGTERM with a slow command in flight: reply delivered, new connections refused, exit 0', async (t) => {
  const cli = await spawnProxyCli({ shutdownTimeout: 5000, listeners: [listenerFor(master)] }, { t });
  const [port] = cli.ports as [number];
  const client = await rawConnection(port);
  t.equal((await client.send('PING\r\n'))[0]!.toString(), '+PONG\r\n');

  const slowReply = client.send(encodeCommand('DEBUG', 'SLEEP', '0.8'), 1, 5000);
  await sleep(150); // the DEBUG SLEEP is running on the master
  cli.kill('SIGTERM');
  await waitFor('the proxy to stop accepting connections', () => refusesConnections(port), {
    timeoutMs: 600,
  });
  t.pass('new connections are refused while the slow command is still running');

  const [reply] = await slowReply;
  t.equal(reply!.toString(), '+OK\r\n', 'the in-flight command\'s reply arrived');
  const { ms, value: code } = await timed(cli.exit);
  t.equal(code, 0, `exit code 0\n${code === 0 ? '' : cli.output()}`);
  t.ok(ms < 3000, `exited ${Math.round(ms)} ms after the reply${ms < 3000 ? '' : `\n--- proxy output ---\n${cli.output()}`}`);
});

t.test('SIGTERM with a BLPOP in flight: its nil reply arrives, then exit 0', async (t) => {
  const cli = await spawnProxyCli({ shutdownTimeout: 5000, listeners: [listenerFor(master)] }, { t });
  const [port] = cli.ports as [number];
  const client = await rawConnection(port);
  const blpop = client.send(encodeCommand('BLPOP', 'sd:empty', '1'), 1, 5000);
  await waitFor('BLPOP to block on the master', async () =>
    Number((await master.info('clients')).blocked_clients) >= 1,
  );
  const sentAt = Date.now();
  cli.kill('SIGTERM');
  await waitFor('the proxy to stop accepting connections', () => refusesConnections(port), {
    timeoutMs: 600,
  });
  const [reply] = await blpop;
  t.equal(reply!.toString(), '*-1\r\n', 'BLPOP timed out normally with a nil reply');
  t.ok(Date.now() - sentAt >= 700, 'it was not cut short');
  t.equal(await cli.exit, 0, 'exit code 0');
});

t.test('SIGTERM with nothing in flight exits 0 promptly and closes idle clients', async (t) => {
  const cli = await spawnProxyCli([listenerFor(master)], { t });
  const [port] = cli.ports as [number];
  const idle = await rawConnection(port);
  await idle.send('PING\r\n');
  cli.kill('SIGTERM');
  const { ms, value: code } = await timed(cli.exit);
  t.equal(code, 0, 'exit code 0');
  t.ok(ms < 2000, `exited in ${Math.round(ms)} ms`);
  await idle.closedPromise;
  t.pass('the idle client\'s connection was closed');
});

t.test('an idle subscribed client does not hold up shutdown', async (t) => {
  // A subscriber waits for messages indefinitely: it has no reply in flight, so SIGTERM
  // should not wait the whole shutdownTimeout for it.
  const cli = await spawnProxyCli({ shutdownTimeout: 5000, listeners: [listenerFor(master)] }, { t });
  const [port] = cli.ports as [number];
  const subscriber = await rawConnection(port);
  const [subscribed] = await subscriber.send(encodeCommand('SUBSCRIBE', 'sd:news'));
  t.match(subscribed!.toString(), /subscribe/, 'subscribed');
  cli.kill('SIGTERM');
  const { ms, value: code } = await timed(cli.exit);
  t.equal(code, 0, 'exit code 0');
  t.ok(ms < 2500, `exited in ${Math.round(ms)} ms (shutdownTimeout is 5000)`);
  await subscriber.closedPromise;
  t.pass('the subscriber\'s connection was closed');
});

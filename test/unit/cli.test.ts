/**
 * The command line, run as users run it: `node bin/redis-proxy ...`, which loads
 * dist/cli.js, so it needs `npm run build` first (npm ci runs it through `prepare`).
 * Also the argument parser and the logger's redaction, in-process.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describeStartError, parseArgs, UsageError } from '../../src/cli.js';
import { createLogger } from '../../src/log.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'bin/redis-proxy');
const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A port nothing listens on (the OS picked it a moment ago). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Runs the CLI asynchronously; `onStdout` sees the stdout so far after each chunk.
 * Killed with SIGKILL after 20 s.
 */
function run(
  args: string[],
  onStdout?: (child: ReturnType<typeof spawn>, stdout: string) => void,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      onStdout?.(child, stdout);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

t.test('bin/redis-proxy', async (t) => {
  if (!existsSync(path.join(root, 'dist/cli.js'))) {
    t.fail('dist/cli.js is missing: run `npm run build` before the tests');
    return;
  }

  t.test('--help', async (t) => {
    const r = cli('--help');
    t.equal(r.status, 0);
    t.match(r.stdout, /^Usage:\n {2}redis-proxy \[--log-level LEVEL\] CONFIG/);
    t.match(r.stdout, '--check CONFIG');
    t.match(r.stdout, '--demo');
    t.equal(r.stderr, '');
    t.equal(cli('-h').stdout, r.stdout);
  });

  t.test('--version', async (t) => {
    const r = cli('--version');
    t.equal(r.status, 0);
    t.equal(r.stdout, `${version}\n`);
  });

  t.test('--check with a valid config', async (t) => {
    const r = cli('--check', 'config/example.json');
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, 'config OK: 2 listeners (ports 6380, 6381)\n');
    t.equal(r.stderr, '');
    const o = cli('--check', 'config/example-object.json');
    t.equal(o.status, 0, o.stderr);
    t.equal(o.stdout, 'config OK: 2 listeners (ports 6380, 6381)\n');
    const dir = t.testdir({ 'one.json': '[{"listen": 7380, "master": {"host": "127.0.0.1", "port": 7000}}]' });
    t.equal(cli('--check', path.join(dir, 'one.json')).stdout, 'config OK: 1 listener (port 7380)\n');
  });

  t.test('--check with an invalid config', async (t) => {
    const dir = t.testdir({
      'bad.json': JSON.stringify([
        { listen: 6380, master: { host: 'h', port: 'abc' }, readPolicy: 'slaves' },
        { listen: 6380, master: { host: 'h', port: 1 } },
      ]),
      'broken.json': '[{"listen": 6380,}]',
    });
    const file = path.join(dir, 'bad.json');
    const r = cli('--check', file);
    t.equal(r.status, 2);
    t.equal(r.stdout, '');
    t.equal(
      r.stderr,
      `${file}: [0].master.port: must be an integer 1-65535, got "abc"\n` +
        `${file}: [0].readPolicy: must be one of replica, prefer-replica, master, any, got "slaves"\n`,
    );

    const broken = path.join(dir, 'broken.json');
    const b = cli('--check', broken);
    t.equal(b.status, 2);
    t.match(b.stderr, `${broken}: invalid JSON at line 1, column 18 (position 17): `);

    const missing = cli('--check', path.join(dir, 'nope.json'));
    t.equal(missing.status, 2);
    t.equal(missing.stderr, `${path.join(dir, 'nope.json')}: cannot read the file: no such file (ENOENT)\n`);
  });

  t.test('an invalid config at start exits 2 before anything starts', async (t) => {
    const dir = t.testdir({ 'dup.json': JSON.stringify([{ listen: 6380, master: { host: 'h', port: 1 } }, { listen: 6380, master: { host: 'h', port: 2 } }]) });
    const r = cli(path.join(dir, 'dup.json'));
    t.equal(r.status, 2);
    t.equal(r.stdout, '');
    t.match(r.stderr, '[1].listen: port 6380 is already used by [0].listen');
  });

  t.test('unknown flag', async (t) => {
    const r = cli('--frobnicate', 'config/example.json');
    t.equal(r.status, 2);
    t.equal(r.stdout, '');
    t.match(r.stderr, /^redis-proxy: unknown option "--frobnicate"\n\nUsage:\n/);
  });

  t.test('a port in use: error naming the port, exit 1', async (t) => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    t.teardown(() => holder.close());
    const port = (holder.address() as net.AddressInfo).port;
    const dir = t.testdir({
      'c.json': JSON.stringify([{ listen: port, master: { host: '127.0.0.1', port: await freePort() } }]),
    });
    const r = await run([path.join(dir, 'c.json')]);
    t.equal(r.status, 1);
    t.match(r.stderr, `redis-proxy: cannot start the proxy: cannot listen on 127.0.0.1:${port}: the port is already in use\n`);
    t.match(r.stdout, /"level":"fatal".*cannot listen on 127\.0\.0\.1:\d+/);
  });

  t.test('SIGTERM closes the proxy and exits 0', async (t) => {
    const dir = t.testdir({
      'c.json': JSON.stringify({
        shutdownTimeout: 500,
        listeners: [{ listen: await freePort(), master: { host: '127.0.0.1', port: await freePort() } }],
      }),
    });
    let sent = false;
    const r = await run([path.join(dir, 'c.json')], (child, stdout) => {
      if (!sent && /running: listener-\d+ on port \d+/.test(stdout)) {
        sent = true;
        child.kill('SIGTERM');
      }
    });
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /"signal":"SIGTERM".*"msg":"shutting down"/);
    t.match(r.stdout, /"msg":"stopped"/);
  });

  t.test('bad usage', async (t) => {
    t.match(cli().stderr, /^redis-proxy: missing CONFIG file\n\nUsage:/);
    t.equal(cli().status, 2);
    t.match(cli('--check').stderr, /^redis-proxy: --check needs a CONFIG file/);
    t.match(cli('--log-level', 'loud', 'x.json').stderr, /^redis-proxy: --log-level must be one of fatal, error/);
    t.equal(cli('a.json', 'b.json').status, 2);
  });
});

t.test('parseArgs', async (t) => {
  t.same(parseArgs(['c.json']), { kind: 'run', configPath: 'c.json' });
  t.same(parseArgs(['--log-level', 'debug', 'c.json']), { kind: 'run', configPath: 'c.json', logLevel: 'debug' });
  t.same(parseArgs(['c.json', '--log-level=warn']), { kind: 'run', configPath: 'c.json', logLevel: 'warn' });
  t.same(parseArgs(['--check', 'c.json']), { kind: 'check', configPath: 'c.json' });
  t.same(parseArgs(['--check=c.json']), { kind: 'check', configPath: 'c.json' });
  t.same(parseArgs(['--demo']), { kind: 'demo' });
  t.same(parseArgs(['--demo', '--log-level', 'info']), { kind: 'demo', logLevel: 'info' });
  t.same(parseArgs(['c.json', '--help']), { kind: 'help' }, '--help wins');
  t.throws(() => parseArgs(['--bogus', '--help']), new UsageError('unknown option "--bogus"'));
  t.same(parseArgs(['c.json', '--version']), { kind: 'version' });
  t.same(parseArgs(['--', '--odd-name.json']), { kind: 'run', configPath: '--odd-name.json' });
  t.throws(() => parseArgs(['--demo', 'c.json']), new UsageError('--demo takes no CONFIG'));
  t.throws(() => parseArgs(['--demo', '--check']), new UsageError('--demo and --check do not go together'));
  t.throws(() => parseArgs(['--log-level']), new UsageError('option --log-level needs a value'));
  t.throws(() => parseArgs(['--help=yes']), new UsageError('option --help takes no value'));
});

t.test('describeStartError names the address of a listen failure', async (t) => {
  const err = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:6380'), {
    code: 'EADDRINUSE',
    address: '127.0.0.1',
    port: 6380,
  });
  t.equal(describeStartError(err), 'cannot listen on 127.0.0.1:6380: the port is already in use');
  t.equal(describeStartError(new Error('boom')), 'boom');
});

t.test('the logger never writes passwords', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger('info', sink);
  logger.info({ password: 'p1', node: { host: 'h', password: 'p2' } }, 'a');
  logger.info({ listener: { master: { password: 'p3' }, replicas: [{ password: 'p4' }], users: [{ username: 'u', password: 'p5' }] } }, 'b');
  logger.info({ config: { listeners: [{ password: 'p6', backendPassword: 'p7', master: { password: 'p8' }, replicas: [{ password: 'p9' }] }] } }, 'c');
  logger.child({ backendPassword: 'p10' }).info('d');
  logger.debug({ password: 'p11' }, 'not written at info');
  await new Promise((resolve) => setImmediate(resolve));
  const out = lines.join('');
  t.equal(lines.length, 4);
  t.notMatch(out, /p\d+"/, 'no password value in the output');
  t.match(out, '"password":"[redacted]"');
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.equal(first.level, 'info');
  t.equal(first.msg, 'a');
  t.match(first.time, /^\d{4}-\d\d-\d\dT/);
});

/**
 * `workers: 2`: the built CLI runs a primary and two worker processes, and a client
 * cannot tell it from one proxy. Connections are placed on a worker by asking INFO proxy
 * (`worker:N`) and opening another until one lands where the test wants it. Checked across
 * the two workers: CLIENT ID unique, CLIENT LIST and CLIENT KILL, CLIENT UNBLOCK, CLIENT
 * TRACKING REDIRECT, INFO proxy's session count, causal reads (a write acknowledged on one
 * worker is read on the other, against a replica whose replication is 300 ms late), a node
 * going down, SIGHUP, a crashed worker restarted with only its clients disconnected, and a
 * SIGTERM that drains both.
 */
import type { Redis } from 'ioredis';
import t from 'tap';
import { freePort, ioredisClient } from '../helpers/clients.js';
import { listenerFor, proxyInfo, spawnProxyCli, type ProxyProcess } from '../helpers/proxy.js';
import { encodeCommand, rawConnection, type RawConnection } from '../helpers/raw.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { callsDuring, waitForReplicaReads } from '../helpers/stats.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { caughtUp, startSlowReplicaSet } from './causal/_support.js';

const DELAY = 300;
const ROUNDS = 12;
const set = await startSlowReplicaSet({ delayMs: DELAY });
const { master, slow } = set;

/** A client connected to worker `worker` of the proxy on `port` (others are opened and closed until one lands there). */
async function clientOn(port: number, worker: number): Promise<Redis & { errors: Error[] }> {
  for (let i = 0; i < 40; i++) {
    const c = ioredisClient(port, { protocol: 2 });
    const info = String(await c.info('proxy'));
    if (info.includes(`\r\nworker:${worker}\r\n`)) return c;
    c.disconnect();
  }
  throw new Error(`no connection landed on worker ${worker}`);
}

/** A raw connection on worker `worker`. */
async function rawOn(port: number, worker: number): Promise<RawConnection> {
  for (let i = 0; i < 40; i++) {
    const r = await rawConnection(port);
    const [info] = await r.send(encodeCommand('INFO', 'proxy'));
    if (info!.toString().includes(`\r\nworker:${worker}\r\n`)) {
      r.clear();
      return r;
    }
    r.socket.destroy();
  }
  throw new Error(`no connection landed on worker ${worker}`);
}

/** The CLI with `workers: 2`, once both workers serve. */
async function spawnProxyWorkers(raw: Record<string, unknown>): Promise<ProxyProcess> {
  const cli = await spawnProxyCli({ workers: 2, logLevel: 'info', ...raw });
  await waitFor('both workers to serve', () => /running with 2 workers/.test(cli.output()));
  return cli;
}

async function spawnWorkers(settings: Record<string, unknown> = {}): Promise<ProxyProcess> {
  return spawnProxyWorkers({ listeners: [listenerFor(master, [slow], settings)] });
}

/**
 * `SET key value` on `a`; the moment its +OK arrives, in the same callback, `GET key` on
 * `b`: the read reaches the other worker as early as a client can send it. Returns the GET's reply.
 */
async function writeThenRead(a: RawConnection, b: RawConnection, key: string, value: string): Promise<string> {
  a.clear();
  b.clear();
  const onA = (): void => {
    if (!a.received().includes('\r\n')) return;
    a.socket.off('data', onA);
    b.socket.write(encodeCommand('GET', key));
  };
  a.socket.on('data', onA);
  a.socket.write(encodeCommand('SET', key, value));
  await b.waitFor((buf) => /^\$-1\r\n|^\$\d+\r\n.*\r\n/s.test(buf.toString()), 5000);
  const reply = b.received().toString();
  return reply.startsWith('$-1') ? '(nil)' : reply.split('\r\n')[1]!;
}

t.test('one proxy across two workers: ids, CLIENT LIST/KILL/UNBLOCK, TRACKING REDIRECT, INFO, logs', async (t) => {
  const cli = await spawnWorkers({ healthCheckInterval: 200 });
  const [port] = cli.ports as [number];
  const a = await clientOn(port, 1);
  const b = await clientOn(port, 2);
  const idA = Number(await a.client('ID'));
  const idB = Number(await b.client('ID'));
  t.not(idA, idB, `CLIENT ID differs across workers (${idA}, ${idB})`);
  const ids = await Promise.all(Array.from({ length: 6 }, async () => Number(await ioredisClient(port).client('ID'))));
  t.equal(new Set([...ids, idA, idB]).size, 8, `8 connections, 8 distinct ids: ${[...ids, idA, idB].join(' ')}`);

  await t.test('INFO proxy counts the sessions of both workers', async (t) => {
    const info = await waitFor('INFO proxy to count every session', async () => {
      const i = await proxyInfo(port);
      return Number(i.sessions) >= 8 && Number(i.worker_sessions) < Number(i.sessions) ? i : undefined;
    });
    t.equal(info.workers, '2');
    t.ok(Number(info.worker_sessions) < Number(info.sessions), `this worker ${info.worker_sessions}, all ${info.sessions}`);
  });

  await t.test('CLIENT LIST on one worker lists the other worker\'s clients, in id order', async (t) => {
    await b.client('SETNAME', 'on-worker-2');
    const list = String(await a.client('LIST'));
    const listed = [...list.matchAll(/^id=(\d+) /gm)].map((m) => Number(m[1]));
    t.ok(listed.includes(idB), 'worker 2\'s client is listed by worker 1');
    t.ok(listed.includes(idA), 'and worker 1\'s own');
    t.same(listed, [...listed].sort((x, y) => x - y), 'sorted by id');
    t.match(list, new RegExp(`id=${idB} .*name=on-worker-2 `), 'with its name');
    t.match(String(await a.client('LIST', 'ID', String(idB))), new RegExp(`^id=${idB} `), 'CLIENT LIST ID <other worker\'s id>');
  });

  await t.test('CLIENT UNBLOCK on one worker unblocks a BLPOP on the other', async (t) => {
    const blocked = await clientOn(port, 2);
    const blockedId = Number(await blocked.client('ID'));
    const pop = blocked.blpop('workers:nothing', 10);
    await sleep(200);
    t.equal(Number(await a.client('UNBLOCK', String(blockedId))), 1, 'CLIENT UNBLOCK answers 1');
    t.equal(await pop, null, 'the BLPOP returned nil at once');
    t.equal(Number(await a.client('UNBLOCK', String(blockedId))), 0, 'not blocked any more: 0');
    t.equal(Number(await a.client('UNBLOCK', '999999999')), 0, 'no such client: 0');
  });

  await t.test('CLIENT TRACKING REDIRECT to a session of the other worker', async (t) => {
    const target = await clientOn(port, 2);
    const targetId = Number(await target.client('ID'));
    const messages: string[] = [];
    target.on('message', (channel: string, message: string) => messages.push(`${channel} ${message}`));
    await target.subscribe('__redis__:invalidate');
    const tracker = await clientOn(port, 1);
    t.equal(await tracker.client('TRACKING', 'ON', 'REDIRECT', String(targetId)), 'OK');
    t.equal(Number(await tracker.client('GETREDIR')), targetId, 'CLIENT GETREDIR names the target');
    await tracker.set('workers:tracked', 'one');
    await tracker.get('workers:tracked');
    await ioredisClient(port).set('workers:tracked', 'two');
    await waitFor('the invalidation to reach the target', () => messages.some((m) => m.includes('workers:tracked')));
    t.pass(`invalidation delivered on worker 2: ${messages.join(', ')}`);
    const err = await tracker.client('TRACKING', 'ON', 'REDIRECT', '999999999').catch((e: Error) => e.message);
    t.match(String(err), /ERR The client ID you want redirect to does not exist/, 'a missing target is Redis\'s error');
  });

  await t.test('CLIENT KILL on one worker closes a client of the other', async (t) => {
    const victim = await clientOn(port, 2);
    const victimId = Number(await victim.client('ID'));
    const closed = new Promise<void>((resolve) => victim.once('close', () => resolve()));
    t.equal(Number(await a.client('KILL', 'ID', String(victimId))), 1, 'CLIENT KILL ID answers 1');
    await closed;
    t.pass('the victim\'s connection was closed');
    t.equal(Number(await a.client('KILL', 'ID', String(victimId))), 0, 'gone: 0');
    const err = await a.client('KILL', '127.0.0.1:1').catch((e: Error) => e.message);
    t.match(String(err), /ERR No such client/, 'the old form with no such address');
  });

  t.match(cli.output(), /"worker":1,/, 'log lines name worker 1');
  t.match(cli.output(), /"worker":2,/, 'and worker 2');
  t.match(cli.output(), /"worker":0,.*running with 2 workers/, 'and the primary');
});

t.test('the admin server (in the primary) adds up every worker\'s metrics; /readyz asks every worker', async (t) => {
  const adminPort = await freePort();
  const cli = await spawnProxyWorkers({ admin: { listen: adminPort }, listeners: [listenerFor(master, [slow], { readPolicy: 'master' })] });
  const [port] = cli.ports as [number];
  const a = await clientOn(port, 1);
  const b = await clientOn(port, 2);
  const pings = (text: string): number => Number(/^redis_proxy_commands_total\{[^}]*command="ping",served_by="proxy"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const before = pings(await scrape());
  for (let i = 0; i < 3; i++) await a.ping();
  for (let i = 0; i < 4; i++) await b.ping();
  const text = await scrape();
  t.equal(pings(text) - before, 7, '3 PINGs on worker 1 and 4 on worker 2 count 7');
  t.match(text, /^redis_proxy_node_up\{[^}]*role="master"\} 1$/m, 'the master is up (every worker agrees)');
  t.match(text, /^redis_proxy_config_generation 1$/m, 'the config generation is not multiplied by the workers');
  const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  t.equal(ready.status, 200, '/readyz 200');
  t.match(await ready.json(), { ready: true, listeners: [{ ready: true }] });
});

t.test('causal reads: a write acknowledged on one worker is read on the other', async (t) => {
  // Each round waits until the replica has every earlier write (so nothing but this
  // round's write can send the read to the master), then writes on worker 1 and reads
  // on worker 2 in the same callback as the write's acknowledgement.
  const rounds = async (port: number, key: string, n: number): Promise<string[]> => {
    const a = await rawOn(port, 1);
    const b = await rawOn(port, 2);
    const stale: string[] = [];
    for (let i = 0; i < n; i++) {
      await caughtUp(master, slow);
      await sleep(150); // and the proxy's polls have seen it
      const got = await writeThenRead(a, b, key, `v${i}`);
      if (got !== `v${i}`) stale.push(`${i}:${got}`);
    }
    return stale;
  };

  await t.test('global (default): never stale; other keys still read from the replica', async (t) => {
    const cli = await spawnWorkers();
    const [port] = cli.ports as [number];
    const b = await clientOn(port, 2);
    await waitForReplicaReads([slow], () => b.get('workers:warm'));
    const stale = await rounds(port, 'workers:causal', ROUNDS);
    t.same(stale, [], `${ROUNDS} writes on worker 1, each read at once on worker 2: none stale`);
    await caughtUp(master, slow);
    await sleep(150);
    const [, onReplica] = await callsDuring([master, slow], 'get', async () => {
      for (let i = 0; i < 20; i++) await b.get('workers:untouched');
    });
    t.ok(onReplica! >= 15, `reads of a key nobody wrote still go to the replica (${onReplica} of 20)`);
  });

  // A regression check of the two together: worker 2's entries carry the writes they are
  // known to include (src/cache/near-cache.ts), and worker 1's writes reach worker 2's
  // causal table before they are acknowledged. (Fills that ran on the master are also
  // invalidated by the master itself at once, so this alone would not catch a missing hold:
  // the test above does.)
  await t.test('with nearCache: a value cached on worker 2 is not served after a write acknowledged on worker 1', async (t) => {
    const cli = await spawnWorkers({ nearCache: true });
    const [port] = cli.ports as [number];
    const a = await rawOn(port, 1);
    const b = await rawOn(port, 2);
    const stale: string[] = [];
    for (let i = 0; i < 8; i++) {
      await caughtUp(master, slow);
      await sleep(150);
      // Worker 2 caches the value (the second GET is answered from its memory)...
      await b.send(encodeCommand('GET', 'workers:cached'));
      await b.send(encodeCommand('GET', 'workers:cached'));
      // ...then a write on worker 1, read on worker 2 the moment it is acknowledged.
      const got = await writeThenRead(a, b, 'workers:cached', `c${i}`);
      if (got !== `c${i}`) stale.push(`${i}:${got}`);
    }
    t.same(stale, [], 'never the cached value once the write was acknowledged on the other worker');
    const info = String((await b.send(encodeCommand('INFO', 'proxy')))[0]);
    t.match(info, /near_cache_hits:[1-9]/, 'worker 2 did answer from its cache');
  });

  await t.test('control, causalReads "session": the same reads are stale (the test can fail)', async (t) => {
    const cli = await spawnWorkers({ causalReads: 'session' });
    const [port] = cli.ports as [number];
    await waitForReplicaReads([slow], async () => (await clientOn(port, 2)).get('workers:warm'));
    const stale = await rounds(port, 'workers:control', 5);
    t.ok(stale.length >= 4, `${stale.length} of 5 cross-worker reads were stale without global causal reads`);
  });
});

t.test('a node down is down for both workers; SIGHUP reloads both', async (t) => {
  const extra: RedisServer = await startRedis({ replicaOf: master.port });
  const cli = await spawnProxyWorkers({ listeners: [listenerFor(master, [slow, extra], { healthCheckInterval: 500 })] });
  const [port] = cli.ports as [number];
  const a = await clientOn(port, 1);
  const b = await clientOn(port, 2);
  const stateOf = async (c: Redis): Promise<string> => {
    const info = String(await c.info('proxy'));
    return /node2:role=replica,addr=[^,]+,state=(\w+)/.exec(info)?.[1] ?? '?';
  };
  await waitFor('both workers to see the extra replica up', async () => (await stateOf(a)) === 'up' && (await stateOf(b)) === 'up');
  await extra.stop();
  const started = Date.now();
  await waitFor('worker 1 to see it down', async () => (await stateOf(a)) === 'down', { timeoutMs: 3000 });
  await waitFor('worker 2 to see it down', async () => (await stateOf(b)) === 'down', { timeoutMs: 3000 });
  const ms = Date.now() - started;
  t.ok(ms < 1000, `both workers saw the replica down within one check interval (${ms} ms)`);

  const { writeFileSync, readFileSync } = await import('node:fs');
  const config = JSON.parse(readFileSync(cli.configPath, 'utf8')) as { listeners: Array<Record<string, unknown>> };
  config.listeners[0]!.readPolicy = 'master';
  writeFileSync(cli.configPath, JSON.stringify(config));
  cli.kill('SIGHUP');
  for (const c of [a, b]) {
    await waitFor('the reload in each worker', async () => (await proxyInfo(port)).config_generation === '2' && /read_policy:master/.test(String(await c.info('proxy'))));
  }
  t.pass('worker 1 and worker 2 both run the reloaded config');
});

t.test('a crashed worker is restarted; only its clients are disconnected', async (t) => {
  const cli = await spawnWorkers();
  const [port] = cli.ports as [number];
  const a = await clientOn(port, 1);
  const b = await clientOn(port, 2);
  const pidB = Number(/worker_pid:(\d+)/.exec(String(await b.info('proxy')))?.[1]);
  const bClosed = new Promise<void>((resolve) => b.once('close', () => resolve()));
  process.kill(pidB, 'SIGKILL');
  await bClosed;
  t.pass('the killed worker\'s client was disconnected');
  t.equal(await a.ping(), 'PONG', 'the other worker\'s client is still served');
  const again = await waitFor('a connection on a restarted worker 2', async () => {
    const c = await clientOn(port, 2).catch(() => undefined);
    return c;
  }, { timeoutMs: 10000 });
  const pidAgain = Number(/worker_pid:(\d+)/.exec(String(await again.info('proxy')))?.[1]);
  t.not(pidAgain, pidB, `worker 2 runs again in a new process (${pidB} -> ${pidAgain})`);
  t.equal(await again.set('workers:after-crash', 'x'), 'OK');
  t.match(cli.output(), /worker 2 exited unexpectedly; restarting it/, 'the primary logged the crash');
});

t.test('SIGTERM drains both workers: slow replies on each arrive, then exit 0', async (t) => {
  const cli = await spawnWorkers();
  const [port] = cli.ports as [number];
  const raws = [];
  // One raw connection per worker, each with a DEBUG SLEEP in flight at SIGTERM.
  const seen = new Set<string>();
  while (seen.size < 2) {
    const r = await rawConnection(port);
    const [info] = await r.send(encodeCommand('INFO', 'proxy'));
    const worker = /worker:(\d)/.exec(info!.toString())![1]!;
    if (seen.has(worker)) continue;
    seen.add(worker);
    raws.push(r);
  }
  const replies = raws.map((r) => r.send(encodeCommand('DEBUG', 'SLEEP', '0.5'), 1, 5000));
  await sleep(100);
  cli.kill('SIGTERM');
  const got = await Promise.all(replies);
  t.same(got.map(([r]) => r!.toString()), ['+OK\r\n', '+OK\r\n'], 'both in-flight replies arrived');
  t.equal(await cli.exit, 0, 'exit 0');
});

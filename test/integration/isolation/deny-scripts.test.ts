/**
 * `denyCommands` cannot be bypassed with a script.
 *
 * A command called from a Lua script (EVAL, EVALSHA, their _RO forms) or a function
 * (FCALL, FCALL_RO) runs inside Redis and never passes through the proxy's deny check,
 * so `EVAL "return redis.call('FLUSHALL')" 0` would flush a master whose listener denies
 * FLUSHALL. The proxy can only rely on Redis's ACL for that:
 *
 * - backend user = the default user (no ACL): every script call is refused with an
 *   error naming `denyCommands`, and the key written before survives on the master. A
 *   plain FLUSHALL keeps its usual denial.
 * - only commands flagged `noscript` denied (CONFIG): scripts cannot reach them, so
 *   scripts run (`EVAL "return 1" 0` -> `:1`).
 * - backend ACL user without `flushall` (set up on the master and on the replica: ACLs
 *   are not replicated): once the proxy has verified that, scripts run, and a script
 *   calling FLUSHALL gets Redis's own ACL error; the key survives.
 * - `scriptsBypassDenyCommands: true`: the documented opt-in, scripts run unchecked (the
 *   FLUSHALL script empties the master).
 */
import t from 'tap';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection, splitReplies, type RawConnection } from '../../helpers/raw.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { waitFor } from '../../helpers/wait.js';
import { show } from '../compat/_helpers.js';

const set = await startReplicaSet({ replicas: 1 });
const { master, replicas } = set;
const direct = master.client();

// The ACL user of the 'acl' listener, on every node (ACL SETUSER is not replicated).
for (const server of [master, ...replicas]) {
  await server.client().call('ACL', 'SETUSER', 'proxy', 'on', '>pw', '~*', '&*', '+@all', '-flushall');
}

const proxy = await startTestProxy([
  listenerFor(master, replicas, { name: 'deny', denyCommands: ['flushall'] }),
  listenerFor(master, replicas, { name: 'noscript', denyCommands: ['config'] }),
  listenerFor(master, replicas, { name: 'deny-keys', denyCommands: ['keys'] }),
  listenerFor(master, replicas, {
    name: 'acl',
    denyCommands: ['flushall'],
    backendUsername: 'proxy',
    backendPassword: 'pw',
  }),
  listenerFor(master, replicas, { name: 'bypass', denyCommands: ['flushall'], scriptsBypassDenyCommands: true }),
]);
const [denyPort, noscriptPort, denyKeysPort, aclPort, bypassPort] = proxy.ports as [number, number, number, number, number];

const FLUSH_SCRIPT = "return redis.call('FLUSHALL')";
const LIBRARY = "#!lua name=lib\nredis.register_function('f', function() return redis.call('FLUSHALL') end)";

/** Sends `args` and returns its one reply as text, or what came plus «timeout»/«closed». */
async function ask(conn: RawConnection, args: string[], timeoutMs = 2000): Promise<string> {
  const before = splitReplies(conn.received()).length;
  conn.socket.write(encodeCommand(...args));
  const ok = await conn.waitFor((b) => splitReplies(b).length > before, timeoutMs);
  const got = splitReplies(conn.received()).slice(before, before + 1).map((b) => b.toString('latin1')).join('');
  return ok ? got : `${got}${conn.closed ? '«closed»' : '«timeout»'}`;
}

/** Writes a key on the master and waits until the replica has it. */
async function plant(key: string): Promise<void> {
  await direct.set(key, 'keep');
  await set.sync();
}

t.test('denyCommands ["flushall"], default backend user: every way to run a script is refused', async (t) => {
  await plant('ds:deny');
  const sha = (await direct.script('LOAD', FLUSH_SCRIPT)) as string;
  for (const replica of replicas) await replica.client().script('LOAD', FLUSH_SCRIPT);
  await direct.call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY);
  await set.sync();

  const c = await rawConnection(denyPort);
  const refused = async (args: string[]) => {
    await direct.set('ds:deny', 'keep');
    const reply = await ask(c, args);
    t.match(reply, /^-ERR .*denyCommands/, `${args.join(' ').replace(/\n/g, '\\n')} -> an error naming denyCommands: ${show(reply)}`);
    t.equal(await direct.get('ds:deny'), 'keep', '  the key is still on the master');
  };
  await refused(['EVAL', FLUSH_SCRIPT, '0']);
  await refused(['EVALSHA', sha, '0']);
  await refused(['EVAL_RO', FLUSH_SCRIPT, '0']);
  await refused(['EVALSHA_RO', sha, '0']);
  await refused(['FCALL', 'f', '0']);
  await refused(['FCALL_RO', 'f', '0']);

  // Loading is not running: SCRIPT LOAD / FUNCTION LOAD may answer or be refused, but
  // what they load cannot run either.
  const load = await ask(c, ['SCRIPT', 'LOAD', FLUSH_SCRIPT]);
  t.ok(load === `$40\r\n${sha}\r\n` || /^-ERR .*denyCommands/.test(load), `SCRIPT LOAD -> the sha or a denial: ${show(load)}`);
  await refused(['EVALSHA', sha, '0']);
  const fload = await ask(c, ['FUNCTION', 'LOAD', 'REPLACE', LIBRARY]);
  t.ok(fload === '$3\r\nlib\r\n' || /^-ERR .*denyCommands/.test(fload), `FUNCTION LOAD -> the library name or a denial: ${show(fload)}`);
  await refused(['FCALL', 'f', '0']);

  // The same inside a transaction: refused, and EXEC then aborts.
  await direct.set('ds:deny', 'keep');
  t.equal(await ask(c, ['MULTI']), '+OK\r\n', 'MULTI');
  const queued = await ask(c, ['EVAL', FLUSH_SCRIPT, '0']);
  t.match(queued, /^-ERR .*denyCommands/, `EVAL inside MULTI -> refused: ${show(queued)}`);
  t.match(await ask(c, ['EXEC']), /^-EXECABORT/, 'EXEC aborts');
  t.equal(await direct.get('ds:deny'), 'keep', 'the key is still on the master');

  await direct.set('ds:deny', 'keep');
  const plain = await ask(c, ['FLUSHALL']);
  t.match(plain, /^-ERR redis-proxy: command 'flushall' is denied .*denyCommands/, `plain FLUSHALL keeps its denial: ${show(plain)}`);
  t.equal(await ask(c, ['PING']), '+PONG\r\n', 'the session goes on');
  t.equal(await direct.get('ds:deny'), 'keep', 'the key is still on the master');
  c.socket.destroy();
});

t.test('denyCommands ["keys"] (a read-only command): EVAL_RO calling KEYS is refused too', async (t) => {
  const c = await rawConnection(denyKeysPort);
  for (const cmd of ['EVAL_RO', 'EVAL']) {
    const reply = await ask(c, [cmd, "return redis.call('KEYS', '*')", '0']);
    t.match(reply, /^-ERR .*denyCommands/, `${cmd} calling KEYS -> an error naming denyCommands: ${show(reply)}`);
  }
  c.socket.destroy();
});

t.test('denyCommands ["config"]: CONFIG is noscript, so scripts run', async (t) => {
  const c = await rawConnection(noscriptPort);
  t.equal(await ask(c, ['EVAL', 'return 1', '0']), ':1\r\n', 'EVAL "return 1" 0 -> :1');
  t.equal(await ask(c, ['EVAL_RO', 'return 2', '0']), ':2\r\n', 'EVAL_RO "return 2" 0 -> :2');
  const viaScript = await ask(c, ['EVAL', "return redis.call('CONFIG', 'GET', 'maxmemory')", '0']);
  t.match(viaScript, /^-ERR This Redis command is not allowed from script/, `a script calling CONFIG gets Redis's own refusal: ${show(viaScript)}`);
  t.match(await ask(c, ['CONFIG', 'GET', 'maxmemory']), /^-ERR redis-proxy: .*denyCommands/, 'CONFIG itself is denied');
  c.socket.destroy();
});

t.test('backend ACL user without flushall: scripts run once verified, and Redis refuses FLUSHALL inside them', async (t) => {
  await plant('ds:acl');
  const c = await rawConnection(aclPort);
  let last = '';
  await waitFor(
    'the proxy to allow scripts on the ACL listener',
    async () => (last = await ask(c, ['EVAL', 'return 1', '0'])) === ':1\r\n',
    { timeoutMs: 3000, intervalMs: 100 },
  ).catch(() => undefined);
  t.equal(last, ':1\r\n', `EVAL "return 1" 0 -> :1 within 3 s (last reply ${show(last)})`);
  const reply = await ask(c, ['EVAL', FLUSH_SCRIPT, '0']);
  // Redis 7.0 words it "The user executing the script can't run this command or subcommand".
  t.match(reply, /^-(ERR|NOPERM) .*(can't run this command|NOPERM|no permissions)/, `Redis's own ACL error: ${show(reply)}`);
  t.notMatch(reply, /redis-proxy/, 'not a proxy refusal');
  t.equal(await direct.get('ds:acl'), 'keep', 'the key is still on the master');
  const plain = await ask(c, ['FLUSHALL']);
  t.match(plain, /^-ERR redis-proxy: command 'flushall' is denied/, 'plain FLUSHALL is still denied by the proxy');
  c.socket.destroy();
});

// Last: it empties the master.
t.test('scriptsBypassDenyCommands: true: the FLUSHALL script runs (documented opt-in)', async (t) => {
  await plant('ds:bypass');
  const c = await rawConnection(bypassPort);
  t.equal(await ask(c, ['EVAL', FLUSH_SCRIPT, '0']), '+OK\r\n', 'EVAL of the FLUSHALL script -> +OK');
  t.equal(await direct.exists('ds:bypass'), 0, 'the key is gone from the master');
  t.match(await ask(c, ['FLUSHALL']), /^-ERR redis-proxy: command 'flushall' is denied/, 'plain FLUSHALL is still denied');
  c.socket.destroy();
});

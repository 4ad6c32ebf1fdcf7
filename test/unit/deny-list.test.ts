/**
 * DenyList (src/server/deny-list.ts) with fake nodes: what it denies, which entries a
 * script could reach, how ACL DRYRUN replies are read, and when scripts are refused.
 */
import t from 'tap';
import { DenyList, SCRIPT_COMMANDS, TOPOLOGY_COMMANDS, type DryRunNode } from '../../src/server/deny-list.js';
import { normalizeConfig } from '../../src/config/index.js';

const settings = (denyCommands: string[], extra: { allowTopologyCommands?: boolean; scriptsBypassDenyCommands?: boolean } = {}) => ({
  denyCommands,
  allowTopologyCommands: extra.allowTopologyCommands ?? false,
  scriptsBypassDenyCommands: extra.scriptsBypassDenyCommands ?? false,
});

/**
 * A node that answers ACL DRYRUN like Redis 7.0 would for a user denied `denied`
 * (full names: `flushall`, `config|set`, or a container `config` for all its
 * subcommands): a bulk string refusal, else OK. Records every call.
 */
function fakeNode(label: string, denied: string[], username?: string): DryRunNode & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    label,
    username,
    calls,
    async call(...args) {
      const words = args.map(String);
      calls.push(words);
      const [acl, dryrun, , command, sub] = words;
      if (acl !== 'ACL' || dryrun !== 'DRYRUN' || command === undefined) throw new Error('ERR unexpected call');
      const full = sub !== undefined && ['config', 'client', 'object', 'slowlog'].includes(command) ? `${command}|${sub}` : command;
      if (denied.includes(full) || denied.includes(command)) return `This user has no permissions to run the '${full}' command`;
      return 'OK';
    },
  };
}

function nodeReplying(label: string, reply: () => Promise<unknown>): DryRunNode {
  return { label, username: 'proxy', call: () => reply() };
}

t.test('has: listed names, containers, topology commands', async (t) => {
  const d = new DenyList(settings(['flushall', 'config', 'client|kill']));
  t.ok(d.has('flushall'));
  t.ok(d.has('config|set'), 'a container denies its subcommands');
  t.ok(d.has('config|get'));
  t.ok(d.has('config'));
  t.ok(d.has('client|kill'));
  t.notOk(d.has('client|list'), 'a subcommand entry denies only itself');
  t.notOk(d.has('client'));
  t.notOk(d.has('get'));
  t.notOk(d.has('flushdb'));
  for (const c of TOPOLOGY_COMMANDS) t.ok(d.has(c), `${c} refused by default`);
  t.same([...TOPOLOGY_COMMANDS], ['replicaof', 'slaveof', 'failover', 'shutdown']);

  const open = new DenyList(settings([], { allowTopologyCommands: true }));
  for (const c of TOPOLOGY_COMMANDS) t.notOk(open.has(c), `${c} forwarded with allowTopologyCommands`);
  t.ok(new DenyList(settings(['shutdown'], { allowTopologyCommands: true })).has('shutdown'), 'denyCommands still wins');
});

t.test('deniedMessage', async (t) => {
  const d = new DenyList(settings(['flushall', 'config']));
  t.equal(
    d.deniedMessage('flushall', 'main'),
    "ERR redis-proxy: command 'flushall' is denied on listener 'main' (its denyCommands setting)",
  );
  t.equal(
    d.deniedMessage('config|set', 'main'),
    "ERR redis-proxy: command 'config|set' is denied on listener 'main' (its denyCommands setting)",
  );
  t.equal(
    d.deniedMessage('replicaof', 'main'),
    "ERR redis-proxy: command 'replicaof' is refused on listener 'main': it changes the replication topology " +
      'the proxy manages; set "allowTopologyCommands": true to forward it to the master',
  );
  t.equal(
    new DenyList(settings(['shutdown'])).deniedMessage('shutdown', 'x'),
    "ERR redis-proxy: command 'shutdown' is denied on listener 'x' (its denyCommands setting)",
  );
});

t.test('reachability from scripts', async (t) => {
  const d = new DenyList(
    settings(['flushall', 'debug', 'config|set', 'config', 'keys', 'acl|list', 'ft.dropindex', 'client|kill', 'shutdown']),
  );
  // flushall, keys: no noscript flag. debug, config|set, acl|list, client|kill, shutdown: noscript.
  // config: only CONFIG HELP lacks noscript, and a HELP subcommand does not count. ft.dropindex: a module command, not known.
  t.same(d.scriptReachable, ['flushall', 'keys', 'ft.dropindex']);
  t.same(new DenyList(settings(['config'])).scriptReachable, [], 'scripts cannot reach CONFIG beyond its HELP');
  t.same(d.entries, ['flushall', 'debug', 'config|set', 'config', 'keys', 'acl|list', 'ft.dropindex', 'client|kill', 'shutdown']);
  t.same(new DenyList(settings(['debug', 'config|set'])).scriptReachable, []);
  t.same(new DenyList(settings(['object'])).scriptReachable, ['object'], 'OBJECT ENCODING may be called from a script');
});

t.test('scriptRefusal: no reachable entries, or bypass', async (t) => {
  t.equal(new DenyList(settings([])).scriptRefusal('x'), null);
  t.equal(new DenyList(settings(['debug', 'config|set'])).scriptRefusal('x'), null, 'noscript entries only');
  t.equal(new DenyList(settings(['flushall'], { scriptsBypassDenyCommands: true })).scriptRefusal('x'), null);
  t.equal(new DenyList(settings([])).enforcedByRedis, true);
  t.same(SCRIPT_COMMANDS, new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']));
});

t.test('scriptRefusal before and after verify', async (t) => {
  const d = new DenyList(settings(['flushall', 'debug', 'keys']));
  t.equal(d.enforcedByRedis, undefined);
  t.equal(
    d.scriptRefusal('main'),
    "ERR redis-proxy: scripts are refused on listener 'main': its denyCommands (flushall, keys) can be called from a " +
      "script and the proxy has not yet checked that Redis refuses them to its backend user; deny them to that user " +
      'with an ACL (ACL SETUSER <user> -flushall -keys) or set "scriptsBypassDenyCommands": true',
    'refused before the first verify',
  );

  const master = fakeNode('master a:1', ['flushall', 'keys'], 'proxy');
  const replica = fakeNode('replica b:2', ['flushall']);
  const partly = await d.verify([master, replica]);
  t.equal(partly.enforced, false);
  t.same(partly.unenforced, [
    { entry: 'keys', command: 'keys', node: 'replica b:2', reason: 'ACL DRYRUN replied: OK' },
  ]);
  t.equal(d.enforcedByRedis, false);
  t.equal(
    d.scriptRefusal('main'),
    "ERR redis-proxy: scripts are refused on listener 'main': its denyCommands (keys) can be called from a script " +
      "and Redis does not refuse them to the proxy's backend user; deny them to that user with an ACL " +
      '(ACL SETUSER <user> -keys) or set "scriptsBypassDenyCommands": true',
    'names only the entries not enforced',
  );
  t.same(
    master.calls,
    [
      ['ACL', 'DRYRUN', 'proxy', 'flushall'],
      ['ACL', 'DRYRUN', 'proxy', 'keys', 'redis-proxy-dryrun'],
    ],
    'arity padding: FLUSHALL takes none, KEYS exactly one; debug (noscript) is not checked',
  );
  t.same(replica.calls[0], ['ACL', 'DRYRUN', 'default', 'flushall'], 'no username: the default user');

  const replicaFixed = fakeNode('replica b:2', ['flushall', 'keys']);
  const all = await d.verify([fakeNode('master a:1', ['flushall', 'keys'], 'proxy'), replicaFixed]);
  t.same(all, { enforced: true, unenforced: [] });
  t.equal(d.enforcedByRedis, true);
  t.equal(d.scriptRefusal('main'), null, 'scripts run once Redis refuses every reachable entry');

  await d.verify([fakeNode('master a:1', ['flushall'], 'proxy')]);
  t.match(d.scriptRefusal('main'), /its denyCommands \(keys\)/, 'a later verify replaces the result');
});

t.test('verify: containers, subcommands and module commands', async (t) => {
  const d = new DenyList(settings(['slowlog', 'object|encoding', 'ft.dropindex']));
  const node = fakeNode('m', ['slowlog', 'object|encoding', 'ft.dropindex'], 'proxy');
  t.same(await d.verify([node]), { enforced: true, unenforced: [] });
  t.same(node.calls, [
    ['ACL', 'DRYRUN', 'proxy', 'slowlog', 'get'],
    ['ACL', 'DRYRUN', 'proxy', 'slowlog', 'len'],
    ['ACL', 'DRYRUN', 'proxy', 'slowlog', 'reset'],
    ['ACL', 'DRYRUN', 'proxy', 'object', 'encoding', 'redis-proxy-dryrun'],
    ['ACL', 'DRYRUN', 'proxy', 'ft.dropindex'],
  ]);
});

t.test('verify: arity probing for a command the table does not know', async (t) => {
  const calls: string[][] = [];
  const node: DryRunNode = {
    label: 'm',
    username: 'proxy',
    async call(...args) {
      calls.push(args.map(String));
      if (args.length < 6) throw new Error("ERR wrong number of arguments for 'json.del' command");
      return "This user has no permissions to run the 'json.del' command";
    },
  };
  const d = new DenyList(settings(['json.del']));
  t.same(await d.verify([node]), { enforced: true, unenforced: [] });
  t.same(calls.map((c) => c.length), [4, 5, 6]);
});

t.test('verify: what does not count as enforced', async (t) => {
  const d = new DenyList(settings(['flushall']));
  const cases: Array<[string, () => Promise<unknown>, string]> = [
    ['OK', async () => 'OK', 'ACL DRYRUN replied: OK'],
    [
      'a key refusal',
      async () => "This user has no permissions to access the 'k' key",
      "ACL DRYRUN replied: This user has no permissions to access the 'k' key",
    ],
    [
      'a refusal naming another command',
      async () => {
        throw new Error("NOPERM this user has no permissions to run the 'acl|dryrun' command");
      },
      "ACL DRYRUN failed: NOPERM this user has no permissions to run the 'acl|dryrun' command",
    ],
    [
      'unknown command (Redis < 7)',
      async () => {
        throw new Error("ERR Unknown subcommand or wrong number of arguments for 'DRYRUN'. Try ACL HELP.");
      },
      "ACL DRYRUN failed: ERR Unknown subcommand or wrong number of arguments for 'DRYRUN'. Try ACL HELP.",
    ],
    [
      'a failed call',
      async () => {
        throw new Error('connection closed');
      },
      'ACL DRYRUN failed: connection closed',
    ],
    ['a non-string reply', async () => 1, 'ACL DRYRUN replied: 1'],
  ];
  for (const [what, reply, reason] of cases) {
    const result = await d.verify([nodeReplying('m', reply)]);
    t.same(result, { enforced: false, unenforced: [{ entry: 'flushall', command: 'flushall', node: 'm', reason }] }, what);
    t.equal(d.enforcedByRedis, false, what);
    t.not(d.scriptRefusal('x'), null, what);
  }
  const asError = await d.verify([
    nodeReplying('m', async () => {
      throw new Error("This user has no permissions to run the 'flushall' command");
    }),
  ]);
  t.equal(asError.enforced, true, 'the refusal as an error reply counts too');
  const asBuffer = await d.verify([
    nodeReplying('m', async () => Buffer.from("User proxy has no permissions to run the 'flushall' command")),
  ]);
  t.equal(asBuffer.enforced, true, 'a Buffer reply, and the Redis 7.2 wording, count too');

  const none = await d.verify([]);
  t.same(none, { enforced: false, unenforced: [{ entry: 'flushall', command: 'flushall', node: '(none)', reason: 'no node to check' }] });
  t.equal(d.enforcedByRedis, false, 'no node: nothing proven');
});

t.test('verify: only the verify started last is recorded', async (t) => {
  const d = new DenyList(settings(['flushall']));
  let release: (v: unknown) => void = () => undefined;
  const slow = d.verify([nodeReplying('m', () => new Promise((resolve) => (release = resolve)))]);
  await d.verify([fakeNode('m', ['flushall'])]);
  t.equal(d.scriptRefusal('x'), null);
  release('OK');
  t.equal((await slow).enforced, false, 'the older call still reports what it found');
  t.equal(d.scriptRefusal('x'), null, 'but does not overwrite the newer result');
});

t.test('built from a normalized ListenerConfig', async (t) => {
  const l = normalizeConfig([
    { listen: 7000, master: { host: 'h', port: 1 }, denyCommands: ['FLUSHALL', 'Config Set'], scriptsBypassDenyCommands: true },
  ]).listeners[0]!;
  const d = new DenyList(l);
  t.ok(d.has('config|set'));
  t.ok(d.has('shutdown'));
  t.same(d.scriptReachable, ['flushall']);
  t.equal(d.scriptRefusal(l.name), null, 'scriptsBypassDenyCommands');
});

import os from 'node:os';
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.js';
import { makePki } from '../helpers/certs.js';
import {
  BUILTIN_SETTINGS,
  ConfigError,
  loadConfig,
  normalizeConfig,
  normalizeDenyCommands,
  type ProxyConfig,
} from '../../src/config/index.js';

/** The problems normalizeConfig reports for `raw`; throws (failing the test) if it accepts it. */
function problemsOf(raw: unknown): string[] {
  try {
    normalizeConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error(`config was accepted: ${JSON.stringify(raw)}`);
}

const node = (port: number, extra: object = {}) => ({ host: '127.0.0.1', port, ...extra });
const listener = (listen: number, extra: object = {}) => ({ listen, master: node(7000), slave: [node(7001)], ...extra });

t.test('the established array format, exactly', async (t) => {
  const text = `[ { "listen": 6380, "master": {"host":"10.0.0.1","port":6379}, "slave": [ {"host":"10.0.0.2","port":6379}, {"host":"10.0.0.3","port":6379} ] } ]`;
  const config = normalizeConfig(JSON.parse(text));
  t.equal(config.logLevel, 'info');
  t.equal(config.shutdownTimeout, 5000);
  t.equal(config.listeners.length, 1);
  const l = config.listeners[0]!;
  t.equal(l.listen, 6380);
  t.equal(l.name, 'listener-6380');
  t.same(l.master, { host: '10.0.0.1', port: 6379, weight: 1 });
  t.same(l.replicas, [
    { host: '10.0.0.2', port: 6379, weight: 1 },
    { host: '10.0.0.3', port: 6379, weight: 1 },
  ]);
  t.notOk('slave' in l, 'the file key slave becomes replicas');
});

t.test('built-in defaults are filled in', async (t) => {
  const l = normalizeConfig([{ listen: 6380, master: node(7000) }]).listeners[0]!;
  t.same(l.replicas, [], 'slave may be left out');
  t.equal(l.bind, '127.0.0.1');
  t.equal(l.readPolicy, 'prefer-replica');
  t.equal(l.sharedConnections, 1);
  t.equal(l.maxDedicatedConnections, 100);
  t.equal(l.connectTimeout, 2000);
  t.equal(l.commandTimeout, 5000);
  t.equal(l.clientIdleTimeout, 0);
  t.equal(l.healthCheckInterval, 1000);
  t.equal(l.maxReplicationLag, 10);
  t.equal(l.maxPipeline, 1024);
  t.equal(l.clientOutputPause, 1024 * 1024);
  t.equal(l.clientOutputLimit, 256 * 1024 * 1024);
  t.same(l.denyCommands, []);
  t.equal(l.allowTopologyCommands, false);
  t.equal(l.scriptsBypassDenyCommands, false);
  t.equal(l.causalReads, 'global', 'causal reads by default');
  t.notOk('password' in l);
  t.notOk('users' in l);
  t.notOk('username' in l.master!);
  for (const [key, value] of Object.entries(BUILTIN_SETTINGS)) t.same(l[key as keyof typeof l], value, key);
});

t.test('slave may be an empty array', async (t) => {
  t.same(normalizeConfig([{ listen: 6380, master: node(7000), slave: [] }]).listeners[0]!.replicas, []);
});

t.test('object form: listener > defaults > built-in', async (t) => {
  const config = normalizeConfig({
    logLevel: 'debug',
    shutdownTimeout: 100,
    defaults: { readPolicy: 'master', commandTimeout: 50, denyCommands: ['FLUSHALL'] },
    listeners: [
      listener(6380, { readPolicy: 'any', denyCommands: ['keys'] }),
      listener(6381, { name: 'cache' }),
    ],
  });
  t.equal(config.logLevel, 'debug');
  t.equal(config.shutdownTimeout, 100);
  const [a, b] = config.listeners as [ProxyConfig['listeners'][0], ProxyConfig['listeners'][0]];
  t.equal(a.readPolicy, 'any', 'the listener overrides defaults');
  t.equal(b.readPolicy, 'master', 'defaults apply');
  t.equal(a.commandTimeout, 50);
  t.equal(b.connectTimeout, 2000, 'built-in when neither sets it');
  t.same(a.denyCommands, ['keys'], 'a listener list replaces the defaults list');
  t.same(b.denyCommands, ['flushall']);
  t.equal(b.name, 'cache');
});

t.test('object form without defaults, logLevel or shutdownTimeout', async (t) => {
  const config = normalizeConfig({ listeners: [listener(6380)] });
  t.equal(config.logLevel, 'info');
  t.equal(config.shutdownTimeout, 5000);
  t.equal(config.listeners[0]!.readPolicy, 'prefer-replica');
});

t.test('the example files load', async (t) => {
  const a = loadConfig('config/example.json');
  t.same(
    a.listeners.map((l) => [l.listen, l.replicas.length]),
    [
      [6380, 2],
      [6381, 1],
    ],
  );
  const b = loadConfig('config/example-object.json');
  t.equal(b.listeners.length, 2);
  t.same(b.listeners[0]!.replicas.map((r) => r.weight), [2, 1]);
  t.same(b.listeners[0]!.denyCommands, ['flushall', 'flushdb', 'config|set', 'debug']);
});

t.test('weights: default 1, 0 allowed', async (t) => {
  const l = normalizeConfig([listener(6380, { slave: [node(7001, { weight: 0 }), node(7002, { weight: 5 })] })])
    .listeners[0]!;
  t.same(l.replicas.map((r) => r.weight), [0, 5]);
  t.equal(l.master!.weight, 1);
});

t.test('denyCommands are normalized', async (t) => {
  t.same(normalizeDenyCommands(['FLUSHALL', 'config set', 'CONFIG|SET', ' Client  Kill ', 'config | get', 'json.get']), [
    'flushall',
    'config|set',
    'client|kill',
    'config|get',
    'json.get',
  ]);
  const l = normalizeConfig([listener(6380, { denyCommands: ['Config Set', 'config|set'] })]).listeners[0]!;
  t.same(l.denyCommands, ['config|set']);
});

t.test('denyCommands: entries must name a command of the table, with a did-you-mean', async (t) => {
  t.same(problemsOf({ listeners: [listener(6380, { denyCommands: ['flushal'] })] }), [
    'listeners[0].denyCommands[0]: "flushal" is not a Redis command; did you mean "flushall"?',
  ]);
  t.same(problemsOf({ listeners: [listener(6380, { denyCommands: ['flushall', 'config sett', 'CONFIG|SETT'] })] }), [
    'listeners[0].denyCommands[1]: "config sett" is not a subcommand of CONFIG; did you mean "config set"?',
    'listeners[0].denyCommands[2]: "CONFIG|SETT" is not a subcommand of CONFIG; did you mean "config|set"?',
  ]);
  t.same(problemsOf([listener(6380, { denyCommands: ['confg set', 'flush all', 'kes'] })]), [
    '[0].denyCommands[0]: "confg set" is not a Redis command; did you mean "config set"?',
    '[0].denyCommands[1]: "flush all" is not a Redis command; did you mean "flushall"?',
    '[0].denyCommands[2]: "kes" is not a Redis command; did you mean "keys"?',
  ]);
  t.same(problemsOf([listener(6380, { denyCommands: ['xyzzy', 'config foo', 'get foo'] })]), [
    '[0].denyCommands[0]: "xyzzy" is not a Redis command; allowed are the commands of Redis 7.0.15 ' +
      '(COMMAND LIST on a server lists them) and module commands, written with their dot (like "json.del")',
    '[0].denyCommands[1]: "config foo" is not a subcommand of CONFIG; its subcommands are get, help, resetstat, rewrite, set',
    '[0].denyCommands[2]: "get foo" is not a Redis command: GET has no subcommands; write "get" to deny GET',
  ]);
  t.same(
    problemsOf({ defaults: { denyCommands: ['flushdbb'] }, listeners: [listener(6380), listener(6381)] }),
    ['defaults.denyCommands[0]: "flushdbb" is not a Redis command; did you mean "flushdb"?'],
    'a mistake in defaults shows once',
  );
  const l = normalizeConfig([
    listener(6380, { denyCommands: ['FT.DROPINDEX', 'json.del', 'nosuch.command', 'Client Kill', 'cluster', 'acl|dryrun'] }),
  ]).listeners[0]!;
  t.same(
    l.denyCommands,
    ['ft.dropindex', 'json.del', 'nosuch.command', 'client|kill', 'cluster', 'acl|dryrun'],
    'module commands (with a dot) are accepted unchecked; containers and subcommands are fine',
  );
});

t.test('allowTopologyCommands and scriptsBypassDenyCommands', async (t) => {
  const config = normalizeConfig({
    defaults: { allowTopologyCommands: true, scriptsBypassDenyCommands: true },
    listeners: [listener(6380), listener(6381, { allowTopologyCommands: false, scriptsBypassDenyCommands: false })],
  });
  const [a, b] = config.listeners as [ProxyConfig['listeners'][0], ProxyConfig['listeners'][0]];
  t.equal(a.allowTopologyCommands, true, 'from defaults');
  t.equal(a.scriptsBypassDenyCommands, true, 'from defaults');
  t.equal(b.allowTopologyCommands, false, 'the listener key wins');
  t.equal(b.scriptsBypassDenyCommands, false, 'the listener key wins');
  const own = normalizeConfig([listener(6380, { allowTopologyCommands: true })]).listeners[0]!;
  t.equal(own.allowTopologyCommands, true);
  t.equal(own.scriptsBypassDenyCommands, false);

  t.same(problemsOf([listener(6380, { allowTopologyCommands: 'yes', scriptsBypassDenyCommands: 1 })]), [
    '[0].allowTopologyCommands: must be true or false (true: forward REPLICAOF, SLAVEOF, FAILOVER and SHUTDOWN to the master), got "yes"',
    '[0].scriptsBypassDenyCommands: must be true or false (true: scripts may run even where they could call a denied command), got 1',
  ]);
  t.same(problemsOf({ defaults: { scriptsBypassDenyCommands: null }, listeners: [listener(6380)] }), [
    'defaults.scriptsBypassDenyCommands: must be true or false (true: scripts may run even where they could call a denied command), got null',
  ]);
  t.match(problemsOf([listener(6380, { allowTopologyCommand: true })]), [
    /^\[0\]\.allowTopologyCommand: unknown key \(did you mean "allowTopologyCommands"\?\)/,
  ]);
});

t.test('backend credentials: a node keeps its own pair, else the listener one', async (t) => {
  const l = normalizeConfig({
    defaults: { backendUsername: 'proxy', backendPassword: 'pw' },
    listeners: [listener(6380, { slave: [node(7001, { password: 'own' }), node(7002)] })],
  }).listeners[0]!;
  t.same(l.master, { host: '127.0.0.1', port: 7000, weight: 1, username: 'proxy', password: 'pw' });
  t.same(l.replicas[0], { host: '127.0.0.1', port: 7001, weight: 1, password: 'own' });
  t.same(l.replicas[1], { host: '127.0.0.1', port: 7002, weight: 1, username: 'proxy', password: 'pw' });
});

t.test('client auth settings are kept', async (t) => {
  const l = normalizeConfig([listener(6380, { password: 'p', users: [{ username: 'app', password: 'x' }] })])
    .listeners[0]!;
  t.equal(l.password, 'p');
  t.same(l.users, [{ username: 'app', password: 'x' }]);
});

t.test('authentication: "proxy" by default, "redis" from the listener or defaults', async (t) => {
  t.equal(normalizeConfig([listener(6380)]).listeners[0]!.authentication, 'proxy');
  t.equal(normalizeConfig([listener(6380, { authentication: 'redis' })]).listeners[0]!.authentication, 'redis');
  const config = normalizeConfig({
    defaults: { authentication: 'redis' },
    listeners: [listener(6380), listener(6381, { authentication: 'proxy', password: 'p' })],
  });
  t.same(
    config.listeners.map((l) => [l.authentication, l.password]),
    [
      ['redis', undefined],
      ['proxy', 'p'],
    ],
    'a listener may keep the proxy mode (with its password) under redis defaults',
  );
  t.same(problemsOf([listener(6380, { authentication: 'acl' })]), [
    '[0].authentication: must be one of proxy, redis (proxy: the listener\'s password/users; redis: the Redis ACL users of the master, commands run as that user), got "acl"',
  ]);
});

t.test('authentication "redis" contradicts the listener\'s password and users', async (t) => {
  t.same(problemsOf([listener(6380, { authentication: 'redis', password: 'p' })]), [
    '[0].password: cannot be set with "authentication": "redis": clients log in as the Redis ACL users of the master; ' +
      'remove "password" (set requirepass (or an ACL user) on the Redis servers instead), or set "authentication": "proxy"',
  ]);
  t.same(problemsOf([listener(6380, { authentication: 'redis', users: [{ username: 'app', password: 'x' }] })]), [
    '[0].users: cannot be set with "authentication": "redis": clients log in as the Redis ACL users of the master; ' +
      'remove "users" (create these users on every Redis node with ACL SETUSER instead), or set "authentication": "proxy"',
  ]);
  t.same(
    problemsOf({ defaults: { authentication: 'redis' }, listeners: [listener(6380, { password: 'p' })] }),
    [
      'listeners[0].password: cannot be set with "authentication": "redis" (from defaults): clients log in as the Redis ACL users of the master; ' +
        'remove "password" (set requirepass (or an ACL user) on the Redis servers instead), or set "authentication": "proxy"',
    ],
    'the mode from defaults, the password from the listener',
  );
  t.same(
    problemsOf({ defaults: { password: 'p' }, listeners: [listener(6380, { authentication: 'redis' }), listener(6381)] }),
    [
      'listeners[0].authentication: "redis" cannot be used with the "password" that defaults sets: clients log in as the ' +
        'Redis ACL users of the master; move "password" from defaults to the listeners with "authentication": "proxy"',
    ],
    'the password from defaults, the mode from the listener: reported at the mode',
  );
  t.same(
    problemsOf({
      defaults: { authentication: 'redis', users: [{ username: 'app', password: 'x' }] },
      listeners: [listener(6380), listener(6381)],
    }),
    [
      'defaults.users: cannot be set with "authentication": "redis": clients log in as the Redis ACL users of the master; ' +
        'remove "users" (create these users on every Redis node with ACL SETUSER instead), or set "authentication": "proxy"',
    ],
    'both in defaults: reported once, at defaults',
  );
  t.doesNotThrow(() => normalizeConfig([listener(6380, { authentication: 'redis', backendUsername: 'proxy', backendPassword: 'pw' })]));
});

t.test('normalizeConfig does not modify its argument', async (t) => {
  const raw = [{ listen: 6380, master: node(7000) }];
  const before = JSON.stringify(raw);
  normalizeConfig(raw);
  t.equal(JSON.stringify(raw), before);
});

t.test('unknown key', async (t) => {
  const [p, ...rest] = problemsOf([listener(6380, { foo: 1 })]);
  t.same(rest, []);
  t.match(p, /^\[0\]\.foo: unknown key; allowed keys are listen, name, master, sentinel, slave, bind, readPolicy, /);
  t.same(problemsOf({ listeners: [listener(6380)], extra: true }), [
    'extra: unknown key; allowed keys are admin, workers, logLevel, shutdownTimeout, defaults, listeners',
  ]);
  t.match(problemsOf({ defaults: { readPolicyy: 'master' }, listeners: [listener(6380)] }), [
    /^defaults\.readPolicyy: unknown key \(did you mean "readPolicy"\?\); allowed keys are bind, readPolicy, /,
  ]);
});

t.test('near misses get a suggestion', async (t) => {
  t.match(problemsOf([{ listen: 6380, master: node(7000), replicas: [] }]), [/^\[0\]\.replicas: unknown key \(did you mean "slave"\?\)/]);
  t.match(problemsOf([{ listen: 6380, master: node(7000, { pasword: 'x' }) }]), [
    /^\[0\]\.master\.pasword: unknown key \(did you mean "password"\?\); allowed keys are host, port, weight, username, password, backendTls$/,
  ]);
});

t.test('bad port type', async (t) => {
  t.same(problemsOf([listener(6380, { slave: [node(7001), { host: 'h', port: 'abc' }] })]), [
    '[0].slave[1].port: must be an integer 1-65535, got "abc"',
  ]);
  t.same(problemsOf({ listeners: [listener(6380, { slave: [node(7001), { host: 'h', port: 'abc' }] })] }), [
    'listeners[0].slave[1].port: must be an integer 1-65535, got "abc"',
  ]);
  t.same(problemsOf([{ listen: '6380', master: node(7000) }]), ['[0].listen: must be an integer 1-65535, got "6380"']);
  t.same(problemsOf([{ listen: 6380.5, master: node(7000) }]), ['[0].listen: must be an integer 1-65535, got 6380.5']);
});

t.test('port out of range', async (t) => {
  t.same(problemsOf([{ listen: 0, master: node(70000) }]), [
    '[0].listen: must be an integer 1-65535, got 0',
    '[0].master.port: must be an integer 1-65535, got 70000',
  ]);
});

t.test('missing master', async (t) => {
  t.same(problemsOf([{ listen: 6380, slave: [] }]), [
    '[0]: needs "master" (the master\'s address, like {"host": "10.0.0.1", "port": 6379}) or "sentinel" (to follow a Sentinel-managed master)',
  ]);
  t.same(problemsOf([{ listen: 6380, master: { host: 'h' } }]), [
    '[0].master.port: required key is missing; must be an integer 1-65535',
  ]);
  t.same(problemsOf([{ listen: 6380, master: 'h:1' }]), [
    '[0].master: must be an object like {"host": "10.0.0.1", "port": 6379}, got "h:1"',
  ]);
});

t.test('sentinel', async (t) => {
  const sentinel = { masterName: 'mymaster', nodes: [{ host: '10.0.0.5', port: 26379 }], password: 's3cret' };
  const l = normalizeConfig([{ listen: 6380, sentinel, slave: [node(7001)], backendPassword: 'pw' }]).listeners[0]!;
  t.same(l.sentinel, sentinel);
  t.equal(l.master, undefined);
  t.same(l.replicas, [{ host: '127.0.0.1', port: 7001, weight: 1, password: 'pw' }]);
  t.same(problemsOf([{ listen: 6380, master: node(7000), sentinel }]), [
    '[0].sentinel: is set together with "master"; a listener follows either a fixed master or Sentinel: remove one',
  ]);
  t.same(problemsOf([{ listen: 6380, sentinel: { masterName: 'm', nodes: [] } }]), [
    '[0].sentinel.nodes: must be a non-empty array of Sentinels like [{"host": "10.0.0.5", "port": 26379}], got an empty array',
  ]);
  const [p] = problemsOf([{ listen: 6380, sentinel: { masterName: 'm', nodes: [{ host: 'h', port: 1 }], master: 'x' } }]);
  t.match(p, /^\[0\]\.sentinel\.master: unknown key; allowed keys are masterName, nodes, username, password/);
});

t.test('admin', async (t) => {
  const config = normalizeConfig({ admin: { listen: 9121 }, listeners: [listener(6380)] });
  t.same(config.admin, { listen: 9121, bind: '127.0.0.1' });
  t.equal(normalizeConfig([listener(6380)]).admin, undefined, 'none unless asked for');
  t.same(problemsOf({ admin: { listen: 6380 }, listeners: [listener(6380)] }), [
    'admin.listen: port 6380 is already used by listeners[0].listen; the admin server needs its own port',
  ]);
  const [p] = problemsOf({ admin: { port: 9121 }, listeners: [listener(6380)] });
  t.match(p, /^admin/);
});

t.test('workers', async (t) => {
  t.equal(normalizeConfig([listener(6380)]).workers, 1, 'one process unless asked for');
  t.equal(normalizeConfig({ workers: 4, listeners: [listener(6380)] }).workers, 4);
  const auto = normalizeConfig({ workers: 'auto', listeners: [listener(6380)] }).workers;
  t.equal(auto, Math.min(os.availableParallelism(), 64), `"auto": one per available core (${auto})`);
  for (const bad of [0, -1, 65, 2.5, 'all', true]) {
    const [p, ...rest] = problemsOf({ workers: bad, listeners: [listener(6380)] });
    t.same(rest, []);
    t.match(p, /^workers: must be a number of processes 1-64, or "auto" \(one per available core\)/, `workers: ${JSON.stringify(bad)} -> ${p}`);
  }
});

t.test('bad readPolicy', async (t) => {
  t.same(problemsOf([listener(6380, { readPolicy: 'slaves' })]), [
    '[0].readPolicy: must be one of replica, prefer-replica, master, any, got "slaves"',
  ]);
  t.same(problemsOf({ defaults: { readPolicy: 1 }, listeners: [listener(6380)] }), [
    'defaults.readPolicy: must be one of replica, prefer-replica, master, any, got 1',
  ]);
});

t.test('duplicate listen', async (t) => {
  t.same(problemsOf([listener(6380), listener(6381), listener(6380)]), [
    '[2].listen: port 6380 is already used by [0].listen; every listener needs its own port',
  ]);
  t.same(problemsOf({ listeners: [listener(6380), listener(6380)] }), [
    'listeners[1].listen: port 6380 is already used by listeners[0].listen; every listener needs its own port',
  ]);
});

t.test('bad weight', async (t) => {
  t.same(problemsOf([listener(6380, { slave: [node(7001, { weight: -1 }), node(7002, { weight: 1.5 }), node(7003, { weight: '2' })] })]), [
    '[0].slave[0].weight: must be an integer 0-1000 (0 = never read from this node), got -1',
    '[0].slave[1].weight: must be an integer 0-1000 (0 = never read from this node), got 1.5',
    '[0].slave[2].weight: must be an integer 0-1000 (0 = never read from this node), got "2"',
  ]);
});

t.test('bad nested user', async (t) => {
  t.same(
    problemsOf([listener(6380, { users: [{ username: 'a', password: 'x' }, { username: 'b' }, { username: '', password: 5, role: 'x' }] })]),
    [
      '[0].users[1].password: required key is missing; must be a non-empty string',
      '[0].users[2].username: must be a non-empty string without spaces, got ""',
      '[0].users[2].password: must be a non-empty string, got a number',
      '[0].users[2].role: unknown key; allowed keys are username, password',
    ],
  );
  t.same(problemsOf([listener(6380, { users: [{ username: 'a', password: 'x' }, { username: 'a', password: 'y' }] })]), [
    '[0].users[1].username: "a" is already listed at [0].users[0]; usernames must be unique',
  ]);
});

t.test('passwords are never echoed', async (t) => {
  const problems = problemsOf([listener(6380, { password: 12345678, master: node(7000, { password: ['s3cret'] }) })]);
  t.same(problems, [
    '[0].master.password: must be a non-empty string, got an array',
    '[0].password: must be a non-empty string (the password clients AUTH with), got a number',
  ]);
  t.notMatch(problems.join('\n'), /12345678|s3cret/);
});

t.test('several problems: one line each, in file order, no duplicates', async (t) => {
  const problems = problemsOf({
    logLevel: 'loud',
    listeners: [
      { listen: 'x', master: { host: 'h', port: 1, weight: 2000 }, readPolicy: 'slaves', slave: [{ port: 0 }] },
    ],
  });
  t.same(problems, [
    'logLevel: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    'listeners[0].listen: must be an integer 1-65535, got "x"',
    'listeners[0].master.weight: must be an integer 0-1000 (0 = never read from this node), got 2000',
    'listeners[0].readPolicy: must be one of replica, prefer-replica, master, any, got "slaves"',
    'listeners[0].slave[0].port: must be an integer 1-65535, got 0',
    'listeners[0].slave[0].host: required key is missing; must be a host name or IP address (a non-empty string without spaces)',
  ]);
});

t.test('top-level shape', async (t) => {
  t.match(problemsOf(42), [/^\(top level\): must be an array of listeners .* got 42$/]);
  t.match(problemsOf([]), ['(top level): must be a non-empty array of listeners, got an empty array']);
  t.match(problemsOf({ listeners: [] }), ['listeners: must be a non-empty array of listeners, got an empty array']);
  t.match(problemsOf({}), ['listeners: required key is missing; must be a non-empty array of listeners']);
  t.match(problemsOf(listener(6380)), [/^\(top level\): looks like a single listener; put it in an array/]);
});

t.test('other semantic checks', async (t) => {
  t.same(problemsOf([listener(6380, { slave: [node(7001), node(7001)] })]), [
    '[0].slave[1]: 127.0.0.1:7001 is already listed as [0].slave[0]; list each node once',
  ]);
  t.same(problemsOf([listener(6380, { master: node(6380) })]), [
    "[0].master.port: 127.0.0.1:6380 is the proxy's own [0].listen; a node must be a Redis server",
  ]);
  t.same(problemsOf([listener(6380, { master: node(7000, { username: 'u' }) })]), [
    '[0].master.username: is set without "password"; AUTH needs both (add "password" to this node)',
  ]);
  t.same(problemsOf([listener(6380, { backendUsername: 'u' })]), [
    '[0].backendUsername: is set without "backendPassword"; AUTH needs both',
  ]);
  t.same(problemsOf([listener(6380, { clientOutputLimit: 100, clientOutputPause: 1000 })]), [
    '[0].clientOutputLimit: must be 0 or at least clientOutputPause (1000), got 100',
  ]);
  t.same(problemsOf([listener(6380, { name: 'a' }), listener(6381, { name: 'a' })]), [
    '[1].name: listener name "a" is already used by [0]; names must be unique (set "name")',
  ]);
  t.same(
    problemsOf([listener(6380, { denyCommands: ['config set get', 'flush all!'] })]).map((p) => p.split(':')[0]),
    ['[0].denyCommands[0]', '[0].denyCommands[1]'],
  );
});

t.test('loadConfig: file problems', async (t) => {
  const dir = t.testdir({
    'trailing.json': '[\n  { "listen": 6380,\n    "master": { "host": "h", "port": 1 },\n  }\n]\n',
    'truncated.json': '[ { "listen": 6380',
    'empty.json': '',
    'bad.json': JSON.stringify([{ listen: 6380, master: { host: 'h', port: 'abc' } }]),
  });
  const fail = (file: string): ConfigError => {
    try {
      loadConfig(file);
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error(`${file} was accepted`);
  };

  const missing = fail(path.join(dir, 'nope.json'));
  t.same(missing.problems, ['cannot read the file: no such file (ENOENT)']);
  t.equal(missing.file, path.join(dir, 'nope.json'));
  t.match(missing.message, `invalid config file ${path.join(dir, 'nope.json')}:`);

  const trailing = fail(path.join(dir, 'trailing.json'));
  t.equal(trailing.problems.length, 1);
  t.match(trailing.problems[0], /^invalid JSON at line 4, column 3 \(position 66\): .*\(JSON allows no trailing comma before "}"\)$/);

  t.match(fail(path.join(dir, 'truncated.json')).problems, [/^invalid JSON at line 1, column 19 \(position 18\): .*\(the file ends before the JSON is complete: is a bracket not closed\?\)$/]);
  t.same(fail(path.join(dir, 'empty.json')).problems, ['invalid JSON: the file is empty']);
  t.same(fail(path.join(dir, 'bad.json')).problems, ['[0].master.port: must be an integer 1-65535, got "abc"']);
  t.match(fail(dir).problems, [/^cannot read the file: it is a directory/]);
});

t.test('loadConfig: a BOM is fine', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'bom.json');
  writeFileSync(file, '\ufeff' + readFileSync('config/example.json', 'utf8'));
  t.equal(loadConfig(file).listeners.length, 2);
});

// ---------------------------------------------------------------- TLS

const pki = makePki();

t.test('tls: a listener\'s certificate, key and CA are read into the config', async (t) => {
  const l = normalizeConfig([listener(6380, { tls: { cert: pki.server.cert, key: pki.server.key } })]).listeners[0]!;
  t.same(l.tls, {
    certFile: pki.server.cert,
    keyFile: pki.server.key,
    clientAuth: 'none',
    cert: pki.read(pki.server.cert),
    key: pki.read(pki.server.key),
  });
  const auth = normalizeConfig([
    listener(6380, { tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca, clientAuth: 'require' } }),
  ]).listeners[0]!;
  t.equal(auth.tls?.clientAuth, 'require');
  t.equal(auth.tls?.caFile, pki.ca);
  t.equal(auth.tls?.ca, pki.read(pki.ca));
  t.notOk('tls' in normalizeConfig([listener(6380)]).listeners[0]!, 'no tls: plain');
  t.match(
    problemsOf({ defaults: { tls: { cert: pki.server.cert, key: pki.server.key } }, listeners: [listener(6380)] }),
    [/^defaults\.tls: unknown key; allowed keys are /],
    'tls is per listener, not in defaults',
  );
});

t.test('tls: files are read again by each normalizeConfig (a reload sees renewed files)', async (t) => {
  const dir = t.testdir({});
  const cert = path.join(dir, 'proxy.crt');
  const key = path.join(dir, 'proxy.key');
  copyFileSync(pki.server.cert, cert);
  copyFileSync(pki.server.key, key);
  const raw = [listener(6380, { tls: { cert, key } })];
  t.equal(normalizeConfig(raw).listeners[0]!.tls?.cert, pki.read(pki.server.cert));
  copyFileSync(pki.server2.cert, cert);
  copyFileSync(pki.server2.key, key);
  t.equal(normalizeConfig(raw).listeners[0]!.tls?.cert, pki.read(pki.server2.cert));
});

t.test('tls: relative paths are resolved against the config file\'s directory', async (t) => {
  const dir = t.testdir({ certs: {} });
  copyFileSync(pki.server.cert, path.join(dir, 'certs', 'proxy.crt'));
  copyFileSync(pki.server.key, path.join(dir, 'certs', 'proxy.key'));
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify([listener(6380, { tls: { cert: 'certs/proxy.crt', key: 'certs/proxy.key' } })]));
  t.equal(loadConfig(file).listeners[0]!.tls?.certFile, path.join(dir, 'certs', 'proxy.crt'));
  t.same(
    problemsOf([listener(6380, { tls: { cert: 'certs/proxy.crt', key: 'certs/proxy.key' } })]).map((p) => p.split(':')[0]),
    ['[0].tls.cert', '[0].tls.key'],
    'normalizeConfig resolves against the working directory',
  );
  const normalized = normalizeConfig([listener(6380, { tls: { cert: 'certs/proxy.crt', key: 'certs/proxy.key' } })], { baseDir: dir });
  t.equal(normalized.listeners[0]!.tls?.keyFile, path.join(dir, 'certs', 'proxy.key'), 'or against baseDir');
});

t.test('backendTls: node > listener > defaults; true is TLS with the system CAs; false is plain', async (t) => {
  const config = normalizeConfig({
    defaults: { backendTls: true },
    listeners: [
      listener(6380, { slave: [node(7001), node(7002, { backendTls: false }), node(7003, { backendTls: { ca: pki.ca } })] }),
      listener(6381, { backendTls: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key, servername: 'localhost' } }),
      listener(6382, { backendTls: false, master: node(7000, { backendTls: true }) }),
    ],
  });
  const [a, b, c] = config.listeners as [ProxyConfig['listeners'][0], ProxyConfig['listeners'][0], ProxyConfig['listeners'][0]];
  t.same(a.backendTls, { rejectUnauthorized: true }, 'defaults.backendTls: true');
  t.same(a.master!.tls, { rejectUnauthorized: true });
  t.same(a.replicas[0]!.tls, { rejectUnauthorized: true });
  t.notOk('tls' in a.replicas[1]!, 'a node\'s false overrides the listener\'s');
  t.same(a.replicas[2]!.tls, { rejectUnauthorized: true, caFile: pki.ca, ca: pki.read(pki.ca) }, 'a node\'s object overrides');
  const own = {
    rejectUnauthorized: true,
    caFile: pki.ca,
    ca: pki.read(pki.ca),
    certFile: pki.client.cert,
    keyFile: pki.client.key,
    cert: pki.read(pki.client.cert),
    key: pki.read(pki.client.key),
    servername: 'localhost',
  };
  t.same(b.backendTls, own, 'the listener\'s object overrides defaults');
  t.same(b.master!.tls, own);
  t.same(b.replicas[0]!.tls, own);
  t.notOk('backendTls' in c, 'the listener\'s false overrides defaults');
  t.notOk('tls' in c.replicas[0]!);
  t.same(c.master!.tls, { rejectUnauthorized: true });
  const off = normalizeConfig([listener(6380, { backendTls: { rejectUnauthorized: false } })]).listeners[0]!;
  t.same(off.master!.tls, { rejectUnauthorized: false });
});

t.test('tls config errors name the key and the fix', async (t) => {
  const missing = path.join(pki.dir, 'nope.pem');
  t.same(problemsOf([listener(6380, { tls: { cert: missing, key: pki.server.key } })]), [
    `[0].tls.cert: cannot read "${missing}": no such file (ENOENT)`,
  ]);
  t.same(problemsOf({ listeners: [listener(6380, { tls: { cert: pki.server.cert, key: pki.client.key } })] }), [
    `listeners[0].tls.key: does not match listeners[0].tls.cert: "${pki.client.key}" is not the private key of "${pki.server.cert}" ` +
      '(compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)',
  ]);
  t.match(problemsOf([listener(6380, { tls: { cert: pki.server.cert, key: pki.server.key, certs: 'x' } })]), [
    /^\[0\]\.tls\.certs: unknown key \(did you mean "cert"\?\); allowed keys are cert, key, ca, clientAuth$/,
  ]);
  t.same(problemsOf([listener(6380, { tls: { cert: pki.server.cert, key: pki.server.key, clientAuth: 'yes' } })]), [
    '[0].tls.clientAuth: must be one of none, request, require, got "yes"',
  ]);
  t.same(problemsOf([listener(6380, { tls: { cert: pki.server.cert } })]), [
    '[0].tls.key: required key is missing; must be a file path (a non-empty string: the private key of "cert", PEM)',
  ]);
  t.same(problemsOf([listener(6380, { tls: { cert: pki.server.cert, key: pki.server.key, clientAuth: 'require' } })]), [
    '[0].tls.clientAuth: "require" needs "ca" (the CA certificates that sign client certificates); add "ca" to [0].tls',
  ]);
  t.match(problemsOf([listener(6380, { tls: { cert: pki.server.key, key: pki.server.key } })]), [
    /^\[0\]\.tls\.cert: ".*server\.key" holds no PEM certificate \(.*\); it must begin with -----BEGIN CERTIFICATE-----$/,
  ]);
  t.match(problemsOf([listener(6380, { tls: { cert: pki.server.cert, key: pki.server.cert } })]), [
    /^\[0\]\.tls\.key: ".*server\.crt" holds no PEM private key \(.*\); it must begin with -----BEGIN PRIVATE KEY-----/,
  ]);
  t.match(problemsOf([listener(6380, { tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.server.key } })]), [
    /^\[0\]\.tls\.ca: ".*server\.key" holds no PEM certificate; it must hold one or more -----BEGIN CERTIFICATE----- blocks$/,
  ]);
  const encrypted = path.join(pki.dir, 'encrypted.key');
  execFileSync('openssl', ['pkey', '-in', pki.server.key, '-aes256', '-passout', 'pass:x', '-out', encrypted]);
  t.same(problemsOf([listener(6380, { tls: { cert: pki.server.cert, key: encrypted } })]), [
    `[0].tls.key: "${encrypted}" is encrypted; the proxy takes keys without a passphrase (decrypt it with \`openssl pkey -in KEY -out KEY.plain\`)`,
  ]);
  t.match(problemsOf([listener(6380, { tls: { cert: pki.dir, key: pki.server.key } })]), [
    /^\[0\]\.tls\.cert: cannot read ".*": it is a directory, not a file \(EISDIR\)$/,
  ]);
});

t.test('backendTls config errors', async (t) => {
  t.same(problemsOf([listener(6380, { backendTls: 'yes' })]), [
    '[0].backendTls: must be true, false, or an object like {"ca": "/etc/redis-proxy/redis-ca.crt"}, got "yes"',
  ]);
  t.match(problemsOf([listener(6380, { master: node(7000, { backendTls: { ca: pki.ca, verify: false } }) })]), [
    /^\[0\]\.master\.backendTls\.verify: unknown key; allowed keys are ca, cert, key, servername, rejectUnauthorized$/,
  ]);
  t.same(problemsOf([listener(6380, { backendTls: { cert: pki.client.cert } })]), [
    '[0].backendTls.cert: is set without "key"; a client certificate needs its private key (add "key")',
  ]);
  t.same(problemsOf([listener(6380, { backendTls: { key: pki.client.key } })]), [
    '[0].backendTls.key: is set without "cert"; add the client certificate "cert" that this key belongs to',
  ]);
  t.match(problemsOf([listener(6380, { backendTls: { cert: pki.client.cert, key: pki.server.key } })]), [
    /^\[0\]\.backendTls\.key: does not match \[0\]\.backendTls\.cert: /,
  ]);
  t.same(problemsOf([listener(6380, { backendTls: { servername: '127.0.0.1' } })]), [
    "[0].backendTls.servername: must be a host name, not an IP address (TLS sends no IP address as SNI); leave it out to check the node's address against the certificate's IP SANs",
  ]);
  const missing = path.join(pki.dir, 'missing-ca.pem');
  t.same(
    problemsOf({ defaults: { backendTls: { ca: missing } }, listeners: [listener(6380), listener(6381)] }),
    [`defaults.backendTls.ca: cannot read "${missing}": no such file (ENOENT)`],
    'a mistake in defaults shows once',
  );
  t.same(
    problemsOf([listener(6380, { backendTls: { ca: missing }, slave: [node(7001, { backendTls: { ca: missing } })] })]),
    [
      `[0].slave[0].backendTls.ca: cannot read "${missing}": no such file (ENOENT)`,
      `[0].backendTls.ca: cannot read "${missing}": no such file (ENOENT)`,
    ],
  );
});

t.test('loadConfig: a TLS file problem names the config file and the key', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'tls.json');
  writeFileSync(file, JSON.stringify({ listeners: [listener(6380, { tls: { cert: 'gone.crt', key: 'gone.key' } })] }));
  try {
    loadConfig(file);
    t.fail('accepted');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    t.equal(err.file, file);
    t.same(err.problems, [
      `listeners[0].tls.cert: cannot read "gone.crt" (${path.join(dir, 'gone.crt')}): no such file (ENOENT)`,
      `listeners[0].tls.key: cannot read "gone.key" (${path.join(dir, 'gone.key')}): no such file (ENOENT)`,
    ]);
  }
});

t.test('a logged config shows the TLS file paths, never the PEM contents', async (t) => {
  const config = normalizeConfig({
    defaults: { backendTls: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key } },
    listeners: [listener(6380, { tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca, clientAuth: 'request' } })],
  });
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger('debug', sink);
  logger.debug({ config }, 'config loaded'); // as cli.ts logs it
  logger.info({ listener: config.listeners[0] }, 'a listener');
  logger.info({ node: config.listeners[0]!.master }, 'a node');
  await new Promise((resolve) => setImmediate(resolve));
  const out = lines.join('');
  t.equal(lines.length, 3);
  t.notMatch(out, /BEGIN/, 'no PEM block in the log');
  t.match(out, JSON.stringify(pki.server.key), 'the key file\'s path is shown');
  t.match(out, '"key":"[redacted]"');
});

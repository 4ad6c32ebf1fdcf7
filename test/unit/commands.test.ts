import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  CMD_ADMIN,
  CMD_BLOCKING,
  CMD_DENYOOM,
  CMD_FAST,
  CMD_LOADING,
  CMD_MOVABLEKEYS,
  CMD_NOSCRIPT,
  CMD_PUBSUB,
  CMD_READONLY,
  CMD_STALE,
  CMD_WRITE,
  learnCommands,
  lookupCommand,
  resolveSubcommand,
  type CommandInfo,
} from '../../src/commands/index.js';

interface Row {
  name: string;
  arity: number;
  flags: string[];
  firstKey: number;
  lastKey: number;
  step: number;
  group: string;
}
const table = JSON.parse(
  readFileSync(new URL('../../src/commands/table.json', import.meta.url), 'utf8'),
) as { redisVersion: string; commands: Row[] };

function cmd(name: string): CommandInfo {
  const c = lookupCommand(name);
  if (c === undefined) throw new Error(`unknown command ${name}`);
  return c;
}
function sub(container: string, name: string): CommandInfo {
  const s = resolveSubcommand(cmd(container), name);
  if (s.name !== `${container.toLowerCase()}|${name.toLowerCase()}`) {
    throw new Error(`no subcommand ${container}|${name}`);
  }
  return s;
}
const has = (c: CommandInfo, bit: number) => (c.flags & bit) !== 0;

t.test('flag bits are distinct powers of two', async (t) => {
  const bits = [CMD_READONLY, CMD_WRITE, CMD_ADMIN, CMD_PUBSUB, CMD_NOSCRIPT, CMD_BLOCKING,
    CMD_LOADING, CMD_STALE, CMD_FAST, CMD_MOVABLEKEYS, CMD_DENYOOM];
  t.equal(new Set(bits).size, bits.length);
  for (const b of bits) t.equal(b & (b - 1), 0, `${b} is a power of two`);
});

t.test('plain commands', async (t) => {
  const get = cmd('get');
  t.match(get, { name: 'get', arity: 2, firstKey: 1, lastKey: 1, step: 1, group: 'string', subcommands: null });
  t.ok(has(get, CMD_READONLY), 'GET readonly');
  t.ok(has(get, CMD_FAST), 'GET fast');
  t.notOk(has(get, CMD_WRITE), 'GET not write');

  const set = cmd('set');
  t.ok(has(set, CMD_WRITE), 'SET write');
  t.ok(has(set, CMD_DENYOOM), 'SET denyoom');
  t.notOk(has(set, CMD_READONLY), 'SET not readonly');
  t.equal(set.arity, -3);

  const mset = cmd('mset');
  t.match(mset, { firstKey: 1, lastKey: -1, step: 2 });

  const blpop = cmd('blpop');
  t.ok(has(blpop, CMD_BLOCKING), 'BLPOP blocking');
  t.ok(has(blpop, CMD_WRITE), 'BLPOP write');

  t.ok(has(cmd('subscribe'), CMD_PUBSUB), 'SUBSCRIBE pubsub');
  t.notOk(has(cmd('subscribe'), CMD_READONLY | CMD_WRITE), 'SUBSCRIBE neither read nor write');
  t.ok(has(cmd('publish'), CMD_PUBSUB), 'PUBLISH pubsub');
});

t.test('scripting: _RO variants are reads, the others are not', async (t) => {
  for (const name of ['eval_ro', 'evalsha_ro', 'fcall_ro']) {
    t.ok(has(cmd(name), CMD_READONLY), `${name} readonly`);
    t.ok(has(cmd(name), CMD_MOVABLEKEYS), `${name} movablekeys`);
  }
  for (const name of ['eval', 'evalsha', 'fcall']) {
    t.notOk(has(cmd(name), CMD_READONLY), `${name} not readonly`);
    // Redis 7.0 does not flag EVAL as write either: the script decides.
    t.notOk(has(cmd(name), CMD_WRITE), `${name} not flagged write`);
  }
});

t.test('commands that look like reads but are not readonly in 7.0', async (t) => {
  for (const name of ['sort', 'georadius', 'georadiusbymember', 'xreadgroup', 'getex', 'getdel', 'bitfield']) {
    t.ok(has(cmd(name), CMD_WRITE), `${name} write`);
  }
  for (const name of ['info', 'time', 'ping', 'echo', 'lastsave', 'wait', 'role']) {
    t.notOk(has(cmd(name), CMD_READONLY), `${name} not readonly`);
  }
  for (const name of ['sort_ro', 'georadius_ro', 'bitfield_ro', 'xread', 'dbsize', 'scan', 'keys', 'pfcount']) {
    t.ok(has(cmd(name), CMD_READONLY), `${name} readonly`);
  }
});

t.test('subcommands', async (t) => {
  const configGet = sub('config', 'get');
  t.notOk(has(configGet, CMD_READONLY), 'CONFIG GET is not readonly');
  t.ok(has(configGet, CMD_ADMIN), 'CONFIG GET admin');
  t.ok(has(configGet, CMD_NOSCRIPT), 'CONFIG GET noscript');
  t.ok(has(configGet, CMD_LOADING), 'CONFIG GET loading');
  t.ok(has(configGet, CMD_STALE), 'CONFIG GET stale');
  t.equal(configGet.group, 'server');

  const enc = sub('object', 'encoding');
  t.ok(has(enc, CMD_READONLY), 'OBJECT ENCODING readonly');
  t.match(enc, { arity: 3, firstKey: 2, lastKey: 2, step: 1, group: 'generic' });

  t.ok(has(sub('xinfo', 'stream'), CMD_READONLY), 'XINFO STREAM readonly');
  t.ok(has(sub('memory', 'usage'), CMD_READONLY), 'MEMORY USAGE readonly');
  t.notOk(has(sub('memory', 'stats'), CMD_READONLY), 'MEMORY STATS not readonly');
  t.notOk(has(sub('client', 'setname'), CMD_READONLY | CMD_WRITE), 'CLIENT SETNAME neither');
  t.ok(has(sub('config', 'set'), CMD_ADMIN), 'CONFIG SET admin');

  const config = cmd('config');
  t.ok(config.subcommands instanceof Map);
  t.ok(config.subcommands?.has('get'), 'keyed by lowercase subcommand name');
  t.notOk(config.subcommands?.has('GET'), 'public map is lowercase only');
  t.equal(config.flags, 0, 'container has no flags of its own in 7.0');
  t.equal(resolveSubcommand(config, undefined), config, 'no subcommand -> container');
  t.equal(resolveSubcommand(config, 'nosuchsub'), config, 'unknown subcommand -> container');
  t.equal(resolveSubcommand(cmd('get'), 'foo'), cmd('get'), 'non-container -> itself');
});

t.test('lookups are case-insensitive; unknown is undefined', async (t) => {
  t.equal(lookupCommand('GET'), lookupCommand('get'));
  t.equal(lookupCommand('Get'), lookupCommand('get'));
  t.equal(lookupCommand('gEt'), lookupCommand('get'));
  t.equal(resolveSubcommand(cmd('CONFIG'), 'GET'), resolveSubcommand(cmd('config'), 'get'));
  t.equal(resolveSubcommand(cmd('Object'), 'Encoding').name, 'object|encoding');
  t.equal(lookupCommand('nosuchcommand'), undefined);
  t.equal(lookupCommand(''), undefined);
  t.equal(lookupCommand('config|get'), undefined, 'subcommands are not top-level names');
});

t.test('every command of the real server has an entry', async (t) => {
  const top = table.commands.filter((r) => !r.name.includes('|'));
  const subs = table.commands.filter((r) => r.name.includes('|'));
  t.ok(top.length > 200, `${top.length} commands`);
  t.ok(subs.length > 100, `${subs.length} subcommands`);
  const missing: string[] = [];
  for (const r of top) {
    const c = lookupCommand(r.name.toUpperCase());
    if (c === undefined || c.name !== r.name || c.arity !== r.arity) missing.push(r.name);
  }
  for (const r of subs) {
    const [container, name] = r.name.split('|') as [string, string];
    const parent = lookupCommand(container);
    const s = parent === undefined ? undefined : resolveSubcommand(parent, name);
    if (s === undefined || s.name !== r.name || s.firstKey !== r.firstKey) missing.push(r.name);
  }
  t.same(missing, [], 'no command or subcommand missing');
  for (const name of ['config|get', 'config|set', 'object|encoding', 'xinfo|stream', 'client|setname',
    'memory|usage', 'script|load', 'function|list', 'command|info', 'cluster|slots', 'acl|whoami']) {
    t.ok(subs.some((r) => r.name === name), `${name} in table.json`);
  }
  t.same(
    table.commands.map((r) => r.name),
    table.commands.map((r) => r.name).slice().sort(),
    'table.json is sorted',
  );
});

t.test('learnCommands', async (t) => {
  t.equal(lookupCommand('json.get'), undefined, 'not known before');
  // Shaped like redis-parser's decoding of `COMMAND INFO JSON.GET JSON.SET NOPE FT.CONFIG`
  // from a server with the RedisJSON / RediSearch modules (RESP2, Redis 7).
  const reply: unknown = [
    ['json.get', -2, ['readonly'], 1, 1, 1, ['@read', '@json', '@slow'], [],
      [['notes', '', 'flags', ['RO'], 'begin_search', ['type', 'index', 'spec', ['index', 1]],
        'find_keys', ['type', 'range', 'spec', ['lastkey', 0, 'keystep', 1, 'limit', 0]]]], []],
    [Buffer.from('JSON.SET'), -4, [Buffer.from('write'), Buffer.from('denyoom')], 1, 1, 1, ['@write'], [], [], []],
    null,
    ['ft.config', -2, [], 0, 0, 0, [], [], [], [
      ['ft.config|get', 3, ['readonly', 'admin'], 0, 0, 0, [], [], [], []],
      ['ft.config|set', 4, ['admin'], 0, 0, 0, [], [], [], []],
    ]],
    // malformed entries: ignored without throwing
    'garbage',
    ['bad.arity', 'x', ['readonly'], 1, 1, 1],
    ['bad.flags', 2, 'readonly', 1, 1, 1],
    ['short', 2],
    [42, 2, [], 0, 0, 0],
  ];
  t.equal(learnCommands(reply), 3);
  const jget = cmd('JSON.GET');
  t.match(jget, { name: 'json.get', arity: -2, firstKey: 1, lastKey: 1, step: 1, group: '', subcommands: null });
  t.ok(has(jget, CMD_READONLY));
  t.ok(has(cmd('json.set'), CMD_WRITE | CMD_DENYOOM));
  t.notOk(has(cmd('json.set'), CMD_READONLY));
  t.ok(has(resolveSubcommand(cmd('FT.CONFIG'), 'GET'), CMD_READONLY), 'learned subcommand resolves');
  t.equal(resolveSubcommand(cmd('ft.config'), 'get').name, 'ft.config|get');
  t.equal(lookupCommand('bad.arity'), undefined);
  t.equal(lookupCommand('bad.flags'), undefined);

  // Replacing a static entry keeps its group.
  t.equal(learnCommands([['get', 2, ['readonly', 'fast'], 1, 1, 1, [], [], [], []]]), 1);
  t.equal(cmd('get').group, 'string');
  t.ok(has(cmd('GET'), CMD_READONLY));

  t.equal(learnCommands(undefined), 0);
  t.equal(learnCommands('nope'), 0);
  t.equal(learnCommands({}), 0);
  t.equal(learnCommands([]), 0);
});

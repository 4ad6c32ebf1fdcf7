/**
 * DenyList.verify against a real redis-server: ACL DRYRUN tells whether Redis refuses a
 * denied command to the ACL user the proxy authenticates as. Nodes are the backend's own
 * ControlClient (what `Node.call` uses), authenticated as that user.
 * Source: https://redis.io/docs/latest/commands/acl-dryrun/
 */
import t from 'tap';
import { ControlClient } from '../../src/backend/control-client.js';
import { DenyList, type DryRunNode } from '../../src/server/deny-list.js';
import { freePort } from '../helpers/clients.js';
import { startRedis } from '../helpers/redis.js';

const server = await startRedis();
const admin = server.client();
await admin.call('ACL', 'SETUSER', 'proxy', 'on', '>pw', '~*', '&*', '+@all', '-flushall');
await admin.call('ACL', 'SETUSER', 'guarded', 'on', '>pw', '~*', '&*', '+@all', '-flushall', '-slowlog', '-object|encoding');
await admin.call('ACL', 'SETUSER', 'partial', 'on', '>pw', '~*', '&*', '+@all', '-slowlog|get', '-slowlog|len');
await admin.call('ACL', 'SETUSER', 'keyed', 'on', '>pw', '~a*', '&*', '+@all', '-flushall');
await admin.call('ACL', 'SETUSER', 'noacl', 'on', '>pw', '~*', '&*', '+@all', '-flushall', '-acl');

/** A node reached as `username` (undefined: no AUTH, the default user), like a backend Node. */
function nodeAs(username: string | undefined, port = server.port): DryRunNode {
  const client = new ControlClient({
    host: '127.0.0.1',
    port,
    ...(username === undefined ? {} : { username, password: 'pw' }),
    timeout: 2000,
  });
  t.teardown(() => client.close());
  return { label: `master 127.0.0.1:${port}`, username, call: (...args) => client.call(...args) };
}

const settings = (denyCommands: string[]) => ({ denyCommands, allowTopologyCommands: false, scriptsBypassDenyCommands: false });

t.test('enforced: the proxy user is denied the command (-flushall)', async (t) => {
  const d = new DenyList(settings(['flushall', 'debug']));
  t.same(d.scriptReachable, ['flushall'], 'DEBUG is noscript');
  t.same(await d.verify([nodeAs('proxy')]), { enforced: true, unenforced: [] });
  t.equal(d.enforcedByRedis, true);
  t.equal(d.scriptRefusal('main'), null);
});

t.test('not enforced: the default user may run everything', async (t) => {
  const d = new DenyList(settings(['flushall']));
  const result = await d.verify([nodeAs(undefined)]);
  t.same(result, {
    enforced: false,
    unenforced: [{ entry: 'flushall', command: 'flushall', node: `master 127.0.0.1:${server.port}`, reason: 'ACL DRYRUN replied: OK' }],
  });
  t.match(d.scriptRefusal('main'), /^ERR redis-proxy: scripts are refused on listener 'main': its denyCommands \(flushall\)/);
});

t.test('not enforced: the node call fails', async (t) => {
  const d = new DenyList(settings(['flushall']));
  const result = await d.verify([nodeAs('proxy'), nodeAs('proxy', await freePort())]);
  t.equal(result.enforced, false);
  t.equal(result.unenforced.length, 1, 'the reachable node enforces it, the other is unknown');
  t.match(result.unenforced[0], { entry: 'flushall', reason: /^ACL DRYRUN failed: / });
  t.not(d.scriptRefusal('main'), null);
});

t.test('containers and subcommands', async (t) => {
  const d = new DenyList(settings(['slowlog', 'object|encoding', 'flushall']));
  t.same(d.scriptReachable, ['slowlog', 'object|encoding', 'flushall']);
  t.same(await d.verify([nodeAs('guarded')]), { enforced: true, unenforced: [] }, '-slowlog covers its subcommands');

  const partly = await d.verify([nodeAs('partial')]);
  t.same(
    partly.unenforced.map((u) => [u.entry, u.command, u.reason]),
    [
      ['slowlog', 'slowlog|reset', 'ACL DRYRUN replied: OK'],
      ['object|encoding', 'object|encoding', 'ACL DRYRUN replied: OK'],
      ['flushall', 'flushall', 'ACL DRYRUN replied: OK'],
    ],
    'denying slowlog|get and slowlog|len leaves SLOWLOG RESET to scripts',
  );
});

t.test('not enforced: a refusal for a key, ACL DRYRUN not permitted, an unknown module command', async (t) => {
  const keyed = new DenyList(settings(['get']));
  t.match((await keyed.verify([nodeAs('keyed')])).unenforced, [
    { entry: 'get', reason: "ACL DRYRUN replied: This user has no permissions to access the 'redis-proxy-dryrun' key" },
  ]);
  const noacl = new DenyList(settings(['flushall']));
  t.match((await noacl.verify([nodeAs('noacl')])).unenforced, [
    { entry: 'flushall', reason: /^ACL DRYRUN failed: NOPERM .*'acl\|dryrun' command/ },
  ]);
  const module = new DenyList(settings(['json.del']));
  t.match((await module.verify([nodeAs('proxy')])).unenforced, [
    { entry: 'json.del', reason: "ACL DRYRUN failed: ERR Command 'json.del' not found" },
  ]);
});

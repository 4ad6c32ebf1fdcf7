/**
 * Module commands: the static command table (Redis 7.0) does not know them; the proxy
 * learns them from the master's COMMAND LIST / COMMAND INFO at start and routes them by
 * their flags. Uses Debian's RediSearch module (package redis-redisearch, installed by
 * .ci/run): FT.SEARCH is flagged readonly, FT.CREATE and FT.ADD write.
 */
import fs from 'node:fs';
import t from 'tap';
import { ioredisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { startReplicaSet, type RedisServer } from '../../helpers/redis.js';
import { waitForReplicaReads } from '../../helpers/stats.js';

const MODULE = '/usr/lib/redis/modules/redisearch.so';

/** calls= of a command in INFO commandstats, matching the name as Redis prints it (module commands keep their case). */
async function calls(server: RedisServer, cmd: string): Promise<number> {
  const stats = await server.info('commandstats');
  const entry = Object.entries(stats).find(([k]) => k.toLowerCase() === `cmdstat_${cmd.toLowerCase()}`);
  const match = entry === undefined ? null : /(?:^|,)calls=(\d+)/.exec(entry[1]);
  return match ? Number(match[1]) : 0;
}

t.test('module commands are learned from the master and routed by their flags', { skip: fs.existsSync(MODULE) ? false : `${MODULE} is not installed (Debian package redis-redisearch; .ci/run installs it)` }, async (t) => {
  const set = await startReplicaSet({ replicas: 1, args: ['--loadmodule', MODULE], t });
  const { port } = await startTestProxy([listenerFor(set.master, set.replicas)], { t });
  const client = ioredisClient(port);
  await waitForReplicaReads(set.replicas, () => client.get('mod:warm'));

  t.equal(await client.call('FT.CREATE', 'mod:idx', 'SCHEMA', 'title', 'TEXT'), 'OK');
  t.equal(await client.call('FT.ADD', 'mod:idx', 'doc1', '1.0', 'FIELDS', 'title', 'hello world'), 'OK');
  t.equal(await calls(set.master, 'FT.CREATE'), 1, 'FT.CREATE (write) ran on the master');
  t.equal(await calls(set.master, 'FT.ADD'), 1, 'FT.ADD (write) ran on the master');

  // FT.SEARCH is readonly: a replica answers it (RediSearch 1.2 does not replicate its
  // index, so the replica's answer is its own error; where it ran is the point here).
  for (let i = 0; i < 4; i++) await client.call('FT.SEARCH', 'mod:idx', 'hello').catch(() => undefined);
  t.equal(await calls(set.replicas[0]!, 'FT.SEARCH'), 4, 'FT.SEARCH ran on the replica');
  t.equal(await calls(set.master, 'FT.SEARCH'), 0, 'and not on the master');
});

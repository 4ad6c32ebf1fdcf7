/**
 * Commands one client must not be able to run through the proxy, because they would
 * break the connections it shares with every other client or the topology it manages.
 *
 * - SYNC, PSYNC and REPLCONF turn a connection into a replication link (Redis starts
 *   streaming an RDB and the replication stream on it). Sent over a shared master
 *   connection, that would corrupt every other session's replies on it. The proxy
 *   answers `-ERR redis-proxy: ... not supported`, the client's connection stays usable,
 *   and another client's 2,000 pipelined INCRs in flight at that moment all get their
 *   right replies.
 * - REPLICAOF, SLAVEOF, FAILOVER and SHUTDOWN change the topology the proxy relies on:
 *   refused by default with an error naming `allowTopologyCommands`, and they never
 *   reach the master (its commandstats show no call, it is up and still a master).
 *   With `allowTopologyCommands: true`, REPLICAOF NO ONE reaches the master.
 */
import t from 'tap';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawCommand, rawConnection, splitReplies, type RawConnection } from '../../helpers/raw.js';
import { startRedis } from '../../helpers/redis.js';
import { show } from '../compat/_helpers.js';
import { sleep } from '../../helpers/wait.js';

const master = await startRedis();
const direct = master.client();
const proxy = await startTestProxy([
  listenerFor(master, [], { name: 'default' }),
  listenerFor(master, [], { name: 'topology', allowTopologyCommands: true }),
]);
const [port, allowPort] = proxy.ports as [number, number];

const text = (bufs: Buffer[]) => Buffer.concat(bufs).toString('latin1');

/** Sends `args` and returns its one reply as text, or what came plus «timeout»/«closed». */
async function ask(conn: RawConnection, args: string[], timeoutMs = 2000): Promise<string> {
  const before = splitReplies(conn.received()).length;
  conn.socket.write(encodeCommand(...args));
  const ok = await conn.waitFor((b) => splitReplies(b).length > before, timeoutMs);
  const got = text(splitReplies(conn.received()).slice(before, before + 1));
  return ok ? got : `${got}${conn.closed ? '«closed»' : '«timeout»'}`;
}

const replicationCommands: [string, string[]][] = [
  ['sync', ['SYNC']],
  ['psync', ['PSYNC', '?', '-1']],
  ['replconf', ['REPLCONF', 'listening-port', '1234']],
];

for (const [name, args] of replicationCommands) {
  for (const order of ['while the pipeline is in flight', 'just before the pipeline'] as const) {
    t.test(`${args.join(' ')} ${order}: refused, and 2,000 pipelined INCRs of another client are unharmed`, async (t) => {
      const key = `rc:n:${name}:${order.split(' ')[0]}`;
      await direct.del(key);
      const N = 2000;
      const pipeliner = await rawConnection(port);
      const offender = await rawConnection(port);
      await ask(offender, ['PING']);
      await ask(pipeliner, ['PING']);
      const incrs = Buffer.concat(Array.from({ length: N }, () => encodeCommand('INCR', key)));
      const pipelineBefore = splitReplies(pipeliner.received()).length;
      let replyPromise: Promise<string>;
      if (order === 'while the pipeline is in flight') {
        pipeliner.socket.write(incrs);
        replyPromise = ask(offender, args);
      } else {
        // Alone on an idle connection, Redis would start a full sync on it.
        replyPromise = ask(offender, args);
        await sleep(5);
        pipeliner.socket.write(incrs);
      }
      const reply = await replyPromise;
      t.match(reply, /^-ERR redis-proxy: /, `${args.join(' ')} -> a proxy error: ${show(reply)}`);
      t.match(reply, /not supported/i, 'the error says it is not supported');
      t.equal(await ask(offender, ['PING']), '+PONG\r\n', 'the connection stays usable');
      t.equal(await ask(offender, ['GET', 'rc:absent']), '$-1\r\n', 'and reads still work');

      const all = await pipeliner.waitFor((b) => splitReplies(b).length >= pipelineBefore + N, 3000);
      const replies = splitReplies(pipeliner.received()).slice(pipelineBefore).map((r) => r.toString('latin1'));
      t.ok(all, `all ${N} INCR replies arrived (got ${replies.length}${pipeliner.closed ? ', connection closed' : ''})`);
      const wrong = replies.findIndex((r, i) => r !== `:${i + 1}\r\n`);
      t.equal(wrong, -1, wrong < 0 ? 'every INCR reply is right, in order' : `reply ${wrong} is ${show(replies[wrong]!)}`);
      t.equal(await direct.get(key), String(N), 'the counter on the master is right');
      t.equal(await ask(pipeliner, ['INCR', key]), `:${N + 1}\r\n`, 'the pipelining client goes on');
      pipeliner.socket.destroy();
      offender.socket.destroy();
    });
  }
}

const topologyCommands: [string, string[]][] = [
  ['replicaof', ['REPLICAOF', 'NO', 'ONE']],
  ['slaveof', ['SLAVEOF', 'NO', 'ONE']],
  ['failover', ['FAILOVER']],
  // Last: if it got through, the master would be gone.
  ['shutdown', ['SHUTDOWN', 'NOSAVE']],
];

t.test('With allowTopologyCommands: true, REPLICAOF NO ONE reaches the master', async (t) => {
  await master.resetStats();
  const c = await rawConnection(allowPort);
  t.equal(await ask(c, ['REPLICAOF', 'NO', 'ONE']), '+OK\r\n', "REPLICAOF NO ONE -> Redis's +OK");
  t.equal(await master.commandCalls('replicaof'), 1, 'the master ran it (cmdstat_replicaof calls=1)');
  c.socket.destroy();
});

for (const [name, args] of topologyCommands) {
  t.test(`${args.join(' ')} is refused by default and never reaches the master`, async (t) => {
    await master.resetStats();
    const c = await rawConnection(port);
    const reply = await ask(c, args);
    t.match(reply, /^-ERR /, `${args.join(' ')} -> an error: ${show(reply)}`);
    t.match(reply, /allowTopologyCommands/, 'the error names allowTopologyCommands');
    t.equal(await ask(c, ['PING']), '+PONG\r\n', 'the connection stays usable');
    c.socket.destroy();
    const ping = await rawCommand(master.port, 'PING\r\n', { timeoutMs: 500 });
    t.equal(ping.text, '+PONG\r\n', 'the master is still up');
    if (ping.text !== '+PONG\r\n') return;
    const info = await master.info('replication');
    t.equal(info.role, 'master', 'and still a master');
    t.equal(await master.commandCalls(name), 0, `cmdstat_${name} shows no call on the master`);
  });
}

/**
 * Read-your-writes for the SCAN family, and cursors that stay on their node.
 *
 * With `readYourWrites: true` a session reads its own writes at once. SSCAN, HSCAN and
 * ZSCAN with cursor 0 start a new iteration: right after the same session's write it
 * must see that write, like any other read. (A session's SCAN-family reads are kept on
 * one node so that cursors stay valid; that node must not be a replica that may not
 * have the write yet.)
 *
 * Staleness is forced, not hoped for: after warm-up (the replica is in the rotation and
 * the session's first SSCAN ran on it), the replica is frozen with SIGSTOP, the session
 * writes through the proxy and at once asks `SSCAN key 0`: the new member must be in
 * the result within 1 s (on the frozen replica it would hang, or, frozen a moment
 * later, return old data). The replica always gets SIGCONT again.
 *
 * A continuing cursor (non-zero) is only valid on the node that issued it: a set of
 * 2,000 members iterated with COUNT 10, with writes of the same session in between,
 * runs every SSCAN call of the iteration on one node (INFO commandstats).
 */
import t from 'tap';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection, splitReplies, type RawConnection } from '../../helpers/raw.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { callsDuring, callsDuringMany } from '../../helpers/stats.js';
import { waitFor } from '../../helpers/wait.js';
import { decode, show, type Value } from '../compat/_helpers.js';

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const replica = set.replicas[0]!;
const direct = master.client();
const { port } = await startTestProxy([listenerFor(master, [replica], { readYourWrites: true })]);
// Whatever happens, the replica is not left frozen.
t.teardown(() => replica.kill('SIGCONT'));

/** Sends `args`, returns the decoded reply, or a «timeout» string after `timeoutMs`. */
async function call(conn: RawConnection, args: (string | number)[], timeoutMs = 2000): Promise<Value> {
  const before = splitReplies(conn.received()).length;
  conn.socket.write(encodeCommand(...args));
  const ok = await conn.waitFor((b) => splitReplies(b).length > before, timeoutMs);
  if (!ok) return `«timeout after ${timeoutMs} ms»`;
  return decode(splitReplies(conn.received())[before]!);
}

interface Kind {
  cmd: 'sscan' | 'hscan' | 'zscan';
  key: string;
  seed: () => Promise<unknown>;
  write: (conn: RawConnection) => Promise<Value>;
  /** The element names in a reply's page (members, fields). */
  names: (page: Value[]) => string[];
}

const everyOther = (page: Value[]) => page.filter((_, i) => i % 2 === 0).map(String);

const kinds: Kind[] = [
  {
    cmd: 'sscan',
    key: 'sr:set',
    seed: () => direct.sadd('sr:set', 'old'),
    write: (c) => call(c, ['SADD', 'sr:set', 'new']),
    names: (page) => page.map(String),
  },
  {
    cmd: 'hscan',
    key: 'sr:hash',
    seed: () => direct.hset('sr:hash', 'old', '1'),
    write: (c) => call(c, ['HSET', 'sr:hash', 'new', '2']),
    names: everyOther,
  },
  {
    cmd: 'zscan',
    key: 'sr:zset',
    seed: () => direct.zadd('sr:zset', 1, 'old'),
    write: (c) => call(c, ['ZADD', 'sr:zset', '2', 'new']),
    names: everyOther,
  },
];

for (const kind of kinds) {
  const CMD = kind.cmd.toUpperCase();
  t.test(`${CMD} key 0 right after the session's own write sees it (replica frozen)`, async (t) => {
    await direct.del(kind.key);
    await kind.seed();
    await set.sync();

    // A session whose first scan ran on the replica (the replica is in the rotation).
    let conn: RawConnection | undefined;
    await waitFor(
      `a session whose first ${CMD} runs on the replica`,
      async () => {
        conn?.socket.destroy();
        const c = await rawConnection(port);
        conn = c;
        const [onReplica] = await callsDuring([replica], kind.cmd, () => call(c, [CMD, kind.key, 0]));
        return onReplica! > 0;
      },
      { timeoutMs: 8000, intervalMs: 100 },
    );
    const c = conn!;

    replica.kill('SIGSTOP');
    try {
      const wrote = await kind.write(c);
      t.equal(wrote, 1, `the write through the proxy -> 1`);
      const started = Date.now();
      const reply = await call(c, [CMD, kind.key, 0], 1000);
      const names = Array.isArray(reply) && Array.isArray(reply[1]) ? kind.names(reply[1]) : [];
      t.ok(names.includes('new'), `${CMD} ${kind.key} 0 sees the new element within 1 s: ${show(JSON.stringify(reply))} after ${Date.now() - started} ms`);
      t.ok(names.includes('old'), 'and the old one');
    } finally {
      replica.kill('SIGCONT');
    }
    c.socket.destroy();
  });
}

t.test('a continuing cursor stays on the node that issued it, across writes of the same session', async (t) => {
  const key = 'sr:big';
  await direct.del(key);
  const members = Array.from({ length: 2000 }, (_, i) => `m${i}`);
  for (let i = 0; i < members.length; i += 500) await direct.sadd(key, ...members.slice(i, i + 500));
  await set.sync();

  const c = await rawConnection(port);
  // Start right after a write: wherever cursor 0 goes, the rest must follow it.
  await call(c, ['SET', 'sr:w', '0']);
  const seen = new Set<string>();
  let calls = 0;
  const counts = await callsDuringMany([master, replica], ['sscan'], async () => {
    let cursor = '0';
    do {
      const reply = await call(c, ['SSCAN', key, cursor, 'COUNT', 10]);
      if (!Array.isArray(reply) || typeof reply[0] !== 'string' || !Array.isArray(reply[1])) {
        t.fail(`SSCAN ${key} ${cursor} -> ${show(JSON.stringify(reply))}`);
        return;
      }
      calls++;
      for (const m of reply[1]) seen.add(String(m));
      cursor = reply[0];
      // The session keeps writing while it iterates.
      if (calls % 10 === 0) await call(c, ['SET', 'sr:w', String(calls)]);
    } while (cursor !== '0' && calls < 2000);
  });
  t.equal(seen.size, 2000, 'the iteration returned all 2,000 members');
  const [onMaster, onReplica] = counts.sscan as [number, number];
  t.ok(
    (onMaster === calls && onReplica === 0) || (onReplica === calls && onMaster === 0),
    `all ${calls} SSCAN calls ran on one node (master ${onMaster}, replica ${onReplica})`,
  );
  c.socket.destroy();
});

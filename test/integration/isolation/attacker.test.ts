/**
 * Isolation under attack: one client of the proxy does every state-changing and hostile
 * thing it can think of, on fresh connections, as fast as it can, while a victim runs a
 * steady, fully checked workload on connections of its own. The proxy shares backend
 * connections between them all the time: shared connections per node/db/protocol, and
 * a pool of only 3 dedicated (leased) connections for MULTI/WATCH, blocking commands and
 * Pub/Sub. Whatever the attacker does to its own session must never reach the victim:
 * no error, no wrong or foreign reply, no missing reply, no lost write.
 *
 * Only the victim is checked; the attacker may see any errors it likes.
 *
 * Debugging knobs (not for CI):
 *   REDIS_PROXY_TEST_ATTACKS=name,name   run only these attacks (names as in the summary)
 *   REDIS_PROXY_TEST_ATTACK_MS=8000      how long the attack runs
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import t from 'tap';
import { ioredisClient, nodeRedisClient } from '../../helpers/clients.js';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawConnection, splitReplies, type RawConnection } from '../../helpers/raw.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { sleep } from '../../helpers/wait.js';

const ATTACK_MS = Number(process.env.REDIS_PROXY_TEST_ATTACK_MS ?? 8000);
/** A reply that has not come within this long is a missing reply. */
const OP_TIMEOUT_MS = 3000;
const ATTACK_WORKERS = 3;

const set = await startReplicaSet({ replicas: 1 });
const { master } = set;
const direct = master.client();
// victim:h is only read (a RESP2 array, a RESP3 map); victim:w is the WATCHed key;
// victim:none never exists (RESP2 vs RESP3 nil).
await direct.hset('victim:h', 'f', 'v');
await direct.set('victim:w', 'w-0');
await set.sync();

const { port } = await startTestProxy([
  listenerFor(master, set.replicas, {
    maxDedicatedConnections: 3,
    readYourWrites: true,
    denyCommands: ['flushall'],
    commandTimeout: 2000,
  }),
]);
const warm = ioredisClient(port, { protocol: 2 });
await waitForReplicaReads(set.replicas, () => warm.get('victim:h:warm'));
warm.disconnect();

const cmd = encodeCommand;
const join = (...parts: Buffer[]) => Buffer.concat(parts);
const show = (value: unknown) => {
  const text =
    typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('latin1') : JSON.stringify(value);
  return JSON.stringify(text.length > 160 ? `${text.slice(0, 160)}…` : text);
};
const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));
/** Complete replies in `buf`; bytes that are not RESP at all (say, an RDB payload) count as plenty. */
const countReplies = (buf: Buffer) => {
  try {
    return splitReplies(buf).length;
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
};

/** A seeded generator for the attacks' variations (how much to read, how long to linger). */
let seed = 0x5eed1234;
const rand = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
};
const between = (min: number, max: number) => Math.floor(min + rand() * (max - min + 1));
const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;

const start = performance.now();
const now = () => Math.round(performance.now() - start);

// ---------------------------------------------------------------------------------------
// Bookkeeping: what the victim saw, and when each attack ran (to name suspects).

interface Failure {
  at: number;
  startedAt: number;
  op: string;
  what: string;
}
const failures: Failure[] = [];
const attackLog: { kind: string; at: number }[] = [];

class Mismatch extends Error {}
class MissingReply extends Error {}

/** `promise`, or a MissingReply after OP_TIMEOUT_MS. */
async function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MissingReply(`no reply to ${what} within ${OP_TIMEOUT_MS} ms`)), OP_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function expectEqual(what: string, got: unknown, want: unknown): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Mismatch(`${what}: got ${show(got)}, expected ${show(want)}`);
  }
}

function recordFailure(op: string, startedAt: number, err: unknown): void {
  const kind = err instanceof Mismatch ? 'wrong reply' : err instanceof MissingReply ? 'missing reply' : 'error';
  failures.push({ at: now(), startedAt, op, what: `${kind}: ${errText(err)}` });
}

/**
 * The kinds of the attacks started from a second before an operation until shortly after
 * it started (not until a timeout noticed it), most recent first.
 */
function suspects(from: number, to: number): string {
  to = Math.min(to, from + 200);
  const seen = new Set<string>();
  const found: string[] = [];
  for (let i = attackLog.length - 1; i >= 0 && found.length < 6; i--) {
    const a = attackLog[i]!;
    if (a.at > to) continue;
    if (a.at < from - 1000) break;
    if (seen.has(a.kind)) continue;
    seen.add(a.kind);
    found.push(`${a.kind}@${a.at}`);
  }
  return found.length ? found.join(', ') : 'none';
}

const describeFailure = (f: Failure) =>
  `  [${f.startedAt}-${f.at} ms] ${f.op}: ${f.what}\n      attacks started just before: ${suspects(f.startedAt, f.at)}`;
const describeFailures = (list: Failure[], max = 4) =>
  list.slice(0, max).map(describeFailure).join('\n') + (list.length > max ? `\n  … and ${list.length - max} more` : '');
/** Per victim loop: how many failures, and the first one (with the attacks just before it). */
function failuresByLoop(list: Failure[]): string {
  const loops = new Map<string, Failure[]>();
  for (const f of list) {
    const loop = f.op.replace(/ #\d+$/, '');
    loops.set(loop, [...(loops.get(loop) ?? []), f]);
  }
  return [...loops]
    .map(([loop, fs]) => `${loop}: ${fs.length} failed, the first:\n${describeFailure(fs[0]!)}`)
    .join('\n');
}

/**
 * A counter the victim INCRs, with what it expects the master to hold. After a failure
 * the victim takes the master's value again (an INCR that failed may have run), so each
 * incident is one failure, not a cascade; `resyncs` says how often.
 */
interface Counter {
  key: string;
  expected: number;
  resyncs: number;
}
const counters: Counter[] = [];
const counter = (key: string): Counter => {
  const c = { key, expected: 0, resyncs: 0 };
  counters.push(c);
  return c;
};
async function resync(c: Counter): Promise<void> {
  c.expected = Number((await direct.get(c.key)) ?? 0);
  c.resyncs++;
}
function checkIncr(c: Counter, what: string, got: unknown): void {
  const want = c.expected + 1;
  if (got !== want) throw new Mismatch(`${what} ${c.key}: got ${show(got)}, expected ${want}`);
  c.expected = want;
}

/** Keys the victim wrote (and saw acknowledged), with their values: all must be on the master. */
const written = new Map<string, string>();
const opsDone: Record<string, number> = {};
const reconnects: Record<string, number> = {};

// ---------------------------------------------------------------------------------------
// The victim: a loop per connection, each operation awaited and checked. After a
// failure the connection is dropped and a new one opened (so one poisoning shows up as
// one failure, and later ones show up again).

let running = true;

async function victimLoop<C>(
  name: string,
  open: () => Promise<C>,
  close: (c: C) => void,
  step: (c: C, n: number) => Promise<void>,
  onFailure: () => Promise<void> = async () => undefined,
): Promise<void> {
  opsDone[name] = 0;
  reconnects[name] = 0;
  let conn: C | undefined;
  for (let n = 1; running; n++) {
    const startedAt = now();
    try {
      conn ??= await within(`${name}: connect`, open());
      await step(conn, n);
      opsDone[name]!++;
    } catch (err) {
      recordFailure(`${name} #${n}`, startedAt, err);
      if (conn !== undefined) close(conn);
      conn = undefined;
      reconnects[name]!++;
      await within(`${name}: resync after a failure`, onFailure()).catch(() => undefined);
    }
    await sleep(2);
  }
  if (conn !== undefined) close(conn);
}

async function victimIoredis(protocol: 2 | 3, name: string): Promise<Redis> {
  const client = ioredisClient(port, {
    protocol,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
  });
  const foreign = (...args: unknown[]) =>
    failures.push({ at: now(), startedAt: now(), op: name, what: `foreign Pub/Sub message: ${show(args)}` });
  client.on('message', foreign);
  client.on('pmessage', foreign);
  await client.connect();
  return client;
}

/** (a) SET a unique value, GET it back, INCR a counter. */
function setGetIncr(protocol: 2 | 3) {
  const name = `(a) ioredis RESP${protocol} SET/GET/INCR`;
  const c = counter(`victim:cnt:a${protocol}`);
  return victimLoop(
    name,
    () => victimIoredis(protocol, name),
    (r) => r.disconnect(),
    async (r, n) => {
      const key = `victim:a${protocol}:${n}`;
      const value = `a${protocol}-${n}-${randomBytes(4).toString('hex')}`;
      expectEqual(`SET ${key}`, await within(`SET ${key}`, r.set(key, value)), 'OK');
      written.set(key, value);
      expectEqual(`GET ${key}`, await within(`GET ${key}`, r.get(key)), value);
      checkIncr(c, 'INCR', await within(`INCR ${c.key}`, r.incr(c.key)));
    },
    () => resync(c),
  );
}

/** (b) MULTI / INCR / GET / EXEC: the exact EXEC array. */
function multiExec(protocol: 2 | 3) {
  const name = `(b) ioredis RESP${protocol} MULTI/INCR/GET/EXEC`;
  const c = counter(`victim:cnt:b${protocol}`);
  return victimLoop(
    name,
    () => victimIoredis(protocol, name),
    (r) => r.disconnect(),
    async (r) => {
      const result = await within('MULTI/INCR/GET/EXEC', r.multi().incr(c.key).get(c.key).exec());
      const want = c.expected + 1;
      expectEqual(`EXEC of MULTI/INCR ${c.key}/GET`, result, [[null, want], [null, String(want)]]);
      c.expected = want;
    },
    () => resync(c),
  );
}

/** (c) WATCH victim:w, GET, MULTI, SET, EXEC: must succeed (nobody else touches victim:w). */
function watchMultiExec() {
  const name = '(c) ioredis RESP3 WATCH/GET/MULTI/SET/EXEC';
  let value: string | null = 'w-0';
  return victimLoop(
    name,
    () => victimIoredis(3, name),
    (r) => r.disconnect(),
    async (r, n) => {
      expectEqual('WATCH victim:w', await within('WATCH victim:w', r.watch('victim:w')), 'OK');
      expectEqual('GET victim:w under WATCH', await within('GET victim:w', r.get('victim:w')), value);
      const next = `w-${n}`;
      const result = await within('MULTI/SET victim:w/EXEC', r.multi().set('victim:w', next).exec());
      if (result === null) throw new Mismatch('EXEC after WATCH victim:w was aborted (null), yet nobody else wrote victim:w');
      expectEqual('EXEC of MULTI/SET victim:w', result, [[null, 'OK']]);
      value = next;
    },
    async () => {
      value = await direct.get('victim:w');
    },
  );
}

/** (d) LPUSH victim:q x, BLPOP victim:q 1 -> [victim:q, x]. */
function pushBlpop() {
  const name = '(d) ioredis RESP2 LPUSH/BLPOP';
  return victimLoop(
    name,
    () => victimIoredis(2, name),
    (r) => r.disconnect(),
    async (r, n) => {
      const item = `x${n}`;
      expectEqual('LPUSH victim:q', await within('LPUSH victim:q', r.lpush('victim:q', item)), 1);
      expectEqual('BLPOP victim:q 1', await within('BLPOP victim:q 1', r.blpop('victim:q', 1)), ['victim:q', item]);
    },
    async () => {
      await direct.del('victim:q'); // what a failed round left there
    },
  );
}

/**
 * (e) A raw RESP2 subscriber on victim:ch gets exactly what the victim publishes, one
 * message per iteration, in order, nothing else. Every 40 messages it unsubscribes
 * (exact confirmation) and a new subscriber takes over, so its lease is a pooled one too.
 */
const pubsub = { published: 0, received: 0, foreign: 0 };
function subscriber() {
  const name = '(e) raw RESP2 SUBSCRIBE victim:ch + ioredis PUBLISH';
  const confirm = (kind: string, count: number) =>
    `*3\r\n$${kind.length}\r\n${kind}\r\n$9\r\nvictim:ch\r\n:${count}\r\n`;
  const message = (m: string) => `*3\r\n$7\r\nmessage\r\n$9\r\nvictim:ch\r\n$${m.length}\r\n${m}\r\n`;
  interface Sub {
    conn: RawConnection;
    publisher: Redis;
    sent: number;
  }
  /** What arrives next must be exactly `want` (one reply), nothing more. */
  const take = async (conn: RawConnection, what: string, want: string) => {
    const ok = await conn.waitFor((buf) => countReplies(buf) >= 1, OP_TIMEOUT_MS);
    const got = conn.received();
    conn.clear();
    if (!ok) throw new MissingReply(`${what}: nothing within ${OP_TIMEOUT_MS} ms${conn.closed ? ' (connection closed)' : ''}; had ${show(got)}`);
    if (got.toString('latin1') !== want) {
      pubsub.foreign++;
      throw new Mismatch(`${what}: got ${show(got)}, expected ${show(want)}`);
    }
  };
  return victimLoop<Sub>(
    name,
    async () => {
      const conn = await rawConnection(port);
      conn.socket.write(cmd('SUBSCRIBE', 'victim:ch'));
      await take(conn, 'SUBSCRIBE victim:ch', confirm('subscribe', 1));
      return { conn, publisher: await victimIoredis(3, name), sent: 0 };
    },
    (s) => {
      s.conn.socket.destroy();
      s.publisher.disconnect();
    },
    async (s, n) => {
      if (s.conn.received().length > 0) {
        pubsub.foreign++;
        throw new Mismatch(`subscriber got something nobody published: ${show(s.conn.received())}`);
      }
      const m = `m${n}`;
      const receivers = await within(`PUBLISH victim:ch ${m}`, s.publisher.publish('victim:ch', m));
      pubsub.published++;
      expectEqual(`PUBLISH victim:ch ${m} (receivers)`, receivers, 1);
      await take(s.conn, `message ${m} on victim:ch`, message(m));
      pubsub.received++;
      if (++s.sent % 40 === 0) {
        s.conn.socket.write(cmd('UNSUBSCRIBE', 'victim:ch'));
        await take(s.conn, 'UNSUBSCRIBE victim:ch', confirm('unsubscribe', 0));
        s.conn.socket.destroy();
        s.conn = await within('a new subscriber connection', rawConnection(port));
        s.conn.socket.write(cmd('SUBSCRIBE', 'victim:ch'));
        await take(s.conn, 'SUBSCRIBE victim:ch (new subscriber)', confirm('subscribe', 1));
      }
    },
  );
}

/** (f) node-redis (RESP3) SET/GET. */
function nodeRedisSetGet() {
  const name = '(f) node-redis RESP3 SET/GET';
  type Client = Awaited<ReturnType<typeof nodeRedisClient>>;
  return victimLoop<Client>(
    name,
    () => nodeRedisClient(port, { RESP: 3 }),
    (c) => {
      try {
        c.destroy();
      } catch {
        /* already closed */
      }
    },
    async (c, n) => {
      const key = `victim:f:${n}`;
      const value = `f-${n}-${randomBytes(4).toString('hex')}`;
      expectEqual(`SET ${key}`, await within(`SET ${key}`, c.set(key, value)), 'OK');
      written.set(key, value);
      expectEqual(`GET ${key}`, await within(`GET ${key}`, c.get(key)), value);
    },
  );
}

/**
 * (g) Raw RESP2 / RESP3: a pipeline of 10 commands in one write, replies compared byte
 * for byte (nil and map encodings included), and nothing more may arrive.
 */
function rawPipeline(protocol: 2 | 3) {
  const name = `(g) raw RESP${protocol} pipeline SET/GET/INCR/HGETALL/MULTI/EXEC/PING`;
  const c = counter(`victim:cnt:g${protocol}`);
  const nil = protocol === 3 ? '_\r\n' : '$-1\r\n';
  const hash = protocol === 3 ? '%1\r\n$1\r\nf\r\n$1\r\nv\r\n' : '*2\r\n$1\r\nf\r\n$1\r\nv\r\n';
  const bulk = (s: string) => `$${s.length}\r\n${s}\r\n`;
  return victimLoop<RawConnection>(
    name,
    async () => {
      const conn = await rawConnection(port);
      if (protocol === 3) {
        const [hello] = await conn.send(cmd('HELLO', '3'), 1, OP_TIMEOUT_MS);
        if (!hello!.toString('latin1').startsWith('%')) throw new Mismatch(`HELLO 3: got ${show(hello)}`);
        conn.clear();
      }
      return conn;
    },
    (conn) => conn.socket.destroy(),
    async (conn, n) => {
      if (conn.received().length > 0) throw new Mismatch(`unrequested bytes before the pipeline: ${show(conn.received())}`);
      const key = `victim:g${protocol}:${n}`;
      const value = `g${protocol}-${n}-${randomBytes(4).toString('hex')}`;
      conn.socket.write(
        join(
          cmd('SET', key, value),
          cmd('GET', key),
          cmd('INCR', c.key),
          cmd('GET', 'victim:none'),
          cmd('HGETALL', 'victim:h'),
          cmd('MULTI'),
          cmd('INCR', c.key),
          cmd('GET', 'victim:none'),
          cmd('EXEC'),
          cmd('PING'),
        ),
      );
      const ok = await conn.waitFor((buf) => countReplies(buf) >= 10, OP_TIMEOUT_MS);
      const got = conn.received().toString('latin1');
      conn.clear();
      const want = [
        '+OK\r\n',
        bulk(value),
        `:${c.expected + 1}\r\n`,
        nil,
        hash,
        '+OK\r\n',
        '+QUEUED\r\n',
        '+QUEUED\r\n',
        `*2\r\n:${c.expected + 2}\r\n${nil}`,
        '+PONG\r\n',
      ].join('');
      if (got === want) {
        c.expected += 2;
        written.set(key, value);
        return;
      }
      if (!ok) {
        throw new MissingReply(
          `pipeline of 10: not all replies within ${OP_TIMEOUT_MS} ms${conn.closed ? ' (connection closed)' : ''}; got ${show(got)}`,
        );
      }
      throw new Mismatch(`pipeline of 10 for ${key}: got ${show(got)}, expected ${show(want)}`);
    },
    async () => {
      await resync(c);
      // A FLUSHALL that got through took victim:h along; put it back so that one
      // incident is one failure (the lost keys are counted at the end).
      if ((await direct.exists('victim:h')) === 0) await direct.hset('victim:h', 'f', 'v');
    },
  );
}

// ---------------------------------------------------------------------------------------
// The attacker: fresh raw connections, one write each, often dropped without reading.

/** Opens a connection, writes `bytes` at once, reads `read` replies (or not), lingers, drops it. */
async function hit(bytes: Buffer, { read = 0, lingerMs = 0, maxWaitMs = 500 } = {}): Promise<void> {
  const conn = await rawConnection(port);
  try {
    conn.socket.write(bytes);
    if (read > 0) {
      await conn.waitFor((buf) => countReplies(buf) >= read, maxWaitMs);
    }
    if (lingerMs > 0) await sleep(lingerMs);
  } finally {
    conn.socket.destroy();
  }
}

/** How many replies to wait for before dropping: none, some, or all `n`. */
const partially = (n: number) => pick([0, Math.max(1, Math.floor(n / 2)), n]);

const attacks: Record<string, () => Promise<void>> = {
  'multi-subscribe-exec': () =>
    hit(join(cmd('MULTI'), cmd('SUBSCRIBE', 'evil'), cmd('EXEC')), { read: 3, lingerMs: between(20, 150) }),
  'resp3-subscribe-reply-off-unsubscribe': () =>
    hit(
      join(cmd('HELLO', '3'), cmd('SUBSCRIBE', 'evil'), cmd('CLIENT', 'REPLY', 'OFF'), cmd('UNSUBSCRIBE', 'evil')),
      { read: partially(3), lingerMs: between(0, 30) },
    ),
  'multi-reply-off-exec': () =>
    hit(join(cmd('MULTI'), cmd('CLIENT', 'REPLY', 'OFF'), cmd('EXEC'), cmd('SET', 'attacker:k', 'v')), {
      read: partially(3),
      lingerMs: between(0, 30),
    }),
  'reply-off-skip-then-commands': () =>
    hit(
      join(
        cmd('CLIENT', 'REPLY', 'OFF'),
        cmd('SET', 'attacker:k', '1'),
        cmd('GET', 'attacker:k'),
        cmd('CLIENT', 'REPLY', 'ON'),
        cmd('CLIENT', 'REPLY', 'SKIP'),
        cmd('INCR', 'attacker:n'),
        cmd('GET', 'attacker:k'),
        cmd('CLIENT', 'REPLY', 'OFF'),
        cmd('MULTI'),
        cmd('INCR', 'attacker:n'),
        cmd('EXEC'),
      ),
      { read: partially(2) },
    ),
  'client-no-evict-on': () =>
    hit(join(cmd('CLIENT', 'NO-EVICT', 'ON'), cmd('CLIENT', 'NO-TOUCH', 'ON'), cmd('SET', 'attacker:k', 'v'), cmd('GET', 'attacker:k')), {
      read: partially(4),
    }),
  'hello3-then-commands': () =>
    hit(join(cmd('HELLO', '3'), cmd('SET', 'attacker:k', 'v'), cmd('GET', 'attacker:none'), cmd('HGETALL', 'victim:h')), {
      read: partially(4),
    }),
  // Decoys for the victim's keys in other databases: a SELECT that leaked onto a
  // connection the victim uses would show these instead of the victim's values.
  'select5-writes-reads': () =>
    hit(
      join(
        cmd('SELECT', '5'),
        cmd('SET', 'victim:w', 'decoy-db5'),
        cmd('SET', 'victim:cnt:a2', '-1000'),
        cmd('INCR', 'victim:cnt:b2'),
        cmd('HSET', 'victim:h', 'f', 'decoy-db5'),
        cmd('GET', 'victim:w'),
        cmd('LPUSH', 'victim:q', 'decoy-db5'),
      ),
      { read: partially(7) },
    ),
  'readonly-readwrite': () =>
    hit(join(cmd('READONLY'), cmd('GET', 'attacker:k'), cmd('SET', 'attacker:k', 'v'), cmd('READWRITE')), { read: partially(4) }),
  'multi-left-open-disconnect': () =>
    hit(join(cmd('MULTI'), cmd('SET', 'attacker:k', 'in-multi'), cmd('INCR', 'attacker:n')), { read: partially(3) }),
  'watch-left-open-disconnect': () =>
    hit(join(cmd('WATCH', 'attacker:wk'), cmd('GET', 'attacker:wk')), { read: partially(2) }),
  'subscribe-psubscribe-disconnect': () =>
    hit(join(cmd('SUBSCRIBE', 'evil'), cmd('PSUBSCRIBE', 'ev*')), { read: partially(2), lingerMs: between(0, 50) }),
  'monitor-disconnect': () => hit(cmd('MONITOR'), { read: 1, lingerMs: between(10, 80) }),
  'multi-monitor-exec': () =>
    hit(join(cmd('MULTI'), cmd('MONITOR'), cmd('EXEC'), cmd('GET', 'attacker:k')), { read: partially(4), lingerMs: between(0, 50) }),
  'blpop-forever-disconnect': () => hit(cmd('BLPOP', 'attacker:q', '0'), { lingerMs: between(20, 120) }),
  'garbage-bad-bulk-length': () => hit(Buffer.from('*2\r\n$3\r\nGET\r\n$x\r\n', 'latin1'), { read: partially(1) }),
  'garbage-random-bytes': () =>
    hit(pick([randomBytes(200), join(Buffer.from('*3\r\n$3\r\nSET\r\n', 'latin1'), randomBytes(64))]), { read: partially(1), maxWaitMs: 200 }),
  'pipeline-500-cut': () => {
    const parts: Buffer[] = [];
    for (let i = 0; i < 500; i++) {
      parts.push(i % 3 === 0 ? cmd('SET', `attacker:p:${i}`, 'v') : i % 3 === 1 ? cmd('GET', `attacker:p:${i - 1}`) : cmd('INCR', 'attacker:pc'));
    }
    return hit(join(...parts), { read: pick([0, 0, 1, between(2, 300)]) });
  },
  sync: () => hit(join(cmd('SYNC'), cmd('GET', 'attacker:k')), { read: 1, maxWaitMs: 300 }),
  'psync': () => hit(cmd('PSYNC', '?', '-1'), { read: 1, maxWaitMs: 300 }),
  'multi-setname-exec': () =>
    hit(join(cmd('MULTI'), cmd('CLIENT', 'SETNAME', 'evil'), cmd('EXEC')), { read: partially(3) }),
  'multi-tracking-bcast-resp3': () =>
    hit(join(cmd('HELLO', '3'), cmd('MULTI'), cmd('CLIENT', 'TRACKING', 'ON', 'BCAST'), cmd('EXEC'), cmd('GET', 'attacker:k')), {
      read: partially(5),
      lingerMs: between(0, 30),
    }),
  'multi-tracking-bcast-resp2': () =>
    hit(join(cmd('MULTI'), cmd('CLIENT', 'TRACKING', 'ON', 'BCAST'), cmd('EXEC'), cmd('GET', 'attacker:k')), {
      read: partially(4),
    }),
  'multi-select3-exec': () =>
    hit(
      join(
        cmd('MULTI'),
        cmd('SELECT', '3'),
        cmd('SET', 'victim:w', 'decoy-db3'),
        cmd('SET', 'victim:cnt:b3', '-1000'),
        cmd('EXEC'),
        cmd('GET', 'victim:w'),
      ),
      { read: partially(6) },
    ),
  'flushall-denied': () => hit(cmd('FLUSHALL'), { read: partially(1) }),
  'multi-flushall-exec': () => hit(join(cmd('MULTI'), cmd('FLUSHALL'), cmd('EXEC')), { read: partially(3) }),
  'eval-flushall': () => hit(cmd('EVAL', "return redis.call('FLUSHALL')", '0'), { read: partially(1) }),
  'watch-multi-subscribe-exec': () =>
    hit(join(cmd('WATCH', 'attacker:wk'), cmd('MULTI'), cmd('SUBSCRIBE', 'evil'), cmd('EXEC')), {
      read: 4,
      lingerMs: between(0, 80),
    }),
  // More of the same family: state set on the leased connection behind the proxy's back.
  'multi-hello3-exec': () =>
    hit(join(cmd('MULTI'), cmd('HELLO', '3'), cmd('EXEC'), cmd('GET', 'attacker:none')), { read: partially(4) }),
  'resp3-multi-hello2-exec': () =>
    hit(join(cmd('HELLO', '3'), cmd('MULTI'), cmd('HELLO', '2'), cmd('EXEC'), cmd('GET', 'attacker:none')), {
      read: partially(5),
    }),
  'watch-subscribe-unsubscribe': () =>
    hit(join(cmd('WATCH', 'attacker:wk'), cmd('SUBSCRIBE', 'evil'), cmd('UNSUBSCRIBE', 'evil'), cmd('GET', 'attacker:k')), {
      read: partially(4),
      lingerMs: between(0, 30),
    }),
  'resp3-subscribe-select-unsubscribe': () =>
    hit(
      join(cmd('HELLO', '3'), cmd('SUBSCRIBE', 'evil'), cmd('SELECT', '5'), cmd('UNSUBSCRIBE', 'evil'), cmd('GET', 'victim:w')),
      { read: partially(5), lingerMs: between(0, 30) },
    ),
  'resp3-subscribe-watch-unsubscribe': () =>
    hit(join(cmd('HELLO', '3'), cmd('SUBSCRIBE', 'evil'), cmd('WATCH', 'attacker:wk'), cmd('UNSUBSCRIBE', 'evil')), {
      read: partially(4),
      lingerMs: between(0, 30),
    }),
  'resp3-subscribe-tracking-unsubscribe': () =>
    hit(
      join(cmd('HELLO', '3'), cmd('SUBSCRIBE', 'evil'), cmd('CLIENT', 'TRACKING', 'ON', 'BCAST'), cmd('UNSUBSCRIBE', 'evil')),
      { read: partially(4), lingerMs: between(0, 30) },
    ),
  'resp3-subscribe-multi-unsubscribe': () =>
    hit(join(cmd('HELLO', '3'), cmd('SUBSCRIBE', 'evil'), cmd('MULTI'), cmd('UNSUBSCRIBE', 'evil'), cmd('EXEC')), {
      read: partially(5),
      lingerMs: between(0, 30),
    }),
};

const only = process.env.REDIS_PROXY_TEST_ATTACKS?.split(',').map((s) => s.trim()).filter(Boolean);
if (only) {
  const unknown = only.filter((k) => !(k in attacks));
  if (unknown.length) throw new Error(`unknown attacks in REDIS_PROXY_TEST_ATTACKS: ${unknown.join(', ')}`);
}
const attackKinds = Object.keys(attacks).filter((k) => only === undefined || only.includes(k));
const attackRuns: Record<string, number> = Object.fromEntries(attackKinds.map((k) => [k, 0]));
const attackErrors: Record<string, number> = Object.fromEntries(attackKinds.map((k) => [k, 0]));

async function attackWorker(offset: number): Promise<void> {
  for (let i = offset; running; i++) {
    const kind = attackKinds[i % attackKinds.length]!;
    attackLog.push({ kind, at: now() });
    attackRuns[kind]!++;
    try {
      await within(`attack ${kind}`, attacks[kind]!());
    } catch {
      attackErrors[kind]!++;
    }
  }
}

/**
 * The attacker's own traffic that turns a leaked state into visible damage: messages on
 * the channels it subscribed to, and writes to the key it WATCHed.
 */
async function attackerNoise(): Promise<void> {
  const noisy = ioredisClient(port, { protocol: 2, maxRetriesPerRequest: 0 });
  for (let n = 0; running; n++) {
    await within(
      'attacker noise',
      Promise.all([
        noisy.publish('evil', `evil-${n}`),
        noisy.publish('evil:p', `evil-p-${n}`),
        noisy.set('attacker:wk', String(n)),
      ]),
    ).catch(() => undefined);
    await sleep(5);
  }
  noisy.disconnect();
}

// ---------------------------------------------------------------------------------------

t.test('an attacker on other connections cannot disturb the victim', { timeout: 60_000 }, async (t) => {
  const victims = [
    setGetIncr(2),
    setGetIncr(3),
    multiExec(2),
    multiExec(3),
    watchMultiExec(),
    pushBlpop(),
    subscriber(),
    nodeRedisSetGet(),
    rawPipeline(2),
    rawPipeline(3),
  ];
  await sleep(300); // the victim is up and running before the attack starts
  const attackers = [
    ...Array.from({ length: ATTACK_WORKERS }, (_, i) => attackWorker(i * Math.ceil(attackKinds.length / ATTACK_WORKERS))),
    attackerNoise(),
  ];
  await sleep(ATTACK_MS);
  running = false;
  await Promise.all([...attackers, ...victims]);
  const elapsed = now();

  const runs = attackKinds.map((k) => `${k} ${attackRuns[k]}${attackErrors[k] ? ` (${attackErrors[k]} erred/timed out)` : ''}`);
  t.comment(`attacks run in ${ATTACK_MS} ms (${attackKinds.length} kinds): ${runs.join(', ')}`);
  t.comment(
    `victim operations: ${Object.entries(opsDone)
      .map(([k, v]) => `${k} ${v}${reconnects[k] ? ` (${reconnects[k]} failed)` : ''}`)
      .join('; ')}`,
  );

  // 1. Everything the victim did went right. (tap puts an assertion's message on one
  // line, so the readable report is a comment; the assertions name the first failure.)
  const byKind = (re: RegExp) => failures.filter((f) => re.test(f.what));
  const errors = byKind(/^error/);
  const wrong = byKind(/^wrong reply|^foreign/);
  const missing = byKind(/^missing reply/);
  if (failures.length > 0) {
    t.comment(`VICTIM FAILURES: ${failures.length}, by operation (the first of each):\n${failuresByLoop(failures)}`);
    for (const [what, list] of [['errors', errors], ['wrong or foreign replies', wrong], ['missing replies', missing]] as const) {
      if (list.length > 0) t.comment(`${what}: ${list.length}, the first ones:\n${describeFailures(list)}`);
    }
  }
  const first = (list: Failure[]) =>
    list.length ? ` (first: ${list[0]!.op} at ${list[0]!.startedAt} ms: ${list[0]!.what}; see the comments above)` : '';
  t.equal(failures.length, 0, `the victim saw no failure${first(failures)}`);
  t.equal(errors.length, 0, `errors seen by the victim${first(errors)}`);
  t.equal(wrong.length, 0, `wrong or foreign replies seen by the victim${first(wrong)}`);
  t.equal(missing.length, 0, `replies the victim never got (none within ${OP_TIMEOUT_MS} ms)${first(missing)}`);

  // 2. The counters on the master are what the victim counted.
  for (const c of counters) {
    const value = Number(await direct.get(c.key));
    t.equal(
      value,
      c.expected,
      `master's ${c.key} is what the victim counted` +
        (c.resyncs ? ` (it took the master's value again after each of its ${c.resyncs} failures)` : ''),
    );
  }
  const w = await direct.get('victim:w');
  t.match(w, /^w-\d+$/, `master's victim:w holds a value the victim wrote (${show(w)})`);

  // 3. The subscriber got exactly the victim's messages.
  t.ok(pubsub.published > 0, `the victim published (${pubsub.published} messages)`);
  t.equal(pubsub.received, pubsub.published, `the subscriber got every message published (${pubsub.received} of ${pubsub.published})`);
  t.equal(pubsub.foreign, 0, 'the subscriber got no foreign or out-of-order message');

  // 4. Nothing was flushed or lost: every acknowledged write is on the master.
  const keys = [...written.keys()];
  let absent = 0;
  let changed = 0;
  const examples: string[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const chunk = keys.slice(i, i + 500);
    const values = await direct.mget(...chunk);
    chunk.forEach((key, j) => {
      const want = written.get(key);
      if (values[j] === want) return;
      if (values[j] === null) absent++;
      else changed++;
      if (examples.length < 5) examples.push(`${key}: ${show(values[j])} instead of ${show(want)}`);
    });
  }
  t.ok(keys.length > 100, `the victim wrote ${keys.length} keys`);
  t.equal(absent + changed, 0, `every key the victim wrote is on the master (${absent} gone, ${changed} changed${examples.length ? `: ${examples.join('; ')}` : ''})`);

  // 5. The proxy still serves a fresh client, leased connections included.
  const freshStep = async <T>(what: string, p: Promise<T>) => {
    try {
      return await within(what, p);
    } catch (err) {
      return `failed: ${errText(err)}`;
    }
  };
  const fresh = await within('a fresh client: connect', victimIoredis(2, 'fresh client'));
  t.equal(await freshStep('PING', fresh.ping()), 'PONG', 'a fresh client: PING');
  t.equal(await freshStep('SET', fresh.set('victim:fresh', 'ok')), 'OK', 'a fresh client: SET');
  t.equal(await freshStep('GET', fresh.get('victim:fresh')), 'ok', 'a fresh client: GET');
  t.same(
    await freshStep('MULTI/EXEC', fresh.multi().incr('victim:fresh:n').get('victim:fresh:n').exec()),
    [[null, 1], [null, '1']],
    'a fresh client: MULTI/INCR/GET/EXEC',
  );
  fresh.disconnect();
  t.comment(`attack phase ${ATTACK_MS} ms, victim done after ${elapsed} ms, checks done after ${now()} ms`);
});

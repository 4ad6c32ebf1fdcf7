/**
 * causalReads modes against a replica that is forced to lag (its replication link goes
 * through a relay that delays the master -> replica stream by 300 ms; see _support.ts):
 *   - "none": reads go to the replica regardless, so a read right after a write is stale
 *     (this proves the setup forces staleness);
 *   - "global" (the default): a read sees every write acknowledged to any client of the
 *     listener before it arrived, same connection or not; reads of keys no recent write
 *     touched still go to the replica;
 *   - "session" (and its alias readYourWrites: true): a session reads its own writes;
 *   - a bad value is refused at start, naming the key and the allowed values.
 */
import t from 'tap';
import { normalizeConfig } from '../../../src/config/index.js';
import { ioredisClient } from '../../helpers/clients.js';
import { callsDuring, waitForReplicaReads } from '../../helpers/stats.js';
import {
  caughtUp,
  listenerFor,
  measureLag,
  startCausalProxy,
  startSlowReplicaSet,
  tally,
  waitFor,
} from './_support.js';

const DELAY = 300;
const ROUNDS = 200;
const set = await startSlowReplicaSet({ delayMs: DELAY });
const { master, slow } = set;

/** Starts a proxy over the master and the slow replica; returns once reads reach the replica. */
async function proxyWith(tt: Parameters<typeof startCausalProxy>[0], settings: Record<string, unknown>) {
  const proxy = await startCausalProxy(tt, listenerFor(master, [slow], settings));
  const warm = ioredisClient(proxy.port, { protocol: 2 });
  await waitForReplicaReads([slow], () => warm.get('modes:warm'));
  return proxy;
}

/** `SET key v<i>` then `GET key`, each awaited, on one connection; counts GETs that missed the SET. */
async function sameConnection(port: number, key: string, rounds = ROUNDS) {
  const c = ioredisClient(port, { protocol: 2 });
  const misses: string[] = [];
  for (let i = 0; i < rounds; i++) {
    await c.set(key, `v${i}`);
    const got = await c.get(key);
    if (got !== `v${i}`) misses.push(String(got));
  }
  return { stale: misses.length, misses };
}

/** Like `sameConnection`, the SET on connection A, the GET on connection B once A's SET replied. */
async function crossConnection(port: number, key: string, rounds = ROUNDS) {
  const a = ioredisClient(port, { protocol: 2 });
  const b = ioredisClient(port, { protocol: 2 });
  await Promise.all([a.ping(), b.ping()]);
  const misses: string[] = [];
  for (let i = 0; i < rounds; i++) {
    await a.set(key, `v${i}`);
    const got = await b.get(key);
    if (got !== `v${i}`) misses.push(String(got));
  }
  return { stale: misses.length, misses };
}

const served = (calls: number[]) => `master ${calls[0]}, slow replica ${calls[1]}`;

t.test('the delayed link really makes the slow replica stale (checked on the servers)', async (t) => {
  const lag = await measureLag(set, 'modes:lag');
  t.comment(
    `SET on the master: the slow replica still had the old value right after the reply: ${lag.staleRightAfter}; ` +
      `the new value showed up there after ${lag.visibleAfterMs.toFixed(0)} ms (relay delay ${DELAY} ms)`,
  );
  t.ok(lag.staleRightAfter, 'right after the SET reply, the slow replica does not have the value');
  t.ok(lag.visibleAfterMs >= DELAY * 0.7, `the value reaches the slow replica only after ~${DELAY} ms (${lag.visibleAfterMs.toFixed(0)} ms)`);
  t.ok(lag.visibleAfterMs < DELAY + 1500, `...and it does reach it (${lag.visibleAfterMs.toFixed(0)} ms)`);
});

t.test('causalReads "none": reads go to the replica regardless, so they are stale', async (t) => {
  // readYourWrites: false as well, so that where causalReads is refused (before the
  // feature), the fallback start is today's eventual default.
  const { port, refused } = await proxyWith(t, { causalReads: 'none', readYourWrites: false });
  const r = await sameConnection(port, 'modes:none');
  t.comment(
    `"none"${refused ? ' (refused; ran as readYourWrites: false)' : ''}: ${r.stale} of ${ROUNDS} GETs right after the ` +
      `connection's own SET were stale (${tally(r.misses, 3)})`,
  );
  t.ok(r.stale > 0, `stale reads happen: ${r.stale} of ${ROUNDS} (proves the relay forces staleness)`);
});

for (const [label, settings] of [
  ['causalReads "global"', { causalReads: 'global' }],
  ['causalReads unset (default: "global")', {}],
] as const) {
  t.test(`${label}: no stale read, same connection or not`, async (t) => {
    const { port } = await proxyWith(t, settings);
    const same = await sameConnection(port, 'modes:g:same');
    t.comment(`${label}: same connection: ${same.stale} of ${ROUNDS} stale (${tally(same.misses, 3)})`);
    t.equal(same.stale, 0, `same connection: ${same.stale} of ${ROUNDS} GETs after the SET missed it`);
    const cross = await crossConnection(port, 'modes:g:cross');
    t.comment(`${label}: write on A, read on B: ${cross.stale} of ${ROUNDS} stale (${tally(cross.misses, 3)})`);
    t.equal(cross.stale, 0, `across connections: ${cross.stale} of ${ROUNDS} GETs after another connection's acknowledged SET missed it`);
  });
}

t.test('causalReads "global": reads of keys no recent write touched still go to the replica', async (t) => {
  const { port } = await proxyWith(t, { causalReads: 'global' });
  const keys = Array.from({ length: 50 }, (_, i) => `modes:old:${i}`);
  const m = master.client();
  const reader = ioredisClient(port, { protocol: 2 });
  const writer = ioredisClient(port, { protocol: 2 });
  await Promise.all([reader.ping(), writer.ping()]);
  const wrong: string[] = [];

  // (a) Written directly on the master (the proxy never saw them), on the replica.
  await m.mset(...keys.flatMap((k) => [k, `old-${k}`]));
  const waited = await caughtUp(master, slow, 3000);
  const quiet = await callsDuring([master, slow], 'get', async () => {
    for (const k of keys) {
      const v = await reader.get(k);
      if (v !== `old-${k}`) wrong.push(`${k}=${String(v)}`);
    }
  });
  t.comment(`(a) 50 keys written on the master directly (on the slow replica after ${waited.toFixed(0)} ms): GETs served by ${served(quiet)}`);
  t.ok(quiet[1]! >= 49, `(a) the slow replica served the GETs (${served(quiet)})`);
  t.ok(quiet[0]! <= 1, `(a) the master served ~none of them (${served(quiet)})`);

  // (b) The same, while another connection keeps writing another key through the proxy:
  // there are always acknowledged writes the slow replica has not applied, but none of
  // them touched these keys.
  let stop = false;
  let hotWrites = 0;
  const hot = (async () => {
    while (!stop) {
      await writer.set('modes:hot', String(hotWrites++));
    }
  })();
  await waitFor('a few hot writes', () => hotWrites >= 5, { timeoutMs: 2000 });
  const busy = await callsDuring([master, slow], 'get', async () => {
    for (const k of keys) {
      const v = await reader.get(k);
      if (v !== `old-${k}`) wrong.push(`${k}=${String(v)}`);
    }
  });
  stop = true;
  await hot;
  t.comment(`(b) same GETs while ${hotWrites} writes to another key went through the proxy: served by ${served(busy)}`);
  t.ok(busy[1]! >= 49, `(b) the slow replica served the GETs of untouched keys despite writes to another key (${served(busy)})`);
  t.ok(busy[0]! <= 1, `(b) the master served ~none of them (${served(busy)})`);
  t.same(wrong, [], '(a), (b): every GET returned the key\'s value');

  // (c) Written through the proxy: once the slow replica has applied them (checked on the
  // replica), the proxy learns it (ROLE polling) and reads of them go back to the replica.
  const mine = Array.from({ length: 50 }, (_, i) => `modes:mine:${i}`);
  for (const k of mine) await writer.set(k, `mine-${k}`);
  const waitedMine = await caughtUp(master, slow, 3000);
  let last: number[] = [];
  const started = performance.now();
  const back = await waitFor(
    'reads of keys written through the proxy to go back to the slow replica',
    async () => {
      last = await callsDuring([master, slow], 'get', async () => {
        for (const k of mine) {
          const v = await reader.get(k);
          if (v !== `mine-${k}`) throw new Error(`GET ${k} returned ${String(v)}`);
        }
      });
      return last[0] === 0 && last[1]! >= 50;
    },
    { timeoutMs: 3000, intervalMs: 50 },
  ).catch((err: Error) => err);
  t.comment(
    `(c) 50 keys written through the proxy, on the slow replica after ${waitedMine.toFixed(0)} ms; ` +
      `last round of GETs served by ${served(last)}, ${(performance.now() - started).toFixed(0)} ms later`,
  );
  t.equal(back, true, `(c) once the replica has them, GETs of keys written through the proxy go to the replica (${back instanceof Error ? back.message : 'yes'})`);
});

t.test('causalReads "session": a session reads its own writes', async (t) => {
  const { port, refused } = await proxyWith(t, { causalReads: 'session' });
  const same = await sameConnection(port, 'modes:s:same');
  t.comment(`"session"${refused ? ' (refused; ran without it)' : ''}: same connection: ${same.stale} of ${ROUNDS} stale (${tally(same.misses, 3)})`);
  t.equal(same.stale, 0, `same connection: ${same.stale} of ${ROUNDS} GETs after the session's own SET missed it`);
  const cross = await crossConnection(port, 'modes:s:cross');
  t.comment(`"session": write on A, read on B: ${cross.stale} of ${ROUNDS} stale (allowed in this mode; not asserted)`);
});

t.test('readYourWrites: true without causalReads behaves as "session"', async (t) => {
  const { port } = await proxyWith(t, { readYourWrites: true });
  const same = await sameConnection(port, 'modes:ryw:same');
  t.comment(`readYourWrites: true: same connection: ${same.stale} of ${ROUNDS} stale (${tally(same.misses, 3)})`);
  t.equal(same.stale, 0, `same connection: ${same.stale} of ${ROUNDS} GETs after the session's own SET missed it`);
  const cross = await crossConnection(port, 'modes:ryw:cross');
  t.comment(`readYourWrites: true: write on A, read on B: ${cross.stale} of ${ROUNDS} stale (not asserted)`);
});

t.test('causalReads: config values', async (t) => {
  const raw = (extra: Record<string, unknown>) => [
    { listen: 16380, master: { host: '127.0.0.1', port: 16381 }, slave: [], ...extra },
  ];
  for (const value of ['none', 'session', 'global']) {
    t.doesNotThrow(() => normalizeConfig(raw({ causalReads: value })), `causalReads: "${value}" is accepted`);
  }
  let message = '';
  try {
    normalizeConfig(raw({ causalReads: 'bogus' }));
  } catch (err) {
    message = (err as Error).message;
  }
  t.comment(`causalReads: "bogus" -> ${JSON.stringify(message.slice(0, 300))}`);
  t.not(message, '', 'causalReads: "bogus" is refused');
  t.match(message, /causalReads/, 'the message names the key');
  for (const value of ['none', 'session', 'global']) {
    t.ok(message.includes(value), `the message lists the allowed value "${value}"`);
  }
});

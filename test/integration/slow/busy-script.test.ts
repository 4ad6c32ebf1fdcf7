/**
 * A busy script is slow, not down. With the master's busy-reply-threshold (lua-time-limit)
 * at 10 ms, a looping script makes Redis answer every other client `-BUSY ...` and run only
 * SCRIPT KILL / FUNCTION KILL / SHUTDOWN NOSAVE. Through the proxy:
 *
 * - SCRIPT KILL (FUNCTION KILL for a function) reaches Redis at once and gets its `+OK`;
 * - the killed script's client gets Redis's own error;
 * - other clients get either their reply or Redis's own `-BUSY ...`, never an
 *   `ERR redis-proxy:` error, and writes work again as soon as the script is gone;
 * - INFO proxy does not show the master down meanwhile.
 *
 * Redis 7.0's texts, checked against redis-server 7.0.15 directly:
 * - `-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.`
 *   (during EVAL; during FCALL: `... You can only call FUNCTION KILL or SHUTDOWN NOSAVE.`)
 * - SCRIPT KILL / FUNCTION KILL: `+OK`; with nothing running: `-NOTBUSY No scripts in execution right now.`
 * - the killed EVAL: `-ERR Script killed by user with SCRIPT KILL... script: <sha1>, on @user_script:1.`
 * - the killed FCALL: `-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.`
 *   (the same "SCRIPT KILL" wording after FUNCTION KILL)
 * - SCRIPT KILL during a function and FUNCTION KILL during EVAL get `-BUSY`.
 * - A command pipelined behind the script on the script's own connection waits (no BUSY).
 */
import t from 'tap';
import { encodeCommand, rawCommand, rawConnection } from '../../helpers/raw.js';
import { startReplicaSet } from '../../helpers/redis.js';
import { startTestProxy } from '../../helpers/proxy.js';
import { RawClient, infoProxy, listenerFor, nodeLine, sleep, tally, type Outcome } from './_support.js';

const set = await startReplicaSet({ replicas: 1, args: ['--lua-time-limit', '10'] });
const { master } = set;
await master.client().set('bs:k', 'v');
await set.sync();

const BUSY = /^-BUSY /;
const PROXY_ERROR = /^-ERR redis-proxy:/;
const EVAL_KILLED = /^-ERR Script killed by user with SCRIPT KILL\.\.\. script: [0-9a-f]{40}, on @user_script:1\.$/;
const FCALL_KILLED = /^-ERR Script killed by user with SCRIPT KILL\.\.\. script: spin, on @user_function:\d+\.$/;

/** Kills whatever script or function runs on the master, directly (cleanup when the proxy could not). */
// Raw sockets: an ioredis client's connect-time INFO would itself get -BUSY.
async function killDirectly(): Promise<string> {
  const show = (r: { text: string; timedOut: boolean }) => (r.timedOut ? 'timeout' : JSON.stringify(r.text.trimEnd()));
  const script = await rawCommand(master.port, encodeCommand('SCRIPT', 'KILL'), { timeoutMs: 2000 });
  const fn = await rawCommand(master.port, encodeCommand('FUNCTION', 'KILL'), { timeoutMs: 2000 });
  return `SCRIPT KILL: ${show(script)}; FUNCTION KILL: ${show(fn)}`;
}

/** SET in a loop with 1-ms pauses until `stop()`; every outcome recorded. */
async function writeLoop(client: RawClient, prefix: string, stop: () => boolean): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  for (let i = 0; !stop(); i++) {
    outcomes.push(await client.call('SET', `${prefix}:${i % 20}`, String(i)));
    await sleep(1);
  }
  return outcomes;
}

t.test('SCRIPT KILL through the proxy stops a runaway EVAL at once; other clients see only BUSY or their reply', async (t) => {
  // Health checks every 100 ms, so that several land while the script runs.
  const { port } = await startTestProxy([listenerFor(master, set.replicas, { healthCheckInterval: 100 })], { t });
  const a = await rawConnection(port);
  const b = new RawClient(port, 500);
  const c = new RawClient(port, 3000);
  t.equal((await a.send(encodeCommand('PING')))[0]!.toString(), '+PONG\r\n');
  t.equal((await b.call('PING')).text, '+PONG');
  t.equal((await c.call('SET', 'bs:c', '0')).text, '+OK');

  let killedAt = Infinity;
  let stopAt = Infinity;
  const writes = writeLoop(c, 'bs:c', () => performance.now() >= stopAt);

  const evalSentAt = performance.now();
  a.clear();
  a.socket.write(encodeCommand('EVAL', 'while true do end', '0'));
  const evalReply = a.waitFor((buf) => buf.includes('\r\n'), 8000);
  await sleep(200);

  // INFO proxy from yet another client while the script runs.
  const info = await infoProxy(port, 300);
  const masterLine = nodeLine(info, master.port);
  t.ok(
    info.ok && masterLine !== undefined && masterLine.state !== 'down',
    `INFO proxy during the script answers with the master not down (after ${Math.round(info.ms)} ms: ` +
      `${info.ok ? (masterLine?.raw ?? 'no master line') : info.text})`,
  );

  const kill = await b.call('SCRIPT', 'KILL');
  t.comment(`SCRIPT KILL sent ${Math.round(kill.sentAt - evalSentAt)} ms after the EVAL`);
  t.equal(kill.text, '+OK', `SCRIPT KILL through the proxy gets Redis's +OK (got ${JSON.stringify(kill.text)} after ${Math.round(kill.ms)} ms)`);
  t.ok(kill.replied && kill.ms < 500, `SCRIPT KILL answered within 500 ms (took ${Math.round(kill.ms)} ms)`);
  if (kill.text === '+OK') {
    killedAt = kill.doneAt;
  } else {
    t.comment(`killing the script directly: ${await killDirectly()}`);
    killedAt = performance.now();
  }
  const killSentAt = kill.sentAt;
  stopAt = killedAt + 1000;

  const evalOk = await evalReply;
  const evalText = a.received().toString('latin1').trimEnd();
  t.ok(evalOk, `the EVAL's client got a reply (${JSON.stringify(evalText)})`);
  t.match(evalText, EVAL_KILLED, `the EVAL's client gets Redis's "killed" error: ${JSON.stringify(evalText)}`);

  // Stop C's loop soon after its first success once the script is gone.
  const c2 = await writes;
  const wrong = c2.filter((o) => !(o.text === '+OK' || BUSY.test(o.text)));
  t.equal(
    wrong.length,
    0,
    `C's ${c2.length} writes got +OK or -BUSY only (${wrong.length} others: ${tally(wrong.map((o) => o.text))})`,
  );
  const proxyErrors = c2.filter((o) => PROXY_ERROR.test(o.text) || !o.replied);
  t.equal(proxyErrors.length, 0, `no "ERR redis-proxy:" error or missing reply for C (seen: ${tally(proxyErrors.map((o) => o.text))})`);
  t.comment(`C's replies: ${tally(c2.map((o) => o.text))}`);

  // From SCRIPT KILL's +OK (or, when the proxy could not kill it, from the direct kill).
  const firstOk = c2.find((o) => o.text === '+OK' && o.doneAt >= killSentAt);
  const gap = firstOk === undefined ? Infinity : Math.max(0, firstOk.doneAt - killedAt);
  const from = kill.text === '+OK' ? "SCRIPT KILL's reply" : 'the direct SCRIPT KILL (the proxied one failed)';
  t.comment(`ms from ${from} to the first successful write of another client: ${Number.isFinite(gap) ? Math.round(gap) : 'none in 1000 ms'}`);
  t.ok(gap < 200, `C writes again within 200 ms of ${from} (took ${Number.isFinite(gap) ? `${Math.round(gap)} ms` : 'more than 1000 ms'})`);
  c.close();
  b.close();
});

t.test('FUNCTION KILL through the proxy stops a looping function at once', async (t) => {
  const { port } = await startTestProxy([listenerFor(master, set.replicas, { healthCheckInterval: 100 })], { t });
  const loader = new RawClient(port, 2000);
  const code = "#!lua name=spinlib\nredis.register_function('spin', function() while true do end end)";
  const loaded = await loader.call('FUNCTION', 'LOAD', 'REPLACE', code);
  t.equal(loaded.text, '$7\r\nspinlib', `FUNCTION LOAD through the proxy (${JSON.stringify(loaded.text)})`);

  const a = await rawConnection(port);
  const b = new RawClient(port, 500);
  t.equal((await b.call('PING')).text, '+PONG');
  t.equal((await a.send(encodeCommand('PING')))[0]!.toString(), '+PONG\r\n');
  a.clear();
  a.socket.write(encodeCommand('FCALL', 'spin', '0'));
  const fcallReply = a.waitFor((buf) => buf.includes('\r\n'), 8000);
  await sleep(200);

  const kill = await b.call('FUNCTION', 'KILL');
  t.equal(kill.text, '+OK', `FUNCTION KILL through the proxy gets Redis's +OK (got ${JSON.stringify(kill.text)} after ${Math.round(kill.ms)} ms)`);
  t.ok(kill.replied && kill.ms < 500, `FUNCTION KILL answered within 500 ms (took ${Math.round(kill.ms)} ms)`);
  if (kill.text !== '+OK') t.comment(`killing the function directly: ${await killDirectly()}`);

  const ok = await fcallReply;
  const text = a.received().toString('latin1').trimEnd();
  t.ok(ok, `the FCALL's client got a reply (${JSON.stringify(text)})`);
  t.match(text, FCALL_KILLED, `the FCALL's client gets Redis's "killed" error: ${JSON.stringify(text)}`);

  const after = await loader.call('SET', 'bs:after-fcall', '1');
  t.equal(after.text, '+OK', `a write right after the kill works (${JSON.stringify(after.text)} in ${Math.round(after.ms)} ms)`);
  await loader.call('FUNCTION', 'DELETE', 'spinlib');
  loader.close();
  b.close();
});

t.test('a script just over the busy threshold: no proxy errors for others, and all work at once afterwards', async (t) => {
  // A health check every 250 ms: at least one lands inside the ~300 ms script.
  const { port } = await startTestProxy([listenerFor(master, set.replicas, { healthCheckInterval: 250 })], { t });
  const others = [0, 1, 2].map(() => new RawClient(port, 3000));
  for (const o of others) t.equal((await o.call('PING')).text, '+PONG');
  const a = new RawClient(port, 3000);

  let stopAt = Infinity;
  const loops = others.map(async (client, n) => {
    const outcomes: Outcome[] = [];
    for (let i = 0; performance.now() < stopAt; i++) {
      outcomes.push(await client.call('SET', `bs:o${n}`, String(i)));
      outcomes.push(await client.call('GET', 'bs:k'));
      await sleep(1);
    }
    return outcomes;
  });
  await sleep(100);
  // Busy for ~300 ms (TIME inside the loop), then returns 1.
  const script =
    'local t0 = redis.call("TIME") local s = t0[1] * 1000000 + t0[2] ' +
    'while true do local n = redis.call("TIME") if n[1] * 1000000 + n[2] - s > 300000 then break end end return 1';
  const ran = await a.call('EVAL', script, '0');
  t.equal(ran.text, ':1', `the script itself returns 1 (${JSON.stringify(ran.text)} after ${Math.round(ran.ms)} ms)`);

  // At once afterwards: fresh clients and the looping ones write and read.
  const fresh = [0, 1, 2].map(() => new RawClient(port, 1000));
  const afterwards: Outcome[] = [];
  for (const [i, client] of [...fresh, a].entries()) {
    afterwards.push(await client.call('SET', `bs:after${i}`, 'x'));
    afterwards.push(await client.call('GET', 'bs:k'));
  }
  stopAt = performance.now() + 300;
  const during = (await Promise.all(loops)).flat();

  const bad = during.filter((o) => PROXY_ERROR.test(o.text) || !o.replied);
  t.equal(bad.length, 0, `others' ${during.length} commands during the script: no proxy error or missing reply (seen: ${tally(bad.map((o) => o.text))})`);
  const unexpected = during.filter((o) => !(o.text === '+OK' || o.text === '$1\r\nv' || BUSY.test(o.text)));
  t.equal(unexpected.length, 0, `others got +OK, the value or -BUSY (others: ${tally(unexpected.map((o) => o.text))})`);
  t.comment(`others' replies: ${tally(during.map((o) => o.text))}`);

  const wrongAfter = afterwards.filter((o) => !(o.text === '+OK' || o.text === '$1\r\nv'));
  t.equal(wrongAfter.length, 0, `right after the script every client's SET and GET work (failures: ${tally(wrongAfter.map((o) => o.text))})`);
  const slowest = Math.max(...afterwards.map((o) => o.ms));
  t.ok(slowest < 200, `... at once (slowest ${Math.round(slowest)} ms)`);
  for (const client of [...others, ...fresh, a]) client.close();
});

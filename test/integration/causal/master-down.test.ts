/**
 * causalReads "global" when the master dies right after a write: the replica (forced to
 * lag 300 ms, _support.ts) does not have the write yet, so a read of that key must not be
 * served from it with the old value. It may return the new value (once the replica has
 * it) or an error, never the old value. Keys written long before (known to be on the
 * replica) stay readable while the master is down.
 *
 * Two variants of the dead link: the relay still delivers the stream it had queued (the
 * write reaches the replica ~300 ms after the kill, like bytes in flight on a network), or
 * it drops it (the replica never gets the write: every read of the key must then fail).
 */
import t from 'tap';
import { encodeCommand, rawCommand } from '../../helpers/raw.js';
import { waitForReplicaReads } from '../../helpers/stats.js';
import { caughtUp, listenerFor, sleep, startCausalProxy, startSlowReplicaSet, tally } from './_support.js';

const DELAY = 300;
/** The proxy's commandTimeout here; a client gives up on a reply after CLIENT_TIMEOUT. */
const COMMAND_TIMEOUT = 1000;
const CLIENT_TIMEOUT = 2500;

interface Reply {
  /** 'value:<v>', 'nil', 'error:<message>', or 'no reply' / 'closed' / 'connect error'. */
  kind: string;
  at: number;
}

/** One command on a fresh raw connection to the proxy, as a short description of the reply. */
async function call(port: number, origin: number, ...args: string[]): Promise<Reply> {
  const r = await rawCommand(port, encodeCommand(...args), { timeoutMs: CLIENT_TIMEOUT });
  const at = performance.now() - origin;
  if (r.error && r.text === '') return { kind: `connect error: ${r.error.message}`, at };
  if (r.timedOut) return { kind: `no reply within ${CLIENT_TIMEOUT} ms`, at };
  const text = r.text;
  if (text.startsWith('$-1\r\n') || text.startsWith('_\r\n')) return { kind: 'nil', at };
  const bulk = /^\$(\d+)\r\n/.exec(text);
  if (bulk) return { kind: `value:${text.slice(bulk[0].length, bulk[0].length + Number(bulk[1]))}`, at };
  if (text.startsWith('+')) return { kind: `value:${text.slice(1).trimEnd()}`, at };
  if (text.startsWith('-')) return { kind: `error:${text.slice(1).trimEnd()}`, at };
  return { kind: r.closed ? 'closed' : `other:${text.slice(0, 60)}`, at };
}

const isError = (r: Reply) => r.kind.startsWith('error:');

for (const drop of [false, true]) {
  const variant = drop ? 'the queued stream is lost with the master' : 'the queued stream still reaches the replica';
  t.test(`master killed right after an acknowledged SET (${variant})`, async (t) => {
    const set = await startSlowReplicaSet({ delayMs: DELAY, dropOnUpstreamClose: drop, t });
    const { master, slow } = set;
    const m = master.client();
    const r = slow.client();
    await m.set('md:longago', 'long-ago');
    await m.set('md:k', 'old');
    await caughtUp(master, slow, 3000);

    const { port } = await startCausalProxy(
      t,
      listenerFor(master, [slow], { causalReads: 'global', commandTimeout: COMMAND_TIMEOUT }),
    );
    await waitForReplicaReads([slow], () => rawCommand(port, encodeCommand('GET', 'md:warm')));

    const set1 = await call(port, 0, 'SET', 'md:k', 'new');
    t.equal(set1.kind, 'value:OK', 'SET md:k new through the proxy is acknowledged');
    master.kill('SIGKILL');
    await master.exited();
    const origin = performance.now();

    // The first read right after the kill, and what the replica has at that moment.
    const [first, onReplica] = await Promise.all([call(port, origin, 'GET', 'md:k'), r.get('md:k')]);
    t.comment(
      `first GET md:k after the kill: ${first.kind} (at ${first.at.toFixed(0)} ms); ` +
        `the slow replica had ${JSON.stringify(onReplica)} at that moment`,
    );
    t.not(first.kind, 'value:old', `the first GET md:k after the kill does not return the old value (${first.kind})`);

    // Keep reading the key for 1.5 s.
    const reads: Reply[] = [first];
    while (performance.now() - origin < 1500) {
      reads.push(await call(port, origin, 'GET', 'md:k'));
      await sleep(50);
    }
    const kinds = reads.map((x) => x.kind);
    const firstNew = reads.find((x) => x.kind === 'value:new');
    t.comment(
      `GET md:k through the proxy in the 1.5 s after the kill: ${tally(kinds)}` +
        (firstNew ? `; first new value at ${firstNew.at.toFixed(0)} ms` : ''),
    );
    const old = reads.filter((x) => x.kind === 'value:old');
    t.equal(old.length, 0, `no read returned the old value (${old.length} of ${reads.length} did)`);
    const bad = reads.filter((x) => x.kind !== 'value:new' && !isError(x));
    t.equal(bad.length, 0, `every read returned the new value or an error reply (others: ${tally(bad.map((x) => x.kind))})`);

    // What the replica ended up with (the setup, not the proxy).
    const replicaNow = await r.get('md:k');
    t.comment(`the slow replica has md:k = ${JSON.stringify(replicaNow)} ${(performance.now() - origin).toFixed(0)} ms after the kill`);
    if (drop) t.equal(replicaNow, 'old', 'setup: with the stream dropped, the replica never got the write');
    else t.equal(replicaNow, 'new', 'setup: the queued stream reached the replica after the kill');

    // A key written long before is still readable while the master is down.
    const oldKey: Reply[] = [];
    let streak = 0;
    const deadline = performance.now() + 3000;
    while (streak < 3 && performance.now() < deadline) {
      const x = await call(port, origin, 'GET', 'md:longago');
      oldKey.push(x);
      streak = x.kind === 'value:long-ago' ? streak + 1 : 0;
      if (streak < 3) await sleep(50);
    }
    t.comment(`GET md:longago through the proxy with the master down: ${tally(oldKey.map((x) => x.kind))}`);
    t.equal(streak, 3, `a key written long before is readable through the proxy while the master is down (3 reads in a row within 3 s)`);
    const wrongOld = oldKey.filter((x) => x.kind.startsWith('value:') && x.kind !== 'value:long-ago');
    t.equal(wrongOld.length, 0, `no read of it returned a wrong value (${tally(wrongOld.map((x) => x.kind))})`);
    t.equal(oldKey[0]?.kind, 'value:long-ago', `the first read of it already worked (${oldKey[0]?.kind})`);
  });
}

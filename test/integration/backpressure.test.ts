/**
 * Backpressure: a client that sends far more requests than it reads replies for must not
 * make the proxy buffer without bound, nor slow down the other clients.
 */
import t from 'tap';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, startTestProxy } from '../helpers/proxy.js';
import { encodeCommand, rawCommand, rawConnection } from '../helpers/raw.js';
import { startReplicaSet } from '../helpers/redis.js';
import { waitForReplicaReads } from '../helpers/stats.js';
import { sleep, timed } from '../helpers/wait.js';

const set = await startReplicaSet({ replicas: 1 });
const VALUE = Buffer.alloc(10 * 1024, 'x');
await set.master.client().set('bp:value', VALUE);
await set.sync();
const { port } = await startTestProxy([listenerFor(set.master, set.replicas)]);
const good = ioredisClient(port);
await waitForReplicaReads(set.replicas, () => good.get('bp:small'));

const MB = 1024 * 1024;
const oneGet = encodeCommand('GET', 'bp:value');
/** The exact bytes of one GET bp:value reply. */
const oneReply = Buffer.concat([Buffer.from(`$${VALUE.length}\r\n`), VALUE, Buffer.from('\r\n')]);

t.test('a client that pipelines 100k GETs of 10 KB and never reads', async (t) => {
  const rssBefore = process.memoryUsage().rss;
  const bad = await rawConnection(port);
  bad.socket.pause(); // never read: the replies (1 GB in all) pile up in front of it
  bad.socket.write(Buffer.concat(Array.from({ length: 100_000 }, () => oneGet)));

  let maxRss = rssBefore;
  let slowest = 0;
  const until = Date.now() + 2500;
  while (Date.now() < until) {
    maxRss = Math.max(maxRss, process.memoryUsage().rss);
    const { ms, value } = await timed(good.get('bp:value'));
    slowest = Math.max(slowest, ms);
    if (value !== VALUE.toString()) t.fail('the other client got a wrong reply');
    await sleep(50);
  }
  const grownMb = (maxRss - rssBefore) / MB;
  t.ok(grownMb < 150, `proxy process memory grew by ${grownMb.toFixed(1)} MB (want < 150 MB)`);
  t.ok(slowest < 250, `the other client's slowest GET took ${Math.round(slowest)} ms (want < 250 ms)`);

  bad.socket.destroy();
  await bad.closedPromise;
  t.equal(await good.get('bp:value'), VALUE.toString(), 'the other client still works');
  t.equal((await rawCommand(port, 'PING\r\n')).text, '+PONG\r\n', 'new clients are served');
  t.ok(
    (process.memoryUsage().rss - rssBefore) / MB < 150,
    'memory stays bounded after the bad client is gone',
  );
});

t.test('a client that stops reading for a while then reads gets every reply intact', async (t) => {
  const N = 5000; // 50 MB of replies
  const conn = await rawConnection(port);
  conn.socket.pause();
  conn.socket.removeAllListeners('data');
  conn.socket.write(Buffer.concat(Array.from({ length: N }, () => oneGet)));
  await sleep(1000);

  let offset = 0;
  let mismatch = -1;
  const all = new Promise<void>((resolve) => {
    conn.socket.on('data', (chunk: Buffer) => {
      for (let i = 0; i < chunk.length && mismatch < 0; i++) {
        if (chunk[i] !== oneReply[(offset + i) % oneReply.length]) mismatch = offset + i;
      }
      offset += chunk.length;
      if (offset >= N * oneReply.length || mismatch >= 0) resolve();
    });
    conn.socket.on('close', () => resolve());
  });
  conn.socket.resume();
  const { ms } = await timed(all);
  t.equal(mismatch, -1, 'every byte is the expected one');
  t.equal(offset, N * oneReply.length, `all ${N} replies arrived (${Math.round(ms)} ms)`);
  t.notOk(conn.closed, 'the connection was not dropped');
  conn.socket.destroy();
});

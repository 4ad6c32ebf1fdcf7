/**
 * The HTTP front end (a listener's `http`): status codes (200, 404, 409 naming the type,
 * 405 with Allow, 400 for bad targets, 401 with WWW-Authenticate, 503 when the queue is
 * full), binary keys, HEAD, Cache-Control / Age / X-Cache with and without the cache, and
 * a reload that starts, moves and stops it.
 */
import http from 'node:http';
import https from 'node:https';
import t from 'tap';
import { makePki } from '../helpers/certs.js';
import { freePort } from '../helpers/clients.js';
import { listenerFor, proxyInfo, startTestProxy } from '../helpers/proxy.js';
import { startReplicaSet } from '../helpers/redis.js';

interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request with the target written as given (no URL normalization). */
function request(port: number, target: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

t.test('status codes, binary keys, HEAD and the cache headers', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const httpPort = await freePort();
  const tp = await startTestProxy(
    [listenerFor(set.master, set.replicas, { http: { listen: httpPort, cache: { maxKeys: 100, ttl: 120_000 } } })],
    { t },
  );
  const direct = set.master.client();
  const binaryKey = Buffer.from([0xff, 0x00, 0x2f, 0x3f, 0x25, 0x20, 0x61]);
  await direct.set('greeting', 'hello world');
  await direct.set(binaryKey, Buffer.from([0x00, 0x01, 0xfe]));
  await direct.rpush('a-list', 'x');
  await set.sync();

  const miss = await request(httpPort, '/greeting');
  t.equal(miss.status, 200);
  t.equal(miss.body.toString(), 'hello world');
  t.equal(miss.headers['content-type'], 'application/octet-stream');
  t.equal(miss.headers['x-cache'], 'MISS');
  t.equal(miss.headers['cache-control'], 'max-age=120');
  t.equal(miss.headers.age, '0');

  const hit = await request(httpPort, '/greeting');
  t.equal(hit.status, 200);
  t.equal(hit.body.toString(), 'hello world');
  t.equal(hit.headers['x-cache'], 'HIT', 'the second read is served from the near cache');
  t.equal(hit.headers['cache-control'], 'max-age=120', 'max-age is the entry\'s lifetime; Age says how much of it is gone');
  t.match(hit.headers.age, /^[01]$/);

  const head = await request(httpPort, '/greeting', { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], '11', 'HEAD has the length of the body it leaves out');
  t.equal(head.body.length, 0);

  const binary = await request(httpPort, '/%FF%00%2F%3f%25%20a');
  t.equal(binary.status, 200, 'a key that is not UTF-8, with /, ?, % and a space in it');
  t.same([...binary.body], [0x00, 0x01, 0xfe]);

  const slash = await request(httpPort, '/a/b');
  t.equal(slash.status, 404, 'a slash is part of the key');
  const missing = await request(httpPort, '/no-such-key');
  t.equal(missing.status, 404);
  t.equal(missing.headers['cache-control'], 'no-store');
  const wrong = await request(httpPort, '/a-list');
  t.equal(wrong.status, 409);
  t.match(wrong.body.toString(), /WRONGTYPE.*list/);

  for (const target of ['/', '/key?x=1', '/bad%zzescape', '/trunc%4', `/${'k'.repeat(8200)}`]) {
    const r = await request(httpPort, target);
    t.equal(r.status, 400, `400 for ${target.slice(0, 20)}`);
  }
  const post = await request(httpPort, '/greeting', { method: 'POST' });
  t.equal(post.status, 405);
  t.equal(post.headers.allow, 'GET, HEAD');

  const info = await proxyInfo(tp.port);
  t.equal(info.http_port, String(httpPort));
  t.ok(Number(info.near_cache_hits) >= 1);
  t.ok(Number(info.http_responses_4xx) >= 9);
});

t.test('without a cache: no-store, no X-Cache', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const httpPort = await freePort();
  await startTestProxy([listenerFor(set.master, set.replicas, { http: { listen: httpPort } })], { t });
  await set.master.client().set('k', 'v');
  await set.sync();
  for (let i = 0; i < 2; i++) {
    const r = await request(httpPort, '/k');
    t.equal(r.status, 200);
    t.equal(r.body.toString(), 'v');
    t.equal(r.headers['cache-control'], 'no-store');
    t.equal(r.headers['x-cache'], undefined);
  }
});

t.test('authentication: Basic and Bearer against the listener password and users', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const httpPort = await freePort();
  await startTestProxy(
    [listenerFor(set.master, set.replicas, { password: 's3cret', users: [{ username: 'app', password: 'app-pw' }], http: { listen: httpPort } })],
    { t },
  );
  await set.master.client().set('k', 'v');
  await set.sync();
  const none = await request(httpPort, '/k');
  t.equal(none.status, 401);
  t.match(none.headers['www-authenticate'], /^Basic realm="redis-proxy"/);
  t.equal((await request(httpPort, '/k', { headers: { Authorization: basic('default', 's3cret') } })).status, 200);
  t.equal((await request(httpPort, '/k', { headers: { Authorization: basic('app', 'app-pw') } })).status, 200);
  t.equal((await request(httpPort, '/k', { headers: { Authorization: 'Bearer s3cret' } })).status, 200);
  t.equal((await request(httpPort, '/k', { headers: { Authorization: basic('app', 's3cret') } })).status, 401);
  t.equal((await request(httpPort, '/k', { headers: { Authorization: basic('default', 'app-pw') } })).status, 401);
  t.equal((await request(httpPort, '/k', { headers: { Authorization: 'Bearer wrong' } })).status, 401);
  // Checked before the read: a bad path is 400 whoever asks, a good one needs the credentials.
  t.equal((await request(httpPort, '/missing', { headers: { Authorization: 'Bearer s3cret' } })).status, 404);
});

t.test('maxInFlight and the queue: 503 once 1 + 4 requests wait on a sleeping master', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const httpPort = await freePort();
  await startTestProxy([listenerFor(set.master, set.replicas, { readPolicy: 'master', http: { listen: httpPort, maxInFlight: 1 } })], { t });
  await set.master.client().set('k', 'v');
  const sleeper = set.master.client();
  const asleep = sleeper.call('DEBUG', 'SLEEP', '1.5');
  await new Promise((r) => setTimeout(r, 150));
  const started = Date.now();
  const replies = await Promise.all(Array.from({ length: 7 }, () => request(httpPort, '/k')));
  await asleep;
  const statuses = replies.map((r) => r.status).sort();
  t.same(statuses, [200, 200, 200, 200, 200, 503, 503], 'one in flight, four queued, the rest refused');
  const refused = replies.find((r) => r.status === 503)!;
  t.equal(refused.headers['retry-after'], '1');
  t.ok(Date.now() - started >= 1000, 'the ones served waited for the master');
});

t.test('with the cache, concurrent requests for one key share one read', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const httpPort = await freePort();
  await startTestProxy(
    [listenerFor(set.master, set.replicas, { readPolicy: 'master', http: { listen: httpPort, maxInFlight: 2, cache: { maxKeys: 10, ttl: 60_000 } } })],
    { t },
  );
  await set.master.client().set('shared', 'v');
  await set.resetStats();
  const asleep = set.master.client().call('DEBUG', 'SLEEP', '0.5');
  await new Promise((r) => setTimeout(r, 100));
  const replies = await Promise.all(Array.from({ length: 20 }, () => request(httpPort, '/shared')));
  await asleep;
  t.same([...new Set(replies.map((r) => `${r.status} ${r.body.toString()}`))], ['200 v'], 'all 20 answered, beyond maxInFlight and its queue');
  t.equal(await set.master.commandCalls('get'), 1, 'one GET reached Redis');
  t.equal((await request(httpPort, '/shared')).headers['x-cache'], 'HIT');
});

t.test('reload starts, moves and stops the front end', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  await set.master.client().set('k', 'v');
  await set.sync();
  const tp = await startTestProxy([listenerFor(set.master, set.replicas)], { t });
  const first = await freePort();
  await tp.reload([{ ...listenerFor(set.master, set.replicas), listen: tp.port, http: { listen: first } }]);
  t.equal((await request(first, '/k')).status, 200, 'started by a reload');
  const second = await freePort();
  await tp.reload([{ ...listenerFor(set.master, set.replicas), listen: tp.port, http: { listen: second } }]);
  t.equal((await request(second, '/k')).status, 200, 'moved to another port');
  await t.rejects(request(first, '/k'), 'the old port is closed');
  await tp.reload([{ ...listenerFor(set.master, set.replicas), listen: tp.port }]);
  await t.rejects(request(second, '/k'), 'stopped by a reload');
});

t.test('HTTPS with the listener\'s certificate', async (t) => {
  const pki = makePki({ t });
  const set = await startReplicaSet({ replicas: 1, t });
  const httpPort = await freePort();
  await startTestProxy(
    [listenerFor(set.master, set.replicas, { tls: { cert: pki.server.cert, key: pki.server.key }, http: { listen: httpPort, cache: { maxKeys: 10, ttl: 1000 } } })],
    { t },
  );
  await set.master.client().set('k', 'secret value');
  await set.sync();
  const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port: httpPort, path: '/k', ca: pki.read(pki.ca), agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
  t.same(reply, { status: 200, body: 'secret value' }, 'served over TLS, the certificate verified against the CA');
  await t.rejects(request(httpPort, '/k'), 'plain HTTP is not served on an HTTPS port');
});

/**
 * TLS on both sides, against real TLS: certificates made with openssl at test time
 * (../helpers/certs.ts), redis-server with `--tls-port`, redis-cli `--tls`, ioredis and
 * node-redis over TLS.
 *
 * Client side (a listener's `tls`): a plain and a TLS listener on the same backends both
 * serve; a client that does not trust the proxy's CA fails the handshake; clientAuth
 * `require` refuses clients without a certificate of the CA, `request` refuses only a
 * certificate of another CA; a reload swaps the certificate for new connections (same
 * paths with new contents, or new paths) and keeps the old connections.
 * Backend side (`backendTls`): TLS-only master and replica (`--port 0 --tls-port`, the
 * replica replicating over TLS) serve writes, reads, transactions and health checks; a
 * node whose certificate the proxy cannot verify is down and requests get the proxy's
 * unreachable error, until a reload with the right CA replaces the node's connections;
 * a Redis that requires client certificates gets the proxy's.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { createClient } from 'redis';
import t from 'tap';
import { makePki } from '../helpers/certs.js';
import { ioredisClient } from '../helpers/clients.js';
import { listenerFor, proxyInfo, startTestProxy } from '../helpers/proxy.js';
import { rawCommand } from '../helpers/raw.js';
import { startReplicaSet, type RedisTls } from '../helpers/redis.js';
import { callsDuring, waitForReplicaReads } from '../helpers/stats.js';
import { waitFor } from '../helpers/wait.js';

const pki = makePki();
const ca = pki.read(pki.ca);

/** What one TLS connection to `port` got: PING's reply, the error, and the server's certificate. */
interface Probe {
  reply: string;
  error: string;
  peer: tls.PeerCertificate | null;
}

/** Connects with TLS (`options`), sends PING, and reports what happened (never rejects). */
function tlsPing(port: number, options: tls.ConnectionOptions = {}): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    const result: Probe = { reply: '', error: '', peer: null };
    const timer = setTimeout(() => {
      result.error ||= 'no reply within 3 s';
      done();
    }, 3000);
    function done(): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    }
    socket.on('secureConnect', () => {
      result.peer = socket.getPeerCertificate();
      socket.write('PING\r\n');
    });
    socket.on('data', (chunk: Buffer) => {
      result.reply += chunk.toString('latin1');
      if (result.reply.includes('\r\n')) done();
    });
    socket.on('error', (err: Error) => {
      result.error = err.message;
      done();
    });
    socket.on('close', done);
  });
}

/** Runs redis-cli with `args`; never rejects. */
function redisCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('redis-cli', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const serverTls = { cert: pki.server.cert, key: pki.server.key };
/** A TLS-only Redis with the test CA, no client certificates asked. */
const redisTls: RedisTls = { cert: pki.server.cert, key: pki.server.key, ca: pki.ca };

t.test('a plain and a TLS listener on the same backends: ioredis, node-redis and redis-cli over TLS', async (t) => {
  const set = await startReplicaSet({ replicas: 1, t });
  const [r1] = set.replicas as [(typeof set.replicas)[0]];
  await set.master.client().set('k', 'v');
  await set.sync();
  const tp = await startTestProxy(
    [
      listenerFor(set.master, [r1], { name: 'plain' }),
      listenerFor(set.master, [r1], { name: 'secure', tls: serverTls }),
    ],
    { t },
  );
  const [plainPort, tlsPort] = tp.ports as [number, number];

  const plain = ioredisClient(plainPort);
  t.equal(await plain.set('from-plain', '1'), 'OK');

  const secure = ioredisClient(tlsPort, { tls: { ca } });
  t.equal(await secure.set('from-tls', '2'), 'OK');
  t.equal(await secure.get('from-plain'), '1', 'the TLS listener sees the plain listener\'s write');
  t.equal(await plain.get('from-tls'), '2', 'and the other way round');
  await waitForReplicaReads([r1], () => secure.get('k'));
  t.same(await callsDuring([set.master], 'set', () => secure.set('k', 'w')), [1], 'writes go to the master');
  t.same(secure.errors, []);

  const nodeRedis = createClient({ socket: { host: '127.0.0.1', port: tlsPort, tls: true, ca, reconnectStrategy: false } });
  nodeRedis.on('error', () => {
    /* surfaced by the failing command */
  });
  t.teardown(() => nodeRedis.destroy());
  await nodeRedis.connect();
  t.equal(await nodeRedis.set('node-redis', 'x'), 'OK', 'node-redis (RESP3) over TLS');
  t.equal(await nodeRedis.get('node-redis'), 'x');

  const cli = await redisCli(['-h', '127.0.0.1', '-p', String(tlsPort), '--tls', '--cacert', pki.ca, 'GET', 'from-plain']);
  t.equal(cli.stdout.trim(), '1', `redis-cli --tls (${cli.stderr.trim()})`);

  const probe = await tlsPing(tlsPort, { ca });
  t.equal(probe.reply, '+PONG\r\n');
  t.equal(probe.peer?.subject.CN, 'redis-proxy-test-server', 'the listener presents its certificate');
  t.notMatch((await rawCommand(tlsPort, 'PING\r\n', { timeoutMs: 500 })).text, /PONG/, 'a plain client gets nothing from the TLS listener');
});

t.test('a client that does not trust the proxy\'s CA fails the handshake', async (t) => {
  const set = await startReplicaSet({ replicas: 0, t });
  const tp = await startTestProxy([listenerFor(set.master, [], { tls: serverTls })], { t });
  const probe = await tlsPing(tp.port, { ca: pki.read(pki.otherCa) });
  t.equal(probe.reply, '');
  t.match(probe.error, /self[- ]signed|unable to verify|unable to get local issuer/i);
  const cli = await redisCli(['-h', '127.0.0.1', '-p', String(tp.port), '--tls', '--cacert', pki.otherCa, 'PING']);
  t.notMatch(cli.stdout, /PONG/, 'redis-cli with another CA gets no reply');
  t.match(cli.stdout + cli.stderr, /certificate verify failed|SSL/i);
  t.equal((await tlsPing(tp.port, { ca })).reply, '+PONG\r\n', 'the right CA still works');
});

t.test('clientAuth require: a certificate of the CA is needed; request: a certificate is optional but must be the CA\'s', async (t) => {
  const set = await startReplicaSet({ replicas: 0, t });
  const tp = await startTestProxy(
    [
      listenerFor(set.master, [], { name: 'require', tls: { ...serverTls, ca: pki.ca, clientAuth: 'require' } }),
      listenerFor(set.master, [], { name: 'request', tls: { ...serverTls, ca: pki.ca, clientAuth: 'request' } }),
    ],
    { t },
  );
  const [requirePort, requestPort] = tp.ports as [number, number];
  const client = { cert: pki.read(pki.client.cert), key: pki.read(pki.client.key) };
  const stranger = { cert: pki.read(pki.otherClient.cert), key: pki.read(pki.otherClient.key) };

  const none = await tlsPing(requirePort, { ca });
  t.equal(none.reply, '', 'require: a client without a certificate gets no reply');
  t.not(none.error, '', `require: its connection fails (${none.error})`);
  t.equal((await tlsPing(requirePort, { ca, ...stranger })).reply, '', 'require: a certificate of another CA is refused');
  t.equal((await tlsPing(requirePort, { ca, ...client })).reply, '+PONG\r\n', 'require: the CA\'s client certificate is accepted');
  const authed = ioredisClient(requirePort, { tls: { ca, ...client } });
  t.equal(await authed.set('k', 'v'), 'OK', 'ioredis with a client certificate');
  const cli = await redisCli([
    '-h', '127.0.0.1', '-p', String(requirePort), '--tls', '--cacert', pki.ca, '--cert', pki.client.cert, '--key', pki.client.key, 'GET', 'k',
  ]);
  t.equal(cli.stdout.trim(), 'v', `redis-cli --cert --key (${cli.stderr.trim()})`);
  const cliNone = await redisCli(['-h', '127.0.0.1', '-p', String(requirePort), '--tls', '--cacert', pki.ca, 'GET', 'k']);
  t.notMatch(cliNone.stdout, /^v$/m, 'redis-cli without a certificate gets no value');

  t.equal((await tlsPing(requestPort, { ca })).reply, '+PONG\r\n', 'request: a client without a certificate is served');
  t.equal((await tlsPing(requestPort, { ca, ...client })).reply, '+PONG\r\n', 'request: the CA\'s certificate is accepted');
  t.equal((await tlsPing(requestPort, { ca, ...stranger })).reply, '', 'request: a certificate of another CA is refused');
});

t.test('backendTls to TLS-only Redis: writes on the master, reads on the replica, transactions, health checks', async (t) => {
  const set = await startReplicaSet({ replicas: 1, tls: redisTls, t });
  const [r1] = set.replicas as [(typeof set.replicas)[0]];
  await set.master.client().set('k', 'v');
  await set.sync();
  const tp = await startTestProxy(
    [
      listenerFor(set.master, [r1], { name: 'plain', backendTls: { ca: pki.ca }, healthCheckInterval: 200 }),
      listenerFor(set.master, [r1], { name: 'both-sides', tls: serverTls, backendTls: { ca: pki.ca }, healthCheckInterval: 200 }),
    ],
    { t },
  );
  const [plainPort, tlsPort] = tp.ports as [number, number];
  const info = await waitFor('both nodes up in INFO proxy', async () => {
    const i = await proxyInfo(plainPort);
    return /state=up/.test(i.node0 ?? '') && /state=up,in_rotation=1/.test(i.node1 ?? '') ? i : undefined;
  });
  t.match(info.node0, new RegExp(`role=master,addr=127.0.0.1:${set.master.port},state=up`));

  const client = ioredisClient(plainPort);
  t.same(await callsDuring([set.master], 'set', () => client.set('k', 'w')), [1], 'the write went to the master over TLS');
  await waitForReplicaReads([r1], () => client.get('k'));
  t.equal(await client.get('k'), 'w');
  const exec = await client.multi().incr('n').incr('n').exec();
  t.same(exec, [[null, 1], [null, 2]], 'MULTI/EXEC on a dedicated TLS connection');
  t.same(await client.blpop('empty-list', 0.1), null, 'a blocking command on a dedicated TLS connection');

  const secure = ioredisClient(tlsPort, { tls: { ca } });
  t.equal(await secure.set('both', 'sides'), 'OK', 'TLS from the client to the proxy and from the proxy to Redis');
  t.equal(await set.master.client().get('both'), 'sides');

  // A reload that re-reads the same files keeps the nodes and their connections (nodeKey hashes the contents).
  const before = await proxyConnectionIds(set.master);
  await tp.reload([
    listenerFor(set.master, [r1], { name: 'plain', listen: plainPort, backendTls: { ca: pki.ca }, healthCheckInterval: 200 }),
    listenerFor(set.master, [r1], { name: 'both-sides', listen: tlsPort, tls: serverTls, backendTls: { ca: pki.ca }, healthCheckInterval: 200 }),
  ]);
  t.equal(await client.set('k', 'again'), 'OK');
  t.same(await proxyConnectionIds(set.master), before, 'the same connections to the master after the reload');
  t.same(client.errors, []);
});

/** Ids of the connections to `server` but for the test's own CLIENT LIST clients. */
async function proxyConnectionIds(server: { client(): import('ioredis').Redis }): Promise<string[]> {
  const list = String(await server.client().client('LIST'));
  return list
    .split('\n')
    .filter((l) => l.includes('id=') && !l.includes('cmd=client|list') && !l.includes('flags=S'))
    .map((l) => /id=(\d+)/.exec(l)![1]!)
    .sort();
}

t.test('backendTls with the wrong CA: the node is down and requests get the unreachable error; a reload with the right CA fixes it', async (t) => {
  const set = await startReplicaSet({ replicas: 1, tls: redisTls, t });
  const [r1] = set.replicas as [(typeof set.replicas)[0]];
  const wrong = listenerFor(set.master, [r1], { backendTls: { ca: pki.otherCa }, healthCheckInterval: 200 });
  const tp = await startTestProxy([wrong], { t });
  const info = await proxyInfo(tp.port);
  t.match(info.node0, /role=master,.*state=down/);
  t.match(info.node1, /role=replica,.*state=down/);
  const client = ioredisClient(tp.port, { maxRetriesPerRequest: 0 });
  await t.rejects(
    client.set('k', 'v'),
    new RegExp(`^ERR redis-proxy: master 127\\.0\\.0\\.1:${set.master.port} is unreachable \\(TLS: .*(self[- ]signed|unable to verify|unable to get local issuer).*\\)`, 'i'),
  );
  await t.rejects(client.get('k'), /^ERR redis-proxy: /);

  // The same nodes with another backendTls are other nodes (nodeKey): new connections, with the right CA.
  await tp.reload([{ ...wrong, listen: tp.port, backendTls: { ca: pki.ca } }]);
  await waitFor('both nodes up', async () => {
    const i = await proxyInfo(tp.port);
    return /state=up/.test(i.node0 ?? '') && /state=up/.test(i.node1 ?? '');
  });
  t.equal(await client.set('k', 'v'), 'OK', 'the same client connection now writes');
  t.equal(await set.master.client().get('k'), 'v');
});

t.test('a Redis that requires client certificates gets the proxy\'s backendTls cert and key', async (t) => {
  const set = await startReplicaSet({
    replicas: 0,
    tls: { ...redisTls, authClients: true, client: pki.client },
    t,
  });
  const without = listenerFor(set.master, [], { name: 'without', backendTls: { ca: pki.ca } });
  const withCert = listenerFor(set.master, [], {
    name: 'with',
    backendTls: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key },
  });
  const tp = await startTestProxy([without, withCert], { t });
  const [withoutPort, withPort] = tp.ports as [number, number];
  t.equal(await ioredisClient(withPort).set('k', 'v'), 'OK', 'with the client certificate');
  t.match((await proxyInfo(withoutPort)).node0, /state=down/, 'without one, the node is down');
});

t.test('a reload swaps the server certificate for new connections; connections already open stay', async (t) => {
  const set = await startReplicaSet({ replicas: 0, t });
  const dir = t.testdir({});
  const cert = path.join(dir, 'proxy.crt');
  const key = path.join(dir, 'proxy.key');
  copyFileSync(pki.server.cert, cert);
  copyFileSync(pki.server.key, key);
  const base = listenerFor(set.master, [], { tls: { cert, key } });
  const tp = await startTestProxy([base], { t });
  const first = await tlsPing(tp.port, { ca });
  t.equal(first.peer?.subject.CN, 'redis-proxy-test-server');
  const old = ioredisClient(tp.port, { tls: { ca } });
  t.equal(await old.set('k', 'v'), 'OK');

  // Renewed in place: the same paths, new contents (what a certificate renewal does), then SIGHUP.
  copyFileSync(pki.server2.cert, cert);
  copyFileSync(pki.server2.key, key);
  await tp.reload([{ ...base, listen: tp.port }]);
  const second = await tlsPing(tp.port, { ca });
  t.equal(second.reply, '+PONG\r\n');
  t.equal(second.peer?.subject.CN, 'redis-proxy-test-server-2', 'a new connection gets the new certificate');
  t.not(second.peer?.fingerprint256, first.peer?.fingerprint256);
  t.equal(await old.get('k'), 'v', 'the connection made before the reload still works');

  // New paths.
  await tp.reload([{ ...base, listen: tp.port, tls: serverTls }]);
  t.equal((await tlsPing(tp.port, { ca })).peer?.subject.CN, 'redis-proxy-test-server', 'paths changed');

  // clientAuth changed: the listener listens anew; the open connection stays.
  await tp.reload([{ ...base, listen: tp.port, tls: { ...serverTls, ca: pki.ca, clientAuth: 'require' } }]);
  t.equal((await tlsPing(tp.port, { ca })).reply, '', 'now a certificate is required');
  const client = { cert: pki.read(pki.client.cert), key: pki.read(pki.client.key) };
  t.equal((await tlsPing(tp.port, { ca, ...client })).reply, '+PONG\r\n');
  t.equal(await old.get('k'), 'v', 'the connection made before still works');
  t.same(old.errors, []);
});

t.test('shutdown does not wait for a client stuck in the TLS handshake', async (t) => {
  const set = await startReplicaSet({ replicas: 0, t });
  const tp = await startTestProxy([listenerFor(set.master, [], { tls: serverTls })], { t });
  const stuck = net.connect({ host: '127.0.0.1', port: tp.port }); // never sends its ClientHello
  stuck.on('error', () => {
    /* reset by the proxy */
  });
  await once(stuck, 'connect');
  const closed = once(stuck, 'close');
  const started = Date.now();
  await tp.close();
  t.ok(Date.now() - started < 3000, `closed in ${Date.now() - started} ms (the TLS handshake timeout is 120 s)`);
  await closed;
});

t.test('authentication "redis" over backendTls: the login is checked, and the user runs, over TLS', async (t) => {
  const set = await startReplicaSet({ replicas: 0, tls: redisTls, t });
  await set.master.client().call('ACL', 'SETUSER', 'reader', 'on', '>rpw', '~*', '+@read', '+ping', '+acl|whoami');
  const tp = await startTestProxy([listenerFor(set.master, [], { authentication: 'redis', backendTls: { ca: pki.ca } })], { t });
  t.equal((await rawCommand(tp.port, 'AUTH reader nope\r\n')).text, '-WRONGPASS invalid username-password pair or user is disabled.\r\n');
  const reply = await rawCommand(tp.port, 'AUTH reader rpw\r\nACL WHOAMI\r\nSET k v\r\n', { replies: 3 });
  t.match(reply.text, /^\+OK\r\n\$6\r\nreader\r\n-NOPERM /, 'the login checked over TLS; the session runs as reader');
});

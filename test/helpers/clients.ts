/**
 * Client connections used by the tests, tracked so that every one is closed when the
 * test file ends, and free ports.
 */
import net from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { createClient } from 'redis';
import t from 'tap';

/** A port nobody listens on right now: listen on port 0, read the port, close. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('no port'));
        return;
      }
      const { port } = address;
      server.close(() => resolve(port));
    });
  });
}

/** Open clients, by the port they connect to. */
const openIoredis = new Map<Redis, number>();

/**
 * An ioredis client on 127.0.0.1:`port`. It gives up reconnecting after a few tries (a
 * test that kills a server should not leave a client retrying forever), and its
 * connection errors are recorded on `errors` instead of being printed as unhandled.
 * Closed automatically at the end of the test file.
 */
export function ioredisClient(
  port: number,
  options: RedisOptions = {},
): Redis & { errors: Error[] } {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    retryStrategy: (times) => (times > 20 ? null : Math.min(times * 50, 500)),
    ...options,
  }) as Redis & { errors: Error[] };
  client.errors = [];
  client.on('error', (err: Error) => client.errors.push(err));
  openIoredis.set(client, port);
  client.once('end', () => openIoredis.delete(client));
  return client;
}

type NodeRedisClient = ReturnType<typeof createClient>;
const openNodeRedis = new Map<NodeRedisClient, number>();

/**
 * A connected node-redis client on 127.0.0.1:`port`, closed at the end of the test file.
 * node-redis 6 speaks RESP3 by default (HELLO 3 at connect); `RESP: 2` for RESP2.
 */
export async function nodeRedisClient(
  port: number,
  options: { RESP?: 2 | 3; database?: number; name?: string } = {},
): Promise<NodeRedisClient> {
  const client = createClient({
    socket: { host: '127.0.0.1', port, reconnectStrategy: false },
    ...options,
  }) as NodeRedisClient;
  client.on('error', () => {
    /* surfaced through the failing command */
  });
  await client.connect();
  openNodeRedis.set(client, port);
  return client;
}

/** Closes the clients opened by this module that are still open (those on `ports`, or all). */
export async function closeAllClients(ports?: number[]): Promise<void> {
  const wanted = (port: number) => ports === undefined || ports.includes(port);
  for (const [client, port] of openIoredis) {
    if (!wanted(port)) continue;
    client.disconnect();
    openIoredis.delete(client);
  }
  for (const [client, port] of openNodeRedis) {
    if (!wanted(port)) continue;
    try {
      client.destroy();
    } catch {
      /* already closed */
    }
    openNodeRedis.delete(client);
  }
}

t.teardown(() => closeAllClients());

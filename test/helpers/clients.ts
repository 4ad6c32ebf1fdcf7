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

const openIoredis = new Set<Redis>();

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
  openIoredis.add(client);
  client.once('end', () => openIoredis.delete(client));
  return client;
}

type NodeRedisClient = ReturnType<typeof createClient>;
const openNodeRedis = new Set<NodeRedisClient>();

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
  openNodeRedis.add(client);
  return client;
}

/** Closes every client opened by this module that is still open. */
export async function closeAllClients(): Promise<void> {
  for (const client of openIoredis) client.disconnect();
  openIoredis.clear();
  for (const client of openNodeRedis) {
    try {
      client.destroy();
    } catch {
      /* already closed */
    }
  }
  openNodeRedis.clear();
}

t.teardown(closeAllClients);

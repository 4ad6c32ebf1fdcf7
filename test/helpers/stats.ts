/**
 * Which node served what: INFO commandstats deltas around a piece of traffic.
 */
import type { RedisServer } from './redis.js';
import { waitFor } from './wait.js';

/** `calls` of each command on each server: result[server index][cmd]. */
async function snapshot(servers: RedisServer[], cmds: string[]): Promise<Record<string, number>[]> {
  return Promise.all(
    servers.map(async (server) => {
      const counts: Record<string, number> = {};
      for (const cmd of cmds) counts[cmd] = await server.commandCalls(cmd);
      return counts;
    }),
  );
}

/**
 * Runs `traffic` and returns how many calls of `cmd` each of `servers` executed
 * meanwhile, in the order of `servers`.
 */
export async function callsDuring(
  servers: RedisServer[],
  cmd: string,
  traffic: () => Promise<unknown>,
): Promise<number[]> {
  const before = await snapshot(servers, [cmd]);
  await traffic();
  const after = await snapshot(servers, [cmd]);
  return after.map((counts, i) => counts[cmd]! - before[i]![cmd]!);
}

/** Like `callsDuring` for several commands: result[cmd][server index]. */
export async function callsDuringMany(
  servers: RedisServer[],
  cmds: string[],
  traffic: () => Promise<unknown>,
): Promise<Record<string, number[]>> {
  const before = await snapshot(servers, cmds);
  await traffic();
  const after = await snapshot(servers, cmds);
  const result: Record<string, number[]> = {};
  for (const cmd of cmds) result[cmd] = after.map((counts, i) => counts[cmd]! - before[i]![cmd]!);
  return result;
}

/**
 * Waits until a read sent through the proxy (by `read`) is served by one of `replicas`
 * (the proxy may keep replicas out of rotation until its first health check).
 */
export async function waitForReplicaReads(
  replicas: RedisServer[],
  read: () => Promise<unknown>,
  cmd = 'get',
): Promise<void> {
  await waitFor(
    'reads through the proxy to reach a replica',
    async () => {
      const calls = await callsDuring(replicas, cmd, read);
      return calls.some((n) => n > 0);
    },
    { timeoutMs: 5000, intervalMs: 50 },
  );
}

export const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

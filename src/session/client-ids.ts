/**
 * Client ids in requests: the proxy's ids are its sessions' (CLIENT ID), the node's are
 * its connections'. A request that names a client (CLIENT TRACKING REDIRECT, CLIENT
 * UNBLOCK) is sent with the node's id of that session's lease, never with the id as given.
 * Sources: https://redis.io/docs/latest/commands/client-tracking/,
 * https://redis.io/docs/latest/commands/client-unblock/
 */
import { encodeCommand } from '../protocol/resp.js';
import type { RequestView } from '../protocol/request-parser.js';
import { parseRedisInteger } from './local-commands.js';

let nextLocalId = 1;
let source: (() => number) | null = null;

/**
 * A new session id (CLIENT ID): 1, 2, 3, … in one process; with workers, from the block
 * of ids the primary gave this worker (src/cluster/peers.ts), so no two clients of the
 * proxy ever share one.
 */
export function newClientId(): number {
  return source !== null ? source() : nextLocalId++;
}

/** Where session ids come from from now on (a worker's blocks); null: this process counts alone. */
export function useClientIds(next: (() => number) | null): void {
  source = next;
}

/** What a worker answers for a session id it does not serve (src/cluster/: CLIENT UNBLOCK, TRACKING REDIRECT). */
export const REMOTE_NO_SESSION = -2;

/** A session as far as its id is concerned: the node's id of its lease, or -1 without one. */
export interface IdTarget {
  readonly leaseClientId: number;
}

/** The argument index of CLIENT TRACKING's REDIRECT id, or -1. */
export function redirectArg(req: RequestView): number {
  for (let i = 3; i < req.argc - 1; i++) if (req.argIs(i, 'redirect')) return i + 1;
  return -1;
}

/** The session id CLIENT TRACKING REDIRECT names; 0 without REDIRECT (NaN when not an integer). */
export function redirectTarget(req: RequestView): number {
  const arg = redirectArg(req);
  return arg < 0 ? 0 : parseRedisInteger(req.argString(arg));
}

/** The request with argument `arg` replaced by the node's client id `clientId`. */
export function withClientId(req: RequestView, arg: number, clientId: number): Buffer {
  const args = req.args();
  args[arg] = Buffer.from(String(clientId));
  return encodeCommand(args);
}

/**
 * CLIENT UNBLOCK <id> [TIMEOUT | ERROR] with the session id translated to the node's id of
 * that session's lease (where its blocking command waits), or to 0 (no connection has it)
 * when no session with a lease has that id. Null for a malformed request, to be sent as it
 * is for Redis's own error.
 */
export function unblockRequest(req: RequestView, sessionById: (id: number) => IdTarget | undefined): Buffer | null {
  const id = req.argc === 3 || req.argc === 4 ? parseRedisInteger(req.argString(2)) : NaN;
  if (Number.isNaN(id)) return null;
  const target = sessionById(id);
  return withClientId(req, 2, target !== undefined && target.leaseClientId >= 0 ? target.leaseClientId : 0);
}

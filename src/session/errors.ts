/**
 * The error texts a client sees for what the proxy itself decides (a node it cannot use,
 * a command it does not forward). Redis's own errors pass through unchanged; these all
 * start with `ERR redis-proxy:` so a client's logs tell them apart.
 */
import type { BackendFailure } from '../backend/link.js';

/**
 * A request's link failed before its reply came: `ERR redis-proxy: master 10.0.0.1:6379
 * connection closed`; for a node busy with a script, Redis's own BUSY error.
 */
export function failureText(failure: BackendFailure): string {
  if (failure.kind === 'busy') return failure.detail;
  return `ERR redis-proxy: ${failure.node} ${failure.detail}`;
}

/** A write (or a read that only the master can serve) while the master is unreachable. */
export function unreachableText(node: string, error: string): string {
  return `ERR redis-proxy: ${node} is unreachable (${error || 'down'})`;
}

/**
 * A write while the listener's master reports `role:slave` (demoted by a failover the
 * config does not know of). READONLY, as Redis answers a write sent to a replica, so a
 * client that reacts to a failover (reconnects, re-resolves) does so here too.
 */
export function demotedMasterText(node: string): string {
  return (
    `READONLY redis-proxy: ${node} reports role:slave, so writes are refused; ` +
    'name the new master in the config and reload, or follow the master with "sentinel"'
  );
}

/** No dedicated connection could be leased (pool exhausted for `connectTimeout`, or the node down). */
export function noConnectionText(node: string, error: string): string {
  return `ERR redis-proxy: no connection to ${node} (${error})`;
}

/** readPolicy `replica` and no replica in the rotation. */
export const NO_REPLICA = 'ERR redis-proxy: no healthy replica to read from (readPolicy "replica")';

/**
 * SYNC, PSYNC and REPLCONF: a replica's handshake. The proxy multiplexes clients over its
 * own connections and is not a replication source.
 */
export function replicationRefusedText(name: string): string {
  return (
    `ERR redis-proxy: ${name.toUpperCase()} is not supported through the proxy: it is not a replication source; ` +
    'point the replica at the master itself'
  );
}

/** Redis's own text when CLIENT TRACKING REDIRECT names no connected client. */
export const NO_REDIRECT_TARGET = 'ERR The client ID you want redirect to does not exist';

/** Redis's arity error (`client|reply` for a subcommand, as Redis 7 writes it). */
export function wrongArityText(name: string): string {
  return `ERR wrong number of arguments for '${name}' command`;
}

/**
 * A login (`authentication: "redis"`) the master did not answer within `connectTimeout`:
 * the credentials could not be checked, so the session stays as it was.
 */
export function loginUncheckedText(node: string, error: string): string {
  return `ERR redis-proxy: ${node} did not answer the AUTH that checks the credentials (${error})`;
}

/**
 * WAIT or WAITAOF whose marker (`PUBLISH __redis-proxy__:wait ""`, which makes it count
 * the session's writes) Redis refused, typically NOPERM for a Redis user without
 * permission to publish there: the count would not cover the session's writes.
 */
export function waitMarkerRefusedText(error: string): string {
  return (
    'ERR redis-proxy: WAIT needs the proxy\'s PUBLISH to __redis-proxy__:wait first (it makes WAIT count this ' +
    `session's writes), and Redis refused it: ${error}`
  );
}

/** HELLO with a second AUTH option inside MULTI on a listener with `authentication: "redis"`. */
export const HELLO_SECOND_AUTH_IN_MULTI =
  'ERR redis-proxy: HELLO with more than one AUTH option is not supported inside MULTI with "authentication": "redis"';

/**
 * CLIENT LIST or CLIENT KILL from a session running as a Redis user, when the master
 * could not say (with ACL DRYRUN) whether that user may run it: refused, since they reach
 * other sessions.
 */
export function permissionUncheckedText(user: string, command: string, error: string): string {
  return `ERR redis-proxy: cannot check whether user '${user}' may run ${command.toUpperCase().replace('|', ' ')} (ACL DRYRUN failed: ${error})`;
}

/**
 * Redis's NOPERM error from ACL DRYRUN's answer (`This user has no permissions to run the
 * 'client|kill' command`), as Redis words it to the client.
 */
export function nopermText(dryRunAnswer: string): string {
  return `NOPERM ${dryRunAnswer.charAt(0).toLowerCase()}${dryRunAnswer.slice(1)}`;
}

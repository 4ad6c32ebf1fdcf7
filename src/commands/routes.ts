/**
 * How the proxy handles each command: one route and a few traits per command or
 * subcommand, decided once when the table is loaded or a command is learned, so that
 * dispatch is one switch over a number. The rules read as one table here; the session
 * carries them out (src/session/session.ts) and docs/architecture.md explains them.
 *
 * Sources: the command flags of https://redis.io/docs/latest/commands/command-info/ and
 * each command's page.
 */
import { CMD_BLOCKING, CMD_MOVABLEKEYS, CMD_READONLY, CMD_WRITE } from './flags.js';

// ---- routes ---------------------------------------------------------------------------

/** To the master (the session's master connection). */
export const ROUTE_MASTER = 0;
/** To a node the listener's read policy picks. */
export const ROUTE_READ = 1;
/** A read with a cursor (SCAN family): a new iteration picks a node, a cursor stays on it. */
export const ROUTE_SCAN = 2;
/** Answered by the proxy itself (src/session/local-commands.ts). */
export const ROUTE_LOCAL = 3;
/** Starts Pub/Sub mode on a dedicated connection. */
export const ROUTE_SUBSCRIBE = 4;
/** Outside Pub/Sub mode the proxy answers Redis's "not subscribed" confirmations. */
export const ROUTE_UNSUBSCRIBE = 5;
/** Starts MONITOR mode on a dedicated connection. */
export const ROUTE_MONITOR = 6;
/** May block: runs on a dedicated connection for the one command. */
export const ROUTE_BLOCKING = 7;
/** XREAD / XREADGROUP: blocking only with BLOCK, else a read (XREAD) or a write (XREADGROUP). */
export const ROUTE_XREAD = 8;
export const ROUTE_MULTI = 9;
export const ROUTE_WATCH = 10;
export const ROUTE_UNWATCH = 11;
/** WAIT and WAITAOF: on a dedicated connection behind a replicated marker. */
export const ROUTE_WAIT = 12;
/** CLIENT TRACKING: pins the session to a dedicated connection. */
export const ROUTE_TRACKING = 13;
/** INFO: the master's answer plus the proxy's own section. */
export const ROUTE_INFO = 14;
/** SCRIPT LOAD / SCRIPT FLUSH: not replicated by Redis, so sent to every node. */
export const ROUTE_ALL_NODES = 15;
/** SYNC, PSYNC, REPLCONF: replication handshakes; the proxy is not a replication source. */
export const ROUTE_REFUSED = 16;
/** CLIENT UNBLOCK: names a client, so the proxy's id is translated to the node's. */
export const ROUTE_UNBLOCK = 17;
/**
 * Commands Redis runs while a script is busy (flagged `allow_busy`: SCRIPT KILL, FUNCTION
 * KILL, FUNCTION STATS, SHUTDOWN): on the master's priority connection, never queued
 * behind a script.
 */
export const ROUTE_BUSY = 18;
/**
 * CLIENT CACHING: meaningful only on the connection that has tracking on, so it goes to
 * the session's lease; without one the proxy gives Redis's error.
 */
export const ROUTE_CACHING = 19;

// ---- traits -----------------------------------------------------------------------------

/** May change data: counts as a write for causal reads (a blocking write too). */
export const TRAIT_WRITE = 1;
/**
 * Changes the server-side state of the connection it runs on (transaction, WATCH,
 * database, protocol, reply mode, name, subscriptions, tracking, eviction and touch
 * flags, cluster modes). Such a
 * command never reaches a shared connection; on a dedicated one it is tracked or the
 * connection is destroyed instead of pooled (docs/architecture.md "Isolation").
 */
export const TRAIT_CONNECTION_STATE = 2;
/** Runs a Lua script or a function, which can call other commands. */
export const TRAIT_SCRIPT = 4;
/**
 * A listener may refuse it whatever its denyCommands: scripts (see TRAIT_SCRIPT),
 * topology commands (REPLICAOF, SLAVEOF, FAILOVER, SHUTDOWN; src/server/deny-list.ts)
 * and replication handshakes (ROUTE_REFUSED).
 */
export const TRAIT_GUARDED = 8;

/**
 * What it touches is more than, or other than, the keys its table entry names: key
 * positions that depend on the arguments (`movablekeys`), a script's undeclared keys,
 * another database, or every key. Causal reads treat such a write as a barrier and such a
 * read as reading everything (src/consistency/causal-reads.ts).
 */
export const TRAIT_KEYS_UNKNOWN = 16;

/** Commands that touch more than the keys their table entry names. */
const TOUCHES_MORE: ReadonlySet<string> = new Set(['move', 'copy', 'swapdb', 'flushdb', 'flushall', 'exec']);

/** Commands that change the replication topology the proxy manages (refused unless `allowTopologyCommands`). */
export const TOPOLOGY_COMMANDS: ReadonlySet<string> = new Set(['replicaof', 'slaveof', 'failover', 'shutdown']);

/** Commands the proxy answers itself (each has a handler in src/session/local-commands.ts). */
export const LOCAL_NAMES: ReadonlySet<string> = new Set([
  'ping',
  'echo',
  'quit',
  'select',
  'auth',
  'hello',
  'reset',
  'client|setname',
  'client|getname',
  'client|id',
  'client|list',
  'client|info',
  'client|kill',
  'client|reply',
  'client|no-evict',
  'client|no-touch',
  'client|setinfo',
  'client|getredir',
  'readonly',
  'readwrite',
  'asking',
]);

const SPECIAL_ROUTES: ReadonlyMap<string, number> = new Map([
  ['scan', ROUTE_SCAN],
  ['sscan', ROUTE_SCAN],
  ['hscan', ROUTE_SCAN],
  ['zscan', ROUTE_SCAN],
  ['subscribe', ROUTE_SUBSCRIBE],
  ['psubscribe', ROUTE_SUBSCRIBE],
  ['ssubscribe', ROUTE_SUBSCRIBE],
  ['unsubscribe', ROUTE_UNSUBSCRIBE],
  ['punsubscribe', ROUTE_UNSUBSCRIBE],
  ['sunsubscribe', ROUTE_UNSUBSCRIBE],
  ['monitor', ROUTE_MONITOR],
  ['xread', ROUTE_XREAD],
  ['xreadgroup', ROUTE_XREAD],
  ['multi', ROUTE_MULTI],
  ['watch', ROUTE_WATCH],
  ['unwatch', ROUTE_UNWATCH],
  ['wait', ROUTE_WAIT],
  ['waitaof', ROUTE_WAIT],
  ['client|tracking', ROUTE_TRACKING],
  ['client|unblock', ROUTE_UNBLOCK],
  ['info', ROUTE_INFO],
  ['script|load', ROUTE_ALL_NODES],
  ['script|flush', ROUTE_ALL_NODES],
  ['sync', ROUTE_REFUSED],
  ['psync', ROUTE_REFUSED],
  ['replconf', ROUTE_REFUSED],
  ['script|kill', ROUTE_BUSY],
  ['function|kill', ROUTE_BUSY],
  ['function|stats', ROUTE_BUSY],
  ['shutdown', ROUTE_BUSY],
  ['client|caching', ROUTE_CACHING],
]);

/** Script and function calls; the non-_RO ones may write although Redis 7 does not flag them `write`. */
const SCRIPTS_THAT_WRITE: ReadonlySet<string> = new Set(['eval', 'evalsha', 'fcall']);
const READ_ONLY_SCRIPTS: ReadonlySet<string> = new Set(['eval_ro', 'evalsha_ro', 'fcall_ro']);
/** Every command that runs a Lua script or a function (TRAIT_SCRIPT). */
export const SCRIPT_COMMANDS: ReadonlySet<string> = new Set([...SCRIPTS_THAT_WRITE, ...READ_ONLY_SCRIPTS]);

const CONNECTION_STATE: ReadonlySet<string> = new Set([
  'multi',
  'watch',
  'select',
  'hello',
  'auth',
  'reset',
  'subscribe',
  'psubscribe',
  'ssubscribe',
  'unsubscribe',
  'punsubscribe',
  'sunsubscribe',
  'monitor',
  'readonly',
  'readwrite',
  'asking',
  'client|reply',
  'client|tracking',
  'client|caching',
  'client|setname',
  'client|setinfo',
  'client|no-evict',
  'client|no-touch',
]);

/**
 * The route of a command or subcommand (a ROUTE_* value) from its lowercase name
 * (`container|sub` for subcommands) and its CMD_* flags. `hasSetinfo` tells, for the
 * CLIENT container, whether the table knows CLIENT SETINFO: when it does not (a 7.0
 * table), subcommands it lacks resolve to the container, which the proxy then answers
 * (SETINFO, NO-TOUCH, or Redis's unknown-subcommand error).
 */
export function routeOf(name: string, flags: number, hasSetinfo = true): number {
  const special = SPECIAL_ROUTES.get(name);
  if (special !== undefined) return special;
  if (LOCAL_NAMES.has(name) || (name === 'client' && !hasSetinfo)) return ROUTE_LOCAL;
  if (flags & CMD_BLOCKING) return ROUTE_BLOCKING;
  if (flags & CMD_READONLY || READ_ONLY_SCRIPTS.has(name)) return ROUTE_READ;
  return ROUTE_MASTER;
}

/** The TRAIT_* bits of a command or subcommand (name and flags as for {@link routeOf}). */
export function traitsOf(name: string, flags: number): number {
  let traits = 0;
  if (flags & CMD_WRITE || SCRIPTS_THAT_WRITE.has(name)) traits |= TRAIT_WRITE;
  if (CONNECTION_STATE.has(name)) traits |= TRAIT_CONNECTION_STATE;
  if (SCRIPTS_THAT_WRITE.has(name) || READ_ONLY_SCRIPTS.has(name)) traits |= TRAIT_SCRIPT | TRAIT_GUARDED;
  if (TOPOLOGY_COMMANDS.has(name) || SPECIAL_ROUTES.get(name) === ROUTE_REFUSED) traits |= TRAIT_GUARDED;
  if (flags & CMD_MOVABLEKEYS || traits & TRAIT_SCRIPT || TOUCHES_MORE.has(name)) traits |= TRAIT_KEYS_UNKNOWN;
  return traits;
}


/**
 * The command flags of Redis's `COMMAND INFO`, one bit each, and the map from Redis's
 * flag strings to the bits.
 * Source: https://redis.io/docs/latest/commands/command-info/
 */

// One bit per command flag. Plain numbers (not a const enum) so that they work
// under isolatedModules and can be OR-ed and tested with `&` on the hot path.

/** `readonly`: the command only reads data; may be served by a replica. */
export const CMD_READONLY = 1 << 0;
/** `write`: the command may modify data; must go to the master. */
export const CMD_WRITE = 1 << 1;
/** `admin`: administrative command (CONFIG, DEBUG, SHUTDOWN, ...). */
export const CMD_ADMIN = 1 << 2;
/** `pubsub`: Pub/Sub related (SUBSCRIBE, PUBLISH, PUBSUB ..., ...). */
export const CMD_PUBSUB = 1 << 3;
/** `noscript`: not allowed inside Lua scripts / functions. */
export const CMD_NOSCRIPT = 1 << 4;
/** `blocking`: may block the client (BLPOP, BZPOPMIN, XREAD, ...; WAIT is not flagged in Redis 7.0). */
export const CMD_BLOCKING = 1 << 5;
/** `loading`: allowed while the server is loading its dataset. */
export const CMD_LOADING = 1 << 6;
/** `stale`: allowed on a replica with stale data (master link down). */
export const CMD_STALE = 1 << 7;
/** `fast`: O(1) or O(log N) command. */
export const CMD_FAST = 1 << 8;
/** `no_auth`: allowed before authentication (AUTH, HELLO, QUIT, RESET). */
export const CMD_NO_AUTH = 1 << 9;
/** `may_replicate`: may be replicated although not a write (none in Redis 7.0). */
export const CMD_MAY_REPLICATE = 1 << 10;
/** `no_multi`: not allowed inside MULTI. */
export const CMD_NO_MULTI = 1 << 11;
/** `movablekeys`: key positions depend on the arguments; firstKey/lastKey/step are not enough. */
export const CMD_MOVABLEKEYS = 1 << 12;
/** `denyoom`: rejected when the server is over `maxmemory`. */
export const CMD_DENYOOM = 1 << 13;
/** `skip_monitor`: not shown to MONITOR. */
export const CMD_SKIP_MONITOR = 1 << 14;
/** `allow_busy`: allowed while a script or function is running too long (BUSY). */
export const CMD_ALLOW_BUSY = 1 << 15;
/** `no_mandatory_keys`: may be called with zero keys although it takes keys (EVAL, FCALL). */
export const CMD_NO_MANDATORY_KEYS = 1 << 16;
/** `no_async_loading`: refused during async loading (repl-diskless-load swapdb). */
export const CMD_NO_ASYNC_LOADING = 1 << 17;
/** `skip_slowlog`: not recorded in SLOWLOG (EXEC). */
export const CMD_SKIP_SLOWLOG = 1 << 18;
/** `asking`: cluster ASKING semantics (ASKING itself). */
export const CMD_ASKING = 1 << 19;

/** Redis flag string (lowercase, as COMMAND INFO gives it) -> bit. Unknown flag strings are ignored. */
export const FLAG_BITS: ReadonlyMap<string, number> = new Map([
  ['readonly', CMD_READONLY],
  ['write', CMD_WRITE],
  ['admin', CMD_ADMIN],
  ['pubsub', CMD_PUBSUB],
  ['noscript', CMD_NOSCRIPT],
  ['blocking', CMD_BLOCKING],
  ['loading', CMD_LOADING],
  ['stale', CMD_STALE],
  ['fast', CMD_FAST],
  ['no_auth', CMD_NO_AUTH],
  ['may_replicate', CMD_MAY_REPLICATE],
  ['no_multi', CMD_NO_MULTI],
  ['movablekeys', CMD_MOVABLEKEYS],
  ['denyoom', CMD_DENYOOM],
  ['skip_monitor', CMD_SKIP_MONITOR],
  ['allow_busy', CMD_ALLOW_BUSY],
  ['no_mandatory_keys', CMD_NO_MANDATORY_KEYS],
  ['no_async_loading', CMD_NO_ASYNC_LOADING],
  ['skip_slowlog', CMD_SKIP_SLOWLOG],
  ['asking', CMD_ASKING],
]);

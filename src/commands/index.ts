/**
 * The command table: arity, flags and key positions of every Redis command and
 * subcommand, with case-insensitive lookup and run-time learning of module commands.
 * See ./table.ts and https://redis.io/docs/latest/commands/command-info/
 */
export {
  CMD_READONLY,
  CMD_WRITE,
  CMD_ADMIN,
  CMD_PUBSUB,
  CMD_NOSCRIPT,
  CMD_BLOCKING,
  CMD_LOADING,
  CMD_STALE,
  CMD_FAST,
  CMD_NO_AUTH,
  CMD_MAY_REPLICATE,
  CMD_NO_MULTI,
  CMD_MOVABLEKEYS,
  CMD_DENYOOM,
  CMD_SKIP_MONITOR,
  CMD_ALLOW_BUSY,
  CMD_NO_MANDATORY_KEYS,
  CMD_NO_ASYNC_LOADING,
  CMD_SKIP_SLOWLOG,
  CMD_ASKING,
} from './flags.js';
export {
  TABLE_REDIS_VERSION,
  STATIC_COMMAND_NAMES,
  lookupCommand,
  lookupCommandBytes,
  resolveSubcommand,
  learnCommands,
} from './table.js';
export type { CommandInfo } from './table.js';
export {
  ROUTE_MASTER,
  ROUTE_READ,
  ROUTE_SCAN,
  ROUTE_LOCAL,
  ROUTE_SUBSCRIBE,
  ROUTE_UNSUBSCRIBE,
  ROUTE_MONITOR,
  ROUTE_BLOCKING,
  ROUTE_XREAD,
  ROUTE_MULTI,
  ROUTE_WATCH,
  ROUTE_UNWATCH,
  ROUTE_WAIT,
  ROUTE_TRACKING,
  ROUTE_INFO,
  ROUTE_ALL_NODES,
  ROUTE_REFUSED,
  ROUTE_UNBLOCK,
  TRAIT_WRITE,
  TRAIT_CONNECTION_STATE,
  TRAIT_SCRIPT,
  LOCAL_NAMES,
  UNKNOWN_ROUTE,
  UNKNOWN_TRAITS,
} from './routes.js';

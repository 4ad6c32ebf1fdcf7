/**
 * The config module: load and validate the JSON config file into a ProxyConfig.
 * See load.ts for the layering of defaults, errors.ts for the problem-message style.
 */
export type {
  BackendTls,
  ClientAuth,
  ClientUser,
  ListenerConfig,
  ListenerSettings,
  LogLevel,
  NodeConfig,
  ProxyConfig,
  ReadPolicy,
  ServerTls,
} from './types.js';
export { loadConfig, normalizeConfig, normalizeDenyCommands, type NormalizeOptions } from './load.js';
export { secureContextOptions } from './tls.js';
export { ConfigError } from './errors.js';
export { rereadConfig } from './reread.js';
export {
  BUILTIN_SETTINGS,
  DEFAULT_LOG_LEVEL,
  DEFAULT_SHUTDOWN_TIMEOUT,
  DEFAULT_WEIGHT,
  defaultListenerName,
} from './defaults.js';
export { CLIENT_AUTH_MODES, LOG_LEVELS, READ_POLICIES } from './schema.js';

/**
 * Built-in defaults: the values a listener gets for every setting that neither the
 * listener itself nor the file's `defaults` object sets.
 *
 * Precedence, highest first: the listener's own key > the `defaults` object (object
 * form only) > these values.
 */
import type { ListenerSettings, LogLevel, NearCacheConfig } from './types.js';

/** The settings every listener has a value for after loading (the optional ones stay unset). */
export type RequiredSettings = Omit<
  ListenerSettings,
  'password' | 'users' | 'backendUsername' | 'backendPassword' | 'causalReads' | 'readYourWrites' | 'backendTls'
>;

/** Built-in value of every non-optional ListenerSettings key. Units as in types.ts. */
export const BUILTIN_SETTINGS: Readonly<RequiredSettings> = Object.freeze({
  bind: '127.0.0.1',
  readPolicy: 'prefer-replica',
  authentication: 'proxy',
  sharedConnections: 1,
  maxDedicatedConnections: 100,
  connectTimeout: 2000,
  commandTimeout: 5000,
  outlierTimeouts: 2,
  outlierWindow: 30_000,
  clientIdleTimeout: 0,
  healthCheckInterval: 1000,
  maxReplicationLag: 10,
  maxPipeline: 1024,
  clientOutputPause: 1024 * 1024,
  clientOutputLimit: 256 * 1024 * 1024,
  denyCommands: [],
  allowTopologyCommands: false,
  scriptsBypassDenyCommands: false,
});

/** The causal-read mode of a listener that sets neither causalReads nor readYourWrites. */
export const DEFAULT_CAUSAL_READS = 'global';

/** Log level when the file does not say (the array form never does). */
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

/** ms that SIGTERM/SIGINT waits for in-flight replies when the file does not say. */
export const DEFAULT_SHUTDOWN_TIMEOUT = 5000;

/** The most proxy processes `workers` may ask for ("auto" is capped here too). */
export const MAX_WORKERS = 64;

/** Read weight of a node that does not set `weight`. */
export const DEFAULT_WEIGHT = 1;

/** Listener name when the listener does not set `name`: `listener-<port>`. */
export function defaultListenerName(port: number): string {
  return `listener-${port}`;
}

/** `http.maxInFlight` when unset. */
export const DEFAULT_HTTP_MAX_IN_FLIGHT = 64;

/** The near cache's size with `nearCache: true` and no `http.cache`: 10,000 entries, no byte limit, 60 s. */
export const DEFAULT_NEAR_CACHE: Readonly<NearCacheConfig> = Object.freeze({ maxKeys: 10_000, ttl: 60_000 });

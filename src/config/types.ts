/**
 * The normalized configuration the proxy runs on: what `loadConfig` returns after the
 * JSON file has been validated by the schema and every default filled in. The core
 * (listeners, sessions, nodes) reads only this shape, never the raw file.
 *
 * Units are in the key names' docs: durations in milliseconds, sizes in bytes.
 */

/** Where reads go. See docs/architecture.md "Routing rules". */
export type ReadPolicy = 'replica' | 'prefer-replica' | 'master' | 'any';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** One Redis server behind a listener (the master or a replica). */
export interface NodeConfig {
  host: string;
  port: number;
  /**
   * Share of reads relative to the other replicas (round-robin by weight), 0-1000.
   * Default 1. 0 = never chosen for reads (still health-checked).
   */
  weight: number;
  /**
   * ACL username the proxy authenticates to this node with (AUTH username password).
   * Already resolved by loadConfig: a node that sets `username` or `password` keeps its
   * own pair, one that sets neither gets the listener's backendUsername/backendPassword.
   * Never set without `password`.
   */
  username?: string;
  /** Password the proxy authenticates to this node with (resolved as `username`). Never logged. */
  password?: string;
  /**
   * TLS to this node (Redis started with `--tls-port`); unset: plain TCP. Already resolved
   * by normalizeConfig: the node's own `backendTls` when it sets one (`false`: plain),
   * else the listener's (its own key, else `defaults`). Every connection to the node uses
   * it: data, dedicated and control (health-check) connections.
   */
  tls?: BackendTls;
}

/**
 * How a listener's clients authenticate with certificates (the listener's `tls.clientAuth`):
 * `none` (no certificate asked), `request` (asked; a client without one is accepted, one
 * whose certificate the `ca` did not sign is refused: Redis's `tls-auth-clients optional`),
 * `require` (a certificate signed by `ca` is required: `tls-auth-clients yes`).
 */
export type ClientAuth = 'none' | 'request' | 'require';

/**
 * A listener's `tls` key, normalized: the listener accepts TLS clients only. Paths are
 * absolute (a relative path in the file is resolved against the config file's
 * directory); the PEM contents were read from them by normalizeConfig, at start and on
 * every reload, and checked (a certificate, a private key that matches it, CA
 * certificates). The contents are redacted from logs (src/log.ts).
 * See https://nodejs.org/docs/latest-v20.x/api/tls.html#tlscreateserveroptions-secureconnectionlistener
 */
export interface ServerTls {
  /** Path of the server certificate (PEM; may be followed by its intermediate CAs). */
  certFile: string;
  /** Path of its private key (PEM, not encrypted). */
  keyFile: string;
  /** Path of the CA certificates that sign client certificates (PEM); needed unless clientAuth is `none`. */
  caFile?: string;
  /** Default `none`. */
  clientAuth: ClientAuth;
  /** The contents of certFile. */
  cert: string;
  /** The contents of keyFile. Never logged. */
  key: string;
  /** The contents of caFile. */
  ca?: string;
}

/**
 * TLS to a node, normalized from `backendTls` (`true`: `{ rejectUnauthorized: true }`, the
 * system CAs). Paths and contents as in {@link ServerTls}.
 * See https://nodejs.org/docs/latest-v20.x/api/tls.html#tlsconnectoptions-callback
 */
export interface BackendTls {
  /** Path of the CA certificates the node's certificate must be signed by; unset: Node's bundled root CAs. */
  caFile?: string;
  /** Path of the client certificate the proxy presents (Redis's `tls-auth-clients yes`); set together with keyFile. */
  certFile?: string;
  /** Path of its private key. */
  keyFile?: string;
  /** The contents of caFile. */
  ca?: string;
  /** The contents of certFile. */
  cert?: string;
  /** The contents of keyFile. Never logged. */
  key?: string;
  /**
   * The name sent as SNI and checked against the node's certificate; unset: the node's
   * `host` (an IP address is then checked against the certificate's IP SANs).
   */
  servername?: string;
  /** Verify the node's certificate (chain and name). Default true; false accepts any certificate. */
  rejectUnauthorized: boolean;
}

/** A user a client may authenticate to the proxy as (like a Redis ACL user). */
export interface ClientUser {
  username: string;
  password: string;
}

/**
 * Who checks a client's AUTH / HELLO AUTH, and as whom its commands run (README "Redis ACL users"):
 * - `proxy`: the listener's `password` / `users`; every command runs as the listener's
 *   backend user (`backendUsername`, or each node's own credentials).
 * - `redis`: the master checks the credentials (Redis ACL users, `requirepass`); the
 *   session's commands then run on backend connections authenticated as that user, so
 *   Redis enforces its ACL. See https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/
 */
export type AuthenticationMode = 'proxy' | 'redis';

/** Settings that a listener may set and that `defaults` may set for every listener. */
export interface ListenerSettings {
  /** Address to accept clients on. Default "127.0.0.1". */
  bind: string;
  /**
   * TLS to every node of the listener, as written in the file (`true`, `false` or an
   * object); resolved into each NodeConfig's `tls` (and the listener's `backendTls`) by
   * normalizeConfig. Unset: plain TCP.
   */
  backendTls?: boolean | RawBackendTls;
  /** Default "prefer-replica". */
  readPolicy: ReadPolicy;
  /** Who checks clients' credentials and as whom their commands run. Default "proxy". */
  authentication: AuthenticationMode;
  /** Password clients must AUTH with (like `requirepass`); unset: no client auth. Only with `authentication: "proxy"`. */
  password?: string;
  /** ACL-style users clients may AUTH as (`AUTH user pass`); unset: none. Only with `authentication: "proxy"`. */
  users?: ClientUser[];
  /**
   * Default backend credentials for every node of the listener (a node may override).
   * Already copied into each NodeConfig by loadConfig; kept here for display only.
   */
  backendUsername?: string;
  backendPassword?: string;
  /** Multiplexed connections kept per node and database. Default 1. */
  sharedConnections: number;
  /** Most dedicated (leased) connections per node, for MULTI/WATCH/blocking/Pub/Sub. Default 100. */
  maxDedicatedConnections: number;
  /** ms to establish a backend connection. Default 2000. */
  connectTimeout: number;
  /**
   * ms a request on a shared connection may wait for its reply before the client gets an
   * error; 0 = never. Not applied while a script or function call is the oldest request
   * waiting on its connection. Default 5000.
   */
  commandTimeout: number;
  /**
   * Outlier detection: a replica leaves the read rotation when this many of its data
   * connections were closed by commandTimeout within `outlierWindow` ms, until a probe on
   * a data connection is answered; 0 = never. Default 2.
   */
  outlierTimeouts: number;
  /** ms over which `outlierTimeouts` are counted. Default 30000. */
  outlierWindow: number;
  /** ms of client inactivity before the proxy closes it (like Redis `timeout`); 0 = never. Default 0. */
  clientIdleTimeout: number;
  /** ms between health checks of every node. Default 1000. */
  healthCheckInterval: number;
  /** s of replication lag past which a replica leaves the read rotation. Default 10. */
  maxReplicationLag: number;
  /** Requests a session may have in flight before the proxy stops reading from it. Default 1024. */
  maxPipeline: number;
  /** Bytes of unsent replies past which the proxy stops reading from a client. Default 1 MiB. */
  clientOutputPause: number;
  /** Bytes of unsent replies past which the client is disconnected (like Redis client-output-buffer-limit); 0 = never. Default 256 MiB. */
  clientOutputLimit: number;
  /**
   * Commands (lowercase, `config` or `config|set`) refused on this listener. Default [].
   * Normalized by loadConfig: lowercase, subcommand as `command|subcommand`, no repeats.
   * Checked by loadConfig against the static command table (src/commands/table.json):
   * an entry that names no command, or no subcommand of its container, is a config
   * error with a did-you-mean. Entries whose name contains a '.' (module commands such
   * as `ft.dropindex`, `json.del`) are accepted unchecked: modules are known only at
   * run time. A container (`config`) denies all of its subcommands.
   */
  denyCommands: string[];
  /**
   * Forward REPLICAOF, SLAVEOF, FAILOVER and SHUTDOWN to the master. Default false: the
   * proxy refuses them, since they change the replication topology the proxy manages
   * (which node is the master, or whether it runs at all).
   */
  allowTopologyCommands: boolean;
  /**
   * Let scripts (EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO) run although a
   * `denyCommands` entry can be called from a script and Redis's ACL does not refuse it to
   * the proxy's backend user (checked with ACL DRYRUN). Default false: such scripts are
   * refused. true: a script may run a denied command (the deny list then covers only
   * commands sent directly and inside MULTI).
   */
  scriptsBypassDenyCommands: boolean;
  /**
   * Which writes a read must see (see README "Consistency"): `none` (eventual), `session`
   * (the session's own), `global` (every write acknowledged to any client of the
   * listener before the read). Unset: `session` if `readYourWrites` is true, else `global`.
   */
  causalReads?: CausalMode;
  /** Alias of `causalReads: "session"` (the older key); contradicting causalReads is a config error. */
  readYourWrites?: boolean;
}

/** The object form of `backendTls` as written in the file (paths, not contents). */
export interface RawBackendTls {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized?: boolean;
}

/** Which writes a read must see. */
export type CausalMode = 'none' | 'session' | 'global';

/**
 * The `sentinel` key of a listener: the master (and its replicas) are found and followed
 * through Redis Sentinel instead of fixed addresses.
 * See https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/
 */
export interface SentinelConfig {
  /** The name the Sentinels monitor the master under (`sentinel monitor <name> ...`). */
  masterName: string;
  /** The Sentinels, tried in this order (the next one when one does not answer). */
  nodes: Array<{ host: string; port: number }>;
  /** Credentials for the Sentinels themselves (`AUTH [username] password`). */
  username?: string;
  password?: string;
}

/**
 * The size of a listener's near cache (src/cache/near-cache.ts), from `http.cache` or a
 * `nearCache` object (or the defaults with `nearCache: true`). Entries are string values
 * of GET, kept correct by Redis's client-side caching invalidations.
 * See https://redis.io/docs/latest/develop/reference/client-side-caching/
 */
export interface NearCacheConfig {
  /** Most entries kept; the least recently used are evicted first. */
  maxKeys: number;
  /** Most bytes kept (key bytes + value bytes per entry); unset: no byte limit. */
  maxBytes?: number;
  /** ms an entry may be kept after it was fetched. */
  ttl: number;
}

/** A listener's `http` key: the HTTP GET front end (src/http/server.ts). */
export interface HttpConfig {
  /** TCP port of the HTTP server. */
  listen: number;
  /** Address to listen on. Default: the listener's `bind`. */
  bind: string;
  /** Requests waiting on Redis at once; 4 times as many more wait in a queue, the rest get 503. Default 64. */
  maxInFlight: number;
  /** HTTP GETs are answered from the listener's near cache (`http.cache` was set). */
  cached: boolean;
}

/** One `listen` port: its own master, replicas, pools and settings. */
export interface ListenerConfig extends Omit<ListenerSettings, 'causalReads' | 'readYourWrites' | 'backendTls'> {
  /** The listener's causal-read mode, resolved (readYourWrites folded in). */
  causalReads: CausalMode;
  /** Name used in logs and metrics. Default "listener-<port>". */
  name: string;
  /** TCP port to accept clients on. */
  listen: number;
  /** The fixed master; unset exactly when `sentinel` is set. */
  master?: NodeConfig;
  /** Where Sentinel says the master is; unset exactly when `master` is set. */
  sentinel?: SentinelConfig;
  /** The config file's `slave` list (with `sentinel`: fixed replicas besides those Sentinel reports). */
  replicas: NodeConfig[];
  /** Clients connect with TLS (the listener's `tls` key); unset: plain TCP. */
  tls?: ServerTls;
  /**
   * The listener's backend TLS (its `backendTls`, else `defaults.backendTls`; unset when
   * neither is set or it is `false`). Already resolved into every fixed NodeConfig; used
   * for the nodes Sentinel reports.
   */
  backendTls?: BackendTls;
  /** The HTTP GET front end of the listener; unset: none. */
  http?: HttpConfig;
  /** RESP GET is answered from the near cache (`nearCache`). Default false. */
  nearCache: boolean;
  /** The near cache's size, set when `http.cache` or `nearCache` asks for the cache; unset: no cache. */
  cache?: NearCacheConfig;
}

/** The top-level `admin` key: the HTTP server for metrics and health checks (src/admin/). */
export interface AdminConfig {
  /** TCP port of the HTTP server. */
  listen: number;
  /** Address to listen on. Default "127.0.0.1". */
  bind: string;
}

export interface ProxyConfig {
  /** The admin HTTP server (`/metrics`, `/healthz`, `/readyz`); unset: none. */
  admin?: AdminConfig;
  /**
   * Proxy processes serving every listener (src/cluster/): the top-level `workers` key, a
   * number or `"auto"` (os.availableParallelism()), resolved to a number. Default 1: one
   * process, no cluster.
   */
  workers: number;
  logLevel: LogLevel;
  /** ms SIGTERM/SIGINT waits for in-flight replies before closing. Default 5000. */
  shutdownTimeout: number;
  listeners: ListenerConfig[];
}

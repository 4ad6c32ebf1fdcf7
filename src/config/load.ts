/**
 * Reading, validating and normalizing the config file into a ProxyConfig.
 *
 * Layering of listener settings, highest first: the listener's own key > the file's
 * `defaults` object (object form) > BUILTIN_SETTINGS. A listener's `denyCommands` or
 * `users` replaces the one from `defaults` (lists are not merged).
 *
 * Node credentials: a node that sets `username` or `password` uses its own pair; a node
 * that sets neither gets the listener's `backendUsername` / `backendPassword`. The
 * normalized NodeConfig carries the result, so the core reads only the node. Backend
 * TLS likewise: a node's own `backendTls` (`false` included) wins over the listener's,
 * which wins over `defaults.backendTls`.
 *
 * TLS files (a listener's `tls`, every `backendTls` object) are read and checked by
 * normalizeConfig itself (./tls.ts), so a config that loads is one the proxy can serve
 * with, and a reload re-reads them.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, resolve } from 'node:path';
import { STATIC_COMMAND_NAMES, TABLE_REDIS_VERSION, lookupCommand } from '../commands/index.js';
import {
  BUILTIN_SETTINGS,
  DEFAULT_CAUSAL_READS,
  DEFAULT_HTTP_MAX_IN_FLIGHT,
  DEFAULT_LOG_LEVEL,
  DEFAULT_NEAR_CACHE,
  DEFAULT_SHUTDOWN_TIMEOUT,
  DEFAULT_WEIGHT,
  MAX_WORKERS,
  defaultListenerName,
  type RequiredSettings,
} from './defaults.js';
import {
  ConfigError,
  describeValue,
  editDistance,
  describeFsError,
  formatPath,
  isRecord,
  sortProblems,
  translateAjvErrors,
  type Problem,
} from './errors.js';
import { settingsProperties, validators } from './schema.js';
import { TlsFiles, type RawServerTls } from './tls.js';
import type {
  BackendTls,
  ClientUser,
  ListenerConfig,
  ListenerSettings,
  LogLevel,
  NearCacheConfig,
  NodeConfig,
  ProxyConfig,
  RawBackendTls,
  ReadPolicy,
  SentinelConfig,
} from './types.js';

/**
 * Reads the JSON config file at `path` and returns it validated and normalized, with
 * the TLS files it names read (relative paths in it are resolved against the file's
 * directory). Synchronous (it runs at start-up and on a reload).
 *
 * @throws ConfigError when the file cannot be read, is not valid JSON (the problem gives
 *   line, column and position), does not follow the schema, or names a TLS file that
 *   cannot be read or used; `problems` lists every problem found and `file` is `path`.
 */
export function loadConfig(path: string): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read the file: ${describeFsError(err)}`], path);
  }
  const raw = parseJson(text, path);
  try {
    return normalizeConfig(raw, { baseDir: dirname(resolve(path)) });
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems, path);
    throw err;
  }
}

/** Options of {@link normalizeConfig}. */
export interface NormalizeOptions {
  /** Directory that relative TLS file paths are resolved against. Default: the working directory. */
  baseDir?: string;
}

/**
 * Validates an already parsed config (either form) and returns the normalized config
 * with every default filled in. Does not modify `raw`.
 *
 * Not pure: once the config passes the schema, it reads the TLS files the config names
 * (a listener's `tls`, every `backendTls` object; synchronously, see ./tls.ts) and puts
 * their contents in the result, so that starting the proxy (startProxy) and a reload
 * (Proxy.reload) both use the files as they are at that moment.
 *
 * @throws ConfigError listing every problem found, in file order (TLS files that cannot
 *   be read or used included, e.g. `[0].tls.cert: cannot read "/x.pem": no such file (ENOENT)`).
 */
export function normalizeConfig(raw: unknown, options: NormalizeOptions = {}): ProxyConfig {
  // ajv fills in defaults where it validates: give it a copy, keep the caller's value.
  const data: unknown = raw === undefined ? undefined : structuredClone(raw);
  const baseDir = options.baseDir ?? process.cwd();
  let tls: TlsFiles | undefined;
  const problems = validate(data, (add, where) => (tls = new TlsFiles(baseDir, add, where)));
  if (problems.length > 0) {
    throw new ConfigError(sortProblems(data, problems).map((p) => p.message));
  }
  return build(data as RawFile | RawListener[], tls!);
}

// ---------------------------------------------------------------- validation

interface RawNode {
  host: string;
  port: number;
  weight?: number;
  username?: string;
  password?: string;
  backendTls?: boolean | RawBackendTls;
}

type RawSettings = Partial<ListenerSettings>;

interface RawListener extends RawSettings {
  listen: number;
  name?: string;
  master?: RawNode;
  sentinel?: SentinelConfig;
  slave?: RawNode[];
  tls?: RawServerTls;
  http?: { listen: number; bind?: string; maxInFlight?: number; cache?: NearCacheConfig };
  nearCache?: boolean | Partial<NearCacheConfig>;
}

/** Makes the TlsFiles that reads a config's TLS files, given how problems are reported and paths written. */
type TlsFilesFactory = (add: (segments: string[], message: string) => void, where: (segments: string[]) => string) => TlsFiles;

interface RawFile {
  admin?: { listen: number; bind?: string };
  workers?: number | 'auto';
  logLevel?: LogLevel;
  shutdownTimeout?: number;
  defaults?: RawSettings;
  listeners: RawListener[];
}

function validate(data: unknown, tls: TlsFilesFactory): Problem[] {
  if (Array.isArray(data)) {
    const check = validators().arrayForm;
    if (!check(data)) return translateAjvErrors(data, check.errors ?? []);
    return semanticProblems(data, [], data, undefined, tls);
  }
  if (isRecord(data)) {
    if (!('listeners' in data) && ('listen' in data || 'master' in data)) {
      return [
        {
          segments: [],
          message:
            '(top level): looks like a single listener; put it in an array ([ {"listen": ...} ]) ' +
            'or under "listeners" ({"listeners": [ {"listen": ...} ]})',
        },
      ];
    }
    const check = validators().objectForm;
    if (!check(data)) return translateAjvErrors(data, check.errors ?? []);
    const file = data as unknown as RawFile;
    const problems = semanticProblems(data, ['listeners'], file.listeners, file.defaults, tls);
    const clash = file.admin === undefined ? -1 : file.listeners.findIndex((l) => l.listen === file.admin!.listen);
    if (clash >= 0) {
      problems.push({
        segments: ['admin', 'listen'],
        message: `admin.listen: port ${file.admin!.listen} is already used by listeners[${clash}].listen; the admin server needs its own port`,
      });
    }
    const httpClash = file.admin === undefined ? -1 : file.listeners.findIndex((l) => l.http?.listen === file.admin!.listen);
    if (httpClash >= 0) {
      problems.push({
        segments: ['admin', 'listen'],
        message: `admin.listen: port ${file.admin!.listen} is already used by listeners[${httpClash}].http.listen; the admin server needs its own port`,
      });
    }
    return problems;
  }
  return [
    {
      segments: [],
      message:
        '(top level): must be an array of listeners ([ {"listen": 6380, "master": {...}, "slave": [...]} ]) ' +
        `or an object with a "listeners" array, got ${describeTop(data)}`,
    },
  ];
}

function describeTop(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return 'a string';
  return String(value);
}

/**
 * Checks the schema cannot express, on data that passed the schema: unique ports and
 * names, unique usernames, usable credentials, output limits, nodes listed twice, nodes
 * that are the proxy itself, denyCommands entries that name no command, and the TLS
 * files (read by the TlsFiles that `makeTls` returns).
 */
function semanticProblems(
  root: unknown,
  base: string[],
  listeners: RawListener[],
  defaults: RawSettings | undefined,
  makeTls: TlsFilesFactory,
): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  const add = (segments: string[], message: string): void => {
    const line = `${formatPath(root, segments)}: ${message}`;
    if (seen.has(line)) return; // a mistake in `defaults` shows once, not once per listener
    seen.add(line);
    problems.push({ segments, message: line });
  };
  const at = (...rest: (string | number)[]): string[] => [...base, ...rest.map(String)];
  const tls = makeTls(add, (segments) => formatPath(root, segments));

  if (defaults !== undefined) {
    checkUsers(defaults.users, ['defaults'], root, add);
    checkBackendPair(defaults, undefined, ['defaults'], add);
    checkDenyCommands(defaults.denyCommands, ['defaults'], add);
    if (defaults.backendTls !== undefined) tls.backend(defaults.backendTls, ['defaults', 'backendTls']);
  }

  const portOwner = new Map<number, number>();
  const nameOwner = new Map<string, number>();
  const portTaken = new Set<number>(); // indices of listeners whose port is a repeat
  listeners.forEach((l, i) => {
    const prevPort = portOwner.get(l.listen);
    if (prevPort !== undefined) {
      portTaken.add(i);
      add(
        at(i, 'listen'),
        `port ${l.listen} is already used by ${formatPath(root, at(prevPort, 'listen'))}; every listener needs its own port`,
      );
    } else {
      portOwner.set(l.listen, i);
    }
  });
  checkHttp(listeners, defaults, portOwner, root, at, add);
  listeners.forEach((l, i) => {
    const name = l.name ?? defaultListenerName(l.listen);
    const prevName = nameOwner.get(name);
    if (prevName !== undefined && !(l.name === undefined && portTaken.has(i))) {
      const where = l.name === undefined ? at(i, 'listen') : at(i, 'name');
      add(
        where,
        `listener name "${name}" is already used by ${formatPath(root, at(prevName))}; names must be unique (set "name")`,
      );
    } else {
      nameOwner.set(name, i);
    }

    checkUsers(l.users, at(i), root, add);
    checkAuthentication(l, defaults, at(i), add);
    checkBackendPair(l, defaults, at(i), add);
    checkDenyCommands(l.denyCommands, at(i), add);
    if (l.tls !== undefined) tls.server(l.tls, at(i, 'tls'));
    if (l.backendTls !== undefined) tls.backend(l.backendTls, at(i, 'backendTls'));
    const ryw = l.readYourWrites ?? defaults?.readYourWrites;
    const causal = l.causalReads ?? defaults?.causalReads;
    if (ryw === true && causal !== undefined && causal !== 'session') {
      add(
        l.readYourWrites !== undefined ? at(i, 'readYourWrites') : ['defaults', 'readYourWrites'],
        `true is the older spelling of "causalReads": "session" and contradicts causalReads "${causal}"; remove readYourWrites`,
      );
    }

    const pause = l.clientOutputPause ?? defaults?.clientOutputPause ?? BUILTIN_SETTINGS.clientOutputPause;
    const limit = l.clientOutputLimit ?? defaults?.clientOutputLimit ?? BUILTIN_SETTINGS.clientOutputLimit;
    if (limit !== 0 && limit < pause) {
      if (l.clientOutputLimit !== undefined || l.clientOutputPause === undefined) {
        const where = l.clientOutputLimit !== undefined ? at(i, 'clientOutputLimit') : ['defaults', 'clientOutputLimit'];
        add(where, `must be 0 or at least clientOutputPause (${pause}), got ${limit}`);
      } else {
        add(at(i, 'clientOutputPause'), `must be at most clientOutputLimit (${limit}), got ${pause}`);
      }
    }

    if (l.master === undefined && l.sentinel === undefined) {
      add(at(i), 'needs "master" (the master\'s address, like {"host": "10.0.0.1", "port": 6379}) or "sentinel" (to follow a Sentinel-managed master)');
    } else if (l.master !== undefined && l.sentinel !== undefined) {
      add(at(i, 'sentinel'), 'is set together with "master"; a listener follows either a fixed master or Sentinel: remove one');
    }
    const nodes: { segments: string[]; node: RawNode }[] = [];
    if (l.master !== undefined) nodes.push({ segments: at(i, 'master'), node: l.master });
    (l.slave ?? []).forEach((node, j) => nodes.push({ segments: at(i, 'slave', j), node }));
    const seenNode = new Map<string, string[]>();
    for (const { segments, node } of nodes) {
      const id = `${node.host.toLowerCase()}:${node.port}`;
      const prev = seenNode.get(id);
      if (prev !== undefined) {
        add(segments, `${node.host}:${node.port} is already listed as ${formatPath(root, prev)}; list each node once`);
      } else {
        seenNode.set(id, segments);
      }
      if (node.backendTls !== undefined) tls.backend(node.backendTls, [...segments, 'backendTls']);
      if (node.username !== undefined && node.password === undefined) {
        add([...segments, 'username'], 'is set without "password"; AUTH needs both (add "password" to this node)');
      }
      const owner = portOwner.get(node.port);
      if (owner !== undefined && isProxyAddress(node.host, listeners[owner]!, defaults)) {
        add(
          [...segments, 'port'],
          `${node.host}:${node.port} is the proxy's own ${formatPath(root, at(owner, 'listen'))}; a node must be a Redis server`,
        );
      }
    }
  });
  return problems;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const WILDCARD = new Set(['0.0.0.0', '::']);

/**
 * `http` and `nearCache`: every `http.listen` is a port no listener and no other `http`
 * uses; the near cache is not offered with `authentication: "redis"` (one cache for every
 * user would bypass Redis's per-user ACL); `http.cache` and a `nearCache` object would
 * both size the listener's one cache, so only one may be given; a `nearCache` object
 * needs `maxKeys` and `ttl`.
 */
function checkHttp(
  listeners: RawListener[],
  defaults: RawSettings | undefined,
  portOwner: Map<number, number>,
  root: unknown,
  at: (...rest: (string | number)[]) => string[],
  add: (segments: string[], message: string) => void,
): void {
  const httpOwner = new Map<number, number>();
  listeners.forEach((l, i) => {
    const http = l.http;
    const nearObject = typeof l.nearCache === 'object' ? l.nearCache : undefined;
    if (nearObject !== undefined) {
      for (const key of ['maxKeys', 'ttl'] as const) {
        if (nearObject[key] === undefined) {
          add(at(i, 'nearCache', key), 'required key is missing; write "nearCache": {"maxKeys": 1000, "ttl": 120000}, or "nearCache": true for the defaults');
        }
      }
      if (http?.cache !== undefined) {
        add(at(i, 'nearCache'), 'is an object and so is "http.cache": the listener has one cache, size it once (set "nearCache": true to use http.cache\'s size)');
      }
    }
    const cached = http?.cache !== undefined || (l.nearCache !== undefined && l.nearCache !== false);
    const redisUsers = (l.authentication ?? defaults?.authentication) === 'redis';
    if (cached && redisUsers) {
      add(
        at(i, http?.cache !== undefined ? 'http' : 'nearCache'),
        'the near cache is shared by every client, which would bypass the Redis ACL of authentication "redis"; remove it or use authentication "proxy"',
      );
    }
    if (http === undefined) return;
    if (http.cache === undefined && redisUsers) {
      add(at(i, 'http'), 'the HTTP front end has no Redis users to run as with authentication "redis"; remove it or use authentication "proxy"');
    }
    const listener = portOwner.get(http.listen);
    const other = httpOwner.get(http.listen);
    if (listener !== undefined) {
      add(at(i, 'http', 'listen'), `port ${http.listen} is already used by ${formatPath(root, at(listener, 'listen'))}; the HTTP front end needs its own port`);
    } else if (other !== undefined) {
      add(at(i, 'http', 'listen'), `port ${http.listen} is already used by ${formatPath(root, at(other, 'http', 'listen'))}; every HTTP front end needs its own port`);
    } else {
      httpOwner.set(http.listen, i);
    }
  });
}

/** Whether connecting to `host` at the listener's port would reach the proxy itself. */
function isProxyAddress(host: string, listener: RawListener, defaults: RawSettings | undefined): boolean {
  const bind = (listener.bind ?? defaults?.bind ?? BUILTIN_SETTINGS.bind).toLowerCase();
  const h = host.toLowerCase();
  if (h === bind) return true;
  return (LOOPBACK.has(h) || WILDCARD.has(h)) && (LOOPBACK.has(bind) || WILDCARD.has(bind));
}

function checkUsers(
  users: ClientUser[] | undefined,
  segments: string[],
  root: unknown,
  add: (segments: string[], message: string) => void,
): void {
  const first = new Map<string, number>();
  (users ?? []).forEach((u, k) => {
    const prev = first.get(u.username);
    if (prev !== undefined) {
      add(
        [...segments, 'users', String(k), 'username'],
        `"${u.username}" is already listed at ${formatPath(root, [...segments, 'users', String(prev)])}; usernames must be unique`,
      );
    } else {
      first.set(u.username, k);
    }
  });
}

/**
 * `authentication: "redis"` leaves client credentials to Redis: the listener's own
 * `password` / `users` would never be asked, so setting them is a mistake. Reported at
 * the key that sets them; a `password`/`users` that only `defaults` sets is reported at
 * the listener's `authentication` (a listener cannot unset what `defaults` sets).
 */
function checkAuthentication(
  l: RawListener,
  defaults: RawSettings | undefined,
  segments: string[],
  add: (segments: string[], message: string) => void,
): void {
  const mode = l.authentication ?? defaults?.authentication ?? BUILTIN_SETTINGS.authentication;
  if (mode !== 'redis') return;
  const from = l.authentication !== undefined ? '' : ' (from defaults)';
  for (const key of ['password', 'users'] as const) {
    const fix =
      key === 'password'
        ? 'set requirepass (or an ACL user) on the Redis servers instead'
        : 'create these users on every Redis node with ACL SETUSER instead';
    if (l[key] !== undefined) {
      add(
        [...segments, key],
        `cannot be set with "authentication": "redis"${from}: clients log in as the Redis ACL users of the master; ` +
          `remove "${key}" (${fix}), or set "authentication": "proxy"`,
      );
    } else if (defaults?.[key] !== undefined && (defaults.authentication !== 'redis' || l.authentication !== undefined)) {
      add(
        [...segments, 'authentication'],
        `"redis" cannot be used with the "${key}" that defaults sets: clients log in as the Redis ACL users of the master; ` +
          `move "${key}" from defaults to the listeners with "authentication": "proxy"`,
      );
    } else if (defaults?.[key] !== undefined) {
      add(
        ['defaults', key],
        `cannot be set with "authentication": "redis": clients log in as the Redis ACL users of the master; ` +
          `remove "${key}" (${fix}), or set "authentication": "proxy"`,
      );
    }
  }
}

function checkBackendPair(
  own: RawSettings,
  defaults: RawSettings | undefined,
  segments: string[],
  add: (segments: string[], message: string) => void,
): void {
  if (own.backendUsername === undefined) return;
  const password = own.backendPassword ?? defaults?.backendPassword;
  if (password === undefined) {
    add([...segments, 'backendUsername'], 'is set without "backendPassword"; AUTH needs both');
  }
}

function checkDenyCommands(
  entries: readonly string[] | undefined,
  segments: string[],
  add: (segments: string[], message: string) => void,
): void {
  (entries ?? []).forEach((entry, k) => {
    const problem = denyCommandProblem(entry);
    if (problem !== undefined) add([...segments, 'denyCommands', String(k)], problem);
  });
}

/** Largest edit distance at which a name is suggested for `typed` (as suggestKey does). */
function suggestionLimit(typed: string): number {
  return typed.length <= 4 ? 1 : 2;
}

/** The candidate closest to `typed` within the suggestion limit (the first of equals), else undefined. */
function closest(typed: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = suggestionLimit(typed) + 1;
  for (const candidate of candidates) {
    const d = editDistance(typed, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * What is wrong with one denyCommands entry as written in the file (`"config sett"`),
 * as the part of a problem line after the path; undefined when the entry is fine.
 *
 * Fine: a command of the static command table (Redis TABLE_REDIS_VERSION, see
 * src/commands/table.ts), or a subcommand of one of its containers (`config set`,
 * `config|set`), or any name containing a '.' (module commands such as `ft.dropindex`:
 * modules are known only at run time, so these are not checked). Otherwise the text says
 * so with the closest table name (edit distance at most 2, at most 1 for names of up to 4
 * characters), written with the entry's own separator (space or `|`), or, when no name
 * is that close, how to find the names.
 */
export function denyCommandProblem(entry: string): string | undefined {
  const name = normalizeDenyCommands([entry])[0]!;
  if (name.includes('.')) return undefined;
  const shown = describeValue(entry);
  const spell = (n: string): string => JSON.stringify(entry.includes('|') ? n : n.replace('|', ' '));
  const bar = name.indexOf('|');
  const command = lookupCommand(bar < 0 ? name : name.slice(0, bar));
  if (command === undefined) {
    const best = closest(name, STATIC_COMMAND_NAMES);
    return best !== undefined
      ? `${shown} is not a Redis command; did you mean ${spell(best)}?`
      : `${shown} is not a Redis command; allowed are the commands of Redis ${TABLE_REDIS_VERSION} ` +
          '(COMMAND LIST on a server lists them) and module commands, written with their dot (like "json.del")';
  }
  if (bar < 0) return undefined;
  const sub = name.slice(bar + 1);
  const upper = command.name.toUpperCase();
  if (command.subcommands === null) {
    return `${shown} is not a Redis command: ${upper} has no subcommands; write ${JSON.stringify(command.name)} to deny ${upper}`;
  }
  if (command.subcommands.has(sub)) return undefined;
  const subs = [...command.subcommands.keys()].sort();
  const best = closest(sub, subs);
  return best !== undefined
    ? `${shown} is not a subcommand of ${upper}; did you mean ${spell(`${command.name}|${best}`)}?`
    : `${shown} is not a subcommand of ${upper}; its subcommands are ${subs.join(', ')}`;
}

// ---------------------------------------------------------------- normalization

const SETTINGS_KEYS = Object.keys(settingsProperties) as (keyof ListenerSettings)[];

function build(data: RawFile | RawListener[], tls: TlsFiles): ProxyConfig {
  const file: RawFile = Array.isArray(data) ? { listeners: data } : data;
  const defaults = file.defaults ?? {};
  const config: ProxyConfig = {
    workers: file.workers === 'auto' ? Math.min(os.availableParallelism(), MAX_WORKERS) : (file.workers ?? 1),
    logLevel: file.logLevel ?? DEFAULT_LOG_LEVEL,
    shutdownTimeout: file.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT,
    listeners: file.listeners.map((l) => buildListener(l, defaults, tls)),
  };
  if (file.admin !== undefined) config.admin = { listen: file.admin.listen, bind: file.admin.bind ?? '127.0.0.1' };
  return config;
}

function buildListener(l: RawListener, defaults: RawSettings, tls: TlsFiles): ListenerConfig {
  const s: Record<string, unknown> = { ...BUILTIN_SETTINGS };
  for (const key of SETTINGS_KEYS) {
    const value = l[key] ?? defaults[key];
    if (value !== undefined) s[key] = value;
  }
  const settings = s as unknown as RequiredSettings & ListenerSettings;
  const backendTls = tls.backendTls(settings.backendTls);
  const backend = { username: settings.backendUsername, password: settings.backendPassword, tls: backendTls };
  // A node's own backendTls (false included) wins over the listener's.
  const fixedNode = (n: RawNode): NodeConfig => {
    const node = buildNode(n, backend);
    if (n.backendTls !== undefined) {
      const own = tls.backendTls(n.backendTls);
      if (own === undefined) delete node.tls;
      else node.tls = own;
    }
    return node;
  };

  const out: ListenerConfig = {
    name: l.name ?? defaultListenerName(l.listen),
    listen: l.listen,
    bind: settings.bind,
    replicas: (l.slave ?? []).map(fixedNode),
    readPolicy: settings.readPolicy as ReadPolicy,
    authentication: settings.authentication,
    sharedConnections: settings.sharedConnections,
    maxDedicatedConnections: settings.maxDedicatedConnections,
    connectTimeout: settings.connectTimeout,
    commandTimeout: settings.commandTimeout,
    outlierTimeouts: settings.outlierTimeouts,
    outlierWindow: settings.outlierWindow,
    clientIdleTimeout: settings.clientIdleTimeout,
    healthCheckInterval: settings.healthCheckInterval,
    maxReplicationLag: settings.maxReplicationLag,
    maxPipeline: settings.maxPipeline,
    clientOutputPause: settings.clientOutputPause,
    clientOutputLimit: settings.clientOutputLimit,
    denyCommands: normalizeDenyCommands(settings.denyCommands),
    allowTopologyCommands: settings.allowTopologyCommands,
    scriptsBypassDenyCommands: settings.scriptsBypassDenyCommands,
    causalReads: settings.causalReads ?? (settings.readYourWrites === true ? 'session' : DEFAULT_CAUSAL_READS),
    nearCache: l.nearCache !== undefined && l.nearCache !== false,
  };
  const cache = l.http?.cache ?? (typeof l.nearCache === 'object' ? l.nearCache : l.nearCache === true ? DEFAULT_NEAR_CACHE : undefined);
  if (cache !== undefined) {
    out.cache = { maxKeys: cache.maxKeys!, ttl: cache.ttl! };
    if (cache.maxBytes !== undefined) out.cache.maxBytes = cache.maxBytes;
  }
  if (l.http !== undefined) {
    out.http = {
      listen: l.http.listen,
      bind: l.http.bind ?? settings.bind,
      maxInFlight: l.http.maxInFlight ?? DEFAULT_HTTP_MAX_IN_FLIGHT,
      cached: l.http.cache !== undefined,
    };
  }
  if (l.master !== undefined) out.master = fixedNode(l.master);
  if (l.sentinel !== undefined) out.sentinel = structuredClone(l.sentinel);
  if (settings.password !== undefined) out.password = settings.password;
  if (settings.users !== undefined) out.users = settings.users.map((u) => ({ username: u.username, password: u.password }));
  if (settings.backendUsername !== undefined) out.backendUsername = settings.backendUsername;
  if (settings.backendPassword !== undefined) out.backendPassword = settings.backendPassword;
  if (l.tls !== undefined) out.tls = tls.serverTls(l.tls);
  if (backendTls !== undefined) out.backendTls = backendTls;
  return out;
}

/**
 * A NodeConfig for `n`: its own credentials when it sets any, else the listener's
 * backend pair `backend`; the listener's backend TLS `backend.tls` (a node's own
 * `backendTls` is applied by the caller, who has its files loaded). Also used for the
 * nodes Sentinel reports (weight 1, the listener's backend pair and TLS).
 */
export function buildNode(
  n: { host: string; port: number; weight?: number; username?: string; password?: string },
  backend: { username?: string | undefined; password?: string | undefined; tls?: BackendTls | undefined },
): NodeConfig {
  const node: NodeConfig = { host: n.host, port: n.port, weight: n.weight ?? DEFAULT_WEIGHT };
  if (backend.tls !== undefined) node.tls = backend.tls;
  const own = n.username !== undefined || n.password !== undefined;
  const username = own ? n.username : backend.username;
  const password = own ? n.password : backend.password;
  if (username !== undefined) node.username = username;
  if (password !== undefined) node.password = password;
  return node;
}

/**
 * Lowercases deny-list entries and writes a subcommand as `command|subcommand`
 * (`"CONFIG SET"`, `"config|set"` and `" config  set "` all become `"config|set"`),
 * dropping repeats.
 */
export function normalizeDenyCommands(entries: readonly string[]): string[] {
  const out: string[] = [];
  for (const entry of entries) {
    const name = entry.trim().toLowerCase().split(/\s*\|\s*|\s+/).join('|');
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

// ---------------------------------------------------------------- file reading

/** JSON.parse with a ConfigError giving line, column and position of a syntax error. */
function parseJson(text: string, path: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') throw new ConfigError(['invalid JSON: the file is empty'], path);
  try {
    return JSON.parse(body);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const m = /at position (\d+)/.exec(message);
    const position = m ? Number(m[1]) : body.length;
    let reason = message
      .replace(/\s*\(line \d+ column \d+\)/, '')
      .replace(/ in JSON at position \d+/, '')
      .replace(/^Unexpected end of JSON input$/, 'unexpected end of the file');
    reason += jsonHint(body, position);
    const { line, column } = lineColumn(body, position);
    throw new ConfigError([`invalid JSON at line ${line}, column ${column} (position ${position}): ${reason}`], path);
  }
}

function jsonHint(text: string, position: number): string {
  if (position >= text.trimEnd().length) return ' (the file ends before the JSON is complete: is a bracket not closed?)';
  const ch = text[position];
  if (ch === '/' || ch === '#') return ' (JSON allows no comments)';
  if (ch === '}' || ch === ']') {
    const before = text.slice(0, position).trimEnd();
    if (before.endsWith(',')) return ` (JSON allows no trailing comma before "${ch}")`;
  }
  if (ch === "'") return ' (JSON strings take double quotes)';
  return '';
}

/** 1-based line and column of a 0-based character position. */
function lineColumn(text: string, position: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < position && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      start = i + 1;
    }
  }
  return { line, column: position - start + 1 };
}

/**
 * JSON schema (draft-07, checked by ajv 8 in strict mode) of the config file.
 *
 * The file takes one of two forms, told apart by `Array.isArray` before validation
 * (so errors never come from a failed oneOf branch):
 *
 *  (a) the established format, an array of listeners:
 *        [ { "listen": 6380, "master": {"host": "10.0.0.1", "port": 6379}, "slave": [...] } ]
 *  (b) an object with global settings, listener defaults and the same listeners:
 *        { "logLevel": "info", "shutdownTimeout": 5000, "defaults": {...}, "listeners": [...] }
 *
 * Every schema node carries a non-standard `expected` annotation: a phrase completing
 * "must be ...", used by errors.ts to write messages in the user's terms. Only defaults
 * that do not depend on the `defaults` object are filled in by ajv (`useDefaults`):
 * node `weight`, listener `slave`, `logLevel`, `shutdownTimeout`, `defaults`. Listener
 * settings are layered in load.ts (listener > defaults > built-in).
 */
import { Ajv, type SchemaObject, type ValidateFunction } from 'ajv';
import { DEFAULT_LOG_LEVEL, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_WEIGHT, MAX_WORKERS } from './defaults.js';

/** Name of the annotation keyword holding the "must be ..." phrase of a schema node. */
export const EXPECTED = 'expected';

/** Every ReadPolicy, in the order messages list them. */
export const READ_POLICIES = ['replica', 'prefer-replica', 'master', 'any'] as const;
/** Every authentication mode (AuthenticationMode). */
export const AUTHENTICATION_MODES = ['proxy', 'redis'] as const;
/** Every causal-read mode, weakest first. */
export const CAUSAL_MODES = ['none', 'session', 'global'] as const;
/** Every LogLevel, most severe first. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Largest duration accepted anywhere, in ms (one day): catches seconds-vs-ms slips of huge size. */
const MAX_MS = 86_400_000;

function integer(min: number, max: number, expected?: string, def?: number): SchemaObject {
  const s: SchemaObject = {
    type: 'integer',
    minimum: min,
    maximum: max,
    [EXPECTED]: expected ?? `an integer ${min}-${max}`,
  };
  if (def !== undefined) s.default = def;
  return s;
}

function nonEmptyString(expected: string): SchemaObject {
  return { type: 'string', minLength: 1, [EXPECTED]: expected };
}

function oneOfStrings(values: readonly string[], def?: string): SchemaObject {
  const s: SchemaObject = { type: 'string', enum: [...values], [EXPECTED]: `one of ${values.join(', ')}` };
  if (def !== undefined) s.default = def;
  return s;
}

const port = integer(1, 65535);

/** Every value of a listener's `tls.clientAuth`. */
export const CLIENT_AUTH_MODES = ['none', 'request', 'require'] as const;

function pemPath(what: string): SchemaObject {
  return nonEmptyString(`a file path (a non-empty string: ${what}, PEM)`);
}

/**
 * `backendTls` of a listener, `defaults` or a node: `true` (TLS, the system CAs), `false`
 * (plain TCP; overrides a listener's or defaults' value), or an object.
 */
const backendTlsSchema: SchemaObject = {
  type: ['boolean', 'object'],
  [EXPECTED]: 'true, false, or an object like {"ca": "/etc/redis-proxy/redis-ca.crt"}',
  additionalProperties: false,
  properties: {
    ca: pemPath('the CA certificates that sign the Redis servers\' certificates'),
    cert: pemPath('the client certificate the proxy presents'),
    key: pemPath('the private key of "cert"'),
    servername: {
      type: 'string',
      minLength: 1,
      pattern: '^\\S+$',
      [EXPECTED]: 'a host name (sent as SNI and checked against the server certificate)',
    },
    rejectUnauthorized: {
      type: 'boolean',
      [EXPECTED]: 'true or false (false: accept any server certificate, unverified)',
    },
  },
};

/** A listener's `tls`: clients connect with TLS. */
const serverTlsSchema: SchemaObject = {
  type: 'object',
  [EXPECTED]: 'an object like {"cert": "/etc/redis-proxy/proxy.crt", "key": "/etc/redis-proxy/proxy.key"}',
  additionalProperties: false,
  required: ['cert', 'key'],
  properties: {
    cert: pemPath('the certificate the proxy presents to clients'),
    key: pemPath('the private key of "cert"'),
    ca: pemPath('the CA certificates that sign client certificates'),
    clientAuth: oneOfStrings(CLIENT_AUTH_MODES),
  },
};

/** A Redis server behind a listener: `{"host": "10.0.0.1", "port": 6379}` plus optional keys. */
export const nodeSchema: SchemaObject = {
  type: 'object',
  [EXPECTED]: 'an object like {"host": "10.0.0.1", "port": 6379}',
  additionalProperties: false,
  required: ['host', 'port'],
  properties: {
    host: {
      type: 'string',
      minLength: 1,
      pattern: '^\\S+$',
      [EXPECTED]: 'a host name or IP address (a non-empty string without spaces)',
    },
    port,
    weight: integer(0, 1000, 'an integer 0-1000 (0 = never read from this node)', DEFAULT_WEIGHT),
    username: nonEmptyString('a non-empty string (ACL user the proxy authenticates as)'),
    password: nonEmptyString('a non-empty string'),
    backendTls: backendTlsSchema,
  },
};

const userSchema: SchemaObject = {
  type: 'object',
  [EXPECTED]: 'an object like {"username": "app", "password": "..."}',
  additionalProperties: false,
  required: ['username', 'password'],
  properties: {
    username: { type: 'string', minLength: 1, pattern: '^\\S+$', [EXPECTED]: 'a non-empty string without spaces' },
    password: nonEmptyString('a non-empty string'),
  },
};

/** One deny-list entry: a command, or a command and subcommand separated by a space or `|`. */
const COMMAND_NAME = '[A-Za-z0-9_.:-]+';

/** Keys a listener may set and that `defaults` may set for every listener (ListenerSettings). */
export const settingsProperties: Record<string, SchemaObject> = {
  bind: nonEmptyString('an address to accept clients on, like "127.0.0.1" or "0.0.0.0"'),
  readPolicy: oneOfStrings(READ_POLICIES),
  authentication: {
    ...oneOfStrings(AUTHENTICATION_MODES),
    [EXPECTED]:
      'one of proxy, redis (proxy: the listener\'s password/users; redis: the Redis ACL users of the master, commands run as that user)',
  },
  password: nonEmptyString('a non-empty string (the password clients AUTH with)'),
  users: {
    type: 'array',
    [EXPECTED]: 'an array of {"username": ..., "password": ...} objects',
    items: userSchema,
  },
  backendUsername: nonEmptyString('a non-empty string (ACL user the proxy authenticates to nodes as)'),
  backendPassword: nonEmptyString('a non-empty string'),
  sharedConnections: integer(1, 64),
  maxDedicatedConnections: integer(1, 100_000),
  connectTimeout: integer(1, MAX_MS, `an integer 1-${MAX_MS} (milliseconds)`),
  commandTimeout: integer(0, MAX_MS, `an integer 0-${MAX_MS} (milliseconds; 0 = never)`),
  outlierTimeouts: integer(0, 1000, 'an integer 0-1000 (command timeouts that take a replica out of the read rotation; 0 = never)'),
  outlierWindow: integer(1, MAX_MS, `an integer 1-${MAX_MS} (milliseconds)`),
  clientIdleTimeout: integer(0, MAX_MS, `an integer 0-${MAX_MS} (milliseconds; 0 = never)`),
  healthCheckInterval: integer(10, MAX_MS, `an integer 10-${MAX_MS} (milliseconds)`),
  maxReplicationLag: {
    type: 'number',
    minimum: 0,
    maximum: 86_400,
    [EXPECTED]: 'a number 0-86400 (seconds)',
  },
  maxPipeline: integer(1, 1_000_000),
  clientOutputPause: integer(1, 2 ** 40, `an integer 1-${2 ** 40} (bytes)`),
  clientOutputLimit: integer(0, 2 ** 40, `an integer 0-${2 ** 40} (bytes; 0 = never)`),
  denyCommands: {
    type: 'array',
    [EXPECTED]: 'an array of command names like ["flushall", "config set"]',
    items: {
      type: 'string',
      pattern: `^\\s*${COMMAND_NAME}(?:(?:\\s*\\|\\s*|\\s+)${COMMAND_NAME})?\\s*$`,
      [EXPECTED]: 'a command name like "flushall", or a command and subcommand like "config set" or "config|set"',
    },
  },
  allowTopologyCommands: {
    type: 'boolean',
    [EXPECTED]: 'true or false (true: forward REPLICAOF, SLAVEOF, FAILOVER and SHUTDOWN to the master)',
  },
  scriptsBypassDenyCommands: {
    type: 'boolean',
    [EXPECTED]: 'true or false (true: scripts may run even where they could call a denied command)',
  },
  causalReads: oneOfStrings(CAUSAL_MODES),
  readYourWrites: { type: 'boolean', [EXPECTED]: 'true or false (true is causalReads "session")' },
  backendTls: backendTlsSchema,
};

/** The Sentinels a listener follows its master through. */
export const sentinelSchema: SchemaObject = {
  type: 'object',
  [EXPECTED]: 'an object like {"masterName": "mymaster", "nodes": [{"host": "10.0.0.5", "port": 26379}]}',
  additionalProperties: false,
  required: ['masterName', 'nodes'],
  properties: {
    masterName: nonEmptyString('a non-empty string (the name the Sentinels monitor the master under)'),
    nodes: {
      type: 'array',
      minItems: 1,
      [EXPECTED]: 'a non-empty array of Sentinels like [{"host": "10.0.0.5", "port": 26379}]',
      items: {
        type: 'object',
        [EXPECTED]: 'an object like {"host": "10.0.0.5", "port": 26379}',
        additionalProperties: false,
        required: ['host', 'port'],
        properties: { host: nodeSchema.properties.host, port },
      },
    },
    username: nonEmptyString('a non-empty string (the user the proxy authenticates to the Sentinels as)'),
    password: nonEmptyString('a non-empty string (the Sentinels\' password)'),
  },
};

/** The size of a listener's near cache (`http.cache`, or `nearCache` as an object): see src/cache/near-cache.ts. */
const cacheProperties: Record<string, SchemaObject> = {
  maxKeys: integer(1, 100_000_000, 'an integer 1-100000000 (entries kept; the least recently used go first)'),
  maxBytes: integer(1, 2 ** 40, `an integer 1-${2 ** 40} (bytes of keys and values kept)`),
  ttl: integer(1, MAX_MS, `an integer 1-${MAX_MS} (milliseconds an entry may be kept)`),
};

const cacheSchema: SchemaObject = {
  type: 'object',
  [EXPECTED]: 'an object like {"maxKeys": 1000, "ttl": 120000} (optional "maxBytes")',
  additionalProperties: false,
  required: ['maxKeys', 'ttl'],
  properties: cacheProperties,
};

/** A listener's `http`: the HTTP GET front end (src/http/). */
const httpSchema: SchemaObject = {
  type: 'object',
  [EXPECTED]: 'an object like {"listen": 8080} (optional "bind", "maxInFlight", "cache")',
  additionalProperties: false,
  required: ['listen'],
  properties: {
    listen: port,
    bind: nonEmptyString('an address to serve HTTP on, like "127.0.0.1" or "0.0.0.0"'),
    maxInFlight: integer(1, 100_000, 'an integer 1-100000 (HTTP requests waiting on Redis at once; 4 times as many queue)'),
    cache: cacheSchema,
  },
};

/** A listener's `nearCache`: RESP GET answered from the near cache (`true`: sized by `http.cache` or the defaults). */
const nearCacheSchema: SchemaObject = {
  type: ['boolean', 'object'],
  [EXPECTED]: 'true, false, or an object like {"maxKeys": 1000, "ttl": 120000} (optional "maxBytes")',
  additionalProperties: false,
  properties: cacheProperties,
};

/** One entry of the listener list. */
export const listenerSchema: SchemaObject = {
  type: 'object',
  [EXPECTED]: 'an object like {"listen": 6380, "master": {...}, "slave": [...]}',
  additionalProperties: false,
  // `master` or `sentinel`, exactly one: checked in load.ts (a clearer message than oneOf's).
  required: ['listen'],
  properties: {
    listen: port,
    name: {
      type: 'string',
      minLength: 1,
      pattern: '^\\S+$',
      [EXPECTED]: 'a non-empty name without spaces (used in logs and metrics)',
    },
    master: nodeSchema,
    sentinel: sentinelSchema,
    slave: {
      type: 'array',
      [EXPECTED]: 'an array of replica nodes like [{"host": "10.0.0.2", "port": 6379}]',
      items: nodeSchema,
      default: [],
    },
    ...settingsProperties,
    tls: serverTlsSchema,
    http: httpSchema,
    nearCache: nearCacheSchema,
  },
};

const WORKERS_EXPECTED = `a number of processes 1-${MAX_WORKERS}, or "auto" (one per available core)`;

/** Form (a): the established format, a non-empty array of listeners. */
export const arrayFormSchema: SchemaObject = {
  type: 'array',
  [EXPECTED]: 'a non-empty array of listeners',
  minItems: 1,
  items: listenerSchema,
};

/** Form (b): the object form. */
export const objectFormSchema: SchemaObject = {
  type: 'object',
  [EXPECTED]: 'an object with a "listeners" array',
  additionalProperties: false,
  required: ['listeners'],
  properties: {
    admin: {
      type: 'object',
      [EXPECTED]: 'an object like {"listen": 9121, "bind": "127.0.0.1"}',
      additionalProperties: false,
      required: ['listen'],
      properties: {
        listen: port,
        bind: nonEmptyString('an address to serve metrics and health checks on, like "127.0.0.1" or "0.0.0.0"'),
      },
    },
    workers: {
      [EXPECTED]: WORKERS_EXPECTED,
      anyOf: [
        { type: 'integer', minimum: 1, maximum: MAX_WORKERS, [EXPECTED]: WORKERS_EXPECTED },
        { type: 'string', enum: ['auto'], [EXPECTED]: WORKERS_EXPECTED },
      ],
    },
    logLevel: oneOfStrings(LOG_LEVELS, DEFAULT_LOG_LEVEL),
    shutdownTimeout: integer(0, MAX_MS, `an integer 0-${MAX_MS} (milliseconds)`, DEFAULT_SHUTDOWN_TIMEOUT),
    defaults: {
      type: 'object',
      [EXPECTED]: 'an object of listener settings',
      additionalProperties: false,
      properties: settingsProperties,
      default: {},
    },
    listeners: arrayFormSchema,
  },
};

/** One compiled validator per form of the file. */
export interface Validators {
  arrayForm: ValidateFunction;
  objectForm: ValidateFunction;
}

let compiled: Validators | undefined;

/**
 * The two compiled validators (compiled once, on first use). They fill in defaults in
 * the data they check (`useDefaults`), so pass them a copy of the user's value, and
 * report every error (`allErrors`) with the failing schema node (`verbose`).
 */
export function validators(): Validators {
  if (compiled === undefined) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true, allowUnionTypes: true });
    ajv.addKeyword({ keyword: EXPECTED, schemaType: 'string' });
    compiled = { arrayForm: ajv.compile(arrayFormSchema), objectForm: ajv.compile(objectFormSchema) };
  }
  return compiled;
}

/**
 * The proxy's logger: pino, one JSON object per line on stdout.
 *
 * Lines carry `"level":"info"` (the label, not pino's number) and an ISO-8601 `time`.
 * Passwords are redacted: any `password` or `backendPassword` key at the top of the
 * logged object or up to two objects deep, and everywhere in a logged `config`,
 * `listener` or `node` object. The PEM contents normalizeConfig reads for TLS (`key`,
 * and also `cert` and `ca`, which are only bulky) are redacted in the same places: the
 * file paths (`keyFile`, `certFile`, `caFile`) stay. Code should still never log
 * AUTH/HELLO arguments.
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { LogLevel } from './config/types.js';

export type Logger = PinoLogger;

/** What replaces a redacted value. */
export const REDACTED = '[redacted]';

/** Paths whose values never reach the log (fast-redact syntax, `*` = any one key or index). */
export const REDACT_PATHS: readonly string[] = [
  'password',
  'backendPassword',
  '*.password',
  '*.backendPassword',
  '*.*.password',
  '*.*.backendPassword',
  // The normalized config and its parts, when logged as a whole.
  'config.listeners[*].password',
  'config.listeners[*].backendPassword',
  'config.listeners[*].master.password',
  'config.listeners[*].sentinel.password',
  'config.listeners[*].replicas[*].password',
  'config.listeners[*].users[*].password',
  'listeners[*].password',
  'listeners[*].backendPassword',
  'listeners[*].master.password',
  'listeners[*].sentinel.password',
  'listeners[*].replicas[*].password',
  'listeners[*].users[*].password',
  'listener.master.password',
  'listener.sentinel.password',
  'listener.replicas[*].password',
  'listener.users[*].password',
  ...pemPaths(),
];

/**
 * Where a logged config holds PEM contents: a listener's `tls` and `backendTls`, and each
 * node's `tls`, under `config.listeners[*]`, `listeners[*]` and `listener`; and a logged
 * `node`'s own.
 */
function pemPaths(): string[] {
  const holders = ['tls', 'backendTls', 'master.tls', 'replicas[*].tls'];
  const listeners = ['config.listeners[*]', 'listeners[*]', 'listener'];
  const out: string[] = [];
  for (const listener of listeners) {
    for (const holder of holders) for (const field of ['key', 'cert', 'ca']) out.push(`${listener}.${holder}.${field}`);
  }
  for (const field of ['key', 'cert', 'ca']) out.push(`node.tls.${field}`);
  return out;
}

/**
 * Creates the root logger.
 *
 * @param level lowest level written; `silent` writes nothing.
 * @param destination where lines go; default stdout through pino's asynchronous
 *   writer (it flushes on `process.exit`, so nothing is lost). Tests pass a stream to
 *   capture lines.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = {
    level,
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/**
 * The proxy's logger: pino, one JSON object per line on stdout.
 *
 * Lines carry `"level":"info"` (the label, not pino's number) and an ISO-8601 `time`.
 * Passwords are redacted: any `password` or `backendPassword` key at the top of the
 * logged object or up to two objects deep, and everywhere in a logged `config`,
 * `listener` or `node` object. Code should still never log AUTH/HELLO arguments.
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
];

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

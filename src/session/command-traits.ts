/**
 * What the session needs to know about a command beyond the command table's flags:
 * which calls block, which start a streaming mode, which replica errors mean "ask the
 * master". Pure functions and constants.
 */
import type { CommandInfo } from '../commands/index.js';
import type { RequestView } from '../protocol/request-parser.js';

/** Script and function calls: not flagged write in Redis 7, but they may write. */
export const SCRIPT_CALLS: ReadonlySet<string> = new Set(['eval', 'evalsha', 'fcall']);

/** Commands that start Pub/Sub mode. */
export const SUBSCRIBES: ReadonlySet<string> = new Set(['subscribe', 'psubscribe', 'ssubscribe']);

/** Their counterparts, answered by the proxy when the session is not subscribed. */
export const UNSUBSCRIBES: ReadonlySet<string> = new Set(['unsubscribe', 'punsubscribe', 'sunsubscribe']);

/** Cursor commands: a cursor is only valid on the node that issued it. */
export const SCAN_FAMILY: ReadonlySet<string> = new Set(['scan', 'sscan', 'hscan', 'zscan']);

/**
 * True when this call of a blocking-capable command can block: XREAD/XREADGROUP only
 * with BLOCK (before STREAMS); the B* commands always.
 * Source: https://redis.io/docs/latest/commands/xread/
 */
export function isBlockingCall(cmd: CommandInfo, req: RequestView): boolean {
  if (cmd.name !== 'xread' && cmd.name !== 'xreadgroup') return true;
  for (let i = 1; i < req.argc; i++) {
    if (req.argIs(i, 'block')) return true;
    if (req.argIs(i, 'streams')) return false;
  }
  return false;
}

/** INFO with no section, or naming all, everything, default or proxy, shows the proxy's section. */
export function wantsProxySection(req: RequestView): boolean {
  if (req.argc === 1) return true;
  for (let i = 1; i < req.argc; i++) {
    if (req.argIs(i, 'all') || req.argIs(i, 'everything') || req.argIs(i, 'default') || req.argIs(i, 'proxy')) return true;
  }
  return false;
}

const RETRY_ON_MASTER = ['-LOADING', '-MASTERDOWN', '-READONLY', '-NOSCRIPT'];

/** True for a replica's error that means "ask the master instead" (`buf[start]` is '-'). */
export function retryOnMaster(buf: Buffer, start: number): boolean {
  for (const prefix of RETRY_ON_MASTER) {
    if (buf.toString('latin1', start, start + prefix.length) === prefix) return true;
  }
  return false;
}

/** True when a reply is exactly PING's answer carrying `marker`: RESP2 subscribed `*2 pong marker`, or a bulk string. */
export function isPingReply(buf: Buffer, start: number, end: number, marker: string): boolean {
  const bulk = `$${marker.length}\r\n${marker}\r\n`;
  const text = buf.toString('latin1', start, end);
  return text === bulk || text === `*2\r\n$4\r\npong\r\n${bulk}`;
}

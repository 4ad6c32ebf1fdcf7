/**
 * What the session needs to know about a request beyond its command's route (see
 * src/commands/routes.ts): whether this XREAD call blocks, whether INFO asks for the
 * proxy's section, which replica errors mean "ask the master", and a PING's answer.
 * Pure functions.
 */
import type { CommandInfo } from '../commands/index.js';
import type { RequestView } from '../protocol/request-parser.js';

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

const RETRY_ON_MASTER = ['-LOADING', '-MASTERDOWN', '-READONLY', '-NOSCRIPT', '-BUSY'];

/** True for a replica's error that means "ask the master instead" (`buf[start]` is '-'). */
export function retryOnMaster(buf: Buffer, start: number): boolean {
  for (const prefix of RETRY_ON_MASTER) {
    if (buf.toString('latin1', start, start + prefix.length) === prefix) return true;
  }
  return false;
}

/** How a RESP2 subscribed connection starts PING's answer (`pong`, then the argument). */
const SUBSCRIBED_PONG = '*2\r\n$4\r\npong\r\n';

/** True when a reply is exactly PING's answer carrying `marker`: RESP2 subscribed `*2 pong marker`, or a bulk string. */
export function isPingReply(buf: Buffer, start: number, end: number, marker: string): boolean {
  const bulk = `$${marker.length}\r\n${marker}\r\n`;
  // Most replies in a stream are messages of other sizes: no string is made for them.
  const size = end - start;
  if (size !== bulk.length && size !== SUBSCRIBED_PONG.length + bulk.length) return false;
  const text = buf.toString('latin1', start, end);
  return text === bulk || text === `${SUBSCRIBED_PONG}${bulk}`;
}

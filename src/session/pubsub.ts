/**
 * Reading the (un)subscribe confirmations that pass through a Pub/Sub connection, to know
 * when the session leaves Pub/Sub mode, and the replies Redis gives to UNSUBSCRIBE outside
 * that mode. Source: https://redis.io/docs/latest/develop/interact/pubsub/
 */
import { encodeValue } from '../protocol/resp.js';

/** What a confirmation counts: channels + patterns, or shard channels (SSUBSCRIBE). */
export const COUNT_NONE = 0;
export const COUNT_CHANNELS = 1;
export const COUNT_SHARD = 2;

const KINDS = new Map<string, { counts: number; unsubscribe: boolean }>([
  ['subscribe', { counts: COUNT_CHANNELS, unsubscribe: false }],
  ['psubscribe', { counts: COUNT_CHANNELS, unsubscribe: false }],
  ['unsubscribe', { counts: COUNT_CHANNELS, unsubscribe: true }],
  ['punsubscribe', { counts: COUNT_CHANNELS, unsubscribe: true }],
  ['ssubscribe', { counts: COUNT_SHARD, unsubscribe: false }],
  ['sunsubscribe', { counts: COUNT_SHARD, unsubscribe: true }],
]);

/** A subscription confirmation: what it counts, the count, and whether it unsubscribed. */
export interface Confirmation {
  counts: number;
  count: number;
  unsubscribe: boolean;
}

/**
 * Reads `*3\r\n$<n>\r\n<kind>\r\n<channel>:<count>\r\n` (RESP2; `>3` in RESP3). Returns null
 * for anything else (messages, PONG, errors, other replies).
 */
export function readConfirmation(buf: Buffer, start: number, end: number): Confirmation | null {
  const type = buf[start];
  if (end - start < 16 || (type !== 0x2a && type !== 0x3e) || buf[start + 1] !== 0x33 || buf[start + 4] !== 0x24) return null;
  let i = start + 5;
  let len = 0;
  while (i < end && buf[i] !== 0x0d) len = len * 10 + (buf[i++]! - 0x30);
  if (len < 9 || len > 12) return null;
  const kind = KINDS.get(buf.toString('latin1', i + 2, i + 2 + len));
  if (kind === undefined) return null;
  let colon = end - 3;
  while (colon > i && buf[colon] !== 0x3a) colon--;
  const count = Number(buf.toString('latin1', colon + 1, end - 2));
  return { counts: kind.counts, count, unsubscribe: kind.unsubscribe };
}

/**
 * Redis's replies to (P|S)UNSUBSCRIBE from a client with no subscriptions: one
 * confirmation per channel named, or one with a nil channel when none is named.
 */
export function unsubscribedReplies(kind: string, channels: Buffer[], protocol: 2 | 3): Buffer {
  const one = (channel: Buffer | null): Buffer => {
    const reply = encodeValue([kind, channel, 0], protocol);
    if (protocol === 3) reply[0] = 0x3e; // a push, not an array
    return reply;
  };
  if (channels.length === 0) return one(null);
  return Buffer.concat(channels.map(one));
}

/** A session's subscriptions as Redis's confirmations report them. */
export class Subscriptions {
  /** Channels + patterns, and shard channels, after the last confirmation. */
  channels = 0;
  shardChannels = 0;

  /** Reads a confirmation passing through; true when it was an unsubscribe that left none. */
  observe(buf: Buffer, start: number, end: number): boolean {
    const c = readConfirmation(buf, start, end);
    if (c === null) return false;
    if (c.counts === COUNT_CHANNELS) this.channels = c.count;
    else this.shardChannels = c.count;
    return c.unsubscribe && this.none;
  }

  /** True when the last confirmations left no subscription. */
  get none(): boolean {
    return this.channels === 0 && this.shardChannels === 0;
  }

  /** Forgets everything (the mode ended). */
  reset(): void {
    this.channels = this.shardChannels = 0;
  }
}

/**
 * The bookkeeping of a session in Pub/Sub or MONITOR mode, where the dedicated
 * connection's output streams to the client instead of one reply per request.
 *
 * The proxy cannot count replies in a stream (one SUBSCRIBE yields a confirmation per
 * channel, messages arrive any time), so it places sequence points in it: a marker is a
 * `PING <unique text>` written to the connection; Redis answers in order, so when the
 * marker's answer comes back, every reply to what was sent before it has come back too.
 * Each marker carries what to do at that point: write one of the proxy's own replies (a
 * locally answered or refused command keeps its place in request order), switch reply
 * dropping on or off (CLIENT REPLY in RESP3), end the stream after the last unsubscribe,
 * or let a waiting QUIT or RESET go on. A marker's answer is never forwarded.
 * Source: https://redis.io/docs/latest/develop/interact/pubsub/
 */
import Denque from 'denque';
import { encodeCommand } from '../protocol/resp.js';
import { isPingReply } from './command-traits.js';
import { Subscriptions } from './pubsub.js';

/** Write the marker's reply in its place. */
export const MARK_REPLY = 1;
/** From here, replies to the client's commands are dropped (CLIENT REPLY OFF). */
export const MARK_DROP_ON = 2;
/** From here, they are written again (CLIENT REPLY ON). */
export const MARK_DROP_OFF = 3;
/** The next reply to a client's command is dropped (CLIENT REPLY SKIP). */
export const MARK_DROP_NEXT = 4;
/** The stream may end here: everything sent before the last unsubscribe has been answered. */
export const MARK_END = 5;
/** A QUIT or RESET waits for this point (everything before it answered). */
export const MARK_HALT = 6;

interface Marker {
  readonly text: string;
  readonly action: number;
  readonly reply: Buffer | null;
}

let markerCount = 0;

export class Stream {
  /** Subscription counts from the confirmations that passed (Pub/Sub mode). */
  readonly subscriptions = new Subscriptions();
  /** Replies to the client's commands are being dropped (RESP3 CLIENT REPLY OFF). */
  dropReplies = false;
  /** Replies still to drop one by one (CLIENT REPLY SKIP). */
  dropNext = 0;
  /** The next reply is EXEC's: the transaction that contained SUBSCRIBE turned into this stream. */
  execPending = false;
  /** A MARK_HALT was answered: the QUIT or RESET that sent it may go on. */
  halted = false;
  private readonly markers = new Denque<Marker>();
  private readonly prefix: string;

  /** @param sessionId names the session in its markers (they show in MONITOR). */
  constructor(sessionId: number) {
    this.prefix = `__redis-proxy__:mark:${sessionId}:`;
  }

  /** A new marker with `action` (and for MARK_REPLY the `reply` to write); returns the PING to write. */
  mark(action: number, reply: Buffer | null = null): Buffer {
    const text = `${this.prefix}${++markerCount}`;
    this.markers.push({ text, action, reply });
    return encodeCommand(['PING', text]);
  }

  /** True while a marker with `action` is waiting for its answer. */
  pending(action: number): boolean {
    for (let i = 0; i < this.markers.length; i++) if (this.markers.peekAt(i)!.action === action) return true;
    return false;
  }

  /** When `buf[start, end)` answers the oldest waiting marker: that marker (taken off the queue); else null. */
  answered(buf: Buffer, start: number, end: number): Marker | null {
    const head = this.markers.peekFront();
    if (head === undefined || !isPingReply(buf, start, end, head.text)) return null;
    this.markers.shift();
    return head;
  }

  /** True for a MONITOR line showing one of this session's markers (a monitor sees its own commands). */
  isOwnMarkerLine(buf: Buffer, start: number, end: number): boolean {
    return buf[start] === 0x2b && buf.toString('latin1', start, end).includes(`"PING" "${this.prefix}`);
  }

  /** Forgets everything (the stream ended). */
  reset(): void {
    this.subscriptions.reset();
    this.markers.clear();
    this.dropReplies = false;
    this.dropNext = 0;
    this.execPending = false;
    this.halted = false;
  }
}

/**
 * A reply slot: the place one request's reply goes. The session that sent the request owns
 * it (through {@link SlotOwner}) and keeps its slots in request order; a backend connection
 * keeps the slots it owes replies for in send order. Nothing here knows about clients.
 */
import type { Node } from './node.js';

/** Who receives a slot's outcome. */
export interface SlotOwner {
  /** The reply for `slot` arrived: `buf[start, end)` (a view; keep it only by subarray). */
  onSlotReply(slot: ReplySlot, buf: Buffer, start: number, end: number): void;
  /** The connection failed before the reply arrived; `message` is a RESP error text (`ERR ...`). */
  onSlotError(slot: ReplySlot, message: string): void;
}

/** Slot flags. */
export const SLOT_MASTER = 1; // sent to a master connection (counts for the session's ordering barrier)
export const SLOT_READ = 2; // a read that may be retried once on another node
export const SLOT_RETRIED = 4; // already retried once
export const SLOT_DEDICATED = 8; // sent on the session's dedicated connection
// Bits from 64 up are the owner's own.

export class ReplySlot {
  /** Next slot in the owner's FIFO. */
  next: ReplySlot | null = null;
  /** The reply bytes once arrived, while earlier slots are still waiting. */
  reply: Buffer | null = null;
  done = false;
  flags: number;
  /** Coarse time it was sent (ms, {@link coarseNow}), for command timeouts. */
  sentAt = 0;
  /** The node it was sent to. */
  node: Node | null = null;
  /** The request's bytes, `request[requestStart, requestEnd)`, kept for reads so they can be retried elsewhere. */
  request: Buffer | null = null;
  requestStart = 0;
  requestEnd = 0;

  constructor(
    readonly owner: SlotOwner,
    flags: number,
  ) {
    this.flags = flags;
  }
}

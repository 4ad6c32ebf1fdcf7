/**
 * A session's replies in request order: one slot per request, filled by whichever node
 * answers, and every leading filled slot written to the client at once. At most one slot
 * is an open stream (Pub/Sub, MONITOR): what streams through it is written while it is at
 * the head, and held behind earlier replies until then.
 */
import { ReplySlot, type SlotOwner } from '../backend/reply-slot.js';
import type { BatchedOutput } from '../io/batched-output.js';

/** Slot flag: the reply is not written (CLIENT REPLY OFF/SKIP, the proxy's own requests). */
export const SLOT_SILENT = 128;

export class ReplyQueue {
  private head: ReplySlot | null = null;
  private tail: ReplySlot | null = null;
  /** Slots not yet written. */
  inflight = 0;
  private streamSlot: ReplySlot | null = null;
  private streamBacklog: Buffer[] = [];

  /**
   * @param owner receives the slots' replies (the session)
   * @param output the client's socket output
   * @param checkLimit called after each write (the session enforces its output limit)
   */
  constructor(
    private readonly owner: SlotOwner,
    private readonly output: BatchedOutput,
    private readonly checkLimit: () => void,
  ) {}

  /** True when every reply has been written. */
  get empty(): boolean {
    return this.head === null;
  }

  /** A new slot at the tail, for the request being dispatched. */
  push(flags: number): ReplySlot {
    const slot = new ReplySlot(this.owner, flags);
    if (this.tail === null) this.head = slot;
    else this.tail.next = slot;
    this.tail = slot;
    this.inflight++;
    return slot;
  }

  /** Fills `slot` with `buf[start, end)` and writes every leading filled slot. */
  fill(slot: ReplySlot, buf: Buffer, start: number, end: number): void {
    if (slot !== this.head) {
      slot.reply = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
      slot.done = true;
      return;
    }
    if (!(slot.flags & SLOT_SILENT) && end > start) {
      this.output.pushRange(buf, start, end);
      this.checkLimit();
    }
    let next = slot.next;
    let written = 1;
    while (next !== null && next.done) {
      if (!(next.flags & SLOT_SILENT)) this.write(next.reply!);
      next.reply = null;
      next = next.next;
      written++;
    }
    this.head = next;
    if (next === null) this.tail = null;
    else if (next === this.streamSlot) this.writeBacklog();
    this.inflight -= written;
  }

  /** Opens the stream slot (at the tail). */
  openStream(): void {
    this.streamSlot = this.push(0);
  }

  /** True while a stream slot is open. */
  get streaming(): boolean {
    return this.streamSlot !== null;
  }

  /** Sends `buf[start, end)` through the open stream: now if it is at the head, else after the replies before it. */
  stream(buf: Buffer, start = 0, end = buf.length): void {
    if (this.streamSlot === this.head) {
      this.output.pushRange(buf, start, end);
      this.checkLimit();
    } else {
      this.streamBacklog.push(buf.subarray(start, end));
    }
  }

  /** Closes the stream slot; what it held back is written in its turn. */
  closeStream(): void {
    const slot = this.streamSlot;
    if (slot === null) return;
    this.streamSlot = null;
    const backlog = this.streamBacklog;
    this.streamBacklog = [];
    const rest = backlog.length === 1 ? backlog[0]! : Buffer.concat(backlog);
    this.fill(slot, rest, 0, rest.length);
  }

  /** Forgets every slot (the session closed). */
  clear(): void {
    this.head = this.tail = this.streamSlot = null;
    this.streamBacklog = [];
  }

  private writeBacklog(): void {
    for (const b of this.streamBacklog) this.write(b);
    this.streamBacklog = [];
  }

  private write(buf: Buffer): void {
    if (buf.length === 0) return;
    this.output.push(buf);
    this.checkLimit();
  }
}

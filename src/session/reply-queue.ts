/**
 * A session's replies in request order: one slot per request, filled by whichever node
 * answers, and every leading filled slot written to the client at once. At most one slot
 * is an open stream (Pub/Sub, MONITOR): what streams through it is written while it is at
 * the head, and held behind earlier replies until then.
 *
 * Writing never closes anything: {@link ReplyQueue.fill} and {@link ReplyQueue.stream}
 * return true when the client's unsent output has passed its limit, and the caller decides.
 */
import type { BatchedOutput } from '../io/batched-output.js';
import { ReplySlot, SLOT_SILENT, type SlotOwner } from './reply-slot.js';

export class ReplyQueue {
  private head: ReplySlot | null = null;
  private tail: ReplySlot | null = null;
  /** Slots not yet written. */
  inflight = 0;
  private streamSlot: ReplySlot | null = null;
  private streamBacklog: Buffer[] = [];
  /** Bytes held in the backlog: they count against the limit like unsent output. */
  private backlogBytes = 0;

  /**
   * @param owner receives the slots' replies (the session)
   * @param output the client's socket output
   * @param limit bytes of unsent output past which a write reports a breach (0 = never)
   */
  constructor(
    private readonly owner: SlotOwner,
    private readonly output: BatchedOutput,
    /** Changed by a reload (clientOutputLimit). */
    public limit: number,
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

  /**
   * Fills `slot` with `buf[start, end)` and writes every leading filled slot.
   * @returns true when the unsent output is now over the limit
   */
  fill(slot: ReplySlot, buf: Buffer, start: number, end: number): boolean {
    if (slot !== this.head) {
      slot.reply = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
      slot.done = true;
      return false;
    }
    if (!(slot.flags & SLOT_SILENT) && end > start) this.output.pushRange(buf, start, end);
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
    return this.overLimit();
  }

  /** Opens the stream slot (at the tail). */
  openStream(): void {
    this.streamSlot = this.push(0);
  }

  /** True while a stream slot is open. */
  get streaming(): boolean {
    return this.streamSlot !== null;
  }

  /**
   * Sends `buf[start, end)` through the open stream: now if it is at the head, else after
   * the replies before it.
   * @returns true when the unsent output is now over the limit
   */
  stream(buf: Buffer, start = 0, end = buf.length): boolean {
    if (this.streamSlot === this.head) {
      this.output.pushRange(buf, start, end);
      return this.overLimit();
    }
    this.streamBacklog.push(buf.subarray(start, end));
    this.backlogBytes += end - start;
    return this.overLimit();
  }

  /**
   * Closes the stream slot; what it held back is written in its turn.
   * @returns true when the unsent output is now over the limit
   */
  closeStream(): boolean {
    const slot = this.streamSlot;
    if (slot === null) return false;
    this.streamSlot = null;
    const backlog = this.streamBacklog;
    this.streamBacklog = [];
    this.backlogBytes = 0;
    const rest = backlog.length === 1 ? backlog[0]! : Buffer.concat(backlog);
    return this.fill(slot, rest, 0, rest.length);
  }

  /** Forgets every slot (the session closed). */
  clear(): void {
    this.head = this.tail = this.streamSlot = null;
    this.streamBacklog = [];
    this.backlogBytes = 0;
    this.inflight = 0;
  }

  private overLimit(): boolean {
    return this.limit > 0 && this.output.unsentBytes + this.backlogBytes > this.limit;
  }

  private writeBacklog(): void {
    for (const b of this.streamBacklog) this.write(b);
    this.streamBacklog = [];
    this.backlogBytes = 0;
  }

  private write(buf: Buffer): void {
    if (buf.length > 0) this.output.push(buf);
  }
}

/**
 * Socket output batched per event-loop turn: everything queued for a socket during one
 * turn (the poll phase's I/O callbacks) is written with one `write` in the check phase
 * (`setImmediate`), so many small requests or replies cost one syscall. `process.nextTick`
 * would not do: it runs after every single I/O callback and so batches nothing across
 * sockets.
 */
import type { Socket } from 'node:net';

/** Anything with queued output that the per-turn flush writes out. */
export interface Flushable {
  /** Set by {@link scheduleFlush} while queued; only it may touch this. */
  flushQueued: boolean;
  flush(): void;
}

const queue: Flushable[] = [];
let scheduled = false;

function flushAll(): void {
  scheduled = false;
  // A flush may queue more (rare); the loop picks those up in this same pass.
  for (let i = 0; i < queue.length; i++) {
    const f = queue[i]!;
    f.flushQueued = false;
    f.flush();
  }
  queue.length = 0;
}

/** Queues `f.flush()` for the end of this event-loop turn (once, however often it is called). */
export function scheduleFlush(f: Flushable): void {
  if (f.flushQueued) return;
  f.flushQueued = true;
  queue.push(f);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushAll);
  }
}

/** Totals below this are copied into one buffer; above it, written as they are (corked). */
const COALESCE_BYTES = 256 * 1024;

/**
 * Output for one socket: `push` buffers or `pushRange` byte ranges of received buffers
 * (they are written, not kept), one socket write per turn. Consecutive ranges of the same
 * buffer (pipelined requests or replies that sit side by side in one received chunk) are
 * merged, so they cost one view, not one each.
 */
export class BatchedOutput implements Flushable {
  flushQueued = false;
  private chunks: Buffer[] = [];
  private bytes = 0;
  /** The range being extended: `rangeBuf[rangeStart, rangeEnd)`. */
  private rangeBuf: Buffer | null = null;
  private rangeStart = 0;
  private rangeEnd = 0;

  constructor(private readonly socket: Socket) {}

  /** Bytes queued here plus those the socket has not sent yet. */
  get unsentBytes(): number {
    return this.bytes + this.socket.writableLength;
  }

  push(buf: Buffer): void {
    if (this.rangeBuf !== null) this.sealRange();
    this.chunks.push(buf);
    this.bytes += buf.length;
    scheduleFlush(this);
  }

  /** Queues `buf[start, end)`. */
  pushRange(buf: Buffer, start: number, end: number): void {
    this.bytes += end - start;
    if (buf === this.rangeBuf && start === this.rangeEnd) {
      this.rangeEnd = end;
      return;
    }
    if (this.rangeBuf !== null) this.sealRange();
    this.rangeBuf = buf;
    this.rangeStart = start;
    this.rangeEnd = end;
    scheduleFlush(this);
  }

  /** Discards what is queued (the socket is going away). */
  clear(): void {
    this.chunks = [];
    this.bytes = 0;
    this.rangeBuf = null;
  }

  private sealRange(): void {
    const buf = this.rangeBuf!;
    this.chunks.push(this.rangeStart === 0 && this.rangeEnd === buf.length ? buf : buf.subarray(this.rangeStart, this.rangeEnd));
    this.rangeBuf = null;
  }

  flush(): void {
    const range = this.rangeBuf;
    if (this.chunks.length === 0) {
      // The common case: one range and nothing else (one reply to a client, or requests
      // side by side in one chunk): written as a view, with no list of chunks built.
      if (range === null) return;
      this.rangeBuf = null;
      this.bytes = 0;
      if (this.socket.destroyed) return;
      const start = this.rangeStart;
      const end = this.rangeEnd;
      this.socket.write(start === 0 && end === range.length ? range : range.subarray(start, end));
      return;
    }
    if (range !== null) this.sealRange();
    const chunks = this.chunks;
    if (chunks.length === 0) return;
    const bytes = this.bytes;
    this.chunks = [];
    this.bytes = 0;
    if (this.socket.destroyed) return;
    if (chunks.length === 1) {
      this.socket.write(chunks[0]!);
    } else if (bytes <= COALESCE_BYTES) {
      this.socket.write(Buffer.concat(chunks, bytes));
    } else {
      this.socket.cork();
      for (const c of chunks) this.socket.write(c);
      this.socket.uncork();
    }
  }
}

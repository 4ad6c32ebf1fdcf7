/**
 * Framing of client requests: RESP arrays of bulk strings and inline commands, exactly as
 * Redis's own `processMultibulkBuffer` / `processInlineBuffer` accept them, with Redis's
 * own protocol error texts. Only argument boundaries are found; bytes are not copied or
 * decoded, so a request can be forwarded as received.
 *
 * Why not redis-parser here: redis-parser parses *replies* (any RESP type, nested), builds
 * a value per element and does not report byte boundaries; a request stream has a
 * narrower grammar (arrays of bulk strings, or inline lines) whose errors a client must see
 * in Redis's words. redis-parser decodes the replies the proxy itself needs
 * (see backend/control-client.ts).
 *
 * Source: https://redis.io/docs/latest/develop/reference/protocol-spec/#sending-commands-to-a-redis-server
 */
import { parseDecimal } from './decimal.js';
import { splitInlineArgs } from './inline.js';

/** Longest inline request or count line Redis accepts before the end of line (PROTO_INLINE_MAX_SIZE). */
export const INLINE_MAX_BYTES = 64 * 1024;
/** Largest bulk string Redis accepts by default (`proto-max-bulk-len`, 512 MB). */
export const MAX_BULK_BYTES = 512 * 1024 * 1024;
const INT_MAX = 2147483647;

const INCOMPLETE = -1;
const FAILED = -2;
const EMPTY = Buffer.alloc(0);

/** Node's Buffer has latin1Slice (the fast path behind toString('latin1')); its typings do not say so. */
type LatinBuffer = Buffer & { latin1Slice(start: number, end: number): string };

/**
 * One framed request, valid only during {@link RequestHandler.onRequest}: the parser reuses
 * this object and its offset arrays for the next request. Argument i is
 * `buf[starts[i], ends[i])`; the whole request is `buf[start, end)`.
 */
export class RequestView {
  buf: Buffer = EMPTY;
  start = 0;
  end = 0;
  argc = 0;
  readonly starts: number[] = [];
  readonly ends: number[] = [];

  /** Argument i as a Buffer view (no copy). */
  arg(i: number): Buffer {
    return this.buf.subarray(this.starts[i], this.ends[i]);
  }

  /** Argument i decoded as latin1 (byte-preserving), for names and numbers. */
  argString(i: number): string {
    return (this.buf as LatinBuffer).latin1Slice(this.starts[i]!, this.ends[i]!);
  }

  /** True when argument i equals `lower` ignoring ASCII case; `lower` must be lowercase ASCII. */
  argIs(i: number, lower: string): boolean {
    const s = this.starts[i]!;
    const len = this.ends[i]! - s;
    if (len !== lower.length) return false;
    for (let k = 0; k < len; k++) {
      if ((this.buf[s + k]! | 0x20) !== lower.charCodeAt(k)) return false;
    }
    return true;
  }

  /** The request's bytes as received (no copy). */
  raw(): Buffer {
    const buf = this.buf;
    return this.start === 0 && this.end === buf.length ? buf : buf.subarray(this.start, this.end);
  }

  /** All arguments as Buffer views. */
  args(): Buffer[] {
    const out = new Array<Buffer>(this.argc);
    for (let i = 0; i < this.argc; i++) out[i] = this.arg(i);
    return out;
  }

  /**
   * A request built from `args`, encoded as a RESP array in a buffer of its own (a copy:
   * valid after the parser moves on). For requests the proxy keeps or makes itself.
   */
  static of(args: ReadonlyArray<Buffer | string>): RequestView {
    const view = new RequestView();
    encodeInto(view, args);
    return view;
  }
}

/** Encodes `args` as a RESP array into a new buffer and points `view` at it and its arguments. */
function encodeInto(view: RequestView, args: ReadonlyArray<Buffer | string>): void {
  const heads = args.map((a) => `$${Buffer.byteLength(a)}\r\n`);
  const top = `*${args.length}\r\n`;
  let size = top.length;
  for (let i = 0; i < args.length; i++) size += heads[i]!.length + Buffer.byteLength(args[i]!) + 2;
  const out = Buffer.allocUnsafe(size);
  let w = out.write(top, 0, 'latin1');
  for (let i = 0; i < args.length; i++) {
    w += out.write(heads[i]!, w, 'latin1');
    view.starts[i] = w;
    const a = args[i]!;
    w += typeof a === 'string' ? out.write(a, w) : a.copy(out, w);
    view.ends[i] = w;
    out[w++] = 0x0d;
    out[w++] = 0x0a;
  }
  view.buf = out;
  view.start = 0;
  view.end = size;
  view.argc = args.length;
}

/** What the parser reports to. */
export interface RequestHandler {
  /**
   * One complete, non-empty request. Return false to leave it unconsumed: parsing stops
   * (the request and everything after it stay buffered) until {@link RequestParser.resume}.
   */
  onRequest(request: RequestView): boolean;
  /** The stream is broken; `message` is Redis's text (`Protocol error: ...`). Parsing has stopped for good. */
  onProtocolError(message: string): void;
}

/** Index of the first CR at or after `from`, or -1. A JS loop: header lines are a few bytes, cheaper than a native call. */
function findCR(buf: Buffer, from: number, n: number): number {
  for (let i = from; i < n; i++) if (buf[i] === 0x0d) return i;
  return -1;
}


/**
 * Incremental request framer for one client connection. Feed it socket chunks in order;
 * it calls the handler once per request, in order, and keeps partial requests across chunk
 * boundaries (a large value is gathered once, not re-scanned per chunk).
 */
export class RequestParser {
  /** When set, counts and lengths are limited as Redis limits unauthenticated clients. */
  authRequired = false;
  private buf: Buffer = EMPTY;
  private pos = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes needed from `pos` before a parse attempt can succeed. */
  private wanted = 0;
  private stalled = false;
  private failed = false;
  private error = '';
  private readonly view = new RequestView();

  constructor(private readonly handler: RequestHandler) {}

  /** Bytes received and not yet consumed (buffered while stalled or incomplete). */
  get bufferedBytes(): number {
    return this.buf.length - this.pos + this.pendingBytes;
  }

  /** True while a request was refused by the handler and waits for {@link resume}. */
  get isStalled(): boolean {
    return this.stalled;
  }

  /** Adds a chunk from the socket and frames what is complete. */
  feed(chunk: Buffer): void {
    if (this.failed) return;
    if (this.pos < this.buf.length || this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    } else {
      this.buf = chunk;
      this.pos = 0;
    }
    if (!this.stalled) this.run();
  }

  /** Retries the request that the handler refused, then goes on with the rest. */
  resume(): void {
    if (this.failed) return;
    this.stalled = false;
    this.run();
  }

  /** Drops everything buffered; no more requests are reported. */
  close(): void {
    this.failed = true;
    this.buf = EMPTY;
    this.pending = [];
    this.pendingBytes = 0;
  }

  private run(): void {
    while (true) {
      const available = this.buf.length - this.pos + this.pendingBytes;
      if (available === 0 || available < this.wanted) break;
      if (this.pendingBytes > 0) {
        this.pending.unshift(this.buf.subarray(this.pos));
        this.buf = Buffer.concat(this.pending, available);
        this.pos = 0;
        this.pending = [];
        this.pendingBytes = 0;
      }
      const buf = this.buf;
      const end = buf[this.pos] === 0x2a ? this.frameMultibulk(buf, this.pos) : this.frameInline(buf, this.pos);
      if (end === INCOMPLETE) break;
      if (end === FAILED) {
        this.close();
        this.handler.onProtocolError(this.error);
        return;
      }
      this.wanted = 0;
      if (this.view.argc > 0 && !this.handler.onRequest(this.view)) {
        this.stalled = true;
        return;
      }
      if (this.failed) return;
      this.pos = end;
    }
    if (this.pos >= this.buf.length && this.pendingBytes === 0) {
      this.buf = EMPTY;
      this.pos = 0;
    }
  }

  private fail(message: string): number {
    this.error = `Protocol error: ${message}`;
    return FAILED;
  }

  private incomplete(needFromStart: number): number {
    this.wanted = needFromStart;
    return INCOMPLETE;
  }

  private frameMultibulk(buf: Buffer, p: number): number {
    const n = buf.length;
    let nl = findCR(buf, p + 1, n);
    if (nl === -1 || nl + 1 >= n) {
      if (n - p > INLINE_MAX_BYTES) return this.fail('too big mbulk count string');
      return this.incomplete(n - p + 1);
    }
    const count = parseDecimal(buf, p + 1, nl);
    if (Number.isNaN(count) || count > INT_MAX) return this.fail('invalid multibulk length');
    if (count > 10 && this.authRequired) return this.fail('unauthenticated multibulk length');
    let q = nl + 2;
    const view = this.view;
    view.buf = buf;
    view.start = p;
    view.argc = 0;
    if (count <= 0) {
      view.end = q;
      return q;
    }
    const starts = view.starts;
    const ends = view.ends;
    for (let i = 0; i < count; i++) {
      if (q >= n) return this.incomplete(n - p + 1);
      nl = findCR(buf, q, n);
      if (nl === -1 || nl + 1 >= n) {
        if (n - q > INLINE_MAX_BYTES) return this.fail('too big bulk count string');
        return this.incomplete(n - p + 1);
      }
      if (buf[q] !== 0x24) return this.fail(`expected '$', got '${String.fromCharCode(buf[q]!)}'`);
      const len = parseDecimal(buf, q + 1, nl);
      if (Number.isNaN(len) || len < 0 || len > MAX_BULK_BYTES) return this.fail('invalid bulk length');
      if (len > 16384 && this.authRequired) return this.fail('unauthenticated bulk length');
      q = nl + 2;
      starts[i] = q;
      ends[i] = q + len;
      q += len + 2;
      if (q > n) return this.incomplete(q - p);
    }
    view.argc = count;
    view.end = q;
    return q;
  }

  private frameInline(buf: Buffer, p: number): number {
    const nl = buf.indexOf(0x0a, p);
    if (nl === -1) {
      if (buf.length - p > INLINE_MAX_BYTES) return this.fail('too big inline request');
      return this.incomplete(buf.length - p + 1);
    }
    const lineEnd = nl > p && buf[nl - 1] === 0x0d ? nl - 1 : nl;
    const args = splitInlineArgs(buf.subarray(p, lineEnd));
    if (args === null) return this.fail('unbalanced quotes in request');
    const view = this.view;
    view.argc = 0;
    if (args.length === 0) return nl + 1;
    // Re-encode as RESP so that every request is forwarded in one form.
    encodeInto(view, args);
    return nl + 1;
  }
}

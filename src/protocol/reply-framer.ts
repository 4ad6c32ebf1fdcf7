/**
 * Framing of a server's reply stream: finds where each top-level reply ends without
 * decoding values, so replies are forwarded as received. Resumable at any byte: a reply
 * split over many chunks is scanned once (bulk payloads are skipped by length, not read).
 * Understands RESP2 and RESP3 types.
 * Source: https://redis.io/docs/latest/develop/reference/protocol-spec/
 */
import { parseDecimal } from './decimal.js';

/** Receives each complete top-level reply. */
export interface ReplySink {
  /**
   * One reply: `buf[start, end)`. `buf` is a received chunk (or, for a reply that spanned
   * chunks, a buffer holding just that reply); it is never reused, so a view of it may be kept.
   */
  onReply(buf: Buffer, start: number, end: number): void;
  /** The stream does not parse as RESP; the connection cannot be trusted any more. */
  onFramingError(message: string): void;
}

/** Type byte -> how to frame it: 1 line, 2 bulk (length + payload), 3 aggregate (count), 4 map-like (2 × count), 5 attribute. */
const KIND = new Uint8Array(256);
for (const c of '+-:_#,(') KIND[c.charCodeAt(0)] = 1;
for (const c of '$!=') KIND[c.charCodeAt(0)] = 2;
for (const c of '*~>') KIND[c.charCodeAt(0)] = 3;
KIND['%'.charCodeAt(0)] = 4;
KIND['|'.charCodeAt(0)] = 5;

/** Incremental framer for one backend connection's reply stream. */
export class ReplyFramer {
  /** Elements still owed by each open aggregate, innermost last. */
  private readonly remaining: number[] = [];
  /** Payload bytes (including the trailing CRLF) still to skip. */
  private skip = 0;
  /** Chunks holding the start of the reply in progress. */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  /** Bytes of a header line cut by the end of the previous chunk. */
  private lineCarry: Buffer | null = null;
  private failed = false;

  constructor(private readonly sink: ReplySink) {}

  /** Frames one chunk of the stream. */
  push(chunk: Buffer): void {
    if (this.failed) return;
    const n = chunk.length;
    let pos = 0;
    let replyStart = 0;
    while (pos < n) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, n - pos);
        pos += take;
        this.skip -= take;
        if (this.skip > 0) break;
        if (this.elementDone()) {
          this.emit(chunk, replyStart, pos);
          replyStart = pos;
        }
        continue;
      }
      // A header line: type byte, text, CRLF.
      let lineStart = pos;
      let line = chunk;
      let lf = -1;
      for (let i = pos; i < n; i++) {
        if (chunk[i] === 0x0a) {
          lf = i;
          break;
        }
      }
      if (lf === -1) {
        this.lineCarry = this.lineCarry ? Buffer.concat([this.lineCarry, chunk.subarray(pos)]) : chunk.subarray(pos);
        pos = n;
        break;
      }
      let lineEnd = lf - 1; // index of '\r'
      if (this.lineCarry) {
        line = Buffer.concat([this.lineCarry, chunk.subarray(0, lf + 1)]);
        lineStart = 0;
        lineEnd = line.length - 2;
        this.lineCarry = null;
      }
      pos = lf + 1;
      const kind = KIND[line[lineStart]!]!;
      if (kind === 0 || line[lineEnd] !== 0x0d) {
        this.fail(`unexpected byte '${String.fromCharCode(line[lineStart]!)}' in reply stream`);
        return;
      }
      let complete: boolean;
      if (kind === 1) {
        complete = this.elementDone();
      } else {
        const count = parseDecimal(line, lineStart + 1, lineEnd);
        if (Number.isNaN(count)) {
          this.fail('invalid length in reply stream');
          return;
        }
        if (kind === 2) {
          if (count < 0) {
            complete = this.elementDone();
          } else {
            this.skip = count + 2;
            complete = false;
            // Fast path: the payload is in this chunk.
            if (pos + this.skip <= n) {
              pos += this.skip;
              this.skip = 0;
              complete = this.elementDone();
            }
          }
        } else {
          const elements = kind === 3 ? count : kind === 4 ? count * 2 : count * 2 + 1;
          if (elements <= 0) {
            complete = this.elementDone();
          } else {
            this.remaining.push(elements);
            complete = false;
          }
        }
      }
      if (complete) {
        this.emit(chunk, replyStart, pos);
        replyStart = pos;
      }
    }
    if (replyStart < n) {
      const rest = chunk.subarray(replyStart);
      this.parts.push(rest);
      this.partsBytes += rest.length;
    }
  }

  /** One element ended; returns true when that completed the top-level reply. */
  private elementDone(): boolean {
    const remaining = this.remaining;
    while (remaining.length > 0) {
      const top = remaining.length - 1;
      if (--remaining[top]! > 0) return false;
      remaining.pop();
    }
    return true;
  }

  private emit(chunk: Buffer, start: number, end: number): void {
    if (this.partsBytes === 0) {
      this.sink.onReply(chunk, start, end);
      return;
    }
    this.parts.push(chunk.subarray(start, end));
    const whole = Buffer.concat(this.parts, this.partsBytes + end - start);
    this.parts = [];
    this.partsBytes = 0;
    this.sink.onReply(whole, 0, whole.length);
  }

  private fail(message: string): void {
    this.failed = true;
    this.sink.onFramingError(message);
  }
}

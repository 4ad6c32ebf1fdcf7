/**
 * Raw TCP access to a Redis-speaking port, for what client libraries cannot send:
 * inline commands, malformed requests, requests split into single bytes, clients that
 * never read.
 */
import net from 'node:net';
import t from 'tap';
import { sleep } from './wait.js';

/**
 * Where the RESP2/RESP3 reply starting at `start` ends (the offset just past it), or -1
 * when `buf` does not hold all of it yet.
 */
export function replyEnd(buf: Buffer, start = 0): number {
  if (start >= buf.length) return -1;
  const lineEnd = buf.indexOf('\r\n', start, 'latin1');
  if (lineEnd < 0) return -1;
  const type = String.fromCharCode(buf[start]!);
  const header = buf.toString('latin1', start + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case '+': case '-': case ':': case '_': case ',': case '#': case '(':
      return afterLine;
    case '$': case '!': case '=': {
      const len = Number(header);
      if (len < 0) return afterLine;
      return buf.length >= afterLine + len + 2 ? afterLine + len + 2 : -1;
    }
    case '*': case '~': case '>': case '%': case '|': {
      let count = Number(header);
      if (count < 0) return afterLine;
      if (type === '%' || type === '|') count *= 2;
      let offset = afterLine;
      for (let i = 0; i < count; i++) {
        offset = replyEnd(buf, offset);
        if (offset < 0) return -1;
      }
      return offset;
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(buf.toString('latin1', start, start + 40))}`);
  }
}

/** The complete replies at the start of `buf`, each as its own Buffer. */
export function splitReplies(buf: Buffer): Buffer[] {
  const replies: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const end = replyEnd(buf, offset);
    if (end < 0) return replies;
    replies.push(buf.subarray(offset, end));
    offset = end;
  }
}

/** Encodes a command as a RESP array of bulk strings. */
export function encodeCommand(...args: (string | Buffer | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

export interface RawOptions {
  /** Done when this returns true for the bytes received so far. */
  until?: (buf: Buffer) => boolean;
  /** Done after this many complete replies (default 1 when neither `until` nor `untilClosed`). */
  replies?: number;
  /** Done when the server closes the connection. */
  untilClosed?: boolean;
  /** Write one byte at a time, waiting this many ms (or a random number in [min, max]) between bytes. */
  byteDelayMs?: number | [number, number];
  /** Give up after this long (default 3000 ms): the result then has `timedOut: true`. */
  timeoutMs?: number;
}

export interface RawResult {
  data: Buffer;
  /** `data` as latin1 text. */
  text: string;
  /** The server closed the connection before we did. */
  closed: boolean;
  timedOut: boolean;
  /** A socket error (e.g. ECONNREFUSED). */
  error?: Error;
}

/** Connects, writes `bytes`, collects the reply bytes until the done condition, closes. */
export async function rawCommand(
  port: number,
  bytes: Buffer | string,
  opts: RawOptions = {},
): Promise<RawResult> {
  const payload = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1');
  const wanted = opts.replies ?? (opts.until || opts.untilClosed ? undefined : 1);
  const conn = await rawConnection(port).catch((error: Error) => error);
  if (conn instanceof Error) {
    return { data: Buffer.alloc(0), text: '', closed: false, timedOut: false, error: conn };
  }
  const done = (buf: Buffer) =>
    (opts.until?.(buf) ?? false) || (wanted !== undefined && splitReplies(buf).length >= wanted);

  try {
    if (opts.byteDelayMs === undefined) {
      conn.socket.write(payload);
    } else {
      const [min, max] = Array.isArray(opts.byteDelayMs)
        ? opts.byteDelayMs
        : [opts.byteDelayMs, opts.byteDelayMs];
      for (let i = 0; i < payload.length && !conn.closed; i++) {
        conn.socket.write(payload.subarray(i, i + 1));
        await sleep(min + Math.random() * (max - min));
      }
    }
    const timedOut = !(await conn.waitFor(
      (buf) => (opts.untilClosed ? false : done(buf)),
      opts.timeoutMs ?? 3000,
    ));
    const data = conn.received();
    return {
      data,
      text: data.toString('latin1'),
      closed: conn.closed,
      timedOut: opts.untilClosed ? !conn.closed : timedOut,
      error: conn.error,
    };
  } finally {
    conn.socket.destroy();
  }
}

export interface RawConnection {
  socket: net.Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Drops what was received so far. */
  clear(): void;
  /** The peer closed (or the socket failed). */
  readonly closed: boolean;
  readonly error: Error | undefined;
  /** Resolves true once `check(received)` holds, false on close or after `timeoutMs`. */
  waitFor(check: (buf: Buffer) => boolean, timeoutMs?: number): Promise<boolean>;
  /** Writes `bytes` and waits for `n` more complete replies; returns them. */
  send(bytes: Buffer | string, n?: number, timeoutMs?: number): Promise<Buffer[]>;
  /** Resolves when the connection is closed. */
  closedPromise: Promise<void>;
}

const openSockets = new Map<net.Socket, number>();

/** Destroys the raw connections still open (those to `ports`, or all). */
export function closeRawConnections(ports?: number[]): void {
  for (const [socket, port] of openSockets) {
    if (ports === undefined || ports.includes(port)) socket.destroy();
  }
}
t.teardown(() => closeRawConnections());

/** A raw connection kept open (destroyed at the end of the test file at the latest). */
export function rawConnection(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    openSockets.set(socket, port);
    let chunks: Buffer[] = [];
    let size = 0;
    let closed = false;
    let error: Error | undefined;
    const waiters = new Set<() => void>();
    const wake = () => {
      for (const w of [...waiters]) w();
    };
    let markClosed!: () => void;
    const closedPromise = new Promise<void>((r) => (markClosed = r));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      wake();
    });
    socket.on('close', () => {
      closed = true;
      openSockets.delete(socket);
      markClosed();
      wake();
    });
    socket.once('error', (err) => {
      error = err;
      if (!connected) reject(err);
    });
    let connected = false;
    const received = () => {
      if (chunks.length > 1) chunks = [Buffer.concat(chunks, size)];
      return chunks[0] ?? Buffer.alloc(0);
    };
    const conn: RawConnection = {
      socket,
      received,
      clear() {
        chunks = [];
        size = 0;
      },
      get closed() {
        return closed;
      },
      get error() {
        return error;
      },
      closedPromise,
      waitFor(check, timeoutMs = 3000) {
        return new Promise((res) => {
          const finish = (ok: boolean) => {
            clearTimeout(timer);
            waiters.delete(test);
            res(ok);
          };
          const test = () => {
            if (check(received())) finish(true);
            else if (closed) finish(false);
          };
          const timer = setTimeout(() => finish(false), timeoutMs);
          waiters.add(test);
          test();
        });
      },
      async send(bytes, n = 1, timeoutMs = 3000) {
        const before = splitReplies(received()).length;
        socket.write(bytes);
        const ok = await conn.waitFor((buf) => splitReplies(buf).length >= before + n, timeoutMs);
        const replies = splitReplies(received());
        if (!ok) {
          throw new Error(
            `expected ${n} replies within ${timeoutMs} ms, got ${replies.length - before}` +
              (closed ? ' (connection closed)' : '') +
              `: ${JSON.stringify(received().toString('latin1').slice(-200))}`,
          );
        }
        return replies.slice(before, before + n);
      },
    };
    socket.once('connect', () => {
      connected = true;
      resolve(conn);
    });
  });
}

/**
 * A small promise-based client for the proxy's own questions to a node (health checks,
 * INFO, COMMAND INFO, SCRIPT LOAD fan-out). Off the hot path: replies are decoded with
 * redis-parser. Reconnects on the next call after a failure. Speaks TLS when the node
 * has `backendTls` (the same options as the node's data connections).
 */
import net from 'node:net';
import tls from 'node:tls';
import Denque from 'denque';
import RedisParser from 'redis-parser';
import { encodeCommand } from '../protocol/resp.js';
import { tlsErrorText, type BackendTlsOptions } from './tls.js';

/** An error reply from the node (`-ERR ...`, `-BUSY ...`), as opposed to a failed connection. */
export class ReplyError extends Error {}

/**
 * The connection was open but the reply did not come within the timeout: the node is
 * unresponsive (blocked, overloaded, or black-holing), not unreachable.
 */
export class ReplyTimeout extends Error {}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  /** Its caller was told it timed out; the late reply, when it comes, is dropped. */
  abandoned?: boolean;
}

/** Calls left waiting for a reply after timing out, beyond which the connection is dropped. */
const MAX_ABANDONED = 64;

export interface ControlClientOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** ms for connecting (the TLS handshake included) and for each reply. */
  timeout: number;
  /** Connect with TLS; unset: plain TCP. */
  tls?: BackendTlsOptions | undefined;
}

export class ControlClient {
  private socket: net.Socket | null = null;
  private readonly pending = new Denque<Pending>();

  constructor(private readonly options: ControlClientOptions) {}

  /**
   * Sends one command and resolves with the decoded reply (strings as Buffers are not
   * needed here: bulk strings decode to JS strings, arrays to arrays, integers to numbers).
   * Rejects with {@link ReplyError} for an error reply, {@link ReplyTimeout} when the
   * connection was established but no reply came within the timeout, or an Error when
   * the connection failed (refused, reset, connect timeout; the connection is then
   * dropped). After a ReplyTimeout the connection is kept: a node that is only slow
   * answers the calls made since the moment it recovers (the late replies to the calls
   * that timed out are dropped), unless more than 64 calls are left unanswered.
   */
  call(...args: Array<string | Buffer>): Promise<unknown> {
    const socket = this.socket ?? this.connect();
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      socket.write(encodeCommand(args));
    });
  }

  /** Closes the connection; calls in flight reject. */
  close(): void {
    this.fail(new Error('closed'));
  }

  private connect(): net.Socket {
    const { host, port, timeout, username, password } = this.options;
    const secure = this.options.tls !== undefined;
    const socket = secure ? tls.connect({ host, port, ...this.options.tls }) : net.connect({ host, port });
    let connected = false;
    // With TLS, connected once the handshake is done: a node whose certificate is refused is unreachable, not slow.
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      connected = true;
    });
    socket.setNoDelay(true);
    socket.setTimeout(timeout);
    const parser = new RedisParser({
      returnReply: (reply: unknown) => {
        const p = this.pending.shift();
        if (p !== undefined && !p.abandoned) p.resolve(reply);
      },
      returnError: (err: Error) => {
        const p = this.pending.shift();
        if (p !== undefined && !p.abandoned) p.reject(new ReplyError(err.message));
      },
      returnFatalError: (err: Error) => this.fail(err),
    });
    // Events of a socket already replaced by a reconnect must not touch the new one.
    const failThis = (err: Error): void => {
      if (this.socket === socket) this.fail(err);
    };
    socket.on('data', (chunk: Buffer) => parser.execute(chunk));
    socket.on('timeout', () => {
      if (!connected) failThis(new Error(`connect timeout after ${timeout} ms`));
      else if (this.socket === socket) this.abandonPending(new ReplyTimeout(`no reply within ${timeout} ms`));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => failThis(new Error(secure ? tlsErrorText(err) : err.code ?? err.message)));
    socket.on('close', () => failThis(new Error('connection closed')));
    this.socket = socket;
    if (password !== undefined) {
      const auth = username !== undefined ? ['AUTH', username, password] : ['AUTH', password];
      this.pending.push({
        resolve: () => undefined,
        reject: (err) => this.fail(new Error(`AUTH failed: ${err.message}`)),
      });
      socket.write(encodeCommand(auth));
    }
    return socket;
  }

  /** Tells every caller still waiting that it timed out; their replies will be dropped when they come. */
  private abandonPending(err: ReplyTimeout): void {
    if (this.pending.length > MAX_ABANDONED) {
      this.fail(err);
      return;
    }
    for (let i = 0; i < this.pending.length; i++) {
      const p = this.pending.peekAt(i)!;
      if (p.abandoned) continue;
      p.abandoned = true;
      p.reject(err);
    }
  }

  private fail(err: Error): void {
    const socket = this.socket;
    if (socket === null) return;
    this.socket = null;
    socket.destroy();
    let p: Pending | undefined;
    while ((p = this.pending.shift()) !== undefined) if (!p.abandoned) p.reject(err);
  }
}

/** Parses an INFO reply into `field -> value` (sections merged). */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

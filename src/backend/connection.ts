/**
 * One TCP connection to a node, or TLS over TCP when the node has `backendTls` (chosen
 * once, when it opens). Writes request bytes as given (batched per event-loop turn),
 * frames the replies without decoding them and hands each to the slot it belongs to, in
 * send order. Used both as a shared (multiplexed) connection and as a dedicated one.
 */
import net from 'node:net';
import tls from 'node:tls';
import Denque from 'denque';
import { BatchedOutput } from '../io/batched-output.js';
import { coarseNow, markChunk } from '../io/clock.js';
import { encodeCommand } from '../protocol/resp.js';
import { ReplyFramer, type ReplySink } from '../protocol/reply-framer.js';
import { authWords, type BackendIdentity } from './identity.js';
import type { BackendFailure, Link, OwedReply, StreamSink } from './link.js';
import { tlsErrorText, type BackendTlsOptions } from './tls.js';

export interface ConnectionOptions {
  host: string;
  port: number;
  /** Database selected right after connecting. */
  db: number;
  /** RESP version spoken on the connection (3: HELLO 3 right after connecting). */
  protocol: 2 | 3;
  /** The node's own credentials (identity 0): the handshake's unless `identity` is set, and what {@link BackendConnection.authenticate} goes back to. */
  username?: string;
  password?: string;
  /**
   * A client's Redis user to authenticate as instead of the node's own credentials
   * (`authentication: "redis"`, ./identity.ts). A handshake refused for it says nothing
   * about the node: the connection fails with kind `refused`, not `unreachable`.
   */
  identity?: BackendIdentity | null;
  /** ms to establish the connection: the TCP connect, and with `tls` the TLS handshake too. */
  connectTimeout: number;
  /** Connect with TLS (the node's `backendTls`, made once per node); unset: plain TCP. */
  tls?: BackendTlsOptions | undefined;
  /** Label for errors, e.g. `master 10.0.0.1:6379`. */
  label: string;
  /** Ask the node for this connection's CLIENT ID during the handshake (dedicated connections: CLIENT TRACKING REDIRECT targets). */
  wantClientId?: boolean;
  /**
   * Authenticate and pick the RESP version with HELLO (Redis 6+), which Redis runs even
   * while a script is busy; false: AUTH, or PING when there is nothing to say (older Redis).
   */
  hello: boolean;
}

/** What a connection tells its node. */
export interface ConnectionEvents {
  /** The handshake (AUTH, SELECT) succeeded. */
  onReady(conn: BackendConnection): void;
  /** The connection is gone, after every owed reply failed with `failure`. */
  onClosed(conn: BackendConnection, failure: BackendFailure): void;
  /** A reply arrived while {@link BackendConnection.reportAnswers} was set: the node answers. */
  onAnswered(conn: BackendConnection): void;
}

/**
 * The reply to an AUTH the proxy sends to switch a connection's identity
 * ({@link BackendConnection.authenticate}): resolves on `+OK`; on an error the
 * connection is torn down (it is still authenticated as before, which its next user must
 * not get) and the promise rejects with Redis's text.
 */
class AuthReply implements OwedReply {
  sentAt = 0;
  readonly patient = false;
  constructor(
    private readonly conn: BackendConnection,
    private readonly resolve: () => void,
    private readonly reject: (err: Error) => void,
  ) {}
  settle(buf: Buffer, start: number, end: number): void {
    if (buf[start] !== 0x2d) {
      this.resolve();
      return;
    }
    const text = buf.toString('latin1', start + 1, end - 2);
    this.conn.destroy(`refused AUTH: ${text}`);
    this.reject(new Error(text));
  }
  fail(failure: BackendFailure): void {
    this.reject(new Error(failure.detail));
  }
}

/** A reply to one of the proxy's own requests (handshake, SELECT, HELLO): an error makes the connection unusable. */
class InternalReply implements OwedReply {
  sentAt = 0;
  readonly patient = false;
  constructor(private readonly conn: BackendConnection) {}
  settle(buf: Buffer, start: number, end: number): void {
    this.conn.internalReplied(buf, start, end);
  }
  fail(): void {
    // The connection is closing; its onClosed reports it.
  }
}

let nextConnectionId = 1;

export class BackendConnection implements ReplySink, Link {
  readonly id = nextConnectionId++;
  readonly socket: net.Socket;
  /** The database this connection has selected. */
  db: number;
  /** The RESP version it speaks. */
  protocol: 2 | 3;
  ready = false;
  /** The handshake succeeded at some point (a later close is a lost connection, not a failed connect). */
  wasReady = false;
  closed = false;
  /** When set, replies no request owes, and RESP3 pushes, go here. */
  sink: StreamSink | null = null;
  /** Report the next reply to the node (set while the node is unresponsive: an answer proves it is not). */
  reportAnswers = false;
  /** The node's id for this connection (CLIENT ID), or -1 when not asked. */
  clientId = -1;
  /** Who the connection is authenticated as: null for the node's own credentials (./identity.ts). */
  identity: BackendIdentity | null;
  private readonly framer = new ReplyFramer(this);
  private readonly owed = new Denque<OwedReply>();
  private readonly output: BatchedOutput;
  private failure: BackendFailure | null = null;
  private handshakeLeft = 0;
  private readonly readyWaiters: Array<{ resolve(): void; reject(err: Error): void }> = [];

  constructor(
    readonly options: ConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {
    this.db = options.db;
    this.protocol = options.protocol;
    this.identity = options.identity ?? null;
    const secure = options.tls !== undefined;
    // TLS or not is decided here, once: the rest of the connection sees a net.Socket.
    const socket = secure
      ? tls.connect({ host: options.host, port: options.port, ...options.tls })
      : net.connect({ host: options.host, port: options.port });
    this.socket = socket;
    this.output = new BatchedOutput(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    // connectTimeout bounds the TCP connect (and the TLS handshake: a node whose
    // certificate cannot be had is not reachable). A node that accepted the connection and
    // is slow to answer the Redis handshake is slow, not down: commandTimeout covers what
    // waits on it. Requests written before the TLS handshake completes wait in the socket.
    socket.setTimeout(options.connectTimeout);
    socket.once(secure ? 'secureConnect' : 'connect', () => socket.setTimeout(0));
    socket.on('data', (chunk: Buffer) => {
      markChunk();
      this.framer.push(chunk);
    });
    socket.on('timeout', () => this.teardown(`connect timeout after ${options.connectTimeout} ms`, 'unreachable'));
    socket.on('error', (err: NodeJS.ErrnoException) =>
      this.teardown(secure ? tlsErrorText(err) : err.code ?? err.message, this.wasReady ? 'lost' : 'unreachable'),
    );
    socket.on('close', () => this.teardown('connection closed', this.wasReady ? 'lost' : 'unreachable'));
    // The handshake: its replies come first; the connection is ready after the last one.
    const handshake: string[][] = [];
    const identity = this.identity;
    const username = identity === null ? options.username : identity.username;
    const password = identity === null ? options.password : identity.password;
    if (options.protocol === 3 || options.hello) {
      const auth = password !== undefined ? ['AUTH', username ?? 'default', password] : [];
      handshake.push(['HELLO', String(options.protocol), ...auth]);
    } else if (password !== undefined) {
      handshake.push(authWords(username, password));
    }
    if (options.db !== 0) handshake.push(['SELECT', String(options.db)]);
    if (options.wantClientId === true) handshake.push(['CLIENT', 'ID']);
    if (handshake.length === 0) handshake.push(['PING']);
    this.handshakeLeft = handshake.length;
    for (const command of handshake) this.sendInternal(encodeCommand(command));
  }

  /** Replies this connection still owes. */
  get owedCount(): number {
    return this.owed.length;
  }

  /** The oldest reply still owed, if any (for command timeouts and stall checks). */
  get oldest(): OwedReply | undefined {
    return this.owed.peekFront();
  }

  /** Bytes queued or unsent on the socket. */
  get unsentBytes(): number {
    return this.output.unsentBytes;
  }

  /**
   * Queues the request `buf[start, end)`; its reply will settle `reply`. On a closed
   * connection `reply` fails in a microtask (never re-entrantly).
   */
  send(reply: OwedReply, buf: Buffer, start: number, end: number): void {
    const failure = this.failure;
    if (failure !== null) {
      queueMicrotask(() => reply.fail(failure));
      return;
    }
    reply.sentAt = coarseNow();
    this.owed.push(reply);
    this.output.pushRange(buf, start, end);
  }

  /** Queues one of the proxy's own requests (handshake, SELECT, HELLO). */
  private sendInternal(request: Buffer): void {
    this.send(new InternalReply(this), request, 0, request.length);
  }

  /** Switches the connection to database `db` (a SELECT queued before whatever comes next). */
  select(db: number): void {
    if (db === this.db) return;
    this.db = db;
    this.sendInternal(encodeCommand(['SELECT', String(db)]));
  }

  /** Switches the RESP version (a HELLO queued before whatever comes next). */
  setProtocol(protocol: 2 | 3): void {
    if (protocol === this.protocol) return;
    this.protocol = protocol;
    this.sendInternal(encodeCommand(['HELLO', String(protocol)]));
  }

  /**
   * Switches the connection to `identity` (null: the node's own credentials) with an AUTH
   * queued before whatever comes next. Resolves once Redis accepted it; on a refusal the
   * connection is torn down and the promise rejects with Redis's text. Whoever must not
   * run a request as the previous identity waits for it (a lease being handed out or
   * pooled); a session switching its own lease need not (the previous identity was its own).
   * See https://redis.io/docs/latest/commands/auth/
   */
  authenticate(identity: BackendIdentity | null): Promise<void> {
    const words =
      identity === null ? authWords(this.options.username, this.options.password) : authWords(identity.username, identity.password);
    this.identity = identity;
    const request = encodeCommand(words);
    return new Promise<void>((resolve, reject) => this.send(new AuthReply(this, resolve, reject), request, 0, request.length));
  }

  /** Tells the connection that an AUTH the client ran on it (in a transaction or a stream) made it `identity`; nothing is sent. */
  assumeIdentity(identity: BackendIdentity | null): void {
    this.identity = identity;
  }

  /** Queues a request whose reply no one is owed: it goes to the sink (Pub/Sub and MONITOR mode). */
  write(request: Buffer): void {
    if (this.failure === null) this.output.push(request);
  }

  /** Tells the connection it is now on database `db` (a SELECT the client's transaction ran); nothing is sent. */
  assumeDb(db: number): void {
    this.db = db;
  }

  /** Tells the connection it now speaks RESP `protocol` (a HELLO written in a stream); nothing is sent. */
  assumeProtocol(protocol: 2 | 3): void {
    this.protocol = protocol;
  }

  /**
   * Resolves once the handshake has succeeded; rejects with the reason if the connection
   * closes first.
   */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.failure !== null) return Promise.reject(new Error(`${this.options.label} ${this.failure.detail}`));
    return new Promise((resolve, reject) => {
      this.readyWaiters.push({ resolve, reject });
    });
  }

  /** Closes the connection on purpose; every owed reply fails with `detail` (kind `closed` unless given). Idempotent. */
  destroy(detail: string, kind: BackendFailure['kind'] = 'closed'): void {
    this.teardown(detail, kind);
  }

  private teardown(detail: string, kind: BackendFailure['kind']): void {
    if (this.failure !== null) return;
    const failure: BackendFailure = { kind, node: this.options.label, detail };
    this.failure = failure;
    this.closed = true;
    this.ready = false;
    this.output.clear();
    this.socket.destroy();
    let reply: OwedReply | undefined;
    while ((reply = this.owed.shift()) !== undefined) reply.fail(failure);
    for (const w of this.readyWaiters.splice(0)) w.reject(new Error(`${this.options.label} ${detail}`));
    const sink = this.sink;
    this.sink = null;
    sink?.onStreamClosed(detail);
    this.events.onClosed(this, failure);
  }

  onReply(buf: Buffer, start: number, end: number): void {
    if (this.reportAnswers) {
      this.reportAnswers = false;
      this.events.onAnswered(this);
    }
    if (buf[start] === 0x3e && this.sink !== null) {
      // A RESP3 push (Pub/Sub message, tracking invalidation): out of band, not a reply.
      this.sink.onStreamReply(buf, start, end);
      return;
    }
    const reply = this.owed.shift();
    if (reply === undefined) {
      if (this.sink !== null) this.sink.onStreamReply(buf, start, end);
      else this.teardown('sent a reply nobody asked for', 'protocol');
      return;
    }
    reply.settle(buf, start, end);
  }

  onFramingError(message: string): void {
    this.teardown(`protocol error: ${message}`, 'protocol');
  }

  /** A reply to one of the proxy's own requests (handshake, SELECT, HELLO). */
  internalReplied(buf: Buffer, start: number, end: number): void {
    if (buf[start] === 0x2d) {
      // BUSY: alive, running a script; the requests owed here get Redis's own BUSY error.
      // A refused handshake (WRONGPASS, NOAUTH) is the node's failure, unless it refused a
      // client's user (identity): that says nothing about the node. A refused SELECT or HELLO later is ours.
      const text = buf.toString('latin1', start + 1, end - 2);
      if (text.startsWith('BUSY')) this.teardown(text, 'busy');
      else if (this.ready) this.teardown(`refused SELECT or HELLO: ${text}`, 'closed');
      else if (this.identity !== null) this.teardown(`refused user '${this.identity.username}': ${text}`, 'refused');
      else this.teardown(`refused the handshake: ${text}`, 'unreachable');
      return;
    }
    if (buf[start] === 0x3a && !this.ready && this.options.wantClientId === true) {
      this.clientId = Number(buf.toString('latin1', start + 1, end - 2));
    }
    if (this.handshakeLeft > 0 && --this.handshakeLeft === 0) {
      this.ready = true;
      this.wasReady = true;
      this.socket.setTimeout(0);
      this.events.onReady(this);
      for (const w of this.readyWaiters.splice(0)) w.resolve();
    }
  }
}

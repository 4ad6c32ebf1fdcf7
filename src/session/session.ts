/**
 * A session: one client connection and its state (db, name, auth, MULTI/WATCH, Pub/Sub).
 *
 * Every request takes a reply slot in request order; the reply, from whichever node,
 * fills it; leading filled slots are written to the client at once. Pipelined replies thus
 * come back in request order even when the requests went to different nodes.
 *
 * Ordering on the master: a session has requests in flight on one master connection at a
 * time. Moving to another (a dedicated connection, or another database's shared one)
 * waits until the replies owed on the old one have arrived (the parser is stalled), so a
 * client's own writes execute in the order it sent them.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  CMD_BLOCKING,
  CMD_NO_AUTH,
  CMD_READONLY,
  CMD_WRITE,
  lookupCommandBytes,
  resolveSubcommand,
  type CommandInfo,
} from '../commands/index.js';
import type { ListenerConfig } from '../config/types.js';
import type { BackendConnection, PassthroughSink } from '../backend/connection.js';
import type { Node } from '../backend/node.js';
import {
  ReplySlot,
  SLOT_DEDICATED,
  SLOT_MASTER,
  SLOT_READ,
  SLOT_RETRIED,
  type SlotOwner,
} from '../backend/reply-slot.js';
import { BatchedOutput } from '../io/batched-output.js';
import { RequestParser, type RequestHandler, type RequestView } from '../protocol/request-parser.js';
import { encodeBulk, encodeCommand, encodeError, encodeVerbatim } from '../protocol/resp.js';
import { coarseNow } from '../io/clock.js';
import type { Router } from '../routing/router.js';
import { LOCAL_COMMANDS, parseRedisInteger } from './local-commands.js';
import { Subscriptions, unsubscribedReplies } from './pubsub.js';
import {
  isBlockingCall,
  retryOnMaster,
  SCAN_FAMILY,
  SCRIPT_CALLS,
  SUBSCRIBES,
  UNSUBSCRIBES,
  wantsProxySection,
} from './command-traits.js';
import { ReplyQueue, SLOT_SILENT } from './reply-queue.js';

/** What a session needs from its listener. */
export interface SessionContext {
  readonly config: ListenerConfig;
  readonly router: Router;
  readonly master: Node;
  readonly logger: Logger;
  /** Number of databases of the master (`CONFIG GET databases`), for SELECT checks. */
  readonly databases: number;
  /** Every open session of the listener (CLIENT LIST, CLIENT KILL). */
  readonly sessions: Set<Session>;
  /** Commands refused on this listener (`denyCommands`: `config` or `config|set`). */
  readonly denied: ReadonlySet<string>;
  /** Called once when the session has closed. */
  onSessionClosed(session: Session): void;
  /** The `# Proxy` section added to INFO (lines without the header, CRLF-separated). */
  proxyInfo(): string;
  /** The master's replication offset at its last health check, and the coarse ms that check was sent (read-your-writes). */
  readonly masterOffset: number;
  readonly masterOffsetAt: number;
  /** Sends a command to every replica too (SCRIPT LOAD, SCRIPT FLUSH: Redis does not replicate them). */
  sendToReplicas(args: Buffer[]): void;
}

/** Session state bits that pin it to a dedicated master connection. */
export const STATE_TX = 1; // between MULTI and EXEC/DISCARD
export const STATE_WATCH = 2; // WATCH held
export const STATE_PUBSUB = 4; // subscribed to channels, patterns or shard channels
export const STATE_MONITOR = 8; // MONITOR
export const STATE_TRACKING = 16; // CLIENT TRACKING on
/** States in which the dedicated connection's output is streamed to the client (not one reply per request). */
const STATE_STREAM = STATE_PUBSUB | STATE_MONITOR;

let nextSessionId = 1;

export class Session implements RequestHandler, SlotOwner, PassthroughSink {
  readonly id = nextSessionId++;
  readonly createdAt = Date.now();
  /** Selected database. */
  db = 0;
  /** RESP version the client chose with HELLO. */
  protocol: 2 | 3 = 2;
  /** CLIENT SETNAME. */
  name = '';
  /** CLIENT SETINFO lib-name / lib-ver. */
  libName = '';
  libVersion = '';
  /** Authenticated (always true when the listener has no client auth). */
  authenticated: boolean;
  user = 'default';
  /** STATE_* bits. */
  state = 0;
  /** Name of the last command, for CLIENT LIST. */
  lastCommand = 'NULL';
  /** Coarse ms of the last request, for CLIENT LIST idle=. */
  lastActive = coarseNow();

  private readonly parser: RequestParser;
  private readonly output: BatchedOutput;
  /** Replies owed to the client, in request order. */
  private readonly replies: ReplyQueue;
  /** The master connection replies are owed on, and how many. */
  private masterConn: BackendConnection | null = null;
  private masterOwed = 0;
  /** Leased connection while the session holds connection state or blocks. */
  private dedicated: BackendConnection | null = null;
  private acquiring = false;
  private acquireError = '';
  /** The dedicated connection holds state the session dropped (RESET): close it instead of reusing it. */
  private dedicatedDirty = false;
  /** Database a SELECT queued inside MULTI switches to when EXEC succeeds (-1: none). */
  private txSelectDb = -1;
  /** The same, for an EXEC sent and not yet answered (-1: none, or a later SELECT overrides it). */
  private execSelectDb = -1;
  /** A command of the transaction was refused by the proxy (denyCommands): EXEC aborts it. */
  private txRejected = false;
  /** Commands queued in the transaction (CLIENT LIST multi=). */
  private txQueued = 0;
  /** Writes sent and not yet answered (read-your-writes reads go to the master meanwhile). */
  private writesInFlight = 0;
  /** Coarse ms of the session's last write, for read-your-writes (0: none). */
  private lastWriteAt = 0;
  /** Node a SCAN-family iteration runs on (cursors are only valid there). */
  private scanNode: Node | null = null;
  /** Subscription counts and the QUIT/RESET drain, in Pub/Sub mode. */
  private readonly subscriptions = new Subscriptions();
  /** Tracking was on before the CLIENT TRACKING ON in flight (a refusal leaves it on). */
  private trackingWasOn = false;
  /** CLIENT REPLY OFF, and CLIENT REPLY SKIP (for the next command). */
  private repliesOff = false;
  private skipNextReply = false;
  private readingPaused = false;
  private closing = false;
  closed = false;

  constructor(
    readonly socket: Socket,
    readonly ctx: SessionContext,
  ) {
    this.parser = new RequestParser(this);
    this.output = new BatchedOutput(socket);
    this.replies = new ReplyQueue(this, this.output, () => this.checkOutputLimit());
    const { config } = ctx;
    this.authenticated = config.password === undefined && (config.users === undefined || config.users.length === 0);
    this.parser.authRequired = !this.authenticated;
    socket.setNoDelay(true);
    if (config.clientIdleTimeout > 0) {
      socket.setTimeout(config.clientIdleTimeout);
      socket.on('timeout', () => {
        if (this.replies.empty && this.dedicated === null) this.close('idle timeout');
      });
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.updateFlow());
    socket.on('error', () => this.close('client error'));
    socket.on('close', () => this.close('client closed'));
  }

  /** Remote address `ip:port`. */
  get address(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  // ---- input -------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    this.lastActive = coarseNow();
    this.parser.feed(chunk);
    this.updateFlow();
  }

  onRequest(req: RequestView): boolean {
    if (this.closing) return true;
    let cmd = lookupCommandBytes(req.buf, req.starts[0]!, req.ends[0]!);
    if (cmd !== undefined && cmd.subcommands !== null && req.argc > 1) cmd = resolveSubcommand(cmd, req.argString(1));
    if (cmd !== undefined) this.lastCommand = cmd.name;
    if (this.acquireError !== '') {
      // The dedicated connection this request waited for could not be had.
      this.replyError(this.acquireError);
      this.acquireError = '';
      return true;
    }
    // Before AUTH only the commands Redis flags no_auth (AUTH, HELLO, QUIT, RESET) run.
    if (!this.authenticated && (cmd === undefined || !(cmd.flags & CMD_NO_AUTH))) {
      this.replyError('NOAUTH Authentication required.');
      return true;
    }
    if (this.dedicated !== null && this.dedicated.closed && !this.dedicatedLost()) return true;
    if (this.ctx.denied.size > 0 && this.isDenied(cmd, req)) {
      // Like a command Redis rejects inside MULTI: the transaction is then aborted at EXEC.
      if (this.state & STATE_TX) this.txRejected = true;
      return true;
    }
    if (this.state & STATE_STREAM) return this.dispatchInStream(req, cmd);
    if (this.state & STATE_TX) return this.dispatchInTransaction(req, cmd);
    if (cmd === undefined) {
      if (req.argIs(0, 'waitaof')) return this.sendWait(req);
      return this.sendToMaster(req, SLOT_WRITE);
    }

    const local = LOCAL_COMMANDS.get(cmd);
    if (local !== undefined) {
      local(this, req);
      return true;
    }
    const flags = cmd.flags;
    if (flags & CMD_BLOCKING && isBlockingCall(cmd, req)) return this.sendDedicated(req, 0, flags & CMD_WRITE ? SLOT_WRITE : 0);
    const stream = STREAM_STARTERS.get(cmd.name);
    if (stream !== undefined) return this.startStream(req, stream);
    if (UNSUBSCRIBES.has(cmd.name)) {
      // Not subscribed: Redis confirms each channel with a count of 0.
      this.reply(unsubscribedReplies(cmd.name, req.args().slice(1), this.protocol));
      return true;
    }
    switch (cmd.name) {
      case 'info':
        return this.sendToMaster(req, wantsProxySection(req) ? SLOT_INFO : 0);
      case 'script|load':
      case 'script|flush':
        this.ctx.sendToReplicas(req.args());
        return this.sendToMaster(req, 0);
      case 'wait':
      case 'waitaof':
        return this.sendWait(req);
      case 'client|tracking':
        return this.sendTracking(req);
      case 'multi':
        return this.sendDedicated(req, STATE_TX);
      case 'watch':
        return this.sendDedicated(req, STATE_WATCH);
      case 'unwatch':
        this.state &= ~STATE_WATCH;
        return this.sendToMaster(req, 0);
    }
    if (flags & CMD_READONLY) {
      if (this.dedicated === null) return this.sendRead(req, cmd);
      return this.sendToMaster(req, 0);
    }
    return this.sendToMaster(req, flags & CMD_WRITE || SCRIPT_CALLS.has(cmd.name) ? SLOT_WRITE : 0);
  }

  /**
   * The dedicated connection closed under the session. Holding MULTI, WATCH or tracking
   * state, the session closes after the replies it is owed (as a client of a Redis that
   * dropped it would see); otherwise the connection is just forgotten.
   * @returns true when the session goes on.
   */
  private dedicatedLost(): boolean {
    const dedicated = this.dedicated!;
    this.dedicated = null;
    this.ctx.master.release(dedicated, false);
    if (this.state & (STATE_TX | STATE_WATCH | STATE_TRACKING)) {
      this.closeAfterReplies();
      return false;
    }
    return true;
  }

  private isDenied(cmd: CommandInfo | undefined, req: RequestView): boolean {
    const name = cmd?.name ?? req.argString(0).toLowerCase();
    const bar = name.indexOf('|');
    if (!this.ctx.denied.has(name) && !(bar > 0 && this.ctx.denied.has(name.slice(0, bar)))) return false;
    const message = `ERR redis-proxy: command '${name}' is denied on listener '${this.ctx.config.name}' (its denyCommands setting)`;
    if (this.state & STATE_STREAM) this.replies.stream(encodeError(message));
    else this.replyError(message);
    return true;
  }

  /**
   * WAIT counts replicas that acknowledged the writes of the connection it runs on. The
   * session's writes went over shared connections, so WAIT runs on a dedicated one right
   * after a PUBLISH to a channel of the proxy's own (PUBLISH is replicated): its offset
   * covers every earlier write of the session. The PUBLISH's reply is not shown.
   * Source: https://redis.io/docs/latest/commands/wait/
   */
  private sendWait(req: RequestView): boolean {
    const conn = this.dedicated;
    if (conn === null) return this.sendDedicated(req, 0);
    if (!this.sendBytesToMaster(WAIT_MARKER, 0, WAIT_MARKER.length, SLOT_SILENT)) return false;
    return this.sendToMaster(req, 0);
  }

  /**
   * CLIENT TRACKING runs on a dedicated connection that then serves all of the session's
   * commands (the server tracks the keys read on that connection). REDIRECT names a proxy
   * session; it is resolved to that session's own dedicated connection (the one it
   * subscribed to `__redis__:invalidate` on). Source: https://redis.io/docs/latest/commands/client-tracking/
   */
  private sendTracking(req: RequestView): boolean {
    if (req.argc < 3) {
      this.replyError(`ERR wrong number of arguments for 'client|tracking' command`);
      return true;
    }
    const on = req.argIs(2, 'on');
    if (!on) {
      this.state &= ~STATE_TRACKING;
      return this.sendToMaster(req, 0);
    }
    let bytes: Buffer | null = null;
    for (let i = 3; i < req.argc - 1; i++) {
      if (!req.argIs(i, 'redirect')) continue;
      const id = Number(req.argString(i + 1));
      const target = [...this.ctx.sessions].find((x) => x.id === id);
      if (target === undefined) {
        this.replyError('ERR The client ID you want redirect to does not exist');
        return true;
      }
      const backendId = target.dedicatedClientId;
      if (backendId < 0) {
        this.replyError(
          'ERR redis-proxy: the REDIRECT target session has no connection of its own yet; it must SUBSCRIBE to __redis__:invalidate first',
        );
        return true;
      }
      const args = req.args();
      args[i + 1] = Buffer.from(String(backendId));
      bytes = encodeCommand(args);
    }
    if (this.dedicated === null) return this.sendDedicated(req, 0);
    this.trackingWasOn = (this.state & STATE_TRACKING) !== 0;
    this.state |= STATE_TRACKING;
    this.dedicated.passthrough = this;
    if (bytes === null) return this.sendToMaster(req, SLOT_TRACKING);
    return this.sendBytesToMaster(bytes, 0, bytes.length, SLOT_TRACKING);
  }

  /** The node's id of this session's dedicated connection, or -1. */
  get dedicatedClientId(): number {
    return this.dedicated?.clientId ?? -1;
  }

  /** CLIENT REPLY: `off` drops every reply until `on`; `skip` drops the next command's reply. */
  setReplyMode(mode: 'on' | 'off' | 'skip'): void {
    this.repliesOff = mode === 'off';
    this.skipNextReply = mode === 'skip';
  }

  /** Flags and counts for CLIENT LIST. */
  describe(): { flags: string; sub: number; ssub: number; multi: number } {
    let flags = '';
    if (this.state & STATE_TX) flags += 'x';
    if (this.state & STATE_PUBSUB) flags += 'P';
    if (this.state & STATE_MONITOR) flags += 'O';
    if (this.state & STATE_TRACKING) flags += 't';
    if (this.dedicated !== null && this.state === 0) flags += 'b';
    const { channels, shardChannels } = this.subscriptions;
    return { flags: flags || 'N', sub: channels, ssub: shardChannels, multi: this.state & STATE_TX ? this.txQueued : -1 };
  }

  onProtocolError(message: string): void {
    this.ctx.logger.info({ session: this.id, client: this.address, error: message }, 'client protocol error');
    this.replyError(`ERR ${message}`);
    this.closeAfterReplies();
  }

  /** Inside MULTI: everything is queued on the dedicated connection, as Redis queues it. */
  private dispatchInTransaction(req: RequestView, cmd: CommandInfo | undefined): boolean {
    const name = cmd?.name;
    if (name === 'quit' || name === 'reset') {
      LOCAL_COMMANDS.get(cmd!)!(this, req);
      return true;
    }
    if (name === 'exec' || name === 'discard') {
      this.state &= ~(STATE_TX | STATE_WATCH);
      this.txQueued = 0;
      const rejected = this.txRejected;
      this.txRejected = false;
      if (name === 'discard' || rejected) {
        this.txSelectDb = -1;
        if (rejected && name === 'exec') {
          // Redis discards a transaction in which a command was refused.
          this.sendInternal(DISCARD);
          this.replyError('EXECABORT Transaction discarded because of previous errors.');
          return true;
        }
        return this.sendToMaster(req, 0);
      }
      if (this.txSelectDb >= 0 && this.dedicated !== null) {
        // Until EXEC's reply, which database the connection is on is not known.
        this.execSelectDb = this.txSelectDb;
        this.dedicated.db = -1;
      }
      this.txSelectDb = -1;
      return this.sendToMaster(req, SLOT_EXEC | SLOT_WRITE);
    }
    if (name === 'select' && req.argc === 2) {
      // Only a SELECT that will succeed at EXEC switches the session's database.
      const db = parseRedisInteger(req.argString(1));
      if (db >= 0 && db < this.ctx.databases) this.txSelectDb = db;
    }
    this.txQueued++;
    return this.sendToMaster(req, 0);
  }

  /** Sends one of the proxy's own commands on the session's master connection; its reply is not shown. */
  private sendInternal(request: Buffer): void {
    this.sendBytesToMaster(request, 0, request.length, SLOT_SILENT);
  }

  /**
   * In Pub/Sub or MONITOR mode every command goes to the dedicated connection and Redis
   * answers it (including its own error for commands not allowed in that mode); only QUIT
   * and RESET are the proxy's.
   */
  private dispatchInStream(req: RequestView, cmd: CommandInfo | undefined): boolean {
    const name = cmd?.name;
    if (name === 'quit' || name === 'reset') {
      const subs = this.subscriptions;
      if (this.state & STATE_PUBSUB && !subs.draining) {
        // Replies to commands sent before (SUBSCRIBE confirmations) may still be on their
        // way: a PING with a marker goes behind them, and QUIT/RESET waits for its answer.
        this.dedicated!.write(subs.startDrain(this.id));
        return false;
      }
      if (subs.draining && !subs.isDrained) return false;
      this.endStream(true);
      LOCAL_COMMANDS.get(cmd!)!(this, req);
      return true;
    }
    this.dedicated!.write(req.raw());
    return true;
  }

  /** SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR: the dedicated connection's output is streamed to the client from now on. */
  private startStream(req: RequestView, state: number): boolean {
    const conn = this.dedicated;
    if (conn === null) {
      if (this.masterOwed === 0 && !this.acquiring) this.acquireDedicated();
      return false;
    }
    this.state |= state;
    this.replies.openStream();
    conn.passthrough = this;
    conn.write(req.raw());
    return true;
  }

  onPassthrough(buf: Buffer, start: number, end: number): void {
    if (this.closed) return;
    if (!(this.state & STATE_STREAM)) {
      // A tracking invalidation push: out of band, written between replies.
      this.output.pushRange(buf, start, end);
      return;
    }
    const subs = this.subscriptions;
    if (subs.takeDrainReply(buf, start, end)) {
      this.resumeParsing();
      return;
    }
    const ended = (this.state & STATE_PUBSUB) !== 0 && subs.observe(buf, start, end);
    this.replies.stream(buf, start, end);
    // With a QUIT or RESET waiting for the drain, that ends the stream instead.
    if (ended && !subs.draining) this.endStream(false);
  }

  onPassthroughClosed(reason: string): void {
    if (!(this.state & STATE_STREAM)) return;
    // Like a Redis server going away: the client reconnects and subscribes again.
    this.close(`stream connection lost: ${reason}`);
  }

  /**
   * Leaves Pub/Sub or MONITOR mode. `discard` closes the dedicated connection (QUIT,
   * RESET); otherwise (the last UNSUBSCRIBE) it is released when nothing else holds it.
   */
  private endStream(discard: boolean): void {
    if (!this.replies.streaming) return;
    this.state &= ~STATE_STREAM;
    this.subscriptions.reset();
    const conn = this.dedicated;
    if (conn !== null) {
      conn.passthrough = null;
      if (discard || this.state === 0) {
        this.dedicated = null;
        this.masterConn = null;
        this.ctx.master.release(conn, !discard && this.state === 0);
      }
    }
    this.replies.closeStream();
    this.afterWrite();
  }

  // ---- dispatch ----------------------------------------------------------------------

  /** The master connection a master-bound request of this session uses now. */
  private masterConnection(): BackendConnection {
    const dedicated = this.dedicated;
    if (dedicated !== null) return dedicated;
    const current = this.masterConn;
    if (this.masterOwed > 0 && current !== null && current.db === this.db && current.protocol === this.protocol && !current.closed) {
      return current;
    }
    return this.ctx.master.sharedConnection(this.db, this.protocol);
  }

  /** Sends to the master (dedicated connection when the session has one). False: stalled by the ordering barrier. */
  private sendToMaster(req: RequestView, flags: number): boolean {
    const master = this.ctx.master;
    if (!master.reachable && this.dedicated === null) {
      this.replyError(`ERR redis-proxy: ${master.label} is unreachable (${master.health.error || 'down'})`);
      return true;
    }
    return this.sendBytesToMaster(req.buf, req.start, req.end, flags);
  }

  /**
   * Sends `buf[start, end)` on the session's master connection with a reply slot carrying
   * `flags`. False, with nothing sent: the ordering barrier holds it until the replies
   * owed on another master connection have arrived.
   */
  private sendBytesToMaster(buf: Buffer, start: number, end: number, flags: number): boolean {
    const conn = this.masterConnection();
    if (conn !== this.masterConn && this.masterOwed > 0) return false;
    this.masterConn = conn;
    this.masterOwed++;
    if (flags & SLOT_WRITE && this.ctx.config.readYourWrites) this.writesInFlight++;
    const slot = this.newSlot(flags | SLOT_MASTER | (conn === this.dedicated ? SLOT_DEDICATED : 0));
    slot.node = this.ctx.master;
    conn.send(slot, buf, start, end);
    return true;
  }

  /**
   * Sends on a dedicated connection, leasing one first if needed; `state` is the
   * STATE_* bit the command starts (0 for a one-shot blocking command).
   */
  private sendDedicated(req: RequestView, state: number, slotFlags = 0): boolean {
    if (this.dedicated === null) {
      if (this.masterOwed > 0 || this.acquiring) return false;
      this.acquireDedicated();
      return false;
    }
    if (!this.sendToMaster(req, slotFlags)) return false;
    this.state |= state;
    return true;
  }

  private acquireDedicated(): void {
    this.acquiring = true;
    this.ctx.master.acquire(this.db, this.protocol).then(
      (conn) => {
        this.acquiring = false;
        if (this.closed) {
          this.ctx.master.release(conn, true);
          return;
        }
        this.dedicated = conn;
        this.resumeParsing();
      },
      (err: Error) => {
        this.acquiring = false;
        this.acquireError = `ERR redis-proxy: no connection to ${this.ctx.master.label} (${err.message})`;
        this.resumeParsing();
      },
    );
  }

  /** Sends a read to the node the read policy picks (SCAN cursors stay on their node). */
  private sendRead(req: RequestView, cmd: CommandInfo): boolean {
    const router = this.ctx.router;
    let node: Node | null;
    if (SCAN_FAMILY.has(cmd.name)) {
      if (this.scanNode === null || !this.scanNode.reachable) this.scanNode = router.readNode();
      node = this.scanNode;
    } else if (this.writesInFlight > 0) {
      node = this.ctx.master;
    } else if (this.lastWriteAt > 0) {
      // Read-your-writes: only a replica known to have the master's offset from after the write.
      node = this.ctx.masterOffsetAt > this.lastWriteAt ? router.readNodeAtLeast(this.ctx.masterOffset) : this.ctx.master;
    } else {
      node = router.readNode();
    }
    if (node === null) {
      this.replyError('ERR redis-proxy: no healthy replica to read from (readPolicy "replica")');
      return true;
    }
    if (node === this.ctx.master) return this.sendToMaster(req, SLOT_READ);
    const slot = this.newSlot(SLOT_READ);
    slot.node = node;
    slot.request = req.buf;
    slot.requestStart = req.start;
    slot.requestEnd = req.end;
    node.sharedConnection(this.db, this.protocol).send(slot, req.buf, req.start, req.end);
    return true;
  }

  // ---- replies -----------------------------------------------------------------------

  onSlotReply(slot: ReplySlot, buf: Buffer, start: number, end: number): void {
    const flags = slot.flags;
    // Redis refused CLIENT TRACKING ON: back to the state before it (before the release check below).
    if (flags & SLOT_TRACKING && buf[start] === 0x2d && !this.trackingWasOn) this.state &= ~STATE_TRACKING;
    if (flags & SLOT_MASTER) this.masterReplied();
    if (flags & SLOT_WRITE && this.ctx.config.readYourWrites) this.writeReplied();
    if (this.closed) return;
    if (flags & SLOT_READ && buf[start] === 0x2d && slot.node !== this.ctx.master && retryOnMaster(buf, start)) {
      // LOADING, MASTERDOWN, READONLY, NOSCRIPT from a replica: the master answers instead.
      this.resend(slot, this.ctx.master);
      return;
    }
    if (flags & SLOT_EXEC) this.execReplied(buf, start);
    if (flags & SLOT_INFO && (buf[start] === 0x24 || buf[start] === 0x3d)) {
      const reply = this.withProxySection(buf, start, end);
      this.fill(slot, reply, 0, reply.length);
      return;
    }
    this.fill(slot, buf, start, end);
  }

  onSlotError(slot: ReplySlot, message: string): void {
    if (slot.flags & SLOT_MASTER) this.masterReplied();
    if (slot.flags & SLOT_WRITE && this.ctx.config.readYourWrites) this.writeReplied();
    if (this.closed) return;
    if (slot.flags & SLOT_READ && !(slot.flags & SLOT_RETRIED) && slot.request !== null) {
      const other = this.ctx.router.readNode(slot.node);
      if (other !== null && other !== slot.node && other.reachable) {
        this.resend(slot, other);
        return;
      }
    }
    const reply = encodeError(message);
    this.fill(slot, reply, 0, reply.length);
    if (slot.flags & SLOT_DEDICATED && this.state & (STATE_TX | STATE_WATCH | STATE_TRACKING)) this.closeAfterReplies();
  }

  private resend(slot: ReplySlot, node: Node): void {
    slot.flags = (slot.flags | SLOT_RETRIED) & ~(SLOT_MASTER | SLOT_WRITE);
    slot.node = node;
    node.sharedConnection(this.db, this.protocol).send(slot, slot.request!, slot.requestStart, slot.requestEnd);
  }

  private masterReplied(): void {
    if (--this.masterOwed === 0) {
      const dedicated = this.dedicated;
      if (dedicated !== null && this.state === 0 && dedicated.owedCount === 0) {
        this.dedicated = null;
        this.ctx.master.release(dedicated, !this.dedicatedDirty);
        this.dedicatedDirty = false;
      }
      this.masterConn = null;
      if (this.parser.isStalled && !this.acquiring) this.resumeParsing();
    }
  }

  /** INFO's reply (a bulk string, or in RESP3 a verbatim `txt:` string) with the `# Proxy` section appended. */
  private withProxySection(buf: Buffer, start: number, end: number): Buffer {
    const verbatim = buf[start] === 0x3d;
    const header = buf.indexOf(0x0a, start) + 1 + (verbatim ? 4 : 0);
    let text = buf.toString('utf8', header, end - 2);
    text = `${text}${text.length > 0 ? '\r\n' : ''}# Proxy\r\n${this.ctx.proxyInfo()}\r\n`;
    return verbatim ? encodeVerbatim(text) : encodeBulk(text);
  }

  /** A write has been executed: reads may use replicas once a master offset taken after now is known. */
  private writeReplied(): void {
    this.writesInFlight--;
    this.lastWriteAt = coarseNow();
  }

  private execReplied(buf: Buffer, start: number): void {
    const db = this.execSelectDb;
    this.execSelectDb = -1;
    // EXEC ran the queued SELECT only when it returned an array (not nil, not an error).
    if (db < 0 || buf[start] !== 0x2a || buf[start + 1] === 0x2d) return;
    this.db = db;
    if (this.dedicated !== null && this.dedicated.db === -1) this.dedicated.db = db;
  }

  // ---- reply slots and output ----------------------------------------------------------

  /** The reply slot of the request being dispatched (silent under CLIENT REPLY OFF or SKIP). */
  private newSlot(flags: number): ReplySlot {
    if (this.repliesOff || this.skipNextReply) {
      flags |= SLOT_SILENT;
      this.skipNextReply = false;
    }
    return this.replies.push(flags);
  }

  /** Fills a slot with `buf[start, end)`; leading filled slots go to the client. */
  private fill(slot: ReplySlot, buf: Buffer, start: number, end: number): void {
    this.replies.fill(slot, buf, start, end);
    this.afterWrite();
  }

  /** After replies were written: reading may resume, a closing session may end. */
  private afterWrite(): void {
    if (this.readingPaused) this.updateFlow();
    if (this.closing && this.replies.empty) this.endAfterFlush();
  }

  /** Answers the current request from the proxy itself, in order. */
  reply(buf: Buffer): void {
    this.fill(this.newSlot(0), buf, 0, buf.length);
  }

  /** Answers the current request with an error; `message` carries its prefix (`ERR ...`). */
  replyError(message: string): void {
    this.reply(encodeError(message));
  }

  private checkOutputLimit(): void {
    const limit = this.ctx.config.clientOutputLimit;
    if (limit > 0 && this.output.unsentBytes > limit) {
      this.ctx.logger.warn({ session: this.id, client: this.address, limit }, 'client output limit reached, closing');
      this.close('output limit');
    }
  }

  // ---- flow control and lifecycle ------------------------------------------------------

  private resumeParsing(): void {
    if (this.closed) return;
    this.parser.resume();
    this.updateFlow();
  }

  /** Pauses reading from the client while it has too much in flight or unsent, or is stalled. */
  private updateFlow(): void {
    if (this.closed) return;
    const { maxPipeline, clientOutputPause } = this.ctx.config;
    const pause =
      this.parser.isStalled || this.closing || this.replies.inflight >= maxPipeline || this.output.unsentBytes >= clientOutputPause;
    if (pause && !this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    } else if (!pause && this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    }
  }

  /** Stops reading; the connection closes once every earlier reply has been written. */
  closeAfterReplies(): void {
    // A Pub/Sub or MONITOR stream has no last reply: it ends here.
    this.endStream(true);
    this.closing = true;
    this.parser.close();
    this.updateFlow();
    if (this.replies.empty) this.endAfterFlush();
  }

  private endAfterFlush(): void {
    this.output.flush();
    this.socket.end();
  }

  /** Closes the session now; replies still owed are dropped, a dedicated connection is released or closed. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.parser.close();
    this.output.clear();
    if (!this.socket.destroyed) this.socket.destroy();
    const dedicated = this.dedicated;
    if (dedicated !== null) {
      this.dedicated = null;
      this.ctx.master.release(dedicated, this.state === 0 && dedicated.owedCount === 0);
    }
    this.replies.clear();
    this.ctx.logger.debug({ session: this.id, reason }, 'session closed');
    this.ctx.onSessionClosed(this);
  }

  // ---- for local commands --------------------------------------------------------------

  /** Switches the session's database (every connection it uses from now on). */
  selectDb(db: number): void {
    this.db = db;
    this.execSelectDb = -1; // this SELECT comes after any EXEC in flight
    this.dedicated?.select(db);
  }

  /** Switches the session's RESP version (HELLO): its requests go over connections speaking it. */
  setProtocol(protocol: 2 | 3): void {
    this.protocol = protocol;
    this.dedicated?.setProtocol(protocol);
  }

  /** Clears all session state as RESET does. */
  reset(): void {
    this.db = 0;
    this.name = '';
    this.scanNode = null;
    this.txSelectDb = -1;
    this.execSelectDb = -1;
    this.txRejected = false;
    this.txQueued = 0;
    if (this.state !== 0 && this.dedicated !== null) {
      // MULTI or WATCH state lives on that connection: it is closed, not reused.
      if (this.masterOwed === 0) {
        this.ctx.master.release(this.dedicated, false);
        this.dedicated = null;
      } else {
        this.dedicatedDirty = true;
      }
    }
    this.state = 0;
    this.setProtocol(2);
    this.setReplyMode('on');
    this.authenticated = this.ctx.config.password === undefined && (this.ctx.config.users ?? []).length === 0;
    this.parser.authRequired = !this.authenticated;
  }
}

/** Slot flags of the session's own (ReplySlot leaves bits from 64 up to its owner). */
const SLOT_EXEC = 64; // EXEC's reply (a SELECT queued in the transaction takes effect)
const SLOT_INFO = 256; // INFO's reply gets the # Proxy section
const SLOT_WRITE = 512; // a write (read-your-writes waits for it)
const SLOT_TRACKING = 1024; // CLIENT TRACKING ON (an error reply means tracking is off)

const DISCARD = encodeCommand(['DISCARD']);

/** The replicated no-op that carries a session's replication offset onto its WAIT connection. */
const WAIT_MARKER = encodeCommand(['PUBLISH', '__redis-proxy__:wait', '']);


/** Commands that put the session into a streaming mode, and which. */
const STREAM_STARTERS = new Map<string, number>([
  ...[...SUBSCRIBES].map((name): [string, number] => [name, STATE_PUBSUB]),
  ['monitor', STATE_MONITOR],
]);

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
  CMD_READONLY,
  lookupCommand,
  resolveSubcommand,
  type CommandInfo,
} from '../commands/index.js';
import type { ListenerConfig } from '../config/types.js';
import type { BackendConnection } from '../backend/connection.js';
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
import { encodeError } from '../protocol/resp.js';
import type { Router } from '../routing/router.js';
import { LOCAL_COMMANDS } from './local-commands.js';

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
  /** Called once when the session has closed. */
  onSessionClosed(session: Session): void;
}

/** Session state bits that pin it to a dedicated master connection. */
export const STATE_TX = 1; // between MULTI and EXEC/DISCARD
export const STATE_WATCH = 2; // WATCH held

let nextSessionId = 1;

export class Session implements RequestHandler, SlotOwner {
  readonly id = nextSessionId++;
  readonly createdAt = Date.now();
  /** Selected database. */
  db = 0;
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

  private readonly parser: RequestParser;
  private readonly output: BatchedOutput;
  private head: ReplySlot | null = null;
  private tail: ReplySlot | null = null;
  /** Replies owed to the client (slots not yet written). */
  private inflight = 0;
  /** The master connection replies are owed on, and how many. */
  private masterConn: BackendConnection | null = null;
  private masterOwed = 0;
  /** Leased connection while the session holds connection state or blocks. */
  private dedicated: BackendConnection | null = null;
  private acquiring = false;
  private acquireError = '';
  /** Database a SELECT queued inside MULTI switches to when EXEC succeeds (-1: none). */
  private txSelectDb = -1;
  /** Node a SCAN-family iteration runs on (cursors are only valid there). */
  private scanNode: Node | null = null;
  private readingPaused = false;
  private closing = false;
  closed = false;

  constructor(
    readonly socket: Socket,
    readonly ctx: SessionContext,
  ) {
    this.parser = new RequestParser(this);
    this.output = new BatchedOutput(socket);
    const { config } = ctx;
    this.authenticated = config.password === undefined && (config.users === undefined || config.users.length === 0);
    this.parser.authRequired = !this.authenticated;
    socket.setNoDelay(true);
    if (config.clientIdleTimeout > 0) {
      socket.setTimeout(config.clientIdleTimeout);
      socket.on('timeout', () => {
        if (this.inflight === 0 && this.dedicated === null) this.close('idle timeout');
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

  /** True while the session holds a dedicated connection. */
  get hasDedicated(): boolean {
    return this.dedicated !== null;
  }

  // ---- input -------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    this.parser.feed(chunk);
    this.updateFlow();
  }

  onRequest(req: RequestView): boolean {
    if (this.closing) return true;
    let cmd = lookupCommand(req.argString(0));
    if (cmd !== undefined && cmd.subcommands !== null && req.argc > 1) cmd = resolveSubcommand(cmd, req.argString(1));

    if (this.acquireError !== '') {
      // The dedicated connection this request waited for could not be had.
      this.replyError(this.acquireError);
      this.acquireError = '';
      return true;
    }
    if (!this.authenticated && (cmd === undefined || !LOCAL_COMMANDS.has(cmd))) {
      this.replyError('NOAUTH Authentication required.');
      return true;
    }
    if (this.state & STATE_TX) return this.dispatchInTransaction(req, cmd);
    if (cmd === undefined) return this.sendToMaster(req, 0);

    const local = LOCAL_COMMANDS.get(cmd);
    if (local !== undefined) {
      local(this, req);
      return true;
    }
    const flags = cmd.flags;
    if (flags & CMD_BLOCKING || cmd.name === 'wait') {
      if (isBlockingCall(cmd, req)) return this.sendDedicated(req, 0);
    }
    if (cmd.name === 'multi' || cmd.name === 'watch') return this.sendDedicated(req, cmd.name === 'multi' ? STATE_TX : STATE_WATCH);
    if (cmd.name === 'unwatch' && this.state & STATE_WATCH) {
      this.state &= ~STATE_WATCH;
      return this.sendToMaster(req, 0);
    }
    if (flags & CMD_READONLY && this.dedicated === null) return this.sendRead(req, cmd);
    return this.sendToMaster(req, 0);
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
      if (name === 'discard') this.txSelectDb = -1;
      return this.sendToMaster(req, name === 'exec' ? SLOT_EXEC : 0);
    }
    if (name === 'select' && req.argc === 2) {
      const db = Number(req.argString(1));
      if (Number.isInteger(db)) this.txSelectDb = db;
    }
    return this.sendToMaster(req, 0);
  }

  // ---- dispatch ----------------------------------------------------------------------

  /** The master connection a master-bound request of this session uses now. */
  private masterConnection(): BackendConnection {
    if (this.dedicated !== null) return this.dedicated;
    const current = this.masterConn;
    if (this.masterOwed > 0 && current !== null && current.db === this.db && !current.closed) return current;
    return this.ctx.master.sharedConnection(this.db);
  }

  /** Sends to the master (dedicated connection when the session has one). False: stalled by the ordering barrier. */
  private sendToMaster(req: RequestView, flags: number): boolean {
    const master = this.ctx.master;
    if (!master.reachable && this.dedicated === null) {
      this.replyError(`ERR redis-proxy: ${master.label} is unreachable (${master.health.error || 'down'})`);
      return true;
    }
    const conn = this.masterConnection();
    if (conn !== this.masterConn && this.masterOwed > 0) return false;
    this.masterConn = conn;
    this.masterOwed++;
    const slot = this.newSlot(flags | SLOT_MASTER | (conn === this.dedicated ? SLOT_DEDICATED : 0));
    slot.node = master;
    conn.send(slot, req.raw());
    return true;
  }

  /**
   * Sends on a dedicated connection, leasing one first if needed; `state` is the
   * STATE_* bit the command starts (0 for a one-shot blocking command).
   */
  private sendDedicated(req: RequestView, state: number): boolean {
    if (this.dedicated === null) {
      if (this.masterOwed > 0 || this.acquiring) return false;
      this.acquireDedicated();
      return false;
    }
    if (!this.sendToMaster(req, 0)) return false;
    this.state |= state;
    return true;
  }

  private acquireDedicated(): void {
    this.acquiring = true;
    this.ctx.master.acquire(this.db).then(
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
    slot.request = req.raw();
    node.sharedConnection(this.db).send(slot, slot.request);
    return true;
  }

  // ---- replies -----------------------------------------------------------------------

  onSlotReply(slot: ReplySlot, buf: Buffer, start: number, end: number): void {
    const flags = slot.flags;
    if (flags & SLOT_MASTER) this.masterReplied();
    if (this.closed) return;
    if (flags & SLOT_READ && buf[start] === 0x2d && slot.node !== this.ctx.master && retryOnMaster(buf, start)) {
      // LOADING, MASTERDOWN, READONLY, NOSCRIPT from a replica: the master answers instead.
      this.resend(slot, this.ctx.master);
      return;
    }
    if (flags & SLOT_EXEC) this.execReplied(buf, start);
    this.fill(slot, start === 0 && end === buf.length ? buf : buf.subarray(start, end));
  }

  onSlotError(slot: ReplySlot, message: string): void {
    if (slot.flags & SLOT_MASTER) this.masterReplied();
    if (this.closed) return;
    if (slot.flags & SLOT_READ && !(slot.flags & SLOT_RETRIED) && slot.request !== null) {
      const other = this.ctx.router.readNode(slot.node);
      if (other !== null && other !== slot.node && other.reachable) {
        this.resend(slot, other);
        return;
      }
    }
    this.fill(slot, encodeError(message));
  }

  private resend(slot: ReplySlot, node: Node): void {
    slot.flags = (slot.flags | SLOT_RETRIED) & ~SLOT_MASTER;
    slot.node = node;
    node.sharedConnection(this.db).send(slot, slot.request!);
  }

  private masterReplied(): void {
    if (--this.masterOwed === 0) {
      const dedicated = this.dedicated;
      if (dedicated !== null && this.state === 0 && dedicated.owedCount === 0) {
        this.dedicated = null;
        this.ctx.master.release(dedicated, true);
      }
      this.masterConn = null;
      if (this.parser.isStalled && !this.acquiring) this.resumeParsing();
    }
  }

  private execReplied(buf: Buffer, start: number): void {
    // EXEC ran the queued SELECT only when it returned an array (not nil, not an error).
    if (this.txSelectDb >= 0 && buf[start] === 0x2a && buf[start + 1] !== 0x2d) {
      this.db = this.txSelectDb;
      if (this.dedicated !== null) this.dedicated.db = this.txSelectDb;
    }
    this.txSelectDb = -1;
  }

  // ---- reply slots and output ----------------------------------------------------------

  private newSlot(flags: number): ReplySlot {
    const slot = new ReplySlot(this, flags);
    if (this.tail === null) this.head = slot;
    else this.tail.next = slot;
    this.tail = slot;
    this.inflight++;
    return slot;
  }

  private fill(slot: ReplySlot, reply: Buffer): void {
    if (slot !== this.head) {
      slot.reply = reply;
      slot.done = true;
      return;
    }
    this.write(reply);
    let next = slot.next;
    let written = 1;
    while (next !== null && next.done) {
      this.write(next.reply!);
      next.reply = null;
      next = next.next;
      written++;
    }
    this.head = next;
    if (next === null) this.tail = null;
    this.inflight -= written;
    if (this.readingPaused) this.updateFlow();
    if (this.closing && next === null) this.endAfterFlush();
  }

  /** Answers the current request from the proxy itself, in order. */
  reply(buf: Buffer): void {
    this.fill(this.newSlot(0), buf);
  }

  /** Answers the current request with an error; `message` carries its prefix (`ERR ...`). */
  replyError(message: string): void {
    this.reply(encodeError(message));
  }

  private write(buf: Buffer): void {
    this.output.push(buf);
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
      this.parser.isStalled || this.closing || this.inflight >= maxPipeline || this.output.unsentBytes >= clientOutputPause;
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
    this.closing = true;
    this.parser.close();
    this.updateFlow();
    if (this.head === null) this.endAfterFlush();
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
    this.head = this.tail = null;
    this.ctx.logger.debug({ session: this.id, reason }, 'session closed');
    this.ctx.onSessionClosed(this);
  }

  // ---- for local commands --------------------------------------------------------------

  /** Switches the session's database (every connection it uses from now on). */
  selectDb(db: number): void {
    this.db = db;
    this.dedicated?.select(db);
  }

  /** Clears all session state as RESET does. */
  reset(): void {
    this.db = 0;
    this.name = '';
    this.scanNode = null;
    if (this.state !== 0 && this.dedicated !== null && this.masterOwed === 0) {
      const dedicated = this.dedicated;
      this.dedicated = null;
      this.ctx.master.release(dedicated, false);
    }
    this.state = 0;
    this.authenticated = this.ctx.config.password === undefined && (this.ctx.config.users ?? []).length === 0;
    this.parser.authRequired = !this.authenticated;
  }
}

/** Slot flag: the reply is EXEC's (the session inspects it). */
const SLOT_EXEC = 64;

const SCAN_FAMILY = new Set(['scan', 'sscan', 'hscan', 'zscan']);

/**
 * True when this call of a blocking-capable command can block: XREAD/XREADGROUP only
 * with BLOCK; WAIT always; the B* commands always.
 */
function isBlockingCall(cmd: CommandInfo, req: RequestView): boolean {
  if (cmd.name !== 'xread' && cmd.name !== 'xreadgroup') return true;
  for (let i = 1; i < req.argc; i++) {
    if (req.argIs(i, 'block')) return true;
    if (req.argIs(i, 'streams')) return false;
  }
  return false;
}

const RETRY_ON_MASTER = ['-LOADING', '-MASTERDOWN', '-READONLY', '-NOSCRIPT'];

/** True for replica errors that mean "ask the master instead". */
function retryOnMaster(buf: Buffer, start: number): boolean {
  for (const prefix of RETRY_ON_MASTER) {
    if (buf.toString('latin1', start, start + prefix.length) === prefix) return true;
  }
  return false;
}

/**
 * A session: one client connection and its state (db, RESP version, name, auth, MULTI/WATCH,
 * Pub/Sub, MONITOR, tracking, reply mode).
 *
 * Every request takes a reply slot in request order; the reply, from whichever node,
 * fills it; leading filled slots are written to the client at once (./reply-queue.ts).
 * Master-bound requests go through the session's MasterChannel (the ordering barrier and
 * the lease, ./master-channel.ts); reads go to the node the read policy picks.
 *
 * Dispatch (`onRequest`) is a few guards and one switch over the command's route
 * (src/commands/routes.ts); the modes that change how requests are handled (a
 * transaction, a Pub/Sub or MONITOR stream) have their own dispatch. A request that cannot
 * go yet returns false: the parser keeps it and the session stops reading; whatever
 * clears the obstacle calls {@link Session.wake}, which resumes parsing in a microtask,
 * never from inside a backend callback.
 *
 * Identity: on a listener with `authentication: "redis"` the session runs as a Redis ACL
 * user (src/backend/identity.ts): Redis's `default` until it logs in, then the user the
 * master accepted. Every backend connection it uses (shared ones to the master and the
 * replicas, its lease, the priority connection) is authenticated as that user, so Redis
 * enforces its ACL. With `"proxy"` the identity is null: the listener's backend user.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  CMD_NO_AUTH,
  lookupCommand,
  lookupCommandBytes,
  resolveSubcommand,
  ROUTE_ALL_NODES,
  ROUTE_BLOCKING,
  ROUTE_BUSY,
  ROUTE_CACHING,
  ROUTE_INFO,
  ROUTE_LOCAL,
  ROUTE_MASTER,
  ROUTE_MONITOR,
  ROUTE_MULTI,
  ROUTE_READ,
  ROUTE_REFUSED,
  ROUTE_SCAN,
  ROUTE_SUBSCRIBE,
  ROUTE_TRACKING,
  ROUTE_UNBLOCK,
  ROUTE_UNSUBSCRIBE,
  ROUTE_UNWATCH,
  ROUTE_WAIT,
  ROUTE_WATCH,
  ROUTE_XREAD,
  TRAIT_CONNECTION_STATE,
  TRAIT_GUARDED,
  TRAIT_SCRIPT,
  TRAIT_WRITE,
  type CommandInfo,
} from '../commands/index.js';
import type { ListenerConfig } from '../config/types.js';
import { authWords, type BackendIdentity } from '../backend/identity.js';
import { LEASE_MONITOR, LEASE_PUBSUB, LEASE_TRACKING, LEASE_TX, LEASE_WATCH, type Lease } from '../backend/lease.js';
import type { BackendFailure } from '../backend/link.js';
import type { Node } from '../backend/node.js';
import { BatchedOutput } from '../io/batched-output.js';
import { chunkTime, coarseNow, markChunk, timingOn } from '../io/clock.js';
import { aggregateElements } from '../protocol/reply-elements.js';
import { RequestParser, RequestView, type RequestHandler } from '../protocol/request-parser.js';
import { encodeBulk, encodeCommand, encodeError, encodeInteger, encodeVerbatim } from '../protocol/resp.js';
import type { Router } from '../routing/router.js';
import type { DenyList } from '../server/deny-list.js';
import type { RedisUsers } from '../server/redis-users.js';
import type { CausalReads } from '../consistency/causal-reads.js';
import type { CachedReads } from '../cache/cached-reads.js';
import { newClientId, REMOTE_NO_SESSION, redirectArg, redirectTarget, unblockRequest, withClientId } from './client-ids.js';
import { SessionWrites } from './session-writes.js';
import {
  ERROR_AUTH,
  ERROR_BUSY,
  ERROR_DENIED,
  ERROR_NODE_DOWN,
  ERROR_PROTOCOL,
  ERROR_TIMEOUT,
  SERVED_BY_MASTER,
  SERVED_BY_PROXY,
  SERVED_BY_REPLICA,
} from '../metrics/stats.js';
import { isBlockingCall, retryOnMaster, wantsProxySection } from './command-traits.js';
import {
  demotedMasterText,
  failureText,
  HELLO_SECOND_AUTH_IN_MULTI,
  loginUncheckedText,
  NO_REDIRECT_TARGET,
  nopermText,
  permissionUncheckedText,
  NO_REPLICA,
  noConnectionText,
  replicationRefusedText,
  unreachableText,
  waitMarkerRefusedText,
  wrongArityText,
} from './errors.js';
import { helloAuthOption, LOCAL_COMMANDS, parseRedisInteger } from './local-commands.js';
import { MasterChannel, type ChannelOwner } from './master-channel.js';
import { unsubscribedReplies } from './pubsub.js';
import { ReplyQueue } from './reply-queue.js';
import {
  ReplySlot,
  MAX_READ_RETRIES,
  SLOT_DEDICATED,
  SLOT_EXEC,
  SLOT_FANOUT,
  SLOT_INFO,
  SLOT_MASTER,
  SLOT_PATIENT,
  SLOT_READ,
  SLOT_SILENT,
  SLOT_TRACKING,
  SLOT_WAIT,
  SLOT_WAIT_MARKER,
  SLOT_WRITE,
  type SlotOwner,
} from './reply-slot.js';
import type { LocalContext, LocalSession } from './session-api.js';
import { MARK_DROP_NEXT, MARK_DROP_OFF, MARK_DROP_ON, MARK_END, MARK_HALT, MARK_REPLY, Stream } from './stream.js';
import { PLACEHOLDER, Transaction, type TransactionHost } from './transaction.js';

/** What a session needs from its listener. */
export interface SessionContext extends LocalContext {
  readonly config: ListenerConfig;
  readonly router: Router;
  readonly master: Node;
  readonly logger: Logger;
  /** Every open session of the listener (CLIENT LIST, CLIENT KILL). */
  readonly sessions: Set<Session>;
  /** The session with this id (CLIENT ID), if open. */
  sessionById(id: number): Session | undefined;
  /** What the listener refuses (denyCommands, topology commands, scripts). */
  readonly denyList: DenyList;
  /** Called once when the session has closed. */
  onSessionClosed(session: Session): void;
  /** The `# Proxy` section added to INFO (lines without the header, CRLF-separated). */
  proxyInfo(): string;
  /** Causal reads (the listener's `causalReads`). */
  readonly causal: CausalReads;
  /** Sends a command to every replica too (SCRIPT LOAD, SCRIPT FLUSH: Redis does not replicate them). */
  sendToReplicas(args: Buffer[]): void;
  /** The Redis ACL users sessions log in as (`authentication: "redis"`). */
  readonly redisUsers: RedisUsers;
  /** The listener's near cache (null: none); RESP GET uses it with `nearCache`, every write drops its keys. */
  readonly nearCache: CachedReads | null;
}

/** Session state bits; any of them keeps the session on its lease. */
export const STATE_TX = 1; // between MULTI and EXEC/DISCARD
export const STATE_WATCH = 2; // WATCH held
export const STATE_PUBSUB = 4; // subscribed to channels, patterns or shard channels
export const STATE_MONITOR = 8; // MONITOR
export const STATE_TRACKING = 16; // CLIENT TRACKING on
export const STATE_REDIRECT_TARGET = 32; // another session's tracking REDIRECT names this one
/** States in which the lease's output streams to the client (not one reply per request). */
const STATE_STREAM = STATE_PUBSUB | STATE_MONITOR;

/** Lifecycle: reading and dispatching; closing after the replies owed; closed. */
const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;

/** What {@link Session.leaseFor} returns when there is no lease yet. */
const LEASE_WAIT = 0;
const LEASE_FAILED = 1;

/**
 * Locally answered commands that reach other sessions (Redis flags them @admin
 * @dangerous): a session running as a Redis user may run them only if Redis's ACL lets
 * that user (checked with ACL DRYRUN on the master, per request).
 */
const CROSS_SESSION = new Set(['client|list', 'client|kill']);

/** The replicated no-op that carries a session's replication offset onto its WAIT connection. */
const WAIT_MARKER = encodeCommand(['PUBLISH', '__redis-proxy__:wait', '']);
const DISCARD = encodeCommand(['DISCARD']);
const EXECABORT = 'EXECABORT Transaction discarded because of previous errors.';

export class Session implements RequestHandler, SlotOwner, ChannelOwner, LocalSession, TransactionHost {
  readonly id = newClientId();
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
  user = 'default';
  /** STATE_* bits. */
  state = 0;
  /** Name of the last command, for CLIENT LIST. */
  lastCommand = 'NULL';
  /** Who answers the request being dispatched (SERVED_BY_*, for the per-command counters). */
  private servedBy = SERVED_BY_MASTER;
  /** Coarse ms of the last request, for CLIENT LIST idle=. */
  lastActive = coarseNow();
  /** CLIENT REPLY OFF, and CLIENT REPLY SKIP (for the next command). */
  repliesOff = false;
  private skipNextReply = false;
  /** Session id of the tracking REDIRECT target: -1 tracking off, 0 on without redirect. */
  trackingRedirect = -1;

  private readonly parser: RequestParser;
  private readonly output: BatchedOutput;
  /** Replies owed to the client, in request order. */
  private readonly replies: ReplyQueue;
  /** The way to the master: ordering barrier, shared connections, the lease. */
  private readonly channel: MasterChannel;
  private readonly tx = new Transaction();
  /** Pub/Sub or MONITOR bookkeeping while streaming. */
  private stream: Stream | null = null;
  private isAuthenticated: boolean;
  /**
   * Who the session's commands run as on Redis: null for the listener's backend identity
   * (`authentication: "proxy"`); with `"redis"`, the user it logged in as (Redis's
   * `default` before that). Counted in RedisUsers while held.
   */
  private identity: BackendIdentity | null;
  /** EXEC's reply must be applied before the next request (the transaction changed connection state). */
  private awaitingExec = false;
  /**
   * A login or a permission is being checked by the master, or a local command waits for
   * the other workers' answers: no further request is dispatched until it is answered.
   */
  private localPending = false;
  /** The master's verdict on a CROSS_SESSION command about to be re-dispatched: '' permitted, else the error to reply. */
  private verdict: { readonly name: string; readonly error: string } | null = null;
  /** SCRIPT LOAD / FLUSH sent as a Redis user (SLOT_FANOUT): their arguments, for the replicas once the master accepted them. */
  private fanouts: Buffer[][] | null = null;
  /** Redis's refusal of the WAIT marker just answered: the WAIT after it gets an error instead of a count that would not cover the session's writes. */
  private waitMarkerError: string | null = null;
  /** The session's writes in flight and last acknowledged one, for causal reads. */
  private readonly writes: SessionWrites;
  /** Node a SCAN-family iteration runs on (cursors are only valid there). */
  private scanNode: Node | null = null;
  /** Tracking state before the CLIENT TRACKING ON in flight (a refusal restores it). */
  private trackingBefore = -1;
  /** The session whose lease this one asked for, to REDIRECT tracking to it. */
  private redirectAsked: Session | null = null;
  /** Sessions waiting for this one's lease (their CLIENT TRACKING REDIRECT names it). */
  private redirectWaiters: Array<{ wake(): void }> = [];
  /**
   * A session id asked of the other workers (CLIENT UNBLOCK, CLIENT TRACKING REDIRECT on
   * a session another worker serves): `clientId` null while asked, then their answer
   * (see {@link remoteLeaseId}).
   */
  private remoteAsk: { id: number; redirect: boolean; clientId: number | null } | null = null;
  /** While a transaction's local command runs at EXEC: its replies are captured here. */
  private capture: Buffer[] | null = null;
  private phase = OPEN;
  private readingPaused = false;
  private pumpQueued = false;
  private readonly lookupSession = (id: number): Session | undefined => this.ctx.sessionById(id);
  private readonly pump = (): void => {
    this.pumpQueued = false;
    if (this.phase !== OPEN) return;
    if (this.parser.isStalled) this.parser.resume();
    this.updateFlow();
  };

  constructor(
    readonly socket: Socket,
    readonly ctx: SessionContext,
  ) {
    this.parser = new RequestParser(this);
    this.output = new BatchedOutput(socket);
    this.replies = new ReplyQueue(this, this.output, ctx.config.clientOutputLimit);
    this.channel = new MasterChannel(ctx, this);
    this.writes = new SessionWrites(ctx.causal, ctx);
    this.identity = this.identityBeforeLogin();
    this.ctx.redisUsers.retain(this.identity);
    this.channel.setIdentity(this.identity);
    this.isAuthenticated = !this.authRequired;
    this.parser.authRequired = this.authRequired;
    socket.setNoDelay(true);
    socket.setTimeout(ctx.config.clientIdleTimeout);
    socket.on('timeout', () => {
      if (this.replies.empty && this.channel.lease === null) this.close('idle timeout');
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.updateFlow());
    socket.on('error', () => this.close('client error'));
    socket.on('close', () => this.close('client closed'));
  }

  // ---- what others see of the session ------------------------------------------------

  /** Bytes read from the client so far. */
  get bytesIn(): number {
    return this.socket.bytesRead;
  }

  /** Bytes written to the client so far. */
  get bytesOut(): number {
    return this.socket.bytesWritten;
  }

  /** Remote address `ip:port`. */
  get address(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  get localAddress(): string {
    return `${this.socket.localAddress}:${this.socket.localPort}`;
  }

  get authenticated(): boolean {
    return this.isAuthenticated;
  }

  authenticate(user: string): void {
    this.isAuthenticated = true;
    this.user = user;
    // Redis's before-login limits apply only to requests parsed while unauthenticated.
    this.parser.authRequired = false;
  }

  get holdsLease(): boolean {
    return this.state !== 0;
  }

  get ended(): boolean {
    return this.phase === CLOSED;
  }

  /** The node's client id of this session's lease, or -1 (CLIENT TRACKING REDIRECT, CLIENT UNBLOCK). */
  get leaseClientId(): number {
    return this.channel.lease?.clientId ?? -1;
  }

  /** Flags and counts for CLIENT LIST. */
  describe(): { flags: string; sub: number; ssub: number; multi: number } {
    let flags = '';
    if (this.state & STATE_TX) flags += 'x';
    if (this.state & STATE_PUBSUB) flags += 'P';
    if (this.state & STATE_MONITOR) flags += 'O';
    if (this.state & STATE_TRACKING) flags += 't';
    if (this.channel.lease !== null && this.state === 0) flags += 'b';
    const subs = this.stream?.subscriptions;
    return { flags: flags || 'N', sub: subs?.channels ?? 0, ssub: subs?.shardChannels ?? 0, multi: this.state & STATE_TX ? this.tx.queued : -1 };
  }

  private get authRequired(): boolean {
    const { authentication, password, users } = this.ctx.config;
    // Redis's `default` user needs a password (or is off): the master answers NOAUTH without a login.
    if (authentication === 'redis') return this.ctx.redisUsers.defaultNeedsPassword;
    return password !== undefined || (users !== undefined && users.length > 0);
  }

  /** Who a session runs as before it logs in: Redis's `default` with `authentication: "redis"`, else the backend identity. */
  private identityBeforeLogin(): BackendIdentity | null {
    return this.ctx.config.authentication === 'redis' ? this.ctx.redisUsers.anonymous : null;
  }

  answerLater<T>(pending: Promise<T>, done: (value: T) => void): boolean {
    // A transaction's local commands run at once when EXEC's reply arrives: nothing can wait there.
    if (this.capture !== null) return false;
    this.localPending = true;
    void pending.then((value) => {
      this.localPending = false;
      if (this.phase === CLOSED) return;
      done(value);
      this.wake();
    });
    return true;
  }

  loginRedisUser(username: string | null, password: string, done: (error: string | null) => void): void {
    this.servedBy = SERVED_BY_PROXY;
    if (this.capture !== null) {
      // A transaction's local commands run at once when EXEC's reply arrives: nothing can wait for the master there.
      done(HELLO_SECOND_AUTH_IN_MULTI);
      return;
    }
    this.answerLater(this.ctx.redisUsers.login(username, password), (outcome) => {
      if (outcome.ok) {
        this.runAs(outcome.identity, false);
        this.authenticate(outcome.username);
        done(null);
      } else if (outcome.kind === 'refused') {
        this.ctx.stats.error(ERROR_AUTH);
        done(outcome.error);
      } else {
        this.ctx.stats.error(ERROR_NODE_DOWN);
        const master = this.ctx.master.label;
        done(outcome.kind === 'timeout' ? loginUncheckedText(master, outcome.error) : unreachableText(master, outcome.error));
      }
    });
  }

  /**
   * The session runs as `identity` from its next request on. `ranOnLease`: an AUTH the
   * client queued in a transaction already made the lease that user (nothing to send);
   * otherwise a held lease is switched with an AUTH (in a stream: written in place, its
   * answer dropped, as HELLO's is), and shared connections of that identity serve the
   * session after the ordering barrier.
   */
  private runAs(identity: BackendIdentity | null, ranOnLease: boolean): void {
    const previous = this.identity;
    const users = this.ctx.redisUsers;
    users.retain(identity);
    users.release(previous);
    this.identity = identity;
    if (ranOnLease) {
      this.channel.assumeIdentity(identity);
    } else if (this.state & STATE_STREAM && this.replies.streaming && identity !== null) {
      if (identity !== previous) {
        this.channel.writeRaw(this.stream!.mark(MARK_DROP_NEXT));
        this.channel.writeRaw(encodeCommand(authWords(identity.username, identity.password)));
      }
      this.channel.assumeIdentity(identity);
    } else {
      this.channel.setIdentity(identity);
    }
  }

  /** An AUTH inside the transaction succeeded at EXEC (authentication "redis"): Redis ran it on the lease. */
  transactionAuthenticated(username: string, password: string): void {
    this.runAs(this.ctx.redisUsers.identity(username, password), true);
    this.authenticate(username);
  }

  // ---- input -------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    markChunk();
    this.lastActive = coarseNow();
    this.parser.feed(chunk);
    this.updateFlow();
  }

  onRequest(req: RequestView): boolean {
    if (this.phase !== OPEN) return true;
    // A transaction that changed connection state: its EXEC's reply settles the state first;
    // a login: the master's answer says who the next request runs as.
    if (this.awaitingExec || this.localPending) return false;
    let cmd = lookupCommandBytes(req.buf, req.starts[0]!, req.ends[0]!);
    if (cmd !== undefined && cmd.subcommands !== null && req.argc > 1) cmd = resolveSubcommand(cmd, req.argString(1));
    if (cmd !== undefined) this.lastCommand = cmd.name;
    // Counted once dispatched (a request the barrier holds comes back here later).
    this.servedBy = SERVED_BY_MASTER;
    if (!this.dispatch(req, cmd)) return false;
    this.ctx.stats.command(cmd === undefined ? 0 : cmd.id, this.servedBy);
    return true;
  }

  /**
   * The guards, then the request's route. Sets {@link servedBy} when the proxy or a
   * replica answers it. @returns false when the request must wait (see onRequest)
   */
  private dispatch(req: RequestView, cmd: CommandInfo | undefined): boolean {
    // Guards. Before AUTH only the commands Redis flags no_auth (AUTH, HELLO, QUIT, RESET) run.
    if (!this.isAuthenticated && (cmd === undefined || !(cmd.flags & CMD_NO_AUTH))) {
      this.ctx.stats.error(ERROR_AUTH);
      this.replyError('NOAUTH Authentication required.');
      return true;
    }
    const lease = this.channel.lease;
    if (lease !== null && lease.closed && !this.leaseLost()) return true;
    if (this.refuse(cmd, req)) return true;
    if (this.identity !== null && cmd !== undefined && cmd.route === ROUTE_LOCAL && CROSS_SESSION.has(cmd.name)) {
      const error = this.permission(cmd.name, req);
      if (error === null) return false;
      if (error !== '') {
        if (this.state & STATE_TX) this.tx.rejected = true;
        this.ctx.stats.error(ERROR_DENIED);
        this.replyError(error);
        return true;
      }
    }
    if (this.state & STATE_STREAM) return this.dispatchInStream(req, cmd);
    if (this.state & STATE_TX) return this.dispatchInTransaction(req, cmd);
    if (cmd === undefined) {
      if (req.argIs(0, 'waitaof')) return this.sendWait(req);
      return this.sendToMaster(req, SLOT_WRITE);
    }
    switch (cmd.route) {
      case ROUTE_MASTER:
        return this.sendToMaster(req, (cmd.traits & TRAIT_WRITE ? SLOT_WRITE : 0) | (cmd.traits & TRAIT_SCRIPT ? SLOT_PATIENT : 0), cmd);
      case ROUTE_READ:
        if (this.ctx.config.nearCache && this.state === 0 && cmd.name === 'get' && req.argc === 2 && this.channel.lease === null) {
          return this.sendCachedGet(req, cmd, this.ctx.nearCache);
        }
        return this.sendRead(req, this.channel.lease === null ? this.writes.readNode(cmd, req, this.db, this.ctx.router) : this.ctx.master);
      case ROUTE_LOCAL:
        LOCAL_COMMANDS.get(cmd.name)!(this, req);
        return true;
      case ROUTE_SCAN:
        return this.sendScan(req, cmd);
      case ROUTE_BLOCKING:
        return this.sendDedicated(req, 0, 0, cmd.traits & TRAIT_WRITE ? SLOT_WRITE : 0, cmd);
      case ROUTE_XREAD:
        if (isBlockingCall(cmd, req)) return this.sendDedicated(req, 0, 0, cmd.traits & TRAIT_WRITE ? SLOT_WRITE : 0, cmd);
        if (cmd.traits & TRAIT_WRITE) return this.sendToMaster(req, SLOT_WRITE, cmd);
        return this.sendRead(req, this.channel.lease === null ? this.writes.readNode(cmd, req, this.db, this.ctx.router) : this.ctx.master);
      case ROUTE_SUBSCRIBE:
        return this.startStream(req, STATE_PUBSUB, LEASE_PUBSUB);
      case ROUTE_MONITOR:
        return this.startStream(req, STATE_MONITOR, LEASE_MONITOR);
      case ROUTE_UNSUBSCRIBE:
        // Not subscribed: Redis confirms each channel with a count of 0.
        this.reply(unsubscribedReplies(cmd.name, req.args().slice(1), this.protocol));
        return true;
      case ROUTE_MULTI:
        return this.sendDedicated(req, STATE_TX, LEASE_TX, 0);
      case ROUTE_WATCH:
        return this.sendDedicated(req, STATE_WATCH, LEASE_WATCH, 0);
      case ROUTE_UNWATCH:
        if (!this.sendToMaster(req, 0)) return false;
        this.state &= ~STATE_WATCH;
        this.channel.lease?.leave(LEASE_WATCH);
        return true;
      case ROUTE_WAIT:
        return this.sendWait(req);
      case ROUTE_TRACKING:
        return this.sendTracking(req);
      case ROUTE_INFO:
        return this.sendInfo(req);
      case ROUTE_BUSY:
        return this.sendPriority(req);
      case ROUTE_CACHING:
        if (req.argc !== 3) {
          this.replyError(wrongArityText(cmd.name));
          return true;
        }
        if (this.channel.lease !== null) return this.sendToMaster(req, 0);
        // No tracking here, so Redis would refuse it; a shared connection must not get it.
        this.replyError('ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled');
        return true;
      case ROUTE_ALL_NODES:
        if (this.identity !== null) return this.sendFanout(req);
        if (!this.sendToMaster(req, 0)) return false;
        this.ctx.sendToReplicas(req.args());
        return true;
      case ROUTE_UNBLOCK:
        return this.sendUnblock(req);
      default:
        return this.sendToMaster(req, 0);
    }
  }

  /**
   * Refuses what the listener does not forward: denyCommands and topology commands,
   * scripts where a denied command could run inside them, and replication handshakes.
   * Inside MULTI a refusal aborts the transaction at EXEC, as a command Redis rejects does.
   * @returns true when the request was answered with the refusal
   */
  private refuse(cmd: CommandInfo | undefined, req: RequestView): boolean {
    const deny = this.ctx.denyList;
    // The common case costs a length test and a bit test.
    if (deny.entries.length === 0 && cmd !== undefined && !(cmd.traits & TRAIT_GUARDED)) return false;
    const name = cmd !== undefined ? cmd.name : req.argString(0).toLowerCase();
    const listener = this.ctx.config.name;
    let message: string | null = null;
    if (deny.has(name)) message = deny.deniedMessage(name, listener);
    else if (cmd === undefined) return false;
    else if (cmd.traits & TRAIT_SCRIPT) message = deny.scriptRefusal(listener);
    else if (cmd.route === ROUTE_REFUSED) message = replicationRefusedText(name);
    if (message === null) return false;
    if (this.state & STATE_TX) this.tx.rejected = true;
    this.ctx.stats.error(ERROR_DENIED);
    this.replyError(message);
    return true;
  }

  /**
   * Whether the session's Redis user may run `name` (a CROSS_SESSION command), as the
   * master's ACL DRYRUN says: asked once per request (the request stalls, and is
   * dispatched again with the answer), so an ACL change applies from the next one.
   * @returns '' permitted; the error to reply (Redis's NOPERM, or why it could not be
   *   checked); null while the master is asked
   */
  private permission(name: string, req: RequestView): string | null {
    const verdict = this.verdict;
    if (verdict !== null && verdict.name === name) {
      this.verdict = null;
      return verdict.error;
    }
    const user = this.identity!.username;
    this.localPending = true;
    void this.ctx.master.call('ACL', 'DRYRUN', user, ...req.args().map((a) => Buffer.from(a))).then(
      (answer) => {
        const text = String(answer);
        this.verdict = { name, error: text === 'OK' ? '' : nopermText(text) };
      },
      (err: Error) => {
        this.verdict = { name, error: permissionUncheckedText(user, name, err.message) };
      },
    ).finally(() => {
      this.localPending = false;
      this.wake();
    });
    return null;
  }

  /**
   * The lease closed under the session. Holding MULTI, WATCH or tracking state, the
   * session closes after the replies it is owed (as a client of a Redis that dropped it
   * would see); otherwise it goes on with shared connections.
   * @returns true when the session goes on
   */
  private leaseLost(): boolean {
    this.channel.retireLease();
    this.state &= ~STATE_REDIRECT_TARGET;
    if (this.state & (STATE_TX | STATE_WATCH | STATE_TRACKING)) {
      this.closeAfterReplies();
      return false;
    }
    return true;
  }

  // ---- transactions --------------------------------------------------------------------

  /** Inside MULTI: everything is queued on the lease, as Redis queues it (see ./transaction.ts). */
  private dispatchInTransaction(req: RequestView, cmd: CommandInfo | undefined): boolean {
    const name = cmd?.name;
    if (name === 'quit' || name === 'reset') {
      LOCAL_COMMANDS.get(name)!(this, req);
      return true;
    }
    if (name === 'exec') return this.sendExec(req);
    if (name === 'multi' || name === 'watch') {
      // Redis answers these at once with an error inside MULTI and does not queue them.
      return this.sendToMaster(req, 0);
    }
    if (name === 'discard') {
      if (!this.sendToMaster(req, 0)) return false;
      this.endTransaction();
      this.tx.clear();
      return true;
    }
    const tx = this.tx;
    const lease = this.channel.lease!;
    let bytes = req.raw();
    if (cmd !== undefined && cmd.route === ROUTE_LOCAL && name !== 'select' && name !== 'ping' && name !== 'echo') {
      // Answered by the proxy when EXEC runs; Redis queues a PING in its place.
      if (!arityFits(cmd, req.argc)) {
        tx.rejected = true;
        this.replyError(wrongArityText(cmd.name));
        return true;
      }
      const login = this.ctx.config.authentication === 'redis' ? this.loginInTransaction(req, name!) : null;
      if (login !== null) {
        bytes = login;
      } else {
        tx.queueLocal(req.args().map((a) => Buffer.from(a)));
        bytes = PLACEHOLDER;
      }
    } else if (name === 'select' && req.argc === 2) {
      // Only a SELECT that will succeed at EXEC switches the session's database.
      const db = parseRedisInteger(req.argString(1));
      if (db >= 0 && db < this.ctx.databases) tx.queueSelect(db);
    } else if (name === 'client|tracking' && req.argc >= 3) {
      const rewritten = this.trackingRequest(req);
      if (rewritten === false) return false;
      if (rewritten === null) return true;
      tx.queueTracking(req.argIs(2, 'on'), redirectTarget(req));
      lease.markStateUnknown();
      bytes = rewritten;
    } else if (cmd !== undefined && cmd.route === ROUTE_UNBLOCK) {
      bytes = unblockRequest(req, this.lookupSession) ?? bytes;
    } else if (cmd !== undefined && cmd.traits & TRAIT_CONNECTION_STATE) {
      if (cmd.route === ROUTE_SUBSCRIBE) tx.subscribes = true;
      lease.markStateUnknown();
    }
    if (!this.sendBytesToMaster(bytes, 0, bytes.length, 0)) return false;
    tx.queued++;
    return true;
  }

  /**
   * AUTH, or HELLO with AUTH, inside MULTI with `authentication: "redis"`: queued as an
   * AUTH that Redis runs at EXEC on the lease, as it would on its own connection (the
   * transaction's later commands run as that user); its answer in EXEC's array decides
   * whether the session runs as that user (./transaction.ts). An AUTH with a wrong
   * number of words is queued as sent, for Redis's own error at EXEC.
   * @returns the bytes to queue, or null for a command that is not a login (a placeholder then)
   */
  private loginInTransaction(req: RequestView, name: string): Buffer | null {
    if (name === 'auth') {
      if (req.argc <= 3) this.tx.queueAuth(req.argc === 3 ? req.argString(1) : 'default', req.argString(req.argc - 1));
      return req.raw();
    }
    if (name !== 'hello') return null;
    const option = helloAuthOption(req);
    if (option === null) return null;
    const rest = req.args().filter((_, i) => i < option.at || i > option.at + 2);
    this.tx.queueAuthThenLocal(option.username, option.password, rest.map((a) => Buffer.from(a)));
    return encodeCommand(['AUTH', option.username, option.password]);
  }

  private sendExec(req: RequestView): boolean {
    const tx = this.tx;
    if (tx.rejected) {
      // Redis discards a transaction in which a command was refused.
      this.sendBytesToMaster(DISCARD, 0, DISCARD.length, SLOT_SILENT);
      this.endTransaction();
      tx.clear();
      this.replyError(EXECABORT);
      return true;
    }
    if (tx.subscribes) {
      // EXEC's reply and what follows (a confirmation per channel) stream to the client as
      // Redis sends them; the stream ends at once when nothing stayed subscribed.
      const lease = this.channel.lease!;
      tx.execSent();
      this.endTransaction();
      this.openStream(lease, STATE_PUBSUB, LEASE_PUBSUB);
      this.stream!.execPending = true;
      // Its queued writes run now, keys not followed: the near cache is flushed.
      this.writes.sentInStream(undefined, req);
      this.channel.writeRaw(req.raw());
      return true;
    }
    // A transaction's keys are not followed: its EXEC is a barrier for causal reads.
    if (!this.sendToMaster(req, SLOT_EXEC | SLOT_WRITE)) return false;
    if (tx.execSent()) this.awaitingExec = true;
    this.endTransaction();
    return true;
  }

  /** MULTI and WATCH end (EXEC or DISCARD sent): on the session and on its lease. */
  private endTransaction(): void {
    this.state &= ~(STATE_TX | STATE_WATCH);
    this.channel.lease?.leave(LEASE_TX | LEASE_WATCH);
  }

  runLocal(args: Buffer[]): Buffer | null {
    const req = RequestView.of(args);
    let cmd = lookupCommand(req.argString(0))!;
    if (cmd.subcommands !== null && req.argc > 1) cmd = resolveSubcommand(cmd, req.argString(1));
    const captured: Buffer[] = [];
    this.capture = captured;
    try {
      LOCAL_COMMANDS.get(cmd.name)!(this, req);
    } finally {
      this.capture = null;
    }
    if (captured.length === 0) return null;
    return captured.length === 1 ? captured[0]! : Buffer.concat(captured);
  }

  transactionSelected(db: number): void {
    this.db = db;
    this.channel.assumeDb(db);
  }

  transactionTracking(on: boolean, redirect: number): void {
    if (on) {
      this.state |= STATE_TRACKING;
      this.trackingRedirect = redirect;
    } else {
      this.state &= ~STATE_TRACKING;
      this.trackingRedirect = -1;
    }
  }

  /** EXEC's reply or failure is in: its effects were applied, later requests may go. */
  private execDone(): void {
    if (!this.awaitingExec) return;
    this.awaitingExec = false;
    this.wake();
  }

  // ---- streams (Pub/Sub, MONITOR) ------------------------------------------------------

  /** SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR: the lease's output streams to the client from now on. */
  private startStream(req: RequestView, state: number, leaseState: number): boolean {
    const lease = this.leaseFor();
    if (typeof lease === 'number') return lease === LEASE_FAILED;
    // Replies owed on another master connection come first (the ordering barrier).
    if (!this.channel.writable) return false;
    if (this.skipNextReply) this.skipNextReply = false;
    this.openStream(lease, state, leaseState);
    this.channel.writeRaw(req.raw());
    return true;
  }

  private openStream(lease: Lease, state: number, leaseState: number): void {
    this.state |= state;
    lease.enter(leaseState);
    const stream = (this.stream ??= new Stream(this.id));
    stream.dropReplies = this.repliesOff;
    this.replies.openStream();
  }

  /**
   * In Pub/Sub or MONITOR mode the lease carries everything and Redis answers, including
   * its own refusals of commands the mode does not allow. The proxy answers what it
   * always answers (CLIENT ID, CLIENT SETNAME, …) with a marker so that the answer keeps
   * its place among Redis's; QUIT and RESET wait until everything before them is answered.
   */
  private dispatchInStream(req: RequestView, cmd: CommandInfo | undefined): boolean {
    const lease = this.channel.lease!;
    const stream = this.stream!;
    const name = cmd?.name;
    // The last unsubscribe was confirmed and a marker is on its way: nothing more is written
    // until it is back and the stream has ended (the lease may then be pooled) or goes on.
    if (stream.pending(MARK_END)) return false;
    if (name === 'quit' || name === 'reset') {
      if (!stream.halted) {
        if (!stream.pending(MARK_HALT)) this.channel.writeRaw(stream.mark(MARK_HALT));
        return false;
      }
      this.endStream(false);
      LOCAL_COMMANDS.get(name)!(this, req);
      return true;
    }
    // RESP2 Pub/Sub: Redis refuses everything but (P|S)(UN)SUBSCRIBE, PING, QUIT and RESET.
    const redisRefuses = this.protocol === 2 && (this.state & STATE_PUBSUB) !== 0;
    let bytes = req.raw();
    if (cmd !== undefined && !redisRefuses) {
      if (cmd.route === ROUTE_LOCAL && name !== 'ping' && name !== 'echo') {
        if (name === 'select') return this.selectInStream(req);
        LOCAL_COMMANDS.get(name!)!(this, req);
        return true;
      }
      if (cmd.route === ROUTE_UNBLOCK) {
        bytes = unblockRequest(req, this.lookupSession) ?? bytes;
      } else if (cmd.route === ROUTE_TRACKING && req.argc >= 3) {
        const rewritten = this.trackingRequest(req);
        if (rewritten === false) return false;
        if (rewritten === null) return true;
        bytes = rewritten;
        this.transactionTracking(req.argIs(2, 'on'), redirectTarget(req));
      }
    }
    if (this.skipNextReply) {
      // CLIENT REPLY SKIP: the next command's reply (a subscription's confirmations are pushes, never skipped).
      this.skipNextReply = false;
      if (cmd === undefined || (cmd.route !== ROUTE_SUBSCRIBE && cmd.route !== ROUTE_UNSUBSCRIBE)) {
        this.channel.writeRaw(stream.mark(MARK_DROP_NEXT));
      }
    }
    if (cmd !== undefined && cmd.traits & TRAIT_CONNECTION_STATE && cmd.route !== ROUTE_SUBSCRIBE && cmd.route !== ROUTE_UNSUBSCRIBE) {
      lease.markStateUnknown();
    }
    if (cmd === undefined || cmd.traits & TRAIT_WRITE) this.writes.sentInStream(cmd, req);
    this.channel.writeRaw(bytes);
    return true;
  }

  /** SELECT in RESP3 Pub/Sub or MONITOR mode: checked here, run on the lease, answered by Redis. */
  private selectInStream(req: RequestView): boolean {
    const db = req.argc === 2 ? parseRedisInteger(req.argString(1)) : NaN;
    if (!(db >= 0 && db < this.ctx.databases)) {
      // The local handler gives Redis's error for each way it can be wrong.
      LOCAL_COMMANDS.get('select')!(this, req);
      return true;
    }
    this.db = db;
    this.channel.assumeDb(db);
    this.channel.writeRaw(req.raw());
    return true;
  }

  onStreamReply(buf: Buffer, start: number, end: number): void {
    if (this.phase === CLOSED) return;
    const stream = this.stream;
    if (stream === null || !(this.state & STATE_STREAM)) {
      // A tracking invalidation push: out of band, written between replies.
      this.output.pushRange(buf, start, end);
      return;
    }
    const marker = stream.answered(buf, start, end);
    if (marker !== null) {
      this.markerAnswered(stream, marker.action, marker.reply);
      return;
    }
    if (this.state & STATE_MONITOR && stream.isOwnMarkerLine(buf, start, end)) return;
    if (stream.execPending) {
      stream.execPending = false;
      this.streamExecReplied(stream, buf, start, end);
      return;
    }
    if (this.state & STATE_PUBSUB && stream.subscriptions.observe(buf, start, end)) this.requestStreamEnd(stream);
    // An error while nothing is subscribed (a SUBSCRIBE Redis refused: NOPERM for a channel
    // the user may not use, a wrong arity): Redis did not enter Pub/Sub mode, so neither
    // does the session, once everything sent before is answered (MARK_END checks again).
    else if (this.state & STATE_PUBSUB && buf[start] === 0x2d && stream.subscriptions.none) this.requestStreamEnd(stream);
    if (buf[start] !== 0x3e && (stream.dropNext > 0 || stream.dropReplies)) {
      if (stream.dropNext > 0) stream.dropNext--;
      return;
    }
    this.streamOut(buf, start, end);
  }

  private markerAnswered(stream: Stream, action: number, reply: Buffer | null): void {
    switch (action) {
      case MARK_REPLY:
        this.streamOut(reply!, 0, reply!.length);
        break;
      case MARK_DROP_ON:
        stream.dropReplies = true;
        break;
      case MARK_DROP_OFF:
        stream.dropReplies = false;
        break;
      case MARK_DROP_NEXT:
        stream.dropNext++;
        break;
      case MARK_END:
        // Everything sent before the last unsubscribe has been answered: the stream ends unless re-subscribed.
        if (this.state & STATE_PUBSUB && stream.subscriptions.none) this.endStream(true);
        this.wake();
        break;
      case MARK_HALT:
        stream.halted = true;
        this.wake();
        break;
    }
  }

  /** EXEC of a transaction with SUBSCRIBE: apply its effects, write it, count its confirmations. */
  private streamExecReplied(stream: Stream, buf: Buffer, start: number, end: number): void {
    // It may have written: a barrier for causal reads, from its reply on.
    this.writes.barrierAnswered();
    const rewritten = this.tx.execReplied(this, buf, start, stream.dropReplies);
    if (rewritten !== null) this.streamOut(rewritten, 0, rewritten.length);
    else if (!stream.dropReplies) this.streamOut(buf, start, end);
    const elements = aggregateElements(buf, start);
    for (let i = 0; elements !== null && i + 1 < elements.length; i++) {
      stream.subscriptions.observe(buf, elements[i]!, elements[i + 1]!);
    }
    if (stream.subscriptions.none) this.requestStreamEnd(stream);
  }

  private requestStreamEnd(stream: Stream): void {
    if (!stream.pending(MARK_END)) this.channel.writeRaw(stream.mark(MARK_END));
  }

  private streamOut(buf: Buffer, start: number, end: number): void {
    if (this.replies.stream(buf, start, end)) this.outputLimitReached();
  }

  onStreamClosed(reason: string): void {
    if (this.state & STATE_STREAM) this.close(`stream connection lost: ${reason}`);
  }

  /**
   * Leaves Pub/Sub or MONITOR mode. `unsubscribed`: the last unsubscribe was confirmed,
   * so the lease holds no subscription any more. The lease is let go of unless the session
   * still holds other state on it; the lease proves itself clean or is destroyed.
   */
  private endStream(unsubscribed: boolean): void {
    if (!this.replies.streaming) return;
    this.state &= ~STATE_STREAM;
    this.stream!.reset();
    const lease = this.channel.lease;
    if (lease !== null && unsubscribed) lease.leave(LEASE_PUBSUB);
    if (this.state === 0) this.channel.retireLease();
    if (this.replies.closeStream()) this.outputLimitReached();
    else this.afterWrite();
  }

  // ---- dispatch ----------------------------------------------------------------------

  /**
   * The session's lease: now, or LEASE_WAIT while it is being acquired (the parser stalls
   * and the session is woken), or LEASE_FAILED when it could not be had (the request was
   * answered with the reason).
   */
  private leaseFor(): Lease | number {
    const channel = this.channel;
    if (channel.lease !== null) return channel.lease;
    const error = channel.takeLeaseError();
    if (error !== '') {
      // A master busy with a script cannot hand out a new connection; a client of Redis would get BUSY.
      const master = this.ctx.master;
      this.ctx.stats.error(master.health.busy ? ERROR_BUSY : ERROR_NODE_DOWN);
      this.replyError(master.health.busy ? master.health.error : noConnectionText(master.label, error));
      return LEASE_FAILED;
    }
    channel.acquire();
    return LEASE_WAIT;
  }

  /**
   * Sends on the lease, leasing one first if needed; `state` / `leaseState` are the bits
   * the command starts (0 for a one-shot blocking command).
   */
  private sendDedicated(req: RequestView, state: number, leaseState: number, slotFlags: number, cmd?: CommandInfo): boolean {
    const lease = this.leaseFor();
    if (typeof lease === 'number') return lease === LEASE_FAILED;
    if (!this.sendRequestToMaster(req, slotFlags, cmd)) return false;
    this.state |= state;
    lease.enter(leaseState);
    return true;
  }

  /**
   * INFO: `INFO proxy` is the proxy's own answer, whatever the master's state. Other
   * sections come from the master, with the `# Proxy` section appended when asked for
   * (no argument, `all`, `everything`, `default`); with the master unreachable, the
   * proxy answers with its section and says the master's are missing and why.
   */
  private sendInfo(req: RequestView): boolean {
    const master = this.ctx.master;
    let onlyProxy = req.argc > 1;
    for (let i = 1; onlyProxy && i < req.argc; i++) onlyProxy = req.argIs(i, 'proxy');
    if (onlyProxy || (!master.reachable && this.channel.lease === null)) {
      const reply = this.proxyOnlyInfo(onlyProxy ? null : `${master.label} is unreachable: ${master.health.error || 'down'}`);
      this.reply(reply);
      return true;
    }
    return this.sendToMaster(req, wantsProxySection(req) ? SLOT_INFO : 0);
  }

  /**
   * INFO's reply made by the proxy alone: the `# Proxy` section, and with `unavailable`
   * a `master_info:unavailable (<why>)` line (the master's sections could not be had).
   */
  private proxyOnlyInfo(unavailable: string | null): Buffer {
    let text = `# Proxy\r\n${this.ctx.proxyInfo()}\r\n`;
    if (unavailable !== null) text += `master_info:unavailable (${unavailable})\r\n`;
    return this.protocol === 3 ? encodeVerbatim(text) : encodeBulk(text);
  }

  /**
   * SCRIPT KILL, FUNCTION KILL, FUNCTION STATS, SHUTDOWN: Redis runs them while a script
   * is busy, so they go on the master's priority connection, never queued behind a
   * script (and not through the ordering barrier).
   */
  private sendPriority(req: RequestView): boolean {
    const master = this.ctx.master;
    if (!master.reachable) {
      this.ctx.stats.error(ERROR_NODE_DOWN);
      this.replyError(unreachableText(master.label, master.health.error));
      return true;
    }
    const slot = this.newSlot(0);
    slot.node = master;
    master.priorityLink(this.protocol, this.identity).send(slot, req.buf, req.start, req.end);
    return true;
  }

  /** Sends to the master (`cmd`: the request's command, for a write's keys); false when the ordering barrier holds it. */
  private sendToMaster(req: RequestView, flags: number, cmd?: CommandInfo): boolean {
    if (this.masterDown()) return true;
    if (flags & SLOT_WRITE && this.ctx.master.health.role === 'slave' && this.channel.lease === null) {
      // A write would reach a replica: the config names a master that was demoted.
      this.ctx.stats.error(ERROR_DENIED);
      this.replyError(demotedMasterText(this.ctx.master.label));
      return true;
    }
    return this.sendRequestToMaster(req, flags, cmd);
  }

  /**
   * True, with the request answered, when the master is down and the session holds no
   * lease to reach it on: a request that needs the master fails at once instead of waiting.
   */
  private masterDown(): boolean {
    const master = this.ctx.master;
    if (master.reachable || this.channel.lease !== null) return false;
    this.ctx.stats.error(ERROR_NODE_DOWN);
    this.replyError(unreachableText(master.label, master.health.error));
    return true;
  }

  /** Sends the client's request on the session's master connection; false, with nothing sent, when the barrier holds it. */
  private sendRequestToMaster(req: RequestView, flags: number, cmd: CommandInfo | undefined): boolean {
    const slot = this.channel.send(req.buf, req.start, req.end, flags);
    if (slot === null) return false;
    if (flags & SLOT_WRITE) this.writes.sent(slot, cmd, req, this.db);
    return true;
  }

  /** Sends `buf[start, end)` (bytes the proxy made) on the session's master connection; false when the barrier holds it. */
  private sendBytesToMaster(buf: Buffer, start: number, end: number, flags: number): boolean {
    const slot = this.channel.send(buf, start, end, flags);
    if (slot === null) return false;
    if (flags & SLOT_WRITE) this.writes.sent(slot, undefined, null, this.db);
    return true;
  }

  /**
   * WAIT counts replicas that acknowledged the writes of the connection it runs on. The
   * session's writes went over shared connections, so WAIT runs on the lease right after
   * a PUBLISH to a channel of the proxy's own (PUBLISH is replicated): its offset covers
   * every earlier write of the session. The PUBLISH's reply is not shown.
   * Source: https://redis.io/docs/latest/commands/wait/
   */
  private sendWait(req: RequestView): boolean {
    const lease = this.leaseFor();
    if (typeof lease === 'number') return lease === LEASE_FAILED;
    if (!this.sendBytesToMaster(WAIT_MARKER, 0, WAIT_MARKER.length, SLOT_SILENT | SLOT_WAIT_MARKER)) return false;
    return this.sendBytesToMaster(req.buf, req.start, req.end, SLOT_WAIT);
  }

  /**
   * SCRIPT LOAD / FLUSH from a session running as a Redis user: the master runs it as that
   * user, and only once it accepted it do the replicas get it (over their control
   * connections, as the proxy's backend user), so a user Redis refuses it to cannot have
   * it run on the replicas.
   */
  private sendFanout(req: RequestView): boolean {
    if (this.masterDown()) return true;
    if (this.channel.send(req.buf, req.start, req.end, SLOT_FANOUT) === null) return false;
    (this.fanouts ??= []).push(req.args().map((a) => Buffer.from(a)));
    return true;
  }

  /**
   * CLIENT TRACKING runs on the lease, which then serves all of the session's commands
   * (the server tracks the keys read on that connection). REDIRECT names a proxy session;
   * it is translated to that session's own lease, leased for it when it has none yet.
   * Source: https://redis.io/docs/latest/commands/client-tracking/
   */
  private sendTracking(req: RequestView): boolean {
    if (req.argc < 3) {
      this.replyError(wrongArityText('client|tracking'));
      return true;
    }
    const on = req.argIs(2, 'on');
    if (!on) {
      if (!this.sendToMaster(req, 0)) return false;
      this.state &= ~STATE_TRACKING;
      this.trackingRedirect = -1;
      // Prefixes and options of the tracking that just ended are not followed: the lease is destroyed, not pooled.
      this.channel.lease?.markStateUnknown();
      return true;
    }
    const bytes = this.trackingRequest(req);
    if (bytes === false) return false;
    if (bytes === null) return true;
    const lease = this.leaseFor();
    if (typeof lease === 'number') return lease === LEASE_FAILED;
    const redirect = redirectTarget(req);
    if (!this.sendBytesToMaster(bytes, 0, bytes.length, SLOT_TRACKING)) return false;
    this.trackingBefore = this.state & STATE_TRACKING ? this.trackingRedirect : -1;
    this.state |= STATE_TRACKING;
    this.trackingRedirect = redirect;
    lease.enter(LEASE_TRACKING);
    return true;
  }

  /**
   * CLIENT TRACKING's bytes with a REDIRECT session id translated to the target's lease id.
   * @returns the bytes; false when the target's lease is on its way (the parser stalls);
   *   null when the request was answered with an error
   */
  private trackingRequest(req: RequestView): Buffer | false | null {
    const arg = redirectArg(req);
    if (arg < 0) return req.raw();
    const targetId = parseRedisInteger(req.argString(arg));
    const target = this.ctx.sessionById(targetId);
    if (target === undefined) {
      // Maybe a session of another worker: its lease's id (it takes one for this), if any.
      const remote = this.remoteLeaseId(targetId, true);
      if (remote === undefined) return false;
      if (remote >= 0) return withClientId(req, arg, remote);
      if (remote === REMOTE_NO_SESSION) this.replyError(NO_REDIRECT_TARGET);
      else this.replyError(noConnectionText(this.ctx.master.label, 'the REDIRECT target could not lease a connection'));
      return null;
    }
    const clientId = target.leaseClientId;
    if (clientId >= 0) {
      this.redirectAsked = null;
      return withClientId(req, arg, clientId);
    }
    if (this.redirectAsked === target && !target.channel.acquiringLease) {
      this.redirectAsked = null;
      this.replyError(noConnectionText(this.ctx.master.label, 'the REDIRECT target could not lease a connection'));
      return null;
    }
    this.redirectAsked = target;
    target.leaseForRedirect(this);
    return false;
  }

  /**
   * Another session's tracking REDIRECT names this one: it takes a lease of its own (and
   * keeps it) so that the node has a connection to send invalidations to; `waiter` is
   * woken when the lease is there or could not be had.
   */
  leaseForRedirect(waiter: { wake(): void }): void {
    this.state |= STATE_REDIRECT_TARGET;
    if (!this.redirectWaiters.includes(waiter)) this.redirectWaiters.push(waiter);
    this.channel.acquire(true);
  }

  /**
   * Another worker's session names this one as its tracking REDIRECT target: resolves
   * with this session's lease id once it has a lease (taken for that, and kept), or -1
   * when none could be had.
   */
  leaseForRemoteRedirect(): Promise<number> {
    return new Promise((resolve) => {
      const waiter = {
        wake: (): void => {
          if (this.leaseClientId >= 0) resolve(this.leaseClientId);
          else if (this.phase === CLOSED || !this.channel.acquiringLease) resolve(-1);
          else this.leaseForRedirect(waiter);
        },
      };
      this.leaseForRedirect(waiter);
      if (this.leaseClientId >= 0) waiter.wake();
    });
  }

  /**
   * The node's client id of the lease of session `id` that another worker serves (with
   * `redirect`, that session takes a lease for it if it has none), for CLIENT UNBLOCK and
   * CLIENT TRACKING REDIRECT. Undefined while the other workers are asked: the request
   * stalls, and runs again once they have answered. Else the id, -1 (no lease) or
   * REMOTE_NO_SESSION (no worker has that session, or the proxy runs one process).
   */
  private remoteLeaseId(id: number, redirect: boolean): number | undefined {
    const peers = this.ctx.peers;
    if (peers === null || Number.isNaN(id)) return REMOTE_NO_SESSION;
    const asked = this.remoteAsk;
    if (asked !== null && asked.id === id && asked.redirect === redirect) {
      if (asked.clientId === null) return undefined;
      this.remoteAsk = null;
      return asked.clientId;
    }
    const lookup: { id: number; redirect: boolean; clientId: number | null } = { id, redirect, clientId: null };
    this.remoteAsk = lookup;
    void peers.ask('lease', this.ctx.config.name, { id, redirect }).then((answers) => {
      let best = REMOTE_NO_SESSION;
      for (const a of answers) if (typeof a === 'number' && a > best) best = a;
      lookup.clientId = best;
      this.wake();
    });
    return undefined;
  }

  /** CLIENT UNBLOCK <session id> [TIMEOUT | ERROR]: sent with the id translated, never as given. */
  private sendUnblock(req: RequestView): boolean {
    const id = req.argc >= 3 ? parseRedisInteger(req.argString(2)) : NaN;
    if (Number.isNaN(id) || req.argc > 4 || (req.argc === 4 && !req.argIs(3, 'timeout') && !req.argIs(3, 'error'))) {
      // Redis's own error for the malformed request; no id is looked up.
      return this.sendToMaster(req, 0);
    }
    const target = this.ctx.sessionById(id);
    let bytes: Buffer;
    if (target === undefined) {
      const remote = this.remoteLeaseId(id, false);
      if (remote === undefined) return false;
      if (remote < 0) {
        this.reply(encodeInteger(0));
        return true;
      }
      bytes = withClientId(req, 2, remote);
    } else if (target.leaseClientId < 0) {
      this.reply(encodeInteger(0));
      return true;
    } else {
      bytes = unblockRequest(req, this.lookupSession)!;
    }
    return this.sendBytesToMaster(bytes, 0, bytes.length, 0);
  }

  /**
   * SCAN, SSCAN, HSCAN, ZSCAN: a new iteration (cursor 0) picks its node as any read does,
   * read-your-writes included; a cursor continues on the node that issued it.
   */
  private sendScan(req: RequestView, cmd: CommandInfo): boolean {
    if (this.channel.lease !== null) return this.sendToMaster(req, 0);
    const cursor = cmd.name === 'scan' ? 1 : 2;
    const fresh = req.argc <= cursor || req.argIs(cursor, '0');
    if (fresh || this.scanNode === null || !this.scanNode.reachable) this.scanNode = this.writes.readNode(cmd, req, this.db, this.ctx.router);
    return this.sendRead(req, this.scanNode);
  }

  /**
   * GET of a plain session (no MULTI, WATCH, tracking, stream or lease) with `nearCache`:
   * answered from the near cache when it holds a version the read may see (causal reads,
   * src/cache/cached-reads.ts), as a bulk string (the same bytes in RESP2 and RESP3); else
   * read the usual way, and the cache filled in the background from the same node.
   */
  private sendCachedGet(req: RequestView, cmd: CommandInfo, near: CachedReads | null): boolean {
    const needed = near === null ? -1 : this.writes.cacheNeeds(cmd, req, this.db);
    if (needed >= 0) {
      const entry = near!.cache.get(this.db, req.buf, req.starts[1]!, req.ends[1]!, needed);
      if (entry !== undefined) {
        this.reply(entry.reply);
        return true;
      }
    }
    const node = this.writes.readNode(cmd, req, this.db, this.ctx.router);
    if (!this.sendRead(req, node)) return false;
    if (needed >= 0 && node !== null) near!.prefetch(node, this.db, req.buf, req.starts[1]!, req.ends[1]!, needed);
    return true;
  }

  /** Sends a read to `node` (the master through the barrier, a replica on its shared connection). */
  private sendRead(req: RequestView, node: Node | null): boolean {
    if (node === null) {
      this.ctx.stats.error(ERROR_NODE_DOWN);
      this.replyError(NO_REPLICA);
      return true;
    }
    let slot: ReplySlot;
    const router = this.ctx.router;
    if (node === router.master && !node.reachable && this.channel.lease === null && router.replicasInRotation.length === 0) {
      // The master is down and no replica is in the rotation (a failover is promoting one
      // and resyncing the others): stale reads beat no reads (see Router.fallbackNode).
      node = router.fallbackNode(null) ?? node;
    }
    if (node === this.ctx.master) {
      if (this.masterDown()) return true;
      const sent = this.channel.send(req.buf, req.start, req.end, SLOT_READ);
      if (sent === null) return false;
      // A read on the lease is part of the session's state there (WATCH, tracking): not retried elsewhere.
      if (sent.flags & SLOT_DEDICATED) return true;
      slot = sent;
    } else {
      this.servedBy = SERVED_BY_REPLICA;
      slot = this.newSlot(SLOT_READ);
      slot.node = node;
      node.sharedLink(this.db, this.protocol, this.identity).send(slot, req.buf, req.start, req.end);
    }
    slot.identity = this.identity;
    slot.request = req.buf;
    slot.requestStart = req.start;
    slot.requestEnd = req.end;
    slot.requestFor = this.db * 4 + this.protocol;
    return true;
  }

  // ---- replies -----------------------------------------------------------------------

  onSlotReply(slot: ReplySlot, buf: Buffer, start: number, end: number): void {
    const flags = slot.flags;
    if (slot.startedAt > 0) {
      const stats = this.ctx.stats;
      (flags & SLOT_WRITE ? stats.writeLatency : stats.readLatency).observe(chunkTime() - slot.startedAt);
    }
    if (this.phase !== CLOSED) {
      // State that decides whether the lease stays, before the channel counts the reply.
      if (flags & SLOT_TRACKING && buf[start] === 0x2d) this.trackingRefused();
      if (flags & SLOT_EXEC) {
        const rewritten = this.tx.execReplied(this, buf, start, (flags & SLOT_SILENT) !== 0);
        if (rewritten !== null) {
          slot.flags &= ~SLOT_SILENT;
          buf = rewritten;
          start = 0;
          end = rewritten.length;
        }
        this.execDone();
      }
    }
    if (flags & SLOT_MASTER) this.channel.replied();
    if (flags & SLOT_WRITE) this.writes.answered(slot);
    // The master ran it as the session's user: the replicas get it only when it accepted it.
    if (flags & SLOT_FANOUT) {
      const args = this.fanouts!.shift()!;
      if (buf[start] !== 0x2d) this.ctx.sendToReplicas(args);
    }
    if (this.phase === CLOSED) return;
    if (flags & (SLOT_WAIT_MARKER | SLOT_WAIT) && this.waitAnswered(slot, buf, start, end)) return;
    if (flags & SLOT_READ && buf[start] === 0x2d && slot.node !== this.ctx.master && retryOnMaster(buf, start)) {
      // LOADING, MASTERDOWN, READONLY, NOSCRIPT from a replica: the master answers instead.
      this.resend(slot, this.ctx.master);
      return;
    }
    if (flags & SLOT_INFO && (buf[start] === 0x24 || buf[start] === 0x3d)) {
      const reply = this.withProxySection(buf, start, end);
      this.fill(slot, reply, 0, reply.length);
      return;
    }
    if (flags & SLOT_WRITE && buf[start] !== 0x2d && this.ctx.causal.holdsReplies) {
      // Workers: the acknowledgement waits until every other worker knows of the write.
      this.ctx.causal.shared!.hold(this, slot, Buffer.from(buf.subarray(start, end)));
      return;
    }
    this.fill(slot, buf, start, end);
  }

  /** A write's reply held until the other workers recorded the write (src/consistency/shared-writes.ts). */
  releaseHeld(slot: unknown, reply: Buffer): void {
    if (this.phase !== CLOSED) this.fill(slot as ReplySlot, reply, 0, reply.length);
  }

  onSlotError(slot: ReplySlot, failure: BackendFailure): void {
    const flags = slot.flags;
    if (flags & SLOT_EXEC) {
      this.tx.execFailed();
      this.execDone();
    }
    if (flags & SLOT_MASTER) this.channel.replied();
    // A write whose connection failed may have run: it counts as acknowledged.
    if (flags & SLOT_WRITE) this.writes.answered(slot);
    if (flags & SLOT_FANOUT) this.fanouts!.shift();
    if (flags & SLOT_WAIT_MARKER) this.waitMarkerError = null;
    if (this.phase === CLOSED) return;
    if (flags & SLOT_READ && slot.retries < MAX_READ_RETRIES && slot.request !== null) {
      const router = this.ctx.router;
      let other = router.readNode(slot.node);
      if (
        (other === null || other === slot.node || !other.reachable) &&
        (!router.master.reachable || (slot.node === router.master && router.replicasInRotation.length === 0))
      ) {
        other = router.fallbackNode(slot.node);
      }
      if (other !== null && other !== slot.node && other.reachable) {
        this.resend(slot, other);
        return;
      }
    }
    if (flags & SLOT_INFO && (failure.kind === 'unreachable' || failure.kind === 'lost')) {
      // The master died under a plain INFO (a client's handshake, often): the proxy's
      // section, as while the master is known down.
      const reply = this.proxyOnlyInfo(`${failure.node} ${failure.detail}`);
      this.fill(slot, reply, 0, reply.length);
      return;
    }
    this.ctx.stats.error(failure.kind === 'timeout' ? ERROR_TIMEOUT : failure.kind === 'busy' ? ERROR_BUSY : ERROR_NODE_DOWN);
    const reply = encodeError(failureText(failure));
    this.fill(slot, reply, 0, reply.length);
    if (flags & SLOT_DEDICATED && this.state & (STATE_TX | STATE_WATCH | STATE_TRACKING)) this.closeAfterReplies();
  }

  /**
   * The answer to the WAIT marker (its slot is silent), or to the WAIT after it: a marker
   * Redis refused (NOPERM for a user that may not publish there) turns the WAIT's reply
   * into an error, since its count would not cover the session's writes.
   * @returns true when the slot was filled here
   */
  private waitAnswered(slot: ReplySlot, buf: Buffer, start: number, end: number): boolean {
    if (slot.flags & SLOT_WAIT_MARKER) {
      this.waitMarkerError = buf[start] === 0x2d ? buf.toString('latin1', start + 1, end - 2) : null;
      return false;
    }
    const error = this.waitMarkerError;
    if (error === null) return false;
    this.waitMarkerError = null;
    this.ctx.stats.error(ERROR_DENIED);
    const reply = encodeError(waitMarkerRefusedText(error));
    this.fill(slot, reply, 0, reply.length);
    return true;
  }

  /** Sends a read again, to `node`; not through the barrier (a read is not ordered against writes), and counted already. */
  private resend(slot: ReplySlot, node: Node): void {
    slot.retries++;
    this.ctx.stats.readRetries++;
    slot.flags &= ~(SLOT_MASTER | SLOT_WRITE);
    slot.node = node;
    const requestFor = slot.requestFor;
    node.sharedLink(requestFor >> 2, (requestFor & 3) as 2 | 3, slot.identity).send(slot, slot.request!, slot.requestStart, slot.requestEnd);
  }

  /** Redis refused CLIENT TRACKING ON: back to the tracking state before it. */
  private trackingRefused(): void {
    this.trackingRedirect = this.trackingBefore;
    if (this.trackingBefore < 0) this.state &= ~STATE_TRACKING;
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
  // ---- reply slots and output ----------------------------------------------------------

  /** The reply slot of the request being dispatched (silent under CLIENT REPLY OFF or SKIP). */
  newSlot(flags: number): ReplySlot {
    if (!(flags & SLOT_SILENT) && (this.repliesOff || this.skipNextReply)) {
      flags |= SLOT_SILENT;
      this.skipNextReply = false;
    }
    const slot = this.replies.push(flags);
    if (flags & (SLOT_READ | SLOT_WRITE) && timingOn()) slot.startedAt = chunkTime();
    return slot;
  }

  /** Fills a slot with `buf[start, end)`; leading filled slots go to the client. */
  private fill(slot: ReplySlot, buf: Buffer, start: number, end: number): void {
    if (this.replies.fill(slot, buf, start, end)) this.outputLimitReached();
    else this.afterWrite();
  }

  /** After replies were written: reading may resume, a closing session may end. */
  private afterWrite(): void {
    if (this.readingPaused) this.updateFlow();
    if (this.phase === CLOSING && this.replies.empty) this.close('closed after its replies', true);
  }

  /**
   * Answers the current request from the proxy itself, in request order: a slot of its
   * own, or in a stream a marker (so it comes after Redis's answers to earlier requests),
   * or, while a transaction's command runs at EXEC, the place in EXEC's array.
   */
  reply(buf: Buffer): void {
    this.servedBy = SERVED_BY_PROXY;
    if (this.capture !== null) {
      this.capture.push(buf);
      return;
    }
    if (this.state & STATE_STREAM && this.replies.streaming) {
      if (this.repliesOff) return;
      if (this.skipNextReply) {
        this.skipNextReply = false;
        return;
      }
      const stream = this.stream!;
      this.channel.writeRaw(stream.mark(MARK_REPLY, buf));
      return;
    }
    this.fill(this.newSlot(0), buf, 0, buf.length);
  }

  /** Answers the current request with an error; `message` carries its prefix (`ERR ...`). */
  replyError(message: string): void {
    this.reply(encodeError(message));
  }

  private outputLimitReached(): void {
    const limit = this.ctx.config.clientOutputLimit;
    this.ctx.logger.warn({ session: this.id, client: this.address, limit }, 'client output limit reached, closing');
    this.close('output limit');
  }

  // ---- flow control and lifecycle ------------------------------------------------------

  /**
   * Dispatch may go on (the barrier cleared, a lease arrived, a marker came back): the
   * stalled request is retried in a microtask, never from inside the callback that called
   * this. Cheap when nothing is stalled.
   */
  wake(): void {
    if (this.redirectWaiters.length > 0) for (const waiter of this.redirectWaiters.splice(0)) waiter.wake();
    if (this.pumpQueued || this.phase !== OPEN || !this.parser.isStalled) return;
    this.pumpQueued = true;
    queueMicrotask(this.pump);
  }

  /** Pauses reading from the client while it has too much in flight or unsent, or is stalled. */
  private updateFlow(): void {
    if (this.phase === CLOSED) return;
    const { maxPipeline, clientOutputPause } = this.ctx.config;
    // A closing session reads on (and drops what it reads), so a client that keeps writing is not blocked.
    const pause =
      this.phase === OPEN &&
      (this.parser.isStalled || this.replies.inflight >= maxPipeline || this.output.unsentBytes >= clientOutputPause);
    if (pause && !this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    } else if (!pause && this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    }
  }

  /** A reload changed the listener's settings: the ones a session holds on to follow. */
  settingsChanged(): void {
    const config = this.ctx.config;
    this.replies.limit = config.clientOutputLimit;
    this.socket.setTimeout(config.clientIdleTimeout);
    this.updateFlow();
  }

  /**
   * The listener's master moved to another server. A session with a dedicated connection
   * on the old one (MULTI, WATCH, Pub/Sub, MONITOR, a blocking command) holds state that
   * server had: it gets the replies owed to it, then is closed, as a client of a
   * failed-over Redis is; after `drainMs` ms it is closed whatever is still owed (a
   * blocking command on the old master would never see the new master's writes).
   * Sessions on shared connections go on: their next master request goes to the new
   * master once the replies owed on the old one are in.
   */
  masterMoved(drainMs: number): void {
    const from = this.channel.leasedFrom;
    if (from === null || from === this.ctx.master) return;
    this.closeAfterReplies();
    if (this.phase === CLOSED) return;
    const timer = setTimeout(() => this.close('the master moved'), drainMs);
    timer.unref();
  }

  /** Stops dispatching; the connection closes once every earlier reply has been written (QUIT, a protocol error). */
  closeAfterReplies(): void {
    if (this.phase !== OPEN) return;
    // A Pub/Sub or MONITOR stream has no last reply: it ends here.
    this.endStream(false);
    this.phase = CLOSING;
    this.parser.close();
    this.updateFlow();
    if (this.replies.empty) this.close('closed after its replies', true);
  }

  onProtocolError(message: string): void {
    this.ctx.stats.error(ERROR_PROTOCOL);
    this.ctx.logger.info({ session: this.id, client: this.address, error: message }, 'client protocol error');
    this.replyError(`ERR ${message}`);
    this.closeAfterReplies();
  }

  /**
   * Closes the session now: the listener forgets it, replies still owed are dropped, the
   * lease is released (proved clean or destroyed). `graceful`: what was written is
   * flushed first (for at most 1 s when the client does not read); otherwise the socket
   * is destroyed at once.
   */
  close(reason: string, graceful = false): void {
    if (this.phase === CLOSED) return;
    this.phase = CLOSED;
    this.parser.close();
    this.channel.close();
    this.ctx.redisUsers.release(this.identity);
    this.replies.clear();
    for (const waiter of this.redirectWaiters.splice(0)) waiter.wake();
    const socket = this.socket;
    if (graceful && !socket.destroyed) {
      // Like Redis: what was written goes out, then the connection closes (not half-closes:
      // a client that keeps writing gets an error at once).
      this.output.flush();
      if (socket.writableLength === 0) {
        socket.destroy();
      } else {
        const linger = setTimeout(() => socket.destroy(), 1000);
        linger.unref();
        socket.once('drain', () => {
          clearTimeout(linger);
          socket.destroy();
        });
      }
    } else {
      this.output.clear();
      socket.destroy();
    }
    this.ctx.stats.closedBytesIn += socket.bytesRead;
    this.ctx.stats.closedBytesOut += socket.bytesWritten;
    this.ctx.logger.debug({ session: this.id, reason }, 'session closed');
    this.ctx.onSessionClosed(this);
  }

  // ---- for local commands --------------------------------------------------------------

  /** Switches the session's database (every connection it uses from now on). */
  selectDb(db: number): void {
    this.db = db;
    this.channel.select(db);
  }

  /**
   * Switches the session's RESP version (HELLO): its requests go over connections
   * speaking it. In a stream the lease is switched in place, and Redis's answer to that
   * HELLO is dropped (a marker): the client gets the proxy's HELLO reply.
   */
  setProtocol(protocol: 2 | 3): void {
    if (protocol === this.protocol) return;
    this.protocol = protocol;
    if (this.state & STATE_STREAM && this.replies.streaming && this.capture === null) {
      this.channel.writeRaw(this.stream!.mark(MARK_DROP_NEXT));
      this.channel.writeRaw(encodeCommand(['HELLO', String(protocol)]));
      this.channel.assumeProtocol(protocol);
      return;
    }
    this.channel.setProtocol(protocol);
  }

  /**
   * CLIENT REPLY: `off` drops every reply until `on`; `skip` drops the next command's
   * reply (ignored while off, as in Redis). In a stream the switch is placed among
   * Redis's replies with a marker.
   * Source: https://redis.io/docs/latest/commands/client-reply/
   */
  setReplyMode(mode: 'on' | 'off' | 'skip'): void {
    const wasOff = this.repliesOff;
    if (mode === 'skip') {
      if (!wasOff) this.skipNextReply = true;
      return;
    }
    this.repliesOff = mode === 'off';
    this.skipNextReply = false;
    if (this.capture === null && this.repliesOff !== wasOff && this.state & STATE_STREAM && this.replies.streaming) {
      this.channel.writeRaw(this.stream!.mark(this.repliesOff ? MARK_DROP_ON : MARK_DROP_OFF));
    }
  }

  /** Clears all session state as RESET does; state held on the lease goes with it. */
  reset(): void {
    this.name = '';
    this.scanNode = null;
    this.tx.clear();
    this.state = 0;
    this.trackingRedirect = -1;
    this.channel.retireLease();
    // Back to the user a new connection is (Redis's `default` with authentication "redis").
    const before = this.identityBeforeLogin();
    if (before !== this.identity) this.runAs(before, false);
    if (before !== null) this.user = 'default';
    this.selectDb(0);
    this.setProtocol(2);
    this.setReplyMode('on');
    this.isAuthenticated = !this.authRequired;
    this.parser.authRequired = this.authRequired;
  }
}

/** True when `argc` (the command name included) fits the command's arity (negative: at least). */
function arityFits(cmd: CommandInfo, argc: number): boolean {
  return cmd.arity >= 0 ? argc === cmd.arity : argc >= -cmd.arity;
}

/**
 * What the locally answered commands (./local-commands.ts, ./client-command.ts) see of a
 * session and of the other sessions of its listener. The Session class implements these;
 * the command handlers depend on the interfaces only, so the session can import them
 * without an import cycle.
 */
import type { Peers } from '../cluster/peers.js';
import type { ListenerConfig } from '../config/types.js';
import type { ListenerStats } from '../metrics/stats.js';

/** One client connection as CLIENT LIST and CLIENT KILL see it. */
export interface ClientView {
  /** The session id (CLIENT ID). */
  readonly id: number;
  /** `ip:port` of the client. */
  readonly address: string;
  /** `ip:port` the client connected to. */
  readonly localAddress: string;
  readonly name: string;
  readonly db: number;
  readonly protocol: 2 | 3;
  readonly user: string;
  readonly libName: string;
  readonly libVersion: string;
  /** Name of the last command (CLIENT LIST cmd=). */
  readonly lastCommand: string;
  /** Epoch ms the session began. */
  readonly createdAt: number;
  /** Coarse epoch ms of the last request. */
  readonly lastActive: number;
  /** CLIENT LIST flags (`N`, `x`, `P`, …) and counts. */
  describe(): { flags: string; sub: number; ssub: number; multi: number };
  /** Closes the connection at once (CLIENT KILL). */
  close(reason: string): void;
  /** Closes the connection after the replies it is owed (QUIT, CLIENT KILL of oneself). */
  closeAfterReplies(): void;
}

/** What a listener tells the local command handlers. */
export interface LocalContext {
  readonly config: ListenerConfig;
  /** Number of databases of the master (`CONFIG GET databases`), for SELECT. */
  readonly databases: number;
  /** `redis_version` of the master ('' until known), for HELLO. */
  readonly serverVersion: string;
  /** Every open session of the listener. */
  readonly sessions: Iterable<ClientView>;
  /** The listener's counters (src/metrics/stats.ts). */
  readonly stats: ListenerStats;
  /** The other worker processes (src/cluster/), or null when the proxy runs one process. */
  readonly peers: Peers | null;
}

/** The session a local command runs for. */
export interface LocalSession extends ClientView {
  readonly ctx: LocalContext;
  name: string;
  libName: string;
  libVersion: string;
  /** Whether the client has authenticated (always true without client auth). */
  readonly authenticated: boolean;
  /** Marks the client authenticated as `user` (AUTH, HELLO AUTH, `authentication: "proxy"`). */
  authenticate(user: string): void;
  /**
   * `authentication: "redis"`: asks the master whether `password` is a valid login for
   * `username` (null: the one-argument `AUTH <password>`), and calls `done` once it has
   * answered, with null on success (the session then runs as that user on every backend
   * connection from its next request on) or the error to reply with (Redis's own refusal,
   * or the proxy's error when the master could not be asked). The session reads no
   * further request until then; `done` answers the command (its reply then keeps its place).
   * See https://redis.io/docs/latest/commands/auth/
   */
  loginRedisUser(username: string | null, password: string, done: (error: string | null) => void): void;
  /**
   * Answers the current request once `pending` settles: `done` gets its value and
   * answers (the reply keeps its place; the session reads no further request meanwhile).
   * @returns false when the answer cannot wait (a local command run at EXEC): the caller
   *   answers now with what it has
   */
  answerLater<T>(pending: Promise<T>, done: (value: T) => void): boolean;
  /** Answers the current request, in request order. */
  reply(buf: Buffer): void;
  /** Answers the current request with an error; `message` carries its prefix (`ERR ...`). */
  replyError(message: string): void;
  /** Switches the session's database (SELECT). */
  selectDb(db: number): void;
  /** Switches the session's RESP version (HELLO). */
  setProtocol(protocol: 2 | 3): void;
  /** CLIENT REPLY: `off` drops every reply until `on`; `skip` drops the next command's reply. */
  setReplyMode(mode: 'on' | 'off' | 'skip'): void;
  /** The session id of the tracking REDIRECT target: -1 tracking off, 0 no redirect (CLIENT GETREDIR). */
  readonly trackingRedirect: number;
  /** Clears the session's state as RESET does. */
  reset(): void;
}

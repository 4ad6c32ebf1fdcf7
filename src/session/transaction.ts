/**
 * A session's open transaction (MULTI … EXEC): what was queued, and what EXEC's reply
 * must do to the session beyond being written.
 *
 * Redis queues every command and runs them at EXEC on the connection, so a command that
 * changes connection state takes effect there, mid-array. The proxy keeps the session's
 * state itself, so such commands are handled as follows (docs/architecture.md):
 * - SELECT is queued as sent (later commands of the transaction run in that database);
 *   when EXEC's array shows it succeeded, the session and its lease are on that database.
 * - CLIENT TRACKING is queued as sent (with a REDIRECT id translated); when it succeeded,
 *   the session's tracking follows.
 * - A command the proxy answers itself (CLIENT REPLY, CLIENT ID, CLIENT SETNAME, …) is
 *   queued as a `PING` placeholder; at EXEC's reply the proxy runs it and writes its
 *   answer in the placeholder's place, and under CLIENT REPLY OFF leaves out the rest of
 *   the array as Redis does (EXEC's header counts every command; the replies that follow
 *   fill the missing elements, exactly as from Redis).
 * - With `authentication: "redis"`, AUTH is queued as sent (Redis runs it at EXEC, on the
 *   lease: later commands of the transaction run as that user); when it succeeded, the
 *   session (and its lease) run as that user. HELLO with AUTH is queued as that AUTH;
 *   when it succeeded, the rest of the HELLO runs as a local command in its place.
 * Any such effect holds the session's next requests until EXEC's reply is in.
 * Source: https://redis.io/docs/latest/develop/interact/transactions/
 */
import { aggregateElements } from '../protocol/reply-elements.js';
import { encodeCommand } from '../protocol/resp.js';

/** What EXEC's reply acts on (the session). */
export interface TransactionHost {
  /** CLIENT REPLY OFF is in force (read after each placeholder runs). */
  readonly repliesOff: boolean;
  /** Runs a locally answered command now; returns its reply, or null when it gives none. */
  runLocal(args: Buffer[]): Buffer | null;
  /** A SELECT inside the transaction succeeded. */
  transactionSelected(db: number): void;
  /** A CLIENT TRACKING inside the transaction succeeded: on or off, and the REDIRECT session id (0: none). */
  transactionTracking(on: boolean, redirect: number): void;
  /** An AUTH inside the transaction succeeded (authentication "redis"): the session and its lease run as that user. */
  transactionAuthenticated(username: string, password: string): void;
}

const EFFECT_SELECT = 1;
const EFFECT_TRACKING = 2;
const EFFECT_LOCAL = 3;
const EFFECT_AUTH = 4;
const EFFECT_AUTH_LOCAL = 5;

interface Effect {
  readonly kind: number;
  /** The database (SELECT), or the REDIRECT session id (TRACKING). */
  readonly value: number;
  /** TRACKING: on (true) or off. */
  readonly on: boolean;
  /** LOCAL, AUTH_LOCAL: the command's arguments, copied. */
  readonly args: Buffer[] | null;
  /** AUTH, AUTH_LOCAL: the user and password logged in with. */
  readonly login?: readonly [string, string];
}

/** The request queued in place of a command the proxy answers itself at EXEC. */
export const PLACEHOLDER = encodeCommand(['PING']);

export class Transaction {
  /** Commands queued so far (CLIENT LIST multi=). */
  queued = 0;
  /** A command was refused by the proxy while queuing: EXEC aborts the transaction, as Redis does. */
  rejected = false;
  /** A (P|S)SUBSCRIBE was queued: EXEC turns into a Pub/Sub stream. */
  subscribes = false;
  /** Effects by the index of their command in EXEC's array. */
  private effects = new Map<number, Effect>();
  /** The effects of each EXEC sent and not yet answered, in send order (null: none). */
  private readonly executing: Array<ReadonlyMap<number, Effect> | null> = [];

  /** A SELECT `db` (valid) was queued. */
  queueSelect(db: number): void {
    this.effects.set(this.queued, { kind: EFFECT_SELECT, value: db, on: false, args: null });
  }

  /** A CLIENT TRACKING was queued: on or off, REDIRECT session id (0: none). */
  queueTracking(on: boolean, redirect: number): void {
    this.effects.set(this.queued, { kind: EFFECT_TRACKING, value: redirect, on, args: null });
  }

  /** A locally answered command was queued as {@link PLACEHOLDER}; `args` must be copies. */
  queueLocal(args: Buffer[]): void {
    this.effects.set(this.queued, { kind: EFFECT_LOCAL, value: 0, on: false, args });
  }

  /** An AUTH `username` `password` was queued as sent (authentication "redis"). */
  queueAuth(username: string, password: string): void {
    this.effects.set(this.queued, { kind: EFFECT_AUTH, value: 0, on: false, args: null, login: [username, password] });
  }

  /**
   * A HELLO with AUTH was queued as that AUTH (authentication "redis"); `args` (copies) is
   * the HELLO without it, run locally in its place when the AUTH succeeded.
   */
  queueAuthThenLocal(username: string, password: string, args: Buffer[]): void {
    this.effects.set(this.queued, { kind: EFFECT_AUTH_LOCAL, value: 0, on: false, args, login: [username, password] });
  }

  /** The transaction ended (EXEC sent, DISCARD, RESET): forgets everything. */
  clear(): void {
    this.queued = 0;
    this.rejected = false;
    this.subscribes = false;
    if (this.effects.size > 0) this.effects = new Map();
  }

  /**
   * EXEC is being sent: its effects wait for its reply, and the next transaction starts
   * afresh. Returns true when there are effects (the session then holds its next
   * requests until {@link execReplied}).
   */
  execSent(): boolean {
    const effects = this.effects.size > 0 ? this.effects : null;
    this.clear();
    this.executing.push(effects);
    return effects !== null;
  }

  /** An EXEC's connection failed before its reply: its effects are dropped (nothing ran that the proxy knows of). */
  execFailed(): void {
    this.executing.shift();
  }

  /**
   * Applies EXEC's reply `buf[start, end)` to `host` and returns what the client is sent
   * instead of it, or null to send it as it is (no effects, or EXEC did not run: an
   * error, or a nil when a WATCHed key changed). `silent` says the reply would not be
   * written (CLIENT REPLY OFF before EXEC); a CLIENT REPLY ON inside turns writing back on
   * from its element.
   */
  execReplied(host: TransactionHost, buf: Buffer, start: number, silent: boolean): Buffer | null {
    const effects = this.executing.shift() ?? null;
    if (effects === null) return null;
    const elements = aggregateElements(buf, start);
    if (elements === null) return null;
    const out: Buffer[] = [];
    if (!silent) out.push(buf.subarray(start, elements[0]));
    for (let i = 0; i + 1 < elements.length; i++) {
      const from = elements[i]!;
      const to = elements[i + 1]!;
      const effect = effects.get(i);
      if (effect?.kind === EFFECT_LOCAL || (effect?.kind === EFFECT_AUTH_LOCAL && buf[from] === 0x2b)) {
        if (effect.kind === EFFECT_AUTH_LOCAL) host.transactionAuthenticated(effect.login![0], effect.login![1]);
        const reply = host.runLocal(effect.args!);
        if (reply !== null && !host.repliesOff) out.push(reply);
        continue;
      }
      if (!host.repliesOff) out.push(buf.subarray(from, to));
      if (effect === undefined || buf[from] !== 0x2b) continue;
      if (effect.kind === EFFECT_SELECT) host.transactionSelected(effect.value);
      else if (effect.kind === EFFECT_AUTH) host.transactionAuthenticated(effect.login![0], effect.login![1]);
      else if (effect.kind === EFFECT_TRACKING) host.transactionTracking(effect.on, effect.value);
    }
    return Buffer.concat(out);
  }
}

/**
 * The Redis ACL users clients log in as on a listener with `authentication: "redis"`
 * (README "Redis ACL users"):
 *
 * - **Checking a login.** `AUTH [user] pass` and `HELLO … AUTH user pass` are checked by
 *   the master itself: the proxy sends `AUTH` with the client's words on a connection of
 *   its own that does nothing else (the verifier), so Redis decides and words every
 *   refusal. A successful AUTH only changes that connection's user, which runs nothing but
 *   AUTH (Redis answers AUTH whoever is logged in).
 * - **Identities.** Each (user, password) that logged in is one {@link BackendIdentity},
 *   shared by the sessions running as it (`inUse` counts them); the nodes keep shared
 *   connections per identity. Identities no session uses are forgotten on the
 *   command-expiry tick ({@link prune}), when the nodes close their idle connections.
 * - **Before a login** a session is Redis's `default` user: {@link anonymous}, whose
 *   connections send no AUTH. Whether `default` needs a password is asked of the master
 *   with a connection that never authenticates ({@link probeDefault}: `PING` answered, or
 *   `NOAUTH`), at start and on every health round; a session that starts while it does
 *   is refused with `NOAUTH Authentication required.` until it logs in, as on Redis.
 *
 * See https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/,
 * https://redis.io/docs/latest/commands/auth/ and https://redis.io/docs/latest/commands/hello/
 */
import { ControlClient, ReplyError, ReplyTimeout } from '../backend/control-client.js';
import { BackendIdentity } from '../backend/identity.js';
import type { Node } from '../backend/node.js';

/** What a login came to. */
export type LoginOutcome =
  | { readonly ok: true; readonly identity: BackendIdentity; readonly username: string }
  | {
      readonly ok: false;
      /**
       * `refused`: Redis refused the credentials, `error` is its own text (WRONGPASS …);
       * `unreachable`: the master could not be reached (`error` says why); `timeout`: it
       * did not answer within `connectTimeout`.
       */
      readonly kind: 'refused' | 'unreachable' | 'timeout';
      readonly error: string;
    };

/** Where the listener's master is now, and its connect timeout (a reload may change both). */
export interface RedisUsersHost {
  readonly master: Node;
  /** ms for connecting to the master and for each of its replies. */
  readonly connectTimeout: number;
}

export class RedisUsers {
  /**
   * Redis's `default` user as a session is before it logs in: connections without AUTH.
   * Permanent (its `inUse` starts at 1 and is never released).
   */
  readonly anonymous = new BackendIdentity('default', undefined);
  /**
   * Whether `default` needs a password (a connection that sends no AUTH is answered
   * `NOAUTH`), from the last {@link probeDefault}; true until one answered, so nothing
   * runs unchecked before the proxy knows.
   */
  defaultNeedsPassword = true;
  private readonly identities = new Map<string, BackendIdentity>();
  private verifier: ControlClient | null = null;
  /** The TLS options the verifier connects with (the master's backendTls when it was made). */
  private verifierTls: Node['tls'] = undefined;
  /** `host:port` the verifier is connected to (the master moves with a reload or Sentinel). */
  private verifierAddress = '';
  private probing: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly host: RedisUsersHost) {
    this.anonymous.inUse = 1;
  }

  /**
   * Asks the master whether `password` (for `username`; null: the one-argument `AUTH
   * <password>`, Redis's `default` user) is a valid login, with an AUTH in the client's
   * own words. Never rejects.
   * @returns the identity to run as, or why not (Redis's own refusal text, or why the
   *   master could not be asked)
   */
  async login(username: string | null, password: string): Promise<LoginOutcome> {
    const master = this.host.master;
    if (!master.reachable) return { ok: false, kind: 'unreachable', error: master.health.error || 'down' };
    const words = username === null ? ['AUTH', password] : ['AUTH', username, password];
    for (let attempt = 1; ; attempt++) {
      try {
        await this.verifierOf(master).call(...words);
        break;
      } catch (err) {
        const message = (err as Error).message;
        if (err instanceof ReplyError) return { ok: false, kind: 'refused', error: message };
        if (err instanceof ReplyTimeout) return { ok: false, kind: 'timeout', error: message };
        // The verifier's connection closed under the call (Redis closes the connections of a
        // user that ACL DELUSER removes, and the verifier is logged in as the last user it
        // checked): once more, on a new connection.
        if (attempt >= 2) return { ok: false, kind: 'unreachable', error: message };
      }
    }
    const user = username ?? 'default';
    return { ok: true, identity: this.identity(user, password), username: user };
  }

  /**
   * The identity of `username` with `password`, made on first use. The caller has checked
   * the credentials (a login, or Redis's answer to an AUTH the client ran on its lease).
   */
  identity(username: string, password: string): BackendIdentity {
    // Length-prefixed, so that no (user, password) pair can spell another's key.
    const key = `${username.length}:${username}${password}`;
    let identity = this.identities.get(key);
    if (identity === undefined) {
      identity = new BackendIdentity(username, password);
      this.identities.set(key, identity);
    }
    return identity;
  }

  /** A session runs as `identity` from now on (null, the backend identity, is not counted). */
  retain(identity: BackendIdentity | null): void {
    if (identity !== null && identity !== this.anonymous) identity.inUse++;
  }

  /** A session no longer runs as `identity` (it switched, or ended). */
  release(identity: BackendIdentity | null): void {
    if (identity !== null && identity !== this.anonymous) identity.inUse--;
  }

  /** Forgets the identities no session runs as (the nodes close their idle connections on the same tick). */
  prune(): void {
    for (const [key, identity] of this.identities) if (identity.inUse <= 0) this.identities.delete(key);
  }

  /** Identities known now (sessions logged in as distinct users), for INFO. */
  get size(): number {
    return this.identities.size;
  }

  /**
   * Asks the master, on a fresh connection that sends no AUTH, whether `default` needs a
   * password: `PING` answered means no, `NOAUTH` means yes; any other outcome (the master
   * down or slow) keeps what was known. One probe at a time; never rejects.
   */
  probeDefault(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.probing ??= this.probe().finally(() => {
      this.probing = null;
    });
    return this.probing;
  }

  private async probe(): Promise<void> {
    const { host, port, tls } = this.host.master;
    const client = new ControlClient({ host, port, tls, timeout: this.host.connectTimeout });
    try {
      await client.call('PING');
      this.defaultNeedsPassword = false;
    } catch (err) {
      if (err instanceof ReplyError && err.message.startsWith('NOAUTH')) this.defaultNeedsPassword = true;
    } finally {
      client.close();
    }
  }

  /** Closes the verifier. */
  close(): void {
    this.closed = true;
    this.verifier?.close();
    this.verifier = null;
  }

  /** The verifier for `master`, made anew when the master moved. */
  private verifierOf(master: Node): ControlClient {
    // Made anew for another master, or the same one reached differently (its backendTls changed).
    const address = `${master.host}:${master.port}`;
    if (this.verifier === null || this.verifierAddress !== address || this.verifierTls !== master.tls) {
      this.verifier?.close();
      this.verifier = new ControlClient({ host: master.host, port: master.port, tls: master.tls, timeout: this.host.connectTimeout });
      this.verifierTls = master.tls;
      this.verifierAddress = address;
    }
    return this.verifier;
  }
}

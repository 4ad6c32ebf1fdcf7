/**
 * Who a backend connection is authenticated as.
 *
 * Identity 0, written `null` in the code, is the listener's own backend identity: each
 * node's credentials (`backendUsername`/`backendPassword`, or the node's own pair). It is
 * what every connection of a listener with `authentication: "proxy"` uses, and what the
 * proxy's own questions (health checks, ROLE, ACL DRYRUN) always use; looking it up costs
 * nothing (no map, no allocation).
 *
 * A `BackendIdentity` is a Redis ACL user a client logged in as on a listener with
 * `authentication: "redis"` (or Redis's `default` user before that login). Connections
 * opened for it authenticate with its credentials on every node, master and replicas, so
 * Redis enforces that user's ACL. A node keeps shared connections per identity (as it
 * does per database and RESP version), and a dedicated connection is switched to an
 * identity with AUTH when leased, and back to identity 0 before it returns to the pool
 * (./lease.ts): a connection authenticated as one user never serves another.
 * See https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/ and
 * https://redis.io/docs/latest/commands/auth/
 */

let nextIdentityId = 1;

export class BackendIdentity {
  /** Unique, > 0 (0 is the node's own credentials, `null`). Keys a node's shared connections. */
  readonly id = nextIdentityId++;
  /**
   * Sessions running as this identity now, kept by whoever hands identities out (the
   * listener's RedisUsers). While it is 0, nodes close the identity's shared connections
   * as soon as they owe nothing (on the command-expiry tick).
   */
  inUse = 0;

  /**
   * @param username the ACL user (`default` for Redis's default user)
   * @param password its password; undefined: connections send no AUTH and run as
   *   `default` (only meaningful while `default` needs no password)
   */
  constructor(
    readonly username: string,
    readonly password: string | undefined,
  ) {}
}

/**
 * The AUTH command for `username` / `password` (ACL form). Without a password: `AUTH
 * default ""`, which Redis accepts exactly when `default` has `nopass`.
 * See https://redis.io/docs/latest/commands/auth/
 */
export function authWords(username: string | undefined, password: string | undefined): string[] {
  if (password === undefined) return ['AUTH', 'default', ''];
  return username === undefined ? ['AUTH', password] : ['AUTH', username, password];
}

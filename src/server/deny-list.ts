/**
 * A listener's deny list: the commands the proxy refuses on it (`denyCommands`, and
 * REPLICAOF, SLAVEOF, FAILOVER and SHUTDOWN unless `allowTopologyCommands`), and whether
 * scripts may run there.
 *
 * A command sent directly or inside MULTI is checked by the proxy ({@link DenyList.has}).
 * A command called from a Lua script (EVAL) or a function (FCALL) never passes through
 * the proxy, so for scripts the proxy relies on Redis's ACL: {@link DenyList.verify} asks
 * every node, with ACL DRYRUN, whether the ACL user the proxy authenticates as may run
 * each denied command that a script could call. Where one could run, scripts are refused
 * on the listener ({@link DenyList.scriptRefusal}) unless `scriptsBypassDenyCommands`.
 *
 * Sources:
 *  - ACL DRYRUN (Redis 7.0+): https://redis.io/docs/latest/commands/acl-dryrun/
 *  - ACL rules (`-flushall`, `-config|set`): https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/
 *  - the `noscript` command flag: https://redis.io/docs/latest/commands/command-info/
 *  - scripts run commands as the calling user: https://redis.io/docs/latest/develop/interact/programmability/eval-intro/
 */
import { CMD_NOSCRIPT, lookupCommand, SCRIPT_COMMANDS, TOPOLOGY_COMMANDS, type CommandInfo } from '../commands/index.js';
import type { ListenerConfig } from '../config/types.js';

/** Topology commands (refused unless `allowTopologyCommands`) and the script commands {@link DenyList.scriptRefusal} applies to. */
export { SCRIPT_COMMANDS, TOPOLOGY_COMMANDS };

/** The listener settings a DenyList is built from (a normalized ListenerConfig has them all). */
export type DenyListSettings = Pick<ListenerConfig, 'denyCommands' | 'allowTopologyCommands' | 'scriptsBypassDenyCommands'>;

/**
 * One Redis server to check with ACL DRYRUN. The backend `Node` (src/backend/node.ts)
 * provides `label` and `call`; `username` comes from its NodeConfig.
 */
export interface DryRunNode {
  /** Names the node in the verify report, e.g. `master 10.0.0.1:6379`. */
  label: string;
  /** ACL user the proxy authenticates to this node as; undefined = `default`. */
  username: string | undefined;
  /**
   * Sends one command and resolves with the decoded reply (a bulk string as a string or
   * Buffer, a status reply such as OK as a string). Rejects on an error reply (with the
   * error text as the message) or when the node cannot be reached.
   */
  call(...args: Array<string | Buffer>): Promise<unknown>;
}

/** One (entry, command, node) that Redis was not found to refuse. */
export interface UnenforcedCommand {
  /** The denyCommands entry, as normalized (`config`, `config|set`, `flushall`). */
  entry: string;
  /** The command checked for it (`config|help` for the entry `config`). */
  command: string;
  /** The node's label. */
  node: string;
  /**
   * What came back instead of a refusal: `ACL DRYRUN replied: <reply>` (e.g. `OK`, or a
   * refusal for a key) or `ACL DRYRUN failed: <error or failure>` (e.g.
   * `ERR Command 'ft.dropindex' not found`, `connection closed`), or `no node to check`.
   */
  reason: string;
}

/** What {@link DenyList.verify} found. */
export interface DenyVerifyResult {
  /** Every script-reachable entry is refused by Redis to the proxy's user on every node given. */
  enforced: boolean;
  /** The checks that did not find a refusal, in entry order then node order; empty when `enforced`. */
  unenforced: UnenforcedCommand[];
}

/** Text of the ACL DRYRUN reply for a command the user may not run: 7.0 `This user has no permissions to run the 'flushall' command`, 7.2+ `User proxy has ...`. */
const NO_PERMISSION_TO_RUN = /has no permissions to run the '([^']*)' command/i;
/** Error reply of ACL DRYRUN when the arguments do not fit the command's arity. */
const WRONG_ARITY = /wrong number of arguments/i;
/** A placeholder argument: only its count matters (ACL DRYRUN checks the command before keys and channels). */
const DUMMY_ARG = 'redis-proxy-dryrun';
/** Most arguments (after the command name) tried for a command whose arity the table does not know. */
const MAX_PROBE_ARGS = 8;

/** Seen from a script: the entry's commands a script could call (`names`), and their table entries where known. */
interface Reach {
  entry: string;
  /** Full names (`config|help`) a script could call that the entry denies; for an unknown (module) entry, the entry itself. */
  commands: Array<{ name: string; info: CommandInfo | undefined }>;
}

/**
 * The deny list of one listener. Build one per listener from its normalized config;
 * `has` and `deniedMessage` answer at once, `scriptRefusal` reflects the last completed
 * {@link verify}.
 */
export class DenyList {
  /** The listener's `denyCommands`, as normalized by loadConfig (`flushall`, `config|set`). */
  readonly entries: readonly string[];
  /**
   * The entries a Lua script or a function could call, in `entries` order: a command
   * without the `noscript` flag, a container with at least one subcommand other than
   * HELP without it (`config` is not: only CONFIG HELP lacks the flag), and every module entry (a name with a '.', such as
   * `ft.dropindex`) or other entry the command table does not know.
   */
  readonly scriptReachable: readonly string[];
  private readonly denied: ReadonlySet<string>;
  private readonly topology: ReadonlySet<string>;
  private readonly bypass: boolean;
  private readonly reach: readonly Reach[];
  /** Entries not found enforced at the last completed verify; undefined before the first. */
  private notEnforced: readonly string[] | undefined;
  /** Bumped by each verify call: only the latest call's result is recorded. */
  private generation = 0;

  /**
   * @param config the listener's normalized config (only `denyCommands`,
   *   `allowTopologyCommands` and `scriptsBypassDenyCommands` are read). Entries are
   *   expected lowercase with subcommands as `container|sub`, as loadConfig writes them.
   *   Never throws; reads the command table (static and learned) once, here.
   */
  constructor(config: DenyListSettings) {
    this.entries = Object.freeze([...config.denyCommands]);
    this.denied = new Set(config.denyCommands);
    this.topology = new Set(config.allowTopologyCommands ? [] : TOPOLOGY_COMMANDS);
    this.bypass = config.scriptsBypassDenyCommands;
    this.reach = this.entries.map(reachOf).filter((r) => r.commands.length > 0);
    this.scriptReachable = Object.freeze(this.reach.map((r) => r.entry));
    this.notEnforced = undefined;
  }

  /**
   * Whether the proxy refuses the command `name`: a resolved, lowercase command name as
   * the command table writes it (`flushall`, `config|set`; for a command the table does
   * not know, the lowercase first word). True when `name` is listed in denyCommands, or,
   * for a subcommand, its container is (`config` denies `config|set`), or `name` is a
   * topology command (REPLICAOF, SLAVEOF, FAILOVER, SHUTDOWN) and the listener does not
   * set `allowTopologyCommands`. Cheap: for the per-request path.
   */
  has(name: string): boolean {
    if (this.denied.has(name) || this.topology.has(name)) return true;
    const bar = name.indexOf('|');
    return bar > 0 && this.denied.has(name.slice(0, bar));
  }

  /**
   * The RESP error text (no leading '-', no CRLF) the client gets for a command that
   * {@link has} refuses. For a denyCommands entry:
   * `ERR redis-proxy: command '<name>' is denied on listener '<listenerName>' (its denyCommands setting)`;
   * for a topology command that denyCommands does not list:
   * `ERR redis-proxy: command '<name>' is refused on listener '<listenerName>': it changes the replication topology the proxy manages; set "allowTopologyCommands": true to forward it to the master`.
   *
   * @param name the command name as passed to {@link has}
   * @param listenerName the listener's `name`
   */
  deniedMessage(name: string, listenerName: string): string {
    const bar = name.indexOf('|');
    const listed = this.denied.has(name) || (bar > 0 && this.denied.has(name.slice(0, bar)));
    if (!listed && this.topology.has(name)) {
      return (
        `ERR redis-proxy: command '${name}' is refused on listener '${listenerName}': it changes the replication ` +
        'topology the proxy manages; set "allowTopologyCommands": true to forward it to the master'
      );
    }
    return `ERR redis-proxy: command '${name}' is denied on listener '${listenerName}' (its denyCommands setting)`;
  }

  /**
   * Whether Redis refused every script-reachable entry at the last completed
   * {@link verify}: undefined before the first completes (and always true when no entry
   * is reachable from scripts).
   */
  get enforcedByRedis(): boolean | undefined {
    if (this.reach.length === 0) return true;
    return this.notEnforced === undefined ? undefined : this.notEnforced.length === 0;
  }

  /**
   * Checks, on each node, that Redis's ACL refuses every script-reachable entry to the
   * user the proxy authenticates as, and records the result for {@link scriptRefusal}.
   *
   * For each reachable command and node it sends
   * `ACL DRYRUN <username> <command> [<subcommand>] [dummy args...]` (Redis 7.0+,
   * https://redis.io/docs/latest/commands/acl-dryrun/), with as many dummy arguments as
   * the command's arity in the command table needs (positive arity: exactly that many
   * words counting the command and subcommand names; negative: at least that many). For a
   * command the table does not know (a module command), it starts with no argument and
   * adds one at a time while Redis answers "wrong number of arguments" (up to 8).
   * A container entry (`config`) is checked through each of its subcommands that a script
   * could call (`config|help`).
   *
   * A check counts as enforced only when the reply (a bulk string in Redis 7.x, an error
   * reply accepted too) says the user has no permission to run that very command
   * (`This user has no permissions to run the 'flushall' command`). Anything else is
   * not enforced: OK, a refusal for a key or channel, an error (unknown command or
   * subcommand, ACL DRYRUN itself not permitted or unknown before Redis 7.0), or a call
   * that fails or rejects. Never throws.
   *
   * Pass every node of the listener (master and replicas): the result replaces the one
   * before, and an empty `nodes` with reachable entries counts as not enforced. Calls made
   * while an earlier verify is still running win over it: only the result of the call
   * started last is recorded. Calls to one node are sent together (they pipeline on its
   * control connection); the promise settles when every call has.
   *
   * @param nodes the nodes to check, each with the ACL user the proxy uses there
   * @returns what was found (also recorded, unless a later verify was started meanwhile)
   */
  async verify(nodes: readonly DryRunNode[]): Promise<DenyVerifyResult> {
    const generation = ++this.generation;
    const unenforced: UnenforcedCommand[] = [];
    if (this.reach.length > 0 && nodes.length === 0) {
      for (const r of this.reach) {
        unenforced.push({ entry: r.entry, command: r.commands[0]!.name, node: '(none)', reason: 'no node to check' });
      }
    }
    const perNode = await Promise.all(
      nodes.map((node) =>
        Promise.all(
          this.reach.map((r) =>
            Promise.all(
              r.commands.map(async (c) => {
                const reason = await dryRun(node, c.name, c.info);
                return reason === null ? null : { entry: r.entry, command: c.name, node: node.label, reason };
              }),
            ),
          ),
        ),
      ),
    );
    // Entry order, then node order, then command order.
    this.reach.forEach((_, i) => {
      for (const byEntry of perNode) {
        for (const found of byEntry[i]!) if (found !== null) unenforced.push(found);
      }
    });
    if (generation === this.generation) {
      const missing = new Set(unenforced.map((u) => u.entry));
      this.notEnforced = this.reach.map((r) => r.entry).filter((e) => missing.has(e));
    }
    return { enforced: unenforced.length === 0, unenforced };
  }

  /**
   * Whether scripts may run on this listener: null when they may (no denyCommands entry
   * is reachable from scripts, or the last {@link verify} found Redis refusing all of
   * them on every node, or the listener sets `scriptsBypassDenyCommands`); otherwise the
   * RESP error text (no leading '-', one line) the proxy sends for EVAL, EVALSHA,
   * EVAL_RO, EVALSHA_RO, FCALL and FCALL_RO ({@link SCRIPT_COMMANDS}). Before the first
   * verify completes, scripts are refused whenever an entry is reachable. Texts:
   *
   *   `ERR redis-proxy: scripts are refused on listener '<listenerName>': its denyCommands (flushall, keys) can be called from a script and Redis does not refuse them to the proxy's backend user; deny them to that user with an ACL (ACL SETUSER <user> -flushall -keys) or set "scriptsBypassDenyCommands": true`
   *
   * and before the first verify, "and the proxy has not yet checked that Redis refuses
   * them to its backend user" in place of "and Redis does not refuse ... user". The list
   * names the entries not found enforced (before the first verify: every reachable one).
   *
   * @param listenerName the listener's `name`
   */
  scriptRefusal(listenerName: string): string | null {
    if (this.bypass || this.reach.length === 0) return null;
    const verified = this.notEnforced !== undefined;
    const names = this.notEnforced ?? this.scriptReachable;
    if (names.length === 0) return null;
    const why = verified
      ? "Redis does not refuse them to the proxy's backend user"
      : 'the proxy has not yet checked that Redis refuses them to its backend user';
    return (
      `ERR redis-proxy: scripts are refused on listener '${listenerName}': its denyCommands (${names.join(', ')}) ` +
      `can be called from a script and ${why}; deny them to that user with an ACL ` +
      `(ACL SETUSER <user> ${names.map((n) => `-${n}`).join(' ')}) or set "scriptsBypassDenyCommands": true`
    );
  }
}

/**
 * The commands a script could call that `entry` denies (none when all are `noscript`).
 * A module entry (a name with a '.') is always reachable: its flags are not known for
 * sure (the table learns modules at run time); a learned entry only lends its arity.
 */
function reachOf(entry: string): Reach {
  const bar = entry.indexOf('|');
  const container = lookupCommand(bar < 0 ? entry : entry.slice(0, bar));
  const sub = bar > 0 ? container?.subcommands?.get(entry.slice(bar + 1)) : container;
  if (entry.includes('.') || sub === undefined) return { entry, commands: [{ name: entry, info: sub }] };
  if (bar > 0) return { entry, commands: sub.flags & CMD_NOSCRIPT ? [] : [{ name: sub.name, info: sub }] };
  // A container's HELP subcommand only prints text: denying it protects nothing, so a script
  // that can call only CONFIG HELP does not make `config` reachable.
  const candidates = sub.subcommands === null ? [sub] : [...sub.subcommands.values()].filter((c) => !c.name.endsWith('|help'));
  return {
    entry,
    commands: candidates.filter((c) => !(c.flags & CMD_NOSCRIPT)).map((c) => ({ name: c.name, info: c })),
  };
}

/**
 * Runs ACL DRYRUN for `name` (`flushall`, `config|help`) on `node`.
 * @param info the command's table entry (for its arity); undefined when not known
 * @returns null when Redis refuses the command to the node's user, else why not
 */
async function dryRun(node: DryRunNode, name: string, info: CommandInfo | undefined): Promise<string | null> {
  const words = name.split('|');
  const user = node.username ?? 'default';
  let extra = info === undefined ? 0 : Math.max(0, Math.abs(info.arity) - words.length);
  for (;;) {
    const args = [...words, ...Array.from({ length: extra }, () => DUMMY_ARG)];
    let text: string;
    let failed = false;
    try {
      text = replyText(await node.call('ACL', 'DRYRUN', user, ...args));
    } catch (err) {
      // An error reply (unknown command, NOPERM for ACL DRYRUN itself, ...) or a failed call.
      text = err instanceof Error ? err.message : String(err);
      failed = true;
    }
    const refused = NO_PERMISSION_TO_RUN.exec(text);
    if (refused !== null && refused[1]!.toLowerCase() === name) return null;
    if (failed && info === undefined && WRONG_ARITY.test(text) && extra < MAX_PROBE_ARGS) {
      extra++;
      continue;
    }
    return `ACL DRYRUN ${failed ? 'failed' : 'replied'}: ${text}`;
  }
}

function replyText(reply: unknown): string {
  if (typeof reply === 'string') return reply;
  if (Buffer.isBuffer(reply)) return reply.toString('utf8');
  return JSON.stringify(reply) ?? String(reply);
}

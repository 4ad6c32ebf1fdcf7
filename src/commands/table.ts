/**
 * The command table: for every Redis command and subcommand its arity, flags and
 * key positions, as `COMMAND INFO` reports them.
 *
 * The static part is `table.json`, generated from a real redis-server by
 * `scripts/gen-commands.mjs` (`npm run gen:commands`). Commands the static table
 * lacks (module commands such as JSON.GET, or commands of a newer server) are
 * added at run time from a master's `COMMAND INFO` reply with {@link learnCommands}.
 *
 * Source of the data and its meaning: https://redis.io/docs/latest/commands/command-info/
 */

import table from './table.json' with { type: 'json' };

import { FLAG_BITS } from './flags.js';
import { routeOf, traitsOf } from './routes.js';

/** One command or subcommand of the table. Treat as read-only. */
export interface CommandInfo {
  /** Lowercase name; `container|sub` for subcommands, e.g. `config|get`. */
  name: string;
  /**
   * Redis arity, counting the command name (and for subcommands the container name):
   * positive = exactly that many arguments, negative = at least `-arity`.
   */
  arity: number;
  /** OR of the CMD_* bits. */
  flags: number;
  /** Position of the first key argument (0 = no keys; 1 = the argument after the name). */
  firstKey: number;
  /** Position of the last key argument; negative counts from the end (-1 = last argument). */
  lastKey: number;
  /** Distance between key positions (e.g. 2 for MSET's key/value pairs); 0 when no keys. */
  step: number;
  /** Group from COMMAND DOCS ('string', 'list', 'server', ...); '' when not known (learned at run time). */
  group: string;
  /** For container commands (CONFIG, OBJECT, CLIENT, ...): subcommands keyed by lowercase name ('get'); else null. */
  subcommands: Map<string, CommandInfo> | null;
  /** How the proxy handles it: a ROUTE_* value of ./routes.ts, set when the entry is installed. */
  route: number;
  /** TRAIT_* bits of ./routes.ts, set when the entry is installed. */
  traits: number;
  /**
   * A small number naming the command for per-command counters (metrics): the index of
   * its name in {@link COMMAND_NAMES}, given when the entry is installed and kept when a
   * learned entry replaces it. 0 is no command (a name the table lacks).
   */
  id: number;
}

/** The name of each command id (index 0: a command the table does not know). */
export const COMMAND_NAMES: string[] = ['unknown'];

/**
 * Top-level index. Each command is stored under its lowercase AND its uppercase
 * name, so that the two spellings clients actually send hit without allocating;
 * only mixed case ('Get') pays for a toLowerCase().
 */
const byName = new Map<string, CommandInfo>();

/**
 * Case-folded index of each container's subcommands (lowercase and uppercase keys),
 * kept apart from the public `subcommands` map, which is lowercase only.
 */
const subIndex = new WeakMap<CommandInfo, Map<string, CommandInfo>>();

function flagBits(names: Iterable<unknown>): number {
  let bits = 0;
  for (const n of names) {
    const s = typeof n === 'string' ? n : Buffer.isBuffer(n) ? n.toString('latin1') : null;
    if (s === null) continue;
    bits |= FLAG_BITS.get(s) ?? FLAG_BITS.get(s.toLowerCase()) ?? 0;
  }
  return bits;
}

function indexSubcommands(container: CommandInfo): void {
  const subs = container.subcommands;
  if (subs === null) return;
  const idx = new Map<string, CommandInfo>();
  for (const [key, sub] of subs) {
    idx.set(key, sub);
    idx.set(key.toUpperCase(), sub);
  }
  subIndex.set(container, idx);
}

/** Decides the route and traits of an entry and of its subcommands (./routes.ts). */
function classify(cmd: CommandInfo): void {
  if (cmd.id === 0) {
    cmd.id = COMMAND_NAMES.length;
    COMMAND_NAMES.push(cmd.name);
  }
  cmd.route = routeOf(cmd.name, cmd.flags, cmd.subcommands?.has('setinfo') ?? false);
  cmd.traits = traitsOf(cmd.name, cmd.flags);
  if (cmd.subcommands !== null) for (const sub of cmd.subcommands.values()) classify(sub);
}

function install(cmd: CommandInfo): void {
  classify(cmd);
  byName.set(cmd.name, cmd);
  byName.set(cmd.name.toUpperCase(), cmd);
  indexSubcommands(cmd);
}

/** Builds the static table from table.json (rows are sorted, containers before their `|` subcommands). */
function loadStatic(): void {
  const containers = new Map<string, CommandInfo>();
  const pending: CommandInfo[] = [];
  for (const row of table.commands) {
    const info: CommandInfo = {
      name: row.name,
      arity: row.arity,
      flags: flagBits(row.flags),
      firstKey: row.firstKey,
      lastKey: row.lastKey,
      step: row.step,
      group: row.group,
      subcommands: null,
      route: 0,
      traits: 0,
      id: 0,
    };
    if (row.name.includes('|')) pending.push(info);
    else containers.set(row.name, info);
  }
  for (const sub of pending) {
    const bar = sub.name.indexOf('|');
    const parent = containers.get(sub.name.slice(0, bar));
    if (parent === undefined) continue; // cannot happen with a generated table
    (parent.subcommands ??= new Map()).set(sub.name.slice(bar + 1), sub);
  }
  for (const cmd of containers.values()) install(cmd);
}

loadStatic();

/** Redis version the static table was generated from (e.g. '7.0.15'). */
export const TABLE_REDIS_VERSION: string = table.redisVersion;

/**
 * Every name of the static table (table.json), lowercase and sorted: commands (`config`)
 * and subcommands (`config|set`). Commands learned at run time are not in it.
 */
export const STATIC_COMMAND_NAMES: readonly string[] = Object.freeze(table.commands.map((row) => row.name).sort());

/**
 * Case-insensitive lookup of a command by name.
 *
 * Hot path: called once per request. 'GET' and 'get' hit without allocating;
 * mixed case costs one toLowerCase(). Subcommand names (`config|get`) are not
 * top-level commands and return undefined: use {@link resolveSubcommand}.
 *
 * @param name command name as the client sent it (first element of the request)
 * @returns the table entry, or undefined when the command is unknown (route it to the master)
 * @see https://redis.io/docs/latest/commands/command-info/
 */
export function lookupCommand(name: string): CommandInfo | undefined {
  return byName.get(name) ?? byName.get(name.toLowerCase());
}

// A small cache from a name's bytes to its entry, so the hot path need not build a string
// per request: a slot is picked by length and the first and last byte, and hit when the
// bytes match the entry's name ignoring ASCII case.
const CACHE_SLOTS = 256;
const cachedNames: Array<Uint8Array | undefined> = new Array(CACHE_SLOTS);
const cachedInfos: Array<CommandInfo | undefined> = new Array(CACHE_SLOTS);

function clearLookupCache(): void {
  cachedNames.fill(undefined);
  cachedInfos.fill(undefined);
}

/**
 * {@link lookupCommand} for a name given as bytes `buf[start, end)` (case-insensitive),
 * without allocating when the name was seen recently.
 */
export function lookupCommandBytes(buf: Uint8Array, start: number, end: number): CommandInfo | undefined {
  const len = end - start;
  if (len === 0 || len > 40) return lookupCommand(Buffer.from(buf.buffer, buf.byteOffset + start, len).toString('latin1'));
  const slot = (len * 31 + (buf[start]! | 0x20) * 7 + (buf[end - 1]! | 0x20)) & (CACHE_SLOTS - 1);
  const name = cachedNames[slot];
  if (name !== undefined && name.length === len) {
    let k = 0;
    for (; k < len; k++) {
      const c = buf[start + k]!;
      const want = name[k]!;
      if (c !== want && !(c >= 0x41 && c <= 0x5a && (c | 0x20) === want)) break;
    }
    if (k === len) return cachedInfos[slot];
  }
  const info = lookupCommand(Buffer.from(buf.buffer, buf.byteOffset + start, len).toString('latin1'));
  if (info !== undefined && info.name.length === len) {
    cachedNames[slot] = Buffer.from(info.name, 'latin1');
    cachedInfos[slot] = info;
  }
  return info;
}

/**
 * For a container command (CONFIG, OBJECT, CLIENT, XINFO, MEMORY, ...) the entry of
 * its subcommand, else the command itself. Case-insensitive. A missing `subName`
 * (e.g. a bare `CONFIG`) or an unknown subcommand returns the container, whose own
 * flags in Redis 7 are empty (neither readonly nor write), so it routes to the master.
 *
 * @param cmd an entry returned by {@link lookupCommand}
 * @param subName the second argument of the request, as sent
 * @see https://redis.io/docs/latest/commands/command-info/
 */
export function resolveSubcommand(cmd: CommandInfo, subName: string | undefined): CommandInfo {
  if (cmd.subcommands === null || subName === undefined) return cmd;
  const idx = subIndex.get(cmd);
  if (idx !== undefined) {
    const hit = idx.get(subName);
    if (hit !== undefined) return hit;
  }
  return cmd.subcommands.get(subName.toLowerCase()) ?? cmd;
}

function asString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return null;
}

function asInt(v: unknown): number | null {
  if (typeof v === 'number') return Number.isInteger(v) ? v : null;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return null;
}

/** Decodes one COMMAND INFO entry; null when malformed. */
function decodeEntry(entry: unknown, existing: CommandInfo | undefined): CommandInfo | null {
  if (!Array.isArray(entry) || entry.length < 6) return null;
  const rawName = asString(entry[0]);
  const arity = asInt(entry[1]);
  const rawFlags: unknown = entry[2];
  const firstKey = asInt(entry[3]);
  const lastKey = asInt(entry[4]);
  const step = asInt(entry[5]);
  if (rawName === null || rawName === '' || arity === null || arity === 0) return null;
  if (firstKey === null || lastKey === null || step === null) return null;
  if (!Array.isArray(rawFlags) && !(rawFlags instanceof Set)) return null;
  const name = rawName.toLowerCase();

  let subcommands: Map<string, CommandInfo> | null = null;
  const rawSubs: unknown = entry[9];
  if (Array.isArray(rawSubs)) {
    for (const rawSub of rawSubs) {
      const subName = Array.isArray(rawSub) ? asString(rawSub[0])?.toLowerCase() : undefined;
      const key = subName === undefined ? '' : subName.slice(subName.indexOf('|') + 1);
      const sub = decodeEntry(rawSub, existing?.subcommands?.get(key));
      if (sub === null || key === '') continue;
      (subcommands ??= new Map()).set(key, sub);
    }
  }

  return {
    name,
    arity,
    flags: flagBits(rawFlags as Iterable<unknown>),
    firstKey,
    lastKey,
    step,
    group: existing?.group ?? '',
    subcommands,
    route: 0,
    traits: 0,
    id: existing?.id ?? 0,
  };
}

/**
 * Adds or replaces commands learned at run time from a master's `COMMAND INFO` reply
 * (no arguments for all commands, or with names such as `COMMAND INFO JSON.GET`), as
 * decoded by redis-parser: an array of entries, each
 * `[name, arity, flags[], firstKey, lastKey, step, aclCategories?, tips?, keySpecs?, subcommands?]`
 * where subcommands is an array of entries of the same shape named `container|sub`.
 * Strings may be JS strings or Buffers; numbers may be numbers or numeric strings.
 *
 * Typical use: module commands (JSON.GET, FT.SEARCH, ...) that the static table lacks.
 * A learned entry replaces the static one of the same name (keeping its group, which
 * COMMAND INFO does not carry); new entries get group ''. The table is process-wide.
 *
 * Never throws: malformed entries (and nil entries for unknown names) are skipped;
 * a reply that is not an array adds nothing.
 *
 * @param reply the decoded COMMAND INFO reply
 * @returns how many top-level commands were added or replaced (subcommands not counted)
 * @see https://redis.io/docs/latest/commands/command-info/
 */
export function learnCommands(reply: unknown): number {
  if (!Array.isArray(reply)) return 0;
  let count = 0;
  for (const entry of reply) {
    try {
      const rawName = Array.isArray(entry) ? asString(entry[0]) : null;
      const existing = rawName === null ? undefined : byName.get(rawName.toLowerCase());
      const info = decodeEntry(entry, existing);
      if (info === null || info.name.includes('|')) continue;
      install(info);
      count++;
    } catch {
      // malformed beyond what decodeEntry checks (e.g. a throwing iterable): skip it
    }
  }
  if (count > 0) clearLookupCache();
  return count;
}

/**
 * Config problems in the user's terms.
 *
 * Every problem is one line `<path>: <what is wrong>; <what is allowed>`, where <path>
 * is the place in the file written as in JavaScript, from the top of the file:
 *
 *   array form:   [0].slave[1].port
 *   object form:  listeners[0].slave[1].port, defaults.readPolicy, logLevel
 *   the file as a whole: (top level)
 *
 * Keys that are not plain identifiers are quoted: `[0]["my key"]`.
 * Values of keys containing "password" are never echoed, only their JSON type.
 */
import type { ErrorObject } from 'ajv';
import { EXPECTED } from './schema.js';

/**
 * Thrown by `loadConfig` and `normalizeConfig` when the file cannot be used.
 * `problems` holds one line per problem (see the module doc for the style); `message`
 * holds them all, after a header naming the file when there is one.
 */
export class ConfigError extends Error {
  /** One self-contained line per problem, in file order. Never empty. */
  readonly problems: string[];
  /** The config file the problems are in, when loaded from a file. */
  readonly file: string | undefined;

  constructor(problems: string[], file?: string) {
    const header = file === undefined ? 'invalid config' : `invalid config file ${file}`;
    super(`${header}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
    this.file = file;
  }
}

/** A problem with where it is, so problems can be put in file order. */
export interface Problem {
  /** JSON-pointer segments (unescaped) from the top of the file. */
  segments: string[];
  message: string;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Writes `segments` (walking `root` to tell array indices from keys) as `a.b[0].c`. */
export function formatPath(root: unknown, segments: readonly string[]): string {
  let out = '';
  let node: unknown = root;
  for (const seg of segments) {
    if (Array.isArray(node)) {
      out += `[${seg}]`;
    } else if (IDENTIFIER.test(seg)) {
      out += out === '' ? seg : `.${seg}`;
    } else {
      out += `[${JSON.stringify(seg)}]`;
    }
    node = isRecord(node) || Array.isArray(node) ? (node as Record<string, unknown>)[seg] : undefined;
  }
  return out === '' ? '(top level)' : out;
}

/** Orders problems as their places appear in the file; keys absent from it come last. */
export function sortProblems(root: unknown, problems: Problem[]): Problem[] {
  const keyOf = (segments: string[]): number[] => {
    const key: number[] = [];
    let node: unknown = root;
    for (const seg of segments) {
      if (Array.isArray(node)) {
        key.push(Number(seg));
        node = node[Number(seg)];
      } else if (isRecord(node)) {
        const i = Object.keys(node).indexOf(seg);
        key.push(i < 0 ? Number.MAX_SAFE_INTEGER : i);
        node = node[seg];
      } else {
        key.push(Number.MAX_SAFE_INTEGER);
        node = undefined;
      }
    }
    return key;
  };
  const keyed = problems.map((p, i) => ({ p, i, key: keyOf(p.segments) }));
  keyed.sort((a, b) => {
    const n = Math.min(a.key.length, b.key.length);
    for (let j = 0; j < n; j++) {
      const d = a.key[j]! - b.key[j]!;
      if (d !== 0) return d;
    }
    return a.key.length - b.key.length || a.i - b.i;
  });
  return keyed.map((k) => k.p);
}

/** Describes a value for "got ...": short JSON for scalars, the kind for containers and secrets. */
export function describeValue(value: unknown, key?: string): string {
  if (key !== undefined && /password/i.test(key)) return kindOf(value);
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') {
    const s = JSON.stringify(value);
    return s.length > 42 ? `${s.slice(0, 40)}..."` : s;
  }
  return kindOf(value);
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return value === '' ? 'an empty string' : 'a string';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  return typeof value;
}

/** Keys people write for the ones the file wants. */
const ALIASES: Record<string, string> = {
  replicas: 'slave',
  replica: 'slave',
  slaves: 'slave',
  port: 'listen',
  listenPort: 'listen',
  primary: 'master',
  log_level: 'logLevel',
  loglevel: 'logLevel',
};

/** " (did you mean x?)" when `key` is a near miss of one of `allowed`, else "". */
export function suggestKey(key: string, allowed: readonly string[]): string {
  const alias = ALIASES[key];
  if (alias !== undefined && allowed.includes(alias)) return ` (did you mean "${alias}"?)`;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = candidate.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = key.length <= 4 ? 1 : 2;
  return best !== undefined && bestDistance <= limit ? ` (did you mean "${best}"?)` : '';
}

/** Levenshtein distance between `a` and `b` (insertions, deletions and substitutions of one character). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function expectedOf(schema: unknown): string | undefined {
  if (isRecord(schema) && typeof schema[EXPECTED] === 'string') return schema[EXPECTED] as string;
  return undefined;
}

/**
 * Turns ajv's errors (from a validator built with `allErrors` and `verbose`) into one
 * problem per real mistake: one per value for type/range/enum/pattern failures, one per
 * unknown key, one per missing key.
 */
export function translateAjvErrors(root: unknown, errors: readonly ErrorObject[]): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const err of errors) {
    const at = pointerSegments(err.instancePath);
    const parent = err.parentSchema;
    if (err.keyword === 'additionalProperties') {
      const key = String((err.params as { additionalProperty: string }).additionalProperty);
      const segments = [...at, key];
      const allowed = Object.keys(isRecord(parent?.properties) ? parent.properties : {});
      problems.push({
        segments,
        message: `${formatPath(root, segments)}: unknown key${suggestKey(key, allowed)}; allowed keys are ${allowed.join(', ')}`,
      });
      continue;
    }
    if (err.keyword === 'required') {
      const key = String((err.params as { missingProperty: string }).missingProperty);
      const segments = [...at, key];
      const props = isRecord(parent?.properties) ? parent.properties : {};
      const expected = expectedOf(props[key]);
      problems.push({
        segments,
        message: `${formatPath(root, segments)}: required key is missing${expected ? `; must be ${expected}` : ''}`,
      });
      continue;
    }
    // type, minimum, maximum, enum, minLength, pattern, minItems...: one problem per value.
    const id = err.instancePath;
    if (seen.has(id)) continue;
    seen.add(id);
    const expected = expectedOf(parent) ?? err.message ?? 'valid';
    const key = at.length > 0 ? at[at.length - 1] : undefined;
    problems.push({
      segments: at,
      message: `${formatPath(root, at)}: must be ${expected}, got ${describeValue(err.data, key)}`,
    });
  }
  return problems;
}

/**
 * Why a file could not be read, in the user's terms: `no such file (ENOENT)`,
 * `permission denied (EACCES)`, `it is a directory, not a file (EISDIR)`, else the
 * error's message. `err` is what `fs.readFileSync` threw.
 */
export function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file (ENOENT)';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code})`;
    case 'EISDIR':
      return 'it is a directory, not a file (EISDIR)';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** Whether `value` is a plain JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

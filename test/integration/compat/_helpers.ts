/**
 * Helpers for the drop-in compatibility tests: run the same commands over a raw
 * connection to a real Redis and to the proxy, and compare what comes back byte for byte.
 *
 * Not a test file (no `.test.ts`): tap does not run it on its own.
 */
import net from 'node:net';
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import t from 'tap';
import { encodeCommand, rawConnection, splitReplies, type RawConnection } from '../../helpers/raw.js';
import { waitFor } from '../../helpers/wait.js';

/** The part of a tap Test the helpers use. */
export interface Asserts {
  equal(found: unknown, wanted: unknown, message: string): unknown;
}

/** A command as its words, or already-encoded bytes (inline commands, odd encodings). */
export type Cmd = readonly (string | number)[] | Buffer;

/**
 * One step of a compared session. `replies`: how many replies the step yields (default
 * 1; 0 for a command that answers nothing, e.g. under CLIENT REPLY OFF). `run`: instead
 * of a command, something done against the target (e.g. a write from another
 * connection), given the target's port.
 */
export interface Step {
  cmd?: Cmd;
  replies?: number;
  label?: string;
  run?: (port: number) => Promise<void>;
}

/** A step of a compared session: a command, or a Step with options. */
export type SessionStep = Step | Cmd;

export function bytesOf(cmd: Cmd): Buffer {
  return Buffer.isBuffer(cmd) ? cmd : encodeCommand(...cmd);
}

export function describeCmd(cmd: Cmd): string {
  return Buffer.isBuffer(cmd) ? JSON.stringify(cmd.toString('latin1')) : cmd.join(' ');
}

/** Shortens a reply for a test message. */
export function show(text: string, max = 160): string {
  const s = JSON.stringify(text);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/**
 * Sends `bytes` and waits for `n` more complete replies; returns them as latin1 text. On
 * timeout or close, returns what did arrive followed by a `«timeout»` / `«closed»` mark
 * (a compared step then differs instead of throwing).
 */
export async function exchange(conn: RawConnection, bytes: Buffer, n: number, timeoutMs = 2000): Promise<string> {
  const before = conn.received().length;
  const countBefore = splitReplies(conn.received()).length;
  conn.socket.write(bytes);
  if (n === 0) {
    // Nothing is expected: give a stray reply a moment to show up.
    await new Promise((r) => setTimeout(r, 50));
    return conn.received().toString('latin1', before);
  }
  const ok = await conn.waitFor((buf) => splitReplies(buf).length >= countBefore + n, timeoutMs);
  const replies = splitReplies(conn.received()).slice(countBefore, countBefore + n);
  const text = Buffer.concat(replies).toString('latin1');
  if (ok) return text;
  const raw = conn.received().toString('latin1', before);
  return `${raw}${conn.closed ? '«closed»' : '«timeout»'}`;
}

export interface SessionOptions {
  /** Called after every step on the proxy side (e.g. wait for replication). */
  afterProxyStep?: () => Promise<void>;
  /** Per-reply timeout, ms. */
  timeoutMs?: number;
  /** Rewrites a reply before comparing (e.g. to blank out a client id). */
  normalize?: (text: string, step: Step) => string;
}

/** Runs `steps` in order over one new raw connection to `port`; one transcript per step. */
export async function runSession(
  port: number,
  steps: readonly SessionStep[],
  opts: SessionOptions & { afterStep?: () => Promise<void> } = {},
): Promise<string[]> {
  const conn = await rawConnection(port);
  const out: string[] = [];
  try {
    for (const s of steps) {
      const step = asStep(s);
      if (step.run) {
        await step.run(port);
        out.push('');
      } else {
        const text = await exchange(conn, bytesOf(step.cmd!), step.replies ?? 1, opts.timeoutMs);
        out.push(opts.normalize ? opts.normalize(text, step) : text);
      }
      await opts.afterStep?.();
    }
  } finally {
    conn.socket.destroy();
  }
  return out;
}

function asStep(s: SessionStep): Step {
  return Buffer.isBuffer(s) || Array.isArray(s) ? { cmd: s as Cmd } : (s as Step);
}

/**
 * The core compatibility check: the same steps over a raw connection to a real Redis
 * (`directPort`) and to the proxy (`proxyPort`); every step's reply bytes must be equal.
 * One assertion per command step, named after the command and Redis's reply.
 */
export async function compareSession(
  t: Asserts,
  directPort: number,
  proxyPort: number,
  steps: readonly SessionStep[],
  opts: SessionOptions = {},
): Promise<void> {
  const expected = await runSession(directPort, steps, opts);
  const got = await runSession(proxyPort, steps, { ...opts, afterStep: opts.afterProxyStep });
  steps.forEach((s, i) => {
    const step = asStep(s);
    if (step.run) return;
    const label = step.label ?? describeCmd(step.cmd!);
    t.equal(got[i], expected[i], `${label} -> ${show(expected[i]!)}`);
  });
}

/**
 * Sends all of `cmds` at once (pipelined), then a PING with a marker argument, and
 * returns every byte received until the marker's reply arrived (or the connection
 * closed, or `timeoutMs` passed; marked `«closed»` / `«timeout»`). The marker's reply
 * is cut off. For comparing whole streams where the number of replies is the question
 * (CLIENT REPLY OFF/SKIP).
 */
export async function pipelineTranscript(port: number, cmds: readonly Cmd[], timeoutMs = 3000): Promise<string> {
  const conn = await rawConnection(port);
  const marker = `end-of-transcript-${Math.random().toString(36).slice(2)}`;
  const markerReply = `$${marker.length}\r\n${marker}\r\n`;
  try {
    conn.socket.write(Buffer.concat([...cmds.map(bytesOf), encodeCommand('PING', marker)]));
    const ok = await conn.waitFor((buf) => buf.toString('latin1').includes(markerReply), timeoutMs);
    const text = conn.received().toString('latin1');
    if (!ok) return `${text}${conn.closed ? '«closed»' : '«timeout»'}`;
    return text.slice(0, text.indexOf(markerReply));
  } finally {
    conn.socket.destroy();
  }
}

// ---- decoding replies ------------------------------------------------------------------

/** A decoded RESP2/RESP3 reply: strings, numbers, null, arrays; maps as `{ map: [[k, v], ...] }`; errors as `{ error }`; pushes as `{ push: [...] }`. */
export type Value =
  | string
  | number
  | null
  | boolean
  | Value[]
  | { error: string }
  | { map: [Value, Value][] }
  | { push: Value[] }
  | { set: Value[] };

/** Decodes the one reply at the start of `buf` (complete, as split by `splitReplies`). */
export function decode(buf: Buffer): Value {
  let pos = 0;
  const line = () => {
    const end = buf.indexOf('\r\n', pos, 'latin1');
    const s = buf.toString('utf8', pos + 1, end);
    const type = String.fromCharCode(buf[pos]!);
    pos = end + 2;
    return [type, s] as const;
  };
  const one = (): Value => {
    const [type, s] = line();
    switch (type) {
      case '+':
        return s;
      case '-':
        return { error: s };
      case ':':
        return Number(s);
      case ',':
        return Number(s);
      case '#':
        return s === 't';
      case '_':
        return null;
      case '(':
        return s;
      case '$':
      case '=':
      case '!': {
        const len = Number(s);
        if (len < 0) return null;
        const v = buf.toString('utf8', pos, pos + len);
        pos += len + 2;
        return type === '!' ? { error: v } : v;
      }
      case '*':
      case '~':
      case '>': {
        const n = Number(s);
        if (n < 0) return null;
        const items = Array.from({ length: n }, one);
        return type === '*' ? items : type === '~' ? { set: items } : { push: items };
      }
      case '%':
      case '|': {
        const n = Number(s);
        const entries: [Value, Value][] = [];
        for (let i = 0; i < n; i++) entries.push([one(), one()]);
        return { map: entries };
      }
      default:
        throw new Error(`cannot decode ${JSON.stringify(buf.toString('latin1', 0, 40))}`);
    }
  };
  return one();
}

/** Every complete reply received so far on `conn`, decoded. */
export function decodedReplies(conn: RawConnection): Value[] {
  return splitReplies(conn.received()).map(decode);
}

/** HELLO's reply (RESP2 flat array or RESP3 map) as a plain object. */
export function helloFields(v: Value): Record<string, Value> {
  const fields: Record<string, Value> = {};
  if (Array.isArray(v)) {
    for (let i = 0; i + 1 < v.length; i += 2) fields[String(v[i])] = v[i + 1]!;
  } else if (v !== null && typeof v === 'object' && 'map' in v) {
    for (const [k, val] of v.map) fields[String(k)] = val;
  }
  return fields;
}

// ---- other helpers -----------------------------------------------------------------------

/** An ioredis client authenticated with `password`, straight to a server (for servers with requirepass). */
export function authedClient(port: number, password: string): Redis {
  const client = new Redis({ host: '127.0.0.1', port, password, lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => {});
  t.teardown(() => client.disconnect());
  return client;
}

/** INFO commandstats `calls=` of `cmd` from an ioredis client. */
export async function callsOf(client: Redis, cmd: string): Promise<number> {
  const text = await client.info('commandstats');
  const m = new RegExp(`^cmdstat_${cmd.replace('|', '\\|')}:calls=(\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Resolves when `socket` has closed, or false after `ms`. */
export function closedWithin(conn: RawConnection, ms: number): Promise<boolean> {
  return Promise.race([conn.closedPromise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `redis-cli` with `args`, `input` on stdin; never port 6379 (always pass -p). */
export function redisCli(args: string[], input = '', timeoutMs = 20000): Promise<CliResult> {
  if (!args.includes('-p')) throw new Error('redis-cli must be given -p (never the default port)');
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', ['-h', '127.0.0.1', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-cli ${args.join(' ')} did not finish in ${timeoutMs} ms; stdout: ${stdout.slice(-500)}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** True when something accepts TCP connections on `port` (127.0.0.1). */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export { waitFor };

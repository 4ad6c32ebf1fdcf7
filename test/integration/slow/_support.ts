/**
 * Helpers for the "slow is not down" tests: INFO proxy polling over raw sockets with
 * timeouts, a raw request loop that survives a missing reply, percentiles, and a proxy
 * start that reports (as a failed assertion) config keys the proxy does not accept yet.
 */
import t from 'tap';
import { listenerFor, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import net from 'node:net';
import { encodeCommand, rawCommand, rawConnection, replyEnd, type RawConnection } from '../../helpers/raw.js';
import { sleep } from '../../helpers/wait.js';

export { listenerFor, sleep };

/** One `node<N>:` line of INFO's `# Proxy` section. */
export interface NodeLine {
  index: number;
  role: string;
  addr: string;
  state: string;
  inRotation?: number;
  raw: string;
}

export interface ProxyInfoReply {
  /** A bulk (or verbatim) reply came back. */
  ok: boolean;
  /** No reply within the timeout. */
  timedOut: boolean;
  /** The reply as text (the bulk's payload when `ok`), or why there was none. */
  text: string;
  nodes: NodeLine[];
  ms: number;
}

/** The `node<N>:` lines of an INFO reply's `# Proxy` section. */
export function parseNodeLines(text: string): NodeLine[] {
  const nodes: NodeLine[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^node(\d+):(.*)$/.exec(line);
    if (!m) continue;
    const fields = new Map(m[2]!.split(',').map((kv) => kv.split('=') as [string, string]));
    nodes.push({
      index: Number(m[1]),
      role: fields.get('role') ?? '',
      addr: fields.get('addr') ?? '',
      state: fields.get('state') ?? '',
      inRotation: fields.has('in_rotation') ? Number(fields.get('in_rotation')) : undefined,
      raw: line,
    });
  }
  return nodes;
}

/** The payload of a RESP2 bulk or RESP3 verbatim reply, or undefined for anything else. */
export function bulkPayload(text: string): string | undefined {
  const m = /^([$=])(\d+)\r\n/.exec(text);
  if (!m) return undefined;
  const body = text.slice(m[0].length, m[0].length + Number(m[2]));
  return m[1] === '=' ? body.slice(4) : body;
}

/** Sends `INFO <sections...>` on a fresh connection to `port` and waits at most `timeoutMs`. */
export async function infoVia(port: number, sections: string[], timeoutMs = 500): Promise<ProxyInfoReply> {
  const started = performance.now();
  const r = await rawCommand(port, encodeCommand('INFO', ...sections), { timeoutMs });
  const ms = performance.now() - started;
  if (r.timedOut || r.text === '') {
    const why = r.error ? `error ${r.error.message}` : r.closed ? 'connection closed' : `no reply within ${timeoutMs} ms`;
    return { ok: false, timedOut: r.timedOut, text: why, nodes: [], ms };
  }
  const payload = bulkPayload(r.text);
  if (payload === undefined) return { ok: false, timedOut: false, text: r.text.trimEnd(), nodes: [], ms };
  return { ok: true, timedOut: false, text: payload, nodes: parseNodeLines(payload), ms };
}

/** `INFO proxy` through the proxy on a fresh connection. */
export const infoProxy = (port: number, timeoutMs = 500) => infoVia(port, ['proxy'], timeoutMs);

/** The node line for `addr` (`127.0.0.1:<port>`), or the master's when `addr` is omitted. */
export function nodeLine(info: ProxyInfoReply, port?: number): NodeLine | undefined {
  return port === undefined
    ? info.nodes.find((n) => n.role === 'master')
    : info.nodes.find((n) => n.addr === `127.0.0.1:${port}`);
}

/**
 * Polls `INFO proxy` every `intervalMs` until `stop()`; each poll waits at most
 * `timeoutMs`. Returns the polls (each with the time it was sent, ms since `origin`).
 */
export function pollProxyInfo(
  port: number,
  stop: () => boolean,
  { intervalMs = 100, timeoutMs = 300, origin = performance.now() } = {},
): Promise<Array<ProxyInfoReply & { at: number }>> {
  return (async () => {
    const polls: Array<ProxyInfoReply & { at: number }> = [];
    while (!stop()) {
      const at = performance.now() - origin;
      const reply = await infoProxy(port, timeoutMs);
      polls.push({ ...reply, at });
      await sleep(intervalMs);
    }
    return polls;
  })();
}

export interface Outcome {
  /** performance.now() when sent / when the reply (or the give-up) came. */
  sentAt: number;
  doneAt: number;
  ms: number;
  /** The reply (trimmed), or `(no reply within N ms)` / `(connection closed)`. */
  text: string;
  /** A reply came back (whatever it was). */
  replied: boolean;
}

/**
 * A raw client that sends one command at a time and gives up on a reply after
 * `timeoutMs`; it then drops the connection (its later replies would be misaligned)
 * and opens a new one for the next command.
 */
export class RawClient {
  private conn: RawConnection | null = null;
  constructor(
    readonly port: number,
    readonly timeoutMs = 3000,
  ) {}

  async call(...args: (string | number)[]): Promise<Outcome> {
    const sentAt = performance.now();
    try {
      this.conn ??= await rawConnection(this.port);
      const [reply] = await this.conn.send(encodeCommand(...args), 1, this.timeoutMs);
      const doneAt = performance.now();
      return { sentAt, doneAt, ms: doneAt - sentAt, text: reply!.toString('latin1').trimEnd(), replied: true };
    } catch (err) {
      const closed = this.conn?.closed ?? true;
      this.conn?.socket.destroy();
      this.conn = null;
      const doneAt = performance.now();
      const why = closed ? `(connection closed: ${(err as Error).message.slice(0, 120)})` : `(no reply within ${this.timeoutMs} ms)`;
      return { sentAt, doneAt, ms: doneAt - sentAt, text: why, replied: false };
    }
  }

  close(): void {
    this.conn?.socket.destroy();
    this.conn = null;
  }
}

/**
 * A raw client that pipelines: `call` sends at once without waiting for earlier replies,
 * so requests keep arriving at the proxy at the rate they are issued (an open loop).
 * Replies are matched in order. `drain(ms)` waits at most `ms` for the replies still owed,
 * then settles the rest as missing and closes.
 */
export class PipelinedClient {
  private readonly pending: Array<{ sentAt: number; resolve(o: Outcome): void }> = [];
  private buf: Buffer = Buffer.alloc(0);
  private closed = false;

  private static readonly open_ = new Set<net.Socket>();
  static {
    t.teardown(() => {
      for (const socket of PipelinedClient.open_) socket.destroy();
    });
  }

  private constructor(private readonly socket: net.Socket) {
    PipelinedClient.open_.add(socket);
    socket.once('close', () => PipelinedClient.open_.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      let offset = 0;
      for (;;) {
        const end = replyEnd(this.buf, offset);
        if (end < 0) break;
        const text = this.buf.toString('latin1', offset, end).trimEnd();
        offset = end;
        const p = this.pending.shift();
        const doneAt = performance.now();
        p?.resolve({ sentAt: p.sentAt, doneAt, ms: doneAt - p.sentAt, text, replied: true });
      }
      this.buf = this.buf.subarray(offset);
    });
    socket.on('close', () => this.failAll('(connection closed)'));
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<PipelinedClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new PipelinedClient(socket));
      });
    });
  }

  call(...args: (string | number)[]): Promise<Outcome> {
    const sentAt = performance.now();
    if (this.closed) return Promise.resolve({ sentAt, doneAt: sentAt, ms: 0, text: '(connection closed)', replied: false });
    return new Promise((resolve) => {
      this.pending.push({ sentAt, resolve });
      this.socket.write(encodeCommand(...args));
    });
  }

  get owed(): number {
    return this.pending.length;
  }

  async drain(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.pending.length > 0 && !this.closed && performance.now() < deadline) await sleep(10);
    this.failAll(`(no reply within ${timeoutMs} ms of the end)`);
    this.socket.destroy();
  }

  private failAll(text: string): void {
    this.closed = true;
    const doneAt = performance.now();
    for (const p of this.pending.splice(0)) p.resolve({ sentAt: p.sentAt, doneAt, ms: doneAt - p.sentAt, text, replied: false });
  }
}

/** "3× '+OK', 1× '-ERR x'" for a list of reply texts (most frequent first, at most `max` kinds). */
export function tally(texts: string[], max = 6): string {
  const counts = new Map<string, number>();
  for (const text of texts) counts.set(text, (counts.get(text) ?? 0) + 1);
  const kinds = [...counts].sort((a, b) => b[1] - a[1]);
  const shown = kinds.slice(0, max).map(([text, n]) => `${n}× ${JSON.stringify(text.slice(0, 160))}`);
  if (kinds.length > max) shown.push(`… ${kinds.length - max} more kinds`);
  return shown.length > 0 ? shown.join(', ') : 'none';
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export const median = (values: number[]) => percentile(values, 50);

/** Settles with the value of `promise`, or `{ timedOut: true }` after `ms`. */
export async function bounded<T>(
  promise: Promise<T>,
  ms: number,
): Promise<{ ms: number; value?: T; error?: unknown; timedOut: boolean }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    const winner = await Promise.race([promise.then((value) => ({ value })), timeout]);
    if (winner === 'timeout') return { ms: performance.now() - started, timedOut: true };
    return { ms: performance.now() - started, value: winner.value, timedOut: false };
  } catch (error) {
    return { ms: performance.now() - started, error, timedOut: false };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts the proxy with `listener`. If the config refuses one of `newKeys` (settings being
 * added alongside these tests), that is a failed assertion, and the proxy is started
 * without those keys so that the rest of the test still shows the behaviour.
 */
export async function startProxyWithNewKeys(
  tt: Pick<typeof t, 'teardown' | 'fail'>,
  listener: Record<string, unknown>,
  newKeys: string[],
): Promise<TestProxy> {
  try {
    return await startTestProxy([listener], { t: tt });
  } catch (err) {
    const message = (err as Error).message;
    const refused = newKeys.filter((k) => message.includes(k));
    if (refused.length === 0) throw err;
    tt.fail(`the config accepts ${refused.join(', ')} (it refused: ${message.split('\n').slice(0, 3).join(' | ')})`);
    const stripped = { ...listener };
    for (const k of newKeys) delete stripped[k];
    return startTestProxy([stripped], { t: tt });
  }
}

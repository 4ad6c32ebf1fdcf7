/**
 * Running throwaway `redis-server` processes for `redis-proxy --demo`: finding the
 * binary, picking free ports, starting a server (optionally as a replica), asking it a
 * command over raw RESP, and stopping it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Host every demo server binds to and is reached on. */
export const LOCALHOST = '127.0.0.1';

/**
 * Absolute path of the `redis-server` binary: `$REDIS_SERVER` when set, else the first
 * executable `redis-server` on `$PATH`.
 *
 * @throws Error saying how to install Redis when there is none.
 */
export function findRedisServer(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.REDIS_SERVER;
  if (explicit !== undefined && explicit !== '') {
    if (isExecutable(explicit)) return explicit;
    throw new Error(`REDIS_SERVER is set to ${explicit}, which is not an executable file`);
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'redis-server');
    if (isExecutable(candidate)) return candidate;
  }
  throw new Error(
    'redis-server was not found on PATH; install Redis (for example `apt-get install redis-server` ' +
      'or `brew install redis`) or set REDIS_SERVER to the binary',
  );
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A TCP port on `host` that was free a moment ago (the OS picks it). */
export function freePort(host = LOCALHOST): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `port` on `host` can be listened on right now. */
export function isPortFree(port: number, host = LOCALHOST): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** A decoded RESP2 reply, as far as the demo needs: status/bulk text, integer, nil, or error. */
export type SimpleReply = string | number | null | Error;

/**
 * Sends one command to the Redis server at `host:port` on a fresh connection and
 * returns its reply. Supports simple-string, error, integer and bulk-string replies.
 *
 * @throws Error on connection failure, an unsupported reply type, or after `timeoutMs`.
 */
export function redisCommand(
  port: number,
  args: readonly string[],
  { host = LOCALHOST, timeoutMs = 2000 }: { host?: string; timeoutMs?: number } = {},
): Promise<SimpleReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let buffer = Buffer.alloc(0);
    const finish = (err: Error | null, reply?: SimpleReply): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply ?? null);
    };
    const timer = setTimeout(() => finish(new Error(`no reply from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => finish(err));
    socket.on('connect', () => {
      let request = `*${args.length}\r\n`;
      for (const a of args) request += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
      socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const lineEnd = buffer.indexOf('\r\n');
      if (lineEnd < 0) return;
      const type = String.fromCharCode(buffer[0]!);
      const line = buffer.toString('utf8', 1, lineEnd);
      switch (type) {
        case '+':
          return finish(null, line);
        case '-':
          return finish(null, new Error(line));
        case ':':
          return finish(null, Number(line));
        case '$': {
          const length = Number(line);
          if (length < 0) return finish(null, null);
          const start = lineEnd + 2;
          if (buffer.length < start + length + 2) return; // wait for the rest
          return finish(null, buffer.toString('utf8', start, start + length));
        }
        default:
          return finish(new Error(`unsupported reply type ${JSON.stringify(type)} from ${host}:${port}`));
      }
    });
  });
}

/** Options for RedisProcess.start. */
export interface RedisProcessOptions {
  /** Path of redis-server (see findRedisServer). */
  binary: string;
  port: number;
  /** Working directory for the server's files; created if missing. */
  dir: string;
  /** Port of the master on 127.0.0.1 to replicate from; unset: a master. */
  replicaOf?: number;
  /** ms to wait for the server to answer PING. Default 10000. */
  startTimeoutMs?: number;
}

/** One running redis-server child process, bound to 127.0.0.1, with persistence off. */
export class RedisProcess {
  /** The last lines the server printed, for error messages. */
  private readonly output: string[] = [];
  private exited = false;
  private readonly exitPromise: Promise<void>;

  private constructor(
    readonly port: number,
    readonly role: 'master' | 'replica',
    private readonly child: ChildProcess,
  ) {
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', () => {
        this.exited = true;
        resolve();
      });
    });
    const keep = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        this.output.push(line);
        if (this.output.length > 20) this.output.shift();
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  /**
   * Starts redis-server (`--save "" --appendonly no --dir DIR --port PORT`, plus
   * `--replicaof 127.0.0.1 MASTER` for a replica) and resolves once it answers PING.
   * The child is in its own process group, so a Ctrl-C in the terminal reaches only the
   * proxy, which stops the servers itself after the proxy has closed.
   *
   * @throws Error (with the server's last output lines) if it exits or does not answer
   *   within `startTimeoutMs`; the process is killed in that case.
   */
  static async start(options: RedisProcessOptions): Promise<RedisProcess> {
    mkdirSync(options.dir, { recursive: true });
    const args = [
      '--port', String(options.port),
      '--bind', LOCALHOST,
      '--save', '',
      '--appendonly', 'no',
      '--dir', options.dir,
      '--daemonize', 'no',
      '--logfile', '',
      // Start the full sync at once instead of waiting 5 s for more replicas.
      '--repl-diskless-sync-delay', '0',
    ];
    if (options.replicaOf !== undefined) args.push('--replicaof', LOCALHOST, String(options.replicaOf));
    const child = spawn(options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const server = new RedisProcess(options.port, options.replicaOf === undefined ? 'master' : 'replica', child);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
    for (;;) {
      const failure = await Promise.race([spawnError, delay(50).then(() => undefined)]);
      if (failure !== undefined) {
        throw new Error(`cannot start ${options.binary}: ${failure.message}`);
      }
      if (server.exited) {
        throw new Error(`redis-server on port ${options.port} exited at start:\n${server.lastOutput()}`);
      }
      const reply = await redisCommand(options.port, ['PING'], { timeoutMs: 500 }).catch(() => undefined);
      if (reply === 'PONG') return server;
      if (Date.now() > deadline) {
        server.kill();
        throw new Error(`redis-server on port ${options.port} did not answer PING in time:\n${server.lastOutput()}`);
      }
    }
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return !this.exited;
  }

  /** The server's last output lines, indented, for error messages. */
  lastOutput(): string {
    return this.output.map((l) => `  ${l}`).join('\n');
  }

  /**
   * Resolves once this replica reports `master_link_status:up` in INFO replication.
   *
   * @throws Error after `timeoutMs` (default 15000), with the last status seen.
   */
  async waitForLinkUp(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no reply';
    for (;;) {
      const info = await redisCommand(this.port, ['INFO', 'replication']).catch((err: Error) => err);
      if (typeof info === 'string') {
        const m = /master_link_status:(\w+)/.exec(info);
        last = m ? `master_link_status:${m[1]}` : 'no master_link_status';
        if (m?.[1] === 'up') return;
      } else if (info instanceof Error) {
        last = info.message;
      }
      if (Date.now() > deadline) {
        throw new Error(`replica on port ${this.port} did not link to its master in time (${last})`);
      }
      await delay(100);
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL after `timeoutMs`, default 5000) and waits for it to exit. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.kill(), timeoutMs);
    await this.exitPromise;
    clearTimeout(timer);
  }

  /** Kills the server at once (SIGKILL), without waiting. Safe to call from an `exit` handler. */
  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

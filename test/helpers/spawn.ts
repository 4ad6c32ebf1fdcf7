/**
 * Child processes that cannot outlive the test process: servers started by a test file
 * must not keep running (and holding ports) when that file's process is killed, even by
 * SIGKILL, where no 'exit' handler runs.
 *
 * The child is started through `sh`, which forks a watcher and then `exec`s the real
 * command (so the child's pid is the command's pid and signals reach it directly). The
 * watcher polls the test process every second; once it is gone, it SIGKILLs the
 * command and removes its temporary directory. It also ends when the command ends.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';

const WATCHED = `
parent=$1; dir=$2; shift 2
(
  while kill -0 "$parent" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 1; done
  if ! kill -0 "$parent" 2>/dev/null; then
    kill -9 $$ 2>/dev/null
    if [ -n "$dir" ]; then sleep 0.2; rm -rf "$dir"; fi
  fi
) </dev/null >/dev/null 2>&1 &
exec "$@"
`;

const children = new Set<ChildProcess>();
const dirs = new Set<string>();

// The normal way out: kill what is left and remove the directories at once.
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Spawns `command args` (never detached) so that it is SIGKILLed, and `dir` (if given)
 * removed, when the test process exits or dies. `forget(dir)` once the caller has
 * removed the directory itself.
 */
export function spawnGuarded(
  command: string,
  args: string[],
  options: SpawnOptions & { dir?: string },
): ChildProcess {
  const { dir, ...spawnOptions } = options;
  const child = spawn('sh', ['-c', WATCHED, 'guarded', String(process.pid), dir ?? '', command, ...args], {
    ...spawnOptions,
    detached: false,
  });
  children.add(child);
  if (dir !== undefined) dirs.add(dir);
  child.once('exit', () => children.delete(child));
  return child;
}

/** The caller removed `dir` itself: nothing left to clean up at exit. */
export function forgetDir(dir: string): void {
  dirs.delete(dir);
}

/** Sends an inline PING to 127.0.0.1:`port` on a fresh socket (TLS with `tlsOptions`); true when `+PONG` comes back. */
export function pingOnce(port: number, tlsOptions?: tls.ConnectionOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const socket =
      tlsOptions === undefined ? net.connect({ host: '127.0.0.1', port }) : tls.connect({ host: '127.0.0.1', port, ...tlsOptions });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on(tlsOptions === undefined ? 'connect' : 'secureConnect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** A server process (redis-server, redis-sentinel) answering PING on `port`, run in `dir`. */
export interface ServerProcess {
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  /** The last lines it printed. */
  output(): string;
  /** Resolves when the process has exited. */
  exited(): Promise<void>;
  /** Sends `signal` (default SIGKILL) unless it has exited. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGCONT (a test may have frozen it) and SIGTERM, SIGKILL after 3 s; then `dir` is removed. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `command args` (guarded: see spawnGuarded) in `dir` and waits up to 5 s until
 * `port` answers PING (over TLS with `tls`).
 * @returns the process, or undefined when it lost a race for `port` ("Address already in
 *   use") and `retryOnClash` (the caller tries another port); `dir` is removed then
 * @throws Error with the process's output when it exits or does not answer in time
 */
export async function startServerProcess(
  what: string,
  command: string,
  args: string[],
  { port, dir, retryOnClash, tls: tlsOptions }: { port: number; dir: string; retryOnClash: boolean; tls?: tls.ConnectionOptions | undefined },
): Promise<ServerProcess | undefined> {
  const child = spawnGuarded(command, args, { cwd: dir, dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let hasExited = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      hasExited = true;
      resolve();
    });
  });
  child.once('error', () => {
    /* reported by 'exit' / the ping loop */
  });

  const deadline = Date.now() + 5000;
  while (!(await pingOnce(port, tlsOptions))) {
    if (hasExited || Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
      forgetDir(dir);
      if (/Address already in use/.test(output) && retryOnClash) return undefined;
      throw new Error(`${what} on port ${port} did not start:\n${output}`);
    }
    await sleep(20);
  }

  let stopping: Promise<void> | undefined;
  return {
    port,
    pid: child.pid ?? -1,
    dir,
    output: () => output,
    exited: () => exited,
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (!hasExited) child.kill(signal);
    },
    stop() {
      stopping ??= (async () => {
        if (!hasExited) {
          child.kill('SIGCONT');
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(killer);
        }
        rmSync(dir, { recursive: true, force: true });
        forgetDir(dir);
      })();
      return stopping;
    },
  };
}

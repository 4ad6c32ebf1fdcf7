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

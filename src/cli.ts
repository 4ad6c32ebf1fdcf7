/**
 * The `redis-proxy` command: argument parsing, config loading, start, signals.
 *
 * Exit status: 0 ok (also after a clean shutdown on SIGTERM/SIGINT), 1 the proxy or
 * demo could not start, a crash, or a failed shutdown, 2 bad usage or an invalid config,
 * 128+N (130 for SIGINT, 143 for SIGTERM) when a second signal cuts the shutdown short.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, LOG_LEVELS, loadConfig, rereadConfig, type LogLevel, type ProxyConfig } from './config/index.js';
import { isWorkerProcess, runWorker } from './cluster/worker.js';
import type { Demo } from './demo.js';
import type { ReloadOutcome } from './index.js';
import { createLogger, type Logger } from './log.js';

export const USAGE = `Usage:
  redis-proxy [--log-level LEVEL] CONFIG   run the proxy described by the JSON file CONFIG
  redis-proxy --check CONFIG               validate CONFIG and exit (0 valid, 2 invalid)
  redis-proxy [--log-level LEVEL] --demo   start a master and two replicas (redis-server
                                           from PATH) and a proxy in front of them
  redis-proxy --help | --version

Options:
  --log-level LEVEL  override the config's logLevel: ${LOG_LEVELS.join(', ')}
  --check            validate the config only
  --demo             run the demo described above
  -h, --help         print this help
  --version          print the version

Logs are JSON lines on stdout. SIGHUP re-reads CONFIG and applies it without closing
client connections (an invalid file is logged and the running config stays).
SIGTERM or SIGINT closes the proxy gracefully (up to the config's shutdownTimeout);
a second signal exits at once.
See config/example.json and config/example-object.json for the config file.
`;

/** What the command line asked for. */
export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'check'; configPath: string }
  | { kind: 'run'; configPath: string; logLevel?: LogLevel }
  | { kind: 'demo'; logLevel?: LogLevel };

/** A command line that cannot be run; `message` says why (without the usage text). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Parses the arguments after the program name. `--help` and `--version` win over
 * everything else; `--name=value` and `--name value` are both accepted; `--` ends options.
 *
 * @throws UsageError for an unknown option, a missing or bad value, a missing CONFIG,
 *   extra arguments, or options that do not go together.
 */
export function parseArgs(argv: readonly string[]): Command {
  let check = false;
  let demo = false;
  let logLevel: LogLevel | undefined;
  let help = false;
  let version = false;
  const positionals: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const noValue = (): void => {
      if (inline !== undefined) throw new UsageError(`option ${name} takes no value`);
    };
    switch (name) {
      case '-h':
      case '--help':
        noValue();
        help = true;
        break;
      case '--version':
        noValue();
        version = true;
        break;
      case '--demo':
        noValue();
        demo = true;
        break;
      case '--check':
        check = true;
        if (inline !== undefined) positionals.push(inline);
        break;
      case '--log-level': {
        const value = inline ?? argv[++i];
        if (value === undefined || value === '') throw new UsageError('option --log-level needs a value');
        if (!(LOG_LEVELS as readonly string[]).includes(value)) {
          throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
        }
        logLevel = value as LogLevel;
        break;
      }
      default:
        throw new UsageError(`unknown option ${JSON.stringify(name)}`);
    }
  }

  if (help) return { kind: 'help' };
  if (version) return { kind: 'version' };
  if (demo) {
    if (check) throw new UsageError('--demo and --check do not go together');
    if (positionals.length > 0) throw new UsageError('--demo takes no CONFIG');
    return logLevel === undefined ? { kind: 'demo' } : { kind: 'demo', logLevel };
  }
  if (positionals.length === 0) throw new UsageError(check ? '--check needs a CONFIG file' : 'missing CONFIG file');
  if (positionals.length > 1) {
    throw new UsageError(`expected one CONFIG file, got ${positionals.length}: ${positionals.join(' ')}`);
  }
  const configPath = positionals[0]!;
  if (check) return { kind: 'check', configPath };
  return logLevel === undefined ? { kind: 'run', configPath } : { kind: 'run', configPath, logLevel };
}

/** The version field of the package's package.json. */
export function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** A proxy (or demo) that can be shut down: what the signal handlers need. */
interface Closable {
  close(timeoutMs?: number): Promise<void>;
}

/** What the CLI uses of the Proxy that src/index.ts's startProxy resolves to. */
interface RunningProxy extends Closable {
  readonly listeners: ReadonlyArray<{ name: string; port: number }>;
  reload(next: ProxyConfig): Promise<ReloadOutcome>;
  reloadRejected(reason: string): void;
}

/**
 * The entry point of bin/redis-proxy. `argv` is the arguments after the program name.
 * Returns once the command is done (help, version, check, invalid config); for run and
 * demo it returns once started, and the process then lives until a signal.
 * Sets `process.exitCode` or calls `process.exit` as listed in the module doc.
 */
export async function main(argv: string[]): Promise<void> {
  let command: Command;
  try {
    command = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`redis-proxy: ${err.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }

  switch (command.kind) {
    case 'help':
      process.stdout.write(USAGE);
      return;
    case 'version':
      process.stdout.write(`${readVersion()}\n`);
      return;
    case 'check': {
      const config = loadOrReport(command.configPath);
      if (config === undefined) return;
      const ports = config.listeners.map((l) => l.listen);
      const n = ports.length;
      process.stdout.write(
        `config OK: ${n} ${n === 1 ? 'listener' : 'listeners'} (${n === 1 ? 'port' : 'ports'} ${ports.join(', ')})\n`,
      );
      return;
    }
    case 'run':
      return run(command.configPath, command.logLevel);
    case 'demo':
      return demo(command.logLevel);
  }
}

/** Loads the config, or prints its problems (one per line, after the file name) and sets exit code 2. */
function loadOrReport(configPath: string): ProxyConfig | undefined {
  try {
    return loadConfig(configPath);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(err.problems.map((p) => `${configPath}: ${p}\n`).join(''));
    process.exitCode = 2;
    return undefined;
  }
}

async function run(configPath: string, logLevel: LogLevel | undefined): Promise<void> {
  if (isWorkerProcess()) return runWorker(configPath, logLevel, installCrashHandlers);
  const loaded = loadOrReport(configPath);
  if (loaded === undefined) return;
  const config: ProxyConfig = logLevel === undefined ? loaded : { ...loaded, logLevel };
  if (config.workers > 1) return runCluster(configPath, config, logLevel);
  const logger = createLogger(config.logLevel);
  installCrashHandlers(logger);
  logger.debug({ config }, 'config loaded'); // passwords redacted by the logger

  let proxy: RunningProxy;
  try {
    // Loaded here, not at the top, so --help/--version/--check never load the core.
    const { startProxy } = await import('./index.js');
    proxy = await startProxy(config, logger);
  } catch (err) {
    failStart(logger, err, 'cannot start the proxy');
  }
  logger.info(
    { version: readVersion(), config: configPath, listeners: proxy.listeners },
    `redis-proxy ${readVersion()} running: ${proxy.listeners.map((l) => `${l.name} on port ${l.port}`).join(', ')}`,
  );
  const settings = { shutdownTimeout: config.shutdownTimeout };
  reloadOnSighup(logger, proxy, configPath, logLevel, settings);
  closeOnSignals(logger, proxy, () => settings.shutdownTimeout);
}

/**
 * `workers` > 1: this process is the cluster's primary (src/cluster/primary.ts); the
 * workers run the proxy. Its log lines carry `"worker": 0`, the workers' their number.
 * SIGHUP, SIGTERM and SIGINT behave as in one process, for every worker.
 */
async function runCluster(configPath: string, config: ProxyConfig, logLevel: LogLevel | undefined): Promise<void> {
  const logger = createLogger(config.logLevel).child({ worker: 0 });
  installCrashHandlers(logger);
  const { runPrimary } = await import('./cluster/primary.js');
  let primary: Awaited<ReturnType<typeof runPrimary>>;
  try {
    primary = await runPrimary({ configPath, config, logLevel, logger });
  } catch (err) {
    failStart(logger, err, 'cannot start the proxy');
  }
  logger.info(
    { version: readVersion(), config: configPath, listeners: primary.listeners, workers: config.workers },
    `redis-proxy ${readVersion()} running with ${config.workers} workers: ${primary.listeners.map((l) => `${l.name} on port ${l.port}`).join(', ')}`,
  );
  process.on('SIGHUP', () => {
    logger.info({ config: configPath }, 'SIGHUP: reloading the config in every worker');
    primary.reload();
  });
  closeOnSignals(logger, primary, () => primary.shutdownTimeout);
}

/**
 * SIGHUP: re-reads `configPath`, validated exactly as at start. An unreadable or invalid
 * file is logged at `error` with the same messages `--check` prints, and the running
 * config stays; a valid one is applied live (Proxy.reload). The process never exits
 * because of a reload. A `--log-level` given on the command line keeps winning over the
 * file's logLevel. Signals that arrive during a reload are applied after it, in order.
 */
function reloadOnSighup(
  logger: Logger,
  proxy: RunningProxy,
  configPath: string,
  logLevel: LogLevel | undefined,
  settings: { shutdownTimeout: number },
): void {
  process.on('SIGHUP', () => {
    logger.info({ config: configPath }, 'SIGHUP: reloading the config');
    const next = rereadConfig(configPath, logger);
    if ('rejected' in next) {
      proxy.reloadRejected(next.rejected);
      return;
    }
    logger.level = logLevel ?? next.logLevel;
    settings.shutdownTimeout = next.shutdownTimeout;
    if (next.workers > 1) {
      logger.warn({ workers: next.workers }, 'workers: the proxy started as one process; more workers take a restart (the rest of the reload applies)');
    }
    void proxy.reload(next);
  });
}

async function demo(logLevel: LogLevel | undefined): Promise<void> {
  const logger = createLogger(logLevel ?? 'warn');
  installCrashHandlers(logger);
  let running: Demo;
  try {
    const { startProxy } = await import('./index.js');
    const { startDemo } = await import('./demo.js');
    running = await startDemo({ logger, startProxy });
  } catch (err) {
    failStart(logger, err, 'cannot start the demo');
  }
  process.stdout.write(running.banner);
  closeOnSignals(logger, running, () => running.config.shutdownTimeout);
}

/** Logs why the start failed (naming the address for listen errors), tells stderr too, exits 1. */
function failStart(logger: Logger, err: unknown, what: string): never {
  const reason = describeStartError(err);
  logger.fatal({ err }, `${what}: ${reason}`);
  process.stderr.write(`redis-proxy: ${what}: ${reason}\n`);
  process.exit(1);
}

/** A one-line reason for a start failure; listen errors name the address and port. */
export function describeStartError(err: unknown): string {
  const e = err as (NodeJS.ErrnoException & { address?: string; port?: number }) | undefined;
  const where = e?.port !== undefined ? `${e.address ?? '*'}:${e.port}` : undefined;
  switch (e?.code) {
    case 'EADDRINUSE':
      if (where) return `cannot listen on ${where}: the port is already in use`;
      break;
    case 'EACCES':
      if (where) return `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`;
      break;
    case 'EADDRNOTAVAIL':
      if (where) return `cannot listen on ${where}: the address is not on this machine (check "bind")`;
      break;
  }
  return err instanceof Error ? err.message : String(err);
}

function installCrashHandlers(logger: Logger): void {
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception; exiting');
    process.exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled promise rejection; exiting');
    process.exit(1);
  });
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGINT: 2, SIGTERM: 15 };

/**
 * First SIGTERM/SIGINT: close gracefully (in-flight replies get up to the config's
 * shutdownTimeout as of the signal), then exit 0. A second signal, or a close that overruns `timeoutMs` by 5 s, exits at once.
 */
function closeOnSignals(logger: Logger, target: Closable, shutdownTimeout: () => number): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    const timeoutMs = shutdownTimeout();
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(128 + (SIGNAL_NUMBERS[signal] ?? 0));
    }
    stopping = true;
    logger.info({ signal, timeoutMs }, 'shutting down');
    setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, timeoutMs + 5000).unref();
    target.close(timeoutMs).then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/**
 * A listener: one `listen` entry of the config. Accepts sessions on its port, owns its
 * master and replica nodes, their health checks and its router. Independent of the other
 * listeners (its own pools, health, sessions).
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { learnCommands, lookupCommand } from '../commands/index.js';
import type { ListenerConfig } from '../config/types.js';
import { Node } from '../backend/node.js';
import { coarseNow } from '../io/clock.js';
import { Router } from '../routing/router.js';
import { Session, type SessionContext } from '../session/session.js';
import { PROXY_VERSION } from '../version.js';
import { DenyList } from './deny-list.js';
import { CausalReads } from '../consistency/causal-reads.js';

export class Listener implements SessionContext {
  readonly master: Node;
  readonly replicas: Node[];
  readonly router: Router;
  readonly sessions = new Set<Session>();
  private readonly byId = new Map<number, Session>();
  readonly logger: Logger;
  databases = 16;
  /** Causal reads: which writes a read must see and which node has them. */
  readonly causal: CausalReads;
  readonly denyList: DenyList;
  /** The port actually listened on. */
  port = 0;
  private readonly server: net.Server;
  private readonly startedAt = Date.now();
  private healthTimer: NodeJS.Timeout | null = null;
  private timeoutTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private checking = false;
  private closedWaiters: Array<() => void> = [];

  constructor(
    readonly config: ListenerConfig,
    logger: Logger,
  ) {
    this.logger = logger.child({ listener: config.name });
    this.denyList = new DenyList(config);
    const node = (role: 'master' | 'replica', nodeConfig: ListenerConfig['master']): Node =>
      new Node({
        role,
        // loadConfig has already resolved each node's credentials (its own pair, or the listener's backend pair).
        config: nodeConfig,
        sharedConnections: config.sharedConnections,
        maxDedicated: config.maxDedicatedConnections,
        connectTimeout: config.connectTimeout,
        outlierTimeouts: config.outlierTimeouts,
        outlierWindow: config.outlierWindow,
        logger: this.logger,
        onStateChange: (n, before) => {
          this.router.rebuild();
          if (before !== 'down' || !n.reachable || this.port === 0) return;
          // A master that comes back (or was down at start) may know commands the table lacks.
          if (n === this.master) void this.learnFromMaster();
          // A node that comes back may have lost (or gained) the ACL rules scripts rely on.
          void this.verifyDenyList();
        },
        onConnectionLost: () => void this.checkHealth(),
      });
    this.master = node('master', config.master);
    this.replicas = config.replicas.map((r) => node('replica', r));
    this.router = new Router(this.master, this.replicas, config.readPolicy, config.maxReplicationLag, () =>
      this.causal?.progress.rotationChanged(),
    );
    const router = this.router;
    this.causal = new CausalReads(
      config.causalReads,
      { master: this.master, replicas: this.replicas, inRotation: () => router.replicasInRotation },
      config.healthCheckInterval,
    );
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /**
   * Checks every node once, learns what it needs from the master (databases, module
   * commands), then listens.
   * @throws Error when the port cannot be listened on (in use, not permitted).
   */
  async start(): Promise<void> {
    await this.checkHealth();
    for (const n of [this.master, ...this.replicas]) {
      if (n.reachable) this.logger.info({ node: n.label, version: n.serverVersion, role: n.health.role }, 'backend connected');
      else this.logger.warn({ node: n.label, error: n.health.error }, 'backend unreachable at start');
    }
    await this.learnFromMaster();
    await this.verifyDenyList();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.listen, this.config.bind, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.server.on('error', (err) => this.logger.error({ err }, 'listener error'));
    this.port = (this.server.address() as net.AddressInfo).port;
    this.healthTimer = setInterval(() => void this.checkHealth(), this.config.healthCheckInterval);
    this.healthTimer.unref();
    // Command timeouts (and closing idle extra shared connections) on their own tick, not
    // the health round's: that round waits on a hung node for up to connectTimeout.
    const tick = this.config.commandTimeout > 0 ? Math.min(Math.max(this.config.commandTimeout / 4, 25), 1000) : 1000;
    this.timeoutTimer = setInterval(() => this.expireCommands(), tick);
    this.timeoutTimer.unref();
    this.logger.info(
      {
        bind: this.config.bind,
        port: this.port,
        master: this.master.label,
        replicas: this.replicas.map((r) => r.label),
        readPolicy: this.config.readPolicy,
      },
      'listener up',
    );
  }

  /**
   * Stops accepting, lets sessions receive the replies they are owed (up to `timeoutMs`),
   * then closes every session and backend connection.
   */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    if (this.healthTimer !== null) clearInterval(this.healthTimer);
    if (this.timeoutTimer !== null) clearInterval(this.timeoutTimer);
    this.healthTimer = this.timeoutTimer = null;
    this.causal.close();
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) s.closeAfterReplies();
    if (this.sessions.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.closedWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    for (const s of this.sessions) s.close('proxy shutting down');
    await serverClosed;
    await Promise.all([this.master, ...this.replicas].map((n) => n.close()));
  }

  get serverVersion(): string {
    return this.master.serverVersion;
  }

  sessionById(id: number): Session | undefined {
    return this.byId.get(id);
  }

  onSessionClosed(session: Session): void {
    this.sessions.delete(session);
    this.byId.delete(session.id);
    if (this.sessions.size === 0) for (const w of this.closedWaiters.splice(0)) w();
  }

  proxyInfo(): string {
    const inRotation = this.router.healthyReplicas;
    const nodes = [this.master, ...this.replicas].map((n, i) => {
      const serving = n.role === 'replica' ? `,in_rotation=${inRotation.includes(n) ? 1 : 0},lag=${n.lag},ejected=${n.ejected ? 1 : 0}` : '';
      return `node${i}:role=${n.role},addr=${n.host}:${n.port},state=${n.state}${serving}`;
    });
    return [
      `proxy_version:${PROXY_VERSION}`,
      `proxy_uptime_in_seconds:${Math.floor((Date.now() - this.startedAt) / 1000)}`,
      `listener:${this.config.name}`,
      `listener_port:${this.port}`,
      `read_policy:${this.config.readPolicy}`,
      `sessions:${this.sessions.size}`,
      ...nodes,
    ].join('\r\n');
  }

  sendToReplicas(args: Buffer[]): void {
    for (const r of this.replicas) {
      r.call(...args).catch((err: Error) => this.logger.warn({ node: r.label, error: err.message }, 'replica refused a command sent to every node'));
    }
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      // Accepted just as shutdown began: not served.
      socket.destroy();
      return;
    }
    const session = new Session(socket, this);
    this.sessions.add(session);
    this.byId.set(session.id, session);
  }

  /**
   * One health round: the master (its INFO also gives each replica's lag), then the
   * replicas; then the read rotation is rebuilt.
   */
  private async checkHealth(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const masterInfo = await this.master.checkHealth();
      const lags = new Map<string, number>();
      for (const [key, value] of masterInfo ?? []) {
        if (!/^slave\d+$/.test(key)) continue;
        const fields = new Map(value.split(',').map((kv) => kv.split('=') as [string, string]));
        lags.set(`${fields.get('ip')}:${fields.get('port')}`, Number(fields.get('lag') ?? -1));
      }
      await Promise.all(
        this.replicas.map(async (r) => {
          r.lag = lags.get(`${r.host}:${r.port}`) ?? -1;
          await r.checkHealth();
          r.probe();
        }),
      );
      this.router.rebuild();
    } finally {
      this.checking = false;
    }
    // An unresponsive node is checked again at once: the check waiting on it is answered
    // the moment it recovers (the end of a DEBUG SLEEP), not an interval later.
    if (!this.closing && [this.master, ...this.replicas].some((n) => n.state === 'unresponsive')) {
      setImmediate(() => void this.checkHealth());
    }
  }

  private expireCommands(): void {
    const now = coarseNow();
    for (const node of [this.master, ...this.replicas]) node.expireShared(now, this.config.commandTimeout);
  }

  /**
   * Checks with ACL DRYRUN that every node refuses the denied commands a script could
   * call (see ./deny-list.ts); until it has, or where they do not, scripts are refused.
   */
  private async verifyDenyList(): Promise<void> {
    if (this.denyList.scriptReachable.length === 0) return;
    const nodes = [this.master, ...this.replicas].map((n, i) => ({
      label: n.label,
      username: (i === 0 ? this.config.master : this.config.replicas[i - 1]!).username,
      call: (...args: Array<string | Buffer>) => n.call(...args),
    }));
    const result = await this.denyList.verify(nodes);
    if (result.enforced) {
      this.logger.info({ denyCommands: this.denyList.scriptReachable }, 'scripts allowed: the nodes refuse the denied commands to the proxy');
    } else if (!this.config.scriptsBypassDenyCommands) {
      const first = result.unenforced[0];
      this.logger.warn(
        { denyCommands: this.denyList.scriptReachable, command: first?.command, node: first?.node, reason: first?.reason },
        'scripts refused on this listener: a denied command could run inside them',
      );
    }
  }

  private async learnFromMaster(): Promise<void> {
    try {
      const reply = (await this.master.call('CONFIG', 'GET', 'databases')) as string[];
      if (Array.isArray(reply) && reply.length === 2) this.databases = Number(reply[1]) || 16;
    } catch {
      // CONFIG may be renamed or denied by ACL: Redis's default of 16 is assumed.
    }
    try {
      // Module commands (JSON.GET, FT.SEARCH) and commands of a Redis newer than the table.
      const names = (await this.master.call('COMMAND', 'LIST')) as string[];
      // Subcommands (`xinfo|help`) come with their container's COMMAND INFO.
      const unknown = names.filter((n) => !n.includes('|') && lookupCommand(n) === undefined);
      if (unknown.length > 0) {
        const learned = learnCommands(await this.master.call('COMMAND', 'INFO', ...unknown));
        this.logger.info({ learned, commands: unknown.slice(0, 20) }, 'learned commands from the master');
      }
    } catch {
      // Not reachable now, or COMMAND denied by ACL: the static table is used.
    }
  }
}

/**
 * Follows a master managed by Redis Sentinel: where it is, where its replicas are, and
 * when that changes (failover, replicas added or removed).
 *
 * Two channels to the Sentinels, both needed:
 * - queries (`SENTINEL GET-MASTER-ADDR-BY-NAME`, `SENTINEL REPLICAS`) to the Sentinel that
 *   answered last, falling back through the others; run at discovery, periodically, and
 *   after every event below;
 * - one Pub/Sub connection to one Sentinel for its events (`+switch-master` is acted on
 *   at once, without waiting for a query), moved round-robin to the next Sentinel when it
 *   drops.
 *
 * Sentinel's protocol and events: https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/#pubsub-messages
 * and https://redis.io/docs/latest/develop/reference/sentinel-clients/
 */
import net from 'node:net';
import type { Logger } from 'pino';
import RedisParser from 'redis-parser';
import { ControlClient } from '../backend/control-client.js';
import type { SentinelConfig } from '../config/types.js';
import { encodeCommand } from '../protocol/resp.js';
import type { DiscoveredTopology } from './topology.js';


export interface SentinelWatcherOptions {
  config: SentinelConfig;
  /** ms for connecting to a Sentinel and for its answer to each query round. */
  timeout: number;
  /** ms between periodic re-queries (the listener's health-check interval, typically 1000). */
  refreshInterval: number;
  logger: Logger;
  /**
   * Called whenever the master address or the set of replica addresses differs from the
   * last topology reported (or discovered). `reason`: the Sentinel event that led to it
   * (`+switch-master`, `+slave`, `+sdown`, ...), `refresh` (periodic re-query),
   * `subscribe` (first re-query once the event subscription is up) or `reconnect` (the
   * subscription was re-established: events may have been missed). Never called after
   * close(); an exception it throws is logged, not propagated.
   */
  onChange(topology: DiscoveredTopology, reason: string): void;
}

/**
 * The Sentinel events subscribed to. `+switch-master` updates the master at once; every
 * event re-queries. `+promoted-slave` and `-role-change` (the promoted replica reporting
 * itself master) come before `+switch-master`, from the moment Sentinel's own
 * GET-MASTER-ADDR-BY-NAME already answers with the promoted replica.
 */
const CHANNELS = [
  '+switch-master',
  '+promoted-slave',
  '+slave',
  '+sdown',
  '-sdown',
  '+odown',
  '-odown',
  '+failover-end',
  '+convert-to-slave',
  '+slave-reconf-done',
  '+role-change',
  '-role-change',
  '+reboot',
];

/** First delay before resubscribing after the subscription dropped (ms); doubles up to refreshInterval. */
const FIRST_BACKOFF = 100;

type Address = { host: string; port: number };

const label = (a: Address): string => `${a.host}:${a.port}`;
const sameAddress = (a: Address, b: Address): boolean => a.host === b.host && a.port === b.port;
const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Same master and same set of replica addresses (order ignored). */
function sameTopology(a: DiscoveredTopology, b: DiscoveredTopology): boolean {
  if (!sameAddress(a.master, b.master)) return false;
  const set = new Set(a.replicas.map(label));
  const other = new Set(b.replicas.map(label));
  return set.size === other.size && [...set].every((r) => other.has(r));
}

/** Parses a port from a Sentinel reply field. */
function toPort(value: unknown, what: string): number {
  const port = Number(value);
  if (typeof value !== 'string' || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`unexpected ${what} port in Sentinel's reply: ${String(value)}`);
  }
  return port;
}

/** `SENTINEL REPLICAS` reply (an array of flat field/value arrays) to the replicas' addresses. */
function parseReplicas(reply: unknown): Address[] {
  if (!Array.isArray(reply)) throw new Error('unexpected reply to SENTINEL REPLICAS');
  return reply.map((entry: unknown) => {
    if (!Array.isArray(entry)) throw new Error('unexpected entry in SENTINEL REPLICAS');
    const field = (name: string): unknown => {
      for (let i = 0; i + 1 < entry.length; i += 2) if (entry[i] === name) return entry[i + 1];
      return undefined;
    };
    const host = field('ip');
    if (typeof host !== 'string') throw new Error('SENTINEL REPLICAS entry without ip');
    return { host, port: toPort(field('port'), 'replica') };
  });
}

/** Rejects with "no answer within `ms` ms" unless `promise` settles first. */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Follows one Sentinel-managed master. Usage: `await discover()` (throws when no Sentinel
 * can say where the master is), then `start()`, and `close()` at the end.
 */
export class SentinelWatcher {
  private readonly options: SentinelWatcherOptions;
  private readonly nodes: Address[];
  /** One query connection per Sentinel, connected on first use. */
  private readonly clients: ControlClient[];
  /** The Sentinel queried first: the one that answered last. */
  private preferred = 0;
  private topology: DiscoveredTopology | null = null;
  private closed = false;
  private started = false;
  /** What is failing now (`query <host:port>`, `subscription`, `all`): warned about once. */
  private readonly failing = new Set<string>();

  /** A re-query is running; `queued` is the reason of the one to run after it, if any. */
  private querying = false;
  private queued: string | null = null;
  /** Bumped by `+switch-master`: a query that started before it reports nothing. */
  private generation = 0;

  private subscription: Subscription | null = null;
  /** Index of the Sentinel the subscription is on, or is to be tried next. */
  private subIndex = 0;
  private backoff: number;
  private everSubscribed = false;
  private resubscribeTimer: NodeJS.Timeout | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;

  constructor(options: SentinelWatcherOptions) {
    if (options.config.nodes.length === 0) throw new Error('SentinelWatcher: no Sentinel configured');
    this.options = options;
    this.nodes = options.config.nodes.map(({ host, port }) => ({ host, port }));
    const { username, password } = options.config;
    this.clients = this.nodes.map(
      ({ host, port }) => new ControlClient({ host, port, username, password, timeout: options.timeout }),
    );
    this.backoff = Math.min(FIRST_BACKOFF, options.refreshInterval);
  }

  /** The last topology discovered or reported; null before discover(). */
  get current(): DiscoveredTopology | null {
    return this.topology;
  }

  /** `host:port` of the Sentinel the event subscription is on now (for INFO); '' when none. */
  get sentinel(): string {
    return this.subscription?.ready ? this.subscription.address : '';
  }

  /**
   * First discovery: `SENTINEL GET-MASTER-ADDR-BY-NAME` then `SENTINEL REPLICAS`, asking
   * each Sentinel in turn (each at most `timeout` ms) until one answers. Sets `current`;
   * does not call onChange.
   * @throws Error naming every Sentinel tried and why it failed: unreachable (the socket
   *   error code), a timeout, an error reply, or "does not know master <name>".
   */
  async discover(): Promise<DiscoveredTopology> {
    if (this.closed) throw new Error('SentinelWatcher is closed');
    const topology = await this.queryRound();
    this.topology = topology;
    this.options.logger.info(
      { sentinelMaster: this.options.config.masterName, master: label(topology.master), replicas: topology.replicas.map(label) },
      'Sentinel: master discovered',
    );
    return topology;
  }

  /**
   * Starts following: subscribes to one Sentinel's events (the one that answered
   * discover() first) and re-queries every `refreshInterval` ms. Call after discover();
   * calling it again does nothing. The timers are unref'd, but the connections to the
   * Sentinels keep the process alive until close().
   */
  start(): void {
    if (this.closed || this.started) return;
    this.started = true;
    this.subIndex = this.preferred;
    this.subscribe();
    this.refreshTimer = setInterval(() => this.tick(), this.options.refreshInterval);
    this.refreshTimer.unref();
  }

  /** Stops everything (subscription, query connections, timers); idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.refreshTimer !== null) clearInterval(this.refreshTimer);
    if (this.resubscribeTimer !== null) clearTimeout(this.resubscribeTimer);
    this.refreshTimer = this.resubscribeTimer = null;
    const sub = this.subscription;
    this.subscription = null;
    sub?.close();
    for (const client of this.clients) client.close();
  }

  // --- queries ---

  /** The Sentinels in query order: the one that answered last, then the others in list order. */
  private queryOrder(): number[] {
    return [this.preferred, ...this.nodes.keys()].filter((i, pos, all) => all.indexOf(i) === pos);
  }

  /** Asks each Sentinel in turn; the first complete answer wins. */
  private async queryRound(): Promise<DiscoveredTopology> {
    const failures: string[] = [];
    for (const index of this.queryOrder()) {
      if (this.closed) throw new Error('SentinelWatcher is closed');
      const address = label(this.nodes[index]!);
      try {
        const topology = await withDeadline(this.ask(index), this.options.timeout);
        this.preferred = index;
        this.failing.delete('all');
        if (this.failing.delete(`query ${address}`)) {
          this.options.logger.info({ sentinelMaster: this.options.config.masterName, sentinel: address }, 'Sentinel: answers again');
        }
        return topology;
      } catch (err) {
        const why = errorText(err);
        failures.push(`${address}: ${why}`);
        this.failed(`query ${address}`, 'Sentinel: query failed', { sentinel: address, error: why });
      }
    }
    throw new Error(
      `no Sentinel could tell where master '${this.options.config.masterName}' is: ${failures.join('; ')}`,
    );
  }

  /** One Sentinel's answer: both commands pipelined on its query connection. */
  private async ask(index: number): Promise<DiscoveredTopology> {
    const client = this.clients[index]!;
    const name = this.options.config.masterName;
    const getMaster = client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name);
    const getReplicas = client.call('SENTINEL', 'REPLICAS', name);
    // Awaited below unless getMaster fails first: never an unhandled rejection.
    getReplicas.catch(() => undefined);
    const addr = await getMaster;
    if (addr === null) throw new Error(`does not know master ${name}`);
    if (!Array.isArray(addr) || typeof addr[0] !== 'string') {
      throw new Error('unexpected reply to SENTINEL GET-MASTER-ADDR-BY-NAME');
    }
    const master = { host: addr[0], port: toPort(addr[1], 'master') };
    const replicas = parseReplicas(await getReplicas).filter((r) => !sameAddress(r, master));
    return { master, replicas };
  }

  /**
   * Re-queries the Sentinels and reports a change. At most one query runs at a time; at
   * most one more waits, with the first event reason asked for (`+switch-master` wins
   * over any other, any event over `refresh`).
   */
  private requery(reason: string): void {
    if (this.closed) return;
    if (this.querying) {
      if (this.queued === null || this.queued === 'refresh' || reason === '+switch-master') this.queued = reason;
      return;
    }
    this.querying = true;
    this.runQuery(reason)
      .catch((err: unknown) => this.options.logger.error({ err }, 'Sentinel: re-query failed unexpectedly'))
      .finally(() => {
        this.querying = false;
        const next = this.queued;
        this.queued = null;
        if (next !== null) this.requery(next);
      })
      .catch(() => undefined);
  }

  private async runQuery(reason: string): Promise<void> {
    const generation = this.generation;
    let topology: DiscoveredTopology;
    try {
      topology = await this.queryRound();
    } catch (err) {
      if (!this.closed) this.failed('all', 'Sentinel: no Sentinel answered', { error: errorText(err) });
      return;
    }
    // A `+switch-master` arrived meanwhile: this answer may predate it.
    if (!this.closed && generation === this.generation) this.report(topology, reason);
  }

  /** Stores `topology` and calls onChange when it differs from the current one. */
  private report(topology: DiscoveredTopology, reason: string): void {
    const before = this.topology;
    if (before !== null && sameTopology(before, topology)) return;
    this.topology = topology;
    this.options.logger.info(
      {
        sentinelMaster: this.options.config.masterName,
        reason,
        oldMaster: before === null ? null : label(before.master),
        master: label(topology.master),
        replicas: topology.replicas.map(label),
      },
      'Sentinel: topology changed',
    );
    try {
      this.options.onChange(topology, reason);
    } catch (err) {
      this.options.logger.error({ err }, 'Sentinel: onChange threw');
    }
  }

  /** Periodic work: a re-query, and a PING on the subscription to detect a hung Sentinel. */
  private tick(): void {
    if (this.closed) return;
    this.requery('refresh');
    this.subscription?.ping(this.options.timeout);
  }

  // --- subscription ---

  /** Subscribes to the events of the Sentinel at `subIndex`. */
  private subscribe(): void {
    if (this.closed) return;
    const index = this.subIndex;
    const address = label(this.nodes[index]!);
    const { username, password } = this.options.config;
    try {
      const sub: Subscription = new Subscription(this.nodes[index]!, this.options.timeout, username, password, {
        ready: () => {
          this.backoff = Math.min(FIRST_BACKOFF, this.options.refreshInterval);
          this.failing.delete('subscription');
          this.options.logger.info({ sentinelMaster: this.options.config.masterName, sentinel: address }, 'Sentinel: subscribed to events');
          // Events may have been missed while not subscribed.
          this.requery(this.everSubscribed ? 'reconnect' : 'subscribe');
          this.everSubscribed = true;
        },
        message: (channel, payload) => this.onEvent(channel, payload, index),
        lost: (why) => {
          if (this.subscription === sub) this.subscriptionLost(index, why);
        },
      });
      this.subscription = sub;
    } catch (err) {
      this.subscriptionLost(index, errorText(err));
    }
  }

  /** Tries the next Sentinel after a backoff: 100 ms, doubling up to refreshInterval. */
  private subscriptionLost(index: number, why: string): void {
    this.subscription = null;
    const address = label(this.nodes[index]!);
    this.failed('subscription', 'Sentinel: event subscription failed', { sentinel: address, error: why });
    this.subIndex = (index + 1) % this.nodes.length;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, Math.max(this.options.refreshInterval, FIRST_BACKOFF));
    this.resubscribeTimer = setTimeout(() => {
      this.resubscribeTimer = null;
      this.subscribe();
    }, delay);
    this.resubscribeTimer.unref();
  }

  /** A Sentinel event on our subscription (sentinelIndex: the Sentinel that sent it). */
  private onEvent(channel: string, payload: string, sentinelIndex: number): void {
    if (this.closed) return;
    const parts = payload.split(' ');
    const name = this.options.config.masterName;
    if (channel === '+switch-master') {
      // <master-name> <oldip> <oldport> <newip> <newport>
      if (parts[0] !== name || parts.length < 5) return;
      this.switchMaster({ host: parts[3]!, port: Number(parts[4]) }, sentinelIndex);
      return;
    }
    // <instance-type> <name> <ip> <port> @ <master-name> <master-ip> <master-port>, or
    // without the `@` part for the master itself (`master <master-name> <ip> <port>`).
    const at = parts.indexOf('@');
    const master = at >= 0 ? parts[at + 1] : parts[0] === 'master' ? parts[1] : undefined;
    if (master !== name) return;
    this.requery(channel);
  }

  /** `+switch-master`: reports the new master now, then re-queries for the replicas. */
  private switchMaster(master: Address, sentinelIndex: number): void {
    if (!Number.isInteger(master.port)) return;
    this.generation++;
    // That Sentinel knows about the switch: later queries must not ask a lagging one first.
    this.preferred = sentinelIndex;
    const replicas = (this.topology?.replicas ?? []).filter((r) => !sameAddress(r, master));
    this.report({ master, replicas }, '+switch-master');
    this.requery('+switch-master');
  }

  // --- logging of failures ---

  /**
   * Logs a failure: at warn the first time `key` (`query <host:port>`, `subscription`,
   * `all`) fails, at debug while it keeps failing.
   */
  private failed(key: string, message: string, fields: Record<string, string>): void {
    const logged = { sentinelMaster: this.options.config.masterName, ...fields };
    if (this.failing.has(key)) {
      this.options.logger.debug(logged, message);
      return;
    }
    this.failing.add(key);
    this.options.logger.warn(logged, message);
  }
}

interface SubscriptionEvents {
  /** Every channel's subscription is confirmed. */
  ready(): void;
  message(channel: string, payload: string): void;
  /** The connection failed or dropped (called once; not after close()). */
  lost(why: string): void;
}

/**
 * One RESP2 Pub/Sub connection to a Sentinel: AUTH (when a password is configured), then
 * SUBSCRIBE to {@link CHANNELS}. Connecting and subscribing must finish within `timeout`.
 */
class Subscription {
  readonly address: string;
  ready = false;
  private readonly socket: net.Socket;
  private done = false;
  private confirmed = 0;
  /** When the unanswered PING was sent (0: none outstanding). */
  private pingSentAt = 0;

  constructor(
    node: Address,
    timeout: number,
    username: string | undefined,
    password: string | undefined,
    private readonly events: SubscriptionEvents,
  ) {
    this.address = label(node);
    const socket = net.connect({ host: node.host, port: node.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.setTimeout(timeout);
    const parser = new RedisParser({
      returnReply: (reply: unknown) => this.onReply(reply),
      returnError: (err: Error) => this.fail(`error reply: ${err.message}`),
      returnFatalError: (err: Error) => this.fail(`protocol error: ${err.message}`),
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.execute(chunk);
      } catch (err) {
        this.fail(`protocol error: ${errorText(err)}`);
      }
    });
    socket.on('timeout', () => this.fail(`not subscribed within ${timeout} ms`));
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? err.message));
    socket.on('close', () => this.fail('connection closed'));
    if (password !== undefined) {
      socket.write(encodeCommand(username !== undefined ? ['AUTH', username, password] : ['AUTH', password]));
    }
    socket.write(encodeCommand(['SUBSCRIBE', ...CHANNELS]));
  }

  /** Sends a PING, or drops the connection when the last one is unanswered after `timeout` ms. */
  ping(timeout: number): void {
    if (!this.ready || this.done) return;
    if (this.pingSentAt === 0) {
      this.pingSentAt = Date.now();
      this.socket.write(encodeCommand(['PING']));
    } else if (Date.now() - this.pingSentAt > timeout) {
      this.fail(`no reply to PING within ${timeout} ms`);
    }
  }

  /** Closes without reporting. */
  close(): void {
    this.done = true;
    this.socket.destroy();
  }

  private onReply(reply: unknown): void {
    if (this.done || !Array.isArray(reply)) return; // `OK` to AUTH
    const [kind, channel, payload] = reply as unknown[];
    if (kind === 'message' && typeof channel === 'string' && typeof payload === 'string') {
      this.events.message(channel, payload);
    } else if (kind === 'pong') {
      this.pingSentAt = 0;
    } else if (kind === 'subscribe' && ++this.confirmed === CHANNELS.length) {
      this.ready = true;
      this.socket.setTimeout(0);
      this.events.ready();
    }
  }

  private fail(why: string): void {
    if (this.done) return;
    this.done = true;
    this.ready = false;
    this.socket.destroy();
    this.events.lost(why);
  }
}

/**
 * The HTTP front end of a listener (its `http` key): `GET /<key>` answers the string value
 * of a key, read the way a RESP GET on the listener is read (read policy, health, causal
 * reads), from the near cache when `http.cache` is set.
 *
 * - `GET /<key>` (./key-path.ts: percent-decoded to bytes): 200 with the value,
 *   `Content-Type: application/octet-stream`; 404 when the key does not exist; 409 when it
 *   holds another type (the body names it, from TYPE); `HEAD` the same without a body.
 * - 400 for a target that names no key (`/`, a query string, a bad `%` escape, over 8 KiB);
 *   405 with `Allow: GET, HEAD` for other methods; 401 with `WWW-Authenticate` when the
 *   listener has a `password` or `users` and the request does not carry them (./auth.ts).
 * - 503 when no node can serve the read (policy `replica` with none healthy, the master
 *   down with no replica) or when the queue is full: at most `maxInFlight` requests wait on
 *   Redis at once, 4 × `maxInFlight` more wait in a queue, the rest are refused at once
 *   (`Retry-After: 1`). Cache hits never wait. 502 when the node answered with an error or
 *   its connection failed (after up to 2 retries elsewhere), 504 when the read timed out
 *   (`commandTimeout`).
 * - With the cache on, requests for a key whose read is already on its way to Redis wait
 *   for that read's answer instead of reading again (they take no maxInFlight place).
 * - Headers: `Cache-Control: max-age=<ttl s>` and `Age: <s since fetched>` describe the
 *   near cache's copy (RFC 9111: a cache in front may keep it for max-age - Age, which is
 *   what the near cache has left of the entry's ttl); `X-Cache: HIT` or
 *   `MISS` when the cache is on. A value not kept in the cache (cache off, or its fill was
 *   invalidated in flight), and every non-200 answer, carries `Cache-Control: no-store`.
 *
 * HTTPS with the listener's certificate when it has `tls` (clientAuth included).
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import Denque from 'denque';
import type { Logger } from 'pino';
import type { BackendFailure, OwedReply } from '../backend/link.js';
import type { Node } from '../backend/node.js';
import type { CachedReads } from '../cache/cached-reads.js';
import type { CacheEntry } from '../cache/near-cache.js';
import { readGetReply, type FillResult } from '../cache/tracking.js';
import { secureContextOptions } from '../config/tls.js';
import type { HttpConfig, ListenerConfig } from '../config/types.js';
import { keyBucket } from '../consistency/recent-writes.js';
import type { CausalReads } from '../consistency/causal-reads.js';
import { encodeCommand } from '../protocol/resp.js';
import type { Router } from '../routing/router.js';
import { authorized, WWW_AUTHENTICATE } from './auth.js';
import { keyFromTarget } from './key-path.js';

/** Queued requests allowed per `maxInFlight` (the queue holds 4 × maxInFlight). */
export const QUEUE_FACTOR = 4;
/** Times a read is sent elsewhere after its node's connection failed. */
const MAX_RETRIES = 2;

/** What the front end reads of its listener (the Listener itself). */
export interface HttpSource {
  readonly config: ListenerConfig;
  readonly router: Router;
  readonly causal: CausalReads;
  /** The listener's near cache (null: none). */
  readonly nearCache: CachedReads | null;
  readonly logger: Logger;
}

/** Counters of the front end since it started (INFO proxy). */
export interface HttpCounters {
  requests: number;
  /** By status class: 2xx, 4xx, 5xx. */
  ok: number;
  clientErrors: number;
  serverErrors: number;
  /** Refused with 503 because the queue was full. */
  queueFull: number;
}

/** One value to send: its bytes, and the cache entry it came from or went into. */
interface Found {
  value: Buffer;
  entry: CacheEntry | null;
  hit: boolean;
}

/** A read waiting for its turn (maxInFlight). */
type Pending = () => void;

/** Where a read's outcome goes: a status, and the value or the error text. */
type Answer = (status: number, found: Found | null, message: string) => void;

const TEXT = 'text/plain; charset=utf-8';
const GET_TYPE = (key: Buffer): Buffer => encodeCommand(['TYPE', key]);

/** The reply to a read on a shared connection (cache off, or a node that refused tracking). */
class SharedRead implements OwedReply {
  sentAt = 0;
  readonly patient = false;
  constructor(private readonly done: (result: FillResult | Buffer) => void, private readonly raw: boolean) {}
  settle(buf: Buffer, start: number, end: number): void {
    this.done(this.raw ? Buffer.from(buf.subarray(start, end)) : copyResult(readGetReply(buf, start, end)));
  }
  fail(failure: BackendFailure): void {
    this.done({ kind: 'failed', failure });
  }
}

/** A FillResult whose value no longer points into a socket's buffer. */
function copyResult(result: FillResult): FillResult {
  return result.kind === 'value' ? { kind: 'value', value: Buffer.from(result.value) } : result;
}

export class HttpFrontEnd {
  private server: http.Server;
  /** The port listened on (0 until started). */
  port = 0;
  private inFlight = 0;
  private readonly queue = new Denque<Pending>();
  /** With the cache on: the reads on their way to Redis, by key (latin1), with the requests that wait for the same answer. */
  private readonly reading = new Map<string, Answer[]>();
  readonly counters: HttpCounters = { requests: 0, ok: 0, clientErrors: 0, serverErrors: 0, queueFull: 0 };

  /**
   * @param source the listener (its config, router, causal reads and cache, read per request)
   * @param config the listener's `http` now
   */
  constructor(
    private readonly source: HttpSource,
    private config: HttpConfig,
  ) {
    this.server = this.create();
  }

  /** The `http` config and the listener `tls` it was started with: a change of these needs a new server. */
  private listenKey(config: HttpConfig): string {
    const tls = this.source.config.tls;
    return JSON.stringify([config.listen, config.bind, tls?.cert, tls?.key, tls?.ca, tls?.clientAuth]);
  }

  private startedWith = '';

  /** @throws Error when the port cannot be listened on (in use, not permitted) */
  async start(): Promise<void> {
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.listen, this.config.bind, () => {
        server.off('error', reject);
        server.on('error', (err) => this.source.logger.error({ err }, 'HTTP front end error'));
        resolve();
      });
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.startedWith = this.listenKey(this.config);
    this.source.logger.info(
      { bind: this.config.bind, port: this.port, https: this.source.config.tls !== undefined, cache: this.config.cached },
      'HTTP front end up: GET /<key>',
    );
  }

  /**
   * A reload's `http` (and the listener's `tls`): a new port, bind address or TLS material
   * listens anew (requests in progress finish on the old server); maxInFlight and the
   * cache switch apply to the next request.
   * @throws Error when the new port cannot be listened on
   */
  async reconfigure(next: HttpConfig): Promise<void> {
    this.config = next;
    if (this.listenKey(next) === this.startedWith) return;
    const old = this.server;
    old.close();
    old.closeIdleConnections();
    this.server = this.create();
    await this.start();
  }

  /** Stops listening; open connections are closed, queued requests get nothing more. */
  close(): Promise<void> {
    this.queue.clear();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** Lines for `INFO proxy`. */
  infoLines(): string[] {
    const c = this.counters;
    return [
      `http_port:${this.port}`,
      `http_requests:${c.requests}`,
      `http_in_flight:${this.inFlight}`,
      `http_queued:${this.queue.length}`,
      `http_responses_2xx:${c.ok}`,
      `http_responses_4xx:${c.clientErrors}`,
      `http_responses_5xx:${c.serverErrors}`,
      `http_queue_full:${c.queueFull}`,
    ];
  }

  private create(): http.Server {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => this.handle(req, res);
    const tlsConfig = this.source.config.tls;
    if (tlsConfig === undefined) return http.createServer(handler);
    const server = https.createServer(
      {
        ...secureContextOptions(tlsConfig),
        requestCert: tlsConfig.clientAuth !== 'none',
        rejectUnauthorized: tlsConfig.clientAuth === 'require',
      },
      handler,
    );
    // clientAuth `request`: a certificate the CA did not sign is refused, as on the RESP port.
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      if (tlsConfig.clientAuth === 'request' && !socket.authorized && Object.keys(socket.getPeerCertificate()).length > 0) socket.destroy();
    });
    return server;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.counters.requests++;
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      this.text(res, head, 405, 'method not allowed: use GET or HEAD\n', { Allow: 'GET, HEAD' });
      return;
    }
    const key = keyFromTarget(req.url ?? '/');
    if (typeof key === 'string') {
      this.text(res, head, 400, `${key}\n`);
      return;
    }
    const { password, users } = this.source.config;
    if (!authorized(req.headers.authorization, password, users)) {
      this.text(res, head, 401, 'authentication required: Basic (user "default" or a listener user) or Bearer <password>\n', {
        'WWW-Authenticate': WWW_AUTHENTICATE,
      });
      return;
    }
    const near = this.config.cached ? this.source.nearCache : null;
    const needed = this.needed(key);
    if (near !== null) {
      const entry = near.cache.get(0, key, 0, key.length, needed);
      if (entry !== undefined) {
        this.value(res, head, { value: entry.reply.subarray(entry.valueStart, entry.reply.length - 2), entry, hit: true }, key);
        return;
      }
    }
    const respond: Answer = (status, found, message) => {
      if (found !== null) this.value(res, head, found, key);
      else this.text(res, head, status, message);
    };
    // A read of the same key already on its way to Redis (cache on): this one takes its answer.
    const name = near === null ? '' : key.toString('latin1', 0, key.length);
    const joined = near === null ? undefined : this.reading.get(name);
    if (joined !== undefined) {
      joined.push(respond);
      return;
    }
    const run = (): void => {
      if (res.destroyed) {
        this.next();
        return;
      }
      this.inFlight++;
      if (near !== null) this.reading.set(name, []);
      this.read(key, needed, near, null, 0, (status, found, message) => {
        this.inFlight--;
        respond(status, found, message);
        if (near !== null) {
          const followers = this.reading.get(name);
          this.reading.delete(name);
          for (const follower of followers ?? []) follower(status, found, message);
        }
        this.next();
      });
    };
    if (this.inFlight < this.config.maxInFlight) {
      run();
    } else if (this.queue.length < QUEUE_FACTOR * this.config.maxInFlight) {
      this.queue.push(run);
    } else {
      this.counters.queueFull++;
      this.text(res, head, 503, `too many requests waiting (maxInFlight ${this.config.maxInFlight}, queue ${QUEUE_FACTOR * this.config.maxInFlight})\n`, {
        'Retry-After': '1',
      });
    }
  }

  /** Starts the next queued read, if there is room. */
  private next(): void {
    while (this.inFlight < this.config.maxInFlight && this.queue.length > 0) this.queue.shift()!();
  }

  /** The latest write a read of `key` (database 0) must see, as a new RESP session's GET would. */
  private needed(key: Buffer): number {
    const causal = this.source.causal;
    if (causal.mode !== 'global') return 0;
    return causal.readNeeds(keyBucket(0, key, 0, key.length), []);
  }

  /** The node for a read needing writes up to `needed`, avoiding `failed`; null when none can serve it. */
  private nodeFor(needed: number, failed: Node | null): Node | null {
    const router = this.source.router;
    let node = failed === null ? this.source.causal.readNode(router, needed) : router.readNode(failed);
    if (node !== null && !node.reachable && node === router.master && router.replicasInRotation.length === 0) {
      // The master down and no replica in the rotation: stale reads beat no reads (as for RESP reads).
      node = router.fallbackNode(failed);
    }
    return node !== null && node.reachable && node !== failed ? node : null;
  }

  /**
   * Reads `key`: through the cache's tracking connection when the cache is on (the value
   * is cached), else on the node's shared connection; retried elsewhere when the
   * connection fails. `done` gets the status and the value found, or the error text.
   */
  private read(
    key: Buffer,
    needed: number,
    near: CachedReads | null,
    failed: Node | null,
    attempt: number,
    done: (status: number, found: Found | null, message: string) => void,
  ): void {
    const node = this.nodeFor(needed, failed);
    if (node === null) {
      done(503, null, failed === null ? 'no node can serve reads now (see INFO proxy)\n' : `${failed.label} failed and no other node can serve the read\n`);
      return;
    }
    const finish = (result: FillResult, entry: CacheEntry | null): void => {
      switch (result.kind) {
        case 'value':
          done(200, { value: entry === null ? result.value : entry.reply.subarray(entry.valueStart, entry.reply.length - 2), entry, hit: false }, '');
          return;
        case 'nil':
          done(404, null, 'not found\n');
          return;
        case 'wrongtype':
          this.typeOf(node, key, (type) => done(409, null, `WRONGTYPE: the key holds a ${type} value, not a string\n`));
          return;
        case 'error':
          done(502, null, `${node.label} answered: ${result.message}\n`);
          return;
        case 'failed':
          if (result.failure.kind !== 'timeout' && attempt < MAX_RETRIES) {
            this.read(key, needed, near, node, attempt + 1, done);
            return;
          }
          done(result.failure.kind === 'timeout' ? 504 : 502, null, `${result.failure.node} ${result.failure.detail}\n`);
      }
    };
    if (near !== null && near.fetch(node, 0, key, needed, (result, entry) => finish(copyResult(result), entry))) return;
    const request = encodeCommand(['GET', key]);
    node.sharedLink(0, 2).send(new SharedRead((r) => finish(r as FillResult, null), false), request, 0, request.length);
  }

  /** The type of `key` on `node` (TYPE), for a 409's text; `unknown` when it cannot be had. */
  private typeOf(node: Node, key: Buffer, done: (type: string) => void): void {
    const request = GET_TYPE(key);
    const reply = new SharedRead((r) => {
      const raw = r as Buffer;
      done(Buffer.isBuffer(raw) && raw[0] === 0x2b ? raw.toString('latin1', 1, raw.length - 2) : 'unknown');
    }, true);
    node.sharedLink(0, 2).send(reply, request, 0, request.length);
  }

  private value(res: http.ServerResponse, head: boolean, found: Found, _key: Buffer): void {
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Content-Length': found.value.length,
    };
    const entry = found.entry;
    if (entry === null) {
      headers['Cache-Control'] = 'no-store';
      headers.Age = 0;
    } else {
      // RFC 9111: max-age is the entry's freshness lifetime and Age how much of it is gone,
      // so a cache in front keeps it for max-age - Age: what the near cache has left.
      const ttl = this.source.nearCache?.cache.config.ttl ?? 0;
      headers['Cache-Control'] = `max-age=${Math.floor(ttl / 1000)}`;
      headers.Age = Math.max(0, Math.floor((Date.now() - entry.fetchedAt) / 1000));
    }
    if (this.config.cached) headers['X-Cache'] = found.hit ? 'HIT' : 'MISS';
    this.counters.ok++;
    if (res.destroyed) return;
    res.writeHead(200, headers);
    res.end(head ? undefined : found.value);
  }

  private text(res: http.ServerResponse, head: boolean, status: number, body: string, extra: Record<string, string> = {}): void {
    if (status >= 500) this.counters.serverErrors++;
    else this.counters.clientErrors++;
    if (res.destroyed) return;
    res.writeHead(status, { 'Content-Type': TEXT, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...extra });
    res.end(head ? undefined : body);
  }
}

/**
 * The admin HTTP server (the config's top-level `admin` key): Prometheus metrics and
 * health checks, on its own port, apart from the Redis listeners.
 *
 * - `GET /metrics`: Prometheus text format (./metrics.ts), `text/plain; version=0.0.4`.
 * - `GET /healthz`: 200 `ok` while the process serves.
 * - `GET /readyz`: 200 when every listener can serve, else 503; a JSON body either way
 *   naming each listener and what is wrong with it (see {@link readiness}).
 * - Other paths: 404. Methods other than GET and HEAD: 405 (with `Allow: GET, HEAD`).
 */
import http from 'node:http';
import type { AdminConfig } from '../config/types.js';
import type { Logger } from '../log.js';

/** What `/readyz` says of one listener (Listener.readiness). */
export interface ListenerReadiness {
  name: string;
  port: number;
  ready: boolean;
  /** Why it cannot serve ('' when it can). */
  problem: string;
}

/** Where the admin server's answers come from: this process's listeners, or every worker's (src/cluster/primary.ts). */
export interface AdminSource {
  /** The Prometheus text and its content type. */
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Each listener's readiness. */
  readiness(): Promise<ListenerReadiness[]>;
}

export class AdminServer {
  private readonly server: http.Server;
  /** The port actually listened on (0 until started). */
  port = 0;

  /** @param source the metrics and readiness served (./metrics.ts and the listeners, or every worker's) */
  constructor(
    readonly config: AdminConfig,
    private readonly source: AdminSource,
    private readonly logger: Logger,
  ) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  /** @throws Error when the port cannot be listened on (in use, not permitted) */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.listen, this.config.bind, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.logger.error({ err }, 'admin server error'));
        this.port = (this.server.address() as { port: number }).port;
        this.logger.info({ bind: this.config.bind, port: this.port }, 'admin server up: /metrics, /healthz, /readyz');
        resolve();
      });
    });
  }

  /** Stops listening and closes its connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const head = req.method === 'HEAD';
    const send = (status: number, type: string, body: string, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...headers });
      res.end(head ? undefined : body);
    };
    if (req.method !== 'GET' && !head) {
      send(405, 'text/plain; charset=utf-8', 'method not allowed: use GET or HEAD\n', { Allow: 'GET, HEAD' });
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    try {
      switch (path) {
        case '/metrics': {
          const { contentType, text } = await this.source.metrics();
          send(200, contentType, text);
          return;
        }
        case '/healthz':
          send(200, 'text/plain; charset=utf-8', 'ok\n');
          return;
        case '/readyz': {
          const listeners = await this.source.readiness();
          const ready = listeners.every((l) => l.ready);
          send(ready ? 200 : 503, 'application/json', `${JSON.stringify({ ready, listeners })}\n`);
          return;
        }
        default:
          send(404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n');
      }
    } catch (err) {
      this.logger.error({ err, path }, 'admin request failed');
      send(500, 'text/plain; charset=utf-8', 'internal error\n');
    }
  }
}

/**
 * The socket a listener accepts its clients on: plain TCP, or TLS with the listener's
 * certificate (`tls`, with clientAuth). Each accepted client goes to the listener's
 * `accept`, as a decrypted socket, so nothing after accept knows about TLS. A reload
 * listens anew (a new `bind`, TLS turned on or off, a new clientAuth) or gives new
 * connections a new certificate (tls.Server#setSecureContext); clients accepted before
 * stay either way.
 */
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { secureContextOptions } from '../config/tls.js';
import type { ServerTls } from '../config/types.js';

/** What the server needs of its listener's config. */
export interface ClientServerConfig {
  bind: string;
  tls?: ServerTls | undefined;
}

export class ClientServer {
  private server: net.Server;
  /**
   * TCP connections accepted by a TLS server, until they close: those still in their TLS
   * handshake are no session yet, and closing drops them (a server's close waits for
   * every connection it accepted).
   */
  private readonly tlsConnections = new Set<net.Socket>();
  /** The port listened on (0 until {@link listen}). */
  port = 0;

  /**
   * @param config the listener's `bind` and `tls` now
   * @param accept takes each client: a net.Socket, or a tls.TLSSocket past its handshake
   * @param logger the listener's logger now (a reload may rename the listener)
   */
  constructor(
    private config: ClientServerConfig,
    private readonly accept: (socket: net.Socket) => void,
    private readonly logger: () => Logger,
  ) {
    this.server = this.create();
  }

  /**
   * Listens on `port` (0: a free one) at the configured `bind`.
   * @returns the port listened on
   * @throws Error when the port cannot be listened on (in use, not permitted)
   */
  async listen(port: number): Promise<number> {
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.config.bind, () => {
        server.off('error', reject);
        server.on('error', (err) => this.logger().error({ err }, 'listener error'));
        resolve();
      });
    });
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  /**
   * A reload's `bind` and `tls`: a new `bind`, TLS turned on or off, or a new clientAuth
   * listens anew on the same port; a new certificate, key or CA (contents or paths) is
   * given to the connections accepted from now on.
   */
  async reconfigure(next: ClientServerConfig): Promise<void> {
    const before = this.config;
    this.config = next;
    const [tlsBefore, tlsNext] = [before.tls, next.tls];
    const tlsToggled = (tlsBefore === undefined) !== (tlsNext === undefined);
    if (next.bind !== before.bind || tlsToggled || tlsBefore?.clientAuth !== tlsNext?.clientAuth) {
      await this.relisten();
      if (tlsToggled) {
        this.logger().info({ tls: tlsNext === undefined ? false : describeTls(tlsNext) }, tlsNext === undefined ? 'TLS turned off' : 'TLS turned on');
      }
    } else if (tlsBefore !== undefined && tlsNext !== undefined && tlsMaterialChanged(tlsBefore, tlsNext)) {
      (this.server as tls.Server).setSecureContext(secureContextOptions(tlsNext));
      this.logger().info({ tls: describeTls(tlsNext) }, 'TLS certificate reloaded: new connections get it');
    }
  }

  /**
   * Stops accepting. Resolves once every connection the server accepted has closed (call
   * {@link dropHandshakes} once the sessions are closed).
   */
  close(): Promise<void> {
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Closes the TLS connections that never finished their handshake (no session holds them). */
  dropHandshakes(): void {
    for (const socket of this.tlsConnections) socket.destroy();
  }

  /**
   * Plain TCP, or TLS (`requestCert` unless clientAuth is `none`; `rejectUnauthorized`
   * for `require`, so a client without a certificate signed by `ca` fails the handshake).
   * See https://nodejs.org/docs/latest-v20.x/api/tls.html#tlscreateserveroptions-secureconnectionlistener
   */
  private create(): net.Server {
    const config = this.config.tls;
    if (config === undefined) return net.createServer((socket) => this.accept(socket));
    const server = tls.createServer(
      {
        ...secureContextOptions(config),
        requestCert: config.clientAuth !== 'none',
        rejectUnauthorized: config.clientAuth === 'require',
      },
      (socket) => this.acceptTls(socket),
    );
    server.on('connection', (socket: net.Socket) => {
      this.tlsConnections.add(socket);
      socket.once('close', () => this.tlsConnections.delete(socket));
    });
    server.on('tlsClientError', (err, socket) => {
      this.logger().debug({ client: `${socket.remoteAddress}:${socket.remotePort}`, error: err.message }, 'TLS handshake with a client failed');
    });
    return server;
  }

  /**
   * A client that completed the TLS handshake. With clientAuth `request`, one that
   * presented a certificate the CA did not sign is closed (as Redis's
   * `tls-auth-clients optional` does); one without a certificate is served.
   */
  private acceptTls(socket: tls.TLSSocket): void {
    if (this.config.tls?.clientAuth === 'request' && !socket.authorized && Object.keys(socket.getPeerCertificate()).length > 0) {
      this.logger().debug(
        { client: `${socket.remoteAddress}:${socket.remotePort}`, error: String(socket.authorizationError) },
        'TLS client certificate refused',
      );
      socket.destroy();
      return;
    }
    this.accept(socket);
  }

  /**
   * Listens anew on the same port; clients accepted on the old server stay. The old
   * server stops listening at once; its close callback is not awaited, since it only
   * comes once every session it accepted has ended.
   */
  private async relisten(): Promise<void> {
    this.server.close();
    // The listening socket is closed on the next turn of the event loop.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.server = this.create();
    await this.listen(this.port);
  }
}

/** Whether the certificate, key or CA of a listener's TLS differ (contents or paths). */
function tlsMaterialChanged(a: ServerTls, b: ServerTls): boolean {
  return (
    a.cert !== b.cert || a.key !== b.key || a.ca !== b.ca || a.certFile !== b.certFile || a.keyFile !== b.keyFile || a.caFile !== b.caFile
  );
}

/** A listener's TLS for the log: files, clientAuth, and the certificate's subject, expiry and fingerprint. */
export function describeTls(config: ServerTls): Record<string, unknown> {
  const out: Record<string, unknown> = { cert: config.certFile, clientAuth: config.clientAuth };
  if (config.caFile !== undefined) out.ca = config.caFile;
  try {
    const cert = new X509Certificate(config.cert);
    out.subject = cert.subject.replace(/\n/g, ', ');
    out.validTo = cert.validTo;
    out.fingerprint256 = cert.fingerprint256;
  } catch {
    // Checked by normalizeConfig; nothing more to say here.
  }
  return out;
}

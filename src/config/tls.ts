/**
 * The TLS files a config names: read, checked, and turned into the normalized
 * {@link ServerTls} (a listener's `tls`) and {@link BackendTls} (`backendTls` of a
 * listener, `defaults` or a node).
 *
 * normalizeConfig (./load.ts) reads the files, synchronously, once the file has passed
 * the schema: at start, for `--check`, and on every reload (SIGHUP), so a certificate
 * renewed in place (same path, new contents) is picked up by a reload. A relative path is
 * resolved against the config file's directory (`loadConfig`), or against the directory
 * the caller gives normalizeConfig (default: the working directory).
 *
 * What is checked, each a config problem naming the key (`[0].tls.key: …`):
 * - every file can be read (`cannot read "/x.pem": no such file (ENOENT)`);
 * - a `cert` holds a PEM certificate (Node's X509Certificate parses it);
 * - a `key` holds an unencrypted PEM private key (crypto.createPrivateKey) that matches
 *   the certificate (X509Certificate#checkPrivateKey): `[0].tls.key: does not match
 *   [0].tls.cert …`;
 * - a `ca` holds one or more PEM certificates, each of which parses (Node's
 *   tls.createSecureContext silently ignores a CA file it cannot parse);
 * - `clientAuth` other than `none` comes with a `ca`; a backend `cert` comes with its `key`
 *   and the other way round; `servername` is not an IP address (TLS sends no IP address
 *   as SNI).
 * Nothing here opens a connection: whether a server's certificate is trusted is only
 * known when the proxy connects (a node it cannot verify is `down`).
 *
 * Node docs: https://nodejs.org/docs/latest-v20.x/api/tls.html#tlscreatesecurecontextoptions,
 * https://nodejs.org/docs/latest-v20.x/api/crypto.html#class-x509certificate
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { describeFsError } from './errors.js';
import type { BackendTls, ClientAuth, RawBackendTls, ServerTls } from './types.js';

/** A listener's `tls` key as written in the file (after the schema: cert and key present). */
export interface RawServerTls {
  cert: string;
  key: string;
  ca?: string;
  clientAuth?: ClientAuth;
}

/** Reports one problem: where (path segments from the top of the file) and what, after the path. */
export type AddProblem = (segments: string[], message: string) => void;

/** Writes path segments the way problems show them (`[0].tls.cert`). */
export type FormatPath = (segments: string[]) => string;

/** An encrypted PEM key: PKCS#8 (`ENCRYPTED PRIVATE KEY`) or the traditional `Proc-Type: 4,ENCRYPTED`. */
const ENCRYPTED_KEY = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Reads and checks the TLS files of one config, remembering what it loaded per raw
 * object (so `defaults.backendTls`, shared by every listener, is read and reported once).
 * Use {@link server} and {@link backend} while checking (they report problems through
 * `add`), then {@link serverTls} and {@link backendTls} while building the normalized
 * config, only when no problem was reported.
 */
export class TlsFiles {
  private readonly loaded = new WeakMap<object, ServerTls | BackendTls | null>();

  /**
   * @param baseDir directory relative paths are resolved against
   * @param add where problems go
   * @param where formats a key's path for messages that name another key
   */
  constructor(
    private readonly baseDir: string,
    private readonly add: AddProblem,
    private readonly where: FormatPath,
  ) {}

  /** Reads and checks a listener's `tls` (at `segments`); problems go to `add`. */
  server(raw: RawServerTls, segments: string[]): void {
    if (this.loaded.has(raw)) return;
    const clientAuth = raw.clientAuth ?? 'none';
    const pair = this.certAndKey(raw.cert, raw.key, segments);
    const ca = raw.ca === undefined ? undefined : this.caBundle(raw.ca, [...segments, 'ca']);
    let ok = pair !== null && ca !== null;
    if (clientAuth !== 'none' && raw.ca === undefined) {
      ok = false;
      this.add(
        [...segments, 'clientAuth'],
        `"${clientAuth}" needs "ca" (the CA certificates that sign client certificates); add "ca" to ${this.where(segments)}`,
      );
    }
    if (!ok || pair === null) {
      this.loaded.set(raw, null);
      return;
    }
    const out: ServerTls = {
      certFile: pair.certFile,
      keyFile: pair.keyFile,
      clientAuth,
      cert: pair.cert,
      key: pair.key,
    };
    if (ca !== undefined && ca !== null) {
      out.caFile = ca.file;
      out.ca = ca.pem;
    }
    if (!this.usable(out, segments)) {
      this.loaded.set(raw, null);
      return;
    }
    this.loaded.set(raw, out);
  }

  /** Reads and checks one `backendTls` value (at `segments`); `true`/`false` need no files. */
  backend(raw: boolean | RawBackendTls, segments: string[]): void {
    if (typeof raw === 'boolean' || this.loaded.has(raw)) return;
    let ok = true;
    const out: BackendTls = { rejectUnauthorized: raw.rejectUnauthorized ?? true };
    if (raw.cert !== undefined && raw.key === undefined) {
      ok = false;
      this.add([...segments, 'cert'], 'is set without "key"; a client certificate needs its private key (add "key")');
    } else if (raw.key !== undefined && raw.cert === undefined) {
      ok = false;
      this.add([...segments, 'key'], 'is set without "cert"; add the client certificate "cert" that this key belongs to');
    } else if (raw.cert !== undefined && raw.key !== undefined) {
      const pair = this.certAndKey(raw.cert, raw.key, segments);
      if (pair === null) ok = false;
      else Object.assign(out, pair);
    }
    if (raw.ca !== undefined) {
      const ca = this.caBundle(raw.ca, [...segments, 'ca']);
      if (ca === null) ok = false;
      else {
        out.caFile = ca.file;
        out.ca = ca.pem;
      }
    }
    if (raw.servername !== undefined) {
      if (net.isIP(raw.servername) !== 0) {
        ok = false;
        this.add(
          [...segments, 'servername'],
          `must be a host name, not an IP address (TLS sends no IP address as SNI); leave it out to check the node's address against the certificate's IP SANs`,
        );
      } else {
        out.servername = raw.servername;
      }
    }
    if (ok && !this.usable(out, segments)) ok = false;
    this.loaded.set(raw, ok ? out : null);
  }

  /**
   * The normalized listener `tls` for `raw`, after {@link server} reported no problem.
   * @throws Error when `raw` was not loaded (a bug: build before check)
   */
  serverTls(raw: RawServerTls): ServerTls {
    const loaded = this.loaded.get(raw);
    if (loaded === undefined || loaded === null) throw new Error('TlsFiles.serverTls: not loaded');
    return loaded as ServerTls;
  }

  /**
   * The normalized `backendTls` for `raw`: undefined for `false` or unset, TLS with the
   * system CAs for `true`, else what {@link backend} loaded.
   * @throws Error when an object was not loaded (a bug: build before check)
   */
  backendTls(raw: boolean | RawBackendTls | undefined): BackendTls | undefined {
    if (raw === undefined || raw === false) return undefined;
    if (raw === true) return TLS_DEFAULTS;
    const loaded = this.loaded.get(raw);
    if (loaded === undefined || loaded === null) throw new Error('TlsFiles.backendTls: not loaded');
    return loaded as BackendTls;
  }

  /** The absolute path of `file` as the config gives it. */
  private resolve(file: string): string {
    return path.resolve(this.baseDir, file);
  }

  /** `"x.pem"`, with the absolute path after it when the config gave a relative one. */
  private shown(file: string): string {
    const full = this.resolve(file);
    return full === file ? JSON.stringify(file) : `${JSON.stringify(file)} (${full})`;
  }

  /** The contents of `file`, or null after reporting why it cannot be read. */
  private read(file: string, segments: string[]): string | null {
    try {
      return readFileSync(this.resolve(file), 'utf8');
    } catch (err) {
      this.add(segments, `cannot read ${this.shown(file)}: ${describeFsError(err)}`);
      return null;
    }
  }

  /**
   * Reads `cert` and `key` (the keys `cert` and `key` under `segments`) and checks that
   * they are a certificate and its private key; null after reporting a problem.
   */
  private certAndKey(
    certPath: string,
    keyPath: string,
    segments: string[],
  ): { certFile: string; keyFile: string; cert: string; key: string } | null {
    const certAt = [...segments, 'cert'];
    const keyAt = [...segments, 'key'];
    const cert = this.read(certPath, certAt);
    const key = this.read(keyPath, keyAt);
    let x509: X509Certificate | null = null;
    if (cert !== null) {
      try {
        x509 = new X509Certificate(cert);
      } catch (err) {
        this.add(certAt, `${this.shown(certPath)} holds no PEM certificate (${(err as Error).message}); it must begin with -----BEGIN CERTIFICATE-----`);
      }
    }
    let keyObject: KeyObject | null = null;
    if (key !== null && ENCRYPTED_KEY.test(key)) {
      this.add(
        keyAt,
        `${this.shown(keyPath)} is encrypted; the proxy takes keys without a passphrase (decrypt it with \`openssl pkey -in KEY -out KEY.plain\`)`,
      );
    } else if (key !== null) {
      try {
        keyObject = createPrivateKey(key);
      } catch (err) {
        this.add(
          keyAt,
          `${this.shown(keyPath)} holds no PEM private key (${(err as Error).message}); it must begin with -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)`,
        );
      }
    }
    if (x509 === null || keyObject === null || cert === null || key === null) return null;
    if (!x509.checkPrivateKey(keyObject)) {
      this.add(
        keyAt,
        `does not match ${this.where(certAt)}: ${this.shown(keyPath)} is not the private key of ${this.shown(certPath)} ` +
          '(compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)',
      );
      return null;
    }
    return { certFile: this.resolve(certPath), keyFile: this.resolve(keyPath), cert, key };
  }

  /** Reads a CA bundle and checks that every certificate in it parses; null after reporting a problem. */
  private caBundle(file: string, segments: string[]): { file: string; pem: string } | null {
    const pem = this.read(file, segments);
    if (pem === null) return null;
    const blocks = pem.match(PEM_CERTIFICATE) ?? [];
    if (blocks.length === 0) {
      this.add(segments, `${this.shown(file)} holds no PEM certificate; it must hold one or more -----BEGIN CERTIFICATE----- blocks`);
      return null;
    }
    for (const [i, block] of blocks.entries()) {
      try {
        new X509Certificate(block);
      } catch (err) {
        this.add(segments, `certificate ${i + 1} of ${this.shown(file)} cannot be parsed (${(err as Error).message})`);
        return null;
      }
    }
    return { file: this.resolve(file), pem };
  }

  /** Whether Node's TLS accepts the material as a whole (the last check; reports why not). */
  private usable(material: { cert?: string; key?: string; ca?: string }, segments: string[]): boolean {
    try {
      tls.createSecureContext(secureContextOptions(material));
      return true;
    } catch (err) {
      this.add(segments, `cannot be used for TLS: ${(err as Error).message}`);
      return false;
    }
  }
}

/** `backendTls: true`: TLS with Node's bundled root CAs and full verification. */
const TLS_DEFAULTS: BackendTls = Object.freeze({ rejectUnauthorized: true }) as BackendTls;

/**
 * The options for `tls.createSecureContext` (and `tls.Server#setSecureContext`) of loaded
 * material: the PEM contents that are set. Without `ca`, Node's bundled root CAs are used.
 * See https://nodejs.org/docs/latest-v20.x/api/tls.html#tlscreatesecurecontextoptions
 */
export function secureContextOptions(material: { cert?: string; key?: string; ca?: string }): tls.SecureContextOptions {
  const options: tls.SecureContextOptions = {};
  if (material.cert !== undefined) options.cert = material.cert;
  if (material.key !== undefined) options.key = material.key;
  if (material.ca !== undefined) options.ca = material.ca;
  return options;
}

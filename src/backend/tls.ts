/**
 * TLS to a node (`backendTls`): the options every connection to one node passes to
 * `tls.connect`, made once per node (the PEM material is parsed once, into one
 * SecureContext), and the text of a failed TLS connection.
 *
 * A connection chooses `tls.connect` or `net.connect` once, when it opens; nothing on the
 * request path knows whether its socket is encrypted.
 * See https://nodejs.org/docs/latest-v20.x/api/tls.html#tlsconnectoptions-callback
 */
import tls from 'node:tls';
import type { BackendTls } from '../config/types.js';

/** What `tls.connect` gets, besides host and port, for every connection to one node. */
export interface BackendTlsOptions {
  /** The node's CA bundle and the proxy's client certificate, parsed once. */
  secureContext: tls.SecureContext;
  /** Verify the node's certificate (chain, and name against `servername` or the host). */
  rejectUnauthorized: boolean;
  /** SNI and the name checked; unset: the host. */
  servername?: string;
}

/**
 * The connect options for a node's `tls` settings: a SecureContext of its `ca` (Node's
 * bundled root CAs when unset), `cert` and `key`.
 * @throws Error when Node's TLS refuses the material (normalizeConfig has already
 *   checked it, so only on a bug)
 */
export function backendTlsOptions(config: BackendTls): BackendTlsOptions {
  const context: tls.SecureContextOptions = {};
  if (config.ca !== undefined) context.ca = config.ca;
  if (config.cert !== undefined) context.cert = config.cert;
  if (config.key !== undefined) context.key = config.key;
  const options: BackendTlsOptions = {
    secureContext: tls.createSecureContext(context),
    rejectUnauthorized: config.rejectUnauthorized,
  };
  if (config.servername !== undefined) options.servername = config.servername;
  return options;
}

/**
 * Why a TLS connection to a node failed, for node state and client errors: a system
 * error (refused, reset, unreachable) as its code (`ECONNREFUSED`), as on a plain
 * connection; anything else is TLS's own: `TLS: self-signed certificate in certificate
 * chain (SELF_SIGNED_CERT_IN_CHAIN)`.
 */
export function tlsErrorText(err: NodeJS.ErrnoException): string {
  if (err.syscall !== undefined) return err.code ?? err.message;
  return `TLS: ${err.message}${err.code !== undefined ? ` (${err.code})` : ''}`;
}

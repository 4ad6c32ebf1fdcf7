/**
 * Certificates for the TLS tests, made with `openssl` at test time in a temporary
 * directory (removed when the test file ends): a CA, server certificates it signs for
 * 127.0.0.1 and localhost (IP and DNS subjectAltNames), a client certificate it signs,
 * and a second, unrelated CA with a client certificate of its own. EC P-256 keys (fast to
 * make), unencrypted PKCS#8 PEM, valid for two days.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

/** A certificate and its private key: file paths. */
export interface CertPair {
  cert: string;
  key: string;
}

export interface TestPki {
  /** The directory every file is in. */
  dir: string;
  /** The CA certificate (PEM path) that signs server, server2 and client. */
  ca: string;
  /** Server certificate (CN redis-proxy-test-server; SAN IP:127.0.0.1, DNS:localhost). */
  server: CertPair;
  /** A second server certificate of the same CA (CN redis-proxy-test-server-2), for reload tests. */
  server2: CertPair;
  /** A client certificate signed by `ca` (CN redis-proxy-test-client). */
  client: CertPair;
  /** Another CA, unrelated to `ca`. */
  otherCa: string;
  /** A client certificate signed by `otherCa`. */
  otherClient: CertPair;
  /** The contents of a file of this PKI. */
  read(file: string): string;
  /** Makes another certificate signed by `ca` (or by `otherCa` with `{ other: true }`) named `name`. */
  issue(name: string, cn: string, opts?: { other?: boolean }): CertPair;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string, cn: string): void {
  openssl(dir, [
    'req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

function makeLeaf(dir: string, ca: string, name: string, cn: string): CertPair {
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' +
      'subjectAltName=IP:127.0.0.1,DNS:localhost\n',
  );
  openssl(dir, ['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`,
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-out', `${name}.crt`, '-extfile', ext,
  ]);
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

/**
 * Makes the test PKI (about a second of openssl). The directory is removed when `scope`
 * (default: the test file) ends.
 */
export function makePki({ t: scope = t }: { t?: Pick<typeof t, 'teardown'> } = {}): TestPki {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'redis-proxy-pki-'));
  scope.teardown(() => rmSync(dir, { recursive: true, force: true }));
  makeCa(dir, 'ca', 'redis-proxy test CA');
  makeCa(dir, 'other-ca', 'an unrelated CA');
  const issue = (name: string, cn: string, opts: { other?: boolean } = {}): CertPair =>
    makeLeaf(dir, opts.other === true ? 'other-ca' : 'ca', name, cn);
  return {
    dir,
    ca: path.join(dir, 'ca.crt'),
    server: issue('server', 'redis-proxy-test-server'),
    server2: issue('server2', 'redis-proxy-test-server-2'),
    client: issue('client', 'redis-proxy-test-client'),
    otherCa: path.join(dir, 'other-ca.crt'),
    otherClient: issue('other-client', 'a client of another CA', { other: true }),
    read: (file: string) => readFileSync(file, 'utf8'),
    issue,
  };
}

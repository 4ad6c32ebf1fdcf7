// A persistent RESP2 connection for workloads that send many commands: `call` writes
// one command and resolves with its reply; calls may overlap (they are pipelined and
// answered in order). Replies are parsed with ./resp.mjs; an error reply resolves as
// { error: 'message' }, it does not reject. A connection that closes, fails, or owes a
// reply for longer than `stallMs` rejects everything it owes and every later call.

import net from 'node:net';
import { encode, parseReply } from './resp.mjs';

const EMPTY = Buffer.alloc(0);

export class Conn {
  /** Connects to host:port; resolves with the Conn once connected. */
  static open(port, { host = '127.0.0.1', connectTimeoutMs = 5000, stallMs = 10000 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ host, port });
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`connect to :${port} timed out after ${connectTimeoutMs} ms`)); }, connectTimeoutMs);
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        sock.setNoDelay(true);
        resolve(new Conn(sock, port, stallMs));
      });
    });
  }

  constructor(sock, port, stallMs) {
    this.sock = sock;
    this.port = port;
    this.buf = EMPTY;
    this.pending = []; // { resolve, reject, at }
    this.failure = null;
    sock.on('data', (chunk) => this.onData(chunk));
    sock.on('error', (e) => this.fail(new Error(`connection to :${port}: ${e.message}`)));
    sock.on('close', () => this.fail(new Error(`connection to :${port} closed with ${this.pending.length} replies owed`)));
    this.watchdog = setInterval(() => {
      if (this.pending.length && Date.now() - this.pending[0].at > stallMs) {
        this.fail(new Error(`no reply from :${port} within ${stallMs} ms`));
        sock.destroy();
      }
    }, 1000);
    this.watchdog.unref();
  }

  /** Sends one command (an array of strings/numbers); resolves with its reply. */
  call(args) {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject, at: Date.now() });
      this.sock.write(encode(args));
    });
  }

  onData(chunk) {
    const buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let off = 0;
    try {
      while (this.pending.length) {
        const r = parseReply(buf, off);
        if (!r) break;
        off = r.end;
        this.pending.shift().resolve(r.value);
      }
    } catch (e) {
      this.fail(new Error(`bad reply from :${this.port}: ${e.message}`));
      this.sock.destroy();
      return;
    }
    this.buf = off >= buf.length ? EMPTY : buf.subarray(off);
  }

  fail(err) {
    if (!this.failure) this.failure = err;
    clearInterval(this.watchdog);
    for (const p of this.pending.splice(0)) p.reject(this.failure);
  }

  close() {
    clearInterval(this.watchdog);
    if (!this.failure) this.failure = new Error('connection closed by the harness');
    this.sock.destroy();
  }
}

/** Opens n connections to port. */
export async function openPool(port, n, opts) {
  const conns = [];
  try {
    for (let i = 0; i < n; i++) conns.push(await Conn.open(port, opts));
  } catch (e) {
    for (const c of conns) c.close();
    throw e;
  }
  return conns;
}

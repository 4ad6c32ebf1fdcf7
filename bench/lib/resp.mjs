// A deliberately tiny RESP2 client for the harness's own checks (PING, INFO, SET/GET).
// It talks to redis-server, twemproxy and redis-proxy alike, so it must not depend on
// anything a proxy might not support (no HELLO, no CLIENT SETINFO, no ready check).

import net from 'node:net';

/** Encodes a command as a RESP array of bulk strings. */
export function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

/**
 * Parses one reply from buf at offset. Returns { value, end } or undefined when the
 * buffer does not yet hold a whole reply. Errors come back as { error: 'message' }.
 */
export function parseReply(buf, offset = 0) {
  const lineEnd = buf.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[offset]);
  const line = buf.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+': return { value: line, end: next };
    case '-': return { value: { error: line }, end: next };
    case ':': return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const items = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, pos);
        if (!r) return undefined;
        items.push(r.value);
        pos = r.end;
      }
      return { value: items, end: pos };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/**
 * Opens a connection, sends the commands (pipelined), returns their replies in order,
 * closes. Rejects on connect failure, early close or timeout.
 */
export function request(port, commands, { host = '127.0.0.1', timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host, port });
    let buf = Buffer.alloc(0);
    const replies = [];
    const done = (err, val) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(val);
    };
    const timer = setTimeout(() => done(new Error(`timeout after ${timeoutMs} ms talking to :${port}`)), timeoutMs);
    sock.on('connect', () => sock.write(commands.map(encode).join('')));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let r;
      try {
        while (replies.length < commands.length && (r = parseReply(buf))) {
          replies.push(r.value);
          buf = buf.subarray(r.end);
        }
      } catch (e) {
        done(e);
        return;
      }
      if (replies.length === commands.length) done(null, replies);
    });
    sock.on('error', (e) => done(e));
    sock.on('close', () => done(new Error(`connection to :${port} closed after ${replies.length}/${commands.length} replies`)));
  });
}

/** One command, one reply. */
export async function command(port, args, opts) {
  const [reply] = await request(port, [args], opts);
  return reply;
}

/** Parses an INFO reply into { field: value }. */
export function parseInfo(text) {
  const out = {};
  for (const line of String(text).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/**
 * Opens a connection that sends PING, waits for +PONG and then stays open, idle.
 * Resolves with the socket; the caller closes it.
 */
export function idleClient(port, { host = '127.0.0.1', timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host, port });
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('idle client: no PONG in time')); }, timeoutMs);
    sock.on('connect', () => sock.write('*1\r\n$4\r\nPING\r\n'));
    sock.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      if (buf.includes('\r\n')) {
        clearTimeout(timer);
        sock.removeAllListeners('data');
        if (buf.startsWith('+PONG\r\n')) resolve(sock);
        else { sock.destroy(); reject(new Error(`idle client: expected +PONG, got ${JSON.stringify(buf.slice(0, 80))}`)); }
      }
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** The `node<N>:` lines of INFO proxy: { index, role, addr, state, inRotation, ejected, raw }. */
export function nodeLines(text) {
  const nodes = [];
  for (const line of String(text).split(/\r?\n/)) {
    const m = /^node(\d+):(.*)$/.exec(line);
    if (!m) continue;
    const f = new Map(m[2].split(',').map((kv) => kv.split('=')));
    nodes.push({
      index: Number(m[1]), role: f.get('role') ?? '', addr: f.get('addr') ?? '', state: f.get('state') ?? '',
      inRotation: f.has('in_rotation') ? Number(f.get('in_rotation')) : undefined,
      ejected: f.has('ejected') ? Number(f.get('ejected')) : undefined,
      raw: line,
    });
  }
  return nodes;
}

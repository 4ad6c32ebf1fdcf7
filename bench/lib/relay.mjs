// A TCP relay that delays one direction: a replica's `replicaof` points at it, and it
// forwards to the master at once what the replica sends (PSYNC, REPLCONF ACK, ...) but
// holds every chunk the master sends back for `delayMs` before passing it on, in order.
// The replica then lags the master by at least delayMs: stale reads become likely
// instead of a matter of luck. It runs inside the harness's own process.

import net from 'node:net';

/**
 * Listens on 127.0.0.1:port and relays each connection to targetPort.
 * Returns { port, stats: { connections, chunks, bytes, maxQueued }, close() }.
 */
export function startRelay({ port, targetPort, delayMs, host = '127.0.0.1' }) {
  const sockets = new Set();
  const stats = { connections: 0, chunks: 0, bytes: 0, maxQueued: 0 };
  const server = net.createServer((down) => {
    stats.connections++;
    const up = net.createConnection({ host, port: targetPort });
    sockets.add(down);
    sockets.add(up);
    down.setNoDelay(true);
    up.setNoDelay(true);
    const queue = []; // { at, chunk }, oldest first; every chunk waits the same delay, so order by time is arrival order
    let head = 0;
    let timer = null;
    let upEnded = false;
    const pump = () => {
      timer = null;
      const now = performance.now();
      while (head < queue.length && queue[head].at <= now) down.write(queue[head++].chunk);
      if (head === queue.length) {
        queue.length = 0;
        head = 0;
        if (upEnded) down.end();
      } else {
        if (head > 1024) { queue.splice(0, head); head = 0; }
        timer = setTimeout(pump, Math.max(0, queue[head].at - now));
      }
    };
    up.on('data', (chunk) => {
      stats.chunks++;
      stats.bytes += chunk.length;
      queue.push({ at: performance.now() + delayMs, chunk });
      stats.maxQueued = Math.max(stats.maxQueued, queue.length - head);
      if (timer === null) timer = setTimeout(pump, delayMs);
    });
    up.on('end', () => { upEnded = true; if (timer === null && head === queue.length) down.end(); });
    down.on('data', (chunk) => up.write(chunk));
    const destroy = () => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      up.destroy();
      down.destroy();
      sockets.delete(up);
      sockets.delete(down);
    };
    up.on('error', destroy);
    down.on('error', destroy);
    up.on('close', () => { sockets.delete(up); if (!upEnded) destroy(); });
    down.on('close', destroy);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      resolve({
        port: server.address().port,
        stats,
        close() {
          for (const s of sockets) s.destroy();
          sockets.clear();
          return new Promise((r) => server.close(() => r()));
        },
      });
    });
  });
}

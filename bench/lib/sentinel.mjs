// Redis Sentinel for the benchmarks: start Sentinels monitoring a master (each on a free
// port, its config file in its own directory under the harness's temporary directory,
// started through procs.mjs so the harness's cleanup stops them), wait until they know
// the replicas and each other, and subscribe to their events with a timestamp on each.
//
// Sentinel: https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import { command, encode, parseReply } from './resp.mjs';
import { start, stop, freePort, waitUntil, sleep } from './procs.mjs';

/** redis-sentinel, or redis-server in Sentinel mode where redis-sentinel is not installed. */
function sentinelCommand(conf) {
  return spawnSync('sh', ['-c', 'command -v redis-sentinel'], { stdio: 'ignore' }).status === 0
    ? ['redis-sentinel', [conf]]
    : ['redis-server', [conf, '--sentinel']];
}

/** A flat `[field, value, ...]` reply as an object. */
export function fieldsOf(reply) {
  const out = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

/**
 * Starts `count` Sentinels monitoring 127.0.0.1:masterPort under `masterName`, named
 * `<prefix>1..n`, their directories and logs in dir. Resolves with
 * [{ name, port, child, address }] once each answers PING. They do not know each other
 * yet: see waitForSentinels.
 */
export async function startSentinels(dir, masterPort, {
  count = 3, masterName = 'mymaster', quorum = 2, downAfterMs = 1000, failoverTimeoutMs = 5000, prefix = 'sentinel',
} = {}) {
  const out = [];
  for (let i = 1; i <= count; i++) {
    const name = `${prefix}${i}`;
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const home = path.join(dir, `${name}-${port}`);
      fs.mkdirSync(home, { recursive: true });
      const conf = path.join(home, 'sentinel.conf');
      fs.writeFileSync(conf, [
        `port ${port}`,
        'bind 127.0.0.1',
        'daemonize no',
        `dir ${home}`,
        'logfile ""',
        'sentinel resolve-hostnames no',
        `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} ${quorum}`,
        `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
        `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
        `sentinel parallel-syncs ${masterName} 1`,
        '',
      ].join('\n'));
      const logFile = path.join(dir, `${name}.log`);
      const [cmd, args] = sentinelCommand(conf);
      const child = start(name, cmd, args, { logFile, cwd: home });
      try {
        await waitUntil(`${name} on :${port}`, async () => (await command(port, ['PING'])) === 'PONG', { child, timeoutMs: 5000, intervalMs: 20 });
        out.push({ name, port, child, address: `127.0.0.1:${port}` });
        break;
      } catch (e) {
        await stop(child);
        // Lost a race for a free port: try another.
        let text = '';
        try { text = fs.readFileSync(logFile, 'utf8'); } catch { /* none */ }
        if (attempt < 5 && /Address already in use/.test(text)) continue;
        throw e;
      }
    }
  }
  return out;
}

/** `SENTINEL MASTER <name>` of the Sentinel on port, as an object. */
export async function masterState(port, masterName = 'mymaster') {
  return fieldsOf(await command(port, ['SENTINEL', 'MASTER', masterName]));
}

/**
 * Waits until every Sentinel sees `replicas` replicas of the master and knows the other
 * Sentinels: before that a failover can be neither voted nor completed. Sentinels find
 * each other through hello messages published every 2 s.
 */
export async function waitForSentinels(sentinels, { replicas, masterName = 'mymaster', timeoutMs = 15000 } = {}) {
  await Promise.all(sentinels.map((s) => waitUntil(
    `${s.name} (:${s.port}) to see ${replicas} replicas and ${sentinels.length - 1} other Sentinels`,
    async () => {
      const st = await masterState(s.port, masterName);
      return Number(st['num-slaves']) === replicas && Number(st['num-other-sentinels']) === sentinels.length - 1
        && !/s_down|o_down|failover/.test(st.flags ?? '');
    },
    { timeoutMs, intervalMs: 100, child: s.child },
  )));
}

/**
 * Subscribes to a Sentinel's events (`PSUBSCRIBE *` unless `patterns` says otherwise).
 * `onEvent({ at, channel, message })` gets every event, `at` being performance.now() when
 * it was parsed. Resolves once the subscription is confirmed, with { close(), events }
 * (events: every one received, in order).
 */
export function subscribeEvents(port, onEvent = () => {}, { patterns = ['*'], host = '127.0.0.1', timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host, port });
    const events = [];
    let buf = Buffer.alloc(0);
    let confirmed = 0;
    let settled = false;
    const timer = setTimeout(() => { if (!settled) { settled = true; sock.destroy(); reject(new Error(`PSUBSCRIBE on :${port}: no confirmation within ${timeoutMs} ms`)); } }, timeoutMs);
    const handle = {
      events,
      close() { sock.destroy(); },
    };
    sock.setNoDelay(true);
    sock.on('connect', () => sock.write(encode(['PSUBSCRIBE', ...patterns])));
    sock.on('data', (chunk) => {
      const at = performance.now();
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let off = 0;
      for (;;) {
        let r;
        try { r = parseReply(buf, off); } catch (e) { sock.destroy(); return; }
        if (!r) break;
        off = r.end;
        const v = r.value;
        if (Array.isArray(v) && v[0] === 'psubscribe') {
          if (++confirmed === patterns.length && !settled) { settled = true; clearTimeout(timer); resolve(handle); }
        } else if (Array.isArray(v) && v[0] === 'pmessage') {
          const e = { at, channel: String(v[2]), message: String(v[3]) };
          events.push(e);
          onEvent(e);
        }
      }
      buf = off >= buf.length ? Buffer.alloc(0) : buf.subarray(off);
    });
    sock.on('error', (e) => { if (!settled) { settled = true; clearTimeout(timer); reject(e); } });
    sock.on('close', () => { if (!settled) { settled = true; clearTimeout(timer); reject(new Error(`subscription to :${port} closed`)); } });
  });
}

/** Sleeps until `cond()` or timeoutMs; resolves whether it became true. */
export async function until(cond, timeoutMs, intervalMs = 5) {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) return false;
    await sleep(intervalMs);
  }
  return true;
}

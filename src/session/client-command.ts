/**
 * CLIENT subcommands that concern the client's own connection, answered by the proxy about
 * its sessions (not about its backend connections), in Redis 7's formats.
 * Source: https://redis.io/docs/latest/commands/client-list/ and the other CLIENT pages.
 */
import type { RequestView } from '../protocol/request-parser.js';
import { encodeBulk, encodeInteger, OK } from '../protocol/resp.js';
import { wrongArityText } from './errors.js';
import type { ClientView, LocalSession } from './session-api.js';

/** One CLIENT LIST line (without the newline), fields as Redis 7.0 prints them. */
export function clientInfoLine(s: ClientView): string {
  const now = Date.now();
  const local = s.localAddress;
  const info = s.describe();
  return (
    `id=${s.id} addr=${s.address} laddr=${local} fd=-1 name=${s.name} age=${Math.floor((now - s.createdAt) / 1000)} ` +
    `idle=${Math.floor((now - s.lastActive) / 1000)} flags=${info.flags} db=${s.db} sub=${info.sub} psub=0 ssub=${info.ssub} ` +
    `multi=${info.multi} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 ` +
    `events=r cmd=${s.lastCommand} user=${s.user} redir=-1 resp=${s.protocol} lib-name=${s.libName} lib-ver=${s.libVersion}`
  );
}

function sessionType(s: ClientView): string {
  return s.describe().flags.includes('P') ? 'pubsub' : 'normal';
}

/** CLIENT LIST [TYPE type] [ID id ...] */
export function clientList(s: LocalSession, req: RequestView): void {
  let sessions = [...s.ctx.sessions];
  let i = 2;
  while (i < req.argc) {
    if (req.argIs(i, 'type') && i + 1 < req.argc) {
      const type = req.argString(i + 1).toLowerCase();
      if (!['normal', 'master', 'replica', 'slave', 'pubsub'].includes(type)) {
        return s.replyError(`ERR Unknown client type '${req.argString(i + 1)}'`);
      }
      sessions = sessions.filter((x) => sessionType(x) === type);
      i += 2;
    } else if (req.argIs(i, 'id') && i + 1 < req.argc) {
      const ids = new Set<number>();
      for (i++; i < req.argc; i++) {
        const id = Number(req.argString(i));
        if (!Number.isInteger(id) || id <= 0) return s.replyError('ERR Invalid client ID');
        ids.add(id);
      }
      sessions = sessions.filter((x) => ids.has(x.id));
    } else {
      return s.replyError('ERR syntax error');
    }
  }
  s.reply(encodeBulk(sessions.map((x) => `${clientInfoLine(x)}\n`).join('')));
}

/** CLIENT INFO */
export function clientInfo(s: LocalSession): void {
  s.reply(encodeBulk(`${clientInfoLine(s)}\n`));
}

/** CLIENT KILL ip:port | CLIENT KILL [ID id] [TYPE type] [USER name] [ADDR ip:port] [LADDR ip:port] [SKIPME yes|no] */
export function clientKill(s: LocalSession, req: RequestView): void {
  if (req.argc === 3) {
    const addr = req.argString(2);
    const victim = [...s.ctx.sessions].find((x) => x.address === addr);
    if (victim === undefined) return s.replyError('ERR No such client');
    s.reply(OK);
    kill(s, victim);
    return;
  }
  if (req.argc < 3 || req.argc % 2 !== 0) return s.replyError('ERR syntax error');
  const tests: Array<(x: ClientView) => boolean> = [];
  let skipMe = true;
  for (let i = 2; i < req.argc; i += 2) {
    const value = req.argString(i + 1);
    if (req.argIs(i, 'id')) {
      const id = Number(value);
      if (!Number.isInteger(id) || id <= 0) return s.replyError('ERR client-id should be greater than 0');
      tests.push((x) => x.id === id);
    } else if (req.argIs(i, 'type')) {
      const type = value.toLowerCase();
      if (!['normal', 'master', 'replica', 'slave', 'pubsub'].includes(type)) return s.replyError(`ERR Unknown client type '${value}'`);
      tests.push((x) => sessionType(x) === type);
    } else if (req.argIs(i, 'addr')) {
      tests.push((x) => x.address === value);
    } else if (req.argIs(i, 'laddr')) {
      tests.push((x) => x.localAddress === value);
    } else if (req.argIs(i, 'user')) {
      tests.push((x) => x.user === value);
    } else if (req.argIs(i, 'skipme')) {
      if (value.toLowerCase() === 'yes') skipMe = true;
      else if (value.toLowerCase() === 'no') skipMe = false;
      else return s.replyError('ERR syntax error');
    } else {
      return s.replyError('ERR syntax error');
    }
  }
  const victims = [...s.ctx.sessions].filter((x) => !(skipMe && x === s) && tests.every((t) => t(x)));
  s.reply(encodeInteger(victims.length));
  for (const v of victims) kill(s, v);
}

/** Closes another session at once, or this one after its pending replies (as Redis does for itself). */
function kill(self: LocalSession, victim: ClientView): void {
  if (victim === self) self.closeAfterReplies();
  else victim.close('killed by CLIENT KILL');
}

/** CLIENT NO-EVICT on|off and CLIENT NO-TOUCH on|off: accepted per session; they do not reach the shared connections. */
export function clientOnOff(s: LocalSession, req: RequestView): void {
  if (req.argc !== 3) return s.replyError(wrongArityText(`client|${req.argString(1).toLowerCase()}`));
  if (!req.argIs(2, 'on') && !req.argIs(2, 'off')) return s.replyError('ERR syntax error');
  s.reply(OK);
}

/** CLIENT REPLY ON|OFF|SKIP */
export function clientReply(s: LocalSession, req: RequestView): void {
  if (req.argc !== 3) return s.replyError(wrongArityText('client|reply'));
  if (req.argIs(2, 'on')) {
    s.setReplyMode('on');
    s.reply(OK);
  } else if (req.argIs(2, 'off')) {
    s.setReplyMode('off');
  } else if (req.argIs(2, 'skip')) {
    s.setReplyMode('skip');
  } else {
    s.replyError('ERR syntax error');
  }
}

/** CLIENT GETREDIR: -1 when tracking is off, 0 when on without REDIRECT, else the target's session id. */
export function clientGetredir(s: LocalSession, req: RequestView): void {
  if (req.argc !== 2) return s.replyError(wrongArityText('client|getredir'));
  s.reply(encodeInteger(s.trackingRedirect));
}

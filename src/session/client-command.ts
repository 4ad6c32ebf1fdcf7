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

/**
 * Which clients a CLIENT LIST or CLIENT KILL names, as plain data: it also goes to the
 * other workers (src/cluster/), which answer for their own sessions.
 */
export interface ClientFilter {
  ids?: number[];
  type?: string;
  addr?: string;
  laddr?: string;
  user?: string;
  /** SKIPME yes: the id of the client that asked (it is never killed). */
  skipId?: number;
}

/** True when `x` is one of the clients `filter` names. */
export function matchesFilter(x: ClientView, filter: ClientFilter): boolean {
  return (
    (filter.ids === undefined || filter.ids.includes(x.id)) &&
    (filter.type === undefined || sessionType(x) === filter.type) &&
    (filter.addr === undefined || x.address === filter.addr) &&
    (filter.laddr === undefined || x.localAddress === filter.laddr) &&
    (filter.user === undefined || x.user === filter.user) &&
    x.id !== filter.skipId
  );
}

const CLIENT_TYPES = ['normal', 'master', 'replica', 'slave', 'pubsub'];

/** CLIENT LIST's lines of the clients `filter` names among `sessions`, with their ids (for ordering). */
export function listLines(sessions: Iterable<ClientView>, filter: ClientFilter): Array<[number, string]> {
  const lines: Array<[number, string]> = [];
  for (const x of sessions) if (matchesFilter(x, filter)) lines.push([x.id, `${clientInfoLine(x)}\n`]);
  return lines;
}

/**
 * Closes the clients `filter` names among `sessions` (another at once; `self` after its
 * pending replies, as Redis does); returns how many.
 */
export function killMatching(sessions: Iterable<ClientView>, filter: ClientFilter, self: ClientView | null): number {
  const victims = [...sessions].filter((x) => matchesFilter(x, filter));
  for (const v of victims) {
    if (v === self) v.closeAfterReplies();
    else v.close('killed by CLIENT KILL');
  }
  return victims.length;
}

/** CLIENT LIST [TYPE type] [ID id ...]: this listener's clients in every worker, by id. */
export function clientList(s: LocalSession, req: RequestView): void {
  const filter: ClientFilter = {};
  let i = 2;
  while (i < req.argc) {
    if (req.argIs(i, 'type') && i + 1 < req.argc) {
      const type = req.argString(i + 1).toLowerCase();
      if (!CLIENT_TYPES.includes(type)) return s.replyError(`ERR Unknown client type '${req.argString(i + 1)}'`);
      filter.type = type;
      i += 2;
    } else if (req.argIs(i, 'id') && i + 1 < req.argc) {
      const ids: number[] = [];
      for (i++; i < req.argc; i++) {
        const id = Number(req.argString(i));
        if (!Number.isInteger(id) || id <= 0) return s.replyError('ERR Invalid client ID');
        ids.push(id);
      }
      filter.ids = ids;
    } else {
      return s.replyError('ERR syntax error');
    }
  }
  const lines = listLines(s.ctx.sessions, filter);
  const answer = (others: unknown[]): void => {
    for (const more of others) if (Array.isArray(more)) lines.push(...(more as Array<[number, string]>));
    lines.sort((a, b) => a[0] - b[0]);
    s.reply(encodeBulk(lines.map((l) => l[1]).join('')));
  };
  const peers = s.ctx.peers;
  if (peers === null || !s.answerLater(peers.ask('list', s.ctx.config.name, filter), answer)) answer([]);
}

/** CLIENT INFO */
export function clientInfo(s: LocalSession): void {
  s.reply(encodeBulk(`${clientInfoLine(s)}\n`));
}

/**
 * CLIENT KILL ip:port | CLIENT KILL [ID id] [TYPE type] [USER name] [ADDR ip:port]
 * [LADDR ip:port] [SKIPME yes|no]: this listener's clients in every worker.
 */
export function clientKill(s: LocalSession, req: RequestView): void {
  const filter: ClientFilter = {};
  const old = req.argc === 3;
  if (old) {
    filter.addr = req.argString(2);
  } else {
    if (req.argc < 3 || req.argc % 2 !== 0) return s.replyError('ERR syntax error');
    let skipMe = true;
    for (let i = 2; i < req.argc; i += 2) {
      const value = req.argString(i + 1);
      if (req.argIs(i, 'id')) {
        const id = Number(value);
        if (!Number.isInteger(id) || id <= 0) return s.replyError('ERR client-id should be greater than 0');
        filter.ids = [id]; // given twice, the last one counts, as in Redis
      } else if (req.argIs(i, 'type')) {
        const type = value.toLowerCase();
        if (!CLIENT_TYPES.includes(type)) return s.replyError(`ERR Unknown client type '${value}'`);
        filter.type = type;
      } else if (req.argIs(i, 'addr')) {
        filter.addr = value;
      } else if (req.argIs(i, 'laddr')) {
        filter.laddr = value;
      } else if (req.argIs(i, 'user')) {
        filter.user = value;
      } else if (req.argIs(i, 'skipme')) {
        if (value.toLowerCase() === 'yes') skipMe = true;
        else if (value.toLowerCase() === 'no') skipMe = false;
        else return s.replyError('ERR syntax error');
      } else {
        return s.replyError('ERR syntax error');
      }
    }
    if (skipMe) filter.skipId = s.id;
  }
  // The others first, so that the reply (before this session closes, if it is named) is written.
  const others = [...s.ctx.sessions].filter((x) => x !== s);
  let killed = killMatching(others, filter, null);
  const answer = (counts: unknown[]): void => {
    for (const n of counts) if (typeof n === 'number') killed += n;
    const me = matchesFilter(s, filter) ? 1 : 0;
    if (old && killed + me === 0) return s.replyError('ERR No such client');
    s.reply(old ? OK : encodeInteger(killed + me));
    if (me === 1) s.closeAfterReplies();
  };
  const peers = s.ctx.peers;
  if (peers === null || !s.answerLater(peers.ask('kill', s.ctx.config.name, filter), answer)) answer([]);
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

/**
 * Commands the proxy answers itself, per session, in Redis's own reply formats and error
 * texts: they concern the client connection (which the proxy owns), not the data.
 * Sources: https://redis.io/docs/latest/commands/ (each command's page).
 */
import { ERROR_AUTH } from '../metrics/stats.js';
import { LOCAL_NAMES } from '../commands/index.js';
import { RequestView } from '../protocol/request-parser.js';
import { encodeBulk, encodeInteger, encodeSimple, encodeValue, OK, PONG, ReplyMap } from '../protocol/resp.js';
import { clientGetredir, clientInfo, clientKill, clientList, clientOnOff, clientReply } from './client-command.js';
import { wrongArityText } from './errors.js';
import type { LocalSession } from './session-api.js';

export type LocalCommand = (session: LocalSession, req: RequestView) => void;

function wrongArgs(session: LocalSession, name: string): void {
  session.replyError(wrongArityText(name));
}

/**
 * Parses an integer as Redis's string2ll does: optional '-', no leading zeros, no '+',
 * no '-0', within 64 bits; NaN otherwise. Beyond 2^53 the number is approximate, which
 * only the range checks that follow see.
 */
export function parseRedisInteger(text: string): number {
  if (!/^(0|-?[1-9][0-9]{0,18})$/.test(text)) return NaN;
  const value = BigInt(text);
  return value >= -(2n ** 63n) && value < 2n ** 63n ? Number(text) : NaN;
}

const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.';

/** A failed AUTH (or HELLO … AUTH): Redis's error, counted as an auth error. */
function wrongPass(s: LocalSession): void {
  s.ctx.stats.error(ERROR_AUTH);
  s.replyError(WRONGPASS);
}

/** Checks credentials against the listener's `password` / `users`; true when they match. */
function checkCredentials(session: LocalSession, username: string, password: string): boolean {
  const { password: required, users } = session.ctx.config;
  if (username === 'default') return required === undefined ? (users ?? []).length === 0 : password === required;
  return (users ?? []).some((u) => u.username === username && u.password === password);
}

function authenticate(session: LocalSession, username: string, password: string): boolean {
  if (!checkCredentials(session, username, password)) return false;
  session.authenticate(username);
  return true;
}

const ping: LocalCommand = (s, req) => {
  if (req.argc > 2) return wrongArgs(s, 'ping');
  s.reply(req.argc === 2 ? encodeBulk(req.arg(1)) : PONG);
};

const echo: LocalCommand = (s, req) => {
  if (req.argc !== 2) return wrongArgs(s, 'echo');
  s.reply(encodeBulk(req.arg(1)));
};

const quit: LocalCommand = (s) => {
  s.reply(OK);
  s.closeAfterReplies();
};

const select: LocalCommand = (s, req) => {
  if (req.argc !== 2) return wrongArgs(s, 'select');
  const db = parseRedisInteger(req.argString(1));
  if (Number.isNaN(db)) return s.replyError('ERR value is not an integer or out of range');
  if (db < -2147483648 || db > 2147483647) {
    return s.replyError('ERR value is out of range, value must between -2147483648 and 2147483647');
  }
  if (db < 0 || db >= s.ctx.databases) return s.replyError('ERR DB index is out of range');
  s.selectDb(db);
  s.reply(OK);
};

/**
 * AUTH [username] password. With `authentication: "proxy"`, checked against the
 * listener's `password` / `users`; with `"redis"`, the master checks it (an AUTH in the
 * client's own words), so every answer is Redis's, and the session then runs as that user.
 * Source: https://redis.io/docs/latest/commands/auth/
 */
const auth: LocalCommand = (s, req) => {
  if (req.argc < 2) return wrongArgs(s, 'auth');
  if (req.argc > 3) return s.replyError('ERR syntax error');
  if (s.ctx.config.authentication === 'redis') {
    return s.loginRedisUser(req.argc === 3 ? req.argString(1) : null, req.argString(req.argc - 1), (error) => {
      if (error === null) s.reply(OK);
      else s.replyError(error);
    });
  }
  if (req.argc === 2 && s.ctx.config.password === undefined) {
    return s.replyError(
      'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
    );
  }
  const username = req.argc === 3 ? req.argString(1) : 'default';
  const pass = req.argString(req.argc - 1);
  if (authenticate(s, username, pass)) s.reply(OK);
  else wrongPass(s);
};

/**
 * HELLO [protover [AUTH username password] [SETNAME clientname]]: answered by the proxy
 * (its map: the session id, the master's version). Its AUTH is checked as AUTH's is; with
 * `authentication: "redis"` the rest of HELLO runs once the master has answered.
 * Source: https://redis.io/docs/latest/commands/hello/
 */
const hello: LocalCommand = (s, req) => {
  let protocol = s.protocol;
  if (req.argc >= 2) {
    const proto = parseRedisInteger(req.argString(1));
    if (Number.isNaN(proto)) return s.replyError('ERR Protocol version is not an integer or out of range');
    if (proto < 2 || proto > 3) return s.replyError('NOPROTO unsupported protocol version');
    protocol = proto as 2 | 3;
  }
  helloOptions(s, req, req.argc >= 2 ? 2 : 1, protocol, null);
};

/** HELLO from its option at `from` on (`protocol` parsed, `setName` seen so far). */
function helloOptions(s: LocalSession, req: RequestView, from: number, protocol: 2 | 3, setName: string | null): void {
  for (let i = from; i < req.argc; i++) {
    const more = req.argc - i - 1;
    if (req.argIs(i, 'auth') && more >= 2) {
      if (s.ctx.config.authentication === 'redis') {
        // The master checks the credentials; the rest runs once it has answered (the
        // session reads nothing else meanwhile), on a copy: the request's buffer is reused.
        const rest = RequestView.of(req.args().map((a) => Buffer.from(a)));
        const next = i + 3;
        s.loginRedisUser(req.argString(i + 1), req.argString(i + 2), (error) => {
          if (error !== null) s.replyError(error);
          else helloOptions(s, rest, next, protocol, setName);
        });
        return;
      }
      if (!authenticate(s, req.argString(i + 1), req.argString(i + 2))) return wrongPass(s);
      i += 2;
    } else if (req.argIs(i, 'setname') && more >= 1) {
      setName = req.argString(i + 1);
      i += 1;
    } else {
      return s.replyError(`ERR Syntax error in HELLO option '${req.argString(i)}'`);
    }
  }
  if (!s.authenticated) {
    return s.replyError(
      'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
    );
  }
  if (setName !== null) {
    if (!validClientName(setName)) return s.replyError('ERR Client names cannot contain spaces, newlines or special characters.');
    s.name = setName;
  }
  s.setProtocol(protocol);
  const info = new ReplyMap([
    ['server', 'redis'],
    ['version', s.ctx.serverVersion],
    ['proto', protocol],
    ['id', s.id],
    ['mode', 'standalone'],
    ['role', 'master'],
    ['modules', []],
  ]);
  s.reply(encodeValue(info, protocol));
}

/**
 * The first AUTH option of a HELLO that would get that far (a valid protocol version, no
 * syntax error before it), or null: a HELLO inside MULTI with `authentication: "redis"`
 * is queued as that AUTH, and the rest of it runs at EXEC when the AUTH succeeded.
 * @returns the index of the `AUTH` word, the user and the password
 */
export function helloAuthOption(req: RequestView): { at: number; username: string; password: string } | null {
  let i = 1;
  if (req.argc >= 2) {
    const proto = parseRedisInteger(req.argString(1));
    if (proto !== 2 && proto !== 3) return null;
    i = 2;
  }
  for (; i < req.argc; i++) {
    const more = req.argc - i - 1;
    if (req.argIs(i, 'auth') && more >= 2) return { at: i, username: req.argString(i + 1), password: req.argString(i + 2) };
    if (!req.argIs(i, 'setname') || more < 1) return null;
    i += 1;
  }
  return null;
}

function validClientName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 33 || c > 126) return false;
  }
  return true;
}

const clientSetname: LocalCommand = (s, req) => {
  if (req.argc !== 3) return wrongArgs(s, 'client|setname');
  const name = req.argString(2);
  if (!validClientName(name)) return s.replyError('ERR Client names cannot contain spaces, newlines or special characters.');
  s.name = name;
  s.reply(OK);
};

const clientGetname: LocalCommand = (s, req) => {
  if (req.argc !== 2) return wrongArgs(s, 'client|getname');
  s.reply(encodeBulk(s.name === '' ? null : s.name, s.protocol));
};

const clientId: LocalCommand = (s, req) => {
  if (req.argc !== 2) return wrongArgs(s, 'client|id');
  s.reply(encodeInteger(s.id));
};

const clientSetinfo: LocalCommand = (s, req) => {
  if (req.argc !== 4) return wrongArgs(s, 'client|setinfo');
  const value = req.argString(3);
  if (req.argIs(2, 'lib-name')) {
    if (!validClientName(value)) return s.replyError('ERR lib-name cannot contain spaces, newlines or special characters.');
    s.libName = value;
  } else if (req.argIs(2, 'lib-ver')) {
    if (!validClientName(value)) return s.replyError('ERR lib-ver cannot contain spaces, newlines or special characters.');
    s.libVersion = value;
  } else {
    return s.replyError(`ERR Unrecognized option '${req.argString(2)}'`);
  }
  s.reply(OK);
};

/** CLIENT subcommands newer than the command table (SETINFO and NO-TOUCH are Redis 7.2). */
const clientWithoutTableEntry: LocalCommand = (s, req) => {
  if (req.argc < 2) return wrongArgs(s, 'client');
  if (req.argIs(1, 'setinfo')) return clientSetinfo(s, req);
  if (req.argIs(1, 'no-touch')) return clientOnOff(s, req);
  s.replyError(`ERR unknown subcommand '${req.argString(1).slice(0, 128)}'. Try CLIENT HELP.`);
};

const reset: LocalCommand = (s, req) => {
  if (req.argc !== 1) return wrongArgs(s, 'reset');
  s.reset();
  s.reply(encodeSimple('RESET'));
};

/**
 * READONLY, READWRITE, ASKING: Redis Cluster connection modes. The proxy fronts
 * standalone servers, which answer these with this error; answered here so that they
 * never reach a shared connection.
 */
const clusterMode: LocalCommand = (s, req) => {
  if (req.argc !== 1) return wrongArgs(s, req.argString(0).toLowerCase());
  s.replyError('ERR This instance has cluster support disabled');
};

/**
 * Locally answered commands by table name (`client|setname`); every name of
 * LOCAL_NAMES (src/commands/routes.ts) has one. The CLIENT container entry answers the
 * subcommands a 7.0 table lacks (SETINFO and NO-TOUCH are Redis 7.2).
 */
export const LOCAL_COMMANDS: ReadonlyMap<string, LocalCommand> = new Map<string, LocalCommand>([
  ['ping', ping],
  ['echo', echo],
  ['quit', quit],
  ['select', select],
  ['auth', auth],
  ['hello', hello],
  ['reset', reset],
  ['client|setname', clientSetname],
  ['client|getname', clientGetname],
  ['client|id', clientId],
  ['client|list', clientList],
  ['client|info', clientInfo],
  ['client|kill', clientKill],
  ['client|reply', clientReply],
  ['client|no-evict', clientOnOff],
  ['client|no-touch', clientOnOff],
  ['client|setinfo', clientSetinfo],
  ['client|getredir', clientGetredir],
  ['readonly', clusterMode],
  ['readwrite', clusterMode],
  ['asking', clusterMode],
  ['client', clientWithoutTableEntry],
]);

// A name routed as local without a handler is a programming error: fail at load, not per request.
for (const name of LOCAL_NAMES) {
  if (!LOCAL_COMMANDS.has(name)) throw new Error(`no handler for the locally answered command ${name}`);
}

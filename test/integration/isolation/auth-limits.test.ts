/**
 * Redis's limits for unauthenticated clients (at most 10 arguments and 16 KB bulk
 * strings per request before AUTH) apply only while the client is unauthenticated.
 *
 * A client that sends `AUTH pw` and a large request in ONE write is authenticated by
 * the time Redis parses the second request, so Redis accepts it. The proxy's request
 * parser must do the same: apply the limits by the session's state when it reaches
 * each request, not by the state when the chunk arrived. Before AUTH, the limits still
 * give Redis's protocol errors and close the connection.
 *
 * Every case runs against a real redis-server with requirepass and against a listener
 * with `password`, and the bytes must be the same.
 */
import t from 'tap';
import { listenerFor, startTestProxy } from '../../helpers/proxy.js';
import { encodeCommand, rawCommand } from '../../helpers/raw.js';
import { startRedis } from '../../helpers/redis.js';
import { show } from '../compat/_helpers.js';

const reference = await startRedis();
// requirepass after start: the start-up check pings without AUTH.
await reference.client().config('SET', 'requirepass', 'pw');
const master = await startRedis();
const { port } = await startTestProxy([listenerFor(master, [], { password: 'pw' })]);

const BIG = 'x'.repeat(20000);
const elevenArgs = ['EXISTS', ...Array.from({ length: 10 }, (_, i) => `al:k${i}`)];

interface Case {
  name: string;
  bytes: Buffer;
  expected: string;
  /** The server closes the connection after the replies. */
  closes?: boolean;
}

const cases: Case[] = [
  {
    name: 'AUTH pw and ECHO <20,000 bytes> in one write -> +OK, then the 20,000-byte bulk',
    bytes: Buffer.concat([encodeCommand('AUTH', 'pw'), encodeCommand('ECHO', BIG)]),
    expected: `+OK\r\n$20000\r\n${BIG}\r\n`,
  },
  {
    name: 'AUTH pw and an 11-argument command in one write -> +OK, then its reply',
    bytes: Buffer.concat([encodeCommand('AUTH', 'pw'), encodeCommand(...elevenArgs)]),
    expected: '+OK\r\n:0\r\n',
  },
  {
    name: 'a wrong AUTH and ECHO <20,000 bytes> in one write -> WRONGPASS, then the unauthenticated bulk length error',
    bytes: Buffer.concat([encodeCommand('AUTH', 'wrong'), encodeCommand('ECHO', BIG)]),
    expected: '-WRONGPASS invalid username-password pair or user is disabled.\r\n-ERR Protocol error: unauthenticated bulk length\r\n',
    closes: true,
  },
  {
    name: 'ECHO <20,000 bytes> before AUTH -> the unauthenticated bulk length error, connection closed',
    bytes: encodeCommand('ECHO', BIG),
    expected: '-ERR Protocol error: unauthenticated bulk length\r\n',
    closes: true,
  },
  {
    name: 'an 11-argument command before AUTH -> the unauthenticated multibulk length error, connection closed',
    bytes: encodeCommand(...elevenArgs),
    expected: '-ERR Protocol error: unauthenticated multibulk length\r\n',
    closes: true,
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    for (const [target, p] of [
      ['Redis', reference.port],
      ['proxy', port],
    ] as const) {
      const got = c.closes
        ? await rawCommand(p, c.bytes, { untilClosed: true, timeoutMs: 1000 })
        : await rawCommand(p, c.bytes, { until: (b) => b.length >= c.expected.length, timeoutMs: 2000 });
      t.equal(got.text, c.expected, `${target}: ${show(c.expected)}`);
      if (c.closes) t.ok(got.closed, `${target}: the connection is closed`);
      else t.notOk(got.closed, `${target}: the connection stays open`);
    }
  });
}

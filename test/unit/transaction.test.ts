/**
 * Transaction (src/session/transaction.ts): what EXEC's reply does to the session. Uses a
 * fake TransactionHost (runLocal answers from a script and may flip repliesOff as CLIENT
 * REPLY does; transactionSelected / transactionTracking calls are recorded) and real EXEC
 * reply bytes as Redis writes them.
 *
 * Checks: no effects → null; an error or nil EXEC reply → null with no effect applied;
 * a SELECT or TRACKING effect applies only when its element is +OK; a local placeholder's
 * element is replaced by runLocal's reply; CLIENT REPLY OFF run at EXEC drops every later
 * element but keeps the header (Redis's `*1` then nothing), a later ON writes again;
 * silent=true leaves the header out; execSent() and clear(); an AUTH (authentication
 * "redis") applies only when its element is +OK, and a HELLO queued as its AUTH runs the
 * rest of the HELLO locally in its place only then, else its element (Redis's refusal)
 * stays.
 */
import t from 'tap';
import { encodeCommand } from '../../src/protocol/resp.js';
import { PLACEHOLDER, Transaction, type TransactionHost } from '../../src/session/transaction.js';

/** What a locally answered command does when run at EXEC. */
interface LocalBehaviour {
  reply: string | null;
  /** CLIENT REPLY: the mode after it runs. */
  repliesOff?: boolean;
}

class FakeHost implements TransactionHost {
  repliesOff = false;
  readonly ran: string[][] = [];
  readonly selected: number[] = [];
  readonly tracking: Array<[boolean, number]> = [];
  readonly logins: Array<[string, string]> = [];
  /** Behaviour by the command's arguments joined with spaces. */
  constructor(private readonly locals: Record<string, LocalBehaviour> = {}) {}
  runLocal(args: Buffer[]): Buffer | null {
    const words = args.map((a) => a.toString());
    this.ran.push(words);
    const behaviour = this.locals[words.join(' ')];
    if (behaviour === undefined) throw new Error(`unexpected local command ${words.join(' ')}`);
    if (behaviour.repliesOff !== undefined) this.repliesOff = behaviour.repliesOff;
    return behaviour.reply === null ? null : Buffer.from(behaviour.reply, 'latin1');
  }
  transactionSelected(db: number): void {
    this.selected.push(db);
  }
  transactionTracking(on: boolean, redirect: number): void {
    this.tracking.push([on, redirect]);
  }
  transactionAuthenticated(username: string, password: string): void {
    this.logins.push([username, password]);
  }
  get untouched(): boolean {
    return this.ran.length === 0 && this.selected.length === 0 && this.tracking.length === 0 && this.logins.length === 0;
  }
}

/** A transaction queued as the session queues it: `cmd` for a forwarded command, or an effect. */
type Queued =
  | { cmd: string }
  | { select: number }
  | { tracking: boolean; redirect?: number }
  | { local: string };

function queue(tx: Transaction, items: Queued[]): void {
  for (const item of items) {
    if ('select' in item) tx.queueSelect(item.select);
    else if ('tracking' in item) tx.queueTracking(item.tracking, item.redirect ?? 0);
    else if ('local' in item) tx.queueLocal(item.local.split(' ').map((w) => Buffer.from(w)));
    tx.queued++;
  }
}

/** execReplied on `reply` (placed at an offset in a larger buffer); the result as text, or null. */
function replied(tx: Transaction, host: FakeHost, reply: string, silent = false, trailer = ''): string | null {
  const buf = Buffer.from(`junk${reply}${trailer}`, 'latin1');
  const out = tx.execReplied(host, buf, 4, silent);
  return out === null ? null : out.toString('latin1');
}

const LOCAL = {
  'client id': { reply: ':42\r\n' },
  'client setname app': { reply: '+OK\r\n' },
  'client reply off': { reply: null, repliesOff: true },
  'client reply on': { reply: '+OK\r\n', repliesOff: false },
  'client reply skip': { reply: null },
} satisfies Record<string, LocalBehaviour>;

t.test('PLACEHOLDER is a PING request', async (t) => {
  t.equal(PLACEHOLDER.toString(), '*1\r\n$4\r\nPING\r\n');
  t.same(PLACEHOLDER, encodeCommand(['PING']));
});

t.test('no effects: null, the reply goes as it is', async (t) => {
  const tx = new Transaction();
  queue(tx, [{ cmd: 'SET a 1' }, { cmd: 'GET a' }]);
  t.equal(tx.queued, 2);
  t.equal(tx.execSent(), false, 'execSent: no effects');
  const host = new FakeHost();
  t.equal(replied(tx, host, '*2\r\n+OK\r\n$1\r\n1\r\n'), null);
  t.ok(host.untouched);
});

t.test('EXEC did not run: null, no effect applied', async (t) => {
  for (const [name, reply] of [
    ['EXECABORT error', '-EXECABORT Transaction discarded because of previous errors.\r\n'],
    ['RESP2 nil array (WATCHed key changed)', '*-1\r\n'],
    ['RESP3 null', '_\r\n'],
    ['a connection-level error', '-ERR EXEC without MULTI\r\n'],
  ]) {
    t.test(name!, async (t) => {
      const tx = new Transaction();
      queue(tx, [{ select: 1 }, { tracking: true, redirect: 3 }, { local: 'client id' }, { local: 'client reply off' }]);
      t.equal(tx.execSent(), true);
      const host = new FakeHost(LOCAL);
      t.equal(replied(tx, host, reply!), null);
      t.same(host.selected, [], 'no SELECT applied');
      t.same(host.tracking, [], 'no TRACKING applied');
      t.same(host.ran, [], 'no local command run');
      t.equal(host.repliesOff, false);
    });
  }
});

t.test('SELECT', async (t) => {
  t.test('applied when its element is +OK', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ cmd: 'SET a 1' }, { select: 1 }, { cmd: 'GET a' }]);
    tx.execSent();
    const host = new FakeHost();
    const reply = '*3\r\n+OK\r\n+OK\r\n$-1\r\n';
    t.equal(replied(tx, host, reply), reply, 'the reply is written unchanged');
    t.same(host.selected, [1]);
    t.same(host.tracking, []);
  });
  t.test('not applied when its element is an error', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ select: 1 }, { cmd: 'GET a' }]);
    tx.execSent();
    const host = new FakeHost();
    const reply = '*2\r\n-ERR DB index is out of range\r\n$1\r\nx\r\n';
    t.equal(replied(tx, host, reply), reply);
    t.same(host.selected, []);
  });
  t.test('only the element at the SELECT’s own index counts', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ cmd: 'SET a 1' }, { select: 4 }]);
    tx.execSent();
    const host = new FakeHost();
    // SET succeeded (+OK), the SELECT (index 1) did not.
    replied(tx, host, '*2\r\n+OK\r\n-ERR DB index is out of range\r\n');
    t.same(host.selected, []);
  });
  t.test('several SELECTs apply in order', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ select: 2 }, { cmd: 'INCR n' }, { select: 3 }]);
    tx.execSent();
    const host = new FakeHost();
    replied(tx, host, '*3\r\n+OK\r\n:1\r\n+OK\r\n');
    t.same(host.selected, [2, 3]);
  });
  t.test('a SELECT queued twice at the same index (a request retried) counts once', async (t) => {
    const tx = new Transaction();
    tx.queueSelect(5);
    tx.queueSelect(6);
    tx.queued++;
    tx.execSent();
    const host = new FakeHost();
    replied(tx, host, '*1\r\n+OK\r\n');
    t.same(host.selected, [6]);
  });
});

t.test('CLIENT TRACKING', async (t) => {
  t.test('applied when +OK', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ tracking: true, redirect: 7 }, { cmd: 'GET a' }, { tracking: false }]);
    tx.execSent();
    const host = new FakeHost();
    replied(tx, host, '*3\r\n+OK\r\n$1\r\nv\r\n+OK\r\n');
    t.same(host.tracking, [
      [true, 7],
      [false, 0],
    ]);
    t.same(host.selected, []);
  });
  t.test('not applied when refused', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ tracking: true, redirect: 7 }]);
    tx.execSent();
    const host = new FakeHost();
    replied(tx, host, '*1\r\n-ERR The client ID you want redirect to does not exist\r\n');
    t.same(host.tracking, []);
  });
});

t.test('AUTH (authentication "redis")', async (t) => {
  t.test('applied when +OK, in order with the other effects', async (t) => {
    const tx = new Transaction();
    tx.queueAuth('reader', 'rpw');
    tx.queued++;
    queue(tx, [{ cmd: 'GET a' }, { select: 2 }]);
    t.equal(tx.execSent(), true, 'an AUTH is an effect: later requests wait for EXEC');
    const host = new FakeHost();
    const reply = '*3\r\n+OK\r\n$1\r\nv\r\n+OK\r\n';
    t.equal(replied(tx, host, reply), reply, 'the reply is Redis’s, unchanged');
    t.same(host.logins, [['reader', 'rpw']]);
    t.same(host.selected, [2]);
  });
  t.test('not applied when Redis refused it', async (t) => {
    const tx = new Transaction();
    tx.queueAuth('reader', 'bad');
    tx.queued++;
    tx.execSent();
    const host = new FakeHost();
    const reply = '*1\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n';
    t.equal(replied(tx, host, reply), reply);
    t.ok(host.untouched);
  });
  t.test('HELLO queued as its AUTH: the rest of HELLO runs in its place when the AUTH succeeded', async (t) => {
    const tx = new Transaction();
    tx.queueAuthThenLocal('reader', 'rpw', ['hello', '3'].map((w) => Buffer.from(w)));
    tx.queued++;
    queue(tx, [{ cmd: 'GET a' }]);
    tx.execSent();
    const host = new FakeHost({ 'hello 3': { reply: '%1\r\n$5\r\nproto\r\n:3\r\n' } });
    t.equal(replied(tx, host, '*2\r\n+OK\r\n$1\r\nv\r\n'), '*2\r\n%1\r\n$5\r\nproto\r\n:3\r\n$1\r\nv\r\n');
    t.same(host.logins, [['reader', 'rpw']], 'the login applies before the HELLO runs');
    t.same(host.ran, [['hello', '3']]);
  });
  t.test('HELLO queued as its AUTH: Redis’s refusal is HELLO’s reply, and nothing runs', async (t) => {
    const tx = new Transaction();
    tx.queueAuthThenLocal('reader', 'bad', ['hello', '3'].map((w) => Buffer.from(w)));
    tx.queued++;
    tx.execSent();
    const host = new FakeHost();
    const reply = '*1\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n';
    t.equal(replied(tx, host, reply), reply);
    t.ok(host.untouched);
  });
});

t.test('a local placeholder’s element is replaced by runLocal’s reply', async (t) => {
  const tx = new Transaction();
  queue(tx, [{ cmd: 'SET a 1' }, { local: 'client id' }, { cmd: 'GET a' }, { local: 'client setname app' }]);
  t.equal(tx.execSent(), true);
  const host = new FakeHost(LOCAL);
  const out = replied(tx, host, '*4\r\n+OK\r\n+PONG\r\n$1\r\n1\r\n+PONG\r\n');
  t.equal(out, '*4\r\n+OK\r\n:42\r\n$1\r\n1\r\n+OK\r\n');
  t.same(host.ran, [
    ['client', 'id'],
    ['client', 'setname', 'app'],
  ], 'run in order, with the queued arguments');
});

t.test('a local command’s arguments are the ones queued (copies)', async (t) => {
  const tx = new Transaction();
  const args = [Buffer.from('client'), Buffer.from('id')];
  tx.queueLocal(args);
  tx.queued++;
  tx.execSent();
  const host = new FakeHost(LOCAL);
  replied(tx, host, '*1\r\n+PONG\r\n');
  t.same(host.ran, [['client', 'id']]);
});

t.test('CLIENT REPLY OFF at EXEC', async (t) => {
  t.test('alone: the header then nothing (Redis: *1 then nothing)', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ local: 'client reply off' }]);
    tx.execSent();
    const host = new FakeHost(LOCAL);
    t.equal(replied(tx, host, '*1\r\n+PONG\r\n'), '*1\r\n');
    t.equal(host.repliesOff, true);
  });
  t.test('every later element dropped; effects still applied', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ cmd: 'SET a 1' }, { local: 'client reply off' }, { cmd: 'GET a' }, { select: 2 }, { local: 'client id' }]);
    tx.execSent();
    const host = new FakeHost(LOCAL);
    const out = replied(tx, host, '*5\r\n+OK\r\n+PONG\r\n$1\r\n1\r\n+OK\r\n+PONG\r\n');
    t.equal(out, '*5\r\n+OK\r\n', 'header and the element before OFF');
    t.same(host.selected, [2], 'the SELECT ran on the server: the session follows');
    t.same(host.ran, [
      ['client', 'reply', 'off'],
      ['client', 'id'],
    ], 'later local commands still run');
  });
  t.test('a later ON writes again from its own reply', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ local: 'client reply off' }, { cmd: 'GET a' }, { local: 'client reply on' }, { cmd: 'GET b' }]);
    tx.execSent();
    const host = new FakeHost(LOCAL);
    const out = replied(tx, host, '*4\r\n+PONG\r\n$1\r\na\r\n+PONG\r\n$1\r\nb\r\n');
    t.equal(out, '*4\r\n+OK\r\n$1\r\nb\r\n');
    t.equal(host.repliesOff, false);
  });
  t.test('SKIP gives no reply of its own', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ local: 'client reply skip' }, { cmd: 'GET a' }]);
    tx.execSent();
    const host = new FakeHost(LOCAL);
    const out = replied(tx, host, '*2\r\n+PONG\r\n$1\r\na\r\n');
    t.equal(out, '*2\r\n$1\r\na\r\n');
  });
});

t.test('silent=true (CLIENT REPLY OFF before EXEC)', async (t) => {
  t.test('the header is left out; with replies off nothing is written', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ select: 1 }, { local: 'client id' }]);
    tx.execSent();
    const host = new FakeHost(LOCAL);
    host.repliesOff = true;
    const out = replied(tx, host, '*2\r\n+OK\r\n+PONG\r\n', true);
    t.equal(out, '');
    t.same(host.selected, [1], 'effects still applied');
    t.same(host.ran, [['client', 'id']]);
  });
  t.test('an ON inside writes from its element on, without the header', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ cmd: 'GET a' }, { local: 'client reply on' }, { cmd: 'GET b' }]);
    tx.execSent();
    const host = new FakeHost(LOCAL);
    host.repliesOff = true;
    const out = replied(tx, host, '*3\r\n$1\r\na\r\n+PONG\r\n$1\r\nb\r\n', true);
    t.equal(out, '+OK\r\n$1\r\nb\r\n');
  });
});

t.test('bytes after EXEC’s array are not part of the result', async (t) => {
  const tx = new Transaction();
  queue(tx, [{ local: 'client id' }, { cmd: 'SUBSCRIBE a b' }]);
  tx.execSent();
  const host = new FakeHost(LOCAL);
  // Redis writes the second channel's confirmation after EXEC's array.
  const trailer = '*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n';
  const out = replied(tx, host, '*2\r\n+PONG\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n', false, trailer);
  t.equal(out, '*2\r\n:42\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n');
});

t.test('RESP3 EXEC reply with a map element', async (t) => {
  const tx = new Transaction();
  queue(tx, [{ cmd: 'HGETALL h' }, { select: 9 }]);
  tx.execSent();
  const host = new FakeHost();
  const reply = '*2\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n+OK\r\n';
  t.equal(replied(tx, host, reply), reply);
  t.same(host.selected, [9], 'the SELECT is found after the map element');
});

t.test('execSent', async (t) => {
  t.test('false with no effects, true with effects', async (t) => {
    const tx = new Transaction();
    t.equal(tx.execSent(), false);
    queue(tx, [{ cmd: 'SET a 1' }, { select: 1 }]);
    t.equal(tx.execSent(), true);
  });
  t.test('the next transaction starts afresh', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ select: 1 }]);
    tx.rejected = true;
    tx.subscribes = true;
    t.equal(tx.execSent(), true);
    t.equal(tx.queued, 0);
    t.equal(tx.rejected, false);
    t.equal(tx.subscribes, false);
    t.equal(tx.execSent(), false, 'the effects went with the EXEC sent');
  });
  t.test('effects queued after EXEC was sent belong to the next EXEC', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ select: 1 }]);
    tx.execSent();
    queue(tx, [{ select: 2 }]); // the next MULTI, before the first EXEC's reply
    const host = new FakeHost();
    replied(tx, host, '*1\r\n+OK\r\n');
    t.same(host.selected, [1], 'the first EXEC applies its own SELECT only');
    t.equal(tx.execSent(), true, 'the second transaction still has its effect');
    replied(tx, host, '*1\r\n+OK\r\n');
    t.same(host.selected, [1, 2]);
  });
  t.test('execReplied consumes the effects', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ select: 1 }]);
    tx.execSent();
    const host = new FakeHost();
    t.not(replied(tx, host, '*1\r\n+OK\r\n'), null);
    t.equal(replied(tx, host, '*1\r\n+OK\r\n'), null, 'a second reply finds nothing');
    t.same(host.selected, [1]);
  });
});

// Two EXECs in flight (MULTI…EXEC MULTI…EXEC pipelined, the first without effects): each
// reply must apply its own transaction's effects, not the other's.

t.test('two EXECs in flight: each reply applies its own transaction’s effects', async (t) => {
  t.test('SELECT in the second', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ cmd: 'GET a' }]);
    t.equal(tx.execSent(), false, 'EXEC #1: no effects');
    queue(tx, [{ select: 1 }]);
    t.equal(tx.execSent(), true, 'EXEC #2: a SELECT');
    const host = new FakeHost();
    t.equal(replied(tx, host, '*1\r\n$1\r\nx\r\n'), null, 'EXEC #1 is written as it is');
    t.same(host.selected, [], 'EXEC #1 applies nothing');
    t.equal(replied(tx, host, '*1\r\n+OK\r\n'), '*1\r\n+OK\r\n', 'EXEC #2 is seen');
    t.same(host.selected, [1], 'EXEC #2’s SELECT applied: the session follows the server');
  });
  t.test('a local command in the second', async (t) => {
    const tx = new Transaction();
    queue(tx, [{ cmd: 'SET a 1' }]);
    tx.execSent();
    queue(tx, [{ local: 'client id' }]);
    tx.execSent();
    const host = new FakeHost(LOCAL);
    t.equal(replied(tx, host, '*1\r\n+OK\r\n'), null, 'SET’s +OK is not replaced by CLIENT ID’s reply');
    t.equal(replied(tx, host, '*1\r\n+PONG\r\n'), '*1\r\n:42\r\n', 'the placeholder is');
  });
});

t.test('clear() forgets', async (t) => {
  const tx = new Transaction();
  queue(tx, [{ select: 1 }, { tracking: true }, { local: 'client id' }]);
  tx.rejected = true;
  tx.subscribes = true;
  tx.clear();
  t.equal(tx.queued, 0);
  t.equal(tx.rejected, false);
  t.equal(tx.subscribes, false);
  t.equal(tx.execSent(), false, 'no effects left');
  const host = new FakeHost(LOCAL);
  t.equal(replied(tx, host, '*3\r\n+OK\r\n+OK\r\n+PONG\r\n'), null);
  t.ok(host.untouched);
});

/**
 * Lease (src/backend/lease.ts): the one place that decides whether a dedicated connection
 * goes back to the pool. Checks, with a fake connection and a fake pool, that release()
 * gives the connection back only when no LEASE_* bit is set, markStateUnknown() was never
 * called, nothing is owed and the connection is open; that each condition alone makes it
 * discard; that leave() clears bits; that markStateUnknown() is sticky; that release() is
 * idempotent and clears the stream sink; that the pass-through methods reach the
 * connection; and that a clean connection authenticated as a client's Redis user goes back
 * to the pool only after Redis accepted the AUTH back to the node's own credentials, and
 * is discarded when it refused it.
 */
import t from 'tap';
import type { BackendConnection } from '../../src/backend/connection.js';
import {
  Lease,
  LEASE_MONITOR,
  LEASE_PUBSUB,
  LEASE_TRACKING,
  LEASE_TX,
  LEASE_WATCH,
  type LeasePool,
} from '../../src/backend/lease.js';
import { BackendIdentity } from '../../src/backend/identity.js';
import type { OwedReply, StreamSink } from '../../src/backend/link.js';

/** The part of BackendConnection a lease uses, with what it was asked recorded. */
interface FakeConn {
  sink: StreamSink | null;
  clientId: number;
  closed: boolean;
  owedCount: number;
  sends: Array<{ reply: OwedReply; bytes: string }>;
  writes: string[];
  selects: number[];
  protocols: Array<2 | 3>;
  assumed: number[];
  identity: BackendIdentity | null;
  /** Every authenticate() call, with the settle functions of its promise. */
  auths: Array<{ identity: BackendIdentity | null; resolve(): void; reject(err: Error): void }>;
  authenticate(identity: BackendIdentity | null): Promise<void>;
  assumeIdentity(identity: BackendIdentity | null): void;
  send(reply: OwedReply, buf: Buffer, start: number, end: number): void;
  write(request: Buffer): void;
  select(db: number): void;
  setProtocol(protocol: 2 | 3): void;
  assumeDb(db: number): void;
}

function fakeConn(): FakeConn {
  return {
    sink: null,
    clientId: 42,
    closed: false,
    owedCount: 0,
    sends: [],
    writes: [],
    selects: [],
    protocols: [],
    assumed: [],
    identity: null,
    auths: [],
    authenticate(identity) {
      this.identity = identity;
      return new Promise<void>((resolve, reject) => this.auths.push({ identity, resolve, reject }));
    },
    assumeIdentity(identity) {
      this.identity = identity;
    },
    send(reply, buf, start, end) {
      this.sends.push({ reply, bytes: buf.toString('latin1', start, end) });
    },
    write(request) {
      this.writes.push(request.toString('latin1'));
    },
    select(db) {
      this.selects.push(db);
    },
    setProtocol(protocol) {
      this.protocols.push(protocol);
    },
    assumeDb(db) {
      this.assumed.push(db);
    },
  };
}

interface FakePool extends LeasePool {
  given: FakeConn[];
  discarded: Array<{ conn: FakeConn; reason: string }>;
}

function fakePool(): FakePool {
  const pool: FakePool = {
    given: [],
    discarded: [],
    giveBack(conn) {
      pool.given.push(conn as unknown as FakeConn);
    },
    discard(conn, reason) {
      pool.discarded.push({ conn: conn as unknown as FakeConn, reason });
    },
  };
  return pool;
}

function setup(): { conn: FakeConn; pool: FakePool; lease: Lease } {
  const conn = fakeConn();
  const pool = fakePool();
  const lease = new Lease(conn as unknown as BackendConnection, pool);
  return { conn, pool, lease };
}

const SINK: StreamSink = { onStreamReply() {}, onStreamClosed() {} };

t.test('a clean lease goes back to the pool', async (t) => {
  const { conn, pool, lease } = setup();
  t.equal(lease.clean, true);
  t.equal(lease.connectionState, 0);
  t.equal(lease.release(), true, 'release reports it was pooled');
  t.equal(pool.given.length, 1);
  t.equal(pool.given[0], conn, 'the lease’s own connection was given back');
  t.equal(pool.discarded.length, 0);
});

const BITS: Array<[string, number]> = [
  ['LEASE_TX', LEASE_TX],
  ['LEASE_WATCH', LEASE_WATCH],
  ['LEASE_PUBSUB', LEASE_PUBSUB],
  ['LEASE_MONITOR', LEASE_MONITOR],
  ['LEASE_TRACKING', LEASE_TRACKING],
];

t.test('the LEASE_* bits are distinct single bits', async (t) => {
  const all = BITS.reduce((acc, [, bit]) => acc | bit, 0);
  t.equal(all, 31);
  for (const [name, bit] of BITS) t.equal(bit & (bit - 1), 0, `${name} is one bit`);
});

for (const [name, bit] of BITS) {
  t.test(`${name} alone makes release discard`, async (t) => {
    const { conn, pool, lease } = setup();
    lease.enter(bit);
    t.equal(lease.connectionState, bit);
    t.equal(lease.clean, false);
    t.equal(lease.release(), false, 'release reports it was not pooled');
    t.equal(pool.given.length, 0, 'not given back');
    t.equal(pool.discarded.length, 1, 'discarded');
    t.equal(pool.discarded[0]!.conn, conn);
    t.equal(pool.discarded[0]!.reason, 'released with connection state');
  });

  t.test(`${name} entered then left: release gives back`, async (t) => {
    const { pool, lease } = setup();
    lease.enter(bit);
    lease.leave(bit);
    t.equal(lease.connectionState, 0);
    t.equal(lease.clean, true);
    t.equal(lease.release(), true);
    t.equal(pool.given.length, 1);
    t.equal(pool.discarded.length, 0);
  });
}

t.test('leave clears only the bits named', async (t) => {
  const { pool, lease } = setup();
  lease.enter(LEASE_TX | LEASE_WATCH | LEASE_TRACKING);
  lease.leave(LEASE_TX | LEASE_WATCH);
  t.equal(lease.connectionState, LEASE_TRACKING, 'TRACKING stays');
  t.equal(lease.clean, false);
  lease.leave(LEASE_MONITOR); // not set: no effect
  t.equal(lease.connectionState, LEASE_TRACKING);
  lease.leave(LEASE_TRACKING);
  t.equal(lease.connectionState, 0);
  t.equal(lease.release(), true);
  t.equal(pool.given.length, 1);
});

t.test('enter accumulates bits', async (t) => {
  const { lease } = setup();
  lease.enter(LEASE_PUBSUB);
  lease.enter(LEASE_MONITOR);
  t.equal(lease.connectionState, LEASE_PUBSUB | LEASE_MONITOR);
});

t.test('markStateUnknown alone makes release discard', async (t) => {
  const { conn, pool, lease } = setup();
  lease.markStateUnknown();
  t.equal(lease.connectionState, 0, 'no state bit');
  t.equal(lease.clean, false);
  t.equal(lease.release(), false);
  t.equal(pool.given.length, 0);
  t.same(pool.discarded.map((d) => d.conn), [conn]);
});

t.test('markStateUnknown is sticky: leaving every bit does not clear it', async (t) => {
  const { pool, lease } = setup();
  lease.enter(LEASE_TX);
  lease.markStateUnknown();
  lease.leave(LEASE_TX | LEASE_WATCH | LEASE_PUBSUB | LEASE_MONITOR | LEASE_TRACKING);
  t.equal(lease.connectionState, 0);
  t.equal(lease.clean, false, 'still unclean');
  t.equal(lease.release(), false);
  t.equal(pool.given.length, 0);
  t.equal(pool.discarded.length, 1);
});

t.test('replies still owed make release discard', async (t) => {
  const { conn, pool, lease } = setup();
  conn.owedCount = 1;
  t.equal(lease.owed, 1, 'owed reads the connection');
  t.equal(lease.clean, false);
  t.equal(lease.release(), false);
  t.equal(pool.given.length, 0);
  t.equal(pool.discarded.length, 1);
});

t.test('owedCount is read at release time, not at lease time', async (t) => {
  const { conn, pool, lease } = setup();
  conn.owedCount = 3;
  t.equal(lease.clean, false);
  conn.owedCount = 0;
  t.equal(lease.clean, true);
  t.equal(lease.release(), true);
  t.equal(pool.given.length, 1);
});

t.test('a closed connection is discarded, not given back', async (t) => {
  const { conn, pool, lease } = setup();
  conn.closed = true;
  t.equal(lease.closed, true, 'closed reads the connection');
  t.equal(lease.clean, false);
  t.equal(lease.release(), false);
  t.equal(pool.given.length, 0);
  t.equal(pool.discarded.length, 1);
});

t.test('release is idempotent', async (t) => {
  t.test('after giving back', async (t) => {
    const { pool, lease } = setup();
    t.equal(lease.release(), true);
    t.equal(lease.release(), false, 'second call reports nothing pooled');
    t.equal(pool.given.length, 1, 'given back once');
    t.equal(pool.discarded.length, 0, 'and not discarded afterwards');
  });
  t.test('after discarding', async (t) => {
    const { pool, lease } = setup();
    lease.enter(LEASE_WATCH);
    t.equal(lease.release(), false);
    lease.leave(LEASE_WATCH); // clean now: a second release still does nothing
    t.equal(lease.release(), false);
    t.equal(pool.discarded.length, 1, 'discarded once');
    t.equal(pool.given.length, 0, 'never given back');
  });
});

t.test('stream() sets the sink and release clears it', async (t) => {
  t.test('on give back', async (t) => {
    const { conn, lease } = setup();
    lease.stream(SINK);
    t.equal(conn.sink, SINK);
    lease.release();
    t.equal(conn.sink, null);
  });
  t.test('on discard', async (t) => {
    const { conn, lease } = setup();
    lease.stream(SINK);
    lease.enter(LEASE_PUBSUB);
    lease.release();
    t.equal(conn.sink, null);
  });
  t.test('stream(null) clears it', async (t) => {
    const { conn, lease } = setup();
    lease.stream(SINK);
    lease.stream(null);
    t.equal(conn.sink, null);
  });
  t.test('the sink is cleared before the pool sees the connection', async (t) => {
    const conn = fakeConn();
    const seen: Array<StreamSink | null> = [];
    const pool: LeasePool = {
      giveBack: (c) => seen.push((c as unknown as FakeConn).sink),
      discard: (c) => seen.push((c as unknown as FakeConn).sink),
    };
    const lease = new Lease(conn as unknown as BackendConnection, pool);
    lease.stream(SINK);
    lease.release();
    t.same(seen, [null]);
  });
});

t.test('pass-through to the connection', async (t) => {
  const { conn, lease } = setup();
  t.equal(lease.clientId, 42);
  const reply: OwedReply = { sentAt: 0, patient: false, settle() {}, fail() {} };
  const buf = Buffer.from('xx*1\r\n$4\r\nPING\r\nyy');
  lease.send(reply, buf, 2, buf.length - 2);
  t.equal(conn.sends.length, 1);
  t.equal(conn.sends[0]!.reply, reply);
  t.equal(conn.sends[0]!.bytes, '*1\r\n$4\r\nPING\r\n', 'the range given, not the whole buffer');
  lease.write(Buffer.from('*1\r\n$4\r\nPING\r\n'));
  t.same(conn.writes, ['*1\r\n$4\r\nPING\r\n']);
  lease.select(3);
  t.same(conn.selects, [3]);
  lease.setProtocol(3);
  t.same(conn.protocols, [3]);
  lease.assumeDb(5);
  t.same(conn.assumed, [5]);
  t.equal(lease.connectionState, 0, 'none of these changes the state bits');
  t.equal(lease.clean, true);
});

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('identity: setIdentity switches only on a change; assumeIdentity records without sending', async (t) => {
  const { conn, lease } = setup();
  const reader = new BackendIdentity('reader', 'rpw');
  lease.setIdentity(null);
  t.same(conn.auths, [], 'already on the node’s own credentials: no AUTH');
  lease.setIdentity(reader);
  t.same(conn.auths.map((a) => a.identity), [reader], 'one AUTH as the user');
  t.equal(lease.identity, reader);
  lease.setIdentity(reader);
  t.equal(conn.auths.length, 1, 'no second AUTH for the same user');
  const writer = new BackendIdentity('writer', 'wpw');
  lease.assumeIdentity(writer);
  t.equal(lease.identity, writer, 'an AUTH the client ran is recorded');
  t.equal(conn.auths.length, 1, 'and nothing is sent for it');
  conn.auths[0]!.reject(new Error('WRONGPASS'));
  await tick();
});

t.test('identity: a clean lease of a client user is pooled only after the AUTH back is accepted', async (t) => {
  const { conn, pool, lease } = setup();
  conn.identity = new BackendIdentity('reader', 'rpw');
  t.equal(lease.clean, true);
  t.equal(lease.release(), true, 'on its way back to the pool');
  t.same(conn.auths.map((a) => a.identity), [null], 'AUTH back to the node’s own credentials');
  await tick();
  t.equal(pool.given.length, 0, 'not pooled before Redis accepted it');
  conn.auths[0]!.resolve();
  await tick();
  t.same(pool.given, [conn], 'pooled once accepted');
  t.equal(pool.discarded.length, 0);
  t.equal(lease.release(), false, 'idempotent');
  t.equal(conn.auths.length, 1);
});

t.test('identity: an AUTH back that Redis refuses destroys the connection', async (t) => {
  const { conn, pool, lease } = setup();
  conn.identity = new BackendIdentity('reader', 'rpw');
  lease.release();
  conn.auths[0]!.reject(new Error('WRONGPASS invalid username-password pair or user is disabled.'));
  await tick();
  t.equal(pool.given.length, 0, 'never pooled');
  t.same(pool.discarded.map((d) => [d.conn, d.reason]), [
    [conn, 'could not authenticate back: WRONGPASS invalid username-password pair or user is disabled.'],
  ]);
});

t.test('identity: a lease of a client user with state is destroyed without an AUTH', async (t) => {
  const { conn, pool, lease } = setup();
  conn.identity = new BackendIdentity('reader', 'rpw');
  lease.enter(LEASE_WATCH);
  t.equal(lease.release(), false);
  t.same(conn.auths, [], 'no AUTH back for a connection that is destroyed anyway');
  t.same(pool.discarded.map((d) => d.conn), [conn]);
});

/**
 * MasterChannel (src/session/master-channel.ts): which master connection a request goes
 * on, the ordering barrier, and the session's lease. Uses a fake Node (shared links per
 * (db, protocol) that record what was sent and hold the owed replies so the test settles
 * or fails them; acquire() returning a promise the test resolves or rejects), fake leases,
 * and a fake ChannelOwner whose slots are real ReplySlots; a reply to a SLOT_MASTER slot
 * calls channel.replied() as the session does.
 *
 * Checks: sends go to the shared link of the session's (db, protocol); a send to the same
 * link while replies are owed goes through; a send that needs another connection returns
 * null (nothing sent, no slot taken) until every owed reply is in, and the owner is woken
 * then; slot flags; acquire() (pending, arrival, failure, forOther); releaseIfIdle;
 * retireLease keeping the barrier; close(); a lease arriving after the owner ended; the
 * master moving (a reload or failover) while replies are owed or a lease is on its way;
 * a change of identity (the Redis user the session runs as) waiting at the barrier like a
 * change of database, and reaching the lease.
 */
import t from 'tap';
import { BackendIdentity } from '../../src/backend/identity.js';
import type { Lease } from '../../src/backend/lease.js';
import type { BackendFailure, Link, OwedReply, StreamSink } from '../../src/backend/link.js';
import type { Node } from '../../src/backend/node.js';
import { MasterChannel, type ChannelOwner } from '../../src/session/master-channel.js';
import { ReplySlot, SLOT_DEDICATED, SLOT_MASTER, SLOT_READ, SLOT_WRITE, type SlotOwner } from '../../src/session/reply-slot.js';

const LOST: BackendFailure = { kind: 'lost', node: 'master 127.0.0.1:7000', detail: 'connection closed' };

/** A link that records requests and keeps the replies it owes until the test settles them. */
class FakeLink implements Link {
  closed = false;
  readonly owed: OwedReply[] = [];
  readonly sent: string[] = [];
  constructor(readonly name: string) {}
  send(reply: OwedReply, buf: Buffer, start: number, end: number): void {
    this.owed.push(reply);
    this.sent.push(buf.toString('latin1', start, end));
  }
  /** The oldest owed reply arrives. */
  settle(text = '+OK\r\n'): void {
    const reply = this.owed.shift();
    if (reply === undefined) throw new Error(`${this.name}: no reply owed`);
    const buf = Buffer.from(text, 'latin1');
    reply.settle(buf, 0, buf.length);
  }
  /** The oldest owed reply fails. */
  fail(): void {
    const reply = this.owed.shift();
    if (reply === undefined) throw new Error(`${this.name}: no reply owed`);
    reply.fail(LOST);
  }
}

/** The part of Lease the channel uses; like BackendConnection, select/setProtocol record only a change. */
class FakeLease extends FakeLink {
  releases = 0;
  /** The connection's db and protocol (a lease arrives on what it was acquired for: here 0 and RESP2). */
  db = 0;
  protocol: 2 | 3 = 2;
  readonly sinks: Array<StreamSink | null> = [];
  readonly selects: number[] = [];
  readonly protocols: Array<2 | 3> = [];
  readonly assumed: number[] = [];
  readonly clientId = 99;
  /** Who the connection runs as (null: the node's own credentials), and every switch asked for. */
  identity: BackendIdentity | null = null;
  readonly identities: Array<BackendIdentity | null> = [];
  setIdentity(identity: BackendIdentity | null): void {
    if (identity === this.identity) return;
    this.identity = identity;
    this.identities.push(identity);
  }
  assumeIdentity(identity: BackendIdentity | null): void {
    this.identity = identity;
  }
  stream(sink: StreamSink | null): void {
    this.sinks.push(sink);
  }
  release(): boolean {
    this.releases++;
    return true;
  }
  select(db: number): void {
    if (db === this.db) return;
    this.db = db;
    this.selects.push(db);
  }
  setProtocol(protocol: 2 | 3): void {
    if (protocol === this.protocol) return;
    this.protocol = protocol;
    this.protocols.push(protocol);
  }
  assumeDb(db: number): void {
    this.db = db;
    this.assumed.push(db);
  }
}

interface PendingAcquire {
  db: number;
  protocol: 2 | 3;
  identity: BackendIdentity | null;
  resolve(lease: FakeLease): void;
  reject(err: Error): void;
}

/** The part of Node the channel uses. */
class FakeNode {
  readonly label = 'master 127.0.0.1:7000';
  readonly links = new Map<string, FakeLink>();
  /** Every sharedLink() call, as `db/protocol`. */
  readonly linkCalls: string[] = [];
  readonly acquires: PendingAcquire[] = [];
  sharedLink(db: number, protocol: 2 | 3, identity: BackendIdentity | null = null): Link {
    const key = identity === null ? `${db}/${protocol}` : `${db}/${protocol}/${identity.username}`;
    this.linkCalls.push(key);
    let link = this.links.get(key);
    // Like Node: a closed shared connection is replaced by a new one.
    if (link === undefined || link.closed) {
      link = new FakeLink(key);
      this.links.set(key, link);
    }
    return link;
  }
  acquire(db: number, protocol: 2 | 3, identity: BackendIdentity | null = null): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) => {
      this.acquires.push({ db, protocol, identity, resolve: (lease) => resolve(lease as unknown as Lease), reject });
    });
  }
  link(key: string): FakeLink {
    const link = this.links.get(key);
    if (link === undefined) throw new Error(`no link ${key}`);
    return link;
  }
}

/** The session's part: real slots, a wake counter, and replies counted by the channel. */
class FakeOwner implements ChannelOwner, SlotOwner {
  holdsLease = false;
  ended = false;
  wakes = 0;
  channel!: MasterChannel;
  readonly slots: ReplySlot[] = [];
  readonly replies: Array<{ slot: ReplySlot; text: string }> = [];
  readonly errors: Array<{ slot: ReplySlot; failure: BackendFailure }> = [];
  newSlot(flags: number): ReplySlot {
    const slot = new ReplySlot(this, flags);
    this.slots.push(slot);
    return slot;
  }
  wake(): void {
    this.wakes++;
  }
  onStreamReply(): void {}
  onStreamClosed(): void {}
  onSlotReply(slot: ReplySlot, buf: Buffer, start: number, end: number): void {
    this.replies.push({ slot, text: buf.toString('latin1', start, end) });
    if (slot.flags & SLOT_MASTER) this.channel.replied();
  }
  onSlotError(slot: ReplySlot, failure: BackendFailure): void {
    this.errors.push({ slot, failure });
    if (slot.flags & SLOT_MASTER) this.channel.replied();
  }
}

/** Where the channel finds the master: the listener, whose master a reload or failover may replace. */
class FakeListener {
  constructor(public node: FakeNode) {}
  get master(): Node {
    return this.node as unknown as Node;
  }
}

function setup(): { node: FakeNode; owner: FakeOwner; channel: MasterChannel; listener: FakeListener } {
  const node = new FakeNode();
  const owner = new FakeOwner();
  const listener = new FakeListener(node);
  const channel = new MasterChannel(listener, owner);
  owner.channel = channel;
  return { node, owner, channel, listener };
}

/** Sends the request `text` (its bytes sit inside a larger buffer, to check the range is honoured). */
function send(channel: MasterChannel, text: string, flags = 0): ReplySlot | null {
  const buf = Buffer.from(`##${text}##`, 'latin1');
  return channel.send(buf, 2, buf.length - 2, flags);
}

/** Lets promise callbacks (a lease arriving or failing) run. */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Acquires a lease and delivers it; the owner holds state on it unless told otherwise. */
async function withLease(channel: MasterChannel, node: FakeNode, owner: FakeOwner, holds = true): Promise<FakeLease> {
  owner.holdsLease = holds;
  const lease = new FakeLease('lease');
  if (channel.acquire()) throw new Error('lease already held');
  node.acquires.at(-1)!.resolve(lease);
  await tick();
  if (channel.lease !== (lease as unknown as Lease)) throw new Error('lease not installed');
  return lease;
}

t.test('sends go to the shared link of the session’s (db, protocol)', async (t) => {
  const { node, owner, channel } = setup();
  const a = send(channel, 'GET a', SLOT_READ);
  t.not(a, null, 'sent');
  t.same(node.linkCalls, ['0/2'], 'db 0, RESP2 by default');
  t.same(node.link('0/2').sent, ['GET a'], 'exactly the range given');
  t.equal(a!.flags, SLOT_READ | SLOT_MASTER, 'SLOT_MASTER added, no SLOT_DEDICATED');
  t.equal(a!.node, node as unknown as Node, 'the slot names the master');
  t.equal(node.link('0/2').owed[0], a, 'the link owes the slot');
  t.equal(channel.inFlight, 1);
  t.equal(owner.slots.length, 1);
});

t.test('a second send to the same link while replies are owed goes through', async (t) => {
  const { node, owner, channel } = setup();
  const a = send(channel, 'SET a 1', SLOT_WRITE);
  const b = send(channel, 'SET b 2', SLOT_WRITE);
  t.not(a, null);
  t.not(b, null);
  t.same(node.link('0/2').sent, ['SET a 1', 'SET b 2']);
  t.equal(channel.inFlight, 2);
  node.link('0/2').settle();
  t.equal(channel.inFlight, 1);
  t.equal(owner.wakes, 0, 'not woken while a reply is still owed');
  node.link('0/2').settle();
  t.equal(channel.inFlight, 0);
  t.equal(owner.wakes, 1, 'woken when the last owed reply is in');
  t.same(
    owner.replies.map((r) => r.slot),
    [a, b],
    'replies reach the slots in send order',
  );
});

t.test('select() with replies owed on db 0: the barrier holds until they are in', async (t) => {
  const { node, owner, channel } = setup();
  t.not(send(channel, 'SET a 1'), null);
  t.not(send(channel, 'SET b 2'), null);
  channel.select(1);
  t.equal(send(channel, 'GET a'), null, 'held by the barrier');
  t.equal(owner.slots.length, 2, 'no slot taken for a held request');
  t.equal(channel.inFlight, 2, 'nothing counted for it');
  t.same(node.links.get('1/2')?.sent ?? [], [], 'nothing sent on db 1');
  t.same(node.link('0/2').sent, ['SET a 1', 'SET b 2'], 'nor on db 0');

  node.link('0/2').settle();
  t.equal(owner.wakes, 0, 'one reply still owed: no wake');
  t.equal(send(channel, 'GET a'), null, 'still held');

  node.link('0/2').settle();
  t.equal(owner.wakes, 1, 'woken when owed reaches 0');
  t.equal(channel.inFlight, 0);
  const slot = send(channel, 'GET a');
  t.not(slot, null, 'goes now');
  t.same(node.link('1/2').sent, ['GET a'], 'on the db-1 link');
  t.same(node.link('0/2').sent, ['SET a 1', 'SET b 2'], 'nothing more on db 0');
  t.equal(channel.inFlight, 1);
});

t.test('setProtocol() moves to the RESP3 link behind the barrier', async (t) => {
  const { node, owner, channel } = setup();
  send(channel, 'PING');
  channel.setProtocol(3);
  t.equal(send(channel, 'GET a'), null);
  node.link('0/2').settle('+PONG\r\n');
  t.equal(owner.wakes, 1);
  t.not(send(channel, 'GET a'), null);
  t.same(node.link('0/3').sent, ['GET a']);
});

t.test('switching away and back before sending: same link, no barrier', async (t) => {
  const { node, channel } = setup();
  send(channel, 'SET a 1');
  channel.select(1);
  channel.select(0);
  t.not(send(channel, 'GET a'), null, 'the link replies are owed on is the one wanted');
  t.same(node.link('0/2').sent, ['SET a 1', 'GET a']);
});

t.test('a failed reply counts like a reply for the barrier', async (t) => {
  const { node, owner, channel } = setup();
  send(channel, 'SET a 1');
  channel.select(2);
  t.equal(send(channel, 'GET a'), null);
  node.link('0/2').fail();
  t.equal(owner.errors.length, 1);
  t.equal(owner.wakes, 1);
  t.not(send(channel, 'GET a'), null);
  t.same(node.link('2/2').sent, ['GET a']);
});

t.test('a closed shared link with replies owed: the replacement waits for them', async (t) => {
  const { node, owner, channel } = setup();
  send(channel, 'SET a 1');
  const first = node.link('0/2');
  first.closed = true;
  t.equal(send(channel, 'GET a'), null, 'held: replies are owed on the closed link');
  t.same(first.sent, ['SET a 1'], 'nothing more on the closed link');
  first.fail();
  t.equal(owner.wakes, 1);
  t.not(send(channel, 'GET a'), null);
  const second = node.link('0/2');
  t.not(second, first, 'Node replaced the closed link');
  t.same(second.sent, ['GET a'], 'the request goes on the replacement once the replies are in');
});

t.test('assumeDb() moves later requests like select()', async (t) => {
  const { node, channel } = setup();
  channel.assumeDb(3);
  send(channel, 'GET a');
  t.same(node.link('3/2').sent, ['GET a']);
});

t.test('acquire(): pending, then the lease arrives and carries the sends', async (t) => {
  const { node, owner, channel } = setup();
  channel.select(2);
  channel.setProtocol(3);
  t.equal(channel.acquire(), false, 'not held yet');
  t.equal(channel.acquiringLease, true);
  t.equal(channel.acquire(), false, 'still pending');
  t.equal(node.acquires.length, 1, 'one acquire for both calls');
  t.same([node.acquires[0]!.db, node.acquires[0]!.protocol], [2, 3], 'for the session’s db and protocol');
  t.equal(channel.lease, null);
  t.equal(channel.writable, false, 'no lease: not writable');
  t.equal(owner.wakes, 0);

  const lease = new FakeLease('lease');
  node.acquires[0]!.resolve(lease);
  await tick();
  t.equal(owner.wakes, 1, 'owner woken on arrival');
  t.equal(channel.lease, lease as unknown as Lease);
  t.equal(channel.acquiringLease, false);
  t.same(lease.sinks, [owner], 'the lease streams to the owner');
  t.equal(channel.acquire(), true, 'held now');
  t.equal(node.acquires.length, 1, 'no second acquire');
  t.equal(channel.writable, true);

  owner.holdsLease = true;
  const slot = send(channel, 'BLPOP q 0', SLOT_WRITE);
  t.not(slot, null);
  t.same(lease.sent, ['BLPOP q 0'], 'sent on the lease');
  t.equal(node.links.size, 0, 'no shared link used');
  t.equal(slot!.flags, SLOT_WRITE | SLOT_MASTER | SLOT_DEDICATED);
  t.equal(channel.writable, true, 'writable while replies are owed on the lease itself');
  t.not(send(channel, 'GET a'), null, 'a second send on the lease goes through');
  t.equal(channel.inFlight, 2);
  lease.settle();
  lease.settle();
  t.equal(channel.inFlight, 0);
  t.equal(lease.releases, 0, 'kept while the owner holds state on it');
  t.equal(channel.lease, lease as unknown as Lease);
});

t.test('a lease arriving while replies are owed on the shared link: the barrier holds', async (t) => {
  const { node, owner, channel } = setup();
  owner.holdsLease = true;
  send(channel, 'SET a 1');
  t.equal(channel.acquire(), false);
  const lease = new FakeLease('lease');
  node.acquires[0]!.resolve(lease);
  await tick();
  t.equal(owner.wakes, 1, 'woken on arrival');
  t.equal(channel.writable, false, 'not writable: a reply is owed on the shared link');
  t.equal(send(channel, 'MULTI'), null, 'held');
  t.same(lease.sent, [], 'nothing on the lease');
  t.same(node.link('0/2').sent, ['SET a 1'], 'nothing more on the shared link');
  node.link('0/2').settle();
  t.equal(owner.wakes, 2, 'woken when the shared link’s replies are in');
  t.equal(channel.writable, true);
  const slot = send(channel, 'MULTI');
  t.not(slot, null);
  t.same(lease.sent, ['MULTI']);
  t.ok(slot!.flags & SLOT_DEDICATED);
});

t.test('lease failure', async (t) => {
  t.test('acquire(): the error is left for the session, once', async (t) => {
    const { node, owner, channel } = setup();
    t.equal(channel.acquire(), false);
    node.acquires[0]!.reject(new Error('ResourceRequest timed out'));
    await tick();
    t.equal(owner.wakes, 1, 'owner woken on failure');
    t.equal(channel.acquiringLease, false);
    t.equal(channel.lease, null);
    t.equal(channel.takeLeaseError(), 'ResourceRequest timed out');
    t.equal(channel.takeLeaseError(), '', 'cleared by reading');
    t.equal(channel.acquire(), false, 'a later acquire tries again');
    t.equal(node.acquires.length, 2);
  });
  t.test('acquire(true) (for another session): no error left', async (t) => {
    const { node, owner, channel } = setup();
    t.equal(channel.acquire(true), false);
    node.acquires[0]!.reject(new Error('ResourceRequest timed out'));
    await tick();
    t.equal(owner.wakes, 1, 'owner still woken (its redirect waiters are)');
    t.equal(channel.acquiringLease, false);
    t.equal(channel.takeLeaseError(), '');
  });
  t.test('no error before any failure', async (t) => {
    const { channel } = setup();
    t.equal(channel.takeLeaseError(), '');
  });
});

t.test('releaseIfIdle', async (t) => {
  t.test('held state keeps the lease', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, true);
    channel.releaseIfIdle();
    t.equal(lease.releases, 0);
    t.equal(channel.lease, lease as unknown as Lease);
  });
  t.test('replies owed keep the lease', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, false);
    send(channel, 'BLPOP q 0');
    channel.releaseIfIdle();
    t.equal(lease.releases, 0, 'a reply is owed');
    t.equal(channel.lease, lease as unknown as Lease);
    lease.settle('*-1\r\n');
    t.equal(lease.releases, 1, 'released by replied() when the last reply is in');
    t.equal(channel.lease, null);
    t.equal(owner.wakes, 2, 'arrival and the reply');
    t.not(send(channel, 'GET a'), null);
    t.same(node.link('0/2').sent, ['GET a'], 'later sends use the shared link');
    t.same(lease.sent, ['BLPOP q 0']);
  });
  t.test('nothing owed, no state: released', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, false);
    channel.releaseIfIdle();
    t.equal(lease.releases, 0, 'kept for the request that asked for it');
    send(channel, 'PING');
    lease.settle('+PONG\r\n');
    t.equal(lease.releases, 1, 'released once that request is answered');
    t.equal(channel.lease, null);
    channel.releaseIfIdle();
    t.equal(lease.releases, 1, 'not released twice');
  });
  t.test('state dropped later: released on the next call', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, true);
    send(channel, 'EXEC');
    lease.settle('*0\r\n');
    t.equal(lease.releases, 0);
    owner.holdsLease = false;
    channel.releaseIfIdle();
    t.equal(lease.releases, 1);
  });
});

t.test('retireLease', async (t) => {
  t.test('with replies owed on the lease: released when the last one is in', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, true);
    send(channel, 'SUBSCRIBE ch');
    send(channel, 'PING');
    channel.retireLease();
    t.equal(channel.lease, null, 'the session has let go');
    t.equal(lease.releases, 0, 'not released while replies are owed on it');
    t.equal(lease.sinks.length, 2);
    t.not(lease.sinks[1], owner, 'its output no longer goes to the owner');
    t.not(lease.sinks[1], null);
    t.equal(channel.writable, false);
    t.equal(channel.acquire(), false, 'a new lease would have to be acquired');
    lease.settle();
    t.equal(lease.releases, 0, 'one reply still owed');
    lease.settle('+PONG\r\n');
    t.equal(lease.releases, 1, 'released when the last reply is in');
    t.equal(owner.wakes, 2, 'arrival, then the barrier clearing');
    t.not(send(channel, 'GET a'), null);
    t.same(node.link('0/2').sent, ['GET a'], 'later sends on the shared link');
    t.same(lease.sent, ['SUBSCRIBE ch', 'PING'], 'nothing more on the retired lease');
    channel.close();
    t.equal(lease.releases, 1, 'close does not release it again');
  });
  // Known defect (reported, src/ unchanged): send() reuses `this.link` when replies are
  // owed and the (db, protocol) key matches, and after retireLease() that link is the
  // retired lease. Session case: MULTI, SET a 1, RESET, SET b 2 pipelined in one write:
  // SET b 2 goes on the retired lease, still in MULTI on the server, and is QUEUED, then
  // lost when the lease is destroyed.
  t.test('with replies owed on the lease: a send to the shared link is held', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, true);
    send(channel, 'MULTI');
    send(channel, 'SET a 1');
    channel.retireLease(); // RESET
    const slot = send(channel, 'SET b 2');
    t.equal(slot, null, 'held by the barrier');
    t.same(lease.sent, ['MULTI', 'SET a 1'], 'nothing more on the retired lease');
    t.same(node.links.get('0/2')?.sent ?? [], [], 'nor on the shared link yet');
    t.equal(channel.inFlight, 2, 'only the two replies owed on the lease');
  });
  t.test('retired lease failing its owed replies', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, true);
    send(channel, 'MONITOR');
    channel.retireLease();
    lease.fail();
    t.equal(lease.releases, 1);
    t.equal(owner.errors.length, 1);
    t.not(send(channel, 'GET a'), null);
  });
  t.test('with nothing owed: released at once', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, true);
    send(channel, 'MULTI');
    lease.settle();
    channel.retireLease();
    t.equal(lease.releases, 1);
    t.equal(channel.lease, null);
    t.not(send(channel, 'GET a'), null);
    t.same(node.link('0/2').sent, ['GET a']);
  });
  t.test('with replies owed on the shared link only: released at once, the shared link goes on', async (t) => {
    const { node, owner, channel } = setup();
    send(channel, 'SET a 1');
    owner.holdsLease = true;
    channel.acquire();
    const lease = new FakeLease('lease');
    node.acquires[0]!.resolve(lease);
    await tick();
    channel.retireLease();
    t.equal(lease.releases, 1);
    t.not(send(channel, 'GET a'), null, 'same shared link: no barrier');
    t.same(node.link('0/2').sent, ['SET a 1', 'GET a']);
  });
  t.test('without a lease: nothing', async (t) => {
    const { channel } = setup();
    channel.retireLease();
    t.equal(channel.lease, null);
  });
});

t.test('close()', async (t) => {
  t.test('releases the lease', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, true);
    send(channel, 'BLPOP q 0');
    channel.close();
    t.equal(lease.releases, 1, 'released although a reply is owed');
    t.equal(channel.lease, null);
  });
  t.test('releases a retiring lease too, once', async (t) => {
    const { node, owner, channel } = setup();
    const lease = await withLease(channel, node, owner, true);
    send(channel, 'SUBSCRIBE ch');
    channel.retireLease();
    channel.close();
    t.equal(lease.releases, 1);
    lease.fail(); // what destroying it does to the owed reply
    t.equal(lease.releases, 1, 'not released again when its reply fails');
  });
  t.test('without a lease: nothing', async (t) => {
    const { channel } = setup();
    channel.close();
    t.equal(channel.lease, null);
  });
});

t.test('a lease arriving after the owner ended is released at once', async (t) => {
  const { node, owner, channel } = setup();
  channel.acquire();
  owner.ended = true;
  channel.close();
  const lease = new FakeLease('lease');
  node.acquires[0]!.resolve(lease);
  await tick();
  t.equal(lease.releases, 1);
  t.equal(channel.lease, null);
  t.same(lease.sinks, [], 'never streamed to the ended owner');
  t.equal(owner.wakes, 0, 'the ended owner is not woken');
  t.equal(channel.acquiringLease, false);
});

t.test('select, setProtocol and assumeDb reach the lease', async (t) => {
  const { node, owner, channel } = setup();
  const lease = await withLease(channel, node, owner, true);
  channel.select(4);
  channel.setProtocol(3);
  channel.assumeDb(6);
  t.same(lease.selects, [4]);
  t.same(lease.protocols, [3]);
  t.same(lease.assumed, [6]);
  t.equal(lease.db, 6);
  send(channel, 'GET a');
  t.same(lease.sent, ['GET a'], 'still on the lease');
  lease.settle();
  owner.holdsLease = false;
  channel.releaseIfIdle();
  send(channel, 'GET b');
  t.same(node.link('6/3').sent, ['GET b'], 'after the lease, the shared link of the db and protocol it ended on');
});

// Known defect (reported, src/ unchanged): acquire() asks the node for the db and protocol
// of the moment; a SELECT or HELLO the session runs while the lease is on its way is not
// applied to the lease when it arrives. A session that is not stalled while its lease is
// acquired (a CLIENT TRACKING REDIRECT target: Session.leaseForRedirect → acquire(true))
// then sends its commands on the lease in the old database.
t.test('a select() while the lease is on its way reaches the lease', async (t) => {
  const { node, owner, channel } = setup();
  owner.holdsLease = true;
  channel.acquire(true);
  channel.select(5);
  channel.setProtocol(3);
  const lease = new FakeLease('lease');
  node.acquires[0]!.resolve(lease);
  await tick();
  t.same([node.acquires[0]!.db, node.acquires[0]!.protocol], [0, 2], 'asked for with the db of the moment');
  t.equal(lease.db, 5, 'switched to db 5 on arrival');
  t.equal(lease.protocol, 3, 'switched to RESP3 on arrival');
});

// Oddity (reported): a lease that arrives while the barrier holds the request that asked for
// it is released by replied() when the shared link's replies come in, before that request
// can use it (no state is held yet: BLPOP, WAIT, or MULTI before it is sent); the request
// then leases again.
t.test('a lease arriving behind the barrier is kept for the request that asked for it', async (t) => {
  const { node, channel } = setup();
  send(channel, 'SET a 1');
  channel.acquire();
  const lease = new FakeLease('lease');
  node.acquires[0]!.resolve(lease);
  await tick();
  t.equal(send(channel, 'BLPOP q 0'), null, 'held by the barrier');
  node.link('0/2').settle();
  t.equal(lease.releases, 0, 'not released before its first use');
  t.not(send(channel, 'BLPOP q 0'), null);
  t.same(lease.sent, ['BLPOP q 0'], 'sent on the lease');
});

t.test('the master moves while replies are owed on the old one: the barrier holds, then sends go to the new master', async (t) => {
  const { node: old, owner, channel, listener } = setup();
  const first = send(channel, 'SET a 1', SLOT_WRITE)!;
  t.equal(first.node, old as unknown as Node);
  const moved = new FakeNode();
  listener.node = moved;
  t.equal(send(channel, 'SET a 2', SLOT_WRITE), null, 'not sent to the old master, not ahead of the owed reply');
  t.same(moved.linkCalls, []);
  old.link('0/2').settle();
  t.ok(owner.wakes > 0, 'woken when the old master answered');
  const second = send(channel, 'SET a 2', SLOT_WRITE)!;
  t.equal(second.node, moved as unknown as Node);
  t.same(moved.link('0/2').sent, ['SET a 2']);
  t.same(old.link('0/2').sent, ['SET a 1'], 'nothing more went to the old master');
});

t.test('a lease arriving from a master that has since moved is released; the lease comes from the new one', async (t) => {
  const { node: old, owner, channel, listener } = setup();
  t.equal(channel.acquire(), false);
  const moved = new FakeNode();
  listener.node = moved;
  const stale = new FakeLease('stale');
  old.acquires[0]!.resolve(stale);
  await Promise.resolve();
  await Promise.resolve();
  t.equal(stale.releases, 1, 'the old master\'s lease went back');
  t.equal(channel.lease, null);
  t.equal(moved.acquires.length, 1, 'asked the new master');
  const lease = new FakeLease('lease');
  moved.acquires[0]!.resolve(lease);
  await Promise.resolve();
  await Promise.resolve();
  t.equal(channel.lease, lease as unknown as Lease);
  t.equal(channel.leasedFrom, moved as unknown as Node);
  t.ok(owner.wakes > 0);
});

t.test('identity: a switch of user waits at the barrier, then uses that user’s shared link', async (t) => {
  const { node, owner, channel } = setup();
  const reader = new BackendIdentity('reader', 'rpw');
  t.not(send(channel, 'SET a 1', SLOT_WRITE), null);
  channel.setIdentity(reader);
  const before = owner.wakes;
  t.equal(send(channel, 'GET a'), null, 'held: a reply is owed on the backend identity’s link');
  t.equal(node.link('0/2').sent.length, 1, 'nothing more sent there');
  node.link('0/2').settle();
  t.ok(owner.wakes > before, 'woken when the barrier clears');
  t.not(send(channel, 'GET a'), null, 'sent after the reply came');
  t.same(node.link('0/2/reader').sent, ['GET a'], 'on the user’s own shared link');
  t.not(send(channel, 'GET b'), null, 'the same link again while owed: no wait');
  channel.setIdentity(null);
  t.equal(send(channel, 'GET c'), null, 'back to the backend identity: held again');
  node.link('0/2/reader').settle();
  node.link('0/2/reader').settle();
  t.not(send(channel, 'GET c'), null);
  t.same(node.link('0/2').sent, ['SET a 1', 'GET c']);
});

t.test('identity: leases are acquired as the session’s user and switched when it changes', async (t) => {
  const { node, owner, channel } = setup();
  const reader = new BackendIdentity('reader', 'rpw');
  channel.setIdentity(reader);
  owner.holdsLease = true;
  t.equal(channel.acquire(), false);
  t.equal(node.acquires[0]!.identity, reader, 'the pool is asked for the user');
  const writer = new BackendIdentity('writer', 'wpw');
  channel.setIdentity(writer);
  const lease = new FakeLease('lease');
  lease.identity = reader;
  node.acquires[0]!.resolve(lease);
  await tick();
  t.same(lease.identities, [writer], 'the user changed while it was on its way: switched on arrival');
  channel.setIdentity(null);
  t.same(lease.identities, [writer, null], 'a switch while the lease is held reaches it');
  channel.assumeIdentity(reader);
  t.equal(lease.identity, reader, 'an AUTH the client ran on the lease is recorded');
  t.same(lease.identities, [writer, null], 'without asking for another switch');
});

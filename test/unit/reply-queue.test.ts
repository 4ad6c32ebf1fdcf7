/**
 * ReplyQueue (src/session/reply-queue.ts): a session's replies written in request order.
 * Uses a fake BatchedOutput that records every push/pushRange in order and reports
 * unsentBytes as the bytes written so far (or a value the test sets).
 *
 * Checks: replies filled out of order are written in request order; SLOT_SILENT slots are
 * filled but never written; inflight counts the slots not yet written; fill() returns true
 * exactly when unsentBytes exceeds the limit (never with limit 0); the stream slot writes
 * at once at the head, is held behind earlier slots and written in its turn, and
 * closeStream() writes what was held back in the slot's place.
 */
import t from 'tap';
import type { BackendFailure } from '../../src/backend/link.js';
import type { BatchedOutput } from '../../src/io/batched-output.js';
import { ReplyQueue } from '../../src/session/reply-queue.js';
import { SLOT_MASTER, SLOT_SILENT, type ReplySlot, type SlotOwner } from '../../src/session/reply-slot.js';

/** Records writes in order; unsentBytes is the total written unless `unsent` is set. */
class FakeOutput {
  readonly writes: string[] = [];
  /** How each write came: 'push' or 'range'. */
  readonly kinds: string[] = [];
  total = 0;
  unsent: number | null = null;
  get unsentBytes(): number {
    return this.unsent ?? this.total;
  }
  push(buf: Buffer): void {
    this.writes.push(buf.toString('latin1'));
    this.kinds.push('push');
    this.total += buf.length;
  }
  pushRange(buf: Buffer, start: number, end: number): void {
    this.writes.push(buf.toString('latin1', start, end));
    this.kinds.push('range');
    this.total += end - start;
  }
  get text(): string {
    return this.writes.join('');
  }
}

const OWNER: SlotOwner = {
  onSlotReply(_slot: ReplySlot, _buf: Buffer, _start: number, _end: number) {},
  onSlotError(_slot: ReplySlot, _failure: BackendFailure) {},
};

function setup(limit = 0): { out: FakeOutput; q: ReplyQueue } {
  const out = new FakeOutput();
  const q = new ReplyQueue(OWNER, out as unknown as BatchedOutput, limit);
  return { out, q };
}

/** Fills `slot` with `text`, framed inside a larger buffer (as replies arrive in a chunk). */
function fill(q: ReplyQueue, slot: ReplySlot, text: string): boolean {
  const buf = Buffer.from(`~~${text}~~`, 'latin1');
  return q.fill(slot, buf, 2, buf.length - 2);
}

t.test('a new queue', async (t) => {
  const { q } = setup();
  t.equal(q.empty, true);
  t.equal(q.inflight, 0);
  t.equal(q.streaming, false);
  const slot = q.push(SLOT_MASTER);
  t.equal(slot.flags, SLOT_MASTER, 'the slot carries the flags');
  t.equal(slot.owner, OWNER, 'and the owner');
  t.equal(q.empty, false);
  t.equal(q.inflight, 1);
});

t.test('replies filled out of order are written in request order', async (t) => {
  const { out, q } = setup();
  const a = q.push(0);
  const b = q.push(0);
  const c = q.push(0);
  const d = q.push(0);
  t.equal(q.inflight, 4);

  fill(q, c, ':3\r\n');
  fill(q, b, ':2\r\n');
  t.same(out.writes, [], 'nothing written while the head waits');
  t.equal(q.inflight, 4, 'filled but unwritten slots still count');
  t.equal(b.done, true);
  t.equal(b.reply?.toString(), ':2\r\n', 'the held reply is the range, not the whole buffer');

  fill(q, a, ':1\r\n');
  t.same(out.writes, [':1\r\n', ':2\r\n', ':3\r\n'], 'the head and the filled slots after it');
  t.equal(q.inflight, 1);
  t.equal(b.reply, null, 'written slots let go of their reply');
  t.equal(c.reply, null);
  t.equal(q.empty, false);

  fill(q, d, ':4\r\n');
  t.same(out.writes, [':1\r\n', ':2\r\n', ':3\r\n', ':4\r\n']);
  t.equal(q.inflight, 0);
  t.equal(q.empty, true);

  const e = q.push(0);
  t.equal(q.inflight, 1, 'the queue is reusable after emptying');
  fill(q, e, ':5\r\n');
  t.equal(out.writes.at(-1), ':5\r\n');
  t.equal(q.empty, true);
});

t.test('a reply filled in reverse order over many slots', async (t) => {
  const { out, q } = setup();
  const slots = Array.from({ length: 10 }, () => q.push(0));
  for (let i = slots.length - 1; i >= 0; i--) fill(q, slots[i]!, `:${i}\r\n`);
  t.equal(out.text, slots.map((_, i) => `:${i}\r\n`).join(''));
  t.equal(q.inflight, 0);
  t.equal(q.empty, true);
});

t.test('a gap in the middle holds the later slots', async (t) => {
  const { out, q } = setup();
  const a = q.push(0);
  const b = q.push(0);
  const c = q.push(0);
  fill(q, a, '+a\r\n');
  fill(q, c, '+c\r\n');
  t.same(out.writes, ['+a\r\n']);
  t.equal(q.inflight, 2);
  fill(q, b, '+b\r\n');
  t.same(out.writes, ['+a\r\n', '+b\r\n', '+c\r\n']);
  t.equal(q.inflight, 0);
});

t.test('SLOT_SILENT slots are filled but not written', async (t) => {
  t.test('at the head', async (t) => {
    const { out, q } = setup();
    const a = q.push(SLOT_SILENT);
    const b = q.push(0);
    fill(q, a, '+OK\r\n');
    t.same(out.writes, [], 'the silent head is not written');
    t.equal(q.inflight, 1, 'but it is done');
    fill(q, b, '+b\r\n');
    t.same(out.writes, ['+b\r\n']);
    t.equal(q.empty, true);
  });
  t.test('behind the head', async (t) => {
    const { out, q } = setup();
    const a = q.push(0);
    const b = q.push(SLOT_SILENT);
    const c = q.push(0);
    fill(q, c, '+c\r\n');
    fill(q, b, '+silent\r\n');
    fill(q, a, '+a\r\n');
    t.same(out.writes, ['+a\r\n', '+c\r\n']);
    t.equal(q.inflight, 0);
    t.equal(q.empty, true);
  });
  t.test('every slot silent', async (t) => {
    const { out, q } = setup();
    const a = q.push(SLOT_SILENT);
    const b = q.push(SLOT_SILENT);
    fill(q, b, '+b\r\n');
    fill(q, a, '+a\r\n');
    t.same(out.writes, []);
    t.equal(q.empty, true);
  });
});

t.test('an empty reply writes nothing', async (t) => {
  const { out, q } = setup();
  const a = q.push(0);
  const b = q.push(0);
  q.fill(b, Buffer.alloc(0), 0, 0);
  q.fill(a, Buffer.alloc(0), 0, 0);
  t.same(out.writes, []);
  t.equal(q.empty, true);
});

t.test('fill reports the output limit', async (t) => {
  t.test('true exactly when unsentBytes exceeds the limit', async (t) => {
    const { out, q } = setup(10);
    const a = q.push(0);
    t.equal(fill(q, a, '$4\r\nabcd\r\n'), false, '10 bytes: at the limit, not over');
    t.equal(out.unsentBytes, 10);
    const b = q.push(0);
    t.equal(fill(q, b, ':1\r\n'), true, '14 bytes: over');
    out.unsent = 10;
    const c = q.push(0);
    t.equal(fill(q, c, ':2\r\n'), false, 'the output drained to 10: not over');
    out.unsent = 11;
    const d = q.push(0);
    t.equal(fill(q, d, ''), true, 'a write of nothing still reports 11 > 10');
  });
  t.test('a slot filled behind the head reports false', async (t) => {
    const { out, q } = setup(1);
    out.unsent = 1000;
    q.push(0);
    const b = q.push(0);
    t.equal(fill(q, b, ':1\r\n'), false, 'nothing written');
  });
  t.test('a silent slot over the limit still reports true', async (t) => {
    const { out, q } = setup(5);
    out.unsent = 6;
    const a = q.push(SLOT_SILENT);
    t.equal(fill(q, a, '+OK\r\n'), true);
    t.same(out.writes, []);
  });
  t.test('limit 0: never', async (t) => {
    const { out, q } = setup(0);
    out.unsent = Number.MAX_SAFE_INTEGER;
    const a = q.push(0);
    t.equal(fill(q, a, ':1\r\n'), false);
    q.openStream();
    t.equal(q.stream(Buffer.from('>1\r\n+x\r\n')), false);
    t.equal(q.closeStream(), false);
  });
});

t.test('the stream slot', async (t) => {
  t.test('at the head: written at once', async (t) => {
    const { out, q } = setup();
    q.openStream();
    t.equal(q.streaming, true);
    t.equal(q.inflight, 1, 'the stream slot counts');
    const msg = Buffer.from('xx*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\nyy');
    t.equal(q.stream(msg, 2, msg.length - 2), false);
    t.same(out.writes, ['*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n'], 'the range given');
    t.equal(q.stream(Buffer.from(':1\r\n')), false, 'defaults: the whole buffer');
    t.same(out.writes.slice(1), [':1\r\n']);
    t.equal(q.closeStream(), false);
    t.equal(q.streaming, false);
    t.equal(q.empty, true, 'closing the head stream slot empties the queue');
    t.equal(q.inflight, 0);
    t.equal(out.writes.length, 2, 'nothing more written at close');
  });

  t.test('behind earlier slots: held, then written in its turn', async (t) => {
    const { out, q } = setup();
    const a = q.push(0);
    const b = q.push(0);
    q.openStream();
    t.equal(q.inflight, 3);
    t.equal(q.stream(Buffer.from('+s1\r\n')), false);
    t.equal(q.stream(Buffer.from('+s2\r\n')), false);
    t.same(out.writes, [], 'held behind a and b');
    fill(q, b, '+b\r\n');
    t.same(out.writes, [], 'still held: a is the head');
    fill(q, a, '+a\r\n');
    t.same(out.writes, ['+a\r\n', '+b\r\n', '+s1\r\n', '+s2\r\n'], 'a, b, then the backlog');
    t.equal(q.inflight, 1, 'the stream slot is still open');
    t.equal(q.streaming, true);
    q.stream(Buffer.from('+s3\r\n'));
    t.equal(out.writes.at(-1), '+s3\r\n', 'at the head now: written at once');
    q.closeStream();
    t.equal(q.empty, true);
    t.same(out.writes, ['+a\r\n', '+b\r\n', '+s1\r\n', '+s2\r\n', '+s3\r\n'], 'the backlog is written once');
  });

  t.test('slots after the stream slot wait for it to close', async (t) => {
    const { out, q } = setup();
    q.openStream();
    const after = q.push(0);
    fill(q, after, '+after\r\n');
    t.same(out.writes, [], 'the open stream slot is the head');
    q.stream(Buffer.from('+s\r\n'));
    t.same(out.writes, ['+s\r\n']);
    q.closeStream();
    t.same(out.writes, ['+s\r\n', '+after\r\n'], 'written when the stream closes');
    t.equal(q.empty, true);
    t.equal(q.inflight, 0);
  });

  t.test('closeStream behind earlier slots: the backlog is written in the slot’s place', async (t) => {
    const { out, q } = setup();
    const a = q.push(0);
    q.openStream();
    const c = q.push(0);
    q.stream(Buffer.from('+s1\r\n'));
    q.stream(Buffer.from('+s2\r\n'));
    t.equal(q.closeStream(), false, 'nothing written yet');
    t.equal(q.streaming, false);
    t.same(out.writes, []);
    fill(q, c, '+c\r\n');
    t.same(out.writes, []);
    fill(q, a, '+a\r\n');
    t.equal(out.text, '+a\r\n+s1\r\n+s2\r\n+c\r\n', 'a, the backlog, c');
    t.equal(q.empty, true);
    t.equal(q.inflight, 0);
  });

  t.test('closeStream with nothing held back writes nothing', async (t) => {
    const { out, q } = setup();
    const a = q.push(0);
    q.openStream();
    q.closeStream();
    fill(q, a, '+a\r\n');
    t.same(out.writes, ['+a\r\n']);
    t.equal(q.empty, true);
  });

  t.test('a second stream after the first closed', async (t) => {
    const { out, q } = setup();
    const a = q.push(0);
    q.openStream();
    q.stream(Buffer.from('+first\r\n'));
    q.closeStream();
    q.openStream();
    q.stream(Buffer.from('+second\r\n'));
    t.same(out.writes, []);
    fill(q, a, '+a\r\n');
    t.equal(out.text, '+a\r\n+first\r\n+second\r\n');
    t.equal(q.streaming, true, 'the second stream is open');
    q.stream(Buffer.from('+live\r\n'));
    t.equal(out.writes.at(-1), '+live\r\n');
  });

  t.test('the backlog keeps the bytes, not the buffer the range came from', async (t) => {
    const { out, q } = setup();
    const a = q.push(0);
    q.openStream();
    const chunk = Buffer.from('..+held\r\n..', 'latin1');
    q.stream(chunk, 2, chunk.length - 2);
    fill(q, a, '+a\r\n');
    t.equal(out.text, '+a\r\n+held\r\n');
  });

  t.test('stream() counts held output against the limit too', async (t) => {
    const { out, q } = setup(10);
    const a = q.push(0);
    q.openStream();
    t.equal(q.stream(Buffer.from('+held\r\n')), false, 'held: 7 bytes, under the limit');
    t.equal(q.stream(Buffer.from('+more\r\n')), true, 'held: 14 bytes, over the limit (a subscriber behind a reply that never comes)');
    fill(q, a, '+a\r\n');
    t.equal(out.text, '+a\r\n+held\r\n+more\r\n', 'the backlog is written in its turn');
  });

  t.test('stream() reports the output limit at the head', async (t) => {
    const { out, q } = setup(4);
    const a = q.push(0);
    q.openStream();
    fill(q, a, '+a\r\n');
    out.unsent = 100;
    t.equal(q.stream(Buffer.from('+x\r\n')), true, 'at the head, over the limit');
    out.unsent = 4;
    t.equal(q.stream(Buffer.from('+y\r\n')), false);
    out.unsent = 5;
    t.equal(q.closeStream(), true, 'closing reports it too');
  });

  t.test('closeStream without a stream does nothing', async (t) => {
    const { out, q } = setup();
    t.equal(q.closeStream(), false);
    t.same(out.writes, []);
    t.equal(q.empty, true);
  });
});

t.test('clear forgets every slot', async (t) => {
  const { out, q } = setup();
  const a = q.push(0);
  q.push(0);
  q.openStream();
  q.stream(Buffer.from('+s\r\n'));
  q.clear();
  t.equal(q.empty, true);
  t.equal(q.streaming, false);
  const b = q.push(0);
  fill(q, b, '+b\r\n');
  t.same(out.writes, ['+b\r\n'], 'a new slot is the head; nothing of the old backlog');
  t.not(a, b);
});

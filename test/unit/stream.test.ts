/**
 * Stream markers (src/session/stream.ts): the sequence points a session places in a
 * Pub/Sub or MONITOR stream. Checks that mark() returns `PING <text>` as a RESP request
 * with a text unique per marker and naming the session; that answered() takes the oldest
 * marker only on its exact answer, in both forms Redis gives (`$<n>\r\n<text>\r\n`, and
 * RESP2 subscribed `*2\r\n$4\r\npong\r\n$<n>\r\n<text>\r\n`), never on a message that merely
 * contains the text, nor on a later marker's answer before the oldest's; pending(action);
 * isOwnMarkerLine (MONITOR lines showing this session's markers only); reset().
 */
import t from 'tap';
import { MARK_DROP_NEXT, MARK_DROP_OFF, MARK_DROP_ON, MARK_END, MARK_HALT, MARK_REPLY, Stream } from '../../src/session/stream.js';

/** The text of the marker PING `request` (`*2\r\n$4\r\nPING\r\n$<n>\r\n<text>\r\n`). */
function markerText(request: Buffer): string {
  const m = /^\*2\r\n\$4\r\nPING\r\n\$(\d+)\r\n(.*)\r\n$/s.exec(request.toString('latin1'));
  if (m === null) throw new Error(`not a PING request: ${JSON.stringify(request.toString('latin1'))}`);
  if (Number(m[1]) !== Buffer.byteLength(m[2]!)) throw new Error('bulk length does not match');
  return m[2]!;
}

const bulk = (text: string): string => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
const subscribedPong = (text: string): string => `*2\r\n$4\r\npong\r\n${bulk(text)}`;

/** answered() on `reply`, placed at an offset in a larger buffer. */
function answer(stream: Stream, reply: string): ReturnType<Stream['answered']> {
  const buf = Buffer.from(`+junk\r\n${reply}:1\r\n`, 'latin1');
  return stream.answered(buf, 7, 7 + Buffer.byteLength(reply, 'latin1'));
}

t.test('the MARK_* actions are distinct', async (t) => {
  const actions = [MARK_REPLY, MARK_DROP_ON, MARK_DROP_OFF, MARK_DROP_NEXT, MARK_END, MARK_HALT];
  t.equal(new Set(actions).size, actions.length);
});

t.test('mark() returns PING <text> as a RESP request', async (t) => {
  const stream = new Stream(7);
  const request = stream.mark(MARK_END);
  const text = markerText(request);
  t.match(text, /^__redis-proxy__:mark:7:\d+$/, 'the text names the session');
  t.equal(request.toString('latin1'), `*2\r\n$4\r\nPING\r\n${bulk(text)}`);
  const other = markerText(stream.mark(MARK_END));
  t.not(other, text, 'each marker has its own text');
  const elsewhere = markerText(new Stream(8).mark(MARK_END));
  t.match(elsewhere, /^__redis-proxy__:mark:8:\d+$/);
  t.not(elsewhere, text);
});

t.test('answered() in both forms', async (t) => {
  t.test('the bulk string form (RESP3, MONITOR)', async (t) => {
    const stream = new Stream(1);
    const reply = Buffer.from(':5\r\n');
    const text = markerText(stream.mark(MARK_REPLY, reply));
    const marker = answer(stream, bulk(text));
    t.not(marker, null);
    t.equal(marker!.action, MARK_REPLY);
    t.equal(marker!.reply, reply, 'the reply to write comes with it');
    t.equal(marker!.text, text);
    t.equal(answer(stream, bulk(text)), null, 'taken off the queue: a second answer is not a marker');
  });
  t.test('the RESP2 subscribed form', async (t) => {
    const stream = new Stream(1);
    const text = markerText(stream.mark(MARK_DROP_ON));
    const marker = answer(stream, subscribedPong(text));
    t.not(marker, null);
    t.equal(marker!.action, MARK_DROP_ON);
    t.equal(marker!.reply, null, 'no reply unless given');
    t.equal(stream.pending(MARK_DROP_ON), false);
  });
  t.test('nothing waiting: null', async (t) => {
    const stream = new Stream(1);
    t.equal(answer(stream, bulk('__redis-proxy__:mark:1:1')), null);
    t.equal(answer(stream, '+PONG\r\n'), null);
  });
});

t.test('answered() does not take what is not exactly the answer', async (t) => {
  const stream = new Stream(3);
  const text = markerText(stream.mark(MARK_HALT));
  const len = Buffer.byteLength(text);
  const lookalikes: Array<[string, string]> = [
    ['a Pub/Sub message carrying the text', `*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n${bulk(text)}`],
    ['a RESP3 push message carrying the text', `>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n${bulk(text)}`],
    ['a pattern message carrying the text', `*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$2\r\nch\r\n${bulk(text)}`],
    ['a bulk string containing the text', bulk(`${text}x`)],
    ['a bulk string with the text as a suffix', bulk(`x${text}`)],
    ['a simple string of the text', `+${text}\r\n`],
    ['a MONITOR line showing the marker', `+1700000000.000000 [0 127.0.0.1:5000] "PING" "${text}"\r\n`],
    ['a PONG of another text', bulk(`${text.slice(0, -1)}9`)],
    ['an uppercase subscribed PONG', `*2\r\n$4\r\nPONG\r\n${bulk(text)}`],
    ['a plain PONG', '+PONG\r\n'],
    ['a wrong length', `$${len + 1}\r\n${text}\r\n`],
    ['an error', `-ERR ${text}\r\n`],
  ];
  for (const [name, reply] of lookalikes) t.equal(answer(stream, reply), null, name);
  t.equal(stream.pending(MARK_HALT), true, 'the marker is still waiting');
  t.not(answer(stream, bulk(text)), null, 'and its exact answer still takes it');
});

t.test('only the oldest marker is answered', async (t) => {
  const stream = new Stream(4);
  const first = markerText(stream.mark(MARK_DROP_ON));
  const second = markerText(stream.mark(MARK_DROP_OFF));
  t.equal(answer(stream, bulk(second)), null, 'the second before the first: not a marker answer');
  t.equal(stream.pending(MARK_DROP_OFF), true, 'the second is still waiting');
  const a = answer(stream, bulk(first));
  t.equal(a?.action, MARK_DROP_ON);
  t.equal(answer(stream, bulk(first)), null, 'the first is gone');
  const b = answer(stream, subscribedPong(second));
  t.equal(b?.action, MARK_DROP_OFF);
  t.equal(stream.pending(MARK_DROP_OFF), false);
});

t.test('another session’s marker is not this one’s', async (t) => {
  const mine = new Stream(5);
  const theirs = new Stream(6);
  markerText(mine.mark(MARK_END));
  const other = markerText(theirs.mark(MARK_END));
  t.equal(answer(mine, bulk(other)), null);
  t.equal(mine.pending(MARK_END), true);
});

t.test('pending(action)', async (t) => {
  const stream = new Stream(9);
  t.equal(stream.pending(MARK_END), false, 'nothing waiting');
  const end = markerText(stream.mark(MARK_END));
  const halt = markerText(stream.mark(MARK_HALT));
  const halt2 = markerText(stream.mark(MARK_HALT));
  t.equal(stream.pending(MARK_END), true);
  t.equal(stream.pending(MARK_HALT), true, 'a marker behind the head counts');
  t.equal(stream.pending(MARK_REPLY), false);
  t.equal(stream.pending(MARK_DROP_NEXT), false);
  answer(stream, bulk(end));
  t.equal(stream.pending(MARK_END), false, 'answered: no longer pending');
  answer(stream, bulk(halt));
  t.equal(stream.pending(MARK_HALT), true, 'one MARK_HALT left');
  answer(stream, bulk(halt2));
  t.equal(stream.pending(MARK_HALT), false);
});

t.test('isOwnMarkerLine', async (t) => {
  const stream = new Stream(1);
  const text = markerText(stream.mark(MARK_REPLY, Buffer.from('+OK\r\n')));
  const line = (s: string): [Buffer, number, number] => {
    const buf = Buffer.from(`..${s}..`, 'latin1');
    return [buf, 2, buf.length - 2];
  };
  t.equal(stream.isOwnMarkerLine(...line(`+1700000000.123456 [0 127.0.0.1:5000] "PING" "${text}"\r\n`)), true);
  t.equal(
    stream.isOwnMarkerLine(...line('+1700000000.123456 [0 127.0.0.1:5000] "PING" "__redis-proxy__:mark:1:999"\r\n')),
    true,
    'any marker of this session, answered or not',
  );
  t.equal(
    stream.isOwnMarkerLine(...line('+1700000000.123456 [0 127.0.0.1:5000] "PING" "__redis-proxy__:mark:11:3"\r\n')),
    false,
    'session 11’s marker is not session 1’s',
  );
  t.equal(
    stream.isOwnMarkerLine(...line('+1700000000.123456 [0 127.0.0.1:5000] "PING" "__redis-proxy__:mark:21:3"\r\n')),
    false,
    'nor session 21’s',
  );
  t.equal(stream.isOwnMarkerLine(...line('+1700000000.123456 [0 127.0.0.1:5000] "GET" "a"\r\n')), false, 'an ordinary line');
  t.equal(stream.isOwnMarkerLine(...line(bulk(text))), false, 'not a simple string: not a MONITOR line');
  t.equal(stream.isOwnMarkerLine(...line(`>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n${bulk(text)}`)), false);
  t.equal(new Stream(2).isOwnMarkerLine(...line(`+1700000000.1 [0 127.0.0.1:5000] "PING" "${text}"\r\n`)), false, 'another session’s stream');
});

t.test('reset() forgets everything', async (t) => {
  const stream = new Stream(12);
  const text = markerText(stream.mark(MARK_END));
  stream.mark(MARK_HALT);
  stream.dropReplies = true;
  stream.dropNext = 2;
  stream.execPending = true;
  stream.halted = true;
  const sub = Buffer.from('*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n');
  stream.subscriptions.observe(sub, 0, sub.length);
  t.equal(stream.subscriptions.channels, 1, 'a subscription counted');
  stream.reset();
  t.equal(stream.pending(MARK_END), false);
  t.equal(stream.pending(MARK_HALT), false);
  t.equal(answer(stream, bulk(text)), null, 'a marker from before the reset is not answered');
  t.equal(stream.dropReplies, false);
  t.equal(stream.dropNext, 0);
  t.equal(stream.execPending, false);
  t.equal(stream.halted, false);
  t.equal(stream.subscriptions.none, true);
  const next = markerText(stream.mark(MARK_END));
  t.not(next, text, 'new markers get new texts');
  t.equal(answer(stream, bulk(next))?.action, MARK_END, 'and work after the reset');
});

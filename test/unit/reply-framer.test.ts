import t from 'tap';
import { ReplyFramer } from '../../src/protocol/reply-framer.js';

/** Frames `stream` fed in the given chunk sizes; returns the replies as strings. */
function frame(stream: string, split: (i: number) => number = () => stream.length): { replies: string[]; error: string } {
  const replies: string[] = [];
  let error = '';
  const framer = new ReplyFramer({
    onReply: (buf, start, end) => replies.push(buf.toString('latin1', start, end)),
    onFramingError: (message) => (error = message),
  });
  const bytes = Buffer.from(stream, 'latin1');
  for (let pos = 0, i = 0; pos < bytes.length; i++) {
    const size = Math.max(1, split(i));
    framer.push(bytes.subarray(pos, pos + size));
    pos += size;
  }
  return { replies, error };
}

const REPLIES = [
  '+OK\r\n',
  '-ERR unknown command\r\n',
  ':42\r\n',
  '$5\r\nhello\r\n',
  '$0\r\n\r\n',
  '$-1\r\n',
  '*-1\r\n',
  '*0\r\n',
  '*3\r\n$3\r\nfoo\r\n:1\r\n*2\r\n+a\r\n$-1\r\n',
  '$10\r\nab\r\ncd\r\nef\r\n', // CRLF inside a bulk payload
  // RESP3
  '%2\r\n+k1\r\n:1\r\n+k2\r\n*1\r\n_\r\n',
  '~2\r\n#t\r\n,3.14\r\n',
  '>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n',
  '=8\r\ntxt:abcd\r\n',
  '!5\r\nERR x\r\n',
  '(12345678901234567890\r\n',
  '|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n', // attribute, then the reply it annotates
];

t.test('each kind of reply is framed whole, in order', async (t) => {
  const { replies, error } = frame(REPLIES.join(''));
  t.equal(error, '');
  t.same(replies, REPLIES);
});

t.test('any split of the stream gives the same replies', async (t) => {
  const stream = REPLIES.join('');
  for (const size of [1, 2, 3, 5, 7, 13]) {
    t.same(frame(stream, () => size).replies, REPLIES, `chunks of ${size} bytes`);
  }
  // Every single cut point.
  for (let cut = 1; cut < stream.length; cut++) {
    const { replies } = frame(stream, (i) => (i === 0 ? cut : stream.length));
    if (replies.join('') !== stream || replies.length !== REPLIES.length) {
      t.fail(`cut at ${cut}`);
      return;
    }
  }
  t.pass('every cut point');
});

t.test('a large bulk reply over many chunks is one reply', async (t) => {
  const payload = 'x'.repeat(1_000_000);
  const stream = `$${payload.length}\r\n${payload}\r\n+OK\r\n`;
  const { replies } = frame(stream, () => 65536);
  t.equal(replies.length, 2);
  t.equal(replies[0]!.length, stream.length - 5);
  t.equal(replies[1], '+OK\r\n');
});

t.test('garbage is a framing error', async (t) => {
  t.match(frame('?what\r\n').error, /unexpected byte/);
  t.match(frame('$abc\r\nxx\r\n').error, /invalid length/);
});

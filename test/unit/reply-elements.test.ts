/**
 * valueEnd and aggregateElements (src/protocol/reply-elements.ts): where a complete RESP
 * value ends, and where each element of an array, set or push starts and ends, over RESP2
 * and RESP3 values (simple types, bulk strings with CRLF inside, nil bulk and nil array,
 * nested arrays, maps, sets, pushes, attributes), at an offset inside a larger buffer, and
 * with bytes after the value (EXEC's array followed by the confirmations Redis writes
 * after it: elements beyond the header's count are not included).
 */
import t from 'tap';
import { aggregateElements, valueEnd } from '../../src/protocol/reply-elements.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** The offsets aggregateElements should give for `header` + `elements` placed after `prefix`. */
function expectedOffsets(prefix: string, header: string, elements: string[]): number[] {
  let pos = prefix.length + header.length;
  const offsets = [pos];
  for (const e of elements) {
    pos += e.length;
    offsets.push(pos);
  }
  return offsets;
}

/** Complete values, each alone: valueEnd(value, 0) is its length. */
const VALUES: Array<[string, string]> = [
  ['simple string', '+OK\r\n'],
  ['error', '-ERR unknown command\r\n'],
  ['integer', ':42\r\n'],
  ['negative integer', ':-7\r\n'],
  ['bulk string', '$5\r\nhello\r\n'],
  ['empty bulk string', '$0\r\n\r\n'],
  ['bulk string with CRLF inside', '$10\r\nab\r\ncd\r\nef\r\n'],
  ['bulk string that looks like RESP', '$12\r\n*2\r\n:1\r\n:2\r\n\r\n'],
  ['nil bulk string', '$-1\r\n'],
  ['nil array', '*-1\r\n'],
  ['empty array', '*0\r\n'],
  ['flat array', '*3\r\n$3\r\nfoo\r\n:1\r\n+bar\r\n'],
  ['nested arrays', '*2\r\n*2\r\n:1\r\n*1\r\n$2\r\nab\r\n*0\r\n'],
  ['array with nils', '*3\r\n$-1\r\n*-1\r\n$1\r\nx\r\n'],
  ['RESP3 null', '_\r\n'],
  ['RESP3 boolean', '#t\r\n'],
  ['RESP3 double', ',3.14\r\n'],
  ['RESP3 big number', '(12345678901234567890\r\n'],
  ['RESP3 verbatim string', '=8\r\ntxt:abcd\r\n'],
  ['RESP3 blob error', '!5\r\nERR x\r\n'],
  ['RESP3 blob error with CRLF inside', '!7\r\nERR\r\nxy\r\n'],
  ['RESP3 map', '%2\r\n+k1\r\n:1\r\n+k2\r\n*1\r\n_\r\n'],
  ['RESP3 empty map', '%0\r\n'],
  ['RESP3 map of maps', '%1\r\n$1\r\na\r\n%1\r\n$1\r\nb\r\n~1\r\n:1\r\n'],
  ['RESP3 set', '~2\r\n#t\r\n,3.14\r\n'],
  ['RESP3 push', '>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\na\r\nbc\r\n'],
  ['RESP3 attribute and the value it annotates', '|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n'],
  ['RESP3 attribute annotating an array', '|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n:3\r\n'],
  ['array with an attributed element', '*2\r\n|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n:5\r\n'],
  ['array of maps, sets and pushes', '*3\r\n%1\r\n+a\r\n:1\r\n~1\r\n+b\r\n>1\r\n+c\r\n'],
];

t.test('valueEnd of a complete value', async (t) => {
  for (const [name, value] of VALUES) {
    t.equal(valueEnd(b(value), 0), value.length, name);
  }
});

t.test('valueEnd at an offset, with bytes after the value', async (t) => {
  for (const [name, value] of VALUES) {
    const prefix = '$3\r\nabc\r\n';
    const buf = b(`${prefix}${value}*1\r\n:9\r\n+tail\r\n`);
    t.equal(valueEnd(buf, prefix.length), prefix.length + value.length, name);
  }
});

t.test('valueEnd walks a pipeline of values', async (t) => {
  const values = VALUES.map(([, v]) => v);
  const buf = b(values.join(''));
  let pos = 0;
  const ends: number[] = [];
  while (pos < buf.length) {
    pos = valueEnd(buf, pos);
    ends.push(pos);
  }
  let expected = 0;
  t.same(
    ends,
    values.map((v) => (expected += v.length)),
  );
});

t.test('valueEnd throws on what is not a complete, well-formed value', async (t) => {
  t.throws(() => valueEnd(b('+OK'), 0), /incomplete/, 'a line without its end');
  t.throws(() => valueEnd(b('*2\r\n:1\r\n'), 0), /incomplete/, 'an array missing an element');
  t.throws(() => valueEnd(b('%1\r\n+k\r\n'), 0), /incomplete/, 'a map missing a value');
  t.throws(() => valueEnd(b('|1\r\n+ttl\r\n:3\r\n'), 0), /incomplete/, 'an attribute without the value it annotates');
  t.throws(() => valueEnd(b('$x\r\nabc\r\n'), 0), /invalid length/, 'a bulk length that is not a number');
  t.throws(() => valueEnd(b('*01\r\n:1\r\n'), 0), /invalid length/, 'a count with a leading zero');
  t.throws(() => valueEnd(b('$\r\n'), 0), /invalid length/, 'an empty length');
  t.throws(() => valueEnd(b('$5\r\nab'), 0), /incomplete/, 'a bulk string cut short');
});

t.test('aggregateElements of arrays, sets and pushes', async (t) => {
  const cases: Array<[string, string, string[]]> = [
    ['flat array', '*3\r\n', ['+OK\r\n', '$5\r\nhello\r\n', ':1\r\n']],
    ['empty array', '*0\r\n', []],
    ['bulk with CRLF inside', '*2\r\n', ['$10\r\nab\r\ncd\r\nef\r\n', '$4\r\n\r\n\r\n\r\n']],
    ['nil elements', '*3\r\n', ['$-1\r\n', '*-1\r\n', '_\r\n']],
    ['nested arrays', '*2\r\n', ['*2\r\n*1\r\n:1\r\n$1\r\nx\r\n', '*0\r\n']],
    ['maps and sets inside', '*2\r\n', ['%1\r\n+k\r\n*2\r\n:1\r\n:2\r\n', '~2\r\n+a\r\n+b\r\n']],
    ['an attributed element', '*2\r\n', ['|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n', ':5\r\n']],
    ['errors inside (EXEC)', '*3\r\n', ['+OK\r\n', '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n', '!3\r\nERR\r\n']],
    ['RESP3 set', '~2\r\n', ['#t\r\n', ',3.14\r\n']],
    ['RESP3 push', '>3\r\n', ['$10\r\ninvalidate\r\n', '*1\r\n$3\r\nkey\r\n', '_\r\n']],
    ['ten elements (two-digit count)', '*10\r\n', Array.from({ length: 10 }, (_, i) => `:${i}\r\n`)],
  ];
  for (const [name, header, elements] of cases) {
    t.test(name, async (t) => {
      const value = header + elements.join('');
      t.same(aggregateElements(b(value), 0), expectedOffsets('', header, elements), 'at offset 0');
      const prefix = '+before\r\n';
      const offsets = aggregateElements(b(prefix + value + ':99\r\n'), prefix.length);
      t.same(offsets, expectedOffsets(prefix, header, elements), 'at an offset, with bytes after');
      t.equal(offsets!.length, elements.length + 1, 'N + 1 offsets');
      t.equal(offsets!.at(-1), prefix.length + value.length, 'the last offset is the end of the value');
      const buf = b(prefix + value);
      for (let i = 0; i < elements.length; i++) {
        t.equal(buf.toString('latin1', offsets![i], offsets![i + 1]), elements[i], `element ${i}`);
      }
    });
  }
});

t.test('aggregateElements of anything else is null', async (t) => {
  const others: Array<[string, string]> = [
    ['error', '-EXECABORT Transaction discarded because of previous errors.\r\n'],
    ['nil array', '*-1\r\n'],
    ['RESP3 null', '_\r\n'],
    ['simple string', '+OK\r\n'],
    ['integer', ':3\r\n'],
    ['bulk string', '$3\r\nfoo\r\n'],
    ['nil bulk string', '$-1\r\n'],
    ['map', '%1\r\n+k\r\n+v\r\n'],
    ['attribute', '|1\r\n+ttl\r\n:3\r\n*1\r\n:1\r\n'],
    ['blob error', '!3\r\nERR\r\n'],
    ['an invalid count', '*x\r\n'],
  ];
  for (const [name, value] of others) t.equal(aggregateElements(b(value), 0), null, name);
  t.equal(aggregateElements(b('+OK\r\n*1\r\n:1\r\n'), 0), null, 'the type at start decides, not what follows');
});

t.test('EXEC’s array followed by extra replies: only the header’s count', async (t) => {
  // MULTI; SUBSCRIBE a b; EXEC: the array holds the first confirmation; Redis writes the
  // second after it.
  const header = '*2\r\n';
  const elements = ['+OK\r\n', '*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n'];
  const extra = '*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n';
  const buf = b(header + elements.join('') + extra);
  const offsets = aggregateElements(buf, 0);
  t.same(offsets, expectedOffsets('', header, elements));
  t.equal(offsets!.length, 3, 'two elements, not three');
  t.equal(offsets!.at(-1), buf.length - extra.length, 'ends where the extra reply begins');
  t.equal(valueEnd(buf, 0), buf.length - extra.length, 'valueEnd agrees');
});

t.test('aggregateElements throws on a truncated element', async (t) => {
  t.throws(() => aggregateElements(b('*2\r\n:1\r\n'), 0), /incomplete/);
});

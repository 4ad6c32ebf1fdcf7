import t from 'tap';
import { RequestParser, type RequestView } from '../../src/protocol/request-parser.js';

interface Result {
  requests: string[][];
  raws: string[];
  error: string;
}

function parse(input: string, chunk = input.length, refuseFirst = false): Result {
  const result: Result = { requests: [], raws: [], error: '' };
  let refused = false;
  const parser = new RequestParser({
    onRequest(req: RequestView) {
      if (refuseFirst && !refused) {
        refused = true;
        return false;
      }
      result.requests.push(req.args().map((a) => a.toString('latin1')));
      result.raws.push(req.raw().toString('latin1'));
      return true;
    },
    onProtocolError(message) {
      result.error = message;
    },
  });
  const bytes = Buffer.from(input, 'latin1');
  for (let pos = 0; pos < bytes.length; pos += chunk) parser.feed(bytes.subarray(pos, pos + chunk));
  if (refuseFirst) parser.resume();
  return result;
}

const PIPELINE = '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n';

t.test('RESP arrays and inline commands, raw bytes kept', async (t) => {
  const r = parse(PIPELINE);
  t.equal(r.error, '');
  t.same(r.requests, [['SET', 'k', 'va\r\nl'], ['GET', 'k'], ['PING']]);
  t.equal(r.raws[0], '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n');
  t.equal(r.raws[2], '*1\r\n$4\r\nPING\r\n', 'inline commands are forwarded as RESP');
});

t.test('byte-by-byte and every chunk size give the same requests', async (t) => {
  const whole = parse(PIPELINE).requests;
  for (let size = 1; size <= PIPELINE.length; size++) {
    const r = parse(PIPELINE, size);
    if (JSON.stringify(r.requests) !== JSON.stringify(whole)) {
      t.fail(`chunk size ${size}`);
      return;
    }
  }
  t.pass('all chunk sizes');
});

t.test('a refused request is retried on resume, in order', async (t) => {
  const r = parse(PIPELINE, PIPELINE.length, true);
  t.same(r.requests, [['SET', 'k', 'va\r\nl'], ['GET', 'k'], ['PING']]);
});

t.test('inline quoting follows Redis', async (t) => {
  t.same(parse('SET "a b" \'c\\\'d\' "\\x41\\n"\r\n').requests, [['SET', 'a b', "c'd", 'A\n']]);
  t.same(parse('\r\n   \r\nPING\n').requests, [['PING']], 'blank lines are skipped; a bare LF ends a line');
  t.same(parse('*0\r\n*-1\r\nPING\r\n').requests, [['PING']], 'empty arrays are skipped');
});

t.test("protocol errors carry Redis's texts", async (t) => {
  t.equal(parse('*1\r\n:1\r\n').error, "Protocol error: expected '$', got ':'");
  t.equal(parse('*abc\r\n').error, 'Protocol error: invalid multibulk length');
  t.equal(parse('*1\r\n$-5\r\n').error, 'Protocol error: invalid bulk length');
  t.equal(parse('*1\r\n$abc\r\n').error, 'Protocol error: invalid bulk length');
  t.equal(parse('SET "a b\r\n').error, 'Protocol error: unbalanced quotes in request');
  t.equal(parse('SET "a"b\r\n').error, 'Protocol error: unbalanced quotes in request');
  t.equal(parse('x'.repeat(70_000)).error, 'Protocol error: too big inline request');
  t.equal(parse('*' + '1'.repeat(70_000)).error, 'Protocol error: too big mbulk count string');
});

t.test('requests before an error are still delivered', async (t) => {
  const r = parse('PING\r\n*1\r\n:1\r\n');
  t.same(r.requests, [['PING']]);
  t.match(r.error, /expected '\$'/);
});

t.test('a large value arriving in many chunks is one request', async (t) => {
  const value = 'v'.repeat(3_000_000);
  const input = `*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${value.length}\r\n${value}\r\n`;
  const r = parse(input, 65536);
  t.equal(r.requests.length, 1);
  t.equal(r.requests[0]![2]!.length, value.length);
});

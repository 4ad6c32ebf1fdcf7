/**
 * The near cache's parts without Redis: fills invalidated in flight are discarded, LRU
 * limits, the covered-sequence check, invalidation pushes parsed, HTTP targets decoded to
 * key bytes, HTTP credentials, and the config keys `http` / `nearCache`.
 */
import t from 'tap';
import { keyHash, NearCache } from '../../src/cache/near-cache.js';
import { invalidatedKeys, readGetReply } from '../../src/cache/tracking.js';
import { ConfigError, normalizeConfig } from '../../src/config/index.js';
import { authorized } from '../../src/http/auth.js';
import { keyFromTarget } from '../../src/http/key-path.js';

const key = (s: string) => Buffer.from(s, 'latin1');
const h = (s: string) => keyHash(key(s), 0, s.length);

t.test('a fill invalidated while in flight is not inserted; flush discards fills too', async (t) => {
  const cache = new NearCache({ maxKeys: 10, ttl: 60_000 });
  const token = cache.beginFill(h('k'));
  cache.invalidate(h('k'));
  t.equal(cache.completeFill(token, 0, h('k'), key('k'), key('old'), Date.now(), 0), null, 'discarded');
  t.equal(cache.get(0, key('k'), 0, 1, 0), undefined);
  t.equal(cache.counters.discarded, 1);

  const a = cache.beginFill(h('k'));
  const b = cache.beginFill(h('k'));
  t.ok(cache.filling(h('k')));
  t.not(cache.completeFill(a, 0, h('k'), key('k'), key('v1'), Date.now(), 0), null, 'an untouched fill is inserted');
  t.ok(cache.filling(h('k')), 'the second fill is still in flight');
  cache.flush();
  t.equal(cache.completeFill(b, 0, h('k'), key('k'), key('v2'), Date.now(), 0), null, 'a flush discards fills in flight');
  t.notOk(cache.filling(h('k')));
  t.equal(cache.size, 0);
});

t.test('entries: bulk replies, databases, covered sequence, LRU by count and bytes', async (t) => {
  const cache = new NearCache({ maxKeys: 2, maxBytes: 20, ttl: 60_000 });
  const put = (db: number, k: string, v: string, covered = 0) => cache.completeFill(cache.beginFill(h(k)), db, h(k), key(k), key(v), Date.now(), covered);
  put(0, 'a', 'value', 5);
  t.equal(cache.get(0, key('a'), 0, 1, 5)?.reply.toString(), '$5\r\nvalue\r\n');
  t.equal(cache.get(0, key('a'), 0, 1, 6), undefined, 'a read that needs a later write does not take it');
  t.equal(cache.get(1, key('a'), 0, 1, 0), undefined, 'keyed by database');
  put(1, 'a', 'other');
  cache.invalidate(h('a'));
  t.equal(cache.size, 0, 'an invalidation names no database: every database drops the key');
  put(0, 'x', '1');
  put(0, 'y', '2');
  put(0, 'z', '3');
  t.equal(cache.size, 2, 'maxKeys');
  t.equal(cache.counters.evictions, 1);
  t.equal(cache.get(0, key('x'), 0, 1, 0), undefined, 'the least recently used went');
  put(0, 'big', 'x'.repeat(16));
  t.ok(cache.bytes <= 20, `maxBytes (${cache.bytes})`);
  t.equal(put(0, 'huge', 'x'.repeat(30)), null, 'a value larger than maxBytes is not kept');
  t.equal(cache.get(0, key('big'), 0, 3, 0)?.reply.length, 5 + 16 + 2, "$16\r\n, the value, \r\n");
  const binary = Buffer.from([0xff, 0x00, 0x80]);
  const name = keyHash(binary, 0, 3);
  cache.completeFill(cache.beginFill(name), 0, name, binary, key('b'), Date.now(), 0);
  t.ok(cache.get(0, binary, 0, 3, 0), 'binary keys');
  t.equal(cache.get(0, Buffer.from([0xff, 0x00, 0x81]), 0, 3, 0), undefined, 'another key of the same length misses');
});

t.test('a hash collision is a miss, never another key\'s value', async (t) => {
  const cache = new NearCache({ maxKeys: 10, ttl: 60_000 });
  // Store the value of "a" under the hash of "b", as a collision would: a read of "b" must not get it.
  cache.completeFill(cache.beginFill(h('b')), 0, h('b'), key('a'), key('value of a'), Date.now(), 0);
  t.equal(cache.get(0, key('b'), 0, 1, 0), undefined);
});

t.test('invalidation pushes and GET replies', async (t) => {
  const push = Buffer.from('>2\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n$3\r\nb\xffc\r\n', 'latin1');
  t.same(invalidatedKeys(push, 0, push.length)?.map((k) => k.toString('latin1')), ['a', 'b\xffc']);
  const flush = Buffer.from('>2\r\n$10\r\ninvalidate\r\n_\r\n');
  t.equal(invalidatedKeys(flush, 0, flush.length), null, 'a null invalidation flushes');
  const message = Buffer.from('>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n');
  t.equal(invalidatedKeys(message, 0, message.length), undefined, 'not an invalidation');
  t.same(readGetReply(Buffer.from('$3\r\nabc\r\n'), 0, 9), { kind: 'value', value: Buffer.from('abc') });
  t.same(readGetReply(Buffer.from('_\r\n'), 0, 3), { kind: 'nil' });
  t.same(readGetReply(Buffer.from('$-1\r\n'), 0, 5), { kind: 'nil' });
  t.same(readGetReply(Buffer.from('-WRONGTYPE Operation\r\n'), 0, 22), { kind: 'wrongtype' });
});

t.test('HTTP targets: percent-decoded bytes, refusals', async (t) => {
  t.same(keyFromTarget('/a%2fb/c+d'), Buffer.from('a/b/c+d'));
  t.same(keyFromTarget('/%FF%00'), Buffer.from([0xff, 0x00]));
  for (const bad of ['/', 'x', '*', '/a?b', '/a#b', '/%', '/%4', '/%G0', `/${'a'.repeat(8192)}`]) {
    t.type(keyFromTarget(bad), 'string', `refused: ${bad.slice(0, 12)}`);
  }
  t.type(keyFromTarget(`/${'a'.repeat(8191)}`), Buffer, '8 KiB target accepted');
});

t.test('HTTP credentials', async (t) => {
  const b = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  t.ok(authorized(undefined, undefined, undefined), 'nothing asked without password or users');
  t.notOk(authorized(undefined, 'pw', undefined));
  t.ok(authorized(b('default', 'pw'), 'pw', undefined));
  t.ok(authorized('bearer pw', 'pw', undefined));
  t.notOk(authorized('Bearer pw', undefined, [{ username: 'u', password: 'pw' }]), 'Bearer is the default user\'s password only');
  t.ok(authorized(b('u', 'p:w'), undefined, [{ username: 'u', password: 'p:w' }]), 'a colon in the password');
  t.notOk(authorized(b('default', 'x'), undefined, [{ username: 'u', password: 'x' }]));
  t.notOk(authorized('Digest x', 'pw', undefined));
});

t.test('config: http and nearCache', async (t) => {
  const base = { listen: 7001, master: { host: '127.0.0.1', port: 7100 } };
  const problems = (raw: unknown): string[] => {
    try {
      normalizeConfig(raw);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };
  const c = normalizeConfig([{ ...base, bind: '0.0.0.0', http: { listen: 8080, cache: { maxKeys: 5, ttl: 1000 } }, nearCache: true }]).listeners[0]!;
  t.same(c.http, { listen: 8080, bind: '0.0.0.0', maxInFlight: 64, cached: true });
  t.same(c.cache, { maxKeys: 5, ttl: 1000 });
  t.equal(c.nearCache, true);
  const d = normalizeConfig([{ ...base, nearCache: true }]).listeners[0]!;
  t.same(d.cache, { maxKeys: 10_000, ttl: 60_000 }, 'nearCache: true takes the defaults');
  t.equal(normalizeConfig([base]).listeners[0]!.cache, undefined, 'off by default');
  t.match(problems([{ ...base, http: { listen: 7001 } }]), [/\[0\]\.http\.listen: port 7001 is already used by \[0\]\.listen/]);
  t.match(problems([{ ...base, http: { listen: 8080 } }, { ...base, listen: 7002, http: { listen: 8080 } }]), [/\[1\]\.http\.listen: .*\[0\]\.http\.listen/]);
  t.match(problems({ admin: { listen: 8080 }, listeners: [{ ...base, http: { listen: 8080 } }] }), [/admin\.listen: .*http\.listen/]);
  t.match(problems([{ ...base, http: { listen: 8080, maxinflight: 3 } }]), [/\[0\]\.http\.maxinflight: unknown key/]);
  t.match(problems([{ ...base, http: { listen: 8080, cache: { maxKeys: 0, ttl: 1 } } }]), [/\[0\]\.http\.cache\.maxKeys: must be an integer 1-/]);
  t.match(problems([{ ...base, nearCache: { maxKeys: 10 } }]), [/\[0\]\.nearCache\.ttl: required key is missing/]);
  t.match(problems([{ ...base, nearCache: 'on' }]), [/\[0\]\.nearCache: must be true, false, or an object/]);
  t.match(problems([{ ...base, http: { listen: 8080, cache: { maxKeys: 1, ttl: 1 } }, nearCache: { maxKeys: 1, ttl: 1 } }]), [/size it once/]);
  t.match(problems([{ ...base, authentication: 'redis', nearCache: true }]), [/bypass the Redis ACL/]);
});

/**
 * The elements of one complete reply held in a buffer (the framer has already found where
 * the reply ends): where each element of an aggregate starts and ends, without decoding.
 * Used off the hot path, for the few replies the proxy must look inside (EXEC's array).
 * Source: https://redis.io/docs/latest/develop/reference/protocol-spec/
 */
import { parseDecimal } from './decimal.js';

/** Elements each aggregate type byte announces per count: arrays, sets, pushes 1; maps 2; attributes 2 then a value. */
function elementsFor(type: number, count: number): number {
  if (type === 0x25 /* % */) return count * 2;
  if (type === 0x7c /* | */) return count * 2 + 1;
  return count;
}

function isAggregate(type: number): boolean {
  return type === 0x2a /* * */ || type === 0x7e /* ~ */ || type === 0x3e /* > */ || type === 0x25 /* % */ || type === 0x7c; /* | */
}

function isBulk(type: number): boolean {
  return type === 0x24 /* $ */ || type === 0x21 /* ! */ || type === 0x3d; /* = */
}

/**
 * The end offset of the complete RESP value that starts at `buf[start]`.
 * @throws Error when the bytes are not a complete, well-formed value
 */
export function valueEnd(buf: Buffer, start: number): number {
  const lf = buf.indexOf(0x0a, start);
  if (lf < 0) throw new Error('incomplete reply');
  const type = buf[start]!;
  const next = lf + 1;
  if (!isBulk(type) && !isAggregate(type)) return next;
  const count = parseDecimal(buf, start + 1, lf - 1);
  if (Number.isNaN(count)) throw new Error('invalid length in reply');
  if (isBulk(type)) {
    if (count < 0) return next;
    if (next + count + 2 > buf.length) throw new Error('incomplete reply');
    return next + count + 2;
  }
  let pos = next;
  for (let i = elementsFor(type, count); i > 0; i--) pos = valueEnd(buf, pos);
  return pos;
}

/**
 * For an aggregate reply (array, set, push) in `buf[start, end)`: the offsets of its
 * elements, `[s0, s1, ..., sN]` where element i is `buf[s_i, s_{i+1})` (so N + 1 numbers).
 * Null for anything else: an error, a nil array, a scalar. Elements after the count the
 * header announced (Redis writes extra replies after EXEC's array for a multi-channel
 * SUBSCRIBE inside MULTI) are not included.
 */
export function aggregateElements(buf: Buffer, start: number): number[] | null {
  const type = buf[start]!;
  if (type !== 0x2a && type !== 0x7e && type !== 0x3e) return null;
  const lf = buf.indexOf(0x0a, start);
  const count = parseDecimal(buf, start + 1, lf - 1);
  if (Number.isNaN(count) || count < 0) return null;
  const offsets = [lf + 1];
  let pos = lf + 1;
  for (let i = 0; i < count; i++) {
    pos = valueEnd(buf, pos);
    offsets.push(pos);
  }
  return offsets;
}

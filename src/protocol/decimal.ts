/**
 * Parses the decimal integer in `buf[start, end)` as Redis's string2ll does: an optional
 * '-', digits without leading zeros, no '+', at most 20 characters. NaN when invalid.
 * Used for the lengths and counts of requests and replies (Redis writes them this way).
 */
export function parseDecimal(buf: Buffer, start: number, end: number): number {
  const len = end - start;
  if (len < 1 || len > 20) return NaN;
  let i = start;
  let negative = false;
  if (buf[i] === 0x2d) {
    negative = true;
    i++;
    if (i === end) return NaN;
  }
  if (buf[i] === 0x30) return end - i === 1 && !negative ? 0 : NaN;
  let value = 0;
  for (; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return NaN;
    value = value * 10 + d;
  }
  return negative ? -value : value;
}

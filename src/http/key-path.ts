/**
 * The key of an HTTP front-end request: the request target's path after its `/`,
 * percent-decoded to raw bytes (any byte sequence a Redis key can hold; `%XX` is decoded
 * here, byte by byte, so keys that are not valid UTF-8 work). Everything but `%XX` stands
 * for itself: `/` is part of the key, `+` is a plus sign.
 *
 * Refused (the caller answers 400): a target longer than {@link MAX_TARGET_BYTES}, one that
 * is not a path (`*`, `http://...`), `/` alone (no key), a `%` not followed by two hex
 * digits, and a query string or fragment (`?`, `#`: write them in a key as `%3F`, `%23`).
 */

/** Longest request target accepted, in bytes (8 KiB): the key is at most this long, less its `/`. */
export const MAX_TARGET_BYTES = 8192;

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * The key named by `target` (Node's `req.url`: the request target as sent, its bytes as
 * latin1 characters).
 * @returns the key's bytes, or a string saying what is wrong with the target
 */
export function keyFromTarget(target: string): Buffer | string {
  if (target.length > MAX_TARGET_BYTES) return `the path is longer than ${MAX_TARGET_BYTES} bytes`;
  if (target.charCodeAt(0) !== 0x2f) return 'the request target must be a path: /<key>, percent-encoded';
  if (target.length === 1) return 'no key: use /<key>, percent-encoded';
  const out = Buffer.allocUnsafe(target.length - 1);
  let n = 0;
  for (let i = 1; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x3f || c === 0x23) return 'query strings and fragments are not accepted: write "?" in a key as %3F and "#" as %23';
    if (c === 0x25) {
      const hi = i + 2 < target.length ? hexDigit(target.charCodeAt(i + 1)) : -1;
      const lo = hi < 0 ? -1 : hexDigit(target.charCodeAt(i + 2));
      if (lo < 0) return `bad percent-escape at byte ${i}: "%" must be followed by two hex digits`;
      out[n++] = hi * 16 + lo;
      i += 2;
    } else if (c > 0xff) {
      return `bad character at ${i}: percent-encode every byte that is not printable ASCII`;
    } else {
      out[n++] = c;
    }
  }
  return out.subarray(0, n);
}

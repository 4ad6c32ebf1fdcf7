/**
 * RESP2 encoding of the replies and requests the proxy writes itself (its own errors,
 * locally answered commands, handshakes). Forwarded traffic is never re-encoded.
 * Source: https://redis.io/docs/latest/develop/reference/protocol-spec/
 */

export const OK = Buffer.from('+OK\r\n');
export const PONG = Buffer.from('+PONG\r\n');
export const QUEUED = Buffer.from('+QUEUED\r\n');
export const NULL_BULK = Buffer.from('$-1\r\n');
export const NULL_ARRAY = Buffer.from('*-1\r\n');
export const EMPTY_ARRAY = Buffer.from('*0\r\n');

/** `-<message>\r\n`; the message must already carry its prefix (`ERR`, `NOAUTH`, ...). CR/LF in it become spaces. */
export function encodeError(message: string): Buffer {
  return Buffer.from(`-${message.replace(/[\r\n]+/g, ' ')}\r\n`);
}

/** `+<text>\r\n` for a text without CR/LF. */
export function encodeSimple(text: string): Buffer {
  return Buffer.from(`+${text}\r\n`);
}

/** `:<n>\r\n`. */
export function encodeInteger(n: number | bigint): Buffer {
  return Buffer.from(`:${n}\r\n`);
}

/** `$<len>\r\n<bytes>\r\n`, or the null bulk string for null. */
export function encodeBulk(value: Buffer | string | null): Buffer {
  if (value === null) return NULL_BULK;
  const body = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([Buffer.from(`$${body.length}\r\n`), body, CRLF]);
}

const CRLF = Buffer.from('\r\n');

/** A nested reply value for {@link encodeValue}: bulk strings, integers, arrays, null. */
export type ReplyValue = string | Buffer | number | bigint | null | ReplyValue[];

/** Encodes a value tree: strings and Buffers as bulk strings, numbers as integers, arrays as arrays. */
export function encodeValue(value: ReplyValue): Buffer {
  if (Array.isArray(value)) {
    return Buffer.concat([Buffer.from(`*${value.length}\r\n`), ...value.map(encodeValue)]);
  }
  if (typeof value === 'number' || typeof value === 'bigint') return encodeInteger(value);
  return encodeBulk(value);
}

/** Encodes a command as a RESP array of bulk strings: how the proxy sends its own requests. */
export function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  return encodeValue(args as ReplyValue[]);
}

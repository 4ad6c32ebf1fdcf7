/**
 * RESP2 encoding of the replies and requests the proxy writes itself (its own errors,
 * locally answered commands, handshakes). Forwarded traffic is never re-encoded.
 * Source: https://redis.io/docs/latest/develop/reference/protocol-spec/
 */

export const OK = Buffer.from('+OK\r\n');
export const PONG = Buffer.from('+PONG\r\n');
export const NULL_BULK = Buffer.from('$-1\r\n');
/** RESP3's null. */
export const NULL3 = Buffer.from('_\r\n');

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

/** `$<len>\r\n<bytes>\r\n`, or the null bulk string for null (RESP3: `_`). */
export function encodeBulk(value: Buffer | string | null, protocol: 2 | 3 = 2): Buffer {
  if (value === null) return protocol === 3 ? NULL3 : NULL_BULK;
  const body = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([Buffer.from(`$${body.length}\r\n`), body, CRLF]);
}

const CRLF = Buffer.from('\r\n');

/** RESP3 verbatim string `=<len>\r\ntxt:<text>\r\n` (how Redis sends INFO to RESP3 clients). */
export function encodeVerbatim(text: string): Buffer {
  const body = Buffer.from(`txt:${text}`);
  return Buffer.concat([Buffer.from(`=${body.length}\r\n`), body, CRLF]);
}

/** A map reply: RESP3 `%`, or in RESP2 the flat array of keys and values Redis sends instead. */
export class ReplyMap {
  constructor(readonly entries: Array<[string, ReplyValue]>) {}
}

/** A nested reply value for {@link encodeValue}: bulk strings, integers, arrays, maps, null. */
export type ReplyValue = string | Buffer | number | bigint | null | ReplyMap | ReplyValue[];

/**
 * Encodes a value tree: strings and Buffers as bulk strings, numbers as integers, arrays as
 * arrays, maps as maps (RESP3) or flat arrays (RESP2), null as the protocol's null.
 */
export function encodeValue(value: ReplyValue, protocol: 2 | 3 = 2): Buffer {
  if (Array.isArray(value)) {
    return Buffer.concat([Buffer.from(`*${value.length}\r\n`), ...value.map((v) => encodeValue(v, protocol))]);
  }
  if (value instanceof ReplyMap) {
    const head = protocol === 3 ? `%${value.entries.length}\r\n` : `*${value.entries.length * 2}\r\n`;
    return Buffer.concat([Buffer.from(head), ...value.entries.flat().map((v) => encodeValue(v, protocol))]);
  }
  if (typeof value === 'number' || typeof value === 'bigint') return encodeInteger(value);
  return encodeBulk(value, protocol);
}

/** Encodes a command as a RESP array of bulk strings: how the proxy sends its own requests. */
export function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  return encodeValue(args as ReplyValue[]);
}

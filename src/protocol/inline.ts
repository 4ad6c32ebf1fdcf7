/**
 * Splitting of inline commands (`SET a "b c"\r\n`, as telnet and health checks send them)
 * into arguments, with the quoting rules of Redis's `sdssplitargs`:
 * double quotes understand `\n \r \t \b \a \\ \"` and `\xHH`; single quotes understand `\'`;
 * a closing quote must be followed by white space or the end of the line.
 * Source: https://redis.io/docs/latest/develop/reference/protocol-spec/#inline-commands
 */

const SPACE = new Uint8Array(256);
for (const c of [0x20, 0x0a, 0x0d, 0x09, 0x0b, 0x0c]) SPACE[c] = 1;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/**
 * Splits one inline command line (without its line ending) into its arguments.
 * @param line bytes of the line
 * @returns the arguments (possibly none, for a blank line), or null when quotes are unbalanced
 *   (Redis answers that with `-ERR Protocol error: unbalanced quotes in request`).
 */
export function splitInlineArgs(line: Buffer): Buffer[] | null {
  const args: Buffer[] = [];
  const n = line.length;
  let i = 0;
  while (true) {
    while (i < n && SPACE[line[i]!]) i++;
    if (i >= n) return args;
    const bytes: number[] = [];
    let inDouble = false;
    let inSingle = false;
    let done = false;
    while (!done) {
      if (inDouble) {
        if (i >= n) return null;
        const c = line[i]!;
        if (c === 0x5c && i + 3 < n && line[i + 1] === 0x78 && hexValue(line[i + 2]!) >= 0 && hexValue(line[i + 3]!) >= 0) {
          bytes.push(hexValue(line[i + 2]!) * 16 + hexValue(line[i + 3]!));
          i += 3;
        } else if (c === 0x5c && i + 1 < n) {
          i++;
          const e = line[i]!;
          bytes.push(e === 0x6e ? 0x0a : e === 0x72 ? 0x0d : e === 0x74 ? 0x09 : e === 0x62 ? 0x08 : e === 0x61 ? 0x07 : e);
        } else if (c === 0x22) {
          if (i + 1 < n && !SPACE[line[i + 1]!]) return null;
          done = true;
        } else {
          bytes.push(c);
        }
      } else if (inSingle) {
        if (i >= n) return null;
        const c = line[i]!;
        if (c === 0x5c && i + 1 < n && line[i + 1] === 0x27) {
          i++;
          bytes.push(0x27);
        } else if (c === 0x27) {
          if (i + 1 < n && !SPACE[line[i + 1]!]) return null;
          done = true;
        } else {
          bytes.push(c);
        }
      } else {
        if (i >= n) break;
        const c = line[i]!;
        if (SPACE[c]) done = true;
        else if (c === 0x22) inDouble = true;
        else if (c === 0x27) inSingle = true;
        else bytes.push(c);
      }
      if (i < n) i++;
    }
    args.push(Buffer.from(bytes));
  }
}

// The command line every harness shares: its own options plus --out, --json, --proxy-bin
// and -h/--help, parsed with node:util parseArgs, and the checks of their values.

import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Parses process.argv for a harness. `--help` prints `usage` and exits 0; a bad value
 * prints what is wrong, then `usage`, and exits 2.
 *
 * @param {object} spec
 * @param {string} spec.usage the script's help text
 * @param {object} spec.own the script's own parseArgs options
 * @param {string} spec.json the report's JSON file name in --out (the default --json)
 * @returns {{ values: object, out: string, json: string, proxyBin: string | null,
 *   usageError: (msg: string) => never,
 *   number: (flag: string, value: string, min?: number, integer?: boolean) => number,
 *   list: (flag: string, value: string, allowed: string[], opts?: { allowEmpty?: boolean }) => string[] }}
 *   `number` checks a value (an integer by default) >= min; `list` splits a comma list,
 *   drops repeats, and refuses an empty list (unless allowEmpty) or an item not in `allowed`
 */
export function harnessOptions({ usage, own, json }) {
  const { values } = parseArgs({
    options: {
      ...own,
      out: { type: 'string', default: path.join(ROOT, 'bench', 'results') },
      json: { type: 'string' },
      'proxy-bin': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) { process.stdout.write(usage); process.exit(0); }
  const usageError = (msg) => { process.stderr.write(`${msg}\n${usage}`); process.exit(2); };
  const number = (flag, value, min = 1, integer = true) => {
    const n = Number(value);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) {
      usageError(`--${flag} must be ${integer ? 'an integer' : 'a number'} >= ${min}`);
    }
    return n;
  };
  const list = (flag, value, allowed, { allowEmpty = false } = {}) => {
    const items = [...new Set(value.split(',').map((s) => s.trim()).filter(Boolean))];
    if (!items.length && !allowEmpty) usageError(`--${flag} is empty`);
    for (const i of items) if (!allowed.includes(i)) usageError(`unknown ${flag.replace(/s$/, '')} ${i} (one of ${allowed.join(', ')})`);
    return items;
  };
  const out = path.resolve(values.out);
  return {
    values,
    out,
    json: path.resolve(values.json ?? path.join(out, json)),
    proxyBin: values['proxy-bin'] ? path.resolve(values['proxy-bin']) : null,
    usageError,
    number,
    list,
  };
}

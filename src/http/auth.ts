/**
 * HTTP authentication of the front end, against the listener's `password` / `users` (the
 * same credentials AUTH checks, `authentication: "proxy"`):
 * - `Authorization: Basic base64(user:password)`: user `default` with the listener's
 *   `password`, or one of its `users`;
 * - `Authorization: Bearer <password>`: the listener's `password` (the `default` user).
 * A listener with neither `password` nor `users` asks for nothing. Compared in constant
 * time. See https://datatracker.ietf.org/doc/html/rfc7617 (Basic) and
 * https://datatracker.ietf.org/doc/html/rfc6750 (Bearer).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ClientUser } from '../config/types.js';

/** The challenge sent with 401. */
export const WWW_AUTHENTICATE = 'Basic realm="redis-proxy", charset="UTF-8"';

function same(a: string, b: string): boolean {
  // Digests of equal length, so the comparison takes the same time whatever the lengths.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** Whether `user` / `password` match the listener's credentials. */
function matches(user: string, password: string, required: string | undefined, users: readonly ClientUser[]): boolean {
  if (user === 'default') return required !== undefined && same(password, required);
  return users.some((u) => u.username === user && same(password, u.password));
}

/**
 * Whether a request with `Authorization` header `header` may read, for a listener with
 * `password` and `users` (both unset: always).
 */
export function authorized(header: string | undefined, password: string | undefined, users: readonly ClientUser[] | undefined): boolean {
  const list = users ?? [];
  if (password === undefined && list.length === 0) return true;
  if (header === undefined) return false;
  const space = header.indexOf(' ');
  if (space < 0) return false;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return password !== undefined && same(value, password);
  if (scheme !== 'basic') return false;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  return matches(decoded.slice(0, colon), decoded.slice(colon + 1), password, list);
}

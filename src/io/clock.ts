/**
 * A coarse clock for timeouts on the hot path: `Date.now()` read once per tick instead of
 * once per request. Accurate to {@link CLOCK_TICK_MS}.
 */
export const CLOCK_TICK_MS = 100;

let now = Date.now();
let timer: NodeJS.Timeout | null = null;

/** Milliseconds since the epoch, at most one tick old. */
export function coarseNow(): number {
  if (timer === null) {
    timer = setInterval(() => {
      now = Date.now();
    }, CLOCK_TICK_MS);
    timer.unref();
    now = Date.now();
  }
  return now;
}

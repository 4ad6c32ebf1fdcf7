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

/**
 * Request timing for the metrics (the latency histograms): the time the chunk of bytes
 * being handled arrived, read once per chunk from a client or a node, not once per
 * request. Off unless {@link setTiming} turned it on (the admin server runs): then one
 * `performance.now()` per chunk.
 */
let timing = false;
let chunkAt = 0;

/** Turns request timing on or off. */
export function setTiming(on: boolean): void {
  timing = on;
}

/** Whether requests are timed. */
export function timingOn(): boolean {
  return timing;
}

/** A chunk of bytes arrived (from a client or a node): its time, when timing is on. */
export function markChunk(): void {
  if (timing) chunkAt = performance.now();
}

/** performance.now() when the chunk being handled arrived (0 before any, or with timing off). */
export function chunkTime(): number {
  return chunkAt;
}

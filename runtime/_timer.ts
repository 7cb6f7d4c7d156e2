/**
 * A timer for any delay: Deno's setTimeout fires at once for delays above
 * 2^31 - 1 ms (about 24.8 days), so longer ones are chained. Every delay
 * a user gives goes through it: `sleep`, the timers family, the HTTP
 * client's and the CLI's and library's time limits.
 *
 * @module
 */

/** The longest delay one setTimeout takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `fn` after `ms` milliseconds, however long; returns the cancel function.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { after } from "./_timer.ts";
 * let fired = false;
 * const cancel = after(2 ** 40, () => fired = true);
 * cancel();
 * ok(!fired);
 * ```
 */
export function after(ms: number, fn: () => void): () => void {
  let handle = setTimeout(step, Math.min(ms, MAX_TIMER_MS));
  let left = ms - Math.min(ms, MAX_TIMER_MS);
  function step() {
    if (left <= 0) return fn();
    handle = setTimeout(step, Math.min(left, MAX_TIMER_MS));
    left -= Math.min(left, MAX_TIMER_MS);
  }
  return () => clearTimeout(handle);
}

/**
 * What the CLI's default time limit watches: how many resident sources
 * (servers, listeners, intervals, cron jobs, watchers) every Lua thread of
 * a run has active, the script's and its actors' alike.
 *
 * @module
 */

/**
 * One thread's resident sources, added into a total shared by every
 * thread (Int32 slot 0 of `total`, which the CLI waits on). The thread's
 * own share lives in shared memory too (`share`), so that whoever ends the
 * thread by force can take it back out of the total.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { ResidentShare } from "./_resident.ts";
 * const total = new SharedArrayBuffer(4);
 * const a = new ResidentShare(total), b = new ResidentShare(total);
 * a.set(2);
 * b.set(1);
 * a.set(0);
 * strictEqual(new Int32Array(total)[0], 1);
 * new ResidentShare(total, b.share).set(0); // b's maker takes b's share back
 * strictEqual(new Int32Array(total)[0], 0);
 * ```
 */
export class ResidentShare {
  readonly #total: Int32Array;
  readonly #mine: Int32Array;

  constructor(readonly total: SharedArrayBuffer, readonly share = new SharedArrayBuffer(4)) {
    this.#total = new Int32Array(total, 0, 1);
    this.#mine = new Int32Array(share, 0, 1);
  }

  /** This thread now has `count` resident sources. */
  set(count: number): void {
    const before = Atomics.exchange(this.#mine, 0, count);
    if (before === count) return;
    Atomics.add(this.#total, 0, count - before);
    Atomics.notify(this.#total, 0);
  }
}

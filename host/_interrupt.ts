/**
 * Ctrl-C in the REPL: the CLI's thread takes SIGINT while the REPL's worker
 * may be deep in a loop that never yields, so the two share one Int32 in
 * memory that says whether a line runs and whether it is asked to stop.
 *
 * @module
 */
import type { Interruption } from "../runtime/engine.ts";

const IDLE = 0;
const RUNNING = 1;
const REQUESTED = 2;

/**
 * The state of the REPL's line, shared by the CLI (which asks it to stop)
 * and the worker running the REPL (which marks each line and stops it).
 *
 * ```ts
 * import { ok, strictEqual } from "node:assert";
 * import { LineInterrupt } from "./_interrupt.ts";
 * const cli = new LineInterrupt();
 * const repl = new LineInterrupt(cli.buffer);
 * ok(!cli.request()); // no line runs: Ctrl-C ends the session
 * repl.begin();
 * ok(cli.request() && repl.requested());
 * ok(!cli.request()); // asked already and not stopped yet: Ctrl-C ends the session
 * repl.end();
 * strictEqual(repl.requested(), false);
 * ```
 */
export class LineInterrupt implements Interruption {
  readonly message = "interrupted!";
  readonly #state: Int32Array;

  constructor(readonly buffer = new SharedArrayBuffer(4)) {
    this.#state = new Int32Array(buffer, 0, 1);
  }

  /** Asks the running line to stop; false when no line runs or it was asked already (then Ctrl-C ends SolVM). */
  request(): boolean {
    if (Atomics.compareExchange(this.#state, 0, RUNNING, REQUESTED) !== RUNNING) return false;
    Atomics.notify(this.#state, 0);
    return true;
  }

  /** A line starts. */
  begin(): void {
    Atomics.store(this.#state, 0, RUNNING);
  }

  /** The line has ended: a Ctrl-C from now on ends the session, as at lua5.4's prompt. */
  end(): void {
    Atomics.store(this.#state, 0, IDLE);
    Atomics.notify(this.#state, 0);
  }

  requested(): boolean {
    return Atomics.load(this.#state, 0) === REQUESTED;
  }

  asked(): Promise<unknown> {
    const waiting = Atomics.waitAsync(this.#state, 0, RUNNING);
    return waiting.async ? waiting.value : Promise.resolve();
  }
}

/**
 * Ending a command's process group, shared by the processes family (when
 * the engine closes) and by whoever makes a script's or an actor's thread
 * (when it ends that thread by force, the thread can end nothing itself).
 *
 * @module
 */

/**
 * Kills process group `group` (a command started with `detached: true`
 * leads its own group), or only its leader when signalling a group is not
 * allowed (Deno refuses it under `--allow-run=sh`). A group that has
 * already gone is no error.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { killGroup } from "./_process_group.ts";
 * const child = new Deno.Command("sleep", { args: ["30"], detached: true }).spawn();
 * killGroup(child.pid);
 * ok((await child.status).signal === "SIGKILL");
 * ```
 */
export function killGroup(group: number): void {
  try {
    Deno.kill(-group, "SIGKILL");
  } catch {
    try {
      Deno.kill(group, "SIGKILL");
    } catch {
      // It has exited meanwhile.
    }
  }
}

/** Commands one thread can have running that its maker knows of (slot 0 says the maker has ended the thread). */
const SLOTS = 1024;

/**
 * The process groups a thread's commands lead, in memory the thread shares
 * with whoever made it: that one kills them when it ends the thread by
 * force (a time limit, a signal, an actor that ignored stop()). Shared
 * memory, not messages, so that a group is known the moment its command
 * starts, even to a maker that has not yet run its event loop.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { RunningCommands } from "./_process_group.ts";
 * const child = new Deno.Command("sleep", { args: ["30"], detached: true }).spawn();
 * const maker = new RunningCommands();
 * new RunningCommands(maker.buffer).record(child.pid, true); // in the thread
 * maker.killAll();
 * ok((await child.status).signal === "SIGKILL");
 * ```
 */
export class RunningCommands {
  readonly #groups: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(SLOTS * 4)) {
    this.#groups = new Int32Array(buffer);
  }

  /** Records that `group` started (`running`) or ended: what the processes family reports (see watchCommands). */
  record(group: number, running: boolean): void {
    if (running) this.#add(group);
    else this.#remove(group);
  }

  // One that starts after the maker ended the thread (the thread ran on for a moment) is killed here. A thread with
  // every slot taken keeps the rest to itself (it kills them when its engine closes).
  #add(group: number): void {
    for (let i = 1; i < this.#groups.length; i++) {
      if (Atomics.compareExchange(this.#groups, i, 0, group) === 0) break;
    }
    if (Atomics.load(this.#groups, 0) !== 0) {
      killGroup(group);
      this.#remove(group);
    }
  }

  #remove(group: number): void {
    for (let i = 1; i < this.#groups.length; i++) {
      if (Atomics.compareExchange(this.#groups, i, group, 0) === group) return;
    }
  }

  /** Kills every group recorded, and any the thread records from now on. */
  killAll(): void {
    Atomics.store(this.#groups, 0, 1);
    for (let i = 1; i < this.#groups.length; i++) {
      const group = Atomics.exchange(this.#groups, i, 0);
      if (group !== 0) killGroup(group);
    }
  }
}

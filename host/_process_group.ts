/**
 * Ending a command's process group, shared by the processes family (when
 * the engine closes) and by whoever makes a script's or an actor's thread
 * (when it ends that thread by force, the thread can end nothing itself).
 *
 * @module
 */

/** A thread's report that a command's process group started (`running`) or ended. */
export interface CommandReport {
  command: number;
  running: boolean;
}

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

/**
 * The process groups a thread reported running: what to kill when the
 * thread is ended by force (a time limit, an actor that ignored stop()).
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { RunningCommands } from "./_process_group.ts";
 * const child = new Deno.Command("sleep", { args: ["30"], detached: true }).spawn();
 * const commands = new RunningCommands();
 * commands.track({ command: child.pid, running: true });
 * commands.killAll();
 * ok((await child.status).signal === "SIGKILL");
 * ```
 */
export class RunningCommands {
  readonly #groups = new Set<number>();

  /** Records one report. */
  track({ command, running }: CommandReport): void {
    if (running) this.#groups.add(command);
    else this.#groups.delete(command);
  }

  /** Kills every group still running. */
  killAll(): void {
    for (const group of this.#groups) killGroup(group);
    this.#groups.clear();
  }
}

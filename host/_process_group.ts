/**
 * Ending a command's process group, shared by the processes family (when
 * the engine closes) and the CLI (when a time limit stops the script's
 * thread, which can then end nothing itself).
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

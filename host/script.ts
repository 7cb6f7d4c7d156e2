/**
 * Running a script file: reading it, the `arg` table, and turning how the
 * main goroutine ended into an exit code and a message on stderr.
 *
 * @module
 */
import type { Engine, Outcome } from "../runtime/engine.ts";
import { core } from "./core.ts";
import { concurrency } from "./concurrency.ts";
import { json } from "./json.ts";
import { installFamily } from "../runtime/family.ts";

/** Exit code of a deadlock (as Go's runtime uses for fatal errors). */
export const EXIT_DEADLOCK = 2;

/**
 * Registers every family of Lua globals on `engine`.
 *
 * ```ts
 * import { Engine } from "../runtime/engine.ts";
 * import { installGlobals } from "./script.ts";
 * const engine = await Engine.create();
 * installGlobals(engine);
 * engine.close();
 * ```
 */
export function installGlobals(engine: Engine): void {
  for (const family of [core, concurrency, json]) installFamily(engine, family);
}

/** Blanks a `#!` first line, keeping the line count so error lines stay right. */
function stripShebang(source: Uint8Array): Uint8Array {
  if (source[0] !== 0x23) return source; // '#'
  const end = source.indexOf(0x0a);
  return end < 0 ? new Uint8Array() : source.subarray(end);
}

function describeReadError(path: string, e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return `cannot open ${path} (no such file)`;
  if (e instanceof Deno.errors.IsADirectory) return `cannot read ${path} (it is a directory)`;
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    return `cannot read ${path} (permission denied: run with --allow-read=${path})`;
  }
  return `cannot read ${path} (${e instanceof Error ? e.message : e})`;
}

/** Sets the global `arg` table as the standalone Lua interpreter does. */
function setArgTable(engine: Engine, script: string, args: string[]): void {
  const { vm, L } = engine;
  vm.api.lua_createtable(L, args.length, 2);
  vm.pushString(L, "solvm");
  vm.api.lua_rawseti(L, -2, -1n);
  vm.pushString(L, script);
  vm.api.lua_rawseti(L, -2, 0n);
  args.forEach((a, i) => {
    vm.pushString(L, a);
    vm.api.lua_rawseti(L, -2, BigInt(i + 1));
  });
  vm.api.lua_setglobal(L, vm.cstr("arg"));
}

/**
 * Turns an outcome into an exit code, reporting failures on stderr.
 */
export function reportOutcome(engine: Engine, outcome: Outcome): number {
  switch (outcome.status) {
    case "ok":
      return 0;
    case "exit":
      return outcome.code;
    case "error":
      engine.reportError(outcome.traceback || outcome.message);
      return 1;
    case "deadlock":
      engine.reportError(`all goroutines are asleep - deadlock!\n\n${outcome.report}`);
      return EXIT_DEADLOCK;
  }
}

/**
 * Runs the script at `path` to the end: the main chunk, then whatever it
 * left running (goroutines with pending calls, timers, servers).
 * Returns the process exit code.
 */
export async function runScriptFile(engine: Engine, path: string, args: string[]): Promise<number> {
  let source: Uint8Array;
  try {
    source = await Deno.readFile(path);
  } catch (e) {
    engine.reportError(`solvm: ${describeReadError(path, e)}`);
    return 1;
  }
  setArgTable(engine, path, args);
  const outcome = await engine.execute(stripShebang(source), "@" + path, args);
  if (outcome.status !== "ok") return reportOutcome(engine, outcome);
  await engine.idle();
  return engine.exitCode ?? 0;
}

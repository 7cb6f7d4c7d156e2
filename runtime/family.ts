/**
 * How a family of Lua globals is registered: each host file ends with one
 * table mapping Lua names to implementations (as Lua's C libraries end with
 * a `luaL_Reg` array), and {@linkcode installFamily} registers it.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import type { HostFunction } from "./state.ts";

/** What families know of the run they serve. */
export interface RunContext {
  /** Path of the main script, when the run has one (not in the REPL). */
  mainScript?: string;
  /** Files the run has loaded (the main script, imported modules); `--watch` reloads when one changes. */
  readonly loaded: Set<string>;
  /**
   * The engine serves a TypeScript program's calls (a Context) and has no script of its own to end: a failure
   * that would end the script (a supervisor's) is reported as an actor's is instead.
   */
  readonly embedded?: boolean;
  /** The engine writes to a sink of the embedder's (a Context's `stdout`): its actors' output goes there too. */
  readonly ownOutput?: boolean;
  /** Likewise for standard error (a Context's `stderr`): its actors' error reports and `io.stderr` go there too. */
  readonly ownErrors?: boolean;
  /** Actors alive at once that the engine's own root allows (a Context's `maxActors`); else the run's rules say. */
  readonly maxActors?: number;
  /** The CLI runs the main script and can start it again in a fresh state (`reload_script`). */
  readonly reloadable?: boolean;
}

/**
 * A function written in Lua: `source` is a chunk that receives `helpers`
 * (host functions) as `...` and returns the function.
 */
export interface LuaDefinedFunction {
  readonly lua: string;
  readonly helpers: Record<string, HostFunction>;
}

/** An implementation written in the scheduler's Lua (see scheduler_lua.ts). */
export interface SchedulerFunction {
  readonly scheduler: string;
}

/** Lua name (dots reach into tables: "os.exit") -> implementation. */
export type Family = Record<string, HostFunction | SchedulerFunction | LuaDefinedFunction>;

/** A family's registration table, built for one engine and run. */
export type FamilyTable = (engine: Engine, context: RunContext) => Family;

/**
 * Names a function of the Lua scheduler as a family member.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { inScheduler } from "./family.ts";
 * ok(inScheduler("go").scheduler === "go");
 * ```
 */
export function inScheduler(field: string): SchedulerFunction {
  return { scheduler: field };
}

/**
 * Registers every member of `family` as a Lua global of `engine`.
 *
 * ```ts
 * import { Engine } from "./engine.ts";
 * import { installFamily } from "./family.ts";
 * const engine = await Engine.create();
 * installFamily(engine, () => ({ answer: (L) => (engine.vm.pushPrimitive(L, 42), 1) }));
 * engine.close();
 * ```
 */
export function installFamily(engine: Engine, table: FamilyTable, context: RunContext = { loaded: new Set() }): void {
  for (const [name, impl] of Object.entries(table(engine, context))) {
    if (typeof impl === "function") engine.setGlobal(name, impl);
    else if ("scheduler" in impl) engine.setGlobalFromScheduler(name, impl.scheduler);
    else engine.setGlobalFromLua(name, impl.lua, impl.helpers);
  }
}

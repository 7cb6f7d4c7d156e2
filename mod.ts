/**
 * SolVM as a library: the same engine the `solvm` command runs.
 *
 * ```ts
 * import { Engine, installGlobals } from "./mod.ts";
 * const engine = await Engine.create();
 * installGlobals(engine);
 * const outcome = await engine.execute('chan("c", 1) send("c", 42) print(receive("c"))', "=example");
 * await engine.idle();
 * console.assert(outcome.status === "ok");
 * engine.close();
 * ```
 *
 * @module
 */
export { Engine, type EngineOptions, type Outcome, type OutputSink, type Pusher } from "./runtime/engine.ts";
export { installGlobals, runScriptFile } from "./host/script.ts";
export { type Family, installFamily } from "./runtime/family.ts";

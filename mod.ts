/**
 * SolVM as a library: the engine the `solvm` command runs, for TypeScript
 * programs.
 *
 * - {@linkcode Script}: a Lua script whose `main(...)` runs again and again,
 *   on a pool of engines (or in worker threads), with
 *   {@linkcode NativeModule}s (TypeScript functions) and
 *   {@linkcode ScriptModule}s (Lua) for `require`.
 * - {@linkcode Context}: one Lua state, with limits, selective libraries,
 *   GC control, bytecode, debug hooks and shared tables.
 * - {@linkcode Engine}, {@linkcode installGlobals} and
 *   {@linkcode runScriptFile}: the layer below, as the CLI uses it; an
 *   engine sees the disk through Lua's `io` and `os` only when made with
 *   `files: denoFileSystem()`.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { Script } from "./mod.ts";
 * const script = Script.fromString("fib.lua", `
 *   function main(n)
 *     if n < 2 then return 1 end
 *     return main(n - 2) + main(n - 1)
 *   end`);
 * strictEqual(await script.run(10), 89);
 * script.close();
 * ```
 *
 * @module
 */
export {
  type Module,
  type ModuleInfo,
  type NativeFunction,
  NativeModule,
  Script,
  ScriptModule,
  type ScriptOptions,
} from "./lib/script.ts";
export {
  type CallOptions,
  Context,
  type ContextOptions,
  createSharedTable,
  type LuaLibrary,
  SharedTable,
} from "./lib/context.ts";
export { LuaError } from "./runtime/errors.ts";
export { byRef, ByReference } from "./runtime/values.ts";
export {
  CallStopped,
  type CancellableWait,
  type DebugEvents,
  type DebugHook,
  Engine,
  type EngineOptions,
  type Outcome,
  type OutputSink,
  type Pusher,
} from "./runtime/engine.ts";
export type { BufferMode } from "./runtime/output.ts";
export { installGlobals, runScriptFile, type ScriptFileOptions } from "./host/script.ts";
export { denoFileSystem } from "./host/filesystem.ts";
export type { LuaSystem } from "./runtime/lua.ts";
export { type Family, installFamily } from "./runtime/family.ts";

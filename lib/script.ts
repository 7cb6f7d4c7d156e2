/**
 * Scripts with a `main` function, run again and again from TypeScript by a
 * pool of engines, with native (TypeScript) and script (Lua) modules
 * (../shared/seeds/executor-library.md).
 *
 * @module
 */
import { type CallOptions, Context, type ContextOptions } from "./context.ts";
import { LuaError } from "../runtime/errors.ts";
import { WorkerPool } from "./_worker_pool.ts";

/** A function a {@linkcode NativeModule} offers Lua. */
// deno-lint-ignore no-explicit-any
export type NativeFunction = (...args: any[]) => unknown;

/** What names a module for `require`. */
export interface ModuleInfo {
  name: string;
  version?: string;
}

/**
 * Functions written in TypeScript that Lua loads with `require(name)`.
 * A thrown error becomes a Lua error; an async function is a blocking
 * call (only the calling goroutine waits).
 *
 * ```ts
 * import { NativeModule, Script } from "./script.ts";
 * const math2 = new NativeModule({ name: "math2", version: "1.0.0" }).register("double", (n: number) => n * 2);
 * const script = Script.fromString("t.lua", `local m = require("math2") function main(n) return m.double(n) end`, math2);
 * console.assert(await script.run(21) === 42);
 * script.close();
 * ```
 */
export class NativeModule {
  readonly name: string;
  readonly version: string;
  readonly functions: Record<string, NativeFunction> = {};

  constructor(info: ModuleInfo) {
    if (typeof info?.name !== "string" || info.name === "") throw new TypeError("a module needs a name");
    this.name = info.name;
    this.version = info.version ?? "0.0.0";
  }

  /** Offers `fn` to Lua as `name`; returns the module, so calls chain. */
  register(name: string, fn: NativeFunction): this {
    if (typeof fn !== "function") throw new TypeError(`register("${name}", ...) needs a function`);
    this.functions[name] = fn;
    return this;
  }
}

/**
 * A Lua module: `script`'s source, run once by `require(name)`, which
 * returns what the source returns.
 *
 * ```ts
 * import { Script, ScriptModule } from "./script.ts";
 * const code = Script.fromString("mod.lua", "local m = {} function m.mult(a, b) return a * b end return m");
 * const demo = new ScriptModule({ script: code, name: "demo_mod", version: "1.0.0" });
 * const script = Script.fromString("t.lua", `local d = require("demo_mod") function main() return d.mult(5, 5) end`, demo);
 * console.assert(await script.run() === 25);
 * script.close();
 * code.close();
 * ```
 */
export class ScriptModule {
  readonly name: string;
  readonly version: string;
  readonly script: Script;

  constructor(info: ModuleInfo & { script: Script }) {
    if (!(info?.script instanceof Script)) {
      throw new TypeError("a ScriptModule needs a script made by Script.fromString");
    }
    if (typeof info.name !== "string" || info.name === "") throw new TypeError("a module needs a name");
    this.script = info.script;
    this.name = info.name;
    this.version = info.version ?? "0.0.0";
  }
}

/** A module a script can `require`. */
export type Module = NativeModule | ScriptModule;

/** How a {@linkcode Script} runs: the context options, plus its pool. */
export interface ScriptOptions extends Omit<ContextOptions, "shared"> {
  /** Engines kept for concurrent runs (default 8); more runs wait for a free one. */
  pool?: number;
  /** Run in this many worker threads instead (CPU-bound mains in parallel); values are copied. */
  workers?: number;
}

const DEFAULT_POOL = 8;
const NO_OPTIONS: CallOptions = {};

/**
 * A Lua script whose `main(...)` runs on each {@linkcode run}. Each
 * concurrent run gets an engine of its own from the pool, so a `main` that
 * waits does not hold up the others.
 *
 * ```ts
 * import { Script } from "./script.ts";
 * const fib = Script.fromString("fib.lua", `
 *   function main(n)
 *     if n < 2 then return 1 end
 *     return main(n - 2) + main(n - 1)
 *   end`);
 * console.assert(await fib.run(10) === 89);
 * fib.close();
 * ```
 */
export class Script {
  readonly name: string;
  readonly options: ScriptOptions;
  readonly modules: readonly Module[];
  #source: string;
  #version = 0;
  #closed = false;
  readonly #idle: { context: Context; version: number }[] = [];
  #busy = 0;
  readonly #queue: ((context: { context: Context; version: number }) => void)[] = [];
  readonly #workers?: WorkerPool;

  private constructor(name: string, source: string, rest: (Module | ScriptOptions)[]) {
    this.name = name;
    this.#source = source;
    const modules: Module[] = [];
    let options: ScriptOptions = {};
    for (const item of rest) {
      if (item instanceof NativeModule || item instanceof ScriptModule) modules.push(item);
      else if (item && typeof item === "object") options = { ...options, ...item };
      else {throw new TypeError(
          "Script takes modules (NativeModule, ScriptModule) and an options object after the source",
        );}
    }
    this.modules = modules;
    this.options = options;
    if (options.workers !== undefined) {
      if (!Number.isInteger(options.workers) || options.workers < 1) {
        throw new RangeError(`workers must be a whole number of at least 1, got ${options.workers}`);
      }
      if (modules.some((m) => m instanceof NativeModule)) {
        throw new TypeError("a NativeModule cannot go to workers (its functions live in this thread)");
      }
      this.#newContext().close(); // a syntax error throws here, not in a worker
      this.#workers = new WorkerPool(options.workers, this.#blueprint());
      return;
    }
    // The first engine is made now, so a syntax error throws here.
    this.#idle.push({ context: this.#newContext(), version: 0 });
  }

  /** A script from source text; `name` names it in error messages. Throws {@linkcode LuaError} for a syntax error. */
  static fromString(name: string, source: string, ...rest: (Module | ScriptOptions)[]): Script {
    if (typeof source !== "string") throw new TypeError("Script.fromString needs the source as a string");
    return new Script(name, source, rest);
  }

  /** A script from a file. */
  static async fromFile(path: string, ...rest: (Module | ScriptOptions)[]): Promise<Script> {
    return new Script(path, await Deno.readTextFile(path), rest);
  }

  /** The source later runs use. */
  get source(): string {
    return this.#source;
  }

  /** What a worker needs to build this script's engines. */
  #blueprint() {
    const { pool: _pool, workers: _workers, stdout: _stdout, ...options } = this.options;
    return {
      name: this.name,
      source: this.#source,
      modules: this.modules.map((m) => ({ name: m.name, source: (m as ScriptModule).script.source })),
      options,
    };
  }

  #newContext(): Context {
    const { pool: _pool, workers: _workers, ...options } = this.options;
    const context = new Context(options);
    try {
      for (const module of this.modules) {
        if (module instanceof NativeModule) context.registerModule(module.name, module.functions);
        else context.registerSource(module.name, module.script.source, `@${module.script.name}`);
      }
      const { vm, L } = context.engine;
      const failure = vm.load(L, this.#source, `@${this.name}`);
      if (failure) throw new LuaError(failure);
      if (vm.api.lua_pcallk(L, 0, 0, 0, 0, 0) !== 0) {
        const message = vm.toText(L, -1);
        throw new LuaError(message);
      }
    } catch (e) {
      context.close();
      throw e;
    }
    return context;
  }

  /** Runs `main(...args)` and returns its first result. */
  run(...args: unknown[]): Promise<unknown> {
    return this.#start(NO_OPTIONS, args);
  }

  /** {@linkcode run} with an `AbortSignal` and a time limit for this run. */
  runWith(options: CallOptions, ...args: unknown[]): Promise<unknown> {
    return this.#start(options, args);
  }

  #start(options: CallOptions, args: unknown[]): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error(`script ${this.name} is closed`));
    if (this.#workers) return this.#workers.run(args, options);
    const entry = this.#idle.pop();
    if (entry && entry.version === this.#version) return this.#runOn(entry, options, args);
    if (entry) entry.context.close();
    return this.#acquire().then((entry) => this.#runOn(entry, options, args));
  }

  #runOn(entry: { context: Context; version: number }, options: CallOptions, args: unknown[]): Promise<unknown> {
    this.#busy++;
    let result: unknown;
    try {
      result = entry.context.invoke("main", options, args);
    } catch (e) {
      this.#release(entry);
      return Promise.reject(e);
    }
    if (!(result instanceof Promise)) {
      this.#release(entry);
      return Promise.resolve(result);
    }
    return result.then((v) => {
      this.#release(entry);
      return v;
    }, (e) => {
      this.#release(entry);
      throw e;
    });
  }

  #acquire(): Promise<{ context: Context; version: number }> {
    const size = this.#idle.length + this.#busy;
    if (size < (this.options.pool ?? DEFAULT_POOL)) {
      try {
        return Promise.resolve({ context: this.#newContext(), version: this.#version });
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve) => this.#queue.push(resolve));
  }

  #release(entry: { context: Context; version: number }): void {
    this.#busy--;
    const spent = this.#closed || entry.context.engine.stopped !== undefined || entry.version !== this.#version;
    if (spent) {
      entry.context.close();
      const next = this.#queue.shift();
      if (next && !this.#closed) {
        try {
          next({ context: this.#newContext(), version: this.#version });
        } catch {
          // The source failed to load: the waiter gets it at its own run.
        }
      }
      return;
    }
    const next = this.#queue.shift();
    if (next) next(entry);
    else this.#idle.push(entry);
  }

  /**
   * Swaps the source for later runs; runs in flight finish on the old one.
   * Throws {@linkcode LuaError} (and keeps the old source) when the new one
   * does not load.
   */
  update(source: string): void {
    if (this.#closed) throw new Error(`script ${this.name} is closed`);
    const previous = this.#source;
    this.#source = source;
    let fresh: Context;
    try {
      fresh = this.#newContext();
    } catch (e) {
      this.#source = previous;
      throw e;
    }
    if (this.#workers) {
      fresh.close();
      this.#workers.update(this.#blueprint());
      return;
    }
    this.#version++;
    for (const entry of this.#idle.splice(0)) entry.context.close();
    this.#idle.push({ context: fresh, version: this.#version });
  }

  /** Frees every engine; runs in flight finish first, later runs fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#idle.splice(0)) entry.context.close();
    this.#workers?.close();
  }
}

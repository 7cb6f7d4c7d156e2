/**
 * Scripts with a `main` function, run again and again from TypeScript by a
 * pool of engines, with native (TypeScript) and script (Lua) modules
 * (../shared/seeds/executor-library.md).
 *
 * @module
 */
import { type CallOptions, callOptions, Context, type ContextOptions, timeoutMessage } from "./context.ts";
import { WorkerPool } from "./_worker_pool.ts";
import { after } from "../runtime/_timer.ts";
import { checkCount } from "../runtime/args.ts";

/** A function a {@linkcode NativeModule} offers Lua: it gets Lua's arguments as JavaScript values; a returned Promise makes it a blocking call. */
// deno-lint-ignore no-explicit-any
export type NativeFunction = (...args: any[]) => unknown;

/** What names a module for `require`. */
export interface ModuleInfo {
  /** The name Lua passes to `require`. */
  name: string;
  /** The module's version (default "0.0.0"); informative only. */
  version?: string;
}

/**
 * Functions written in TypeScript that Lua loads with `require(name)`.
 * A thrown error becomes a Lua error; an async function is a blocking
 * call (only the calling goroutine waits).
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { NativeModule, Script } from "./script.ts";
 * const math2 = new NativeModule({ name: "math2", version: "1.0.0" })
 *   .register("double", (n: number) => n * 2)
 *   .register("later", async (s: string) => {
 *     await new Promise((resolve) => setTimeout(resolve, 10));
 *     return s.toUpperCase();
 *   })
 *   .register("check", (n: unknown) => {
 *     if (typeof n !== "number") throw new TypeError("check needs a number");
 *     return n;
 *   });
 * const script = Script.fromString(
 *   "t.lua",
 *   `local m = require("math2")
 *    function main(n) return m.double(n) .. " " .. m.later("done") .. " " .. select(2, pcall(m.check, "x")) end`,
 *   math2,
 * );
 * strictEqual(await script.run(21), "42 DONE check needs a number");
 * script.close();
 * ```
 */
export class NativeModule {
  /** The name Lua passes to `require`. */
  readonly name: string;
  /** The module's version. */
  readonly version: string;
  /** The functions registered so far, by Lua name. */
  readonly functions: Record<string, NativeFunction> = {};

  /** A module named `info.name`; throws a TypeError without a name. */
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
 * import { strictEqual } from "node:assert";
 * import { Script, ScriptModule } from "./script.ts";
 * const code = Script.fromString("mod.lua", "local m = {} function m.mult(a, b) return a * b end return m");
 * const demo = new ScriptModule({ script: code, name: "demo_mod", version: "1.0.0" });
 * const script = Script.fromString("t.lua", `local d = require("demo_mod") function main() return d.mult(5, 5) end`, demo);
 * strictEqual(await script.run(), 25);
 * script.close();
 * code.close();
 * ```
 */
export class ScriptModule {
  /** The name Lua passes to `require`. */
  readonly name: string;
  /** The module's version. */
  readonly version: string;
  /** The script whose source is the module. */
  readonly script: Script;

  /** A module named `info.name` made of `info.script`'s source; throws a TypeError for a missing script or name. */
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

/**
 * How a {@linkcode Script} runs: the context options, plus its pool. It
 * goes after the modules, last.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { Script, type ScriptOptions } from "./script.ts";
 * const options: ScriptOptions = { pool: 2, maxInstructions: 1_000_000, timeout: 1000, libraries: ["string", "math"] };
 * const script = Script.fromString("t.lua", "function main(s) return s:rep(2) .. tostring(io) end", options);
 * strictEqual(await script.run("ab"), "ababnil");
 * script.close();
 * ```
 */
export interface ScriptOptions extends Omit<ContextOptions, "shared"> {
  /** Engines kept for concurrent runs (default 8); more runs wait for a free one. */
  pool?: number;
  /**
   * Run in this many worker threads instead (CPU-bound mains in parallel);
   * values are copied, so functions, byRef and NativeModules cannot go;
   * what they print comes back to this thread for a `stdout` sink, and for `stderr`.
   * Starting a worker needs read access to this library's files (`--allow-read`).
   */
  workers?: number;
}

const DEFAULT_POOL = 8;

/** A pooled engine and the version of the source it loaded. */
interface PoolEntry {
  context: Context;
  version: number;
}
const NO_OPTIONS: CallOptions = {};

/**
 * A Lua script whose `main(...)` runs on each {@linkcode run}. Each
 * concurrent run gets an engine of its own from the pool, so a `main` that
 * waits does not hold up the others.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { LuaError, Script } from "../mod.ts";
 * const fib = Script.fromString("fib.lua", `
 *   function main(n)
 *     if n < 2 then return 1 end
 *     return main(n - 2) + main(n - 1)
 *   end`);
 * strictEqual(await fib.run(10), 89);
 * fib.update(`function main(n) error("no " .. n) end`);
 * const e = await fib.run(1).catch((e) => e);
 * strictEqual(e instanceof LuaError && e.line, 1);
 * fib.close();
 * ```
 *
 * With `{ workers: n }` among the options the same API runs `main` in
 * worker threads, CPU-bound runs in parallel.
 */
export class Script {
  /** The name errors give the script (the path, for {@linkcode Script.fromFile}). */
  readonly name: string;
  /** The options it was made with. */
  readonly options: ScriptOptions;
  /** The modules `require` finds. */
  readonly modules: readonly Module[];
  #source: string;
  #version = 0;
  #closed = false;
  readonly #idle: PoolEntry[] = [];
  #busy = 0;
  // Runs waiting for an engine when the pool is full.
  readonly #queue: { resolve: (entry: PoolEntry) => void; reject: (e: unknown) => void }[] = [];
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
    checkCount("pool", options.pool);
    checkCount("workers", options.workers);
    if (options.workers !== undefined) {
      if (modules.some((m) => m instanceof NativeModule)) {
        throw new TypeError("a NativeModule cannot go to workers (its functions live in this thread)");
      }
      checkSyntax(this.name, source, modules); // here, not in a worker; the top level runs only in the workers
      this.#workers = new WorkerPool(options.workers, this.#blueprint(), options);
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

  /**
   * A script from a file; `path` names it in error messages, and `require`, `import` and `spawn` look beside it.
   * Rejects as `fromString` throws, or when the file cannot be read.
   */
  static async fromFile(path: string, ...rest: (Module | ScriptOptions)[]): Promise<Script> {
    return new Script(path, await Deno.readTextFile(path), [{ scriptPath: path }, ...rest]);
  }

  /** The source later runs use. */
  get source(): string {
    return this.#source;
  }

  /** What a worker needs to build this script's engines. */
  #blueprint() {
    const { pool: _pool, workers: _workers, stdout: _stdout, stderr: _stderr, ...options } = this.options;
    return {
      name: this.name,
      source: this.#source,
      modules: this.modules.map((m) => {
        const { script } = m as ScriptModule;
        return { name: m.name, scriptName: script.name, source: script.source };
      }),
      options,
      relayOutput: this.options.stdout !== undefined,
      relayErrors: this.options.stderr !== undefined,
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
      context.runTopLevel(this.#source, `@${this.name}`);
    } catch (e) {
      context.close();
      throw e;
    }
    return context;
  }

  /**
   * Runs `main(...args)` and returns its first result. Rejects with
   * {@linkcode LuaError} for a Lua error, a TypeError or RangeError for an
   * argument Lua cannot hold, and an Error once the script is closed.
   */
  run(...args: unknown[]): Promise<unknown> {
    return this.#start(NO_OPTIONS, args);
  }

  /**
   * {@linkcode run} with an `AbortSignal` and a time limit for this run.
   *
   * ```ts
   * import { strictEqual } from "node:assert";
   * import { Script } from "./script.ts";
   * const script = Script.fromString("slow.lua", "function main(s) sleep(s) return 'woke' end");
   * const e = await script.runWith({ timeout: 50 }, 10).catch((e: Error) => e);
   * strictEqual((e as Error).message, "timeout: the call ran longer than 50 ms");
   * strictEqual(await script.runWith({ signal: AbortSignal.timeout(1000) }, 0.01), "woke");
   * script.close();
   * ```
   */
  runWith(options: CallOptions | undefined, ...args: unknown[]): Promise<unknown> {
    let checked: CallOptions;
    try {
      checked = callOptions(options);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#start(checked, args);
  }

  #start(options: CallOptions, args: unknown[]): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error(`script ${this.name} is closed`));
    if (this.#workers) return this.#workers.run(args, options);
    // An engine counts as busy from the moment a run takes it, so the pool never grows past its size.
    const entry = this.#idle.pop();
    if (entry && entry.version === this.#version) {
      this.#busy++;
      return this.#runOn(entry, options, args);
    }
    if (entry) entry.context.close();
    if (this.#idle.length + this.#busy < (this.options.pool ?? DEFAULT_POOL)) {
      let fresh: PoolEntry;
      try {
        fresh = { context: this.#newContext(), version: this.#version };
      } catch (e) {
        return Promise.reject(e);
      }
      this.#busy++;
      return this.#runOn(fresh, options, args);
    }
    return this.#waitForEngine(options, args);
  }

  /** Queues a run until #release hands it an engine (kept counted as busy); its limits bind the wait, which counts toward its timeout. */
  #waitForEngine(options: CallOptions, args: unknown[]): Promise<unknown> {
    if (options.signal?.aborted) return Promise.reject(new Error("the call was aborted"));
    const timeout = options.timeout ?? this.options.timeout;
    const since = performance.now();
    return new Promise<PoolEntry>((resolve, reject) => {
      const leave = (message: string) => {
        this.#queue.splice(this.#queue.indexOf(waiter), 1);
        settle();
        reject(new Error(message));
      };
      const abort = () => leave("the call was aborted");
      const disarm = timeout === undefined ? () => {} : after(timeout, () => leave(timeoutMessage(timeout)));
      const settle = () => {
        disarm();
        options.signal?.removeEventListener("abort", abort);
      };
      const waiter = {
        resolve: (entry: PoolEntry) => (settle(), resolve(entry)),
        reject: (e: unknown) => (settle(), reject(e)),
      };
      options.signal?.addEventListener("abort", abort, { once: true });
      this.#queue.push(waiter);
    }).then((entry) => this.#runOn(entry, options, args, since));
  }

  #runOn(entry: PoolEntry, options: CallOptions, args: unknown[], since?: number): Promise<unknown> {
    let result: unknown;
    try {
      result = entry.context.invoke("main", options, args, since);
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

  /** Gives the engine of a run that ended to a waiting run (it stays busy), or back to the pool. */
  #release(entry: PoolEntry): void {
    const spent = this.#closed || entry.context.engine.stopped !== undefined || entry.version !== this.#version;
    if (spent) entry.context.close();
    let next = this.#queue.shift();
    if (next && !spent) return next.resolve(entry);
    // A fresh engine takes a spent one's place; a waiting run it fails for rejects and the next one tries again.
    for (; next; next = this.#queue.shift()) {
      try {
        return next.resolve({ context: this.#newContext(), version: this.#version });
      } catch (e) {
        next.reject(e);
      }
    }
    this.#busy--;
    if (!spent) this.#idle.push(entry);
  }

  /**
   * Swaps the source for later runs; runs in flight finish on the old one.
   * Throws {@linkcode LuaError} (and keeps the old source) when the new one
   * does not load.
   */
  update(source: string): void {
    if (this.#closed) throw new Error(`script ${this.name} is closed`);
    if (this.#workers) {
      checkSyntax(this.name, source, this.modules);
      this.#source = source;
      return this.#workers.update(this.#blueprint());
    }
    const previous = this.#source;
    this.#source = source;
    let fresh: Context;
    try {
      fresh = this.#newContext();
    } catch (e) {
      this.#source = previous;
      throw e;
    }
    this.#version++;
    for (const entry of this.#idle.splice(0)) entry.context.close();
    // Engines in flight still count: a full pool makes the new code's engine when one of them comes back.
    if (this.#busy < (this.options.pool ?? DEFAULT_POOL)) this.#idle.push({ context: fresh, version: this.#version });
    else fresh.close();
  }

  /** Frees every engine; runs in flight finish first, later runs fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#idle.splice(0)) entry.context.close();
    // Runs still waiting for an engine never started: they fail as later runs do.
    for (const waiter of this.#queue.splice(0)) waiter.reject(new Error(`script ${this.name} is closed`));
    this.#workers?.close();
  }
}

/** Compiles a script's source and its script modules' without running them: a syntax error throws {@linkcode LuaError}. */
function checkSyntax(name: string, source: string, modules: readonly Module[]): void {
  const compiler = new Context({ solvm: false });
  try {
    compiler.compile(source, `@${name}`);
    for (const m of modules) if (m instanceof ScriptModule) compiler.compile(m.script.source, `@${m.script.name}`);
  } finally {
    compiler.close();
  }
}

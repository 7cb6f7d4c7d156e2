/**
 * One Lua state for TypeScript programs: run code, call functions, pass
 * values both ways, with limits, selective libraries, GC control,
 * bytecode, debug hooks and shared tables (../shared/seeds/embedding-features.md).
 *
 * @module
 */
import { type CallLimit, CallStopped, type DebugEvents, type DebugHook, Engine } from "../runtime/engine.ts";
import type { OutputSink } from "../runtime/output.ts";
import { LuaError } from "../runtime/errors.ts";
import { Values } from "../runtime/values.ts";
import { LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS, LUA_TFUNCTION, LUA_TTABLE, type LuaState } from "../runtime/lua.ts";
import { installGlobals } from "../host/script.ts";
import { denoFileSystem } from "../host/filesystem.ts";
import { after } from "../runtime/_timer.ts";
import { checkCount } from "../runtime/args.ts";

/** Lua's standard libraries that can be left out (the base library is always there); see {@linkcode ContextOptions.libraries}. */
export type LuaLibrary = "coroutine" | "table" | "io" | "os" | "string" | "math" | "utf8" | "debug" | "package";

const ALL_LIBRARIES: LuaLibrary[] = ["coroutine", "table", "io", "os", "string", "math", "utf8", "debug", "package"];

/**
 * How a {@linkcode Context} is made. A call stopped by `maxInstructions`,
 * `timeout` or its `signal` ends alone and the context stays usable: a
 * call that waits (sleep, a channel, I/O) is ended where it waits, one
 * that runs gets an error no `pcall` can catch. Goroutines a call starts
 * stay bound by its limits until they end, even after the call returns;
 * those of a call that fails for a limit or a deadlock end with it. Only
 * a goroutine no call started (one a script's top level or a timer's
 * callback started) running past `maxInstructions` stops the whole
 * context: later calls fail with the same message (a {@linkcode Script}
 * replaces such an engine by itself). With `timeout`, such Lua may hold
 * the event loop that long at a stretch while no call's limit binds it;
 * past it the goroutine running ends, its error going to `on_error` or stderr.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { Context, type ContextOptions } from "./context.ts";
 * const options: ContextOptions = { maxMemory: 16 * 1024 * 1024, maxInstructions: 100_000, libraries: ["string"] };
 * const lua = new Context(options);
 * strictEqual(await lua.execute("return tostring(io) .. ' ' .. select(2, pcall(string.rep, 'x', 1e8))"), "nil not enough memory");
 * const e = await lua.execute("while true do end").catch((e: Error) => e);
 * strictEqual((e as Error).message, "instruction limit exceeded: the script ran more than 100000 Lua instructions");
 * lua.close();
 * ```
 */
export interface ContextOptions {
  /** Bytes the Lua state may use (default 256 MiB); past it Lua raises "not enough memory". */
  maxMemory?: number;
  /** Lua instructions (a whole number, at least 1) each `execute` or `call` may run; checking makes Lua about 2x slower. */
  maxInstructions?: number;
  /**
   * Actors (`spawn`, `supervise`'s children, and those they start) alive at once (a whole number, at least 1;
   * default 256, as the CLI's `--max-actors`). Each runs in a thread of its own, about 13 MB; past the limit
   * `spawn` raises an error.
   */
  maxActors?: number;
  /** Milliseconds (above 0) each `execute` or `call` may take, even inside a loop that never yields. */
  timeout?: number;
  /** The standard libraries to open (default: all); the base library is always open. */
  libraries?: LuaLibrary[];
  /** Install SolVM's globals (`go`, `chan`, `sleep`, `http_get`, ...). Default true. */
  solvm?: boolean;
  /** Allow {@linkcode Context.loadBytecode} and bytecode in Lua's own `load`; bytecode from untrusted sources can crash the state. */
  allowBytecode?: boolean;
  /** Tables shared with other contexts, by global name (see {@linkcode createSharedTable}). */
  shared?: Record<string, SharedTable>;
  /** Where `print` goes, its actors' too. Default: standard output. */
  stdout?: OutputSink;
  /** Where `io.stderr` output and reports of errors no call receives (a goroutine's) go. Default: standard error. */
  stderr?: (text: string) => void;
  /**
   * Path of the script file the context runs (`Script.fromFile` sets it): `require`, `import` and `spawn`
   * look beside it, as the `solvm` command does for its main script.
   */
  scriptPath?: string;
}

/**
 * Limits of one `execute` or `call`.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { Context } from "./context.ts";
 * const lua = new Context();
 * const controller = new AbortController();
 * setTimeout(() => controller.abort(), 20);
 * const e = await lua.execute("sleep(10)", "=wait", { signal: controller.signal }).catch((e: Error) => e);
 * strictEqual((e as Error).message, "the call was aborted");
 * strictEqual(await lua.execute("return 'still usable'"), "still usable");
 * lua.close();
 * ```
 */
export interface CallOptions {
  /**
   * Stops the call when aborted. The abort is an event: a loop that never
   * yields holds the thread, so it sees the abort only once it ends (use
   * `timeout` for such loops).
   */
  signal?: AbortSignal;
  /** Milliseconds (above 0) the call may take (stops a never-yielding loop only when the context has a `timeout` or `maxInstructions`). */
  timeout?: number;
}

const DEFAULT_MAX_MEMORY = 256 * 1024 * 1024;

/** The limit of a call made without one while others have theirs. */
const NO_LIMIT: CallLimit = { at: Infinity, message: "" };

/**
 * A Lua state with SolVM's engine.
 *
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert";
 * import { Context } from "./context.ts";
 * const lua = new Context();
 * strictEqual(await lua.execute("return 6 * 7"), 42);
 * lua.setGlobal("greet", (name: string) => `hi ${name}`);
 * strictEqual(await lua.execute("return greet('ana')"), "hi ana");
 * await lua.execute("function pair(t) return { t.b, t.a } end");
 * deepStrictEqual(await lua.call("pair", { a: 1, b: [2n ** 60n] }), [[2n ** 60n], 1]);
 * lua.close();
 * ```
 */
export class Context {
  /** The engine underneath (for host families and tests). */
  readonly engine: Engine;
  readonly #values: Values;
  readonly #options: ContextOptions;
  readonly #shared = new Set<SharedTable>();
  /** The limits of this context's calls in progress. */
  readonly #limits = new Set<CallLimit>();
  /** Calls begun and not yet settled: while any is, they share one instruction count. */
  #callsInProgress = 0;
  // The base library's collectgarbage, kept before a script can replace the global.
  readonly #collectRef: number;

  /** A fresh Lua state; throws a TypeError for an unknown library name or a shared value that is no SharedTable. */
  constructor(options: ContextOptions = {}) {
    if (options.libraries !== undefined && !Array.isArray(options.libraries)) {
      throw new TypeError(`libraries must be a list of library names, got ${typeof options.libraries}`);
    }
    for (const library of options.libraries ?? []) {
      if (!ALL_LIBRARIES.includes(library)) {
        throw new TypeError(`unknown Lua library "${library}" (${ALL_LIBRARIES.join(", ")})`);
      }
    }
    const { shared } = options;
    // A plain object: a SharedTable itself (the braces forgotten), a Map or an array would share nothing.
    if (
      shared !== undefined &&
      (typeof shared !== "object" || shared === null || Object.getPrototypeOf(shared) !== Object.prototype)
    ) {
      const got = shared === null
        ? "null"
        : Array.isArray(shared)
        ? "an array"
        : shared instanceof SharedTable
        ? "a SharedTable (write { name: table })"
        : typeof shared === "object"
        ? `a ${shared.constructor?.name ?? "object"}`
        : typeof shared;
      throw new TypeError(`shared must be an object of global names to SharedTables, got ${got}`);
    }
    for (const [name, table] of Object.entries(shared ?? {})) {
      if (!(table instanceof SharedTable)) {
        throw new TypeError(
          `shared.${name} must be a SharedTable (made with createSharedTable(...)), got ${typeof table}`,
        );
      }
    }
    checkTimeout(options.timeout);
    checkCount("maxActors", options.maxActors); // 0 would refuse every spawn
    if (options.stderr !== undefined && typeof options.stderr !== "function") {
      throw new TypeError(`stderr must be a function of text, got ${kindOf(options.stderr)}`);
    }
    this.#options = options;
    this.engine = Engine.createSync({
      stdout: options.stdout,
      stderr: options.stderr,
      files: denoFileSystem(),
      maxMemory: options.maxMemory ?? DEFAULT_MAX_MEMORY,
      maxInstructions: options.maxInstructions,
      deadlines: options.timeout !== undefined,
      turnLimit: options.timeout,
      textOnly: !options.allowBytecode,
    });
    this.#values = new Values(this.engine, (pushCall) => this.#callWith(undefined, undefined, pushCall));
    const { vm, L } = this.engine;
    vm.api.lua_getglobal(L, vm.cstr("collectgarbage"));
    this.#collectRef = vm.ref(L);
    if (options.solvm !== false) {
      installGlobals(this.engine, {
        mainScript: options.scriptPath,
        loaded: new Set(),
        embedded: true,
        ownOutput: options.stdout !== undefined,
        ownErrors: options.stderr !== undefined,
        maxActors: options.maxActors,
      });
    }
    const kept = new Set(options.libraries ?? ALL_LIBRARIES);
    const dropped = ALL_LIBRARIES.filter((library) => !kept.has(library));
    if (dropped.length > 0) {
      this.#run(
        `local loaded = package.loaded for _, name in ipairs({ "${dropped.join('", "')}" }) do ` +
          `_G[name] = nil loaded[name] = nil end` + (kept.has("package") ? "" : " require = nil") +
          // Strings' methods are the string library too: ("x"):rep(9) must not reach it.
          (kept.has("string") ? "" : ` getmetatable("").__index = nil`),
      );
    }
    for (const [name, table] of Object.entries(options.shared ?? {})) table.attach(this, name);
  }

  /** Throws once the context is closed: its Lua state is freed memory. */
  #open(): Engine {
    if (this.engine.closed) throw new Error("the context is closed");
    return this.engine;
  }

  #run(source: string): void {
    const { vm, L } = this.engine;
    const failure = vm.load(L, source, "=[solvm] context");
    if (failure || vm.api.lua_pcallk(L, 0, 0, 0, 0, 0) !== 0) throw new Error(failure ?? vm.toText(L, -1));
  }

  /**
   * Runs a chunk of Lua and returns its first result. It may wait
   * (`sleep`, channels, `http_get`); a CPU-bound chunk holds the caller's
   * thread while it runs (use a {@linkcode Script} with `workers` to run elsewhere).
   */
  execute(source: string | Uint8Array, name = "=chunk", options: CallOptions = {}): Promise<unknown> {
    return settled(() => {
      checkSource("execute", source);
      checkName("execute", name);
      return this.#callWith(options, undefined, (T) => {
        const failure = this.engine.vm.load(T, source, name);
        if (failure) throw new LuaError(failure);
        return 0;
      });
    });
  }

  /** Calls global function `name` with `args` and returns its first result. */
  call(name: string, ...args: unknown[]): Promise<unknown> {
    return settled(() => this.invoke(name, {}, args)); // args not spread again: V8 caps a spread's length
  }

  /** {@linkcode call} with limits for this call. */
  callWith(name: string, options: CallOptions | undefined, ...args: unknown[]): Promise<unknown> {
    return settled(() => this.invoke(name, options, args));
  }

  /**
   * @internal {@linkcode callWith} without a Promise when the call ends at
   * once: the result, or a Promise when the call waits. Throws at once.
   */
  invoke(name: string, options: CallOptions | undefined, args: unknown[], since?: number): unknown {
    return this.#callWith(options, since, (T, limit) => {
      const api = this.engine.vm.api;
      if (this.#pushGlobal(T, name, limit) !== LUA_TFUNCTION) {
        api.lua_settop(T, -2);
        throw new LuaError(`no function '${name}' to call (the script defines no global function ${name})`);
      }
      return this.#values.pushArgs(T, args);
    });
  }

  /** @internal Runs `source` as a script's top level, outside any call (it cannot wait); a failure throws as a call's does. */
  runTopLevel(source: string, chunkname: string): void {
    const engine = this.#open();
    const failure = engine.vm.load(engine.L, source, chunkname);
    if (failure) throw new LuaError(failure);
    let error: string | undefined;
    try {
      error = engine.runTopLevel(this.#ownLimit());
    } catch (e) {
      throw explain(e);
    }
    if (error !== undefined) throw new LuaError(error);
  }

  /**
   * The engine call behind `execute` and `call`, with limits armed and cleared; its time counts from `since` (default
   * now). `pushCall` is given the call's time limit, for the Lua it may run itself (a metamethod of `_G`).
   */
  #callWith(
    given: CallOptions | undefined,
    since: number | undefined,
    pushCall: (T: number, limit: CallLimit | undefined) => number,
  ): unknown {
    const engine = this.#open();
    // A call begun while another waits (a callback the host runs for it) shares that one's count: a fresh count for
    // each would let the waiting call run on for ever, each callback giving it maxInstructions more.
    if (this.#callsInProgress === 0) engine.resetInstructionCount();
    this.#callsInProgress++;
    let result: unknown;
    try {
      result = this.#callArmed(engine, given, since, pushCall);
    } finally {
      if (!(result instanceof Promise)) this.#callsInProgress--; // it returned or threw
    }
    return result instanceof Promise ? result.finally(() => this.#callsInProgress--) : result;
  }

  /** {@linkcode #callWith}'s call, with its time limit and signal armed, and cleared once it settles. */
  #callArmed(
    engine: Engine,
    given: CallOptions | undefined,
    since: number | undefined,
    pushCall: (T: number, limit: CallLimit | undefined) => number,
  ): unknown {
    const options = callOptions(given);
    const timeout = options.timeout ?? this.#options.timeout;
    // Before the deadline is armed: a refused call must leave no timer behind.
    if (options.signal?.aborted) throw new Error("the call was aborted");
    const deadline = timeout === undefined ? Infinity : (since ?? performance.now()) + timeout;
    if (deadline <= performance.now()) throw new Error(timeoutMessage(timeout!)); // spent waiting for an engine
    const pushWithin = (T: number) =>
      pushCall(T, timeout === undefined ? undefined : { at: deadline, message: timeoutMessage(timeout) });
    if (timeout === undefined && options.signal === undefined) {
      // The hot path of Script.run: nothing to arm, nothing to clear.
      let result: unknown;
      try {
        // Beside calls that have a limit, one without has its own, so that theirs never stops it.
        result = engine.call(pushWithin, this.#values.reader, {
          limit: this.#limits.size > 0 ? NO_LIMIT : undefined,
        });
      } catch (e) {
        throw flushedFailure(engine, e);
      }
      return flushedResult(engine, result);
    }
    // The call's limit stops Lua its thread runs; stopWaiting ends the call alone if it waits then.
    const stopWaiting = new AbortController();
    const limit: CallLimit = { at: Infinity, message: "" };
    const stop = (message: string) => {
      Object.assign(limit, { at: performance.now(), message });
      this.#limitsChanged();
      stopWaiting.abort(message);
    };
    let disarm = () => {};
    if (timeout !== undefined) {
      const message = timeoutMessage(timeout);
      Object.assign(limit, { at: deadline, message });
      disarm = after(Math.max(0, deadline - performance.now()), () => stop(message)); // a negative delay is a Node warning
    }
    this.#limits.add(limit);
    this.#limitsChanged();
    const abort = () => stop("the call was aborted");
    options.signal?.addEventListener("abort", abort);
    // The limits hold until the goroutines the call started have ended too.
    const release = () => {
      options.signal?.removeEventListener("abort", abort);
      disarm();
      this.#limits.delete(limit);
      this.#limitsChanged();
    };
    let result: unknown;
    try {
      result = engine.call(pushWithin, this.#values.reader, {
        stopWaiting: stopWaiting.signal,
        limit,
        released: release,
      });
    } catch (e) {
      throw flushedFailure(engine, e);
    }
    return flushedResult(engine, result);
  }

  /**
   * Goroutines and coroutines that calls started have no limit of their
   * own: the earliest limit of the calls in progress (or whose goroutines
   * live on) binds them.
   */
  #limitsChanged(): void {
    let first: CallLimit | undefined;
    for (const limit of this.#limits) if (!first || limit.at < first.at) first = limit;
    if (first && first.at < Infinity) this.engine.setDeadline(first.at, first.message, false);
    else this.engine.setDeadline(undefined);
  }

  /**
   * Pushes global `name` on `L` and returns its type. Only a metatable on
   * `_G` runs Lua here (a strict `_G`'s `__index` raises): then the lookup
   * is protected, so its error is thrown as a LuaError, not a panic, and
   * bound by `limit` and `maxInstructions` (past them it throws CallStopped).
   */
  #pushGlobal(L: LuaState, name: string, limit: CallLimit | undefined): number {
    const { vm } = this.engine;
    const api = vm.api;
    api.lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    const plain = api.lua_getmetatable(L, -1) === 0;
    api.lua_settop(L, plain ? -2 : -3);
    return plain
      ? api.lua_getglobal(L, vm.cstr(name))
      : this.engine.protectWithin(L, limit, 0, 1, (L) => api.lua_getglobal(L, vm.cstr(name)));
  }

  /** The time limit of a top level, `getGlobal` or `setGlobal` that starts now: the context's `timeout`, as a call's. */
  #ownLimit(): CallLimit | undefined {
    const timeout = this.#options.timeout;
    return timeout === undefined ? undefined : { at: performance.now() + timeout, message: timeoutMessage(timeout) };
  }

  /**
   * Sets global `name` (functions become callable from Lua; see
   * runtime/values.ts). An error `_G`'s `__newindex` raises is thrown as a LuaError.
   */
  setGlobal(name: string, value: unknown): void {
    const { vm, L } = this.#open();
    const top = vm.api.lua_gettop(L);
    try {
      this.#values.push(L, value);
    } catch (e) {
      vm.api.lua_settop(L, top); // a value refused halfway leaves the tables built so far
      throw e;
    }
    // Protected: _G's __newindex may raise, and a new global may need memory; it runs under the context's limits.
    try {
      this.engine.protectWithin(L, this.#ownLimit(), 1, 0, (L) => vm.api.lua_setglobal(L, vm.cstr(name)));
    } catch (e) {
      throw explain(e);
    }
  }

  /**
   * The value of global `name`; an error `_G`'s `__index` raises is thrown as a LuaError, and one that runs past the
   * context's `timeout` or `maxInstructions` is stopped with their error.
   */
  getGlobal(name: string): unknown {
    const { vm, L } = this.#open();
    const top = vm.api.lua_gettop(L);
    try {
      this.#pushGlobal(L, name, this.#ownLimit());
    } catch (e) {
      throw explain(e);
    }
    try {
      return this.#values.read(L, -1);
    } finally {
      vm.api.lua_settop(L, top); // a value refused halfway leaves what its reading pushed
    }
  }

  /** Adds a `package.path` pattern (`"./lua_modules/?.lua"`) that `require` searches. */
  addSearchPath(pattern: string): void {
    if (!pattern.includes("?")) throw new TypeError(`a search path needs a '?' for the module name, got "${pattern}"`);
    this.#withPackage((L, api, vm) => {
      api.lua_getfield(L, -1, vm.cstr("path"));
      const current = vm.toText(L, -1);
      api.lua_settop(L, -2);
      vm.pushString(L, `${current};${pattern}`);
      api.lua_setfield(L, -2, vm.cstr("path"));
    });
  }

  /** Makes `require(name)` return `table` (its functions callable from Lua). */
  registerModule(name: string, table: Record<string, unknown>): void {
    this.#withPackage((L, api, vm) => {
      api.lua_getfield(L, -1, vm.cstr("loaded"));
      this.#values.push(L, table);
      api.lua_setfield(L, -2, vm.cstr(name));
      api.lua_settop(L, -2);
    });
  }

  /** Makes `require(name)` run Lua `source` once and return what it returns. */
  registerSource(name: string, source: string, chunkname = `@${name}`): void {
    this.#withPackage((L, api, vm) => {
      api.lua_getfield(L, -1, vm.cstr("preload"));
      const failure = vm.load(L, source, chunkname);
      if (failure) {
        api.lua_settop(L, -2);
        throw new LuaError(failure);
      }
      api.lua_setfield(L, -2, vm.cstr(name));
      api.lua_settop(L, -2);
    });
  }

  /** Runs `body` with the package table on top, protected: the script may have given it or its tables metamethods. */
  #withPackage(
    body: (L: number, api: Engine["vm"]["api"], vm: Engine["vm"]) => void,
  ): void {
    const { vm, L } = this.#open();
    vm.protect(L, 0, 0, (L) => {
      if (vm.api.lua_getglobal(L, vm.cstr("package")) !== LUA_TTABLE) {
        throw new Error("the package library is not open in this context (see the libraries option)");
      }
      body(L, vm.api, vm);
    });
  }

  /** Bytes the Lua heap holds now. */
  getMemoryUsage(): number {
    return Math.round((this.gc("count") as number) * 1024);
  }

  /**
   * Controls the garbage collector: "collect" (a full cycle), "stop",
   * "restart", "step", or "count" (kilobytes in use, returned).
   */
  gc(command: "collect" | "stop" | "restart" | "count" | "step"): number | undefined {
    if (!["collect", "stop", "restart", "count", "step"].includes(command)) {
      throw new TypeError(`unknown gc command "${command}" (collect, stop, restart, count, step)`);
    }
    const { vm, L } = this.#open();
    const api = vm.api;
    vm.pushRef(L, this.#collectRef);
    vm.pushString(L, command);
    if (api.lua_pcallk(L, 1, 1, 0, 0, 0) !== 0) {
      const message = vm.toText(L, -1);
      api.lua_settop(L, -2);
      throw new Error(message);
    }
    const value = command === "count" ? api.lua_tonumberx(L, -1, 0) : undefined;
    api.lua_settop(L, -2);
    return value;
  }

  /** Compiles `source` to Lua bytecode without running it; a syntax error throws {@linkcode LuaError}. */
  compile(source: string | Uint8Array, name = "=chunk"): Uint8Array {
    checkSource("compile", source);
    checkName("compile", name);
    const { vm, L } = this.#open();
    const api = vm.api;
    const failure = vm.load(L, source, name);
    if (failure) throw new LuaError(failure);
    const chunks: Uint8Array[] = [];
    const writer = vm.lua.addFunction((_L: number, p: number, size: number) => {
      chunks.push(vm.lua.heap().slice(p, p + size));
      return 0;
    }, "iiiii");
    try {
      api.lua_dump(L, writer, 0, 0);
    } finally {
      vm.lua.removeFunction(writer);
      api.lua_settop(L, -2);
    }
    const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) bytes.set(c, (at += c.length) - c.length);
    return bytes;
  }

  /**
   * Runs bytecode made by {@linkcode compile} and returns its first result.
   * Refused unless the context was made with `allowBytecode: true`.
   */
  loadBytecode(bytes: Uint8Array, name = "=bytecode"): Promise<unknown> {
    if (!this.#options.allowBytecode) {
      return Promise.reject(
        new Error("loadBytecode is refused: make the context with allowBytecode: true (only for trusted bytecode)"),
      );
    }
    return settled(() => {
      if (!(bytes instanceof Uint8Array)) {
        throw new TypeError(`loadBytecode's bytes must be a Uint8Array, got ${kindOf(bytes)}`);
      }
      checkName("loadBytecode", name);
      return this.#callWith({}, undefined, (T) => {
        const failure = this.engine.vm.load(T, bytes, name, "bt");
        if (failure) throw new LuaError(failure);
        return 0;
      });
    });
  }

  /** Calls `hook(event, line, name)` on the events asked for (see {@linkcode DebugEvents}). */
  setHook(hook: DebugHook, events: DebugEvents): void {
    if (typeof hook !== "function") throw new TypeError("setHook needs a function");
    if (typeof events !== "object" || events === null) {
      throw new TypeError(`setHook needs an object of events ({ call, return, line, count }), got ${kindOf(events)}`);
    }
    const { count } = events;
    if (count !== undefined) {
      if (typeof count !== "number") throw new TypeError(`setHook's count must be a number, got ${typeof count}`);
      // Lua takes a count below 1 as no count hook: it would be set and never fire.
      if (!Number.isInteger(count) || count < 1 || count > 0x7fffffff) {
        throw new RangeError(
          `setHook's count must be a whole number of instructions from 1 to 2147483647, got ${count}`,
        );
      }
    }
    if (!events.call && !events.return && !events.line && !count) {
      throw new TypeError("setHook needs at least one of call, return, line or count");
    }
    this.#open().setDebugHook(hook, events);
  }

  /** Stops calling the hook. */
  removeHook(): void {
    this.#open().removeDebugHook();
  }

  /** Frees the Lua state; later calls fail. */
  close(): void {
    for (const table of this.#shared) table.detach(this);
    this.engine.close();
  }

  /** @internal Sets a shared table's copy. */
  attachShared(table: SharedTable, name: string, value: unknown): void {
    this.#shared.add(table);
    this.setGlobal(name, value);
  }

  /** @internal Updates one field of a shared table's copy; an error its `__newindex` raises is thrown as a LuaError. */
  updateShared(name: string, key: string, value: unknown): void {
    const { vm, L } = this.engine;
    const api = vm.api;
    const top = api.lua_gettop(L);
    try {
      this.#values.push(L, value);
    } catch (e) {
      api.lua_settop(L, top); // as in setGlobal
      throw e;
    }
    // Protected: the script may have given _G or the copy metamethods that raise.
    const updated = vm.protect(L, 1, 0, (L) => {
      if (api.lua_getglobal(L, vm.cstr(name)) !== LUA_TTABLE) return false;
      api.lua_pushvalue(L, 1);
      api.lua_setfield(L, -2, vm.cstr(key));
      return true;
    });
    if (!updated) this.setGlobal(name, { [key]: value });
  }
}

/** Throws unless `timeout` is undefined or a number of milliseconds above 0 (a timer would take anything else as 1 ms). */
function checkTimeout(timeout: unknown): void {
  if (timeout === undefined) return;
  if (typeof timeout !== "number") {
    throw new TypeError(`timeout must be a number of milliseconds, got ${typeof timeout}`);
  }
  if (!(timeout > 0)) throw new RangeError(`timeout must be a number of milliseconds above 0, got ${timeout}`);
}

/**
 * @internal The options of one call, `undefined` being none; throws a
 * TypeError for what is not an object of them (or a RangeError for a timeout out of range).
 */
export function callOptions(options: CallOptions | undefined): CallOptions {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`call options must be an object ({ signal, timeout }), got ${kindOf(options)}`);
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new TypeError(`signal must be an AbortSignal, got ${kindOf(options.signal)}`);
  }
  checkTimeout(options.timeout);
  return options;
}

/** Throws unless `source`, given to `method`, is Lua source: text or bytes. */
function checkSource(method: string, source: unknown): void {
  // vm.load would read anything else (an ArrayBuffer, a number) as zero bytes: an empty chunk that runs without error.
  if (typeof source === "string" || source instanceof Uint8Array) return;
  throw new TypeError(`${method}'s source must be a string or a Uint8Array, got ${kindOf(source)}`);
}

function checkName(method: string, name: unknown): void {
  // An options object given second (execute(source, { timeout })) failed inside with "startsWith is not a function".
  if (typeof name === "string") return;
  const third = method === "execute" ? " (options go third: execute(source, name, options))" : "";
  throw new TypeError(`${method}'s chunk name must be a string, got ${kindOf(name)}${third}`);
}

/** What `value` is, for a message: its type, `null`, or an object's class (`ArrayBuffer`). */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return (value as object).constructor?.name ?? "object";
}

/** @internal The error message of a call that ran past its `timeout` (milliseconds). */
export function timeoutMessage(timeout: number): string {
  return `timeout: the call ran longer than ${timeout} ms`;
}

/** What `work` returns or throws, as a Promise. */
function settled(work: () => unknown): Promise<unknown> {
  try {
    return Promise.resolve(work());
  } catch (e) {
    return Promise.reject(e);
  }
}

/** A call's failure, once what it printed is out. */
function flushedFailure(engine: Engine, e: unknown): unknown {
  engine.stdout.flush();
  return explain(e);
}

/** A call's result (or a Promise of it), handed on once what it printed is out. */
function flushedResult(engine: Engine, result: unknown): unknown {
  if (!(result instanceof Promise)) {
    engine.stdout.flush();
    return result;
  }
  return result.then((v) => (engine.stdout.flush(), v), (e) => {
    throw flushedFailure(engine, e);
  });
}

/** A failure of a call, as the caller sees it. */
function explain(e: unknown): unknown {
  if (e instanceof CallStopped) {
    const { outcome } = e;
    if (outcome.status === "error") return new LuaError(outcome.message, outcome.traceback);
    if (outcome.status === "closed") return new Error("the context was closed before the call ended");
    return new Error(e.message);
  }
  return e;
}

/**
 * A table several contexts see, each as a global holding its own copy:
 * `set` updates every copy at once; `sync` pushes the whole table again
 * after changes made to the object {@linkcode get} returns. Lua's own
 * writes to its copy stay in that context.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { Context, SharedTable } from "./context.ts";
 * const config = new SharedTable({ limits: { rate: 10 } });
 * const a = new Context({ shared: { config } });
 * const b = new Context({ shared: { cfg: config } });
 * (config.get("limits") as { rate: number }).rate = 20;
 * config.sync();
 * strictEqual(await b.execute("return cfg.limits.rate"), 20);
 * config.set("mode", "fast");
 * strictEqual(await a.execute("return config.mode"), "fast");
 * a.close();
 * b.close();
 * ```
 */
export class SharedTable {
  readonly #value: Record<string, unknown>;
  /** Each context's global names for the table (one table may go under several). */
  readonly #contexts = new Map<Context, string[]>();

  /** A table holding a copy of `initial` (copied with `structuredClone`). */
  constructor(initial: Record<string, unknown>) {
    this.#value = structuredClone(initial);
  }

  /** The current value of `key`. */
  get(key: string): unknown {
    return this.#value[key];
  }

  /** Sets `key` in the table and in every context's copy; a copy that refuses it (its `__newindex` raises) leaves all unchanged. */
  set(key: string, value: unknown): void {
    // The copies first: a value Lua cannot hold is refused before the table changes.
    const updated: [Context, string][] = [];
    try {
      for (const [context, names] of this.#contexts) {
        for (const name of names) {
          context.updateShared(name, key, value);
          updated.push([context, name]);
        }
      }
    } catch (e) {
      for (const [context, name] of updated) context.updateShared(name, key, this.#value[key]);
      throw e;
    }
    this.#value[key] = value;
  }

  /** Pushes the whole table to every context again. */
  sync(): void {
    for (const [context, names] of this.#contexts) {
      for (const name of names) context.attachShared(this, name, this.#value);
    }
  }

  /** @internal */
  attach(context: Context, name: string): void {
    this.#contexts.set(context, [...this.#contexts.get(context) ?? [], name]);
    context.attachShared(this, name, this.#value);
  }

  /** @internal */
  detach(context: Context): void {
    this.#contexts.delete(context);
  }
}

/**
 * A table to share between contexts (pass it in {@linkcode ContextOptions.shared}).
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { Context, createSharedTable } from "./context.ts";
 * const settings = createSharedTable({ debug: true });
 * const a = new Context({ shared: { settings } });
 * const b = new Context({ shared: { settings } });
 * settings.set("debug", false);
 * strictEqual(await a.execute("return settings.debug"), false);
 * strictEqual(await b.execute("return settings.debug"), false);
 * a.close();
 * b.close();
 * ```
 */
export function createSharedTable(initial: Record<string, unknown> = {}): SharedTable {
  return new SharedTable(initial);
}

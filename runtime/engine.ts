/**
 * The engine: one Lua state, its goroutine scheduler and the one mechanism
 * that turns an async TypeScript function into a blocking Lua call.
 *
 * A blocking host function starts a Promise and yields its goroutine with
 * `lua_yieldk`; when the Promise settles the goroutine is queued again and
 * its continuation pushes the results (or raises the error) at the call
 * site. Nothing polls: the Deno event loop wakes the engine.
 *
 * @module
 */
import {
  ERRNO,
  errnoOfSystemError,
  loadLuaModule,
  LONGJMP,
  LUA_ERRMEM,
  LUA_MASKCOUNT,
  LUA_MULTRET,
  LUA_OK,
  LUA_TFUNCTION,
  LUA_TNUMBER,
  LUA_TTABLE,
  type LuaState,
  type LuaSystem,
  MAX_WASM_MEMORY,
  NO_FILES,
} from "./lua.ts";
import {
  errorLevel,
  type HostFunction,
  INTERNAL_CHUNK_PREFIX,
  LUA_DEBUG_CURRENTLINE,
  LUA_DEBUG_NAME,
  LUA_DEBUG_SIZE,
  LUA_DEBUG_SOURCE,
  LuaUnwind,
  LuaVM,
  thrownText,
} from "./state.ts";
import { SCHEDULER_LUA } from "./scheduler_lua.ts";
import { log, logEnabled } from "./log.ts";
import {
  newSharedOutput,
  type OutputSink,
  sharedOutput,
  stdoutClosed,
  takeStdoutFailure,
  writeStderr,
} from "./output.ts";
import { after } from "./_timer.ts";
import { checkCount } from "./args.ts";

export type { OutputSink };

/** Go's words for every goroutine waiting on another. */
const DEADLOCK_MESSAGE = "all goroutines are asleep - deadlock!";

/**
 * Pushes the results of a finished blocking call and returns their count.
 * `discard`, when given, releases what the results hold (a connection, say)
 * if no goroutine takes them: the waiting one was ended, or the engine closed.
 */
export type Pusher = ((L: LuaState) => number) & { discard?: () => void };

/**
 * A wait a blocking function started, and how to call it off: the engine
 * does when the goroutine no longer waits for it (its call was stopped),
 * so no timer or request outlives its use. When the engine closes, the
 * family that made the wait ends it (see {@linkcode Engine.onClose}).
 */
/** How {@linkcode Engine.blocking} treats its function. */
export interface BlockingOptions {
  /**
   * The function asks {@linkcode Engine.canPark} itself and does its work
   * at once where the goroutine cannot wait (as C would), instead of
   * being refused there before it starts.
   */
  worksWhereNoWait?: boolean;
}

export interface CancellableWait {
  readonly wait: Promise<Pusher | void>;
  cancel(): void;
  /**
   * False when nothing but what the engine sees (its goroutines, its other
   * waits) can end this wait: alone, it does not keep the run going, and a
   * goroutine left waiting on it is reported as a deadlock.
   */
  readonly holdsRun?: boolean;
}

/** How a watched goroutine (a REPL line at Ctrl-C) may be asked from outside to stop: see {@linkcode Engine.spawnWatched}. */
export interface Interruption {
  /** Whether it is asked to stop now: read by a count hook, so it must be cheap (another thread may set it). */
  requested(): boolean;
  /** Settles once it may have been asked (requested() then says whether it was). */
  asked(): Promise<unknown>;
  /** What it then fails with. */
  readonly message: string;
}

/** How a watched goroutine (the main chunk, a REPL line) ended. */
export type Outcome =
  | { status: "ok" }
  | { status: "error"; message: string; traceback: string }
  | { status: "deadlock"; report: string }
  /** `os.exit(code, close)`; without close, lua5.4 runs no finalizers, so none may change the code. */
  | { status: "exit"; code: number; close?: boolean }
  | { status: "reload" }
  | { status: "timeout"; message: string }
  | { status: "closed" };

/** Options of {@linkcode Engine.create}. */
export interface EngineOptions {
  /** Receives `print` output. Default: standard output. */
  stdout?: OutputSink;
  /** Receives error reports. Default: standard error. */
  stderr?: (text: string) => void;
  /** Told each time the number of resident sources (servers, intervals, ...) changes. */
  onResidentChange?: (count: number) => void;
  /** Files for Lua's `io`/`os` libraries, descriptors 3 and up. Default: none. */
  files?: LuaSystem;
  /**
   * Bytes of memory the Lua state may use (default and most: 2 GiB). Past
   * it an allocation fails with Lua's catchable "not enough memory" error.
   */
  maxMemory?: number;
  /** How many goroutines started by `go` may be alive at once (default: no limit). */
  maxGoroutines?: number;
  /** Names the run in its goroutines' failure reports (`error in NAME, goroutine 2: ...`): an actor's is `actor 1 (path)`. */
  reportName?: string;
  /**
   * Lua VM instructions the run may execute (a whole number, at least 1;
   * default: no limit), counted in steps of 1000. Counting keeps a hook on every instruction: about 2x slower.
   */
  maxInstructions?: number;
  /**
   * Lets {@linkcode Engine.setDeadline} stop even a loop that never yields:
   * the hook then looks at the clock every 1000 instructions (about 2x
   * slower Lua, as with `maxInstructions`). Without it a deadline stops
   * the run only while its goroutines wait.
   */
  deadlines?: boolean;
  /**
   * Milliseconds Lua may hold the event loop in one turn while no deadline
   * binds it (a timer's callback, a goroutine no call started): past it
   * the goroutine running then ends with a timeout error, reported as its
   * failure. Implies the clock checks of `deadlines`.
   */
  turnLimit?: number;
  /**
   * Makes Lua's own `load`, `loadfile`, `dofile` and `require` refuse
   * precompiled bytecode (default: they take it, as in Lua). Bytecode made
   * or altered by hand can corrupt the Lua state: an engine that runs code
   * it does not trust should take source text only.
   */
  textOnly?: boolean;
}

/** Makes Lua's own loaders take source text only (a binary chunk gets Lua's "attempt to load a binary chunk"). */
const TEXT_ONLY_LUA = `
local raw_load, raw_loadfile, select, error, type = load, loadfile, select, error, type
local byte, find, gsub, getinfo = string.byte, string.find, string.gsub, debug.getinfo
-- Arguments are checked here as Lua checks them, so that an error names the caller's line and the function it called.
local function check(n, fname, expected, ok, ...)
  if ok then return end
  local got = select("#", ...) == 0 and "no value" or type((...))
  error("bad argument #" .. n .. " to '" .. fname .. "' (" .. expected .. " expected, got " .. got .. ")", 3)
end
local function optional_text(value)
  local kind = type(value)
  return value == nil or kind == "string" or kind == "number"
end
-- Whether mode (Lua's "b", "t", "bt") lets text load; binary chunks never do here.
local function allows_text(mode)
  return mode == nil or find(mode, "t", 1, true) ~= nil
end
local function text_refused(mode)
  return nil, "attempt to load a text chunk (mode is '" .. mode .. "')"
end
-- C's load raises a reader's bad piece at its caller: here, this chunk. It is placed at the script's line instead.
local function placed(chunk, message)
  if chunk ~= nil then return chunk end
  if type(message) ~= "string" then return nil, message end
  local caller = getinfo(2, "Sl") -- load tail-called this: its caller is next
  local where = caller and caller.currentline > 0 and caller.short_src .. ":" .. caller.currentline .. ": " or ""
  return nil, (gsub(message, "^%[solvm%] loaders:%d+: ", where))
end
function load(...)
  local chunk, name, mode = ...
  local kind = type(chunk)
  check(1, "load", "function", kind == "string" or kind == "number" or kind == "function", ...)
  check(2, "load", "string", optional_text(name), name)
  check(3, "load", "string", optional_text(mode), mode)
  if not allows_text(mode) and not (kind == "string" and byte(chunk) == 27) then
    return text_refused(mode)
  end
  if select("#", ...) > 3 then return placed(raw_load(chunk, name, "t", (select(4, ...)))) end -- an env given, even nil
  return placed(raw_load(chunk, name, "t"))
end
function loadfile(filename, mode, ...)
  check(1, "loadfile", "string", optional_text(filename), filename)
  check(2, "loadfile", "string", optional_text(mode), mode)
  if not allows_text(mode) then return text_refused(mode) end
  if select("#", ...) > 0 then return raw_loadfile(filename, "t", ...) end
  return raw_loadfile(filename, "t")
end
function dofile(filename)
  check(1, "dofile", "string", optional_text(filename), filename)
  local chunk, message = raw_loadfile(filename, "t")
  if not chunk then error(message, 0) end
  return chunk()
end
local searchpath = package.searchpath
package.searchers[2] = function(name)
  local filename, notFound = searchpath(name, package.path)
  if not filename then return notFound end
  local chunk, message = raw_loadfile(filename, "t")
  if not chunk then
    error("error loading module '" .. name .. "' from file '" .. filename .. "':\\n\\t" .. message, 0)
  end
  return chunk, filename
end`;

/**
 * How a {@linkcode Engine.call} ended when the engine stopped it: a limit
 * (after which the engine stays usable when the call came from outside
 * Lua), `os.exit`, a deadlock.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { CallStopped, Engine } from "./engine.ts";
 * const engine = await Engine.create({ maxInstructions: 10_000 });
 * try {
 *   engine.call((T) => (engine.vm.load(T, "while true do end", "=spin"), 0), () => undefined);
 * } catch (e) {
 *   strictEqual(e instanceof CallStopped && e.outcome.status, "error");
 * }
 * engine.close();
 * ```
 */
export class CallStopped extends Error {
  constructor(readonly outcome: Outcome) {
    super(
      outcome.status === "error" || outcome.status === "timeout"
        ? outcome.message
        : outcome.status === "deadlock"
        ? `${DEADLOCK_MESSAGE}\n\n${outcome.report}`
        : outcome.status === "exit"
        ? `the script called os.exit(${outcome.code})`
        : outcome.status === "closed"
        ? "the engine was closed before the call ended"
        : "the engine was stopped",
    );
  }
}

/** What {@linkcode Engine.call} reads when a call ends: on success its first result at `at`, else the message at `at` and the traceback at `at + 1`. */
export type CallReader<T> = (ok: boolean, L: LuaState, at: number) => T;

/**
 * The time limit of one {@linkcode Engine.call}: Lua that the call's own
 * thread runs past `at` (a `performance.now()` time) ends that call alone,
 * with a "timeout" whose message is `message`. Its owner may move `at`.
 */
export interface CallLimit {
  at: number;
  message: string;
}

/** What else an {@linkcode Engine.call} may be given (see there). */
export interface CallOptions {
  /** Aborting it while the call waits ends that call alone, as a "timeout" with the signal's reason. */
  stopWaiting?: AbortSignal;
  /** The call's own time limit. */
  limit?: CallLimit;
  /** Told once the call and the goroutines it started have all ended. */
  released?: () => void;
  /** How `get_goroutines` and deadlock reports show the call ("call" unless given). */
  name?: string;
}

/** How a host operation a goroutine waited for ended: its results to push, or its failure's message and level. */
type WaitResult = { ok: true; push: Pusher } | { ok: false; message: string; level: number };

/** Releases what a finished wait's results hold, when nobody will take them. */
function discarded(result: WaitResult): void {
  if (result.ok) result.push.discard?.();
}

/** Thrown through Lua to stop the engine at once (`os.exit`, `reload_script`). */
class StopRequest extends LuaUnwind {
  constructor(readonly outcome: Outcome) {
    super(`stop: ${outcome.status}`);
  }
}

/** A top level's deadline and message; `hit` keeps the main thread's hook, to put back once it has passed. */
interface TopLevelLimit {
  at: number;
  message: string;
  hit?: { hook: number; mask: number; step: number };
  outcome?: Extract<Outcome, { status: "error" | "timeout" }>;
}

/** The least memory an engine may be given: its own start-up needs about a fifth of it. */
const MIN_MEMORY = 1024 * 1024;

/** The scheduler itself ran out of memory: the script holds all the memory its limit allows. */
class OutOfMemory extends Error {}

const NO_RESULTS: Pusher = () => 0;

/**
 * Told when a goroutine started by {@linkcode Engine.spawnFunction} ends:
 * on success its first result is at stack index 3 of `L`, on failure the
 * message (its error already went to on_error). Read it before returning.
 */
export type Tracker = (ok: boolean, L: LuaState) => void;

// V8 runs WebAssembly first in its baseline tier and cannot swap a running
// call to optimized code, so a long loop entered early stays ~2.5x slower
// for its whole life. For the first moments a rare count hook lets each
// goroutine yield once, so it re-enters the interpreter in optimized code;
// the scheduler resumes it at once (no other goroutine runs in between).
const TIER_UP_MS = 300;
const TIER_UP_INSTRUCTIONS = 100_000;
// With an instruction limit the hook fires this often: the limit's precision.
const LIMIT_STEP = 1000;
// An interruptible goroutine's hook fires this often (about a millisecond of Lua): rare enough to cost nothing.
const INTERRUPT_STEP = 100_000;
const LUA_HOOKCOUNT = 3;
const LUA_HOOKLINE = 2;
const LUA_MASKCALL = 1, LUA_MASKRET = 2, LUA_MASKLINE = 4;

/** A debug hook: the event ("call", "return", "line", "count"), the current line, the function's name if known. */
export type DebugHook = (event: string, line: number, name: string) => void;

/** The events a {@linkcode DebugHook} is called for; `count` every that many instructions. */
export interface DebugEvents {
  call?: boolean;
  return?: boolean;
  line?: boolean;
  count?: number;
}
const SCHEDULER_CHUNKNAME = `${INTERNAL_CHUNK_PREFIX}scheduler`;
const WAKE_BATCH = 64;
// Milliseconds goroutines that keep each other ready run before the event loop gets a turn (timers), as Go
// preempts after 10 ms.
const SLICE_MS = 10;
// At most this often such a turn also lets Deno poll sockets, which costs ~2 ms (see continueAfterEventLoop).
const POLL_MS = 50;
// Channels fed by JavaScript never make the event loop wait.
const HOST_CHANNEL_BUFFER = 2 ** 31 - 1;

/**
 * A Lua engine with goroutines.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { Engine } from "./engine.ts";
 * const engine = await Engine.create();
 * const outcome = await engine.execute("x = 1 + 1", "=example");
 * ok(outcome.status === "ok");
 * engine.close();
 * ```
 */
export class Engine {
  readonly vm: LuaVM;
  readonly stdout: OutputSink;
  readonly stderr: (text: string) => void;
  /** Bytes the Lua state may use (its `maxMemory`, or all this build can hold). */
  readonly memoryLimit: number;
  #sched = 0;
  readonly #schedulerFields = new Map<string, number>();
  #parkRef = 0;
  #continuation = 0;
  #nextOp = 0;
  #results = new Map<number, WaitResult>();
  // Host operations whose goroutine was cancelled: their results are dropped when they come.
  readonly #abandoned = new Set<number>();
  // Waits that can be called off, by host operation id, kept once a call may be stopped while it waits.
  readonly #cancellable = new Map<number, CancellableWait>();
  #callsMayStop = false;
  #woken: number[] = [];
  #pending = 0;
  // Host operations that do not count in #pending (CancellableWait.holdsRun false).
  readonly #unheld = new Set<number>();
  #resident = 0;
  #scheduled = false;
  // When the pump's slice ends (host.slice_over); what cancels the macrotask that goes on after the event loop's turn.
  #sliceEnd = 0;
  #nextSlice: (() => void) | undefined;
  #lastPoll = 0;
  #closed = false;
  // close() was called while Lua ran: the state is freed once Lua has unwound.
  #closing = false;
  #watchers = new Map<number, (o: Outcome) => void>();
  #trackers = new Map<number, Tracker>();
  // Calls (Engine.call) that had to wait: told when they end or the engine stops.
  #calls = new Map<number, { ended: Tracker; stopped: (o: Outcome) => void }>();
  // Calls whose limits outlive their end while goroutines they started live on, by id: told when those end too.
  readonly #outlived = new Map<number, () => void>();
  /** The limits of calls in progress, by the thread each runs on. */
  #callLimits = new Map<LuaState, CallLimit>();
  #callThread = 0;
  #callThreadRef = 0;
  #callThreadBusy = false;
  #directRef = 0;
  #userHook = 0;
  #callerInfo = 0;
  /** Whether a coroutine runs that was resumed where no wait could be passed up (see scheduler_lua.ts, resume_from). */
  #relayBlocked = false;
  /** The name of the call from JavaScript running now, for get_goroutines (see call). */
  #callName = "call";
  /** The first `os.exit` code a finalizer asked for while close() freed the state. */
  #exitWhileClosing: number | undefined;
  #inLuaClose = false;
  // Cleared by close({ finalizers: false }).
  #runFinalizers = true;
  readonly #files: LuaSystem;
  #closers: (() => void)[] = [];
  #channelClosers = new Map<number, () => void>();
  #roomWaiters = new Map<number, () => void>();
  #nextChannel = 0;
  #idleWaiters: (() => void)[] = [];
  /** The limit of a top level running outside the pump (see runTopLevel). */
  #topLevel: TopLevelLimit | undefined;
  #stopped: Outcome | undefined;
  #onResidentChange?: (count: number) => void;
  #tierUpUntil = 0;
  #tierUpHook = 0;
  #tierUpOpen = false;
  #instructionLimit = 0;
  #instructionsUsed = 0;
  #counting = false;
  #deadline = Infinity;
  #turnLimit = Infinity;
  // When the pump's turn must end (see EngineOptions.turnLimit); Infinity outside the pump.
  #turnDeadline = Infinity;
  #deadlineMessage = "";
  #disarmDeadline: (() => void) | undefined;
  #inPump = false;
  // A call made from outside Lua is running: a limit then ends only that call (see #checkLimits).
  #callFromOutside = false;
  #limitHit: Extract<Outcome, { status: "error" | "timeout" }> | undefined;
  // The deadline belongs to calls that stop themselves (setDeadline's haltWaiting false): running Lua ends alone.
  #deadlineEndsCalls = false;
  // A goroutine the pump runs is being ended by such a deadline; if it is a call's, the call ends with this.
  #pumpLimitHit: Extract<Outcome, { status: "error" | "timeout" }> | undefined;
  // Threads that already made their tier-up yield (only tracked while a limit keeps hooks on).
  readonly #tieredUp = new Set<number>();
  /** The watched goroutine whose failure ends the run (a script's main chunk; see spawnWatched). */
  #failureEndsRun: number | undefined;
  /** What may interrupt a watched goroutine now, and a reference to its coroutine (see spawnWatched). */
  #interrupting: { interruption: Interruption; thread: number } | undefined;
  #interruptHook = 0;
  /** Output was written since the last flush. */
  #outputPending = false;

  private constructor(vm: LuaVM, options: EngineOptions) {
    this.vm = vm;
    this.memoryLimit = Math.min(options.maxMemory ?? MAX_WASM_MEMORY, MAX_WASM_MEMORY);
    this.#files = options.files ?? NO_FILES;
    const sink = options.stdout ?? sharedOutput(newSharedOutput());
    // Once standard output's reader has gone, the run ends as lua5.4 does when SIGPIPE kills it (exit 141).
    this.stdout = {
      write: (bytes) => {
        this.#outputPending = true;
        sink.write(bytes);
        if (stdoutClosed()) this.#outputClosed();
      },
      flush: (partialLine) => {
        this.#outputPending = false;
        sink.flush(partialLine);
        if (stdoutClosed()) this.#outputClosed();
      },
      setBuffering: (mode) => sink.setBuffering?.(mode),
    };
    this.stderr = options.stderr ?? writeStderr;
    this.#onResidentChange = options.onResidentChange;
  }

  /** Flushes output written since the last flush, if any: before an embedder's function runs, lest its own output overtake it. */
  flushPendingOutput(): void {
    if (this.#outputPending) this.stdout.flush();
  }

  /** Loads Lua and the scheduler. */
  static create(options: EngineOptions = {}): Promise<Engine> {
    return Promise.resolve(Engine.createSync(options));
  }

  /** {@linkcode create}, returning the engine itself (loading needs no waiting). */
  static createSync(options: EngineOptions = {}): Engine {
    const { maxMemory, maxInstructions } = options;
    if (maxMemory !== undefined && typeof maxMemory !== "number") {
      throw new TypeError(`maxMemory must be a number of bytes, got ${typeof maxMemory}`);
    }
    if (maxMemory !== undefined && !(maxMemory >= MIN_MEMORY)) {
      throw new RangeError(`maxMemory must be at least ${MIN_MEMORY} bytes (1 MiB): the engine itself needs that much`);
    }
    checkCount("maxInstructions", maxInstructions); // 0 would mean no limit below
    const files = options.files ?? NO_FILES;
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    let engine: Engine | undefined = undefined;
    // Descriptors 0-2 are the engine's streams, so io.write and print share one buffer.
    const system: LuaSystem = {
      ...files,
      // Standard input as the C library reads it (host/stdio.ts gives Lua's io a reader that parks instead).
      read: (fd, into) => fd === 0 ? Deno.stdin.readSync(into) ?? 0 : files.read(fd, into),
      write: (fd, bytes) => {
        if (fd === 1) {
          engine!.stdout.write(bytes);
          const failure = takeStdoutFailure();
          if (failure) return -(errnoOfSystemError(failure) ?? ERRNO.EIO); // io.write returns it, as C's does
        } else if (fd === 2) {
          // Streamed: a character split between two writes arrives whole (bytes that are no UTF-8 become U+FFFD).
          const text = decoder.decode(bytes, { stream: true });
          if (text) engine!.reportError(text, false);
        } else return files.write(fd, bytes);
        return bytes.length;
      },
    };
    engine = new Engine(new LuaVM(loadLuaModule(system, options.maxMemory)), options);
    engine.#instructionLimit = options.maxInstructions ?? 0;
    engine.#turnLimit = options.turnLimit ?? Infinity;
    engine.#counting = engine.#instructionLimit > 0 || options.deadlines === true || options.turnLimit !== undefined;
    engine.#boot();
    if (options.textOnly) {
      const failure = engine.vm.load(engine.L, TEXT_ONLY_LUA, "=[solvm] loaders");
      if (failure) throw new Error(`boot failed: ${failure}`);
      engine.#call(0, 0);
    }
    if (options.maxGoroutines !== undefined) {
      engine.pushSchedulerField(engine.L, "limit_goroutines");
      engine.vm.api.lua_pushinteger(engine.L, BigInt(options.maxGoroutines));
      engine.#call(1, 0);
    }
    if (options.reportName !== undefined) {
      engine.pushSchedulerField(engine.L, "name_reports");
      engine.vm.pushString(engine.L, options.reportName);
      engine.#call(1, 0);
    }
    return engine;
  }

  /** The main thread's state. */
  get L(): LuaState {
    return this.vm.L;
  }

  #boot(): void {
    const { vm, L } = this;
    const api = vm.api;
    this.#continuation = vm.lua.addFunction(
      (L: LuaState, _status: number, ctx: number) => this.#resumeHostCall(L, ctx),
      "iiii",
    );
    const failure = vm.load(L, SCHEDULER_LUA, SCHEDULER_CHUNKNAME);
    if (failure) throw new Error(failure);
    api.lua_createtable(L, 0, 0); // the PARK sentinel
    api.lua_pushvalue(L, -1);
    this.#parkRef = vm.ref(L);
    api.lua_createtable(L, 0, 2);
    api.lua_pushcclosure(L, vm.hostFunction((L) => this.#finished(L)), 0);
    api.lua_setfield(L, -2, vm.cstr("finished"));
    api.lua_pushcclosure(
      L,
      vm.hostFunction((L) => {
        this.reportError(vm.toText(L, 1));
        return 0;
      }),
      0,
    );
    api.lua_setfield(L, -2, vm.cstr("report"));
    api.lua_pushcclosure(
      L,
      vm.hostFunction((L) => {
        if (logEnabled("warn")) log("warn", `${vm.toText(L, 1)} failed: ${vm.toText(L, 2)}`);
        return 0;
      }),
      0,
    );
    api.lua_setfield(L, -2, vm.cstr("failed"));
    api.lua_pushcclosure(L, vm.hostFunction((L) => (this.#relayBlocked = api.lua_toboolean(L, 1) !== 0, 0)), 0);
    api.lua_setfield(L, -2, vm.cstr("relay_blocked"));
    api.lua_pushcclosure(L, vm.hostFunction((L) => (this.#dropWait(Number(api.lua_tointegerx(L, 1, 0))), 0)), 0);
    api.lua_setfield(L, -2, vm.cstr("dropped"));
    api.lua_pushcclosure(L, vm.hostFunction((L) => (vm.pushString(L, this.#callName), 1)), 0);
    api.lua_setfield(L, -2, vm.cstr("call_name"));
    api.lua_pushcclosure(
      L,
      vm.hostFunction((L) => (api.lua_pushboolean(L, performance.now() >= this.#sliceEnd ? 1 : 0), 1)),
      0,
    );
    api.lua_setfield(L, -2, vm.cstr("slice_over"));
    // host.channel_closed(id) and host.released(id): each callback is told once, then forgotten.
    const tellOnce = (callbacks: Map<number, () => void>) =>
      vm.hostFunction((L) => {
        const id = Number(api.lua_tointegerx(L, 1, 0));
        const callback = callbacks.get(id);
        callbacks.delete(id);
        callback?.();
        return 0;
      });
    api.lua_pushcclosure(L, tellOnce(this.#channelClosers), 0);
    api.lua_setfield(L, -2, vm.cstr("channel_closed"));
    api.lua_pushcclosure(L, tellOnce(this.#roomWaiters), 0);
    api.lua_setfield(L, -2, vm.cstr("channel_room"));
    api.lua_pushcclosure(L, tellOnce(this.#outlived), 0);
    api.lua_setfield(L, -2, vm.cstr("released"));
    this.#call(2, 1);
    this.#sched = vm.ref(L);
    // C stdio would hold io.write output apart from print's buffer; ours buffers both. Emscripten's clock() counts
    // from its first call: made here, os.clock() is the time since the state started (as the README says).
    if (vm.load(L, `io.stdout:setvbuf("no") if os then os.clock() end`, "=boot")) throw new Error("boot failed");
    this.#call(0, 0);
    // A limit kept by the count hook must not be lifted by the script: debug.sethook() would remove the hook. A host
    // function refuses it, so the error is debug.sethook's own, as a C function's is, with no frame of SolVM's.
    if (this.#counting) {
      if (api.lua_getglobal(L, vm.cstr("debug")) === LUA_TTABLE) {
        const refuse = vm.hostFunction(() => {
          throw new Error(
            "debug.sethook: not allowed while an instruction or time limit is kept (it would remove the limit's hook)",
          );
        });
        api.lua_pushcclosure(L, refuse, 0);
        api.lua_setfield(L, -2, vm.cstr("sethook"));
      }
      api.lua_settop(L, -2);
    }
    this.#armTierUp();
  }

  #armTierUp(): void {
    const { vm, L } = this;
    const api = vm.api;
    this.#tierUpUntil = performance.now() + TIER_UP_MS;
    const what = vm.cstr("S");
    const limited = this.#counting;
    this.#tierUpHook = vm.lua.addFunction((T: LuaState, ar: number) => {
      this.#checkInterrupt(T, ar);
      if (limited) {
        this.#checkLimits(LIMIT_STEP, T, this.#tierUpHook);
        if (this.#tieredUp.has(T)) return;
      }
      if (performance.now() < this.#tierUpUntil || !api.lua_isyieldable(T)) return;
      // Never inside the scheduler's own code (a channel operation half
      // done), and only on a goroutine's own coroutine: a user coroutine
      // would see a spurious yield. Otherwise the hook fires again later.
      api.lua_getinfo(T, what, ar);
      if (this.#isSchedulerSource(new DataView(vm.lua.heap().buffer).getUint32(ar + LUA_DEBUG_SOURCE, true))) return;
      if (limited) this.#tieredUp.add(T);
      else api.lua_sethook(T, this.#interrupting ? this.#interruptHook : 0, LUA_MASKCOUNT, INTERRUPT_STEP);
      this.pushSchedulerField(T, "tier_up");
      api.lua_pushthread(T);
      if (api.lua_pcallk(T, 1, 1, 0, 0, 0) !== LUA_OK) throw new Error(`SolVM scheduler failure: ${vm.toText(T, -1)}`);
      const own = api.lua_toboolean(T, -1);
      api.lua_settop(T, -2);
      if (own) api.lua_yieldk(T, 0, 0, 0);
    }, "vii");
    api.lua_sethook(L, this.#tierUpHook, LUA_MASKCOUNT, limited ? LIMIT_STEP : TIER_UP_INSTRUCTIONS);
    this.#tierUpOpen = !limited;
  }

  /**
   * Raises the interruption's error in the interruptible goroutine when it
   * is asked to stop (in its own code, or a coroutine it resumes); never in
   * SolVM's own Lua (a channel operation half done): the next check comes.
   */
  #checkInterrupt(T: LuaState, ar: number): void {
    const interrupting = this.#interrupting;
    if (!interrupting?.interruption.requested() || !this.#inPump) return;
    const { vm } = this;
    const api = vm.api;
    api.lua_getinfo(T, vm.cstr("S"), ar);
    const source = new DataView(vm.lua.heap().buffer).getUint32(ar + LUA_DEBUG_SOURCE, true);
    if (this.#startsWith(source, INTERNAL_CHUNK_PREFIX)) return;
    this.pushSchedulerField(T, "running_goroutine");
    if (api.lua_pcallk(T, 0, 1, 0, 0, 0) !== LUA_OK) throw new Error(`SolVM scheduler failure: ${vm.toText(T, -1)}`);
    vm.pushRef(T, interrupting.thread);
    const interrupted = api.lua_rawequal(T, -1, -2) !== 0;
    api.lua_settop(T, -3);
    if (!interrupted) return;
    vm.pushString(T, interrupting.interruption.message);
    api.lua_error(T);
  }

  /**
   * Stops what runs past a limit. Inside the pump the whole run stops: a
   * StopRequest unwinds to the pump and nowhere else. Inside a call from
   * outside Lua only that call ends, and the engine stays usable: a Lua
   * error is raised, and raised again before every instruction of the
   * thread (the hook now fires at each), so no pcall can swallow it. So
   * it is inside the pump past the deadline of a call that stops itself
   * when it waits (see {@linkcode setDeadline}): the goroutine that runs
   * ends, and the call with it if it is the call's.
   */
  #checkLimits(step: number, T: LuaState, hook: number): void {
    this.#instructionsUsed += step;
    if (!this.#inPump) {
      if (this.#topLevel) this.#checkTopLevel(this.#topLevel, step, T, hook);
      return;
    }
    let outcome: Extract<Outcome, { status: "error" | "timeout" }> | undefined;
    if (this.#instructionLimit > 0 && this.#instructionsUsed > this.#instructionLimit) {
      const message = `instruction limit exceeded: the script ran more than ${this.#instructionLimit} Lua instructions`;
      outcome = { status: "error", message, traceback: "" };
    }
    // A call's own thread has the call's limit; any other (a goroutine, a coroutine) the engine's deadline, or
    // without one the turn's.
    const own = this.#callLimits.get(T);
    const unbound = !own && this.#deadline === Infinity;
    if (!outcome && performance.now() > (own ? own.at : unbound ? this.#turnDeadline : this.#deadline)) {
      const message = own
        ? own.message
        : unbound
        ? `timeout: Lua ran longer than ${this.#turnLimit} ms without waiting, outside any call`
        : this.#deadlineMessage;
      outcome = { status: "timeout", message };
    }
    if (!outcome) return;
    // Past the instruction limit, what a call from outside Lua started ends alone, as the call would.
    const endsGoroutine = outcome.status === "timeout"
      ? own !== undefined || this.#deadlineEndsCalls || unbound
      : T === this.L || this.#startedByCall(T);
    if (!this.#callFromOutside && !endsGoroutine) throw new StopRequest(outcome);
    if (T === this.L) return; // the scheduler's own code: the goroutine it runs next is checked
    if (this.#callFromOutside) this.#limitHit ??= outcome;
    else this.#pumpLimitHit ??= outcome;
    const api = this.vm.api;
    api.lua_sethook(T, hook, api.lua_gethookmask(T) | LUA_MASKCOUNT, 1);
    this.vm.pushString(T, outcome.message);
    api.lua_error(T);
  }

  /**
   * Past a top level's limit, a Lua error; raised again before every
   * instruction (no pcall can swallow it) until the top level has ended.
   */
  #checkTopLevel(top: TopLevelLimit, step: number, T: LuaState, hook: number): void {
    let outcome: TopLevelLimit["outcome"];
    if (this.#instructionLimit > 0 && this.#instructionsUsed > this.#instructionLimit) {
      const message = `instruction limit exceeded: the script ran more than ${this.#instructionLimit} Lua instructions`;
      outcome = { status: "error", message, traceback: "" };
    } else if (performance.now() > top.at) outcome = { status: "timeout", message: top.message };
    if (outcome === undefined) return;
    top.outcome ??= outcome;
    const api = this.vm.api;
    if (T === this.L) top.hit ??= { hook, mask: api.lua_gethookmask(T), step };
    api.lua_sethook(T, hook, api.lua_gethookmask(T) | LUA_MASKCOUNT, 1);
    this.vm.pushString(T, outcome.message);
    api.lua_error(T);
  }

  /**
   * {@linkcode LuaVM.protect} from outside any call: the Lua `body` runs (a
   * metamethod the script set on `_G`) is bound by `limit` and the
   * instruction limit (counted afresh), as a top level is; one it hits is
   * thrown as a {@linkcode CallStopped}.
   */
  protectWithin<R>(
    L: LuaState,
    limit: CallLimit | undefined,
    nargs: number,
    nresults: number,
    body: (L: LuaState) => R,
  ): R {
    if (!this.#counting || this.#inPump || this.#topLevel) return this.vm.protect(L, nargs, nresults, body);
    const top: TopLevelLimit = { at: limit?.at ?? Infinity, message: limit?.message ?? "" };
    this.#topLevel = top;
    this.#instructionsUsed = 0;
    try {
      return this.vm.protect(L, nargs, nresults, body, true); // protect puts L's own hook back
    } catch (e) {
      throw top.outcome ? new CallStopped(top.outcome) : e;
    } finally {
      this.#topLevel = undefined;
    }
  }

  #startedByCall(T: LuaState): boolean {
    const api = this.vm.api;
    this.pushSchedulerField(T, "started_by_call");
    if (api.lua_pcallk(T, 0, 1, 0, 0, 0) !== LUA_OK) {
      throw new Error(`SolVM scheduler failure: ${this.vm.toText(T, -1)}`);
    }
    const started = api.lua_toboolean(T, -1) !== 0;
    api.lua_settop(T, -2);
    return started;
  }

  /**
   * Calls `fn(event, line, name)` on the Lua events asked for: "call",
   * "return", "line", and "count" every `count` instructions. It applies to
   * the main thread and to goroutines and calls started afterwards; the
   * limits keep being checked. An error thrown by `fn` becomes a Lua error.
   */
  setDebugHook(fn: DebugHook, events: DebugEvents): void {
    const { vm, L } = this;
    const api = vm.api;
    this.removeDebugHook();
    const step = events.count ?? (this.#counting ? LIMIT_STEP : 0);
    const names = ["call", "return", "line", "count", "call"];
    const info = vm.cstr("nSl");
    this.#userHook = vm.lua.addFunction((T: LuaState, ar: number) => {
      const view = new DataView(vm.lua.heap().buffer);
      const event = view.getInt32(ar, true);
      if (event === LUA_HOOKCOUNT) {
        if (this.#counting) this.#checkLimits(step, T, this.#userHook);
        if (!events.count) return;
      }
      api.lua_getinfo(T, info, ar);
      // The scheduler's own lines are SolVM's, not the script's, and so are the C functions it calls.
      if (event !== LUA_HOOKLINE && this.#calledByScheduler(T)) return;
      const record = new DataView(vm.lua.heap().buffer); // fetched after the calls into Lua, which may grow memory
      if (this.#isSchedulerSource(record.getUint32(ar + LUA_DEBUG_SOURCE, true))) return;
      const name = vm.cString(record.getUint32(ar + LUA_DEBUG_NAME, true)) ?? "";
      const line = record.getInt32(ar + LUA_DEBUG_CURRENTLINE, true);
      try {
        fn(names[event], line, name);
      } catch (e) {
        // A hook runs in no frame of its own: level 0 is the hooked line's function (a C function's caller has the line).
        if (!vm.unwinding) vm.raise(T, thrownText(e), line > 0 ? 0 : 1);
      }
      if (vm.unwinding) throw vm.unwinding;
    }, "vii");
    const mask = (events.call ? LUA_MASKCALL : 0) | (events.return ? LUA_MASKRET : 0) |
      (events.line ? LUA_MASKLINE : 0) | (step > 0 ? LUA_MASKCOUNT : 0);
    api.lua_sethook(L, this.#userHook, mask, step);
    this.#tierUpOpen = false;
    this.#forgetCallThread(); // the next call gets a thread that inherits the hook
  }

  #forgetCallThread(): void {
    if (this.#callThread === 0 || this.#callThreadBusy) return;
    this.vm.unref(this.#callThreadRef);
    this.#callThread = 0;
  }

  // Whether the function running on T was called by the scheduler's Lua code.
  #calledByScheduler(T: LuaState): boolean {
    const { vm } = this;
    this.#callerInfo ||= vm.api.malloc(LUA_DEBUG_SIZE);
    if (!vm.api.lua_getstack(T, 1, this.#callerInfo)) return false;
    vm.api.lua_getinfo(T, vm.cstr("S"), this.#callerInfo);
    return this.#isSchedulerSource(
      new DataView(vm.lua.heap().buffer).getUint32(this.#callerInfo + LUA_DEBUG_SOURCE, true),
    );
  }

  /** Removes the hook {@linkcode setDebugHook} set; the limits keep being checked. */
  removeDebugHook(): void {
    if (!this.#userHook) return;
    this.vm.api.lua_sethook(this.L, this.#counting ? this.#tierUpHook : 0, LUA_MASKCOUNT, LIMIT_STEP);
    this.vm.lua.removeFunction(this.#userHook);
    this.#userHook = 0;
    this.#forgetCallThread();
  }

  #isSchedulerSource(source: number): boolean {
    return this.#startsWith(source, SCHEDULER_CHUNKNAME) &&
      this.vm.lua.heap()[source + SCHEDULER_CHUNKNAME.length] === 0;
  }

  // Whether the C string at address text starts with prefix (ASCII).
  #startsWith(text: number, prefix: string): boolean {
    const heap = this.vm.lua.heap();
    for (let i = 0; i < prefix.length; i++) {
      if (heap[text + i] !== prefix.charCodeAt(i)) return false;
    }
    return true;
  }

  // New goroutines inherit the hook from the main state until the window
  // closes. Threads that still carry it unhook themselves when it next
  // fires, so the function itself lives until close().
  #closeTierUp(): void {
    if (!this.#tierUpOpen || performance.now() < this.#tierUpUntil) return;
    this.vm.api.lua_sethook(this.L, 0, 0, 0);
    if (this.#callThread && !this.#callThreadBusy) this.vm.api.lua_sethook(this.#callThread, 0, 0, 0);
    this.#tierUpOpen = false;
  }

  /**
   * Calls the function below `nargs` arguments on the main stack; internal
   * failures are bugs, but for the memory running out while the script
   * keeps it (the scheduler cannot even report the error): OutOfMemory.
   */
  #call(nargs: number, nresults: number): void {
    const { vm, L } = this;
    const status = vm.api.lua_pcallk(L, nargs, nresults, 0, 0, 0);
    if (status !== LUA_OK) {
      const message = vm.toText(L, -1);
      vm.api.lua_settop(L, -2);
      if (status === LUA_ERRMEM) throw new OutOfMemory();
      throw new Error(`SolVM scheduler failure: ${message}`);
    }
  }

  /** Pushes field `name` of the scheduler's table (a registry reference is kept per field: hot paths use it). */
  pushSchedulerField(L: LuaState, name: string): void {
    let ref = this.#schedulerFields.get(name);
    if (ref === undefined) {
      this.vm.pushRef(L, this.#sched);
      this.vm.api.lua_getfield(L, -1, this.vm.cstr(name));
      ref = this.vm.ref(L);
      this.vm.api.lua_settop(L, -2);
      this.#schedulerFields.set(name, ref);
    }
    this.vm.pushRef(L, ref);
  }

  /** Writes an error report to stderr, after flushing pending output so the order holds. */
  reportError(text: string, endLine = true): void {
    this.stdout.flush();
    this.stderr(endLine && !text.endsWith("\n") ? text + "\n" : text);
  }

  #finished(L: LuaState): number {
    const vm = this.vm;
    const id = Number(vm.api.lua_tointegerx(L, 1, 0));
    const call = this.#calls.get(id);
    const limit = this.#pumpLimitHit;
    if (call && limit && !vm.api.lua_toboolean(L, 2)) { // ended by a limit while the pump ran it
      this.#pumpLimitHit = undefined;
      this.#calls.delete(id);
      this.#endStarted(id, limit.message, false);
      call.stopped(limit);
      return 0;
    }
    const tracker = this.#trackers.get(id) ?? call?.ended;
    if (tracker) {
      this.#trackers.delete(id);
      this.#calls.delete(id);
      tracker(vm.api.lua_toboolean(L, 2) !== 0, L);
      return 0;
    }
    const watcher = this.#watchers.get(id);
    if (!watcher) return 0;
    const outcome: Outcome = vm.api.lua_toboolean(L, 2)
      ? { status: "ok" }
      : { status: "error", message: vm.toText(L, 3), traceback: vm.toText(L, 4) };
    // Unwinds to the pump, which ends the run with it (and tells the watcher): the goroutines ready go no further.
    if (outcome.status === "error" && id === this.#failureEndsRun && this.#inPump) throw new StopRequest(outcome);
    this.#watchers.delete(id);
    watcher(outcome);
    return 0;
  }

  // ---- the one mechanism -------------------------------------------------

  /**
   * Wraps `impl` as a Lua function that may wait. `impl` reads its
   * arguments and either pushes results at once (returning their count,
   * the fast path: no yield) or returns a Promise of a {@linkcode Pusher},
   * or a {@linkcode CancellableWait} of one; then only the calling
   * goroutine waits.
   */
  blocking(
    what: string,
    impl: (L: LuaState) => number | Promise<Pusher | void> | CancellableWait,
    options: BlockingOptions = {},
  ): HostFunction {
    return (L) => {
      // Refused before it starts: a call that cannot wait must not have begun what it would wait for.
      if (!options.worksWhereNoWait && !this.canPark(L)) this.#refuseWait(L, what);
      const result = impl(L);
      if (typeof result === "number") return result;
      return result instanceof Promise ? this.park(L, result, what) : this.park(L, result.wait, what, result);
    };
  }

  /**
   * Parks the calling goroutine until `promise` settles; returns through
   * `lua_yieldk`. `cancellable` is called off if the goroutine stops
   * waiting first.
   */
  park(L: LuaState, promise: Promise<Pusher | void>, what: string, cancellable?: CancellableWait): number {
    const api = this.vm.api;
    if (!this.canPark(L)) {
      // Attach a no-op handler so a later rejection is not unhandled.
      promise.catch(() => {});
      cancellable?.cancel();
      this.#refuseWait(L, what);
    }
    const id = ++this.#nextOp;
    if (cancellable?.holdsRun === false) this.#unheld.add(id);
    else this.#pending++;
    if (cancellable && this.#callsMayStop) this.#cancellable.set(id, cancellable);
    promise.then(
      (push) => this.#settle(id, { ok: true, push: push ?? NO_RESULTS }),
      (e) => this.#settle(id, { ok: false, message: thrownText(e), level: errorLevel(e) }),
    );
    api.lua_settop(L, 0);
    this.vm.pushRef(L, this.#parkRef);
    api.lua_pushinteger(L, BigInt(id));
    this.vm.pushString(L, what);
    return api.lua_yieldk(L, 3, id, this.#continuation);
  }

  /**
   * Whether the goroutine running on L could wait here: not inside a C
   * call (a sort comparator, a gsub callback, a finalizer), nor inside a
   * coroutine resumed from one.
   */
  canPark(L: LuaState): boolean {
    return !this.#relayBlocked && this.vm.api.lua_isyieldable(L) !== 0;
  }

  /** Throws "what cannot wait here", placed at the script's own line (not at a SolVM helper's that called what). */
  #refuseWait(L: LuaState, what: string): never {
    const { vm } = this;
    let level = 1;
    while (vm.frame(L, level)?.source.startsWith(INTERNAL_CHUNK_PREFIX)) level++;
    throw Object.assign(new Error(`${what} cannot wait here (not in a goroutine, or across a C call)`), {
      luaLevel: level,
    });
  }

  #settle(id: number, result: WaitResult): void {
    if (!this.#unheld.delete(id)) this.#pending--;
    this.#cancellable.delete(id);
    if (this.#closed) return discarded(result);
    if (this.#abandoned.delete(id)) {
      discarded(result);
      this.#kick(); // the pump looks again whether anything can still make progress
      return;
    }
    this.#results.set(id, result);
    this.#woken.push(id);
    this.#kick();
  }

  #resumeHostCall(L: LuaState, id: number): number {
    const result = this.#results.get(id);
    this.#results.delete(id);
    this.vm.api.lua_settop(L, 0);
    let message: string;
    let level = 1;
    if (!result) message = "a waiting call was resumed before it ended (only the scheduler may resume goroutines)";
    else if (result.ok) {
      try {
        return result.push(L);
      } catch (e) {
        if (e === LONGJMP || e instanceof LuaUnwind) throw e; // a Lua error or yield in flight
        message = thrownText(e);
        level = errorLevel(e);
      }
    } else ({ message, level } = result);
    return this.vm.raise(L, message, level);
  }

  /** Counts a resident source (server, interval, ...) that keeps the process alive; call the result to release it. */
  hold(): () => void {
    let held = true;
    this.#setResident(this.#resident + 1);
    return () => {
      if (!held) return;
      held = false;
      this.#setResident(this.#resident - 1);
      this.#kick();
    };
  }

  /** Whether goroutines are ready to run and wait for the next pump (one was started or woken, say). */
  get runPending(): boolean {
    return this.#scheduled;
  }

  /** How many resident sources are active. */
  get resident(): number {
    return this.#resident;
  }

  #setResident(n: number): void {
    this.#resident = n;
    this.#onResidentChange?.(n);
  }

  /**
   * `os.exit(code)` from a finalizer that close() runs, when the run has
   * ended: true and the code is kept ({@linkcode exitWhileClosing}; the
   * first one wins, as the process would have exited there); false when
   * the state is not being closed.
   */
  exitAsClosing(code: number): boolean {
    if (!this.#inLuaClose) return false;
    this.#exitWhileClosing ??= code;
    return true;
  }

  /** The code a finalizer passed to `os.exit` while close() freed the state, if one did. */
  get exitWhileClosing(): number | undefined {
    return this.#exitWhileClosing;
  }

  /** Stops the engine from inside a host function: unwinds Lua and ends the run with `outcome`. */
  abort(outcome: Outcome): never {
    this.stdout.flush();
    throw new StopRequest(outcome);
  }

  /**
   * Ends the run with a "timeout" outcome carrying `message` at `at` (a
   * `performance.now()` time); undefined clears it. Running Lua is stopped
   * only when the engine was created with `deadlines`; goroutines that
   * wait are stopped by a timer unless `haltWaiting` is false (a caller
   * that stops its waiting calls itself, see {@linkcode call}).
   */
  setDeadline(at: number | undefined, message = "timeout", haltWaiting = true): void {
    this.#clearDeadlineTimer();
    this.#deadline = at ?? Infinity;
    this.#deadlineMessage = message;
    this.#deadlineEndsCalls = !haltWaiting;
    if (at === undefined || this.#closed || !haltWaiting) return;
    this.#disarmDeadline = after(Math.max(0, at - performance.now()), () => this.halt({ status: "timeout", message }));
  }

  // Deno sets up its timers on first use, which costs a few milliseconds: a script that never armed one skips it.
  #clearDeadlineTimer(): void {
    this.#disarmDeadline?.();
    this.#disarmDeadline = undefined;
  }

  #outputClosed(): void {
    if (this.#stopped || this.#closed) return;
    const outcome: Outcome = { status: "exit", code: 141 };
    if (this.#inPump) throw new StopRequest(outcome);
    this.halt(outcome);
  }

  /** Stops the engine from outside Lua (a file watcher, say): the run ends with `outcome`. */
  halt(outcome: Outcome): void {
    if (!this.#stopped) this.#finish(outcome);
  }

  /**
   * Ends the run after an exception that is not Lua's own unwinding went through the Lua state (a bug in a host
   * function): the state was left in the middle of a call, so nothing may run in it again (it could loop for ever).
   * Returns `e`, to be thrown on.
   */
  #brokenBy(e: unknown): unknown {
    if (!this.#stopped) {
      const message = `internal error: ${thrownText(e)}`;
      this.#finish({ status: "error", message, traceback: e instanceof Error && e.stack ? e.stack : message });
    }
    return e;
  }

  #finish(outcome: Outcome): void {
    this.#stopped = outcome;
    this.#dropNextSlice();
    this.stdout.flush();
    for (const watcher of this.#watchers.values()) watcher(outcome);
    this.#watchers.clear();
    for (const call of this.#calls.values()) call.stopped(outcome);
    this.#calls.clear();
    this.#wakeRoomWaiters();
    this.#releaseIdle();
  }

  // ---- driving -----------------------------------------------------------

  #kick(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#pump());
  }

  #pump(): void {
    this.#scheduled = false;
    if (this.#closed || this.#stopped) return;
    const { vm, L } = this;
    this.#inPump = true;
    const now = performance.now();
    this.#turnDeadline = now + this.#turnLimit;
    this.#sliceEnd = now + SLICE_MS;
    let sliceOver: boolean;
    try {
      while (this.#woken.length > 0) {
        const batch = this.#woken.splice(0, WAKE_BATCH);
        vm.api.lua_checkstack(L, batch.length + 2);
        this.pushSchedulerField(L, "wake");
        for (const id of batch) vm.api.lua_pushinteger(L, BigInt(id));
        this.#call(batch.length, 0);
      }
      this.#closeTierUp();
      this.pushSchedulerField(L, "run");
      this.#call(0, 1);
      sliceOver = vm.api.lua_toboolean(L, -1) !== 0;
      vm.api.lua_settop(L, -2);
    } catch (e) {
      const failure = e instanceof OutOfMemory ? this.#runFailedForMemory() : e;
      if (failure === undefined) this.#kick();
      else if (failure instanceof OutOfMemory) {
        // What the script holds fills the memory limit: the run ends with Lua's error, as lua5.4 ends.
        this.#finish({ status: "error", message: "not enough memory", traceback: "not enough memory" });
      } // Not thrown on from this microtask: it would take the embedding program down; the run's outcome tells it.
      else if (!(failure instanceof StopRequest)) this.#brokenBy(failure);
      else this.#finish(failure.outcome);
      return;
    } finally {
      this.#inPump = false;
      this.#turnDeadline = Infinity;
      this.#pumpLimitHit = undefined;
      if (this.#closing) this.close();
    }
    this.stdout.flush();
    if (sliceOver) this.#continueAfterEventLoop();
    else if (this.#woken.length === 0 && this.#pending === 0 && this.#resident === 0) this.#quiescent();
  }

  /**
   * After the scheduler's run ran out of memory: the goroutine it was ending fails alone (run_failed) when that
   * frees the memory, and the pump goes on (undefined); else what that threw (OutOfMemory again, a StopRequest).
   */
  #runFailedForMemory(): unknown {
    try {
      this.pushSchedulerField(this.L, "run_failed");
      this.#call(0, 0);
      return undefined;
    } catch (e) {
      return e;
    }
  }

  // Goroutines still ready go on from a macrotask, after timers: a MessageChannel message (~20 us). Deno polls
  // sockets only when its loop goes idle, as it does waiting for a timer (~2 ms): while the host waits on something
  // (a server, a host call), every POLL_MS the turn is a setTimeout(0) instead. Always that one made 100,000
  // goroutines that sleep and send take 2.6 s instead of 1.5 s.
  #continueAfterEventLoop(): void {
    if (this.#closed || this.#stopped) return;
    this.#scheduled = true;
    const next = () => {
      this.#nextSlice = undefined;
      this.#pump();
    };
    const now = performance.now();
    if ((this.#pending > 0 || this.#unheld.size > 0 || this.#resident > 0) && now - this.#lastPoll >= POLL_MS) {
      this.#lastPoll = now;
      const timer = setTimeout(next, 0);
      this.#nextSlice = () => clearTimeout(timer);
      return;
    }
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close(); // an open port keeps the process alive
      next();
    };
    this.#nextSlice = () => port1.close();
    port2.postMessage(null);
  }

  // The run ended while a slice waited to go on: its timer or port would keep the process alive.
  #dropNextSlice(): void {
    this.#nextSlice?.();
    this.#nextSlice = undefined;
  }

  #quiescent(): void {
    if (this.#watchers.size > 0 || this.#calls.size > 0) {
      const report = this.parkedReport();
      const watched = [...this.#watchers];
      this.#watchers.clear();
      for (const [, watcher] of watched) watcher({ status: "deadlock", report });
      // A watched goroutine (a REPL line) ends with its report: left parked, it would take a later line's value.
      // No kick: a deadlocked script ends here; what their ends release in wait() runs when the engine is next driven.
      for (const [id] of watched) this.#endWaiting(id, DEADLOCK_MESSAGE);
      // Their goroutines, and those they started, end too: left parked, they would take later calls' values.
      for (const id of this.#calls.keys()) this.#cancelCall(id, { status: "deadlock", report }, true);
    }
    this.#releaseIdle();
  }

  #releaseIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** The goroutines parked right now, one line each with what they wait on. */
  parkedReport(): string {
    this.pushSchedulerField(this.L, "parked_report");
    this.#call(0, 1);
    const text = this.vm.toText(this.L, -1);
    this.vm.api.lua_settop(this.L, -2);
    return text;
  }

  /**
   * Runs the function on top of the main stack as a watched goroutine
   * named `name`, with `nargs` arguments above it; resolves when it ends.
   * With `interruption` (one such goroutine at a time), once asked to stop
   * it fails with its message: where it waits, or, where it computes, at
   * the next check of a count hook on its threads and those they make (every
   * 100,000 instructions, unless a hook the script set replaced it).
   * With `failureEndsRun`, its failure ends the run there, as a failing
   * main chunk does: no other goroutine runs on (as Go's main panicking).
   */
  spawnWatched(
    name: string,
    nargs: number,
    { interruption, failureEndsRun = false }: { interruption?: Interruption; failureEndsRun?: boolean } = {},
  ): Promise<Outcome> {
    const { vm, L } = this;
    if (this.#stopped) return Promise.resolve(this.#stopped);
    const api = vm.api;
    this.pushSchedulerField(L, "spawn");
    api.lua_rotate(L, -(nargs + 2), 1); // spawn, fn, args...
    vm.pushString(L, name);
    vm.pushString(L, "watched");
    api.lua_rotate(L, -(nargs + 2), 2); // spawn, fn, name, "watched", args...
    if (interruption) {
      this.#interruptHook ||= vm.lua.addFunction((T: LuaState, ar: number) => this.#checkInterrupt(T, ar), "vii");
    }
    // Its coroutine inherits the main thread's hook; the tier-up and limit hooks check interruptions too.
    const hooked = interruption !== undefined && api.lua_gethookmask(L) === 0;
    if (hooked) api.lua_sethook(L, this.#interruptHook, LUA_MASKCOUNT, INTERRUPT_STEP);
    try {
      this.#call(nargs + 3, 1);
    } finally {
      if (hooked) api.lua_sethook(L, 0, 0, 0);
    }
    const id = Number(api.lua_tointegerx(L, -1, 0));
    api.lua_settop(L, -2);
    const done = new Promise<Outcome>((resolve) => this.#watchers.set(id, resolve));
    if (failureEndsRun) this.#failureEndsRun = id;
    if (interruption) this.#interruptible(id, interruption, done);
    this.#kick();
    return done;
  }

  /** Lets `interruption` stop watched goroutine `id` until `done`: the hook stops it computing, this where it waits. */
  #interruptible(id: number, interruption: Interruption, done: Promise<Outcome>): void {
    const { vm, L } = this;
    this.pushSchedulerField(L, "goroutines");
    vm.api.lua_rawgeti(L, -1, BigInt(id));
    vm.api.lua_getfield(L, -1, vm.cstr("co"));
    const thread = vm.ref(L);
    vm.api.lua_settop(L, -3);
    const current = { interruption, thread };
    this.#interrupting = current;
    this.#callsMayStop = true; // its wait is called off as it ends: a sleep's timer, an os.execute command
    interruption.asked().then(() => {
      if (this.#watchers.has(id) && interruption.requested() && !this.#closed) {
        this.#endWaiting(id, interruption.message, "interrupt");
        this.#kick();
      }
    });
    done.then(() => {
      if (this.#interrupting === current) this.#interrupting = undefined;
      if (!this.#closed) vm.unref(thread);
    });
  }

  /**
   * Calls a Lua function from JavaScript as a goroutine that runs at once,
   * the fast path of the embedding library (no coroutine is made while
   * calls end without waiting). `pushCall` pushes the function and its
   * arguments on the thread it is given and returns the argument count.
   * When the call ends without waiting, returns what `read` makes of its
   * end; when it waits (a blocking call, a channel), a Promise of that.
   * Throws (or rejects with) {@linkcode CallStopped} when the engine stops
   * first. When `stopWaiting` aborts while the call waits, only that call
   * ends: it rejects with a "timeout" CallStopped whose message is the
   * signal's reason, and its goroutine is ended where it waits (a host
   * operation it waited for runs on, its result unused). Goroutines the
   * call started stay bound by it: until they all end, `stopWaiting`
   * aborting ends those that wait (reported as their failures), and the
   * call failing for a limit or a deadlock ends them too. `released` is
   * told once the call and all of them have ended. `name` is how
   * `get_goroutines` and deadlock reports show the call.
   */
  call<T>(
    pushCall: (T: LuaState) => number,
    read: CallReader<T>,
    { stopWaiting, limit, released, name = "call" }: CallOptions = {},
  ): T | Promise<T> {
    const { vm, L } = this;
    const api = vm.api;
    if (this.#stopped) throw new CallStopped(this.#stopped);
    if (this.#closed) throw new Error("the engine is closed");
    this.#closeTierUp();
    this.#callsMayStop ||= stopWaiting !== undefined;
    // One thread serves call after call; a call made while it runs (from
    // JavaScript that Lua called) gets a thread of its own.
    let T = this.#callThread;
    let threadRef = this.#callThreadRef;
    if (T === 0 || this.#callThreadBusy) {
      T = api.lua_newthread(L);
      threadRef = vm.ref(L);
      if (this.#callThread === 0) [this.#callThread, this.#callThreadRef] = [T, threadRef];
    }
    const cached = T === this.#callThread;
    if (cached) this.#callThreadBusy = true;
    api.lua_settop(T, 0);
    const top = api.lua_gettop(L);
    if (this.#directRef === 0) {
      this.pushSchedulerField(L, "direct");
      this.#directRef = vm.ref(L);
    }
    vm.pushRef(L, this.#directRef);
    vm.pushRef(L, threadRef);
    let nargs: number;
    try {
      nargs = pushCall(T);
      vm.makeRoom(L, nargs + 6); // the arguments and direct's 6 results
    } catch (e) {
      api.lua_settop(L, top);
      api.lua_settop(T, 0);
      if (cached) this.#callThreadBusy = false;
      else vm.unref(threadRef);
      throw e;
    }
    api.lua_xmove(T, L, nargs);
    if (limit) this.#callLimits.set(T, limit);
    const wasInPump = this.#inPump;
    const wasFromOutside = this.#callFromOutside;
    const outerName = this.#callName;
    this.#inPump = true;
    this.#callFromOutside = !wasInPump;
    this.#callName = name;
    try {
      this.#call(nargs + 1, 6);
    } catch (e) {
      api.lua_settop(L, top);
      this.#callLimits.delete(T);
      if (e instanceof OutOfMemory) return this.#failedForMemory(threadRef, cached, read, released);
      if (!(e instanceof StopRequest)) throw this.#brokenBy(e);
      this.#finish(e.outcome);
      throw new CallStopped(e.outcome);
    } finally {
      this.#inPump = wasInPump;
      this.#callFromOutside = wasFromOutside;
      this.#callName = outerName;
      if (cached) this.#callThreadBusy = false;
      if (this.#closing && !wasInPump) this.close();
    }
    // The id of a call that ended at once while goroutines it started live on.
    const left = api.lua_type(L, -1) === LUA_TNUMBER ? Number(api.lua_tointegerx(L, -1, 0)) : 0;
    const limitHit = this.#limitHit;
    if (limitHit && !wasInPump) {
      this.#limitHit = undefined;
      this.#callLimits.delete(T);
      api.lua_settop(L, top);
      vm.unref(threadRef); // its hook now fires at every instruction
      if (cached) this.#callThread = 0;
      if (left) {
        this.#outlive(left, undefined, released);
        this.#endStarted(left, limitHit.message, false);
      } else released?.();
      this.#kick();
      throw new CallStopped(limitHit);
    }
    if (api.lua_toboolean(L, -2)) this.#kick();
    const ended = api.lua_toboolean(L, -6) !== 0;
    const ok = ended && api.lua_toboolean(L, -5) !== 0;
    // A thread is reused only after a call that ended well; a failed one
    // cannot run again, a waiting one belongs to its goroutine now.
    if (!ok || !cached) {
      vm.unref(threadRef);
      if (cached) this.#callThread = 0;
    }
    if (ended) {
      this.#callLimits.delete(T);
      if (left) this.#outlive(left, stopWaiting, released);
      else released?.();
      try {
        return read(ok, L, top + 3);
      } finally {
        api.lua_settop(L, top);
      }
    }
    const id = Number(api.lua_tointegerx(L, -5, 0));
    api.lua_settop(L, top);
    this.#outlive(id, stopWaiting, released);
    return new Promise<T>((resolve, reject) => {
      this.#calls.set(id, {
        ended: (ok, L) => {
          this.#callLimits.delete(T);
          try {
            resolve(read(ok, L, 3));
          } catch (e) {
            reject(e);
          }
        },
        stopped: (outcome) => {
          this.#callLimits.delete(T);
          reject(new CallStopped(outcome));
        },
      });
    });
  }

  /**
   * Ends a call whose scheduler code itself ran out of memory (see
   * direct_failed in scheduler_lua.ts) with Lua's "not enough memory", as a
   * pcall would, and drops its thread; the engine goes on.
   */
  #failedForMemory<T>(threadRef: number, cached: boolean, read: CallReader<T>, released?: () => void): T {
    const { vm, L } = this;
    const top = vm.api.lua_gettop(L);
    this.pushSchedulerField(L, "direct_failed");
    vm.pushRef(L, threadRef);
    vm.unref(threadRef);
    if (cached) this.#callThread = 0;
    try {
      this.#call(1, 0);
    } catch (e) {
      throw this.#brokenBy(e);
    }
    released?.();
    vm.pushString(L, "not enough memory");
    vm.pushString(L, "not enough memory");
    try {
      return read(false, L, top + 1);
    } finally {
      vm.api.lua_settop(L, top);
    }
  }

  /**
   * Until call `id` and the goroutines it started have all ended (the
   * scheduler's host.released says so), `stopWaiting` aborting ends them;
   * then `released` is told.
   */
  #outlive(id: number, stopWaiting: AbortSignal | undefined, released: (() => void) | undefined): void {
    if (!stopWaiting && !released) return;
    const stop = () => {
      const message = String(stopWaiting!.reason);
      if (this.#calls.has(id)) this.#cancelCall(id, { status: "timeout", message });
      else this.#endStarted(id, message, false);
    };
    if (stopWaiting?.aborted) queueMicrotask(stop);
    else stopWaiting?.addEventListener("abort", stop, { once: true });
    this.#outlived.set(id, () => {
      stopWaiting?.removeEventListener("abort", stop);
      released?.();
    });
  }

  /** Ends waiting call `id` alone (its goroutine, and those it started, end where they wait) with `outcome`. */
  #cancelCall(id: number, outcome: Extract<Outcome, { status: "timeout" | "deadlock" }>, quiet = false): void {
    const call = this.#calls.get(id);
    if (!call || this.#closed) return;
    if (this.#inPump) { // aborted by JavaScript that Lua called: Lua is busy now
      queueMicrotask(() => this.#cancelCall(id, outcome, quiet));
      return;
    }
    this.#calls.delete(id);
    const message = outcome.status === "timeout" ? outcome.message : DEADLOCK_MESSAGE;
    this.#endWaiting(id, message);
    this.#endStarted(id, message, quiet);
    call.stopped(outcome);
    this.#kick(); // its end may release goroutines in wait()
  }

  /**
   * Ends goroutine `id` where it waits, as a failure with `message`; the host operation it waited for is dropped.
   * An "interrupt" lets a goroutine woken already take what woke it, and ends it at its next wait.
   */
  #endWaiting(id: number, message: string, how: "cancel" | "interrupt" = "cancel"): void {
    const { vm, L } = this;
    this.pushSchedulerField(L, how);
    vm.api.lua_pushinteger(L, BigInt(id));
    vm.pushString(L, message);
    this.#call(2, 1);
    if (vm.api.lua_type(L, -1) === LUA_TNUMBER) this.#dropWait(Number(vm.api.lua_tointegerx(L, -1, 0)));
    vm.api.lua_settop(L, -2);
  }

  /**
   * Ends the goroutines ended call `id` started that still live, where they
   * wait, as failures with `message` (not reported when `quiet`).
   */
  #endStarted(id: number, message: string, quiet: boolean): void {
    if (this.#closed) return;
    if (this.#inPump) { // Lua is busy now; those that compute are stopped by the limits meanwhile
      queueMicrotask(() => this.#endStarted(id, message, quiet));
      return;
    }
    const { vm, L } = this;
    const top = vm.api.lua_gettop(L);
    this.pushSchedulerField(L, "cancel_started");
    vm.api.lua_pushinteger(L, BigInt(id));
    vm.pushString(L, message);
    vm.api.lua_pushboolean(L, quiet ? 1 : 0);
    this.#call(3, LUA_MULTRET);
    for (let at = top + 1; at <= vm.api.lua_gettop(L); at++) this.#dropWait(Number(vm.api.lua_tointegerx(L, at, 0)));
    vm.api.lua_settop(L, top);
    this.#kick();
  }

  /** Forgets host operation `op`, whose goroutine no longer waits for it: its result is dropped, its wait called off. */
  #dropWait(op: number): void {
    const result = this.#results.get(op);
    if (result) {
      this.#results.delete(op);
      return discarded(result);
    }
    this.#abandoned.add(op);
    this.#cancellable.get(op)?.cancel();
    this.#cancellable.delete(op);
  }

  /** Starts counting Lua instructions afresh for `maxInstructions` (a new run of a reused engine). */
  resetInstructionCount(): void {
    this.#instructionsUsed = 0;
  }

  /**
   * Reports a failure that happened outside this engine's goroutines (an
   * actor's) as a goroutine's is: to the `on_error` handler, else to stderr
   * as "error in `name`: `trace`", and to SOLVM_LOG's warnings unless it
   * was `logged` where it happened. Call it from the event loop.
   */
  reportFailure(name: string, message: string, trace: string, logged = false): void {
    const { vm, L } = this;
    if (this.#closed || this.#stopped) return;
    this.pushSchedulerField(L, "report_failure");
    vm.pushString(L, name);
    vm.pushString(L, message);
    vm.pushString(L, trace);
    vm.api.lua_pushboolean(L, logged ? 1 : 0);
    this.#call(4, 0);
    this.#kick();
  }

  /**
   * Runs the Lua function held by registry reference `ref` as a goroutine
   * named `name`, with the arguments `pushArgs` pushes. Its errors go to
   * on_error; `done` is told when it ends. Call it from the event loop (a
   * timer, a socket), never from inside Lua.
   */
  spawnFunction(ref: number, name: string, done?: Tracker, pushArgs?: (L: LuaState) => number): void {
    const { vm, L } = this;
    if (this.#closed || this.#stopped) return;
    this.pushSchedulerField(L, "spawn");
    vm.pushRef(L, ref);
    vm.pushString(L, name);
    if (done) vm.pushString(L, "tracked");
    else vm.api.lua_pushnil(L);
    const nargs = pushArgs ? pushArgs(L) : 0;
    this.#call(3 + nargs, 1);
    const id = Number(vm.api.lua_tointegerx(L, -1, 0));
    vm.api.lua_settop(L, -2);
    if (done) this.#trackers.set(id, done);
    this.#kick();
  }

  /**
   * A channel fed from JavaScript (accepted connections, datagrams), named
   * `name`; returns a registry reference to its channel object. Its buffer
   * is unbounded, so feeding it never waits: the feeder bounds it to
   * `limit` values, asking {@linkcode channelLength}, and `tostring` shows
   * that bound as its size. `onClose` is told when the
   * channel is closed (by Lua's close_channel or by {@linkcode closeChannel}).
   * Closing it drops the values nobody took, calling the `close` of each
   * that has one (an accepted connection is reset as a listener's backlog is).
   * May be called from a host function as well as from the event loop.
   */
  newChannel(name: string, limit: number, onClose?: () => void): number {
    const { vm, L } = this;
    this.pushSchedulerField(L, "host_chan");
    vm.pushString(L, name);
    vm.api.lua_pushinteger(L, BigInt(HOST_CHANNEL_BUFFER));
    vm.api.lua_pushinteger(L, BigInt(limit));
    if (onClose) {
      const id = ++this.#nextChannel;
      this.#channelClosers.set(id, onClose);
      vm.api.lua_pushinteger(L, BigInt(id));
    } else vm.api.lua_pushnil(L);
    this.#call(4, 1);
    return vm.ref(L);
  }

  /** True when the value at `idx` is a channel object: a handle only this Lua state can use. */
  isChannel(L: LuaState, idx: number): boolean {
    const api = this.vm.api;
    if (!api.lua_getmetatable(L, idx)) return false;
    this.pushSchedulerField(L, "channel_metatable");
    const channel = api.lua_rawequal(L, -1, -2);
    api.lua_settop(L, -3);
    return channel !== 0;
  }

  /**
   * Sends the value `push` pushes on the channel `ref` (from the event
   * loop, never from inside Lua). False when Lua has closed the channel.
   */
  feedChannel(ref: number, push: (L: LuaState) => void): boolean {
    if (this.#closed || this.#stopped) return false;
    const { vm, L } = this;
    this.pushSchedulerField(L, "send");
    vm.pushRef(L, ref);
    push(L);
    this.#kick();
    return vm.api.lua_pcallk(L, 2, 0, 0, 0, 0) === LUA_OK || (vm.api.lua_settop(L, -2), false);
  }

  /** How many values the channel `ref` holds that nobody has taken yet (0 once the run has ended). */
  channelLength(ref: number): number {
    if (this.#closed || this.#stopped) return 0;
    const { vm, L } = this;
    vm.pushRef(L, ref);
    vm.api.lua_len(L, -1);
    const n = Number(vm.api.lua_tointegerx(L, -1, 0));
    vm.api.lua_settop(L, -3);
    return n;
  }

  /**
   * Resolves once the channel `ref` holds fewer than `limit` values nobody
   * has taken (at once when it does now), or once it is closed or the run
   * ends: a feeder waits so, told by the scheduler rather than looking.
   */
  whenChannelHasRoom(ref: number, limit: number): Promise<void> {
    if (this.channelLength(ref) < limit) return Promise.resolve();
    const { vm, L } = this;
    const id = ++this.#nextChannel;
    this.pushSchedulerField(L, "watch_room");
    vm.pushRef(L, ref);
    vm.api.lua_pushinteger(L, BigInt(limit));
    vm.api.lua_pushinteger(L, BigInt(id));
    this.#call(3, 0);
    return new Promise((resolve) => this.#roomWaiters.set(id, resolve));
  }

  #wakeRoomWaiters(): void {
    for (const wake of this.#roomWaiters.values()) wake();
    this.#roomWaiters.clear();
  }

  /** Closes the channel `ref` (from the event loop) unless Lua already did: receivers drain it, then get nil. */
  closeChannel(ref: number): void {
    if (this.#closed || this.#stopped) return;
    const { vm, L } = this;
    this.pushSchedulerField(L, "close_channel");
    vm.pushRef(L, ref);
    if (vm.api.lua_pcallk(L, 1, 0, 0, 0, 0) !== LUA_OK) vm.api.lua_settop(L, -2);
    this.#kick();
  }

  /** Keeps the run alive (a pending timer, say) until the returned function is called. */
  keepAlive(): () => void {
    let held = true;
    this.#pending++;
    return () => {
      if (!held) return;
      held = false;
      this.#pending--;
      this.#kick();
    };
  }

  /** Registers cleanup for when the engine closes (timers, watchers, servers). */
  onClose(cleanup: () => void): void {
    this.#closers.push(cleanup);
  }

  /**
   * Compiles `source` and runs it as the goroutine "main" with `args` as `...`.
   * A syntax error comes back as an error outcome with an empty traceback;
   * an error the chunk does not catch ends the run (see spawnWatched).
   */
  execute(source: Uint8Array | string, chunkname: string, args: string[] = []): Promise<Outcome> {
    const failure = this.vm.load(this.L, source, chunkname);
    if (failure) return Promise.resolve({ status: "error", message: failure, traceback: "" });
    try {
      this.vm.makeRoom(this.L, args.length + 4); // the arguments, and what spawnWatched pushes beside them
    } catch (e) {
      this.vm.api.lua_settop(this.L, -2);
      const message = thrownText(e);
      return Promise.resolve({ status: "error", message, traceback: message });
    }
    for (const a of args) this.vm.pushString(this.L, a);
    return this.spawnWatched("main", args.length, { failureEndsRun: true });
  }

  /**
   * Runs the function on top of the main stack outside the scheduler (it
   * cannot wait: a script's top level) and returns its error message if it
   * fails. Throws {@linkcode CallStopped} when it stops the engine (`os.exit`).
   */
  runTopLevel(limit?: { at: number; message: string }): string | undefined {
    const { vm, L } = this;
    // The hooks check limits only inside the pump; this runs outside it, so it has a limit of its own.
    this.#topLevel = { at: limit?.at ?? Infinity, message: limit?.message ?? "" };
    this.#instructionsUsed = 0;
    try {
      if (vm.api.lua_pcallk(L, 0, 0, 0, 0, 0) === LUA_OK) return undefined;
    } catch (e) {
      if (!(e instanceof StopRequest)) throw this.#brokenBy(e);
      this.#finish(e.outcome);
      throw new CallStopped(e.outcome);
    } finally {
      const hit = this.#topLevel?.hit;
      this.#topLevel = undefined;
      if (hit) vm.api.lua_sethook(L, hit.hook, hit.mask, hit.step);
    }
    // The text a goroutine's error gets: an error value that is not a string (a table, nil) has one too.
    this.pushSchedulerField(L, "message_of");
    vm.api.lua_rotate(L, -2, 1);
    this.#call(1, 1);
    const message = vm.toText(L, -1);
    vm.api.lua_settop(L, -2);
    return message;
  }

  /** Resolves once nothing can make progress: no pending call, timer, server or ready goroutine. */
  idle(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    this.#kick();
    return done;
  }

  /** Whether Lua runs now (in a call, a pump or a top level): JavaScript asking is called from it, inside its limits. */
  get luaRunning(): boolean {
    return this.#inPump || this.#topLevel !== undefined;
  }

  /** True once {@linkcode close} ran. */
  get closed(): boolean {
    return this.#closed || this.#closing;
  }

  /** How the run was stopped (`os.exit`, `reload_script`, a halt), if it was. */
  get stopped(): Outcome | undefined {
    return this.#stopped;
  }

  /** Sets a global (dotted names reach into tables: "os.exit") to a host function. */
  setGlobal(name: string, impl: HostFunction): void {
    const { vm, L } = this;
    vm.api.lua_pushcclosure(L, vm.hostFunction(impl), 0);
    this.#assign(name);
  }

  /** Sets a global to a field of the scheduler's table (a function written in Lua). */
  setGlobalFromScheduler(name: string, field: string): void {
    this.pushSchedulerField(this.L, field);
    if (this.vm.api.lua_type(this.L, -1) !== LUA_TFUNCTION) throw new Error(`scheduler has no ${field}`);
    this.#assign(name);
  }

  /** Sets a global to the function returned by Lua chunk `source`, which gets `helpers` as `...`. */
  setGlobalFromLua(name: string, source: string, helpers: Record<string, HostFunction>): void {
    this.vm.pushRef(this.L, this.compileLua(name, source, helpers));
    this.#assign(name);
  }

  /**
   * Runs Lua chunk `source` (named `name` in messages) with `helpers` (host
   * functions) as `...` and keeps what it returns; returns its registry reference.
   */
  compileLua(name: string, source: string, helpers: Record<string, HostFunction> = {}): number {
    const { vm, L } = this;
    const failure = vm.load(L, source, `=[solvm] ${name}`);
    if (failure) throw new Error(failure);
    vm.api.lua_createtable(L, 0, Object.keys(helpers).length);
    for (const [helper, impl] of Object.entries(helpers)) {
      vm.api.lua_pushcclosure(L, vm.hostFunction(impl), 0);
      vm.api.lua_setfield(L, -2, vm.cstr(helper));
    }
    this.#call(1, 1);
    return vm.ref(L);
  }

  // Pops the top value into global `name` (one dot allowed: "os.exit").
  #assign(name: string): void {
    const { vm, L } = this;
    const dot = name.indexOf(".");
    if (dot < 0) return vm.api.lua_setglobal(L, vm.cstr(name));
    vm.api.lua_getglobal(L, vm.cstr(name.slice(0, dot)));
    vm.api.lua_rotate(L, -2, 1);
    vm.api.lua_setfield(L, -2, vm.cstr(name.slice(dot + 1)));
    vm.api.lua_settop(L, -2);
  }

  /**
   * Frees the Lua state; pending calls are dropped. Called while Lua runs
   * (from a function or hook Lua called), it unwinds Lua first: the call
   * or run ends as closed once that function returns. With `finalizers`
   * false (after `os.exit(code)`, as C's exit() ends a process) no `__gc`
   * runs: open files are flushed and their descriptors closed, and the
   * state is left to the garbage collector instead of `lua_close`.
   */
  close(options: { finalizers?: boolean } = {}): void {
    if (this.#closed) return;
    this.#runFinalizers &&= options.finalizers ?? true;
    if (this.#inPump) {
      this.#closing = true;
      this.vm.unwinding ??= new StopRequest({ status: "closed" });
      return;
    }
    this.#closed = true;
    this.vm.unwinding = undefined; // the finalizers lua_close runs are host functions too
    // What waits for this engine learns it will not end otherwise.
    for (const watcher of this.#watchers.values()) watcher({ status: "closed" });
    this.#watchers.clear();
    for (const call of this.#calls.values()) call.stopped({ status: "closed" });
    this.#calls.clear();
    for (const released of this.#outlived.values()) released();
    this.#outlived.clear();
    this.#releaseIdle();
    this.#clearDeadlineTimer();
    this.#dropNextSlice();
    this.#cancellable.clear();
    for (const result of this.#results.values()) discarded(result);
    this.#results.clear();
    this.#wakeRoomWaiters();
    for (const cleanup of this.#closers.splice(0)) cleanup();
    this.stdout.flush();
    if (this.#runFinalizers) {
      this.#inLuaClose = true;
      try {
        this.vm.close();
      } finally {
        this.#inLuaClose = false;
      }
    }
    // What is still open (every file when no finalizer ran; one a finalizer opened as the state closed) is written
    // out and its descriptor closed, as C's exit() would.
    this.vm.api.fflush(0);
    this.#files.closeAll?.();
    this.stdout.flush();
    this.vm.lua.removeFunction(this.#continuation);
    this.vm.lua.removeFunction(this.#tierUpHook);
    if (this.#interruptHook) this.vm.lua.removeFunction(this.#interruptHook);
    if (this.#userHook) this.vm.lua.removeFunction(this.#userHook);
    if (this.#callerInfo) this.vm.api.free(this.#callerInfo);
  }
}

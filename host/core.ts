/**
 * The core family: `print`, `sleep`, `os.exit`, `os.getenv` (through
 * Deno, so a denied variable is an error naming the flag, not a silent nil)
 * and `os.setlocale`.
 *
 * @module
 */
import type { CancellableWait, Engine } from "../runtime/engine.ts";
import { checkCInt, checkSeconds, checkString, isNone } from "../runtime/args.ts";
import { LUA_TBOOLEAN, type LuaState } from "../runtime/lua.ts";
import type { Family } from "../runtime/family.ts";
import { accessReason, checkAccess, isPermissionError } from "./_permissions.ts";
import { after } from "../runtime/_timer.ts";

const TAB = new Uint8Array([9]);
const NEWLINE = new Uint8Array([10]);

/** `print(...)`: writes its arguments as `tostring` shows them, tab-separated, buffered. */
function print(engine: Engine, L: LuaState): number {
  const { vm, stdout } = engine;
  const n = vm.api.lua_gettop(L);
  for (let i = 1; i <= n; i++) {
    if (i > 1) stdout.write(TAB);
    stdout.write(vm.tostringBytes(L, i));
  }
  stdout.write(NEWLINE);
  return 0;
}

/**
 * A Promise that resolves after `ms` milliseconds, for host code that
 * waits a moment (`sleep` uses {@linkcode SleepTimers}).
 *
 * ```ts
 * import { delay } from "./core.ts";
 * await delay(1);
 * ```
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => after(ms, resolve));
}

/** One timer, shared by every goroutine due in the same millisecond; the wait of each of them. */
class SharedTimer implements CancellableWait {
  readonly wait: Promise<void>;
  waiting = 0;
  #clear = () => {};

  constructor(readonly owner: SleepTimers, readonly due: number) {
    this.wait = new Promise((resolve) => {
      this.#clear = after(Math.max(0, due - performance.now()), () => {
        owner.forget(this);
        resolve();
      });
    });
  }

  /** One goroutine no longer waits (its call was stopped): the last one clears the timer. */
  cancel(): void {
    if (--this.waiting > 0) return;
    this.stop();
  }

  /** Clears the timer; its goroutines wait for ever (their engine closes). */
  stop(): void {
    this.#clear();
    this.owner.forget(this);
  }
}

/** The timers of one engine's sleeping goroutines: 100,000 goroutines that sleep alike share a few. */
class SleepTimers {
  readonly #byDue = new Map<number, SharedTimer>();

  constructor(engine: Engine) {
    // A closed engine's sleepers keep no timer, which would keep the process alive.
    engine.onClose(() => {
      for (const timer of [...this.#byDue.values()]) timer.stop();
    });
  }

  /** The wait for `ms` milliseconds. */
  wait(ms: number): SharedTimer {
    const due = Math.ceil(performance.now() + ms);
    let timer = this.#byDue.get(due);
    if (!timer) this.#byDue.set(due, timer = new SharedTimer(this, due));
    timer.waiting++;
    return timer;
  }

  /** Drops `timer` once it has fired or been cleared. */
  forget(timer: SharedTimer): void {
    if (this.#byDue.get(timer.due) === timer) this.#byDue.delete(timer.due);
  }
}

/** `sleep(seconds)`: parks the calling goroutine; fractions allowed. */
function sleep(engine: Engine, timers: SleepTimers, L: LuaState): SharedTimer {
  return timers.wait(checkSeconds(engine.vm, L, 1, "sleep") * 1000);
}

/** `os.exit([code[, close]])`: flushes output and ends the run with `code` (true = 0, false = 1). */
function exit(engine: Engine, L: LuaState): never {
  const vm = engine.vm;
  let code = 0;
  if (vm.api.lua_type(L, 1) === LUA_TBOOLEAN) code = vm.api.lua_toboolean(L, 1) ? 0 : 1;
  // As lua5.4, which hands C's exit() an int: "3" and 3.0 are 3, and 2^32 + 1 is 1.
  else if (!isNone(vm, L, 1)) code = checkCInt(vm, L, 1, "os.exit");
  // A finalizer run as the state closes: the run is over, and the code is what the process ends with.
  if (engine.exitAsClosing(code)) throw new Error("os.exit: the Lua state is closing");
  return engine.abort(vm.api.lua_toboolean(L, 2) ? { status: "exit", code, close: true } : { status: "exit", code });
}

/** `os.getenv(name)`: the variable's value or nil; a denied variable is an error naming the flag. */
function getenv(engine: Engine, L: LuaState): number {
  const name = checkString(engine.vm, L, 1, "os.getenv");
  // As C's getenv: a name no variable can have is simply not set.
  if (name === "" || /[=\0]/.test(name)) {
    engine.vm.api.lua_pushnil(L);
    return 1;
  }
  let value: string | undefined;
  try {
    checkAccess("env", name);
    value = Deno.env.get(name);
  } catch (e) {
    if (isPermissionError(e)) throw new Error(accessReason(e, "env", name));
    throw e;
  }
  engine.vm.pushPrimitive(L, value);
  return 1;
}

/**
 * `os.setlocale` as lua5.4 answers it where only C and C.UTF-8 are
 * installed: the C library inside (musl) takes any name and honours no
 * other, so another name fails (nil) and the locale stays as it was.
 */
const SETLOCALE_LUA = `
local setlocale, pcall, error, type, gmatch, gsub = os.setlocale, pcall, error, type, string.gmatch, string.gsub
local getinfo = debug and debug.getinfo  -- a Context may be opened without the debug library
local HONOURED = { C = true, POSIX = true, ["C.UTF-8"] = true, ["C.utf8"] = true }
-- Called through pcall, the C function's argument errors name '?' and no line: given the caller's name for this
-- function (as a direct call would have, else its global name) and the caller's line.
local function checked(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "string" then
    local name = getinfo and getinfo(2, "n").name or "os.setlocale"
    e = gsub(e, "to '[^']*'", function() return "to '" .. name .. "'" end, 1)
  end
  error(e, 3)
end
return function(locale, category)
  local before = setlocale(nil, "all")
  local set = checked(pcall(setlocale, locale, category))
  if locale == nil or set == nil then return set end
  for name in gmatch(set, "[^;]+") do  -- "" takes a name from the environment, per category
    if not HONOURED[name] then
      setlocale(before, "all")
      return nil
    end
  end
  return set
end`;

/** The core family's registration table. */
export const core = (engine: Engine): Family => {
  const timers = new SleepTimers(engine);
  return {
    print: (L) => print(engine, L),
    sleep: engine.blocking("sleep", (L) => sleep(engine, timers, L)),
    "os.exit": (L) => exit(engine, L),
    "os.getenv": (L) => getenv(engine, L),
    "os.setlocale": { lua: SETLOCALE_LUA, helpers: {} },
  };
};

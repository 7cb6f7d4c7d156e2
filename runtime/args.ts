/**
 * Argument checks for host functions, with Lua's own wording:
 * `bad argument #1 to 'sleep' (number expected, got string)`.
 *
 * @module
 */
import { LUA_TFUNCTION, LUA_TNIL, LUA_TNONE, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE, type LuaState } from "./lua.ts";
import type { LuaVM } from "./state.ts";
import { ArgumentError } from "./errors.ts";

/**
 * Throws unless `value`, the library option `name`, is undefined or a whole
 * number of at least 1 (a computed 0, NaN or 1.5 must not pass for "no
 * limit"): a TypeError for another type, a RangeError for another number.
 *
 * ```ts
 * import { throws } from "node:assert";
 * import { checkCount } from "./args.ts";
 * checkCount("pool", 4);
 * throws(() => checkCount("pool", 0), RangeError);
 * ```
 */
export function checkCount(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== "number") throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a whole number of at least 1, got ${value}`);
  }
}

/**
 * Raises Lua's "bad argument" error for argument `i` of `fname`.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { argError } from "./args.ts";
 * ok(argError(1, "sleep", "number expected, got nil").message ===
 *   "bad argument #1 to 'sleep' (number expected, got nil)");
 * ```
 */
export function argError(i: number, fname: string, detail: string): Error {
  return new ArgumentError(i, fname, detail);
}

function typeError(vm: LuaVM, L: LuaState, i: number, fname: string, expected: string): Error {
  const got = vm.api.lua_type(L, i) === LUA_TNONE ? "no value" : vm.typeName(L, i);
  return argError(i, fname, `${expected} expected, got ${got}`);
}

/** Argument `i` as a number (integers and floats alike; numeric strings convert, as in Lua). */
export function checkNumber(vm: LuaVM, L: LuaState, i: number, fname: string): number {
  if (!vm.api.lua_isnumber(L, i)) throw typeError(vm, L, i, fname, "number");
  return vm.api.lua_tonumberx(L, i, 0);
}

/**
 * Argument `i` as a Lua integer, exactly (a double would round past 2^53); floats with an integral value in range and
 * numeric strings are accepted, as by `luaL_checkinteger`.
 */
export function checkInteger(vm: LuaVM, L: LuaState, i: number, fname: string): bigint {
  const n = vm.toInteger(L, i);
  if (n !== undefined) return n;
  if (!vm.api.lua_isnumber(L, i)) throw typeError(vm, L, i, fname, "number");
  throw argError(i, fname, "number has no integer representation");
}

/** Argument `i` as a finite number of seconds, at least 0 (above 0 when `positive`): a time to wait. */
export function checkSeconds(vm: LuaVM, L: LuaState, i: number, fname: string, positive = false): number {
  const seconds = checkNumber(vm, L, i, fname);
  if (!Number.isFinite(seconds) || seconds < 0 || (positive && seconds === 0)) {
    const kind = positive ? "positive" : "non-negative";
    throw argError(i, fname, `${kind} finite number of seconds expected, got ${vm.tostring(L, i)}`);
  }
  return seconds;
}

/** Argument `i` as C's (int) cast of a Lua integer takes it, as lua5.4's C functions do: past 32 bits it wraps. */
export function checkCInt(vm: LuaVM, L: LuaState, i: number, fname: string): number {
  return Number(BigInt.asIntN(32, checkInteger(vm, L, i, fname)));
}

/** Argument `i` as the raw bytes of a string (numbers are converted, as Lua does). */
export function checkBytes(vm: LuaVM, L: LuaState, i: number, fname: string): Uint8Array {
  const t = vm.api.lua_type(L, i);
  if (t !== LUA_TSTRING && t !== LUA_TNUMBER) throw typeError(vm, L, i, fname, "string");
  return vm.toBytes(L, i);
}

/** Argument `i` as text (UTF-8 decoded). */
export function checkString(vm: LuaVM, L: LuaState, i: number, fname: string): string {
  const t = vm.api.lua_type(L, i);
  if (t !== LUA_TSTRING && t !== LUA_TNUMBER) throw typeError(vm, L, i, fname, "string");
  return vm.toText(L, i);
}

/**
 * Argument `i` as text that must be valid UTF-8 (a path, a URL): a lossy
 * decoding would silently name something else.
 */
export function checkStrictText(vm: LuaVM, L: LuaState, i: number, fname: string, what: string): string {
  const t = vm.api.lua_type(L, i);
  if (t !== LUA_TSTRING && t !== LUA_TNUMBER) throw typeError(vm, L, i, fname, "string");
  const text = vm.toUtf8Text(L, i);
  if (text === undefined) throw argError(i, fname, `${what} is not valid UTF-8`);
  return text;
}

/** Argument `i` as a port number in `min`..65535 (0 asks the system for a free one, where `min` allows it). */
export function checkPort(vm: LuaVM, L: LuaState, i: number, fname: string, min: 0 | 1): number {
  const port = checkInteger(vm, L, i, fname);
  if (port < min || port > 65535) throw argError(i, fname, `port ${min}-65535 expected, got ${port}`);
  return Number(port);
}

/** Checks that argument `i` is a table. */
export function checkTable(vm: LuaVM, L: LuaState, i: number, fname: string): void {
  if (vm.api.lua_type(L, i) !== LUA_TTABLE) throw typeError(vm, L, i, fname, "table");
}

/**
 * Raises for the first key of the table at stack index `t` that is not one
 * of `options`: a misspelt option would otherwise be ignored without a word.
 * The error is for argument `argument` of `fname`; `context` starts its
 * detail (`"child 2: "`, for a table inside the argument).
 */
export function checkOptions(
  vm: LuaVM,
  L: LuaState,
  t: number,
  argument: number,
  fname: string,
  options: readonly string[],
  context = "",
): void {
  const api = vm.api;
  const table = api.lua_absindex(L, t);
  api.lua_pushnil(L);
  while (api.lua_next(L, table)) {
    const key = api.lua_type(L, -2) === LUA_TSTRING ? vm.toText(L, -2) : undefined;
    if (key === undefined || !options.includes(key)) {
      const shown = key === undefined ? `a ${vm.typeName(L, -2)} key` : `'${key}'`;
      throw argError(argument, fname, `${context}unknown option ${shown}; options are: ${options.join(", ")}`);
    }
    api.lua_settop(L, -2);
  }
}

/** Checks that argument `i` is a function. */
export function checkFunction(vm: LuaVM, L: LuaState, i: number, fname: string): void {
  if (vm.api.lua_type(L, i) !== LUA_TFUNCTION) throw typeError(vm, L, i, fname, "function");
}

/** True when argument `i` is absent or nil. */
export function isNone(vm: LuaVM, L: LuaState, i: number): boolean {
  const t = vm.api.lua_type(L, i);
  return t === LUA_TNONE || t === LUA_TNIL;
}

/**
 * Loads Lua 5.4 (wasmoon's WebAssembly build) and exposes its raw C API.
 *
 * wasmoon's convenience layer costs microseconds per call; the raw exports
 * cost nanoseconds, so every hot path in SolVM talks to them directly.
 *
 * @module
 */
import { LuaFactory } from "wasmoon";
import { createRequire } from "node:module";

/** A `lua_State*`: a pointer into the WebAssembly memory. */
export type LuaState = number;

/** Lua type tags (`lua_type`). */
export const LUA_TNONE = -1,
  LUA_TNIL = 0,
  LUA_TBOOLEAN = 1,
  LUA_TLIGHTUSERDATA = 2,
  LUA_TNUMBER = 3,
  LUA_TSTRING = 4,
  LUA_TTABLE = 5,
  LUA_TFUNCTION = 6,
  LUA_TUSERDATA = 7,
  LUA_TTHREAD = 8;

/** Status codes of `lua_pcallk`, `lua_resume` and the loaders. */
/** `lua_sethook` mask for count events. */
export const LUA_MASKCOUNT = 8;

export const LUA_OK = 0, LUA_YIELD = 1, LUA_ERRRUN = 2, LUA_ERRSYNTAX = 3, LUA_ERRMEM = 4;

/** The registry's pseudo-index (LUAI_MAXSTACK = 1000000). */
export const LUA_REGISTRYINDEX = -1000000 - 1000;

/** The raw C functions SolVM uses, as exported by the WebAssembly module. */
export interface LuaExports {
  malloc(size: number): number;
  free(ptr: number): void;
  luaL_newstate(): LuaState;
  luaL_openlibs(L: LuaState): void;
  lua_close(L: LuaState): void;
  luaL_loadbufferx(L: LuaState, buf: number, size: number, name: number, mode: number): number;
  luaL_tolstring(L: LuaState, idx: number, len: number): number;
  luaL_traceback(L: LuaState, L1: LuaState, msg: number, level: number): void;
  luaL_ref(L: LuaState, t: number): number;
  luaL_unref(L: LuaState, t: number, ref: number): void;
  luaL_where(L: LuaState, level: number): void;
  luaL_checkinteger(L: LuaState, arg: number): bigint;
  luaL_checknumber(L: LuaState, arg: number): number;
  luaL_typeerror(L: LuaState, arg: number, tname: number): number;
  luaL_argerror(L: LuaState, arg: number, msg: number): number;
  lua_gettop(L: LuaState): number;
  lua_settop(L: LuaState, idx: number): void;
  lua_absindex(L: LuaState, idx: number): number;
  lua_pushvalue(L: LuaState, idx: number): void;
  lua_rotate(L: LuaState, idx: number, n: number): void;
  lua_checkstack(L: LuaState, n: number): number;
  lua_type(L: LuaState, idx: number): number;
  lua_typename(L: LuaState, tp: number): number;
  lua_isinteger(L: LuaState, idx: number): number;
  lua_tonumberx(L: LuaState, idx: number, isnum: number): number;
  lua_tointegerx(L: LuaState, idx: number, isnum: number): bigint;
  lua_toboolean(L: LuaState, idx: number): number;
  lua_tolstring(L: LuaState, idx: number, len: number): number;
  lua_topointer(L: LuaState, idx: number): number;
  lua_rawlen(L: LuaState, idx: number): bigint;
  lua_pushnil(L: LuaState): void;
  lua_pushnumber(L: LuaState, n: number): void;
  lua_pushinteger(L: LuaState, n: bigint): void;
  lua_pushlstring(L: LuaState, s: number, len: number): number;
  lua_pushboolean(L: LuaState, b: number): void;
  lua_pushlightuserdata(L: LuaState, p: number): void;
  lua_pushcclosure(L: LuaState, fn: number, n: number): void;
  lua_getglobal(L: LuaState, name: number): number;
  lua_setglobal(L: LuaState, name: number): void;
  lua_getfield(L: LuaState, idx: number, k: number): number;
  lua_setfield(L: LuaState, idx: number, k: number): void;
  lua_rawget(L: LuaState, idx: number): number;
  lua_rawset(L: LuaState, idx: number): void;
  lua_rawgeti(L: LuaState, idx: number, n: bigint): number;
  lua_rawseti(L: LuaState, idx: number, n: bigint): void;
  lua_createtable(L: LuaState, narr: number, nrec: number): void;
  lua_setmetatable(L: LuaState, idx: number): number;
  lua_getmetatable(L: LuaState, idx: number): number;
  lua_next(L: LuaState, idx: number): number;
  lua_pcallk(L: LuaState, nargs: number, nresults: number, errfunc: number, ctx: number, k: number): number;
  lua_isyieldable(L: LuaState): number;
  lua_sethook(L: LuaState, fn: number, mask: number, count: number): void;
  lua_pushthread(L: LuaState): number;
  lua_getinfo(L: LuaState, what: number, ar: number): number;
  lua_yieldk(L: LuaState, nresults: number, ctx: number, k: number): number;
  lua_error(L: LuaState): number;
}

/** The loaded WebAssembly module: raw exports plus the memory views. */
export interface LuaModule {
  readonly raw: LuaExports;
  /** Current byte view of the WebAssembly memory (replaced when memory grows). */
  heap(): Uint8Array;
  /** Makes a JavaScript function callable from C (`sig` as in Emscripten, e.g. "ii"). */
  addFunction(fn: (...args: number[]) => number | void, sig: string): number;
  /** Frees a slot made by `addFunction`. */
  removeFunction(ptr: number): void;
}

let loading: Promise<LuaModule> | undefined;

/**
 * Loads the WebAssembly module once per JavaScript realm.
 *
 * ```ts
 * import { loadLuaModule } from "./lua.ts";
 * const lua = await loadLuaModule();
 * const L = lua.raw.luaL_newstate();
 * lua.raw.lua_close(L);
 * ```
 */
export function loadLuaModule(): Promise<LuaModule> {
  loading ??= instantiate();
  return loading;
}

async function instantiate(): Promise<LuaModule> {
  // Name glue.wasm's path ourselves: under a Worker wasmoon would otherwise
  // guess a remote URL. Node resolution finds it in Deno's npm cache.
  const wasmPath = createRequire(import.meta.url).resolve("wasmoon/dist/glue.wasm");
  // wasmoon wraps every export in an assertion shim; keep the bare exports.
  const original = WebAssembly.instantiate;
  let exports: WebAssembly.Exports | undefined;
  const capture = async (bytes: BufferSource, imports: WebAssembly.Imports) => {
    const result = await original(bytes, imports);
    exports = result.instance.exports;
    return result;
  };
  (WebAssembly as { instantiate: unknown }).instantiate = capture;
  let wasm;
  try {
    wasm = await new LuaFactory(wasmPath).getLuaModule();
  } finally {
    WebAssembly.instantiate = original;
  }
  if (!exports) throw new Error("SolVM: could not load the Lua WebAssembly module");
  const emscripten = wasm.module as unknown as {
    HEAPU8: Uint8Array;
    addFunction(fn: unknown, sig: string): number;
    removeFunction(ptr: number): void;
  };
  return {
    raw: exports as unknown as LuaExports,
    heap: () => emscripten.HEAPU8,
    addFunction: (fn, sig) => emscripten.addFunction(fn, sig),
    removeFunction: (ptr) => emscripten.removeFunction(ptr),
  };
}

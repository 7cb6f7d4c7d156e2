/**
 * One Lua state and the byte-level helpers every host function needs:
 * strings in and out (binary-safe), registry references, chunk loading and
 * host functions whose JavaScript errors become Lua errors.
 *
 * @module
 */
import {
  LONGJMP,
  LUA_ERRMEM,
  LUA_MASKCOUNT,
  LUA_OK,
  LUA_REGISTRYINDEX,
  LUA_TBOOLEAN,
  LUA_TNIL,
  LUA_TNUMBER,
  LUA_TSTRING,
  type LuaExports,
  type LuaModule,
  type LuaState,
} from "./lua.ts";
import { ArgumentError, LuaError } from "./errors.ts";

/**
 * What a thrown value says, whatever it is: an Error's message, else an
 * object's string `message`, a plain object's JSON, or its text; a value
 * whose text cannot be had (a null-prototype object, a throwing getter) is
 * named by its kind.
 *
 * ```ts
 * import { thrownText } from "./state.ts";
 * console.assert(thrownText({ code: "E_QTY", message: "too few" }) === "too few");
 * console.assert(thrownText({ code: "E_QTY" }) === '{"code":"E_QTY"}');
 * console.assert(thrownText(Object.create(null)) === "[object Object]");
 * ```
 */
export function thrownText(e: unknown): string {
  try {
    if (e instanceof Error) return String(e.message);
    const { message, toString } = (e ?? {}) as { message?: unknown; toString?: unknown };
    if (typeof message === "string") return message;
    // A plain object's text is "[object Object]": its JSON says what it holds.
    if (typeof e === "object" && toString === Object.prototype.toString) return JSON.stringify(e);
    return String(e);
  } catch {
    return Object.prototype.toString.call(e);
  }
}

/**
 * The level whose position prefixes the Lua error a thrown value becomes: 1
 * (the caller), its `luaLevel` if it has one (2 for a function reached
 * through a Lua wrapper), or 0 for a Lua error passing back out through
 * JavaScript (a callback's), which keeps its own position as through a C
 * function.
 *
 * ```ts
 * import { errorLevel } from "./state.ts";
 * console.assert(errorLevel(new Error("x")) === 1);
 * ```
 */
export function errorLevel(e: unknown): number {
  if (e instanceof LuaError && e.file !== undefined) return 0;
  // `throw undefined` or `throw null` has no properties to read: it is a Lua error like any other.
  return (e as { luaLevel?: number } | null | undefined)?.luaLevel ?? 1;
}

// lua_Debug on wasm32: int event; char *name, *namewhat, *what, *source; ...
export const LUA_DEBUG_NAME = 4;
export const LUA_DEBUG_NAMEWHAT = 8;
export const LUA_DEBUG_SOURCE = 16;
export const LUA_DEBUG_CURRENTLINE = 24;
const LUA_DEBUG_LINEDEFINED = 28;
const LUA_DEBUG_SHORT_SRC = 44;
// sizeof(lua_Debug) in this 32-bit build is 124 bytes; room to spare.
export const LUA_DEBUG_SIZE = 256;

/** How the chunks of SolVM's own Lua are named (tracebacks and error positions leave them out). */
export const INTERNAL_CHUNK_PREFIX = "=[solvm] ";

/** A host function: reads its arguments from `L`, pushes results, returns their count. */
export type HostFunction = (L: LuaState) => number;

/**
 * Thrown by a host function to stop the whole state at once (os.exit, a
 * hard limit): it unwinds through Lua without becoming a catchable error.
 */
export class LuaUnwind extends Error {}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A body {@linkcode LuaVM.protect} runs, with what it returned or threw. */
interface Protecting {
  body: (L: LuaState) => unknown;
  nresults: number;
  value?: unknown;
  failure?: { error: unknown };
}

/** Strings up to this many bytes are converted in JavaScript (a TextEncoder or TextDecoder call costs more). */
const SHORT_STRING = 256;
/** Reused character codes of a short string (one array, no garbage per string). */
const shortCodes: number[] = [];

/**
 * Drops a UTF-8 byte-order mark and blanks a `#` first line, keeping its
 * newline so error lines stay right: what luaL_loadfile skips in a file
 * (or standard input) before the chunk.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { skipFilePreamble } from "./state.ts";
 * const source = new TextEncoder().encode("\uFEFF#!/usr/bin/env solvm\nprint(1)\n");
 * strictEqual(new TextDecoder().decode(skipFilePreamble(source)), "\nprint(1)\n");
 * ```
 */
export function skipFilePreamble(source: Uint8Array): Uint8Array {
  if (source[0] === 0xef && source[1] === 0xbb && source[2] === 0xbf) source = source.subarray(3);
  if (source[0] !== 0x23) return source; // '#'
  const end = source.indexOf(0x0a);
  return end < 0 ? new Uint8Array() : source.subarray(end);
}

/**
 * A Lua state with SolVM's helpers.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { loadLuaModule, NO_FILES } from "./lua.ts";
 * import { LuaVM } from "./state.ts";
 * const vm = new LuaVM(loadLuaModule(NO_FILES));
 * vm.pushString(vm.L, "héllo");
 * ok(vm.toText(vm.L, -1) === "héllo");
 * vm.close();
 * ```
 */
export class LuaVM {
  readonly api: LuaExports;
  readonly L: LuaState;
  #scratch = 0;
  #scratchSize = 0;
  readonly #lenPtr: number;
  readonly #cstrings = new Map<string, number>();
  readonly #functions: number[] = [];
  #debugRecord = 0;
  /** Once set, every host function throws it as it returns: Lua must unwind at once (its state is being closed). */
  unwinding: LuaUnwind | undefined;
  /** What the protected call of {@linkcode protect} runs now (an outer one is kept by the inner). */
  #protecting: Protecting | undefined;
  /** The C function {@linkcode protect} calls: it runs #protecting's body. */
  readonly #protectedBody: number;

  constructor(readonly lua: LuaModule) {
    this.api = lua.raw;
    this.L = lua.newState();
    this.api.luaL_openlibs(this.L);
    this.#lenPtr = this.api.malloc(8);
    this.#protectedBody = this.hostFunction((L) => {
      const protecting = this.#protecting!;
      try {
        protecting.value = protecting.body(L);
        return protecting.nresults;
      } catch (e) {
        if (e === LONGJMP || e instanceof LuaUnwind) throw e; // Lua's own errors unwind as Lua's
        protecting.failure = { error: e };
        return 0;
      }
    });
    this.#seedRandom();
  }

  // Lua seeds math.random from the time in seconds and the state's address, which WebAssembly makes the same every
  // run: states made in the same second (processes, actors, a pool's engines) drew the same numbers.
  #seedRandom(): void {
    const { api, L } = this;
    const [a, b] = crypto.getRandomValues(new BigInt64Array(2));
    api.lua_getglobal(L, this.cstr("math"));
    api.lua_getfield(L, -1, this.cstr("randomseed"));
    api.lua_pushinteger(L, a);
    api.lua_pushinteger(L, b);
    api.lua_callk(L, 2, 0, 0, 0);
    api.lua_settop(L, -2);
  }

  /** A NUL-terminated copy of `s` in WebAssembly memory, kept for the state's life. */
  cstr(s: string): number {
    let p = this.#cstrings.get(s);
    if (p === undefined) {
      const bytes = encoder.encode(s);
      p = this.api.malloc(bytes.length + 1);
      const heap = this.lua.heap();
      heap.set(bytes, p);
      heap[p + bytes.length] = 0;
      this.#cstrings.set(s, p);
    }
    return p;
  }

  #reserve(size: number): number {
    if (size > this.#scratchSize) {
      if (this.#scratch) this.api.free(this.#scratch);
      const wanted = Math.max(size, 2 * this.#scratchSize, 4096);
      this.#scratch = this.api.malloc(wanted);
      // A failed malloc leaves no scratch at all, never a size without memory behind it.
      this.#scratchSize = this.#scratch ? wanted : 0;
      if (!this.#scratch) throw new Error("not enough memory");
    }
    return this.#scratch;
  }

  /** Pushes a JavaScript string as UTF-8 bytes. */
  pushString(L: LuaState, s: string): void {
    const n = s.length;
    const max = n * 3;
    const p = this.#reserve(max + 1);
    const heap = this.lua.heap();
    if (n <= SHORT_STRING) {
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        heap[p + i] = c;
      }
      if (i === n) {
        this.api.lua_pushlstring(L, p, n);
        return;
      }
    }
    const { written } = encoder.encodeInto(s, heap.subarray(p, p + max));
    this.api.lua_pushlstring(L, p, written);
  }

  /** Pushes raw bytes as a Lua string. */
  pushBytes(L: LuaState, bytes: Uint8Array): void {
    const p = this.#reserve(bytes.length + 1);
    this.lua.heap().set(bytes, p);
    this.api.lua_pushlstring(L, p, bytes.length);
  }

  /** A view (not a copy) of the string or number at `idx`; valid until Lua runs again. */
  viewBytes(L: LuaState, idx: number): Uint8Array {
    const p = this.api.lua_tolstring(L, idx, this.#lenPtr);
    const heap = this.lua.heap();
    return heap.subarray(p, p + this.#length(heap));
  }

  #length(heap: Uint8Array): number {
    const at = this.#lenPtr;
    return (heap[at] | heap[at + 1] << 8 | heap[at + 2] << 16 | heap[at + 3] << 24) >>> 0;
  }

  /** The string at `idx` when it is short and every byte is below `limit` (0x80: ASCII), else undefined. */
  #shortText(L: LuaState, idx: number, limit: number): string | undefined {
    const p = this.api.lua_tolstring(L, idx, this.#lenPtr);
    const heap = this.lua.heap();
    const n = this.#length(heap);
    if (n > SHORT_STRING) return undefined;
    shortCodes.length = n;
    for (let i = 0; i < n; i++) {
      const c = heap[p + i];
      if (c >= limit) return undefined;
      shortCodes[i] = c;
    }
    return String.fromCharCode.apply(null, shortCodes);
  }

  /** A copy of the bytes of the string at `idx`. */
  toBytes(L: LuaState, idx: number): Uint8Array<ArrayBuffer> {
    return this.viewBytes(L, idx).slice();
  }

  /** The string at `idx` decoded as UTF-8 (invalid bytes become U+FFFD). */
  toText(L: LuaState, idx: number): string {
    return this.#shortText(L, idx, 0x80) ?? decoder.decode(this.viewBytes(L, idx));
  }

  /** The string at `idx` as text when it is valid UTF-8, else undefined. */
  toUtf8Text(L: LuaState, idx: number): string | undefined {
    const short = this.#shortText(L, idx, 0x80);
    if (short !== undefined) return short;
    try {
      return strictDecoder.decode(this.viewBytes(L, idx));
    } catch {
      return undefined;
    }
  }

  /**
   * Pushes a byte string (one character per byte, as HTTP header values
   * are held by fetch's Headers) as those bytes.
   */
  pushByteString(L: LuaState, text: string): void {
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    this.pushBytes(L, bytes);
  }

  /** The string at `idx` as a byte string: one character per byte. */
  toByteString(L: LuaState, idx: number): string {
    const short = this.#shortText(L, idx, 0x100);
    if (short !== undefined) return short;
    const bytes = this.viewBytes(L, idx);
    let text = "";
    for (let at = 0; at < bytes.length; at += 4096) {
      text += String.fromCharCode(...bytes.subarray(at, at + 4096));
    }
    return text;
  }

  /** Any value as Lua's `tostring` shows it (honours `__tostring`), as bytes. */
  tostringBytes(L: LuaState, idx: number): Uint8Array {
    const p = this.api.luaL_tolstring(L, idx, this.#lenPtr);
    const heap = this.lua.heap();
    const bytes = heap.slice(p, p + this.#length(heap));
    this.api.lua_settop(L, -2);
    return bytes;
  }

  /** Any value as Lua's `tostring` shows it (`-inf`, `-nan`, every digit of an integer), as text. */
  tostring(L: LuaState, idx: number): string {
    return decoder.decode(this.tostringBytes(L, idx));
  }

  /**
   * The value at `idx` as a Lua integer, exactly, as `lua_tointegerx` reads it (integral floats and numeric strings
   * convert); undefined when it has none.
   */
  toInteger(L: LuaState, idx: number): bigint | undefined {
    const n = this.api.lua_tointegerx(L, idx, this.#lenPtr); // the length cell holds lua_tointegerx's isnum flag
    return this.#length(this.lua.heap()) ? n : undefined;
  }

  /** The name of the type of the value at `idx` ("nil", "table", ...). */
  typeName(L: LuaState, idx: number): string {
    const p = this.api.lua_typename(L, this.api.lua_type(L, idx));
    const heap = this.lua.heap();
    let end = p;
    while (heap[end]) end++;
    return decoder.decode(heap.subarray(p, end));
  }

  /** Pushes a JavaScript primitive: nil, boolean, integer or float, string, bytes. */
  pushPrimitive(L: LuaState, v: unknown): void {
    const api = this.api;
    if (v === null || v === undefined) api.lua_pushnil(L);
    else if (typeof v === "boolean") api.lua_pushboolean(L, v ? 1 : 0);
    else if (typeof v === "number") {
      if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) api.lua_pushinteger(L, BigInt(v));
      else api.lua_pushnumber(L, v);
    } else if (typeof v === "bigint") api.lua_pushinteger(L, BigInt.asIntN(64, v));
    else if (typeof v === "string") this.pushString(L, v);
    else if (v instanceof Uint8Array) this.pushBytes(L, v);
    else throw new TypeError(`cannot pass a ${typeof v} to Lua`);
  }

  /**
   * Pushes a JavaScript value: primitives as {@linkcode pushPrimitive} does,
   * arrays as sequences, plain objects as tables (nested), `undefined`
   * fields skipped.
   */
  pushValue(L: LuaState, v: unknown): void {
    const api = this.api;
    if (Array.isArray(v)) {
      api.lua_checkstack(L, 3);
      api.lua_createtable(L, v.length, 0);
      v.forEach((item, i) => {
        this.pushValue(L, item);
        api.lua_rawseti(L, -2, BigInt(i + 1));
      });
    } else if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
      const entries = Object.entries(v).filter(([, item]) => item !== undefined);
      api.lua_checkstack(L, 3);
      api.lua_createtable(L, 0, entries.length);
      for (const [key, item] of entries) {
        this.pushString(L, key);
        this.pushValue(L, item);
        api.lua_rawset(L, -3);
      }
    } else this.pushPrimitive(L, v);
  }

  /** Reads a nil, boolean, number or string; other types come back as undefined. */
  toPrimitive(L: LuaState, idx: number): null | boolean | number | string | undefined {
    const api = this.api;
    switch (api.lua_type(L, idx)) {
      case LUA_TNIL:
        return null;
      case LUA_TBOOLEAN:
        return api.lua_toboolean(L, idx) !== 0;
      case LUA_TNUMBER:
        return api.lua_isinteger(L, idx) ? Number(api.lua_tointegerx(L, idx, 0)) : api.lua_tonumberx(L, idx, 0);
      case LUA_TSTRING:
        return this.toText(L, idx);
    }
    return undefined;
  }

  /**
   * Compiles `source` under `chunkname` ("@file.lua" or "=name"); on failure
   * returns the message. `mode` "t" refuses precompiled bytecode. A file's
   * chunk ("@...") may start with a byte-order mark and a `#` line, as
   * luaL_loadfile allows.
   */
  load(L: LuaState, source: Uint8Array | string, chunkname: string, mode: "t" | "bt" = "t"): string | null {
    let bytes = typeof source === "string" ? encoder.encode(source) : source;
    if (chunkname.startsWith("@")) bytes = skipFilePreamble(bytes);
    const p = this.#reserve(bytes.length + 1);
    this.lua.heap().set(bytes, p);
    const status = this.api.luaL_loadbufferx(L, p, bytes.length, this.cstr(chunkname), this.cstr(mode));
    if (status === LUA_OK) return null;
    const message = this.toText(L, -1);
    this.api.lua_settop(L, -2);
    // Lua's own wording names neither the chunk nor the cure.
    if (message.startsWith("attempt to load a binary chunk")) {
      return `${chunkname.replace(/^[@=]/, "")}: precompiled Lua bytecode is refused; only source text runs`;
    }
    return message;
  }

  /** Pops the top value into the registry and returns its reference. */
  ref(L: LuaState): number {
    return this.api.luaL_ref(L, LUA_REGISTRYINDEX);
  }

  /** Pushes the value held by a registry reference. */
  pushRef(L: LuaState, ref: number): void {
    this.api.lua_rawgeti(L, LUA_REGISTRYINDEX, BigInt(ref));
  }

  /** Releases a registry reference. */
  unref(ref: number): void {
    this.api.luaL_unref(this.L, LUA_REGISTRYINDEX, ref);
  }

  /**
   * Makes `impl` callable from Lua. A JavaScript exception thrown by it
   * becomes a Lua error prefixed with the position {@linkcode errorLevel}
   * picks (the caller's, unless it says otherwise).
   */
  hostFunction(impl: HostFunction): number {
    const ptr = this.lua.addFunction((L: LuaState) => {
      let message: string;
      let level = 1;
      try {
        const results = impl(L);
        if (this.unwinding) throw this.unwinding;
        return results;
      } catch (e) {
        if (this.unwinding) throw this.unwinding;
        if (e === LONGJMP || e instanceof LuaUnwind) throw e; // a Lua error or yield in flight

        level = errorLevel(e);
        message = e instanceof ArgumentError && level === 1 ? e.named(this.#calledAs(L)) : thrownText(e);
      }
      return this.raise(L, message, level);
    }, "ii");
    this.#functions.push(ptr);
    return ptr;
  }

  /**
   * How the calling Lua code named the running C function (`os.exit(x)`:
   * "exit"), and whether as a method (`obj:f(x)`), as `luaL_argerror` finds
   * it; undefined when C called it (`pcall`) or SolVM's own Lua did, whose
   * helpers' names are not the script's.
   */
  #calledAs(L: LuaState): { name: string; method: boolean } | undefined {
    const running = this.frame(L, 0);
    if (running?.name === undefined) return undefined;
    if (this.frame(L, 1)?.source.startsWith(INTERNAL_CHUNK_PREFIX)) return undefined;
    return { name: running.name, method: running.method };
  }

  /**
   * What Lua knows of the function at `level` of `L`'s stack (0: the one
   * running): its chunk's source, its current line (-1 for C), the name its
   * caller gave it and whether as a method; undefined past the stack's end.
   */
  frame(L: LuaState, level: number): { source: string; line: number; name?: string; method: boolean } | undefined {
    const { api } = this;
    const ar = this.#debugRecord ||= api.malloc(LUA_DEBUG_SIZE);
    if (!api.lua_getstack(L, level, ar)) return undefined;
    api.lua_getinfo(L, this.cstr("Sln"), ar);
    const record = new DataView(this.lua.heap().buffer); // read after the call, which may grow memory
    return {
      source: this.cString(record.getUint32(ar + LUA_DEBUG_SOURCE, true)) ?? "",
      line: record.getInt32(ar + LUA_DEBUG_CURRENTLINE, true),
      name: this.cString(record.getUint32(ar + LUA_DEBUG_NAME, true)),
      method: this.cString(record.getUint32(ar + LUA_DEBUG_NAMEWHAT, true)) === "method",
    };
  }

  /**
   * Where the Lua function at `idx` is defined, as tracebacks name it
   * (`script.lua:12`); undefined for a C function. Needs no debug library.
   */
  definedAt(L: LuaState, idx: number): string | undefined {
    const { api } = this;
    const ar = this.#debugRecord ||= api.malloc(LUA_DEBUG_SIZE);
    api.lua_pushvalue(L, idx);
    api.lua_getinfo(L, this.cstr(">S"), ar); // pops the function
    const record = new DataView(this.lua.heap().buffer);
    const line = record.getInt32(ar + LUA_DEBUG_LINEDEFINED, true);
    return line > 0 ? `${this.cString(ar + LUA_DEBUG_SHORT_SRC)}:${line}` : undefined;
  }

  /**
   * True when the keys of the table at absolute index `idx` are exactly the
   * integers 1 to `n` (its length): a list. Counting keys is not enough, a
   * hole offset by a named key also gives n of them.
   */
  isList(L: LuaState, idx: number, n: number): boolean {
    const { api } = this;
    if (n <= 0) return false;
    let count = 0;
    api.lua_pushnil(L);
    while (api.lua_next(L, idx)) {
      const k = api.lua_isinteger(L, -2) ? api.lua_tonumberx(L, -2, 0) : 0;
      if (!(k >= 1 && k <= n)) {
        api.lua_settop(L, -3);
        return false;
      }
      count++;
      api.lua_settop(L, -2);
    }
    return count === n;
  }

  /** The NUL-terminated string at `ptr` in WebAssembly memory, or undefined for NULL. */
  cString(ptr: number): string | undefined {
    if (ptr === 0) return undefined;
    const heap = this.lua.heap();
    const end = heap.indexOf(0, ptr);
    return decoder.decode(heap.subarray(ptr, end));
  }

  /**
   * Runs `body` inside a protected call, for API calls made from outside Lua
   * that may run Lua (a metamethod) or need memory: there a Lua error would
   * be a panic that aborts the state. The `nargs` values on top of `L` are
   * its arguments (1 to `nargs`), the `nresults` on top when it returns its
   * results. Returns what `body` returns; throws a Lua error as
   * {@linkcode LuaError} (running out of memory as an Error "not enough
   * memory", as passing a value in does) and a JavaScript one as itself.
   * No hook sees the call: it is SolVM's, not the script's; with `counted`
   * the count hook goes on, so limits it keeps bind the Lua the call runs.
   *
   * ```ts
   * import { strictEqual } from "node:assert";
   * import { loadLuaModule, NO_FILES } from "./lua.ts";
   * import { LuaVM } from "./state.ts";
   * const vm = new LuaVM(loadLuaModule(NO_FILES));
   * vm.load(vm.L, "setmetatable(_G, { __index = function(_, k) error('undefined global ' .. k, 2) end })", "=strict");
   * vm.api.lua_pcallk(vm.L, 0, 0, 0, 0, 0);
   * const e = (() => {
   *   try {
   *     vm.protect(vm.L, 0, 1, (L) => vm.api.lua_getglobal(L, vm.cstr("missing")));
   *   } catch (e) {
   *     return e as Error;
   *   }
   * })();
   * strictEqual(e?.message, "undefined global missing");
   * vm.close();
   * ```
   */
  protect<T>(L: LuaState, nargs: number, nresults: number, body: (L: LuaState) => T, counted = false): T {
    const api = this.api;
    const outer = this.#protecting; // body may call into Lua, which may come back here
    const protecting: Protecting = { body, nresults };
    this.#protecting = protecting;
    const [hook, mask, count] = [api.lua_gethook(L), api.lua_gethookmask(L), api.lua_gethookcount(L)];
    if (mask) api.lua_sethook(L, hook, counted ? mask & LUA_MASKCOUNT : 0, count);
    api.lua_pushcclosure(L, this.#protectedBody, 0);
    api.lua_rotate(L, -(nargs + 1), 1);
    const status = api.lua_pcallk(L, nargs, nresults, 0, 0, 0);
    if (mask) api.lua_sethook(L, hook, mask, count);
    this.#protecting = outer;
    if (status === LUA_OK && !protecting.failure) return protecting.value as T;
    if (protecting.failure) {
      api.lua_settop(L, -(nresults + 1));
      throw protecting.failure.error;
    }
    const message = api.lua_type(L, -1) === LUA_TSTRING
      ? this.toText(L, -1)
      : `(error object is a ${this.typeName(L, -1)} value)`;
    api.lua_settop(L, -2);
    throw status === LUA_ERRMEM ? new Error(message) : new LuaError(message);
  }

  /** Makes room for `n` more values on `L`'s stack (Lua guarantees 20): a push past them would write beyond it. */
  makeRoom(L: LuaState, n: number): void {
    if (!this.api.lua_checkstack(L, n)) {
      throw new RangeError(`cannot pass ${n} values (no room for them on Lua's stack)`);
    }
  }

  /** Raises a Lua error `message` prefixed with the calling Lua code's position. */
  raise(L: LuaState, message: string, level = 1): number {
    this.api.luaL_where(L, level);
    const where = this.toText(L, -1);
    this.api.lua_settop(L, -2);
    this.pushString(L, where + message);
    return this.api.lua_error(L);
  }

  /** Frees the Lua state. */
  close(): void {
    this.api.lua_close(this.L);
    for (const ptr of this.#functions) this.lua.removeFunction(ptr);
    for (const ptr of this.#cstrings.values()) this.api.free(ptr);
    if (this.#scratch) this.api.free(this.#scratch);
    if (this.#debugRecord) this.api.free(this.#debugRecord);
    this.api.free(this.#lenPtr);
  }
}

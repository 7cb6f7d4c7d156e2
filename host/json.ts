/**
 * The json family: `json_encode`, `json_decode` and the `json_null` sentinel.
 *
 * Both directions walk Lua values with the raw C API (no wasmoon
 * conversion). Integers and floats stay distinct both ways: `1` and `1.0`
 * survive a round trip as what they were, and integers beyond 2^53 stay exact.
 *
 * @module
 */
import type { Engine } from "../runtime/engine.ts";
import { argError, checkBytes } from "../runtime/args.ts";
import {
  LUA_TBOOLEAN,
  LUA_TLIGHTUSERDATA,
  LUA_TNIL,
  LUA_TNONE,
  LUA_TNUMBER,
  LUA_TSTRING,
  LUA_TTABLE,
  type LuaState,
} from "../runtime/lua.ts";
import type { Family } from "../runtime/family.ts";
import type { LuaVM } from "../runtime/state.ts";

/** Deepest nesting of arrays and objects accepted either way. */
const MAX_DEPTH = 1000;

const utf8 = new TextDecoder("utf-8", { fatal: true });

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * JSON text that may hold a float (a digit before '.', 'e' or 'E') or an
 * integer JSON.parse cannot keep exact (16+ digits). Without either, every
 * number JSON.parse returns is a safe integer. Matches inside strings only
 * cost the slower exact path, never correctness.
 */
const NEEDS_SOURCE = /\d[.eE]|\d{16}/;
const FLOAT_SOURCE = /[.eE]/;

/**
 * JSON.parse reviver for the exact path (uses V8's source text access):
 * integers become BigInt (or a float when beyond int64, as Lua's lexer
 * does), floats stay numbers.
 */
function reviveNumber(_key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value !== "number") return value;
  const source = context!.source!;
  if (FLOAT_SOURCE.test(source)) return value;
  const n = BigInt(source);
  return n >= INT64_MIN && n <= INT64_MAX ? n : value;
}

/** `"text"` for bytes that are plain printable ASCII; undefined when escaping or decoding is needed. */
function plainAscii(bytes: Uint8Array): string | undefined {
  const n = bytes.length;
  if (n > 64) return undefined;
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    if (b < 0x20 || b > 0x7e || b === 0x22 || b === 0x5c) return undefined;
  }
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Error("json_encode: invalid UTF-8 in string");
  }
}

/** A Lua string's bytes as text; invalid UTF-8 is an error. */
function utf8Text(bytes: Uint8Array): string {
  return plainAscii(bytes) ?? decodeUtf8(bytes);
}

/** A Lua string's bytes as a JSON string literal. */
function quoteBytes(bytes: Uint8Array): string {
  const ascii = plainAscii(bytes);
  return ascii !== undefined ? `"${ascii}"` : JSON.stringify(decodeUtf8(bytes));
}

/** A float in JS's shortest round-trip form, always readable back as a float. */
function formatFloat(d: number): string {
  if (d !== d) throw new Error("json_encode: cannot encode NaN");
  if (d === Infinity) throw new Error("json_encode: cannot encode inf");
  if (d === -Infinity) throw new Error("json_encode: cannot encode -inf");
  if (d === 0) return Object.is(d, -0) ? "-0.0" : "0.0";
  const s = String(d);
  return s.includes(".") || s.includes("e") ? s : s + ".0";
}

/** An object key of a table being encoded: its JSON text and how to fetch its value again. */
interface Key {
  text: string;
  kind: number; // KEY_STRING, KEY_INTEGER or KEY_FLOAT
  integer: bigint;
  float: number;
}
const KEY_STRING = 0, KEY_INTEGER = 1, KEY_FLOAT = 2;

const byText = (a: Key, b: Key) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0);

/** State of one `json_encode` call (kept per call: a `__gc` may re-enter). */
class Encoder {
  readonly out: string[] = [];
  readonly #path = new Set<number>();
  readonly #newlines: string[] = [];

  constructor(readonly vm: LuaVM, readonly L: LuaState, readonly gap: string, readonly emptyArray: number) {}

  /** "\n" plus `depth` indents (pretty printing only). */
  #newline(depth: number): string {
    return this.#newlines[depth] ??= "\n" + this.gap.repeat(depth);
  }

  /** Appends the value at absolute index `idx`. */
  value(idx: number, depth: number): void {
    const { vm, L, out } = this;
    const api = vm.api;
    switch (api.lua_type(L, idx)) {
      case LUA_TNIL:
        out.push("null");
        return;
      case LUA_TBOOLEAN:
        out.push(api.lua_toboolean(L, idx) ? "true" : "false");
        return;
      case LUA_TNUMBER:
        out.push(this.#number(idx));
        return;
      case LUA_TSTRING:
        out.push(quoteBytes(vm.viewBytes(L, idx)));
        return;
      case LUA_TTABLE:
        this.#table(idx, depth + 1);
        return;
      case LUA_TLIGHTUSERDATA:
        if (api.lua_topointer(L, idx) === 0) { // json_null
          out.push("null");
          return;
        }
    }
    throw new Error(`json_encode: cannot encode a value of type ${vm.typeName(L, idx)}`);
  }

  #number(idx: number): string {
    const api = this.vm.api;
    const d = api.lua_tonumberx(this.L, idx, 0);
    if (!api.lua_isinteger(this.L, idx)) return formatFloat(d);
    // Exact as a double below 2^53; beyond, read the int64 (a BigInt).
    return Number.isSafeInteger(d) ? String(d) : String(api.lua_tointegerx(this.L, idx, 0));
  }

  #table(idx: number, depth: number): void {
    const { vm, L } = this;
    const api = vm.api;
    const pointer = api.lua_topointer(L, idx);
    if (this.#path.has(pointer)) throw new Error("json_encode: cannot encode a cyclic table");
    if (depth > MAX_DEPTH) throw new Error(`json_encode: nesting deeper than ${MAX_DEPTH} levels`);
    if (!api.lua_checkstack(L, 4)) throw new Error("json_encode: Lua stack overflow");
    this.#path.add(pointer);
    const n = Number(api.lua_rawlen(L, idx)); // lua_Unsigned: a BigInt at run time
    if (n > 0 && this.#isArray(idx, n)) this.#array(idx, n, depth);
    else this.#object(idx, depth);
    this.#path.delete(pointer);
  }

  /** True when the keys are exactly the integers 1..n. */
  #isArray(idx: number, n: number): boolean {
    const { L } = this;
    const api = this.vm.api;
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

  #array(idx: number, n: number, depth: number): void {
    const { L, out, gap } = this;
    const api = this.vm.api;
    out.push("[");
    for (let i = 1; i <= n; i++) {
      if (i > 1) out.push(",");
      if (gap) out.push(this.#newline(depth));
      api.lua_rawgeti(L, idx, BigInt(i));
      this.value(api.lua_gettop(L), depth);
      api.lua_settop(L, -2);
    }
    if (gap) out.push(this.#newline(depth - 1));
    out.push("]");
  }

  #object(idx: number, depth: number): void {
    const { vm, L, out, gap } = this;
    const api = vm.api;
    const keys = this.#keys(idx);
    if (keys.length === 0) {
      out.push(this.#isEmptyArray(idx) ? "[]" : "{}");
      return;
    }
    if (keys.length > 1) {
      keys.sort(byText);
      for (let i = 1; i < keys.length; i++) {
        if (keys[i].text === keys[i - 1].text) {
          throw new Error(`json_encode: table has two keys that both encode as ${JSON.stringify(keys[i].text)}`);
        }
      }
    }
    const colon = gap ? ": " : ":";
    out.push("{");
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (i > 0) out.push(",");
      if (gap) out.push(this.#newline(depth));
      out.push(JSON.stringify(key.text), colon);
      if (key.kind === KEY_STRING) vm.pushString(L, key.text); // valid UTF-8: the same bytes
      else if (key.kind === KEY_INTEGER) api.lua_pushinteger(L, key.integer);
      else api.lua_pushnumber(L, key.float);
      api.lua_rawget(L, idx);
      this.value(api.lua_gettop(L), depth);
      api.lua_settop(L, -2);
    }
    if (gap) out.push(this.#newline(depth - 1));
    out.push("}");
  }

  /**
   * The keys of the table at `idx`. Number keys are formatted in JS from
   * their value: never lua_tolstring on a key, which would convert it in
   * place and break lua_next.
   */
  #keys(idx: number): Key[] {
    const { vm, L } = this;
    const api = vm.api;
    const keys: Key[] = [];
    api.lua_pushnil(L);
    while (api.lua_next(L, idx)) {
      const type = api.lua_type(L, -2);
      if (type === LUA_TSTRING) {
        keys.push({ text: utf8Text(vm.viewBytes(L, -2)), kind: KEY_STRING, integer: 0n, float: 0 });
      } else if (type === LUA_TNUMBER && api.lua_isinteger(L, -2)) {
        const integer = api.lua_tointegerx(L, -2, 0);
        keys.push({ text: String(integer), kind: KEY_INTEGER, integer, float: 0 });
      } else if (type === LUA_TNUMBER) {
        const float = api.lua_tonumberx(L, -2, 0);
        keys.push({ text: formatFloat(float), kind: KEY_FLOAT, integer: 0n, float });
      } else {
        throw new Error(`json_encode: cannot encode a table key of type ${vm.typeName(L, -2)}`);
      }
      api.lua_settop(L, -2);
    }
    return keys;
  }

  /** True when the table at `idx` carries the metatable json_decode gives empty arrays. */
  #isEmptyArray(idx: number): boolean {
    const api = this.vm.api;
    if (!api.lua_getmetatable(this.L, idx)) return false;
    const mt = api.lua_topointer(this.L, -1);
    api.lua_settop(this.L, -2);
    return mt === this.emptyArray;
  }
}

/** JSON for both directions, bound to one engine. */
class Json {
  readonly #vm: LuaVM;
  /** Registry reference and address of the metatable marking decoded empty arrays. */
  readonly #emptyArrayRef: number;
  readonly #emptyArray: number;

  constructor(engine: Engine) {
    const { vm, L } = engine;
    this.#vm = vm;
    vm.api.lua_createtable(L, 0, 0);
    this.#emptyArray = vm.api.lua_topointer(L, -1); // tables never move; the ref keeps it alive
    this.#emptyArrayRef = vm.ref(L);
  }

  /** `json_encode(value [, indent])`: JSON text; `indent` (spaces or a string) pretty-prints. */
  encode(L: LuaState): number {
    const vm = this.#vm;
    const api = vm.api;
    const top = api.lua_gettop(L);
    if (top < 1) throw argError(1, "json_encode", "value expected");
    let gap = "";
    if (top >= 2) {
      // As JSON.stringify: at most 10 spaces, or the first 10 characters.
      const type = api.lua_type(L, 2);
      if (type === LUA_TNUMBER) gap = " ".repeat(Math.max(0, Math.min(10, Math.floor(api.lua_tonumberx(L, 2, 0)))));
      else if (type === LUA_TSTRING) gap = vm.toText(L, 2).slice(0, 10);
      else if (type !== LUA_TNIL && type !== LUA_TNONE) {
        throw argError(2, "json_encode", `number or string expected, got ${vm.typeName(L, 2)}`);
      }
    }
    const encoder = new Encoder(vm, L, gap, this.#emptyArray);
    encoder.value(1, 0);
    vm.pushString(L, encoder.out.join(""));
    return 1;
  }

  /** `json_decode(text)`: the Lua value; null becomes `json_null`, `[]` an array-marked table. */
  decode(L: LuaState): number {
    const vm = this.#vm;
    const bytes = vm.api.lua_type(L, 1) === LUA_TSTRING ? vm.viewBytes(L, 1) : checkBytes(vm, L, 1, "json_decode");
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      throw new Error("json_decode: invalid UTF-8");
    }
    const exact = NEEDS_SOURCE.test(text);
    let value: unknown;
    try {
      value = exact ? JSON.parse(text, reviveNumber) : JSON.parse(text);
    } catch (e) {
      throw new Error(`json_decode: ${e instanceof Error ? e.message : e}`);
    }
    this.#push(L, value, exact, 0);
    return 1;
  }

  /**
   * Pushes a parsed value. `exact`: numbers came through reviveNumber, so
   * BigInts are integers and numbers floats; otherwise every number is a
   * safe integer.
   */
  #push(L: LuaState, v: unknown, exact: boolean, depth: number): void {
    const vm = this.#vm;
    const api = vm.api;
    switch (typeof v) {
      case "string":
        vm.pushString(L, v);
        return;
      case "number":
        if (exact) api.lua_pushnumber(L, v);
        else api.lua_pushinteger(L, BigInt(v));
        return;
      case "bigint":
        api.lua_pushinteger(L, v);
        return;
      case "boolean":
        api.lua_pushboolean(L, v ? 1 : 0);
        return;
    }
    if (v === null) {
      api.lua_pushlightuserdata(L, 0); // json_null
      return;
    }
    if (++depth > MAX_DEPTH) throw new Error(`json_decode: nesting deeper than ${MAX_DEPTH} levels`);
    if (!api.lua_checkstack(L, 3)) throw new Error("json_decode: Lua stack overflow");
    if (Array.isArray(v)) {
      const n = v.length;
      api.lua_createtable(L, n, 0);
      if (n === 0) {
        vm.pushRef(L, this.#emptyArrayRef);
        api.lua_setmetatable(L, -2);
        return;
      }
      for (let i = 0; i < n; i++) {
        this.#push(L, v[i], exact, depth);
        api.lua_rawseti(L, -2, BigInt(i + 1));
      }
      return;
    }
    const object = v as Record<string, unknown>;
    const keys = Object.keys(object);
    api.lua_createtable(L, 0, keys.length);
    for (const key of keys) {
      vm.pushString(L, key); // binary-safe: keys may hold NUL
      this.#push(L, object[key], exact, depth);
      api.lua_rawset(L, -3);
    }
  }
}

/** The json family's registration table. */
export const json = (engine: Engine): Family => {
  const codec = new Json(engine);
  // json_null is a value, not a function, so it is set here: a NULL light userdata.
  engine.vm.api.lua_pushlightuserdata(engine.L, 0);
  engine.vm.api.lua_setglobal(engine.L, engine.vm.cstr("json_null"));
  return {
    json_encode: (L) => codec.encode(L),
    json_decode: (L) => codec.decode(L),
  };
};

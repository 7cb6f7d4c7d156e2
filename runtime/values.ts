/**
 * JavaScript values to Lua and back, for the embedding library, on the raw
 * C API: numbers (integers exact to 64 bits, as BigInt past 2^53), strings,
 * booleans, nil, arrays and plain objects as tables (nested, cycles kept),
 * `Uint8Array`, `ArrayBuffer` and `DataView` as byte strings, other typed
 * arrays as lists, functions both ways, and objects passed by reference
 * (see {@linkcode byRef}).
 *
 * @module
 */
import {
  LUA_REGISTRYINDEX,
  LUA_TBOOLEAN,
  LUA_TFUNCTION,
  LUA_TLIGHTUSERDATA,
  LUA_TNIL,
  LUA_TNUMBER,
  LUA_TSTRING,
  LUA_TTABLE,
  LUA_TUSERDATA,
  type LuaState,
} from "./lua.ts";
import type { CallReader, Engine } from "./engine.ts";
import { LuaError } from "./errors.ts";

/**
 * An object passed to Lua by reference: Lua reads and writes its fields in
 * place (made by {@linkcode byRef}).
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { ByReference } from "./values.ts";
 * import { Context } from "../lib/context.ts";
 * const counter = { hits: 0 };
 * const lua = new Context();
 * await lua.execute("function hit(c) c.hits = c.hits + 1 end");
 * await lua.call("hit", new ByReference(counter));
 * strictEqual(counter.hits, 1);
 * lua.close();
 * ```
 */
export class ByReference<T extends object = object> {
  /** Wraps `target`, the object Lua will see. */
  constructor(readonly target: T) {}
}

/**
 * Marks `target` to be passed by reference: Lua sees a value whose fields
 * read and write the object itself, and gets the same object back.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { byRef } from "./values.ts";
 * import { Script } from "../lib/script.ts";
 * const script = Script.fromString("t.lua", `function main(input) input.Name = "Updated" return input.Name end`);
 * const person = { Name: "Roman" };
 * strictEqual(await script.run(byRef(person)), "Updated");
 * strictEqual(person.Name, "Updated");
 * script.close();
 * ```
 */
export function byRef<T extends object>(target: T): ByReference<T> {
  return new ByReference(target);
}

const UPVALUE_1 = LUA_REGISTRYINDEX - 1;

// A Uint8Array key would become "255,254", the name of another, text key.
const BINARY_KEY = "a key that is not UTF-8 text cannot name a JavaScript property (a table key or a byRef field)";

/** `pairs` over a referenced object: its keys (1 to n for an array) with their values read as `obj[key]` reads them. */
const REFERENCE_PAIRS_LUA = `
local keys = (...).keys
return function(obj)
  local list, i = keys(obj), 0
  return function()
    i = i + 1
    local key = list[i]
    if key ~= nil then return key, obj[key] end
  end, obj, nil
end`;

/**
 * `method` of a referenced object, called with the object as `this`. Called
 * the Lua way, `obj:method(x)`, Lua passes the object first: it is dropped.
 */
function methodOf(target: object, method: (...a: unknown[]) => unknown): (...a: unknown[]) => unknown {
  const call = (...args: unknown[]) => method.apply(target, args[0] === target ? args.slice(1) : args);
  return Object.defineProperty(call, "name", { value: method.name });
}

/** Built-ins whose contents live in internal slots, not in own properties: as tables they would come empty or wrong. */
const REFUSED_BUILT_INS: ReadonlyArray<{ [Symbol.hasInstance](v: unknown): boolean }> = [
  Map,
  Set,
  WeakMap,
  WeakSet,
  WeakRef,
  Date,
  Promise,
  Error,
  RegExp,
  Boolean,
  Number,
  String,
  Symbol,
  BigInt,
];

/**
 * What an object that is neither an array nor a plain object goes to Lua
 * as: the bytes of an `ArrayBuffer` or `DataView` (as a Uint8Array's), a
 * list of the numbers of another typed array, or itself (an instance of a
 * user's class, by its own enumerable properties); a built-in whose state
 * Lua would not see is a TypeError.
 */
function standInFor(v: object): object {
  if (ArrayBuffer.isView(v)) {
    return v instanceof DataView
      ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength)
      : Array.from(v as unknown as ArrayLike<number | bigint>);
  }
  if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) return new Uint8Array(v);
  if (REFUSED_BUILT_INS.some((type) => v instanceof type)) {
    const name = v.constructor.name;
    throw new TypeError(
      `cannot pass ${/^[AEIOU]/.test(name) ? "an" : "a"} ${name} to Lua (use a plain object, an array or byRef)`,
    );
  }
  return v;
}

/** Whether `fn` is a class: its prototype is fixed (as a built-in constructor's) and its source says class. */
function isClass(fn: (...args: unknown[]) => unknown): boolean {
  return Object.getOwnPropertyDescriptor(fn, "prototype")?.writable === false &&
    /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

/** Strings and bytes longer than this are pushed under protection (see #pushProtected); shorter ones cost no call. */
const PROTECT_FROM = 4096;

/** Converts values between JavaScript and one engine's Lua state. */
export class Values {
  readonly #engine: Engine;
  // JavaScript functions Lua may call, by id: the payload of a userdata,
  // the upvalue of one shared C function; its __gc forgets the function.
  readonly #functions = new Map<number, (...args: unknown[]) => unknown>();
  #nextFunction = 0;
  readonly #functionMeta: number;
  // Objects passed by reference, by id (the payload of a userdata).
  readonly #objects = new Map<number, object>();
  #nextObject = 0;
  readonly #callJs: number;
  readonly #referenceMeta: number;
  // Runs a call JavaScript starts itself, not from inside Lua: the owner's call, bound by the limits its calls have.
  readonly #callFromOutside: (pushCall: (T: LuaState) => number) => unknown;
  readonly #release = new FinalizationRegistry<number>((ref) => {
    if (!this.#engine.closed) this.#engine.vm.unref(ref);
  });

  constructor(engine: Engine, callFromOutside: (pushCall: (T: LuaState) => number) => unknown) {
    this.#engine = engine;
    this.#callFromOutside = callFromOutside;
    const { vm, L } = engine;
    const api = vm.api;
    this.#callJs = vm.hostFunction((L) => this.#invoke(L));
    api.lua_createtable(L, 0, 1);
    api.lua_pushcclosure(
      L,
      vm.hostFunction((L) => {
        this.#functions.delete(this.#userdataId(L, 1));
        return 0;
      }),
      0,
    );
    api.lua_setfield(L, -2, vm.cstr("__gc"));
    this.#functionMeta = vm.ref(L);
    api.lua_createtable(L, 0, 4);
    api.lua_pushcclosure(L, vm.hostFunction((L) => this.#index(L)), 0);
    api.lua_setfield(L, -2, vm.cstr("__index"));
    api.lua_pushcclosure(L, vm.hostFunction((L) => this.#newIndex(L)), 0);
    api.lua_setfield(L, -2, vm.cstr("__newindex"));
    api.lua_pushcclosure(L, vm.hostFunction((L) => this.#length(L)), 0);
    api.lua_setfield(L, -2, vm.cstr("__len"));
    vm.pushRef(L, engine.compileLua("byRef pairs", REFERENCE_PAIRS_LUA, { keys: (L) => this.#keys(L) }));
    api.lua_setfield(L, -2, vm.cstr("__pairs"));
    api.lua_pushcclosure(
      L,
      vm.hostFunction((L) => {
        this.#objects.delete(this.#objectId(L, 1));
        return 0;
      }),
      0,
    );
    api.lua_setfield(L, -2, vm.cstr("__gc"));
    vm.pushString(L, "JavaScript object");
    api.lua_setfield(L, -2, vm.cstr("__name"));
    this.#referenceMeta = vm.ref(L);
  }

  /** Pushes `v` on `L`; throws a TypeError for what Lua cannot hold (a symbol, a cycle through arrays is fine). */
  push(L: LuaState, v: unknown, seen?: Map<object, number>): void {
    const vm = this.#engine.vm;
    const api = vm.api;
    switch (typeof v) {
      case "undefined":
        return api.lua_pushnil(L);
      case "boolean":
        return api.lua_pushboolean(L, v ? 1 : 0);
      case "number":
        // -0 stays a float: a Lua integer has no sign of zero.
        if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER && !Object.is(v, -0)) {
          return api.lua_pushinteger(L, BigInt(v));
        }
        return api.lua_pushnumber(L, v);
      case "bigint":
        if (BigInt.asIntN(64, v) !== v) throw new RangeError(`${v} does not fit a Lua integer (64 bits)`);
        return api.lua_pushinteger(L, v);
      case "string":
        // A long one is copied in under protection too: Lua running out of memory there must not panic.
        return seen || v.length <= PROTECT_FROM ? vm.pushString(L, v) : this.#pushProtected(L, v);
      case "function":
        return this.#pushFunction(L, v as (...args: unknown[]) => unknown);
      case "object":
        if (v === null) return api.lua_pushnil(L);
        if (v instanceof Uint8Array) {
          return seen || v.length <= PROTECT_FROM ? vm.pushBytes(L, v) : this.#pushProtected(L, v);
        }
        if (v instanceof ByReference) return this.#pushReference(L, v.target);
        return seen ? this.#pushTable(L, v, seen) : this.#pushProtected(L, v);
    }
    throw new TypeError(`cannot pass a ${typeof v} to Lua`);
  }

  /**
   * Pushes `v` (a table, a long string) built inside a protected call:
   * memory running out while it is built is Lua's "not enough memory",
   * never a panic.
   */
  #pushProtected(L: LuaState, v: unknown): void {
    this.#engine.vm.protect(L, 0, 1, (L) => this.push(L, v, new Map()));
  }

  #pushTable(L: LuaState, v: object, seen: Map<object, number>): void {
    const vm = this.#engine.vm;
    const api = vm.api;
    const again = seen.get(v);
    if (again !== undefined) return api.lua_pushvalue(L, again);
    api.lua_checkstack(L, 4);
    if (Array.isArray(v)) {
      api.lua_createtable(L, v.length, 0);
      seen.set(v, api.lua_absindex(L, -1));
      for (let i = 0; i < v.length; i++) {
        this.push(L, v[i], seen);
        api.lua_rawseti(L, -2, BigInt(i + 1));
      }
    } else {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        const standIn = standInFor(v);
        if (standIn !== v) return this.push(L, standIn, seen);
      }
      const keys = Object.keys(v);
      api.lua_createtable(L, 0, keys.length);
      seen.set(v, api.lua_absindex(L, -1));
      for (const key of keys) {
        const item = (v as Record<string, unknown>)[key];
        if (item === undefined) continue;
        vm.pushString(L, key);
        this.push(L, item, seen);
        api.lua_rawset(L, -3);
      }
    }
    seen.delete(v);
  }

  #pushFunction(L: LuaState, fn: (...args: unknown[]) => unknown): void {
    // Lua calls without new: each call of a class would throw.
    if (isClass(fn)) {
      throw new TypeError(
        `cannot pass a class to Lua (${fn.name || "anonymous"}: pass a function that makes the object)`,
      );
    }
    const id = ++this.#nextFunction;
    this.#functions.set(id, fn);
    this.#pushIdUserdata(L, id, this.#functionMeta);
    this.#engine.vm.api.lua_pushcclosure(L, this.#callJs, 1);
  }

  /** Pushes a userdata holding `id` (of a function or an object kept here), with metatable `meta`. */
  #pushIdUserdata(L: LuaState, id: number, meta: number): void {
    const { vm } = this.#engine;
    const p = vm.api.lua_newuserdatauv(L, 8, 0);
    new DataView(vm.lua.heap().buffer).setFloat64(p, id, true);
    vm.pushRef(L, meta);
    vm.api.lua_setmetatable(L, -2);
  }

  /** The id in the userdata at `idx` (see #pushIdUserdata). */
  #userdataId(L: LuaState, idx: number): number {
    const { vm } = this.#engine;
    return new DataView(vm.lua.heap().buffer).getFloat64(vm.api.lua_touserdata(L, idx), true);
  }

  /** A JavaScript function called from Lua: a returned Promise makes it a blocking call. */
  #invoke(L: LuaState): number {
    const engine = this.#engine;
    const api = engine.vm.api;
    const fn = this.#functions.get(this.#userdataId(L, UPVALUE_1))!;
    const n = api.lua_gettop(L);
    const args = new Array(n);
    for (let i = 0; i < n; i++) args[i] = this.read(L, i + 1);
    engine.flushPendingOutput();
    const result = fn(...args);
    if (result instanceof Promise) {
      return engine.park(L, result.then((v) => (L: LuaState) => this.#pushResult(L, v)), fn.name || "function");
    }
    return this.#pushResult(L, result);
  }

  #pushResult(L: LuaState, v: unknown): number {
    if (v === undefined) return 0;
    this.#pushInside(L, v);
    return 1;
  }

  /**
   * Pushes `v` from a host function Lua called: a memory error there is
   * already caught by what called Lua, so no protected call of its own.
   */
  #pushInside(L: LuaState, v: unknown): void {
    this.push(L, v, new Map());
  }

  #pushReference(L: LuaState, target: object): void {
    const id = ++this.#nextObject;
    this.#objects.set(id, target);
    this.#pushIdUserdata(L, id, this.#referenceMeta);
  }

  /** The object the reference at 1 (the `self` of its metamethods) stands for. */
  #referenced(L: LuaState): object {
    return this.#objects.get(this.#objectId(L, 1))!;
  }

  /** The id of the reference at `idx`, or 0 when it is not one of ours. */
  #objectId(L: LuaState, idx: number): number {
    const { vm } = this.#engine;
    const api = vm.api;
    if (api.lua_type(L, idx) !== LUA_TUSERDATA || !api.lua_getmetatable(L, idx)) return 0;
    vm.pushRef(L, this.#referenceMeta);
    const ours = api.lua_rawequal(L, -1, -2);
    api.lua_settop(L, -3);
    return ours ? this.#userdataId(L, idx) : 0;
  }

  /** The property of referenced `target` that Lua's key at `idx` names: a JavaScript array's items are 1 to n in Lua. */
  #property(L: LuaState, target: object, idx: number): string {
    const key = this.#key(L, idx);
    if (Array.isArray(target) && typeof key === "number" && Number.isInteger(key)) return String(key - 1);
    return String(key);
  }

  /** Lua's key at `idx` as a JavaScript property's name: only a string of UTF-8 text and a number can be one. */
  #key(L: LuaState, idx: number): string | number | bigint {
    const type = this.#engine.vm.api.lua_type(L, idx);
    if (type !== LUA_TSTRING && type !== LUA_TNUMBER) {
      throw new TypeError(
        `a ${
          this.#engine.vm.typeName(L, idx)
        } table key cannot name a JavaScript property (only strings and numbers can)`,
      );
    }
    const key = this.read(L, idx);
    if (key instanceof Uint8Array) throw new TypeError(BINARY_KEY);
    return key as string | number | bigint;
  }

  #index(L: LuaState): number {
    const target = this.#referenced(L) as Record<string, unknown>;
    let v = target[this.#property(L, target, 2)];
    if (typeof v === "function") v = methodOf(target, v as (...a: unknown[]) => unknown);
    else if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) v = new ByReference(v);
    this.#pushInside(L, v);
    return 1;
  }

  #newIndex(L: LuaState): number {
    const target = this.#referenced(L) as Record<string, unknown>;
    const property = this.#property(L, target, 2);
    const value = this.read(L, 3);
    // nil at an array's end shortens it, so # follows as for a Lua sequence (table.remove, a[#a] = nil); nil past
    // its end changes nothing.
    const index = Number(property);
    if (Array.isArray(target) && value === undefined && Number.isInteger(index) && index >= target.length - 1) {
      if (index === target.length - 1) {
        target.length--;
        while (target.length > 0 && target[target.length - 1] === undefined) target.length--;
      }
    } else target[property] = value;
    return 0;
  }

  /** `#obj`: an array's length; a plain object, like a table without a sequence, has 0. */
  #length(L: LuaState): number {
    const target = this.#referenced(L);
    this.#engine.vm.api.lua_pushinteger(L, BigInt(Array.isArray(target) ? target.length : 0));
    return 1;
  }

  /** The keys `pairs` gives for the referenced object at 1, as a Lua list. */
  #keys(L: LuaState): number {
    const target = this.#referenced(L);
    this.#pushInside(L, Array.isArray(target) ? target.map((_, i) => i + 1) : Object.keys(target));
    return 1;
  }

  /**
   * The value at `idx` as JavaScript: nil is undefined, `json_null` null, valid UTF-8 strings
   * are strings and other strings `Uint8Array`, sequences are arrays, other
   * tables plain objects, functions callable (see {@linkcode luaFunction}).
   * A channel, a thread or a userdata not from {@linkcode byRef} is refused with a TypeError.
   */
  read(L: LuaState, idx: number, seen?: Map<number, unknown>): unknown {
    const { vm } = this.#engine;
    const api = vm.api;
    switch (api.lua_type(L, idx)) {
      case LUA_TNIL:
        return undefined;
      case LUA_TBOOLEAN:
        return api.lua_toboolean(L, idx) !== 0;
      case LUA_TNUMBER: {
        if (!api.lua_isinteger(L, idx)) return api.lua_tonumberx(L, idx, 0);
        const n = api.lua_tointegerx(L, idx, 0);
        return n >= -9007199254740991n && n <= 9007199254740991n ? Number(n) : n;
      }
      case LUA_TSTRING:
        return vm.toUtf8Text(L, idx) ?? vm.toBytes(L, idx);
      case LUA_TTABLE:
        return this.#readTable(L, api.lua_absindex(L, idx), seen ?? new Map());
      case LUA_TFUNCTION:
        return this.luaFunction(L, idx);
      case LUA_TLIGHTUSERDATA:
        if (api.lua_topointer(L, idx) === 0) return null; // json_null, JSON's null
        break;
      case LUA_TUSERDATA: {
        const id = this.#objectId(L, idx);
        if (id) return this.#objects.get(id);
      }
    }
    // A thread or a foreign userdata (a file handle) means nothing outside Lua: its tostring text would pass for a string.
    throw new TypeError(`a ${vm.typeName(L, idx)} cannot leave its Lua state`);
  }

  #readTable(L: LuaState, idx: number, seen: Map<number, unknown>): unknown {
    const api = this.#engine.vm.api;
    const pointer = api.lua_topointer(L, idx);
    const again = seen.get(pointer);
    if (again !== undefined) return again;
    api.lua_checkstack(L, 4);
    // Its state is in the scheduler, out of reach: it would come as an empty object.
    if (this.#engine.isChannel(L, idx)) throw new TypeError("a channel cannot leave its Lua state");
    const n = Number(api.lua_rawlen(L, idx));
    if (this.#engine.vm.isList(L, idx, n)) {
      const list: unknown[] = new Array(n);
      seen.set(pointer, list);
      for (let i = 1; i <= n; i++) {
        api.lua_rawgeti(L, idx, BigInt(i));
        list[i - 1] = this.read(L, -1, seen);
        api.lua_settop(L, -2);
      }
      return list;
    }
    const object: Record<string, unknown> = {};
    seen.set(pointer, object);
    api.lua_pushnil(L);
    while (api.lua_next(L, idx)) {
      api.lua_pushvalue(L, -2); // lua_next needs the key unconverted
      const name = String(this.#key(L, -1));
      // Only a number and a string key can name the same property: one of the two values would be lost.
      if (Object.hasOwn(object, name)) {
        throw new TypeError(`the table keys ${name} and "${name}" would be one JavaScript property`);
      }
      object[name] = this.read(L, -2, seen);
      api.lua_settop(L, -3);
    }
    return object;
  }

  /**
   * The Lua function at `idx` as a JavaScript function. Calling it runs the
   * Lua function at once and returns its first result, or a Promise of it
   * when the function has to wait; a Lua error is thrown as {@linkcode LuaError}.
   * Called from JavaScript that Lua called, it is part of that Lua's call;
   * otherwise it is a call of its own (see the constructor's `callFromOutside`).
   */
  luaFunction(L: LuaState, idx: number): (...args: unknown[]) => unknown {
    const engine = this.#engine;
    const { vm } = engine;
    vm.api.lua_pushvalue(L, idx);
    const ref = vm.ref(L);
    const fn = (...args: unknown[]) => {
      const pushCall = (T: LuaState) => {
        vm.pushRef(T, ref);
        return this.pushArgs(T, args);
      };
      return engine.luaRunning ? engine.call(pushCall, this.reader) : this.#callFromOutside(pushCall);
    };
    this.#release.register(fn, ref);
    return fn;
  }

  /** Pushes a call's `args` on `T`, with room made for them first (Lua guarantees 20 slots); returns their count. */
  pushArgs(T: LuaState, args: unknown[]): number {
    this.#engine.vm.makeRoom(T, args.length);
    for (const a of args) this.push(T, a);
    return args.length;
  }

  /** Reads a call's end for {@linkcode Engine.call}: its first result, or a thrown {@linkcode LuaError}. */
  readonly reader: CallReader<unknown> = (ok, L, at) => {
    if (ok) return this.read(L, at);
    throw new LuaError(this.#engine.vm.toText(L, at), this.#engine.vm.toText(L, at + 1));
  };
}

/**
 * Loads Lua 5.4 (wasmoon's WebAssembly build) and exposes its raw C API.
 *
 * wasmoon's convenience layer costs microseconds per call; the raw exports
 * cost nanoseconds, so every hot path in SolVM talks to them directly.
 *
 * @module
 */
import GLUE_WASM from "wasmoon/dist/glue.wasm" with { type: "bytes" };
import { FunctionTable, type Signature } from "./_wasm_functions.ts";
import { timeImports } from "./_libc_time.ts";

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

/** `lua_pcallk`'s result count for "all of them". */
export const LUA_MULTRET = -1;

/**
 * What C's longjmp throws through JavaScript (a Lua error or yield in
 * flight): a value of its own, which nothing a host function throws can be.
 */
export const LONGJMP: unique symbol = Symbol("longjmp");

/** The registry's pseudo-index (LUAI_MAXSTACK = 1000000). */
export const LUA_REGISTRYINDEX = -1000000 - 1000;

/** The registry's index of the globals table (for `lua_rawgeti`). */
export const LUA_RIDX_GLOBALS = 2n;

/** The raw C functions SolVM uses, as exported by the WebAssembly module. */
export interface LuaExports {
  malloc(size: number): number;
  fflush(stream: number): number;
  free(ptr: number): void;
  realloc(ptr: number, size: number): number;
  luaL_newstate(): LuaState;
  lua_setallocf(L: LuaState, f: number, ud: number): void;
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
  lua_isnumber(L: LuaState, idx: number): number;
  lua_tonumberx(L: LuaState, idx: number, isnum: number): number;
  lua_tointegerx(L: LuaState, idx: number, isnum: number): bigint;
  lua_toboolean(L: LuaState, idx: number): number;
  lua_tolstring(L: LuaState, idx: number, len: number): number;
  lua_topointer(L: LuaState, idx: number): number;
  lua_rawlen(L: LuaState, idx: number): bigint;
  lua_len(L: LuaState, idx: number): void;
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
  lua_callk(L: LuaState, nargs: number, nresults: number, ctx: number, k: number): void;
  lua_pcallk(L: LuaState, nargs: number, nresults: number, errfunc: number, ctx: number, k: number): number;
  lua_isyieldable(L: LuaState): number;
  lua_sethook(L: LuaState, fn: number, mask: number, count: number): void;
  lua_pushthread(L: LuaState): number;
  lua_tothread(L: LuaState, idx: number): LuaState;
  lua_getinfo(L: LuaState, what: number, ar: number): number;
  lua_yieldk(L: LuaState, nresults: number, ctx: number, k: number): number;
  lua_newthread(L: LuaState): LuaState;
  lua_gethookmask(L: LuaState): number;
  lua_gethook(L: LuaState): number;
  lua_gethookcount(L: LuaState): number;
  lua_getstack(L: LuaState, level: number, ar: number): number;
  lua_newuserdatauv(L: LuaState, size: number, nuvalue: number): number;
  lua_touserdata(L: LuaState, idx: number): number;
  lua_rawequal(L: LuaState, a: number, b: number): number;
  lua_xmove(from: LuaState, to: LuaState, n: number): void;
  lua_dump(L: LuaState, writer: number, data: number, strip: number): number;
  lua_error(L: LuaState): number;
}

/**
 * What the C library inside the module asks of the operating system, at the
 * level of file descriptors and paths. Results are as from a Linux system
 * call: a count, an offset or a descriptor, or a negative errno (see
 * {@linkcode ERRNO}). Lua's own `io` and `os` libraries, `dofile`,
 * `loadfile` and `require` reach the disk only through this.
 */
export interface LuaSystem {
  read(fd: number, into: Uint8Array): number;
  write(fd: number, bytes: Uint8Array): number;
  open(path: string, flags: number, mode: number): number;
  close(fd: number): number;
  /** Makes `newFd` refer to what `oldFd` does (freopen uses it). */
  duplicate(oldFd: number, newFd: number): number;
  seek(fd: number, offset: number, whence: number): number;
  remove(path: string, directory: boolean): number;
  rename(from: string, to: string): number;
  /** Writes a symbolic link's target into `into`; -ENOENT when `path` does not exist (tmpnam relies on it). */
  readlink(path: string, into: Uint8Array): number;
  /** `NAME=value` lines for `os.getenv`. */
  environment(): string[];
  /** Closes every descriptor still open: for a state dropped without lua_close, whose files never close theirs. */
  closeAll?(): void;
}

/**
 * The system errors a file call can meet: this WebAssembly build's number
 * for each (the C library's, WASI's numbering), then Linux's (what Deno's
 * "(os error N)" and lua5.4 give).
 */
export const SYSTEM_ERRORS = {
  EPERM: [63, 1],
  ENOENT: [44, 2],
  EINTR: [27, 4],
  EIO: [29, 5],
  ENXIO: [60, 6],
  EBADF: [8, 9],
  EAGAIN: [6, 11],
  ENOMEM: [48, 12],
  EACCES: [2, 13],
  EBUSY: [10, 16],
  EEXIST: [20, 17],
  EXDEV: [75, 18],
  ENODEV: [43, 19],
  ENOTDIR: [54, 20],
  EISDIR: [31, 21],
  EINVAL: [28, 22],
  ENFILE: [41, 23],
  EMFILE: [33, 24],
  ENOTTY: [59, 25],
  ETXTBSY: [74, 26],
  EFBIG: [22, 27],
  ENOSPC: [51, 28],
  ESPIPE: [70, 29],
  EROFS: [69, 30],
  EMLINK: [34, 31],
  EPIPE: [64, 32],
  ENAMETOOLONG: [37, 36],
  ENOSYS: [52, 38],
  ENOTEMPTY: [55, 39],
  ELOOP: [32, 40],
  EOVERFLOW: [61, 75],
  ENOTSUP: [58, 95],
  EDQUOT: [19, 122],
} as const;

/** Errno values of this WebAssembly build's C library (WASI numbering), by name. */
export const ERRNO = Object.fromEntries(Object.entries(SYSTEM_ERRORS).map(([name, [own]]) => [name, own])) as {
  readonly [name in keyof typeof SYSTEM_ERRORS]: number;
};

const ERRNO_OF_LINUX = new Map(Object.values(SYSTEM_ERRORS).map(([own, linux]) => [linux as number, own as number]));

/**
 * The errno for a failed Deno call, by its error's code ("ENOSPC") or,
 * as some errors come without one (ENXIO, ETXTBSY), by the Linux number in
 * its message; undefined if this build does not number it.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { ERRNO, errnoOfSystemError } from "./lua.ts";
 * const full = Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
 * strictEqual(errnoOfSystemError(full), ERRNO.ENOSPC);
 * strictEqual(errnoOfSystemError(new Error("Text file busy (os error 26): open 'a'")), ERRNO.ETXTBSY);
 * ```
 */
export function errnoOfSystemError(e: unknown): number | undefined {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && code in ERRNO) return ERRNO[code as keyof typeof ERRNO];
  const linux = e instanceof Error ? /\(os error (\d+)\)/.exec(e.message)?.[1] : undefined;
  return linux === undefined ? undefined : ERRNO_OF_LINUX.get(Number(linux));
}

/** open(2) flags as the C library passes them. */
export const O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000, O_APPEND = 0o2000;

/** A system with no files: every path is refused. */
export const NO_FILES: LuaSystem = {
  read: () => -ERRNO.EBADF,
  write: () => -ERRNO.EBADF,
  open: () => -ERRNO.ENOSYS,
  close: () => -ERRNO.EBADF,
  duplicate: () => -ERRNO.EBADF,
  seek: () => -ERRNO.EBADF,
  remove: () => -ERRNO.ENOSYS,
  rename: () => -ERRNO.ENOSYS,
  readlink: () => -ERRNO.ENOSYS,
  environment: () => [],
};

/** One instance of the Lua WebAssembly module: raw exports plus memory and function-table access. */
export interface LuaModule {
  readonly raw: LuaExports;
  /** `luaL_newstate`, with a string-hash seed no one can guess (see {@linkcode loadLuaModule}). */
  newState(): LuaState;
  /** Current byte view of the WebAssembly memory (replaced when memory grows). */
  heap(): Uint8Array;
  /** Makes a JavaScript function callable from C (`sig` as in Emscripten, e.g. "ii"). */
  addFunction(fn: (...args: number[]) => number | void, sig: Signature): number;
  /** Frees a slot made by `addFunction`. */
  removeFunction(ptr: number): void;
}

let compiled: WebAssembly.Module | undefined;

/** The most memory this 32-bit build can address through its allocator. */
export const MAX_WASM_MEMORY = 2 ** 31;

/**
 * Instantiates Lua (wasmoon's WebAssembly build) with `system` as its
 * operating system and at most `maxMemory` bytes of memory. The module is compiled once per JavaScript realm; each
 * call makes a new instance with its own memory.
 *
 * wasmoon's JavaScript glue is not used: the build needs only a few dozen
 * imports, and skipping its 150 KB loader halves start-up.
 *
 * ```ts
 * import { loadLuaModule, NO_FILES } from "./lua.ts";
 * const lua = loadLuaModule(NO_FILES);
 * const L = lua.raw.luaL_newstate();
 * lua.raw.lua_close(L);
 * ```
 */
export function loadLuaModule(system: LuaSystem, maxMemory = MAX_WASM_MEMORY): LuaModule {
  compiled ??= new WebAssembly.Module(GLUE_WASM);
  // Lua seeds its string hashes from time(NULL) and a few addresses, which WebAssembly makes the same each run: a
  // state made in a known second would hash as every other, and crafted keys could make its tables crawl. newState
  // shows Lua a random clock while it takes the seed.
  let clockSkew = 0;
  // Assigned once the instance exists; the imports below close over it.
  // deno-lint-ignore prefer-const
  let exports: LuaExports & WasmSupport;
  let u8: Uint8Array = new Uint8Array(0);
  let i32: Int32Array = new Int32Array(0);
  const heap = () => {
    if (u8.byteLength === 0) {
      u8 = new Uint8Array(exports.memory.buffer);
      i32 = new Int32Array(exports.memory.buffer);
    }
    return u8;
  };
  const mem = { u8: heap, i32: () => (heap(), i32) };
  // Paths must be UTF-8: a lossy decoding would name another file.
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const cString = (p: number) => {
    const bytes = heap();
    let end = p;
    while (bytes[end]) end++;
    return decoder.decode(bytes.subarray(p, end));
  };
  const withPath = (run: () => number) => {
    try {
      return run();
    } catch (e) {
      if (e instanceof TypeError) return -ERRNO.EINVAL;
      throw e;
    }
  };
  // Gathers or scatters a WASI iovec array.
  const vectors = (iovs: number, count: number, each: (view: Uint8Array) => number) => {
    let total = 0;
    for (let i = 0; i < count; i++) {
      const words = mem.i32();
      const base = words[(iovs >> 2) + 2 * i], len = words[(iovs >> 2) + 2 * i + 1];
      const n = each(heap().subarray(base, base + len));
      if (n < 0) return n;
      total += n;
      if (n < len) break;
    }
    return total;
  };
  const env = {
    abort: () => {
      throw new Error("Lua's C code aborted");
    },
    invoke_vii: (index: number, a: number, b: number) => {
      const sp = exports.stackSave();
      try {
        (exports.__indirect_function_table.get(index) as (a: number, b: number) => void)(a, b);
      } catch (e) {
        exports.stackRestore(sp);
        if (e !== LONGJMP) throw e;
        exports.setThrew(1, 0);
      }
    },
    _emscripten_throw_longjmp: () => {
      throw LONGJMP;
    },
    emscripten_date_now: () => Date.now() + clockSkew,
    _emscripten_get_now_is_monotonic: () => 1,
    // Refusing to grow makes malloc fail, which Lua turns into a catchable "not enough memory".
    emscripten_resize_heap: (requested: number) => {
      const memory = exports.memory;
      const current = memory.buffer.byteLength;
      const needed = requested >>> 0;
      const limit = Math.min(maxMemory, MAX_WASM_MEMORY);
      if (needed > limit) return 0;
      const target = Math.min(limit, Math.max(needed, current + (current >> 2)));
      try {
        memory.grow(Math.ceil((target - current) / 65536));
        return 1;
      } catch {
        return 0;
      }
    },
    system: () => -1,
    exit: (code: number) => {
      throw new Error(`Lua's C code called exit(${code})`);
    },
    __syscall_openat: (_dirfd: number, path: number, flags: number, varargs: number) =>
      withPath(() => system.open(cString(path), flags, flags & O_CREAT ? mem.i32()[varargs >> 2] : 0)),
    __syscall_fcntl64: () => 0,
    __syscall_ioctl: () => -ERRNO.ENOTTY,
    __syscall_dup3: (oldFd: number, newFd: number) => system.duplicate(oldFd, newFd),
    __syscall_unlinkat: (_dirfd: number, path: number, flags: number) =>
      withPath(() => system.remove(cString(path), (flags & 0x200) !== 0)),
    __syscall_rmdir: (path: number) => withPath(() => system.remove(cString(path), true)),
    __syscall_renameat: (_olddir: number, from: number, _newdir: number, to: number) =>
      withPath(() => system.rename(cString(from), cString(to))),
    __syscall_readlinkat: (_dirfd: number, path: number, buffer: number, size: number) =>
      withPath(() => system.readlink(cString(path), heap().subarray(buffer, buffer + size))),
    ...timeImports(mem, (size) => exports.malloc(size)),
  };
  const wasi = {
    fd_write: (fd: number, iovs: number, count: number, written: number) => {
      const n = vectors(iovs, count, (view) => system.write(fd, view));
      if (n < 0) return -n;
      mem.i32()[written >> 2] = n;
      return 0;
    },
    fd_read: (fd: number, iovs: number, count: number, read: number) => {
      const n = vectors(iovs, count, (view) => system.read(fd, view));
      if (n < 0) return -n;
      mem.i32()[read >> 2] = n;
      return 0;
    },
    fd_seek: (fd: number, offset: bigint, whence: number, result: number) => {
      const position = system.seek(fd, Number(offset), whence);
      if (position < 0) return -position;
      new BigInt64Array(heap().buffer, result, 1)[0] = BigInt(position);
      return 0;
    },
    fd_close: (fd: number) => -Math.min(0, system.close(fd)),
    environ_sizes_get: (count: number, size: number) => {
      const vars = system.environment();
      mem.i32()[count >> 2] = vars.length;
      mem.i32()[size >> 2] = vars.reduce((n, v) => n + new TextEncoder().encode(v).length + 1, 0);
      return 0;
    },
    environ_get: (pointers: number, buffer: number) => {
      let at = buffer;
      system.environment().forEach((v, i) => {
        const bytes = new TextEncoder().encode(v + "\0");
        mem.i32()[(pointers >> 2) + i] = at;
        heap().set(bytes, at);
        at += bytes.length;
      });
      return 0;
    },
  };
  const instance = new WebAssembly.Instance(compiled, { env, wasi_snapshot_preview1: wasi });
  exports = instance.exports as unknown as LuaExports & WasmSupport;
  exports.emscripten_stack_init();
  exports.__wasm_call_ctors();
  const table = new FunctionTable(exports.__indirect_function_table);
  /** A `lua_Alloc` that fails (Lua's "not enough memory", after an emergency collection) past `limit` bytes in use. */
  const countingAllocator = (limit: number) => {
    let used = 0;
    return table.add((_ud: number, ptr: number, oldSize: number, newSize: number) => {
      const old = ptr ? oldSize >>> 0 : 0; // without a block, oldSize tells the kind of object
      newSize >>>= 0;
      if (newSize === 0) {
        exports.free(ptr);
        used -= old;
        return 0;
      }
      if (used - old + newSize > limit) return 0;
      const block = exports.realloc(ptr, newSize);
      if (block) used += newSize - old;
      return block;
    }, "iiiii");
  };
  return {
    raw: exports,
    newState: () => {
      clockSkew = crypto.getRandomValues(new Uint32Array(1))[0] * 1000;
      let L: LuaState;
      try {
        L = exports.luaL_newstate();
      } finally {
        clockSkew = 0;
      }
      // Below the memory the module starts with, refusing to grow it limits nothing: Lua's own bytes are counted.
      if (maxMemory < exports.memory.buffer.byteLength) exports.lua_setallocf(L, countingAllocator(maxMemory), 0);
      return L;
    },
    heap,
    addFunction: (fn, sig) => table.add(fn, sig),
    removeFunction: (ptr) => table.remove(ptr),
  };
}

/** Exports of the Emscripten runtime inside the module. */
interface WasmSupport {
  memory: WebAssembly.Memory;
  __indirect_function_table: WebAssembly.Table;
  __wasm_call_ctors(): void;
  emscripten_stack_init(): void;
  stackSave(): number;
  stackRestore(sp: number): void;
  setThrew(threw: number, value: number): void;
}

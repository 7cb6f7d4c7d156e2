/**
 * The files family: `read_file`, `write_file` and `list_dir`, on Deno's
 * asynchronous file API (a call parks only its goroutine). Lua's own `io`
 * and `os` libraries reach the disk too, through host/filesystem.ts.
 *
 * @module
 */
import type { Engine } from "../runtime/engine.ts";
import type { Family, LuaDefinedFunction } from "../runtime/family.ts";
import { argError, checkBytes, checkStrictText, checkString, isNone } from "../runtime/args.ts";
import { type LuaState, SYSTEM_ERRORS } from "../runtime/lua.ts";
import { fileErrorReason, takeDenials } from "./filesystem.ts";
import { accessReason, checkAccess, isPermissionError } from "./_permissions.ts";

/** Runs `work` once `access` to `path` is allowed; rejects with `fname: cannot <verb> "<path>": <reason>`. */
async function explain<T>(
  work: () => Promise<T>,
  fname: string,
  verb: string,
  access: "read" | "write",
  path: string,
): Promise<T> {
  try {
    checkAccess(access, path);
    return await work();
  } catch (e) {
    throw new Error(`${fname}: cannot ${verb} "${path}": ${fileErrorReason(e, access, path)}`);
  }
}

/** `read_file(path)`: the file's bytes as a Lua string. */
function readFile(engine: Engine, L: LuaState) {
  const path = checkStrictText(engine.vm, L, 1, "read_file", "path");
  return explain(() => Deno.readFile(path), "read_file", "read", "read", path).then((bytes) => (L: LuaState) => {
    engine.vm.pushBytes(L, bytes);
    return 1;
  });
}

/** `write_file(path, content [, "a"])`: writes (or appends) the bytes of content; returns true. */
function writeFile(engine: Engine, L: LuaState) {
  const vm = engine.vm;
  const path = checkStrictText(vm, L, 1, "write_file", "path");
  const content = checkBytes(vm, L, 2, "write_file");
  const mode = isNone(vm, L, 3) ? "w" : checkString(vm, L, 3, "write_file");
  if (mode !== "w" && mode !== "a") throw argError(3, "write_file", `mode "w" or "a" expected, got "${mode}"`);
  const work = () => Deno.writeFile(path, content, { append: mode === "a" });
  return explain(work, "write_file", "write", "write", path).then(() => (L: LuaState) => {
    vm.api.lua_pushboolean(L, 1);
    return 1;
  });
}

/** Go's FileMode.String() form: "drwxr-xr-x", "-rw-r--r--", "dtrwxrwxrwx", "urwxr-xr-x". */
function modeString(info: Deno.FileInfo): string {
  const bits = info.mode ?? 0;
  const kinds: [boolean, string][] = [
    [info.isDirectory, "d"],
    [info.isSymlink, "L"],
    [info.isBlockDevice === true || info.isCharDevice === true, "D"],
    [info.isFifo === true, "p"],
    [info.isSocket === true, "S"],
    [(bits & 0o4000) !== 0, "u"],
    [(bits & 0o2000) !== 0, "g"],
    [info.isCharDevice === true, "c"],
    [(bits & 0o1000) !== 0, "t"],
  ];
  const type = kinds.filter(([on]) => on).map(([, letter]) => letter).join("") || "-";
  return type + [...Array(9)].map((_, i) => (bits & (1 << (8 - i)) ? "rwx"[i % 3] : "-")).join("");
}

/** Orders as the names' UTF-8 bytes do (Go's os.ReadDir, Lua's `<`); JavaScript's `<` compares UTF-16 units. */
function byCodePoint(a: string, b: string): number {
  for (let i = 0; i < a.length && i < b.length;) {
    const x = a.codePointAt(i)!, y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    i += x > 0xffff ? 2 : 1;
  }
  return a.length - b.length;
}

/** `list_dir(path)`: entries `{name, is_dir, size, mode, mod_time}` sorted by name. */
function listDir(engine: Engine, L: LuaState) {
  const path = checkStrictText(engine.vm, L, 1, "list_dir", "path");
  const work = async () => {
    const entries = [];
    for await (const entry of Deno.readDir(path)) {
      let info: Deno.FileInfo;
      try {
        checkAccess("read", `${path}/${entry.name}`);
        info = await Deno.lstat(`${path}/${entry.name}`);
      } catch (e) {
        // An entry the script may not read is listed (its folder may be read) without its details, as Deno does.
        if (isPermissionError(e)) {
          entries.push({ name: entry.name, is_dir: entry.isDirectory });
          continue;
        }
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        // A name that is not UTF-8 comes with U+FFFD in it, and that name does not exist: listed without details.
        if (entry.name.includes("\uFFFD")) entries.push({ name: entry.name, is_dir: entry.isDirectory });
        continue; // else it was removed while we listed
      }
      entries.push({
        name: entry.name,
        is_dir: entry.isDirectory,
        size: info.size,
        mode: modeString(info),
        mod_time: info.mtime ? Math.floor(info.mtime.getTime() / 1000) : undefined,
      });
    }
    return entries.sort((a, b) => byCodePoint(a.name, b.name));
  };
  return explain(work, "list_dir", "list", "read", path).then((entries) => (L: LuaState) => {
    engine.vm.pushValue(L, entries);
    return 1;
  });
}

const NAME_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * `os.tmpname()`: makes an empty file in /tmp and returns its name, as
 * lua5.4 on Linux does (mkstemp), so the name stays taken. Only write
 * access is needed, and a refusal names the flag.
 */
function tmpName(engine: Engine, L: LuaState): number {
  for (let tries = 1;; tries++) {
    const letters = crypto.getRandomValues(new Uint8Array(6));
    const name = `/tmp/lua_${[...letters].map((n) => NAME_CHARACTERS[n % NAME_CHARACTERS.length]).join("")}`;
    try {
      checkAccess("write", name);
      Deno.openSync(name, { write: true, createNew: true, mode: 0o600 }).close();
      engine.vm.pushString(L, name);
      return 1;
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists && tries < 100) continue;
      throw new Error(`unable to generate a unique filename: ${fileErrorReason(e, "write", "/tmp")}`);
    }
  }
}

/**
 * Why `io.tmpfile()` may not make its file, naming every flag it lacks, or
 * undefined: C's tmpfile opens a new file in /tmp to read and write, and
 * refused it can only say "Permission denied" about a random name.
 */
function tmpFileRefusal(): string | undefined {
  const reasons = (["read", "write"] as const).flatMap((kind) => {
    try {
      checkAccess(kind, "/tmp");
    } catch (e) {
      return [accessReason(e, kind, "/tmp")];
    }
    return Deno.permissions.querySync({ name: kind, path: "/tmp" }).state === "granted"
      ? []
      : [accessReason(undefined, kind, "/tmp")];
  });
  return reasons.length > 0 ? reasons.join("; ") : undefined;
}

/**
 * Makes the wrapper of Lua's own `original` (a function of io, os, package
 * or the base library, named `name`) that puts the reason of a refused
 * access in its messages where the C library can only say "Permission
 * denied", and gives the C library's other error texts in glibc's words,
 * as lua5.4 on Linux shows them.
 * `returns`: it fails by returning nil and a message (else it raises).
 * Errors of its own (a bad argument) keep Lua's wording and the caller's
 * position. One chunk for every wrapped function, compiled once.
 */
const EXPLAINED_LUA = `
local denials = (...).denials
local select, error, pcall, type = select, error, pcall, type
-- The C library numbers errors as WASI does; what these functions return has Linux's numbers (ENOENT is 2,
-- EACCES 13). A file's own methods (f:read, ...) keep WASI's: a Lua wrapper there would cost every call.
local LINUX = { ${Object.values(SYSTEM_ERRORS).map(([own, linux]) => `[${own}] = ${linux}`).join(", ")} }
-- Its texts (musl's) where lua5.4's (glibc's) differ.
local GLIBC = { ["I/O error"] = "Input/output error", ["Cross-device link"] = "Invalid cross-device link",
  ["Resource busy"] = "Device or resource busy", ["Symbolic link loop"] = "Too many levels of symbolic links",
  ["Filename too long"] = "File name too long", ["No file descriptors available"] = "Too many open files",
  ["Out of memory"] = "Cannot allocate memory", ["Not a tty"] = "Inappropriate ioctl for device",
  ["Invalid seek"] = "Illegal seek", ["Quota exceeded"] = "Disk quota exceeded",
  ["Not supported"] = "Operation not supported",
  ["Value too large for data type"] = "Value too large for defined data type" }
local function linux(...)
  local first, message, code = ...
  if first == nil and type(code) == "number" then return nil, message, LINUX[code] or code, select(4, ...) end
  return ...
end
-- The system's text ends a message: "name: text", "cannot open file 'name' (text)", or the text alone.
local function as_glibc(message)
  local head, text, tail = message:match("^(.*[:(] ?)([^:()]+)(%)?)$")
  if head and GLIBC[text] then return head .. GLIBC[text] .. tail end
  return GLIBC[message] or message
end
local function explain(message)
  local reason = denials()
  if type(message) ~= "string" then return message end
  if reason == nil then return as_glibc(message) end
  local at = message:find("Permission denied", 1, true)
  if at then return message:sub(1, at - 1) .. reason .. message:sub(at + #"Permission denied") end
  return message .. "\\n\\t" .. reason
end
-- outer: how many Lua wrappers (dofile's) stand between this one and the caller its errors point at.
return function(original, name, returns, outer)
  local level = 3 + (outer or 0)
  -- pcall called original, so its own argument errors and io.lines's "cannot open" lack the caller's position
  -- and this function's name (they have '?', or loadfile's when dofile calls a text-only loadfile): give them
  -- back, as a direct call would have. Other errors pass unchanged.
  local function rethrow(e)
    if type(e) == "string" then
      if e:find("^bad argument") or e:find("^cannot open file '") or e == "attempt to use a closed file" then
        error(explain((e:gsub("to '[^']*'", "to '" .. name .. "'", 1))), level)
      end
      if e:find("Permission denied", 1, true) then error(explain(e), 0) end
    end
    error(e, 0)
  end
  local function check(ok, ...)
    if not ok then rethrow((...)) end
    if returns and ... == nil and select("#", ...) > 1 then return linux(nil, explain((select(2, ...))), select(3, ...)) end
    return ...
  end
  return function(...)
    denials()
    return check(pcall(original, ...))
  end
end`;

// The engines of this thread whose Lua files may hold buffered writes (see flushOpenFiles), once trackOpenFiles
// asked for them; held weakly, as an engine may be dropped unclosed.
let engines: Set<WeakRef<Engine>> | undefined;

/**
 * Makes {@linkcode flushOpenFiles} reach every engine this thread makes
 * from now on: for the CLI's threads, which may be ended by force. Other
 * threads (a library's) need no list, and are better without it: a WeakRef
 * keeps its engine alive to the end of the task that made it, so a loop
 * that makes and closes engines without yielding would pile them up.
 *
 * ```ts
 * import { flushOpenFiles, trackOpenFiles } from "./files.ts";
 * trackOpenFiles();
 * flushOpenFiles();
 * ```
 */
export function trackOpenFiles(): void {
  engines ??= new Set();
}

/**
 * Writes out what Lua's open files hold in their buffers (C's
 * `fflush(NULL)`), in every engine of this thread made since
 * {@linkcode trackOpenFiles}: for a thread about to be ended by force
 * (Ctrl-C, SIGTERM, a time limit), which closes no file.
 *
 * ```ts
 * import { flushOpenFiles } from "./files.ts";
 * flushOpenFiles();
 * ```
 */
export function flushOpenFiles(): void {
  for (const engine of engines ?? []) engine.deref()?.vm.api.fflush(0);
}

/** The files family's registration table. */
export const files = (engine: Engine): Family => {
  if (engines) {
    const held = new WeakRef(engine);
    engines.add(held);
    engine.onClose(() => engines!.delete(held));
  }
  let factory = 0;
  const make = (L: LuaState) => {
    factory ||= engine.compileLua("file access", EXPLAINED_LUA, {
      denials: (L) => {
        const [reason] = takeDenials();
        engine.vm.pushPrimitive(L, reason);
        return 1;
      },
    });
    engine.vm.pushRef(L, factory);
    return 1;
  };
  const explained = (original: string, style: "returns" | "raises"): LuaDefinedFunction => ({
    lua: `return (...).make()(${original}, "${original}", ${style === "returns"})`,
    helpers: { make },
  });
  return {
    read_file: engine.blocking("read_file", (L) => readFile(engine, L)),
    write_file: engine.blocking("write_file", (L) => writeFile(engine, L)),
    list_dir: engine.blocking("list_dir", (L) => listDir(engine, L)),
    "io.open": explained("io.open", "returns"),
    "io.lines": explained("io.lines", "raises"),
    "io.input": explained("io.input", "raises"),
    "io.output": explained("io.output", "raises"),
    // Loads with Lua's own loadfile (wrapped only below), then runs the chunk by a tail call outside any pcall:
    // its errors keep their traceback, and nested dofiles cost no C stack.
    dofile: {
      lua: `local load, error = (...).make()(loadfile, "dofile", true, 1), error
        return function(filename)
          local chunk, message = load(filename)
          if not chunk then error(message, 0) end
          return chunk()
        end`,
      helpers: { make },
    },
    loadfile: explained("loadfile", "returns"),
    // require's searcher (host/modules.ts) finds and loads files with these two.
    "package.searchpath": explained("package.searchpath", "returns"),
    "os.remove": explained("os.remove", "returns"),
    "os.rename": explained("os.rename", "returns"),
    "os.tmpname": (L) => tmpName(engine, L),
    "io.tmpfile": {
      lua: `local helpers = ...
        local tmpfile = helpers.make()(io.tmpfile, "io.tmpfile", true)
        return function()
          local refusal = helpers.refusal()
          if refusal then return nil, refusal, 13 end -- EACCES, as Linux numbers it
          return tmpfile()
        end`,
      helpers: {
        make,
        refusal: (L) => (engine.vm.pushPrimitive(L, tmpFileRefusal()), 1),
      },
    },
  };
};

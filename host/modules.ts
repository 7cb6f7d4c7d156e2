/**
 * The modules family: `import(name)` (SolVM's module loader: the importing
 * script's folder, then the folders `require` searches, for `name.lua` and
 * `name/init.lua` as `require` does; or an http(s) URL) and the settings that make Lua's own
 * `require` search the script's folder and `modules/` on the real disk.
 *
 * @module
 */
import type { Engine } from "../runtime/engine.ts";
import type { Family, RunContext } from "../runtime/family.ts";
import { checkStrictText } from "../runtime/args.ts";
import type { LuaState } from "../runtime/lua.ts";
import { INTERNAL_CHUNK_PREFIX, type LuaVM } from "../runtime/state.ts";
import { fileErrorReason } from "./filesystem.ts";
import { accessReason, checkAccess, isPermissionError } from "./_permissions.ts";
import { fetchFollowing, type Hop } from "./http_client.ts";

/** How long a remote module may take to arrive. */
const FETCH_TIMEOUT_MS = 30_000;

// import itself: locate (sync), load (may wait: a file or a URL), run once, cache. A module that one
// goroutine is loading is waited for by the others (they get the same value), unless that wait closes a
// circle: meeting it again within one goroutine, or goroutines each waiting for a module another loads.
// Importers are goroutines: a coroutine a module's load resumes is part of that load.
const IMPORT_LUA = `
local helpers = ...
local locate, load, can_wait, caller = helpers.locate, helpers.load, helpers.can_wait, helpers.caller
local chan, receive, close_channel, running = helpers.scheduler()
local cache, LOADING = {}, {}
local loaded = {}  -- key -> channel closed once the goroutine loading it is done
local loader = {}  -- key -> goroutine loading it
local chains = setmetatable({}, { __mode = "k" })  -- goroutine -> modules it is loading, innermost last
local waiting = setmetatable({}, { __mode = "k" })  -- goroutine -> the module it waits for another to load

local function chain()
  local co = running()
  local c = chains[co]
  if not c then c = {} chains[co] = c end
  return c
end

-- The names of chain's modules from the one with key (after it, if after) to the innermost.
local function names_from(c, key, after, names)
  local from = #c + 1
  for i = #c, 1, -1 do
    if c[i].key == key then from = after and i + 1 or i break end
  end
  for i = from, #c do names[#names + 1] = c[i].shown end
  return names
end

-- The import circle that waiting for module key would close, as names; nil when the wait will end. It
-- follows the goroutine loading key to the module it waits for, and so on, back to this goroutine.
local function circle(key, shown)
  local me, seen, path = running(), {}, { shown }
  local owner = loader[key]
  while owner ~= me do
    if owner == nil or seen[owner] or waiting[owner] == nil then return nil end
    seen[owner] = true
    names_from(chains[owner], key, true, path)
    key = waiting[owner].key
    path[#path + 1] = waiting[owner].shown
    owner = loader[key]
  end
  local names = names_from(chains[me], key, false, {})
  for i = 1, #path do names[#names + 1] = path[i] end
  return names
end

-- The module that tail-called import (its frame is gone): the innermost one loading, shown with no position.
local function tail_caller()
  local loading = chain()
  local top = loading[#loading]
  return top and ("@" .. top.shown) or "", 0
end

-- Raised at the importer's line before import waits (for another goroutine's load, or to read the module), as a
-- waiting host function's refusal is: the wait itself would place it inside import, or nowhere through pcall.
local CANNOT_WAIT = "import cannot wait here (not in a goroutine, or across a C call)"

-- Calls a module's chunk unnamed (a vararg, not a local), so tracebacks say "in main chunk", as require's do.
local function run_chunk(...)
  local value = (...)()
  return value
end

return function(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'import' (string expected, got " .. type(name) .. ")", 2)
  end
  local source, level = caller() -- called here, in import itself: its levels are import's
  if source == nil then source, level = tail_caller() end
  local found, key, global, shown = pcall(locate, name, source)
  if not found then error(key, level) end
  local loading = chain()
  local value = cache[key]
  while value == LOADING do
    local names = circle(key, shown)
    if names then error("import: circular import: " .. table.concat(names, " -> "), level) end
    if not can_wait() then error(CANNOT_WAIT, level) end
    local co = running()
    waiting[co] = { key = key, shown = shown }
    receive(loaded[key]) -- another goroutine is loading it
    waiting[co] = nil
    value = cache[key]
  end
  if value == nil then
    if not can_wait() then error(CANNOT_WAIT, level) end
    cache[key] = LOADING
    loaded[key] = chan()
    loader[key] = running()
    loading[#loading + 1] = { key = key, shown = shown }
    -- Closed however the module ends: an error keeps its own traceback, and goroutines waiting for it try again.
    local _ <close> = setmetatable({}, { __close = function()
      loading[#loading] = nil
      if cache[key] == LOADING then cache[key] = nil end
      close_channel(loaded[key])
      loaded[key] = nil
      loader[key] = nil
    end })
    local ok, chunk = pcall(load, key, shown)
    if not ok then error(chunk, chunk:sub(1, 8) == "import: " and level or 0) end
    value = run_chunk(chunk)
    if value == nil then value = true end
    cache[key] = value
  end
  _G[global] = value
  return value
end`;

const dirname = (path: string) => path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
const join = (dir: string, file: string) => dir === "." ? file : `${dir.replace(/\/$/, "")}/${file}`;

/** The files a module name may be in, in each search folder, as `package.path` patterns. */
const MODULE_FILES = ["?.lua", "?/init.lua"];

/** The global a module sets: the last part of its path or URL (pkg for pkg/init.lua, b for a.b), without `.lua`. */
function globalName(name: string): string {
  const base = name.replace(/[?#].*$/, "").split("/").pop() ?? name;
  return base.replace(/\.lua$/, "");
}

/** True for a file at `path`. A place the script may not read is skipped (as require's search skips it), its reason kept in `refused`. */
function isFile(path: string, refused: Map<string, string>): boolean {
  try {
    checkAccess("read", path);
    return Deno.statSync(path).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    if (isPermissionError(e)) {
      refused.set(path, fileErrorReason(e, "read", path));
      return false;
    }
    throw new Error(`import: cannot read "${path}": ${fileErrorReason(e, "read", path)}`);
  }
}

/** The chunk of import's own Lua (a family's Lua is named after its global): met above import, a module tail-called it. */
const IMPORT_CHUNKNAME = `${INTERNAL_CHUNK_PREFIX}import`;

/**
 * `caller()`, called by import -> the source whose folder import searches first and the error level that places an
 * error at the importer's line, found with the C API (a script may have no `debug`). The importer is the innermost
 * frame with a line that is not SolVM's, whatever its chunk (a file, a `load`ed string, the REPL's line); the source
 * is the nearest file chunk's from there on, else the importer's. "", 0 when there is none; nothing when import's own
 * chunk comes first (a module tail-called import).
 */
function caller(vm: LuaVM, L: LuaState): number {
  // The importer is the first chunk with a line; its folder is the nearest file chunk's, from the importer on: a
  // module's load()ed string imports its neighbours.
  let importer = 0;
  let importerSource = "";
  for (let level = 2, frame; (frame = vm.frame(L, level)); level++) {
    if (frame.source === IMPORT_CHUNKNAME) {
      if (importer === 0) return 0;
      break;
    }
    // A C function (pcall) has no line: the Lua code that called it is the importer.
    if (frame.source.startsWith(INTERNAL_CHUNK_PREFIX) || frame.line <= 0) continue;
    if (importer === 0) [importer, importerSource] = [level, frame.source];
    if (frame.source.startsWith("@")) {
      importerSource = frame.source;
      break;
    }
  }
  vm.pushString(L, importerSource);
  vm.api.lua_pushinteger(L, BigInt(importer));
  return 2;
}

/** `locate(name, caller_source)` -> cache key, global name, name shown in messages. */
function locate(engine: Engine, context: RunContext, L: LuaState): number {
  const vm = engine.vm;
  const name = checkStrictText(vm, L, 1, "import", "module name");
  const source = vm.toText(L, 2);
  const push = (key: string, path: string, shown: string) => {
    vm.pushString(L, key);
    vm.pushString(L, globalName(path));
    vm.pushString(L, shown);
    return 3;
  };
  if (/^https?:\/\//i.test(name)) return push(name, name, name);
  // A name with a folder or .lua in it is a path; in a.b.c, dots are folders, as in require's names. Any other name
  // (.config, a..b, "..") is kept whole: a leading dot must not become a path from the root.
  const dotted = !name.endsWith(".lua") && /^[^./]+(\.[^./]+)*$/.test(name);
  const path = dotted ? name.replaceAll(".", "/") : name;
  const files = path.endsWith(".lua") ? [path] : MODULE_FILES.map((form) => form.replace("?", () => path));
  const folders = [source.startsWith("@") ? dirname(source.slice(1)) : ".", ...searchFolders(context)];
  const searched = path.startsWith("/")
    ? files
    : [...new Set(folders.flatMap((folder) => files.map((file) => join(folder, file))))];
  const refused = new Map<string, string>();
  for (const place of searched) {
    if (isFile(place, refused)) return push(Deno.realPathSync(place), path, place);
  }
  const places = searched.map((place) => refused.has(place) ? `${place}: ${refused.get(place)}` : place);
  throw new Error(`import: module '${name}' not found; searched:\n\t${places.join("\n\t")}`);
}

/** `load(key, shown)` -> the compiled chunk of a file or URL. */
function load(engine: Engine, context: RunContext, L: LuaState) {
  const vm = engine.vm;
  const key = vm.toText(L, 1);
  const shown = vm.toText(L, 2);
  const source = /^https?:\/\//i.test(key) ? fetchModule(key) : readModule(key, shown, context);
  return source.then((bytes) => (L: LuaState) => {
    const failure = vm.load(L, bytes, `@${shown}`);
    if (failure) throw new Error(failure);
    return 1;
  });
}

async function readModule(path: string, shown: string, context: RunContext): Promise<Uint8Array> {
  try {
    checkAccess("read", path);
    const bytes = await Deno.readFile(path);
    context.loaded.add(path);
    return bytes;
  } catch (e) {
    throw new Error(`import: cannot read "${shown}": ${fileErrorReason(e, "read", shown)}`);
  }
}

async function fetchModule(url: string): Promise<Uint8Array> {
  let response: Response;
  const hop: Hop = { url, method: "GET", headers: new Headers() };
  try {
    response = await fetchFollowing(hop, AbortSignal.timeout(FETCH_TIMEOUT_MS));
  } catch (e) {
    const parsed = new URL(hop.url);
    const target = `${parsed.hostname}:${parsed.port || (parsed.protocol === "https:" ? 443 : 80)}`;
    const reason = isPermissionError(e) ? accessReason(e, "net", target) : e instanceof Error ? e.message : String(e);
    throw new Error(`import: cannot fetch ${hop.url === url ? url : `${url} (redirected to ${hop.url})`}: ${reason}`);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`import: cannot fetch ${url}: HTTP ${response.status}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * The folders `require` searches before Lua's usual places, and `import` after the importing script's own: the main
 * script's folder (a script named apart from its path, by scriptPath, finds its neighbours), `modules/` in the working
 * directory and `modules/` beside the main script.
 */
function searchFolders(context: RunContext): string[] {
  const here = context.mainScript ? dirname(context.mainScript) : ".";
  return [...new Set([here, "modules", join(here, "modules")])];
}

/** Points Lua's `require` at the search folders, then the usual places. */
function configureRequire(engine: Engine, context: RunContext): void {
  const patterns = searchFolders(context).flatMap((folder) => MODULE_FILES.map((form) => join(folder, form)));
  const { vm, L } = engine;
  vm.api.lua_getglobal(L, vm.cstr("package"));
  vm.api.lua_getfield(L, -1, vm.cstr("path"));
  const standard = vm.toText(L, -1);
  vm.api.lua_settop(L, -2);
  vm.pushString(L, [...patterns, standard].join(";"));
  vm.api.lua_setfield(L, -2, vm.cstr("path"));
  // WebAssembly cannot load C modules: no cpath, and no C searchers to list "no file" lines for it.
  vm.pushString(L, "");
  vm.api.lua_setfield(L, -2, vm.cstr("cpath"));
  vm.api.lua_getfield(L, -1, vm.cstr("searchers"));
  for (const slot of [4n, 3n]) {
    vm.api.lua_pushnil(L);
    vm.api.lua_rawseti(L, -2, slot);
  }
  vm.api.lua_settop(L, -3);
}

// Lua's file searcher, in Lua, on package.searchpath and loadfile as the files family left them (a refused
// access is explained). It tells the run each file require loads (--watch follows it). Nothing here wraps the
// module's run: its errors keep their traceback, and a nested require costs the C stack what it costs in Lua.
const REQUIRE_SEARCHER_LUA = `
local record = (...).record
local package, searchpath, loadfile, type, error = package, package.searchpath, loadfile, type, error
package.searchers[2] = function(name)
  local path = package.path
  if type(path) ~= "string" then error("'package.path' must be a string", 0) end
  local filename, not_found = searchpath(name, path)
  if not filename then return not_found end
  record(filename) -- before loading: a module that fails to compile is followed too, so fixing it reloads
  local loader, message = loadfile(filename)
  if not loader then error("error loading module '" .. name .. "' from file '" .. filename .. "':\\n\\t" .. message, 0) end
  return loader, filename
end`;

/** The modules family's registration table. */
export const modules = (engine: Engine, context: RunContext): Family => {
  configureRequire(engine, context);
  engine.compileLua("require", REQUIRE_SEARCHER_LUA, {
    record: (L) => {
      const path = engine.vm.toText(L, 1);
      try {
        context.loaded.add(Deno.realPathSync(path));
      } catch {
        context.loaded.add(path);
      }
      return 0;
    },
  });
  return {
    import: {
      lua: IMPORT_LUA,
      helpers: {
        locate: (L) => locate(engine, context, L),
        caller: (L) => caller(engine.vm, L),
        scheduler: (L) => {
          for (const name of ["chan", "receive", "close_channel", "running_goroutine"]) {
            engine.pushSchedulerField(L, name);
          }
          return 4;
        },
        load: engine.blocking("import", (L) => load(engine, context, L)),
        can_wait: (L) => {
          engine.vm.api.lua_pushboolean(L, engine.canPark(L) ? 1 : 0);
          return 1;
        },
      },
    },
  };
};

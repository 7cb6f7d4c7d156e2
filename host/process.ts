/**
 * The processes family: Lua's `os.execute` and `io.popen` on
 * `Deno.Command` (each command runs as `sh -c command`, so the flag that
 * allows it is `--allow-run=sh`), and `os.hostname`.
 *
 * ```lua
 * print(os.execute("exit 3"))              -- nil  exit  3
 * local f = io.popen("ls /")               -- or io.popen(cmd, "w") to feed its input
 * for name in f:lines() do print(name) end
 * print(f:close())                          -- true  exit  0
 * ```
 *
 * `os.execute` parks only its goroutine; the command's output goes to the
 * script's own stdout and stderr, in order with `print`. It returns
 * `true, "exit", 0`, or `nil, "exit", code`, or `nil, "signal", number`;
 * without a command, whether a shell may be run. A popen file has
 * `read` (formats "n", "l", "L", "a", a byte count; "*l" too), `lines`,
 * `write` (returns the file), `flush`, `close` (returns as `os.execute`
 * does), `seek` and `setvbuf`; reads stream, each that must wait parks
 * only its goroutine. `io.type` and `io.close` know popen files; other
 * `io` functions (`io.input`, `io.lines`, ...) take only Lua's own files.
 * A file left open is closed (its input ended) when it is collected.
 *
 * At a normal end of the CLI's script or an actor's (it ended or failed,
 * `os.exit(code, true)`), popen files left open are closed as lua5.4's pclose does when it
 * closes its state: their input ends and their commands are waited for
 * (see {@linkcode closePipes}). At `os.exit(code)` without close, as C's
 * exit() does, their input ends and their commands run on (see
 * {@linkcode endPipes}).
 *
 * Each command runs in its own process group, killed when the engine
 * closes while the shell still runs (a reload, a time limit): the whole
 * group when the script may run any program, only the shell under
 * `--allow-run=sh` (Deno refuses to signal a group then). Not being
 * permitted to run `sh` is an error naming the flag. Being in a group of
 * its own, a command does not get the terminal's Ctrl-C, and outlives a
 * SolVM killed before its engine closes, unless the CLI kills it (a time
 * limit stopping the script's thread: see {@linkcode watchCommands}).
 *
 * @module
 */
import type { CancellableWait, Engine, Pusher } from "../runtime/engine.ts";
import type { Family, LuaDefinedFunction } from "../runtime/family.ts";
import { checkBytes, isNone } from "../runtime/args.ts";
import type { LuaState } from "../runtime/lua.ts";
import type { HostFunction } from "../runtime/state.ts";
import { delay } from "./core.ts";
import { accessReason, checkAccess, isPermissionError } from "./_permissions.ts";
import { killGroup } from "./_process_group.ts";

/** How long output may keep arriving after the shell exits (a background job may hold the pipe for ever). */
const DRAIN_GRACE_MS = 100;
/** Bytes `f:write` queues for the command before it waits for the command to take them. */
const WRITE_HIGH_WATER = 64 * 1024;
/** Linux's EPIPE, the third result of a write to a command that stopped reading. */
const EPIPE = 32;

/** Whether a command is UTF-8, which Deno's process API (taking strings) passes on unchanged. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** Rebuilds the command in $@ from its octal escapes ("x" keeps trailing newlines) and becomes `sh -c` of it. */
const REBUILD_COMMAND = `set -- "$(printf %b "$@"; echo x)"; exec sh -c "\${1%x}"`;
/** Characters of escaped command per argument: Linux takes at most 128 KiB in one. */
const ESCAPED_PIECE = 64 * 1024;

/** The arguments of `sh` that run `command`'s exact bytes as `sh -c command` does (Deno takes strings). */
function shellArgs(command: Uint8Array): string[] {
  try {
    return ["-c", strictUtf8.decode(command)];
  } catch {
    // printf %b reads \0ooo; backslashes are escaped too, so that only the escapes are read.
    const escaped = Array.from(
      command,
      (b) => b >= 0x80 || b === 0x5c ? `\\0${b.toString(8)}` : String.fromCharCode(b),
    );
    const pieces = [""];
    for (const part of escaped) {
      if (pieces[pieces.length - 1].length >= ESCAPED_PIECE) pieces.push("");
      pieces[pieces.length - 1] += part;
    }
    return ["-c", REBUILD_COMMAND, "sh", ...pieces];
  }
}

/** Told of each command's process group as it starts and once it has exited (see {@linkcode watchCommands}). */
let commandWatcher: ((group: number, running: boolean) => void) | undefined;

/**
 * Sets who is told of the process groups of running commands: the CLI,
 * which kills what is left when it must stop the script's thread at once
 * (a time limit) and the engine cannot close.
 *
 * ```ts
 * import { watchCommands } from "./process.ts";
 * const running = new Set<number>();
 * watchCommands((group, started) => started ? running.add(group) : running.delete(group));
 * watchCommands(undefined); // nobody is told any more
 * ```
 */
export function watchCommands(watcher: ((group: number, running: boolean) => void) | undefined): void {
  commandWatcher = watcher;
}

// The popen file object, written in Lua over the helpers; buffering lives here.
const POPEN_LUA = `
local helpers = ...
local spawn, read_chunk, write_bytes = helpers.spawn, helpers.read, helpers.write
local flush_bytes, close_child, release = helpers.flush, helpers.close, helpers.release
local c_type, c_close, c_output = io.type, io.close, io.output
local error, select, type, tonumber, tostring = error, select, type, tonumber, tostring
local getmetatable, setmetatable, math_type, tointeger = getmetatable, setmetatable, math.type, math.tointeger
local sub, find, format = string.sub, string.find, string.format
local concat, pack, unpack = table.concat, table.pack, table.unpack

local FILE = { __name = "popen file" }  -- Lua's own io functions then say "FILE* expected, got popen file"
local methods = {}
FILE.__index = methods
-- file -> { id, mode, buf, pos, eof, err, closed }: unread bytes are buf from pos on.
local state = setmetatable({}, { __mode = "k" })

-- The state of file f, raising Lua's errors at the caller of the method (level 3).
local function opened(f, fname)
  local s = getmetatable(f) == FILE and state[f]
  if not s then error(format("bad argument #1 to '%s' (FILE* expected, got %s)", fname, type(f)), 3) end
  if s.closed then error("attempt to use a closed file", 3) end
  return s
end

-- The next chunk from the command, or nil at its end.
local function next_chunk(s)
  if s.eof then return nil end
  local chunk, err = read_chunk(s.id)
  if chunk == nil then s.eof, s.err = true, err end
  return chunk
end

-- Refills an emptied buffer; false at the end.
local function refill(s)
  local chunk = next_chunk(s)
  if chunk == nil then return false end
  s.buf, s.pos = chunk, 1
  return true
end

local function read_line(s, keep)
  local nl = find(s.buf, "\\n", s.pos, true)
  if nl then
    local line = sub(s.buf, s.pos, keep and nl or nl - 1)
    s.pos = nl + 1
    return line
  end
  local parts = { sub(s.buf, s.pos) }
  s.buf, s.pos = "", 1
  while true do
    local chunk = next_chunk(s)
    if chunk == nil then
      local line = concat(parts)
      if line == "" then return nil end
      return line
    end
    nl = find(chunk, "\\n", 1, true)
    if nl then
      parts[#parts + 1] = sub(chunk, 1, keep and nl or nl - 1)
      s.buf, s.pos = chunk, nl + 1
      return concat(parts)
    end
    parts[#parts + 1] = chunk
  end
end

local function read_all(s)
  local parts = { sub(s.buf, s.pos) }
  s.buf, s.pos = "", 1
  for chunk in next_chunk, s do parts[#parts + 1] = chunk end
  return concat(parts)
end

local function read_count(s, n)
  if n == 0 then
    if s.pos <= #s.buf or refill(s) then return "" end
    return nil
  end
  if #s.buf - s.pos + 1 >= n then
    local bytes = sub(s.buf, s.pos, s.pos + n - 1)
    s.pos = s.pos + n
    return bytes
  end
  local parts = { sub(s.buf, s.pos) }
  local got = #parts[1]
  s.buf, s.pos = "", 1
  while got < n do
    local chunk = next_chunk(s)
    if chunk == nil then break end
    if got + #chunk > n then
      parts[#parts + 1] = sub(chunk, 1, n - got)
      s.buf, s.pos = chunk, n - got + 1
      got = n
    else
      parts[#parts + 1] = chunk
      got = got + #chunk
    end
  end
  if got == 0 then return nil end
  return concat(parts)
end

-- A numeral as Lua's C library reads one (liolib.c l_getn): at most 200 characters.
local function read_number(s)
  local function peek()
    if s.pos > #s.buf and not refill(s) then return nil end
    return sub(s.buf, s.pos, s.pos)
  end
  local c = peek()
  while c and find(c, "^%s") do
    s.pos = s.pos + 1
    c = peek()
  end
  local text, valid = {}, true
  local function accept(set)
    if c and find(set, c, 1, true) then
      if #text >= 200 then valid = false else text[#text + 1] = c end
      s.pos = s.pos + 1
      c = peek()
      return true
    end
    return false
  end
  local function digits(hex)
    local n = 0
    while c and find(c, hex and "^%x" or "^%d") do
      accept(c)
      n = n + 1
    end
    return n
  end
  accept("-+")
  local hex, count = false, 0
  if accept("0") then
    if accept("xX") then hex = true else count = 1 end
  end
  count = count + digits(hex)
  if accept(".") then count = count + digits(hex) end
  if count > 0 and accept(hex and "pP" or "eE") then
    accept("-+")
    digits(false)
  end
  return valid and tonumber(concat(text)) or nil
end

-- Reads the formats in ...; errors are raised at level 3 (the caller of read or of the lines iterator).
local function read_formats(s, ...)
  if s.mode ~= "r" then return nil, "Bad file descriptor", 9 end
  local n = select("#", ...)
  if n == 0 then return read_line(s, false) end
  local results = {}
  for i = 1, n do
    local fmt, value = (select(i, ...))
    if type(fmt) == "number" then
      local count = tointeger(fmt)
      if not count then error(format("bad argument #%d to 'read' (number has no integer representation)", i), 3) end
      value = read_count(s, count >= 0 and count or math.huge)
    elseif type(fmt) ~= "string" then
      error(format("bad argument #%d to 'read' (string expected, got %s)", i, type(fmt)), 3)
    else
      local kind = sub(fmt, 1, 1) == "*" and sub(fmt, 2, 2) or sub(fmt, 1, 1)
      if kind == "l" or kind == "L" then value = read_line(s, kind == "L")
      elseif kind == "a" then value = read_all(s)
      elseif kind == "n" then value = read_number(s)
      else error(format("bad argument #%d to 'read' (invalid format)", i), 3) end
    end
    results[i] = value
    if value == nil then
      if s.err then return nil, s.err end
      return unpack(results, 1, i)
    end
  end
  return unpack(results, 1, n)
end

-- Not a tail call: read_formats raises its errors at the level of read's caller.
local function pass(...) return ... end

function methods.read(f, ...)
  return pass(read_formats(opened(f, "read"), ...))
end

function methods.lines(f, ...)
  opened(f, "lines")
  local formats = pack(...)
  return function()
    local s = state[f] -- the iterator holds f: a file collected while read would be closed
    if s.closed then error("file is already closed", 2) end
    local results = pack(read_formats(s, unpack(formats, 1, formats.n)))
    if results[1] == nil and results.n > 1 then error(results[2], 2) end
    return unpack(results, 1, results.n)
  end
end

function methods.write(f, ...)
  local s = opened(f, "write")
  if s.mode ~= "w" then return nil, "Bad file descriptor", 9 end
  local parts = {}
  for i = 1, select("#", ...) do
    local v = (select(i, ...))
    if math_type(v) == "integer" then v = format("%d", v)
    elseif type(v) == "number" then v = format("%.14g", v)
    elseif type(v) ~= "string" then
      error(format("bad argument #%d to 'write' (string expected, got %s)", i, type(v)), 2)
    end
    parts[i] = v
  end
  local ok, err, code = write_bytes(s.id, concat(parts))
  if not ok then return nil, err, code end
  return f
end

function methods.flush(f)
  local s = opened(f, "flush")
  if s.mode ~= "w" then return true end
  return flush_bytes(s.id)
end

function methods.close(f)
  local s = opened(f, "close")
  s.closed = true
  return close_child(s.id)
end

function methods.seek(f)
  opened(f, "seek")
  return nil, "Illegal seek", 29
end

function methods.setvbuf(f)
  opened(f, "setvbuf")
  return true
end

FILE.__tostring = function(f)
  if state[f].closed then return "file (closed)" end
  return format("file (%p)", f)
end
FILE.__close = function(f)
  if not state[f].closed then methods.close(f) end
end
FILE.__gc = function(f)
  local s = state[f]
  if s and not s.closed then release(s.id) end
end

local function popen(...)
  local command, mode = ...
  if type(command) ~= "string" and type(command) ~= "number" then
    local got = select("#", ...) == 0 and "no value" or type(command)
    error(format("bad argument #1 to 'popen' (string expected, got %s)", got), 2)
  end
  if mode == nil then mode = "r"
  elseif type(mode) == "number" then mode = tostring(mode)
  elseif type(mode) ~= "string" then
    error(format("bad argument #2 to 'popen' (string expected, got %s)", type(mode)), 2)
  end
  if mode ~= "r" and mode ~= "w" then error("bad argument #2 to 'popen' (invalid mode)", 2) end
  local id, err = spawn(tostring(command), mode)
  if not id then error(err, 2) end
  local f = setmetatable({}, FILE)
  state[f] = { id = id, mode = mode, buf = "", pos = 1, eof = false }
  return f
end

-- io.type and io.close, knowing popen files; Lua's own files go to the originals.
local function io_type(...)
  if select("#", ...) == 0 then error("bad argument #1 to 'type' (value expected)", 2) end
  local s = getmetatable((...)) == FILE and state[(...)]
  if s then return s.closed and "closed file" or "file" end
  return c_type(...)
end

local function io_close(...)
  local f = ...
  if getmetatable(f) == FILE and state[f] then
    local s = opened(f, "close")
    s.closed = true
    return close_child(s.id)
  end
  -- Checked here, not in C's close: its errors would name this wrapper's line. No argument means the default output.
  local t = c_type(select("#", ...) == 0 and c_output() or f)
  if t == nil then error(format("bad argument #1 to 'close' (FILE* expected, got %s)", type(f)), 2) end
  if t == "closed file" then error("attempt to use a closed file", 2) end
  return c_close(...)
end

return { popen = popen, type = io_type, close = io_close }`;

/** Each engine's commands, for {@linkcode closePipes}. */
const childTables = new WeakMap<Engine, ChildTable>();

/**
 * Closes the popen files `engine`'s script left open as pclose does when
 * lua5.4 closes its state at a normal end: their input ends (or their
 * output is no longer read) and their commands are waited for. What still
 * runs after this is killed when the engine closes.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { Engine } from "../runtime/engine.ts";
 * import { installFamily } from "../runtime/family.ts";
 * import { closePipes, processes } from "./process.ts";
 * const engine = await Engine.create();
 * installFamily(engine, processes);
 * const path = await Deno.makeTempFile();
 * await engine.execute(`io.popen("sleep 0.1; echo done > ${path}")`, "=example");
 * await closePipes(engine); // waited for the command
 * ok(Deno.readTextFileSync(path) === "done\n");
 * engine.close();
 * await Deno.remove(path);
 * ```
 */
export async function closePipes(engine: Engine): Promise<void> {
  await childTables.get(engine)?.closePipes();
}

/**
 * Ends the input of the popen files `engine`'s script left open, and stops
 * reading their output, as C's exit() does at `os.exit(code)`: what was
 * written is delivered; the commands are neither waited for nor killed.
 *
 * ```ts
 * import { Engine } from "../runtime/engine.ts";
 * import { installFamily } from "../runtime/family.ts";
 * import { endPipes, processes } from "./process.ts";
 * const engine = await Engine.create();
 * installFamily(engine, processes);
 * await engine.execute(`io.popen("cat > /dev/null", "w"):write("data")`, "=example");
 * await endPipes(engine); // cat got the data and its end of input, and finishes on its own
 * engine.close();
 * ```
 */
export async function endPipes(engine: Engine): Promise<void> {
  await childTables.get(engine)?.endPipes();
}

/** A running command and the pipes SolVM holds to it. */
interface Child {
  process: Deno.ChildProcess;
  exited: boolean;
  /** Lua no longer holds it (closed, collected, or os.execute returned). */
  released: boolean;
  /** Its input was ended at an os.exit, as C's exit() leaves it: it is not killed when the engine closes. */
  runsOn?: boolean;
  /** The command's output read by Lua (popen "r"). */
  reader?: ReadableStreamDefaultReader<Uint8Array>;
  /** The command's input written by Lua (popen "w"). */
  writer?: WritableStreamDefaultWriter<Uint8Array>;
  /** Bytes handed to the writer and not yet taken by the pipe. */
  queued: number;
  /** Settles when the last write does. */
  writing: Promise<void>;
  writeFailure?: unknown;
  /** Readers copying the command's output to the script's stdout and stderr. */
  copies: ReadableStreamDefaultReader<Uint8Array>[];
  /** Settles when every copy reached the end of its pipe. */
  copied: Promise<void>;
  copiesDone: boolean;
  /** When output last arrived (performance.now()). */
  lastOutput: number;
}

/** Pushes Lua's result for an ended command: true/nil, "exit"/"signal", code. */
function statusPusher(engine: Engine, status: Deno.CommandStatus): Pusher {
  return (L) => {
    const { vm } = engine;
    if (status.success) vm.api.lua_pushboolean(L, 1);
    else vm.api.lua_pushnil(L);
    // Deno reports a signalled command's code as 128 + the signal number, as shells do.
    vm.pushString(L, status.signal === null ? "exit" : "signal");
    vm.api.lua_pushinteger(L, BigInt(status.signal === null ? status.code : status.code - 128));
    return 3;
  };
}

/** Pushes nil and a message (and an errno when known). */
function failurePusher(engine: Engine, e: unknown): Pusher {
  return (L) => {
    engine.vm.api.lua_pushnil(L);
    if (e instanceof Deno.errors.BrokenPipe) {
      engine.vm.pushString(L, "Broken pipe");
      engine.vm.api.lua_pushinteger(L, BigInt(EPIPE));
      return 3;
    }
    engine.vm.pushString(L, e instanceof Error ? e.message : String(e));
    return 2;
  };
}

/** The commands one engine started, by id. */
class ChildTable {
  readonly #live = new Map<number, Child>();
  #next = 0;
  #support = 0;

  constructor(readonly engine: Engine) {
    childTables.set(engine, this);
    engine.onClose(() => {
      for (const child of this.#live.values()) this.#end(child);
      this.#live.clear();
    });
  }

  /** Starts `sh -c command`; "r" keeps its output for Lua, "w" its input, "execute" neither. */
  #spawn(command: Uint8Array, use: "r" | "w" | "execute"): [number, Child] {
    let process: Deno.ChildProcess;
    try {
      checkAccess("run", "sh");
      process = new Deno.Command("sh", {
        args: shellArgs(command),
        stdin: use === "w" ? "piped" : "inherit",
        stdout: "piped",
        stderr: "piped",
        // Its own process group, so that closing the engine can end all it started.
        detached: true,
      }).spawn();
    } catch (e) {
      if (isPermissionError(e)) throw new Error(accessReason(e, "run", "sh"));
      throw new Error(`cannot run sh: ${e instanceof Error ? e.message : e}`);
    }
    const id = ++this.#next;
    const child: Child = {
      process,
      exited: false,
      released: false,
      queued: 0,
      writing: Promise.resolve(),
      copies: [],
      copied: Promise.resolve(),
      copiesDone: false,
      lastOutput: performance.now(),
    };
    const { engine } = this;
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    const copies = [
      this.#copy(child, process.stderr, (bytes) => {
        const text = decoder.decode(bytes, { stream: true });
        if (text) engine.reportError(text, false);
      }),
    ];
    if (use === "r") child.reader = process.stdout.getReader();
    else {
      // Flushed at once, so a long command shows its output as it comes.
      copies.push(this.#copy(child, process.stdout, (bytes) => (engine.stdout.write(bytes), engine.stdout.flush())));
    }
    if (use === "w") child.writer = process.stdin.getWriter();
    child.copied = Promise.all(copies).then(() => {
      child.copiesDone = true;
      this.#forgetIfDone(id, child);
    });
    process.status.then(() => {
      child.exited = true;
      commandWatcher?.(process.pid, false);
      this.#forgetIfDone(id, child);
    });
    commandWatcher?.(process.pid, true);
    this.#live.set(id, child);
    return [id, child];
  }

  async #copy(child: Child, stream: ReadableStream<Uint8Array>, sink: (bytes: Uint8Array) => void): Promise<void> {
    const reader = stream.getReader();
    child.copies.push(reader);
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return;
        child.lastOutput = performance.now();
        sink(value);
      }
    } catch {
      // Cancelled when the engine closed.
    }
  }

  #forgetIfDone(id: number, child: Child): void {
    if (child.released && child.exited && child.copiesDone) this.#live.delete(id);
  }

  /** Kills a command still running, with the group it started, and lets go of its pipes. */
  #end(child: Child): void {
    if (!child.exited && !child.runsOn) killGroup(child.process.pid);
    for (const reader of [...child.copies, ...child.reader ? [child.reader] : []]) reader.cancel().catch(() => {});
    child.writer?.abort().catch(() => {});
  }

  /** The command's status once it exited and its output reached the script (or stopped coming). */
  async #wait(id: number, child: Child): Promise<Deno.CommandStatus> {
    const status = await child.process.status;
    const exitedAt = performance.now();
    while (!child.copiesDone) {
      const quiet = performance.now() - Math.max(child.lastOutput, exitedAt);
      if (quiet >= DRAIN_GRACE_MS) break;
      await Promise.race([child.copied, delay(DRAIN_GRACE_MS - quiet)]);
    }
    child.released = true;
    this.#forgetIfDone(id, child);
    return status;
  }

  #child(L: LuaState): [number, Child] {
    const id = Number(this.engine.vm.api.lua_tointegerx(L, 1, 0));
    const child = this.#live.get(id);
    if (!child) throw new Error("attempt to use a closed file");
    return [id, child];
  }

  /** `os.execute([command])`. */
  execute(L: LuaState): number | CancellableWait {
    const { vm } = this.engine;
    if (isNone(vm, L, 1)) {
      vm.api.lua_pushboolean(L, shellAllowed() ? 1 : 0);
      return 1;
    }
    const [id, child] = this.#spawn(checkBytes(vm, L, 1, "os.execute"), "execute");
    return {
      wait: this.#wait(id, child).then((status) => statusPusher(this.engine, status)),
      cancel: () => this.#end(child), // its call was stopped: the command goes too
    };
  }

  /** popen helper `spawn(command, mode)`: an id, or nil and the reason. */
  #spawnHelper(L: LuaState): number {
    const { vm } = this.engine;
    try {
      vm.api.lua_pushinteger(L, BigInt(this.#spawn(vm.toBytes(L, 1), vm.toText(L, 2) as "r" | "w")[0]));
      return 1;
    } catch (e) {
      vm.api.lua_pushnil(L);
      vm.pushString(L, (e as Error).message);
      return 2;
    }
  }

  /** popen helper `read(id)`: the next chunk of output, nil at its end, or nil and a message. */
  #read(L: LuaState): Promise<Pusher> {
    const [, child] = this.#child(L);
    const { vm } = this.engine;
    return child.reader!.read().then(
      ({ done, value }) => (L) => {
        if (done) vm.api.lua_pushnil(L);
        else vm.pushBytes(L, value);
        return 1;
      },
      (e) => failurePusher(this.engine, e),
    );
  }

  /** popen helper `write(id, bytes)`: true at once while little is queued, else once the command took it. */
  #write(L: LuaState): number | Promise<Pusher> {
    const [, child] = this.#child(L);
    const { vm } = this.engine;
    if (child.writeFailure) return failurePusher(this.engine, child.writeFailure)(L);
    const bytes = vm.toBytes(L, 2);
    child.queued += bytes.length;
    child.writing = child.writer!.write(bytes).then(
      () => void (child.queued -= bytes.length),
      (e) => void (child.writeFailure ??= e),
    );
    if (child.queued <= WRITE_HIGH_WATER) {
      vm.api.lua_pushboolean(L, 1);
      return 1;
    }
    return this.#flush(L);
  }

  /** popen helper `flush(id)`: true once every write reached the pipe, else nil and a message. */
  #flush(L: LuaState): Promise<Pusher> {
    const [, child] = this.#child(L);
    return child.writing.then(() =>
      child.writeFailure ? failurePusher(this.engine, child.writeFailure) : (L: LuaState) => {
        this.engine.vm.api.lua_pushboolean(L, 1);
        return 1;
      }
    );
  }

  /** popen helper `close(id)`: ends the input (or stops reading), waits for the command, returns its status. */
  async #close(id: number, child: Child): Promise<Pusher> {
    await this.#endInput(child);
    return statusPusher(this.engine, await this.#wait(id, child));
  }

  /**
   * Ends a command's input once what was written has gone, and stops
   * reading its output (a command still writing gets SIGPIPE, as under pclose).
   */
  async #endInput(child: Child): Promise<void> {
    await child.writing.catch(() => {});
    await child.writer?.close().catch(() => {});
    await child.reader?.cancel().catch(() => {});
  }

  /** Closes every popen file still open, and waits for the commands of those collected unclosed (see closePipes). */
  async closePipes(): Promise<void> {
    const pipes = [...this.#live].filter(([, child]) => child.reader || child.writer);
    await Promise.all(pipes.map(([id, child]) => this.#close(id, child)));
  }

  /** Ends the input of every popen file still open and stops reading it, not waiting for it (see endPipes). */
  async endPipes(): Promise<void> {
    const pipes = [...this.#live.values()].filter((child) => child.reader || child.writer);
    await Promise.all(pipes.map(async (child) => {
      child.runsOn = true;
      await this.#endInput(child);
      commandWatcher?.(child.process.pid, false); // no longer the thread's to kill when it ends
    }));
  }

  /** popen helper `release(id)` for a file collected unclosed: ends its input, stops reading; the command runs on. */
  #release(L: LuaState): number {
    const id = Number(this.engine.vm.api.lua_tointegerx(L, 1, 0));
    const child = this.#live.get(id);
    if (!child) return 0;
    child.released = true;
    this.#endInput(child);
    this.#forgetIfDone(id, child);
    return 0;
  }

  /** `io.popen`, `io.type` or `io.close`, from the popen support compiled once per engine. */
  library(name: "popen" | "type" | "close"): LuaDefinedFunction {
    const { engine } = this;
    const exported: HostFunction = (L) => {
      if (!this.#support) {
        this.#support = engine.compileLua("io.popen", POPEN_LUA, {
          spawn: (L) => this.#spawnHelper(L),
          read: engine.blocking("file:read", (L) => this.#read(L)),
          write: engine.blocking("file:write", (L) => this.#write(L)),
          flush: engine.blocking("file:flush", (L) => this.#flush(L)),
          close: engine.blocking("file:close", (L) => this.#close(...this.#child(L))),
          release: (L) => this.#release(L),
        });
      }
      engine.vm.pushRef(L, this.#support);
      engine.vm.api.lua_getfield(L, -1, engine.vm.cstr(name));
      return 1;
    };
    return { lua: `return (...).exported()`, helpers: { exported } };
  }
}

/** Whether the script may run `sh` (what `os.execute()` without a command tells). */
function shellAllowed(): boolean {
  try {
    checkAccess("run", "sh");
    return Deno.permissions.querySync({ name: "run", command: "sh" }).state === "granted";
  } catch {
    return false;
  }
}

/** `os.hostname()`: the machine's host name. */
function hostname(engine: Engine, L: LuaState): number {
  let name: string;
  try {
    checkAccess("sys", "hostname");
    name = Deno.hostname();
  } catch (e) {
    if (isPermissionError(e)) throw new Error(accessReason(e, "sys", "hostname"));
    throw e;
  }
  engine.vm.pushString(L, name);
  return 1;
}

/**
 * The processes family's registration table.
 *
 * ```ts
 * import { ok } from "node:assert";
 * import { Engine } from "../runtime/engine.ts";
 * import { installFamily } from "../runtime/family.ts";
 * import { processes } from "./process.ts";
 * const engine = await Engine.create();
 * installFamily(engine, processes);
 * const outcome = await engine.execute('assert(io.popen("echo hi"):read() == "hi")', "=example");
 * ok(outcome.status === "ok");
 * engine.close();
 * ```
 */
export const processes = (engine: Engine): Family => {
  const children = new ChildTable(engine);
  return {
    "os.execute": engine.blocking("os.execute", (L) => children.execute(L)),
    "os.hostname": (L) => hostname(engine, L),
    "io.popen": children.library("popen"),
    "io.type": children.library("type"),
    "io.close": children.library("close"),
  };
};

/**
 * The standard streams under Lua's own `io`. Reading standard input
 * (`io.read`, `io.lines()`, `io.stdin`'s `read` and `lines`) parks only the
 * goroutine that reads when it has to wait for input, so timers, servers and
 * other goroutines go on meanwhile (the C library's read would hold the whole
 * engine until a line arrives); formats and results are Lua's: `"n"`, `"l"`,
 * `"L"`, `"a"` and byte counts. Flushing standard output (`io.flush()`,
 * `io.stdout:flush()`) flushes the engine's buffer, which `print` and
 * `io.write` share.
 *
 * @module
 */
import type { Engine } from "../runtime/engine.ts";
import type { Family } from "../runtime/family.ts";
import type { LuaState } from "../runtime/lua.ts";

const NEWLINE = 10;
/** C's isspace. */
const SPACES = new Set([32, 9, 10, 11, 12, 13]);
/** Lua's L_MAXLENNUM: the longest numeral "n" reads. */
const MAX_NUMERAL = 200;
/** What a read answers when the bytes buffered so far cannot decide it. */
const MORE = Symbol("more input needed");

type Answer = Uint8Array | null;

/** The bytes read from standard input and not yet taken, shared by every engine of the thread (there is one stdin). */
class InputBuffer {
  #bytes = new Uint8Array(0);
  #ended = false;
  #error: string | undefined;
  #filling: Promise<void> | undefined;

  /**
   * Answers `attempt` from the buffer, reading more input (without
   * blocking the thread) while it says MORE; synchronously when it can.
   */
  take(attempt: () => Answer | typeof MORE): Answer | Promise<Answer> {
    const now = attempt();
    if (now !== MORE) return now;
    return (async () => {
      while (true) {
        this.#filling ??= this.#fill().finally(() => this.#filling = undefined);
        await this.#filling;
        const answer = attempt();
        if (answer !== MORE) return answer;
      }
    })();
  }

  /** {@linkcode take} for a caller that cannot wait (a read inside a C call): reads while blocking the thread. */
  takeNow(attempt: () => Answer | typeof MORE): Answer {
    while (true) {
      const answer = attempt();
      if (answer !== MORE) return answer;
      const chunk = new Uint8Array(65536);
      try {
        const n = Deno.stdin.readSync(chunk);
        this.#append(chunk, n);
      } catch (e) {
        this.#fail(e);
      }
    }
  }

  /** A read error, once: the read that meets it answers nil and it (as C's ferror); later reads see the end. */
  takeError(): string | undefined {
    const error = this.#error;
    this.#error = undefined;
    return error;
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(65536);
    try {
      this.#append(chunk, await Deno.stdin.read(chunk));
    } catch (e) {
      this.#fail(e);
    }
  }

  #append(chunk: Uint8Array, n: number | null): void {
    if (n === null) {
      this.#ended = true;
      return;
    }
    const joined = new Uint8Array(this.#bytes.length + n);
    joined.set(this.#bytes);
    joined.set(chunk.subarray(0, n), this.#bytes.length);
    this.#bytes = joined;
  }

  #fail(e: unknown): void {
    this.#ended = true;
    this.#error = e instanceof Error ? e.message : String(e);
  }

  #cut(n: number): Uint8Array {
    const taken = this.#bytes.slice(0, n);
    this.#bytes = this.#bytes.subarray(n);
    return taken;
  }

  /** `"l"` / `"L"`: the next line without / with its newline; nil at the end. */
  line(keepNewline: boolean): Answer | typeof MORE {
    const at = this.#bytes.indexOf(NEWLINE);
    if (at >= 0) {
      const line = this.#cut(at + 1);
      return keepNewline ? line : line.subarray(0, at);
    }
    if (!this.#ended) return MORE;
    return this.#bytes.length > 0 ? this.#cut(this.#bytes.length) : null;
  }

  /** `"a"`: everything up to the end ("" when nothing is left). */
  all(): Answer | typeof MORE {
    return this.#ended ? this.#cut(this.#bytes.length) : MORE;
  }

  /** A count: up to `n` bytes, fewer only at the end; 0 tests for the end ("" or nil). */
  chars(n: number): Answer | typeof MORE {
    if (this.#bytes.length >= Math.max(n, 1)) return this.#cut(n);
    if (!this.#ended) return MORE;
    return this.#bytes.length > 0 && n > 0 ? this.#cut(this.#bytes.length) : null;
  }

  /**
   * `"n"`: skips spaces, then takes the longest prefix that can be a numeral,
   * as Lua's l_getn does (at most 200 characters); Lua converts it, or fails.
   */
  numeral(): Answer | typeof MORE {
    const bytes = this.#bytes;
    const ended = this.#ended;
    let i = 0;
    // The byte at i: -1 at the end of input; throws MORE when it has not arrived yet.
    const peek = (): number => {
      if (i < bytes.length) return bytes[i];
      if (ended) return -1;
      throw MORE;
    };
    try {
      while (SPACES.has(peek())) i++;
      const start = i;
      let tooLong = false;
      const accept = (ok: (c: number) => boolean): boolean => {
        if (!ok(peek())) return false;
        if (i - start >= MAX_NUMERAL) {
          tooLong = true;
          return false;
        }
        i++;
        return true;
      };
      const either = (a: string, b = a) => accept((c) => c === a.charCodeAt(0) || c === b.charCodeAt(0));
      const digits = (hex: boolean) => {
        let count = 0;
        while (accept(hex ? isHexDigit : isDigit)) count++;
        return count;
      };
      let count = 0;
      let hex = false;
      either("-", "+");
      if (either("0")) {
        if (either("x", "X")) hex = true;
        else count = 1;
      }
      count += digits(hex);
      if (either(".")) count += digits(hex);
      if (count > 0 && (hex ? either("p", "P") : either("e", "E"))) {
        either("-", "+");
        digits(false);
      }
      const numeral = this.#cut(i).subarray(start);
      return tooLong ? numeral.subarray(0, 0) : numeral;
    } catch (e) {
      if (e === MORE) return MORE;
      throw e;
    }
  }
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isHexDigit = (c: number) => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

const input = new InputBuffer();

/**
 * The Lua side: checks formats as Lua's g_read does, and sends standard
 * input's reads to `take`; other files keep the C library's methods.
 */
const STDIO_LUA = `
local take, flush_stdout = (...).take, (...).flush_stdout
local io, type, select, tonumber, error, tointeger, unpack = io, type, select, tonumber, error, math.tointeger, table.unpack
local stdin, stdout, input, output, io_type = io.stdin, io.stdout, io.input, io.output, io.type
local methods = getmetatable(stdin).__index
-- The C library's methods (named as they are, for the messages of their own errors).
local read, lines = methods.read, methods.lines
local KINDS = { n = "n", l = "l", L = "L", a = "a" }

-- The format at argument n as take() knows it: a kind and a count; or nil and Lua's message for a bad one.
local function kind(fname, n, f)
  local t, problem = type(f), nil
  if t == "number" then
    local count = tointeger(f)
    if count then return "c", count end
    problem = "number has no integer representation"
  elseif t ~= "string" then
    problem = "string expected, got " .. t
  else
    local k = KINDS[f:sub(1, 1) == "*" and f:sub(2, 2) or f:sub(1, 1)]
    if k then return k, 0 end
    problem = "invalid format"
  end
  return nil, "bad argument #" .. n .. " to '" .. fname .. "' (" .. problem .. ")"
end

-- One format: the value read, or nil (and the message when reading failed).
local function read_one(k, n)
  local v, err = take(k, n)
  if k == "n" and v ~= nil then v = tonumber(v) end
  return v, err
end

-- Lua's g_read on standard input: a value per format, up to the first that fails (nil in its place);
-- nil and a message when reading failed. A bad format raises at the given level.
local function read_stdin(level, fname, ...)
  local n = select("#", ...)
  if n == 0 then return read_one("l", 0) end
  local out = {}
  for i = 1, n do
    local k, count = kind(fname, i, (select(i, ...)))
    if not k then error(count, level) end
    local v, err = read_one(k, count)
    if err then return nil, err end
    out[i] = v
    if v == nil then return unpack(out, 1, i) end
  end
  return unpack(out, 1, n)
end

-- The lines iterator raises a read error, as the C library's does.
local function raise_failure(v, ...)
  if v == nil and (...) ~= nil then error((...), 2) end
  return v, ...
end

local function lines_stdin(...)
  local n, formats = select("#", ...), { ... }
  return function() return raise_failure(read_stdin(3, "for iterator", unpack(formats, 1, n))) end
end

-- Standard input's read and lines, and standard output's flush, are these; every other file keeps the C library's
-- methods (and their messages).
local meta = getmetatable(stdin)
local methods = meta.__index
local read, flush = methods.read, methods.flush
local for_stdin = {
  read = function(f, ...)
    if f ~= stdin then return read(f, ...) end
    return read_stdin(2, "read", ...)
  end,
  lines = function(f, ...)
    if f ~= stdin then return methods.lines(f, ...) end
    return lines_stdin(...)
  end,
}
local for_stdout = {
  flush = function(f)
    if f ~= stdout then return flush(f) end
    flush_stdout()
    return true
  end,
}
meta.__index = function(f, key)
  local own = f == stdin and for_stdin[key] or f == stdout and for_stdout[key]
  if own then return own end
  return methods[key]
end

local io_lines = io.lines
return {
  read = function(...)
    local f = input()
    if f == stdin then return read_stdin(2, "read", ...) end
    -- What the C library would raise, raised here at the caller's line (from inside it, the line would be this file's).
    if io_type(f) == "closed file" then error("default input file is closed", 2) end
    for i = 1, select("#", ...) do
      local k, problem = kind("read", i, (select(i, ...)))
      if not k then error(problem, 2) end
    end
    return read(f, ...)
  end,
  lines = function(name, ...)
    if name == nil and input() == stdin then return lines_stdin(...) end
    return io_lines(name, ...)
  end,
  flush = function()
    local f = output()
    if f == stdout then
      flush_stdout()
      return true
    end
    if io_type(f) == "closed file" then error("default output file is closed", 2) end
    return flush(f)
  end,
}`;

/** Pushes `answer` (a string, or nil and the read error if there was one). */
function pushAnswer(engine: Engine, L: LuaState, answer: Answer): number {
  const vm = engine.vm;
  if (answer !== null) {
    vm.pushBytes(L, answer);
    return 1;
  }
  const error = input.takeError();
  vm.api.lua_pushnil(L);
  if (error === undefined) return 1;
  vm.pushString(L, error);
  return 2;
}

/** The standard streams' registration table (it also gives `io.stdin` and `io.stdout` methods of their own). */
export const standardStreams = (engine: Engine): Family => {
  const vm = engine.vm;
  const take = engine.blocking("io.read", (L) => {
    const kind = vm.toText(L, 1);
    const count = Number(vm.api.lua_tointegerx(L, 2, 0));
    const attempt = kind === "l" || kind === "L"
      ? () => input.line(kind === "L")
      : kind === "a"
      ? () => input.all()
      : kind === "n"
      ? () => input.numeral()
      : () => input.chars(count < 0 ? Infinity : count); // C reads a negative count as a huge size_t
    // Inside a C call (a sort comparator, a gsub callback) a goroutine cannot park: read as C would.
    if (!vm.api.lua_isyieldable(L)) return pushAnswer(engine, L, input.takeNow(attempt));
    const answer = input.take(attempt);
    if (!(answer instanceof Promise)) return pushAnswer(engine, L, answer);
    return answer.then((answer) => (L: LuaState) => pushAnswer(engine, L, answer));
  });
  let wired = 0;
  const rewired = (L: LuaState) => {
    const flushStdout = () => (engine.stdout.flush(), 0);
    wired ||= engine.compileLua("standard streams", STDIO_LUA, { take, flush_stdout: flushStdout });
    vm.pushRef(L, wired);
    return 1;
  };
  return {
    "io.read": { lua: "return (...).rewired().read", helpers: { rewired } },
    "io.lines": { lua: "return (...).rewired().lines", helpers: { rewired } },
    "io.flush": { lua: "return (...).rewired().flush", helpers: { rewired } },
  };
};

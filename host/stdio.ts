/**
 * The standard streams under Lua's own `io`. Reading standard input
 * (`io.read`, `io.lines()`, `io.stdin`'s `read` and `lines`, `dofile()` and
 * `loadfile()` without a name, and a file `io.open`, `io.lines` or `io.input`
 * opens for reading on its path, `/dev/stdin`) parks only the goroutine that
 * reads when it has to wait for input, so timers, servers and other
 * goroutines go on meanwhile (the C library's read would hold the whole
 * engine until a line arrives); formats and results are Lua's: `"n"`,
 * `"l"`, `"L"`, `"a"` and byte counts. Flushing standard output
 * (`io.flush()`, `io.stdout:flush()`) flushes the engine's buffer, which
 * `print` and `io.write` share, and `io.stdout:setvbuf(mode)` sets that
 * buffer's mode.
 *
 * Lua keeps the bytes read and not yet taken (a line costs a string search,
 * not a call into JavaScript); JavaScript only reads the next chunk.
 *
 * @module
 */
import type { Engine, Pusher } from "../runtime/engine.ts";
import type { Family } from "../runtime/family.ts";
import type { LuaState } from "../runtime/lua.ts";
import { type BufferMode, takeStdoutFailure } from "../runtime/output.ts";

/** Bytes asked of standard input at a time. */
const CHUNK = 256 * 1024;

/** A chunk of standard input, null at its end, or the message of a failed read. */
type Chunk = Uint8Array | null | { failed: string };

/**
 * Chunks read and not yet given to Lua, in input order; a reader takes the
 * oldest. One read of the system's runs at a time. A reader that stops
 * waiting (its call ended) leaves the chunk its read brings to the next,
 * which waits for that read rather than starting one of its own.
 */
const chunks: Chunk[] = [];
let reading: Promise<void> | undefined;
async function chunkQueued(): Promise<void> {
  while (chunks.length === 0) {
    reading ??= readChunk().finally(() => reading = undefined);
    await reading;
  }
}

async function readChunk(): Promise<void> {
  const into = new Uint8Array(CHUNK);
  try {
    const n = await Deno.stdin.read(into);
    chunks.push(n === null ? null : into.subarray(0, n));
  } catch (e) {
    chunks.push({ failed: e instanceof Error ? e.message : String(e) });
  }
}

/** The next chunk, blocking the thread: for a read inside a C call (a sort comparator), which cannot park. */
function nextChunkNow(): Chunk {
  const queued = chunks.shift();
  if (queued !== undefined) return queued;
  const into = new Uint8Array(CHUNK);
  try {
    const n = Deno.stdin.readSync(into);
    return n === null ? null : into.subarray(0, n);
  } catch (e) {
    return { failed: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * The Lua side: standard input's buffer and Lua's read formats on it, and
 * the wrappers that send standard input's reads (and standard output's
 * flush) there; every other file keeps the C library's methods.
 */
const STDIO_LUA = `
local helpers = ...
local fill, flush_stdout, wait_turn, turn_free = helpers.fill, helpers.flush_stdout, helpers.wait_turn, helpers.turn_free
local set_stdout_buffering = helpers.set_stdout_buffering
local yieldable, running, setmetatable = coroutine.isyieldable, coroutine.running, setmetatable
local getinfo = debug and debug.getinfo  -- a Context may be opened without the debug library
local io, type, select, tonumber, error, tointeger, unpack, load, ipairs, pcall = io, type, select, tonumber,
  error, math.tointeger, table.unpack, load, ipairs, pcall
local sub, find, byte, concat = string.sub, string.find, string.byte, table.concat
local stdin, stdout, input, output, io_type = io.stdin, io.stdout, io.input, io.output, io.type
local methods = getmetatable(stdin).__index
-- The C library's own (named as they are, for the messages of their own errors).
local read, lines, flush, setvbuf, open, io_lines, loadfile, dofile = methods.read, methods.lines, methods.flush,
  methods.setvbuf, io.open, io.lines, loadfile, dofile

-- Files the C library opened for reading on standard input's own path: read through its buffer too (C's read would
-- hold the thread, and the two buffers would split the input). Weak keys: a file nobody holds is collected.
local STDIN_PATHS = { ["/dev/stdin"] = true, ["/dev/fd/0"] = true, ["/proc/self/fd/0"] = true }
local stdin_files = setmetatable({}, { __mode = "k" })
local function on_stdin(f)
  return stdin_files[f] ~= nil and io_type(f) == "file"
end

-- Standard input read and not yet taken: buf from pos on. A read that finds what it needs in buf takes it at once;
-- one that must wait for input holds the turn (acquire/release) while it does, so two goroutines never interleave
-- within one read, and a read inside a C call (which cannot wait) never races a read that waits.
local buf, pos, ended, failure = "", 1, false, nil

-- Reads the next chunk into buf (what was left of buf is kept before it): true, or false at the end of input (and
-- the message when reading failed, again at every later read, as C's error flag stays set).
local function more()
  if ended then return false, failure end
  local chunk, err = fill()
  if chunk == nil then
    ended, failure = true, err
    return false, err
  end
  if pos > #buf then buf = chunk else buf = sub(buf, pos) .. chunk end
  pos = 1
  return true
end

-- The coroutine whose read may wait for input, if any: until it is done, other reads (even those buf could answer)
-- wait for the turn, so nothing is taken from under it.
local holder
-- Gives the turn back when the read ends: returns, fails, or its goroutine is ended while it waits (to-be-closed).
local GIVE_BACK = setmetatable({}, { __close = function()
  holder = nil
  turn_free()
end })

-- The level error() needs to name the line of the code that called into this chunk (the first frame outside it).
local function caller_level()
  if not getinfo then return 0 end
  local level = 2
  while true do
    local info = getinfo(level + 1, "S")
    if info == nil or sub(info.short_src, 1, 8) ~= "[solvm] " then return level end
    level = level + 1
  end
end

-- Runs read(...) holding the turn (taken again by its holder at no cost, for a read of several formats); inside a C
-- call, without it, and refused while another read waits.
local function holding_turn(read, ...)
  local me = running()
  if holder == me then return read(...) end
  if not yieldable() then
    if holder then
      error("standard input is being read by a goroutine that waits: a read inside a C call cannot wait for it",
        caller_level())
    end
    return read(...)
  end
  while holder ~= nil do wait_turn() end
  holder = me
  local turn <close> = GIVE_BACK
  return read(...)
end

-- What a read that met the end of input got: its pieces joined, or nil when there were none.
local function at_end(parts)
  local s = concat(parts)
  if s == "" then return nil end
  return s
end

-- Moves what is left of buf into parts, then reads the next chunk. Nothing when one came; at the end of input, true
-- and what the read gives: finish(parts), or nil and the message of a failed read.
local function spill(parts, finish)
  parts[#parts + 1] = sub(buf, pos)
  buf, pos = "", 1
  local ok, err = more()
  if ok then return end
  if err then return true, nil, err end
  return true, finish(parts)
end

local function read_line_waiting(keep)
  local parts = {}  -- a long line comes in pieces, joined once
  while true do
    local e = find(buf, "\\n", pos, true)
    if e then
      parts[#parts + 1] = sub(buf, pos, keep and e or e - 1)
      pos = e + 1
      return concat(parts)
    end
    local ended, s, err = spill(parts, at_end)
    if ended then return s, err end
  end
end

-- "l" and "L": the next line without or with its newline; nil at the end.
local function read_line(keep)
  local e = (holder == nil or holder == running()) and find(buf, "\\n", pos, true)
  if e then
    local line = sub(buf, pos, keep and e or e - 1)
    pos = e + 1
    return line
  end
  return holding_turn(read_line_waiting, keep)
end
local function read_l() return read_line(false) end
local function read_L() return read_line(true) end

-- "a": the rest of the input ("" at the end).
local function read_all_waiting()
  local parts = {}
  while true do
    local ended, s, err = spill(parts, concat)
    if ended then return s, err end
  end
end
local function read_all() return holding_turn(read_all_waiting) end

-- A count: up to n bytes, fewer only at the end; 0 tells whether anything is left ("" or nil).
local function read_chars_waiting(n)
  if n == 0 then
    if pos <= #buf then return "" end
    local ok, err = more()
    if ok then return "" end
    return nil, err
  end
  local parts, need = {}, n
  while true do
    local have = #buf - pos + 1
    if have >= need then
      parts[#parts + 1] = sub(buf, pos, pos + need - 1)
      pos = pos + need
      return concat(parts)
    end
    need = need - have
    local ended, s, err = spill(parts, at_end)
    if ended then return s, err end
  end
end
local function read_chars(n)
  local have = #buf - pos + 1
  if have >= n and (n > 0 or have > 0) and (holder == nil or holder == running()) then
    local s = sub(buf, pos, pos + n - 1)
    pos = pos + n
    return s
  end
  return holding_turn(read_chars_waiting, n)
end

-- "n", as lua5.4's l_getn: skips spaces, takes the longest prefix that can be a numeral (at most 200 characters) and
-- converts it; nil when it is not one. scan_number looks in s from i; at(k) is the byte at k, -1 past the end of the
-- input, false when it has not arrived yet.
local scan_s, scan_end
local function at(k)
  local c = byte(scan_s, k)
  if c then return c end
  if scan_end then return -1 end
  return false
end
-- Whether the byte at k is a or b; nil when it has not arrived yet.
local function is(k, a, b)
  local c = at(k)
  if c == false then return nil end
  return c == a or c == b
end
-- The index past the digits from k; false when input may still add to them.
local function digits(k, hex)
  while true do
    local c = at(k)
    if c == false then return false end
    if (c >= 48 and c <= 57) or (hex and ((c >= 65 and c <= 70) or (c >= 97 and c <= 102))) then
      k = k + 1
    else
      return k
    end
  end
end
-- The numeral in s from i: its first index and the index past it; or nil and the index past the spaces before it
-- when the numeral may go on past the end of s.
local function scan_number(s, i, at_end)
  scan_s, scan_end = s, at_end
  while true do
    local c = at(i)
    if c == false then return nil, i end
    if c == 32 or (c >= 9 and c <= 13) then i = i + 1 else break end
  end
  local first, count, hex, k = i, 0, false, nil
  local m = is(i, 45, 43)                                   -- - +
  if m == nil then return nil, first elseif m then i = i + 1 end
  m = is(i, 48, 48)                                         -- 0
  if m == nil then return nil, first elseif m then
    i = i + 1
    m = is(i, 120, 88)                                      -- x X
    if m == nil then return nil, first elseif m then i, hex = i + 1, true else count = 1 end
  end
  k = digits(i, hex)
  if not k then return nil, first end
  count, i = count + k - i, k
  m = is(i, 46, 46)                                         -- .
  if m == nil then return nil, first elseif m then
    i = i + 1
    k = digits(i, hex)
    if not k then return nil, first end
    count, i = count + k - i, k
  end
  if count > 0 then
    if hex then m = is(i, 112, 80) else m = is(i, 101, 69) end  -- p P / e E
    if m == nil then return nil, first elseif m then
      i = i + 1
      m = is(i, 45, 43)
      if m == nil then return nil, first elseif m then i = i + 1 end
      k = digits(i, false)
      if not k then return nil, first end
      i = k
    end
  end
  return first, i
end
-- Takes the numeral found at first..after-1: l_getn keeps at most 200 characters, and fails past them.
local function take_number(first, after)
  if after - first > 200 then
    pos = first + 200
    return nil
  end
  pos = after
  return tonumber(sub(buf, first, after - 1))
end
local function read_number_waiting()
  while true do
    local first, after = scan_number(buf, pos, ended)
    if first then return take_number(first, after) end
    pos = after  -- the spaces are taken
    local ok, err = more()
    if not ok and err then return nil, err end
  end
end
local function read_number()
  if holder ~= nil and holder ~= running() then return holding_turn(read_number_waiting) end
  -- The usual numeral, plain digits followed by neither a letter, a digit nor a dot, needs no scanner.
  local _, spaces = find(buf, "^[ \\t-\\r]*", pos)
  local d1, d2 = find(buf, "^[-+]?%d+", spaces + 1)
  if d1 and d2 - d1 < 200 then
    local c = byte(buf, d2 + 1)
    if c and c ~= 46 and not (c >= 48 and c <= 57) and not (c >= 65 and c <= 90) and not (c >= 97 and c <= 122) then
      pos = d2 + 1
      return tonumber(sub(buf, d1, d2))
    end
  end
  local first, after = scan_number(buf, pos, ended)
  if first then return take_number(first, after) end
  return holding_turn(read_number_waiting)
end

-- Readers by format as written (the usual ones at once), else by its first letter after an optional "*".
local READERS = { n = read_number, a = read_all, l = read_l, L = read_L }
local FORMATS = { n = read_number, a = read_all, l = read_l, L = read_L, ["*n"] = read_number, ["*a"] = read_all,
  ["*l"] = read_l, ["*L"] = read_L }

-- The reader for the format at argument n: a function (and the count for a number); or nil and Lua's message.
local function reader(fname, n, f)
  local known = FORMATS[f]
  if known then return known end
  local t, problem = type(f), nil
  if t == "number" then
    local count = tointeger(f)
    if count then return read_chars, count < 0 and math.maxinteger or count end
    problem = "number has no integer representation"
  elseif t ~= "string" then
    problem = "string expected, got " .. t
  else
    local found = READERS[sub(f, 1, 1) == "*" and sub(f, 2, 2) or sub(f, 1, 1)]
    if found then return found end
    problem = "invalid format"
  end
  return nil, "bad argument #" .. n .. " to '" .. fname .. "' (" .. problem .. ")"
end

-- Formats are checked as they come, as C does: one after a format that failed is never looked at.
local function read_formats(level, fname, first, n, ...)
  local out = {}
  for i = 1, n do
    local read_format, count = reader(fname, first + i - 1, (select(i, ...)))
    if not read_format then error(count, level + 1) end  -- past holding_turn (which read_stdin tail-called)
    local v, err = read_format(count)
    if err then return nil, err end
    out[i] = v
    if v == nil then return unpack(out, 1, i) end
  end
  return unpack(out, 1, n)
end

-- Lua's g_read on standard input: a value per format, up to the first that fails (nil in its place); nil and a
-- message when reading failed. A bad format raises at the given level, counted from argument first.
local function read_stdin(level, fname, first, ...)
  local n = select("#", ...)
  if n <= 1 then
    local read_format, count = read_l, nil
    if n == 1 then
      read_format, count = reader(fname, first, (...))
      if not read_format then error(count, level) end
    end
    local v, err = read_format(count)
    if err then return nil, err end
    return v
  end
  -- Read holding the turn, so the values come from one place in the input.
  return holding_turn(read_formats, level, fname, first, n, ...)
end

-- The lines iterator of file (standard input, or a file opened on its path): nothing at the end; a read error raises,
-- and so does a call once file is closed, as the C library's do. closes: io.lines opened file, closed at the end.
local function lines_stdin(file, closes, ...)
  local n, formats = select("#", ...), { ... }
  if n == 0 and file == stdin then  -- the common case, kept short: a line costs little more than a string search
    return function()
      local line, err = read_line(false)
      if line ~= nil then return line end
      if err then error(err, 2) end
    end
  end
  local function results(v, ...)
    if v ~= nil then return v, ... end
    if (...) ~= nil then error((...), 3) end
    if closes then file:close() end
  end
  return function()
    if io_type(file) == "closed file" then error("file is already closed", 2) end
    return results(read_stdin(3, "for iterator", 2, unpack(formats, 1, n)))  -- C's iterator counts them from #2
  end
end

-- Whether the function at level (1: the caller of this) was called as f.method(f, ...), not f:method(...): then,
-- as luaL_argerror counts, the file is argument #1 and the others count from #2.
local function called_with_self(level)
  return getinfo ~= nil and getinfo(level + 1, "n").namewhat ~= "method"
end

-- A count the C library cannot read: it allocates the count before reading, and this 32-bit build cuts one past
-- 2^32 to its low bits (1 << 32 reads nothing). A string of 2^30 bytes or more cannot be made in 2 GiB (its buffer and
-- its copy), so reading all that is left ("a") gives what such a count would, or "" where the count gives nil.
local HUGE_COUNT = 1 << 30
local function is_huge_count(format)
  return type(format) == "number" and (tointeger(format) or 0) >= HUGE_COUNT
end

-- Whether a format among ... is a huge count.
local function any_huge_count(...)
  for i = 1, select("#", ...) do
    if is_huge_count((select(i, ...))) then return true end
  end
  return false
end

-- The formats with "a" for each huge count, and the places of those.
local function without_huge_counts(...)
  local formats, places = { ... }, {}
  for i = 1, select("#", ...) do
    if is_huge_count(formats[i]) then formats[i], places[#places + 1] = "a", i end
  end
  return formats, places
end

-- The results of a read of formats from without_huge_counts: nil for a huge count that got "", and nothing after it.
local function as_counts(places, ...)
  for _, i in ipairs(places) do
    if select(i, ...) == "" then
      local out = { ... }
      out[i] = nil
      return unpack(out, 1, i)
    end
  end
  return ...
end

-- f:read(...) with a huge count among its formats.
local function read_huge(f, ...)
  local formats, places = without_huge_counts(...)
  return as_counts(places, read(f, unpack(formats, 1, select("#", ...))))
end

-- lines(f, ...) (the method, or io.lines and its file name) with a huge count among its formats, read as C's
-- iterator reads (which lines opens the file and checks the formats for): the iteration ends where a huge count gets
-- "", closing the file when io.lines opened it.
local function lines_huge(lines, f, ...)
  local formats, places = without_huge_counts(...)
  local n = select("#", ...)
  -- Through pcall: lines would raise its errors ("cannot open file") at this chunk's line, not at the caller's.
  local ok, failure, _, _, opened = pcall(lines, f, unpack(formats, 1, n))
  if not ok then error(failure, 2) end
  local file = opened or f or input()
  local function results(first, ...)
    if first ~= nil then return first, ... end
    if select("#", ...) > 0 then error((...), 2) end  -- a failed read: its message, at the loop's line (a tail call)
    if opened then opened:close() end
  end
  local function next_line()
    if io_type(file) == "closed file" then error("file is already closed", 2) end
    return results(as_counts(places, read(file, unpack(formats, 1, n))))
  end
  if opened then return next_line, nil, nil, opened end
  return next_line
end

-- What the C library would raise for the file at argument 1 (with arguments ... ) and these formats, raised here at
-- the caller's line: from inside it, the message would give this chunk's line. A format is counted as the method
-- (the caller) was called, unless plain (io.read's formats always count from #1). True when a count is huge.
local function check(fname, plain, count, f, ...)
  local t = io_type(f)
  if t ~= "file" then
    if t == "closed file" then error("attempt to use a closed file", 3) end
    local got = count == 0 and "no value" or type(f)
    error("bad argument #1 to '" .. fname .. "' (FILE* expected, got " .. got .. ")", 3)
  end
  local huge = false
  for i = 1, select("#", ...) do
    local format = select(i, ...)
    local found, problem = reader(fname, i, format)
    if not found then
      if not plain and called_with_self(2) then problem = select(2, reader(fname, i + 1, format)) end
      error(problem, 3)
    end
    huge = huge or is_huge_count(format)
  end
  return huge
end

-- A file's methods are shared by every file (one metatable, whose __index stays a table scripts may extend):
-- standard input's and output's go here. A Lua wrapper has one cost: called as a tail call (return f:read("x")),
-- an error the check raises cannot name the caller's line, whose frame the tail call replaced.
methods.read = function(...)
  local f = ...
  if f == stdin or on_stdin(f) then return read_stdin(2, "read", 1, select(2, ...)) end
  if check("read", false, select("#", ...), ...) then return read_huge(...) end
  return read(...)
end
methods.lines = function(...)
  local f = ...
  if f == stdin or on_stdin(f) then return lines_stdin(f, false, select(2, ...)) end
  check("lines", false, select("#", ...), f)
  if any_huge_count(select(2, ...)) then return lines_huge(lines, ...) end
  return lines(...)
end
methods.flush = function(...)
  local f = ...
  if f == stdout then return flush_stdout() end
  check("flush", false, select("#", ...), f)
  return flush(f)
end
-- Standard output's buffer is the engine's (C's stays unbuffered, so print and io.write share it): its mode goes there.
-- The arguments are checked here, as C would, so that an error names the caller's line.
local BUFFER_MODES = { no = true, full = true, line = true }
methods.setvbuf = function(...)
  local n, f, mode, size = select("#", ...), ...
  check("setvbuf", false, n, f)
  local first = called_with_self(1) and 2 or 1
  if type(mode) == "number" then mode = tostring(mode) end  -- as luaL_checkoption takes it
  if not BUFFER_MODES[mode] then
    local got = n < 2 and "no value" or type(mode)
    local problem = type(mode) == "string" and "invalid option '" .. mode .. "'" or "string expected, got " .. got
    error("bad argument #" .. first .. " to 'setvbuf' (" .. problem .. ")", 2)
  end
  if size ~= nil and not tointeger(size) then
    local problem = tonumber(size) and "number has no integer representation" or "number expected, got " .. type(size)
    error("bad argument #" .. first + 1 .. " to 'setvbuf' (" .. problem .. ")", 2)
  end
  if f == stdout then return set_stdout_buffering(mode) end
  return setvbuf(...)
end

-- Lua's loadfile() and dofile() without a name read standard input: the same buffer, or bytes would be lost.
local function load_stdin(mode, env)
  local source, err = read_all()
  if source == nil then return nil, "stdin: " .. err end
  if sub(source, 1, 3) == "\\239\\187\\191" then source = sub(source, 4) end  -- a byte-order mark, as loadfile skips it
  if sub(source, 1, 1) == "#" then source = "--" .. source end  -- and a #! line (kept as a comment: lines still count)
  if env ~= nil then return load(source, "=stdin", mode, env) end
  return load(source, "=stdin", mode)
end

return {
  read = function(...)
    local f = input()
    if f == stdin or on_stdin(f) then
      if select("#", ...) <= 1 then  -- the usual call, kept short
        local format = ...
        local read_format = format == nil and read_l or FORMATS[format]
        if read_format then
          local v, err = read_format()
          if err then return nil, err end
          return v
        end
      end
      return read_stdin(2, "read", 1, ...)
    end
    if io_type(f) == "closed file" then error("default input file is closed", 2) end
    if check("read", true, 1, f, ...) then return read_huge(f, ...) end
    return read(f, ...)
  end,
  lines = function(name, ...)
    if name == nil then
      local f = input()
      if f == stdin or on_stdin(f) then return lines_stdin(f, false, ...) end
    elseif STDIN_PATHS[name] then
      -- Opened by C (its checks and messages) through pcall: its errors would name this chunk's line.
      local ok, failure, _, _, opened = pcall(io_lines, name, ...)
      if not ok then error(failure, 2) end
      stdin_files[opened] = true
      return lines_stdin(opened, true, ...), nil, nil, opened
    end
    if any_huge_count(...) then return lines_huge(io_lines, name, ...) end
    return io_lines(name, ...)
  end,
  open = function(...)
    local name, mode = ...
    -- A write mode ("w", "r+", ...) keeps C's file; a read mode raises no argument error for a path.
    if not STDIN_PATHS[name] or (mode ~= nil and (type(mode) ~= "string" or not find(mode, "^rb*$"))) then
      return open(...)
    end
    local f, err, code = open(name, mode)
    if f then stdin_files[f] = true end
    return f, err, code
  end,
  input = function(...)
    if not STDIN_PATHS[(...)] then return input(...) end
    local ok, f = pcall(input, ...)  -- as io.lines above
    if not ok then error(f, 2) end
    stdin_files[f] = true
    return f
  end,
  flush = function()
    local f = output()
    if f == stdout then return flush_stdout() end
    if io_type(f) == "closed file" then error("default output file is closed", 2) end
    return flush(f)
  end,
  loadfile = function(...)
    if (...) == nil then return load_stdin(select(2, ...)) end
    return loadfile(...)
  end,
  dofile = function(...)
    if (...) ~= nil then return dofile(...) end
    local chunk = assert(load_stdin())
    return chunk()
  end,
}`;

/** Pushes a chunk as `fill` gives it: its bytes, nil at the end, or nil and the message of a failed read. */
function pushChunk(engine: Engine, L: LuaState, chunk: Chunk): number {
  const vm = engine.vm;
  if (chunk instanceof Uint8Array) {
    vm.pushBytes(L, chunk);
    return 1;
  }
  vm.api.lua_pushnil(L);
  if (chunk === null) return 1;
  vm.pushString(L, chunk.failed);
  return 2;
}

/** The standard streams' registration table (it also gives `io.stdin` and `io.stdout` methods of their own). */
export const standardStreams = (engine: Engine): Family => {
  const vm = engine.vm;
  const terminal = Deno.stdin.isTerminal();
  const fill = engine.blocking("io.read", (L) => {
    // Inside a C call (a sort comparator, a gsub callback) a goroutine cannot park: read as C would.
    if (!engine.canPark(L) || chunks.length > 0) return pushChunk(engine, L, nextChunkNow());
    const read = chunkQueued();
    // Waiting for the user at a terminal is idle, as a server is: it suspends the default time limit meanwhile.
    if (terminal) read.then(engine.hold());
    return read.then((): Pusher => (L) => pushChunk(engine, L, nextChunkNow()));
  }, { worksWhereNoWait: true });
  // Reads waiting for the turn (Lua keeps whose it is), woken one at a time as it comes free, in order.
  const queued: (() => void)[] = [];
  const waitTurn = engine.blocking("io.read", () => {
    let wake = () => {};
    const wait = new Promise<Pusher>((resolve) => wake = () => resolve(() => 0));
    queued.push(wake);
    const cancel = () => {
      const at = queued.indexOf(wake);
      if (at >= 0) queued.splice(at, 1);
      else turnFree(); // it was woken already: the wake-up goes to the next
    };
    return { wait, cancel };
  });
  const turnFree = () => (queued.shift()?.(), 0);
  let wired = 0;
  const rewired = (L: LuaState) => {
    const flushStdout = (L: LuaState) => {
      engine.stdout.flush(true);
      const failure = takeStdoutFailure();
      if (!failure) {
        vm.api.lua_pushboolean(L, 1);
        return 1;
      }
      // Deno's message is the system's, then " (os error N)": Lua gives them apart, as C's strerror and errno.
      const os = /^(.*) \(os error (\d+)\)$/.exec(failure.message);
      vm.api.lua_pushnil(L);
      vm.pushString(L, os ? os[1] : failure.message);
      if (!os) return 2;
      vm.api.lua_pushinteger(L, BigInt(os[2]));
      return 3;
    };
    const setStdoutBuffering = (L: LuaState) => {
      engine.stdout.setBuffering?.(vm.toText(L, 1) as BufferMode);
      vm.api.lua_pushboolean(L, 1);
      return 1;
    };
    wired ||= engine.compileLua("standard streams", STDIO_LUA, {
      fill,
      flush_stdout: flushStdout,
      set_stdout_buffering: setStdoutBuffering,
      wait_turn: waitTurn,
      turn_free: turnFree,
    });
    vm.pushRef(L, wired);
    return 1;
  };
  const member = (name: string) => ({ lua: `return (...).rewired().${name}`, helpers: { rewired } });
  return {
    "io.read": member("read"),
    "io.lines": member("lines"),
    "io.open": member("open"),
    "io.input": member("input"),
    "io.flush": member("flush"),
    loadfile: member("loadfile"),
    dofile: member("dofile"),
  };
};

/**
 * The goroutine scheduler and channels, written in Lua so that a buffered
 * send or a ready receive costs a Lua function call and no yield. A
 * goroutine yields only when it really has to wait (GUIDE: a coroutine
 * switch is the expensive operation in this stack).
 *
 * The chunk is called with `(PARK, host)` where `PARK` is the sentinel every
 * waiting goroutine yields and `host` holds the JavaScript callbacks
 * `finished(id, ok, message, traceback)` and `report(text)`. It returns the
 * scheduler's table: `run`, `wake`, `spawn`, `parked_report` and the Lua
 * globals of the concurrency family.
 *
 * @module
 */
export const SCHEDULER_LUA = String.raw`
local PARK, host = ...
local co_create, co_resume, co_yield, co_status, co_close, co_running, co_isyieldable = coroutine.create,
  coroutine.resume, coroutine.yield, coroutine.status, coroutine.close, coroutine.running, coroutine.isyieldable
local lua_select, traceback, getinfo, pack, unpack = select, debug.traceback, debug.getinfo, table.pack, table.unpack
local pcall, co_running, string_format, collectgarbage, string_find = pcall, coroutine.running, string.format,
  collectgarbage, string.find
local type, tostring, tonumber, error, setmetatable, getmetatable, rawget, math_type, math_tointeger =
  type, tostring, tonumber, error, setmetatable, getmetatable, rawget, math.type, math.tointeger

local ready, rhead, rtail = {}, 1, 0       -- run queue
local goroutines = {}                       -- id -> goroutine
local host_waiting = {}                     -- host operation id -> goroutine
local live, next_id = 0, 0
local current                               -- the running goroutine
local waiters, nwaiting = {}, 0             -- goroutines inside wait()
local max_goroutines, started_by_go = math.huge, 0  -- the --max-goroutines limit on go()
local error_handler
local reported_in = ""                      -- what failure reports name the run in (an actor), with ", "
-- Calls from JavaScript that ended while goroutines they started live on, by id (see direct).
local owners = {}
-- Thread -> the coroutine it waits inside (it passes that one's park up: see relay), for deadlock reports.
local waiting_inside = setmetatable({}, { __mode = "k" })
-- The coroutines user code made: the only ones it may resume or close (a goroutine's belongs to the scheduler).
-- Marking these rather than goroutines keeps go() free of the cost.
local user_made = setmetatable({}, { __mode = "k" })

local function make_ready(g, a, b)
  g.state, g.wait, g.a, g.b = "ready", nil, a, b
  rtail = rtail + 1
  ready[rtail] = g
end

-- How many coroutines run that were resumed where their resumer could not pass a wait up (see resume_from):
-- while any does, nothing may wait.
local no_relay = 0

-- The running goroutine when it can wait here; else an error naming fname, at fname's caller. Asked before
-- a channel operation queues anything: one that cannot wait must leave no trace.
local function waitable(fname)
  local g = current
  if g ~= nil and no_relay == 0 and co_isyieldable() then return g end
  error(fname .. " cannot wait here (not in a goroutine, or across a C call)", 3)
end

-- Parks the running goroutine. The caller has taken its park sequence (g.seq + 1) before queueing it where a waker
-- finds it: entries left by a wait that fails before it parks (out of memory) are stale at once, and stay so.
local function park(what)
  local g = current
  g.state, g.wait = "parked", what
  return co_yield(PARK)
end

-- mode: nil, "watched" (JavaScript gets the outcome instead of on_error) or
-- "tracked" (errors go to on_error as usual, and JavaScript hears of the end).
-- Everything that allocates comes first: a goroutine that could not be made ("not enough memory") is not counted
-- (wait() would wait for it for ever). Until its state is "ready", run() skips it where it sits in the queue; by_go's
-- slot is made here so that go() marks it without allocating. args: the values fn starts with, packed (or nil).
local function spawn_packed(fn, name, mode, args)
  local id = next_id + 1
  local g = { id = id, co = co_create(fn), seq = 0, state = false, by_go = false }
  if name then g.name = name end
  if mode then g.mode = mode end
  local owner = current and current.owner     -- a call from JavaScript, and what it started, own what they start
  if owner then g.owner = owner end
  if args then g.args = args end
  ready[rtail + 1] = g
  rtail = rtail + 1
  goroutines[id] = g
  next_id, live, g.state = id, live + 1, "ready"
  if owner then owner.n = owner.n + 1 end
  return id
end

-- spawn_packed with the values themselves (JavaScript's calls, on_error's handler).
local function spawn(fn, name, mode, ...)
  return spawn_packed(fn, name, mode, lua_select("#", ...) > 0 and pack(...) or nil)
end

local function name_of(g)
  return g.name or ("goroutine " .. g.id)
end

-- The error Lua raises when an allocation fails (coroutine.wrap and host functions may pass it on after a position).
local MEMORY_ERROR = "not enough memory"

local function message_of(err)
  local t = type(err)
  if t == "string" then return err end
  if t == "number" then return tostring(err) end  -- as lua.c reports error(12)
  local mt = getmetatable(err)
  if mt and rawget(mt, "__tostring") then
    -- On a coroutine of its own, which inherits the count hook: a call's limits stop the script's __tostring there.
    local ok, co = pcall(co_create, tostring)
    local text
    if ok then ok, text = co_resume(co, err) end
    if ok and type(text) == "string" and co_status(co) == "dead" then return text end
    return "(error object is a " .. t .. " value whose __tostring failed)"
  end
  return "(error object is a " .. t .. " value)"
end

-- Chunks of SolVM's own (this one, the host families' Lua helpers) are named "[solvm] ...": their frames are left
-- out of tracebacks.
local INTERNAL = "[solvm] "
local gsub, str_sub = string.gsub, string.sub
local function without_internal(text)
  if type(text) ~= "string" then return text end
  -- A standard function written here (dofile, io.read) raises with error: that call is not the script's own. A tail
  -- call marker stays (it may be the script's own, into such a function).
  text = gsub(text, "\n\t%[C%]: in function 'error'(\n\t%[solvm%] )", "%1")
  return (gsub(text, "\n\t%[solvm%] [^\n]*", ""))
end

-- err is the error value itself (what the handler gets), message its text
-- and trace the text with a traceback (what stderr gets).
local function dispatch_error(g, err, message, trace, logged)
  if not logged then host.failed(name_of(g), message) end
  local report = "error in " .. reported_in .. name_of(g) .. ": " .. trace
  if error_handler and not g.handler then
    local handler = goroutines[spawn(error_handler, "on_error handler", nil, err, trace)]
    handler.handler, handler.handling = true, report
  elseif g.handler then -- the handler failed: the error it was given must not be lost with it
    host.report(report .. "\nthe error it was handling: " .. g.handling)
  else
    host.report(report)
  end
end

-- A failure that happened elsewhere (an actor), reported as a goroutine's would be.
local function report_failure(name, message, trace, logged)
  dispatch_error({ name = name }, message, message, trace, logged)
end

-- Once every live goroutine is inside wait(), the youngest of them returns
-- (a goroutine waiting for those it started, inside a wait() of its
-- parent's); when it ends or waits again, the next one does.
local function release_waiters()
  if nwaiting > 0 and live == nwaiting then
    local youngest = 1
    for i = 2, nwaiting do
      if (waiters[i].id or 0) > (waiters[youngest].id or 0) then youngest = i end
    end
    local g = waiters[youngest]
    waiters[youngest] = waiters[nwaiting]
    waiters[nwaiting] = nil
    nwaiting = nwaiting - 1
    make_ready(g)
  end
end

-- The error co failed with, its message and traceback: err, unless closing the to-be-closed variables co left open
-- (as Lua does when an error leaves a pcall) raised another, which replaces it as in Lua. trace and close_err are the
-- traceback and co_close's error when co was traced and closed as it failed (see direct).
local function failure_of(co, err, trace, close_err)
  if trace == nil then
    trace = traceback(co, message_of(err))
    local closed
    closed, close_err = co_close(co)
    if closed then close_err = err end
  end
  if close_err ~= err then
    local message = message_of(close_err)
    return close_err, message, message  -- Lua runs __close with no message handler: there is no traceback to give
  end
  return err, message_of(err), without_internal(trace)
end

-- A goroutine call o started has ended: once o and all of them have, JavaScript lets go of o's limits.
local function disown(o)
  o.n = o.n - 1
  if o.n == 0 and o.state == "dead" then
    owners[o.id] = nil
    host.released(o.id)
  end
end

local function finish(g, ok, err, trace, close_err)
  -- What may need memory comes first: out of it here, g is still there for run_failed to end.
  local failure, message
  if not ok then failure, message, trace = failure_of(g.co, err, trace, close_err) end
  live = live - 1
  if g.by_go then started_by_go = started_by_go - 1 end
  goroutines[g.id] = nil
  g.state = "dead"
  if ok then
    if g.mode then host.finished(g.id, true, err) end  -- err is the first result here
  else
    if g.mode ~= "watched" then dispatch_error(g, failure, message, trace) end
    if g.mode then host.finished(g.id, false, message, trace) end
  end
  local owner = g.owner
  if owner == g then                        -- a call that waited
    if g.n == 0 then host.released(g.id) else owners[g.id] = g end
  elseif owner then
    disown(owner)
  end
  release_waiters()
end

-- Ends g, which was asked to stop (see interrupt) and has just parked; JavaScript drops the host operation it waits for.
local cancel
local function stop_parked(g)
  local op = cancel(g.id, g.stop)
  if math_type(op) == "integer" then host.dropped(op) end
end

-- co_resume(co, ...) refused to start co: its stack had no room for the nargs arguments (memory, or Lua's limit).
-- co is closed, to fail with that reason: left suspended, it would be run later without them.
local function refused_start(co, nargs)
  co_close(co)
  return string_format("cannot pass %d values (no room for them on Lua's stack)", nargs)
end

-- Lua gives every C function 20 free stack slots (LUA_MINSTACK), and lua_checkstack wants one more than it asks
-- for: unpack of no more values than this never needs memory.
local ROOM_ON_CALL = 19

local function resume_unpacked(co, args)
  return co_resume(co, unpack(args, 1, args.n))
end

-- co_resume(co, the values in args) for more values than ROOM_ON_CALL: unpack may find no room for them (memory)
-- before co_resume could refuse. co is then left suspended, and fails as refused_start says.
local function start_with(co, args)
  local unpacked, ok, r1, r2, r3 = pcall(resume_unpacked, co, args)
  if unpacked then return ok, r1, r2, r3 end
  return false
end

-- After a resume that did not end g: parks it for the host operation it
-- yielded (JavaScript wakes it), or queues it again after a bare yield.
local function suspended(g, r1, r2, r3)
  if r1 == PARK then
    if r2 ~= nil then
      g.state, g.wait, g.seq = "parked", r3, g.seq + 1
      host_waiting[r2], g.host_op = g, r2
    end
    if g.stop then stop_parked(g) end
  else                                      -- a bare coroutine.yield(): let others run
    make_ready(g)
  end
end

-- Before the engine's tier-up yield (see engine.ts): whether thread is the running goroutine's own coroutine (not
-- a coroutine inside it), marked to be resumed at once. Goroutines switch only where they wait or yield themselves.
local function tier_up(thread)
  if current == nil or current.co ~= thread then return false end
  current.at_once = true
  return true
end

-- Resumes g's coroutine again at once while it comes back from a tier-up yield.
local function past_tier_up(g, ok, r1, r2, r3)
  while g.at_once do
    g.at_once = nil
    if co_status(g.co) ~= "suspended" then break end
    ok, r1, r2, r3 = co_resume(g.co)
  end
  return ok, r1, r2, r3
end

-- Goroutines resumed between looks at the clock: rare enough to cost nothing, often enough to keep slices short.
local SLICE_CHECK = 32

-- The goroutine run() has resumed and not yet finished or parked.
local ending

-- run() itself ran out of memory: after the goroutine it resumed did, a C call had to grow the main stack while that
-- goroutine's stack still held what filled the memory (Lua's emergency collection could free none of it). That
-- goroutine fails as run() would have failed it, once closing it has given the memory back; JavaScript then runs on.
local function run_failed()
  local g = ending
  ending, current = nil, nil
  if g == nil or g.state == "dead" then return end
  co_close(g.co)
  collectgarbage()
  finish(g, false, MEMORY_ERROR, MEMORY_ERROR, MEMORY_ERROR)
end

-- Runs ready goroutines until none is, or until the pump's slice is over with some still ready (returns true then:
-- the pump goes on after the event loop has had a turn).
local function run()
  if no_relay ~= 0 then                     -- an error went past a resume_from without its count going down
    no_relay = 0
    host.relay_blocked(false)
  end
  local countdown = SLICE_CHECK
  while rhead <= rtail do
    countdown = countdown - 1
    if countdown == 0 then
      if host.slice_over() then return true end
      countdown = SLICE_CHECK
    end
    local g = ready[rhead]
    ready[rhead] = nil
    rhead = rhead + 1
    if g.state ~= "ready" then goto next end  -- cancelled while it waited in the queue
    current, ending = g, g                  -- ending: until finished or parked (see run_failed)
    g.state, g.host_op = "running", nil
    local ok, r1, r2, r3
    local args = g.args
    if args then
      g.args = nil
      if args.n <= ROOM_ON_CALL then
        ok, r1, r2, r3 = co_resume(g.co, unpack(args, 1, args.n))
      else
        ok, r1, r2, r3 = start_with(g.co, args)
      end
      if not ok and co_status(g.co) == "suspended" then r1 = refused_start(g.co, args.n) end
    elseif g.b ~= nil then
      local a, b = g.a, g.b
      g.a, g.b = nil, nil
      ok, r1, r2, r3 = co_resume(g.co, a, b)
    elseif g.a ~= nil then
      local a = g.a
      g.a = nil
      ok, r1, r2, r3 = co_resume(g.co, a)
    else
      ok, r1, r2, r3 = co_resume(g.co)
    end
    if g.at_once then ok, r1, r2, r3 = past_tier_up(g, ok, r1, r2, r3) end
    local trace, close_err -- see direct
    if not ok and type(r1) == "string" and str_sub(r1, -#MEMORY_ERROR) == MEMORY_ERROR then
      trace = lua_select(2, pcall(traceback, g.co, r1))
      close_err = lua_select(2, co_close(g.co))
    end
    current = nil
    if co_status(g.co) == "dead" then finish(g, ok, r1, trace, close_err) else suspended(g, r1, r2, r3) end
    ending = nil
    ::next::
  end
  rhead, rtail = 1, 0
  return false
end

-- A call from JavaScript that runs at once as a goroutine on co, whose
-- stack already holds the function (JavaScript pushed it). Returns
-- true, ok, first result (or message, traceback) when it ended without
-- waiting, else false, its id: it then ends as a "watched" goroutine.
-- The fifth result says whether other goroutines are ready to run; the
-- sixth, when the call ended at once while goroutines it started live on,
-- the id that names it until they end (host.released). A call that ends
-- at once and leaves nothing behind is never listed, and its record is reused.
local spare
local function new_id()
  next_id = next_id + 1
  return next_id
end
local function direct(co, ...)
  local g = spare
  if g == nil or g.co ~= co then
    g = { co = co, seq = 0, n = 0, outer = false }  -- outer's slot is made here: setting it never allocates
    g.owner = g
  else
    spare = nil
  end
  g.state, g.outer = "running", current or false
  live = live + 1
  current = g
  local ok, r1, r2, r3 = co_resume(co, ...)
  if not ok and co_status(co) == "suspended" then r1 = refused_start(co, lua_select("#", ...)) end
  if g.at_once then ok, r1, r2, r3 = past_tier_up(g, ok, r1, r2, r3) end
  -- Off the books before any other call, which may fail for memory (see direct_failed); counted again if co waits.
  current, live = g.outer or nil, live - 1
  -- Out of memory, co's stack may hold what filled it: co is traced and closed at once, with C calls only (a Lua
  -- call here may need memory). trace is "not enough memory" when even the traceback found none.
  local trace, close_err
  if not ok and type(r1) == "string" and str_sub(r1, -#MEMORY_ERROR) == MEMORY_ERROR then
    trace = lua_select(2, pcall(traceback, co, r1))
    close_err = lua_select(2, co_close(co))
  end
  if co_status(co) == "dead" then
    g.state = "dead"
    release_waiters()
    local left
    if g.n > 0 then
      left = g.id or new_id()
      g.id = left
      owners[left] = g
    end
    if ok then
      if not left then g.id, g.name, spare = nil, nil, g end
      return true, true, r1, nil, rhead <= rtail, left
    end
    local _, message, trace = failure_of(co, r1, trace, close_err)
    return true, false, message, trace, rhead <= rtail, left
  end
  local id = g.id or new_id()
  g.id, g.mode, g.name = id, "watched", g.name or host.call_name()
  goroutines[id] = g
  live = live + 1
  suspended(g, r1, r2, r3)
  return false, id, nil, nil, true
end

-- Engine.call: direct(co) itself failed for memory (after co ran out of it, a C call had to grow the main stack,
-- which Lua does without a collection, while co still held what filled the memory). co's call fails as if direct had
-- failed it: co is closed, the call taken off the books if direct had not done so, and the memory given back.
local function direct_failed(co)
  co_close(co)
  collectgarbage()
  local g = current
  if g ~= nil and g.co == co then current, live = g.outer or nil, live - 1 end
  release_waiters()
end

local function wake(...)
  local ids = { ... }
  for i = 1, #ids do
    local id = ids[i]
    local g = host_waiting[id]
    host_waiting[id] = nil
    if g and g.state == "parked" then make_ready(g) end
  end
end

-- Channels ----------------------------------------------------------------

-- A channel object is an opaque handle; its state lives here, keyed by the
-- handle and by its name. Weak keys: a channel nobody refers to is collected
-- (a name keeps its channel until chan(name) replaces it).
local channels = setmetatable({}, { __mode = "k" })
local Channel = {}
local anonymous = 0

-- Waiter queues hold (goroutine, park sequence[, value]) in flat slots; an
-- entry is stale once its goroutine has been woken by another channel.
-- stale counts those a select or a cancel left (see left_stale).
local function queue() return { h = 1, t = 0, stale = 0 } end

local function pop_receiver(q)
  local h, t = q.h, q.t
  while h <= t do
    local g, seq = q[h], q[h + 1]
    q[h], q[h + 1] = nil, nil
    h = h + 2
    if g.seq == seq and g.state == "parked" then
      if h > t then q.h, q.t, q.stale = 1, 0, 0 else q.h = h end
      return g
    end
    if q.stale > 0 then q.stale = q.stale - 1 end
  end
  q.h, q.t, q.stale = 1, 0, 0
end

-- A woken select's entry on a receive queue it was not woken by is stale, as is an ended goroutine's (see cancel):
-- once such entries are half the queue, the live ones are moved to its front, so a select loop keeps no queue
-- growing (amortised O(1) per select). width: the slots an entry takes (3 on a send queue, with its value).
local function left_stale(q, width)
  width = width or 2
  local stale = q.stale + 1
  local h, t = q.h, q.t
  if stale * 2 * width < t - h + 1 then
    q.stale = stale
    return
  end
  local j = 0
  for i = h, t, width do
    local g, seq = q[i], q[i + 1]
    if g.seq == seq and g.state == "parked" then
      for k = 0, width - 1 do q[j + 1 + k] = q[i + k] end
      j = j + width
    end
  end
  for i = j + 1, t do q[i] = nil end
  q.h, q.t, q.stale = 1, j, 0
end

local function pop_sender(q)
  local h, t = q.h, q.t
  while h <= t do
    local g, seq, v = q[h], q[h + 1], q[h + 2]
    q[h], q[h + 1], q[h + 2] = nil, nil, nil
    h = h + 3
    if g.seq == seq and g.state == "parked" then
      if h > t then q.h, q.t, q.stale = 1, 0, 0 else q.h = h end
      return g, v
    end
    if q.stale > 0 then q.stale = q.stale - 1 end
  end
  q.h, q.t, q.stale = 1, 0, 0
end

-- Names of channels closed and drained: only the name is kept (a closed channel is what they still name), the
-- channel itself is freed once nothing else refers to it (see retire).
local closed_names = {}
local EMPTY_QUEUE = queue()

-- The channel c names for argument i (default 1) of fname, or an error at fname's caller.
local function lookup(c, fname, i)
  local ch = channels[c]
  if ch then return ch end
  local tc = type(c)
  if tc == "string" then
    if closed_names[c] then  -- what a closed, drained channel is: nothing to take, nothing to wait for
      return { name = c, closed = true, n = 0, cap = 0, bh = 0, buf = EMPTY_QUEUE, rq = EMPTY_QUEUE, sq = EMPTY_QUEUE }
    end
    error(fname .. ": no channel named '" .. c .. "' (create it with chan)", 3)
  end
  error("bad argument #" .. (i or 1) .. " to '" .. fname .. "' (channel or channel name expected, got " .. tc .. ")", 3)
end

-- What a select waiting on a channel that gets closed is woken with, after the channel's name.
local CLOSED = {}

-- A closed channel has given its last value: its name stops holding it.
local function retire(ch)
  local name = ch.name
  if channels[name] == ch then
    channels[name] = nil
    closed_names[name] = true
  end
end

-- A select is woken with the channel itself: it knows which of its entries went with the wake.
local function wake_receiver(ch, g, v, ok)
  if not g.selecting then
    make_ready(g, v, ok)
  elseif ok then
    make_ready(g, v, ch)
  else
    make_ready(g, ch, CLOSED)
  end
end

local function send(c, v)
  local ch = channels[c] or lookup(c, "send")
  if ch.closed then error("send on closed channel '" .. ch.name .. "'", 2) end
  local rq = ch.rq
  if rq.h <= rq.t then
    local g = pop_receiver(rq)
    if g then wake_receiver(ch, g, v, true) return end
  end
  local n, cap = ch.n, ch.cap
  if n < cap then
    ch.buf[(ch.bh + n) % cap + 1] = v
    ch.n = n + 1
    return
  end
  local g, sq = waitable("send"), ch.sq
  local t, seq = sq.t, g.seq + 1
  g.seq = seq
  sq[t + 1], sq[t + 2], sq[t + 3] = g, seq, v
  sq.t = t + 3
  g.sending = ch                            -- where cancel finds its entry
  local sent = park("send on channel '" .. ch.name .. "'")
  g.sending = nil
  if not sent then error("send on closed channel '" .. ch.name .. "'", 2) end
end

-- Takes a value if one is ready: returns true, value, ok.
local function try_receive(ch)
  local n = ch.n
  if n > 0 then
    local i = ch.bh + 1
    local buf = ch.buf
    local v = buf[i]
    buf[i] = nil
    ch.bh = i % ch.cap
    ch.n = n - 1
    if n == 1 and ch.closed then retire(ch) end
    if ch.room_at and n <= ch.room_at then  -- JavaScript waits to feed it again (see watch_room)
      ch.room_at = nil
      host.channel_room(ch.room_id)
    end
    local sq = ch.sq
    if sq.h <= sq.t then
      local g, sv = pop_sender(sq)
      if g then
        buf[(ch.bh + n - 1) % ch.cap + 1] = sv
        ch.n = n
        make_ready(g, true)
      end
    end
    return true, v, true
  end
  local sq = ch.sq
  if sq.h <= sq.t then
    local g, sv = pop_sender(sq)
    if g then make_ready(g, true) return true, sv, true end
  end
  if ch.closed then return true, nil, false end
  return false
end

local function receive(c)
  local ch = channels[c] or lookup(c, "receive")
  local got, v, ok = try_receive(ch)
  if got then return v, ok end
  local g, rq = waitable("receive"), ch.rq
  local t, seq = rq.t, g.seq + 1
  g.seq = seq
  rq[t + 1], rq[t + 2] = g, seq
  rq.t = t + 2
  g.receiving = ch                          -- where cancel finds its entry
  local v, ok = park("receive on channel '" .. ch.name .. "'")
  g.receiving = nil
  return v, ok
end

local function close_channel(c)
  local ch = channels[c] or lookup(c, "close_channel")
  if ch.closed then error("close of closed channel '" .. ch.name .. "'", 2) end
  ch.closed = true
  if ch.host_id then  -- a channel fed from JavaScript: what nobody took goes with it, closed if it can be
    host.channel_closed(ch.host_id)
    if ch.room_at then
      ch.room_at = nil
      host.channel_room(ch.room_id)
    end
    local buf = ch.buf
    for _ = 1, ch.n do
      local i = ch.bh + 1
      local v = buf[i]
      buf[i], ch.bh = nil, i % ch.cap
      local close = type(v) == "table" and rawget(v, "close")
      if type(close) == "function" then pcall(close) end
    end
    ch.n = 0
  end
  while true do
    local g = pop_receiver(ch.rq)
    if not g then break end
    wake_receiver(ch, g, nil, false)
  end
  while true do
    local g = pop_sender(ch.sq)
    if not g then break end
    make_ready(g, false)
  end
  if ch.n == 0 then retire(ch) end
end

-- Where a select starts looking is pseudo-random, as in Go: no ready channel starves, whatever other selects run.
-- An LCG of its own: math.random's sequence belongs to the script.
local select_seed = 0

-- Lua's select(n, ...), its errors naming 'select' (a numeric string is an index unless it names a channel).
local function select_index(n, ...)
  local i = math_type(n) == "integer" and n or math_tointeger(tonumber(n))
  if i == nil then
    error("bad argument #1 to 'select' (number has no integer representation)", 2)
  end
  if i == 0 or i < -lua_select("#", ...) then error("bad argument #1 to 'select' (index out of range)", 2) end
  return lua_select(i, ...)
end

-- The entries a select on list left on receive queues are stale, but the one that went with its wake from channel
-- from (nil: none did).
local function left_select(list, from)
  local taken = false -- a channel listed twice has two entries, one taken
  for i = 1, #list do
    local ch = list[i]
    if ch == from and not taken then taken = true else left_stale(ch.rq) end
  end
end

local function select(first, ...)
  if first == "#" then return lua_select("#", ...) end
  local t = type(first)
  if t == "number" then
    if first >= 1 and first % 1 == 0 then return lua_select(first, ...) end -- the common case, which never fails
    return select_index(first, ...)
  end
  if t == "string" and not channels[first] and tonumber(first) then return select_index(first, ...) end
  local n = lua_select("#", ...) + 1 -- counted so that a nil argument (a misspelt field) is an error, not skipped
  if n == 1 and first == nil then error("bad argument #1 to 'select' (channel expected, got no value)", 2) end
  local list = { first, ... }
  for i = 1, n do list[i] = channels[list[i]] or lookup(list[i], "select", i) end
  select_seed = select_seed * 6364136223846793005 + 1442695040888963407
  for k = 0, n - 1 do
    local ch = list[((select_seed >> 33) + k) % n + 1] -- the high bits: an LCG's low ones repeat with a short period
    local got, v, ok = try_receive(ch)
    if got then return v, ch.name, ok end
  end
  local g = waitable("select")
  local names = {}                          -- made before anything is queued: it may fail for memory
  for i = 1, n do names[i] = "'" .. list[i].name .. "'" end
  local what = "select on channels " .. table.concat(names, ", ")
  local seq = g.seq + 1
  g.seq = seq
  for i = 1, n do
    local rq = list[i].rq
    local t = rq.t
    rq[t + 1], rq[t + 2] = g, seq
    rq.t = t + 2
  end
  g.selecting = list                        -- where cancel finds its entries
  local v, from = park(what)
  g.selecting = nil
  local closed = from == CLOSED
  if closed then v, from = nil, v end
  left_select(list, from)
  if closed then return nil, from.name, false end
  return v, from.name, true
end

-- A channel's state and its handle; a named one is found by its name too.
local function new_channel(name, size, named)
  local handle = setmetatable({}, Channel)
  local ch = { name = name, cap = size, buf = {}, bh = 0, n = 0, closed = false, rq = queue(), sq = queue(),
               handle = handle }
  channels[handle] = ch
  if named then
    channels[name] = ch
    closed_names[name] = nil
  end
  return handle
end

local function chan(name, size)
  local named = name ~= nil
  if not named then
    anonymous = anonymous + 1
    name = "(chan " .. anonymous .. ")"
  elseif type(name) ~= "string" then
    error("bad argument #1 to 'chan' (string expected, got " .. type(name) .. ")", 2)
  elseif string_find(name, "^%(chan %d+%)$") then -- so select's name of an anonymous channel is never a named one's
    error("bad argument #1 to 'chan' (the name '" .. name .. "' is kept for anonymous channels)", 2)
  end
  -- As luaL_checkinteger: 2.0 and "2" are 2.
  local whole = size == nil and 0 or math_tointeger(size)
  if not whole or whole < 0 then
    local kind = type(size)
    local got = kind == "string" and string_format("%q", size) or kind == "number" and tostring(size) or kind
    error("bad argument #2 to 'chan' (non-negative integer buffer size expected, got " .. got .. ")", 2)
  end
  local ch = named and channels[name]
  if ch and not ch.closed then
    -- Two parts of a program that disagree on a channel's size would otherwise meet far from the cause (a deadlock).
    if size ~= nil and whole ~= ch.cap then
      error(string_format("bad argument #2 to 'chan' (channel '%s' is open with a buffer of %d, not %d)", name,
        ch.cap, whole), 2)
    end
    return ch.handle
  end
  return new_channel(name, whole, named)
end

-- JavaScript is told host.channel_room(id) once the channel behind handle holds fewer than limit values (or closes).
local function watch_room(handle, limit, id)
  local ch = channels[handle]
  ch.room_at, ch.room_id = limit, id
end

-- A channel fed from JavaScript: told to the host as id when closed. Its name is for messages only: scripts reach
-- it through its handle (a listener's), never by name. Its feeder holds it to limit values, which tostring shows.
local function host_chan(name, size, limit, id)
  local handle = new_channel(name, size, false)
  channels[handle].host_id, channels[handle].limit = id, limit
  return handle
end

local channel_methods = { send = send, receive = receive, close = close_channel }
Channel.__index = function(handle, key)
  if key == "name" then return channels[handle].name end
  return channel_methods[key]
end
Channel.__name = "channel"
Channel.__len = function(handle) return channels[handle].n end
Channel.__tostring = function(handle)
  local ch = channels[handle]
  return "channel '" .. ch.name .. "' (" .. ch.n .. "/" .. (ch.limit or ch.cap) .. " buffered" ..
    (ch.closed and ", closed)" or ")")
end

-- Goroutines --------------------------------------------------------------

local function go(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'go' (function expected, got " .. type(fn) .. ")", 2)
  end
  if started_by_go >= max_goroutines then
    error("go: too many goroutines (limit " .. max_goroutines .. "; raise it with --max-goroutines)", 2)
  end
  local name = ...
  -- Packed here: passing them on to spawn would hold them on the stack twice more (a Lua call copies varargs).
  local id = spawn_packed(fn, type(name) == "string" and name or nil, nil, lua_select("#", ...) > 0 and pack(...) or nil)
  goroutines[id].by_go = true
  started_by_go = started_by_go + 1
  return id
end

local function limit_goroutines(n) max_goroutines = n end

-- Names the run in its failure reports ("error in actor 1 (path), goroutine 2: ..."), as its own failure is named.
local function name_reports(name) reported_in = name .. ", " end

local function wait()
  if current ~= nil and live - nwaiting - 1 <= 0 then return end
  local g = waitable("wait")
  nwaiting = nwaiting + 1
  waiters[nwaiting] = g
  g.seq = g.seq + 1                         -- entries a select left elsewhere must not wake it here
  park("wait for goroutines")
end

-- Ends goroutine id where it waits (parked, or woken but not yet run), as
-- if it failed with message (a call from JavaScript that ran out of time):
-- its places in waiter queues go stale and its to-be-closed variables are
-- closed. Returns the id of the host operation it waited for, if any
-- (JavaScript drops its result), or false when it is not waiting.
function cancel(id, message)
  local g = goroutines[id]
  if g == nil or (g.state ~= "parked" and g.state ~= "ready") then return false end
  g.seq = g.seq + 1
  -- Its entries are counted stale as a returning select's are, so a quiet channel does not keep them (see left_stale).
  local list = g.selecting
  if list then
    local from = g.state == "ready" and (g.b == CLOSED and g.a or g.b) or nil -- woken: that entry went with the wake
    left_select(list, from)
  elseif g.state == "parked" and g.receiving then
    left_stale(g.receiving.rq)
  elseif g.state == "parked" and g.sending then
    left_stale(g.sending.sq, 3)
  end
  local op = g.host_op
  if op then host_waiting[op], g.host_op = nil, nil end
  for i = 1, nwaiting do
    if waiters[i] == g then
      table.remove(waiters, i)
      nwaiting = nwaiting - 1
      break
    end
  end
  finish(g, false, message) -- which closes its to-be-closed variables
  return op or true
end

-- Ends goroutine id as cancel does, for an interruption (Ctrl-C in the REPL). One woken already with what it waited
-- for (a value handed to its receive, a line read) takes that first, and is ended at its next wait (see suspended).
local function interrupt(id, message)
  local g = goroutines[id]
  if g == nil or g.state ~= "ready" then return cancel(id, message) end
  g.stop = message
  return true
end

-- Ends, as cancel does, every goroutine the ended call id started that
-- still waits (the call failed, or its limit passed); quiet keeps their
-- ends from on_error and stderr. Returns the host operations they waited for.
local function cancel_started(id, message, quiet)
  local o = owners[id]
  if o == nil then return end
  local ids = {}
  for gid, g in pairs(goroutines) do
    if g.owner == o then ids[#ids + 1] = gid end
  end
  local ops = {}
  for _, gid in ipairs(ids) do
    local g = goroutines[gid]
    if g and quiet then g.mode = "watched" end -- a watched goroutine's end goes to JavaScript alone
    local op = g and cancel(gid, message)
    if math_type(op) == "integer" then ops[#ops + 1] = op end
  end
  return unpack(ops)
end

-- The running goroutine's coroutine, even inside a plain coroutine it resumes (which is part of its work);
-- outside a goroutine, the running coroutine.
local function running_goroutine()
  if current then return current.co end
  return co_running()
end

-- Whether the running goroutine is a call from JavaScript or was started by one.
local function started_by_call()
  return current ~= nil and current.owner ~= nil
end

local function on_error(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("bad argument #1 to 'on_error' (function expected, got " .. type(fn) .. ")", 2)
  end
  error_handler = fn
end

-- Where the parked goroutine's coroutine co waits: the innermost line outside SolVM's code ("file:line"), in the
-- innermost coroutine it waits inside (see relay) first, if any.
local function waits_at(co)
  local threads = { co }
  while waiting_inside[threads[#threads]] do threads[#threads + 1] = waiting_inside[threads[#threads]] end
  for i = #threads, 1, -1 do
    local level = 0
    while true do
      local info = getinfo(threads[i], level, "Sl")
      if info == nil then break end
      if info.currentline > 0 and str_sub(info.short_src, 1, #INTERNAL) ~= INTERNAL then
        return info.short_src .. ":" .. info.currentline
      end
      level = level + 1
    end
  end
end

local function parked_report()
  local ids = {}
  for id, g in pairs(goroutines) do
    if g.state == "parked" then ids[#ids + 1] = id end
  end
  table.sort(ids)
  local lines = {}
  for _, id in ipairs(ids) do
    local g = goroutines[id]
    local at = waits_at(g.co)
    lines[#lines + 1] = "goroutine " .. id .. " [" .. name_of(g) .. "]: " .. (g.wait or "waiting") ..
      (at and " at " .. at or "")
  end
  return table.concat(lines, "\n")
end

-- id -> name, or with detail id -> { name, state, waiting }. A call from JavaScript running now (an HTTP
-- handler) is listed too: it gets its id and name when first seen.
local function list_goroutines(detail)
  local list = {}
  local g = current
  if g and g.owner == g and (g.id == nil or goroutines[g.id] == nil) then
    g.id, g.name = g.id or new_id(), g.name or host.call_name()
    list[g.id] = detail and { name = g.name, state = g.state } or g.name
  end
  for id, g in pairs(goroutines) do
    if detail then
      list[id] = { name = name_of(g), state = g.state, waiting = g.wait }
    else
      list[id] = name_of(g)
    end
  end
  return list
end

-- Blocking calls made inside a plain coroutine pass their park up to the
-- goroutine's scheduler and resume the inner coroutine once woken. While
-- it waits, the coroutine is busy (its goroutine is inside it): no one
-- else may resume or close it.
local relaying = setmetatable({}, { __mode = "k" })
local relay
local function relayed(co, ...)
  relaying[co], waiting_inside[co_running()] = nil, nil
  return relay(co, co_resume(co, ...))
end
relay = function(co, ok, ...)
  if ok and ... == PARK and co_status(co) == "suspended" then
    relaying[co], waiting_inside[co_running()] = true, co
    return relayed(co, co_yield(PARK, lua_select(2, ...)))
  end
  return ok, ...
end

local function unblocked(...)
  no_relay = no_relay - 1
  if no_relay == 0 then host.relay_blocked(false) end
  return ...
end

-- Resumes co for coroutine.resume and wrap. Where the resumer cannot yield (a C call: a sort comparator, a gsub
-- callback; or outside a goroutine), a wait inside co could not be passed up: waits are refused while co runs,
-- before they begin (JavaScript hears of it for the host's calls).
local function resume_from(co, ...)
  if no_relay == 0 and co_isyieldable() then return relay(co, co_resume(co, ...)) end
  no_relay = no_relay + 1
  if no_relay == 1 then host.relay_blocked(true) end
  return unblocked(co_resume(co, ...))
end

-- Argument 1 of fname, checked as Lua checks it (the error at fname's caller).
local function check_arg(fname, expected, ...)
  local v = ...
  if type(v) ~= expected then
    local got = lua_select("#", ...) == 0 and "no value" or type(v)
    error("bad argument #1 to '" .. fname .. "' (" .. expected .. " expected, got " .. got .. ")", 3)
  end
  return v
end

-- Lua's status, but "normal" for a coroutine a goroutine waits inside (it is active, and not running here).
local function status(co)
  if relaying[co] then return "normal" end
  return co_status(co)
end

coroutine.create = function(...)
  local co = co_create(check_arg("create", "function", ...))
  user_made[co] = true
  return co
end

coroutine.status = function(...)
  return status(check_arg("status", "thread", ...))
end

coroutine.resume = function(...)
  local co = check_arg("resume", "thread", ...)
  local st = status(co)
  if st ~= "suspended" then return false, st == "dead" and "cannot resume dead coroutine" or "cannot resume non-suspended coroutine" end
  if not user_made[co] then return false, "cannot resume a goroutine's coroutine (the scheduler runs it)" end
  return resume_from(co, lua_select(2, ...))
end

coroutine.close = function(...)
  local co = check_arg("close", "thread", ...)
  local st = status(co)
  if st == "running" or st == "normal" then error("cannot close a " .. st .. " coroutine", 2) end
  if st == "suspended" and not user_made[co] then
    error("cannot close a goroutine's coroutine (the scheduler runs it)", 2)
  end
  return co_close(co)
end

-- As lua5.4's wrap: a coroutine that failed has its to-be-closed variables
-- closed before the error goes on (an error in one of them replaces it).
local function unwrap(co, ok, ...)
  if ok then return ... end
  local err = ...
  if co_status(co) == "dead" then
    local closed, close_err = co_close(co)
    if not closed then err = close_err end
  end
  if type(err) == "string" then error(err, 2) end
  error(err, 0)
end

coroutine.wrap = function(...)
  local co = co_create(check_arg("wrap", "function", ...))
  user_made[co] = true
  return function(...)
    if relaying[co] then error("cannot resume non-suspended coroutine", 2) end
    return unwrap(co, resume_from(co, ...))
  end
end

return {
  run = run, run_failed = run_failed, wake = wake, spawn = spawn, direct = direct, direct_failed = direct_failed,
  cancel = cancel, interrupt = interrupt, cancel_started = cancel_started,
  started_by_call = started_by_call, running_goroutine = running_goroutine, parked_report = parked_report,
  report_failure = report_failure, message_of = message_of,
  goroutines = goroutines, tier_up = tier_up, without_internal = without_internal,
  list_goroutines = list_goroutines, limit_goroutines = limit_goroutines, name_reports = name_reports,
  channel_metatable = Channel, host_chan = host_chan, watch_room = watch_room,
  go = go, chan = chan, send = send, receive = receive, close_channel = close_channel,
  select = select, wait = wait, on_error = on_error,
}
`;

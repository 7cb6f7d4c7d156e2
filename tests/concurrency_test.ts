import { deepStrictEqual, match, strictEqual } from "node:assert";
import { runLua, within } from "./_helpers.ts";
import { denoFileSystem } from "../host/filesystem.ts";
import { Engine, type Pusher } from "../runtime/engine.ts";
import { installFamily } from "../runtime/family.ts";

Deno.test("goroutines share globals and upvalues, get their arguments, and wait() joins them", async () => {
  const { outcome, stdout } = await runLua(`
    local total = 0
    shared = {}
    for i = 1, 5 do
      go(function(n, label) sleep(0.01 * (6 - n)) total = total + n shared[#shared + 1] = label end, i, "g" .. i)
    end
    wait()
    table.sort(shared)
    print(total, table.concat(shared, ","))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "15\tg1,g2,g3,g4,g5\n");
});

Deno.test("a goroutine that computes without waiting is never interrupted, even past the engine's tier-up window", async () => {
  // The engine makes each goroutine yield once in its first 300 ms (so V8's optimised code takes over); that yield
  // must not let another goroutine run in the middle of a read-modify-write.
  const { outcome, stdout } = await runLua(`
    counter = 0
    local order = {}
    for g = 1, 2 do
      go(function()
        local before = counter
        order[#order + 1] = "start " .. g
        local t0 = os.clock()
        while os.clock() - t0 < 0.4 do end
        counter = before + 1
        order[#order + 1] = "end " .. g
      end)
    end
    wait()
    print(table.concat(order, ", "), counter)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "start 1, end 1, start 2, end 2\t2\n");
});

Deno.test("goroutines that keep each other ready still let timers, sleep and the event loop run", async () => {
  // A pipeline and a poller that yields stay ready all the time; they stop when the timer sets the flag (or at 3 s).
  const { outcome, stdout } = await runLua(`
    local stop, polls, slept = false, 0, nil
    local t0 = os.clock()
    set_timeout(function() stop = true end, 0.05)
    go(function()
      while not stop and os.clock() - t0 < 3 do polls = polls + 1 coroutine.yield() end
    end)
    go(function() sleep(0.02) slept = os.clock() - t0 end)
    local jobs = chan("jobs")
    go(function()
      while not stop and os.clock() - t0 < 3 do send(jobs, 1) end
      close_channel(jobs)
    end)
    local n = 0
    while true do
      local _, ok = receive(jobs)
      if not ok then break end
      n = n + 1
    end
    wait()
    print(stop, os.clock() - t0 < 1, slept ~= nil and slept < 1, n > 0, polls > 0)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "true\ttrue\ttrue\ttrue\ttrue\n");
});

Deno.test("go returns an id and rejects a non-function", async () => {
  const { stdout } = await runLua(`
    local id = go(function() end)
    print(math.type(id))
    print(pcall(go, 42))`);
  match(stdout, /^integer\nfalse\t.*bad argument #1 to 'go' \(function expected, got number\)\n$/);
});

Deno.test("go passes as many values as a plain call of a vararg function can take", async () => {
  // 400,000 values fit Lua's stack twice (a vararg function that packs them), as under lua5.4; go held them three
  // times ("[solvm] scheduler:66: stack overflow").
  const { outcome, stdout } = await runLua(`
    local t = {}
    for i = 1, 400000 do t[i] = i end
    go(function(...) local got = table.pack(...) print(got.n, got[1], got[400000]) end, table.unpack(t))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "400000\t1\t400000\n");
});

Deno.test("buffered channel: send blocks only when full, values keep order, any Lua value travels", async () => {
  const { stdout } = await runLua(`
    local ch = chan("jobs", 2)
    local t = { name = "table" }
    go(function()
      send(ch, 1) send("jobs", "two") send(ch, t) send(ch, 3.5) send(ch, false)
      print("sender done")
      close_channel(ch)
    end)
    sleep(0.02)
    print("buffered", #ch)
    local got = {}
    while true do
      local v, ok = receive("jobs")
      if not ok then break end
      got[#got + 1] = tostring(v == t and "same table" or v)
    end
    print(table.concat(got, " "))
    print(receive(ch))`);
  strictEqual(stdout, "buffered\t2\nsender done\n1 two same table 3.5 false\nnil\tfalse\n");
});

Deno.test("unbuffered channel: send waits for a receiver", async () => {
  const { stdout } = await runLua(`
    chan("u")
    go(function() send("u", "x") print("sent") end)
    sleep(0.02)
    print("before receive")
    print(receive("u"))
    sleep(0.01)`);
  strictEqual(stdout, "before receive\nx\ttrue\nsent\n");
});

Deno.test("a nil value travels and is told apart from a closed channel", async () => {
  const { stdout } = await runLua(`
    chan("n", 1)
    send("n", nil)
    print(receive("n"))
    close_channel("n")
    print(receive("n"))`);
  strictEqual(stdout, "nil\ttrue\nnil\tfalse\n");
});

Deno.test("select returns the value, the channel's name and ok; closed channels are ready", async () => {
  const { stdout } = await runLua(`
    local a, b = chan("a"), chan("b", 1)
    go(function() sleep(0.02) send(b, "from b") end)
    print(select(a, "b"))
    send("b", "ready")
    print(select("a", "b"))
    close_channel("a")
    print(select("a", "b"))
    print(select("#", 1, 2, 3), select(2, "x", "y"))`);
  strictEqual(stdout, "from b\tb\ttrue\nready\tb\ttrue\nnil\ta\tfalse\n3\ty\n");
});

Deno.test("select tells a nil that was sent from a closed channel, as receive does, also when it waited", async () => {
  const { stdout } = await runLua(`
    local a, b, c = chan("a", 1), chan("b", 1), chan("c")
    send(a, nil)
    close_channel(b)
    print(select(a))
    print(select(b))
    go(function() sleep(0.01) send(c, nil) sleep(0.01) close_channel(c) end)
    print(select(c))
    print(select(c))`);
  strictEqual(stdout, "nil\ta\ttrue\nnil\tb\tfalse\nnil\tc\ttrue\nnil\tc\tfalse\n");
});

Deno.test("select: a nil or wrong argument is an error naming its position, not skipped", async () => {
  const { stdout } = await runLua(`
    local chans = { jobs = chan("jobs", 1) }
    send(chans.jobs, "job")
    print(pcall(select, chans.jobs, chans.stop))
    print(pcall(select, chans.jobs, "jobs", {}))
    print(pcall(select, nil, chans.jobs))`);
  strictEqual(
    stdout,
    "false\tbad argument #2 to 'select' (channel or channel name expected, got nil)\n" +
      "false\tbad argument #3 to 'select' (channel or channel name expected, got table)\n" +
      "false\tbad argument #1 to 'select' (channel or channel name expected, got nil)\n",
  );
});

Deno.test("select wakes once even when several channels become ready", async () => {
  const { stdout } = await runLua(`
    chan("p", 1) chan("q", 1)
    go(function() sleep(0.01) send("p", 1) send("q", 2) end)
    local v, name = select("p", "q")
    sleep(0.02)
    print(v, name, receive(name == "p" and "q" or "p"))`);
  strictEqual(stdout, "1\tp\t2\ttrue\n");
});

Deno.test("a select loop keeps memory flat: a select woken by one channel leaves nothing on the others", async () => {
  // Each select waits on both; quit is sent to only at the end, so its queue would keep every wait's entry.
  const { outcome, stdout } = await runLua(`
    local data, quit = chan("data"), chan("quit")
    go(function()
      for i = 1, 60000 do send(data, i) end
      send(quit, "bye")
    end)
    local n, early = 0, nil
    while true do
      local v, from = select(data, quit)
      if from == "quit" then print(v) break end
      n = n + 1
      if n == 10000 then collectgarbage() collectgarbage() early = collectgarbage("count") end
    end
    collectgarbage() collectgarbage()
    local grown = collectgarbage("count") - early
    print(n, grown < 64 or grown)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "bye\n60000\ttrue\n");
});

Deno.test("select on a channel listed twice, or closed while it waits, leaves the other queues working", async () => {
  const { stdout } = await runLua(`
    local a, b = chan("a"), chan("b")
    go(function() send(a, 1) close_channel(b) end)
    print(select(a, b, a))
    print(select(b, a))
    go(function() send(a, 2) end)
    print(receive(a))
    go(function() send(a, 3) end)
    print(select(a, a))`);
  strictEqual(stdout, "1\ta\ttrue\nnil\tb\tfalse\n2\ttrue\n3\ta\ttrue\n");
});

Deno.test("select is fair per call: two selects in turn, or one on a single channel between, starve no ready channel", async () => {
  const { stdout } = await runLua(`
    local high, low = chan("high", 1000), chan("low", 1000)
    local ticks, cmds = chan("ticks", 1000), chan("cmds", 1000)
    local one = chan("one", 1000)
    for i = 1, 1000 do send(high, i) send(low, i) send(ticks, i) send(cmds, i) send(one, i) end
    local got = { high = 0, low = 0, ticks = 0, cmds = 0 }
    for i = 1, 400 do
      local _, from = select(high, low)
      got[from] = got[from] + 1
      select(one)
      local _, from2 = select(ticks, cmds)
      got[from2] = got[from2] + 1
    end
    print(got.high > 100, got.low > 100, got.ticks > 100, got.cmds > 100)`);
  strictEqual(stdout, "true\ttrue\ttrue\ttrue\n");
});

Deno.test("channel errors: unknown names, wrong types, closed channels, bad sizes", async () => {
  const { stdout } = await runLua(`
    print(pcall(send, "nope", 1))
    print(pcall(receive, 42))
    chan("c", 1)
    close_channel("c")
    print(pcall(send, "c", 1))
    print(pcall(close_channel, "c"))
    print(pcall(chan, "d", -1))
    print(pcall(chan, "d", 1.5))
    print(pcall(chan, {}))
    print(pcall(select))`);
  const lines = stdout.trim().split("\n");
  match(lines[0], /false\t.*send: no channel named 'nope' \(create it with chan\)/);
  match(lines[1], /false\t.*bad argument #1 to 'receive' \(channel or channel name expected, got number\)/);
  match(lines[2], /false\t.*send on closed channel 'c'/);
  match(lines[3], /false\t.*close of closed channel 'c'/);
  match(lines[4], /false\t.*bad argument #2 to 'chan'/);
  match(lines[5], /false\t.*bad argument #2 to 'chan'/);
  match(lines[6], /false\t.*bad argument #1 to 'chan' \(string expected, got table\)/);
  match(lines[7], /false\t.*bad argument #1 to 'select'/);
});

Deno.test('chan\'s size is taken as luaL_checkinteger takes it (2.0 and "2"); a bad one is shown as given', async () => {
  const { stdout } = await runLua(`
    local c = chan("c", "2")
    send(c, 1) send(c, 2)
    print(c, chan("f", 2.0))
    print(pcall(chan, "x", "two"))
    print(pcall(chan, "y", {}))`);
  strictEqual(
    stdout,
    "channel 'c' (2/2 buffered)\tchannel 'f' (0/2 buffered)\n" +
      `false\tbad argument #2 to 'chan' (non-negative integer buffer size expected, got "two")\n` +
      "false\tbad argument #2 to 'chan' (non-negative integer buffer size expected, got table)\n",
  );
});

Deno.test("chan(name, size) on an open channel returns it when the size agrees (or is left out), else raises", async () => {
  const { stdout } = await runLua(`
    local jobs = chan("jobs", 1)
    print(chan("jobs") == jobs, chan("jobs", 1) == jobs, chan("jobs", "1") == jobs)
    print(pcall(chan, "jobs", 100))
    local plain = chan("plain")
    print(chan("plain", 0) == plain)
    print(pcall(function() chan("plain", 3) end))
    close_channel(jobs)
    print(chan("jobs", 5))`);
  strictEqual(
    stdout,
    "true\ttrue\ttrue\n" +
      "false\tbad argument #2 to 'chan' (channel 'jobs' is open with a buffer of 1, not 100)\n" +
      "true\n" +
      "false\ttest:7: bad argument #2 to 'chan' (channel 'plain' is open with a buffer of 0, not 3)\n" +
      "channel 'jobs' (0/5 buffered)\n",
  );
});

Deno.test("a sender blocked on a channel that gets closed raises an error in its goroutine", async () => {
  const { stdout, stderr } = await runLua(`
    chan("full")
    go(function() send("full", 1) end)
    sleep(0.01)
    close_channel("full")
    sleep(0.01)
    print("main goes on")`);
  strictEqual(stdout, "main goes on\n");
  match(stderr, /error in goroutine 2: test:3: send on closed channel 'full'/);
});

Deno.test("chan objects: methods, tostring, anonymous channels, re-creating a closed name", async () => {
  const { stdout } = await runLua(`
    local c = chan(nil, 3)
    c:send("m")
    print(c.name, #c, tostring(c), c:receive())
    local d = chan("x")
    print(chan("x") == d)
    d:close()
    print(chan("x") ~= d)`);
  strictEqual(stdout, "(chan 1)\t1\tchannel '(chan 1)' (1/3 buffered)\tm\ttrue\ntrue\ntrue\n");
});

Deno.test("select names an anonymous channel apart from every named one: chan refuses its name", async () => {
  const { stdout } = await runLua(`
    local named = chan("chan-1", 1)
    local anon = chan(nil, 1)
    send(anon, "from anon")
    local v, from = select(named, anon)
    print(v, from, from == anon.name, from ~= named.name)
    print(pcall(chan, anon.name))
    print(select(2, pcall(chan, "(chan 7)")))
    print(chan("(chan)").name, chan("(chan 1) x").name)`);
  strictEqual(
    stdout,
    "from anon\t(chan 1)\ttrue\ttrue\n" +
      "false\tbad argument #1 to 'chan' (the name '(chan 1)' is kept for anonymous channels)\n" +
      "bad argument #1 to 'chan' (the name '(chan 7)' is kept for anonymous channels)\n" +
      "(chan)\t(chan 1) x\n",
  );
});

Deno.test("a channel nothing refers to is collected: anonymous ones, and a closed name that chan(name) replaced", async () => {
  const { stdout } = await runLua(`
    local seen = setmetatable({}, { __mode = "k" })
    for i = 1, 1000 do
      local reply = chan()
      seen[reply] = true
      if i % 2 == 0 then send(chan(nil, 1), i) end
      close_channel(reply)
    end
    local old = chan("name", 1)
    seen[old] = true
    send(old, "buffered")
    close_channel(old)
    local kept = chan("name")
    seen[kept] = true
    old = nil
    collectgarbage() collectgarbage()
    local left = 0
    for ch in pairs(seen) do left = left + 1 end
    print(left, seen[kept], chan("name") == kept)`);
  strictEqual(stdout, "1\ttrue\ttrue\n");
});

Deno.test("a channel object is an opaque handle: writing fields on it cannot corrupt the channel", async () => {
  const { stdout } = await runLua(`
    local ch = chan("idle", 2)
    send(ch, "secret")
    ch.n, ch.closed, ch.cap, ch.buf = 0, true, 0, {}
    print(#ch, tostring(ch))
    send(ch, "more")
    print(receive(ch), receive("idle"))`);
  strictEqual(stdout, "1\tchannel 'idle' (1/2 buffered)\nsecret\tmore\ttrue\n");
});

Deno.test("a failing goroutine never stops the others; errors go to on_error with a traceback", async () => {
  const { stdout, stderr } = await runLua(`
    on_error(function(err, trace) print("handled:", err) print(trace:match("stack traceback") ~= nil) end)
    go(function() error("boom") end)
    go(function() local t = nil; return t.x end)
    go(function() sleep(0.02) print("survivor") end)
    wait()`);
  strictEqual(stderr, "");
  const lines = stdout.split("\n");
  strictEqual(lines.filter((l) => l.startsWith("handled:")).length, 2);
  match(stdout, /handled:\ttest:3: boom\ntrue\n/);
  match(stdout, /handled:\ttest:4: attempt to index a nil value \(local 't'\)/);
  match(stdout, /survivor\n$/);
});

Deno.test("on_error gets the error value itself: a table keeps its fields, from goroutines and timer callbacks", async () => {
  const { stdout, stderr } = await runLua(`
    on_error(function(err, trace)
      print(type(err), err.code, err.msg, trace:match("^%(error object is a table value%)\\nstack traceback:") ~= nil)
    end)
    go(function() error({ code = 404, msg = "not found" }) end)
    sleep(0.01)
    set_timeout(function() error({ code = 500, msg = "timer" }) end, 0.001)
    sleep(0.02)`);
  strictEqual(stderr, "");
  strictEqual(stdout, "table\t404\tnot found\ttrue\ntable\t500\ttimer\ttrue\n");
});

Deno.test("without a handler goroutine errors go to stderr; a failing handler is reported with the error it was handling, not looped", async () => {
  const plain = await runLua(`go(function() error("oops") end) sleep(0.01) print("still here")`);
  strictEqual(plain.stdout, "still here\n");
  match(plain.stderr, /^error in goroutine 2: test:1: oops\nstack traceback:\n/);
  const failing = await runLua(`
    on_error(function(err) error("handler broke") end)
    go(function() error("first") end)
    sleep(0.02)
    print("alive")`);
  strictEqual(failing.stdout, "alive\n");
  match(
    failing.stderr,
    /^error in on_error handler: test:2: handler broke\nstack traceback:\n[^]*\nthe error it was handling: error in goroutine 2: test:3: first\nstack traceback:\n/,
  );
  const { stdout } = await runLua(`print(pcall(on_error, 5))`);
  match(stdout, /bad argument #1 to 'on_error' \(function expected, got number\)/);
});

Deno.test("an error handler may block", async () => {
  const { stdout } = await runLua(`
    chan("errs", 1)
    on_error(function(err) sleep(0.01) send("errs", err) end)
    go(function() error("late") end)
    print(receive("errs"))`);
  match(stdout, /^test:4: late\ttrue\n$/);
});

Deno.test("main blocked on a channel with nothing else able to run is a deadlock", async () => {
  const { outcome } = await runLua(`chan("c") go(function() receive("c") end) receive("c")`);
  strictEqual(outcome.status, "deadlock");
  if (outcome.status === "deadlock") {
    strictEqual(
      outcome.report,
      "goroutine 1 [main]: receive on channel 'c' at test:1\ngoroutine 2 [goroutine 2]: receive on channel 'c' at test:1",
    );
  }
});

Deno.test("goroutines blocked only on channels do not keep a finished main alive", async () => {
  const started = performance.now();
  const { outcome, stdout } = await runLua(`chan("never") go(function() receive("never") end) print("main done")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "main done\n");
  strictEqual(performance.now() - started < 2000, true);
});

Deno.test("a sleeping goroutine keeps the run alive after main returns", async () => {
  const { stdout } = await runLua(`go(function() sleep(0.05) print("late goroutine") end) print("main done")`);
  strictEqual(stdout, "main done\nlate goroutine\n");
});

Deno.test("sleep: fractions, zero, and bad arguments", async () => {
  const { stdout } = await runLua(`
    sleep(0.05) sleep(0)
    print(pcall(sleep, -1))
    print(pcall(sleep, "x"))
    print(pcall(sleep, 0/0))`);
  const lines = stdout.trim().split("\n");
  match(lines[0], /bad argument #1 to 'sleep' \(non-negative finite number of seconds expected, got -1\)/);
  match(lines[1], /bad argument #1 to 'sleep' \(number expected, got string\)/);
  match(lines[2], /bad argument #1 to 'sleep'/);
});

Deno.test("sleep longer than setTimeout's 24.8 days still sleeps (it used to wake at once)", async () => {
  const { stdout, outcome } = await runLua(`
    go(function() sleep(3e6) print("woke too early") end)
    sleep(0.1)
    print("main done")
    os.exit(0)`);
  deepStrictEqual(outcome, { status: "exit", code: 0 });
  strictEqual(stdout, "main done\n");
});

Deno.test("sleep lasts about as long as asked and parks only its goroutine", async () => {
  const { stdout } = await runLua(`
    local ticks = 0
    go(function() for i = 1, 5 do ticks = ticks + 1 sleep(0.01) end end)
    sleep(0.2)
    print(ticks)`);
  strictEqual(stdout, "5\n");
});

Deno.test("blocking calls work inside plain coroutines, pcall and nested functions", async () => {
  const { stdout } = await runLua(`
    local gen = coroutine.wrap(function() for i = 1, 3 do sleep(0.001) coroutine.yield(i) end end)
    print(gen(), gen(), gen())
    print(pcall(function() sleep(0.001) return "inside pcall" end))
    local co = coroutine.create(function(a) chan("k", 1) send("k", a) local v = receive("k") coroutine.yield(v * 2) return "end" end)
    print(coroutine.resume(co, 21))
    print(coroutine.resume(co))
    print(pcall(coroutine.wrap(function() error("in wrap") end)))`);
  strictEqual(
    stdout,
    "1\t2\t3\ntrue\tinside pcall\ntrue\t42\ntrue\tend\nfalse\ttest:8: in wrap\n",
  );
});

Deno.test("a bare coroutine.yield() in a goroutine lets the others run", async () => {
  const { stdout } = await runLua(`
    local order = {}
    go(function() for i = 1, 3 do order[#order + 1] = "a" .. i coroutine.yield() end end)
    go(function() for i = 1, 3 do order[#order + 1] = "b" .. i coroutine.yield() end end)
    wait()
    print(table.concat(order, " "))`);
  strictEqual(stdout, "a1 b1 a2 b2 a3 b3\n");
});

Deno.test("blocking where no goroutine can wait gives a clear error", async () => {
  const { stdout } = await runLua(`
    chan("c")
    print(pcall(table.sort, {3, 2, 1}, function(a, b) sleep(0) return a < b end))`);
  match(stdout, /false\t.*sleep cannot wait here/);
});

Deno.test("a wait refused inside a C call names the call and the line, and has done nothing", async () => {
  const dir = await Deno.makeTempDir();
  const { stdout, outcome } = await runLua(`
    local c = chan("c")
    local function refused(fn) return select(2, pcall(table.sort, { 2, 1 }, function(a, b) fn() return a < b end)) end
    print(refused(function() send(c, "ghost") end))
    print(refused(function() select(c) end))
    print(refused(function() write_file("${dir}/f", "written") end))
    print(io.open("${dir}/f"))
    go(function()
      print(refused(wait))
      sleep(0.05)
      print("goroutine slept")
    end)
    sleep(0.01)
    wait()
    print("main waited")
    go(function() send(c, "real") end)
    print(receive(c))
    print(get_goroutines(true)[1].state)`);
  await Deno.remove(dir, { recursive: true });
  deepStrictEqual(outcome, { status: "ok" });
  const lines = stdout.split("\n");
  strictEqual(lines[0], "test:4: send cannot wait here (not in a goroutine, or across a C call)");
  strictEqual(lines[1], "test:5: select cannot wait here (not in a goroutine, or across a C call)");
  strictEqual(lines[2], "test:6: write_file cannot wait here (not in a goroutine, or across a C call)");
  match(lines[3], /^nil\t.*No such file/);
  strictEqual(lines[4], "test:3: wait cannot wait here (not in a goroutine, or across a C call)");
  deepStrictEqual(lines.slice(5), ["goroutine slept", "main waited", "real\ttrue", "running", ""]);
});

Deno.test("a refused read inside a C call leaves the data for the next read; the error names the script's line", async () => {
  const { stdout, outcome } = await runLua(`
    local s = tcp_listen(0, "127.0.0.1")
    go(function() local conn = receive(s) conn.write("first;") sleep(0.05) conn.write("second;") end)
    local conn = tcp_connect("127.0.0.1", s.port)
    sleep(0.02)
    print(conn.read())
    print(pcall(table.sort, { 2, 1 }, function(a, b) conn.read() return a < b end))
    sleep(0.1)
    print(conn.read())
    conn.close() s.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "first;\nfalse\ttest:7: conn.read cannot wait here (not in a goroutine, or across a C call)\nsecond;\n",
  );
});

Deno.test("a coroutine resumed inside a C call cannot pass a wait up: refused inside it, before it begins", async () => {
  const { stdout, outcome } = await runLua(`
    local gen = coroutine.wrap(function() sleep(0.01) coroutine.yield(1) end)
    print(pcall(string.gsub, "x", "x", function() gen() end))
    local co = coroutine.create(function() receive(chan("never")) end)
    print(pcall(table.sort, { 2, 1 }, function(a, b) print(coroutine.resume(co)) return a < b end))
    -- Waits pass up again once the C call is over.
    local later = coroutine.wrap(function() sleep(0.01) return "woke" end)
    print(later())`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "false\ttest:3: test:2: sleep cannot wait here (not in a goroutine, or across a C call)\n" +
      "false\ttest:4: receive cannot wait here (not in a goroutine, or across a C call)\ntrue\nwoke\n",
  );
});

Deno.test("a coroutine a goroutine waits inside is busy: another goroutine cannot resume or close it", async () => {
  const { stdout, outcome } = await runLua(`
    local gen = coroutine.wrap(function()
      local n = 0
      while true do sleep(0.05) n = n + 1 coroutine.yield(n) end
    end)
    go(function() print("A", pcall(gen)) end)
    go(function() sleep(0.01) print("B", pcall(gen)) end)
    wait()
    print("main", gen())
    local co = coroutine.create(function() sleep(0.05) return "finished" end)
    go(function() print("C", coroutine.resume(co)) end)
    go(function()
      sleep(0.01)
      print("D", coroutine.status(co), coroutine.resume(co))
      print("D", pcall(coroutine.close, co))
    end)
    wait()
    print(coroutine.status(co))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "B\tfalse\tcannot resume non-suspended coroutine\nA\ttrue\t1\nmain\t2\n" +
      "D\tnormal\tfalse\tcannot resume non-suspended coroutine\nD\tfalse\tcannot close a normal coroutine\n" +
      "C\ttrue\tfinished\ndead\n",
  );
});

Deno.test("the coroutine library's errors name the script's line and Lua's function names; wrap's coroutine is the user's", async () => {
  const { stdout, outcome } = await runLua(`
    local co
    co = coroutine.create(function() coroutine.close(co) end)
    print(coroutine.resume(co))
    print(pcall(function() coroutine.resume(nil) end))
    print(pcall(function() coroutine.status() end))
    print(pcall(function() coroutine.close("x") end))
    local inner
    local w = coroutine.wrap(function() inner = coroutine.running() coroutine.yield(1) return 2 end)
    w()
    print(coroutine.status(inner), coroutine.resume(inner))
    print(coroutine.resume(coroutine.running()))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "false\ttest:3: cannot close a running coroutine\n" +
      "false\ttest:5: bad argument #1 to 'resume' (thread expected, got nil)\n" +
      "false\ttest:6: bad argument #1 to 'status' (thread expected, got no value)\n" +
      "false\ttest:7: bad argument #1 to 'close' (thread expected, got string)\n" +
      "suspended\ttrue\t2\n" +
      "false\tcannot resume non-suspended coroutine\n",
  );
});

Deno.test("a named channel closed and drained is freed; its name still names a closed channel", async () => {
  const { stdout, outcome } = await runLua(`
    local function heap() collectgarbage() collectgarbage() return collectgarbage("count") end
    local base = heap()
    for i = 1, 20000 do
      local name = "reply-" .. i
      chan(name, 1) send(name, i) receive(name) close_channel(name)
    end
    print(heap() - base < 4096)
    print(receive("reply-7"))
    print(select("reply-7"))
    print(pcall(send, "reply-7", 1))
    chan("reply-7", 1) send("reply-7", "again") print(receive("reply-7"))
    local l = tcp_listen(0, "127.0.0.1")
    print(pcall(send, "tcp_listen 127.0.0.1:" .. l.port, "x"))
    l.close()`);
  deepStrictEqual(outcome, { status: "ok" });
  const lines = stdout.split("\n");
  deepStrictEqual(lines.slice(0, 5), [
    "true",
    "nil\tfalse",
    "nil\treply-7\tfalse",
    "false\tsend on closed channel 'reply-7'",
    "again\ttrue",
  ]);
  match(lines[5], /^false\tsend: no channel named 'tcp_listen 127\.0\.0\.1:\d+'/);
});

Deno.test("many goroutines through one unbuffered channel lose nothing", async () => {
  const { stdout } = await runLua(`
    chan("sum")
    for i = 1, 1000 do go(function() send("sum", i) end) end
    local total = 0
    for i = 1, 1000 do total = total + receive("sum") end
    print(total)`);
  strictEqual(stdout, "500500\n");
});

Deno.test("the tier-up yield never shows up as a yield of a user coroutine", async () => {
  // The engine's tier-up hook yields a goroutine once after its first 300 ms;
  // a plain coroutine running busy code at that moment must not notice.
  const { stdout } = await runLua(`
    local gen = coroutine.wrap(function()
      for round = 1, 3 do
        local s = 0
        for i = 1, 3000000 do s = s + i % 3 end
        coroutine.yield(s)
      end
    end)
    local results = {}
    local started = os.clock()
    repeat results[#results + 1] = gen() until #results == 3
    print(#results, results[1], results[2] == results[1], results[3] == results[1])`);
  strictEqual(stdout, "3\t3000000\ttrue\ttrue\n");
});

Deno.test("channels lose and duplicate nothing while the tier-up hook is active", async () => {
  // The hook must never yield inside the scheduler's own code (a send half done).
  const { stdout, outcome } = await runLua(`
    local ch = chan("b", 64)
    go(function() for i = 1, 1000000 do send(ch, i) end close_channel(ch) end)
    local n, sum = 0, 0
    while true do local v, ok = receive(ch) if not ok then break end n = n + 1 sum = sum + v end
    chan("u")
    go(function() for i = 1, 200000 do send("u", i) end close_channel("u") end)
    local m = 0
    while true do local v, ok = receive("u") if not ok then break end m = m + 1 end
    print(n, sum == 1000000 * 1000001 // 2, m)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "1000000\ttrue\t200000\n");
});

Deno.test("many blocking calls finishing in the same tick wake every goroutine", async () => {
  // Wake-ups are delivered in batches pushed on the main Lua stack, which must be grown first.
  const { stdout, outcome } = await runLua(`
    local done = 0
    for i = 1, 500 do go(function() sleep(0.02) done = done + 1 end) end
    wait()
    print(done)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "500\n");
});

Deno.test("a goroutine started with no arguments gets none, and a timer callback none either", async () => {
  const { stdout } = await runLua(`
    go(function(...) print("go", select("#", ...)) end)
    set_timeout(function(...) print("timer", select("#", ...)) end, 0.001)
    wait()
    sleep(0.05)`);
  strictEqual(stdout, "go\t0\ntimer\t0\n");
});

Deno.test("coroutine.resume and wrap return exactly what the coroutine yields, also inside goroutines", async () => {
  const { stdout } = await runLua(`
    local function counts()
      local co = coroutine.create(function() coroutine.yield() coroutine.yield(nil) return 1, 2 end)
      local w = coroutine.wrap(function() coroutine.yield() end)
      return select("#", coroutine.resume(co)), select("#", coroutine.resume(co)), select("#", coroutine.resume(co)),
        select("#", w())
    end
    print(counts())
    go(function() print(counts()) end)
    wait()`);
  strictEqual(stdout, "1\t2\t3\t0\n1\t2\t3\t0\n");
});

Deno.test("a coroutine.wrap generator that fails closes its to-be-closed variables first, as lua5.4's does", async () => {
  const { stdout } = await runLua(`
    local gen = coroutine.wrap(function()
      local res <close> = setmetatable({}, { __close = function() print("cleanup ran") end })
      coroutine.yield(1)
      error("fail in generator")
    end)
    print(gen())
    print(pcall(gen))
    print(pcall(gen))
    local bad = coroutine.wrap(function()
      local res <close> = setmetatable({}, { __close = function() error("close failed", 0) end })
      error("body failed", 0)
    end)
    print(pcall(bad))`);
  strictEqual(
    stdout,
    "1\ncleanup ran\nfalse\ttest:5: fail in generator\nfalse\tcannot resume dead coroutine\nfalse\tclose failed\n",
  );
});

Deno.test("coroutine.wrap and create with a non-function: lua5.4's message at the caller's line", async () => {
  const { stdout } = await runLua(`
    print(pcall(function() coroutine.wrap(5) end))
    print(pcall(function() coroutine.create() end))`);
  strictEqual(
    stdout,
    "false\ttest:2: bad argument #1 to 'wrap' (function expected, got number)\n" +
      "false\ttest:3: bad argument #1 to 'create' (function expected, got no value)\n",
  );
});

Deno.test("a goroutine's own coroutine cannot be resumed or closed by user code; the goroutine runs on", async () => {
  const { outcome, stdout } = await runLua(`
    local T
    go(function() T = coroutine.running() sleep(0.05) print("goroutine woke") end)
    sleep(0.01)
    print(coroutine.status(T), coroutine.resume(T))
    print(pcall(coroutine.close, T))
    wait()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "suspended\tfalse\tcannot resume a goroutine's coroutine (the scheduler runs it)\n" +
      "false\tcannot close a goroutine's coroutine (the scheduler runs it)\ngoroutine woke\n",
  );
});

Deno.test("wait() inside a goroutine that main waits for: the inner wait returns first", async () => {
  const { stdout } = await runLua(`
    local order = {}
    go(function()
      go(function() sleep(0.02) order[#order + 1] = "inner" end)
      wait()
      order[#order + 1] = "outer"
    end)
    sleep(0.005)
    wait()
    print(table.concat(order, ","))`);
  strictEqual(stdout, "inner,outer\n");
});

Deno.test("a goroutine or main failing closes its to-be-closed variables first; an error in one replaces its error, as in Lua", async () => {
  const { outcome, stdout } = await runLua(`
    on_error(function(message) print("on_error:", message) end)
    local function guard(name) return setmetatable({}, { __close = function(_, e) print(name .. " closed:", e) end }) end
    go(function() local g <close> = guard("goroutine") error("goroutine failed") end)
    go(function()
      local bad <close> = setmetatable({}, { __close = function() error("close failed", 0) end })
      error("body failed", 0)
    end)
    sleep(0.02)
    local m <close> = guard("main")
    error("main failed")`);
  strictEqual(
    stdout,
    "goroutine closed:\ttest:4: goroutine failed\non_error:\ttest:4: goroutine failed\n" +
      "on_error:\tclose failed\nmain closed:\ttest:11: main failed\n",
  );
  strictEqual(outcome.status === "error" && outcome.message, "test:11: main failed");
  const replaced = await runLua(`
    local bad <close> = setmetatable({}, { __close = function() error("close failed") end })
    error("main failed")`);
  deepStrictEqual(replaced.outcome, {
    status: "error",
    message: "test:2: close failed",
    traceback: "test:2: close failed",
  });
  strictEqual(replaced.stderr, "");
});

Deno.test("select(n, ...) keeps Lua's meaning and errors, a numeric string included", async () => {
  const { stdout } = await runLua(`
    print(select(2, "a", "b", "c"))
    print(select("2", "a", "b"))
    print(select(-1, "a", "b"))
    print(pcall(select, 0))
    print(pcall(select, 1.5, "a"))
    local ch = chan("7", 1) send(ch, "v") print(select("7"))`);
  strictEqual(
    stdout,
    "b\tc\nb\nb\nfalse\tbad argument #1 to 'select' (index out of range)\n" +
      "false\tbad argument #1 to 'select' (number has no integer representation)\nv\t7\ttrue\n",
  );
});

Deno.test("a finished wait's results that no goroutine will take are discarded: the engine closed before the pump ran", async () => {
  const engine = await Engine.create();
  let discards = 0;
  let finish!: (push: Pusher) => void;
  const done = new Promise<Pusher>((resolve) => finish = resolve);
  installFamily(engine, (e) => ({ wait_for: e.blocking("wait_for", () => done) }));
  const outcome = engine.execute("wait_for() print('resumed')", "=test");
  await new Promise((resolve) => setTimeout(resolve, 0)); // the main chunk is parked in wait_for
  // Registered after the engine's own reaction: runs once the result is stored, before the pump takes it.
  done.then(() => engine.close());
  finish(Object.assign(() => 0, { discard: () => discards++ }));
  deepStrictEqual(await outcome, { status: "closed" });
  strictEqual(discards, 1);
});

Deno.test("an exception a host part throws through Lua ends the run with 'internal error'; later calls do not run in the broken state", async () => {
  const files = denoFileSystem();
  const engine = await Engine.create({
    files: {
      ...files,
      write: (fd, bytes) => {
        if (fd > 2) throw new TypeError("a file system's bug");
        return files.write(fd, bytes);
      },
    },
  });
  const path = await Deno.makeTempFile();
  try {
    const first = await engine.execute(
      `local f = io.open(${JSON.stringify(path)}, "w") f:setvbuf("no") f:write("x")`,
      "=test",
    );
    deepStrictEqual([first.status, first.status === "error" && first.message], [
      "error",
      "internal error: a file system's bug",
    ]);
    deepStrictEqual(await within(engine.execute("return 1", "=test"), 5_000, "a later call"), first);
  } finally {
    engine.close();
    await Deno.remove(path);
  }
});

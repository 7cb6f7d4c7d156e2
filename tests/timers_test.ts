import { deepStrictEqual, match, ok, strictEqual } from "node:assert";
import { type LuaRun, runLua, solvm, tempFiles } from "./_helpers.ts";

/**
 * Runs `source` like runLua, but fails instead of hanging when the run does
 * not end within `ms` (a timer that is never released keeps it alive).
 * Also returns how long the whole run took, in milliseconds.
 */
async function run(source: string, ms = 10_000): Promise<LuaRun & { elapsed: number }> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the run did not end within ${ms} ms`)), ms);
  });
  try {
    const result = await Promise.race([runLua(source), late]);
    return { ...result, elapsed: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

// ---- ids and clearing -------------------------------------------------------

Deno.test("set_timeout, set_interval and cron return distinct integer ids", async () => {
  const { outcome, stdout } = await run(`
    local a = set_timeout(function() end, 0)
    local b = set_interval(function() end, 10)
    local c = cron("0 0 0 1 1 *", function() end)
    print(math.type(a), math.type(b), math.type(c), a ~= b and b ~= c and a ~= c)
    clear_interval(b) clear_cron(c)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "integer\tinteger\tinteger\ttrue\n");
});

Deno.test("clear_*: true once, then false; false for unknown ids and for ids of another kind", async () => {
  const { outcome, stdout, stderr } = await run(`
    local t = set_timeout(function() print("timeout fired") end, 0.05)
    local i = set_interval(function() end, 10)
    local c = cron("0 0 0 1 1 *", function() end)
    -- the wrong kind cancels nothing
    print(clear_interval(t), clear_cron(t), clear_timeout(i), clear_cron(i), clear_timeout(c), clear_interval(c))
    print(clear_timeout(12345), clear_interval(12345), clear_cron(12345), clear_timeout(-1), clear_timeout(0))
    print(clear_interval(i), clear_interval(i))
    print(clear_cron(c), clear_cron(c))
    sleep(0.1)
    -- a timeout that already fired is no longer there to clear
    print(clear_timeout(t))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stderr, "");
  strictEqual(
    stdout,
    "false\tfalse\tfalse\tfalse\tfalse\tfalse\n" +
      "false\tfalse\tfalse\tfalse\tfalse\n" +
      "true\tfalse\n" +
      "true\tfalse\n" +
      "timeout fired\n" +
      "false\n",
  );
});

Deno.test("a cleared timeout never fires; clear_timeout returns true once", async () => {
  const { outcome, stdout } = await run(`
    local fired = {}
    local ids = {}
    for i = 1, 6 do
      ids[i] = set_timeout(function() fired[#fired + 1] = i end, 0.02 * i)
    end
    print(clear_timeout(ids[2]), clear_timeout(ids[4]), clear_timeout(ids[4]))
    -- clearing from another goroutine and from another timer works too
    go(function() print("from goroutine", clear_timeout(ids[5])) end)
    set_timeout(function() print("from timer", clear_timeout(ids[6])) end, 0.01)
    sleep(0.3)
    print(table.concat(fired, ","))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "true\ttrue\tfalse\nfrom goroutine\ttrue\nfrom timer\ttrue\n1,3\n");
});

Deno.test("clear_timeout inside its own callback returns false (it is already running)", async () => {
  const { stdout } = await run(`
    local id
    id = set_timeout(function() print("inside", clear_timeout(id)) end, 0.01)`);
  strictEqual(stdout, "inside\tfalse\n");
});

// ---- timeouts -------------------------------------------------------------------

Deno.test("timeouts fire in order of their delay, after the main chunk", async () => {
  const { outcome, stdout } = await run(`
    for _, d in ipairs({ 0.09, 0.03, 0.15, 0, 0.06, 0.12 }) do
      set_timeout(function() print(d) end, d)
    end
    print("main done")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "main done\n0\n0.03\n0.06\n0.09\n0.12\n0.15\n");
});

Deno.test("a pending timeout keeps the run alive after the main chunk returns", async () => {
  const { outcome, stdout, elapsed } = await run(`
    set_timeout(function() print("later") end, 0.3)
    print("main done")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "main done\nlater\n");
  ok(elapsed >= 280, `ended after ${elapsed} ms, before the timeout was due`);
});

Deno.test("timeouts set from goroutines and from other timeouts fire", async () => {
  const { stdout } = await run(`
    go(function() set_timeout(function() print("from goroutine") end, 0.01) end)
    set_timeout(function()
      print("outer")
      set_timeout(function()
        print("inner")
        set_timeout(function() print("innermost") end, 0)
      end, 0.02)
    end, 0.05)`);
  strictEqual(stdout, "from goroutine\nouter\ninner\ninnermost\n");
});

Deno.test("timeout callbacks may block: sleep parks only that callback", async () => {
  const { stdout } = await run(`
    set_timeout(function() print("A starts") sleep(0.15) print("A done") end, 0.01)
    set_timeout(function() print("B") end, 0.06)`);
  strictEqual(stdout, "A starts\nB\nA done\n");
});

Deno.test("timeout callbacks may block on channels; a main blocked on send is no deadlock while a timeout is due", async () => {
  const { outcome, stdout } = await run(`
    chan("c")
    set_timeout(function() print("callback waits") print("callback got", receive("c")) end, 0.05)
    send("c", "x")
    print("main sent")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "callback waits\ncallback got\tx\ttrue\nmain sent\n");
});

Deno.test("a timeout callback waits for a value another timeout sends", async () => {
  const { outcome, stdout } = await run(`
    chan("c")
    set_timeout(function() local v = receive("c") print("got", v) end, 0.01)
    set_timeout(function() send("c", "hello") print("sent") end, 0.08)
    print("main done")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout.split("\n").sort().join("\n"), "\ngot\thello\nmain done\nsent");
  ok(stdout.startsWith("main done\n"));
});

// ---- intervals ------------------------------------------------------------------

Deno.test("an interval of 0.1 s ticks 3..6 times in 0.55 s and never after it is cleared", async () => {
  const { outcome, stdout } = await run(`
    local ticks = 0
    local id = set_interval(function() ticks = ticks + 1 end, 0.1)
    sleep(0.55)
    local cleared = clear_interval(id)
    local at_clear = ticks
    sleep(0.35)
    print(cleared, at_clear, ticks)`);
  deepStrictEqual(outcome, { status: "ok" });
  const [cleared, atClear, after] = stdout.trim().split("\t");
  strictEqual(cleared, "true");
  const n = Number(atClear);
  ok(n >= 3 && n <= 6, `ticked ${n} times in 0.55 s`);
  strictEqual(after, atClear, "ticked after clear_interval");
});

Deno.test("an active interval keeps the run alive; clearing it (here from its own callback) ends the run", async () => {
  const { outcome, stdout, stderr, elapsed } = await run(`
    local n = 0
    local id
    id = set_interval(function()
      n = n + 1
      print("tick", n)
      if n == 3 then print("cleared", clear_interval(id)) end
    end, 0.05)
    print("main done")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stderr, "");
  strictEqual(stdout, "main done\ntick\t1\ntick\t2\ntick\t3\ncleared\ttrue\n");
  ok(elapsed >= 140 && elapsed < 5000, `took ${elapsed} ms`);
});

Deno.test("a slow interval callback never runs twice at once: ticks that come meanwhile are skipped", async () => {
  const { outcome, stdout } = await run(`
    local running, overlaps, runs = false, 0, 0
    local id = set_interval(function()
      if running then overlaps = overlaps + 1 end
      running = true
      runs = runs + 1
      sleep(0.1)
      running = false
    end, 0.03)
    sleep(0.6)
    clear_interval(id)
    sleep(0.15) -- let a run in progress finish
    print(overlaps, runs, running)`);
  deepStrictEqual(outcome, { status: "ok" });
  const [overlaps, runs, running] = stdout.trim().split("\t");
  strictEqual(overlaps, "0");
  strictEqual(running, "false");
  // Every 0.03 s for 0.6 s would be ~20 runs; with skipping each run takes >= 0.1 s.
  ok(Number(runs) >= 2 && Number(runs) <= 7, `ran ${runs} times`);
});

Deno.test("an interval callback's error reaches on_error and the interval keeps running", async () => {
  const { outcome, stdout, stderr } = await run(`
    on_error(function(err) print("handled", err) end)
    local n = 0
    local id
    id = set_interval(function()
      n = n + 1
      if n == 3 then clear_interval(id) end
      error("tick " .. n)
    end, 0.03)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stderr, "");
  strictEqual(stdout, "handled\ttest:8: tick 1\nhandled\ttest:8: tick 2\nhandled\ttest:8: tick 3\n");
});

Deno.test("without on_error a callback's error goes to stderr with a traceback; the others run on", async () => {
  const { outcome, stdout, stderr } = await run(`
    set_timeout(function() error("boom") end, 0.01)
    set_timeout(function() print("later") end, 0.05)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "later\n");
  match(stderr, /^error in timeout \d+: test:2: boom\nstack traceback:\n/);
});

Deno.test("interval callbacks may block on channels: each tick hands a value to the main chunk", async () => {
  const { outcome, stdout } = await run(`
    chan("ticks") -- unbuffered: each callback waits for main to take its value
    local n = 0
    local id = set_interval(function() n = n + 1 send("ticks", n) end, 0.02)
    local got = {}
    for _ = 1, 5 do got[#got + 1] = receive("ticks") end
    print(clear_interval(id), table.concat(got, ","))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "true\t1,2,3,4,5\n");
});

Deno.test("timer errors show the value as Lua's tostring does; an id read as a double is refused", async () => {
  const { outcome, stdout } = await run(`
    print(pcall(set_interval, print, -math.huge))
    print(pcall(set_timeout, print, -9007199254740993))
    print(pcall(clear_timeout, 1e300))
    print(pcall(clear_interval, 9007199254740993))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "false\tbad argument #2 to 'set_interval' (positive finite number of seconds expected, got -inf)\n" +
      "false\tbad argument #2 to 'set_timeout' (non-negative finite number of seconds expected, got -9007199254740993)\n" +
      "false\tbad argument #1 to 'clear_timeout' (number has no integer representation)\n" +
      "true\tfalse\n",
  );
});

// ---- cron -------------------------------------------------------------------------

Deno.test("cron every second fires at least once within 2.2 s", async () => {
  const { outcome, stdout } = await run(`
    local fired = 0
    local id = cron("* * * * * *", function() fired = fired + 1 end)
    sleep(2.2)
    print(clear_cron(id), fired)`);
  deepStrictEqual(outcome, { status: "ok" });
  const [cleared, fired] = stdout.trim().split("\t");
  strictEqual(cleared, "true");
  ok(Number(fired) >= 1 && Number(fired) <= 3, `fired ${fired} times in 2.2 s`);
});

Deno.test("cron reads ? as *, as Go's cron does, not as the field's value when the job was made", async () => {
  const { outcome, stdout } = await run(`
    local fired, stepped = 0, 0
    local id = cron("? * * ? * ?", function() fired = fired + 1 end)
    local step = cron("?/1 * * * * *", function() stepped = stepped + 1 end)
    sleep(2.2)
    print(clear_cron(id), clear_cron(step), fired >= 1, stepped >= 1)
    for _, expr in ipairs({ "0 0 9 1? * *", "0 ?-5 * * * *" }) do
      print(select(2, pcall(cron, expr, function() end)))
    end`);
  deepStrictEqual(outcome, { status: "ok" });
  const lines = stdout.trim().split("\n");
  strictEqual(lines[0], "true\ttrue\ttrue\ttrue");
  strictEqual(lines[1], 'cron: invalid expression "0 0 9 1? * *": day of month "1?" is not a number');
  strictEqual(lines[2], 'cron: invalid expression "0 ?-5 * * * *": minute "?" is not a number');
});

Deno.test("a five-field cron expression is accepted, keeps the run alive and can be cleared", async () => {
  const { outcome, stdout, elapsed } = await run(`
    local every_minute = cron("* * * * *", function() print("never within the test") end)
    local nightly = cron("30 2 * * 1-5", function() end)
    print(math.type(every_minute), clear_cron(every_minute), clear_cron(nightly), clear_cron(nightly))
    -- while a job is active the run goes on after the main chunk
    local id = cron("0 0 0 1 1 *", function() end)
    set_timeout(function() print("still alive", clear_cron(id)) end, 0.2)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "integer\ttrue\ttrue\tfalse\nstill alive\ttrue\n");
  ok(elapsed < 5000, `took ${elapsed} ms`);
});

Deno.test("an active cron job keeps the run alive until it clears itself", async () => {
  const { outcome, stdout } = await run(`
    local id
    id = cron("* * * * * *", function() print("fired", clear_cron(id)) end)
    print("main done")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "main done\nfired\ttrue\n");
});

Deno.test("an invalid cron expression raises an error quoting it; nothing is scheduled", async () => {
  const { outcome, stdout } = await run(`
    for _, expr in ipairs({ "bad", "* * * *", "* * * * * * * *", "61 * * * * *", "* 25 * * *", "" }) do
      local ok, err = pcall(cron, expr, function() print("never") end)
      print(ok, err)
    end
    print(pcall(cron, "* * * * *", nil))
    print(pcall(cron, nil, function() end))`);
  deepStrictEqual(outcome, { status: "ok" });
  const lines = stdout.trim().split("\n");
  strictEqual(lines.length, 8);
  match(lines[0], /^false\tcron: invalid expression "bad": \S/);
  match(lines[1], /^false\tcron: invalid expression "\* \* \* \*": \S/);
  match(lines[2], /^false\tcron: invalid expression "\* \* \* \* \* \* \* \*": \S/);
  match(lines[3], /^false\tcron: invalid expression "61 \* \* \* \* \*": \S/);
  match(lines[4], /^false\tcron: invalid expression "\* 25 \* \* \*": \S/);
  match(lines[5], /^false\tcron: invalid expression "": \S/);
  strictEqual(lines[6], "false\tbad argument #2 to 'cron' (function expected, got nil)");
  strictEqual(lines[7], "false\tbad argument #1 to 'cron' (string expected, got nil)");
});

Deno.test("cron errors name the value as written and its field's range; a date that never comes never fires", async () => {
  const { stdout } = await run(`
    for _, expr in ipairs({ "0 0 0 1 13 *", "0 0 0 0 * *", "0 0 0 1-40 * *", "* 25 * * *", "0 0 0 31 4,6,9,11 *" }) do
      print(select(2, pcall(cron, expr, function() end)))
    end`);
  strictEqual(
    stdout,
    'cron: invalid expression "0 0 0 1 13 *": month 13 is out of range (1-12)\n' +
      'cron: invalid expression "0 0 0 0 * *": day of month 0 is out of range (1-31)\n' +
      'cron: invalid expression "0 0 0 1-40 * *": day of month 40 is out of range (1-31)\n' +
      'cron: invalid expression "* 25 * * *": hour 25 is out of range (0-23)\n' +
      'cron: invalid expression "0 0 0 31 4,6,9,11 *": it never fires\n',
  );
});

Deno.test("cron errors name the field the same way for five and six fields, with no NaN or JavaScript types", async () => {
  const { stdout } = await run(`
    for _, expr in ipairs({ "a * * * * *", "a * * * *", "* * * * * x", "* * * * x", "-1 * * * * *", "*/ * * * * *",
      "0 0 0 * * 5#6", "0 0 0 * * L", "5-3 * * * * *", "0 1,,2 * * * *", "* * * *" }) do
      print(select(2, pcall(cron, expr, function() end)))
    end`);
  strictEqual(
    stdout,
    'cron: invalid expression "a * * * * *": second "a" is not a number\n' +
      'cron: invalid expression "a * * * *": minute "a" is not a number\n' +
      'cron: invalid expression "* * * * * x": day of week "x" is not a number or a name (SUN-SAT)\n' +
      'cron: invalid expression "* * * * x": day of week "x" is not a number or a name (SUN-SAT)\n' +
      'cron: invalid expression "-1 * * * * *": second "-1" is not a value, a range (a-b) or a step (*/n, a-b/n)\n' +
      'cron: invalid expression "*/ * * * * *": second "*/": the step is a whole number from 1 to 60\n' +
      'cron: invalid expression "0 0 0 * * 5#6": day of week "5#6": the weekday\'s place in the month is 1-5 or L\n' +
      'cron: invalid expression "0 0 0 * * L": day of week "L" is not a number or a name (SUN-SAT)\n' +
      'cron: invalid expression "5-3 * * * * *": second "5-3": the range ends before it starts\n' +
      'cron: invalid expression "0 1,,2 * * * *": minute "1,,2" has an empty item between commas\n' +
      'cron: invalid expression "* * * *": expected 6 fields (second minute hour day-of-month month day-of-week) or 5, ' +
      "got 4\n",
  );
});

Deno.test("a cron expression with space around it (a line read from a file) is read without it", async () => {
  const { outcome, stdout } = await run(`
    local fired = 0
    local id = cron(" * * * * * *\\n", function() fired = fired + 1 end)
    local named = cron("\\t0 0 9 * JAN-dec mon-FRI ", function() end)
    local nth = cron("0 0 0 L * 5#L", function() end)
    sleep(1.2)
    print(clear_cron(id), clear_cron(named), clear_cron(nth), fired >= 1)`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stdout, "true\ttrue\ttrue\ttrue\n");
});

Deno.test("cron takes croner's weekday ranges with a place in the month (MON-FRI#2, 5-6#L)", async () => {
  const { outcome, stdout } = await run(`
    for _, e in ipairs({ "0 0 * * MON-FRI#2", "0 0 * * 5-6#L", "0 0 0 * * 1-5#2" }) do
      local ok, id = pcall(cron, e, function() end)
      print(ok and clear_cron(id) or id)
    end
    print(select(2, pcall(cron, "0 0 * * 5-3#2", function() end)))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "true\ntrue\ntrue\n" +
      'cron: invalid expression "0 0 * * 5-3#2": day of week "5-3#2": the range ends before it starts\n',
  );
});

Deno.test("an uncaught invalid cron expression ends the run with that error", async () => {
  const { outcome } = await run(`cron("nope", function() end)`);
  if (outcome.status !== "error") throw new Error(`expected an error, got ${JSON.stringify(outcome)}`);
  match(outcome.message, /cron: invalid expression "nope"/);
});

Deno.test("a slow cron callback is skipped, not overlapped; its error reaches on_error and the job goes on", async () => {
  // Every second; the first run sleeps 1.2 s, so the next tick comes while it still runs.
  const { outcome, stdout, stderr } = await run(`
    chan("errors", 10)
    on_error(function(err) send("errors", err) end)
    local running, overlaps, runs = false, 0, 0
    local id = cron("* * * * * *", function()
      if running then overlaps = overlaps + 1 end
      running = true
      runs = runs + 1
      local n = runs
      if n == 1 then sleep(1.2) end
      running = false
      error("cron fail " .. n)
    end)
    local first = receive("errors")
    print(first, runs, overlaps)
    local second = receive("errors")
    print(second, runs, overlaps, clear_cron(id))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(stderr, "");
  strictEqual(stdout, "test:12: cron fail 1\t1\t0\ntest:12: cron fail 2\t2\t0\ttrue\n");
});

// ---- bad arguments ------------------------------------------------------------------

Deno.test("bad arguments: callbacks must be functions, seconds finite and not negative (interval: positive)", async () => {
  const { stdout } = await run(`
    print(pcall(set_timeout, nil, 1))
    print(pcall(set_interval, 42, 1))
    print(pcall(set_timeout, function() end, -1))
    print(pcall(set_timeout, function() end, 0/0))
    print(pcall(set_timeout, function() end, math.huge))
    print(pcall(set_timeout, function() end))
    print(pcall(set_interval, function() end, 0))
    print(pcall(set_interval, function() end, -0.5))
    print(pcall(set_interval, function() end, -math.huge))
    print(pcall(clear_timeout, "x"))`);
  const lines = stdout.trim().split("\n");
  strictEqual(lines.length, 10);
  strictEqual(lines[0], "false\tbad argument #1 to 'set_timeout' (function expected, got nil)");
  strictEqual(lines[1], "false\tbad argument #1 to 'set_interval' (function expected, got number)");
  match(lines[2], /^false\tbad argument #2 to 'set_timeout' \(.*-1\)$/);
  match(lines[3], /^false\tbad argument #2 to 'set_timeout' \(.*got -?nan\)$/);
  match(lines[4], /^false\tbad argument #2 to 'set_timeout' \(.*got inf\)$/);
  match(lines[5], /^false\tbad argument #2 to 'set_timeout' \(number expected, got no value\)$/);
  match(lines[6], /^false\tbad argument #2 to 'set_interval' \(positive .*expected, got 0\)$/);
  match(lines[7], /^false\tbad argument #2 to 'set_interval' \(positive .*expected, got -0\.5\)$/);
  match(lines[8], /^false\tbad argument #2 to 'set_interval' \(/);
  match(lines[9], /^false\tbad argument #1 to 'clear_timeout' \(number expected, got string\)$/);
});

Deno.test("a rejected call schedules nothing: the run ends at once", async () => {
  const { stdout, elapsed } = await run(`
    print(pcall(set_timeout, function() print("never") end, -1))
    print(pcall(set_interval, function() print("never") end, 0))`);
  strictEqual(stdout.includes("never"), false);
  ok(elapsed < 3000, `took ${elapsed} ms`);
});

// ---- delays beyond Deno's timer range, schedules that never fire ----------------------

Deno.test({
  name: "a delay longer than 2^31-1 ms (~24.8 days) does not fire at once",
  fn: async () => {
    const { stdout } = await run(`
      local month = 30 * 24 * 3600
      local fired, ticks = false, 0
      local t = set_timeout(function() fired = true end, month)
      local i = set_interval(function() ticks = ticks + 1 end, month)
      sleep(0.2)
      print(fired, ticks, clear_timeout(t), clear_interval(i))`);
    strictEqual(stdout, "false\t0\ttrue\ttrue\n");
  },
});

Deno.test({
  name: "a cron expression that can never fire (Feb 30) is refused",
  fn: async () => {
    const { stdout } = await run(`print(pcall(cron, "0 0 30 2 *", function() end))`, 3000);
    strictEqual(stdout, 'false\tcron: invalid expression "0 0 30 2 *": it never fires\n');
  },
});

// ---- the CLI ----------------------------------------------------------------------------

Deno.test("CLI: a pending timeout keeps the script alive and its output is printed", async () => {
  const dir = await tempFiles({
    "pending.lua": `print("start")\nset_timeout(function() print("later") end, 0.2)\n`,
  });
  const r = await solvm([`${dir}/pending.lua`]);
  strictEqual(r.stderr, "");
  strictEqual(r.code, 0);
  strictEqual(r.stdout, "start\nlater\n");
});

Deno.test("CLI [slow, ~7 s]: the default 5 s limit is suspended while an interval or a cron job is active", async () => {
  const dir = await tempFiles({
    "interval.lua": `local n = 0
local id
id = set_interval(function()
  n = n + 1
  print("tick", n)
  if n == 6 then print("cleared", clear_interval(id)) end
end, 1)
print("main done")
`,
    "cron.lua": `local n = 0
local id
id = cron("* * * * * *", function()
  n = n + 1
  if n == 7 then print("cron cleared after", n, clear_cron(id)) end
end)
`,
  });
  const timed = async (script: string) => {
    const started = performance.now();
    const r = await solvm([`${dir}/${script}`]);
    return { ...r, elapsed: performance.now() - started };
  };
  // Both run at once to keep the test near 7 s.
  const [interval, cronJob] = await Promise.all([timed("interval.lua"), timed("cron.lua")]);
  strictEqual(interval.stderr, "");
  strictEqual(interval.code, 0);
  strictEqual(
    interval.stdout,
    "main done\n" + [1, 2, 3, 4, 5, 6].map((n) => `tick\t${n}\n`).join("") + "cleared\ttrue\n",
  );
  ok(interval.elapsed > 5500, `interval script took ${interval.elapsed} ms`);
  strictEqual(cronJob.stderr, "");
  strictEqual(cronJob.code, 0);
  strictEqual(cronJob.stdout, "cron cleared after\t7\ttrue\n");
  ok(cronJob.elapsed > 5500, `cron script took ${cronJob.elapsed} ms`);
});

Deno.test("CLI: an explicit --timeout applies even while an interval is active", async () => {
  const dir = await tempFiles({ "forever.lua": `set_interval(function() print("tick") end, 0.2)\n` });
  const started = performance.now();
  const r = await solvm(["--timeout", "1s", `${dir}/forever.lua`]);
  const elapsed = performance.now() - started;
  strictEqual(r.code, 124);
  strictEqual(r.stderr, "timeout: script ran longer than 1s\n");
  match(r.stdout, /^(tick\n)+$/, "the ticks printed before the timeout are kept");
  ok(elapsed < 4500, `took ${elapsed} ms`);
});

Deno.test("CLI: an explicit --timeout applies even while a cron job is active", async () => {
  const dir = await tempFiles({ "cron.lua": `cron("* * * * * *", function() end)\nprint("scheduled")\n` });
  const r = await solvm(["--timeout", "1500ms", `${dir}/cron.lua`]);
  strictEqual(r.code, 124);
  strictEqual(r.stdout, "scheduled\n");
  strictEqual(r.stderr, "timeout: script ran longer than 1500ms\n");
});

Deno.test("CLI: an uncaught error in the main chunk ends the run despite an active interval", async () => {
  const dir = await tempFiles({ "fail.lua": `set_interval(function() end, 0.1)\nerror("main fails")\n` });
  // An explicit limit, so that a run kept alive by mistake fails the test instead of hanging it.
  const r = await solvm(["--timeout", "4s", `${dir}/fail.lua`]);
  strictEqual(r.code, 1);
  match(r.stderr, new RegExp(`^${dir}/fail.lua:2: main fails\\nstack traceback:\\n`));
});

Deno.test("CLI: os.exit inside an interval callback exits with its code", async () => {
  const dir = await tempFiles({
    "exit.lua": `local n = 0
set_interval(function()
  n = n + 1
  if n == 3 then print("exiting") os.exit(5) end
end, 0.05)
`,
  });
  const r = await solvm(["--timeout", "4s", `${dir}/exit.lua`]);
  strictEqual(r.code, 5);
  strictEqual(r.stdout, "exiting\n");
  strictEqual(r.stderr, "");
});

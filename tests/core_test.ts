import { deepStrictEqual, match, notStrictEqual, strictEqual } from "node:assert";
import { runLua, solvm, tempFiles } from "./_helpers.ts";

Deno.test("print shows every type as tostring does, tab-separated", async () => {
  const { stdout } = await runLua(`
    print(1, 2.0, -0.0, 1e100, 2^63, math.mininteger, 0/0 ~= 0/0, "s", nil, true, false)
    print()
    print(setmetatable({}, { __tostring = function() return "custom" end }))
    print(setmetatable({}, { __name = "MyType" }) ~= nil)
    print(type(tostring(print)), tostring({}):match("^table: ") ~= nil)`);
  strictEqual(
    stdout,
    "1\t2.0\t-0.0\t1e+100\t9.2233720368548e+18\t-9223372036854775808\ttrue\ts\tnil\ttrue\tfalse\n\ncustom\ntrue\nstring\ttrue\n",
  );
});

Deno.test("print: a __tostring that fails or returns a non-string is a Lua error", async () => {
  const { stdout } = await runLua(`
    print(pcall(print, setmetatable({}, { __tostring = function() error("no text") end })))
    print(pcall(print, setmetatable({}, { __tostring = function() return {} end })))`);
  const lines = stdout.trim().split("\n");
  match(lines[0], /^false\ttest:2: no text$/);
  match(lines[1], /^false\t.*'__tostring' must return a string$/);
});

Deno.test("math.random differs between states made together; math.randomseed(n) still repeats", async () => {
  // Lua's own seed is the time in seconds and the state's address, which WebAssembly makes the same each time.
  const draw = "print(math.random(1, 2^40), math.random(1, 2^40))";
  const [first, second] = [await runLua(draw), await runLua(draw)];
  notStrictEqual(first.stdout, second.stdout);
  const seeded = "math.randomseed(42) print(math.random(1, 2^40))";
  strictEqual((await runLua(seeded)).stdout, (await runLua(seeded)).stdout);
});

Deno.test("string hashes are seeded at random: two states made together order a table's keys differently", async () => {
  // Lua's seed is the time in seconds and a few addresses, the same each time in WebAssembly: keys that collide in
  // one state would collide in every state made that second (hash flooding).
  const order = `local t = {} for i = 1, 30 do t["key" .. i] = i end
    local keys = {} for k in pairs(t) do keys[#keys + 1] = k end print(table.concat(keys, " "))`;
  const [first, second] = [await runLua(order), await runLua(order)];
  notStrictEqual(first.stdout, second.stdout);
});

Deno.test("print keeps bytes as they are", async () => {
  const { stdout } = await runLua(`print("héllo ✓", "a\\0b")`);
  strictEqual(stdout, "héllo ✓\ta\0b\n");
});

Deno.test('os.exit ends the run with its code, converted as lua5.4 does ("3", 3.0); a bad code is an error', async () => {
  const exited = await runLua(`print("a") os.exit(3) print("b")`);
  deepStrictEqual(exited.outcome, { status: "exit", code: 3 });
  strictEqual(exited.stdout, "a\n");
  const inPcall = await runLua(`pcall(os.exit, 4) print("not reached")`);
  deepStrictEqual(inPcall.outcome, { status: "exit", code: 4 });
  strictEqual(inPcall.stdout, "");
  for (const [arg, code] of [['"3"', 3], ['"0x10"', 16], ["5.0", 5], ["nil", 0]] as const) {
    deepStrictEqual((await runLua(`os.exit(${arg})`)).outcome, { status: "exit", code }, arg);
  }
  const bad = await runLua(`print(pcall(os.exit, "x")) print(pcall(os.exit, 3.5)) print(pcall(os.exit, {}))`);
  strictEqual(
    bad.stdout,
    "false\tbad argument #1 to 'os.exit' (number expected, got string)\n" +
      "false\tbad argument #1 to 'os.exit' (number has no integer representation)\n" +
      "false\tbad argument #1 to 'os.exit' (number expected, got table)\n",
  );
});

Deno.test("a bad argument names the function as the calling code named it, as lua5.4's luaL_argerror does", async () => {
  const r = await runLua(
    `
    print(pcall(function() os.exit("x") end))
    local quit = os.exit
    print(pcall(function() quit({}) end))
    print(pcall(os.exit, {}))
    print(pcall(function() return os.exit({}) end))
    print(pcall(function() sleep("x") end))
    print(pcall(sleep, "x"))
    print(pcall(function() debug.traceback(coroutine.running(), "m", "x") end))
    print(pcall(debug.traceback, coroutine.running(), "m", "x"))
    local obj = setmetatable({}, { __index = { exit = os.exit, nap = sleep } })
    print(pcall(function() obj:exit() end))
    print(pcall(function() obj.nap(obj, "x") end))
    print(pcall(function() obj:nap("x") end))`,
    "=t",
  );
  strictEqual(
    r.stdout,
    // Called from Lua code (a tail call too): the name it used; from C (pcall): the qualified name.
    "false\tt:2: bad argument #1 to 'exit' (number expected, got string)\n" +
      "false\tt:4: bad argument #1 to 'quit' (number expected, got table)\n" +
      "false\tbad argument #1 to 'os.exit' (number expected, got table)\n" +
      "false\tt:6: bad argument #1 to 'exit' (number expected, got table)\n" +
      "false\tt:7: bad argument #1 to 'sleep' (number expected, got string)\n" +
      "false\tbad argument #1 to 'sleep' (number expected, got string)\n" +
      "false\tt:9: bad argument #3 to 'traceback' (number expected, got string)\n" +
      "false\tbad argument #3 to 'debug.traceback' (number expected, got string)\n" +
      // As a method (obj:f), self is not counted, and a bad self is said so.
      "false\tt:12: calling 'exit' on bad self (number expected, got table)\n" +
      "false\tt:13: bad argument #1 to 'nap' (number expected, got table)\n" +
      "false\tt:14: calling 'nap' on bad self (number expected, got table)\n",
  );
});

Deno.test("os.exit reads its integer exactly and refuses a float out of range, as lua5.4 does", async () => {
  // lua5.4 hands C's exit() an int: past 2^53 a double would round 2^53 + 1 to 2^53, a failure code to success.
  for (const [arg, code] of [["9007199254740993", 1], ["-9007199254740993", -1], ['"9007199254740993"', 1]] as const) {
    deepStrictEqual((await runLua(`os.exit(${arg})`)).outcome, { status: "exit", code }, arg);
  }
  const bad = await runLua(`print(pcall(os.exit, 1e300)) print(pcall(os.exit, 2^63)) print(pcall(os.exit, "1e300"))`);
  strictEqual(bad.stdout, "false\tbad argument #1 to 'os.exit' (number has no integer representation)\n".repeat(3));
});

Deno.test("os.setlocale fails (nil) for a locale this build cannot honour, as lua5.4 where it is not installed, and keeps the locale", async () => {
  const { stdout, outcome } = await runLua(`
    print(os.setlocale("xx_YY"), os.setlocale("no-such-locale", "numeric"), os.setlocale(1))
    print(os.setlocale(), string.format("%.1f", 1.5))
    print(os.setlocale("POSIX"), os.setlocale("C", "numeric"), os.setlocale("C.UTF-8", "ctype"), os.setlocale(nil, "ctype"))
    print(os.setlocale("de_DE.UTF-8", "ctype"), os.setlocale(nil, "ctype"))
    print(pcall(os.setlocale, "C", "bogus"))
    local set = os.setlocale
    print(pcall(function() set({}) end))`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(
    stdout,
    "nil\tnil\tnil\nC\t1.5\nC\tC\tC.UTF-8\tC.UTF-8\nnil\tC.UTF-8\n" +
      "false\tbad argument #2 to 'os.setlocale' (invalid option 'bogus')\n" +
      "false\ttest:8: bad argument #1 to 'set' (string expected, got table)\n",
  );
  // "" takes the name from the environment: one this build cannot honour fails too.
  const dir = await tempFiles({ "env.lua": "print(os.setlocale(''), os.setlocale())" });
  const r = await solvm([`${dir}/env.lua`], { env: { LC_ALL: "xx_YY" } });
  strictEqual(r.stderr, "");
  strictEqual(r.stdout, "nil\tC\n");
});

Deno.test("sleep's errors show the value as Lua's tostring does", async () => {
  const { stdout } = await runLua(`
    print(pcall(sleep, math.mininteger))
    print(pcall(sleep, -9007199254740993))
    print(pcall(sleep, -math.huge))
    print(pcall(sleep, -1.5))`);
  const message = "false\tbad argument #1 to 'sleep' (non-negative finite number of seconds expected, got ";
  strictEqual(
    stdout,
    `${message}-9223372036854775808)\n${message}-9007199254740993)\n${message}-inf)\n${message}-1.5)\n`,
  );
});

Deno.test("uncaught error values: tables, tables with __tostring, nil", async () => {
  const table = await runLua(`error({ code = 1 })`);
  strictEqual(table.outcome.status === "error" && table.outcome.message, "(error object is a table value)");
  const custom = await runLua(`error(setmetatable({}, { __tostring = function() return "custom failure" end }))`);
  strictEqual(custom.outcome.status === "error" && custom.outcome.message, "custom failure");
  const none = await runLua(`error()`);
  strictEqual(none.outcome.status === "error" && none.outcome.message, "(error object is a nil value)");
});

Deno.test("a script file may start with a UTF-8 byte-order mark and a #! line, as with lua5.4", async () => {
  const { outcome, stdout } = await runLua("\ufeff#!/usr/bin/env solvm\nprint('bom ok')\nerror('line 3')", "@bom.lua");
  strictEqual(stdout, "bom ok\n");
  strictEqual(outcome.status === "error" && outcome.message, "bom.lua:3: line 3");
});

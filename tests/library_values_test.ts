// The embedding library's values: JavaScript to Lua and back (numbers,
// strings, bytes, tables, cycles, functions both ways, objects by
// reference) and the errors of each side as the other sees them.
import { deepStrictEqual, ok, strictEqual } from "node:assert";
import { byRef, ByReference, Context, LuaError, Script, SharedTable } from "../mod.ts";
import { sleep } from "./_helpers.ts";
import { failure, runProgram, thrown, timed } from "./_library.ts";

// echo(x) returns x; kind(x) is Lua's type of x; size(x) its length.
const ECHO = `
function echo(x) return x end
function kind(x) return math.type(x) or type(x) end
function size(x) return #x end`;

// [name, value sent, Lua's type of it, value back]
const ROUND_TRIPS: [string, unknown, string, unknown][] = [
  ["a small integer", 42, "integer", 42],
  ["a negative integer", -7, "integer", -7],
  ["2^53 + 1 as a BigInt", 9007199254740993n, "integer", 9007199254740993n],
  ["the largest Lua integer", 9223372036854775807n, "integer", 9223372036854775807n],
  ["the smallest Lua integer", -9223372036854775808n, "integer", -9223372036854775808n],
  ["a small BigInt (comes back a number)", 5n, "integer", 5],
  ["2^53, past the safe integers (a float)", 2 ** 53, "float", 2 ** 53],
  ["-0.5", -0.5, "float", -0.5],
  ["-0 (keeps its sign)", -0, "float", -0],
  ["the largest double", Number.MAX_VALUE, "float", Number.MAX_VALUE],
  ["the smallest double", Number.MIN_VALUE, "float", Number.MIN_VALUE],
  ["Infinity", Infinity, "float", Infinity],
  ["NaN", NaN, "float", NaN],
  ["a UTF-8 string", "héllo", "string", "héllo"],
  ["an empty string", "", "string", ""],
  ["a string with NUL", "a\0b", "string", "a\0b"],
  ["a string that starts with U+FEFF (a byte-order mark, kept)", "\uFEFFid", "string", "\uFEFFid"],
  ["a long one (decoded another way)", "\uFEFF" + "é".repeat(300), "string", "\uFEFF" + "é".repeat(300)],
  ["invalid UTF-8 bytes", new Uint8Array([0xff, 0xfe, 0x00, 0x41]), "string", new Uint8Array([0xff, 0xfe, 0x00, 0x41])],
  ["valid UTF-8 bytes (come back a string)", new Uint8Array([0x68, 0xc3, 0xa9]), "string", "hé"],
  ["true", true, "boolean", true],
  ["false", false, "boolean", false],
  ["null", null, "nil", undefined],
  ["undefined", undefined, "nil", undefined],
  ["an empty array (comes back an empty object)", [], "table", {}],
  ["an empty object", {}, "table", {}],
  ["an array", [1, "two", true], "table", [1, "two", true]],
  ["nested arrays and objects", [1, [2, [3]], { a: { b: ["c", 4.5] } }], "table", [1, [2, [3]], {
    a: { b: ["c", 4.5] },
  }]],
  ["an object", { name: "ana", age: 33, tags: ["x", "y"], big: 2n ** 60n }, "table", {
    name: "ana",
    age: 33,
    tags: ["x", "y"],
    big: 2n ** 60n,
  }],
  ["an object with an undefined field (left out)", { a: 1, gone: undefined }, "table", { a: 1 }],
  ["an array with a hole (comes back an object)", [1, undefined, 3], "table", { 1: 1, 3: 3 }],
];

Deno.test("values: round trips through Lua keep type and value", async () => {
  const lua = new Context();
  try {
    await lua.execute(ECHO);
    for (const [name, sent, luaType, back] of ROUND_TRIPS) {
      strictEqual(await lua.call("kind", sent), luaType, `${name}: Lua type`);
      deepStrictEqual(await lua.call("echo", sent), back, `${name}: value back`);
    }
    strictEqual(await lua.call("size", "héllo"), 6, "strings go as UTF-8 bytes");
    strictEqual(await lua.call("size", [1, 2, 3]), 3);
    strictEqual(Object.is(await lua.call("echo", -0), -0), true);
  } finally {
    lua.close();
  }
});

Deno.test("values: what Lua makes comes to JavaScript as expected", async () => {
  const lua = new Context();
  const cases: [string, unknown][] = [
    ["return 9007199254740993", 9007199254740993n],
    ["return 9007199254740991", 9007199254740991],
    ["return math.maxinteger", 9223372036854775807n],
    ["return math.mininteger", -9223372036854775808n],
    ["return 2^53", 9007199254740992],
    ["return 1e308 * 10", Infinity],
    ["return -0.0", -0],
    ["return 3 // 2", 1],
    ["return 3 / 2", 1.5],
    ["return 'h\\xc3\\xa9llo'", "héllo"],
    ["return '\\xff\\xfe'", new Uint8Array([0xff, 0xfe])],
    ["return nil", undefined],
    ["return", undefined],
    ["return {}", {}],
    ["return { 1, 2, { 3 } }", [1, 2, [3]]],
    ["return { x = 1, [1] = 'a', [2] = 'b' }", { 1: "a", 2: "b", x: 1 }],
    // # is 4 and there are 4 keys, but a hole (3) is offset by a named key: not a list.
    ["return { 1, 2, nil, 4, total = 7 }", { 1: 1, 2: 2, 4: 4, total: 7 }],
    ["return { [1.5] = 'f', [-2] = 'n', [2^63] = 'big' }", { "1.5": "f", "-2": "n", "9223372036854776000": "big" }],
    ["return 1, 2, 3", 1],
    ["return json_null", null],
    [`return json_decode('{"a": null, "b": [1, null, 3]}')`, { a: null, b: [1, null, 3] }],
  ];
  try {
    for (const [source, expected] of cases) deepStrictEqual(await lua.execute(source), expected, source);
    strictEqual(Object.is(await lua.execute("return -0.0"), -0), true);
  } finally {
    lua.close();
  }
});

Deno.test("values: cycles are kept both ways", async () => {
  const lua = new Context();
  try {
    const table = await lua.execute("local t = { name = 't' } t.self = t return t") as Record<string, unknown>;
    strictEqual(table.self, table);
    strictEqual(table.name, "t");
    const list = await lua.execute("local l = { 1 } l[2] = l return l") as unknown[];
    strictEqual(list[1], list);
    const object: Record<string, unknown> = { n: 1 };
    object.me = object;
    object.list = [object];
    await lua.execute("function check(o) return o.me == o and o.list[1] == o and o.me.me.n end");
    strictEqual(await lua.call("check", object), 1);
    const back = await lua.execute("return function(o) return o end") as (o: unknown) => Record<string, unknown>;
    const echoed = back(object);
    strictEqual(echoed.me, echoed);
    strictEqual((echoed.list as unknown[])[0], echoed);
  } finally {
    lua.close();
  }
});

Deno.test("values: a Lua function returned to JavaScript is callable", async () => {
  const lua = new Context();
  try {
    const add = await lua.execute("return function(a, b) return a + b end") as (a: unknown, b: unknown) => unknown;
    strictEqual(add(2, 3), 5);
    strictEqual(add(2n ** 62n, 2n ** 62n - 1n), 9223372036854775807n);
    const counter = await lua.execute("local n = 0 return function() n = n + 1 return n end") as () => number;
    deepStrictEqual([counter(), counter(), counter()], [1, 2, 3]);
    // A function that waits returns a Promise.
    const slow = await lua.execute("return function(x) sleep(0.02) return x * 2 end") as (x: number) => unknown;
    const pending = slow(21);
    ok(pending instanceof Promise);
    strictEqual(await pending, 42);
    // A Lua error is thrown as LuaError, at once.
    const bad = await lua.execute("return function(x)\n  error('bad ' .. x)\nend", "@fn.lua") as (x: string) => unknown;
    const e = thrown(() => bad("call"), LuaError, "fn.lua:2: bad call");
    strictEqual(e.line, 2);
    const fromGlobal = (await lua.execute("function twice(x) return x * 2 end"), lua.getGlobal("twice")) as (
      x: number,
    ) => number;
    strictEqual(fromGlobal(8), 16);
    const fromScript = Script.fromString("f.lua", "function main() return function(s) return s:upper() end end");
    try {
      const upper = await fromScript.run() as (s: string) => string;
      strictEqual(upper("abc"), "ABC");
    } finally {
      fromScript.close();
    }
    lua.close();
    thrown(() => add(1, 2), Error, "the context is closed"); // as execute says
  } finally {
    lua.close();
  }
});

Deno.test("values: JavaScript functions are callable from Lua, async ones as blocking calls", async () => {
  const lua = new Context();
  try {
    let seen: unknown[] = [];
    lua.setGlobal("record", (...args: unknown[]) => {
      seen = args;
      return args.length;
    });
    strictEqual(await lua.execute("return record(1, 'two', { 3 }, nil, { k = true }, 2.5)"), 6);
    deepStrictEqual(seen, [1, "two", [3], undefined, { k: true }, 2.5]);
    lua.setGlobal("nothing", () => undefined);
    strictEqual(await lua.execute("return select('#', nothing())"), 0);
    lua.setGlobal("pair", () => ({ a: [1, 2] }));
    strictEqual(await lua.execute("return pair().a[2]"), 2);
    lua.setGlobal("later", async (x: number) => {
      await sleep(30);
      return x * 2;
    });
    const { value, ms } = await timed(() => lua.execute("local a = later(10) local b = later(a) return a + b"));
    strictEqual(value, 60);
    ok(ms >= 55, `two blocking calls of 30 ms took ${ms} ms`);
    // A function passed as an argument of main.
    const s = Script.fromString("cb.lua", "function main(f, x) return f(x) + 1 end");
    try {
      strictEqual(await s.run((x: number) => x * 10, 4), 41);
      strictEqual(await s.run(async (x: number) => (await sleep(5), x * 100), 4), 401);
    } finally {
      s.close();
    }
  } finally {
    lua.close();
  }
});

Deno.test("values: a JavaScript throw is a Lua error pcall catches, with its message", async () => {
  const lua = new Context();
  try {
    lua.setGlobal("fail", (what: string) => {
      throw new Error(`js says no to ${what}`);
    });
    lua.setGlobal("failText", () => {
      throw "a bare string";
    });
    lua.setGlobal("failWith", (value: unknown) => {
      throw value;
    });
    lua.setGlobal("failLater", async () => {
      await sleep(5);
      throw new RangeError("too late");
    });
    await lua.execute(
      `function try(f, ...)
  local ok, e = pcall(f, ...)
  return { ok = ok, e = e }
end
function wrapped(f, ...) local args = { ... } return try(function() return f(table.unpack(args)) end) end`,
      "@try.lua",
    );
    deepStrictEqual(await lua.execute("return try(fail, 'x')"), { ok: false, e: "js says no to x" });
    deepStrictEqual(await lua.execute("return wrapped(fail, 'y')"), { ok: false, e: "try.lua:5: js says no to y" });
    deepStrictEqual(await lua.execute("return try(failText)"), { ok: false, e: "a bare string" });
    deepStrictEqual(await lua.execute("return try(failLater)"), { ok: false, e: "too late" });
    // Values with no properties at all: the state stays sound and later calls run.
    deepStrictEqual(await lua.execute("return try(failWith)"), { ok: false, e: "undefined" });
    lua.setGlobal("failNull", () => {
      throw null;
    });
    deepStrictEqual(await lua.execute("return try(failNull)"), { ok: false, e: "null" });
    // Not Error objects, as TypeScript code bases throw them: their message, else a plain object's JSON, not "[object Object]".
    deepStrictEqual(
      await lua.execute("return try(failWith, { code = 'E_QTY', message = 'quantity must be at least 1' })"),
      {
        ok: false,
        e: "quantity must be at least 1",
      },
    );
    deepStrictEqual(await lua.execute("return try(failWith, { code = 'E_QTY' })"), {
      ok: false,
      e: '{"code":"E_QTY"}',
    });
    deepStrictEqual(await lua.execute("return try(failWith, { 1, 2 })"), { ok: false, e: "1,2" });
    // A number is not taken for the WebAssembly build's own unwinding, and a value without text is named by its kind.
    lua.setGlobal("failNumber", () => {
      throw 42;
    });
    deepStrictEqual(await lua.execute("return try(failNumber)"), { ok: false, e: "42" });
    lua.setGlobal("failInfinity", () => {
      throw 1 / 0;
    });
    deepStrictEqual(await lua.execute("return try(failInfinity)"), { ok: false, e: "Infinity" });
    lua.setGlobal("failBare", () => {
      throw Object.create(null);
    });
    deepStrictEqual(await lua.execute("return try(failBare)"), { ok: false, e: "[object Object]" });
    strictEqual(await lua.execute("return 'next call'"), "next call");
    const uncaught = await failure(lua.execute("\nfail('z')", "@main.lua"), LuaError, "main.lua:2: js says no to z");
    strictEqual(uncaught.file, "main.lua");
    strictEqual(uncaught.line, 2);
    strictEqual(uncaught.reason, "js says no to z");
    strictEqual(
      uncaught.traceback,
      "main.lua:2: js says no to z\nstack traceback:\n\t[C]: in function 'fail'\n\tmain.lua:2: in main chunk",
    );
  } finally {
    lua.close();
  }
});

Deno.test("values: a Lua error is a LuaError with message, file, line, reason and traceback", async () => {
  const lua = new Context();
  try {
    await lua.execute(
      "local function inner(x)\n  error('boom ' .. x)\nend\nfunction outer(x)\n  inner(x)\nend",
      "@err.lua",
    );
    const e = await failure(lua.call("outer", 7), LuaError, "err.lua:2: boom 7");
    ok(e instanceof Error);
    strictEqual(e.name, "LuaError");
    strictEqual(e.luaMessage, "err.lua:2: boom 7");
    strictEqual(e.file, "err.lua");
    strictEqual(e.line, 2);
    strictEqual(e.reason, "boom 7");
    strictEqual(
      e.traceback,
      "err.lua:2: boom 7\nstack traceback:\n\t[C]: in function 'error'\n\terr.lua:2: in upvalue 'inner'\n\terr.lua:5: in function 'outer'",
    );
    const table = await failure(lua.execute("error({ code = 1 })"), LuaError, "(error object is a table value)");
    strictEqual(table.file, undefined);
    strictEqual(table.reason, "(error object is a table value)");
    await failure(lua.execute("error('no position', 0)"), LuaError, "no position");
    await failure(
      lua.call("nowhere"),
      LuaError,
      "no function 'nowhere' to call (the script defines no global function nowhere)",
    );
    await failure(lua.execute("return +", "@syntax.lua"), LuaError, "syntax.lua:1: unexpected symbol near '+'");
  } finally {
    lua.close();
  }
});

Deno.test("values: byRef passes an object Lua reads and writes in place", async () => {
  const lua = new Context();
  try {
    await lua.execute(`
function rename(p, name)
  local old = p.Name
  p.Name = name
  p.address.city = "Lisbon"
  p.added = { 1, 2 }
  return old, p.greet("hi"), p.missing
end
function same(p) return p end`);
    const person = {
      Name: "Roman",
      address: { city: "Oslo" },
      added: undefined as unknown,
      greet(word: string) {
        return `${word}, ${this.Name}`;
      },
    };
    const ref = byRef(person);
    ok(ref instanceof ByReference);
    strictEqual(ref.target, person);
    strictEqual(await lua.call("rename", ref, "Updated"), "Roman");
    strictEqual(person.Name, "Updated");
    strictEqual(person.address.city, "Lisbon", "nested objects are by reference too");
    deepStrictEqual(person.added, [1, 2], "a table written to a field arrives as a copy");
    strictEqual(await lua.call("same", ref), person, "the same object comes back");
    strictEqual(
      await lua.execute("return function(p) return p.greet('hey') end").then((f) =>
        (f as (p: unknown) => unknown)(ref)
      ),
      "hey, Updated",
    );
    strictEqual(
      await lua.execute("return function(p) return p:greet('colon') end").then((f) =>
        (f as (p: unknown) => unknown)(ref)
      ),
      "colon, Updated",
      "a method called with a colon gets the object as this, not as its first argument",
    );
    strictEqual(
      await lua.execute("return function(p) return tostring(p):match('^JavaScript object') ~= nil end").then((f) =>
        (f as (p: unknown) => unknown)(ref)
      ),
      true,
    );
  } finally {
    lua.close();
  }
});

Deno.test("values: a table key that is not UTF-8 is refused with a TypeError, never merged with a text key", async () => {
  const lua = new Context();
  const message = "a key that is not UTF-8 text cannot name a JavaScript property (a table key or a byRef field)";
  try {
    await failure(lua.execute(`return { ["\\xff\\xfe"] = "binary", ["255,254"] = "text" }`), TypeError, message);
    await failure(lua.execute(`return { list = { { ["\\xff"] = 1 } } }`), TypeError, message);
    await failure(lua.execute(`sleep(0.01) return { ["\\xff"] = 1 }`), TypeError, message);
    await lua.execute(`t = { inner = { ["\\xff"] = 1 } } o = {}`);
    const { vm, L } = lua.engine;
    const top = vm.api.lua_gettop(L);
    thrown(() => lua.getGlobal("t"), TypeError, message);
    strictEqual(vm.api.lua_gettop(L), top, "a refused read leaves nothing on the stack");
    const target = {};
    lua.setGlobal("o", byRef(target));
    await failure(lua.execute(`o["\\xff"] = 1`), LuaError, `chunk:1: ${message}`);
    await failure(lua.execute(`return o["\\xff"]`), LuaError, `chunk:1: ${message}`);
    deepStrictEqual(target, {});
    strictEqual(await lua.execute("return 1 + 1"), 2);
  } finally {
    lua.close();
  }
});

Deno.test("values: table keys JavaScript cannot keep apart (1 and '1') or cannot hold (booleans, tables) are refused with a TypeError, and so is such a key indexing a byRef object", async () => {
  const lua = new Context();
  try {
    const same = 'the table keys 1 and "1" would be one JavaScript property';
    await failure(lua.execute(`return { [1] = "integer key", ["1"] = "string key", n = 1 }`), TypeError, same);
    await failure(lua.execute(`return { x = { [2.5] = 1, ["2.5"] = 2 } }`), TypeError, same.replaceAll("1", "2.5"));
    const only = "table key cannot name a JavaScript property (only strings and numbers can)";
    await failure(lua.execute(`return { [true] = "yes", n = 1 }`), TypeError, `a boolean ${only}`);
    await failure(lua.execute(`return { [{}] = 1 }`), TypeError, `a table ${only}`);
    await failure(lua.execute(`return { [print] = 1 }`), TypeError, `a function ${only}`);
    await lua.execute(`t = { list = { { [false] = 1 } } }`);
    const { vm, L } = lua.engine;
    const top = vm.api.lua_gettop(L);
    thrown(() => lua.getGlobal("t"), TypeError, `a boolean ${only}`);
    strictEqual(vm.api.lua_gettop(L), top, "a refused read leaves nothing on the stack");
    // Not String(key): every table would be the property "[object Object]", a function the text of its wrapper.
    const target = {};
    lua.setGlobal("o", byRef(target));
    await failure(lua.execute(`o[{}] = 1`), LuaError, `chunk:1: a table ${only}`);
    await failure(lua.execute(`return o[{}]`), LuaError, `chunk:1: a table ${only}`);
    await failure(lua.execute(`o[true] = 1`), LuaError, `chunk:1: a boolean ${only}`);
    await failure(lua.execute(`o[print] = 1`), LuaError, `chunk:1: a function ${only}`);
    deepStrictEqual(target, {});
    strictEqual(await lua.execute("return 1 + 1"), 2);
  } finally {
    lua.close();
  }
});

Deno.test("values: a channel is refused with a TypeError (it cannot leave its Lua state), never an empty object", async () => {
  const lua = new Context();
  const message = "a channel cannot leave its Lua state";
  try {
    await failure(lua.execute("return chan()"), TypeError, message);
    await failure(lua.execute(`return { reply_to = chan("reply", 1) }`), TypeError, message);
    await lua.execute("ch = chan()");
    thrown(() => lua.getGlobal("ch"), TypeError, message);
    lua.setGlobal("take", (_: unknown) => "taken");
    deepStrictEqual(await lua.execute("return { pcall(take, { ch }) }"), [false, message]);
    const script = Script.fromString("w.lua", "function main() return { ch = chan() } end", { workers: 1 });
    try {
      await failure(script.run(), TypeError, message);
    } finally {
      script.close();
    }
  } finally {
    lua.close();
  }
});

Deno.test("values: a coroutine or a file handle is refused with a TypeError as a channel is, never its tostring text", async () => {
  const lua = new Context();
  const thread = "a thread cannot leave its Lua state";
  const userdata = "a userdata cannot leave its Lua state";
  try {
    await failure(lua.execute("return coroutine.create(print)"), TypeError, thread);
    await failure(lua.execute("return { worker = coroutine.create(print) }"), TypeError, thread);
    await failure(lua.execute("return io.stdout"), TypeError, userdata);
    await failure(lua.execute("return { { log = io.stderr } }"), TypeError, userdata);
    await lua.execute("co = coroutine.running()");
    thrown(() => lua.getGlobal("co"), TypeError, thread);
    lua.setGlobal("take", (_: unknown) => "taken");
    deepStrictEqual(await lua.execute("return { pcall(take, io.stdout) }"), [false, userdata]);
    strictEqual(await lua.execute("return 'still usable'"), "still usable");
    const script = Script.fromString(
      "w.lua",
      "function main(what) return { [what] = what == 'co' and coroutine.running() or io.stdout } end",
      {
        workers: 1,
      },
    );
    try {
      await failure(script.run("co"), TypeError, thread);
      await failure(script.run("file"), TypeError, userdata);
    } finally {
      script.close();
    }
  } finally {
    lua.close();
  }
});

Deno.test("values: a referenced array is 1-based in Lua: indexing, #, ipairs, pairs, and lists written back", async () => {
  const lua = new Context();
  try {
    const order = { items: ["apple", "pear", "plum"], tags: undefined as unknown, count: 2 };
    lua.setGlobal("order", byRef(order));
    strictEqual(
      await lua.execute("return order.items[1] .. ' ' .. order.items[3] .. ' ' .. tostring(order.items[0])"),
      "apple plum nil",
    );
    strictEqual(await lua.execute("return #order.items"), 3);
    strictEqual(
      await lua.execute(
        "local t = {} for i, v in ipairs(order.items) do t[#t + 1] = i .. '=' .. v end return table.concat(t, ',')",
      ),
      "1=apple,2=pear,3=plum",
    );
    strictEqual(
      await lua.execute(
        "local t = {} for i, v in pairs(order.items) do t[#t + 1] = i .. '=' .. v end return table.concat(t, ',')",
      ),
      "1=apple,2=pear,3=plum",
    );
    strictEqual(
      await lua.execute(
        "local t = {} for k, v in pairs(order) do t[#t + 1] = k .. '=' .. type(v) end return table.concat(t, ',')",
      ),
      "items=userdata,tags=nil,count=number",
    );
    strictEqual(
      await lua.execute("order.items[1] = 'fig' order.items[#order.items + 1] = 'kiwi' return #order.items"),
      4,
    );
    deepStrictEqual(order.items, ["fig", "pear", "plum", "kiwi"]);
    strictEqual(await lua.execute("order.tags = { 'a', 'b' } return order.tags[1] .. ' ' .. order.tags[2]"), "a b");
    deepStrictEqual(order.tags, ["a", "b"]);
    strictEqual(await lua.execute("return #order"), 0, "a plain object, like a table without a sequence");
    // nil at the end shortens the array, as for a sequence: the table library's insert and remove keep it whole.
    const list = [10, 20, 30, 40];
    lua.setGlobal("list", byRef(list));
    strictEqual(
      await lua.execute(`list[#list] = nil table.remove(list) table.insert(list, 1, "first") table.remove(list, 1)
        return #list .. " " .. table.concat(list, ",")`),
      "2 10,20",
    );
    deepStrictEqual(list, [10, 20]);
    strictEqual(
      await lua.execute("list[#list + 1] = nil list[10] = nil return #list"),
      2,
      "nil past the end: no change",
    );
    deepStrictEqual(list, [10, 20]);
  } finally {
    lua.close();
  }
});

Deno.test("values: what Lua cannot hold is refused with a clear error", async () => {
  const lua = new Context();
  try {
    thrown(() => lua.setGlobal("s", Symbol("s")), TypeError, "cannot pass a symbol to Lua");
    thrown(
      () => lua.setGlobal("m", new Map()),
      TypeError,
      "cannot pass a Map to Lua (use a plain object, an array or byRef)",
    );
    thrown(
      () => lua.setGlobal("d", new Set()),
      TypeError,
      "cannot pass a Set to Lua (use a plain object, an array or byRef)",
    );
    thrown(
      () => lua.setGlobal("d", new Date(0)),
      TypeError,
      "cannot pass a Date to Lua (use a plain object, an array or byRef)",
    );
    thrown(
      () => lua.setGlobal("p", { nested: [Promise.resolve()] }),
      TypeError,
      "cannot pass a Promise to Lua (use a plain object, an array or byRef)",
    );
    thrown(() => lua.setGlobal("b", 2n ** 63n), RangeError, "9223372036854775808 does not fit a Lua integer (64 bits)");
    thrown(
      () => lua.setGlobal("b", -(2n ** 63n) - 1n),
      RangeError,
      "-9223372036854775809 does not fit a Lua integer (64 bits)",
    );
    await lua.execute("function id(x) return x end");
    await failure(lua.call("id", Symbol("t")), TypeError, "cannot pass a symbol to Lua");
    // A JavaScript function returning what Lua cannot hold raises in Lua.
    lua.setGlobal("badResult", () => Symbol("r"));
    deepStrictEqual(await lua.execute("return { pcall(badResult) }"), [false, "cannot pass a symbol to Lua"]);
    strictEqual(await lua.call("id", "still usable"), "still usable");
  } finally {
    lua.close();
  }
});

Deno.test("values: typed arrays go as lists of numbers, ArrayBuffer and DataView as bytes, a user's class instance by its fields; Error, RegExp, boxed primitives, weak collections and classes are refused", async () => {
  class Point {
    constructor(public x: number, public y: number) {}
    get length() {
      return Math.hypot(this.x, this.y);
    }
  }
  const bytes = new Uint8Array([0xff, 0x00, 0x41, 0x42]);
  // [name, value sent, what Lua sees (describe), value back]
  const passed: [string, unknown, string, unknown][] = [
    ["a Float64Array", new Float64Array([1.5, 2.5]), "table 2: 1.5 2.5", [1.5, 2.5]],
    ["an Int32Array", new Int32Array([5, -6]), "table 2: 5 -6", [5, -6]],
    ["a Uint8ClampedArray", new Uint8ClampedArray([0, 255]), "table 2: 0 255", [0, 255]],
    ["a BigInt64Array", new BigInt64Array([2n ** 60n]), "table 1: 1152921504606846976", [2n ** 60n]],
    ["an empty Float32Array", new Float32Array(0), "table 0: ", {}],
    ["an ArrayBuffer", bytes.buffer, "string 4", bytes],
    ["a DataView of part of one", new DataView(bytes.buffer, 2, 2), "string 2", "AB"],
    ["a typed array inside a table", { samples: new Int16Array([7]) }, "table 0: ", { samples: [7] }],
    ["an instance of a user's class", new Point(3, 4), "table 0: ", { x: 3, y: 4 }],
  ];
  const refused: [string, unknown, string][] = [
    ["an Error", new Error("boom"), "an Error"],
    ["a TypeError", new TypeError("boom"), "a TypeError"],
    ["a RegExp", /abc/, "a RegExp"],
    ["a boxed false", new Boolean(false), "a Boolean"],
    ["a boxed number", new Number(1), "a Number"],
    ["a boxed string", new String("s"), "a String"],
    ["a WeakMap", new WeakMap(), "a WeakMap"],
    ["a WeakSet", new WeakSet(), "a WeakSet"],
    ["an Error inside a list", [1, { cause: new Error("deep") }], "an Error"],
  ];
  const describe = `
  function describe(v)
    if type(v) ~= "table" then return type(v) .. " " .. #v end
    local items = {}
    for i, x in ipairs(v) do items[i] = tostring(x) end
    return "table " .. #v .. ": " .. table.concat(items, " ")
  end
  function echo(v) return v end`;
  const lua = new Context();
  const pooled = Script.fromString("p.lua", `${describe} function main(v) return echo(v) end`);
  const inWorkers = Script.fromString("w.lua", `${describe} function main(v) return echo(v) end`, { workers: 1 });
  try {
    await lua.execute(describe);
    for (const [name, sent, seen, back] of passed) {
      strictEqual(await lua.call("describe", sent), seen, `${name}: what Lua sees`);
      deepStrictEqual(await lua.call("echo", sent), back, `${name}: value back`);
      deepStrictEqual(await pooled.run(sent), back, `${name}: value back from the pool`);
      deepStrictEqual(await inWorkers.run(sent), back, `${name}: value back from a worker`);
    }
    for (const [name, sent, kind] of refused) {
      const message = `cannot pass ${kind} to Lua (use a plain object, an array or byRef)`;
      await failure(lua.call("echo", sent), TypeError, message);
      thrown(() => lua.setGlobal("g", sent), TypeError, message);
      await failure(pooled.run(sent), TypeError, message);
      if (!(sent instanceof WeakMap || sent instanceof WeakSet)) { // these cannot be copied to a worker at all
        await failure(inWorkers.run(sent), TypeError, message);
      }
      strictEqual(lua.getGlobal("g"), undefined, `${name}: nothing set`);
    }
    thrown(
      () => lua.setGlobal("Point", Point),
      TypeError,
      "cannot pass a class to Lua (Point: pass a function that makes the object)",
    );
    lua.setGlobal("makePoint", (x: number, y: number) => new Point(x, y));
    lua.setGlobal("Num", Number);
    deepStrictEqual(await lua.execute("return { makePoint(1, 2).y, Num('7') }"), [2, 7], "functions still go");
  } finally {
    lua.close();
    pooled.close();
    inWorkers.close();
  }
});

Deno.test("values: a value refused halfway by setGlobal or SharedTable.set leaves the Lua stack as it was", async () => {
  const settings = new SharedTable({ mode: "slow" });
  const lua = new Context({ shared: { settings } });
  try {
    const { vm, L } = lua.engine;
    const top = vm.api.lua_gettop(L);
    let nested: unknown = 2n ** 64n;
    for (let i = 0; i < 10; i++) nested = [nested];
    for (let i = 0; i < 3; i++) {
      thrown(() => lua.setGlobal("g", nested), RangeError, "18446744073709551616 does not fit a Lua integer (64 bits)");
      thrown(
        () => settings.set("mode", nested),
        RangeError,
        "18446744073709551616 does not fit a Lua integer (64 bits)",
      );
    }
    strictEqual(vm.api.lua_gettop(L), top);
    strictEqual(settings.get("mode"), "slow");
    strictEqual(await lua.execute("return settings.mode .. ' ' .. tostring(g)"), "slow nil");
  } finally {
    lua.close();
  }
});

Deno.test("values: what Lua printed goes out before a JavaScript function it calls writes, on a pipe too", async () => {
  // A child process: its standard output is a pipe, where print is buffered.
  const { code, stdout, stderr } = await runProgram(
    `import { Context } from "MOD";
const lua = new Context();
lua.setGlobal("log", (s: string) => console.log(s));
lua.registerModule("m", { later: async (s: string) => (await new Promise((r) => setTimeout(r, 10)), console.log(s)) });
await lua.execute(\`print("1 print") log("2 log") require("m").later("3 later") print("4 print")
go(function() print("5 goroutine") log("6 log") end) sleep(0.01)\`);
console.log("7 after");
lua.close();
`,
    ["-A"],
  );
  strictEqual(stderr, "");
  strictEqual(stdout, "1 print\n2 log\n3 later\n4 print\n5 goroutine\n6 log\n7 after\n");
  strictEqual(code, 0);
});

Deno.test("values: a JavaScript function Lua no longer holds is let go", async () => {
  // Needs the JavaScript collector on demand: a real child process with --expose-gc.
  const { code, stdout, stderr } = await runProgram(
    `import { Context } from "MOD";
const lua = new Context();
let dropped: WeakRef<object> | undefined;
(() => {
  const fn = () => "dropped";
  dropped = new WeakRef(fn);
  lua.setGlobal("f", fn);
})();
lua.setGlobal("g", () => "kept");
console.log(await lua.execute("return f()"));
await lua.execute("f = nil");
lua.gc("collect");
await new Promise((resolve) => setTimeout(resolve, 0));
(globalThis as unknown as { gc(): void }).gc();
await new Promise((resolve) => setTimeout(resolve, 0));
console.log(dropped!.deref() === undefined, await lua.execute("collectgarbage() return g()"));
lua.close();
`,
    ["-A", "--v8-flags=--expose-gc"],
  );
  strictEqual(stderr, "");
  strictEqual(stdout, "dropped\ntrue kept\n");
  strictEqual(code, 0);
});

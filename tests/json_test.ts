/**
 * json_encode / json_decode / json_null through the real engine.
 *
 * @module
 */
import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert";
import { Engine, type Outcome } from "../runtime/engine.ts";
import { installFamily } from "../runtime/family.ts";
import { core } from "../host/core.ts";
import { json } from "../host/json.ts";
import { concurrency } from "../host/concurrency.ts";
import { solvm, tempFiles } from "./_helpers.ts";

interface Run {
  outcome: Outcome;
  output: string;
}

/** Runs `src` as chunk "=test" with the core and json families; returns the outcome and printed text. */
async function run(src: string, setup?: (engine: Engine) => void): Promise<Run> {
  let output = "";
  const decoder = new TextDecoder();
  const engine = await Engine.create({
    stdout: {
      write(bytes) {
        output += decoder.decode(bytes, { stream: true });
      },
      flush() {},
    },
    stderr: () => {},
  });
  try {
    installFamily(engine, core);
    installFamily(engine, json);
    setup?.(engine);
    const outcome = await engine.execute(src, "=test");
    return { outcome, output };
  } finally {
    engine.close();
  }
}

/** Runs `src`, expects it to finish without error, returns its printed lines. */
async function lines(src: string): Promise<string[]> {
  const { outcome, output } = await run(src);
  deepStrictEqual(outcome.status === "error" ? { status: "error", message: outcome.message } : outcome, {
    status: "ok",
  });
  return output.split("\n").slice(0, -1);
}

/** Runs `src`, expects an uncaught error, returns its message. */
async function failure(src: string): Promise<string> {
  const { outcome } = await run(src);
  strictEqual(outcome.status, "error");
  return (outcome as { message: string }).message;
}

/** Lua helper: `err(f, ...)` prints the error message of calling f(...) (or "NO ERROR"). */
const ERR = `
local function err(f, ...)
  local ok, e = pcall(f, ...)
  print(ok and "NO ERROR" or e)
end
`;

Deno.test("round trip of nested structures keeps every value and sorts keys", async () => {
  const text = '{"a":[1,2,{"b":null,"c":[true,false]}],"d":{"e":"x","f":-1.5,"g":{}},"h":[[],[[]]],"i":"y"}';
  const out = await lines(`
    local t = json_decode(${JSON.stringify(text)})
    print(json_encode(t))
    print(t.a[1], t.a[2], t.a[3].b == json_null, t.a[3].c[1], t.a[3].c[2], #t.a)
    print(t.d.e, t.d.f, math.type(t.d.f), next(t.d.g), #t.h, #t.h[2], t.i)
    print(json_encode(json_decode(json_encode(t))) == json_encode(t))
  `);
  deepStrictEqual(out, [
    text,
    "1\t2\ttrue\ttrue\tfalse\t3",
    "x\t-1.5\tfloat\tnil\t2\t1\ty",
    "true",
  ]);
});

Deno.test("Lua tables: sequences are arrays, everything else objects with sorted keys", async () => {
  const out = await lines(`
    print(json_encode({1, 2, 3}))
    print(json_encode({"a", {"b", "c"}}))
    print(json_encode({[1] = 1, [2] = 2, [4] = 4}))
    print(json_encode({1, nil, 3}))
    print(json_encode({1, 2, x = 1}))
    print(json_encode({[0] = "z", "a"}))
    print(json_encode({[-1] = 1}))
    print(json_encode({zeta = 1, alpha = 2, Beta = 3, ["10"] = 4, ["9"] = 5, [""] = 6}))
    print(json_encode({[1.5] = "f", [2] = "i"}))
    print(json_encode({[2^70] = 1}))
    print(json_encode({[math.maxinteger] = true}))
    print(json_encode(setmetatable({}, {__index = function() return 1 end, __len = function() return 5 end})))
    print(json_encode(setmetatable({x = 1}, {__pairs = function() error("must not be called") end})))
    local shared = {1}
    print(json_encode({shared, shared, {k = shared}}))
    print(json_encode("plain"), json_encode(42), json_encode(true), json_encode(false), json_encode(nil))
  `);
  deepStrictEqual(out, [
    "[1,2,3]",
    '["a",["b","c"]]',
    '{"1":1,"2":2,"4":4}',
    '{"1":1,"3":3}',
    '{"1":1,"2":2,"x":1}',
    '{"0":"z","1":"a"}',
    '{"-1":1}',
    '{"":6,"10":4,"9":5,"Beta":3,"alpha":2,"zeta":1}',
    '{"1.5":"f","2":"i"}',
    '{"1.1805916207174113e+21":1}',
    '{"9223372036854775807":true}',
    "{}",
    '{"x":1}',
    '[[1],[1],{"k":[1]}]',
    '"plain"\t42\ttrue\tfalse\tnull',
  ]);
});

Deno.test("empty arrays and objects survive a round trip", async () => {
  const out = await lines(`
    print(json_encode({}))
    print(json_encode(json_decode("[]")))
    print(json_encode(json_decode("{}")))
    print(json_encode(json_decode('{"a":[],"b":{},"c":[[],{}]}')))
    local a = json_decode("[]")
    print(type(a), #a, next(a))
    -- filled in, the decoded empty array is an ordinary array
    a[1] = "x"
    print(json_encode(a))
    -- the marker can be reused to build an empty array by hand
    print(json_encode({list = setmetatable({}, getmetatable(json_decode("[]")))}))
  `);
  deepStrictEqual(out, [
    "{}",
    "[]",
    "{}",
    '{"a":[],"b":{},"c":[[],{}]}',
    "table\t0\tnil",
    '["x"]',
    '{"list":[]}',
  ]);
});

Deno.test("unicode text and escapes", async () => {
  const out = await lines(`
    local s = "héllo ✓ 😀"
    print(json_encode(s))
    print(json_decode(json_encode(s)) == s, #json_decode(json_encode(s)))
    local d = json_decode('"\\\\u00e9\\\\u2713\\\\ud83d\\\\ude00"')
    print(d, #d, d == "é✓😀")
    print(json_encode("q\\"b\\\\n\\nt\\tc\\1z\\0e"))
    local t = json_decode('{"a\\\\u0000b": 1, "ключ": "значение"}')
    print(t["a\\0b"], t["ключ"], t.a)
    print(json_encode(t))
    print(json_encode({["é"] = 1, ["e"] = 2, ["z"] = 3}))
    print(json_encode(string.rep("x", 100) .. "\\"" .. string.rep("é", 100)) == '"' .. string.rep("x", 100) .. '\\\\"' .. string.rep("é", 100) .. '"')
  `);
  deepStrictEqual(out, [
    '"héllo ✓ 😀"',
    `true\t${new TextEncoder().encode("héllo ✓ 😀").length}`,
    "é✓😀\t9\ttrue",
    JSON.stringify('q"b\\n\nt\tc\x01z\0e'),
    "1\tзначение\tnil",
    '{"a\\u0000b":1,"ключ":"значение"}',
    '{"e":2,"z":3,"é":1}',
    "true",
  ]);
});

Deno.test("an escaped lone surrogate becomes U+FFFD (as in Go); a proper pair is its character", async () => {
  const out = await lines(`
    local function hex(s) return (s:gsub(".", function(c) return string.format("%02X ", c:byte()) end)) end
    print(hex(json_decode('"\\\\ud800"')))
    print(hex(json_decode('"a\\\\udc00b"')))
    print(hex(json_decode('"\\\\ude00\\\\ud83d"')))
    print(hex(json_decode('"\\\\ud83d\\\\ude00"')))
    print(hex(next(json_decode('{"\\\\udead": 1}'))))
    print(json_encode(json_decode('["\\\\udead", "\\\\ud83d\\\\ude00"]')))
  `);
  deepStrictEqual(out, [
    "EF BF BD ",
    "61 EF BF BD 62 ",
    "EF BF BD EF BF BD ",
    "F0 9F 98 80 ",
    "EF BF BD ",
    '["\uFFFD","😀"]',
  ]);
});

Deno.test("object keys are sorted as Lua compares strings: by bytes, so U+E000..U+FFFF before characters past U+FFFF", async () => {
  const out = await lines(`
    local keys = {"a", "z", "\\u{D7FF}", "\\u{E000}", "\\u{FF61}", "\\u{FFFF}x", "\\u{10000}", "\\u{1F600}", "\\u{10FFFF}", "é"}
    local t = {}
    for i, k in ipairs(keys) do t[k] = i end
    table.sort(keys)
    local sorted = {}
    for i, k in ipairs(keys) do sorted[i] = json_encode(k) .. ":" .. t[k] end
    print(json_encode(t) == "{" .. table.concat(sorted, ",") .. "}")
    print(json_encode({["\\u{FF61}"] = 1, ["\\u{1F600}"] = 2}))
  `);
  deepStrictEqual(out, ["true", '{"\u{FF61}":1,"\u{1F600}":2}']);
});

Deno.test("a string or key that starts with U+FEFF (a byte-order mark) keeps it", async () => {
  const out = await lines(`
    local s = "\\xEF\\xBB\\xBFid"
    print(json_encode(s) == '"' .. s .. '"', json_decode(json_encode(s)) == s)
    print(json_encode({ [s] = 1, id = 2 }) == '{"id":2,"' .. s .. '":1}')
    local long = s .. string.rep("é", 200)
    print(json_decode(json_encode({ long }))[1] == long)
  `);
  deepStrictEqual(out, ["true\ttrue", "true", "true"]);
});

Deno.test("a string or key over 16 MiB is quoted in pieces, cut between characters: it round trips exactly", async () => {
  const out = await lines(`
    local s = "x" .. string.rep("é✓😀", 2500000) -- 22.5 MB, characters of 2, 3 and 4 bytes across every cut
    local text = json_encode({ s })
    print(#text == #s + 4, json_decode(text)[1] == s)
    local keyed = json_encode({ [s] = 1 }) -- a key that long is quoted in pieces too
    print(#keyed == #s + 6, json_decode(keyed)[s])
  `);
  deepStrictEqual(out, ["true\ttrue", "true\t1"]);
});

Deno.test("json_decode ignores a byte-order mark before the text (Notepad writes one); positions still count it", async () => {
  const out = await lines(`
    print(json_decode("\\xEF\\xBB\\xBF" .. '{"port": 8080}').port)
    print(pcall(json_decode, "\\xEF\\xBB\\xBF" .. '{"port": x}'))
    print(json_decode('"\\xEF\\xBB\\xBFkept"') == "\\xEF\\xBB\\xBFkept")
  `);
  deepStrictEqual(out, ["8080", "false\tjson_decode: unexpected 'x' at byte 13", "true"]);
});

Deno.test("integers and floats stay distinct", async () => {
  const out = await lines(`
    local function show(text)
      local v = json_decode(text)
      print(text, math.type(v), v)
    end
    show("1") show("-0") show("0") show("1.0") show("1e2") show("1E2") show("-2.5") show("1.5e-3")
    print(json_encode(1), json_encode(1.0), json_encode(-0.0), json_encode(0.0), json_encode(0.1))
    print(json_encode(1e300), json_encode(2^53), json_encode(-3.0), json_encode(1e-7), json_encode(1/3))
    print(math.type(json_decode(json_encode(1.0))), math.type(json_decode(json_encode(1))))
    print(math.type(json_decode(json_encode(2^53))), math.type(json_decode(json_encode(1e300))))
    local f = json_decode(json_encode(0.1 + 0.2))
    print(f == 0.1 + 0.2, math.type(f))
    -- an integer list with a float elsewhere: the exact path keeps both kinds
    local t = json_decode("[1, 1.0, 2.5, -7, 10000000000]")
    local kinds = {}
    for i = 1, #t do kinds[i] = math.type(t[i]) end
    print(table.concat(kinds, " "))
    -- digits followed by '.' or 'e' inside strings only: integers still integers
    local u = json_decode('{"v": "1.2", "w": "3e4", "n": 5, "name": "hello"}')
    print(math.type(u.n), u.v, u.w)
  `);
  deepStrictEqual(out, [
    "1\tinteger\t1",
    "-0\tinteger\t0",
    "0\tinteger\t0",
    "1.0\tfloat\t1.0",
    "1e2\tfloat\t100.0",
    "1E2\tfloat\t100.0",
    "-2.5\tfloat\t-2.5",
    "1.5e-3\tfloat\t0.0015",
    "1\t1.0\t-0.0\t0.0\t0.1",
    "1e+300\t9007199254740992.0\t-3.0\t1e-7\t0.3333333333333333",
    "float\tinteger",
    "float\tfloat",
    "true\tfloat",
    "integer float float integer integer",
    "integer\t1.2\t3e4",
  ]);
});

Deno.test("integers beyond 2^53 are exact both ways", async () => {
  const out = await lines(`
    local big = (1 << 53) + 1
    print(json_encode(big), json_encode(-big), json_encode({big}))
    local d = json_decode("9007199254740993")
    print(d == big, math.type(d), d)
    print(json_encode(math.maxinteger), json_encode(math.mininteger))
    local m = json_decode('{"max": 9223372036854775807, "min": -9223372036854775808, "x": 1234567890123456789}')
    print(m.max == math.maxinteger, m.min == math.mininteger, math.type(m.max), math.type(m.min), m.x)
    print(json_encode(m))
    -- beyond int64 the value becomes a float, as Lua's own lexer does
    local over = json_decode("[9223372036854775808, -9223372036854775809, 100000000000000000000000]")
    print(math.type(over[1]), over[1] == 2^63, math.type(over[2]), math.type(over[3]), over[3] == 1e23)
    -- 16-digit integers that are safe still decode exactly
    print(json_decode("1234567890123456"), json_decode("[9007199254740991]")[1])
  `);
  deepStrictEqual(out, [
    "9007199254740993\t-9007199254740993\t[9007199254740993]",
    "true\tinteger\t9007199254740993",
    "9223372036854775807\t-9223372036854775808",
    "true\ttrue\tinteger\tinteger\t1234567890123456789",
    '{"max":9223372036854775807,"min":-9223372036854775808,"x":1234567890123456789}',
    "float\ttrue\tfloat\tfloat\ttrue",
    "1234567890123456\t9007199254740991",
  ]);
});

Deno.test("json_null both ways", async () => {
  const out = await lines(`
    print(type(json_null), json_decode("null") == json_null, json_null ~= nil)
    print(json_encode(json_null), json_encode({a = json_null, b = 1}), json_encode({json_null, 2}))
    local t = json_decode("[1, null, 3]")
    print(#t, t[2] == json_null, json_encode(t))
    local o = json_decode('{"k": null}')
    print(o.k == json_null, json_encode(o))
  `);
  deepStrictEqual(out, [
    "userdata\ttrue\ttrue",
    'null\t{"a":null,"b":1}\t[null,2]',
    "3\ttrue\t[1,null,3]",
    'true\t{"k":null}',
  ]);
});

Deno.test("pretty printing matches JSON.stringify", async () => {
  const value = { b: [1, 2, { c: "x", d: [] }], a: {}, e: [], f: { g: null, h: [true] } };
  const text = JSON.stringify(value);
  const out = await lines(`
    local t = json_decode(${JSON.stringify(text)})
    print(json_encode(t, 2))
    print(json_encode(t, "\\t"))
    print(json_encode(t, 0) == json_encode(t), json_encode(t, "") == json_encode(t), json_encode(t, nil) == json_encode(t))
    print(json_encode(t, 40) == json_encode(t, 10), json_encode({1}, 1.9), json_encode(5, 4))
  `);
  // JSON.stringify keeps insertion order; ours sorts: compare against the sorted object
  const sorted = { a: {}, b: [1, 2, { c: "x", d: [] }], e: [], f: { g: null, h: [true] } };
  deepStrictEqual(
    out,
    [
      ...JSON.stringify(sorted, null, 2).split("\n"),
      ...JSON.stringify(sorted, null, "\t").split("\n"),
      "true\ttrue\ttrue",
      "true\t[\n 1\n]\t5".split("\n"),
    ].flat(),
  );
});

Deno.test("a string indent is a width when it holds a number, whitespace as it is, and any other an error", async () => {
  const out = await lines(`
    local t = { a = { 1 } }
    print(json_encode(t, "2") == json_encode(t, 2), json_encode(t, " 3 ") == json_encode(t, 3))
    print(json_encode(t, " \\t"))
    print(pcall(json_encode, t, "x"))
    print(pcall(json_encode, t, "2x"))
    print(json_encode(t, "0x1p1") == json_encode(t, 2), pcall(json_encode, t, "0b11")) -- as tonumber reads them
  `);
  deepStrictEqual(out, [
    "true\ttrue",
    ...JSON.stringify({ a: [1] }, null, " \t").split("\n"),
    `false\tbad argument #2 to 'json_encode' (indent must be a number of spaces or a string of whitespace, got "x")`,
    `false\tbad argument #2 to 'json_encode' (indent must be a number of spaces or a string of whitespace, got "2x")`,
    `true\tfalse\tbad argument #2 to 'json_encode' (indent must be a number of spaces or a string of whitespace, got "0b11")`,
  ]);
});

Deno.test("encoding errors", async () => {
  const out = await lines(
    ERR + `
    err(json_encode, print)
    err(json_encode, {f = function() end})
    err(json_encode, coroutine.create(function() end))
    err(json_encode, io.stdout)
    local t = {} t.self = t
    err(json_encode, t)
    local a = {1, {2, {}}} a[2][2][1] = a
    err(json_encode, a)
    err(json_encode, 0/0)
    err(json_encode, {x = math.huge})
    err(json_encode, -math.huge)
    err(json_encode, {[true] = 1})
    err(json_encode, {[{}] = 1})
    err(json_encode, {[print] = 1})
    err(json_encode, "\\xff")
    err(json_encode, {["ok"] = "a\\xc3"})
    err(json_encode, {["\\xed\\xa0\\x80"] = 1})
    err(json_encode, {[1] = "a", ["1"] = "b"})
    err(json_encode, {[math.huge] = 1})
    err(json_encode)
    err(json_encode, {}, true)
    -- errors leave nothing behind: the next call works
    print(json_encode({1, {a = 2}}))
  `,
  );
  deepStrictEqual(out, [
    "json_encode: cannot encode a value of type function",
    "json_encode: cannot encode a value of type function",
    "json_encode: cannot encode a value of type thread",
    "json_encode: cannot encode a value of type userdata",
    "json_encode: cannot encode a cyclic table",
    "json_encode: cannot encode a cyclic table",
    "json_encode: cannot encode NaN",
    "json_encode: cannot encode inf",
    "json_encode: cannot encode -inf",
    "json_encode: cannot encode a table key of type boolean",
    "json_encode: cannot encode a table key of type table",
    "json_encode: cannot encode a table key of type function",
    "json_encode: invalid UTF-8 in string",
    "json_encode: invalid UTF-8 in string",
    "json_encode: invalid UTF-8 in string",
    'json_encode: table has two keys that both encode as "1"',
    "json_encode: cannot encode inf",
    "bad argument #1 to 'json_encode' (value expected)",
    "bad argument #2 to 'json_encode' (number or string expected, got boolean)",
    '[1,{"a":2}]',
  ]);
});

Deno.test("a channel is not data: encoding one is a clear error, whether or not a goroutine waits on it", async () => {
  const { outcome, output } = await run(
    ERR + `
    local idle = chan("idle", 2)
    send(idle, "secret")
    err(json_encode, { id = 8, reply = idle })
    local reply = chan("reply")
    go(function() receive(reply) end)
    err(json_encode, { id = 7, reply = reply })
    err(json_encode, chan())
  `,
    (engine) => installFamily(engine, concurrency),
  );
  strictEqual(outcome.status, "ok");
  strictEqual(output, "json_encode: cannot encode a channel\n".repeat(3));
});

Deno.test("only the NULL light userdata is json_null", async () => {
  const { outcome, output } = await run(
    ERR + `
    err(json_encode, {other})
    print(json_encode({json_null}))
  `,
    (engine) => {
      const { vm, L } = engine;
      vm.api.lua_pushlightuserdata(L, 16);
      vm.api.lua_setglobal(L, vm.cstr("other"));
    },
  );
  strictEqual(outcome.status, "ok");
  strictEqual(output, "json_encode: cannot encode a value of type userdata\n[null]\n");
});

Deno.test("decoding errors", async () => {
  const out = await lines(
    ERR + `
    err(json_decode, "{bad")
    err(json_decode, "")
    err(json_decode, "[1, 2")
    err(json_decode, "[1,]")
    err(json_decode, "1.5.5")
    err(json_decode, "nul")
    err(json_decode, '"\\xff"')
    err(json_decode, '{"a": "\\xc3("}')
    err(json_decode, nil)
    err(json_decode)
    err(json_decode, {})
    err(json_decode, true)
    print(json_decode(12), math.type(json_decode(12)))
  `,
  );
  deepStrictEqual(out, [
    "json_decode: unexpected 'b' at byte 2",
    "json_decode: unexpected end of text at byte 1",
    "json_decode: unexpected end of text at byte 6",
    "json_decode: unexpected ']' at byte 4",
    "json_decode: unexpected '.' after the JSON value at byte 4",
    "json_decode: unexpected end of text at byte 4",
    "json_decode: invalid UTF-8 at byte 2",
    "json_decode: invalid UTF-8 at byte 8",
    "bad argument #1 to 'json_decode' (string expected, got nil)",
    "bad argument #1 to 'json_decode' (string expected, got no value)",
    "bad argument #1 to 'json_decode' (string expected, got table)",
    "bad argument #1 to 'json_decode' (string expected, got boolean)",
    "12\tinteger",
  ]);
});

Deno.test("uncaught errors carry the caller's position", async () => {
  match(await failure('local x = 1\nlocal t = json_decode("{")'), /^test:2: json_decode: /);
  strictEqual(
    await failure("\n\njson_encode({f = print})"),
    "test:3: json_encode: cannot encode a value of type function",
  );
});

Deno.test("nesting limit: 1000 levels pass, deeper input fails cleanly", async () => {
  const out = await lines(
    ERR + `
    local function nest(n)
      local t = {}
      for _ = 2, n do t = {t} end
      return t
    end
    local ok = json_encode(nest(1000))
    print(#ok, ok:sub(1, 3), ok:sub(-3))
    err(json_encode, nest(1001))
    err(json_encode, nest(100000))
    local text = string.rep("[", 1000) .. string.rep("]", 1000)
    local d = json_decode(text)
    print(json_encode(d) == text)
    err(json_decode, string.rep("[", 1001) .. string.rep("]", 1001))
    err(json_decode, string.rep("[", 10000) .. string.rep("]", 10000))
    err(json_decode, string.rep('{"a":', 100000) .. "1.5" .. string.rep("}", 100000))
    err(json_decode, string.rep("[", 1000000) .. string.rep("]", 1000000))
    print(json_encode(json_decode("[[1.5]]")))
  `,
  );
  deepStrictEqual(out.slice(0, 5), [
    "2000\t[[[\t]]]",
    "json_encode: nesting deeper than 1000 levels",
    "json_encode: nesting deeper than 1000 levels",
    "true",
    "json_decode: nesting deeper than 1000 levels",
  ]);
  // JSON.parse itself may refuse such depth (with the reviver); either way a json_decode error
  for (const line of out.slice(5, 8)) match(line, /^json_decode: /);
  strictEqual(out[8], "[[1.5]]");
});

Deno.test("large values round trip intact", async () => {
  const out = await lines(`
    local rows = {}
    for i = 1, 20000 do
      rows[i] = {id = i, name = "row " .. i, score = i / 4, tags = {"a", "b", i}, extra = json_null}
    end
    local text = json_encode(rows)
    local back = json_decode(text)
    print(#back, back[20000].id, back[20000].name, back[3].score, math.type(back[4].score), back[7].tags[3])
    print(json_encode(back) == text, select("#", json_encode(rows)), select("#", json_decode(text)))
    local wide = {}
    for i = 1, 5000 do wide["k" .. i] = {i} end
    local w = json_decode(json_encode(wide))
    local n = 0 for _ in pairs(w) do n = n + 1 end
    print(n, w.k4999[1])
  `);
  deepStrictEqual(out, [
    "20000\t20000\trow 20000\t0.75\tfloat\t7",
    "true\t1\t1",
    "5000\t4999",
  ]);
});

Deno.test("number kinds are kept whichever way the text is parsed", async () => {
  // 2.5 alone: plain JSON.parse. 1.0 or a big integer: number tokens rewritten.
  // The same with a "\u0000" string in the text: the reviver path.
  const cases = [
    '[1, 2.5, "x"]',
    '[1.0, "\\u0001", 9007199254740993, 2.5, 7, -0.0, 1e2, 12345678901234567, "1.0"]',
    '["\\u0000z", 1.0, 9007199254740993, 2.5, 7, -0.0, 1e2, 12345678901234567, "1.0"]',
  ];
  const out = await lines(`
    for _, text in ipairs(${"{" + cases.map((c) => JSON.stringify(c)).join(", ") + "}"}) do
      local t = json_decode(text)
      local kinds = {}
      for i = 1, #t do kinds[i] = math.type(t[i]) or (#t[i] .. ":" .. t[i]:gsub("%z", "NUL")) end
      print(table.concat(kinds, " "), json_encode(t))
    end
    -- quotes and backslashes inside strings do not confuse the number scan
    local o = json_decode('{"a": "say \\\\"1.0\\\\"", "b": 3, "c": "\\\\\\\\", "d": 1.0, "e": "\\\\\\\\\\\\"2.0"}')
    print(o.a, math.type(o.b), o.c, math.type(o.d), o.e)
  `);
  deepStrictEqual(out, [
    'integer float 1:x\t[1,2.5,"x"]',
    "float 1:\x01 integer float integer float float integer 3:1.0\t" +
    '[1.0,"\\u0001",9007199254740993,2.5,7,-0.0,100.0,12345678901234567,"1.0"]',
    "2:NULz float integer float integer float float integer 3:1.0\t" +
    '["\\u0000z",1.0,9007199254740993,2.5,7,-0.0,100.0,12345678901234567,"1.0"]',
    'say "1.0"\tinteger\t\\\tfloat\t\\"2.0',
  ]);
});

/** Decodes each text with json_decode: each is one JSON.parse refuses, and must fail with the message given. */
async function failsWith(cases: [text: string, message: string][]): Promise<void> {
  for (const [text] of cases) throws(() => JSON.parse(text), SyntaxError);
  const out = await lines(
    ERR + `
    for _, text in ipairs(${"{" + cases.map(([text]) => JSON.stringify(text)).join(", ") + "}"}) do
      err(json_decode, text)
    end
  `,
  );
  deepStrictEqual(out, cases.map(([, message]) => `json_decode: ${message}`));
}

Deno.test("parse errors give the same position whatever the path", async () => {
  await failsWith([
    ["[1.0,]", "unexpected ']' at byte 6"],
    ['["\\u0000", 1.0,]', "unexpected ']' at byte 16"],
    ["[9007199254740993 1]", "unexpected '1' at byte 19"],
    ['{"a": 1e5 "b"}', "unexpected '\"' at byte 11"],
    ["01", "unexpected '1' after the JSON value at byte 2"],
  ]);
});

Deno.test("malformed numbers and number keys are rejected as JSON.parse rejects them, whatever their value", async () => {
  await failsWith([
    ["1.", "unexpected end of text at byte 3"],
    ["[1.]", "unexpected ']' at byte 4"],
    ["1.e5", "unexpected 'e' at byte 3"],
    ["01.0", "unexpected '1' after the JSON value at byte 2"],
    ["[-00.0]", "unexpected '0' at byte 4"],
    ["0123456789012345678", "unexpected '1' after the JSON value at byte 2"],
    ["-01e2", "unexpected '1' after the JSON value at byte 3"],
    ["{1.0: 2}", "unexpected '1' at byte 2"],
    ['{"a": 1, 12345678901234567890: 1}', "unexpected '1' at byte 10"],
    ['{"\\u0000": 1, 2.0: 1}', "unexpected '2' at byte 15"],
  ]);
});

Deno.test("a number beyond a float's range is refused at its place, as Go's decoder does; one that underflows is 0", async () => {
  const texts = [
    '{"reading": 1e400, "min": -1e999}',
    "[1.5, -1e999]",
    `[\n 1,\n 1${"0".repeat(400)}]`,
    '[0, "1e400", {"\\u0000": 1e400}]',
  ];
  const out = await lines(
    ERR + `
    for _, text in ipairs(${"{" + texts.map((text) => JSON.stringify(text)).join(", ") + "}"}) do
      err(json_decode, text)
    end
    local t = json_decode('[1e-400, 1e308, "1e400"]')
    print(t[1], t[2] == 1e308, t[3])
  `,
  );
  deepStrictEqual(out, [
    "json_decode: number out of range at byte 13",
    "json_decode: number out of range at byte 7",
    "json_decode: number out of range at byte 8 (line 3, column 2)",
    "json_decode: number out of range at byte 25",
    "0.0\ttrue\t1e400",
  ]);
});

Deno.test("every parse error says where: the byte (from 1), with line and column in a text of several lines", async () => {
  const doc = '{"items":[' + '{"id":1,"name":"abc"},'.repeat(5000) + '{"id":2,"name":abc}]}';
  await failsWith([
    [doc, `unexpected 'a' at byte ${doc.indexOf("abc}") + 1}`],
    ['{"a": tru}', "unexpected '}' at byte 10"],
    ['{"a":1}\n{"b":2}', "unexpected '{' after the JSON value at byte 9 (line 2, column 1)"],
    ['[\n  "é😀", x]', "unexpected 'x' at byte 15 (line 2, column 9)"],
    ['{"é": "😀", "b": x}', "unexpected 'x' at byte 21"],
    ['["a\tb"]', "unexpected U+0009 in a string at byte 4"],
    ['["a\\qb"]', "unexpected 'q' after a backslash at byte 5"],
    ['"\\u12g4"', "unexpected 'g' in a \\u escape at byte 6"],
    ['"\\u12', "unexpected end of text at byte 6"],
    ["[\ufeff]", "unexpected U+FEFF at byte 2"], // only a mark before the text is ignored
    ["[1, 2\u00a0]", "unexpected U+00A0 at byte 6"],
    ["[[[[", "unexpected end of text at byte 5"],
    ['{"a":1,}', "unexpected '}' at byte 8"],
    ['{"a" 1}', "unexpected '1' at byte 6"],
    ["[1 2]", "unexpected '2' at byte 4"],
    ["nulL", "unexpected 'L' at byte 4"],
    ["-", "unexpected end of text at byte 2"],
    ["1e+", "unexpected end of text at byte 4"],
    ["  ", "unexpected end of text at byte 3"],
  ]);
});

Deno.test("randomly broken texts: the position is where JSON.parse itself stops, whenever it says", async () => {
  let seed = 2024;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor((seed / 2147483648) * n);
  };
  const base = '{"a": [1, -2.5e3, true, false, null, "s\\n\\u00e9"], "b": {"c": {}, "d": []}, "e": 0.5}';
  const alphabet = '{}[],:"\\0123456789.eE+-tfnul x\n\t';
  const texts = new Set<string>();
  while (texts.size < 400) {
    let text = base;
    for (let m = 1 + random(2); m > 0; m--) {
      const at = random(text.length);
      const c = alphabet[random(alphabet.length)];
      const kind = random(3);
      text = text.slice(0, at) + (kind === 0 ? "" : c) + text.slice(kind === 1 ? at : at + 1);
    }
    try {
      JSON.parse(text);
    } catch {
      texts.add(text);
    }
  }
  const cases = [...texts];
  const out = await lines(
    ERR + `
    for _, text in ipairs(${"{" + cases.map((text) => JSON.stringify(text)).join(", ") + "}"}) do
      err(json_decode, text)
    end
  `,
  );
  strictEqual(out.length, cases.length);
  let compared = 0;
  cases.forEach((text, k) => {
    const at = out[k].match(/ at byte (\d+)(?: \(line \d+, column \d+\))?$/);
    ok(at, `${JSON.stringify(text)}: ${out[k]}`);
    let v8: string;
    try {
      JSON.parse(text);
      throw new Error("unreachable");
    } catch (e) {
      v8 = (e as Error).message;
    }
    // The text is ASCII, so V8's position (a UTF-16 index from 0) is the byte minus one.
    const position = v8.match(/at position (\d+)/)?.[1] ??
      (v8 === "Unexpected end of JSON input" ? text.length : undefined);
    if (position === undefined) return;
    compared++;
    strictEqual(Number(at[1]), Number(position) + 1, `${JSON.stringify(text)}: ${out[k]} / ${v8}`);
  });
  ok(compared > 200, `compared ${compared}`);
});

Deno.test("invalid UTF-8 is reported at the first byte of the first bad sequence, as TextDecoder judges", async () => {
  let seed = 99;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor((seed / 2147483648) * n);
  };
  // Valid characters of every length (no U+FFFD, which stands for the bad bytes below), then bytes near the boundaries of the UTF-8 ranges.
  const pieces = ["a", "é", "✓", "😀", "\u{10FFFF}"].map((c) => [...new TextEncoder().encode(c)]);
  const odd = [0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x9f, 0xa0, 0x8f, 0x90];
  const cases: number[][] = [];
  while (cases.length < 300) {
    const bytes: number[] = [0x22];
    for (let k = random(6); k > 0; k--) bytes.push(...pieces[random(pieces.length)]);
    for (let k = 1 + random(3); k > 0; k--) bytes.push(odd[random(odd.length)]);
    for (let k = random(3); k > 0; k--) bytes.push(random(2) ? odd[random(odd.length)] : 0x41);
    bytes.push(0x22);
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
    } catch {
      cases.push(bytes);
    }
  }
  const out = await lines(
    ERR + `
    for _, text in ipairs({${cases.map((bytes) => '"' + bytes.map((b) => `\\${b}`).join("") + '"').join(", ")}}) do
      err(json_decode, text)
    end
  `,
  );
  deepStrictEqual(
    out,
    cases.map((bytes) => {
      // Everything before the first replacement TextDecoder makes is valid, and decodes to itself.
      const text = new TextDecoder().decode(new Uint8Array(bytes));
      const valid = new TextEncoder().encode(text.slice(0, text.indexOf("\uFFFD"))).length;
      return `json_decode: invalid UTF-8 at byte ${valid + 1}`;
    }),
  );
});

Deno.test("randomized numbers decode to the right kind and value", async () => {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(random() * 10)).join("");
  const tokens: string[] = [];
  for (let i = 0; i < 600; i++) {
    const sign = random() < 0.3 ? "-" : "";
    const int = random() < 0.2 ? "0" : String(1 + Math.floor(random() * 9)) + digits(Math.floor(random() * 21));
    const r = random();
    let token = sign + int;
    if (r < 0.25) {
      token += "." + (random() < 0.5 ? "0".repeat(1 + Math.floor(random() * 3)) : digits(1 + Math.floor(random() * 5)));
    } else if (r < 0.4) {
      token += (random() < 0.5 ? "e" : "E") + (random() < 0.5 ? "-" : "+") + digits(1 + Math.floor(random() * 2));
    }
    tokens.push(token);
  }
  const expected = tokens.map((token) => {
    if (/[.eE]/.test(token) || BigInt(token) > 2n ** 63n - 1n || BigInt(token) < -(2n ** 63n)) {
      const d = Number(token);
      if (!Number.isFinite(d)) return "float inf";
      const s = Object.is(d, -0) ? "-0.0" : String(d);
      return "float " + (/[.e]/.test(s) ? s : s + ".0");
    }
    return "integer " + BigInt(token);
  });
  const text = "[" + tokens.map((t, i) => (i % 7 === 0 ? `{"k${i}": ${t}, "s": "${t}"}` : t)).join(",") + "]";
  const out = await lines(`
    local t = json_decode(${JSON.stringify(text)})
    for i = 1, #t do
      local v = type(t[i]) == "table" and t[i]["k" .. (i - 1)] or t[i]
      print(math.type(v) .. " " .. ((v == math.huge or v == -math.huge) and "inf" or json_encode(v)))
    end
  `);
  deepStrictEqual(out, expected);
});

Deno.test("json_encode writes a table met in several places from one text, and refuses a text past the memory limit", async () => {
  const dir = await tempFiles({
    "shared.lua": `local t = {} for _ = 1, 20 do t = { t, t } end  -- 2^20 tables to write, 21 to read
local u = {} for _ = 1, 16 do u = { u, u } end
print(#json_encode(t), #json_encode(u, 1))
local doc = { t = { x = 1 } }
doc.again = { doc.t, { doc.t } }
print(json_encode(doc, 1) == json_encode(json_decode(json_encode(doc)), 1))
for _ = 1, 10 do t = { t, t } end
print(pcall(json_encode, t))
`,
  });
  const r = await solvm(["--memory-limit", "32", `${dir}/shared.lua`]);
  strictEqual(r.stderr, "");
  strictEqual(
    r.stdout,
    "5242877\t3407870\ntrue\n" +
      "false\tjson_encode: the text would take more than 32 MiB, the memory this Lua state may use (a table that " +
      "appears in several places is written once for each)\n",
  );
});

/**
 * import() and require() on real files, through the real CLI: every project
 * is a temporary folder used as the working directory, with the main script
 * at `app/main.lua`, so the script's folder (`app/`), `modules/` in the
 * working directory and `modules/` beside the script (`app/modules/`) are
 * three different places. URL imports go to a real local HTTP server.
 *
 * @module
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert";
import { type CliRun, solvm } from "./_helpers.ts";

/** Writes `files` (path -> content, folders created as needed) into a new temporary folder; returns its path. */
async function project(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "solvm-modules-" });
  for (const [name, content] of Object.entries(files)) {
    const path = `${dir}/${name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, content);
  }
  return dir;
}

/** Runs `solvm app/main.lua` with the project folder as the working directory. */
function runMain(dir: string): Promise<CliRun> {
  return solvm(["app/main.lua"], { cwd: dir });
}

/** Asserts a clean run (exit 0, nothing on stderr) that printed exactly `stdout`. */
function assertPrinted(r: CliRun, stdout: string): void {
  strictEqual(r.stderr, "");
  strictEqual(r.code, 0);
  strictEqual(r.stdout, stdout);
}

/** A local HTTP server serving `routes` (path -> Lua source), 404 otherwise; records every request path. */
function serveModules(routes: Record<string, string>) {
  const requests: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    requests.push(path);
    const body = routes[path];
    return body === undefined ? new Response("no such module", { status: 404 }) : new Response(body);
  });
  return { server, requests, base: `http://127.0.0.1:${server.addr.port}` };
}

// ---------------------------------------------------------------------------
// import: where it looks

Deno.test("import searches the script's folder, then modules/ in the working directory, then modules/ beside the script", async () => {
  const dir = await project({
    "app/main.lua": `print(import("first"), import("second"), import("third"))\nprint(first, second, third)\n`,
    // "first" exists in all three places: the script's folder wins.
    "app/first.lua": `return "first from app/"`,
    "modules/first.lua": `return "first from modules/"`,
    "app/modules/first.lua": `return "first from app/modules/"`,
    // "second" is not beside the script: modules/ in the working directory comes before app/modules/.
    "modules/second.lua": `return "second from modules/"`,
    "app/modules/second.lua": `return "second from app/modules/"`,
    // "third" exists only beside the main script.
    "app/modules/third.lua": `return "third from app/modules/"`,
  });
  const line = "first from app/\tsecond from modules/\tthird from app/modules/\n";
  assertPrinted(await runMain(dir), line + line);
});

Deno.test("import finds the script's folder from the script's path, not from the working directory", async () => {
  const dir = await project({
    "app/main.lua": `print(import("helper"))`,
    "app/helper.lua": `return "app helper"`,
    "helper.lua": `return "working directory helper"`,
  });
  assertPrinted(await runMain(dir), "app helper\n");
  // With an absolute script path and an unrelated working directory the result is the same.
  const elsewhere = await project({ "helper.lua": `return "wrong helper"` });
  assertPrinted(await solvm([`${dir}/app/main.lua`], { cwd: elsewhere }), "app helper\n");
});

Deno.test("a module importing another module searches its own folder first", async () => {
  const dir = await project({
    "app/main.lua": `local outer = import("outer")\nprint(outer.shared, shared)\n`,
    "app/modules/outer.lua": `local shared = import("shared")\nreturn { shared = shared }\n`,
    // The module's own folder (app/modules/) must win over the main script's folder and modules/.
    "app/modules/shared.lua": `return "shared beside outer"`,
    "app/shared.lua": `return "shared beside main"`,
    "modules/shared.lua": `return "shared in modules/"`,
  });
  assertPrinted(await runMain(dir), "shared beside outer\tshared beside outer\n");
});

Deno.test("import: a name may include folders; the global is the file name without folders and .lua", async () => {
  const dir = await project({
    "app/main.lua": `local a = import("lib/tools")\nlocal b = import("lib/tools.lua")\n` +
      `print(tools == a, a == b, a.name, rawget(_G, "lib"), rawget(_G, "tools.lua"))\n`,
    "app/lib/tools.lua": `return { name = "tools" }`,
  });
  assertPrinted(await runMain(dir), "true\ttrue\ttools\tnil\tnil\n");
});

Deno.test("import finds name/init.lua and dotted names as require does; the global is the name's last part", async () => {
  const dir = await project({
    "app/main.lua": `print(import("pkg"), import("a.b"), import("both"), import("lib/tools"))\n` +
      `print(pkg, b, both, tools, rawget(_G, "a.b"))\nprint(require("pkg"), (require("a.b")))\n`,
    "modules/pkg/init.lua": `return "modules/pkg/init.lua"`,
    "app/a/b.lua": `return "app/a/b.lua"`,
    // In one folder name.lua comes before name/init.lua, as in package.path.
    "app/both.lua": `return "app/both.lua"`,
    "app/both/init.lua": `return "app/both/init.lua"`,
    "app/lib/tools/init.lua": `return "app/lib/tools/init.lua"`,
  });
  const line = "modules/pkg/init.lua\tapp/a/b.lua\tapp/both.lua\tapp/lib/tools/init.lua\n";
  assertPrinted(await runMain(dir), line + line.replace(/\n$/, "\tnil\n") + "modules/pkg/init.lua\tapp/a/b.lua\n");
});

Deno.test("import keeps a name whole unless it is dotted parts (a.b): .config is .config.lua, never a path from the root", async () => {
  const dir = await project({
    "app/main.lua": `print(import(".config"), rawget(_G, ".config"))\n` +
      `for _, name in ipairs({ ".tmp.config", "a..b", "a.", ".." }) do print((select(2, pcall(import, name)))) end\n`,
    "app/.config.lua": `return "app/.config.lua"`,
    // Where dots as folders would have led these names (from the search folders, or from the root for .tmp.config).
    "app/tmp/config.lua": `return "wrong"`,
    "app/a/b.lua": `return "wrong"`,
  });
  const searched = (name: string) =>
    `app/main.lua:2: import: module '${name}' not found; searched:\n` +
    ["app/", "modules/", "app/modules/"].map((folder) => `\t${folder}${name}.lua\n\t${folder}${name}/init.lua\n`).join(
      "",
    );
  assertPrinted(
    await runMain(dir),
    "app/.config.lua\tapp/.config.lua\n" + searched(".tmp.config") + searched("a..b") + searched("a.") +
      searched(".."),
  );
});

// ---------------------------------------------------------------------------
// import: what it gives

Deno.test("import sets a global named after the module and returns the same value; .lua is optional", async () => {
  const dir = await project({
    "app/main.lua": `print(rawget(_G, "mathx"))\n` +
      `local m = import("mathx")\nprint(type(m), m == mathx, m.double(21))\n` +
      `local again = import("mathx.lua")\nprint(again == m)\n`,
    "modules/mathx.lua": `local M = {}\nfunction M.double(x) return x * 2 end\nreturn M\n`,
  });
  assertPrinted(await runMain(dir), "nil\ntable\ttrue\t42\ntrue\n");
});

Deno.test("a module that returns nothing gives true (returned and as its global); false stays false", async () => {
  const dir = await project({
    "app/main.lua": `print(import("sideeffect"), sideeffect, loaded_side_effect)\n` +
      `print(import("nope_value"), nope_value)\n`,
    "modules/sideeffect.lua": `loaded_side_effect = "yes"`,
    "modules/nope_value.lua": `return false`,
  });
  assertPrinted(await runMain(dir), "true\ttrue\tyes\nfalse\tfalse\n");
});

Deno.test("a module imported twice (with and without .lua, from two importers) is loaded once", async () => {
  const dir = await project({
    "app/main.lua": `local a = import("counted")\nlocal b = import("counted.lua")\nlocal c = import("user").counted\n` +
      `print(load_count, a == b, b == c, a.id)\n`,
    "modules/counted.lua": `load_count = (load_count or 0) + 1\nreturn { id = "counted" }\n`,
    "modules/user.lua": `return { counted = import("counted") }`,
  });
  assertPrinted(await runMain(dir), "1\ttrue\ttrue\tcounted\n");
});

Deno.test("one file reached by two spellings of its path is still loaded once", async () => {
  const dir = await project({
    "app/main.lua": `local a = import("once")\nlocal b = import("./once")\nlocal c = import("lib/../once.lua")\n` +
      `print(once_loads, a == b, b == c)\n`,
    "app/once.lua": `once_loads = (once_loads or 0) + 1\nreturn {}\n`,
    "app/lib/placeholder.lua": `return true`,
  });
  assertPrinted(await runMain(dir), "1\ttrue\ttrue\n");
});

Deno.test("a module may block at load time (sleep), in the main chunk and in a goroutine", async () => {
  const dir = await project({
    "app/main.lua": `local t = import("slow")\nprint(t.value, slow_done)\n` +
      `chan("got", 1)\ngo(function() send("got", import("slow2").value) end)\nprint((receive("got")))\n`,
    "modules/slow.lua": `sleep(0.01)\nslow_done = true\nreturn { value = "after sleep" }\n`,
    "modules/slow2.lua": `sleep(0.01)\nreturn { value = "from a goroutine" }\n`,
  });
  assertPrinted(await runMain(dir), "after sleep\ttrue\nfrom a goroutine\n");
});

Deno.test({
  name: "`return import(name)` (a tail call) still searches the importing module's folder",
  fn: async () => {
    const dir = await project({
      "app/main.lua": `print(import("lib/front"))`,
      "app/lib/front.lua": `return import("back")`,
      "app/lib/back.lua": `return "back beside front"`,
    });
    assertPrinted(await runMain(dir), "back beside front\n");
  },
});

Deno.test({
  name: "pcall(import, name) searches the folder of the script that calls pcall",
  fn: async () => {
    const dir = await project({
      "app/main.lua": `print(pcall(import, "optional"))`,
      "app/optional.lua": `return "optional found"`,
    });
    assertPrinted(await runMain(dir), "true\toptional found\n");
  },
});

Deno.test("goroutines importing one module at once run it once and all get its value; a failed load is tried again", async () => {
  const dir = await project({
    "app/main.lua": `local got = {}
for i = 1, 3 do go(function() got[i] = import("slow") end) end
wait()
print(LOADS, got[1] == got[2], got[2] == got[3], import("slow") == got[1])
local errors = {}
for i = 1, 2 do go(function() errors[i] = select(2, pcall(import, "broken")) end) end
wait()
print(BROKEN, errors[1] == errors[2], errors[1])
`,
    "modules/slow.lua": `LOADS = (LOADS or 0) + 1
sleep(0.05)
return {}
`,
    "modules/broken.lua": `BROKEN = (BROKEN or 0) + 1
sleep(0.05)
error("no good", 0)
`,
  });
  assertPrinted(await runMain(dir), "1\ttrue\ttrue\ttrue\n2\ttrue\tno good\n");
});

Deno.test("a circular import fails at once, naming the cycle", async () => {
  const dir = await project({
    "app/main.lua": `print(pcall(import, "ca"))`,
    "modules/ca.lua": `return { b = import("cb") }`,
    "modules/cb.lua": `return { a = import("ca") }`,
  });
  assertPrinted(
    await runMain(dir),
    "false\tmodules/cb.lua:1: import: circular import: modules/ca.lua -> modules/cb.lua -> modules/ca.lua\n",
  );
});

Deno.test("a circular import through a coroutine inside the module fails the same way, not a deadlock", async () => {
  const dir = await project({
    "app/main.lua": `print(pcall(import, "selfimp"))
print(import("lazy").v)`,
    // A coroutine a module's load resumes is part of that load: it may import others, and waits as its goroutine.
    "modules/selfimp.lua": `local gen = coroutine.wrap(function() coroutine.yield(import("selfimp")) end)
return { v = gen() }`,
    "modules/lazy.lua": `local gen = coroutine.wrap(function() coroutine.yield(import("leaf").name) end)
return { v = gen() }`,
    "modules/leaf.lua": `sleep(0.01)\nreturn { name = "leaf" }`,
  });
  assertPrinted(
    await runMain(dir),
    "false\tmodules/selfimp.lua:2: modules/selfimp.lua:1: import: circular import: modules/selfimp.lua -> " +
      "modules/selfimp.lua\nleaf\n",
  );
});

Deno.test("two goroutines importing modules that import each other both get the circular import, not a hang", async () => {
  const dir = await project({
    "app/main.lua": `go(function() print("g1", pcall(import, "ca")) end)
go(function() print("g2", pcall(import, "cb")) end)
wait()
print("done")`,
    // The wait while loading lets the other goroutine start its own module first.
    "modules/ca.lua": `sleep(0.05)\nreturn { b = import("cb") }`,
    "modules/cb.lua": `sleep(0.05)\nreturn { a = import("ca") }`,
  });
  const r = await runMain(dir);
  strictEqual(r.stderr, "");
  strictEqual(r.code, 0);
  // Which goroutine meets the circle first (and so which module's line each error names) depends on which sleep
  // ends first: both end at once.
  const lines = r.stdout.split("\n");
  deepStrictEqual(lines.slice(2), ["done", ""]);
  const sorted = lines.slice(0, 2).sort();
  match(
    sorted[0],
    /^g1\tfalse\tmodules\/c[ab]\.lua:2: import: circular import: modules\/ca\.lua -> modules\/cb\.lua -> modules\/ca\.lua$/,
  );
  match(
    sorted[1],
    /^g2\tfalse\tmodules\/c[ab]\.lua:2: import: circular import: modules\/cb\.lua -> modules\/ca\.lua -> modules\/cb\.lua$/,
  );
});

Deno.test("under --sandbox, run from another folder, import skips modules/ there (unreadable) for the script's", async () => {
  const dir = await project({
    "app/main.lua": `print(import("util"))\nprint(pcall(import, "absent"))\n`,
    "app/modules/util.lua": `return "util from app/modules/"`,
  });
  await Deno.mkdir(`${dir}/elsewhere/modules`, { recursive: true });
  const refused = (path: string) =>
    `${path}: permission denied: read access to "${path}" (run with --allow-read=${path})`;
  assertPrinted(
    await solvm(["--sandbox", "../app/main.lua"], { cwd: `${dir}/elsewhere` }),
    "util from app/modules/\n" +
      "false\t../app/main.lua:2: import: module 'absent' not found; searched:\n" +
      `\t../app/absent.lua\n\t../app/absent/init.lua\n\t${refused("modules/absent.lua")}\n` +
      `\t${refused("modules/absent/init.lua")}\n\t../app/modules/absent.lua\n\t../app/modules/absent/init.lua\n`,
  );
});

// ---------------------------------------------------------------------------
// import: errors

Deno.test("a missing module: the caller's line and every place searched", async () => {
  const dir = await project({
    "app/main.lua": `print("before")\n\nimport("missing")\nprint("not reached")\n`,
  });
  const r = await runMain(dir);
  strictEqual(r.code, 1);
  strictEqual(r.stdout, "before\n");
  const message = "app/main.lua:3: import: module 'missing' not found; searched:\n" +
    "\tapp/missing.lua\n\tapp/missing/init.lua\n\tmodules/missing.lua\n\tmodules/missing/init.lua\n" +
    "\tapp/modules/missing.lua\n\tapp/modules/missing/init.lua\n";
  ok(r.stderr.startsWith(message), r.stderr);
  match(r.stderr, /stack traceback:/);
});

Deno.test("a missing module, caught: exact message; the same folders with and without .lua (which names the file)", async () => {
  const dir = await project({
    "app/main.lua": `local ok, e = pcall(function() local m = import("gone") return m end)\nprint(ok)\nprint(e)\n` +
      `local ok2, e2 = pcall(function() local m = import("gone.lua") return m end)\nprint(e2)\n`,
  });
  const places = "\tapp/gone.lua\n\tmodules/gone.lua\n\tapp/modules/gone.lua\n";
  const withInit = "\tapp/gone.lua\n\tapp/gone/init.lua\n\tmodules/gone.lua\n\tmodules/gone/init.lua\n" +
    "\tapp/modules/gone.lua\n\tapp/modules/gone/init.lua\n";
  assertPrinted(
    await runMain(dir),
    "false\napp/main.lua:1: import: module 'gone' not found; searched:\n" + withInit +
      "app/main.lua:4: import: module 'gone.lua' not found; searched:\n" + places,
  );
});

Deno.test("a missing module imported by a module: that module's line and folder come first", async () => {
  const dir = await project({
    "app/main.lua": `import("outer")`,
    "app/modules/outer.lua": `local x = 1\nlocal inner = import("inner")\nreturn inner\n`,
  });
  const r = await runMain(dir);
  strictEqual(r.code, 1);
  strictEqual(r.stdout, "");
  // app/modules/inner.lua is both "the importer's folder" and "modules/ beside the script": listed once.
  const message = "app/modules/outer.lua:2: import: module 'inner' not found; searched:\n" +
    "\tapp/modules/inner.lua\n\tapp/modules/inner/init.lua\n\tapp/inner.lua\n\tapp/inner/init.lua\n" +
    "\tmodules/inner.lua\n\tmodules/inner/init.lua\nstack traceback:";
  ok(r.stderr.startsWith(message), r.stderr);
});

Deno.test("a missing module with an absolute script path lists absolute places beside the script", async () => {
  const dir = await project({ "app/main.lua": `local m = import("absent")` });
  const r = await solvm([`${dir}/app/main.lua`], { cwd: dir });
  strictEqual(r.code, 1);
  for (const place of [`${dir}/app/absent.lua`, "\tmodules/absent.lua", `${dir}/app/modules/absent.lua`]) {
    ok(r.stderr.includes(place), `${place} not in:\n${r.stderr}`);
  }
  ok(r.stderr.startsWith(`${dir}/app/main.lua:1: import: module 'absent' not found; searched:\n`), r.stderr);
});

Deno.test("a syntax error in a module reports the module's file and line, not the importer's", async () => {
  const dir = await project({
    "app/main.lua": `local ok, e = pcall(function() local m = import("bad") return m end)\nprint(ok, e)\n` +
      `print("uncaught next")\nimport("bad")\n`,
    "modules/bad.lua": `local x = 1\nlocal y = = 2\nreturn x\n`,
  });
  const r = await runMain(dir);
  strictEqual(r.code, 1);
  strictEqual(r.stdout, "false\tmodules/bad.lua:2: unexpected symbol near '='\nuncaught next\n");
  ok(r.stderr.startsWith("modules/bad.lua:2: unexpected symbol near '='\n"), r.stderr);
  ok(!r.stderr.startsWith("app/main.lua"), r.stderr);
});

Deno.test("a runtime error while a module loads propagates with the module's file:line", async () => {
  const dir = await project({
    "app/main.lua": `local ok, e = pcall(function() local m = import("boom") return m end)\nprint(ok, e)\n` +
      `local ok2, e2 = pcall(function() local m = import("nilindex") return m end)\nprint(ok2, e2)\n` +
      `import("boom")\n`,
    "modules/boom.lua": `local x = 1\n\nerror("load failed")\n`,
    "modules/nilindex.lua": `local t = nil\nreturn t.field\n`,
  });
  const r = await runMain(dir);
  strictEqual(r.code, 1);
  strictEqual(
    r.stdout,
    "false\tmodules/boom.lua:3: load failed\n" +
      "false\tmodules/nilindex.lua:2: attempt to index a nil value (local 't')\n",
  );
  ok(r.stderr.startsWith("modules/boom.lua:3: load failed\nstack traceback:\n"), r.stderr);
  match(r.stderr, /app\/main\.lua:5: in main chunk/);
});

Deno.test("import needs no debug library, and places its errors at the calling chunk's line whatever the chunk", async () => {
  const dir = await project({
    "app/main.lua": `debug = nil\nprint(import("helper"))\n` +
      `local plugin = load("local x = 1\\nimport('missing')", "=plugin")\nprint((select(2, pcall(plugin))))\n` +
      `local unnamed = load("local x = 1\\nimport('missing')")\nprint((select(2, pcall(unnamed))))\n` +
      `print(import("sub.mod").via_load())\n`,
    "app/helper.lua": `return "helper beside the script"`,
    // A module's load()ed string imports the module's neighbours.
    "app/sub/mod.lua":
      `return { via_load = function() local m = load("local m = import('sibling') return m")() return m end }`,
    "app/sub/sibling.lua": `return "sibling beside the module"`,
  });
  // A chunk that is not a file searches first the folder of the file whose code ran it (here main.lua's).
  const searched = " import: module 'missing' not found; searched:\n\tapp/missing.lua\n\tapp/missing/init.lua\n" +
    "\tmodules/missing.lua\n\tmodules/missing/init.lua\n\tapp/modules/missing.lua\n\tapp/modules/missing/init.lua\n";
  assertPrinted(
    await runMain(dir),
    "helper beside the script\n" + "plugin:2:" + searched + `[string "local x = 1..."]:2:` + searched +
      "sibling beside the module\n",
  );
  const repl = await solvm(["-i"], { cwd: dir, stdin: `local m = import("missing")\n` });
  ok(repl.stderr.startsWith("stdin:1: import: module 'missing' not found; searched:\n\tmissing.lua\n"), repl.stderr);
});

Deno.test("import with a non-string argument: bad argument #1", async () => {
  const dir = await project({
    "app/main.lua": `print(pcall(import, 5))\nprint(pcall(import))\nprint(pcall(import, {}))\nimport(42)\n`,
  });
  const r = await runMain(dir);
  strictEqual(r.code, 1);
  strictEqual(
    r.stdout,
    "false\tbad argument #1 to 'import' (string expected, got number)\n" +
      "false\tbad argument #1 to 'import' (string expected, got nil)\n" +
      "false\tbad argument #1 to 'import' (string expected, got table)\n",
  );
  ok(r.stderr.startsWith("app/main.lua:4: bad argument #1 to 'import' (string expected, got number)\n"), r.stderr);
});

Deno.test("import refused where it cannot wait names the importer's line, as sleep's refusal does", async () => {
  const dir = await project({
    "app/main.lua": `print(pcall(require, "uses_import"))
chan("release", 1) go(function() import("held") end)
while not HELD do sleep(0) end
-- "held" is being loaded by the goroutine: waiting for it inside a sort comparator is refused too.
table.sort({ 2, 1 }, function(a, b) print(pcall(import, "held")) return a < b end)
send("release", true)
wait()
require("uses_import")
`,
    "app/uses_import.lua": `local x = 1\nimport("helper")\nreturn {}\n`,
    "app/helper.lua": `return {}`,
    "app/held.lua": `HELD = true\nreceive("release")\nreturn {}\n`,
  });
  const r = await runMain(dir);
  strictEqual(r.code, 1);
  const refusal = "import cannot wait here (not in a goroutine, or across a C call)";
  strictEqual(r.stdout, `false\tapp/uses_import.lua:2: ${refusal}\nfalse\tapp/main.lua:5: ${refusal}\n`);
  ok(r.stderr.startsWith(`app/uses_import.lua:2: ${refusal}\nstack traceback:\n`), r.stderr);
  ok(!r.stderr.includes("[solvm]"), r.stderr);
});

// ---------------------------------------------------------------------------
// import: URLs

Deno.test("import from an http URL sets the global, returns the module and fetches it once", async () => {
  const { server, requests, base } = serveModules({
    "/utils.lua": `utils_loads = (utils_loads or 0) + 1\nreturn { greet = function(n) return "hi " .. n end }\n`,
  });
  try {
    const dir = await project({
      "app/main.lua": `local u = import("${base}/utils.lua")\nprint(type(u), u == utils, utils.greet("url"))\n` +
        `local again = import("${base}/utils.lua")\nprint(again == u, utils_loads)\n`,
    });
    assertPrinted(await runMain(dir), "table\ttrue\thi url\ntrue\t1\n");
    strictEqual(requests.length, 1, `requests: ${requests.join(", ")}`);
    strictEqual(requests[0], "/utils.lua");
  } finally {
    await server.shutdown();
  }
});

Deno.test("import from a URL: HTTP 404 gives 'import: cannot fetch URL: HTTP 404'", async () => {
  const { server, requests, base } = serveModules({});
  try {
    const dir = await project({
      "app/main.lua": `local ok, e = pcall(function() local m = import("${base}/missing.lua") return m end)\n` +
        `print(ok)\nprint(e)\nprint(rawget(_G, "missing"))\n`,
    });
    assertPrinted(
      await runMain(dir),
      `false\napp/main.lua:1: import: cannot fetch ${base}/missing.lua: HTTP 404\nnil\n`,
    );
    strictEqual(requests.length, 1);
  } finally {
    await server.shutdown();
  }
});

Deno.test("import from a URL: a syntax error names the URL and line", async () => {
  const { server, base } = serveModules({ "/broken.lua": `local a = 1\nreturn = a\n` });
  try {
    const dir = await project({ "app/main.lua": `import("${base}/broken.lua")` });
    const r = await runMain(dir);
    strictEqual(r.code, 1);
    ok(r.stderr.startsWith(`${base}/broken.lua:2: unexpected symbol near '='\n`), r.stderr);
  } finally {
    await server.shutdown();
  }
});

Deno.test("import from an unreachable URL gives a clear 'import: cannot fetch' error", async () => {
  const { server, base } = serveModules({});
  await server.shutdown();
  const dir = await project({
    "app/main.lua":
      `local ok, e = pcall(function() local m = import("${base}/gone.lua") return m end)\nprint(ok)\nprint(e)\n`,
  });
  const started = performance.now();
  const r = await runMain(dir);
  strictEqual(r.stderr, "");
  strictEqual(r.code, 0);
  const [first, message] = r.stdout.split("\n");
  strictEqual(first, "false");
  const prefix = `app/main.lua:1: import: cannot fetch ${base}/gone.lua: `;
  ok(message.startsWith(prefix), message);
  ok(message.length > prefix.length, "the reason is given");
  ok(performance.now() - started < 4000, "fails fast");
});

// ---------------------------------------------------------------------------
// require: Lua's standard semantics on the real disk

Deno.test("require finds <scriptdir>/name.lua, dotted names in subfolders and pkg/init.lua", async () => {
  const dir = await project({
    "app/main.lua": `print(require("util"))\nprint(require("lib.helpers"))\nprint(require("pkg"))\n`,
    "app/util.lua": `return "util"`,
    "app/lib/helpers.lua": `return "lib.helpers"`,
    "app/pkg/init.lua": `return "pkg init"`,
    // Decoys in the working directory: the script's folder is searched, not ./
    "util.lua": `return "wrong util"`,
  });
  // The second value is the file the module came from (Lua 5.4).
  assertPrinted(
    await runMain(dir),
    "util\tapp/util.lua\nlib.helpers\tapp/lib/helpers.lua\npkg init\tapp/pkg/init.lua\n",
  );
});

Deno.test("require searches modules/ in the working directory and modules/ beside the script", async () => {
  const dir = await project({
    "app/main.lua": `print(require("fromcwd"))\nprint(require("beside"))\nprint(require("nested.deep"))\n` +
      `print(require("both"))\n`,
    "modules/fromcwd.lua": `return "cwd modules"`,
    "app/modules/beside.lua": `return "beside modules"`,
    "app/modules/nested/deep/init.lua": `return "nested init"`,
    "modules/both.lua": `return "both: cwd modules"`,
    "app/modules/both.lua": `return "both: beside modules"`,
  });
  assertPrinted(
    await runMain(dir),
    "cwd modules\tmodules/fromcwd.lua\nbeside modules\tapp/modules/beside.lua\n" +
      "nested init\tapp/modules/nested/deep/init.lua\nboth: cwd modules\tmodules/both.lua\n",
  );
});

Deno.test("require caches in package.loaded: loaded once, the same table, the loader gets name and path", async () => {
  const dir = await project({
    "app/main.lua": `local a, where = require("counter")\nlocal b = require("counter")\n` +
      `print(require_count, a == b, package.loaded.counter == a, where, select("#", require("counter")))\n` +
      `print(a.args[1], a.args[2])\n`,
    "app/counter.lua": `require_count = (require_count or 0) + 1\nreturn { args = { ... } }\n`,
  });
  assertPrinted(await runMain(dir), "1\ttrue\ttrue\tapp/counter.lua\t1\ncounter\tapp/counter.lua\n");
});

Deno.test("require of a module returning nothing stores true in package.loaded", async () => {
  const dir = await project({
    "app/main.lua": `print(require("quiet"), package.loaded.quiet, quiet_ran)`,
    "app/quiet.lua": `quiet_ran = "ran"`,
  });
  assertPrinted(await runMain(dir), "true\ttrue\tran\n");
});

Deno.test("require of a missing module: Lua's standard message listing the tried paths", async () => {
  const dir = await project({
    "app/main.lua": `local ok, e = pcall(require, "nowhere.mod")\nprint(ok)\nprint(e)\n`,
  });
  const r = await runMain(dir);
  strictEqual(r.stderr, "");
  strictEqual(r.code, 0);
  const [first, ...rest] = r.stdout.split("\n");
  strictEqual(first, "false");
  const message = rest.join("\n");
  ok(message.startsWith("module 'nowhere.mod' not found:\n\tno field package.preload['nowhere.mod']\n"), message);
  for (
    const place of [
      "\n\tno file 'app/nowhere/mod.lua'\n",
      "\n\tno file 'app/nowhere/mod/init.lua'\n",
      "\n\tno file 'modules/nowhere/mod.lua'\n",
      "\n\tno file 'app/modules/nowhere/mod.lua'\n",
    ]
  ) {
    ok(message.includes(place), `${JSON.stringify(place)} not in:\n${message}`);
  }
  // The script's folder and modules/ come before Lua's usual places.
  ok(message.indexOf("app/nowhere/mod.lua") < message.indexOf("./nowhere/mod.lua"), message);
  // No C module can load in WebAssembly: no lines for C paths (an empty cpath listed "no file ''").
  ok(!message.includes("no file ''") && !message.includes(".so'"), message);
});

Deno.test("require of a missing module, uncaught: exit 1 with the caller's line", async () => {
  const dir = await project({ "app/main.lua": `\nrequire("absent")\n` });
  const r = await runMain(dir);
  strictEqual(r.code, 1);
  ok(r.stderr.startsWith("app/main.lua:2: module 'absent' not found:\n"), r.stderr);
  ok(r.stderr.includes("\tno file 'app/absent.lua'\n"), r.stderr);
});

Deno.test("a syntax error in a required module reports that module's file and line", async () => {
  const dir = await project({
    "app/main.lua": `local ok, e = pcall(require, "broken")\nprint(ok)\nprint(e)\n`,
    "app/broken.lua": `local a = 1\n\nlocal b = = 2\n`,
  });
  assertPrinted(
    await runMain(dir),
    "false\nerror loading module 'broken' from file 'app/broken.lua':\n\tapp/broken.lua:3: unexpected symbol near '='\n",
  );
});

Deno.test("a runtime error inside a required module propagates with that module's file:line", async () => {
  const dir = await project({
    "app/main.lua": `local ok, e = pcall(require, "explodes")\nprint(ok, e, package.loaded.explodes)\n`,
    "app/explodes.lua": `local x = 1\nerror("required module failed")\n`,
  });
  assertPrinted(await runMain(dir), "false\tapp/explodes.lua:2: required module failed\tnil\n");
});

Deno.test("an uncaught error inside a required or dofile'd file keeps that file's frames in the traceback", async () => {
  const dir = await project({
    "app/broken.lua": `local function parse(cfg)\n  return cfg.port + 1\nend\nlocal m = parse(nil)\nreturn m\n`,
    "app/required.lua": `local function setup()\n  local m = require("broken")\n  return m\nend\nsetup()\n`,
    "app/dofiled.lua": `local function setup()\n  local m = dofile("app/broken.lua")\n  return m\nend\nsetup()\n`,
  });
  for (const [script, via] of [["required", "[C]: in function 'require'"], ["dofiled", "(...tail calls...)"]]) {
    const r = await solvm([`app/${script}.lua`], { cwd: dir });
    strictEqual(r.code, 1);
    strictEqual(
      r.stderr,
      "app/broken.lua:2: attempt to index a nil value (local 'cfg')\nstack traceback:\n" +
        "\tapp/broken.lua:2: in local 'parse'\n\tapp/broken.lua:4: in main chunk\n" +
        `\t${via}\n\tapp/${script}.lua:2: in local 'setup'\n\tapp/${script}.lua:5: in main chunk\n`,
    );
  }
});

Deno.test("an uncaught error while a module loads through import: its main chunk, then the import call", async () => {
  const dir = await project({
    "modules/broken.lua": `local function parse(cfg)\n  return cfg.port + 1\nend\nlocal m = parse(nil)\nreturn m\n`,
    "app/main.lua": `local function setup()\n  local m = import("broken")\n  return m\nend\nsetup()\n`,
  });
  const r = await runMain(dir);
  strictEqual(r.code, 1);
  strictEqual(
    r.stderr,
    "modules/broken.lua:2: attempt to index a nil value (local 'cfg')\nstack traceback:\n" +
      "\tmodules/broken.lua:2: in local 'parse'\n\tmodules/broken.lua:4: in main chunk\n" +
      "\tapp/main.lua:2: in local 'setup'\n\tapp/main.lua:5: in main chunk\n",
  );
});

Deno.test("require and dofile nest 150 deep, as in lua5.4", async () => {
  const files: Record<string, string> = {
    "app/main.lua": `print(pcall(require, "r1"))\nprint(pcall(dofile, "app/d1.lua"))\n`,
    "app/r150.lua": "return 0",
    "app/d150.lua": "return 0",
  };
  for (let i = 1; i < 150; i++) {
    files[`app/r${i}.lua`] = `return require("r${i + 1}") + 1`;
    files[`app/d${i}.lua`] = `return dofile("app/d${i + 1}.lua") + 1`;
  }
  assertPrinted(await runMain(await project(files)), "true\t149\tapp/r1.lua\ntrue\t149\n");
});

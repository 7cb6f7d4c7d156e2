import { deepStrictEqual, match, ok, strictEqual } from "node:assert";
import { runLua, sleep, solvm, tempFiles, within } from "./_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

Deno.test("trace() prints the current stack to stderr, from the caller down", async () => {
  const dir = await tempFiles({
    "t.lua":
      `local function inner()\n  trace("checkpoint")\nend\nlocal function outer() inner() end\nouter()\nprint("after")\n`,
  });
  const r = await solvm([`${dir}/t.lua`]);
  strictEqual(r.code, 0);
  strictEqual(r.stdout, "after\n");
  match(
    r.stderr,
    /^checkpoint\nstack traceback:\n\t.*t\.lua:2: in (local|upvalue) 'inner'\n\t.*t\.lua:4: in local 'outer'/,
  );
  const plain = await runLua(`trace()`);
  match(plain.stderr, /^trace\nstack traceback:\n/);
});

Deno.test("trace() and check_memory() keep working when the script removes the globals they use", async () => {
  const r = await runLua(`
    local keep_print = print
    math, collectgarbage, debug, io = nil, nil, nil, nil
    keep_print(type(check_memory().lua_heap))
    trace("still")`);
  deepStrictEqual(r.outcome, { status: "ok" });
  strictEqual(r.stdout, "number\n");
  match(r.stderr, /^still\nstack traceback:\n/);
});

Deno.test("watch_file calls its function once per change, as a goroutine; unwatch_file stops it", async () => {
  const dir = await tempFiles({ "watched.txt": "v1" });
  const { stdout, stderr } = await runLua(`
    local path = "${dir}/watched.txt"
    chan("changed", 10)
    local calls = 0
    local id = watch_file(path, function() calls = calls + 1 sleep(0.01) send("changed", read_file(path)) end)
    go(function()
      sleep(0.2)
      write_file(path, "v2")        -- several writes close together are one change
      write_file(path, "v3")
      write_file(path, "v4")
    end)
    print(receive("changed"))
    sleep(0.4)
    print("calls", calls)
    print(unwatch_file(id), unwatch_file(id))
    write_file(path, "v5")
    sleep(0.3)
    print("calls", calls)`);
  strictEqual(stderr, "");
  strictEqual(stdout, "v4\ttrue\ncalls\t1\ntrue\tfalse\ncalls\t1\n");
});

Deno.test("watch_file follows a file that an editor replaces", async () => {
  const dir = await tempFiles({ "config.lua": "return 1" });
  const { stdout } = await runLua(`
    chan("changed", 1)
    watch_file("${dir}/config.lua", function() send("changed", true) end)
    go(function() sleep(0.2) write_file("${dir}/config.tmp", "return 2") os.rename("${dir}/config.tmp", "${dir}/config.lua") end)
    print(receive("changed"), read_file("${dir}/config.lua"))
    os.exit(0)`);
  strictEqual(stdout, "true\treturn 2\n");
});

Deno.test("watch_file follows a file whose folder is replaced (rm -rf dir && mkdir dir)", async () => {
  const top = await tempFiles({});
  const dir = `${top}/conf`;
  const { stdout } = await runLua(`
    local path = "${dir}/config.txt"
    os.execute("mkdir ${dir} && echo 1 > " .. path)
    local seen = {}
    watch_file(path, function() seen[#seen + 1] = read_file(path) end)
    sleep(0.2)
    os.execute("rm -rf ${dir} && mkdir ${dir} && echo 2 > " .. path)
    sleep(0.5)
    os.execute("echo 3 >> " .. path)
    sleep(0.5)
    print(seen[#seen])
    os.exit(0)`);
  strictEqual(stdout, "2\n3\n\n");
});

Deno.test("watch_file: bad arguments and missing paths are clear errors", async () => {
  const { stdout } = await runLua(`
    print(pcall(watch_file, "/nonexistent/file.txt", function() end))
    print(pcall(watch_file, "x"))
    print(pcall(unwatch_file, "x"))
    local name = os.tmpname()
    local id = watch_file(name, function() end)
    print("first id", id, unwatch_file(id))
    os.remove(name)`);
  const lines = stdout.trim().split("\n");
  // A watch that failed takes no id.
  strictEqual(lines[3], "first id\t1\ttrue");
  match(lines[0], /^false\twatch_file: cannot watch "\/nonexistent\/file.txt": no such file or directory$/);
  match(lines[1], /bad argument #2 to 'watch_file' \(function expected, got no value\)/);
  match(lines[2], /bad argument #1 to 'unwatch_file' \(number expected, got string\)/);
});

Deno.test("reload_script re-runs the main script in a fresh Lua state and stops the old run", async () => {
  const dir = await tempFiles({ "runs.txt": "" });
  await Deno.writeTextFile(
    `${dir}/main.lua`,
    `
    local runs = #read_file("${dir}/runs.txt") + 1
    write_file("${dir}/runs.txt", "x", "a")
    print("run " .. runs, leftover)
    leftover = "from run " .. runs
    if runs < 3 then
      set_interval(function() print("old interval still running") end, 0.05)
      go(function() sleep(0.3) print("old goroutine still running") end)
      sleep(0.02)
      reload_script()
      print("not reached")
    end
    sleep(0.4)
    print("done")`,
  );
  const r = await solvm([`${dir}/main.lua`]);
  strictEqual(r.stderr, "");
  strictEqual(r.code, 0);
  strictEqual(r.stdout, "run 1\tnil\nrun 2\tnil\nrun 3\tnil\ndone\n");
});

Deno.test("reload_script in a script read from standard input runs the text read again", async () => {
  const dir = await tempFiles({});
  const script = `
    local runs = #(read_file("${dir}/runs.txt") or "") + 1
    write_file("${dir}/runs.txt", "x", "a")
    print("run " .. runs, leftover, io.read("l"))
    leftover = true
    if runs < 3 then print(pcall(reload_script)) end
    print("done")`;
  for (const args of [["-"], []]) {
    await Deno.writeTextFile(`${dir}/runs.txt`, "");
    const r = await solvm(args, { stdin: script });
    strictEqual(r.stderr, "");
    strictEqual(r.code, 0);
    strictEqual(r.stdout, "run 1\tnil\tnil\nrun 2\tnil\tnil\nrun 3\tnil\tnil\ndone\n");
  }
});

/**
 * Runs `solvm --watch [flags] script` while `steps` edits files, each step waiting with `waitFor` until stdout
 * holds a text (or with `exited` for SolVM to end); then stops it and returns what it printed.
 */
async function watching(
  script: string,
  steps: (waitFor: (text: string) => Promise<void>, exited: Promise<Deno.CommandStatus>) => Promise<void>,
  flags: string[] = [],
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--watch", ...flags, script],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const decoder = new TextDecoder();
  let stdout = "";
  const reader = child.stdout.getReader();
  const stderr = new Response(child.stderr).text();
  const waitFor = async (text: string) => {
    const reading = (async () => {
      while (!stdout.includes(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        stdout += decoder.decode(value);
      }
    })();
    await within(reading, 10_000, `${JSON.stringify(text)} on stdout; got ${JSON.stringify(stdout)}`);
    // Changes made at once after a run would be too early for its watchers.
    await new Promise((r) => setTimeout(r, 300));
  };
  let running = true;
  const exited = child.status.finally(() => running = false);
  try {
    await steps(waitFor, exited);
  } finally {
    if (running) child.kill();
    await reader.cancel();
    await child.status;
  }
  return { stdout, stderr: await stderr };
}

Deno.test("--watch reloads when the script or a module it imported (or required) changes", async () => {
  const dir = await tempFiles({
    "app.lua": `import("greeting")\nprint("app v1", greeting.text)\n`,
    "greeting.lua": `return { text = "hello" }\n`,
    "punct.lua": `return "!"\n`,
  });
  const { stdout } = await watching(`${dir}/app.lua`, async (waitFor) => {
    await waitFor("app v1\thello\n");
    await Deno.writeTextFile(`${dir}/app.lua`, `import("greeting")\nprint("app v2", greeting.text)\n`);
    await waitFor("app v2\thello\n");
    await Deno.writeTextFile(`${dir}/greeting.lua`, `return { text = "bonjour" }\n`);
    await waitFor("app v2\tbonjour\n");
    await Deno.writeTextFile(
      `${dir}/app.lua`,
      `import("greeting")\nprint("app v3", greeting.text .. require("punct"))\n`,
    );
    await waitFor("app v3\tbonjour!\n");
    await Deno.writeTextFile(`${dir}/punct.lua`, `return "?"\n`);
    await waitFor("app v3\tbonjour?\n");
  });
  deepStrictEqual(stdout.trim().split("\n"), [
    "app v1\thello",
    "app v2\thello",
    "app v2\tbonjour",
    "app v3\tbonjour!",
    "app v3\tbonjour?",
  ]);
});

Deno.test("--watch reloads when an actor's script or a module the actor required changes", async () => {
  const dir = await tempFiles({
    "main.lua": `local a = spawn("worker.lua")\nprint("worker says", a.wait())\n`,
    "worker.lua": `return "worker v1, " .. require("helper")\n`,
    "helper.lua": `return "helper v1"\n`,
  });
  const { stdout } = await watching(`${dir}/main.lua`, async (waitFor) => {
    await waitFor("worker says\tworker v1, helper v1\n");
    await Deno.writeTextFile(`${dir}/worker.lua`, `return "worker v2, " .. require("helper")\n`);
    await waitFor("worker says\tworker v2, helper v1\n");
    await Deno.writeTextFile(`${dir}/helper.lua`, `return "helper v2"\n`);
    await waitFor("worker says\tworker v2, helper v2\n");
  });
  // Before, neither edit reloaded: only the main script's own files were watched.
  strictEqual(
    stdout,
    "worker says\tworker v1, helper v1\nworker says\tworker v2, helper v1\nworker says\tworker v2, helper v2\n",
  );
});

Deno.test("--watch follows a required module whose first load failed to compile: fixing it reloads", async () => {
  const dir = await tempFiles({
    "main.lua": `print("before") local cfg = require("cfg") print("port", cfg.port)\n`,
    "cfg.lua": `return { port = 80\n`,
  });
  const { stdout, stderr } = await watching(`${dir}/main.lua`, async (waitFor) => {
    await waitFor("before\n");
    await Deno.writeTextFile(`${dir}/cfg.lua`, `return { port = 8080 }\n`);
    await waitFor("port\t8080\n");
  });
  strictEqual(stdout, "before\nbefore\nport\t8080\n");
  match(stderr, /'}' expected/);
});

Deno.test("--watch follows a module whose folder is replaced, and one missing at a reload", async () => {
  const dir = await tempFiles({ "main.lua": `import("m")\nprint("m says", m)\n` });
  await Deno.mkdir(`${dir}/modules`);
  await Deno.writeTextFile(`${dir}/modules/m.lua`, `return "v1"\n`);
  const { stdout, stderr } = await watching(`${dir}/main.lua`, async (waitFor) => {
    await waitFor("m says\tv1\n");
    await Deno.remove(`${dir}/modules`, { recursive: true });
    await sleep(1500); // the reload this starts cannot find the module
    await Deno.mkdir(`${dir}/modules`);
    await Deno.writeTextFile(`${dir}/modules/m.lua`, `return "v2"\n`);
    await waitFor("m says\tv2\n");
    await Deno.writeTextFile(`${dir}/modules/m.lua`, `return "v3"\n`);
    await waitFor("m says\tv3\n");
  });
  strictEqual(stdout, "m says\tv1\nm says\tv2\nm says\tv3\n");
  match(stderr, /import: module 'm' not found/);
});

Deno.test("--watch goes on after os.exit, and waits for a script that is briefly missing", async () => {
  const dir = await tempFiles({ "main.lua": `print("v1")\nos.exit(3)\n` });
  const { stdout, stderr } = await watching(`${dir}/main.lua`, async (waitFor) => {
    await waitFor("v1\n");
    await Deno.remove(`${dir}/main.lua`);
    await new Promise((r) => setTimeout(r, 500));
    await Deno.writeTextFile(`${dir}/main.lua`, `print("v2")\n`);
    await waitFor("v2\n");
  });
  strictEqual(stdout, "v1\nv2\n");
  match(stderr, /no such file or directory; waiting for it to come back\n/);
});

Deno.test("--watch waits for a script whose folder is briefly missing, folders above it included", async () => {
  const top = await tempFiles({});
  const dir = `${top}/app/src`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/main.lua`, `print("v1")\n`);
  const { stdout, stderr } = await watching(`${dir}/main.lua`, async (waitFor) => {
    await waitFor("v1\n");
    await Deno.remove(`${dir}/main.lua`);
    await sleep(500);
    await Deno.remove(`${top}/app`, { recursive: true });
    await sleep(500);
    await Deno.mkdir(`${top}/app`);
    await sleep(300);
    await Deno.mkdir(dir);
    await sleep(300);
    await Deno.writeTextFile(`${dir}/main.lua`, `print("v2")\n`);
    await waitFor("v2\n");
    await Deno.writeTextFile(`${dir}/main.lua`, `print("v3")\n`);
    await waitFor("v3\n");
  });
  strictEqual(stdout, "v1\nv2\nv3\n");
  match(stderr, /no such file or directory; waiting for it to come back\n/);
});

Deno.test("--watch --sandbox: a script whose folder is removed cannot be waited for, a clear error", async () => {
  const top = await tempFiles({});
  await Deno.mkdir(`${top}/app`);
  await Deno.writeTextFile(`${top}/app/main.lua`, `print("v1")\n`);
  let code = 0;
  const { stderr } = await watching(`${top}/app/main.lua`, async (waitFor, exited) => {
    await waitFor("v1\n");
    await Deno.remove(`${top}/app/main.lua`);
    await sleep(500);
    await Deno.remove(`${top}/app`, { recursive: true });
    code = (await within(exited, 10_000, "SolVM to end")).code;
  }, ["--sandbox"]);
  strictEqual(code, 1);
  match(stderr, new RegExp(`solvm: cannot wait for script "${top}/app/main.lua": Requires read access to "${top}"`));
});

Deno.test("--watch reloads a script stuck in a loop that never yields", async () => {
  const dir = await tempFiles({ "loop.lua": `io.write("v1\\n") io.flush() while true do end\n` });
  const { stdout, stderr } = await watching(`${dir}/loop.lua`, async (waitFor) => {
    await waitFor("v1\n");
    await Deno.writeTextFile(`${dir}/loop.lua`, `print("v2: fixed")\n`);
    await waitFor("v2: fixed\n");
  });
  strictEqual(stdout, "v1\nv2: fixed\n");
  strictEqual(
    stderr,
    `solvm: reloading ${dir}/loop.lua\nsolvm: ${dir}/loop.lua finished; watching for changes\n`,
  );
});

Deno.test("--watch --timeout limits each run: a quick script is not stopped, one past the limit is and watching goes on", async () => {
  const dir = await tempFiles({ "job.lua": `print("quick")\n` });
  const { stdout, stderr } = await watching(`${dir}/job.lua`, async (waitFor) => {
    await waitFor("quick\n");
    await sleep(1200); // past the limit: the watcher is still there
    await Deno.writeTextFile(`${dir}/job.lua`, `io.write("spins\\n") io.flush() while true do end\n`);
    await waitFor("spins\n");
    await sleep(1200); // stopped by the limit
    await Deno.writeTextFile(`${dir}/job.lua`, `print("fixed")\n`);
    await waitFor("fixed\n");
  }, ["--timeout", "1s"]);
  strictEqual(stdout, "quick\nspins\nfixed\n");
  const finished = `solvm: ${dir}/job.lua finished; watching for changes\n`;
  const reloading = `solvm: reloading ${dir}/job.lua\n`;
  strictEqual(
    stderr,
    `${finished}${reloading}timeout: script ran longer than 1s\n${finished}${reloading}${finished}`,
  );
});

Deno.test("--watch writes out the open files of a run it replaces, after a change or its --timeout, as Ctrl-C does", async () => {
  const logger = (version: string) =>
    `local f = assert(io.open(arg[0]:gsub("[^/]*$", "log.txt"), "a"))\nf:write("${version} started\\n")\n` +
    `print("${version}")\nwhile true do sleep(0.1) end\n`;
  const dir = await tempFiles({ "app.lua": logger("v1") });
  await watching(`${dir}/app.lua`, async (waitFor) => {
    await waitFor("v1\n");
    await Deno.writeTextFile(`${dir}/app.lua`, logger("v2"));
    await waitFor("v2\n");
    await sleep(1200); // past the limit: the run is stopped
  }, ["--timeout", "1s"]);
  strictEqual(await Deno.readTextFile(`${dir}/log.txt`), "v1 started\nv2 started\n");
});

Deno.test("check_memory reports sizes and their change since the previous call", async () => {
  const { stdout } = await runLua(`
    local first = check_memory()
    for _, k in ipairs({"alloc_diff", "total_alloc_diff", "sys_diff", "goroutines", "lua_heap", "lua_reserved", "rss"}) do
      assert(math.type(first[k]) == "integer", k .. " is " .. tostring(first[k]))
    end
    big = {}
    for i = 1, 200000 do big[i] = { i } end
    local second = check_memory()
    print(second.alloc_diff > 4 * 1024 * 1024, second.lua_heap > first.lua_heap, second.rss > 0)
    big = nil
    collectgarbage()
    print(check_memory().alloc_diff < 0)
    go(function() sleep(0.05) end, "sleeper")
    print(check_memory().goroutines)`);
  strictEqual(stdout, "true\ttrue\ttrue\ntrue\n2\n");
});

Deno.test("check_memory inside a __gc finalizer says why it cannot measure, at the caller's line", async () => {
  // Lua 5.4's collectgarbage("count") gives nil while a finalizer runs.
  const { stdout } = await runLua(`
    setmetatable({}, { __gc = function()
      print(pcall(function() local stats = check_memory() return stats end))
    end })
    collectgarbage()
    print(math.type(check_memory().lua_heap))`);
  strictEqual(
    stdout,
    "false\ttest:3: check_memory: the Lua heap cannot be measured inside a __gc finalizer\ninteger\n",
  );
});

Deno.test("get_goroutines returns one table, id -> name, and with true what each one waits on", async () => {
  const { stdout } = await runLua(`
    chan("jobs")
    go(function() receive("jobs") end, "worker")
    go(function() sleep(0.2) end)
    sleep(0.01)
    local names = get_goroutines()
    print(names[1], names[2], names[3], select("#", get_goroutines()))
    local detail = get_goroutines(true)
    print(detail[1].name, detail[1].state, detail[2].state, detail[2].waiting, detail[3].waiting)
    send("jobs", 1)`);
  strictEqual(stdout, "main\tworker\tgoroutine 3\t1\nmain\trunning\tparked\treceive on channel 'jobs'\tsleep\n");
});

Deno.test("tracebacks leave out SolVM's own frames: uncaught errors, on_error, debug.traceback", async () => {
  const dir = await tempFiles({
    "wrap.lua": `local function helper()
  local g = coroutine.wrap(function() error("inside wrap") end)
  g()
end
on_error(function(_, trace) print("on_error:", trace) end)
go(helper)
sleep(0.01)
print(select(2, xpcall(helper, debug.traceback)))
print(debug.traceback("here", 1) == debug.traceback("here"), debug.traceback({}) ~= nil)
helper()
`,
  });
  const r = await solvm([`${dir}/wrap.lua`]);
  strictEqual(r.code, 1);
  for (const text of [r.stdout, r.stderr]) {
    ok(!/\n\t(scheduler|file access|standard streams):\d+:/.test(text), text);
    match(text, /\n\t\S*wrap\.lua:3: in /);
  }
  match(r.stdout, /^on_error:\t.*wrap\.lua:3: .*wrap\.lua:2: inside wrap\nstack traceback:\n/);
  match(r.stdout, /\ntrue\ttrue\n$/);
});

Deno.test("a standard function written in Lua that raises shows no call of error (its tail calls stay marked)", async () => {
  // lua5.4's dofile and io.read are C functions: the traceback starts at the script's call, not at SolVM's error().
  const r = await runLua(
    `local function load_config(name) local cfg = dofile(name) return cfg end
    print(select(2, xpcall(io.read, debug.traceback, "x")))
    load_config("no_such_config.lua")`,
    "=t",
  );
  strictEqual(
    r.stdout,
    "bad argument #1 to 'read' (invalid format)\nstack traceback:\n\t(...tail calls...)\n\t[C]: in function 'xpcall'\n" +
      "\tt:2: in main chunk\n",
  );
  deepStrictEqual(r.outcome, {
    status: "error",
    message: "cannot open no_such_config.lua: No such file or directory",
    traceback: "cannot open no_such_config.lua: No such file or directory\nstack traceback:\n" +
      "\t(...tail calls...)\n\tt:1: in local 'load_config'\n\tt:3: in main chunk",
  });
});
Deno.test("debug.traceback checks its arguments as lua5.4 does and counts levels from its caller, tail call or not", async () => {
  const r = await runLua(
    `
    print(pcall(debug.traceback, "m", "x"))
    print(pcall(debug.traceback, coroutine.running(), "m", 1.5))
    print(select(2, xpcall(function() error("oops") end, function(m) return debug.traceback(m, 2) end)))
    print(debug.traceback("neg", -1))
    print(debug.traceback("str", "1"))
    local function where() return debug.traceback("where") end
    local function caller() local s = where() return s end
    print(caller())
    print(select(2, xpcall(function() error("e") end, function(m) return debug.traceback(m) end)))`,
    "=t",
  );
  deepStrictEqual(r.outcome, { status: "ok" });
  strictEqual(
    r.stdout,
    "false\tbad argument #2 to 'debug.traceback' (number expected, got string)\n" +
      "false\tbad argument #3 to 'debug.traceback' (number has no integer representation)\n" +
      "t:4: oops\nstack traceback:\n\t[C]: in function 'error'\n\tt:4: in function <t:4>\n\t[C]: in function 'xpcall'\n" +
      "\tt:4: in main chunk\n" +
      "neg\nstack traceback:\n" +
      "str\nstack traceback:\n\tt:6: in main chunk\n" +
      // The default level tail-called (a message handler's usual form) keeps the caller's frame, as lua5.4's C function.
      "where\nstack traceback:\n\tt:7: in upvalue 'where'\n\tt:8: in local 'caller'\n\tt:9: in main chunk\n" +
      "t:10: e\nstack traceback:\n\tt:10: in function <t:10>\n\t[C]: in function 'error'\n\tt:10: in function <t:10>\n" +
      "\t[C]: in function 'xpcall'\n\tt:10: in main chunk\n",
  );
});

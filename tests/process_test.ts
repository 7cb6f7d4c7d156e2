/**
 * The processes family (host/process.ts): os.execute, io.popen and
 * os.hostname, with real child processes through `sh`.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert";
import { Engine, type Outcome } from "../runtime/engine.ts";
import { installGlobals } from "../host/script.ts";
import { denoFileSystem } from "../host/filesystem.ts";
import { runLua, sleep, solvm, tempFiles } from "./_helpers.ts";

/** A Lua string literal for a path (temporary paths are plain ASCII). */
const lit = (text: string) => JSON.stringify(text);

/** Runs Lua that must end well without stderr output; returns stdout. */
async function lua(source: string): Promise<string> {
  const r = await runLua(source);
  deepStrictEqual(r.outcome, { status: "ok" });
  strictEqual(r.stderr, "");
  return r.stdout;
}

/** A run whose stdout and stderr go to one transcript, each write stamped with when it came. */
async function transcript(source: string): Promise<{ outcome: Outcome; text: string; writes: [number, string][] }> {
  const decoder = new TextDecoder();
  const writes: [number, string][] = [];
  const start = performance.now();
  const engine = await Engine.create({
    stdout: { write: (b) => void writes.push([performance.now() - start, decoder.decode(b)]), flush: () => {} },
    stderr: (text) => void writes.push([performance.now() - start, text]),
    files: denoFileSystem(),
  });
  try {
    installGlobals(engine);
    const outcome = await engine.execute(source, "=test");
    if (outcome.status === "ok") await engine.idle();
    return { outcome, text: writes.map(([, t]) => t).join(""), writes };
  } finally {
    engine.close();
  }
}

/** True while process `pid` exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

/** Waits up to `ms` for process `pid` to be gone. */
async function gone(pid: number, ms = 3000): Promise<boolean> {
  const until = performance.now() + ms;
  while (alive(pid) && performance.now() < until) await sleep(20);
  return !alive(pid);
}

/** The commands whose pids a script wrote to `dir`/popen.pid and execute.pid have ended (`when`: for the message). */
async function assertCommandsGone(dir: string, when = ""): Promise<void> {
  for (const name of ["popen.pid", "execute.pid"]) {
    const pid = Number((await Deno.readTextFile(`${dir}/${name}`)).trim());
    ok(pid > 0, name);
    ok(await gone(pid), `${when ? `${when}: ` : ""}${name}: process ${pid} still runs`);
  }
}

Deno.test("os.execute returns Lua 5.4's status triple: success, exit code, signal", async () => {
  strictEqual(
    await lua(`
      print(os.execute("true"))
      print(os.execute("exit 3"))
      print(os.execute("false"))
      print(os.execute("kill -9 $$"))
      print(os.execute("kill -TERM $$"))
      print(os.execute("no-such-command-solvm 2>/dev/null"))
      print(os.execute())
      print(os.execute(nil))
      print(pcall(os.execute, {}))`),
    "true\texit\t0\n" +
      "nil\texit\t3\n" +
      "nil\texit\t1\n" +
      "nil\tsignal\t9\n" +
      "nil\tsignal\t15\n" +
      "nil\texit\t127\n" +
      "true\n" +
      "true\n" +
      "false\tbad argument #1 to 'os.execute' (string expected, got table)\n",
  );
});

Deno.test("os.execute: the command's stdout and stderr come in order with print", async () => {
  const { outcome, text } = await transcript(`
    print("one")
    io.write("two\\n")
    os.execute("echo three; echo four >&2")
    print("five")
    os.execute("printf 'six'; sleep 0.05; echo ' seven' >&2")
    print("eight")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(text, "one\ntwo\nthree\nfour\nfive\nsix seven\neight\n");
});

Deno.test("os.execute: output is binary-safe and large output is whole", async () => {
  const { outcome, text } = await transcript(`os.execute("head -c 300000 /dev/zero | tr '\\\\0' x") print("|end")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(text, "x".repeat(300000) + "|end\n");
});

Deno.test("CLI: a command that is not UTF-8 reaches sh byte for byte, as in lua5.4 (it was read as U+FFFD)", async () => {
  const dir = await tempFiles({
    "latin1.lua": `local dir, word = ..., "caf\\233"
      local p = io.popen("printf %s '" .. word .. "\\\\0101' | od -An -tx1")  -- a backslash sh must see as it is
      print((p:read("a"):gsub("%s+", " ")), p:close())
      print(os.execute("printf %s '" .. word .. "' > " .. dir .. "/out.txt; exit $((3 + $#))"))
      -- Trailing newlines are part of the command: here, of the here-document's text.
      print((io.popen("od -An -tx1 <<EOF\\n\\255\\n\\n\\n"):read("a"):gsub("%s+", " ")))
      io.popen("cat > " .. dir .. "/in.txt; echo \\254 >> " .. dir .. "/in.txt", "w"):write("\\233"):close()
      -- 100,000 such bytes: escaped, they are more than Linux takes in one argument (128 KiB), as lua5.4 is not.
      print(io.popen("printf %s '" .. string.rep("\\233", 100000) .. "' | wc -c"):read("n"))`,
  });
  const r = await solvm([`${dir}/latin1.lua`, dir]);
  strictEqual(r.stderr, "");
  strictEqual(r.code, 0);
  strictEqual(r.stdout, " 63 61 66 e9 5c 30 31 30 31 \ttrue\texit\t0\nnil\texit\t3\n ff 0a 0a 0a \n100000\n");
  deepStrictEqual(await Deno.readFile(`${dir}/out.txt`), new Uint8Array([0x63, 0x61, 0x66, 0xe9]));
  deepStrictEqual(await Deno.readFile(`${dir}/in.txt`), new Uint8Array([0xe9, 0xfe, 0x0a]));
});

Deno.test("os.execute parks only its goroutine: others keep running", async () => {
  const { outcome, text } = await transcript(`
    go(function()
      for i = 1, 3 do print("tick", i) sleep(0.05) end
    end)
    print(os.execute("sleep 0.3"))
    print("after")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(text, "tick\t1\ntick\t2\ntick\t3\ntrue\texit\t0\nafter\n");
});

Deno.test("os.execute returns when the shell exits, even when a background job holds its output", async () => {
  const started = performance.now();
  const { outcome, text } = await transcript(`print(os.execute("echo started; sleep 5 &")) print("back")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(text, "started\ntrue\texit\t0\nback\n");
  ok(performance.now() - started < 3000, "os.execute waited for the background job");
});

Deno.test("io.popen 'r': read formats l, L, n, a, counts and 5.3-style *l, *a", async () => {
  strictEqual(
    await lua(`
      local f = io.popen("printf 'first\\\\nsecond\\\\n12 0x1F -3.5e2 1e abc\\\\nrest'")
      print(f:read("l"))
      print((f:read("L")))
      print(f:read("n", "n", "n"))
      print(f:read("n"))          -- "1e" is no numeral (and is read, as C Lua does)
      print(f:read(1), f:read(0))
      print(f:read("*l"))
      print(f:read(2), f:read("*a"))
      print(f:read("a"), f:read("l"), f:read(0), f:read(1), f:read("n"))
      print(f:close())
      local g = io.popen("printf 'x\\\\ny'")
      print(g:read("l", "l", "l"))
      print(g:read())
      g:close()`),
    "first\nsecond\n\n12\t31\t-350.0\nnil\n \t\nabc\nre\tst\n\tnil\tnil\tnil\tnil\ntrue\texit\t0\nx\ty\tnil\nnil\n",
  );
});

Deno.test("io.popen: lines and big reads across many chunks", async () => {
  strictEqual(
    await lua(`
      local n, total = 0, 0
      for line in io.popen("seq 1 20000"):lines() do n = n + 1 total = total + tonumber(line) end
      print(n, total)
      for a, b in io.popen("printf '1 2\\\\n3 4\\\\n'"):lines("n", "n") do print(a + b) end
      local f = io.popen("head -c 200000 /dev/zero")
      local big = f:read(150000)
      print(#big, #f:read("a"), f:read(1))
      print(f:close())
      local seen = {}
      for line in io.popen("echo a; echo b"):lines("L") do seen[#seen + 1] = line end
      print(table.concat(seen, "|"))`),
    "20000\t200010000\n3\n7\n150000\t50000\tnil\ntrue\texit\t0\na\n|b\n\n",
  );
});

Deno.test("io.popen streams: a line arrives while the command still runs", async () => {
  const { outcome, text, writes } = await transcript(`
    local f = io.popen("echo a; sleep 2; echo b")
    print(f:read())
    print(f:read())
    print(f:close())`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(text, "a\nb\ntrue\texit\t0\n");
  const at = (text: string) => Math.round(writes.find(([, t]) => t === text)![0]);
  ok(at("a") < 1500, `the first line came after ${at("a")} ms`);
  ok(at("b") > 1500, `the second line came after ${at("b")} ms`);
});

Deno.test("io.popen 'w': writes feed the command's input; close waits and returns its status", async () => {
  const dir = await tempFiles({});
  const out = `${dir}/out.txt`;
  strictEqual(
    await lua(`
      local f = io.popen("cat > ${out}", "w")
      print(f:write("hello ", 42, " ", 1.5, "\\n") == f)
      print(f:write("second line\\n"):write("third\\n") == f)
      print(f:flush(), io.type(f))
      print(f:close())
      print(io.open(${lit(out)}):read("a"))
      local g = io.popen("cat >/dev/null; exit 4", "w")
      for i = 1, 2000 do g:write(string.rep("x", 100)) end
      print(g:close())
      print(io.popen("true", "w"):close())`),
    "true\ntrue\ntrue\tfile\ntrue\texit\t0\nhello 42 1.5\nsecond line\nthird\n\nnil\texit\t4\ntrue\texit\t0\n",
  );
});

Deno.test("io.popen 'w': the command's output goes to the script's stdout, in order", async () => {
  const { outcome, text } = await transcript(`
    print("before")
    local f = io.popen("tr a-z A-Z", "w")
    f:write("shout\\n")
    print(f:close())
    print("after")`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(text, "before\nSHOUT\ntrue\texit\t0\nafter\n");
});

Deno.test("io.popen: a writer to a command that stopped reading gets Broken pipe, not a crash", async () => {
  strictEqual(
    await lua(`
      local f = io.popen("exit 5", "w")
      sleep(0.1)
      local results
      for i = 1, 100 do
        local ok, err, code = f:write(string.rep("x", 70000))
        if not ok then results = { err, code } break end
      end
      print(results[1], results[2])
      print(f:close())`),
    "Broken pipe\t32\nnil\texit\t5\n",
  );
});

Deno.test("io.popen: close status; a closed file is Lua's closed-file error; io.type, io.close, tostring", async () => {
  strictEqual(
    await lua(`
      local f = io.popen("exit 2")
      print(io.type(f), tostring(f):match("^file %(0x") ~= nil)
      print(f:close())
      print(io.type(f), tostring(f))
      print(pcall(f.read, f))
      print(pcall(f.write, f, "x"))
      print(pcall(f.lines, f))
      print(pcall(f.close, f))
      print(pcall(function() local line = f:read() return line end))
      local g = io.popen("printf 'one\\\\ntwo\\\\n'")
      local next_line = g:lines()
      print(next_line())
      print(io.close(g))
      print(pcall(next_line))
      print(io.popen("kill -9 $$"):close())
      print(io.type(io.stdout), io.type(42), pcall(io.type))
      print(pcall(io.close, {}))
      local h = io.open(os.tmpname(), "w")
      print(io.close(h), io.type(h))`),
    "file\ttrue\n" +
      "nil\texit\t2\n" +
      "closed file\tfile (closed)\n" +
      "false\tattempt to use a closed file\n" +
      "false\tattempt to use a closed file\n" +
      "false\tattempt to use a closed file\n" +
      "false\tattempt to use a closed file\n" +
      "false\ttest:10: attempt to use a closed file\n" +
      "one\n" +
      "true\texit\t0\n" +
      "false\tfile is already closed\n" +
      "nil\tsignal\t9\n" +
      "file\tnil\tfalse\tbad argument #1 to 'type' (value expected)\n" +
      "false\tbad argument #1 to 'close' (FILE* expected, got table)\n" +
      "true\tclosed file\n",
  );
});

Deno.test("io.popen: bad arguments and wrong-direction use give Lua's errors", async () => {
  strictEqual(
    await lua(`
      print(pcall(io.popen, "ls", "x"))
      print(pcall(io.popen, "ls", "rw"))
      print(pcall(io.popen, "ls", 1))
      print(pcall(io.popen))
      local r = io.popen("true")
      print(r:write("x"))
      print(pcall(r.read, r, "x"))
      print(pcall(r.read, r, {}))
      print(pcall(r.read, r, 1.5))
      print(r:seek())
      print(r:close())
      local w = io.popen("cat >/dev/null", "w")
      print(w:read())
      print(pcall(w.write, w, {}))
      print(w:close())`),
    "false\tbad argument #2 to 'popen' (invalid mode)\n" +
      "false\tbad argument #2 to 'popen' (invalid mode)\n" +
      "false\tbad argument #2 to 'popen' (invalid mode)\n" +
      "false\tbad argument #1 to 'popen' (string expected, got no value)\n" +
      "nil\tBad file descriptor\t9\n" +
      "false\tbad argument #1 to 'read' (invalid format)\n" +
      "false\tbad argument #1 to 'read' (string expected, got table)\n" +
      "false\tbad argument #1 to 'read' (number has no integer representation)\n" +
      "nil\tIllegal seek\t29\n" +
      "true\texit\t0\n" +
      "nil\tBad file descriptor\t9\n" +
      "false\tbad argument #1 to 'write' (string expected, got table)\n" +
      "true\texit\t0\n",
  );
});

Deno.test("io.popen: the command's stderr goes to the script's stderr", async () => {
  const { outcome, text } = await transcript(`
    local f = io.popen("echo out; echo err >&2")
    print("read:", f:read("a"))
    f:close()`);
  deepStrictEqual(outcome, { status: "ok" });
  strictEqual(text, "err\nread:\tout\n\n");
});

Deno.test("io.popen: a file in a to-be-closed variable is closed at the end of its block", async () => {
  strictEqual(
    await lua(`
      local f
      do
        local g <close> = io.popen("echo hi")
        f = g
        print(g:read())
      end
      print(io.type(f))`),
    "hi\nclosed file\n",
  );
});

Deno.test("commands still running when the engine closes are killed, with what they started", async () => {
  const dir = await tempFiles({});
  const r = await runLua(`
    local f = io.popen("sleep 30 & echo $! > ${dir}/popen.pid; wait")
    go(function() os.execute("echo $$ > ${dir}/execute.pid; sleep 30") end)
    local w = io.popen("cat > /dev/null", "w")
    sleep(0.3)
    os.exit(0)`);
  deepStrictEqual(r.outcome, { status: "exit", code: 0 });
  await assertCommandsGone(dir);
});

Deno.test("CLI: popen files left open at a normal end (the script's end, an error, os.exit(n, true)) are closed as pclose does", async () => {
  for (const [ending, code] of [["", 0], ['error("boom")', 1], ["os.exit(3, true)", 3]] as const) {
    const dir = await tempFiles({
      "pipes.lua": `local dir = ...
        local mail = io.popen("cat > " .. dir .. "/out.txt", "w")
        mail:write("line written to the command\\n")
        io.popen("sleep 0.3; echo finished > " .. dir .. "/background.txt")  -- started for its side effect
        ${ending}`,
    });
    const r = await solvm([`${dir}/pipes.lua`, dir]);
    strictEqual(r.code, code, r.stderr);
    // Delivered and waited for: both are there as soon as SolVM has exited.
    strictEqual(await Deno.readTextFile(`${dir}/out.txt`), "line written to the command\n", ending);
    strictEqual(await Deno.readTextFile(`${dir}/background.txt`).catch(() => ""), "finished\n", ending);
  }
});

Deno.test("CLI: os.exit(code) without close, as C's exit(): open files are written out, popen input is delivered and its command runs on, no finalizer runs", async () => {
  const dir = await tempFiles({
    "exits.lua": `local dir = ...
      KEEP = setmetatable({}, { __gc = function() print("finalizer ran") os.remove(dir .. "/lock") end })
      io.open(dir .. "/lock", "w"):close()
      local log = io.open(dir .. "/log.txt", "w")
      log:write("buffered line\\n")
      local mail = io.popen("sleep 0.3; cat > " .. dir .. "/out.txt", "w")
      mail:write("line written to the command\\n")
      os.exit(3)`,
  });
  const r = await solvm([`${dir}/exits.lua`, dir]);
  strictEqual(r.code, 3, r.stderr);
  strictEqual(r.stdout, "");
  ok(await Deno.stat(`${dir}/lock`).then(() => true, () => false), "a finalizer ran");
  strictEqual(await Deno.readTextFile(`${dir}/log.txt`), "buffered line\n");
  // Not killed: the command finishes after SolVM has exited.
  let out = "";
  for (let i = 0; i < 100 && out === ""; i++) {
    await sleep(50);
    out = await Deno.readTextFile(`${dir}/out.txt`).catch(() => "");
  }
  strictEqual(out, "line written to the command\n");
});

Deno.test("CLI: popen files left open when an actor's script ends are closed as pclose does, as the main script's", async () => {
  const dir = await tempFiles({
    "job.lua": `local dir = ...
      local mail = io.popen("cat > " .. dir .. "/out.txt", "w")
      mail:write("line written to the command\\n")
      io.popen("sleep 0.3; echo finished > " .. dir .. "/background.txt")
      return "job ended"`,
    "main.lua": `local dir = ...
      print(spawn(dir .. "/job.lua", dir).wait())`,
  });
  const r = await solvm([`${dir}/main.lua`, dir]);
  strictEqual(r.code, 0, r.stderr);
  strictEqual(r.stdout, "job ended\n");
  strictEqual(await Deno.readTextFile(`${dir}/out.txt`), "line written to the command\n");
  strictEqual(await Deno.readTextFile(`${dir}/background.txt`).catch(() => ""), "finished\n");
});

Deno.test("CLI: a time limit that stops a busy script also kills the commands it left running", async () => {
  const dir = await tempFiles({
    "runaway.lua": `local dir = ...
      go(function() os.execute("echo $$ > " .. dir .. "/execute.pid; sleep 30") end)
      local f = io.popen("sleep 30 & echo $! > " .. dir .. "/popen.pid; wait")
      sleep(0.3)
      while true do end  -- never yields: only stopping the script's thread ends it`,
  });
  const r = await solvm(["--timeout", "1500ms", `${dir}/runaway.lua`, dir]);
  strictEqual(r.code, 124, r.stderr);
  await assertCommandsGone(dir);
});

Deno.test("CLI: Ctrl-C (SIGINT) or SIGTERM ends SolVM with 130 or 143 and kills the commands, which Ctrl-C does not reach", async () => {
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    const dir = await tempFiles({
      "busy.lua": `local dir = ...
        go(function() os.execute("echo $$ > " .. dir .. "/execute.pid; sleep 30") end)
        local f = io.popen("sleep 30 & echo $! > " .. dir .. "/popen.pid; wait")
        sleep(30)`,
    });
    const pidFile = (name: string) => Deno.readTextFile(`${dir}/${name}`).then((t) => Number(t.trim()), () => 0);
    const r = await solvm([`${dir}/busy.lua`, dir], {
      whileRunning: async (child) => {
        // Up to 20 s: a signal that came before the commands started would test nothing.
        for (let i = 0; i < 1000 && !((await pidFile("execute.pid")) && (await pidFile("popen.pid"))); i++) {
          await sleep(20);
        }
        child.kill(signal);
      },
    });
    strictEqual(r.code, code, r.stderr);
    await assertCommandsGone(dir, signal);
  }
});

Deno.test("CLI: a time limit also kills the commands an actor left running", async () => {
  const dir = await tempFiles({
    "worker.lua": `local dir = ...
      local f = io.popen("sleep 30 & echo $! > " .. dir .. "/popen.pid; wait")
      os.execute("echo $$ > " .. dir .. "/execute.pid; sleep 30")`,
    "main.lua": `local dir = ...
      spawn("worker.lua", dir)
      sleep(0.5)
      while true do end`,
  });
  const r = await solvm(["--timeout", "1500ms", `${dir}/main.lua`, dir]);
  strictEqual(r.code, 124, r.stderr);
  await assertCommandsGone(dir);
});

/** An actor that starts a command and then never yields, stopped by force: its command must go with it. */
async function stuckActor(): Promise<{ dir: string; main: string }> {
  const dir = await tempFiles({
    "stuck.lua": `local dir = ...
      go(function() os.execute("echo $$ > " .. dir .. "/stuck.pid; sleep 30") end)
      sleep(0.3)
      parent().send("started")
      while true do end`,
  });
  const main = `local dir = "${dir}"
    local stuck = spawn(dir .. "/stuck.lua", dir)
    assert(mailbox() == "started")
    stuck.stop()
    print("stuck:", stuck.wait())
    local pid = io.open(dir .. "/stuck.pid"):read("l")
    -- Killed, it stays a zombie until SolVM exits: the thread that would have reaped it is gone.
    local running = 'test -n "$(ps -o stat= -p ' .. pid .. ' | grep -v Z)"'
    local deadline = os.time() + 3
    while os.execute(running) and os.time() < deadline do sleep(0.05) end
    print("command gone:", not os.execute(running))`;
  return { dir, main };
}

Deno.test("an actor ended by force after stop() takes its commands with it (CLI and library threads)", async () => {
  const cli = await stuckActor();
  await Deno.writeTextFile(`${cli.dir}/main.lua`, cli.main);
  const r = await solvm([`${cli.dir}/main.lua`]);
  strictEqual(r.stderr, "");
  strictEqual(r.stdout, "stuck:\tnil\tstopped: the actor did not end within 1 s of stop()\ncommand gone:\ttrue\n");
  const library = await stuckActor();
  const run = await runLua(library.main);
  deepStrictEqual(run.outcome, { status: "ok" });
  strictEqual(run.stdout, "stuck:\tnil\tstopped: the actor did not end within 1 s of stop()\ncommand gone:\ttrue\n");
});

Deno.test("os.hostname is the machine's host name", async () => {
  strictEqual(await lua(`print(os.hostname())`), `${Deno.hostname()}\n`);
});

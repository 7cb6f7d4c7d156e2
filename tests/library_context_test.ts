// The embedding library's Context: the features of embedding-features.md
// (limits, selective libraries, GC control, bytecode, debug hooks, shared
// tables, modules, async execution) and their bad input.
import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert";
import { Context, createSharedTable, Engine, installGlobals, LuaError, Script, SharedTable } from "../mod.ts";
import { sleep, tempFiles, within } from "./_helpers.ts";
import { failure, runProgram, thrown, timed } from "./_library.ts";

const LIMIT_MESSAGE = "instruction limit exceeded: the script ran more than 100000 Lua instructions";

Deno.test("maxInstructions stops a loop that never ends; pcall cannot catch it", async () => {
  for (const source of ["while true do end", "return pcall(function() while true do end end)"]) {
    const lua = new Context({ maxInstructions: 100_000 });
    try {
      const e = await failure(lua.execute(source), LuaError, LIMIT_MESSAGE);
      strictEqual(e.file, undefined);
    } finally {
      lua.close();
    }
  }
});

Deno.test("an error object's __tostring runs under the call's limits: one that loops cannot outlast them", async () => {
  // Finite but far past both limits: unbounded, it would end with its own text.
  const source = `error(setmetatable({}, { __tostring = function() ` +
    `local i = 0 while i < 3e7 do i = i + 1 end return "slow" end }))`;
  const lua = new Context({ maxInstructions: 100_000 });
  try {
    await failure(lua.execute(source), LuaError, LIMIT_MESSAGE);
    await failure(
      lua.execute(`error(setmetatable({}, { __tostring = function() return "fine" end }))`),
      LuaError,
      "fine",
    );
  } finally {
    lua.close();
  }
  const clocked = new Context({ timeout: 100 });
  try {
    const { ms } = await timed(() =>
      failure(clocked.execute(source), Error, "timeout: the call ran longer than 100 ms")
    );
    ok(ms < 1000, `the __tostring stopped after ${ms} ms`);
    strictEqual(await clocked.execute("return 'next call'"), "next call");
  } finally {
    clocked.close();
  }
});

Deno.test("a metamethod the script set on _G runs under the context's limits for getGlobal, setGlobal and call", async () => {
  // Finite but far past both limits: unbounded, each would end with what the metamethod gives.
  const spin = "local i = 0 while i < 3e7 do i = i + 1 end";
  const script = `setmetatable(_G, { __index = function(t, k) ${spin} return "slow" end, ` +
    `__newindex = function(t, k, v) ${spin} rawset(t, k, v) end })`;
  const lua = new Context({ maxInstructions: 100_000 });
  try {
    await lua.execute(script);
    thrown(() => lua.getGlobal("config"), LuaError, LIMIT_MESSAGE);
    thrown(() => lua.setGlobal("config", 1), LuaError, LIMIT_MESSAGE);
    await failure(lua.call("main"), LuaError, LIMIT_MESSAGE);
    strictEqual(await lua.execute("return rawget(_G, 'config')"), undefined);
  } finally {
    lua.close();
  }
  const clocked = new Context({ timeout: 100 });
  try {
    await clocked.execute(script);
    const message = "timeout: the call ran longer than 100 ms";
    const start = performance.now();
    thrown(() => clocked.getGlobal("config"), Error, message);
    const ms = performance.now() - start;
    ok(ms < 1000, `the __index stopped after ${ms} ms`);
    thrown(() => clocked.setGlobal("config", 1), Error, message);
    await failure(clocked.call("main"), Error, message);
    strictEqual(await clocked.execute("return 'next call'"), "next call");
  } finally {
    clocked.close();
  }
});

Deno.test("maxInstructions counts each call afresh", async () => {
  const lua = new Context({ maxInstructions: 100_000 });
  try {
    // About 40k instructions a call: five calls pass the limit together, not one by one.
    for (let i = 0; i < 5; i++) {
      strictEqual(await lua.execute("local s = 0 for i = 1, 10000 do s = s + i end return s"), 50005000);
    }
    await lua.execute("function spin(n) local s = 0 for i = 1, n do s = s + i end return s end");
    strictEqual(await lua.call("spin", 1000), 500500);
    await failure(lua.call("spin", 1_000_000), LuaError, LIMIT_MESSAGE);
  } finally {
    lua.close();
  }
});

Deno.test("a Lua function TypeScript holds is a call of its own: maxInstructions counts each call afresh, with execute's errors", async () => {
  const lua = new Context({ maxInstructions: 100_000 });
  try {
    const handlers: ((n: number) => unknown)[] = [];
    lua.setGlobal("on", (fn: (n: number) => unknown) => void handlers.push(fn));
    lua.setGlobal("relay", (fn: (n: number) => unknown, n: number) => fn(n));
    await lua.execute("function spin(n) local s = 0 for i = 1, n do s = s + i end return s end on(spin)");
    const returned = await lua.execute("return spin") as (n: number) => unknown;
    const global = lua.getGlobal("spin") as (n: number) => unknown;
    // About 60k instructions a call: five calls pass the limit together, not one by one.
    for (const spin of [returned, global, handlers[0]]) {
      for (let i = 0; i < 5; i++) strictEqual(spin(30_000), 450015000);
    }
    thrown(() => global(1_000_000), LuaError, LIMIT_MESSAGE);
    // Called from a function Lua called, it is part of that call: its calls add up against that call's limit.
    strictEqual(await lua.execute("return relay(spin, 30000)"), 450015000);
    await rejects(
      lua.execute("for i = 1, 5 do relay(spin, 30000) end"),
      (e) => e instanceof LuaError && e.message.endsWith(LIMIT_MESSAGE),
    );
    const exits = await lua.execute("return function() os.exit(3) end") as () => unknown;
    thrown(exits, Error, "the script called os.exit(3)");
  } finally {
    lua.close();
  }
});

Deno.test("a callback the host runs while a call waits shares that call's instruction count: the call still stops", async () => {
  // Each callback started a fresh count, so a loop that handed the host one per round ran on for ever.
  // The timeout only ends the test where the count is lost: then the error is the timeout's, and the test fails.
  const lua = new Context({ maxInstructions: 200_000, timeout: 5000 });
  try {
    lua.setGlobal("later", async (fn: () => unknown) => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      return fn();
    });
    const { ms } = await timed(() =>
      rejects(
        lua.execute("n = 0 while true do later(function() n = n + 1 end) for i = 1, 20000 do end end"),
        (e) => e instanceof LuaError && e.message.endsWith(LIMIT_MESSAGE.replace("100000", "200000")),
      )
    );
    ok(ms < 3000, `stopped after ${ms} ms`);
    strictEqual(await lua.execute("n = 0 for i = 1, 5 do later(function() n = n + 1 end) end return n"), 5);
  } finally {
    lua.close();
  }
});

Deno.test("a Lua function TypeScript holds runs under the context's timeout, busy or waiting; a Script's under the script's", async () => {
  const lua = new Context({ timeout: 100 });
  try {
    const handlers: ((...args: unknown[]) => unknown)[] = [];
    lua.setGlobal("on", (fn: (...args: unknown[]) => unknown) => void handlers.push(fn));
    // Finite but far past the limit: unbounded, it would return "slow".
    await lua.execute("on(function() local i = 0 while i < 3e7 do i = i + 1 end return 'slow' end)");
    const start = performance.now();
    thrown(() => handlers[0](), Error, "timeout: the call ran longer than 100 ms");
    ok(performance.now() - start < 1000, `the handler stopped after ${performance.now() - start} ms`);
    const nap = await lua.execute("return function(s) sleep(s) return 'woke' end") as (s: number) => Promise<unknown>;
    const { ms } = await timed(() => failure(nap(3), Error, "timeout: the call ran longer than 100 ms"));
    ok(ms < 1000, `the nap stopped after ${ms} ms`);
    strictEqual(await nap(0.01), "woke");
  } finally {
    lua.close();
  }
  const script = Script.fromString("h.lua", "function main() return function(s) sleep(s) return 'woke' end end", {
    timeout: 100,
  });
  try {
    const nap = await script.run() as (s: number) => Promise<unknown>;
    await failure(nap(3), Error, "timeout: the call ran longer than 100 ms");
  } finally {
    script.close();
  }
});

Deno.test({
  name: "a context stays usable after a call hits its instruction limit or timeout",
  fn: async () => {
    const lua = new Context({ maxInstructions: 100_000 });
    try {
      await failure(lua.execute("while true do end"), LuaError, LIMIT_MESSAGE);
      strictEqual(await lua.execute("return 'next call'"), "next call");
    } finally {
      lua.close();
    }
    const clocked = new Context({ timeout: 50 });
    try {
      await failure(clocked.execute("while true do end"), Error, "timeout: the call ran longer than 50 ms");
      strictEqual(await clocked.execute("return 'next call'"), "next call");
    } finally {
      clocked.close();
    }
  },
});

Deno.test("timeout stops a busy loop and a waiting chunk with a clear message", async () => {
  const lua = new Context({ timeout: 100 });
  try {
    const { ms } = await timed(() =>
      failure(lua.execute("while true do end"), Error, "timeout: the call ran longer than 100 ms")
    );
    ok(ms >= 95 && ms < 1000, `the busy loop stopped after ${ms} ms`);
  } finally {
    lua.close();
  }
  const waiting = new Context({ timeout: 100 });
  try {
    await failure(waiting.execute("sleep(5)"), Error, "timeout: the call ran longer than 100 ms");
  } finally {
    waiting.close();
  }
});

Deno.test("a timeout per call stops a waiting call; a busy loop only when the context counts", async () => {
  const plain = new Context();
  try {
    strictEqual(await plain.execute("return 'fast'", "=c", { timeout: 1000 }), "fast");
    await failure(plain.execute("sleep(5)", "=c", { timeout: 50 }), Error, "timeout: the call ran longer than 50 ms");
  } finally {
    plain.close();
  }
  // Without timeout or maxInstructions on the context, nothing looks at the
  // clock while Lua runs: the loop ends on its own, with its result.
  const uncounted = new Context();
  try {
    const loop = "local t = os.clock() while os.clock() - t < 0.2 do end return 'finished'";
    strictEqual(await uncounted.execute(loop, "=c", { timeout: 20 }), "finished");
  } finally {
    uncounted.close();
  }
  const counted = new Context({ maxInstructions: 1e15 });
  try {
    await failure(
      counted.execute("while true do end", "=c", { timeout: 50 }),
      Error,
      "timeout: the call ran longer than 50 ms",
    );
  } finally {
    counted.close();
  }
});

Deno.test("a timeout that is not a number of milliseconds above 0 is refused, for a context, a call and a script", async () => {
  thrown(
    () => new Context({ timeout: "100" as unknown as number }),
    TypeError,
    "timeout must be a number of milliseconds, got string",
  );
  for (const timeout of [-5, 0, NaN]) {
    const message = `timeout must be a number of milliseconds above 0, got ${timeout}`;
    thrown(() => new Context({ timeout }), RangeError, message);
    thrown(() => Script.fromString("t.lua", "function main() return 1 end", { timeout }), RangeError, message);
  }
  const lua = new Context();
  const script = Script.fromString("t.lua", "function main() return 'ran' end");
  try {
    await failure(
      lua.execute("return 1", "=c", { timeout: -5 }),
      RangeError,
      "timeout must be a number of milliseconds above 0, got -5",
    );
    await failure(
      script.runWith({ timeout: NaN }),
      RangeError,
      "timeout must be a number of milliseconds above 0, got NaN",
    );
    strictEqual(await script.run(), "ran");
  } finally {
    lua.close();
    script.close();
  }
});

Deno.test("a call stopped while it sleeps, or an engine closed, leaves no timer: the program ends at once", async () => {
  // The context is left open on purpose: stopping the call alone must let its timer go.
  const { value, ms } = await timed(() =>
    runProgram(
      `import { Context, Engine, installGlobals } from "MOD";
const lua = new Context({ timeout: 50 });
console.log(await lua.execute("sleep(30)").catch((e) => e.message));
const engine = await Engine.create();
installGlobals(engine);
await engine.execute("go(function() sleep(30) end)", "=x");
engine.close();
console.log("closed");
`,
      ["-A"],
    )
  );
  strictEqual(value.stderr, "");
  strictEqual(value.stdout, "timeout: the call ran longer than 50 ms\nclosed\n");
  ok(ms < 15_000, `the program took ${ms} ms: a 30 s sleep kept it alive`);
});

Deno.test("a per call timeout shorter than arming it takes ends the call with nothing on stderr (no Node timer warning)", async () => {
  // A child process: Deno's Node layer writes TimeoutNegativeWarning to the program's stderr.
  const { code, stdout, stderr } = await runProgram(
    `import { Context } from "MOD";
const lua = new Context();
await lua.execute("function f() sleep(1) end");
const messages = new Set();
for (let i = 0; i < 20; i++) await lua.callWith("f", { timeout: 0.05 }).catch((e) => messages.add(e.message));
console.log([...messages].join("|"));
lua.close();
`,
    ["-A"],
  );
  strictEqual(stderr, "");
  strictEqual(stdout, "timeout: the call ran longer than 0.05 ms\n");
  strictEqual(code, 0);
});

Deno.test("a sleep refused where it cannot wait (a sort comparator) leaves no timer behind", async () => {
  // The engine is left open on purpose: the refused sleep alone must let its timer go.
  const { value, ms } = await timed(() =>
    runProgram(
      `import { Engine, installGlobals } from "MOD";
const engine = await Engine.create();
installGlobals(engine);
await engine.execute("print(pcall(table.sort, { 2, 1 }, function(a, b) sleep(30) return a < b end))", "=x");
engine.stdout.flush();
`,
      ["-A"],
    )
  );
  strictEqual(value.stderr, "");
  match(value.stdout, /^false\t.*sleep cannot wait here/);
  ok(ms < 15_000, `the program took ${ms} ms: the refused 30 s sleep kept it alive`);
});

Deno.test("a call stopped while it waits for an HTTP answer aborts the request", async () => {
  // A server that takes the request and never answers: the stopped call must hang up on it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const hungUp = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(4096);
    try {
      while ((await conn.read(buffer)) !== null);
    } catch {
      // reset by the client: hung up too
    }
    conn.close();
  })();
  const lua = new Context({ timeout: 100 });
  try {
    const url = `http://127.0.0.1:${listener.addr.port}/`;
    await failure(lua.execute(`return http_get("${url}")`), Error, "timeout: the call ran longer than 100 ms");
    const { ms } = await timed(() => hungUp);
    ok(ms < 5000, `the request was still open ${ms} ms after the call stopped`);
  } finally {
    lua.close();
    listener.close();
  }
});

Deno.test("a timeout past setTimeout's 24.8 days does not fire at once (context and worker pool)", async () => {
  const month = 31 * 24 * 3600 * 1000;
  const lua = new Context({ timeout: month });
  try {
    strictEqual(await lua.execute("sleep(0.05) return 'finished'"), "finished");
    strictEqual(await lua.execute("sleep(0.05) return 'again'", "=c", { timeout: month }), "again");
  } finally {
    lua.close();
  }
  const pooled = Script.fromString("w.lua", "function main() sleep(0.05) return 'pooled' end", {
    workers: 1,
    timeout: month,
  });
  try {
    strictEqual(await pooled.run(), "pooled");
  } finally {
    pooled.close();
  }
});

Deno.test("a call that waits and then runs past its time ends alone; pcall cannot keep it; the context stays usable", async () => {
  const lua = new Context({ timeout: 100 });
  try {
    const message = "timeout: the call ran longer than 100 ms";
    await failure(lua.execute("sleep(0.01) while true do end"), Error, message);
    await failure(lua.execute("sleep(0.01) pcall(function() while true do end end) while true do end"), Error, message);
    strictEqual(await lua.execute("sleep(0.01) return 'still usable'"), "still usable");
  } finally {
    lua.close();
  }
});

Deno.test("goroutines a call started stay bound by its limits after it returns: ended where they compute or wait, and reported", async () => {
  // A child process: its stderr holds the reports, and it must end at once although the contexts stay open.
  const { value, ms } = await timed(() =>
    runProgram(
      `import { Context, Script } from "MOD";
// A finite loop, so that a goroutine escaping the limit makes this test fail rather than hang.
const script = Script.fromString("g.lua", "function main() go(function() for i = 1, 1e9 do end end) return 'returned' end", { timeout: 300 });
const start = performance.now();
console.log(await script.run(), performance.now() - start < 2000);
script.close();
const lua = new Context({ timeout: 300 });
console.log(await lua.execute("go(function() sleep(30) end, 'sleeper') go(function() receive(chan('never')) end, 'receiver') return 'ok'"));
const plain = new Context();
const controller = new AbortController();
console.log(await plain.execute("go(function() sleep(30) end, 'aborted') return 'started'", "=c", { signal: controller.signal }));
controller.abort();
`,
      ["-A"],
    )
  );
  strictEqual(value.stdout, "returned true\nok\nstarted\n");
  const reports = value.stderr.split("\n").filter((line) => line.startsWith("error in"));
  deepStrictEqual(reports, [
    "error in goroutine 1: timeout: the call ran longer than 300 ms",
    "error in aborted: the call was aborted",
    "error in sleeper: timeout: the call ran longer than 300 ms",
    "error in receiver: timeout: the call ran longer than 300 ms",
  ]);
  ok(ms < 10_000, `the program took ${ms} ms: a goroutine outlived its call's limit`);
});

Deno.test("with timeout, Lua no call binds (a timer's callback, a top level's goroutine) may hold the event loop that long at most", async () => {
  // A child process: a loop that escaped would freeze it, which the parent sees as a slow run rather than a hang.
  const { value, ms } = await timed(() =>
    runProgram(
      `import { Context, Script } from "MOD";
const lua = new Context({ timeout: 300 });
await lua.execute("set_timeout(function() for i = 1, 1e9 do end end, 0.05)");
const start = performance.now();
await new Promise((resolve) => setTimeout(resolve, 100));
const waited = await new Promise((resolve) => setTimeout(() => resolve(performance.now() - start), 500));
console.log(waited < 1500, await lua.execute("return 'usable'"));
const script = Script.fromString("top.lua", "go(function() sleep(0.05) for i = 1, 1e9 do end end) function main() return 'ran' end", { timeout: 300 });
console.log(await script.run());
const later = performance.now();
await new Promise((resolve) => setTimeout(resolve, 100));
const slept = await new Promise((resolve) => setTimeout(() => resolve(performance.now() - later), 500));
console.log(slept < 1500);
lua.close();
script.close();
`,
      ["-A"],
    )
  );
  strictEqual(value.stdout, "true usable\nran\ntrue\n");
  const reports = value.stderr.split("\n").filter((line) => line.startsWith("error in"));
  deepStrictEqual(reports, [
    "error in timeout 1: timeout: Lua ran longer than 300 ms without waiting, outside any call",
    "error in goroutine 1: timeout: Lua ran longer than 300 ms without waiting, outside any call",
  ]);
  ok(ms < 15_000, `the program took ${ms} ms`);
});

Deno.test("maxInstructions binds the goroutines a call started: one left running is ended alone, later calls go on", async () => {
  const lua = new Context({ maxInstructions: 1_000_000 });
  try {
    await lua.execute(`
      errors = {}
      on_error(function(message) errors[#errors + 1] = message end)
      function main(spawn) if spawn then go(function() while true do end end) end return "ok" end`);
    strictEqual(await lua.call("main", true), "ok");
    for (let i = 0; i < 3; i++) strictEqual(await lua.call("main", false), "ok");
    strictEqual(await lua.execute("return 42"), 42);
    deepStrictEqual(await lua.execute("return errors"), [
      "instruction limit exceeded: the script ran more than 1000000 Lua instructions",
    ]);
  } finally {
    lua.close();
  }
});

Deno.test("calls at once on one context each keep their own time limit", async () => {
  const lua = new Context({ timeout: 10_000 });
  try {
    await lua.execute(`
      function spin() sleep(0.01) while true do end end
      function nap(s) sleep(s) return "rested" end
      function work(ms) sleep(0.01) local t = os.clock() while os.clock() - t < ms / 1000 do end return "worked" end`);
    // A later call's longer limit does not replace an earlier call's shorter one.
    const short = timed(() =>
      failure(lua.callWith("spin", { timeout: 100 }), Error, "timeout: the call ran longer than 100 ms")
    );
    strictEqual(await lua.callWith("nap", { timeout: 3000 }, 0.05), "rested");
    ok((await short).ms < 2000, `the 100 ms call ran ${(await short).ms} ms`);
    // A call that ends does not take another's limit away: the spin still stops.
    const spin = failure(lua.callWith("spin", { timeout: 150 }), Error, "timeout: the call ran longer than 150 ms");
    strictEqual(await lua.callWith("nap", { timeout: 1000 }, 0.001), "rested");
    await within(spin, 3000, "the spin that outlived a shorter call");
    // One call's limit passing while another computes (its own limit far off, or none) does not stop that one.
    const waiting = failure(lua.callWith("nap", { timeout: 50 }, 1), Error, "timeout: the call ran longer than 50 ms");
    strictEqual(await lua.callWith("work", { timeout: 5000 }, 200), "worked");
    await waiting;
    const waitingAgain = failure(
      lua.callWith("nap", { timeout: 50 }, 1),
      Error,
      "timeout: the call ran longer than 50 ms",
    );
    strictEqual(await lua.call("work", 200), "worked");
    await waitingAgain;
  } finally {
    lua.close();
  }
});

Deno.test("closing while calls wait settles them: a call rejects, execute() says closed, idle() resolves", async () => {
  const lua = new Context();
  const waiting = lua.execute("sleep(30) return 1");
  await sleep(20);
  lua.close();
  await failure(waiting, Error, "the context was closed before the call ended");
  const engine = await Engine.create();
  installGlobals(engine);
  const run = engine.execute("sleep(30)", "=x");
  const idle = engine.idle();
  await sleep(20);
  engine.close();
  deepStrictEqual(await run, { status: "closed" });
  await within(idle, 1000, "idle() after close");
});

Deno.test("closing a context inside its own call (a function, a hook, a goroutine) ends the call as closed", async () => {
  const fromFunction = new Context();
  fromFunction.setGlobal("closeIt", () => fromFunction.close());
  await failure(
    fromFunction.execute("closeIt() return 'after'"),
    Error,
    "the context was closed before the call ended",
  );
  await failure(fromFunction.execute("return 1"), Error, "the context is closed");
  const fromHook = new Context();
  let lines = 0;
  fromHook.setHook(() => void (++lines === 3 && fromHook.close()), { line: true });
  await failure(
    fromHook.execute("local x = 1\nx = x + 1\nx = x + 1\nreturn x"),
    Error,
    "the context was closed before the call ended",
  );
  let printed = "";
  const fromGoroutine = new Context({
    stdout: { write: (bytes) => void (printed += new TextDecoder().decode(bytes)), flush: () => {} },
  });
  fromGoroutine.setGlobal("closeIt", () => fromGoroutine.close());
  const waiting = fromGoroutine.execute("sleep(5) return 'late'");
  strictEqual(
    await fromGoroutine.execute("go(function() sleep(0.01) pcall(closeIt) print('not reached') end) return 1"),
    1,
  );
  await failure(waiting, Error, "the context was closed before the call ended");
  ok(fromGoroutine.engine.closed);
  strictEqual(printed, "", "pcall cannot keep Lua running on a closed context");
});

Deno.test("a call stopped while os.execute waits kills the command", async () => {
  const dir = await tempFiles({});
  const lua = new Context({ timeout: 300 });
  try {
    await failure(
      lua.execute(`os.execute("echo $$ > ${dir}/pid; sleep 30")`),
      Error,
      "timeout: the call ran longer than 300 ms",
    );
    const pid = Number((await Deno.readTextFile(`${dir}/pid`)).trim());
    let running = true;
    for (let i = 0; i < 100 && running; i++) {
      // A zombie (state Z) has been killed; only its reaping is left.
      running = await Deno.readTextFile(`/proc/${pid}/stat`).then((stat) => !/^\d+ \(.*\) Z/.test(stat), () => false);
      if (running) await sleep(20);
    }
    ok(!running, `the command ${pid} still runs after its call stopped`);
  } finally {
    lua.close();
  }
});

Deno.test("an AbortSignal stops a waiting call; an aborted one refuses and leaves no timer", async () => {
  const lua = new Context({ timeout: 100 });
  try {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    const { ms } = await timed(() =>
      failure(lua.execute("sleep(5)", "=c", { signal: controller.signal }), Error, "the call was aborted")
    );
    ok(ms < 1000, `aborted after ${ms} ms`);
  } finally {
    lua.close();
  }
  const refused = new Context({ timeout: 50 });
  try {
    await failure(refused.execute("return 1", "=c", { signal: AbortSignal.abort() }), Error, "the call was aborted");
    await sleep(80);
    strictEqual(await refused.execute("return 2"), 2);
  } finally {
    refused.close();
  }
});

Deno.test("a waiting call that runs out of time ends alone: its to-be-closed variables close, the context goes on", async () => {
  const printed: string[] = [];
  const lua = new Context({
    stdout: { write: (b) => void printed.push(new TextDecoder().decode(b)), flush: () => {} },
  });
  try {
    // A sleeping goroutine keeps calls parked on the channel from being a deadlock meanwhile.
    await lua.execute(`go(function() sleep(0.6) end)
      jobs = chan("jobs")
      function worker(tag)
        local guard <close> = setmetatable({}, { __close = function() print("closed " .. tag) end })
        return receive(jobs)
      end`);
    // Parked on a channel, on a host operation (sleep), and in wait() behind a sleeping goroutine.
    await failure(lua.callWith("worker", { timeout: 50 }, "a"), Error, "timeout: the call ran longer than 50 ms");
    await failure(lua.execute("sleep(0.3)", "=c", { timeout: 50 }), Error, "timeout: the call ran longer than 50 ms");
    await failure(
      lua.execute("go(function() sleep(0.2) end) wait()", "=c", { timeout: 50 }),
      Error,
      "timeout: the call ran longer than 50 ms",
    );
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    await failure(lua.callWith("worker", { signal: controller.signal }, "b"), Error, "the call was aborted");
    deepStrictEqual(printed.join(""), "closed a\nclosed b\n");
    // The cancelled receivers no longer take values: a live one gets the first send.
    const live = lua.call("worker", "c");
    strictEqual(await lua.execute("send(jobs, 'job 1') return 'sent'"), "sent");
    strictEqual(await live, "job 1");
    await sleep(400); // the abandoned sleeps end meanwhile; their results are dropped
    strictEqual(await lua.execute("go(function() sleep(0.01) end) wait() return 'usable'"), "usable");
    deepStrictEqual(printed.join(""), "closed a\nclosed b\nclosed c\n");
  } finally {
    lua.close();
  }
});

Deno.test("a call passes any number of arguments, under maxMemory too (each push has room on Lua's stack)", async () => {
  for (const maxMemory of [undefined, 8 * 1024 * 1024]) {
    const lua = new Context({ maxMemory });
    try {
      await lua.execute(
        "function count(...) local n = select('#', ...) return n .. ':' .. (n > 0 and select(n, ...) or '') end",
      );
      // A Lua function handed to JavaScript as a value is called the same way.
      const count = await lua.execute("return count") as (...args: unknown[]) => unknown;
      for (const n of [0, 19, 20, 21, 50, 80, 1000, maxMemory ? 20000 : 100000]) {
        const args = Array.from({ length: n }, (_, i) => i + 1);
        // The function value first: the call thread's stack keeps the size a call before it made room for.
        if (n <= 20000) {
          strictEqual(await count(...args), `${n}:${n === 0 ? "" : n}`, `${n} arguments to a function value`);
        }
        strictEqual(await lua.call("count", ...args), `${n}:${n === 0 ? "" : n}`, `${n} arguments`);
      }
      strictEqual(await lua.execute("return 6 * 7"), 42);
    } finally {
      lua.close();
    }
  }
});

Deno.test("under maxMemory a call whose arguments find no room on the goroutine's stack fails, and holds nothing", async () => {
  const lua = new Context({ maxMemory: 8 * 1024 * 1024 });
  try {
    await lua.execute("function count(...) return select('#', ...) end");
    const args = Array.from({ length: 100000 }, (_, i) => i + 1);
    // The goroutine was left to run later without them: the call returned 0.
    await rejects(lua.call("count", ...args), /: cannot pass 100000 values \(no room for them on Lua's stack\)$/);
    strictEqual(await lua.call("count", ...args.slice(0, 20000)), 20000, "the failed call left no memory held");
  } finally {
    lua.close();
  }
});

Deno.test("under maxMemory a goroutine whose arguments find no room on the scheduler's stack fails alone; the context goes on", async () => {
  const lua = new Context({ maxMemory: 10 * 1024 * 1024 });
  try {
    // go() packed them; unpacking them to start the goroutine failed inside the scheduler, which every later call hit.
    const started = await lua.execute(`
      local t = {} for i = 1, 100000 do t[i] = i end
      local failed
      on_error(function(e) failed = e end)
      local ok = pcall(go, function(...) end, table.unpack(t))
      wait()
      return { ok, failed }`);
    deepStrictEqual(started, [true, "cannot pass 100000 values (no room for them on Lua's stack)"]);
    strictEqual(await lua.execute("return 1 + 1"), 2);
  } finally {
    lua.close();
  }
});

Deno.test("calls ended where they wait on a quiet channel (time limit, signal, deadlock) leave nothing queued on it", async () => {
  const lua = new Context();
  try {
    await lua.execute(`jobs, quit, events, full = chan("jobs"), chan("quit"), chan("events"), chan("full")
      function work() return select(jobs, quit) end
      function event() return receive(events) end
      function put() send(full, string.rep("x", 100)) end
      function heap() collectgarbage() collectgarbage() return collectgarbage("count") end`);
    // Nothing else runs: each call is first a deadlock, then, while a listener keeps the run alive, ended by its limit.
    // Each call must end by its limit (a deadlock, a time limit, an aborted signal), not succeed or fail otherwise.
    const endsStopped = (call: Promise<unknown>) =>
      call.then(
        () => ok(false, "a call ended without its limit"),
        (e) => ok(e instanceof Error && /asleep - deadlock|ran longer than|was aborted/.test(e.message), String(e)),
      );
    const ended = async () => {
      for (let i = 0; i < 100; i++) {
        await endsStopped(lua.call("work"));
        await endsStopped(lua.call("event"));
        await endsStopped(lua.call("put"));
      }
      await lua.execute(`held = tcp_listen(0, "127.0.0.1")`);
      for (let i = 0; i < 100; i++) {
        await endsStopped(lua.callWith("work", { timeout: 1 }));
        await endsStopped(lua.callWith("event", { signal: AbortSignal.timeout(1) }));
        await endsStopped(lua.callWith("put", { timeout: 1 }));
      }
      await lua.execute("held.close()");
    };
    await ended(); // tables reach their working size
    const before = await lua.call("heap") as number;
    await ended();
    const grown = await lua.call("heap") as number - before;
    // Each ended call left about 1 KB on the channels it waited on (a send, its value too).
    ok(grown < 100, `600 ended calls grew the Lua heap by ${grown} KB`);
    // Their entries are gone, not live: a send reaches the waiting call.
    await lua.execute(`held = tcp_listen(0, "127.0.0.1")`);
    const live = lua.callWith("work", { timeout: 10_000 });
    await lua.execute("send(quit, 'stop')");
    strictEqual(await live, "stop");
  } finally {
    lua.close();
  }
});

Deno.test("an AbortSignal cannot stop a loop that never yields: the loop holds the thread", async () => {
  // The abort is an event; no event runs while Lua holds the thread, even
  // on a context that counts instructions. Use timeout or maxInstructions.
  const lua = new Context({ timeout: 5000 });
  try {
    const controller = new AbortController();
    let abortedAt = 0;
    setTimeout(() => {
      abortedAt = performance.now();
      controller.abort();
    }, 20);
    const loop = "local t = os.clock() while os.clock() - t < 0.2 do end return 'finished'";
    strictEqual(await lua.execute(loop, "=c", { signal: controller.signal }), "finished");
    const loopEnded = performance.now();
    await sleep(5);
    ok(controller.signal.aborted && abortedAt >= loopEnded - 1, "the 20 ms timer could only fire after the loop");
    strictEqual(await lua.execute("return 'still usable'"), "still usable");
  } finally {
    lua.close();
  }
});

Deno.test("maxMemory: allocating past it is a catchable 'not enough memory'; usage grows and shrinks", async () => {
  const lua = new Context({ maxMemory: 8 * 1024 * 1024 });
  try {
    const e = await failure(
      lua.execute("local s = string.rep('x', 20 * 1024 * 1024) return #s"),
      LuaError,
      "not enough memory",
    );
    ok(e.traceback.includes("in function 'string.rep'"), e.traceback);
    strictEqual(
      await lua.execute("local ok, e = pcall(string.rep, 'x', 20 * 1024 * 1024) return e"),
      "not enough memory",
    );
    strictEqual(await lua.execute("return #string.rep('x', 1024 * 1024)"), 1024 * 1024, "within the limit works");
    lua.gc("collect");
    const before = lua.getMemoryUsage();
    ok(Number.isInteger(before) && before > 10_000 && before < 1024 * 1024, `usage at rest: ${before}`);
    await lua.execute("big = {} for i = 1, 100000 do big[i] = i end");
    const grown = lua.getMemoryUsage();
    ok(grown > before + 1024 * 1024, `a 100k-item table grew usage from ${before} to ${grown}`);
    await lua.execute("big = nil");
    lua.gc("collect");
    const shrunk = lua.getMemoryUsage();
    ok(shrunk < before + 64 * 1024, `collecting gave it back: ${shrunk} (at rest ${before})`);
  } finally {
    lua.close();
  }
});

Deno.test("maxMemory: filled by many small values, a call fails with 'not enough memory' and the context gives the memory back and goes on", async () => {
  // Each allocation is small: the heap is full to the byte when one fails, and what filled it is on the failed call's stack.
  const fills = {
    "tostring": "local t = {} for i = 1, 1e7 do t[i] = tostring(i) end",
    "string.rep": "local t = {} for i = 1, 1e7 do t[i] = string.rep('x', 100) end",
    "string.format": "local t = {} for i = 1, 1e7 do t[i] = string.format('%d:%s', i, 'v') end",
    "table.insert of tables": "local t = {} for i = 1, 1e7 do table.insert(t, { i }) end",
    "concatenation": "local t, s = {}, '' for i = 1, 1e7 do s = s .. 'x' t[i] = s .. i end",
    "coroutine.wrap": "local t = {} coroutine.wrap(function() for i = 1, 1e7 do t[i] = tostring(i) end end)()",
    "after a wait": "local t = {} sleep(0.001) for i = 1, 1e7 do t[i] = tostring(i) end",
  };
  for (const [name, fill] of Object.entries(fills)) {
    const lua = new Context({ maxMemory: 8 * 1024 * 1024 });
    try {
      await lua.execute("function small() return 'small ok' end");
      const e = await lua.execute(fill).then(() => undefined, (e: Error) => e);
      ok(e instanceof LuaError && e.message.endsWith("not enough memory"), `${name}: ${Deno.inspect(e)}`);
      strictEqual(await lua.call("small"), "small ok", name);
      lua.gc("collect");
      ok(lua.getMemoryUsage() < 2 * 1024 * 1024, `${name}: ${lua.getMemoryUsage()} bytes in use after collecting`);
    } finally {
      lua.close();
    }
  }
  const s = Script.fromString("fill.lua", `function main(fill) if fill then ${fills.tostring} end return "ok" end`, {
    pool: 1,
    maxMemory: 8 * 1024 * 1024,
  });
  try {
    await failure(s.run(true), LuaError, "not enough memory");
    strictEqual(await s.run(false), "ok");
  } finally {
    s.close();
  }
});

Deno.test("maxMemory: a call that fills the memory fails alone with 'not enough memory' wherever its frames sit on the stack", async () => {
  // A collection at rest shrinks the main stack; the argument count moves the scheduler's frames up it. Some of these
  // left the scheduler growing that stack with the memory still full, and the engine broke (an internal error).
  for (let count = 0; count <= 16; count++) {
    const lua = new Context({ maxMemory: 8 * 1024 * 1024 });
    try {
      await lua.execute(
        "function small() return 'small ok' end function fill(...) local t = {} for i = 1, 1e7 do t[i] = tostring(i) end end",
      );
      lua.gc("collect");
      await failure(lua.call("fill", ...Array(count).fill(0)), LuaError, "not enough memory");
      strictEqual(await lua.call("small"), "small ok", `${count} arguments`);
      lua.gc("collect");
      ok(lua.getMemoryUsage() < 2 * 1024 * 1024, `${count} arguments: ${lua.getMemoryUsage()} bytes after collecting`);
    } finally {
      lua.close();
    }
  }
});

Deno.test("maxMemory: a value too big to pass in is refused with 'not enough memory', nothing on stderr; the engine goes on", async () => {
  // A child process: Lua's panic handler writes to stderr.
  const { code, stdout, stderr } = await runProgram(
    `import { Context, Script } from "MOD";
const list = Array.from({ length: 1_000_000 }, (_, i) => i);
const show = (p) => p.then(String, (e) => \`\${e.constructor.name}: \${e.message}\`);
const s = Script.fromString("sum.lua", "function main(t) local s = 0 for _, v in ipairs(t) do s = s + v end return s end",
  { maxMemory: 4 * 1024 * 1024 });
console.log(await show(s.run(list)), "|", await show(s.run([1, 2, 3])));
s.close();
const lua = new Context({ maxMemory: 4 * 1024 * 1024 });
const set = () => { try { lua.setGlobal("big", { list }); return "set"; } catch (e) { return \`\${e.constructor.name}: \${e.message}\`; } };
console.log(set(), "|", await show(lua.execute("return big")));
await lua.execute("function len(s) return #s end");
const bytes = new Uint8Array(5 * 1024 * 1024);
console.log(await show(lua.call("len", bytes)), "|", await show(lua.call("len", "y".repeat(5 * 1024 * 1024))));
lua.close();
`,
    ["-A"],
  );
  strictEqual(stderr, "");
  strictEqual(
    stdout,
    "Error: not enough memory | 6\nError: not enough memory | undefined\n" +
      "Error: not enough memory | Error: not enough memory\n",
  );
  strictEqual(code, 0);
});

Deno.test("maxMemory below what an engine needs to start is refused with a RangeError", () => {
  for (const maxMemory of [1000, 500_000, NaN]) {
    thrown(
      () => new Context({ maxMemory }),
      RangeError,
      "maxMemory must be at least 1048576 bytes (1 MiB): the engine itself needs that much",
    );
  }
});

Deno.test("maxInstructions and maxActors that are not a whole number of at least 1 are refused: 0 would lift the limit", () => {
  for (const option of ["maxInstructions", "maxActors"] as const) {
    for (const value of [0, -1, NaN, 1.5, Infinity]) {
      thrown(
        () => new Context({ [option]: value }),
        RangeError,
        `${option} must be a whole number of at least 1, got ${value}`,
      );
    }
    thrown(
      () => new Context({ [option]: "2" as unknown as number }),
      TypeError,
      `${option} must be a number, got string`,
    );
  }
});

Deno.test("maxActors bounds a context's actors alive at once", async () => {
  const dir = await tempFiles({ "idle.lua": "mailbox()" });
  const { code, stdout, stderr } = await within(
    runProgram(
      `import { Context } from "MOD";
const lua = new Context({ maxActors: 2, scriptPath: "${dir}/main.lua" });
console.log(await lua.execute(\`local a, b = spawn("idle.lua"), spawn("idle.lua")
local ok, e = pcall(function() local c = spawn("idle.lua") end)
a.stop() a.wait()
local c = spawn("idle.lua")
return e\`, "=limits"));
lua.close();`,
      ["-A"],
    ),
    20_000,
    "the program with maxActors",
  );
  strictEqual(stderr, "");
  strictEqual(
    stdout,
    "limits:2: spawn: too many actors alive at once (limit 2; each runs in a thread of its own, about 13 MB; " +
      "raise it with the maxActors option)\n",
  );
  strictEqual(code, 0);
});

Deno.test("options of the wrong type are refused with a TypeError naming them: maxMemory as text, libraries as one string", () => {
  thrown(
    () => new Context({ maxMemory: "64MB" as unknown as number }),
    TypeError,
    "maxMemory must be a number of bytes, got string",
  );
  thrown(
    () => new Context({ libraries: "string" as unknown as ["string"] }),
    TypeError,
    "libraries must be a list of library names, got string",
  );
});

Deno.test("maxMemory below the 16 MiB the WebAssembly memory starts with is enforced too", async () => {
  const lua = new Context({ maxMemory: 1024 * 1024 });
  try {
    await failure(lua.execute("return #string.rep('x', 5 * 1024 * 1024)"), LuaError, "not enough memory");
    await failure(
      lua.execute("local t = {} for i = 1, 200000 do t[i] = i end return #t"),
      LuaError,
      "not enough memory",
    );
    strictEqual(await lua.execute("return #string.rep('x', 256 * 1024)"), 256 * 1024, "within the limit works");
    lua.gc("collect");
    ok(lua.getMemoryUsage() < 1024 * 1024, `usage ${lua.getMemoryUsage()}`);
  } finally {
    lua.close();
  }
});

Deno.test("import in a context without the debug library: it loads, and its errors name the chunk's line", async () => {
  const dir = await tempFiles({ "mod9.lua": "return { v = 9 }" });
  const lua = new Context({ libraries: ["string", "table"], scriptPath: `${dir}/main.lua` });
  try {
    strictEqual(await lua.execute(`return import("mod9").v`), 9);
    const e = await lua.execute(`local x = 1\nimport("missing")`).catch((e) => e);
    ok(e instanceof LuaError, Deno.inspect(e));
    ok(e.message.startsWith("chunk:2: import: module 'missing' not found; searched:\n"), e.message);
  } finally {
    lua.close();
  }
});

Deno.test("libraries: only those asked for are open; package-less contexts refuse modules", async () => {
  const lua = new Context({ libraries: ["string"] });
  try {
    deepStrictEqual(
      await lua.execute(
        "return { io = io == nil, os = os == nil, math = math == nil, package = package == nil, " +
          "require = require == nil, upper = string.upper('x'), print = type(print), pairs = type(pairs) }",
      ),
      {
        io: true,
        os: true,
        math: true,
        package: true,
        require: true,
        upper: "X",
        print: "function",
        pairs: "function",
      },
    );
    thrown(
      () => lua.addSearchPath("./?.lua"),
      Error,
      "the package library is not open in this context (see the libraries option)",
    );
    thrown(
      () => lua.registerModule("m", {}),
      Error,
      "the package library is not open in this context (see the libraries option)",
    );
  } finally {
    lua.close();
  }
  const bare = new Context({ libraries: [], solvm: false });
  try {
    deepStrictEqual(await bare.execute("return { string == nil, sleep == nil, type(tostring) }"), [
      true,
      true,
      "function",
    ]);
    // A string's methods were the string library too.
    await failure(
      bare.execute(`return ("x"):rep(3)`),
      LuaError,
      "chunk:1: attempt to index a string value (constant 'x')",
    );
  } finally {
    bare.close();
  }
  thrown(
    () => new Context({ libraries: ["base" as "string"] }),
    TypeError,
    `unknown Lua library "base" (coroutine, table, io, os, string, math, utf8, debug, package)`,
  );
});

Deno.test("gc: collect, stop, restart, step and count; an unknown command is refused", async () => {
  const lua = new Context();
  try {
    strictEqual(lua.gc("collect"), undefined);
    const atRest = lua.gc("count")!;
    ok(typeof atRest === "number" && atRest > 0, `count is kilobytes in use: ${atRest}`);
    strictEqual(lua.getMemoryUsage(), Math.round(atRest * 1024));
    strictEqual(lua.gc("stop"), undefined);
    strictEqual(await lua.execute("return collectgarbage('isrunning')"), false);
    await lua.execute("for i = 1, 2000 do local garbage = { i, i, i } end");
    const stopped = lua.gc("count")!;
    ok(stopped > atRest + 50, `with the collector stopped garbage stays: ${atRest} -> ${stopped} KB`);
    strictEqual(lua.gc("restart"), undefined);
    strictEqual(await lua.execute("return collectgarbage('isrunning')"), true);
    strictEqual(lua.gc("step"), undefined);
    lua.gc("collect");
    const collected = lua.gc("count")!;
    ok(collected < stopped - 50, `restart and collect freed it: ${stopped} -> ${collected} KB`);
    // A script replacing collectgarbage does not take gc() with it.
    await lua.execute("collectgarbage = nil");
    ok(lua.gc("count")! > 0);
    thrown(
      () => lua.gc("sweep" as "collect"),
      TypeError,
      `unknown gc command "sweep" (collect, stop, restart, count, step)`,
    );
  } finally {
    lua.close();
  }
});

Deno.test("compile and loadBytecode: refused without allowBytecode, run with it, garbage rejected", async () => {
  const source = "local x = ... or 6 return x * 7";
  const plain = new Context();
  const trusted = new Context({ allowBytecode: true });
  try {
    const bytes = plain.compile(source);
    deepStrictEqual([...bytes.subarray(0, 4)], [0x1b, 0x4c, 0x75, 0x61], "a Lua binary chunk");
    await failure(
      plain.loadBytecode(bytes),
      Error,
      "loadBytecode is refused: make the context with allowBytecode: true (only for trusted bytecode)",
    );
    await failure(plain.execute(bytes), LuaError, "chunk: precompiled Lua bytecode is refused; only source text runs");
    await failure(
      trusted.execute(bytes, "@cached.luac"),
      LuaError,
      "cached.luac: precompiled Lua bytecode is refused; only source text runs",
    );
    strictEqual(await trusted.loadBytecode(bytes), 42);
    strictEqual(await trusted.loadBytecode(bytes), 42, "bytecode loads again");
    strictEqual(await trusted.loadBytecode(new TextEncoder().encode("return 'text too'")), "text too");
    await failure(
      trusted.loadBytecode(new Uint8Array([0x1b, 0x4c, 0x75, 0x61, 1, 2, 3])),
      LuaError,
      "bytecode: bad binary format (version mismatch)",
    );
    await failure(
      trusted.loadBytecode(bytes.slice(0, bytes.length - 5), "=cut"),
      LuaError,
      "cut: bad binary format (truncated chunk)",
    );
    const failing = trusted.compile("local t = nil\nreturn t.field", "@compiled.lua");
    await failure(trusted.loadBytecode(failing), LuaError, "compiled.lua:2: attempt to index a nil value (local 't')");
    thrown(() => plain.compile("return +"), LuaError, "chunk:1: unexpected symbol near '+'");
    thrown(() => plain.compile("return +", "@named.lua"), LuaError, "named.lua:1: unexpected symbol near '+'");
  } finally {
    plain.close();
    trusted.close();
  }
});

Deno.test("a source that is neither text nor bytes is a TypeError naming it, never an empty chunk run without error", async () => {
  const lua = new Context({ allowBytecode: true });
  try {
    const source = new TextEncoder().encode("answer = 42 return 'ran'");
    const cases: [unknown, string][] = [
      [source.buffer, "ArrayBuffer"],
      [42, "number"],
      [{}, "Object"],
      [null, "null"],
      [undefined, "undefined"],
    ];
    for (const [given, kind] of cases) {
      await failure(
        lua.execute(given as string),
        TypeError,
        `execute's source must be a string or a Uint8Array, got ${kind}`,
      );
      thrown(
        () => lua.compile(given as string),
        TypeError,
        `compile's source must be a string or a Uint8Array, got ${kind}`,
      );
      await failure(
        lua.loadBytecode(given as Uint8Array),
        TypeError,
        `loadBytecode's bytes must be a Uint8Array, got ${kind}`,
      );
    }
    await failure(
      lua.loadBytecode("return 1" as unknown as Uint8Array),
      TypeError,
      "loadBytecode's bytes must be a Uint8Array, got string",
    );
    // Options given where the chunk name goes failed inside ("chunkname.startsWith is not a function").
    await failure(
      lua.execute("return 1", { timeout: 100 } as unknown as string),
      TypeError,
      "execute's chunk name must be a string, got Object (options go third: execute(source, name, options))",
    );
    thrown(
      () => lua.compile("return 1", 7 as unknown as string),
      TypeError,
      "compile's chunk name must be a string, got number",
    );
    strictEqual(lua.getGlobal("answer"), undefined, "nothing ran");
    strictEqual(await lua.execute(source), "ran");
  } finally {
    lua.close();
  }
});

Deno.test("setHook, callWith and runWith refuse options they cannot use with a clear error; undefined call options are none", async () => {
  const lua = new Context();
  const script = Script.fromString("main.lua", "function main(n) return n * 2 end");
  try {
    await lua.execute("function double(n) return n * 2 end");
    const range = "setHook's count must be a whole number of instructions from 1 to 2147483647, got";
    for (const count of [-1, 0, 1.5, 2 ** 31]) {
      thrown(() => lua.setHook(() => {}, { count }), RangeError, `${range} ${count}`);
    }
    thrown(
      () => lua.setHook(() => {}, { count: "1000" as unknown as number }),
      TypeError,
      "setHook's count must be a number, got string",
    );
    for (const [events, kind] of [[undefined, "undefined"], [null, "null"], [true, "boolean"]]) {
      thrown(
        () => lua.setHook(() => {}, events as unknown as { line: boolean }),
        TypeError,
        `setHook needs an object of events ({ call, return, line, count }), got ${kind}`,
      );
    }
    let counts = 0;
    lua.setHook((event) => event === "count" && counts++, { count: 1 });
    await lua.execute("local s = 0 for i = 1, 10 do s = s + i end");
    ok(counts >= 10, `a count of 1 fires at every instruction: ${counts}`);
    lua.removeHook();
    const options = "call options must be an object ({ signal, timeout }), got";
    await failure(lua.callWith("double", null as unknown as undefined, 1), TypeError, `${options} null`);
    await failure(lua.callWith("double", 1000 as unknown as undefined, 1), TypeError, `${options} number`);
    await failure(lua.execute("return 1", "=chunk", null as unknown as undefined), TypeError, `${options} null`);
    await failure(script.runWith(null as unknown as undefined, 1), TypeError, `${options} null`);
    await failure(
      lua.callWith("double", { signal: {} as AbortSignal }, 1),
      TypeError,
      "signal must be an AbortSignal, got Object",
    );
    strictEqual(await lua.callWith("double", undefined, 21), 42);
    strictEqual(await script.runWith(undefined, 21), 42);
  } finally {
    lua.close();
    script.close();
  }
});

Deno.test("setHook: line events carry the right line numbers", async () => {
  const lua = new Context();
  try {
    const lines: number[] = [];
    lua.setHook((event, line) => event === "line" && lines.push(line), { line: true });
    strictEqual(
      await lua.execute("local function add(a, b)\n  return a + b\nend\nlocal x = add(1, 2)\nreturn x", "@h.lua"),
      3,
    );
    // As native Lua 5.4 reports them: the closure is made on line 3.
    deepStrictEqual(lines, [3, 4, 2, 5]);
  } finally {
    lua.close();
  }
});

Deno.test("setHook: an error thrown by the hook carries the position of the line that triggered it", async () => {
  const lua = new Context();
  try {
    lua.setHook((event, line) => {
      if (event === "line" && line === 2) throw new Error("stepping into line 2 is not allowed");
    }, { line: true });
    const e = await failure(
      lua.execute("local a = 1\nlocal b = 2\nreturn a + b", "@steps.lua"),
      LuaError,
      "steps.lua:2: stepping into line 2 is not allowed",
    );
    strictEqual(e.file, "steps.lua");
    strictEqual(e.line, 2);
    // A call to a C function has no line of its own: its caller's is given.
    lua.setHook((event, line) => {
      if (event === "call" && line < 0) throw new Error("no calls out");
    }, { call: true });
    await failure(lua.execute("local a = 1\nprint(a)", "@calls.lua"), LuaError, "calls.lua:2: no calls out");
  } finally {
    lua.close();
  }
});

Deno.test("setHook: call and return events name the functions", async () => {
  const lua = new Context();
  try {
    const events: string[] = [];
    lua.setHook((event, line, name) => line > 0 && events.push(`${event} ${name}`), { call: true, return: true });
    await lua.execute("local function add(a, b)\n  return a + b\nend\nlocal x = add(1, 2)\nreturn x", "@h.lua");
    deepStrictEqual(events, ["call ", "call add", "return add", "return "]);
  } finally {
    lua.close();
  }
});

Deno.test({
  name: "setHook: a hook sees only the script's own calls",
  fn: async () => {
    const lua = new Context();
    try {
      const events: string[] = [];
      lua.setHook((event, line, name) => events.push(`${event} ${line} ${name}`), { call: true, return: true });
      await lua.execute("local function add(a, b)\n  return a + b\nend\nlocal x = add(1, 2)\nreturn x", "@h.lua");
      deepStrictEqual(events, ["call 3 ", "call 2 add", "return 2 add", "return 5 "]);
      // Nor the building of a table passed in.
      await lua.execute("function count(t) return #t end", "@c.lua");
      events.length = 0;
      strictEqual(await lua.call("count", [1, 2, 3]), 3);
      deepStrictEqual(events, ["call 1 ", "return 1 "]);
    } finally {
      lua.close();
    }
  },
});

Deno.test("setHook: count events, removeHook, and a hook that throws", async () => {
  const lua = new Context();
  try {
    let counts = 0;
    lua.setHook((event) => event === "count" && counts++, { count: 100 });
    await lua.execute("local s = 0 for i = 1, 1000 do s = s + i end return s");
    ok(counts >= 20 && counts <= 60, `a count event every 100 instructions: ${counts}`);
    lua.removeHook();
    counts = 0;
    strictEqual(await lua.execute("local s = 0 for i = 1, 1000 do s = s + i end return s"), 500500);
    strictEqual(counts, 0, "no events after removeHook");
    lua.removeHook(); // twice is harmless
    lua.setHook((event, line) => {
      if (event === "line" && line === 2) throw new Error("stopped at line 2");
    }, { line: true });
    const e = await failure(
      lua.execute("local a = 1\nlocal b = 2\nreturn a + b", "@h.lua"),
      LuaError,
      "h.lua:2: stopped at line 2",
    );
    strictEqual(e.traceback, "h.lua:2: stopped at line 2\nstack traceback:\n\th.lua:2: in main chunk");
    deepStrictEqual(
      await lua.execute("return { pcall(function()\n  return 1\nend) }", "@h.lua"),
      [false, "h.lua:2: stopped at line 2"],
    );
    lua.removeHook();
    strictEqual(await lua.execute("local a = 1\nlocal b = 2\nreturn a + b"), 3);
    thrown(
      () => lua.setHook(() => {}, {}),
      TypeError,
      "setHook needs at least one of call, return, line or count",
    );
    thrown(() => lua.setHook("hook" as unknown as () => void, { line: true }), TypeError, "setHook needs a function");
  } finally {
    lua.close();
  }
});

Deno.test("setHook and maxInstructions work together", async () => {
  const lua = new Context({ maxInstructions: 100_000 });
  try {
    const lines: number[] = [];
    lua.setHook((event, line) => event === "line" && lines.push(line), { line: true });
    strictEqual(await lua.execute("local a = 1\nreturn a + 1"), 2);
    deepStrictEqual(lines, [1, 2]);
    await failure(lua.execute("while true do end"), LuaError, LIMIT_MESSAGE);
  } finally {
    lua.close();
  }
});

Deno.test("shared: a value that is not a SharedTable (a plain object) is refused with a TypeError naming it", () => {
  thrown(
    () => new Context({ shared: { settings: { mode: "fast" } as unknown as SharedTable } }),
    TypeError,
    "shared.settings must be a SharedTable (made with createSharedTable(...)), got object",
  );
  const table = createSharedTable({});
  for (
    const [shared, got] of [
      ["abc", "string"],
      [[table], "an array"],
      [null, "null"],
      [table, "a SharedTable (write { name: table })"],
      [new Map([["settings", table]]), "a Map"],
    ] as const
  ) {
    thrown(
      () => new Context({ shared: shared as unknown as Record<string, SharedTable> }),
      TypeError,
      `shared must be an object of global names to SharedTables, got ${got}`,
    );
  }
});

Deno.test("a strict _G or guarded tables: getGlobal, setGlobal, call, SharedTable.set and registerModule throw Lua's error, nothing on stderr; the context goes on", async () => {
  // A child process: Lua's panic handler writes to stderr.
  const { code, stdout, stderr } = await runProgram(
    `import { Context, createSharedTable } from "MOD";
const settings = createSharedTable({ mode: "fast" });
const lua = new Context({ shared: { settings } });
await lua.execute(\`
setmetatable(settings, { __newindex = function(_, k) error("settings are read-only: " .. k) end })
setmetatable(package.loaded, { __newindex = function(_, k) error("no new modules: " .. k, 2) end })
rawset(_G, "ok", function() return "ok" end)
setmetatable(_G, {
  __index = function(_, k) error("undefined global " .. tostring(k), 2) end,
  __newindex = function(_, k) error("assignment to undeclared global " .. tostring(k), 2) end,
})\`, "=setup");
const show = async (f) => {
  try {
    return \`value \${await f()}\`;
  } catch (e) {
    return \`\${e.constructor.name}: \${e.message}\`;
  }
};
console.log(await show(() => lua.getGlobal("missing")));
console.log(await show(() => lua.setGlobal("missing", 1)));
console.log(await show(() => lua.call("missing")));
console.log(await show(() => settings.set("level", 2)));
console.log(await show(() => lua.registerModule("m", {})));
for (let i = 0; i < 300; i++) await show(() => lua.getGlobal("missing"));
console.log(await show(() => lua.call("ok")), await show(() => lua.getGlobal("settings").mode));
lua.close();
`,
    ["-A"],
  );
  strictEqual(stderr, "");
  strictEqual(
    stdout,
    "LuaError: undefined global missing\n" +
      "LuaError: assignment to undeclared global missing\n" +
      "LuaError: undefined global missing\n" +
      "LuaError: setup:2: settings are read-only: level\n" +
      "LuaError: no new modules: m\n" +
      "value ok value fast\n",
  );
  strictEqual(code, 0);
});

Deno.test("the stderr option gets io.stderr and goroutines' error reports, from workers too; anything but a function is refused", async () => {
  let reports = "";
  const stderr = (text: string) => void (reports += text);
  const lua = new Context({ stderr });
  try {
    await lua.execute(`io.stderr:write("to stderr\\n") go(function() error("failed", 0) end) sleep(0.01)`);
    strictEqual(
      reports,
      "to stderr\nerror in goroutine 1: failed\nstack traceback:\n\t[C]: in function 'error'\n\tchunk:1: in function <chunk:1>\n",
    );
  } finally {
    lua.close();
  }
  reports = "";
  const s = Script.fromString("w.lua", 'function main() io.stderr:write("from a worker\\n") return 1 end', {
    workers: 1,
    stderr,
  });
  try {
    strictEqual(await s.run(), 1);
    strictEqual(reports, "from a worker\n");
  } finally {
    s.close();
  }
  // @ts-expect-error: a bad input, on purpose
  thrown(() => new Context({ stderr: "log.txt" }), TypeError, "stderr must be a function of text, got string");
});

Deno.test("shared tables: one table under two names gets set and sync in both; a set one copy refuses changes no copy", async () => {
  const config = createSharedTable({ mode: "fast" });
  const both = new Context({ shared: { config, settings: config } });
  const a = new Context({ shared: { config } });
  const guarded = new Context({ shared: { config } });
  try {
    config.set("mode", "slow");
    strictEqual(await both.execute("return config.mode .. ' ' .. settings.mode"), "slow slow");
    await both.execute("config.mode, settings.mode = 'x', 'y'");
    config.sync();
    strictEqual(await both.execute("return config.mode .. ' ' .. settings.mode"), "slow slow");
    await guarded.execute("setmetatable(config, { __newindex = function() error('read-only here', 0) end })");
    // The contexts before it in line had taken the new field already.
    thrown(() => config.set("level", 3), LuaError, "read-only here");
    strictEqual(config.get("level"), undefined);
    strictEqual(config.get("mode"), "slow");
    strictEqual(await a.execute("return tostring(config.level) .. ' ' .. config.mode"), "nil slow");
    strictEqual(await both.execute("return tostring(settings.level) .. ' ' .. config.mode"), "nil slow");
  } finally {
    both.close();
    a.close();
    guarded.close();
  }
});

Deno.test("shared tables: set and sync reach every context; other globals stay apart", async () => {
  const settings = createSharedTable({ config: { debug: true }, level: 1 });
  ok(settings instanceof SharedTable);
  const a = new Context({ shared: { settings } });
  const b = new Context({ shared: { options: settings } });
  try {
    deepStrictEqual(await a.execute("return { settings.config.debug, settings.level }"), [true, 1]);
    deepStrictEqual(await b.execute("return { options.config.debug, options.level }"), [true, 1]);
    settings.set("level", 2);
    strictEqual(settings.get("level"), 2);
    deepStrictEqual([await a.execute("return settings.level"), await b.execute("return options.level")], [2, 2]);
    settings.set("added", "new");
    strictEqual(await b.execute("return options.added"), "new");
    // Changes to the object get returns reach Lua at sync.
    (settings.get("config") as { debug: boolean }).debug = false;
    strictEqual(await a.execute("return settings.config.debug"), true);
    settings.sync();
    deepStrictEqual([await a.execute("return settings.config.debug"), await b.execute("return options.config.debug")], [
      false,
      false,
    ]);
    // Each context holds a copy: Lua's own writes stay in that context.
    await a.execute("settings.level = 99 mine = 'a only'");
    deepStrictEqual([await b.execute("return options.level"), settings.get("level")], [2, 2]);
    strictEqual(await b.execute("return mine"), undefined);
    // A context that replaced the table gets the field in a fresh one.
    await b.execute("options = nil");
    settings.set("level", 3);
    deepStrictEqual(await b.execute("return options"), { level: 3 });
    // A closed context is left out.
    a.close();
    settings.set("level", 4);
    strictEqual(await b.execute("return options.level"), 4);
    // The initial value was copied.
    const initial = { n: 1 };
    const copy = createSharedTable(initial);
    initial.n = 2;
    strictEqual(copy.get("n"), 1);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("addSearchPath finds a real module file; registerModule offers JavaScript functions", async () => {
  const dir = await tempFiles({ "greeting.lua": "return { hello = function(n) return 'hello ' .. n end }\n" });
  const lua = new Context();
  try {
    const missing = await lua.execute("local m = require('greeting') return m").then(() => undefined, (e) => e);
    strictEqual(missing?.constructor, LuaError);
    ok(missing.message.startsWith("chunk:1: module 'greeting' not found:\n"), missing.message);
    lua.addSearchPath(`${dir}/?.lua`);
    strictEqual(await lua.execute("return require('greeting').hello('lua')"), "hello lua");
    thrown(() => lua.addSearchPath(dir), TypeError, `a search path needs a '?' for the module name, got "${dir}"`);
    lua.registerModule("utils", {
      clamp: (x: number, min: number, max: number) => Math.min(Math.max(x, min), max),
      version: "1.2",
    });
    deepStrictEqual(await lua.execute("local u = require('utils') return { u.clamp(15, 0, 10), u.version }"), [
      10,
      "1.2",
    ]);
    lua.registerSource("twice", "return function(x) return x * 2 end", "@twice.lua");
    strictEqual(await lua.execute("return require('twice')(21)"), 42);
    thrown(() => lua.registerSource("broken", "return +"), LuaError, "broken:1: unexpected symbol near '+'");
  } finally {
    lua.close();
  }
});

Deno.test("a Context whose chunk sleeps leaves the event loop free", async () => {
  const lua = new Context();
  let ticks = 0;
  const interval = setInterval(() => ticks++, 20);
  try {
    const { value, ms } = await timed(() => lua.execute("sleep(0.3) return 'slept'"));
    strictEqual(value, "slept");
    ok(ms >= 295, `slept ${ms} ms`);
    ok(ticks >= 10, `the caller's timer ran ${ticks} times meanwhile`);
  } finally {
    clearInterval(interval);
    lua.close();
  }
});

Deno.test("call, callWith, setGlobal and getGlobal; a closed context refuses everything", async () => {
  const lua = new Context();
  await lua.execute("function greet(name) return 'hi ' .. name end counter = 3");
  strictEqual(await lua.call("greet", "ana"), "hi ana");
  strictEqual(await lua.callWith("greet", { timeout: 1000 }, "bo"), "hi bo");
  strictEqual(lua.getGlobal("counter"), 3);
  strictEqual(lua.getGlobal("undefined_global"), undefined);
  lua.setGlobal("counter", 4);
  strictEqual(await lua.execute("return counter"), 4);
  await failure(
    lua.call("counter"),
    LuaError,
    "no function 'counter' to call (the script defines no global function counter)",
  );
  lua.close();
  lua.close();
  const closed = "the context is closed";
  await failure(lua.execute("return 1"), Error, closed);
  await failure(lua.call("greet", "x"), Error, closed);
  await failure(
    lua.loadBytecode(new Uint8Array()),
    Error,
    "loadBytecode is refused: make the context with allowBytecode: true (only for trusted bytecode)",
  );
  thrown(() => lua.setGlobal("x", 1), Error, closed);
  thrown(() => lua.getGlobal("counter"), Error, closed);
  thrown(() => lua.gc("count"), Error, closed);
  thrown(() => lua.getMemoryUsage(), Error, closed);
  thrown(() => lua.compile("return 1"), Error, closed);
  thrown(() => lua.addSearchPath("./?.lua"), Error, closed);
  thrown(() => lua.registerModule("m", {}), Error, closed);
  thrown(() => lua.setHook(() => {}, { line: true }), Error, closed);
  thrown(() => lua.removeHook(), Error, closed);
});

Deno.test("a limit cannot be swallowed by pcall, and the context stays usable after it", async () => {
  const lua = new Context({ timeout: 100 });
  try {
    const swallow = "while true do pcall(function() while true do end end) end";
    await failure(lua.execute(swallow), Error, "timeout: the call ran longer than 100 ms");
    strictEqual(await lua.execute("local ok = pcall(error, 'x') return ok"), false);
  } finally {
    lua.close();
  }
});

Deno.test("each context has its own actors and mailbox; closing it ends its actors and lets the program end", async () => {
  const dir = await tempFiles({
    "echo.lua": "while true do local m = mailbox() if m == nil then return end m.from.send(m.text) end",
  });
  // Before, every context shared one mailbox, and an actor left running held the program open for ever.
  const { code, stdout, stderr } = await within(
    runProgram(
      `
    import { Context } from "MOD";
    const a = new Context();
    const b = new Context();
    // A sleeper keeps b going a while; then nothing can send to b (it has no actors): a deadlock.
    const bReads = b.execute("go(function() sleep(0.3) end) return mailbox()", "=b").catch((e) => e.message);
    await a.execute('self().send("for a")');
    console.log(await a.execute("return mailbox()"), "|", await bReads);
    console.log(await a.execute('local e = spawn("${dir}/echo.lua") e.send({ from = self(), text = "echoed" }) return mailbox()'));
    a.close();
    b.close();
    console.log("closed");`,
      ["-A"],
    ),
    20_000,
    "the program with two contexts",
  );
  strictEqual(stderr, "");
  strictEqual(
    stdout,
    "for a | all goroutines are asleep - deadlock!\n\ngoroutine 2 [call]: mailbox at b:1\nechoed\nclosed\n",
  );
  strictEqual(code, 0);
});

Deno.test("a context's stdout sink gets what its actors print, theirs too, and none of it reaches standard output", async () => {
  const dir = await tempFiles({
    "child.lua": 'print("from the actor") print("grandchild:", spawn("grandchild.lua").wait()) return "child done"',
    "grandchild.lua": 'io.write("from the grandchild\\n") return "ok"',
  });
  // A child process: its own standard output must not get the actors' lines.
  const { code, stdout, stderr } = await runProgram(
    `import { Context } from "MOD";
let printed = "";
const lua = new Context({
  scriptPath: "${dir}/main.lua",
  stdout: { write: (bytes) => void (printed += new TextDecoder().decode(bytes)), flush() {} },
});
await lua.execute('print("from the context") print("actor:", spawn("child.lua").wait())');
lua.close();
console.log(JSON.stringify(printed));`,
    ["-A"],
  );
  strictEqual(stderr, "");
  strictEqual(
    stdout,
    JSON.stringify("from the context\nfrom the actor\nfrom the grandchild\ngrandchild:\tok\nactor:\tchild done\n") +
      "\n",
  );
  strictEqual(code, 0);
});

Deno.test("a context's stderr sink gets what its actors write to io.stderr and their goroutines' error reports", async () => {
  const dir = await tempFiles({
    "child.lua": 'io.stderr:write("warning from the actor\\n") go(function() error("boom", 0) end) sleep(0.05)',
  });
  // A child process: its own standard error must not get the actors' lines (they went there, past the sink).
  const { code, stdout, stderr } = await runProgram(
    `import { Context } from "MOD";
let errors = "";
const lua = new Context({ scriptPath: "${dir}/main.lua", stderr: (text) => void (errors += text) });
await lua.execute('spawn("child.lua").wait()');
lua.close();
console.log(JSON.stringify(errors));`,
    ["-A"],
  );
  strictEqual(stderr, "");
  strictEqual(
    stdout,
    JSON.stringify(
      `warning from the actor\nerror in actor 1 (${dir}/child.lua), goroutine 1: boom\nstack traceback:\n` +
        `\t[C]: in function 'error'\n\t${dir}/child.lua:1: in function <${dir}/child.lua:1>\n`,
    ) + "\n",
  );
  strictEqual(code, 0);
});

Deno.test("several calls wait in mailbox() at once: each message goes to one of them, and an aborted one takes none", async () => {
  const dir = await tempFiles({ "twice.lua": 'sleep(0.2) parent().send("first") parent().send("second")' });
  // Before, the mailbox kept one waiter: each new one replaced the last, which then never returned.
  const { code, stdout, stderr } = await runProgram(
    `
    import { Context } from "MOD";
    const lua = new Context();
    const hung = setTimeout(() => (console.log("a call never returned"), Deno.exit(3)), 5000);
    await lua.execute('spawn("${dir}/twice.lua")');
    const controller = new AbortController();
    const aborted = lua.execute("return mailbox()", "=c", { signal: controller.signal }).catch((e) => e.message);
    const a = lua.execute("return mailbox()");
    const b = lua.execute("return mailbox()");
    controller.abort();
    console.log(await aborted, "|", await a, await b);
    clearTimeout(hung);
    lua.close();`,
    ["-A"],
  );
  strictEqual(stderr, "");
  strictEqual(stdout, "the call was aborted | first second\n");
  strictEqual(code, 0);
});

Deno.test("a supervisor that fails in a context is reported as an actor's failure is (on_error, else stderr); the context goes on", async () => {
  const dir = await tempFiles({ "crash.lua": "error('child crashed')" });
  const start =
    `sup = supervise{ max_restarts = 1, within = 5, children = { { name = "worker", script = "${dir}/crash.lua" } } }`;
  const failed =
    `supervisor 1 failed: child 'worker' failed more than 1 times within 5 s (last error: ${dir}/crash.lua:1: child crashed)`;
  const { code, stdout, stderr } = await within(
    runProgram(
      `
    import { Context } from "MOD";
    const until = async (lua, check) => { while (!(await lua.execute(check))) await new Promise((r) => setTimeout(r, 20)); };
    const handled = new Context();
    await handled.execute('reports = {} on_error(function(e) reports[#reports + 1] = e end)');
    await handled.execute(${JSON.stringify(start)});
    await until(handled, "return #reports > 0");
    console.log(await handled.execute("return table.concat(reports, '|')"), "/", await handled.execute("return 2 + 2"));
    const plain = new Context();
    await plain.execute(${JSON.stringify(start)});
    await until(plain, "return sup.children()[1].state == 'failed'");
    console.log(await plain.execute("return 'still usable'"));
    handled.close();
    plain.close();`,
      ["-A"],
    ),
    20_000,
    "the program whose supervisors fail",
  );
  strictEqual(stdout, `${failed} / 4\nstill usable\n`);
  strictEqual(stderr, `error in supervisor 1: ${failed}\n`);
  strictEqual(code, 0);
});

Deno.test("without allowBytecode Lua's own load, loadfile, dofile and require refuse bytecode too", async () => {
  const dir = await tempFiles({});
  const source = `
    local dumped = string.dump(function() return "ran bytecode" end)
    local f = io.open("${dir}/mod.lua", "wb") f:write(dumped) f:close()
    package.path = "${dir}/?.lua"
    local function try(fn, ...) local ok, a, b = pcall(fn, ...) return tostring(a) .. " " .. tostring(b) end
    return table.concat({
      try(load, dumped), try(loadfile, "${dir}/mod.lua"), try(dofile, "${dir}/mod.lua"), try(require, "mod"),
      try(load("return 1 + 1")),
    }, "\\n")`;
  const refused = "attempt to load a binary chunk (mode is 't')";
  const strict = new Context();
  const trusting = new Context({ allowBytecode: true });
  try {
    strictEqual(
      await strict.execute(source),
      [
        `nil ${refused}`,
        `nil ${refused}`,
        `${refused} nil`,
        `error loading module 'mod' from file '${dir}/mod.lua':\n\t${refused} nil`,
        "2 nil",
      ].join("\n"),
    );
    strictEqual(
      await trusting.execute(`return (load(string.dump(function() return "ran bytecode" end))())`),
      "ran bytecode",
    );
  } finally {
    strict.close();
    trusting.close();
  }
});

Deno.test("without allowBytecode, bad arguments to load, loadfile and dofile name the function and the caller's line, as in lua5.4", async () => {
  for (const options of [{}, { solvm: false }]) {
    const lua = new Context(options);
    try {
      const bad = (call: string, n: number, expected: string, got: string) =>
        failure(
          lua.execute(call, "@app.lua"),
          LuaError,
          `app.lua:1: bad argument #${n} to '${call.slice(0, call.indexOf("("))}' (${expected} expected, got ${got})`,
        );
      await bad("load()", 1, "function", "no value");
      await bad("load({})", 1, "function", "table");
      await bad("load('return 1', {})", 2, "string", "table");
      await bad("loadfile({})", 1, "string", "table");
      await bad("dofile({})", 1, "string", "table");
      strictEqual(
        await lua.execute("return select(2, pcall(load, true))"),
        "bad argument #1 to 'load' (function expected, got boolean)",
      );
      // Good arguments still load, with an environment when one is given.
      strictEqual(await lua.execute("return load('return x', 'c', 't', { x = 5 })()"), 5);
      strictEqual(await lua.execute("return load(coroutine.wrap(function() coroutine.yield('return 7') end))()"), 7);
      // As lua5.4: a number is text to load, a mode without "t" refuses text, a reader's bad piece is at the caller.
      strictEqual(await lua.execute("return select(2, load(42))"), `[string "42"]:1: unexpected symbol near '42'`);
      strictEqual(await lua.execute("return select('#', load('return 1'))"), 1);
      strictEqual(
        await lua.execute("return select(2, load('return 1', 'c', 'b'))"),
        "attempt to load a text chunk (mode is 'b')",
      );
      strictEqual(
        await lua.execute("return select(2, load(function() return {} end))", "@app.lua"),
        "app.lua:1: reader function must return a string",
      );
      await bad("load('return 1', 'c', {})", 3, "string", "table");
    } finally {
      lua.close();
    }
  }
});

Deno.test("a finalizer that runs as the context closes cannot leave a timer or a watcher behind", async () => {
  const lua = new Context();
  const seen: string[] = [];
  lua.setGlobal("report", (line: string) => void seen.push(line));
  await lua.execute(`
    kept = setmetatable({}, { __gc = function()
      local ok, e = pcall(set_interval, function() end, 0.5) report("set_interval " .. tostring(ok) .. " " .. e)
      ok, e = pcall(watch_file, ".", function() end) report("watch_file " .. tostring(ok) .. " " .. e)
    end })`);
  lua.close();
  deepStrictEqual(seen, [
    "set_interval false the engine is closed: it takes no new timers or cron jobs",
    "watch_file false watch_file: the engine is closed",
  ]);
});

Deno.test("a call ended while it waits for standard input loses nothing: the next read gets the line", async () => {
  const dir = await tempFiles({
    "program.ts": `import { Context } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const ctx = new Context();
await ctx.execute("function rd() return io.read('l') end");
const ended = await ctx.callWith("rd", { timeout: 200 }).catch((e) => e.message);
console.log(ended);
console.log(await ctx.callWith("rd", { timeout: 5000 }));
console.log(await ctx.execute("local r table.sort({ 2, 1 }, function(a, b) r = r or io.read('l') return a < b end) return r"));
ctx.close();
`,
  });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", new URL("../deno.json", import.meta.url).pathname, `${dir}/program.ts`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await sleep(1000); // after the first call has timed out, waiting for input
  await writer.write(new TextEncoder().encode("one\ntwo\n"));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  strictEqual(new TextDecoder().decode(stderr), "");
  strictEqual(new TextDecoder().decode(stdout), "timeout: the call ran longer than 200 ms\none\ntwo\n");
  strictEqual(code, 0);
});

Deno.test("reload_script() in a Context is an error the script can catch: nothing would start it again, so the context goes on", async () => {
  const lua = new Context();
  try {
    strictEqual(
      await lua.execute("return select(2, pcall(reload_script))"),
      "reload_script: a library Context has no script to reload",
    );
    strictEqual(await lua.execute("return 1 + 1"), 2);
  } finally {
    lua.close();
  }
});

Deno.test("contexts made and closed in a loop that never yields are freed by the collector, not held to the task's end", async () => {
  const { stdout, stderr } = await runProgram(
    `import { Context } from "MOD";
const gc = (globalThis as unknown as { gc: () => void }).gc;
const batch = () => {
  for (let i = 0; i < 50; i++) new Context().close();
  gc();
};
batch();
batch();
const before = Deno.memoryUsage().rss;
for (let i = 0; i < 4; i++) batch();
console.log(Math.round((Deno.memoryUsage().rss - before) / 2 ** 20));
`,
    ["-A", "--v8-flags=--expose-gc"],
  );
  strictEqual(stderr, "");
  // Before, each engine's files family kept a WeakRef to it, which holds its engine until the task ends: the
  // collector could free none of them, +100 MiB over the last 200 (now within a few MiB).
  const grown = Number(stdout);
  ok(grown < 40, `200 closed contexts, collected every 50, grew the process by ${grown} MiB`);
});

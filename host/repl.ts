/**
 * The interactive loop of `solvm` without a script: evaluates lines, prints
 * the values of expressions, continues incomplete chunks on the next line
 * and keeps state between lines. `exit` or end of input ends it.
 *
 * @module
 */
import { CallStopped, type Engine } from "../runtime/engine.ts";
import type { LineInterrupt } from "./_interrupt.ts";
import { LUA_TSTRING } from "../runtime/lua.ts";
import { closeAfter, reportOutcome } from "./script.ts";
import meta from "../deno.json" with { type: "json" };

// Runs a chunk and prints what it returns, as Lua's own REPL does; called unnamed, so tracebacks say "in main chunk".
const SHOW_RESULTS = `local r = table.pack((...)())
if r.n > 0 then print(table.unpack(r, 1, r.n)) end`;

/**
 * Reads standard input line by line through Lua's own `io.stdin:read("L")`,
 * so the REPL and the script share one buffer: after `x = io.read()`, the
 * next line goes to x, as on a terminal.
 */
async function* lines(engine: Engine): AsyncGenerator<string> {
  const { vm, L } = engine;
  // io.stdin:read, not io.read: that reads the current default input, which the script may set to a file.
  vm.api.lua_getglobal(L, vm.cstr("io"));
  vm.api.lua_getfield(L, -1, vm.cstr("stdin"));
  const stdin = vm.ref(L);
  vm.pushRef(L, stdin);
  vm.api.lua_getfield(L, -1, vm.cstr("read"));
  const read = vm.ref(L);
  vm.api.lua_settop(L, -3);
  while (true) {
    let line;
    try {
      line = await engine.call((T) => {
        vm.pushRef(T, read);
        vm.pushRef(T, stdin);
        vm.pushString(T, "L");
        return 2;
      }, (ok, T, at) => {
        if (!ok) throw new Error(`reading standard input: ${vm.toText(T, at)}`);
        return vm.api.lua_type(T, at) === LUA_TSTRING ? vm.toText(T, at) : undefined;
      });
    } catch (e) {
      // The engine stopped (os.exit, a limit), before or while it waited: the input ends, runRepl says why.
      if (e instanceof CallStopped) return;
      throw e;
    }
    if (line === undefined) return;
    yield line.replace(/\r?\n$/, "");
  }
}

/**
 * Runs the REPL until `exit` or end of input, then closes `engine`; returns the exit code. `interrupt` (Ctrl-C)
 * stops the line running, as lua5.4's "interrupted!", and the session goes on.
 */
export async function runRepl(engine: Engine, interrupt?: LineInterrupt): Promise<number> {
  const { vm, L } = engine;
  const interactive = Deno.stdin.isTerminal();
  const prompt = (text: string) => {
    if (!interactive) return;
    engine.stdout.write(new TextEncoder().encode(text));
    engine.stdout.flush();
  };
  if (interactive) {
    engine.stdout.write(
      new TextEncoder().encode(`SolVM ${meta.version} (Lua 5.4). Type exit or press Ctrl-D to leave.\n`),
    );
  }
  const showFailure = vm.load(L, SHOW_RESULTS, "=[solvm] repl");
  if (showFailure) throw new Error(showFailure);
  const show = vm.ref(L);
  const input = lines(engine);
  let chunk = "";
  prompt("> ");
  while (true) {
    const next = await input.next();
    if (next.done) {
      if (interactive && !engine.stopped) engine.stdout.write(new TextEncoder().encode("\n")); // after Ctrl-D
      break;
    }
    const line = next.value;
    if (chunk === "" && line.trim() === "exit") break;
    // "=x" is "return x", as lua5.4's REPL still reads it.
    chunk = chunk === "" ? line.replace(/^=/, "return ") : chunk + "\n" + line;
    // An expression first (so "1 + 1" prints 2), then a statement.
    let failure = vm.load(L, "return " + chunk, "=stdin");
    if (failure) failure = vm.load(L, chunk, "=stdin");
    if (failure && failure.endsWith("<eof>")) {
      prompt(">> ");
      continue;
    }
    chunk = "";
    if (failure) engine.reportError(failure);
    else {
      vm.pushRef(L, show);
      vm.api.lua_rotate(L, -2, 1);
      interrupt?.begin();
      let outcome;
      try {
        outcome = await engine.spawnWatched("repl", 1, { interruption: interrupt });
      } finally {
        interrupt?.end(); // from now on Ctrl-C ends the session, as at lua5.4's prompt
      }
      if (engine.stopped) break;
      if (outcome.status !== "ok") reportOutcome(engine, outcome);
    }
    engine.stdout.flush();
    prompt("> ");
  }
  // os.exit or a limit (--max-instructions) in a line, a goroutine or a timer stops the engine, and the session.
  const outcome = engine.stopped ?? { status: "ok" };
  const code = reportOutcome(engine, outcome);
  // As lua5.4's REPL closes its state at its end: files written out, popen files pclosed, finalizers run.
  return await closeAfter(engine, outcome) ?? code;
}

/**
 * The interactive loop of `solvm` without a script: evaluates lines, prints
 * the values of expressions, continues incomplete chunks on the next line
 * and keeps state between lines. `exit` or end of input ends it.
 *
 * @module
 */
import type { Engine } from "../runtime/engine.ts";
import { reportOutcome } from "./script.ts";
import meta from "../deno.json" with { type: "json" };

// Runs a chunk and prints what it returns, as Lua's own REPL does.
const SHOW_RESULTS = `local chunk = ...
local r = table.pack(chunk())
if r.n > 0 then print(table.unpack(r, 1, r.n)) end`;

/** Reads standard input line by line. */
async function* lines(): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const bytes of Deno.stdin.readable) {
    pending += decoder.decode(bytes, { stream: true });
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl).replace(/\r$/, "");
      pending = pending.slice(nl + 1);
    }
  }
  if (pending) yield pending;
}

/** Runs the REPL until `exit` or end of input; returns the exit code. */
export async function runRepl(engine: Engine): Promise<number> {
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
  const showFailure = vm.load(L, SHOW_RESULTS, "=repl");
  if (showFailure) throw new Error(showFailure);
  engine.markInternal("repl");
  const show = vm.ref(L);
  // There is no script to run again: reload_script() would stop the engine and leave the REPL deaf.
  engine.setGlobal("reload_script", () => {
    throw new Error("reload_script: the REPL has no script to reload");
  });
  // os.exit from a goroutine or timer ends the REPL at once, not when the next line arrives.
  const stopped = engine.whenStopped().then((outcome) => ({ done: true as const, stopped: outcome }));
  const input = lines();
  let chunk = "";
  prompt("> ");
  while (true) {
    const next = await Promise.race([input.next(), stopped]);
    if ("stopped" in next) return next.stopped.status === "exit" ? next.stopped.code : 1;
    if (next.done) break;
    const line = next.value;
    if (chunk === "" && line.trim() === "exit") return 0;
    chunk = chunk === "" ? line : chunk + "\n" + line;
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
      const outcome = await engine.spawnWatched("repl", 1);
      if (outcome.status === "exit") return outcome.code;
      if (outcome.status !== "ok") reportOutcome(engine, outcome);
    }
    engine.stdout.flush();
    prompt("> ");
  }
  if (interactive) engine.stdout.write(new TextEncoder().encode("\n"));
  return 0;
}

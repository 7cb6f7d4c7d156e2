/**
 * Running a script file: reading it, the `arg` table, and turning how the
 * main goroutine ended into an exit code and a message on stderr.
 *
 * @module
 */
import type { Engine, Outcome } from "../runtime/engine.ts";
import { installFamily, type RunContext } from "../runtime/family.ts";
import { core } from "./core.ts";
import { concurrency } from "./concurrency.ts";
import { json } from "./json.ts";
import { timers } from "./timers.ts";
import { files } from "./files.ts";
import { standardStreams } from "./stdio.ts";
import { modules } from "./modules.ts";
import { debugging, fileReturns } from "./debug.ts";
import { fileErrorReason } from "./filesystem.ts";
import { checkAccess } from "./_permissions.ts";
import { skipFilePreamble } from "../runtime/state.ts";
import { monitor } from "./monitor.ts";
import { httpServer } from "./http_server.ts";
import { sockets } from "./sockets.ts";
import { dns } from "./dns.ts";
import { httpClient } from "./http_client.ts";
import { closePipes, endPipes, processes } from "./process.ts";
import { actors } from "./actors.ts";

/** Exit code of a deadlock (as Go's runtime uses for fatal errors). */
export const EXIT_DEADLOCK = 2;
/** Exit code of a run past its time limit (as coreutils' timeout uses). */
export const EXIT_TIMEOUT = 124;

/**
 * Registers every family of Lua globals on `engine`.
 *
 * ```ts
 * import { Engine } from "../runtime/engine.ts";
 * import { installGlobals } from "./script.ts";
 * const engine = await Engine.create();
 * installGlobals(engine);
 * engine.close();
 * ```
 */
export function installGlobals(engine: Engine, context: RunContext = { loaded: new Set() }): void {
  for (
    const family of [
      core,
      concurrency,
      json,
      timers,
      files,
      standardStreams,
      modules,
      debugging,
      monitor,
      httpServer,
      httpClient,
      sockets,
      dns,
      processes,
      actors,
    ]
  ) {
    installFamily(engine, family, context);
  }
}

/** The script path that means standard input (`solvm - args...`, as `lua5.4 -`). */
const STDIN_SCRIPT = "-";

/** The canonical path, or `path` itself for what has none (a pipe like /dev/fd/63). */
function realPathOr(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/** Sets the global `arg` table as the standalone Lua interpreter does. */
function setArgTable(engine: Engine, script: string, args: string[]): void {
  const { vm, L } = engine;
  vm.api.lua_createtable(L, args.length, 2);
  vm.pushString(L, "solvm");
  vm.api.lua_rawseti(L, -2, -1n);
  vm.pushString(L, script);
  vm.api.lua_rawseti(L, -2, 0n);
  args.forEach((a, i) => {
    vm.pushString(L, a);
    vm.api.lua_rawseti(L, -2, BigInt(i + 1));
  });
  vm.api.lua_setglobal(L, vm.cstr("arg"));
}

/**
 * Turns an outcome into an exit code, reporting failures on stderr.
 */
export function reportOutcome(engine: Engine, outcome: Outcome): number {
  switch (outcome.status) {
    case "ok":
      return 0;
    case "exit":
      return outcome.code;
    case "error":
      engine.reportError(outcome.traceback || outcome.message);
      return 1;
    case "deadlock":
      engine.reportError(`all goroutines are asleep - deadlock!\n\n${outcome.report}`);
      return EXIT_DEADLOCK;
    case "reload":
      return 0;
    case "closed":
      return 1;
    case "timeout":
      engine.reportError(outcome.message);
      return EXIT_TIMEOUT;
  }
}

/** How {@linkcode runScriptFile} runs. */
export interface ScriptFileOptions {
  /** Makes a fresh engine: the first run and every reload get a new Lua state. */
  newEngine: () => Promise<Engine>;
  /**
   * Told of each file the run loads (`solvm --watch`): the CLI watches them, and on a change starts the
   * script again in a new thread, as it alone can stop one stuck in a loop that never yields.
   */
  onLoaded?: (path: string) => void;
  /** A run started again after a change (`--watch`): a script briefly missing (git checkout) is waited for. */
  reload?: boolean;
  /**
   * Runs once the main chunk has ended well, in its Lua state, instead of
   * waiting for what it left running (`solvm -i script.lua`: the REPL);
   * ends the engine and gives the exit code.
   */
  afterMainChunk?: (engine: Engine) => Promise<number>;
}

/** Runs the main script once in `engine`: the main chunk, then whatever it left running. */
async function runOnce(
  engine: Engine,
  path: string,
  source: Uint8Array,
  args: string[],
  untilIdle = true,
): Promise<Outcome> {
  setArgTable(engine, path, args);
  const outcome = await engine.execute(source, path === STDIN_SCRIPT ? "=stdin" : "@" + path, args);
  if (outcome.status !== "ok" || !untilIdle) return outcome;
  await engine.idle();
  return engine.stopped ?? outcome;
}

/** The files a run loads (the script, its modules); with `--watch` each is told as it first is. */
export class LoadedFiles extends Set<string> {
  constructor(private readonly onLoaded?: (path: string) => void) {
    super();
  }

  override add(path: string): this {
    if (!this.has(path)) this.onLoaded?.(path);
    return super.add(path);
  }
}

/**
 * Runs the script at `path` to the end: the main chunk, then whatever it
 * left running (goroutines with pending calls, timers, servers). A
 * `reload_script()` call starts it again in a fresh Lua state. Returns the
 * process exit code.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { Engine } from "../runtime/engine.ts";
 * import { denoFileSystem } from "./filesystem.ts";
 * import { runScriptFile } from "./script.ts";
 * const path = await Deno.makeTempFile({ suffix: ".lua" });
 * await Deno.writeTextFile(path, "go(function() sleep(0.01) end) wait()");
 * const code = await runScriptFile(path, [], { newEngine: () => Engine.create({ files: denoFileSystem() }) });
 * strictEqual(code, 0);
 * await Deno.remove(path);
 * ```
 */
export async function runScriptFile(path: string, args: string[], options: ScriptFileOptions): Promise<number> {
  // Standard input can be read only once: a reload_script() runs the text read then again.
  let stdinSource: Uint8Array | undefined;
  for (let run = 1;; run++) {
    const engine = await options.newEngine();
    let source: Uint8Array;
    try {
      // As lua5.4 - does; vm.load skips a #! line and a BOM only in "@file" chunks, and this one is "=stdin".
      if (path === STDIN_SCRIPT) {
        // Waiting for the script's text is not running it: the default time limit is suspended meanwhile.
        const release = engine.hold();
        try {
          source = stdinSource ??= skipFilePreamble(await new Response(Deno.stdin.readable).bytes());
        } finally {
          release();
        }
      } else {
        checkAccess("read", path);
        source = Deno.readFileSync(path);
      }
    } catch (e) {
      // Once watching, a script deleted and written again (git checkout, some editors) is waited for.
      const gone = options.onLoaded && (options.reload || run > 1) && e instanceof Deno.errors.NotFound;
      const reason = `${fileErrorReason(e, "read", path)}${gone ? "; waiting for it to come back" : ""}`;
      engine.reportError(`solvm: cannot read script "${path}": ${reason}`);
      engine.close();
      if (!gone) return 1;
      try {
        await fileReturns(path);
      } catch (e) {
        // A confined run may read its own folder only: it cannot watch for that folder to come back.
        engine.reportError(`solvm: cannot wait for script "${path}": ${e instanceof Error ? e.message : e}`);
        return 1;
      }
      continue;
    }
    const files = new LoadedFiles(options.onLoaded);
    files.add(realPathOr(path));
    installGlobals(engine, { mainScript: path, loaded: files, reloadable: options.afterMainChunk === undefined });
    const after = options.afterMainChunk;
    const outcome = await runOnce(engine, path, source, args, after === undefined);
    if (after && outcome.status === "ok") return await after(engine);
    if (outcome.status === "reload") {
      engine.close();
      continue;
    }
    const code = reportOutcome(engine, outcome);
    return await closeAfter(engine, outcome) ?? code;
  }
}

/**
 * Closes `engine` after its run (a script's, an actor's, the REPL's) ended
 * with `outcome`, as lua5.4 closes its state after the script ends or
 * fails and after `os.exit(code, true)`: first the popen files left open
 * are closed the pclose way; then the finalizers left run, and may call
 * `os.exit`. Returns the code such a call gave, which the run ends with.
 * After `os.exit(code)` without close, as lua5.4's C exit() does, files
 * are flushed and popen commands' input ends, and no finalizer runs.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { Engine } from "../runtime/engine.ts";
 * import { closeAfter, installGlobals } from "./script.ts";
 * const engine = await Engine.create();
 * installGlobals(engine);
 * const outcome = await engine.execute("KEEP = setmetatable({}, { __gc = function() os.exit(9) end })", "=example");
 * strictEqual(await closeAfter(engine, outcome), 9);
 * ```
 */
export async function closeAfter(engine: Engine, outcome: Outcome): Promise<number | undefined> {
  const closesState = outcome.status === "ok" || outcome.status === "error" ||
    (outcome.status === "exit" && outcome.close === true);
  const exits = outcome.status === "exit" && !closesState;
  if (closesState) await closePipes(engine);
  // As C's exit() after os.exit(code): files flushed, popen commands' input ended (they run on), no finalizer runs.
  else if (exits) await endPipes(engine);
  engine.close({ finalizers: !exits });
  return closesState ? engine.exitWhileClosing : undefined;
}

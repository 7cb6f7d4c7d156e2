/**
 * One CLI run: the script (or the REPL) with the CLI's limits, in whatever
 * thread the CLI chose (its worker, host/worker.ts, or its own thread when
 * it cannot start one).
 *
 * @module
 */
import { Engine } from "../runtime/engine.ts";
import { installGlobals, runScriptFile } from "./script.ts";
import { runRepl } from "./repl.ts";
import { denoFileSystem } from "./filesystem.ts";
import { type DenyLists, setDenied } from "./_permissions.ts";
import { configureActors } from "./actors.ts";
import { watchCommands } from "./process.ts";
import { setDnsServerVariable } from "./dns.ts";
import type { ThreadMaker } from "./_actor_system.ts";
import type { LineInterrupt } from "./_interrupt.ts";
import { LOG_LEVELS, type LogLevel, setLogLevel } from "../runtime/log.ts";
import { type OutputSink, prefixedOutput, prefixedText } from "../runtime/output.ts";

/** What the CLI asks to run. */
export interface RunRequest {
  /** Script path, or undefined for the REPL. */
  script?: string;
  /** `-i`: the REPL after the script's main chunk, in its state (as lua5.4 -i). */
  repl?: boolean;
  args: string[];
  /** `--watch`: tell `RunHooks.onLoaded` of each file the script loads (the CLI reloads when one changes). */
  watch: boolean;
  /** A `--watch` run started again after a change (a script briefly missing is waited for). */
  reload?: boolean;
  /** Bytes of memory each Lua state may use. */
  maxMemory: number;
  /** Goroutines started by `go` that may be alive at once. */
  maxGoroutines: number;
  /** Actors alive at once in the run (the root counts; see host/_actor_system.ts). */
  maxActors?: number;
  /** Lua VM instructions a run may execute, or undefined for no limit. */
  maxInstructions?: number;
  /** What `--deny-<kind>=...` flags refuse (see host/_permissions.ts). */
  deny: DenyLists;
  /** SOLVM_LOG as the CLI read it. */
  logLevel?: string;
  /** SOLVM_DNS_SERVER as the CLI read it (see host/dns.ts). */
  dnsServer?: string;
  /** Put before each line of output, when several scripts run at once. */
  label?: string;
}

/** A time limit the run enforces itself (when no worker can be stopped from outside). */
export interface TimeLimit {
  ms: number;
  /** The message of the timeout outcome. */
  message: string;
  /** False for the default limit, suspended while a server, interval or listener is active. */
  always: boolean;
}

/** Where a run's output and resident count go, and the limit it keeps itself. */
export interface RunHooks {
  stdout: OutputSink;
  onResidentChange?: (count: number) => void;
  timeLimit?: TimeLimit;
  /** How actor threads are made (by the CLI's thread, for a confined worker). */
  threads?: ThreadMaker;
  /** Told of the process group of each command (os.execute, io.popen) as it starts and once it exited. */
  onCommand?: (group: number, running: boolean) => void;
  /** Told of each file a `watch` run loads (the script, its modules). */
  onLoaded?: (path: string) => void;
  /** Ctrl-C, which stops the REPL's line running (the CLI's thread asks). */
  interrupt?: LineInterrupt;
}

/**
 * Runs `request` to its end; returns the exit code.
 *
 * ```ts ignore
 * import { runRequest } from "./run.ts";
 * const code = await runRequest(
 *   { script: "examples/hello.lua", args: [], watch: false, maxMemory: 64 << 20, maxGoroutines: 1000, deny: {} },
 *   { stdout: { write: (b) => void Deno.stdout.writeSync(b), flush: () => {} } },
 * );
 * ```
 */
export async function runRequest(request: RunRequest, hooks: RunHooks): Promise<number> {
  setDenied(request.deny);
  watchCommands(hooks.onCommand);
  if (LOG_LEVELS.includes(request.logLevel as LogLevel)) setLogLevel(request.logLevel as LogLevel);
  setDnsServerVariable(request.dnsServer);
  configureActors({
    threads: hooks.threads,
    label: request.label,
    rules: {
      deny: request.deny,
      maxMemory: request.maxMemory,
      maxGoroutines: request.maxGoroutines,
      maxActors: request.maxActors,
      maxInstructions: request.maxInstructions,
      dnsServer: request.dnsServer,
    },
  });
  const stdout = request.label ? prefixedOutput(hooks.stdout, request.label) : hooks.stdout;
  const stderr = request.label ? prefixedText(request.label) : undefined;
  const limit = hooks.timeLimit;
  // One clock for the whole run, as the CLI's own timer keeps in a worker: a reload (a new engine) does not reset it.
  let deadline = limit ? performance.now() + limit.ms : 0;
  const newEngine = async () => {
    const arm = (engine: Engine) => engine.setDeadline(deadline, limit!.message);
    // onResidentChange runs only once the script starts a server or interval, after create returns.
    const engine: Engine = await Engine.create({
      stdout,
      stderr: stderr?.write,
      files: denoFileSystem(),
      maxMemory: request.maxMemory,
      maxGoroutines: request.maxGoroutines,
      maxInstructions: request.maxInstructions,
      deadlines: limit !== undefined,
      onResidentChange: (n) => {
        hooks.onResidentChange?.(n);
        if (!limit || limit.always) return;
        if (n > 0) engine.setDeadline(undefined);
        else {
          deadline = performance.now() + limit.ms; // the default limit starts again once nothing is resident
          arm(engine);
        }
      },
    });
    if (limit) arm(engine);
    return engine;
  };
  let exit: number;
  if (request.script === undefined) {
    const engine = await newEngine();
    installGlobals(engine);
    exit = await runRepl(engine, hooks.interrupt);
  } else {
    const onLoaded = request.watch ? hooks.onLoaded : undefined;
    const afterMainChunk = request.repl ? (engine: Engine) => runRepl(engine, hooks.interrupt) : undefined;
    exit = await runScriptFile(request.script, request.args, {
      newEngine,
      onLoaded,
      reload: request.reload,
      afterMainChunk,
    });
  }
  stdout.flush();
  stderr?.end();
  return exit;
}

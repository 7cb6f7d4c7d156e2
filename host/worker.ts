/**
 * The worker that runs one script (or the REPL) for the CLI. Running the
 * script off the CLI's thread lets the CLI stop it at any moment, even in
 * the middle of a loop that never yields, at no cost while it runs.
 *
 * Protocol: the CLI posts one {@linkcode WorkerRequest}; the worker answers
 * with `{ exit: code }` when the run is over.
 *
 * @module
 */
import { Engine } from "../runtime/engine.ts";
import { sharedOutput } from "../runtime/output.ts";
import { installGlobals, runScriptFile } from "./script.ts";
import { runRepl } from "./repl.ts";
import { denoFileSystem } from "./filesystem.ts";

/** What the CLI asks the worker to run. */
export interface WorkerRequest {
  /** Script path, or undefined for the REPL. */
  script?: string;
  args: string[];
  /** Reload when the script or an imported module changes. */
  watch: boolean;
  /** Bytes of memory each Lua state may use. */
  maxMemory: number;
  /** Goroutines started by `go` that may be alive at once. */
  maxGoroutines: number;
  /** Lua VM instructions a run may execute, or undefined for no limit. */
  maxInstructions?: number;
  /** Standard output buffer shared with the CLI (see runtime/output.ts). */
  output: SharedArrayBuffer;
  /** Int32 slot 0: how many resident sources (servers, intervals, ...) are active. */
  control: SharedArrayBuffer;
}

/** The worker's answer. */
export interface WorkerReply {
  exit: number;
}

const scope = self as unknown as {
  onmessage: (e: MessageEvent<WorkerRequest>) => void;
  postMessage(message: WorkerReply): void;
};

scope.onmessage = async ({ data }) => {
  const resident = new Int32Array(data.control);
  const stdout = sharedOutput(data.output);
  const newEngine = () =>
    Engine.create({
      stdout,
      files: denoFileSystem(),
      maxMemory: data.maxMemory,
      maxGoroutines: data.maxGoroutines,
      maxInstructions: data.maxInstructions,
      onResidentChange: (n) => {
        Atomics.store(resident, 0, n);
        Atomics.notify(resident, 0);
      },
    });
  let exit: number;
  if (data.script === undefined) {
    const engine = await newEngine();
    installGlobals(engine);
    exit = await runRepl(engine);
  } else exit = await runScriptFile(data.script, data.args, { newEngine, watch: data.watch });
  stdout.flush();
  scope.postMessage({ exit });
};

/**
 * The worker that runs one script (or the REPL) for the CLI. Running the
 * script off the CLI's thread lets the CLI stop it at any moment, even in
 * the middle of a loop that never yields, at no cost while it runs.
 *
 * Protocol: the CLI posts one {@linkcode WorkerRequest}; the worker answers
 * with `{ exit: code }` when the run is over. Before the CLI ends the worker
 * by force it may post {@linkcode FlushFiles}, answered once the script's
 * open files are written out (see host/files.ts). Meanwhile it may ask the CLI
 * for actor threads (`{ actorThread, port, output }`, `{ endActorThread }`): a
 * confined worker could not load their module itself. With `watch`, it
 * tells the CLI of each file the script loads (`{ loaded }`), which the
 * CLI watches to replace the worker on a change. It records each
 * running command's process group in `commands`, memory it shares with
 * the CLI, which kills them when a time limit or a signal stops the
 * worker; actor threads do the same, and add their resident sources into
 * `control` as the script does (see host/_resident.ts).
 *
 * @module
 */
import { sharedOutput } from "../runtime/output.ts";
import { type RunRequest, runRequest } from "./run.ts";
import { flushOpenFiles, trackOpenFiles } from "./files.ts";
import { RunningCommands } from "./_process_group.ts";
import { ResidentShare } from "./_resident.ts";
import { LineInterrupt } from "./_interrupt.ts";

/** What the CLI asks the worker to run. */
export interface WorkerRequest extends RunRequest {
  /** Standard output buffer shared with the CLI (see runtime/output.ts). */
  output: SharedArrayBuffer;
  /** Int32 slot 0: how many resident sources (servers, intervals, ...) are active, summed over every Lua thread. */
  control: SharedArrayBuffer;
  /** The process groups of the script's running commands (see host/_process_group.ts). */
  commands: SharedArrayBuffer;
  /** For the REPL: the state of its line, which the CLI's Ctrl-C asks to stop (see host/_interrupt.ts). */
  interrupt?: SharedArrayBuffer;
}

/** Asks a Lua thread (the script's or an actor's) to write out its open files; answered with `{ filesFlushed }`. */
export interface FlushFiles {
  flushFiles: true;
}

/** The worker's messages to the CLI. */
export type WorkerReply =
  | { exit: number }
  | { filesFlushed: true }
  | { actorThread: number; port: MessagePort; output: SharedArrayBuffer }
  | { endActorThread: number }
  | { loaded: string };

const scope = self as unknown as {
  onmessage: (e: MessageEvent<WorkerRequest | FlushFiles>) => void;
  postMessage(message: WorkerReply, transfer?: Transferable[]): void;
};

// This thread may be ended by force: its Lua files are written out first when asked (FlushFiles).
trackOpenFiles();

scope.onmessage = async ({ data }) => {
  if ("flushFiles" in data) {
    flushOpenFiles();
    return scope.postMessage({ filesFlushed: true });
  }
  const resident = new ResidentShare(data.control);
  const commands = new RunningCommands(data.commands);
  const exit = await runRequest(data, {
    stdout: sharedOutput(data.output),
    onResidentChange: (n) => resident.set(n),
    threads: (id, output) => {
      const { port1, port2 } = new MessageChannel();
      scope.postMessage({ actorThread: id, port: port2, output }, [port2]);
      return { port: port1, terminate: () => scope.postMessage({ endActorThread: id }) };
    },
    onCommand: (group, running) => commands.record(group, running),
    onLoaded: (path) => scope.postMessage({ loaded: path }),
    interrupt: data.interrupt && new LineInterrupt(data.interrupt),
  });
  scope.postMessage({ exit });
};

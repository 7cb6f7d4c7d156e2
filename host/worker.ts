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
import { sharedOutput } from "../runtime/output.ts";
import { type RunRequest, runRequest } from "./run.ts";

/** What the CLI asks the worker to run. */
export interface WorkerRequest extends RunRequest {
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
  const exit = await runRequest(data, {
    stdout: sharedOutput(data.output),
    onResidentChange: (n) => {
      Atomics.store(resident, 0, n);
      Atomics.notify(resident, 0);
    },
  });
  scope.postMessage({ exit });
};

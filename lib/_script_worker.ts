/**
 * A worker thread of a {@linkcode WorkerPool}: builds the script from its
 * blueprint and runs `main` for each request.
 *
 * @module
 */
import { parentPort } from "node:worker_threads";
import { Script, ScriptModule } from "./script.ts";
import type { Blueprint, PoolReply, PoolRequest } from "./_worker_pool.ts";
import type { OutputSink } from "../runtime/output.ts";

const scope = parentPort as unknown as {
  on(event: "message", listener: (data: PoolRequest) => void): void;
  postMessage(message: PoolReply, transfer?: ArrayBuffer[]): void;
};

let blueprint: Blueprint;
/** The script runs use; undefined until one loads (a run that finds none tries again). */
let script: Script | undefined;
/** Runs in flight by script: a script replaced by a load is closed once its own have ended. */
const inFlight = new Map<Script, number>();
const aborts = new Map<number, AbortController>();

function build({ name, source, modules, options, relayOutput, relayErrors }: Blueprint): Script {
  const attached = modules.map((m) =>
    new ScriptModule({ script: Script.fromString(m.scriptName, m.source), name: m.name })
  );
  return Script.fromString(name, source, ...attached, {
    ...options,
    stdout: relayOutput ? relayedOutput : undefined,
    stderr: relayErrors ? (errors) => scope.postMessage({ errors }) : undefined,
  });
}

/** Output kept until the engine flushes it (before it waits, as a run ends) or it fills a buffer, then posted to the pool's stdout sink. */
let pendingOutput: Uint8Array[] = [];
let pendingBytes = 0;
const RELAY_BUFFER = 1 << 16;
const relayedOutput: OutputSink = {
  write(bytes) {
    pendingOutput.push(bytes.slice()); // a view of the Lua state's memory
    if ((pendingBytes += bytes.length) >= RELAY_BUFFER) this.flush();
  },
  flush() {
    if (pendingOutput.length === 0) return;
    const output = new Uint8Array(pendingOutput.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of pendingOutput) output.set(c, (at += c.length) - c.length);
    pendingOutput = [];
    pendingBytes = 0;
    scope.postMessage({ output }, [output.buffer]);
  },
};

/** Closes `old` unless runs use it or it is still the current script (closing at once would fail those queued in its pool). */
function closeIfDone(old: Script): void {
  if (old !== script && !inFlight.has(old)) old.close();
}

scope.on("message", (data) => {
  switch (data.type) {
    case "load": {
      const previous = script;
      blueprint = data.blueprint;
      script = undefined;
      try {
        script = build(blueprint);
      } catch {
        // The next run tries again and fails with the reason, as the engine pool's runs do.
      }
      if (previous) closeIfDone(previous);
      return;
    }
    case "abort":
      return aborts.get(data.id)?.abort();
    case "run": {
      const { id } = data;
      const fail = (e: { name?: string; message?: string; traceback?: string }) =>
        scope.postMessage({
          id,
          ok: false,
          error: { name: e?.name ?? "Error", message: e?.message ?? String(e), traceback: e?.traceback },
        });
      let current: Script;
      try {
        current = script ??= build(blueprint);
      } catch (e) {
        return fail(e as Error);
      }
      const controller = new AbortController();
      aborts.set(id, controller);
      inFlight.set(current, (inFlight.get(current) ?? 0) + 1);
      current.runWith({ signal: controller.signal, timeout: data.timeout }, ...data.args).then(
        (value) => {
          try {
            scope.postMessage({ id, ok: true, value });
          } catch { // the worker lives on; a Lua function is the one value read from Lua that cannot be copied
            fail(
              new TypeError("main's result cannot leave its worker (results must be plain data): it holds a function"),
            );
          }
        },
        fail,
      ).finally(() => {
        aborts.delete(id);
        const left = inFlight.get(current)! - 1;
        if (left > 0) return void inFlight.set(current, left);
        inFlight.delete(current);
        closeIfDone(current);
      });
    }
  }
});

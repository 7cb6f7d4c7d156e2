/**
 * A worker thread of a {@linkcode WorkerPool}: builds the script from its
 * blueprint and runs `main` for each request.
 *
 * @module
 */
import { Script, ScriptModule } from "./script.ts";
import type { PoolReply, PoolRequest } from "./_worker_pool.ts";

const scope = self as unknown as {
  onmessage: (e: MessageEvent<PoolRequest>) => void;
  postMessage(message: PoolReply): void;
};

let script: Script | undefined;
const aborts = new Map<number, AbortController>();

scope.onmessage = ({ data }) => {
  switch (data.type) {
    case "load": {
      const { name, source, modules, options } = data.blueprint;
      const attached = modules.map((m) =>
        new ScriptModule({ script: Script.fromString(m.name, m.source), name: m.name })
      );
      const previous = script;
      script = Script.fromString(name, source, ...attached, options);
      previous?.close();
      return;
    }
    case "abort":
      return aborts.get(data.id)?.abort();
    case "run": {
      const { id } = data;
      const controller = new AbortController();
      aborts.set(id, controller);
      const fail = (e: { name?: string; message?: string; traceback?: string }) =>
        scope.postMessage({
          id,
          ok: false,
          error: { name: e?.name ?? "Error", message: e?.message ?? String(e), traceback: e?.traceback },
        });
      script!.runWith({ signal: controller.signal, timeout: data.timeout }, ...data.args).then(
        (value) => {
          try {
            scope.postMessage({ id, ok: true, value });
          } catch (e) { // a function in the result, say: the worker lives on
            fail(new TypeError(`main's result cannot leave its worker (results must be plain data): ${e}`));
          }
        },
        fail,
      ).finally(() => aborts.delete(id));
    }
  }
};

/**
 * The worker threads of a {@linkcode Script} made with `workers`: each
 * holds the script's own pool of engines; runs go to the least busy one.
 *
 * A run that is aborted, or outlives its timeout, is asked to stop inside
 * its worker; if it has not ended a moment later (a loop that never yields
 * holds the worker's thread, so the request is never read), the worker is
 * terminated and replaced, and the runs it held fail.
 *
 * @module
 */
import type { CallOptions } from "./context.ts";
import type { ContextOptions } from "./context.ts";
import { LuaError } from "../runtime/errors.ts";
import { ByReference } from "../runtime/values.ts";
import type { OutputSink } from "../runtime/output.ts";
import { after } from "../runtime/_timer.ts";
// Not the web Worker: only this one can be unreferenced, so idle workers let the program end.
import { Worker } from "node:worker_threads";

/** The error types a run may reject with in a worker, made again on this side by name (as run() documents them). */
const ERROR_TYPES: Record<string, new (message: string) => Error> = { TypeError, RangeError };

/** What a worker needs to build the script's engines. */
export interface Blueprint {
  name: string;
  source: string;
  /** Script modules: the name `require` takes, and the name and source of the module's script. */
  modules: { name: string; scriptName: string; source: string }[];
  options: Omit<ContextOptions, "shared" | "stdout" | "stderr">;
  /** Send what the script prints back here (a stdout sink was given: a function cannot cross to a worker). */
  relayOutput: boolean;
  /** Send what it writes to stderr back here (a stderr function was given). */
  relayErrors: boolean;
}

/** Parent to worker. */
export type PoolRequest =
  | { type: "load"; blueprint: Blueprint }
  | { type: "run"; id: number; args: unknown[]; timeout?: number }
  | { type: "abort"; id: number };

/** Worker to parent. */
export type PoolReply =
  | { output: Uint8Array }
  | { errors: string }
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { name: string; message: string; traceback?: string } };

interface Member {
  worker: Worker;
  running: number;
  /** Why the worker died (it takes no more runs), once it has. */
  failure?: string;
}

/** How long a run asked to stop may take to end inside its worker before the worker is replaced. */
const STOP_GRACE_MS = 100;

/** Runs a script's `main` in worker threads. */
export class WorkerPool {
  readonly #members: Member[] = [];
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void; member: Member; forget: () => void }
  >();
  #next = 0;
  #closing = false;
  #blueprint: Blueprint;
  readonly #stdout?: OutputSink;
  readonly #stderr?: (text: string) => void;

  /** `sinks` receive what the workers print and write to stderr when the blueprint relays it. */
  constructor(size: number, blueprint: Blueprint, sinks: Pick<ContextOptions, "stdout" | "stderr"> = {}) {
    this.#blueprint = blueprint;
    this.#stdout = sinks.stdout;
    this.#stderr = sinks.stderr;
    for (let i = 0; i < size; i++) this.#members.push(this.#start());
  }

  /** A new worker, loaded with the current blueprint. */
  #start(): Member {
    const worker = new Worker(new URL("./_script_worker.ts", import.meta.url));
    const member: Member = { worker, running: 0 };
    worker.on("message", (reply: PoolReply) => this.#settle(reply));
    worker.on("error", (e: Error) => {
      member.failure = `worker failed: ${e.message}`;
      worker.terminate();
      this.#failAll(member, new Error(member.failure));
    });
    worker.unref(); // held only while it has runs (see run and #settle)
    worker.postMessage({ type: "load", blueprint: this.#blueprint } satisfies PoolRequest);
    return member;
  }

  /**
   * Terminates `member`'s worker, which did not end run `id` when asked,
   * and puts a fresh one in its place: run `id` fails with `message`, the
   * other runs it held with an error that says why.
   */
  #replace(member: Member, id: number, message: string): void {
    const at = this.#members.indexOf(member);
    if (at < 0) return;
    member.worker.terminate();
    const stopped = this.#pending.get(id);
    if (stopped) {
      this.#pending.delete(id);
      stopped.forget();
      stopped.reject(new Error(message));
    }
    this.#failAll(member, new Error(`stopped with its worker, which another run held (${message})`));
    if (!this.#closing) this.#members[at] = this.#start();
  }

  #settle(reply: PoolReply): void {
    if ("output" in reply) {
      // The worker flushed: its engine waits or its run ends, so this side's sink writes out too.
      this.#stdout?.write(reply.output);
      return this.#stdout?.flush();
    }
    if ("errors" in reply) return this.#stderr?.(reply.errors);
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    this.#pending.delete(reply.id);
    pending.forget();
    if (--pending.member.running === 0) {
      if (this.#closing) pending.member.worker.terminate();
      else pending.member.worker.unref(); // idle: it must not keep the program from ending
    }
    if (reply.ok) return pending.resolve(reply.value);
    const { name, message, traceback } = reply.error;
    pending.reject(name === "LuaError" ? new LuaError(message, traceback) : new (ERROR_TYPES[name] ?? Error)(message));
  }

  #failAll(member: Member, error: Error): void {
    for (const [id, pending] of this.#pending) {
      if (pending.member !== member) continue;
      this.#pending.delete(id);
      pending.forget();
      pending.reject(error);
    }
  }

  /** Runs `main(...args)` in the least busy worker. */
  run(args: unknown[], options: CallOptions): Promise<unknown> {
    if (options.signal?.aborted) return Promise.reject(new Error("the call was aborted"));
    const live = this.#members.filter((m) => m.failure === undefined);
    if (live.length === 0) return Promise.reject(new Error(this.#members[0].failure));
    const member = live.reduce((a, b) => (b.running < a.running ? b : a));
    if (holdsReference(args, new Set())) {
      return Promise.reject(new TypeError("byRef objects cannot go to workers: values are copied there"));
    }
    const id = ++this.#next;
    try {
      member.worker.postMessage({ type: "run", id, args, timeout: options.timeout } satisfies PoolRequest);
    } catch (e) {
      return Promise.reject(
        new TypeError(`arguments for workers must be copyable values: ${e instanceof Error ? e.message : e}`),
      );
    }
    if (member.running++ === 0) member.worker.ref(); // a run in flight keeps the program up until it answers
    const { signal, timeout } = options;
    let grace: ReturnType<typeof setTimeout> | undefined;
    // The worker's own check ends most runs; one that holds the worker's thread ends with the worker.
    const insist = (message: string) => {
      grace ??= setTimeout(() => this.#pending.has(id) && this.#replace(member, id, message), STOP_GRACE_MS);
    };
    const abort = () => {
      member.worker.postMessage({ type: "abort", id } satisfies PoolRequest);
      insist("the call was aborted");
    };
    const stopDeadline = timeout === undefined
      ? undefined
      : after(timeout, () => insist(`timeout: the call ran longer than ${timeout} ms`));
    // A long-lived signal must not collect one listener per finished run.
    const forget = () => {
      signal?.removeEventListener("abort", abort);
      stopDeadline?.();
      clearTimeout(grace);
    };
    signal?.addEventListener("abort", abort, { once: true });
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject, member, forget }));
  }

  /** Later runs use `blueprint`. */
  update(blueprint: Blueprint): void {
    this.#blueprint = blueprint;
    for (const { worker } of this.#members) worker.postMessage({ type: "load", blueprint } satisfies PoolRequest);
  }

  /** Stops each worker once its runs in flight have finished (as an engine of the in-process pool is). */
  close(): void {
    this.#closing = true;
    for (const member of this.#members) if (member.running === 0) member.worker.terminate();
  }
}

/** Whether `value` holds a {@linkcode ByReference}, which a copy would silently turn into a plain object. */
function holdsReference(value: unknown, seen: Set<object>): boolean {
  if (value === null || typeof value !== "object" || seen.has(value) || ArrayBuffer.isView(value)) return false;
  if (value instanceof ByReference) return true;
  seen.add(value);
  return Object.values(value).some((item) => holdsReference(item, seen));
}

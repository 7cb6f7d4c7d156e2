/**
 * Actors across threads: each actor is a script in its own Lua state in its
 * own worker. One thread, the root (the thread of the main script), keeps
 * the directory of actors; actor threads talk to it over one MessagePort
 * each. Two actors talk over a MessagePort of their own, which the root
 * makes when one first sends to the other: from then on their messages do
 * not wait for the root, whose Lua may be busy. Messages travel packed
 * into bytes (host/actors.ts packs them; nothing here looks inside),
 * batched: each turn of the event loop a thread fills one buffer per
 * destination and posts it transferred, not copied.
 *
 * @module
 */
import { log } from "../runtime/log.ts";
import { drainSharedOutput, newSharedOutput } from "../runtime/output.ts";
import { RunningCommands } from "./_process_group.ts";
import type { DenyLists } from "./_permissions.ts";

/** One Lua value packed into bytes (host/actors.ts packs and unpacks; this file only carries them). */
export type Packed = Uint8Array;

/** How an actor ended (`value` undefined: no result; `unfinished`: why, when it was ended by force before its script returned). */
export type Exit =
  | { ok: true; value?: Packed; stopped?: boolean; unfinished?: string }
  | { ok: false; error: string; traceback?: string };

/** Root to actor thread. */
type ToActor =
  | {
    t: "start";
    id: number;
    parent: number;
    path: string;
    args: Packed[];
    log: string;
    output: Output;
    rules: ActorRules;
  }
  | { t: "deliver"; chunks: Uint8Array[] }
  | { t: "stop" }
  | { t: "spawned"; req: number; id?: number; error?: string }
  | { t: "exit"; id: number; exit: Exit }
  /** The port to actor `peer` (shared by both ends), or none when `peer` has ended or never was. */
  | { t: "linked"; peer: number; port?: MessagePort }
  /** Actor `peer` sends nothing more through the root: what it sent over the port may now be read. */
  | { t: "cutover"; peer: number }
  /** Actor `peer` has ended: what is sent to it is dropped. */
  | { t: "unlinked"; peer: number };

/** Actor to actor, over the port of their link ("bye": the sender has ended, the port may close). */
type ToPeer = Extract<ToActor, { t: "deliver" | "stop" }> | { t: "bye" };

/** Actor thread to root. */
type ToRoot =
  /** Messages for actor `to` (0: the main script), until the link to it is made. */
  | { t: "send"; to: number; chunk: Uint8Array }
  | { t: "spawn"; req: number; path: string; args: Packed[] }
  /** `told`: the stop went over the link to `id`; the root only times its grace. */
  | { t: "stop"; id: number; told?: boolean }
  /** Asks for a port to actor `id`. */
  | { t: "link"; id: number }
  /** Passed on to actor `id`: this actor now sends to it over their port only. */
  | { t: "cutover"; id: number }
  | { t: "watch"; id: number }
  /** This actor packed a handle to actor `id` into a message: whoever gets it may ask for its end. */
  | { t: "shared"; id: number }
  /** This actor's Lua no longer holds the handle `spawn` gave it for actor `id` (collected). */
  | { t: "dropped"; id: number }
  /** The script has returned `value`; the actor lives on while what it started (its own actors) runs. */
  | { t: "returned"; value: Packed }
  /** What the actor printed, for the root's output (see Output.relay). */
  | { t: "output"; bytes: Uint8Array }
  /** What the actor wrote to standard error, for the root's (see Output.relayErrors). */
  | { t: "errors"; text: string }
  | { t: "done"; exit: Exit };

/** The limits and refusals of the run, which every actor of it keeps too. */
export interface ActorRules {
  /** What `--deny-<kind>=...` refuses (see host/_permissions.ts). */
  deny?: DenyLists;
  maxMemory?: number;
  maxGoroutines?: number;
  maxInstructions?: number;
  /** Actors alive at once in the whole run, nested ones included (the root counts; default {@linkcode DEFAULT_MAX_ACTORS}). */
  maxActors?: number;
  /** SOLVM_DNS_SERVER as the CLI read it (an actor's thread may not read the environment). */
  dnsServer?: string;
}

/** Actors alive at once unless the run says otherwise: each is a thread with its own V8 isolate, about 13 MB idle. */
export const DEFAULT_MAX_ACTORS = 256;

/** Where an actor's standard output goes: a buffer the root can still drain after ending the actor by force. */
export interface Output {
  buffer: SharedArrayBuffer;
  /** Put before each line when several scripts run at once. */
  label?: string;
  /** Send it to the root, which writes it to its engine's output (a library's `stdout` sink), not to standard output. */
  relay?: boolean;
  /** Send what it writes to standard error to the root too, for its engine's `stderr` (a library's sink). */
  relayErrors?: boolean;
}

/**
 * A growing run of bytes: the messages of one turn for one destination,
 * each framed as `[u32 length][packed value]`, or one packed value.
 */
export class ByteWriter {
  bytes = new Uint8Array(256);
  view = new DataView(this.bytes.buffer);
  length = 0;

  /** Makes room for `n` more bytes and returns where they go. */
  reserve(n: number): number {
    const at = this.length;
    if (at + n > this.bytes.length) {
      const bytes = new Uint8Array(Math.max(2 * this.bytes.length, at + n));
      bytes.set(this.bytes.subarray(0, at));
      this.bytes = bytes;
      this.view = new DataView(bytes.buffer);
    }
    this.length = at + n;
    return at;
  }

  // Each reserves first: reserve() may replace `bytes` and `view`.
  u8(v: number): void {
    const at = this.reserve(1);
    this.bytes[at] = v;
  }

  u32(v: number): void {
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
  }

  f64(v: number): void {
    const at = this.reserve(8);
    this.view.setFloat64(at, v, true);
  }

  i64(v: bigint): void {
    const at = this.reserve(8);
    this.view.setBigInt64(at, v, true);
  }

  raw(src: Uint8Array): void {
    const at = this.reserve(src.length);
    this.bytes.set(src, at);
  }

  /** Appends one framed message that `write` packs; if `write` throws, nothing is appended. */
  frame(write: (out: ByteWriter) => void): void {
    const start = this.reserve(4);
    try {
      write(this);
    } catch (e) {
      this.length = start;
      throw e;
    }
    this.view.setUint32(start, this.length - start - 4, true);
  }

  /** What was written (a view of this writer's buffer: use the writer no more). */
  done(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

/** Messages waiting for `mailbox()`, in chunks of framed messages; `stopped` once the actor was asked to stop. */
export class Inbox {
  #chunks: Uint8Array[] = [];
  /** The chunk being read, and where its next message starts. */
  #head = 0;
  #at = 0;
  /** Where messages to oneself are added: the writer behind the last chunk, if any. */
  #tail?: ByteWriter;
  /** Those waiting for mail, in the order they came (several goroutines, or calls, may wait at once). */
  #waiters = new Set<() => void>();
  stopped = false;

  /** The next message, or undefined when none is waiting. */
  take(): Packed | undefined {
    while (this.#head < this.#chunks.length) {
      const chunk = this.#chunks[this.#head];
      const at = this.#at;
      if (at < chunk.length) {
        const size = (chunk[at] | chunk[at + 1] << 8 | chunk[at + 2] << 16 | chunk[at + 3] << 24) >>> 0;
        this.#at = at + 4 + size;
        return chunk.subarray(at + 4, this.#at);
      }
      this.#head++;
      this.#at = 0;
      if (this.#head === this.#chunks.length) {
        this.#chunks = [];
        this.#head = 0;
        this.#tail = undefined;
      } else if (this.#head > 1024) {
        this.#chunks.splice(0, this.#head);
        this.#head = 0;
      }
    }
    return undefined;
  }

  /** Calls `wake` once, when a message arrives or the actor is asked to stop: every waiter is woken, first come first. */
  onArrival(wake: () => void): void {
    this.#waiters.add(wake);
  }

  /** Calls off `wake` (a waiter that stopped waiting): it is not called. */
  forget(wake: () => void): void {
    this.#waiters.delete(wake);
  }

  /** Adds chunks of framed messages. */
  put(chunks: Uint8Array[]): void {
    for (const c of chunks) if (c.length > 0) this.#chunks.push(c);
    this.#tail = undefined;
    this.#wake();
  }

  /** Adds the message `write` packs (one sent to oneself); if `write` throws, nothing is added. */
  add(write: (out: ByteWriter) => void): void {
    const tail = this.#tail ?? new ByteWriter();
    tail.frame(write);
    if (this.#tail) this.#chunks[this.#chunks.length - 1] = tail.done();
    else this.#chunks.push((this.#tail = tail).done());
    this.#wake();
  }

  stop(): void {
    this.stopped = true;
    this.#wake();
  }

  #wake(): void {
    if (this.#waiters.size === 0) return;
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const wake of waiters) wake();
  }
}

/**
 * How long a link must have sent nothing for a turn's first message to go
 * at once instead of at the turn's end; and how old a turn's batch may
 * grow before it goes (the clock is read every AGE_CHECK messages).
 */
const QUIET_MS = 1;
const AGE_CHECK = 16;

/** Messages written this turn, one {@linkcode ByteWriter} per destination. */
class Batches {
  #writers = new Map<number, ByteWriter>();
  #lastTaken = -Infinity;
  #startedAt = 0;
  #added = 0;

  /**
   * Appends a message for `to` (`write` packs it). Says when to send the
   * batch, since the turn may never end (a loop that never waits): "now"
   * when this first message of the turn finds the link quiet, or when the
   * batch has grown old; "soon" (at the end of the turn) for another first
   * message; undefined for the rest.
   */
  add(to: number, write: (out: ByteWriter) => void): "now" | "soon" | undefined {
    const first = this.#writers.size === 0;
    let writer = this.#writers.get(to);
    if (!writer) this.#writers.set(to, writer = new ByteWriter());
    try {
      writer.frame(write);
    } catch (e) {
      if (writer.length === 0) this.#writers.delete(to);
      throw e;
    }
    if (!first) {
      return ++this.#added % AGE_CHECK === 0 && performance.now() - this.#startedAt >= QUIET_MS ? "now" : undefined;
    }
    this.#added = 0;
    this.#startedAt = performance.now();
    return this.#startedAt - this.#lastTaken >= QUIET_MS ? "now" : "soon";
  }

  /** This turn's messages by destination; the next turn starts empty. */
  take(): [number, Uint8Array][] {
    this.#lastTaken = performance.now();
    const out: [number, Uint8Array][] = [];
    for (const [to, writer] of this.#writers) out.push([to, writer.done()]);
    this.#writers = new Map();
    return out;
  }
}

/** A thread's view of the actor system. */
export interface ActorLink {
  /** This thread's actor id (0 for the root). */
  readonly selfId: number;
  /** The spawner's id, or undefined for the root. */
  readonly parentId: number | undefined;
  /** Messages for this thread. */
  readonly inbox: Inbox;
  /** Starts an actor running `path` with `args`; resolves with its id. */
  spawn(path: string, args: Packed[]): Promise<number>;
  /** Sends actor `to` the message `write` packs (dropped if the actor has ended; nothing is sent if `write` throws). */
  send(to: number, write: (out: ByteWriter) => void): void;
  /** Asks actor `id` to stop (its mailbox() returns nil; past a grace period it is ended by force). */
  stop(id: number): void;
  /** Resolves once actor `id` has ended. */
  exitOf(id: number): Promise<Exit>;
  /** A handle to actor `id` was packed into a message: others may ask for its end from now on. */
  shared(id: number): void;
  /** This thread's Lua no longer holds a handle to actor `id`: an end nobody can ask for need not be kept. */
  dropped(id: number): void;
  /** Writes out what this thread's script printed; called before its messages (or a stop) leave, lest they overtake it. */
  flushOutput: () => void;
}

/** Time a stopped actor gets to end by itself before it is ended by force. */
export const STOP_GRACE_MS = 1000;

/** Something that carries messages to one thread. */
interface Channel {
  postMessage(message: unknown, transfer?: Transferable[]): void;
}

/**
 * Makes the thread for a new actor, which prints into `output` (a thread's
 * maker that ends it by force writes out what is left there), and returns
 * the port to talk to it, and how to end it by force.
 */
export type ThreadMaker = (id: number, output: SharedArrayBuffer) => { port: MessagePort; terminate: () => void };

/** The thread maker of the library: workers made here. */
export const directThreads: ThreadMaker = () => {
  const worker = new Worker(new URL("./actor_worker.ts", import.meta.url), { type: "module" });
  const commands = new RunningCommands();
  const { port1, port2 } = new MessageChannel();
  worker.postMessage({ port: port2, commands: commands.buffer }, [port2]);
  return {
    port: port1,
    terminate: () => {
      worker.terminate();
      commands.killAll();
    },
  };
};

/** The buffers of `chunks`, to transfer rather than copy them. */
const buffers = (chunks: Uint8Array[]): ArrayBuffer[] => chunks.map((c) => c.buffer as ArrayBuffer);

interface ActorRecord {
  id: number;
  path: string;
  parent: number;
  port: MessagePort;
  terminate: () => void;
  output: Output;
  exit?: Exit;
  waiters: ((exit: Exit) => void)[];
  watchers: Set<number>;
  /** The actors it has a port to. */
  links: Set<number>;
  stopTimer?: ReturnType<typeof setTimeout>;
  /** What its script returned, if it has: kept should the actor be ended by force. */
  returned?: Packed;
  /** A handle to it travelled in a message: its end is kept for whoever may ask. */
  shared?: boolean;
  /** Its spawner's Lua holds no handle to it any more (collected, or the spawner has ended). */
  dropped?: boolean;
}

/** The root: the directory of actors and the router of their messages. */
export class RootSystem implements ActorLink {
  readonly selfId = 0;
  readonly parentId = undefined;
  readonly inbox = new Inbox();
  readonly #actors = new Map<number, ActorRecord>();
  /** What the main script sent this turn. */
  readonly #batches = new Batches();
  #next = 0;
  /** Actors started and not yet ended, checked against `maxActors`. */
  #running = 0;
  #flushing = false;
  flushOutput = () => {};
  readonly #makeThread: ThreadMaker;
  readonly #logLevel: string;
  readonly #label?: string;
  readonly #rules: ActorRules;
  readonly #output?: (bytes: Uint8Array) => void;
  readonly #errors?: (text: string) => void;
  readonly #raiseLimit: string;

  /**
   * `label` goes before each line actors print (several scripts at once); `rules` bind every actor;
   * `output`, when given, writes what actors print (else they write to standard output themselves), and `errors`
   * what they write to standard error; `raiseLimit` tells how to raise `maxActors`, in the error past it.
   */
  constructor(
    makeThread: ThreadMaker,
    logLevel: string,
    label: string | undefined,
    rules: ActorRules,
    output?: (bytes: Uint8Array) => void,
    errors?: (text: string) => void,
    raiseLimit = "--max-actors",
  ) {
    this.#makeThread = makeThread;
    this.#logLevel = logLevel;
    this.#label = label;
    this.#rules = rules;
    this.#output = output;
    this.#errors = errors;
    this.#raiseLimit = raiseLimit;
  }

  spawn(path: string, args: Packed[], parent = 0): Promise<number> {
    // Checked here, where every spawn arrives (an actor's own come as messages): threads past it would exhaust memory.
    const limit = this.#rules.maxActors ?? DEFAULT_MAX_ACTORS;
    if (this.#running >= limit) {
      return Promise.reject(
        new Error(
          `spawn: too many actors alive at once (limit ${limit}; each runs in a thread of its own, about 13 MB; ` +
            `raise it with ${this.#raiseLimit})`,
        ),
      );
    }
    const id = ++this.#next;
    const output: Output = {
      buffer: newSharedOutput(this.#label !== undefined),
      label: this.#label,
      relay: this.#output !== undefined,
      relayErrors: this.#errors !== undefined,
    };
    let thread: ReturnType<ThreadMaker>;
    try {
      thread = this.#makeThread(id, output.buffer);
    } catch (e) {
      return Promise.reject(e);
    }
    const record: ActorRecord = {
      id,
      path,
      parent,
      port: thread.port,
      terminate: thread.terminate,
      output,
      waiters: [],
      watchers: new Set(parent === 0 ? [] : [parent]),
      links: new Set(),
    };
    this.#actors.set(id, record);
    this.#running++;
    thread.port.onmessage = ({ data }: MessageEvent<ToRoot>) => this.#fromActor(record, data);
    const start: ToActor = {
      t: "start",
      id,
      parent,
      path,
      args,
      log: this.#logLevel,
      output: record.output,
      rules: this.#rules,
    };
    thread.port.postMessage(start);
    log("info", `actor ${id} (${path}) started by ${parent === 0 ? "the main script" : `actor ${parent}`}`);
    return Promise.resolve(id);
  }

  #fromActor(record: ActorRecord, message: ToRoot): void {
    switch (message.t) {
      case "send":
        return this.#route(message.to, message.chunk);
      case "spawn":
        this.spawn(message.path, message.args, record.id).then(
          (id) => record.port.postMessage({ t: "spawned", req: message.req, id } satisfies ToActor),
          (e) => record.port.postMessage({ t: "spawned", req: message.req, error: String(e?.message ?? e) }),
        );
        return;
      case "stop":
        return this.stop(message.id, message.told);
      case "link":
        return this.#link(record, message.id);
      case "cutover":
        return this.#alive(message.id)?.port.postMessage({ t: "cutover", peer: record.id } satisfies ToActor);
      case "watch":
        return this.#watch(message.id, record);
      case "shared":
        return this.shared(message.id);
      case "dropped":
        return this.#dropped(message.id, record.id);
      case "returned":
        record.returned = message.value;
        return;
      case "output":
        return this.#output?.(message.bytes);
      case "errors":
        return this.#errors?.(message.text);
      case "done":
        return this.#ended(record, message.exit);
    }
  }

  #watch(id: number, by: ActorRecord): void {
    const target = this.#actors.get(id);
    const exit: Exit = target?.exit ?? (target ? undefined! : { ok: false, error: `no actor ${id}` });
    if (exit) return by.port.postMessage({ t: "exit", id, exit } satisfies ToActor);
    target!.watchers.add(by.id);
  }

  /** Gives actors `from` and `id` a port to each other (once per pair; none if `id` has ended). */
  #link(from: ActorRecord, id: number): void {
    const to = this.#alive(id);
    if (!to) return from.port.postMessage({ t: "linked", peer: id } satisfies ToActor);
    if (from.links.has(id)) return; // both asked at once: the first ask gave both their port
    from.links.add(id);
    to.links.add(from.id);
    const { port1, port2 } = new MessageChannel();
    to.port.postMessage({ t: "linked", peer: from.id, port: port2 } satisfies ToActor, [port2]);
    from.port.postMessage({ t: "linked", peer: id, port: port1 } satisfies ToActor, [port1]);
  }

  #ended(record: ActorRecord, exit: Exit): void {
    if (record.exit) return;
    record.exit = exit;
    this.#running--;
    clearTimeout(record.stopTimer);
    record.port.close();
    record.terminate();
    drainSharedOutput(record.output.buffer, this.#output); // what an actor ended by force had printed
    if (exit.ok) log("info", `actor ${record.id} (${record.path}) ended${exit.stopped ? " (stopped)" : ""}`);
    else log("warn", `actor ${record.id} (${record.path}) failed: ${exit.error}`);
    for (const waiter of record.waiters.splice(0)) waiter(exit);
    for (const watcher of record.watchers) {
      this.#actors.get(watcher)?.port.postMessage({ t: "exit", id: record.id, exit } satisfies ToActor);
    }
    for (const id of record.links) {
      const peer = this.#actors.get(id);
      peer?.links.delete(record.id);
      if (peer && !peer.exit) peer.port.postMessage({ t: "unlinked", peer: record.id } satisfies ToActor);
    }
    for (const child of this.#children(record.id)) {
      // One that failed or called os.exit leaves no orphans, which nothing could stop (supervisor restarts piled them up).
      this.stop(child.id);
      // Its Lua, which held the handles of the actors it started, is gone.
      this.#dropped(child.id, record.id);
    }
    this.#forgetIfUnasked(record);
  }

  shared(id: number): void {
    const record = this.#actors.get(id);
    if (record) record.shared = true;
  }

  dropped(id: number): void {
    this.#dropped(id, 0);
  }

  /** Actor `by` no longer holds a handle to actor `id`; only its spawner's counts (another got it in a message). */
  #dropped(id: number, by: number): void {
    const record = this.#actors.get(id);
    if (!record || record.parent !== by) return;
    record.dropped = true;
    this.#forgetIfUnasked(record);
  }

  /**
   * Forgets an ended actor whose end nobody can ask for any more: its
   * spawner dropped the only handle, which never travelled (ids are
   * learnt from spawn or from a message). A service that runs an actor
   * per job so keeps no result for ever.
   */
  #forgetIfUnasked(record: ActorRecord): void {
    if (record.exit && record.dropped && !record.shared) this.#actors.delete(record.id);
  }

  /** The actors that actor `id` started (and the root has not forgotten). */
  *#children(id: number): Generator<ActorRecord> {
    for (const child of this.#actors.values()) if (child.parent === id) yield child;
  }

  send(to: number, write: (out: ByteWriter) => void): void {
    if (to === 0) return this.inbox.add(write);
    const when = this.#batches.add(to, write);
    if (when === "now") this.#flush();
    else if (when === "soon") this.#flushSoon();
  }

  #flushSoon(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    this.#flushing = false;
    this.flushOutput();
    for (const [to, chunk] of this.#batches.take()) this.#route(to, chunk);
  }

  /** Delivers a chunk of messages to actor `to` at once (dropped if it has ended), or to the main script. */
  #route(to: number, chunk: Uint8Array): void {
    if (to === 0) return this.inbox.put([chunk]);
    this.#alive(to)?.port.postMessage({ t: "deliver", chunks: [chunk] } satisfies ToActor, buffers([chunk]));
  }

  #alive(id: number): ActorRecord | undefined {
    const record = this.#actors.get(id);
    return record && !record.exit ? record : undefined;
  }

  /** `told`: an actor has sent the stop over its link to `id`, after its messages. */
  stop(id: number, told = false): void {
    const record = this.#actors.get(id);
    if (!record || record.exit || record.stopTimer) return;
    this.#flush(); // what was sent before stop() arrives before it
    if (!told) record.port.postMessage({ t: "stop" } satisfies ToActor);
    // A spawner lives on while its actors run: they are asked to stop too, or it could never end.
    for (const child of this.#children(id)) this.stop(child.id);
    record.stopTimer = setTimeout(() => {
      log("warn", `actor ${id} (${record.path}) did not end within ${STOP_GRACE_MS} ms of stop(); ended by force`);
      const unfinished = `stopped: the actor did not end within ${STOP_GRACE_MS / 1000} s of stop()`;
      const { returned } = record;
      this.#ended(
        record,
        returned ? { ok: true, value: returned, stopped: true } : { ok: true, stopped: true, unfinished },
      );
    }, STOP_GRACE_MS);
  }

  exitOf(id: number): Promise<Exit> {
    const record = this.#actors.get(id);
    if (!record) return Promise.resolve({ ok: false, error: `no actor ${id}` });
    if (record.exit) return Promise.resolve(record.exit);
    return new Promise((resolve) => record.waiters.push(resolve));
  }

  /** Ends every actor (the root's run is over). */
  close(): void {
    for (const record of this.#actors.values()) {
      if (!record.exit) this.#ended(record, { ok: true, stopped: true });
    }
  }
}

/**
 * Another actor as an actor thread sees it. Until the root has made their
 * port, messages to it go through the root. Then each end tells the other,
 * through the root, that it has switched (a "cutover"); what arrives on the
 * port waits for that, so nothing overtakes what went the longer way.
 */
interface Peer {
  port?: MessagePort;
  /** What came over the port before the peer's cutover; undefined once it has come. */
  early?: ToPeer[];
  /** The actor has ended (or never was): what is sent to it is dropped. */
  gone?: boolean;
}

/** An actor thread's link: to the root for the directory, to other actors over ports the root makes. */
export class ActorThreadLink implements ActorLink {
  readonly inbox = new Inbox();
  readonly #port: MessagePort;
  readonly #spawns = new Map<number, { resolve: (id: number) => void; reject: (e: Error) => void }>();
  /** Ends known or waited for; `dropped`: forgotten once it comes (no handle asks for it any more). */
  readonly #exits = new Map<number, { exit?: Exit; waiters: ((exit: Exit) => void)[]; dropped?: boolean }>();
  /** Actors this one started whose handle its Lua may still hold, and those whose handles it has packed. */
  readonly #spawned = new Set<number>();
  readonly #sharedIds = new Set<number>();
  readonly #peers = new Map<number, Peer>();
  #nextRequest = 0;
  /** What this actor sent this turn. */
  readonly #batches = new Batches();
  flushOutput = () => {};

  constructor(port: MessagePort, readonly selfId: number, readonly parentId: number) {
    this.#port = port;
  }

  /** Handles what the root says after "start". */
  receive(message: ToActor): void {
    switch (message.t) {
      case "deliver":
      case "stop":
        return this.#fromPeer(message);
      case "spawned": {
        const pending = this.#spawns.get(message.req);
        this.#spawns.delete(message.req);
        if (message.id !== undefined) pending?.resolve(message.id);
        else pending?.reject(new Error(message.error));
        return;
      }
      case "exit": {
        const entry = this.#exits.get(message.id) ?? { waiters: [] };
        entry.exit = message.exit;
        this.#exits.set(message.id, entry);
        for (const waiter of entry.waiters.splice(0)) waiter(message.exit);
        if (entry.dropped) this.#exits.delete(message.id);
        return;
      }
      case "linked":
        return this.#linked(message.peer, message.port);
      case "cutover": {
        const peer = this.#peers.get(message.peer);
        const early = peer?.early ?? [];
        if (peer) peer.early = undefined;
        for (const m of early) this.#fromPeer(m, peer);
        return;
      }
      case "unlinked":
        this.#peer(message.peer).gone = true; // its port stays open for what it sent before it ended
    }
  }

  /** A message from the root, or from the port of `peer`. */
  #fromPeer(message: ToPeer, peer?: Peer): void {
    switch (message.t) {
      case "deliver":
        return this.inbox.put(message.chunks);
      case "stop":
        return this.inbox.stop();
      case "bye":
        peer?.port?.close();
    }
  }

  #linked(id: number, port: MessagePort | undefined): void {
    const peer = this.#peer(id);
    if (!port) {
      peer.gone = true;
      return;
    }
    peer.port = port;
    peer.early = [];
    port.onmessage = ({ data }: MessageEvent<ToPeer>) => {
      if (peer.early) peer.early.push(data);
      else this.#fromPeer(data, peer);
    };
    this.#port.postMessage({ t: "cutover", id } satisfies ToRoot);
  }

  /** The record of actor `id`, made on first use. */
  #peer(id: number): Peer {
    let peer = this.#peers.get(id);
    if (!peer) this.#peers.set(id, peer = {});
    return peer;
  }

  spawn(path: string, args: Packed[]): Promise<number> {
    const req = ++this.#nextRequest;
    this.#port.postMessage({ t: "spawn", req, path, args } satisfies ToRoot);
    return new Promise((resolve, reject) => this.#spawns.set(req, { resolve, reject })).then((id) => {
      // A child's end comes back without asking: the root watches children for their spawner.
      if (!this.#exits.has(id as number)) this.#exits.set(id as number, { waiters: [] });
      this.#spawned.add(id as number);
      return id as number;
    });
  }

  send(to: number, write: (out: ByteWriter) => void): void {
    if (to === this.selfId) return this.inbox.add(write);
    const when = this.#batches.add(to, write);
    if (when === "now") this.#flush();
    else if (when === "soon") queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    this.flushOutput();
    for (const [to, chunk] of this.#batches.take()) {
      const peer = to === 0 ? undefined : this.#peers.get(to);
      if (peer?.gone) continue;
      if (peer?.port) {
        this.#post(peer.port, { t: "deliver", chunks: [chunk] });
        continue;
      }
      if (to !== 0 && !peer) {
        this.#peer(to);
        this.#port.postMessage({ t: "link", id: to } satisfies ToRoot);
      }
      this.#port.postMessage({ t: "send", to, chunk } satisfies ToRoot, buffers([chunk]));
    }
  }

  #post(port: MessagePort, message: ToPeer): void {
    port.postMessage(message, message.t === "deliver" ? buffers(message.chunks) : []);
  }

  stop(id: number): void {
    this.#flush(); // what was sent before stop() arrives before it
    const port = this.#peers.get(id)?.port;
    if (port) this.#post(port, { t: "stop" });
    this.#port.postMessage({ t: "stop", id, told: port !== undefined } satisfies ToRoot);
  }

  exitOf(id: number): Promise<Exit> {
    let entry = this.#exits.get(id);
    if (entry?.exit) return Promise.resolve(entry.exit);
    if (!entry) {
      entry = { waiters: [] };
      this.#exits.set(id, entry);
      this.#port.postMessage({ t: "watch", id } satisfies ToRoot);
    }
    return new Promise((resolve) => entry!.waiters.push(resolve));
  }

  shared(id: number): void {
    if (this.#sharedIds.has(id)) return;
    this.#sharedIds.add(id);
    this.#port.postMessage({ t: "shared", id } satisfies ToRoot);
  }

  dropped(id: number): void {
    const entry = this.#exits.get(id);
    if (entry?.exit && entry.waiters.length === 0) this.#exits.delete(id);
    else if (entry) entry.dropped = true;
    if (this.#spawned.delete(id)) this.#port.postMessage({ t: "dropped", id } satisfies ToRoot);
  }

  /** Tells the root what the script returned, while the actor lives on for what it started. */
  returned(value: Packed): void {
    this.#port.postMessage({ t: "returned", value } satisfies ToRoot);
  }

  /** Sends what the actor wrote to standard error to the root (see Output.relayErrors). */
  errors(text: string): void {
    this.#port.postMessage({ t: "errors", text } satisfies ToRoot);
  }

  /** Sends what the actor printed to the root (see Output.relay); `bytes` is given up. */
  output(bytes: Uint8Array): void {
    this.#port.postMessage({ t: "output", bytes } satisfies ToRoot, [bytes.buffer as ArrayBuffer]);
  }

  /** Tells the root this actor has ended (pending sends go first), and every peer that its port may close. */
  done(exit: Exit): void {
    this.#flush();
    for (const peer of this.#peers.values()) if (peer.port) this.#post(peer.port, { t: "bye" });
    this.#port.postMessage({ t: "done", exit } satisfies ToRoot);
  }
}

export type { Channel, ToActor, ToRoot };

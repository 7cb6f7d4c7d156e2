/**
 * Actors across threads: each actor is a script in its own Lua state in its
 * own worker. One thread, the root (the thread of the main script), keeps
 * the directory of actors and routes every message; actor threads talk to it
 * over one MessagePort each. Messages travel in batches, one post per
 * destination per turn of the event loop.
 *
 * @module
 */
import { log } from "../runtime/log.ts";

/** A message as it travels: plain data only (see host/actors.ts for the Lua side). */
export type Wire =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | { t: [Wire, Wire][] } // a table
  | { h: number }; // an actor handle

/** How an actor ended. */
export type Exit =
  | { ok: true; value: Wire; stopped?: boolean }
  | { ok: false; error: string; traceback?: string };

/** Root to actor thread. */
type ToActor =
  | { t: "start"; id: number; parent: number; path: string; args: Wire[]; log: string }
  | { t: "deliver"; msgs: Wire[] }
  | { t: "stop" }
  | { t: "spawned"; req: number; id?: number; error?: string }
  | { t: "exit"; id: number; exit: Exit };

/** Actor thread to root. */
type ToRoot =
  | { t: "send"; items: [number, Wire][] }
  | { t: "spawn"; req: number; path: string; args: Wire[] }
  | { t: "stop"; id: number }
  | { t: "watch"; id: number }
  | { t: "done"; exit: Exit };

/** A thread's view of the actor system. */
export interface ActorLink {
  /** This thread's actor id (0 for the root). */
  readonly selfId: number;
  /** The spawner's id, or undefined for the root. */
  readonly parentId: number | undefined;
  /** Messages for this thread. */
  readonly inbox: Inbox;
  /** Starts an actor running `path` with `args`; resolves with its id. */
  spawn(path: string, args: Wire[]): Promise<number>;
  /** Sends `msg` to actor `to` (dropped if it has ended). */
  send(to: number, msg: Wire): void;
  /** Asks actor `id` to stop (its mailbox() returns nil; past a grace period it is ended by force). */
  stop(id: number): void;
  /** Resolves once actor `id` has ended. */
  exitOf(id: number): Promise<Exit>;
}

/** Messages waiting for `mailbox()`; `stopped` once the actor was asked to stop. */
export class Inbox {
  readonly #queue: Wire[] = [];
  #head = 0;
  #waiter?: () => void;
  stopped = false;

  /** The next message, or undefined when none is waiting. */
  take(): Wire | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const msg = this.#queue[this.#head];
    this.#queue[this.#head++] = null;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    return msg;
  }

  /** Resolves when a message arrives or the actor is asked to stop. */
  arrival(): Promise<void> {
    return new Promise((resolve) => this.#waiter = resolve);
  }

  put(msgs: Wire[]): void {
    for (const m of msgs) this.#queue.push(m);
    this.#wake();
  }

  stop(): void {
    this.stopped = true;
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}

/** Time a stopped actor gets to end by itself before it is ended by force. */
export const STOP_GRACE_MS = 1000;

/** Something that carries messages to one thread. */
interface Channel {
  postMessage(message: unknown, transfer?: Transferable[]): void;
}

/** Makes the thread for a new actor and returns the port to talk to it, and how to end it by force. */
export type ThreadMaker = (id: number) => { port: MessagePort; terminate: () => void };

/** The thread maker of the library: workers made here. */
export const directThreads: ThreadMaker = () => {
  const worker = new Worker(new URL("./actor_worker.ts", import.meta.url), { type: "module" });
  const { port1, port2 } = new MessageChannel();
  worker.postMessage({ port: port2 }, [port2]);
  return { port: port1, terminate: () => worker.terminate() };
};

interface ActorRecord {
  id: number;
  path: string;
  parent: number;
  port: MessagePort;
  terminate: () => void;
  exit?: Exit;
  waiters: ((exit: Exit) => void)[];
  watchers: Set<number>;
  outbox: Wire[];
  stopTimer?: ReturnType<typeof setTimeout>;
}

/** The root: the directory of actors and the router of their messages. */
export class RootSystem implements ActorLink {
  readonly selfId = 0;
  readonly parentId = undefined;
  readonly inbox = new Inbox();
  readonly #actors = new Map<number, ActorRecord>();
  #next = 0;
  #flushing = false;
  readonly #makeThread: ThreadMaker;
  readonly #logLevel: string;

  constructor(makeThread: ThreadMaker, logLevel: string) {
    this.#makeThread = makeThread;
    this.#logLevel = logLevel;
  }

  spawn(path: string, args: Wire[], parent = 0): Promise<number> {
    const id = ++this.#next;
    let thread: ReturnType<ThreadMaker>;
    try {
      thread = this.#makeThread(id);
    } catch (e) {
      return Promise.reject(e);
    }
    const record: ActorRecord = {
      id,
      path,
      parent,
      port: thread.port,
      terminate: thread.terminate,
      waiters: [],
      watchers: new Set(parent === 0 ? [] : [parent]),
      outbox: [],
    };
    this.#actors.set(id, record);
    thread.port.onmessage = ({ data }: MessageEvent<ToRoot>) => this.#fromActor(record, data);
    thread.port.postMessage({ t: "start", id, parent, path, args, log: this.#logLevel } satisfies ToActor);
    log("info", `actor ${id} (${path}) started by ${parent === 0 ? "the main script" : `actor ${parent}`}`);
    return Promise.resolve(id);
  }

  #fromActor(record: ActorRecord, message: ToRoot): void {
    switch (message.t) {
      case "send":
        for (const [to, msg] of message.items) this.send(to, msg);
        return;
      case "spawn":
        this.spawn(message.path, message.args, record.id).then(
          (id) => record.port.postMessage({ t: "spawned", req: message.req, id } satisfies ToActor),
          (e) => record.port.postMessage({ t: "spawned", req: message.req, error: String(e?.message ?? e) }),
        );
        return;
      case "stop":
        return this.stop(message.id);
      case "watch":
        return this.#watch(message.id, record);
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

  #ended(record: ActorRecord, exit: Exit): void {
    if (record.exit) return;
    record.exit = exit;
    clearTimeout(record.stopTimer);
    record.port.close();
    record.terminate();
    if (exit.ok) log("info", `actor ${record.id} (${record.path}) ended${exit.stopped ? " (stopped)" : ""}`);
    else log("warn", `actor ${record.id} (${record.path}) failed: ${exit.error}`);
    for (const waiter of record.waiters.splice(0)) waiter(exit);
    for (const watcher of record.watchers) {
      this.#actors.get(watcher)?.port.postMessage({ t: "exit", id: record.id, exit } satisfies ToActor);
    }
  }

  send(to: number, msg: Wire): void {
    if (to === 0) return this.inbox.put([msg]);
    const target = this.#actors.get(to);
    if (!target || target.exit) return;
    target.outbox.push(msg);
    if (!this.#flushing) {
      this.#flushing = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushing = false;
    for (const record of this.#actors.values()) {
      if (record.outbox.length === 0) continue;
      const msgs = record.outbox;
      record.outbox = [];
      if (!record.exit) record.port.postMessage({ t: "deliver", msgs } satisfies ToActor);
    }
  }

  stop(id: number): void {
    const record = this.#actors.get(id);
    if (!record || record.exit || record.stopTimer) return;
    record.port.postMessage({ t: "stop" } satisfies ToActor);
    record.stopTimer = setTimeout(() => {
      log("warn", `actor ${id} (${record.path}) did not end within ${STOP_GRACE_MS} ms of stop(); ended by force`);
      this.#ended(record, { ok: true, value: null, stopped: true });
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
      if (!record.exit) this.#ended(record, { ok: true, value: null, stopped: true });
    }
  }
}

/** An actor thread's link: everything goes through the root. */
export class ActorThreadLink implements ActorLink {
  readonly inbox = new Inbox();
  readonly #port: MessagePort;
  readonly #spawns = new Map<number, { resolve: (id: number) => void; reject: (e: Error) => void }>();
  readonly #exits = new Map<number, { exit?: Exit; waiters: ((exit: Exit) => void)[] }>();
  #nextRequest = 0;
  #outbox: [number, Wire][] = [];

  constructor(port: MessagePort, readonly selfId: number, readonly parentId: number) {
    this.#port = port;
  }

  /** Handles what the root says after "start". */
  receive(message: ToActor): void {
    switch (message.t) {
      case "deliver":
        return this.inbox.put(message.msgs);
      case "stop":
        return this.inbox.stop();
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
      }
    }
  }

  spawn(path: string, args: Wire[]): Promise<number> {
    const req = ++this.#nextRequest;
    this.#port.postMessage({ t: "spawn", req, path, args } satisfies ToRoot);
    return new Promise((resolve, reject) => this.#spawns.set(req, { resolve, reject })).then((id) => {
      // A child's end comes back without asking: the root watches children for their spawner.
      if (!this.#exits.has(id as number)) this.#exits.set(id as number, { waiters: [] });
      return id as number;
    });
  }

  send(to: number, msg: Wire): void {
    if (to === this.selfId) return this.inbox.put([msg]);
    if (this.#outbox.length === 0) queueMicrotask(() => this.#flush());
    this.#outbox.push([to, msg]);
  }

  #flush(): void {
    const items = this.#outbox;
    this.#outbox = [];
    this.#port.postMessage({ t: "send", items } satisfies ToRoot);
  }

  stop(id: number): void {
    this.#port.postMessage({ t: "stop", id } satisfies ToRoot);
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

  /** Tells the root this actor has ended (pending sends go first). */
  done(exit: Exit): void {
    if (this.#outbox.length > 0) this.#flush();
    this.#port.postMessage({ t: "done", exit } satisfies ToRoot);
  }
}

export type { Channel, ToActor, ToRoot };

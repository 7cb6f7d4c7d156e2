/**
 * The actors family: `spawn`, `mailbox`, `self`, `parent` and `supervise`.
 * An actor is a script in its own Lua state in its own worker, running in
 * parallel with the rest; messages are copied (host/_actor_system.ts
 * carries them between threads).
 *
 * @module
 */
import type { Engine, Pusher } from "../runtime/engine.ts";
import type { Family, RunContext } from "../runtime/family.ts";
import { argError, checkInteger, checkString, checkTable } from "../runtime/args.ts";
import { LUA_TBOOLEAN, LUA_TNIL, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE, type LuaState } from "../runtime/lua.ts";
import { log, logLevel } from "../runtime/log.ts";
import { type ActorLink, directThreads, type Exit, RootSystem, type ThreadMaker, type Wire } from "./_actor_system.ts";

let link: ActorLink | undefined;
let makeThread: ThreadMaker = directThreads;

/** Makes this thread an actor's (host/actor_worker.ts calls it before the script runs). */
export function setActorLink(actorLink: ActorLink): void {
  link = actorLink;
}

/** How the root makes actor threads (the CLI makes them in its own thread, with the script's permissions). */
export function setThreadMaker(maker: ThreadMaker): void {
  makeThread = maker;
}

/** This thread's link; the first use in a thread that is no actor makes it the root. */
function currentLink(): ActorLink {
  return link ??= new RootSystem(makeThread, logLevel());
}

/** Ends every actor of this thread's root (its run is over). */
export function closeActors(): void {
  if (link instanceof RootSystem) link.close();
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** An error for Lua at the position of the caller's caller: the family's functions are reached through Lua wrappers. */
function atCaller(e: unknown): never {
  throw Object.assign(e instanceof Error ? e : new Error(String(e)), { luaLevel: 2 });
}
const MAX_DEPTH = 100;

/** Copies Lua values into messages and back, for one engine. */
class Codec {
  constructor(readonly engine: Engine, readonly libRef: number) {}

  /** The value at `idx` as a message; throws for what cannot travel. */
  encode(L: LuaState, idx: number, seen = new Set<number>(), depth = 0): Wire {
    const { vm } = this.engine;
    const api = vm.api;
    const at = api.lua_absindex(L, idx);
    switch (api.lua_type(L, at)) {
      case LUA_TNIL:
        return null;
      case LUA_TBOOLEAN:
        return api.lua_toboolean(L, at) !== 0;
      case LUA_TNUMBER: {
        if (!api.lua_isinteger(L, at)) return api.lua_tonumberx(L, at, 0);
        const n = api.lua_tointegerx(L, at, 0);
        return n >= -9007199254740991n && n <= 9007199254740991n ? Number(n) : n;
      }
      case LUA_TSTRING: {
        const bytes = vm.viewBytes(L, at);
        try {
          return strictUtf8.decode(bytes);
        } catch {
          return bytes.slice();
        }
      }
      case LUA_TTABLE:
        return this.#encodeTable(L, at, seen, depth);
    }
    throw new Error(
      `cannot send a ${vm.typeName(L, at)}: messages carry strings, numbers, booleans, tables and actor handles`,
    );
  }

  #encodeTable(L: LuaState, at: number, seen: Set<number>, depth: number): Wire {
    const { vm } = this.engine;
    const api = vm.api;
    api.lua_checkstack(L, 6);
    if (api.lua_getmetatable(L, at)) {
      vm.pushRef(L, this.libRef);
      api.lua_getfield(L, -1, vm.cstr("Handle"));
      const isHandle = api.lua_rawequal(L, -1, -3);
      api.lua_settop(L, -4);
      if (isHandle) {
        api.lua_getfield(L, at, vm.cstr("id"));
        const id = Number(api.lua_tointegerx(L, -1, 0));
        api.lua_settop(L, -2);
        return { h: id };
      }
    }
    const pointer = api.lua_topointer(L, at);
    if (seen.has(pointer)) throw new Error("cannot send a table that contains itself (a cycle)");
    if (depth >= MAX_DEPTH) throw new Error(`cannot send tables nested more than ${MAX_DEPTH} deep`);
    seen.add(pointer);
    const entries: [Wire, Wire][] = [];
    api.lua_pushnil(L);
    while (api.lua_next(L, at)) {
      const keyType = api.lua_type(L, -2);
      if (keyType === LUA_TTABLE) {
        api.lua_settop(L, -3);
        throw new Error("cannot send a table with tables as keys");
      }
      entries.push([this.encode(L, -2, seen, depth + 1), this.encode(L, -1, seen, depth + 1)]);
      api.lua_settop(L, -2);
    }
    seen.delete(pointer);
    return { t: entries };
  }

  /** Pushes the Lua value of message `w`. */
  decode(L: LuaState, w: Wire): void {
    const { vm } = this.engine;
    const api = vm.api;
    if (w === null) return api.lua_pushnil(L);
    switch (typeof w) {
      case "boolean":
        return api.lua_pushboolean(L, w ? 1 : 0);
      case "number":
        if (Number.isInteger(w)) return api.lua_pushinteger(L, BigInt(w));
        return api.lua_pushnumber(L, w);
      case "bigint":
        return api.lua_pushinteger(L, w);
      case "string":
        return vm.pushString(L, w);
    }
    if (w instanceof Uint8Array) return vm.pushBytes(L, w);
    api.lua_checkstack(L, 4);
    if ("h" in w) {
      vm.pushRef(L, this.libRef);
      api.lua_getfield(L, -1, vm.cstr("handle"));
      api.lua_pushinteger(L, BigInt(w.h));
      api.lua_callk(L, 1, 1, 0, 0);
      api.lua_rotate(L, -2, 1);
      api.lua_settop(L, -2);
      return;
    }
    api.lua_createtable(L, 0, w.t.length);
    for (const [k, v] of w.t) {
      this.decode(L, k);
      this.decode(L, v);
      api.lua_rawset(L, -3);
    }
  }
}

const codecs = new WeakMap<Engine, Codec>();

/** The value at `idx` of `engine`'s state as a message (throws for what cannot travel). */
export function toMessage(engine: Engine, L: LuaState, idx: number): Wire {
  return codecs.get(engine)!.encode(L, idx);
}

/** Pushes message `w` as a Lua value on `engine`'s state. */
export function pushMessage(engine: Engine, L: LuaState, w: Wire): void {
  codecs.get(engine)!.decode(L, w);
}

/** A supervised child. */
interface Child {
  name: string;
  script: string;
  args: Wire[];
  id?: number;
  state: "running" | "restarting" | "stopped" | "done" | "failed";
  restarts: number;
}

const STRATEGIES = ["one_for_one", "one_for_all", "rest_for_one"] as const;

/** Restarts failed children per its strategy; past its restart intensity it fails itself. */
class Supervisor {
  readonly children: Child[];
  readonly #restarts: number[] = [];
  #stopped = false;
  readonly #release: () => void;

  constructor(
    readonly link: ActorLink,
    readonly strategy: typeof STRATEGIES[number],
    readonly maxRestarts: number,
    readonly withinMs: number,
    children: { name: string; script: string; args: Wire[] }[],
    readonly engine: Engine,
    readonly label: string,
  ) {
    this.children = children.map((c) => ({ ...c, state: "running", restarts: 0 }));
    // A supervisor is a service: like a server, it keeps the run going.
    this.#release = engine.hold();
  }

  async start(): Promise<void> {
    for (const child of this.children) await this.#launch(child);
  }

  async #launch(child: Child): Promise<void> {
    if (this.#stopped) return;
    const id = await this.link.spawn(child.script, child.args);
    child.id = id;
    child.state = "running";
    this.link.exitOf(id).then((exit) => this.#exited(child, id, exit));
  }

  #exited(child: Child, id: number, exit: Exit): void {
    if (this.#stopped || child.id !== id) return; // stopped on purpose, or already replaced
    if (exit.ok) {
      child.state = "done";
      if (this.children.every((c) => c.state === "done" || c.state === "stopped")) this.#release();
      return;
    }
    log("warn", `${this.label}: child '${child.name}' failed: ${exit.error}`);
    const now = performance.now();
    this.#restarts.push(now);
    while (this.#restarts.length > 0 && this.#restarts[0] < now - this.withinMs) this.#restarts.shift();
    if (this.#restarts.length > this.maxRestarts) {
      child.state = "failed";
      const message = `${this.label} failed: child '${child.name}' failed more than ${this.maxRestarts} times ` +
        `within ${this.withinMs / 1000} s (last error: ${exit.error})`;
      log("warn", message); // the run's own error report says it too
      this.stop();
      this.engine.halt({ status: "error", message, traceback: "" });
      return;
    }
    const at = this.children.indexOf(child);
    const affected = this.strategy === "one_for_one"
      ? [child]
      : this.strategy === "one_for_all"
      ? this.children
      : this.children.slice(at);
    for (const c of affected) {
      if (c !== child && c.id !== undefined && c.state === "running") this.link.stop(c.id);
      c.id = undefined;
      c.state = "restarting";
    }
    child.restarts++;
    for (const c of affected) if (c !== child) c.restarts++;
    log("info", `${this.label}: restarting ${affected.map((c) => `'${c.name}'`).join(", ")} (${this.strategy})`);
    (async () => {
      for (const c of affected) await this.#launch(c);
    })().catch((e) => this.engine.reportError(`${this.label}: cannot restart: ${e?.message ?? e}`));
  }

  /** Stops every child; the supervisor restarts nothing after. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const c of this.children) {
      if (c.id !== undefined && c.state === "running") this.link.stop(c.id);
      if (c.state !== "done" && c.state !== "failed") c.state = "stopped";
    }
    this.#release();
  }
}

// The Lua side: handles (one table per actor id while in use, with methods
// that take a dot or a colon), and the supervisor handles.
const ACTORS_LUA = `
local h = ...
local select, setmetatable = select, setmetatable
local Handle = { __name = "actor" }
Handle.__tostring = function(a) return "actor " .. a.id end
local Supervisor = { __name = "supervisor" }
Supervisor.__tostring = function(s) return "supervisor " .. s.id end
local handles = setmetatable({}, { __mode = "v" })
-- h.send(msg) and h:send(msg) both work.
local function method(self, fn)
  return function(...)
    if select("#", ...) > 0 and (...) == self then return fn(self.id, select(2, ...)) end
    return fn(self.id, ...)
  end
end
local function handle(id)
  local a = handles[id]
  if a == nil then
    a = setmetatable({ id = id }, Handle)
    a.send, a.stop, a.wait = method(a, h.send), method(a, h.stop), method(a, h.wait)
    handles[id] = a
  end
  return a
end
local lib = { handle = handle, Handle = Handle }
function lib.spawn(path, ...) return handle(h.spawn(path, ...)) end
function lib.self() return handle(h.self_id()) end
function lib.parent()
  local id = h.parent_id()
  if id ~= nil then return handle(id) end
end
lib.mailbox = h.mailbox
function lib.supervise(spec)
  local s = setmetatable({ id = h.supervise(spec) }, Supervisor)
  -- children(): { name, state, restarts, actor = handle (while it runs) } for each child, in order.
  s.children = method(s, function(id)
    local list = h.sup_children(id)
    for i = 1, #list do
      local c = list[i]
      if c.id ~= nil then c.actor, c.id = handle(c.id), nil end
    end
    return list
  end)
  s.stop = method(s, h.sup_stop)
  return s
end
return lib`;

/** Where a script path given to `spawn` is: as given, else beside the main script. */
function resolveScript(path: string, context: RunContext): string {
  const candidates = path.startsWith("/") ? [path] : [
    path,
    ...(context.mainScript ? [`${context.mainScript.slice(0, context.mainScript.lastIndexOf("/") + 1)}${path}`] : []),
  ];
  for (const candidate of candidates) {
    try {
      if (Deno.statSync(candidate).isFile) return Deno.realPathSync(candidate);
    } catch {
      // Try the next place.
    }
  }
  throw new Error(`spawn: no script '${path}' (looked in ${candidates.join(", ")})`);
}

/** The actors family's registration table. */
export const actors = (engine: Engine, context: RunContext): Family => {
  const { vm } = engine;
  const api = vm.api;
  const supervisors = new Map<number, Supervisor>();
  let nextSupervisor = 0;
  const codec = () => codecs.get(engine)!; // made once the Lua side exists, below
  const readArgs = (L: LuaState, from: number) => {
    const args: Wire[] = [];
    for (let i = from; i <= api.lua_gettop(L); i++) args.push(codec().encode(L, i));
    return args;
  };
  const pushExit = (exit: Exit): Pusher => (L) => {
    if (exit.ok) {
      codec().decode(L, exit.value);
      return 1;
    }
    api.lua_pushnil(L);
    vm.pushString(L, exit.error);
    return 2;
  };
  const helpers = {
    spawn: engine.blocking("spawn", (L) => {
      let path: string, args: Wire[];
      try {
        path = resolveScript(checkString(vm, L, 1, "spawn"), context);
        args = readArgs(L, 2);
      } catch (e) {
        atCaller(e);
      }
      const actors = currentLink();
      return actors.spawn(path, args).then((id) => {
        const release = engine.keepAlive();
        actors.exitOf(id).then((exit) => {
          release();
          // A failure never takes the spawner down: it goes to on_error (or stderr), and to wait().
          if (!exit.ok) {
            engine.reportFailure(`actor ${id} (${path})`, exit.error, exit.traceback || exit.error);
          }
        });
        return (L: LuaState) => (api.lua_pushinteger(L, BigInt(id)), 1);
      });
    }),
    send: (L: LuaState) => {
      const id = checkInteger(vm, L, 1, "send");
      if (api.lua_gettop(L) < 2) atCaller(argError(1, "send", "message expected"));
      let msg: Wire;
      try {
        msg = codec().encode(L, 2);
      } catch (e) {
        atCaller(e);
      }
      currentLink().send(id, msg);
      return 0;
    },
    stop: (L: LuaState) => {
      currentLink().stop(checkInteger(vm, L, 1, "stop"));
      return 0;
    },
    wait: engine.blocking("wait", (L) => {
      const id = checkInteger(vm, L, 1, "wait");
      return currentLink().exitOf(id).then(pushExit);
    }),
    // mailbox(): the next message; nil once the actor was asked to stop and its mail is read.
    mailbox: engine.blocking("mailbox", (L) => {
      const inbox = currentLink().inbox;
      const next = (): Pusher | undefined => {
        const msg = inbox.take();
        if (msg !== undefined) return (L) => (codec().decode(L, msg), 1);
        if (inbox.stopped) return (L) => (api.lua_pushnil(L), 1);
      };
      const now = next();
      if (now) return now(L);
      const waitForMail = (): Promise<Pusher> => inbox.arrival().then(() => next() ?? waitForMail());
      return waitForMail();
    }),
    self_id: (L: LuaState) => (api.lua_pushinteger(L, BigInt(currentLink().selfId)), 1),
    parent_id: (L: LuaState) => {
      const parent = currentLink().parentId;
      if (parent === undefined) api.lua_pushnil(L);
      else api.lua_pushinteger(L, BigInt(parent));
      return 1;
    },
    supervise: engine.blocking("supervise", (L) => {
      checkTable(vm, L, 1, "supervise");
      const spec = codec().encode(L, 1) as { t: [Wire, Wire][] };
      const field = (name: string) => spec.t.find(([k]) => k === name)?.[1];
      const strategy = field("strategy") ?? "one_for_one";
      if (!STRATEGIES.includes(strategy as typeof STRATEGIES[number])) {
        throw argError(1, "supervise", `strategy must be one of ${STRATEGIES.join(", ")}, got ${String(strategy)}`);
      }
      const maxRestarts = field("max_restarts") ?? 3;
      const within = field("within") ?? 5;
      if (typeof maxRestarts !== "number" || maxRestarts < 0 || typeof within !== "number" || within <= 0) {
        throw argError(1, "supervise", "max_restarts must be a number >= 0 and within a number of seconds > 0");
      }
      const list = field("children");
      if (!list || typeof list !== "object" || !("t" in list) || list.t.length === 0) {
        throw argError(1, "supervise", "children must be a list of { name = ..., script = ..., args = {...} }");
      }
      const children = list.t.map(([, child], i) => {
        const get = (name: string) =>
          child && typeof child === "object" && "t" in child ? child.t.find(([k]) => k === name)?.[1] : undefined;
        const name = get("name") ?? `child ${i + 1}`;
        const script = get("script");
        if (typeof script !== "string") throw argError(1, "supervise", `child ${i + 1} needs a script`);
        const args = get("args");
        return {
          name: String(name),
          script: resolveScript(script, context),
          args: args && typeof args === "object" && "t" in args ? args.t.map(([, v]) => v) : [],
        };
      });
      const id = ++nextSupervisor;
      const supervisor = new Supervisor(
        currentLink(),
        strategy as typeof STRATEGIES[number],
        maxRestarts,
        within * 1000,
        children,
        engine,
        `supervisor ${id}`,
      );
      supervisors.set(id, supervisor);
      return supervisor.start().then(() => (L: LuaState) => (api.lua_pushinteger(L, BigInt(id)), 1));
    }),
    sup_children: (L: LuaState) => {
      const supervisor = supervisors.get(checkInteger(vm, L, 1, "children"))!;
      vm.pushValue(
        L,
        supervisor.children.map((c) => ({ name: c.name, state: c.state, restarts: c.restarts, id: c.id })),
      );
      return 1;
    },
    sup_stop: (L: LuaState) => {
      supervisors.get(checkInteger(vm, L, 1, "stop"))?.stop();
      return 0;
    },
  };
  const libRef = engine.compileLua("actors", ACTORS_LUA, helpers);
  codecs.set(engine, new Codec(engine, libRef));
  const fromLib = (name: string) => ({
    lua: `return (...).lib()["${name}"]`,
    helpers: { lib: (L: LuaState) => (vm.pushRef(L, libRef), 1) },
  });
  return {
    spawn: fromLib("spawn"),
    mailbox: fromLib("mailbox"),
    self: fromLib("self"),
    parent: fromLib("parent"),
    supervise: fromLib("supervise"),
  };
};

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
import { argError, checkInteger, checkOptions, checkString, checkTable } from "../runtime/args.ts";
import {
  LUA_TBOOLEAN,
  LUA_TLIGHTUSERDATA,
  LUA_TNIL,
  LUA_TNUMBER,
  LUA_TSTRING,
  LUA_TTABLE,
  type LuaState,
} from "../runtime/lua.ts";
import { log, logLevel } from "../runtime/log.ts";
import {
  type ActorLink,
  type ActorRules,
  ByteWriter,
  directThreads,
  type Exit,
  type Packed,
  RootSystem,
  type ThreadMaker,
} from "./_actor_system.ts";
import { fileErrorReason } from "./filesystem.ts";
import { checkAccess } from "./_permissions.ts";

/** The link of an actor's thread (one engine there); elsewhere each engine is the root of its own actors. */
let threadLink: ActorLink | undefined;
let settings: ActorSettings = {};

/** How a run's actors are made: their threads, their output label, and the run's limits and refusals. */
export interface ActorSettings {
  /** How the root makes actor threads (the CLI makes them in its own thread, with the script's permissions). */
  threads?: ThreadMaker;
  /** Put before each line actors print (several scripts at once: the script's name). */
  label?: string;
  rules?: ActorRules;
}

/** Sets how this thread's actors are made (before the first spawn). */
export function configureActors(actorSettings: ActorSettings): void {
  settings = actorSettings;
}

/** Makes this thread an actor's (host/actor_worker.ts calls it before the script runs). */
export function setActorLink(actorLink: ActorLink): void {
  threadLink = actorLink;
}

/**
 * A root for the actors of `engine` (outside an actor thread), closed with
 * the engine: its actors end with it. Each engine of a program (a Context,
 * a reloaded script) so has its own actors, ids and mailbox.
 */
function newRoot(engine: Engine, context: RunContext): RootSystem {
  const output = context.ownOutput
    ? (bytes: Uint8Array) => (engine.stdout.write(bytes), engine.stdout.flush())
    : undefined;
  const rules = settings.rules ?? {};
  const root = new RootSystem(
    settings.threads ?? directThreads,
    logLevel(),
    settings.label,
    context.maxActors === undefined ? rules : { ...rules, maxActors: context.maxActors },
    output,
    context.ownErrors ? (text: string) => engine.stderr(text) : undefined,
    context.embedded ? "the maxActors option" : "--max-actors",
  );
  engine.onClose(() => root.close());
  return root;
}

/** An error for Lua at the position of the caller's caller: the family's functions are reached through Lua wrappers. */
function atCaller(e: unknown): never {
  throw Object.assign(e instanceof Error ? e : new Error(String(e)), { luaLevel: 2 });
}
const MAX_DEPTH = 100;

// How a packed value starts. Integers within 2^53 travel as doubles (no BigInt on the way), the rest as int64.
const NIL = 0, FALSE = 1, TRUE = 2, INTEGER = 3, BIG_INTEGER = 4, FLOAT = 5, STRING = 6, TABLE = 7, HANDLE = 8;
const JSON_NULL = 9; // the same value in every state, as booleans are: json_decode's records travel as they are
const SAFE = 2 ** 53;

// What a message takes in Lua's memory, about (Lua 5.4 on wasm32): a table, a key and value pair in one, and the
// longest string Lua keeps one copy of (LUAI_MAXSHORTLEN).
const TABLE_COST = 56;
const ENTRY_COST = 24;
const MAX_SHORT_STRING = 40;

/** A packed value being read. */
interface Reader {
  bytes: Uint8Array;
  view: DataView;
  at: number;
}

/**
 * Packs Lua values into bytes and back, for one engine: strings travel as
 * their bytes (binary-safe, no text decoding), integers and floats keep
 * their subtype, handles travel as their actor id.
 */
class Codec {
  /** About what the message being packed takes in the receiver's memory, in bytes. */
  #cost = 0;

  /** `shared` is told of each handle packed: whoever gets it may ask for that actor's end. */
  constructor(readonly engine: Engine, readonly libRef: number, readonly shared: (id: number) => void) {}

  /** Appends the value at `idx` to `out`; throws for what cannot travel. */
  pack(out: ByteWriter, L: LuaState, idx: number, path: number[] = []): void {
    if (path.length === 0) this.#cost = 0; // a message begins
    const { vm } = this.engine;
    const api = vm.api;
    const at = api.lua_absindex(L, idx);
    switch (api.lua_type(L, at)) {
      case LUA_TNIL:
        return out.u8(NIL);
      case LUA_TBOOLEAN:
        return out.u8(api.lua_toboolean(L, at) ? TRUE : FALSE);
      case LUA_TNUMBER: {
        const n = api.lua_tonumberx(L, at, 0);
        if (!api.lua_isinteger(L, at)) return out.u8(FLOAT), out.f64(n);
        if (n > -SAFE && n < SAFE) return out.u8(INTEGER), out.f64(n);
        return out.u8(BIG_INTEGER), out.i64(api.lua_tointegerx(L, at, 0));
      }
      case LUA_TSTRING: {
        const bytes = vm.viewBytes(L, at);
        // The receiver keeps one copy of each short string, and a copy per place of a long one.
        if (bytes.length > MAX_SHORT_STRING) this.#cost += bytes.length;
        out.u8(STRING);
        out.u32(bytes.length);
        return out.raw(bytes);
      }
      case LUA_TTABLE:
        return this.#packTable(out, L, at, path);
      case LUA_TLIGHTUSERDATA:
        if (api.lua_topointer(L, at) === 0) return out.u8(JSON_NULL);
    }
    throw new Error(
      `cannot send a ${
        vm.typeName(L, at)
      }: messages carry strings, numbers, booleans, tables, json_null and actor handles`,
    );
  }

  #packTable(out: ByteWriter, L: LuaState, at: number, path: number[]): void {
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
        const id = api.lua_tonumberx(L, -1, 0);
        out.u8(HANDLE);
        out.f64(id);
        this.shared(id);
        return api.lua_settop(L, -2);
      }
      if (this.engine.isChannel(L, at)) {
        throw new Error("cannot send a channel: it cannot leave its Lua state (to be answered, send a handle: self())");
      }
    }
    const pointer = api.lua_topointer(L, at);
    if (path.includes(pointer)) throw new Error("cannot send a table that contains itself (a cycle)");
    if (path.length >= MAX_DEPTH) throw new Error(`cannot send tables nested more than ${MAX_DEPTH} deep`);
    path.push(pointer);
    this.#cost += TABLE_COST;
    out.u8(TABLE);
    const countAt = out.reserve(4);
    let count = 0;
    const top = api.lua_gettop(L);
    api.lua_pushnil(L);
    try {
      while (api.lua_next(L, at)) {
        if (api.lua_type(L, -2) === LUA_TTABLE) throw new Error("cannot send a table with tables as keys");
        this.pack(out, L, -2, path);
        this.pack(out, L, -1, path);
        api.lua_settop(L, -2);
        count++;
        this.#cost += ENTRY_COST;
        // A table shared in n places travels n times: { t, t } nested 30 deep would be 2^30 copies.
        if (this.#cost > this.engine.memoryLimit) {
          const mib = Math.round(this.engine.memoryLimit / 2 ** 20);
          throw new Error(
            `cannot send a message that would take more than ${mib} MiB, the memory this Lua state may use (a table ` +
              "or long string that appears in several places travels once for each)",
          );
        }
      }
    } catch (e) {
      api.lua_settop(L, top);
      throw e;
    }
    path.pop();
    out.view.setUint32(countAt, count, true);
  }

  /** Pushes the Lua value of `packed` (nil for undefined). */
  unpack(L: LuaState, packed: Packed | undefined): void {
    if (packed === undefined) return this.engine.vm.api.lua_pushnil(L);
    this.#read(L, { bytes: packed, view: new DataView(packed.buffer, packed.byteOffset, packed.byteLength), at: 0 });
  }

  #read(L: LuaState, r: Reader): void {
    const { vm } = this.engine;
    const api = vm.api;
    const tag = r.bytes[r.at++];
    switch (tag) {
      case NIL:
        return api.lua_pushnil(L);
      case FALSE:
      case TRUE:
        return api.lua_pushboolean(L, tag === TRUE ? 1 : 0);
      case JSON_NULL:
        return api.lua_pushlightuserdata(L, 0);
      case INTEGER:
        return api.lua_pushinteger(L, BigInt(r.view.getFloat64((r.at += 8) - 8, true)));
      case BIG_INTEGER:
        return api.lua_pushinteger(L, r.view.getBigInt64((r.at += 8) - 8, true));
      case FLOAT:
        return api.lua_pushnumber(L, r.view.getFloat64((r.at += 8) - 8, true));
      case STRING: {
        const len = r.view.getUint32(r.at, true);
        r.at += 4 + len;
        return vm.pushBytes(L, r.bytes.subarray(r.at - len, r.at));
      }
      case HANDLE: {
        api.lua_checkstack(L, 3);
        vm.pushRef(L, this.libRef);
        api.lua_getfield(L, -1, vm.cstr("handle"));
        api.lua_pushinteger(L, BigInt(r.view.getFloat64((r.at += 8) - 8, true)));
        api.lua_callk(L, 1, 1, 0, 0);
        api.lua_rotate(L, -2, 1);
        return api.lua_settop(L, -2);
      }
    }
    const count = r.view.getUint32(r.at, true);
    r.at += 4;
    api.lua_checkstack(L, 4);
    api.lua_createtable(L, 0, count);
    for (let i = 0; i < count; i++) {
      this.#read(L, r);
      this.#read(L, r);
      api.lua_rawset(L, -3);
    }
  }
}

const codecs = new WeakMap<Engine, Codec>();

/** The value at `idx` of `engine`'s state, packed (throws for what cannot travel). */
export function toMessage(engine: Engine, L: LuaState, idx: number): Packed {
  const out = new ByteWriter();
  codecs.get(engine)!.pack(out, L, idx);
  return out.done();
}

/** Pushes the packed value `packed` as a Lua value on `engine`'s state. */
export function pushMessage(engine: Engine, L: LuaState, packed: Packed): void {
  codecs.get(engine)!.unpack(L, packed);
}

/** A supervised child. */
interface Child {
  name: string;
  script: string;
  args: Packed[];
  id?: number;
  state: "running" | "restarting" | "stopped" | "done" | "failed";
  restarts: number;
  /** The restart that starts it again: a later one that takes it over starts it instead. */
  restart?: object;
  /** The end of its last instance, stopped for a restart. */
  ending?: Promise<Exit>;
}

const STRATEGIES = ["one_for_one", "one_for_all", "rest_for_one"] as const;
/** The keys of a supervise{} spec, and of each of its children. */
const SUPERVISE_OPTIONS = ["strategy", "max_restarts", "within", "children"];
const CHILD_OPTIONS = ["name", "script", "args"];

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
    children: { name: string; script: string; args: Packed[] }[],
    readonly engine: Engine,
    readonly label: string,
    readonly embedded: boolean,
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
      return this.#fail(
        `${this.label} failed: child '${child.name}' failed more than ${this.maxRestarts} times ` +
          `within ${this.withinMs / 1000} s (last error: ${exit.error})`,
      );
    }
    const at = this.children.indexOf(child);
    const affected = this.strategy === "one_for_one"
      ? [child]
      : this.strategy === "one_for_all"
      ? this.children
      : this.children.slice(at);
    const restart = {};
    for (const c of affected) {
      if (c !== child && c.id !== undefined && c.state === "running") {
        this.link.stop(c.id);
        c.ending = this.link.exitOf(c.id);
      }
      c.id = undefined;
      c.state = "restarting";
      c.restart = restart;
    }
    child.restarts++;
    for (const c of affected) if (c !== child) c.restarts++;
    log("info", `${this.label}: restarting ${affected.map((c) => `'${c.name}'`).join(", ")} (${this.strategy})`);
    (async () => {
      // As Erlang's supervisors do: no child starts again before the stopped ones have ended (and freed what they held).
      await Promise.all(affected.map((c) => c.ending));
      for (const c of affected) if (c.restart === restart) await this.#launch(c);
    })().catch((e) => {
      // A child it cannot start again (--max-actors) fails the supervisor, as one past its restart limit does.
      for (const c of affected) if (c.state === "restarting") c.state = "failed";
      this.#fail(`${this.label} failed: cannot restart: ${e?.message ?? e}`);
    });
  }

  /** Stops every child and fails: the script ends with `message` (a library's context reports it as an actor's). */
  #fail(message: string): void {
    log("warn", message); // the run's own error report says it too
    this.stop();
    if (this.embedded) this.engine.reportFailure(this.label, message, message, true);
    else this.engine.halt({ status: "error", message, traceback: "" });
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
-- Each handle's own id (its id field may be changed): once no handle is left, the root may forget an ended actor.
local ids = setmetatable({}, { __mode = "k" })
Handle.__gc = function(a) h.dropped(ids[a]) end
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
    handles[id], ids[a] = a, id
  end
  return a
end
local lib = { handle = handle, Handle = Handle }
function lib.spawn(path, ...) return handle(h.spawn(path, ...)) end
function lib.self() return handle(h.self_id()) end
function lib.parent()
  local id = h.parent_id()
  if id ~= nil then return handle(id) end
  return nil -- print(parent()) in the main script shows nil
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
  const beside = context.mainScript
    ? `${context.mainScript.slice(0, context.mainScript.lastIndexOf("/") + 1)}${path}`
    : path;
  const candidates = path.startsWith("/") || beside === path ? [path] : [path, beside];
  let refusal: string | undefined;
  for (const candidate of candidates) {
    try {
      checkAccess("read", candidate);
      if (Deno.statSync(candidate).isFile) return Deno.realPathSync(candidate);
    } catch (e) {
      // The next place may hold it; if none does, a script that is there but may not be read is named, not "no script".
      if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) {
        refusal ??= `spawn: cannot read "${candidate}": ${fileErrorReason(e, "read", candidate)}`;
      }
    }
  }
  throw new Error(refusal ?? `spawn: no script '${path}' (looked in ${candidates.join(", ")})`);
}

/** The actors family's registration table. */
export const actors = (engine: Engine, context: RunContext): Family => {
  const { vm } = engine;
  const api = vm.api;
  const supervisors = new Map<number, Supervisor>();
  let nextSupervisor = 0;
  const codec = () => codecs.get(engine)!; // made once the Lua side exists, below
  // This thread's link in an actor, else the engine's own root, made on first use.
  let link: ActorLink | undefined;
  const linkOf = () => {
    if (link) return link;
    link = threadLink ?? newRoot(engine, context);
    link.flushOutput = () => engine.stdout.flush();
    return link;
  };
  const readArgs = (L: LuaState, from: number) => {
    const args: Packed[] = [];
    for (let i = from; i <= api.lua_gettop(L); i++) args.push(toMessage(engine, L, i));
    return args;
  };
  // t[name] pushed on the stack; its type is returned (the caller pops it).
  const getField = (L: LuaState, t: number, name: string) => api.lua_getfield(L, t, vm.cstr(name));
  const numberField = (L: LuaState, t: number, name: string, fallback: number) => {
    const type = getField(L, t, name);
    const n = type === LUA_TNIL ? fallback : type === LUA_TNUMBER ? api.lua_tonumberx(L, -1, 0) : NaN;
    api.lua_settop(L, -2);
    return n;
  };
  // The children of a supervise{} spec: each { name = ..., script = ..., args = {...} }, args packed.
  const readChildren = (L: LuaState, spec: number) => {
    const shape = "children must be a list of { name = ..., script = ..., args = {...} }";
    if (getField(L, spec, "children") !== LUA_TTABLE) throw argError(1, "supervise", shape);
    const list = api.lua_gettop(L);
    const count = Number(api.lua_rawlen(L, list));
    if (count === 0) throw argError(1, "supervise", shape);
    const children: { name: string; script: string; args: Packed[] }[] = [];
    for (let i = 1; i <= count; i++) {
      api.lua_checkstack(L, 4);
      if (api.lua_rawgeti(L, list, BigInt(i)) !== LUA_TTABLE) throw argError(1, "supervise", shape);
      const child = api.lua_gettop(L);
      checkOptions(vm, L, child, 1, "supervise", CHILD_OPTIONS, `child ${i}: `);
      const nameType = getField(L, child, "name");
      if (nameType !== LUA_TNIL && nameType !== LUA_TSTRING && nameType !== LUA_TNUMBER) {
        throw argError(1, "supervise", `child ${i}: name must be a string or a number, got ${vm.typeName(L, -1)}`);
      }
      const name = nameType === LUA_TNIL ? `child ${i}` : vm.toText(L, -1);
      // sup.children() and the failure messages tell children apart by name.
      if (children.some((other) => other.name === name)) {
        throw argError(1, "supervise", `child ${i}: the name '${name}' is taken by another child`);
      }
      if (getField(L, child, "script") !== LUA_TSTRING) throw argError(1, "supervise", `child ${i} needs a script`);
      const script = resolveScript(vm.toText(L, -1), context);
      const args: Packed[] = [];
      const argsType = getField(L, child, "args");
      if (argsType !== LUA_TNIL && argsType !== LUA_TTABLE) {
        throw argError(1, "supervise", `child ${i}: args must be a list of values, got ${vm.typeName(L, -1)}`);
      }
      if (argsType === LUA_TTABLE) {
        const n = Number(api.lua_rawlen(L, -1));
        for (let a = 1; a <= n; a++) {
          api.lua_rawgeti(L, -1, BigInt(a));
          args.push(toMessage(engine, L, -1));
          api.lua_settop(L, -2);
        }
      }
      api.lua_settop(L, child - 1);
      children.push({ name, script, args });
    }
    api.lua_settop(L, list - 1);
    return children;
  };
  const pushExit = (exit: Exit): Pusher => (L) => {
    if (exit.ok && exit.unfinished === undefined) {
      codec().unpack(L, exit.value);
      return 1;
    }
    api.lua_pushnil(L);
    vm.pushString(L, exit.ok ? exit.unfinished! : exit.error);
    return 2;
  };
  // supervise{...}: checks the spec, then starts the children; resolves with the supervisor's id.
  const startSupervisor = (L: LuaState): Promise<Pusher> => {
    checkTable(vm, L, 1, "supervise");
    checkOptions(vm, L, 1, 1, "supervise", SUPERVISE_OPTIONS);
    const strategyType = getField(L, 1, "strategy");
    const strategy = strategyType === LUA_TNIL
      ? "one_for_one"
      : strategyType === LUA_TSTRING
      ? vm.toText(L, -1)
      : vm.typeName(L, -1);
    api.lua_settop(L, -2);
    if (!STRATEGIES.includes(strategy as typeof STRATEGIES[number])) {
      throw argError(1, "supervise", `strategy must be one of ${STRATEGIES.join(", ")}, got ${strategy}`);
    }
    const maxRestarts = numberField(L, 1, "max_restarts", 3);
    const within = numberField(L, 1, "within", 5);
    if (!(maxRestarts >= 0) || !(within > 0)) {
      throw argError(1, "supervise", "max_restarts must be a number >= 0 and within a number of seconds > 0");
    }
    const children = readChildren(L, 1);
    const id = ++nextSupervisor;
    const supervisor = new Supervisor(
      linkOf(),
      strategy as typeof STRATEGIES[number],
      maxRestarts,
      within * 1000,
      children,
      engine,
      `supervisor ${id}`,
      context.embedded === true,
    );
    supervisors.set(id, supervisor);
    return supervisor.start().then(
      () => (L: LuaState) => (api.lua_pushinteger(L, BigInt(id)), 1),
      (e) => {
        // A child it cannot start (--max-actors): the children it started stop, and supervise raises at its caller.
        supervisor.stop();
        supervisors.delete(id);
        return atCaller(e);
      },
    );
  };
  const helpers = {
    spawn: engine.blocking("spawn", (L) => {
      let path: string, args: Packed[];
      try {
        path = resolveScript(checkString(vm, L, 1, "spawn"), context);
        args = readArgs(L, 2);
      } catch (e) {
        atCaller(e);
      }
      const actors = linkOf();
      // A refusal (--max-actors, a thread that cannot start) is raised at the line that called spawn.
      return actors.spawn(path, args).catch(atCaller).then((id) => {
        const release = engine.keepAlive();
        actors.exitOf(id).then((exit) => {
          release();
          // A failure never takes the spawner down: it goes to on_error (or stderr), and to wait(); the root has logged it.
          if (!exit.ok) {
            engine.reportFailure(`actor ${id} (${path})`, exit.error, exit.traceback || exit.error, true);
          }
        });
        return (L: LuaState) => (api.lua_pushinteger(L, BigInt(id)), 1);
      });
    }),
    send: (L: LuaState) => {
      const id = Number(checkInteger(vm, L, 1, "send"));
      if (api.lua_gettop(L) < 2) atCaller(argError(1, "send", "message expected"));
      // mailbox() gives nil for "stopped": a nil message would end a receiver that loops until then.
      if (api.lua_type(L, 2) === LUA_TNIL) atCaller(new Error("cannot send nil: mailbox() returns nil once stopped"));
      try {
        linkOf().send(id, (out) => codec().pack(out, L, 2));
      } catch (e) {
        atCaller(e);
      }
      return 0;
    },
    stop: (L: LuaState) => {
      linkOf().stop(Number(checkInteger(vm, L, 1, "stop")));
      return 0;
    },
    wait: engine.blocking("wait", (L) => {
      const id = Number(checkInteger(vm, L, 1, "wait"));
      const actors = linkOf();
      // Its own end never comes while it waits (the main script, actor 0, has no end to wait for: "no actor 0").
      if (id === actors.selfId && id !== 0) atCaller(new Error("an actor cannot wait for itself"));
      return actors.exitOf(id).then(pushExit);
    }),
    // mailbox(): the next message; nil once the actor was asked to stop and its mail is read.
    mailbox: engine.blocking("mailbox", (L) => {
      const inbox = linkOf().inbox;
      const next = (): Pusher | undefined => {
        const msg = inbox.take();
        if (msg !== undefined) return (L) => (codec().unpack(L, msg), 1);
        if (inbox.stopped) return (L) => (api.lua_pushnil(L), 1);
      };
      const now = next();
      if (now) return now(L);
      let cancelled = false; // a mailbox() call that was stopped takes no message
      let wake = () => {};
      const waitForMail = (): Promise<Pusher | void> =>
        new Promise<void>((resolve) => inbox.onArrival(wake = resolve)).then(() =>
          cancelled ? undefined : next() ?? waitForMail()
        );
      // A stopped call leaves the waiters at once, and its wait ends (the engine counts it until then).
      const cancel = () => {
        cancelled = true;
        inbox.forget(wake);
        wake();
      };
      // Only actors can send to the main script, and its engine is kept going while it has any: without them, nothing can.
      return { wait: waitForMail(), cancel, holdsRun: linkOf().parentId !== undefined };
    }),
    self_id: (L: LuaState) => (api.lua_pushinteger(L, BigInt(linkOf().selfId)), 1),
    dropped: (L: LuaState) => {
      linkOf().dropped(api.lua_tonumberx(L, 1, 0));
      return 0;
    },
    parent_id: (L: LuaState) => {
      const parent = linkOf().parentId;
      if (parent === undefined) api.lua_pushnil(L);
      else api.lua_pushinteger(L, BigInt(parent));
      return 1;
    },
    supervise: engine.blocking("supervise", (L) => {
      try {
        return startSupervisor(L);
      } catch (e) {
        atCaller(e);
      }
    }),
    sup_children: (L: LuaState) => {
      const id = checkInteger(vm, L, 1, "children");
      const supervisor = supervisors.get(Number(id));
      if (!supervisor) atCaller(new Error(`no supervisor ${id}`)); // a handle whose id was changed
      vm.pushValue(
        L,
        supervisor.children.map((c) => ({
          name: c.name,
          state: c.state,
          restarts: c.restarts,
          id: c.state === "running" ? c.id : undefined, // the handle only while it runs
        })),
      );
      return 1;
    },
    sup_stop: (L: LuaState) => {
      supervisors.get(Number(checkInteger(vm, L, 1, "stop")))?.stop();
      return 0;
    },
  };
  const libRef = engine.compileLua("actors", ACTORS_LUA, helpers);
  codecs.set(engine, new Codec(engine, libRef, (id) => linkOf().shared(id)));
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

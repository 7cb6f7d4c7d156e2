/**
 * The debugging and hot-reload family: `debug.traceback`, `trace`, `watch_file`,
 * `unwatch_file` and `reload_script`.
 *
 * @module
 */
import type { Engine } from "../runtime/engine.ts";
import type { Family, RunContext } from "../runtime/family.ts";
import { checkCInt, checkFunction, checkInteger, checkStrictText, isNone } from "../runtime/args.ts";
import { LUA_TTHREAD, type LuaState } from "../runtime/lua.ts";
import { checkAccess, isPermissionError } from "./_permissions.ts";
import { fileErrorReason } from "./filesystem.ts";

/** Changes closer together than this are one save (editors write in several steps). */
export const DEBOUNCE_MS = 100;

// trace([message]): the current stack on stderr, from the caller down.
// What it uses is kept when it loads: a script that trims or replaces globals cannot break it.
const TRACE_LUA = `
local stderr, traceback, tostring = io.stderr, debug.traceback, tostring
return function(message)
  stderr:write(traceback(message ~= nil and tostring(message) or "trace", 2), "\\n")
end`;

/**
 * `debug.traceback([thread,] [message [, level]])` as lua5.4's, without SolVM's own frames. A C function as there:
 * a tail call to it keeps its caller's frame, where one to a Lua function would replace it.
 */
function traceback(engine: Engine, L: LuaState): number {
  const { vm } = engine;
  const api = vm.api;
  const ofThread = api.lua_type(L, 1) === LUA_TTHREAD;
  const T = ofThread ? api.lua_tothread(L, 1) : L;
  const arg = ofThread ? 1 : 0;
  const message = api.lua_tolstring(L, arg + 1, 0);
  if (message === 0 && !isNone(vm, L, arg + 1)) { // an error object that is not text goes back untouched
    api.lua_pushvalue(L, arg + 1);
    return 1;
  }
  const level = isNone(vm, L, arg + 2) ? (T === L ? 1 : 0) : checkCInt(vm, L, arg + 2, "debug.traceback");
  engine.pushSchedulerField(L, "without_internal");
  api.luaL_traceback(L, T, message, level);
  api.lua_callk(L, 1, 1, 0, 0);
  return 1;
}

/** The folder holding `path`: "." for a bare name. */
function folderOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : path.slice(0, slash) || "/";
}

/** `path` itself when it exists, else its nearest ancestor that does. */
function nearestExisting(path: string): string {
  for (;;) {
    try {
      Deno.statSync(path);
      return path;
    } catch (e) {
      const parent = folderOf(path);
      if (parent === path || !(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) throw e;
      path = parent;
    }
  }
}

/**
 * Watches the folder `folder` (not recursively), calling `onEvent` with its
 * events. A folder removed or replaced (rm -rf, a git checkout) is followed:
 * while it is missing its nearest existing ancestor is watched instead, and
 * once it is back `onEvent` gets a "create" event naming it; `onError` is
 * told when nothing on its way may be watched any more (no permission).
 * Returns a function that stops watching.
 */
function followFolder(
  folder: string,
  onEvent: (event: Deno.FsEvent) => void,
  onError: (e: unknown) => void = () => {},
): () => void {
  let watcher: Deno.FsWatcher | undefined;
  let nearest = "";
  let canonical = "";
  const watch = () => {
    watcher?.close();
    for (;;) {
      const found = nearestExisting(folder);
      let next: Deno.FsWatcher;
      try {
        canonical = Deno.realPathSync(found);
        next = Deno.watchFs(canonical, { recursive: false });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue; // removed meanwhile: look again
        throw e;
      }
      // A folder made on the way to `folder` meanwhile would go unseen: look again.
      if (nearestExisting(folder) !== found) {
        next.close();
        continue;
      }
      nearest = found;
      watcher = next;
      listen(next);
      return;
    }
  };
  const listen = async (current: Deno.FsWatcher) => {
    try {
      for await (const event of current) {
        if (nearest === folder) onEvent(event);
        // Deno's watch of a removed (or renamed) folder is dead, even once one is made again at its path.
        const watchEnded = (event.kind === "remove" || event.kind === "rename") && event.paths.includes(canonical);
        try {
          if (!watchEnded && (nearest === folder || nearestExisting(folder) === nearest)) continue;
          watch();
        } catch (e) {
          return onError(e);
        }
        if (nearest === folder) onEvent({ kind: "create", paths: [canonical] });
      }
    } catch {
      // The watcher was closed.
    }
  };
  watch();
  return () => watcher?.close();
}

/**
 * Calls `onChange` once per burst of changes to the file `path`. Watches
 * the folder, since editors often replace a file rather than write to it,
 * and follows it when it is removed or replaced.
 */
export function watchPath(path: string, onChange: () => void): () => void {
  checkAccess("read", path);
  const absolute = Deno.realPathSync(path);
  const isFolder = Deno.statSync(absolute).isDirectory;
  const folder = isFolder ? absolute : folderOf(absolute);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const changed = (event: Deno.FsEvent) => {
    if (event.kind === "access" || (!isFolder && !event.paths.some((p) => p === absolute || p === folder))) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, DEBOUNCE_MS);
  };
  let stopWatching: () => void;
  try {
    stopWatching = followFolder(folder, changed);
  } catch (e) {
    // Granted the file but not its folder: watch the file itself (a file replaced by an editor is then missed).
    if (isFolder || !isPermissionError(e)) throw e;
    const watcher = Deno.watchFs(absolute, { recursive: false });
    (async () => {
      try {
        for await (const event of watcher) changed(event);
      } catch {
        // The watcher was closed.
      }
    })();
    stopWatching = () => watcher.close();
  }
  return () => {
    clearTimeout(timer);
    stopWatching();
  };
}

/**
 * Calls `onBack` once a file exists at `path` (now, or after a quiet moment
 * following a change on its way, its folders included), or `onError` when
 * nothing on its way may be watched; returns a function that stops looking.
 */
function onceExists(path: string, onBack: () => void, onError?: (e: unknown) => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopFollowing = () => {};
  const stop = () => {
    clearTimeout(timer);
    stopFollowing();
  };
  const look = () => {
    try {
      Deno.statSync(path);
    } catch {
      return;
    }
    stop();
    onBack();
  };
  stopFollowing = followFolder(folderOf(path), () => {
    clearTimeout(timer);
    timer = setTimeout(look, DEBOUNCE_MS);
  }, onError);
  look();
  return stop;
}

/**
 * Resolves once a file exists at `path` again (`--watch` waits so for a
 * script that is briefly missing, as during a `git checkout`, its folder
 * included); rejects when nothing on its way may be watched.
 */
export function fileReturns(path: string): Promise<void> {
  return new Promise((resolve, reject) => onceExists(path, resolve, reject));
}

/**
 * Files watched as they are added (`solvm --watch`, by the CLI's thread):
 * `changed` resolves with the first one that changes.
 *
 * ```ts
 * import { WatchedFiles } from "./debug.ts";
 * const files = new WatchedFiles();
 * files.add(Deno.cwd());
 * files.stop();
 * ```
 */
export class WatchedFiles extends Set<string> {
  readonly #stops: (() => void)[] = [];
  #notify: (path: string) => void = () => {};
  readonly changed = new Promise<string>((resolve) => this.#notify = resolve);
  /** The first file added, a run's script: a run waits itself for its script to come back. */
  #script?: string;

  /**
   * Also waits for the files of the run before (`previous`, its script
   * aside) that are missing now to come back: a module deleted for a moment
   * fails to load, so this run cannot tell of it.
   */
  constructor(previous?: WatchedFiles) {
    super();
    if (!previous) return;
    for (const path of previous) {
      if (path === previous.#script) continue;
      try {
        Deno.statSync(path);
      } catch {
        this.#watch(path, onceExists);
        super.add(path);
      }
    }
  }

  override add(path: string): this {
    this.#script ??= path;
    if (!this.has(path)) this.#watch(path, watchPath);
    return super.add(path);
  }

  #watch(path: string, watch: (path: string, onChange: () => void) => () => void): void {
    try {
      this.#stops.push(watch(path, () => this.#notify(path)));
    } catch {
      // A file that vanished or may not be watched is left out; the others still are.
    }
  }

  /** Stops watching every file. */
  stop(): void {
    for (const stop of this.#stops.splice(0)) stop();
  }
}

/** The watchers of one engine. */
class WatchTable {
  #next = 0;
  readonly #live = new Map<number, () => void>();

  constructor(readonly engine: Engine) {
    engine.onClose(() => {
      for (const stop of this.#live.values()) stop();
      this.#live.clear();
    });
  }

  /** `watch_file(path, fn)`: fn runs as a goroutine after each change; returns an id for unwatch_file. */
  watch(L: LuaState): number {
    const { engine } = this;
    const vm = engine.vm;
    const path = checkStrictText(vm, L, 1, "watch_file", "path");
    checkFunction(vm, L, 2, "watch_file");
    // A finalizer running as the engine closes may still ask: nothing would ever stop its watcher.
    if (engine.closed) throw new Error("watch_file: the engine is closed");
    let stopWatching: () => void;
    vm.api.lua_pushvalue(L, 2);
    const ref = vm.ref(L);
    try {
      stopWatching = watchPath(path, () => engine.spawnFunction(ref, `watch ${path}`));
    } catch (e) {
      vm.unref(ref);
      throw new Error(`watch_file: cannot watch "${path}": ${fileErrorReason(e, "read", path)}`);
    }
    const release = engine.hold();
    const id = ++this.#next; // only a watch that started takes an id
    this.#live.set(id, () => {
      stopWatching();
      release();
      vm.unref(ref);
    });
    vm.api.lua_pushinteger(L, BigInt(id));
    return 1;
  }

  /** `unwatch_file(id)`: stops a watcher; true when there was one. */
  unwatch(L: LuaState): number {
    const id = Number(checkInteger(this.engine.vm, L, 1, "unwatch_file"));
    const stop = this.#live.get(id);
    this.#live.delete(id);
    stop?.();
    this.engine.vm.api.lua_pushboolean(L, stop ? 1 : 0);
    return 1;
  }
}

/** The debug family's registration table. */
export const debugging = (engine: Engine, context: RunContext): Family => {
  const watches = new WatchTable(engine);
  // Where nothing would start the script again, stopping the run for a reload would only end it.
  const noReload = context.embedded
    ? "a library Context has no script to reload"
    : context.mainScript === undefined
    ? "the REPL has no script to reload"
    : "this run cannot start its script again (an actor, or solvm -i)";
  return {
    "debug.traceback": (L) => traceback(engine, L), // before trace, which keeps it
    trace: { lua: TRACE_LUA, helpers: {} },
    watch_file: (L) => watches.watch(L),
    unwatch_file: (L) => watches.unwatch(L),
    reload_script: () => {
      if (!context.reloadable) throw new Error(`reload_script: ${noReload}`);
      return engine.abort({ status: "reload" });
    },
  };
};

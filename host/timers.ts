/**
 * The timers family: `set_timeout`, `set_interval`, `cron` and their
 * `clear_*` functions, on Deno's timers and npm `croner`.
 *
 * Every callback runs as a goroutine, so it may block. An interval or cron
 * tick that comes while the previous callback still runs is skipped: a slow
 * callback never runs twice at once. Intervals and cron jobs are resident
 * (they keep the script alive and suspend the default time limit); a
 * pending timeout only keeps the script alive.
 *
 * @module
 */
import { Cron } from "croner";
import type { Engine } from "../runtime/engine.ts";
import type { Family } from "../runtime/family.ts";
import { argError, checkFunction, checkInteger, checkNumber, checkString } from "../runtime/args.ts";
import type { LuaState } from "../runtime/lua.ts";
import { after } from "../runtime/_timer.ts";

type Kind = "timeout" | "interval" | "cron";

/** Calls `fn` every `ms` milliseconds, however long; returns the cancel function. */
function every(ms: number, fn: () => void): () => void {
  let cancel = after(ms, tick);
  function tick() {
    cancel = after(ms, tick);
    fn();
  }
  return () => cancel();
}

/** A scheduled callback: how to cancel it. */
interface Scheduled {
  kind: Kind;
  cancel(): void;
}

/** The timers of one engine, by id. */
class TimerTable {
  #next = 0;
  readonly #live = new Map<number, Scheduled>();

  constructor(readonly engine: Engine) {
    engine.onClose(() => {
      for (const timer of this.#live.values()) timer.cancel();
      this.#live.clear();
    });
  }

  /** A fresh id for a timer about to be added. */
  nextId(): number {
    return ++this.#next;
  }

  add(id: number, kind: Kind, cancel: () => void): void {
    // A finalizer running as the engine closes may still ask: nothing would ever cancel its timer.
    if (this.engine.closed) {
      cancel();
      throw new Error("the engine is closed: it takes no new timers or cron jobs");
    }
    this.#live.set(id, { kind, cancel });
  }

  forget(id: number): void {
    this.#live.delete(id);
  }

  /** Cancels timer `id` if it is of `kind`; true when something was cancelled. */
  clear(id: number, kind: Kind): boolean {
    const timer = this.#live.get(id);
    if (!timer || timer.kind !== kind) return false;
    this.#live.delete(id);
    timer.cancel();
    return true;
  }

  /** Keeps the callback at argument 1 in the registry. */
  refCallback(L: LuaState): number {
    const vm = this.engine.vm;
    vm.api.lua_pushvalue(L, 1);
    return vm.ref(L);
  }

  /**
   * A tick function that runs the callback as a goroutine unless the
   * previous run is still going.
   */
  repeating(ref: number, name: string): () => void {
    let running = false;
    return () => {
      if (running) return;
      running = true;
      this.engine.spawnFunction(ref, name, () => running = false);
    };
  }
}

function checkSeconds(table: TimerTable, L: LuaState, fname: string, positive: boolean): number {
  const seconds = checkNumber(table.engine.vm, L, 2, fname);
  if (!Number.isFinite(seconds) || seconds < 0 || (positive && seconds === 0)) {
    throw argError(
      2,
      fname,
      `${positive ? "positive" : "non-negative"} finite number of seconds expected, got ${seconds}`,
    );
  }
  return seconds * 1000;
}

function pushId(table: TimerTable, L: LuaState, id: number): number {
  table.engine.vm.api.lua_pushinteger(L, BigInt(id));
  return 1;
}

/** `set_timeout(fn, seconds)`: runs fn once, later; returns an id for clear_timeout. */
function setTimeoutLua(table: TimerTable, L: LuaState): number {
  checkFunction(table.engine.vm, L, 1, "set_timeout");
  const ms = checkSeconds(table, L, "set_timeout", false);
  const ref = table.refCallback(L);
  const { engine } = table;
  const release = engine.keepAlive();
  const id = table.nextId();
  const cancel = after(ms, () => {
    table.forget(id);
    engine.spawnFunction(ref, `timeout ${id}`);
    done();
  });
  const done = () => {
    cancel();
    release();
    engine.vm.unref(ref);
  };
  table.add(id, "timeout", done);
  return pushId(table, L, id);
}

/** `set_interval(fn, seconds)`: runs fn every `seconds`; returns an id for clear_interval. */
function setIntervalLua(table: TimerTable, L: LuaState): number {
  checkFunction(table.engine.vm, L, 1, "set_interval");
  const ms = checkSeconds(table, L, "set_interval", true);
  const ref = table.refCallback(L);
  const { engine } = table;
  const release = engine.hold();
  const id = table.nextId();
  const cancel = every(ms, table.repeating(ref, `interval ${id}`));
  table.add(id, "interval", () => {
    cancel();
    release();
    engine.vm.unref(ref);
  });
  return pushId(table, L, id);
}

/** The fields of a cron expression, seconds first, and the values each takes. */
const CRON_FIELDS: [string, number, number][] = [
  ["second", 0, 59],
  ["minute", 0, 59],
  ["hour", 0, 23],
  ["day of month", 1, 31],
  ["month", 1, 12],
  ["day of week", 0, 7],
];

/** Why a plain number in `expr` is out of its field's range, if one is (croner's own message counts from 0). */
function cronRangeProblem(expr: string): string | undefined {
  const fields = expr.trim().split(/\s+/);
  const names = fields.length === 5 ? CRON_FIELDS.slice(1) : CRON_FIELDS;
  for (const [i, field] of fields.entries()) {
    if (i >= names.length) break;
    const [name, min, max] = names[i];
    for (const part of field.split(",")) {
      const plain = /^(\d+)(?:-(\d+))?(?:\/\d+)?$/.exec(part);
      for (const text of plain ? [plain[1], plain[2]] : []) {
        if (text !== undefined && (Number(text) < min || Number(text) > max)) {
          return `${name} ${text} is out of range (${min}-${max})`;
        }
      }
    }
  }
  return undefined;
}

/**
 * `expr` with each `?` read as `*`, as Go's robfig/cron does (croner would put the field's value at the time the job
 * is made in its place); a `?` that is not a whole item, or before a step, is refused.
 */
function cronQuestionMarks(expr: string): string {
  const starred = expr.replace(/(^|[\s,])\?(?=[\s,/]|$)/g, "$1*");
  if (starred.includes("?")) throw new Error(`"?" stands alone for "any value", as "*" does`);
  return starred;
}

/** `cron(expr, fn)`: runs fn on a six-field (with seconds) or five-field cron schedule. */
function cronLua(table: TimerTable, L: LuaState): number {
  const { engine } = table;
  const vm = engine.vm;
  const expr = checkString(vm, L, 1, "cron");
  checkFunction(vm, L, 2, "cron");
  vm.api.lua_pushvalue(L, 2);
  const ref = vm.ref(L);
  let tick = () => {};
  let job: Cron;
  let next: Date | null;
  try {
    const outOfRange = cronRangeProblem(expr);
    if (outOfRange) throw new Error(outOfRange);
    job = new Cron(cronQuestionMarks(expr), () => tick());
    next = job.nextRun();
  } catch (e) {
    vm.unref(ref);
    // croner searches for a date that does not exist (31 April...) until its stack runs out.
    if (e instanceof RangeError) throw new Error(`cron: invalid expression "${expr}": it never fires`);
    const reason = e instanceof Error ? e.message.replace(/^CronPattern: /, "") : String(e);
    throw new Error(`cron: invalid expression "${expr}": ${reason}`);
  }
  if (next === null) {
    job.stop();
    vm.unref(ref);
    throw new Error(`cron: invalid expression "${expr}": it never fires`);
  }
  const release = engine.hold();
  const id = table.nextId();
  table.add(id, "cron", () => {
    job.stop();
    release();
    vm.unref(ref);
  });
  tick = table.repeating(ref, `cron ${id}`);
  return pushId(table, L, id);
}

function clearLua(table: TimerTable, L: LuaState, kind: Kind, fname: string): number {
  const id = checkInteger(table.engine.vm, L, 1, fname);
  table.engine.vm.api.lua_pushboolean(L, table.clear(id, kind) ? 1 : 0);
  return 1;
}

/** The timers family's registration table. */
export const timers = (engine: Engine): Family => {
  const table = new TimerTable(engine);
  return {
    set_timeout: (L) => setTimeoutLua(table, L),
    set_interval: (L) => setIntervalLua(table, L),
    cron: (L) => cronLua(table, L),
    clear_timeout: (L) => clearLua(table, L, "timeout", "clear_timeout"),
    clear_interval: (L) => clearLua(table, L, "interval", "clear_interval"),
    clear_cron: (L) => clearLua(table, L, "cron", "clear_cron"),
  };
};

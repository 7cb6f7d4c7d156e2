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
import { checkFunction, checkInteger, checkSeconds, checkString } from "../runtime/args.ts";
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

function pushId(table: TimerTable, L: LuaState, id: number): number {
  table.engine.vm.api.lua_pushinteger(L, BigInt(id));
  return 1;
}

/** `set_timeout(fn, seconds)`: runs fn once, later; returns an id for clear_timeout. */
function setTimeoutLua(table: TimerTable, L: LuaState): number {
  checkFunction(table.engine.vm, L, 1, "set_timeout");
  const ms = checkSeconds(table.engine.vm, L, 2, "set_timeout") * 1000;
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
  const ms = checkSeconds(table.engine.vm, L, 2, "set_interval", true) * 1000;
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

/** A field of a cron expression: its name, the values it takes, its largest step, and its names if it has them. */
interface CronField {
  name: string;
  min: number;
  max: number;
  steps: number;
  names?: string[];
}

/** The fields of a cron expression, seconds first. */
const CRON_FIELDS: CronField[] = [
  { name: "second", min: 0, max: 59, steps: 60 },
  { name: "minute", min: 0, max: 59, steps: 60 },
  { name: "hour", min: 0, max: 23, steps: 24 },
  { name: "day of month", min: 1, max: 31, steps: 31 },
  {
    name: "month",
    min: 1,
    max: 12,
    steps: 12,
    names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
  },
  { name: "day of week", min: 0, max: 7, steps: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] },
];

/** The nicknames croner reads as whole expressions. */
const CRON_NICKNAMES = /^@(yearly|annually|monthly|weekly|daily|hourly)$/i;

/** One value of `field` as written (a number, or a name such as MON), or an error naming the field. */
function cronValue(field: CronField, text: string): number {
  const named = field.names?.indexOf(text.toLowerCase()) ?? -1;
  if (named >= 0) return field.min + named;
  if (!/^\d+$/.test(text)) {
    const hint = field.names ? ` or a name (${field.names[0].toUpperCase()}-${field.names.at(-1)!.toUpperCase()})` : "";
    throw new Error(`${field.name} "${text}" is not a number${hint}`);
  }
  const value = Number(text);
  if (value < field.min || value > field.max) {
    throw new Error(`${field.name} ${text} is out of range (${field.min}-${field.max})`);
  }
  return value;
}

/** The error for an item of `field` that is no form a cron field takes. */
function malformed(field: CronField, item: string): Error {
  return new Error(`${field.name} "${item}" is not a value, a range (a-b) or a step (*/n, a-b/n)`);
}

/** The values `span` of `item` names (`5`, `1-5`, `MON-FRI`) as croner reads them: numbers only. */
function cronRange(field: CronField, item: string, span: string): string {
  const [low, high, ...more] = span.split("-");
  if (low === "" || high === "" || more.length > 0) throw malformed(field, item);
  const from = cronValue(field, low);
  if (high === undefined) return `${from}`;
  let to = cronValue(field, high);
  // "fri-sun": Sunday closes a range as 7, as croner reads it.
  if (field.name === "day of week" && to === 0 && !/^\d+$/.test(high)) to = 7;
  if (to < from) throw new Error(`${field.name} "${item}": the range ends before it starts`);
  return `${from}-${to}`;
}

/** One item of a comma list in `field` (`*`, `5`, `1-5`, a step, `MON#2`...), in the form croner reads. */
function cronItem(field: CronField, item: string): string {
  if (field.name === "day of month" && item === "L") return item;
  const [stepped, nth, ...moreNth] = item.split("#");
  if (nth !== undefined) {
    // A weekday or a range of them (MON-FRI#2: each of them in the month's second week, as croner reads it).
    if (field.name !== "day of week" || moreNth.length > 0 || !/^\w+(-\w+)?$/.test(stepped)) {
      throw malformed(field, item);
    }
    if (!/^([1-5]|L)$/.test(nth)) {
      throw new Error(`day of week "${item}": the weekday's place in the month is 1-5 or L`);
    }
  }
  const [span, step, ...moreSteps] = stepped.split("/");
  if (moreSteps.length > 0) throw malformed(field, item);
  if (step !== undefined && !(/^\d+$/.test(step) && Number(step) >= 1 && Number(step) <= field.steps)) {
    throw new Error(`${field.name} "${item}": the step is a whole number from 1 to ${field.steps}`);
  }
  // "?" is "any value", as in Go's robfig/cron; croner would read it as the field's value when the job is made.
  const values = span === "*" || span === "?" ? "*" : cronRange(field, item, span);
  return values + (step === undefined ? "" : `/${step}`) + (nth === undefined ? "" : `#${nth}`);
}

/**
 * Checks a cron expression field by field, with messages that name the field and the value (croner's own count
 * fields from 0 or from 1 and speak of NaN); returns it in the form croner reads: numbers only, `?` as `*`, one
 * space between fields, none around them (a line read from a file).
 */
function cronPattern(expr: string): string {
  const trimmed = expr.trim();
  if (CRON_NICKNAMES.test(trimmed)) return trimmed;
  const fields = trimmed === "" ? [] : trimmed.split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    throw new Error(`expected 6 fields (second minute hour day-of-month month day-of-week) or 5, got ${fields.length}`);
  }
  const kinds = fields.length === 5 ? CRON_FIELDS.slice(1) : CRON_FIELDS;
  return fields.map((text, i) => {
    const items = text.split(",");
    if (items.includes("")) throw new Error(`${kinds[i].name} "${text}" has an empty item between commas`);
    // Once each: croner reads only the first L of a day of month.
    return [...new Set(items.map((item) => cronItem(kinds[i], item)))].join(",");
  }).join(" ");
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
    job = new Cron(cronPattern(expr), () => tick());
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
  const id = Number(checkInteger(table.engine.vm, L, 1, fname));
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

/**
 * The error the embedding library throws for a failed Lua run.
 *
 * @module
 */

/**
 * A Lua error as seen from TypeScript: the message as Lua has it
 * (`test.lua:3: boom`), its parts, and the traceback.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { LuaError } from "./errors.ts";
 * const e = new LuaError("test.lua:3: boom", "stack traceback: ...");
 * strictEqual(e.file, "test.lua");
 * strictEqual(e.line, 3);
 * strictEqual(e.reason, "boom");
 * ```
 */
export class LuaError extends Error {
  /** The script's file or chunk name, when the message begins with a position (any `text:digits: ` passes for one). */
  readonly file?: string;
  /** The line, when the message names a position. */
  readonly line?: number;
  /** The message without its position. */
  readonly reason: string;

  /** An error for Lua's `luaMessage`, with Lua's `traceback` if there is one. */
  constructor(readonly luaMessage: string, readonly traceback = "") {
    super(luaMessage);
    this.name = "LuaError";
    const where = /^([^\n]*?):(\d+): ([\s\S]*)$/.exec(luaMessage);
    if (where) {
      this.file = where[1];
      this.line = Number(where[2]);
      this.reason = where[3];
    } else this.reason = luaMessage;
  }
}

/**
 * A bad argument to a host function, as `luaL_argerror` words it. The
 * function is named as the calling Lua code named it when the error is
 * raised (`os.exit(x)`: 'exit'; `local e = os.exit; e(x)`: 'e'), else by
 * `fname`, its qualified name ('os.exit' under `pcall(os.exit, x)`); called
 * as a method, `self` is not counted, and a bad `self` is said so.
 *
 * ```ts
 * import { strictEqual } from "node:assert";
 * import { ArgumentError } from "./errors.ts";
 * const e = new ArgumentError(1, "os.exit", "number expected, got table");
 * strictEqual(e.message, "bad argument #1 to 'os.exit' (number expected, got table)");
 * strictEqual(e.named({ name: "exit", method: false }), "bad argument #1 to 'exit' (number expected, got table)");
 * strictEqual(e.named({ name: "quit", method: true }), "calling 'quit' on bad self (number expected, got table)");
 * ```
 */
export class ArgumentError extends Error {
  constructor(readonly argument: number, readonly fname: string, readonly detail: string) {
    super(`bad argument #${argument} to '${fname}' (${detail})`);
  }

  /** The message for the function as it was called (undefined: by C, which gives no name). */
  named(called: { name: string; method: boolean } | undefined): string {
    if (!called) return this.message;
    const argument = called.method ? this.argument - 1 : this.argument;
    if (argument === 0) return `calling '${called.name}' on bad self (${this.detail})`;
    return `bad argument #${argument} to '${called.name}' (${this.detail})`;
  }
}

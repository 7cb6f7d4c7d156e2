/**
 * Helpers for the embedding library's tests (library_*_test.ts).
 *
 * @module
 */
import { strictEqual } from "node:assert";
import { runDeno, tempFiles } from "./_helpers.ts";

/** Awaits `promise`, which must reject with exactly class `type` and message `message`; returns the error. */
export async function failure<E extends Error>(
  promise: Promise<unknown>,
  type: new (...args: never[]) => E,
  message: string,
): Promise<E> {
  const error = await promise.then(
    (value) => {
      throw new Error(`expected a ${type.name} "${message}", got the value ${Deno.inspect(value)}`);
    },
    (e) => e,
  );
  strictEqual(error?.constructor, type, `expected a ${type.name}, got ${Deno.inspect(error)}`);
  strictEqual(error.message, message);
  return error;
}

/** Calls `work`, which must throw exactly class `type` with message `message`; returns the error. */
export function thrown<E extends Error>(work: () => unknown, type: new (...args: never[]) => E, message: string): E {
  try {
    work();
  } catch (e) {
    strictEqual((e as Error)?.constructor, type, `expected a ${type.name}, got ${Deno.inspect(e)}`);
    strictEqual((e as Error).message, message);
    return e as E;
  }
  throw new Error(`expected a ${type.name} "${message}", but nothing was thrown`);
}

/** Milliseconds `work` takes to settle, and its value. */
export async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await work();
  return { value, ms: performance.now() - start };
}

/** FNV-1a, 32 bits, of the UTF-8 bytes of `text` (the executor-library README's native hash). */
export function fnv32a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

/**
 * Runs `program` (TypeScript; `MOD` in it stands for mod.ts's URL) in a
 * child Deno with the project's deno.json and the `flags` given, for what
 * a test cannot do in its own process (fewer permissions, V8 flags).
 */
export async function runProgram(
  program: string,
  flags: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = await tempFiles({ "program.ts": program.replaceAll("MOD", new URL("../mod.ts", import.meta.url).href) });
  return runDeno(["run", ...flags, "--config", new URL("../deno.json", import.meta.url).pathname, `${dir}/program.ts`]);
}

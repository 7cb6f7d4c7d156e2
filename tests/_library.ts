/**
 * Helpers for the embedding library's tests (library_*_test.ts).
 *
 * @module
 */
import { strictEqual } from "node:assert";

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
